//! Reading `tar-split.json.gz` streams.

use std::io::{BufRead, BufReader, Read};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use flate2::read::MultiGzDecoder;
use serde::Deserialize;

use crate::{lossy_name, Entry, Error, Result, FILE_TYPE, SEGMENT_TYPE};
use gocompat::path::clean;

/// Iterates the entries of a gzip'd tar-split stream. After the first error it yields nothing.
pub struct Unpacker<R: Read> {
    /// Go's `gzip.Reader` reads concatenated gzip members by default; so does this.
    reader: BufReader<MultiGzDecoder<R>>,
    /// The 0-based index of the next entry.
    position: u64,
    /// Cleaned names of all file entries so far.
    seen_names: crate::name_set::NameSet,
    line: Vec<u8>,
    done: bool,
}

impl<R: Read> std::fmt::Debug for Unpacker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker")
            .field("position", &self.position)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// One JSON line as Go's `storage.Entry` declares it. Unknown fields are ignored, as Go does.
#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    entry_type: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    position: Option<u64>,
}

impl<R: Read> Unpacker<R> {
    pub fn new(gz: R) -> Unpacker<R> {
        Unpacker {
            reader: BufReader::new(MultiGzDecoder::new(gz)),
            position: 0,
            seen_names: crate::name_set::NameSet::new(),
            line: Vec::with_capacity(256),
            done: false,
        }
    }

    /// The 0-based index of the next entry, i.e. the number of entries returned so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn read_entry(&mut self) -> Result<Option<Entry>> {
        let position = self.position;
        // Go's json.Decoder skips whitespace between values, so blank lines are tolerated.
        loop {
            self.line.clear();
            let n_read = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|source| Error::ReadStream { position, source })?;
            if n_read == 0 {
                return Ok(None);
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        let malformed = |reason: String| Error::MalformedEntry { position, reason };
        let raw: RawEntry =
            serde_json::from_slice(&self.line).map_err(|err| malformed(err.to_string()))?;
        if raw.position.is_some_and(|recorded| recorded != position) {
            tracing::debug!(
                position,
                recorded = raw.position,
                "tar-split entry records a different position"
            );
        }
        let payload = match raw.payload.as_deref() {
            None => None,
            Some(encoded) => Some(
                BASE64
                    .decode(encoded)
                    .map_err(|err| malformed(format!("payload is not base64: {err}")))?,
            ),
        };
        let entry = match raw.entry_type {
            SEGMENT_TYPE => Entry::Segment {
                payload: payload.unwrap_or_default(),
            },
            FILE_TYPE => {
                let name = match raw.name_raw.as_deref() {
                    Some(encoded) if !encoded.is_empty() => BASE64
                        .decode(encoded)
                        .map_err(|err| malformed(format!("name_raw is not base64: {err}")))?,
                    _ => raw.name.unwrap_or_default().into_bytes(),
                };
                let crc = match payload.as_deref() {
                    None | Some([]) => None,
                    Some(bytes) => Some(<[u8; 8]>::try_from(bytes).map_err(|_| {
                        malformed(format!(
                            "checksum of {:?} is {} bytes, expected 8",
                            lossy_name(&name),
                            bytes.len()
                        ))
                    })?),
                };
                if !self.seen_names.insert(&clean(&name)) {
                    return Err(Error::DuplicatePath {
                        name: lossy_name(&name),
                        position,
                    });
                }
                Entry::File {
                    name,
                    size: raw.size.unwrap_or(0),
                    crc,
                }
            }
            other => return Err(malformed(format!("unknown entry type {other}"))),
        };
        self.position += 1;
        Ok(Some(entry))
    }
}

impl<R: Read> Iterator for Unpacker<R> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text.as_bytes()).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn unpack(text: &str) -> Vec<Result<Entry>> {
        Unpacker::new(&gzip(text)[..]).collect()
    }

    /// The error of the item at `index`.
    fn error_at(results: Vec<Result<Entry>>, index: usize) -> Error {
        match results.into_iter().nth(index) {
            Some(Err(err)) => err,
            other => panic!("item {index} should be an error: {other:?}"),
        }
    }

    #[test]
    fn decodes_segments_files_and_raw_names() {
        let text = concat!(
            "{\"type\":2,\"payload\":\"YWJj\",\"position\":0}\n",
            "{\"type\":1,\"name\":\"bin/\",\"payload\":null,\"position\":1}\n",
            "{\"type\":1,\"name\":\"etc/x\",\"size\":5,\"payload\":\"AAECAwQFBgc=\",\"position\":2}\n",
            "{\"type\":1,\"name_raw\":\"YmFk/w==\",\"payload\":null,\"position\":3}\n",
            "{\"type\":1,\"name\":\"a\\u003cb\",\"payload\":null,\"position\":4}\n",
            "{\"type\":2,\"payload\":\"\",\"position\":5}\n",
        );
        let entries: Vec<Entry> = unpack(text)
            .into_iter()
            .collect::<Result<_>>()
            .expect("valid stream");
        assert_eq!(
            entries,
            vec![
                Entry::Segment {
                    payload: b"abc".to_vec()
                },
                Entry::File {
                    name: b"bin/".to_vec(),
                    size: 0,
                    crc: None
                },
                Entry::File {
                    name: b"etc/x".to_vec(),
                    size: 5,
                    crc: Some([0, 1, 2, 3, 4, 5, 6, 7])
                },
                Entry::File {
                    name: b"bad\xff".to_vec(),
                    size: 0,
                    crc: None
                },
                Entry::File {
                    name: b"a<b".to_vec(),
                    size: 0,
                    crc: None
                },
                Entry::Segment {
                    payload: Vec::new()
                },
            ]
        );
    }

    #[test]
    fn malformed_line_names_its_position_and_stops() {
        let text = concat!(
            "{\"type\":2,\"payload\":\"\",\"position\":0}\n",
            "{\"type\":2,\"payload\":\"\",\"position\":1}\n",
            "{\"type\":2,\"payload\":\n",
            "{\"type\":2,\"payload\":\"\",\"position\":3}\n",
        );
        let results = unpack(text);
        assert_eq!(results.len(), 3);
        let err = error_at(results, 2);
        assert!(
            matches!(err, Error::MalformedEntry { position: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("position 2"), "{err}");
    }

    #[test]
    fn bad_base64_unknown_type_and_bad_checksum_length_are_errors() {
        for (line, what) in [
            (
                "{\"type\":2,\"payload\":\"!!\",\"position\":0}\n",
                "payload",
            ),
            (
                "{\"type\":3,\"payload\":\"\",\"position\":0}\n",
                "unknown entry type 3",
            ),
            (
                "{\"type\":1,\"name\":\"x\",\"size\":1,\"payload\":\"AAE=\",\"position\":0}\n",
                "2 bytes",
            ),
            (
                "{\"type\":1,\"name\":\"x\",\"size\":-1,\"payload\":null,\"position\":0}\n",
                "position 0",
            ),
        ] {
            let err = unpack(line)
                .into_iter()
                .next()
                .expect("one item")
                .expect_err("malformed");
            assert!(
                matches!(err, Error::MalformedEntry { position: 0, .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains(what),
                "{err} should mention {what}"
            );
        }
    }

    #[test]
    fn duplicate_file_names_are_rejected() {
        let text = concat!(
            "{\"type\":1,\"name\":\"d/f\",\"payload\":null,\"position\":0}\n",
            "{\"type\":1,\"name\":\"./d/f\",\"payload\":null,\"position\":1}\n",
        );
        let err = error_at(unpack(text), 1);
        assert!(
            matches!(err, Error::DuplicatePath { position: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip_is_a_read_error() {
        let mut gz = gzip("{\"type\":2,\"payload\":\"\",\"position\":0}\n");
        gz.truncate(gz.len() - 4);
        let results: Vec<_> = Unpacker::new(&gz[..]).collect();
        assert!(
            results
                .iter()
                .any(|item| matches!(item, Err(Error::ReadStream { .. }))),
            "{results:?}"
        );
    }
}
