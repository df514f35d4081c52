//! One alarm per episode: a surprise is reported only when it is the largest of the recent
//! past, so an incident that stays surprising for an hour raises one alarm (and another only
//! if it gets worse), not one per sample.
//!
//! The largest of the last `window` surprises is kept with a monotone queue (each entry larger
//! than every later one), bounded to a few entries: when it is full the smallest, newest entry
//! is overwritten, which can only make the gate a little more permissive after the largest
//! ones expire.

/// Entries kept: in practice the queue rarely holds more than a handful.
const CAPACITY: usize = 16;

/// The gate's state for one series.
#[derive(Clone, Debug)]
pub(crate) struct Refractory {
    window: u32,
    /// Steps gated so far.
    step: u64,
    /// (surprise, step) pairs, surprises strictly decreasing from the front.
    queue: [(f64, u64); CAPACITY],
    len: usize,
}

impl Refractory {
    /// A gate comparing each surprise with the previous `window` ones.
    pub(crate) fn new(window: u32) -> Self {
        Refractory {
            window,
            step: 0,
            queue: [(0.0, 0); CAPACITY],
            len: 0,
        }
    }

    /// Whether `surprise` exceeds every surprise of the previous `window` steps (zeros
    /// included, so a zero never passes); either way it joins them.
    pub(crate) fn admit(&mut self, surprise: f64) -> bool {
        let now = self.step;
        self.step += 1;
        // Expire entries older than the window.
        let oldest = now.saturating_sub(u64::from(self.window));
        let expired = self.queue[..self.len]
            .iter()
            .take_while(|&&(_, at)| at < oldest)
            .count();
        self.queue.copy_within(expired..self.len, 0);
        self.len -= expired;
        let recent_max = if self.len > 0 { self.queue[0].0 } else { 0.0 };
        let admitted = surprise > recent_max;
        if surprise > 0.0 {
            // Entries no larger than the newcomer can never be the maximum again.
            while self.len > 0 && self.queue[self.len - 1].0 <= surprise {
                self.len -= 1;
            }
            if self.len == CAPACITY {
                self.len -= 1;
            }
            self.queue[self.len] = (surprise, now);
            self.len += 1;
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_largest_in_the_window_passes_until_it_expires() {
        let mut g = Refractory::new(10);
        assert!(!g.admit(0.0));
        assert!(g.admit(5.0));
        assert!(!g.admit(5.0), "equal is not larger");
        assert!(!g.admit(3.0));
        assert!(g.admit(6.0), "a worsening incident alarms again");
        for _ in 0..9 {
            assert!(!g.admit(4.0));
        }
        // 6.0 was 10 steps ago and still counts; one step later only the 4.0s remain.
        assert!(!g.admit(5.0));
        assert!(g.admit(5.5));
    }

    #[test]
    fn agrees_with_a_brute_force_window_maximum() {
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Mostly zeros, sometimes a surprise: like the detector's output.
            let r = (state >> 33) % 100;
            if r < 70 { 0.0 } else { (r - 70) as f64 }
        };
        let values: Vec<f64> = (0..5000).map(|_| next()).collect();
        let mut g = Refractory::new(50);
        for (i, &v) in values.iter().enumerate() {
            let previous = &values[i.saturating_sub(50)..i];
            let expected = v > previous.iter().copied().fold(0.0, f64::max);
            assert_eq!(g.admit(v), expected, "at {i}");
        }
    }
}
