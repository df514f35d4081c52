//! Actions and verdicts in a line of words, as `policy explain` and `policy test` print them.

use homeostat_core::{Action, Verdict};

/// What an action does, e.g. `scale-hpa HorizontalPodAutoscaler/shop/checkout: minReplicas 4 → 8`.
pub fn action(a: &Action) -> String {
    let kind = a.kind().as_str();
    match a {
        Action::ScaleHpa {
            hpa,
            min_replicas,
            previous_min_replicas,
        } => format!("{kind} {hpa}: minReplicas {previous_min_replicas} → {min_replicas}"),
        Action::RestartPods { workload, pod, .. } => {
            format!("{kind} {workload}: evict pod {pod}")
        }
        Action::ThrottleSampling { node, probe, rate } => {
            format!("{kind} node {node}: sample {probe} at rate {rate}")
        }
        Action::TaintNode { node, remove } => format!(
            "{kind} node {node}: {} homeostat's PreferNoSchedule taint",
            if *remove { "remove" } else { "put" }
        ),
        Action::ScaleWorkload {
            workload,
            replicas,
            previous_replicas,
        } => format!("{kind} {workload}: replicas {previous_replicas} → {replicas}"),
        Action::RolloutRestart { workload } => {
            format!("{kind} {workload}: replace every pod by a rolling update")
        }
    }
}

/// Who decided: `policy NAME, rule RULE`, or the rule alone when no policy matched.
pub fn decided_by(v: &Verdict) -> String {
    match &v.policy {
        Some(p) => format!("policy {p}, rule {}", v.rule),
        None => format!("no policy, rule {}", v.rule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{ObjectRef, WorkloadRef};

    #[test]
    fn actions_read_as_what_they_change() {
        let hpa = ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: "shop".into(),
            name: "checkout".into(),
        };
        let scale = Action::ScaleHpa {
            hpa,
            min_replicas: 8,
            previous_min_replicas: 4,
        };
        assert_eq!(
            action(&scale),
            "scale-hpa HorizontalPodAutoscaler/shop/checkout: minReplicas 4 → 8"
        );
        let restart = Action::RestartPods {
            workload: WorkloadRef::deployment("shop", "cart"),
            pod: "cart-0".into(),
            uid: None,
        };
        assert_eq!(
            action(&restart),
            "restart-pods shop/Deployment/cart: evict pod cart-0"
        );
        let taint = Action::TaintNode {
            node: "n1".into(),
            remove: true,
        };
        assert_eq!(
            action(&taint),
            "taint-node node n1: remove homeostat's PreferNoSchedule taint"
        );
        let scaled = Action::ScaleWorkload {
            workload: WorkloadRef::deployment("shop", "cart"),
            replicas: 6,
            previous_replicas: 3,
        };
        assert_eq!(
            action(&scaled),
            "scale-workload shop/Deployment/cart: replicas 3 → 6"
        );
        let rollout = Action::RolloutRestart {
            workload: WorkloadRef::deployment("shop", "cart"),
        };
        assert_eq!(
            action(&rollout),
            "rollout-restart shop/Deployment/cart: replace every pod by a rolling update"
        );
    }
}
