//! Kernel and backing filesystem probes (format.md §5), each done by trying the feature once in a
//! scratch directory `<test_dir>/check-overlayfs-support<random>` that is removed afterwards.

use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{
    execute, unmount, Error, KernelFeatures, MountPlan, OverlayDefaults, OverlaySpec, Result,
};

/// The overlay module exposes this parameter when it supports the inodes index; Docker then
/// passes `index=off` explicitly (format.md §4.2, §5).
const INDEX_PARAM: &str = "/sys/module/overlay/parameters/index";

/// The directory of the overlay module's parameters.
const PARAMETERS_DIR: &str = "/sys/module/overlay/parameters";

/// The overlay features the module enables by default (see [`OverlayDefaults`]).
pub(crate) fn overlay_defaults() -> OverlayDefaults {
    let enabled = |parameter: &str| {
        std::fs::read_to_string(Path::new(PARAMETERS_DIR).join(parameter)).is_ok_and(|text| {
            let value = text.trim();
            value == "Y" || value == "on" || value == "follow"
        })
    };
    OverlayDefaults {
        redirect_dir: enabled("redirect_dir"),
        metacopy: enabled("metacopy"),
    }
}

/// The scratch directory's name prefix, as Docker's `supportsOverlay` names it.
const CHECK_DIR_PREFIX: &str = "check-overlayfs-support";

pub(crate) fn probe(test_dir: &Path) -> Result<KernelFeatures> {
    let statfs = rustix::fs::statfs(test_dir).map_err(|source| Error::Sys {
        operation: "statfs",
        path: test_dir.to_path_buf(),
        source,
    })?;
    // The magic numbers are 32-bit values; `f_type`'s width differs between architectures.
    let backing_fs = backing_fs_name(statfs.f_type as u32);
    let check_dir = CheckDir::create(test_dir)?;

    if !has_d_type(&check_dir.path)? {
        return Err(Error::NoDType {
            backing_fs,
            path: test_dir.to_path_buf(),
        });
    }
    check_dir.mount_two_lowers().map_err(|source| {
        let no_such_fs = matches!(
            &source,
            Error::Mount {
                source: Errno::NODEV,
                ..
            }
        );
        if no_such_fs && !overlay_registered() {
            Error::NoOverlayModule {
                path: test_dir.to_path_buf(),
            }
        } else {
            Error::OverlayNotSupported {
                path: test_dir.to_path_buf(),
                source: Box::new(source),
            }
        }
    })?;
    let lowerdir_plus = match check_dir.mount_lowerdir_plus() {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!(error = %err, "the kernel does not take lowerdir+");
            false
        }
    };
    let volatile = match check_dir.mount_volatile() {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!(error = %err, "the kernel does not take volatile");
            false
        }
    };
    let features = KernelFeatures {
        backing_fs,
        d_type: true,
        index_param: Path::new(INDEX_PARAM).exists(),
        lowerdir_plus,
        volatile,
        page_size: rustix::param::page_size(),
        defaults: overlay_defaults(),
    };
    tracing::debug!(?features, test_dir = %test_dir.display(), "probed kernel features");
    Ok(features)
}

pub(crate) fn probe_cached(test_dir: &Path, cache: &Path) -> Result<KernelFeatures> {
    let key = cache_key(test_dir);
    if let Some(key) = &key {
        if let Some(features) = read_cache(cache, key) {
            tracing::debug!(?features, cache = %cache.display(), "kernel features from this boot's probe");
            return Ok(features);
        }
    }
    let features = probe(test_dir)?;
    if let Some(key) = key {
        write_cache(cache, &key, &features);
    }
    Ok(features)
}

/// What must not have changed since the probe: the boot, the kernel, the directory.
fn cache_key(test_dir: &Path) -> Option<String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let stat = rustix::fs::stat(test_dir).ok()?;
    Some(format!(
        "boot={} release={} dev={} ino={}",
        boot_id.trim(),
        release.trim(),
        stat.st_dev,
        stat.st_ino
    ))
}

fn read_cache(cache: &Path, key: &str) -> Option<KernelFeatures> {
    let text = std::fs::read_to_string(cache).ok()?;
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    let mut fields = std::collections::BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once('=')?;
        fields.insert(name, value);
    }
    let flag = |name: &str| match fields.get(name) {
        Some(&"true") => Some(true),
        Some(&"false") => Some(false),
        _ => None,
    };
    Some(KernelFeatures {
        backing_fs: fields.get("backing_fs")?.to_string(),
        d_type: true,
        index_param: flag("index_param")?,
        lowerdir_plus: flag("lowerdir_plus")?,
        volatile: flag("volatile")?,
        page_size: fields.get("page_size")?.parse().ok()?,
        defaults: overlay_defaults(),
    })
}

/// Best effort: written atomically beside the cache file by `syscompat::atomic` (a temp name
/// opened with `O_NOFOLLOW`, fsync, rename, fsync of the directory).
fn write_cache(cache: &Path, key: &str, features: &KernelFeatures) {
    let text = format!(
        "{key}\nbacking_fs={}\nindex_param={}\nlowerdir_plus={}\nvolatile={}\npage_size={}\n",
        features.backing_fs,
        features.index_param,
        features.lowerdir_plus,
        features.volatile,
        features.page_size
    );
    if let Err(err) = syscompat::atomic::write_atomic(cache, text.as_bytes(), 0o644) {
        tracing::debug!(error = %err, cache = %cache.display(), "cannot keep the probe result");
    }
}

/// Docker's names for `statfs` magic numbers (graphdriver `FsNames`; the magics are listed in
/// include/uapi/linux/magic.h), and the magic in hex for anything else.
pub(crate) fn backing_fs_name(magic: u32) -> String {
    let name = match magic {
        0x6164_6673 => "aufs",
        0x5346_414F => "afs",
        0x9123_683E => "btrfs",
        0x28CD_3D45 => "cramfs",
        0xF15F => "ecryptfs",
        0xEF53 => "extfs",
        0xF2F5_2010 => "f2fs",
        0x4750_4653 => "gpfs",
        0x0000_72B6 => "jffs2",
        0x3153_464A => "jfs",
        0x0000_6969 => "nfs",
        0x0000_4D44 => "msdos",
        0x794C_7630 => "overlayfs",
        0x8584_58F6 => "ramfs",
        0x5265_4973 => "reiserfs",
        0x0000_517B => "smb",
        0x7371_7368 => "squashfs",
        0x0102_1994 => "tmpfs",
        0xA501_FCF5 => "vxfs",
        0x5846_5342 => "xfs",
        0x2FC1_2FC1 => "zfs",
        0x6573_5546 => "fuse",
        _ => return format!("{magic:#x}"),
    };
    name.to_owned()
}

/// Whether `/proc/filesystems` lists overlay (an unreadable list counts as listed: the mount's
/// own error is then the better message).
fn overlay_registered() -> bool {
    match std::fs::read_to_string("/proc/filesystems") {
        Ok(list) => list
            .lines()
            .any(|line| line.split_whitespace().last() == Some("overlay")),
        Err(_) => true,
    }
}

/// `XFS_FSOP_GEOM_FLAGS_FTYPE`: directory entries carry the file type (mkfs.xfs `-n ftype=1`).
const XFS_FSOP_GEOM_FLAGS_FTYPE: u32 = 0x10000;
const XFS_SUPER_MAGIC: u32 = 0x5846_5342;

pub(crate) fn require_d_type(path: &Path) -> Result<()> {
    let mut dir = path;
    while !dir.is_dir() {
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
            _ => {
                dir = Path::new(".");
                break;
            }
        }
    }
    let sys_err = |operation| {
        move |source| Error::Sys {
            operation,
            path: dir.to_path_buf(),
            source,
        }
    };
    let no_d_type = |magic: u32| Error::NoDType {
        backing_fs: backing_fs_name(magic),
        path: dir.to_path_buf(),
    };
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_err("opening"))?;
    let magic = rustix::fs::fstatfs(&dir_fd)
        .map_err(sys_err("statfs"))?
        .f_type as u32;
    match listed_types(&dir_fd).map_err(sys_err("reading"))? {
        Listed::Unknown => return Err(no_d_type(magic)),
        Listed::Known => return Ok(()),
        Listed::Empty => {}
    }
    if magic == XFS_SUPER_MAGIC {
        use std::os::fd::AsFd as _;
        if let Ok(flags) = crate::sys::xfs_geometry_flags(dir_fd.as_fd()) {
            if flags & XFS_FSOP_GEOM_FLAGS_FTYPE == 0 {
                return Err(no_d_type(magic));
            }
            return Ok(());
        }
    }
    let check_dir = CheckDir::create(dir)?;
    if !has_d_type(&check_dir.path)? {
        return Err(no_d_type(magic));
    }
    Ok(())
}

enum Listed {
    Empty,
    Known,
    Unknown,
}

/// What getdents says of the entries of a directory (`.` and `..` aside).
fn listed_types(dir_fd: &rustix::fd::OwnedFd) -> rustix::io::Result<Listed> {
    let mut listed = Listed::Empty;
    for entry in rustix::fs::Dir::read_from(dir_fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if entry.file_type() == FileType::Unknown {
            return Ok(Listed::Unknown);
        }
        listed = Listed::Known;
    }
    Ok(listed)
}

/// Creates a file and reads the directory with getdents: a filesystem without d_type (xfs with
/// `ftype=0`) reports every entry as `DT_UNKNOWN`.
fn has_d_type(dir: &Path) -> Result<bool> {
    let dummy = dir.join("fsutils-dummy");
    std::fs::write(&dummy, b"").map_err(|source| Error::Io {
        operation: "creating",
        path: dummy.clone(),
        source,
    })?;
    let sys_err = |operation| {
        move |source| Error::Sys {
            operation,
            path: dir.to_path_buf(),
            source,
        }
    };
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_err("opening"))?;
    let entries = rustix::fs::Dir::read_from(&dir_fd).map_err(sys_err("reading"))?;
    let mut n_entries = 0usize;
    for entry in entries {
        let entry = entry.map_err(sys_err("reading"))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        n_entries += 1;
        if entry.file_type() == FileType::Unknown {
            return Ok(false);
        }
    }
    // The dummy file must have been seen; otherwise the check proved nothing.
    Ok(n_entries > 0)
}

/// The scratch directory; dropping it unmounts what the probes left mounted and removes it.
struct CheckDir {
    path: PathBuf,
}

impl CheckDir {
    fn create(test_dir: &Path) -> Result<CheckDir> {
        let mut last_err = None;
        for _ in 0..16 {
            let mut random = [0u8; 6];
            syscompat::fill_random(&mut random).map_err(|source| Error::Io {
                operation: "choosing a random name for a probe dir in",
                path: test_dir.to_path_buf(),
                source,
            })?;
            let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
            let path = test_dir.join(format!("{CHECK_DIR_PREFIX}{suffix}"));
            match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
                Ok(()) => return Ok(CheckDir { path }),
                Err(Errno::EXIST) => last_err = Some(Errno::EXIST),
                Err(source) => {
                    return Err(Error::Sys {
                        operation: "creating probe dir",
                        path,
                        source,
                    })
                }
            }
        }
        Err(Error::Sys {
            operation: "creating a probe dir in",
            path: test_dir.to_path_buf(),
            source: last_err.unwrap_or(Errno::EXIST),
        })
    }

    fn make_dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.path.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(path),
            Err(source) => Err(Error::Io {
                operation: "creating",
                path,
                source,
            }),
        }
    }

    /// Docker's overlay support check: `lowerdir=lower2:lower1,upperdir=upper,workdir=work`.
    fn mount_two_lowers(&self) -> Result<()> {
        self.make_dir("lower1")?;
        self.make_dir("lower2")?;
        let upper = self.make_dir("upper")?;
        let work = self.make_dir("work")?;
        let merged = self.make_dir("merged")?;
        execute(
            &self.spec(["lower2", "lower1"], "upper", "work", "merged"),
            &MountPlan::Absolute {
                options: self.two_lower_options(&upper, &work),
                target: merged.clone(),
            },
        )?;
        unmount(&merged)
    }

    /// `lowerdir=lower2:lower1,upperdir=<upper>,workdir=<work>`, absolute.
    fn two_lower_options(&self, upper: &Path, work: &Path) -> String {
        format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            self.path.join("lower2").display(),
            self.path.join("lower1").display(),
            upper.display(),
            work.display()
        )
    }

    /// A `lowerdir+` mount through fsopen/fsconfig/fsmount/move_mount.
    fn mount_lowerdir_plus(&self) -> Result<()> {
        let upper = self.make_dir("upper-plus")?;
        let work = self.make_dir("work-plus")?;
        let merged = self.make_dir("merged-plus")?;
        execute(
            &self.spec(
                ["lower2", "lower1"],
                "upper-plus",
                "work-plus",
                "merged-plus",
            ),
            &MountPlan::LowerdirPlus {
                home: self.path.clone(),
                lowers: vec![self.path.join("lower2"), self.path.join("lower1")],
                upper: Some(upper),
                work: Some(work),
                index_off: false,
                volatile: false,
                target: merged.clone(),
            },
        )?;
        unmount(&merged)
    }

    /// A mount with `volatile`, through mount(2); what it leaves in the workdir is removed
    /// ([`crate::clear_volatile`]), which is checked by mounting the same dirs again without it.
    fn mount_volatile(&self) -> Result<()> {
        let upper = self.make_dir("upper-volatile")?;
        let work = self.make_dir("work-volatile")?;
        let merged = self.make_dir("merged-volatile")?;
        let spec = self.spec(
            ["lower2", "lower1"],
            "upper-volatile",
            "work-volatile",
            "merged-volatile",
        );
        let options = self.two_lower_options(&upper, &work);
        let plan = MountPlan::Absolute {
            options: format!("{options},volatile"),
            target: merged.clone(),
        };
        execute(&spec, &plan)?;
        unmount(&merged)?;
        crate::clear_volatile(&work)?;
        execute(
            &spec,
            &MountPlan::Absolute {
                options,
                target: merged.clone(),
            },
        )?;
        unmount(&merged)
    }

    /// The spec of a test mount of dirs of this check dir.
    fn spec(&self, lowers: [&str; 2], upper: &str, work: &str, target: &str) -> OverlaySpec {
        OverlaySpec {
            home: self.path.clone(),
            lowers: lowers.iter().map(|lower| lower.to_string()).collect(),
            upper: Some(upper.to_string()),
            work: Some(work.to_string()),
            target: target.to_string(),
        }
    }
}

impl Drop for CheckDir {
    fn drop(&mut self) {
        for merged in ["merged", "merged-plus", "merged-volatile"] {
            let merged = self.path.join(merged);
            if crate::is_mountpoint(&merged).unwrap_or(false) {
                if let Err(err) = unmount(&merged) {
                    tracing::warn!(error = %err, "cannot unmount probe mount");
                }
            }
        }
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(error = %err, path = %self.path.display(), "cannot remove probe dir");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magics_have_docker_names() {
        for (magic, name) in [
            (0xEF53, "extfs"),
            (0x58465342, "xfs"),
            (0x9123683E, "btrfs"),
            (0x01021994, "tmpfs"),
            (0x794C7630, "overlayfs"),
            (0x12345678, "0x12345678"),
        ] {
            assert_eq!(backing_fs_name(magic), name);
        }
    }
}
