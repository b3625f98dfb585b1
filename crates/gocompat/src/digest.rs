//! sha256 digests as Docker writes them (`sha256:` and 64 lowercase hex digits, go-digest), the
//! three kinds a layer chain uses, and the one hex encoder.
//!
//! A [`DiffId`] is the digest of a layer's uncompressed tar, a [`ChainId`] names a layer with
//! all its parents (`ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))`, the first one being
//! the first DiffID; moby layer/layer.go `createChainIDFromParent`), a [`Digest`] any other
//! content (an image config, a compressed blob).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The algorithm prefix of every digest ovl reads or writes.
pub const SHA256_PREFIX: &str = "sha256:";

/// Lowercase hex of `bytes`, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

/// The ChainIDs of a stack of layers given as DiffID text, bottom first: the first is its DiffID
/// as written, each next one `sha256(<previous ChainID> + " " + <DiffID>)` over the text.
pub fn chain_ids<S: AsRef<str>>(diff_ids: &[S]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let diff_id = diff_id.as_ref();
        let next = match chain.last() {
            None => diff_id.to_string(),
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()).to_string(),
        };
        chain.push(next);
    }
    chain
}

/// Docker's `stringid.TruncateID` (and docker/cli's): the part after the algorithm (`sha256:`)
/// cut to 12 characters, the short id of messages and tables.
pub fn truncate_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, hex)| hex);
    hex.get(..12).unwrap_or(hex)
}

/// Whether `text` is 64 lowercase hex digits, the encoded part of a sha256 digest.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Text that is not `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sha256 digest {text:?}")]
pub struct ParseError {
    /// The text as given.
    pub text: String,
}

macro_rules! sha256_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The digest with these 32 bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> $name {
                $name(bytes)
            }

            /// The sha256 of `content`.
            pub fn of(content: &[u8]) -> $name {
                $name(Sha256::digest(content).into())
            }

            /// The 32 bytes of the digest.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 64 hex digits, without `sha256:`.
            pub fn hex(&self) -> String {
                hex(&self.0)
            }

            /// Reads the 64 hex digits alone (a directory name in `imagedb` or `layerdb`).
            pub fn from_hex(text: &str) -> Result<$name, ParseError> {
                parse_hex(text).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{SHA256_PREFIX}{}", hex(&self.0))
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            /// Reads `sha256:<64 lowercase hex digits>`.
            fn from_str(text: &str) -> Result<$name, ParseError> {
                let encoded = text.strip_prefix(SHA256_PREFIX).ok_or_else(|| ParseError {
                    text: text.to_string(),
                })?;
                parse_hex(encoded)
                    .map($name)
                    .map_err(|_| ParseError { text: text.to_string() })
            }
        }
    };
}

sha256_newtype!(
    /// The sha256 digest of some content (`sha256:…`).
    Digest
);
sha256_newtype!(
    /// The digest of a layer's uncompressed tar stream.
    DiffId
);
sha256_newtype!(
    /// The identity of a layer together with all the layers below it.
    ChainId
);

impl ChainId {
    /// The ChainIDs of a stack of layers, bottom first.
    pub fn of_stack(diff_ids: &[DiffId]) -> Vec<ChainId> {
        let mut chain: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for diff_id in diff_ids {
            let next = match chain.last() {
                None => ChainId(diff_id.0),
                Some(parent) => ChainId::of(format!("{parent} {diff_id}").as_bytes()),
            };
            chain.push(next);
        }
        chain
    }
}

fn parse_hex(text: &str) -> Result<[u8; 32], ParseError> {
    let error = || ParseError {
        text: text.to_string(),
    };
    if !is_sha256_hex(text) {
        return Err(error());
    }
    let mut bytes = [0u8; 32];
    for (idx, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let digit = |byte: u8| match byte {
            b'0'..=b'9' => byte - b'0',
            _ => byte - b'a' + 10,
        };
        bytes[idx] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sha256 of the empty string, from `sha256sum </dev/null`.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_round_trip_and_refuse_bad_text() {
        let digest = Digest::of(b"");
        assert_eq!(digest.hex(), EMPTY);
        assert_eq!(digest.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(format!("sha256:{EMPTY}").parse::<Digest>(), Ok(digest));
        assert_eq!(
            DiffId::from_hex(EMPTY).map(|d| d.hex()),
            Ok(EMPTY.to_string())
        );
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(EMPTY.parse::<Digest>().is_err());
        assert!(format!("sha256:{}", EMPTY.to_uppercase())
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha512:{EMPTY}").parse::<Digest>().is_err());
    }

    #[test]
    fn chain_ids_follow_moby() {
        let first = DiffId::of(b"a");
        let second = DiffId::of(b"b");
        let chain = ChainId::of_stack(&[first, second]);
        assert_eq!(chain[0].hex(), first.hex());
        assert_eq!(
            chain[1],
            ChainId::of(format!("{first} {second}").as_bytes())
        );
        let texts = chain_ids(&[first.to_string(), second.to_string()]);
        assert_eq!(texts, [chain[0].to_string(), chain[1].to_string()]);
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
