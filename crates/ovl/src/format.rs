//! Human output as the docker CLI prints it: sizes, ages, tables, error chains.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `a: b: c` from an error and its causes, skipping causes already contained in the message above.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(size: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", three_significant_digits(value), UNITS[unit])
}

/// Go's `%.3g` for values in [0, 1000).
fn three_significant_digits(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let int_digits = value.abs().log10().floor() as i32 + 1;
    let decimals = (3 - int_digits).max(0) as usize;
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    text
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    let hours = (duration.as_secs_f64() / 3600.0 + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".to_string()
    } else if seconds == 1 {
        "1 second".to_string()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!(
            "{} years",
            (duration.as_secs_f64() / 3600.0 / 24.0 / 365.0) as u64
        )
    }
}

/// "3 hours ago" for an RFC 3339 timestamp; "N/A" when it cannot be read.
pub fn age(rfc3339: Option<&str>) -> String {
    let Some(created) = rfc3339.and_then(parse_rfc3339) else {
        return "N/A".to_string();
    };
    let elapsed = SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    format!("{} ago", human_duration(elapsed))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n_digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let digits = &frac[..n_digits.min(9)];
        nanos = format!("{digits:0<9}").parse().ok()?;
        rest = &frac[n_digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Prints rows aligned like Go's tabwriter with the docker CLI's settings (padding 3).
pub fn table(rows: &[Vec<String>]) -> String {
    let n_columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n_columns];
    for row in rows {
        for (idx, cell) in row.iter().enumerate() {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (idx, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if idx + 1 < row.len() {
                let pad = widths[idx] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The 12-character short form of an id, without `sha256:`.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn durations_match_docker_units() {
        assert_eq!(
            human_duration(Duration::from_millis(500)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(45)), "45 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(10 * 86_400)), "10 days");
        assert_eq!(human_duration(Duration::from_secs(40 * 86_400)), "5 weeks");
    }

    #[test]
    fn parses_go_timestamps() {
        let time = parse_rfc3339("2026-11-22T22:39:12.521354742Z").expect("parse");
        let since = time.duration_since(UNIX_EPOCH).expect("after epoch");
        // 2026-11-22T22:39:12Z computed with `date -u -d 2026-11-22T22:39:12Z +%s`.
        assert_eq!(since.as_secs(), 1_795_387_152);
        assert_eq!(since.subsec_nanos(), 521_354_742);
        assert!(parse_rfc3339("2026-11-22T23:39:12+01:00").is_some_and(|t| t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .ok()
            == Some(1_795_387_152)));
    }

    #[test]
    fn table_pads_three_spaces() {
        let rows = vec![
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ];
        assert_eq!(table(&rows), "A     BB\nCCC   D\n");
    }
}
