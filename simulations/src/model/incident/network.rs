//! Packet loss between a pod and its peers. TCP recovers most losses by fast retransmit, so a
//! lost segment costs a retransmit but little time; a loss among a request's last segments
//! (nothing follows to trigger duplicate ACKs) waits for the retransmission timeout, at least
//! 200 ms, and a second loss doubles it. A lost SYN is retried after 1 s. CPU does not notice.

use crate::model::workload::latency_cdf;

/// Linux's minimum retransmission timeout, seconds.
pub const MIN_RTO: f64 = 0.2;
/// The SYN retransmission timeout, seconds.
pub const SYN_RTO: f64 = 1.0;
/// TCP segments a request and its response take, both ways.
pub const SEGMENTS_PER_REQUEST: f64 = 12.0;
/// Segments at the tail of an exchange whose loss only a timeout recovers.
const TAIL_SEGMENTS: i32 = 3;
/// New outbound connections per request served (the rest reuse kept-alive ones).
pub const CONNECTIONS_PER_REQUEST: f64 = 0.05;
/// Connections reset per lost segment (peers giving up on a stalled exchange).
const RESETS_PER_LOSS: f64 = 0.02;
/// Round-trip time within the cluster, seconds: the fixed part of a connect.
pub const CONNECT_RTT: f64 = 0.0005;
/// Mean of the exponential part of a connect's latency, seconds.
pub const CONNECT_JITTER: f64 = 0.0002;

/// What a loss rate does per request and per connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossEffect {
    /// Fraction of requests delayed by exactly one retransmission timeout.
    pub one_timeout: f64,
    /// Fraction delayed by two (200 ms, then 400 ms).
    pub two_timeouts: f64,
    /// Retransmitted segments per request.
    pub retransmits_per_request: f64,
    /// Resets per request.
    pub resets_per_request: f64,
    /// Fraction of connects whose SYN or SYN-ACK was lost, retried after [`SYN_RTO`].
    pub syn_retried: f64,
}

impl LossEffect {
    /// The effect of losing each packet with probability `loss` (0 for none).
    pub fn of(loss: f64) -> Self {
        if loss <= 0.0 {
            return LossEffect::default();
        }
        let timed_out = 1.0 - (1.0 - loss).powi(TAIL_SEGMENTS);
        let retransmits = SEGMENTS_PER_REQUEST * loss;
        LossEffect {
            one_timeout: timed_out * (1.0 - loss),
            two_timeouts: timed_out * loss,
            retransmits_per_request: retransmits,
            resets_per_request: retransmits * RESETS_PER_LOSS,
            syn_retried: 1.0 - (1.0 - loss).powi(2),
        }
    }

    /// The latency components, as (fraction of requests, added seconds).
    pub fn components(&self) -> [(f64, f64); 3] {
        [
            (1.0 - self.one_timeout - self.two_timeouts, 0.0),
            (self.one_timeout, MIN_RTO),
            (self.two_timeouts, 3.0 * MIN_RTO),
        ]
    }
}

/// The `q` quantile of latency that is `s` plus an exponential of mean `w`, plus, for a
/// fraction of requests, a timeout: `components` as (fraction, added seconds).
pub fn quantile(q: f64, s: f64, w: f64, components: &[(f64, f64)]) -> f64 {
    let cdf = |x: f64| -> f64 {
        components
            .iter()
            .map(|&(f, extra)| f * latency_cdf(x, s + extra, w))
            .sum()
    };
    let mut hi = s + components.iter().map(|c| c.1).fold(0.0, f64::max) + w * 50.0 + 1e-9;
    let mut lo = s;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) >= q {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_delays_a_tail_of_requests_by_a_timeout() {
        let none = LossEffect::of(0.0);
        assert_eq!(none.retransmits_per_request, 0.0);
        let p99_clean = quantile(0.99, 0.02, 0.01, &none.components());
        assert!((p99_clean - (0.02 + 0.01 * 100f64.ln())).abs() < 1e-6);
        let lossy = LossEffect::of(0.05);
        assert!((lossy.retransmits_per_request - 0.6).abs() < 1e-12);
        assert!(lossy.one_timeout > 0.1 && lossy.two_timeouts < 0.01);
        // More than 1 % of requests wait 200 ms: the p99 is past it.
        let p99 = quantile(0.99, 0.02, 0.01, &lossy.components());
        assert!(p99 > 0.22 && p99 < 0.3, "{p99}");
    }
}
