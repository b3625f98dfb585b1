//! imagedb (format.md §8.1, §8.2): image configs stored under their sha256, and their metadata.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::ids;
use crate::{DataRoot, Error, ImageConfig, Reference, Result};

impl DataRoot {
    fn content_path(&self, image_id: &str) -> Result<PathBuf> {
        let hex = ids::digest_hex("image id", image_id)?;
        Ok(self.image_dir().join("imagedb/content/sha256").join(hex))
    }

    /// `imagedb/metadata/sha256/<hex>`; where it exists it must be a real directory.
    fn metadata_dir(&self, image_id: &str) -> Result<PathBuf> {
        let hex = ids::digest_hex("image id", image_id)?;
        let dir = self.image_dir().join("imagedb/metadata/sha256").join(hex);
        fsutil::real_dir(&dir)?;
        Ok(dir)
    }

    /// Stores config bytes verbatim (0600, atomic); returns `sha256:<hex>`.
    pub fn put_image(&self, config: &[u8]) -> Result<String> {
        self.publish_image(config, None, None)
    }

    /// Stores a new image as [`DataRoot::put_image`], [`DataRoot::set_image_parent`] (with
    /// `parent`), [`DataRoot::add_reference`] and [`DataRoot::set_last_updated`] (with
    /// `reference`) one after another would, in that order, but with the journal commits of
    /// about two instead of eight: every file is written to its temp name, all are synced
    /// together, renamed in that order and their directories synced once (a crash leaves the
    /// first few in place, as it would leave the first few calls done). Returns the image id.
    pub fn publish_image(
        &self,
        config: &[u8],
        parent: Option<&str>,
        reference: Option<&Reference>,
    ) -> Result<String> {
        let image_id = ids::sha256_digest(config);
        let content = self.content_path(&image_id)?;
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        if fsutil::read_bytes_optional(&content)?.is_none_or(|existing| existing != config) {
            files.push((content, config.to_vec()));
        }
        if parent.is_some() || reference.is_some() {
            let dir = self.metadata_dir(&image_id)?;
            fsutil::create_dir_mode(&dir, 0o700)?;
            if let Some(parent_id) = parent {
                let parent_hex = ids::digest_hex("parent image id", parent_id)?;
                self.image_config_bytes(parent_id)?;
                files.push((
                    dir.join("parent"),
                    format!("sha256:{parent_hex}").into_bytes(),
                ));
            }
            if let Some(reference) = reference {
                let repositories = self.repositories_json_with(reference, &image_id)?;
                files.push((self.repositories_path(), repositories));
                files.push((
                    dir.join("lastUpdated"),
                    ids::now_rfc3339_nano().into_bytes(),
                ));
            }
        }
        let staged: Vec<(&Path, &[u8], u32)> = files
            .iter()
            .map(|(path, bytes)| (path.as_path(), bytes.as_slice(), 0o600))
            .collect();
        fsutil::commit_together(fsutil::stage_atomic(&staged)?)?;
        Ok(image_id)
    }

    /// Reads and re-verifies the config bytes, as dockerd does on every read.
    pub fn image_config_bytes(&self, image_id: &str) -> Result<Vec<u8>> {
        let path = self.content_path(image_id)?;
        let Some(bytes) = fsutil::read_bytes_optional(&path)? else {
            return Err(Error::NoSuchImage {
                image_id: image_id.to_string(),
            });
        };
        let actual = ids::sha256_digest(&bytes);
        if actual.strip_prefix("sha256:") != Some(ids::digest_hex("image id", image_id)?) {
            return Err(Error::ImageVerify {
                image_id: image_id.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn image_config(&self, image_id: &str) -> Result<ImageConfig> {
        let bytes = self.image_config_bytes(image_id)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::InvalidImage {
            image_id: image_id.to_string(),
            source,
        })
    }

    /// All image ids (`sha256:<hex>`), sorted; names that are not 64 hex (temp files) are ignored.
    pub fn images(&self) -> Result<Vec<String>> {
        let dir = self.image_dir().join("imagedb/content/sha256");
        let ids: Vec<String> = fsutil::hex64_entries(&dir)?
            .into_iter()
            .map(|(name, _)| format!("sha256:{name}"))
            .collect();
        Ok(ids)
    }

    /// Writes `metadata/sha256/<image>/parent` = `sha256:<parent>` (the parent must be stored too).
    pub fn set_image_parent(&self, image_id: &str, parent_id: &str) -> Result<()> {
        let parent_hex = ids::digest_hex("parent image id", parent_id)?;
        self.image_config_bytes(parent_id)?;
        self.write_metadata(image_id, "parent", &format!("sha256:{parent_hex}"))
    }

    /// Records the tagging time, as Docker does when a tag is set through its image service.
    pub fn set_last_updated(&self, image_id: &str) -> Result<()> {
        self.write_metadata(image_id, "lastUpdated", &ids::now_rfc3339_nano())
    }

    /// The `metadata/parent` image id, if any.
    pub fn image_parent(&self, image_id: &str) -> Result<Option<String>> {
        let path = self.metadata_dir(image_id)?.join("parent");
        Ok(fsutil::read_optional(&path)?
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty()))
    }

    fn write_metadata(&self, image_id: &str, key: &str, value: &str) -> Result<()> {
        // Docker requires the content to exist (and verify) before writing metadata.
        self.image_config_bytes(image_id)?;
        let dir = self.metadata_dir(image_id)?;
        fsutil::create_dir_mode(&dir, 0o700)?;
        fsutil::write_atomic(&dir.join(key), value.as_bytes(), 0o600)
    }

    /// Removes the config, its metadata dir and the `parent` files of children that point at it.
    pub fn delete_image(&self, image_id: &str) -> Result<()> {
        let content = self.content_path(image_id)?;
        let metadata = self.metadata_dir(image_id)?;
        let full_id = format!("sha256:{}", ids::digest_hex("image id", image_id)?);
        let metadata_root = self.image_dir().join("imagedb/metadata/sha256");
        if let Ok(entries) = fs::read_dir(&metadata_root) {
            for entry in entries.flatten() {
                // A symlink there is never followed (`ovl fsck` reports it).
                if !entry.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                    continue;
                }
                let parent_file = entry.path().join("parent");
                if fsutil::read_optional(&parent_file)?.is_some_and(|text| text.trim() == full_id) {
                    fsutil::remove_file(&parent_file)?;
                }
            }
        }
        fsutil::remove_file(&content)?;
        fsutil::remove_tree(&metadata)
    }
}
