//! The Deployment controller's arithmetic: the name of a pod template's ReplicaSet, and how a
//! rolling update moves replicas from the old ReplicaSets to the new one within
//! `maxSurge` (25 %, rounded up) and `maxUnavailable` (25 %, rounded down), as
//! kube-controller-manager's `rolloutRolling` does.

use serde_json::Value;

/// Characters Kubernetes uses to spell hashes in names (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a pod template: a 32-bit FNV-1a hash of its JSON (keys
/// sorted), spelled in Kubernetes' safe alphabet. The same template always gives the same
/// hash, so undoing a rollout finds the old ReplicaSet again.
pub fn template_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut n = h;
    loop {
        out.push(char::from(ALPHABET[(n % ALPHABET.len() as u32) as usize]));
        n /= ALPHABET.len() as u32;
        if n == 0 {
            break;
        }
    }
    out
}

/// `maxSurge` of 25 % of `replicas`, rounded up.
pub fn max_surge(replicas: u32) -> u32 {
    replicas.div_ceil(4)
}

/// `maxUnavailable` of 25 % of `replicas`, rounded down; 1 when both would be 0, so a
/// rollout can always move.
pub fn max_unavailable(replicas: u32) -> u32 {
    let u = replicas / 4;
    if u == 0 && max_surge(replicas) == 0 {
        1
    } else {
        u
    }
}

/// A ReplicaSet's size and how many of its pods are available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RsCount {
    /// `spec.replicas`.
    pub replicas: u32,
    /// Pods ready (`minReadySeconds` is 0).
    pub available: u32,
}

/// One pass of the rolling update for a Deployment of `desired` replicas: the new
/// ReplicaSet's replicas and the old ones' (in the order given, oldest first).
pub fn roll(desired: u32, new: RsCount, old: &[RsCount]) -> (u32, Vec<u32>) {
    let surge = max_surge(desired);
    let min_available = desired.saturating_sub(max_unavailable(desired));
    let mut new_replicas = new.replicas;
    let mut old_replicas: Vec<u32> = old.iter().map(|o| o.replicas).collect();
    // Scale the new ReplicaSet up within the surge (or down to what is desired).
    let current: u32 = new_replicas + old_replicas.iter().sum::<u32>();
    if new_replicas > desired {
        new_replicas = desired;
    } else {
        let room = (desired + surge).saturating_sub(current);
        new_replicas += room.min(desired - new_replicas);
    }
    // Scale old ones down while enough pods stay available.
    let all: u32 = new_replicas + old_replicas.iter().sum::<u32>();
    let new_unavailable = new_replicas.saturating_sub(new.available);
    let max_scaled_down = i64::from(all) - i64::from(min_available) - i64::from(new_unavailable);
    if max_scaled_down > 0 {
        // First the old pods that are not available anyway.
        let mut budget = max_scaled_down as u32;
        for (r, o) in old_replicas.iter_mut().zip(old) {
            let unhealthy = r.saturating_sub(o.available);
            let cut = unhealthy.min(budget);
            *r -= cut;
            budget -= cut;
        }
        let available: u32 = new.available.min(new_replicas)
            + old_replicas
                .iter()
                .zip(old)
                .map(|(r, o)| o.available.min(*r))
                .sum::<u32>();
        let mut excess = available.saturating_sub(min_available);
        for r in &mut old_replicas {
            let cut = (*r).min(excess);
            *r -= cut;
            excess -= cut;
        }
    }
    (new_replicas, old_replicas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: u32, available: u32) -> RsCount {
        RsCount {
            replicas,
            available,
        }
    }

    #[test]
    fn hashes_are_stable_and_tell_templates_apart() {
        let v1 = json!({"spec": {"containers": [{"image": "web:1.0"}]}});
        let v2 = json!({"spec": {"containers": [{"image": "web:2.0"}]}});
        assert_eq!(template_hash(&v1), template_hash(&v1.clone()));
        assert_ne!(template_hash(&v1), template_hash(&v2));
        assert!(template_hash(&v1).bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        assert_eq!((max_surge(4), max_unavailable(4)), (1, 1));
        assert_eq!((max_surge(10), max_unavailable(10)), (3, 2));
        assert_eq!((max_surge(1), max_unavailable(1)), (1, 0));
    }

    #[test]
    fn a_healthy_rollout_completes_and_a_broken_one_stalls_at_max_unavailable() {
        // Healthy: new pods become available each pass.
        let (mut new, mut old) = (0u32, 4u32);
        for _ in 0..10 {
            let (n, o) = roll(4, rs(new, new), &[rs(old, old)]);
            (new, old) = (n, o[0]);
        }
        assert_eq!((new, old), (4, 0));
        // Broken: new pods never become available.
        let (mut new, mut old) = (0u32, 4u32);
        for _ in 0..10 {
            let (n, o) = roll(4, rs(new, 0), &[rs(old, old)]);
            (new, old) = (n, o[0]);
            assert!(old >= 3, "old fell to {old}");
        }
        assert_eq!((new, old), (2, 3));
        // Undo: the old template is the new one again; the broken pods go first.
        let (n, o) = roll(4, rs(3, 3), &[rs(2, 0)]);
        assert_eq!((n, o[0]), (3, 0));
        let (n, o) = roll(4, rs(3, 3), &[rs(0, 0)]);
        assert_eq!((n, o[0]), (4, 0));
    }

    #[test]
    fn without_a_rollout_the_replica_set_follows_the_deployment() {
        assert_eq!(roll(7, rs(4, 4), &[]).0, 7);
        assert_eq!(roll(2, rs(4, 4), &[]).0, 2);
    }
}
