//! `image/overlay2/distribution/` (format.md §8.4): which compressed blob a layer came from, so
//! that a later push can skip or mount blobs the registry already has, and a later pull can
//! recognise a blob it already unpacked. dockerd reads and writes the same files.

use std::path::PathBuf;

use crate::fsutil;
use crate::{DataRoot, Error, Result};

/// The most entries `v2metadata-by-diffid` keeps per layer (moby's metadata service); the
/// oldest are dropped.
const MAX_V2_METADATA: usize = 50;

/// One blob a layer is known as: its digest and the repository it was pulled from or pushed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct V2Metadata {
    #[serde(rename = "Digest")]
    pub digest: String,
    /// Fully qualified: `docker.io/library/busybox`, `127.0.0.1:5000/app`.
    #[serde(rename = "SourceRepository")]
    pub source_repository: String,
    /// Set by dockerd on push (keyed by the credentials); empty for pulls.
    #[serde(rename = "HMAC", default)]
    pub hmac: String,
}

impl DataRoot {
    fn distribution_dir(&self) -> PathBuf {
        self.image_dir().join("distribution")
    }

    /// The file of `key` (`sha256:<hex>`) in namespace `namespace`; `None` for a key that is
    /// not a sha256 digest, which never names a file.
    fn distribution_file(&self, namespace: &str, key: &str) -> Option<PathBuf> {
        let hex = key
            .strip_prefix("sha256:")
            .filter(|hex| crate::ids::is_hex64(hex))?;
        Some(
            self.distribution_dir()
                .join(namespace)
                .join("sha256")
                .join(hex),
        )
    }

    /// Writes one record: base dir 0700, namespace dirs 0755, the file 0644, atomic, no newline.
    fn write_distribution(&self, namespace: &str, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .distribution_file(namespace, key)
            .ok_or_else(|| Error::InvalidId {
                what: "digest",
                value: key.to_string(),
            })?;
        let base = self.distribution_dir();
        fsutil::create_dir_mode(&base, 0o700)?;
        if let Some(dir) = path.parent() {
            fsutil::create_dir_all_mode(dir, 0o755)?;
        }
        fsutil::write_atomic(&path, bytes, 0o644)
    }

    /// Records that the compressed blob `blob_digest` holds the layer `diff_id`.
    pub fn set_diffid_by_digest(&self, blob_digest: &str, diff_id: &str) -> Result<()> {
        self.write_distribution("diffid-by-digest", blob_digest, diff_id.as_bytes())
    }

    /// The DiffID recorded for a compressed blob, if any.
    pub fn diffid_by_digest(&self, blob_digest: &str) -> Result<Option<String>> {
        match self.distribution_file("diffid-by-digest", blob_digest) {
            Some(path) => Ok(fsutil::read_optional(&path)?.map(|text| text.trim().to_string())),
            None => Ok(None),
        }
    }

    /// The blobs recorded for a layer, oldest first. An unreadable record counts as none: it
    /// only ever saves work.
    pub fn v2metadata(&self, diff_id: &str) -> Result<Vec<V2Metadata>> {
        let Some(path) = self.distribution_file("v2metadata-by-diffid", diff_id) else {
            return Ok(Vec::new());
        };
        Ok(fsutil::read_optional(&path)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// Adds a blob to a layer's records, replacing an entry with the same digest and
    /// repository and keeping the newest 50, as moby's metadata service does.
    pub fn add_v2metadata(&self, diff_id: &str, entry: V2Metadata) -> Result<()> {
        let mut entries = self.v2metadata(diff_id)?;
        entries.retain(|old| {
            !(old.digest == entry.digest && old.source_repository == entry.source_repository)
        });
        entries.push(entry);
        if entries.len() > MAX_V2_METADATA {
            let excess = entries.len() - MAX_V2_METADATA;
            entries.drain(..excess);
        }
        let bytes = crate::go_json(&entries)?;
        self.write_distribution("v2metadata-by-diffid", diff_id, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_as_dockerd_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open_or_create(dir.path()).unwrap();
        let blob = format!("sha256:{}", "a".repeat(64));
        let diff_id = format!("sha256:{}", "b".repeat(64));
        root.set_diffid_by_digest(&blob, &diff_id).unwrap();
        let base = dir.path().join("image/overlay2/distribution");
        let file = base.join("diffid-by-digest/sha256").join("a".repeat(64));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), diff_id);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(&base.join("diffid-by-digest")), 0o755);
        assert_eq!(mode(&file), 0o644);
        assert_eq!(root.diffid_by_digest(&blob).unwrap(), Some(diff_id.clone()));
        for n in 0..52 {
            root.add_v2metadata(
                &diff_id,
                V2Metadata {
                    digest: blob.clone(),
                    source_repository: format!("127.0.0.1:5000/r{n}"),
                    hmac: String::new(),
                },
            )
            .unwrap();
        }
        let entries = root.v2metadata(&diff_id).unwrap();
        assert_eq!(entries.len(), 50);
        assert_eq!(entries[0].source_repository, "127.0.0.1:5000/r2");
        let text = std::fs::read_to_string(
            base.join("v2metadata-by-diffid/sha256")
                .join("b".repeat(64)),
        )
        .unwrap();
        assert!(text.starts_with(&format!(
            r#"[{{"Digest":"{blob}","SourceRepository":"127.0.0.1:5000/r2","HMAC":""}},"#
        )));
        assert_eq!(root.diffid_by_digest("sha256:../x").unwrap(), None);
    }
}
