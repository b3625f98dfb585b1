//! What the test files of this crate share.

use diff::Change;

/// `docker diff` lines (`C /d1`) with bytes outside printable ASCII as `\xNN`, for readable
/// assertions.
pub fn lines(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| {
            let mut line = format!("{} ", change.kind.letter());
            for &byte in &change.path {
                if byte.is_ascii_graphic() && byte != b'\\' {
                    line.push(char::from(byte));
                } else {
                    line.push_str(&format!("\\x{byte:02x}"));
                }
            }
            line
        })
        .collect()
}
