//! Small order statistics the detectors share.

/// The median of `values` (sorted in place); NaN for none.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The standard normal distribution: what detectors that score by a normal model rebuild
/// after being read back (statrs' distributions are not serialised).
pub(crate) fn standard_normal() -> statrs::distribution::Normal {
    statrs::distribution::Normal::standard()
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn middle_value_or_mean_of_the_two_middle_ones() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
