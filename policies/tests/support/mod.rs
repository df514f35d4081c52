//! What the evaluation tests share.

use homeostat_core::{Verdict, VerdictKind};

/// Asserts a verdict's kind, rule and reason at once, so a failure shows all three.
pub fn check(v: &Verdict, kind: VerdictKind, rule: &str, reason: &str) {
    assert_eq!(
        (v.kind, v.rule.as_str(), v.reason.as_str()),
        (kind, rule, reason)
    );
}
