//! overlay2 layer directories (spec §2.1, §2.3, §2.4): `H/<id>/{diff,link,lower,work,committed}`
//! and the relative `H/l/<LID> -> ../<id>/diff` links.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::fsutil::{self, io_error};
use crate::ids::{self, is_layer_dir_id, is_lower_entry};
use crate::{DataRoot, Error, Result};

/// The most lower entries a layer dir may list: the kernel's overlay stack limit (OVL_MAX_STACK = 500
/// in fs/overlayfs/params.h). Docker's driver stops at 128 (`maxDepth` in moby
/// daemon/graphdriver/overlay2/overlay.go, what fits in one page of relative `l/` paths); ovl mounts
/// deeper stacks with `lowerdir+`.
pub const MAX_LOWERS: usize = 500;

impl DataRoot {
    /// `H/<id>`.
    pub fn overlay_dir(&self, id: &str) -> PathBuf {
        self.overlay_home().join(id)
    }

    /// Spec §2.1 Create(id, parent): diff/, link, l/<LID>, and for a parent: work/, lower, parent's committed.
    /// A failure removes what this call created.
    pub fn create_overlay_dir(&self, id: &str, parent_id: Option<&str>) -> Result<()> {
        check_layer_dir_id(id)?;
        if let Some(parent) = parent_id {
            check_layer_dir_id(parent)?;
        }
        let dir = self.overlay_dir(id);
        if !fsutil::create_dir_mode(&dir, 0o710)? {
            return Err(Error::Io {
                op: "creating layer dir",
                path: dir,
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let result = self.fill_overlay_dir(id, parent_id);
        if result.is_err() {
            let _ = self.remove_overlay_dir(id);
        }
        result
    }

    fn fill_overlay_dir(&self, id: &str, parent_id: Option<&str>) -> Result<()> {
        let dir = self.overlay_dir(id);
        fsutil::create_dir_mode(&dir.join("diff"), 0o755)?;
        let link_id = ids::random_link_id()?;
        let link_path = self.overlay_home().join("l").join(&link_id);
        std::os::unix::fs::symlink(format!("../{id}/diff"), &link_path)
            .map_err(io_error("creating link", &link_path))?;
        fsutil::write_new(&dir.join("link"), link_id.as_bytes(), 0o644, false)?;
        let Some(parent) = parent_id else {
            return Ok(());
        };
        let parent_dir = self.overlay_dir(parent);
        let parent_link = fs::read_to_string(parent_dir.join("link"))
            .map_err(io_error("reading link of", &parent_dir))?;
        let parent_link = parent_link.trim();
        let mut lower = format!("l/{parent_link}");
        if !is_lower_entry(&lower) {
            return Err(Error::InvalidId {
                what: "link id",
                value: parent_link.to_string(),
            });
        }
        let mut n_lowers = 1;
        if let Some(parent_lower) = fsutil::read_optional(&parent_dir.join("lower"))? {
            let parent_lower = parent_lower.trim();
            n_lowers += parent_lower.split(':').count();
            lower.push(':');
            lower.push_str(parent_lower);
        }
        if n_lowers > MAX_LOWERS {
            return Err(Error::MaxDepth {
                parent: parent.to_string(),
                depth: n_lowers,
            });
        }
        fsutil::create_dir_mode(&dir.join("work"), 0o700)?;
        let committed = parent_dir.join("committed");
        if !committed.exists() {
            fsutil::write_new(&committed, b"", 0o600, false)?;
        }
        fsutil::write_new(&dir.join("lower"), lower.as_bytes(), 0o644, false)
    }

    /// Spec §2.4: removes `l/<LID>` and `H/<id>`. Refuses when something is mounted inside it.
    pub fn remove_overlay_dir(&self, id: &str) -> Result<()> {
        check_layer_dir_id(id)?;
        let dir = self.overlay_dir(id);
        let Ok(meta) = fs::symlink_metadata(&dir) else {
            return Ok(());
        };
        for sub in ["merged", "diff"] {
            if let Ok(sub_meta) = fs::symlink_metadata(dir.join(sub)) {
                if sub_meta.dev() != meta.dev() {
                    return Err(Error::Mounted {
                        path: dir.join(sub),
                    });
                }
            }
        }
        if let Some(link_id) = fsutil::read_optional(&dir.join("link"))? {
            let link_id = link_id.trim();
            if !link_id.is_empty() && link_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                fsutil::remove_file(&self.overlay_home().join("l").join(link_id))?;
            }
        }
        fsutil::remove_tree(&dir)
    }

    /// Re-creates `H/l/<LID> -> ../<id>/diff` for a layer dir whose `link` file names a link that
    /// is gone; returns whether it did. A link that exists is left as it is.
    pub fn restore_link(&self, id: &str) -> Result<bool> {
        check_layer_dir_id(id)?;
        let dir = self.overlay_dir(id);
        let Some(link_id) = fsutil::read_optional(&dir.join("link"))? else {
            return Ok(false);
        };
        let link_id = link_id.trim();
        if !is_lower_entry(&format!("l/{link_id}")) || !dir.join("diff").is_dir() {
            return Ok(false);
        }
        let link_path = self.overlay_home().join("l").join(link_id);
        if fs::symlink_metadata(&link_path).is_ok() {
            return Ok(false);
        }
        std::os::unix::fs::symlink(format!("../{id}/diff"), &link_path)
            .map_err(io_error("creating link", &link_path))?;
        Ok(true)
    }

    /// The `lower` entries of `H/<id>` (`l/<LID>`, nearest first); empty without a lower file.
    pub fn lower_entries(&self, id: &str) -> Result<Vec<String>> {
        check_layer_dir_id(id)?;
        let path = self.overlay_dir(id).join("lower");
        let Some(text) = fsutil::read_optional(&path)? else {
            return Ok(Vec::new());
        };
        let entries: Vec<String> = text.trim().split(':').map(str::to_string).collect();
        if let Some(bad) = entries.iter().find(|entry| !is_lower_entry(entry)) {
            return Err(Error::InvalidId {
                what: "lower entry",
                value: format!("{bad} in {}", path.display()),
            });
        }
        Ok(entries)
    }

    /// Spec §2.3 GetMetadata: LowerDir (resolved diff dirs), MergedDir, UpperDir, WorkDir.
    pub fn graph_driver_data(&self, id: &str) -> Result<Map<String, Value>> {
        check_layer_dir_id(id)?;
        let home = self.overlay_home();
        let dir = self.overlay_dir(id);
        let mut data = Map::new();
        if dir.join("lower").exists() {
            let mut resolved = Vec::new();
            for entry in self.lower_entries(id)? {
                let link = home.join(&entry);
                let target = fs::read_link(&link).map_err(io_error("reading link", &link))?;
                // Like Docker: join the target (`../<id>/diff`) with `H/l`, then clean lexically.
                resolved.push(
                    clean_path(&home.join("l").join(target))
                        .display()
                        .to_string(),
                );
            }
            data.insert("LowerDir".into(), Value::String(resolved.join(":")));
        }
        data.insert(
            "MergedDir".into(),
            Value::String(dir.join("merged").display().to_string()),
        );
        data.insert(
            "UpperDir".into(),
            Value::String(dir.join("diff").display().to_string()),
        );
        data.insert(
            "WorkDir".into(),
            Value::String(dir.join("work").display().to_string()),
        );
        Ok(data)
    }
}

/// Lexical cleaning like Go's `filepath.Clean` for absolute paths: drops `.` and empty components
/// and resolves `..` against the preceding component, without touching the file system.
fn clean_path(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other.as_os_str()),
        }
    }
    clean
}

pub(crate) fn check_layer_dir_id(id: &str) -> Result<()> {
    if is_layer_dir_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what: "layer dir id",
            value: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go_filepath_clean() {
        let cases = [
            (
                "/var/lib/docker/overlay2/l/../abc/diff",
                "/var/lib/docker/overlay2/abc/diff",
            ),
            ("/a/l/./../../b", "/b"),
            ("/a/l//abs/../x", "/a/l/x"),
            ("/../x", "/x"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(Path::new(input)), Path::new(want), "{input}");
        }
    }
}
