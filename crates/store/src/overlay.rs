//! overlay2 layer directories (format.md §4.1, §4.3, §4.4): `H/<id>/{diff,link,lower,work,committed}`
//! and the relative `H/l/<LID> -> ../<id>/diff` links.
//!
//! A data root may be copied from another machine or crafted, so nothing here trusts its shape:
//! a layer dir and its `diff/`, `work/` and `merged/` must be real directories and its `link`,
//! `lower` and `committed` regular files ([`DataRoot::checked_overlay_dir`]), and an `l/` link
//! must be exactly `../<id>/diff` of a real layer dir ([`DataRoot::checked_lower`]). Anything
//! else is refused naming its path before anything is created, removed or mounted.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

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

    /// `H/<id>` when it exists, after checking that it and its `diff/`, `work/` and `merged/`
    /// are real directories and its `link`, `lower` and `committed` regular files (the data root's
    /// layout above it is checked when the root is opened); `None` when it does not exist. A
    /// symlink or anything else there is [`Error::NotReal`], naming the path.
    pub fn checked_overlay_dir(&self, id: &str) -> Result<Option<PathBuf>> {
        check_layer_dir_id(id)?;
        let dir = self.overlay_dir(id);
        if !fsutil::real_dir(&dir)? {
            return Ok(None);
        }
        for sub in LAYER_SUBDIRS {
            fsutil::real_dir(&dir.join(sub))?;
        }
        for file in LAYER_FILES {
            fsutil::real_file(&dir.join(file))?;
        }
        Ok(Some(dir))
    }

    /// [`DataRoot::checked_overlay_dir`] of a layer dir that must exist.
    pub fn existing_overlay_dir(&self, id: &str) -> Result<PathBuf> {
        self.checked_overlay_dir(id)?.ok_or_else(|| Error::Io {
            op: "opening layer dir",
            path: self.overlay_dir(id),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// Checks one `lower` entry of a layer for mounting: `l/<LID>` must be a symlink whose target
    /// is exactly `../<id>/diff` (relative, inside `overlay2/`, as Docker writes it) of a layer dir
    /// that is a real directory with a real `diff/` directory. Returns that `id`.
    pub fn checked_lower(&self, entry: &str) -> Result<String> {
        let link = self.overlay_home().join(entry);
        if !is_lower_entry(entry) {
            return Err(Error::InvalidId {
                what: "lower entry",
                value: entry.to_string(),
            });
        }
        // `readlink` fails with EINVAL on anything but a symlink: one call checks and reads.
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                return Err(Error::NotReal {
                    path: link,
                    expected: "symlink to ../<id>/diff",
                    found: "something else",
                })
            }
            Err(err) => return Err(io_error("reading link", &link)(err)),
        };
        let Some(id) = link_target_id(&target) else {
            return Err(Error::NotReal {
                path: link,
                expected: "symlink to ../<id>/diff inside overlay2/",
                found: "a symlink to anywhere else",
            });
        };
        // What a mount uses of a lower layer dir: the dir itself and its `diff/`, both real
        // directories (its `work/`, `merged/` and files play no part in it).
        let dir = self.overlay_dir(&id);
        let present = fsutil::real_dir(&dir)? && fsutil::real_dir(&dir.join("diff"))?;
        if !present {
            return Err(Error::Io {
                op: "opening the lower layer of",
                path: link,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        Ok(id)
    }

    /// The `lower` entries of `H/<id>` checked for mounting ([`DataRoot::checked_lower`] each).
    pub fn checked_lowers(&self, id: &str) -> Result<Vec<String>> {
        self.checked_lowers_once(id, &mut HashSet::new())
    }

    /// [`DataRoot::checked_lowers`], skipping the entries in `checked` and adding those it
    /// checks: for the several mounts of one command under the root's lock (a container's init
    /// layer, then the container), where nothing else changes the layer dirs in between.
    pub fn checked_lowers_once(
        &self,
        id: &str,
        checked: &mut HashSet<String>,
    ) -> Result<Vec<String>> {
        self.existing_overlay_dir(id)?;
        let entries = self.lower_entries(id)?;
        for entry in &entries {
            if !checked.contains(entry) {
                self.checked_lower(entry)?;
                checked.insert(entry.clone());
            }
        }
        Ok(entries)
    }

    /// format.md §4.1 Create(id, parent): diff/, link, l/<LID>, and for a parent: work/, lower, parent's committed.
    /// A failure removes what this call created.
    pub fn create_overlay_dir(&self, id: &str, parent_id: Option<&str>) -> Result<()> {
        check_layer_dir_id(id)?;
        if let Some(parent) = parent_id {
            self.existing_overlay_dir(parent)?;
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
        fsutil::write_new(&dir.join("link"), link_id.as_bytes(), 0o644)?;
        let Some(parent) = parent_id else {
            return Ok(());
        };
        let parent_dir = self.existing_overlay_dir(parent)?;
        let parent_link = fsutil::read_optional(&parent_dir.join("link"))?.ok_or_else(|| {
            io_error("reading link of", &parent_dir)(std::io::ErrorKind::NotFound.into())
        })?;
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
        if !fsutil::real_file(&committed)? {
            fsutil::write_new(&committed, b"", 0o600)?;
        }
        fsutil::write_new(&dir.join("lower"), lower.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Makes the `diff/` of layer dir `from` the `diff/` of layer dir `to`, by rename (the moving
    /// commit: a container's upperdir becomes a new layer's). `to`'s own `diff/` must be empty
    /// or missing and is removed first; a non-empty one fails the move with nothing changed. Both
    /// dirs are checked ([`DataRoot::checked_overlay_dir`]) and opened one component at a time
    /// without following symlinks; a mount point at either `diff/` is refused.
    pub fn move_diff(&self, from: &str, to: &str) -> Result<()> {
        self.existing_overlay_dir(from)?;
        self.existing_overlay_dir(to)?;
        let below = crate::below::Below::open(self.root())?;
        let dirs = [from, to].map(|id| format!("overlay2/{id}"));
        for dir in &dirs {
            below.refuse_mount_points(dir, &["diff"])?;
        }
        let open = |rel: &str| {
            below.dir(rel)?.ok_or_else(|| Error::Io {
                op: "opening layer dir",
                path: self.root().join(rel),
                source: std::io::ErrorKind::NotFound.into(),
            })
        };
        let (from_fd, to_fd) = (open(&dirs[0])?, open(&dirs[1])?);
        let target = self.overlay_dir(to).join("diff");
        match rustix::fs::unlinkat(&to_fd, "diff", rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(errno) => return Err(crate::below::sys_error("removing", &target)(errno)),
        }
        rustix::fs::renameat(&from_fd, "diff", &to_fd, "diff").map_err(crate::below::sys_error(
            "moving the diff of another layer dir to",
            &target,
        ))
    }

    /// format.md §4.4: removes `l/<LID>` and `H/<id>`. Refuses when something is mounted inside it,
    /// and when the layer dir is not what the format has ([`DataRoot::checked_overlay_dir`]),
    /// before removing anything. The `l/` link goes only while it points at this dir; the dir is
    /// removed through directory descriptors, never following a symlink or crossing a mount.
    pub fn remove_overlay_dir(&self, id: &str) -> Result<()> {
        let Some(dir) = self.checked_overlay_dir(id)? else {
            return Ok(());
        };
        let below = crate::below::Below::open(self.root())?;
        below.refuse_mount_points(&format!("overlay2/{id}"), &["merged", "diff"])?;
        if let Some(link_id) = fsutil::read_optional(&dir.join("link"))? {
            let link_id = link_id.trim();
            if is_lower_entry(&format!("l/{link_id}")) {
                let expected = PathBuf::from(format!("../{id}/diff"));
                match below.remove_link("overlay2/l", link_id, &expected) {
                    Ok(()) => {}
                    // Another dir's link (a copied root): left alone.
                    Err(Error::Io { op, path, .. }) if op.starts_with("not removing") => {
                        tracing::warn!(path = %path.display(), "left an l/ link that points elsewhere");
                    }
                    Err(Error::Io { path, source, .. })
                        if source.raw_os_error()
                            == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                    {
                        tracing::warn!(path = %path.display(), "left an l/ entry that is not a symlink");
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        fsutil::remove_tree(&dir)
    }

    /// Re-creates `H/l/<LID> -> ../<id>/diff` for a layer dir whose `link` file names a link that
    /// is gone; returns whether it did. A link that exists is left as it is.
    pub fn restore_link(&self, id: &str) -> Result<bool> {
        let dir = self.existing_overlay_dir(id)?;
        let Some(link_id) = fsutil::read_optional(&dir.join("link"))? else {
            return Ok(false);
        };
        let link_id = link_id.trim();
        if !is_lower_entry(&format!("l/{link_id}")) || !fsutil::real_dir(&dir.join("diff"))? {
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
        fsutil::real_dir(&self.overlay_dir(id))?;
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

    /// format.md §4.3 GetMetadata: LowerDir (resolved diff dirs), MergedDir, UpperDir, WorkDir.
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

/// The directories of a layer dir (format.md §4.1); each, where it exists, must be a real directory.
const LAYER_SUBDIRS: [&str; 3] = ["diff", "work", "merged"];
/// The files of a layer dir; each, where it exists, must be a regular file.
const LAYER_FILES: [&str; 3] = ["link", "lower", "committed"];

/// The `<id>` of an `l/` link target of the one form the format has, `../<id>/diff`.
pub(crate) fn link_target_id(target: &Path) -> Option<String> {
    let text = target.to_str()?;
    let id = text.strip_prefix("../")?.strip_suffix("/diff")?;
    is_layer_dir_id(id).then(|| id.to_string())
}

/// Lexical cleaning, Go's `filepath.Clean`, without touching the file system.
fn clean_path(path: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let clean = gocompat::path::clean(path.as_os_str().as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(clean))
}

pub(crate) fn check_layer_dir_id(id: &str) -> Result<()> {
    crate::ids::check_id(is_layer_dir_id(id), "layer dir id", id)
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
