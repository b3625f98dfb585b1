//! Digests, ChainIDs, random ids, link ids and Go-style timestamps (format.md §3.1, §4.1).

use std::time::SystemTime;

use crate::{Error, Result};

/// `sha256:` + hex of sha256(bytes).
pub fn sha256_digest(bytes: &[u8]) -> String {
    gocompat::digest::Digest::of(bytes).to_string()
}

/// ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)) (format.md §3.1): the hashed text is both full
/// digest strings, `sha256:` prefixes included, joined by one space. The bottom layer's ChainID is
/// its DiffID.
pub fn chain_id(parent_chain: Option<&str>, diff_id: &str) -> String {
    match parent_chain {
        None => diff_id.to_string(),
        Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// ChainIDs of a whole diff_id list, bottom first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    gocompat::digest::chain_ids(diff_ids)
}

/// 32 random bytes as 64 lower-case hex, regenerated while the first 12 chars are all digits (so
/// that a short id is never mistaken for a number, as Docker's stringid does).
pub fn random_id() -> Result<String> {
    loop {
        let id = random_hex(32)?;
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// `n_bytes` random bytes as lower-case hex.
pub(crate) fn random_hex(n_bytes: usize) -> Result<String> {
    Ok(hex(&random_bytes(n_bytes)?))
}

fn random_bytes(n_bytes: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; n_bytes];
    syscompat::fill_random(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(bytes)
}

/// Length of a link id: Docker reads `(26*5+7)/8` = 17 random bytes, base32-encodes them and keeps
/// the first 26 characters (daemon/graphdriver/overlay2/randomid.go, `idLength = 26`), so that 128
/// `l/<LID>` entries fit in one page of mount data.
pub(crate) const LINK_ID_LEN: usize = 26;

/// A new `l/` link id: RFC 4648 base32 (A–Z, 2–7) of 17 random bytes, first 26 characters.
pub(crate) fn random_link_id() -> Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = random_bytes(17)?;
    let mut out = String::with_capacity(LINK_ID_LEN);
    let mut buffer: u32 = 0;
    let mut n_bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        n_bits += 8;
        while n_bits >= 5 && out.len() < LINK_ID_LEN {
            n_bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> n_bits) & 31) as usize]));
        }
    }
    Ok(out)
}

pub(crate) use gocompat::digest::{hex, is_sha256_hex as is_hex64};

/// `sha256:<64 hex>`.
pub(crate) fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(is_hex64)
}

/// The hex part of a `sha256:<hex>` digest (or of bare hex), validated.
pub(crate) fn digest_hex<'a>(what: &'static str, text: &'a str) -> Result<&'a str> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if is_hex64(hex) {
        Ok(hex)
    } else {
        Err(Error::InvalidId {
            what,
            value: text.to_string(),
        })
    }
}

/// `Ok` when `valid`, else [`Error::InvalidId`] naming `what` and `value`.
pub(crate) fn check_id(valid: bool, what: &'static str, value: &str) -> Result<()> {
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what,
            value: value.to_string(),
        })
    }
}

/// Layer dir ids Docker accepts in mounts entries: `^[a-f0-9]{64}(-init)?$`.
pub(crate) fn is_layer_dir_id(id: &str) -> bool {
    is_hex64(id.strip_suffix("-init").unwrap_or(id))
}

/// A `lower` entry `l/<LID>`.
pub(crate) fn is_lower_entry(entry: &str) -> bool {
    entry.strip_prefix("l/").is_some_and(|lid| {
        !lid.is_empty() && lid.len() <= 64 && lid.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Go `time.Now().UTC().Format(time.RFC3339Nano)`.
pub fn now_rfc3339_nano() -> String {
    rfc3339_nano(SystemTime::now())
}

/// RFC 3339 in UTC with nanoseconds, trailing zeros of the fraction trimmed, as Go formats it.
pub fn rfc3339_nano(time: SystemTime) -> String {
    gocompat::time::GoTime::from_system_time(time).to_rfc3339_nano()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn chain_id_hashes_prefixed_strings() {
        // sha256 of the 143-byte text "sha256:<64 a> sha256:<64 b>", computed with sha256sum.
        let parent = format!("sha256:{}", "a".repeat(64));
        let diff = format!("sha256:{}", "b".repeat(64));
        let expected = {
            let out = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .map(|mut stdin| stdin.write_all(format!("{parent} {diff}").as_bytes()));
                    child.wait_with_output()
                })
                .expect("sha256sum");
            format!("sha256:{}", &String::from_utf8_lossy(&out.stdout)[..64])
        };
        assert_eq!(chain_id(Some(&parent), &diff), expected);
        assert_eq!(chain_id(None, &diff), diff);
        assert_eq!(
            chain_ids(&[parent.clone(), diff.clone()]),
            vec![parent, expected]
        );
    }

    #[test]
    fn chain_ids_match_docker_layerdb() {
        // Docker-written fixtures: the commit image's config names three diff_ids, and the layerdb
        // entry of its third layer records the ChainID of the first two as `parent` and the third
        // diff_id as `diff`.
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{data}/image-config-commit.json")).expect("config"),
        )
        .expect("json");
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .iter()
            .map(|v| v.as_str().expect("string").to_string())
            .collect();
        let parent =
            std::fs::read_to_string(format!("{data}/layerdb-commit-entry/parent")).expect("parent");
        let diff =
            std::fs::read_to_string(format!("{data}/layerdb-commit-entry/diff")).expect("diff");
        let chain = chain_ids(&diff_ids);
        assert_eq!(chain[1], parent);
        assert_eq!(diff_ids[2], diff);
        assert_eq!(chain[0], diff_ids[0]);
    }

    #[test]
    fn random_ids_have_docker_shape() {
        let id = random_id().expect("id");
        assert!(is_hex64(&id));
        assert!(!id[..12].bytes().all(|b| b.is_ascii_digit()));
        let lid = random_link_id().expect("lid");
        assert_eq!(lid.len(), 26);
        assert!(
            lid.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{lid}"
        );
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        // 1795387152 is 2026-11-22T22:39:12Z (`date -u -d @1795387152`).
        let time = UNIX_EPOCH + Duration::new(1_795_387_152, 521_354_740);
        assert_eq!(rfc3339_nano(time), "2026-11-22T22:39:12.52135474Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::from_secs(1_795_387_152)),
            "2026-11-22T22:39:12Z"
        );
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
