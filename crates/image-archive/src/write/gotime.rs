//! Image config times as Docker's Go code sees them: `time.Time` read from RFC 3339 text and
//! written back with `RFC3339Nano`, and the file times `system.Chtimes` gives saved members.

pub use gocompat::time::{civil_from_days, days_from_civil};

/// Seconds between 0001-01-01T00:00:00Z (Go's zero `time.Time`) and the Unix epoch.
const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// The last instant whose Unix nanoseconds fit an `int64`: 2262-04-11T23:47:16.854775807Z. Docker's
/// `system.Chtimes` (moby pkg/system/chtimes.go) replaces later times, and times before the
/// epoch, by the epoch.
const MAX_CHTIMES_SECS: i64 = 9_223_372_036;
const MAX_CHTIMES_NANOS: u32 = 854_775_807;

const SECS_PER_DAY: i64 = 86_400;

/// A time as Go's `time.Time` keeps it after `UnmarshalJSON`: the instant and the UTC offset it
/// was written with (which `MarshalJSON` writes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoTime {
    /// Seconds since the Unix epoch.
    unix_secs: i64,
    nanos: u32,
    /// Offset east of UTC, in seconds; zero is written `Z`.
    offset_secs: i32,
}

impl GoTime {
    /// Go's zero time, what a config without `created` decodes to.
    pub(crate) const ZERO: GoTime = GoTime {
        unix_secs: ZERO_TIME_UNIX,
        nanos: 0,
        offset_secs: 0,
    };

    /// The Unix epoch in UTC (`time.Unix(0, 0)` on a host whose local zone is UTC).
    pub(crate) const EPOCH: GoTime = GoTime {
        unix_secs: 0,
        nanos: 0,
        offset_secs: 0,
    };

    /// Parses RFC 3339 text as Go's `time.Time.UnmarshalJSON` does: `YYYY-MM-DDTHH:MM:SS`, an
    /// optional fraction of any length (digits past the ninth are dropped), then `Z` or `±HH:MM`.
    pub(crate) fn parse_rfc3339(text: &str) -> Option<GoTime> {
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
    pub(crate) fn to_rfc3339_nano(self) -> String {
        let local_secs = self.unix_secs + i64::from(self.offset_secs);
        let days = local_secs.div_euclid(SECS_PER_DAY);
        let secs_of_day = local_secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        );
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

    /// The whole-second mtime a file gets from Docker's `system.Chtimes(path, t, t)` and its tar
    /// writer: times before the epoch or past 2262-04-11T23:47:16.854775807Z become the epoch.
    pub(crate) fn chtimes_mtime(self) -> i64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(days_from_civil(1, 1, 1) * SECS_PER_DAY, ZERO_TIME_UNIX);
    }
}
