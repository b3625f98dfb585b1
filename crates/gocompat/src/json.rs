//! JSON bytes as Go's `encoding/json` writes them, so that files hashed by Docker (image configs,
//! tar-split records) come out identical.
//!
//! Go (1.19, the toolchain Docker 20.10 was built with) differs from serde_json's compact output only
//! in string escaping: it HTML-escapes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (unless an
//! encoder turns that off with `SetEscapeHTML(false)`, as docker/cli's `json` template function
//! does; [`Options::escape_html`]), escapes
//! U+2028 and U+2029 as `\u2028` and `\u2029`, and writes the control characters backspace and form
//! feed as `\u0008` and `\u000c` rather than `\b` and `\f`. Key order is the caller's business:
//! Go writes struct fields in declaration order and map keys sorted.
use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// How the encoder is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Escape `<`, `>` and `&` (Go's default, `json.Marshal`); `false` is
    /// `Encoder.SetEscapeHTML(false)`.
    pub escape_html: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { escape_html: true }
    }
}

/// Serializes `value` compactly as `json.Marshal` does.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    to_vec_with(value, Options::default())
}

/// Serializes `value` compactly with Go's escaping rules as `options` set them.
pub fn to_vec_with<T: Serialize + ?Sized>(
    value: &T,
    options: Options,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, GoFormatter::new(options));
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// Serializes `value` compactly as `json.Marshal` does into `writer`.
pub fn to_writer<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, GoFormatter::default());
    value.serialize(&mut serializer)
}

/// Writes `text` as a Go JSON string literal (HTML characters escaped), quotes included.
pub fn write_string<W: Write>(writer: &mut W, text: &str) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, GoFormatter::default());
    text.serialize(&mut serializer).map_err(io::Error::other)
}

/// A compact formatter with Go's string escapes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFormatter {
    options: Options,
}

impl GoFormatter {
    /// A formatter with the escapes `options` ask for.
    pub fn new(options: Options) -> GoFormatter {
        GoFormatter { options }
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (idx, ch) in fragment.char_indices() {
            let escape: &[u8] = match ch {
                '<' if self.options.escape_html => b"\\u003c",
                '>' if self.options.escape_html => b"\\u003e",
                '&' if self.options.escape_html => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..idx])?;
            writer.write_all(escape)?;
            start = idx + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let bytes: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Solidus => b"/",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let escaped = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ];
                return writer.write_all(&escaped);
            }
        };
        writer.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        // Expected bytes written by hand from Go's encoding/json rules (encode.go, Go 1.19).
        let text = "a<b>&c\u{2028}\u{2029}\"\\\n\r\t\u{8}\u{c}\u{1}/é";
        let got = to_vec(&text).expect("serialize");
        assert_eq!(
            String::from_utf8(got).expect("utf8"),
            r#""a\u003cb\u003e\u0026c\u2028\u2029\"\\\n\r\t\u0008\u000c\u0001/é""#
        );
    }

    #[test]
    fn html_escapes_can_be_turned_off() {
        let options = Options { escape_html: false };
        let got = to_vec_with(&"<a&b>\u{2028}", options).expect("serialize");
        assert_eq!(got, br#""<a&b>\u2028""#);
    }

    #[test]
    fn compact_struct_order_and_nulls() {
        #[derive(Serialize)]
        struct Sample {
            b: u32,
            a: Option<Vec<String>>,
        }
        let got = to_vec(&Sample { b: 1, a: None }).expect("serialize");
        assert_eq!(got, br#"{"b":1,"a":null}"#);
    }
}
