//! Sizes with units, as docker/go-units reads them (`--mount=type=tmpfs,size=64m`).

/// docker/go-units `RAMInBytes`: `64m`, `1.5g`, `512KiB`, `100` (bytes), binary multiples.
pub(crate) fn ram_in_bytes(v: &str) -> Option<u64> {
    let digits_end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, rest) = v.split_at(digits_end);
    if num.is_empty() || !num.as_bytes()[0].is_ascii_digit() || num.ends_with('.') {
        return None;
    }
    if num.split('.').any(str::is_empty) {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut unit = rest.chars();
    let shift = match unit.clone().next().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => 0,
    };
    if shift != 0 {
        unit.next();
    }
    let suffix: String = unit.collect();
    let suffix = suffix.to_ascii_lowercase();
    if !matches!(suffix.as_str(), "" | "b" | "i" | "ib") {
        return None;
    }
    // Go parses the number as a float64 and truncates the product.
    let value: f64 = num.split('.').take(2).collect::<Vec<_>>().join(".").parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes;

    #[test]
    fn ram_sizes_like_go_units() {
        let cases: &[(&str, Option<u64>)] = &[
            ("100", Some(100)),
            ("64m", Some(64 << 20)),
            ("64M", Some(64 << 20)),
            ("1g", Some(1 << 30)),
            ("1.5k", Some(1536)),
            ("2 KiB", Some(2048)),
            ("10mb", Some(10 << 20)),
            ("", None),
            ("m", None),
            ("1x", None),
            ("-1", None),
            ("1.", None),
        ];
        for (v, want) in cases {
            assert_eq!(ram_in_bytes(v), *want, "{v}");
        }
    }
}
