//! Human output as the docker CLI prints it: sizes, ages, tables, error chains. The Go and
//! go-units rules themselves live in `gocompat`; this module names them for the commands.

pub use gocompat::digest::truncate_id;
pub use gocompat::quote::go_quote;
pub use gocompat::tabwriter::table;
pub use gocompat::time::{
    ago_unix, go_rfc3339_utc, go_time_string_utc, parse_rfc3339, unix_seconds, GO_ZERO_TIME_UNIX,
};
pub use gocompat::units::{go_units_human_size, human_size};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsis_and_ids_like_docker_cli() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abcd", 4), "abcd");
        // Wide characters take two columns: 日本 fills four, so 語 does not fit with the ellipsis.
        assert_eq!(ellipsis("日本語", 5), "日本…");
        assert_eq!(ellipsis("日本語", 6), "日本語");
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("<missing>"), "<missing>");
    }
}
