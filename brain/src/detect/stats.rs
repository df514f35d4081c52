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

/// MAD of a normal distribution is 0.6745 σ; this turns a MAD into a σ estimate.
pub(crate) const MAD_TO_SIGMA: f64 = 1.4826;

/// The standard normal distribution: what detectors that score by a normal model rebuild
/// after being read back (statrs' distributions are not serialised).
pub(crate) fn standard_normal() -> statrs::distribution::Normal {
    statrs::distribution::Normal::standard()
}

/// Deterministic standard normal values (xorshift and Box–Muller), for the detectors' tests.
#[cfg(test)]
pub(crate) fn standard_normals(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
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
