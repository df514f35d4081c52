//! CPU contention on a node. The node's pods want some CPU (what their load would use with a
//! CPU each to themselves); something else on the node (a noisy neighbour, homeostat's own
//! sensor) takes its cores first. When what is left is less than the pods want, each gets the
//! same share of what it wants, so its serving capacity and its CPU time shrink by that
//! share; and the more the node is asked for relative to its cores, the longer runnable
//! threads wait for a CPU.

/// What homeostat's node sensor normally costs, fraction of a CPU.
pub const SENSOR_BASELINE: f64 = 0.002;

/// Node load below which the run queue is not longer than on an idle node.
const CONTENTION_ONSET: f64 = 0.5;

/// The fraction of what they want that the node's pods get: 1 when the cores left after
/// `taken` cover `wanted`, else what is left over what is wanted.
pub fn share(cores: f64, taken: f64, wanted: f64) -> f64 {
    if wanted <= 0.0 {
        return 1.0;
    }
    ((cores - taken).max(0.0) / wanted).min(1.0)
}

/// How much longer than on a quiet node runnable threads wait for a CPU, given the node's
/// load (CPU asked for, by pods and by anything else, over its cores): 1 up to half load,
/// then growing as 1/(1 - load) to 25× when the node is oversubscribed.
pub fn runqueue_factor(load: f64) -> f64 {
    if load <= CONTENTION_ONSET {
        1.0
    } else {
        CONTENTION_ONSET / (1.0 - load.min(0.98))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_share_what_is_left_and_wait_longer_on_a_busy_node() {
        assert_eq!(share(4.0, 0.0, 2.0), 1.0);
        assert_eq!(share(4.0, 3.0, 2.0), 0.5);
        assert_eq!(share(4.0, 5.0, 2.0), 0.0);
        assert_eq!(share(4.0, 1.0, 0.0), 1.0);
        assert_eq!(runqueue_factor(0.3), 1.0);
        assert_eq!(runqueue_factor(0.5), 1.0);
        assert!((runqueue_factor(0.75) - 2.0).abs() < 1e-9);
        assert!((runqueue_factor(3.0) - 25.0).abs() < 1e-9);
    }
}
