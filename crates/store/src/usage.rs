//! What `docker system df` measures beyond the store's own records (format.md §4.4, §10): a container
//! layer's diff size, local volumes, and a container's mount points and networks.

use std::fs;
use std::path::Path;

use crate::below::{Below, Crossing};
use crate::fsutil::{self, sorted_names};
use crate::ids::is_hex64;
use crate::{DataRoot, Error, Result};

/// A local volume as `docker system df` counts it: `ROOT/volumes/<name>/` without mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVolume {
    pub name: String,
    /// Docker's `directory.Size` of `_data`; -1 when it cannot be measured (as Docker reports).
    pub size: i64,
}

/// One entry of a container's `MountPoints` (config.v2.json).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMountPoint {
    /// The volume name; empty for a bind mount.
    pub name: String,
    /// The volume driver (`local`); empty for a bind mount.
    pub driver: String,
    /// The host path of a bind mount.
    pub source: String,
}

/// What `docker system df -v` shows of a container beyond its record: its mount points and the
/// networks it is attached to (config.v2.json `MountPoints`, `NetworkSettings.Networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAttachments {
    /// Sorted by volume name.
    pub mount_points: Vec<ContainerMountPoint>,
    /// Sorted.
    pub networks: Vec<String>,
}

/// Where Docker keeps local volumes (`ROOT/volumes/<name>/_data`).
const VOLUMES: &str = "volumes";
/// Where Docker keeps container records (`ROOT/containers/<id>/config.v2.json`).
const CONTAINERS: &str = "containers";
/// Where Docker keeps overlay2 layer dirs.
const OVERLAY_HOME: &str = "overlay2";

impl DataRoot {
    /// Docker's `directory.Size` of `H/<id>/diff`: what overlay2's `DiffSize` returns for a
    /// container layer on the native diff path (moby daemon/graphdriver/overlay2 `DiffSize`).
    pub fn layer_diff_size(&self, id: &str) -> Result<i64> {
        crate::overlay::check_layer_dir_id(id)?;
        let below = Below::open(&self.root)?;
        let parent = format!("{OVERLAY_HOME}/{id}");
        let facts = below.measure(&parent, "diff", Crossing::Enter)?;
        if !facts.found {
            let path = self.overlay_dir(id).join("diff");
            return Err(fsutil::io_error("measuring", &path)(
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        Ok(i64::try_from(facts.size).unwrap_or(i64::MAX))
    }

    /// The local volumes `docker system df` counts (moby volume/service `LocalVolumesSize`): every
    /// directory in `ROOT/volumes` without mount options in its `opts.json`, sorted by name.
    pub fn local_volumes(&self) -> Result<Vec<LocalVolume>> {
        let dir = self.root.join(VOLUMES);
        let below = Below::open(&self.root)?;
        let mut volumes = Vec::new();
        for name in sorted_names(&dir)? {
            let path = dir.join(&name);
            if !fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
                continue;
            }
            if has_mount_options(&path.join("opts.json")) {
                continue;
            }
            let size = match below.measure(&format!("{VOLUMES}/{name}"), "_data", Crossing::Enter) {
                Ok(facts) if facts.found => i64::try_from(facts.size).unwrap_or(i64::MAX),
                Ok(_) => -1,
                Err(err) => {
                    tracing::warn!(volume = %name, error = %err, "failed to measure a volume");
                    -1
                }
            };
            volumes.push(LocalVolume { name, size });
        }
        Ok(volumes)
    }

    /// The mount points and networks of a container's config.v2.json.
    pub fn container_attachments(&self, container_id: &str) -> Result<ContainerAttachments> {
        if !is_hex64(container_id) {
            return Err(Error::InvalidId {
                what: "container id",
                value: container_id.to_string(),
            });
        }
        let path = self
            .root
            .join(CONTAINERS)
            .join(container_id)
            .join("config.v2.json");
        let bytes = fsutil::read_bytes_optional(&path)?.ok_or_else(|| {
            fsutil::io_error("reading", &path)(std::io::ErrorKind::NotFound.into())
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        let text = |point: &serde_json::Value, key: &str| {
            point
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut mount_points: Vec<ContainerMountPoint> = value
            .get("MountPoints")
            .and_then(serde_json::Value::as_object)
            .map(|points| {
                points
                    .values()
                    .map(|point| ContainerMountPoint {
                        name: text(point, "Name"),
                        driver: text(point, "Driver"),
                        source: text(point, "Source"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        mount_points.sort_by(|a, b| a.name.cmp(&b.name).then(a.source.cmp(&b.source)));
        let mut networks: Vec<String> = value
            .pointer("/NetworkSettings/Networks")
            .and_then(serde_json::Value::as_object)
            .map(|networks| networks.keys().cloned().collect())
            .unwrap_or_default();
        networks.sort();
        Ok(ContainerAttachments {
            mount_points,
            networks,
        })
    }
}

/// Whether a volume's `opts.json` sets any option; Docker leaves such volumes out of its disk usage
/// (and treats an all-empty options file as none).
fn has_mount_options(path: &Path) -> bool {
    let Ok(Some(bytes)) = fsutil::read_bytes_optional(path) else {
        return false;
    };
    let Ok(serde_json::Value::Object(options)) = serde_json::from_slice(&bytes) else {
        return true;
    };
    options.values().any(|value| match value {
        serde_json::Value::Null => false,
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Number(number) => number.as_f64() != Some(0.0),
        serde_json::Value::Object(fields) => !fields.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Bool(flag) => *flag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh data root in a temp dir.
    fn new_root() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = DataRoot::open_or_create(&dir.path().join("root")).expect("data root");
        (dir, root)
    }

    #[test]
    fn volume_options_and_sizes_as_docker_counts_them() {
        let (_dir, root) = new_root();
        let volumes = root.root().join(VOLUMES);
        for (name, data, options) in [
            ("plain", Some(&b"abc"[..]), None),
            (
                "empty-options",
                Some(&b"de"[..]),
                Some(r#"{"Type":"","o":"","device":""}"#),
            ),
            (
                "tmpfs",
                Some(&b"x"[..]),
                Some(r#"{"Type":"tmpfs","o":"size=1m","device":"tmpfs"}"#),
            ),
            ("no-data", None, None),
        ] {
            fs::create_dir_all(volumes.join(name)).expect("mkdir");
            if let Some(data) = data {
                fs::create_dir(volumes.join(name).join("_data")).expect("mkdir");
                fs::write(volumes.join(name).join("_data/f"), data).expect("write");
                fs::hard_link(
                    volumes.join(name).join("_data/f"),
                    volumes.join(name).join("_data/hard"),
                )
                .expect("link");
            }
            if let Some(options) = options {
                fs::write(volumes.join(name).join("opts.json"), options).expect("write");
            }
        }
        fs::write(volumes.join("metadata.db"), b"bolt").expect("write");
        assert_eq!(
            root.local_volumes().expect("volumes"),
            vec![
                LocalVolume {
                    name: "empty-options".into(),
                    size: 2
                },
                LocalVolume {
                    name: "no-data".into(),
                    size: -1
                },
                LocalVolume {
                    name: "plain".into(),
                    size: 3
                },
            ]
        );
    }
}
