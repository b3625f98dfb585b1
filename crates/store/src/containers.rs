//! Containers: `layerdb/mounts/<id>` entries (format.md §3.6) and `containers/<id>/` records (format.md §10).

use std::fs;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::fsutil::{self, io_error};
use crate::ids::{check_id, is_digest, is_hex64, is_layer_dir_id};
use crate::{ContainerRecord, ContainerState, DataRoot, Error, MountsEntry, Result};

/// Go's zero `time.Time` as Docker writes it for a container that never ran.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl DataRoot {
    /// `layerdb/mounts/<id>`; where it exists it must be a real directory (a symlink is refused).
    fn mounts_dir(&self, container_id: &str) -> Result<PathBuf> {
        check_container_id(container_id)?;
        let dir = self.image_dir().join("layerdb/mounts").join(container_id);
        fsutil::real_dir(&dir)?;
        Ok(dir)
    }

    /// `containers/<id>`; where it exists it must be a real directory (a symlink is refused).
    fn container_dir(&self, container_id: &str) -> Result<PathBuf> {
        check_container_id(container_id)?;
        let dir = self.root.join("containers").join(container_id);
        fsutil::real_dir(&dir)?;
        Ok(dir)
    }

    /// Writes the mounts entry: dir 0755, files 0644, plain writes without newlines, as Docker.
    pub fn write_mounts_entry(&self, entry: &MountsEntry) -> Result<()> {
        let (dir, files) = self.write_mounts_files(entry)?;
        let synced = fsutil::sync_together(&files).and_then(|()| fsutil::sync_dir(&dir));
        if synced.is_err() {
            let _ = fsutil::remove_tree(&dir);
        }
        synced
    }

    /// The files of a mounts entry, written but not synced; nothing is left when this fails.
    fn write_mounts_files(
        &self,
        entry: &MountsEntry,
    ) -> Result<(PathBuf, Vec<(PathBuf, fs::File)>)> {
        let dir = self.mounts_dir(&entry.container_id)?;
        fsutil::create_dir_mode(&dir, 0o755)?;
        let result = (|| {
            let mut files = Vec::new();
            for (name, value) in [
                ("mount-id", Some(&entry.mount_id)),
                ("init-id", entry.init_id.as_ref()),
                ("parent", entry.parent.as_ref()),
            ] {
                if let Some(value) = value {
                    let path = dir.join(name);
                    let file = fsutil::write_new(&path, value.as_bytes(), 0o644)?;
                    files.push((path, file));
                }
            }
            Ok(files)
        })();
        match result {
            Ok(files) => Ok((dir, files)),
            Err(err) => {
                let _ = fsutil::remove_tree(&dir);
                Err(err)
            }
        }
    }

    /// Writes a new container's mounts entry and record (what [`DataRoot::write_mounts_entry`]
    /// and [`DataRoot::write_container`] write, in that order of durability) after one `syncfs`
    /// of the data root, which also makes durable everything written for the container before
    /// (its init layer, its layer dirs): two journal commits in all (the `syncfs`, and the
    /// record's directory after its renames), where the two calls take three and the layers
    /// none of their own. Where `layerdb/mounts` or `containers/` lie on another filesystem
    /// than `overlay2/`, their files are fsynced one by one as well. On failure the caller
    /// removes the entry and the record ([`DataRoot::remove_mounts_entry`],
    /// [`DataRoot::remove_container`]): a failure after the record's rename leaves both.
    pub fn write_new_container(&self, entry: &MountsEntry, record: &ContainerRecord) -> Result<()> {
        let (mounts_dir, mounts_files) = self.write_mounts_files(entry)?;
        let (container_dir, staged) = self.stage_record(record)?;
        self.sync_filesystem()?;
        if fsutil::same_filesystem(&self.overlay_home(), &[&mounts_dir, &container_dir])? {
            return fsutil::commit_synced(staged);
        }
        fsutil::sync_together(&mounts_files)?;
        fsutil::sync_dir(&mounts_dir)?;
        fsutil::commit_together(staged)
    }

    /// The mounts entry of a container; `None` when it has none. Ids are validated as Docker does.
    pub fn mounts_entry(&self, container_id: &str) -> Result<Option<MountsEntry>> {
        let dir = self.mounts_dir(container_id)?;
        let Some(mount_id) = fsutil::read_optional(&dir.join("mount-id"))? else {
            return Ok(None);
        };
        let mount_id = mount_id.trim().to_string();
        check_id(is_layer_dir_id(&mount_id), "mount-id", &mount_id)?;
        let init_id = read_optional_id(&dir.join("init-id"), "init-id", is_layer_dir_id)?;
        let parent = read_optional_id(&dir.join("parent"), "mounts parent", is_digest)?;
        Ok(Some(MountsEntry {
            container_id: container_id.to_string(),
            mount_id,
            init_id,
            parent,
        }))
    }

    /// Removes the mounts entry; like the record, it is first renamed into `ROOT/tmp`, so that a
    /// removal cut short never leaves an entry without its `mount-id`.
    pub fn remove_mounts_entry(&self, container_id: &str) -> Result<()> {
        let dir = self.mounts_dir(container_id)?;
        self.remove_via_tmp(&dir, "mounts", container_id)
    }

    /// Renames `dir` into `ROOT/tmp` (which dockerd empties when it starts), then removes it.
    fn remove_via_tmp(&self, dir: &std::path::Path, what: &str, container_id: &str) -> Result<()> {
        if !fsutil::real_dir(dir)? {
            return Ok(());
        }
        let tmp = self.tmp_dir();
        fsutil::create_dir_mode(&tmp, 0o700)?;
        let doomed = tmp.join(format!(
            "removing-{what}-{container_id}-{}",
            crate::ids::random_hex(8)?
        ));
        fs::rename(dir, &doomed).map_err(io_error("renaming for removal", dir))?;
        fsutil::remove_tree(&doomed)
    }

    /// Writes config.v2.json (with NetworkSettings) and hostconfig.json atomically.
    pub fn write_container(&self, record: &ContainerRecord) -> Result<()> {
        let (_, staged) = self.stage_record(record)?;
        fsutil::commit_together(staged)
    }

    /// config.v2.json and hostconfig.json written to temp names, to be committed together: both
    /// are synced together and renamed in this order, so that after a crash either both are new,
    /// or config.v2.json alone, or neither, as with two atomic writes one after the other.
    /// Returns the record's directory with them.
    fn stage_record(&self, record: &ContainerRecord) -> Result<(PathBuf, Vec<fsutil::Staged>)> {
        let dir = self.container_dir(&record.id)?;
        fsutil::create_dir_mode(&dir, 0o710)?;
        let mut config = crate::go_json(&config_v2(record))?;
        config.push(b'\n');
        let mut host_config = DEFAULT_HOST_CONFIG.trim_end().as_bytes().to_vec();
        host_config.push(b'\n');
        let staged = fsutil::stage_atomic(&[
            (&dir.join("config.v2.json"), &config, 0o600),
            (&dir.join("hostconfig.json"), &host_config, 0o644),
        ])?;
        Ok((dir, staged))
    }

    /// Every container record, dockerd-written ones included; unreadable ones are logged and skipped.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let dir = self.root.join("containers");
        let mut records = Vec::new();
        for (id, entry) in fsutil::hex64_entries(&dir)? {
            if !entry.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                tracing::warn!(path = %entry.path().display(), "skipping a container entry that is not a directory (never followed)");
                continue;
            }
            let path = entry.path().join("config.v2.json");
            match read_record(&path, &id) {
                Ok(record) => records.push(record),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "skipping an unreadable container")
                }
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Sets `State.RemovalInProgress` in the container's config.v2.json (atomically, the rest of
    /// the file as it was), as Docker does before it removes anything of a container: a removal
    /// cut short is then recognisable, and finished by the next removal.
    pub fn mark_removal_in_progress(&self, container_id: &str) -> Result<()> {
        let path = self.container_dir(container_id)?.join("config.v2.json");
        let bytes = fsutil::read_bytes_optional(&path)?
            .ok_or_else(|| io_error("reading", &path)(std::io::ErrorKind::NotFound.into()))?;
        let mut value: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        let Some(state) = value.get_mut("State").and_then(Value::as_object_mut) else {
            return Err(Error::Json {
                path,
                source: serde::de::Error::custom("no State object"),
            });
        };
        if state.get("RemovalInProgress") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        state.insert("RemovalInProgress".to_string(), Value::Bool(true));
        let mut bytes = crate::go_json(&value)?;
        bytes.push(b'\n');
        fsutil::write_atomic(&path, &bytes, 0o600)
    }

    /// Removes the container record. The directory is first renamed into `ROOT/tmp` (which
    /// dockerd empties when it starts), so that a removal cut short never leaves a container
    /// directory without its config.
    pub fn remove_container(&self, container_id: &str) -> Result<()> {
        let dir = self.container_dir(container_id)?;
        self.remove_via_tmp(&dir, "container", container_id)
    }
}

fn check_container_id(container_id: &str) -> Result<()> {
    check_id(is_hex64(container_id), "container id", container_id)
}

/// The trimmed id in an optional file, checked with `valid`.
fn read_optional_id(
    path: &std::path::Path,
    what: &'static str,
    valid: fn(&str) -> bool,
) -> Result<Option<String>> {
    let id = fsutil::read_optional(path)?.map(|text| text.trim().to_string());
    if let Some(id) = &id {
        check_id(valid(id), what, id)?;
    }
    Ok(id)
}

fn read_record(path: &std::path::Path, id: &str) -> Result<ContainerRecord> {
    let bytes = fsutil::read_bytes_optional(path)?
        .ok_or_else(|| io_error("reading", path)(std::io::ErrorKind::NotFound.into()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if text("ID") != id {
        return Err(Error::InvalidId {
            what: "container ID (must equal its directory name)",
            value: text("ID"),
        });
    }
    let args = crate::json_strings(value.get("Args"));
    Ok(ContainerRecord {
        id: id.to_string(),
        name: text("Name").trim_start_matches('/').to_string(),
        image_id: text("Image"),
        created: text("Created"),
        path: text("Path"),
        args,
        config: value.get("Config").cloned().unwrap_or(Value::Null),
        running: value
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        state: read_state(&value),
    })
}

fn read_state(value: &Value) -> ContainerState {
    let flag = |key: &str| {
        value
            .pointer(&format!("/State/{key}"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let time = |key: &str| {
        value
            .pointer(&format!("/State/{key}"))
            .and_then(Value::as_str)
            .unwrap_or(ZERO_TIME)
            .to_string()
    };
    ContainerState {
        paused: flag("Paused"),
        restarting: flag("Restarting"),
        removal_in_progress: flag("RemovalInProgress"),
        dead: flag("Dead"),
        exit_code: value
            .pointer("/State/ExitCode")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        started_at: time("StartedAt"),
        finished_at: time("FinishedAt"),
    }
}

fn or_zero_time(time: &str) -> &str {
    if time.is_empty() {
        ZERO_TIME
    } else {
        time
    }
}

/// config.v2.json with Docker 20.10's top-level keys in struct order (format.md §10).
fn config_v2(record: &ContainerRecord) -> Value {
    json!({
        "StreamConfig": {},
        "State": {
            "Running": record.running, "Paused": record.state.paused,
            "Restarting": record.state.restarting, "OOMKilled": false,
            "RemovalInProgress": record.state.removal_in_progress, "Dead": record.state.dead,
            "Pid": 0, "ExitCode": record.state.exit_code, "Error": "",
            "StartedAt": or_zero_time(&record.state.started_at),
            "FinishedAt": or_zero_time(&record.state.finished_at), "Health": null
        },
        "ID": record.id,
        "Created": record.created,
        "Managed": false,
        "Path": record.path,
        "Args": record.args,
        "Config": record.config,
        "Image": record.image_id,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Networks": {}, "Service": null, "Ports": null, "SandboxKey": "",
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "IsAnonymousEndpoint": false,
            "HasSwarmEndpoint": false
        },
        "LogPath": "",
        "Name": format!("/{}", record.name),
        "Driver": "overlay2",
        "OS": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "RestartCount": 0,
        "HasBeenStartedBefore": false,
        "HasBeenManuallyStopped": false,
        "MountPoints": {},
        "SecretReferences": null,
        "ConfigReferences": null,
        "AppArmorProfile": "",
        "HostnamePath": "",
        "HostsPath": "",
        "ShmPath": "",
        "ResolvConfPath": "",
        "SeccompProfile": "",
        "NoNewPrivileges": false,
        "LocalLogCacheMeta": {"HaveNotifyEnabled": false}
    })
}

/// hostconfig.json exactly as dockerd 20.10 wrote it for `docker create` with no options.
const DEFAULT_HOST_CONFIG: &str = include_str!("default-hostconfig.json");
