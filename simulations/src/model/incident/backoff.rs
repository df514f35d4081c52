//! The kubelet's CrashLoopBackOff: a container that exits is restarted after a delay that
//! starts at 10 s and doubles with every exit up to 5 minutes; a container that ran for
//! 10 minutes before exiting starts the sequence again.

use std::time::Duration;

/// The first restart delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest restart delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// One container's back-off state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackOff {
    last: Option<Duration>,
}

impl BackOff {
    /// The delay before restarting a container that exited after running for `ran`.
    pub fn on_exit(&mut self, ran: Duration) -> Duration {
        let delay = match self.last {
            Some(last) if ran < RESET_AFTER => (last * 2).min(MAX),
            _ => INITIAL,
        };
        self.last = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_five_minutes_and_reset_after_ten_minutes_running() {
        let mut b = BackOff::default();
        let quick = Duration::from_secs(5);
        let delays: Vec<u64> = (0..7).map(|_| b.on_exit(quick).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.on_exit(Duration::from_secs(599)), MAX);
        assert_eq!(b.on_exit(RESET_AFTER), INITIAL);
        assert_eq!(b.on_exit(quick), Duration::from_secs(20));
    }
}
