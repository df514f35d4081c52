//! Cost profiles: how much a hit, a false alarm and a miss weigh.

/// The weights of one NAB application profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostProfile {
    /// NAB's name for it, as in its results tables.
    pub name: &'static str,
    /// Reward for the best (earliest) detection in a window, at the window's first point.
    pub tp: f64,
    /// Penalty for a detection far from any preceding window.
    pub fp: f64,
    /// Penalty for a window with no detection.
    pub fn_: f64,
}

impl CostProfile {
    /// NAB's default: a miss costs as much as a hit earns, a false alarm about a ninth.
    pub const STANDARD: CostProfile = CostProfile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };
    /// For applications where false alarms are expensive.
    pub const REWARD_LOW_FP: CostProfile = CostProfile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    };
    /// For applications where misses are expensive.
    pub const REWARD_LOW_FN: CostProfile = CostProfile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    };
    /// The three profiles NAB reports, in its order.
    pub const ALL: [CostProfile; 3] = [
        CostProfile::STANDARD,
        CostProfile::REWARD_LOW_FP,
        CostProfile::REWARD_LOW_FN,
    ];
}
