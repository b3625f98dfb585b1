//! go-units (github.com/docker/go-units, as vendored by docker 20.10) sizes: `HumanSize`,
//! `HumanSizeWithPrecision` (decimal units) and `BytesSize` (binary units).

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits, as
/// `docker images`, `docker ps -s` and `docker history` print sizes.
pub fn human_size(size: i64) -> String {
    human_size_precision(size, 3)
}

/// go-units `HumanSize`: four significant digits (`1.982MB`), as `docker system df` and the
/// prune summaries print sizes.
pub fn go_units_human_size(size: i64) -> String {
    human_size_precision(size, 4)
}

/// go-units `HumanSizeWithPrecision`: `%.<precision>g` of the size in B, kB, MB, ... (base 1000).
pub fn human_size_precision(size: i64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, precision), UNITS[unit])
}

/// Go's `%.<precision>g`: the shortest of `%e` and `%f` forms as Go chooses them (exponent below
/// -4 or at least the precision gives `%e`), trailing zeros removed.
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |text: &str| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exponent.abs());
    }
    let decimals = usize::try_from(precision as i32 - 1 - exponent).unwrap_or(0);
    trim(&format!("{value:.decimals$}"))
}

/// go-units `BytesSize`: `%.4g` of the size in B, KiB, MiB, ... (base 1024), as docker prints
/// memory limits.
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut value = size;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, 4), UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        // Values as docker prints them (go-units HumanSize, HumanSizeWithPrecision(x, 3)).
        assert_eq!(go_units_human_size(0), "0B");
        assert_eq!(go_units_human_size(3), "3B");
        assert_eq!(go_units_human_size(1_982_000), "1.982MB");
        assert_eq!(go_units_human_size(1_981_956), "1.982MB");
        assert_eq!(go_units_human_size(999_950), "1000kB");
        assert_eq!(go_units_human_size(12_345_678), "12.35MB");
        assert_eq!(go_units_human_size(-1), "-1B");
        assert_eq!(human_size_precision(1_981_956, 3), "1.98MB");
        assert_eq!(human_size_precision(999_500, 3), "1e+03kB");
        assert_eq!(human_size_precision(100_000, 3), "100kB");
    }

    #[test]
    fn sizes_match_docker_units() {
        // Values as `docker images` shows them (go-units HumanSizeWithPrecision(x, 3)).
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_855_000), "4.86MB");
        assert_eq!(human_size(72_800_000), "72.8MB");
        assert_eq!(human_size(124_000_000), "124MB");
    }

    #[test]
    fn bytes_sizes_match_go_units() {
        // Values from go-units' size_test.go (TestBytesSize).
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(1_048_576.0), "1MiB");
        assert_eq!(bytes_size(3.42 * 1024.0 * 1024.0 * 1024.0), "3.42GiB");
        assert_eq!(
            bytes_size(5.372 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
            "5.372TiB"
        );
        assert_eq!(
            bytes_size(2.22 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
            "2.22PiB"
        );
    }
}
