//! Kubernetes resource quantities (`512Mi`, `1.5G`, `250m`, `1e9`) as numbers.

/// The value of a quantity in base units (bytes for memory, cores for CPU), or `None` if it is
/// not one. Binary (`Ki`…`Ei`), decimal (`k`…`E`, `m`, `u`, `n`) and exponent (`1e9`) forms
/// are read, as the API server writes them.
pub fn parse(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (number, suffix) = if suffix.is_empty() {
        // `1e9` is an exponent, `5E` is five exa: only a trailing E with digits after it is one.
        match number.rfind(['e', 'E']) {
            Some(i) if i + 1 == number.len() => (&number[..i], &number[i..]),
            _ => (number, ""),
        }
    } else {
        (number, suffix)
    };
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_the_forms_the_api_server_writes() {
        assert_eq!(parse("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1.5G"), Some(1.5e9));
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("1e9"), Some(1e9));
        assert_eq!(parse("5E"), Some(5e18));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("12Xi"), None);
        assert_eq!(parse("-1Gi"), None);
        assert_eq!(parse(""), None);
    }
}
