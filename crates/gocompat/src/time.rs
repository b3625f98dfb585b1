//! Go's `time` as Docker prints and reads it: RFC 3339 text, `Time.String`, the zero time, and
//! go-units' `HumanDuration` with docker/cli's "… ago".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`) in Unix seconds: what Docker's API reports as
/// the creation time of an image or history entry that has none.
pub const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Whole Unix seconds (rounded down, as Go's `Time.Unix`) of an RFC 3339 timestamp, also before
/// 1970; `None` when it cannot be read.
pub fn unix_seconds(rfc3339: &str) -> Option<i64> {
    let bytes = rfc3339.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't')
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = rfc3339.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &rfc3339[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n_digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n_digits == 0 {
            return None;
        }
        rest = &fraction[n_digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds)
}

/// Go's `time.Unix(seconds, 0).Format(time.RFC3339)` in UTC: `2006-01-02T15:04:05Z`.
pub fn go_rfc3339_utc(seconds: i64) -> String {
    let (date, time) = civil_utc(seconds);
    format!("{date}T{time}Z")
}

/// Go's `time.Unix(seconds, 0).String()` in UTC: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string_utc(seconds: i64) -> String {
    let (date, time) = civil_utc(seconds);
    format!("{date} {time} +0000 UTC")
}

/// `units.HumanDuration(now - time.Unix(seconds, 0)) + " ago"`, as the docker CLI prints ages:
/// whole seconds of the creation time, Go's saturation of durations beyond 292 years, and
/// "Less than a second" for times in the future.
pub fn ago_unix(seconds: i64, now: SystemTime) -> String {
    let now_nanos: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    let elapsed = (now_nanos - i128::from(seconds) * 1_000_000_000).clamp(0, i128::from(i64::MAX));
    format!(
        "{} ago",
        human_duration(Duration::from_nanos(elapsed as u64))
    )
}

/// `YYYY-MM-DD` and `HH:MM:SS` of Unix seconds in UTC.
fn civil_utc(seconds: i64) -> (String, String) {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        ),
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (`civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unix_seconds_and_go_time_formats() {
        // Values from `date -u -d <time> +%s`.
        assert_eq!(
            unix_seconds("0001-01-01T00:00:00Z"),
            Some(GO_ZERO_TIME_UNIX)
        );
        assert_eq!(unix_seconds("1969-12-31T23:00:00-02:00"), Some(3600));
        assert_eq!(
            unix_seconds("2026-11-22T22:39:12.521354742Z"),
            Some(1_795_387_152)
        );
        assert_eq!(unix_seconds("2026-11-22 22:39:12Z"), None);
        assert_eq!(unix_seconds("2026-11-22T22:39:12"), None);
        assert_eq!(go_rfc3339_utc(1_795_387_152), "2026-11-22T22:39:12Z");
        assert_eq!(go_rfc3339_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            go_time_string_utc(GO_ZERO_TIME_UNIX),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_795_387_152);
        assert_eq!(ago_unix(1_795_387_152 - 90, now), "About a minute ago");
        assert_eq!(ago_unix(1_795_387_152 + 5, now), "Less than a second ago");
    }
}
