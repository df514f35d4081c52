//! How a Deployment's pods serve their load: a fluid queue in front of ready pods.
//!
//! Demand arrives at λ; ready pods serve at most μ = Σ capacity × CPU share. What cannot be served
//! waits in a backlog (first come, first served, up to the clients' timeout). A request's
//! latency is its service time, plus the time to drain the backlog ahead of it, plus a
//! queueing wait that grows with utilisation ρ (M/M/1-like: exponential with mean
//! s·ρ/(1-ρ)); histograms and the true p99 follow from that distribution.
//! CPU use is ρ × the CPU request, and the run-queue delay the kernel would see grows as
//! the pods' CPU saturates.

/// Mean run-queue delay of an idle pod, seconds.
pub const RUNQUEUE_BASE: f64 = 50e-6;

/// Clients give up after this long: what would wait longer is dropped, not queued.
pub const CLIENT_TIMEOUT: f64 = 30.0;

/// What a workload's pods did during one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickOutcome {
    /// Requests per second that arrived.
    pub demand: f64,
    /// Requests served during the tick.
    pub served: f64,
    /// Utilisation of the ready pods, in [0, 1].
    pub utilisation: f64,
    /// Requests still waiting at the end of the tick.
    pub backlog: f64,
    /// Requests dropped because they would have waited past the clients' timeout.
    pub dropped: f64,
    /// Fixed part of latency: service time plus draining the backlog ahead, seconds.
    pub fixed_latency: f64,
    /// Mean of the exponential queueing wait, seconds.
    pub queue_wait: f64,
    /// The true 99th percentile of latency, seconds.
    pub p99: f64,
    /// Mean run-queue delay on the pods, seconds.
    pub runqueue_mean: f64,
}

/// The queue in front of a workload's pods.
#[derive(Clone, Debug, Default)]
pub struct ServingModel {
    backlog: f64,
}

impl ServingModel {
    /// A model with an empty backlog.
    pub fn new() -> Self {
        ServingModel::default()
    }

    /// Requests waiting now.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    /// Advances by `dt` seconds with the ready pods serving `capacity` requests per second
    /// between them: each pod's capacity times the share of the CPU it gets on its node.
    pub fn tick(&mut self, demand: f64, capacity: f64, service_time: f64, dt: f64) -> TickOutcome {
        let mu = capacity.max(0.0);
        let offered = demand * dt + self.backlog;
        let served = offered.min(mu * dt);
        let waiting = (offered - served).max(0.0);
        self.backlog = waiting.min(mu * CLIENT_TIMEOUT);
        let dropped = waiting - self.backlog;
        let utilisation = if mu > 0.0 {
            (served / (mu * dt)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let rho = utilisation.min(0.98);
        // Waiting behind the backlog: it drains at μ; with no pods at all, the whole tick.
        let backlog_wait = if mu > 0.0 { self.backlog / mu } else { dt };
        let queue_wait = service_time * rho / (1.0 - rho);
        let fixed_latency = service_time + backlog_wait;
        let p99 = fixed_latency + queue_wait * 100f64.ln();
        let runqueue_mean = RUNQUEUE_BASE / (1.0 - rho).max(0.02);
        TickOutcome {
            demand,
            served,
            utilisation,
            backlog: self.backlog,
            dropped,
            fixed_latency,
            queue_wait,
            p99,
            runqueue_mean,
        }
    }
}

/// Fraction of requests (service time `s` plus exponential wait of mean `w`) at or below `x`.
pub fn latency_cdf(x: f64, s: f64, w: f64) -> f64 {
    if x < s {
        0.0
    } else if w <= 0.0 {
        1.0
    } else {
        1.0 - (-(x - s) / w).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_grows_with_utilisation_and_backlog_drains() {
        let mut m = ServingModel::new();
        let calm = m.tick(100.0, 200.0, 0.02, 15.0);
        assert!((calm.utilisation - 0.5).abs() < 1e-9);
        assert!(calm.p99 < 0.2, "{calm:?}");
        let busy = m.tick(180.0, 200.0, 0.02, 15.0);
        assert!(busy.p99 > calm.p99 && busy.runqueue_mean > calm.runqueue_mean);
        let over = m.tick(400.0, 200.0, 0.02, 15.0);
        assert_eq!(over.utilisation, 1.0);
        assert!((over.backlog - 3000.0).abs() < 1e-6, "{over:?}");
        assert!(over.p99 > 10.0);
        assert_eq!(over.dropped, 0.0);
        // Twelve pods serve 600/s: the 3000 waiting plus 15 s of 100/s drain in one tick.
        let drained = m.tick(100.0, 600.0, 0.02, 15.0);
        assert_eq!(drained.backlog, 0.0);
        assert!((drained.served - 4500.0).abs() < 1e-6);
    }

    #[test]
    fn what_would_wait_past_the_client_timeout_is_dropped() {
        let mut m = ServingModel::new();
        let o = m.tick(1000.0, 100.0, 0.02, 60.0);
        // 60 000 offered, 6 000 served, at most 100/s × 30 s may wait.
        assert!(
            (o.backlog - 3000.0).abs() < 1e-6 && (o.dropped - 51_000.0).abs() < 1e-6,
            "{o:?}"
        );
        assert!(
            (o.fixed_latency - 30.02).abs() < 1e-9 && o.p99 < 35.0,
            "{o:?}"
        );
        let none = m.tick(10.0, 0.0, 0.02, 15.0);
        assert_eq!((none.backlog, none.served), (0.0, 0.0));
    }

    #[test]
    fn the_p99_is_where_the_distribution_reaches_99_percent() {
        let o = ServingModel::new().tick(150.0, 200.0, 0.02, 15.0);
        assert!((latency_cdf(o.p99, o.fixed_latency, o.queue_wait) - 0.99).abs() < 1e-9);
        assert_eq!(latency_cdf(0.01, 0.02, 0.1), 0.0);
    }
}
