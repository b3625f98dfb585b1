//! Human output as the docker CLI prints it: sizes, ages, tables, error chains.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image_archive::write::{civil_from_days, days_from_civil};

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

/// The docker CLI's tabwriter settings: a column is as wide as its widest cell plus 3 spaces, and
/// at least 10 (docker/cli `formatter` uses `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`).
const TABLE_PADDING: usize = 3;
const TABLE_MIN_WIDTH: usize = 10;

/// Prints rows aligned like Go's tabwriter with the docker CLI's settings.
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
                let width = (widths[idx] + TABLE_PADDING).max(TABLE_MIN_WIDTH);
                let pad = width - cell.chars().count();
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

/// docker/cli `TruncateID`: the part after the algorithm (`sha256:`) cut to 12 characters.
pub fn truncate_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, hex)| hex);
    hex.get(..12).unwrap_or(hex)
}

/// docker/cli `formatter.Ellipsis`: at most `max_width` display columns, the last one `…` when the
/// text is cut; East Asian wide and fullwidth characters take two columns.
pub fn ellipsis(text: &str, max_width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if max_width == 0 {
        return String::new();
    }
    if max_width == 1 {
        return chars.first().map(char::to_string).unwrap_or_default();
    }
    if text.is_ascii() {
        if chars.len() <= max_width {
            return text.to_string();
        }
        return format!("{}…", chars[..max_width - 1].iter().collect::<String>());
    }
    let mut ends = Vec::with_capacity(chars.len());
    let mut total = 0;
    for c in &chars {
        total += display_width(*c);
        ends.push(total);
    }
    if total <= max_width {
        return text.to_string();
    }
    // The longest prefix that leaves one column for the ellipsis; like docker/cli, a text whose
    // first character is already too wide stays as it is.
    for idx in 0..chars.len().saturating_sub(1) {
        if ends[idx] < max_width && ends[idx + 1] >= max_width {
            return format!("{}…", chars[..=idx].iter().collect::<String>());
        }
    }
    text.to_string()
}

/// Display columns of a character as golang.org/x/text/width counts them for docker/cli: two for
/// the East Asian wide and fullwidth ranges, else one.
fn display_width(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x2FFFD
        | 0x30000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

/// Go's `strconv.Quote`: double quotes, Go's backslash escapes for quotes, backslashes and
/// control characters, `\u` escapes for other characters Go does not print (format characters,
/// spaces other than U+0020); everything else as it is.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if !go_is_print(c) => {
                if u32::from(c) <= 0xFFFF {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    out.push_str(&format!("\\U{:08x}", u32::from(c)));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` beyond ASCII: control characters, spaces other
/// than U+0020 and the common format characters are not printed as they are.
fn go_is_print(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(u32::from(c),
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
            | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF))
}

/// Go's `text/tabwriter` as the docker CLI sets it up (`NewWriter(out, 10, 1, 3, ' ', 0)`) applied
/// to `text`: cells are tab-terminated, the text after a line's last tab is not part of a column;
/// a column block is a run of consecutive lines that have that column, its width the widest cell
/// (in characters) plus `padding`, at least `min_width`; every cell of a block is padded with
/// spaces to that width, empty cells and trailing ones included.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split('\n')
        .map(|line| line.split('\t').collect())
        .collect();
    let mut writer = TabWriter {
        lines: &lines,
        min_width,
        padding,
        widths: Vec::new(),
        out: String::with_capacity(text.len() * 2),
    };
    writer.format(0, lines.len());
    writer.out
}

/// The state of one [`tabwrite`] run (Go's `tabwriter.Writer.format` and `writeLines`).
struct TabWriter<'a> {
    lines: &'a [Vec<&'a str>],
    min_width: usize,
    padding: usize,
    /// The widths of the columns of the enclosing blocks, leftmost first.
    widths: Vec<usize>,
    out: String,
}

impl TabWriter<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // The last cell of a line is not tab-terminated and belongs to no column.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for idx in line0..line1 {
            let line = &self.lines[idx];
            for (column, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(width) = self.widths.get(column) {
                    let n_pad = width.saturating_sub(cell.chars().count());
                    self.out.extend(std::iter::repeat_n(' ', n_pad));
                }
            }
            // The text after the last newline has none of its own.
            if idx + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
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
        // Docker's minimum column width of 10 applies before the 3 spaces of padding.
        assert_eq!(table(&rows), "A         BB\nCCC       D\n");
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

    #[test]
    fn ellipsis_and_ids_like_docker_cli() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abcd", 4), "abcd");
        // Wide characters take two columns: 日本 fills four, so 語 does not fit with the ellipsis.
        assert_eq!(ellipsis("日本語", 5), "日本…");
        assert_eq!(ellipsis("日本語", 6), "日本語");
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("<missing>"), "<missing>");
        assert_eq!(go_quote("a\"b\\c\n\u{200b}…"), "\"a\\\"b\\\\c\\n\\u200b…\"");
    }

    #[test]
    fn tabwrite_pads_column_blocks_like_go() {
        // "longer cell" (11 characters) makes the first column 14 wide; a line without a tab ends
        // the block, so the columns after it are sized on their own (at least 10).
        let text = "a\tbb\tc\nlonger cell\td\te\nno tabs here\nx\ty\n";
        assert_eq!(
            tabwrite(text, 10, 3),
            "a             bb        c\nlonger cell   d         e\nno tabs here\nx         y\n"
        );
        // Empty cells are padded; the text after the last tab is not.
        assert_eq!(tabwrite("\tz\n", 2, 1), "  z\n");
    }
}
