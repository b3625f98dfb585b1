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

/// The instant of RFC 3339 text as Go reads it ([`GoTime::parse_rfc3339`]); times before the
/// epoch give the epoch.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let time = GoTime::parse_rfc3339(text)?;
    if time.unix_secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::new(time.unix_secs as u64, time.nanos))
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`) in Unix seconds: what Docker's API reports as
/// the creation time of an image or history entry that has none.
pub const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Whole Unix seconds (rounded down, as Go's `Time.Unix`) of an RFC 3339 timestamp, also before
/// 1970; `None` when Go would not read it ([`GoTime::parse_rfc3339`]).
pub fn unix_seconds(rfc3339: &str) -> Option<i64> {
    GoTime::parse_rfc3339(rfc3339).map(|time| time.unix_secs)
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

/// Go's `time.Duration.String` of `nanos` nanoseconds: `0s`, `1.5µs`, `250ms`, `1h2m3.5s`.
pub fn go_duration_string(nanos: i64) -> String {
    let magnitude = nanos.unsigned_abs();
    let sign = if nanos < 0 { "-" } else { "" };
    // Whole units and the fraction of `magnitude / 10^digits`, without trailing zeros.
    let split = |digits: u32| {
        let scale = 10u64.pow(digits);
        let fraction = format!("{:0width$}", magnitude % scale, width = digits as usize);
        let fraction = fraction.trim_end_matches('0');
        let fraction = if fraction.is_empty() {
            String::new()
        } else {
            format!(".{fraction}")
        };
        (magnitude / scale, fraction)
    };
    if magnitude == 0 {
        return "0s".to_string();
    }
    if magnitude < 1_000 {
        return format!("{sign}{magnitude}ns");
    }
    if magnitude < 1_000_000 {
        let (whole, fraction) = split(3);
        return format!("{sign}{whole}{fraction}\u{b5}s");
    }
    if magnitude < 1_000_000_000 {
        let (whole, fraction) = split(6);
        return format!("{sign}{whole}{fraction}ms");
    }
    let (seconds, fraction) = split(9);
    let (minutes, hours) = (seconds / 60 % 60, seconds / 3600);
    let seconds = seconds % 60;
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}{fraction}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}{fraction}s")
    } else {
        format!("{sign}{seconds}{fraction}s")
    }
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
    let days = seconds.div_euclid(SECS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECS_PER_DAY);
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

/// The last instant whose Unix nanoseconds fit an `int64`: 2262-04-11T23:47:16.854775807Z. Docker's
/// `system.Chtimes` (moby pkg/system/chtimes.go) replaces later times, and times before the
/// epoch, by the epoch.
const MAX_CHTIMES_SECS: i64 = 9_223_372_036;
const MAX_CHTIMES_NANOS: u32 = 854_775_807;

const SECS_PER_DAY: i64 = 86_400;

/// A time as Go's `time.Time` keeps it after `UnmarshalJSON`: the instant and the UTC offset it
/// was written with (which `MarshalJSON` writes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    unix_secs: i64,
    nanos: u32,
    /// Offset east of UTC, in seconds; zero is written `Z`.
    offset_secs: i32,
}

impl GoTime {
    /// Go's zero time, what a config without `created` decodes to.
    pub const ZERO: GoTime = GoTime {
        unix_secs: GO_ZERO_TIME_UNIX,
        nanos: 0,
        offset_secs: 0,
    };

    /// The Unix epoch in UTC (`time.Unix(0, 0)` on a host whose local zone is UTC).
    pub const EPOCH: GoTime = GoTime {
        unix_secs: 0,
        nanos: 0,
        offset_secs: 0,
    };

    /// `time` in UTC, as Go's `time.Now().UTC()` holds it (a time before the epoch is the epoch).
    pub fn from_system_time(time: SystemTime) -> GoTime {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        GoTime {
            unix_secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: since.subsec_nanos(),
            offset_secs: 0,
        }
    }

    /// Whole seconds since the Unix epoch (Go's `Time.Unix`).
    pub fn unix_secs(self) -> i64 {
        self.unix_secs
    }

    /// Parses RFC 3339 text as Go's `time.Time.UnmarshalJSON` does: `YYYY-MM-DDTHH:MM:SS`, an
    /// optional fraction of any length (digits past the ninth are dropped), then `Z` or `±HH:MM`.
    pub fn parse_rfc3339(text: &str) -> Option<GoTime> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            let digits = bytes.get(range)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(
                digits
                    .iter()
                    .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')),
            )
        };
        let year = number(0..4)?;
        let month = number(5..7)?;
        let day = number(8..10)?;
        let hour = number(11..13)?;
        let minute = number(14..16)?;
        let second = number(17..19)?;
        if bytes[4] != b'-'
            || bytes[7] != b'-'
            || bytes[10] != b'T'
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut idx = 19;
        let mut nanos: u32 = 0;
        if matches!(bytes.get(idx), Some(b'.') | Some(b','))
            && bytes.get(idx + 1).is_some_and(u8::is_ascii_digit)
        {
            idx += 1;
            let start = idx;
            while bytes.get(idx).is_some_and(u8::is_ascii_digit) {
                idx += 1;
            }
            let digits = &bytes[start..idx];
            let mut scaled: u32 = 0;
            for position in 0..9 {
                let digit = digits.get(position).map_or(0, |d| u32::from(d - b'0'));
                scaled = scaled * 10 + digit;
            }
            nanos = scaled;
        }
        let offset_secs = match &bytes[idx..] {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let hours = i32::from(h1 - b'0') * 10 + i32::from(h2 - b'0');
                let minutes = i32::from(m1 - b'0') * 10 + i32::from(m2 - b'0');
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let magnitude = hours * 3600 + minutes * 60;
                if *sign == b'-' {
                    -magnitude
                } else {
                    magnitude
                }
            }
            _ => return None,
        };
        let local_secs =
            days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
        Some(GoTime {
            unix_secs: local_secs - i64::from(offset_secs),
            nanos,
            offset_secs,
        })
    }

    /// Go's `Format(time.RFC3339Nano)`: the fraction without trailing zeros (none when zero),
    /// `Z` for a zero offset.
    pub fn to_rfc3339_nano(self) -> String {
        let (date, time) = civil_utc(self.unix_secs + i64::from(self.offset_secs));
        let mut text = format!("{date}T{time}");
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        if self.offset_secs == 0 {
            text.push('Z');
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let magnitude = self.offset_secs.unsigned_abs();
            text.push_str(&format!(
                "{sign}{:02}:{:02}",
                magnitude / 3600,
                magnitude / 60 % 60
            ));
        }
        text
    }

    /// Go's `Time.String` of a time read from JSON: `2006-01-02 15:04:05.999999999 -0700 MST`, the
    /// fraction without trailing zeros, the zone `UTC` at a zero offset and otherwise named by its
    /// offset (Go's `FixedZone("", offset)` prints `-0700 -0700`).
    pub fn to_go_string(self) -> String {
        let (date, time) = civil_utc(self.unix_secs + i64::from(self.offset_secs));
        let mut text = format!("{date} {time}");
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        let sign = if self.offset_secs < 0 { '-' } else { '+' };
        let magnitude = self.offset_secs.unsigned_abs();
        let offset = format!("{sign}{:02}{:02}", magnitude / 3600, magnitude / 60 % 60);
        let zone = if self.offset_secs == 0 {
            "UTC"
        } else {
            offset.as_str()
        };
        format!("{text} {offset} {zone}")
    }

    /// The whole-second mtime a file gets from Docker's `system.Chtimes(path, t, t)` and its tar
    /// writer: times before the epoch or past 2262-04-11T23:47:16.854775807Z become the epoch.
    pub fn chtimes_mtime(self) -> i64 {
        let after_max = self.unix_secs > MAX_CHTIMES_SECS
            || (self.unix_secs == MAX_CHTIMES_SECS && self.nanos > MAX_CHTIMES_NANOS);
        if self.unix_secs < 0 || after_max {
            0
        } else {
            self.unix_secs
        }
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
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
    fn durations_print_as_go_prints_them() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5\u{b5}s"),
            (250_000_000, "250ms"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3 * 3_600_000_000_000, "3h0m0s"),
            (-1_500_000_000, "-1.5s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration_string(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn times_read_from_json_print_as_go_prints_them() {
        let string = |text: &str| GoTime::parse_rfc3339(text).expect("parse").to_go_string();
        assert_eq!(
            string("2026-12-04T16:02:16.157486162Z"),
            "2026-12-04 16:02:16.157486162 +0000 UTC"
        );
        assert_eq!(
            string("2026-12-04T16:02:16.5-07:00"),
            "2026-12-04 16:02:16.5 -0700 -0700"
        );
        assert_eq!(GoTime::ZERO.to_go_string(), "0001-01-01 00:00:00 +0000 UTC");
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

    fn round_trip(text: &str) -> String {
        GoTime::parse_rfc3339(text)
            .unwrap_or_else(|| panic!("{text} should parse"))
            .to_rfc3339_nano()
    }

    #[test]
    fn formatting_trims_the_fraction_and_keeps_the_offset() {
        // Values Docker 20.10 wrote back for these inputs (docker load, then docker save).
        assert_eq!(
            round_trip("2024-02-29T23:59:59.120000000+02:00"),
            "2024-02-29T23:59:59.12+02:00"
        );
        assert_eq!(
            round_trip("2026-11-23T05:06:17.642663095Z"),
            "2026-11-23T05:06:17.642663095Z"
        );
        assert_eq!(
            round_trip("2024-01-01T00:00:00.000Z"),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            round_trip("2024-01-01T00:00:00+00:00"),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            round_trip("1999-12-31T23:59:59.1234567891234-05:30"),
            "1999-12-31T23:59:59.123456789-05:30"
        );
    }

    #[test]
    fn the_instant_accounts_for_the_offset() {
        let time = GoTime::parse_rfc3339("2024-02-29T23:59:59.12+02:00").expect("parses");
        // 2024-02-29T21:59:59Z, the mtime docker save gave this image's members.
        assert_eq!(time.chtimes_mtime(), 1_709_243_999);
        let time = GoTime::parse_rfc3339("2026-11-23T05:06:17.642663095Z").expect("parses");
        assert_eq!(time.chtimes_mtime(), 1_795_410_377);
    }

    #[test]
    fn chtimes_clamps_to_the_epoch() {
        assert_eq!(GoTime::ZERO.chtimes_mtime(), 0);
        assert_eq!(GoTime::ZERO.to_rfc3339_nano(), "0001-01-01T00:00:00Z");
        let early = GoTime::parse_rfc3339("1969-12-31T23:59:59Z").expect("parses");
        assert_eq!(early.chtimes_mtime(), 0);
        let late = GoTime::parse_rfc3339("2262-04-11T23:47:16.854775808Z").expect("parses");
        assert_eq!(late.chtimes_mtime(), 0);
        let last = GoTime::parse_rfc3339("2262-04-11T23:47:16.854775807Z").expect("parses");
        assert_eq!(last.chtimes_mtime(), MAX_CHTIMES_SECS);
    }

    #[test]
    fn invalid_times_are_refused() {
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(GoTime::parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn civil_conversions_agree() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1, 1, 1) * SECS_PER_DAY, GO_ZERO_TIME_UNIX);
    }
}
