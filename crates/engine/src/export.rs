//! `ovl export`: a container's root filesystem as one tar, as `docker export` writes it: the
//! mounted tree (image layers, init layer and the container's changes merged by the kernel)
//! through `layer_pack::pack_tree`. A container that is not mounted is mounted for the export
//! and unmounted again, as dockerd mounts the container's layer only while it exports.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::access::{self, Create};
use crate::error::{Context, Result};
use crate::resolve;

/// Where the tar goes.
pub enum ExportOutput<'a> {
    /// A file, written beside its final name and renamed into place when complete.
    Path(PathBuf),
    /// A stream such as stdout.
    Stream(&'a mut dyn Write),
}

/// Writes the tar of the container `text` names to `output`.
pub fn export(root_path: &Path, text: &str, output: ExportOutput<'_>) -> Result<()> {
    crate::container::require_root()?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "export a container")?;
    let container = resolve::container(&root, text)?;
    let was_mounted = crate::container::is_mounted(&root, &container.id);
    let merged = crate::container::mount_container(&root, &container.id)
        .container_context("mounting container", text)?;
    // Owners are named from the container's own passwd and group, as `docker export` (its tar
    // runs chrooted into the container) names them.
    let names =
        |path: &str| crate::bundle::read_etc_file(&merged, path).map(Option::unwrap_or_default);
    let names = names("etc/passwd")
        .and_then(|passwd| Ok((passwd, names("etc/group")?)))
        .map(|(mut passwd, mut group)| {
            let (users, groups) = synthesised_names();
            passwd.extend_from_slice(users);
            group.extend_from_slice(groups);
            (passwd, group)
        })
        .container_context("reading the user names of container", text);
    let written = names.and_then(|(passwd, group)| {
        write_tar(
            &merged,
            output,
            layer_pack::PackOptions {
                names: Some(layer_pack::NameFiles { passwd, group }),
                ..Default::default()
            },
        )
    });
    let unmounted = if was_mounted {
        Ok(())
    } else {
        let entry = crate::container::mounts_entry(&root, &container.id)?;
        crate::container::unmount_layer(&root, &entry.mount_id)
    };
    written.container_context("exporting container", text)?;
    unmounted.container_context("unmounting container", text)
}

fn write_tar(
    merged: &Path,
    output: ExportOutput<'_>,
    options: layer_pack::PackOptions,
) -> Result<()> {
    match output {
        ExportOutput::Path(path) => crate::save::write_file_atomically(&path, |out| {
            layer_pack::pack_tree(merged, out, &options).map(drop)
        })
        .path_context("exporting to", &path),
        ExportOutput::Stream(out) => layer_pack::pack_tree(merged, out, &options)
            .map(drop)
            .map_err(Into::into),
    }
}

/// The entries the host's name service adds after the container's files, as dockerd's chrooted
/// tar (cgo lookups through the host's NSS modules, loaded before the chroot) finds them: where
/// `/etc/nsswitch.conf` lists `systemd` for a database, nss-systemd answers for `root` (0) and
/// `nobody` (65534; its group is `nogroup` on Debian) when the container's file does not. They
/// are appended, so the container's own entries win.
fn synthesised_names() -> (&'static [u8], &'static [u8]) {
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let lists_systemd = |database: &str| {
        nsswitch.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, sources)| {
                name.trim() == database && sources.split_whitespace().any(|s| s == "systemd")
            })
        })
    };
    let users: &[u8] = if lists_systemd("passwd") {
        b"\nroot:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n"
    } else {
        b""
    };
    let groups: &[u8] = if lists_systemd("group") {
        b"\nroot:x:0:\nnogroup:x:65534:\n"
    } else {
        b""
    };
    (users, groups)
}
