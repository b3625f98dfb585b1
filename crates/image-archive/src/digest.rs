//! Digest strings and the limits on JSON documents.

use sha2::{Digest as _, Sha256};

/// The largest manifest, index or config JSON document read into memory (64 MiB). Real configs are
/// a few kilobytes; the limit only keeps a hostile archive from exhausting memory.
pub const MAX_JSON_SIZE: u64 = 64 << 20;

/// Returns the hex part of `sha256:<64 lowercase hex>`, or `None` for anything else.
pub(crate) fn parse_sha256(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    is_sha256_hex(hex).then_some(hex)
}

pub(crate) use gocompat::digest::is_sha256_hex;

/// Formats a finished sha256 hash as `sha256:<hex>`.
pub(crate) fn format_sha256(hash: &[u8]) -> String {
    format!(
        "{}{}",
        gocompat::digest::SHA256_PREFIX,
        gocompat::digest::hex(hash)
    )
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format_sha256(&Sha256::digest(bytes))
}

/// The layout path of a blob, built from an already validated hex digest.
pub(crate) fn blob_member(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sha256_accepts_only_lowercase_64_hex() {
        let hex = "a".repeat(64);
        assert_eq!(parse_sha256(&format!("sha256:{hex}")), Some(hex.as_str()));
        assert_eq!(parse_sha256(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(parse_sha256(&format!("sha256:{}", "a".repeat(63))), None);
        assert_eq!(parse_sha256(&format!("sha512:{hex}")), None);
        assert_eq!(parse_sha256(&format!("sha256:../{}", "a".repeat(61))), None);
    }

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
