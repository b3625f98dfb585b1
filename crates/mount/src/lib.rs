//! mount: kernel feature probes, overlay mount plans and their executor, and the Docker `-init`
//! layer content (format.md §4.2, §4.5, §5).
//!
//! The shape is plan, then execute: [`KernelFeatures::probe`] finds out what the kernel and the
//! backing filesystem offer by trying it, [`plan`] turns an [`OverlaySpec`] into a checked
//! [`MountPlan`] (plain data, unit-tested without root), and [`execute`] checks the spec's paths
//! on the file system (`checked`: real directories below the driver home, `l/` links relative and
//! inside it) and hands the plan to the kernel, mounting onto the checked target's descriptor.
#![deny(unsafe_code)]

mod checked;
mod init_layer;
mod inuse;
mod mountinfo;
mod probe;
mod sys;

use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

pub use init_layer::populate_init_layer;
pub use inuse::{upper_in_use, UpperUse};

/// The most lower layers one overlay mount may stack, whatever way they are passed: the kernel's
/// `OVL_MAX_STACK` (fs/overlayfs/ovl_entry.h, "too many lower directories, limit is 500"), see
/// <https://docs.kernel.org/filesystems/overlayfs.html#multiple-lower-layers>.
pub const OVL_MAX_STACK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the kernel has no overlay filesystem (not in /proc/filesystems, and mounting one in \
         {path} failed with ENODEV): load the module with `modprobe overlay`"
    )]
    NoOverlayModule { path: PathBuf },
    #[error("overlay not supported: test mount in {path} failed")]
    OverlayNotSupported {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    #[error(
        "backing filesystem {backing_fs} at {path} was formatted without d_type support \
         (ftype=0); overlay needs it: recreate it with `mkfs.xfs -n ftype=1`"
    )]
    NoDType { backing_fs: String, path: PathBuf },
    #[error("{operation} {path}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{operation} {path}")]
    Sys {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("refusing {path}: it {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("invalid overlay spec for {target}: {reason}")]
    InvalidSpec { target: PathBuf, reason: String },
    #[error(
        "too many layers: {n_lowers} lowers exceed the kernel's overlay stack limit of {limit} \
         (OVL_MAX_STACK)"
    )]
    StackTooDeep { n_lowers: usize, limit: usize },
    #[error(
        "too many layers: mount data of {data_len} bytes for {n_lowers} lowers exceeds the page \
         size limit of {limit} bytes even with paths relative to the driver home, and the kernel \
         has no `lowerdir+`"
    )]
    TooManyLayers {
        n_lowers: usize,
        data_len: usize,
        limit: usize,
    },
    #[error("mounting overlay at {target} failed ({data_len} bytes of mount data)")]
    Mount {
        target: PathBuf,
        data_len: usize,
        #[source]
        source: Errno,
    },
    #[error("mounting overlay at {target} with the new mount API failed at {step}{kernel_log}")]
    NewMountApi {
        target: PathBuf,
        step: String,
        /// What the kernel wrote to the filesystem context's message log, prefixed with `: `.
        kernel_log: String,
        #[source]
        source: Errno,
    },
    #[error("the mount helper thread for {target} panicked")]
    HelperThreadPanicked { target: PathBuf },
    #[error("{target} is not mounted")]
    NotMounted { target: PathBuf },
    #[error("unmounting {target} failed")]
    Unmount {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("init layer: cannot {operation} /{path} in {root}")]
    InitLayer {
        root: PathBuf,
        path: String,
        operation: &'static str,
        #[source]
        source: Errno,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the kernel and the backing filesystem offer, found by trying (never by version numbers).
#[derive(Debug, Clone)]
pub struct KernelFeatures {
    /// Docker's name for the filesystem type of the test dir (`extfs`, `xfs`, …), or the
    /// `statfs` magic in hex when unknown.
    pub backing_fs: String,
    /// `getdents` reports file types. Always true in a probed value: the probe refuses a
    /// filesystem without d_type.
    pub d_type: bool,
    /// `/sys/module/overlay/parameters/index` exists: pass `index=off` as Docker does.
    pub index_param: bool,
    /// The new mount API accepts `lowerdir+` (Linux 6.8+).
    pub lowerdir_plus: bool,
    /// The overlay takes `volatile` (Linux 5.10+): it then never syncs the upper filesystem,
    /// not even when it is unmounted (see [`plan_volatile`]).
    pub volatile: bool,
    pub page_size: usize,
    /// What the overlay module turns on for mounts that do not say otherwise. Read from the
    /// module's parameters with every probe, also when the rest comes from the boot's cache:
    /// root can change them at any time.
    pub defaults: OverlayDefaults,
}

/// Overlay features the kernel enables by default for a mount whose options do not name them
/// (`/sys/module/overlay/parameters/{redirect_dir,metacopy}`: `Y`, `on` or `follow`). Either one
/// means that a container's upperdir alone may not say what changed: a renamed directory is a
/// redirect, a chown'ed file a metadata-only copy
/// (<https://docs.kernel.org/filesystems/overlayfs.html>).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverlayDefaults {
    pub redirect_dir: bool,
    pub metacopy: bool,
}

impl OverlayDefaults {
    /// Reads the overlay module's parameters; a parameter that is missing (the module is not
    /// loaded, or too old to have it) is off.
    pub fn read() -> OverlayDefaults {
        probe::overlay_defaults()
    }

    /// The first feature that is on, by its parameter name.
    pub fn first_enabled(&self) -> Option<&'static str> {
        if self.redirect_dir {
            Some("redirect_dir")
        } else if self.metacopy {
            Some("metacopy")
        } else {
            None
        }
    }
}

impl KernelFeatures {
    /// Probes in a temp dir below `test_dir` (a real two-lower overlay mount, getdents d_type,
    /// fsopen/fsconfig lowerdir+). Errors name the remedy (`mkfs.xfs -n ftype=1` for d_type).
    pub fn probe(test_dir: &Path) -> Result<KernelFeatures> {
        probe::probe(test_dir)
    }

    /// [`KernelFeatures::probe`] once per boot: the result is kept in `cache` (a small text
    /// file) with the boot id, the kernel release and the test dir's device and inode, and
    /// reused while all of them match. A cache that cannot be read or written is ignored.
    pub fn probe_cached(test_dir: &Path, cache: &Path) -> Result<KernelFeatures> {
        probe::probe_cached(test_dir, cache)
    }
}

/// Refuses a backing filesystem without d_type (xfs `ftype=0`, the CentOS 7 trap) for the
/// directory `path` would live in, before anything is created there: `path` itself or its
/// nearest existing ancestor. Writes nothing when it can tell by reading (a non-empty directory,
/// or the XFS geometry); only an empty directory on another filesystem gets a dummy file,
/// created and removed.
pub fn require_d_type(path: &Path) -> Result<()> {
    probe::require_d_type(path)
}

/// What to mount, paths relative to `home` (the overlay2 driver dir H), nearest lower first.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    pub home: PathBuf,
    /// `l/<LID>` or `<id>/diff` entries, relative to `home`.
    pub lowers: Vec<String>,
    /// `<id>/diff`, relative to `home`; `None` for a read-only mount.
    pub upper: Option<String>,
    /// `<id>/work`, relative to `home`.
    pub work: Option<String>,
    /// `<id>/merged`, relative to `home`.
    pub target: String,
}

/// A checked mount plan: plain data, unit-testable without root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// Docker's form: absolute `H/l/<LID>` lowerdir option string (fits in page_size - 1 bytes).
    Absolute { options: String, target: PathBuf },
    /// Docker's page-size fallback: options relative to `home`, mounted after chdir(home).
    Relative {
        home: PathBuf,
        options: String,
        target: String,
    },
    /// New mount API: one `lowerdir+` fsconfig per lower, no option-length limit.
    LowerdirPlus {
        home: PathBuf,
        lowers: Vec<PathBuf>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
        index_off: bool,
        volatile: bool,
        target: PathBuf,
    },
}

/// What a `volatile` mount (see [`plan_volatile`]) leaves in its workdir `work`,
/// `work/work/incompat/volatile/dirty` (a file), removed after its unmount: the kernel refuses to mount
/// with a workdir that holds it, and Docker's layer dirs never do. Every step goes through
/// directory descriptors and never follows a symlink; a workdir without it is left as it is.
pub fn clear_volatile(work: &Path) -> Result<()> {
    use rustix::fd::OwnedFd;
    use rustix::fs::{AtFlags, OFlags};
    let sys = |operation, path: PathBuf| {
        move |source| Error::Sys {
            operation,
            path,
            source,
        }
    };
    // One directory below `dir`, never through a symlink; `None` where it does not exist.
    let open = |dir: &OwnedFd, path: &Path| -> Result<Option<OwnedFd>> {
        let name = path.file_name().unwrap_or_default();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(source) => Err(sys("opening", path.to_path_buf())(source)),
        }
    };
    let unlink = |dir: &OwnedFd, path: &Path, flags: AtFlags| {
        let name = path.file_name().unwrap_or_default();
        match rustix::fs::unlinkat(dir, name, flags) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(source) => Err(sys("removing", path.to_path_buf())(source)),
        }
    };
    let workdir = syscompat::dir::open_dir_path(work)
        .map_err(sys("opening the workdir", work.to_path_buf()))?;
    let (inner, incompat, volatile) = (
        work.join("work"),
        work.join("work/incompat"),
        work.join("work/incompat/volatile"),
    );
    let Some(inner_fd) = open(&workdir, &inner)? else {
        return Ok(());
    };
    let Some(incompat_fd) = open(&inner_fd, &incompat)? else {
        return Ok(());
    };
    let Some(volatile_fd) = open(&incompat_fd, &volatile)? else {
        return Ok(());
    };
    unlink(&volatile_fd, &volatile.join("dirty"), AtFlags::empty())?;
    unlink(&incompat_fd, &volatile, AtFlags::REMOVEDIR)?;
    unlink(&inner_fd, &incompat, AtFlags::REMOVEDIR)
}

/// Chooses how to mount `spec`, as Docker's overlay2 driver does (format.md §4.2), with `lowerdir+` as
/// the fallback for stacks whose mount data no longer fits in a page even with relative paths:
///
/// 1. `[index=off,]lowerdir=H/l/A:H/l/B…[,upperdir=H/<id>/diff,workdir=H/<id>/work]` when it
///    fits in `page_size - 1` bytes → [`MountPlan::Absolute`];
/// 2. else the same options relative to H when they fit → [`MountPlan::Relative`] (one mount(2)
///    call, where `lowerdir+` takes one fsconfig call per lower);
/// 3. else, when the kernel takes `lowerdir+` → [`MountPlan::LowerdirPlus`];
/// 4. else [`Error::TooManyLayers`].
///
/// The page-size limit: mount(2) copies its `data` argument into a single page
/// (`copy_mount_options` in fs/namespace.c), so the option string plus its terminating NUL must
/// fit in `page_size` bytes; moby checks `len(mountData) > pageSize-1` the same way before
/// falling back to relative paths. More than [`OVL_MAX_STACK`] lowers is refused up front,
/// since the kernel refuses them in every form. A read-only mount (no upper) needs at least two
/// lowers: Linux 6.18 answers one lower without an upper with EINVAL and "at least 2 lowerdir are
/// needed while upperdir nonexistent" (checked by hand on this kernel; see
/// <https://docs.kernel.org/filesystems/overlayfs.html#multiple-lower-layers>).
pub fn plan(spec: &OverlaySpec, features: &KernelFeatures) -> Result<MountPlan> {
    plan_with(spec, features, false)
}

/// [`plan`] with the `volatile` option where the kernel takes it and the mount has an upper (the
/// option counts towards the page of mount data like any other). Its unmount then leaves the
/// upper filesystem's sync to the caller, which must sync it itself (`syncfs`) before anything
/// it publishes names the upper layer, and remove what the kernel leaves in the workdir
/// ([`clear_volatile`]) before the layer is mounted again. For a mount whose upper is written
/// once and unmounted at once, such as Docker's init layer.
pub fn plan_volatile(spec: &OverlaySpec, features: &KernelFeatures) -> Result<MountPlan> {
    plan_with(spec, features, features.volatile && spec.upper.is_some())
}

fn plan_with(spec: &OverlaySpec, features: &KernelFeatures, volatile: bool) -> Result<MountPlan> {
    validate(spec)?;
    let n_lowers = spec.lowers.len();
    if n_lowers > OVL_MAX_STACK {
        return Err(Error::StackTooDeep {
            n_lowers,
            limit: OVL_MAX_STACK,
        });
    }
    let index_off = features.index_param;
    let max_data_len = features.page_size.saturating_sub(1);
    let home = spec.home.to_str().filter(|home| legacy_safe(home));
    let legacy_ok = home.is_some()
        && spec
            .lowers
            .iter()
            .chain(spec.upper.iter())
            .chain(spec.work.iter())
            .all(|entry| legacy_safe(entry));

    if let Some(home) = home.filter(|_| legacy_ok) {
        let absolute = |entry: &str| format!("{}/{entry}", home.trim_end_matches('/'));
        let options = legacy_options(
            index_off,
            spec.lowers.iter().map(|entry| absolute(entry)),
            spec.upper.as_deref().map(absolute),
            spec.work.as_deref().map(absolute),
            volatile,
        );
        if options.len() <= max_data_len {
            return Ok(MountPlan::Absolute {
                options,
                target: spec.home.join(&spec.target),
            });
        }
        tracing::debug!(
            n_lowers,
            data_len = options.len(),
            max_data_len,
            "absolute overlay mount data does not fit in a page"
        );
    }

    let relative = legacy_ok.then(|| {
        legacy_options(
            index_off,
            spec.lowers.iter().cloned(),
            spec.upper.clone(),
            spec.work.clone(),
            volatile,
        )
    });
    if let Some(options) = relative.as_ref().filter(|o| o.len() <= max_data_len) {
        return Ok(MountPlan::Relative {
            home: spec.home.clone(),
            options: options.clone(),
            target: spec.target.clone(),
        });
    }
    if features.lowerdir_plus {
        return Ok(MountPlan::LowerdirPlus {
            home: spec.home.clone(),
            lowers: spec.lowers.iter().map(|l| spec.home.join(l)).collect(),
            upper: spec.upper.as_ref().map(|upper| spec.home.join(upper)),
            work: spec.work.as_ref().map(|work| spec.home.join(work)),
            index_off,
            volatile,
            target: spec.home.join(&spec.target),
        });
    }
    let Some(options) = relative else {
        return Err(invalid(
            spec,
            "paths with ',', ':', '\\' or non-UTF-8 bytes cannot be passed as mount data, and \
             the kernel has no `lowerdir+`",
        ));
    };
    Err(Error::TooManyLayers {
        n_lowers,
        data_len: options.len(),
        limit: max_data_len,
    })
}

/// Performs the mount plan of `spec` (what [`plan`] made of it). First every path of the spec is
/// checked below its home: lowers, upper and work must be real directories reached without a
/// symlink, except that a lower may be a relative link that stays inside the home (`l/<LID> ->
/// ../<id>/diff`); the target is opened `O_PATH | O_NOFOLLOW | O_DIRECTORY` and the overlay is
/// mounted onto that descriptor, so nothing outside the home is ever mounted over or used as a
/// layer. Errors name the path and carry the errno.
pub fn execute(spec: &OverlaySpec, plan: &MountPlan) -> Result<()> {
    execute_once(spec, plan, &mut HashSet::new())
}

/// [`execute`] for one of several mounts of the same command over the same data root, which
/// nothing else changes meanwhile (its lock is held): lower entries in `verified` were checked
/// by an earlier mount and are not checked again; those this one checks are added.
pub fn execute_once(
    spec: &OverlaySpec,
    plan: &MountPlan,
    verified: &mut HashSet<String>,
) -> Result<()> {
    let target = checked::check(spec, verified)?;
    let onto = target.proc_path();
    let shown = &target.shown;
    match plan {
        MountPlan::Absolute { options, .. } => {
            tracing::debug!(target = %shown.display(), data_len = options.len(), "mount overlay");
            mount_legacy(&onto, options, shown)
        }
        MountPlan::Relative { home, options, .. } => mount_relative(home, options, &onto, shown),
        MountPlan::LowerdirPlus {
            home: _,
            lowers,
            upper,
            work,
            index_off,
            volatile,
            target: _,
        } => mount_lowerdir_plus(
            lowers,
            upper.as_deref(),
            work.as_deref(),
            *index_off,
            *volatile,
            &target,
        ),
    }
}

/// Unmounts `target`, lazily (`MNT_DETACH`, as Docker's `Put`) when it is busy; a symlink at
/// `target` is not followed (`UMOUNT_NOFOLLOW`). A mount nothing uses is unmounted at once: a lazy
/// unmount waits for a full RCU grace period (about 8 ms on Linux 6.18 against 1.6 ms).
pub fn unmount(target: &Path) -> Result<()> {
    tracing::debug!(target = %target.display(), "unmount");
    let flags = match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Err(Errno::BUSY) => {
            tracing::debug!(target = %target.display(), "busy: unmount (detach)");
            UnmountFlags::DETACH | UnmountFlags::NOFOLLOW
        }
        done => {
            if done.is_ok() {
                return Ok(());
            }
            // Errors are reported as the lazy unmount reports them.
            UnmountFlags::DETACH | UnmountFlags::NOFOLLOW
        }
    };
    match rustix::mount::unmount(target, flags) {
        Ok(()) => Ok(()),
        // umount2(2) answers EINVAL when the target is not the root of a mount.
        Err(Errno::INVAL) => Err(Error::NotMounted {
            target: target.to_path_buf(),
        }),
        Err(source) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Unmounts `target` now (never lazily): a busy mount fails with `EBUSY` and stays. A symlink at
/// `target` is not followed.
pub fn unmount_now(target: &Path) -> Result<()> {
    tracing::debug!(target = %target.display(), "unmount (not lazily)");
    match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) => Err(Error::NotMounted {
            target: target.to_path_buf(),
        }),
        Err(source) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Whether `path` is a mount point (from /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> Result<bool> {
    mountinfo::is_mountpoint(path)
}

fn invalid(spec: &OverlaySpec, reason: &str) -> Error {
    Error::InvalidSpec {
        target: spec.home.join(&spec.target),
        reason: reason.to_owned(),
    }
}

fn validate(spec: &OverlaySpec) -> Result<()> {
    if spec.lowers.is_empty() {
        return Err(invalid(
            spec,
            "an overlay needs at least one lower directory",
        ));
    }
    let entries = spec
        .lowers
        .iter()
        .chain(spec.upper.iter())
        .chain(spec.work.iter())
        .chain(std::iter::once(&spec.target));
    for entry in entries {
        if entry.is_empty() || entry.starts_with('/') || entry.contains('\0') {
            return Err(invalid(
                spec,
                &format!("entry {entry:?} is not a non-empty path relative to the driver home"),
            ));
        }
    }
    match (&spec.upper, &spec.work) {
        (Some(_), Some(_)) => {}
        (None, None) if spec.lowers.len() < 2 => {
            return Err(invalid(
                spec,
                "a read-only overlay (no upper) needs at least 2 lower directories",
            ));
        }
        (None, None) => {}
        _ => return Err(invalid(spec, "upper and work must be given together")),
    }
    Ok(())
}

/// Whether a path can be written into legacy mount data unescaped: `,` separates options, `:`
/// separates lowers and `\` escapes both.
fn legacy_safe(path: &str) -> bool {
    !path.contains([',', ':', '\\', '\0'])
}

fn legacy_options(
    index_off: bool,
    lowers: impl Iterator<Item = String>,
    upper: Option<String>,
    work: Option<String>,
    volatile: bool,
) -> String {
    let mut options = String::new();
    if index_off {
        options.push_str("index=off,");
    }
    options.push_str("lowerdir=");
    for (lower_idx, lower) in lowers.enumerate() {
        if lower_idx > 0 {
            options.push(':');
        }
        options.push_str(&lower);
    }
    if let (Some(upper), Some(work)) = (upper, work) {
        options.push_str(",upperdir=");
        options.push_str(&upper);
        options.push_str(",workdir=");
        options.push_str(&work);
        if volatile {
            options.push_str(",volatile");
        }
    }
    options
}

/// mount(2) of an overlay; `shown_target` is the target as errors name it.
fn mount_legacy(target: &Path, options: &str, shown_target: &Path) -> Result<()> {
    let data = CString::new(options).map_err(|_| Error::InvalidSpec {
        target: shown_target.to_path_buf(),
        reason: "mount data contains a NUL byte".to_owned(),
    })?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|source| Error::Mount {
        target: shown_target.to_path_buf(),
        data_len: options.len(),
        source,
    })
}

/// Mounts with options relative to `home`: a helper thread takes its own cwd with
/// `unshare(CLONE_FS)` and `chdir(home)`, so the process cwd never moves (Docker re-execs a
/// `docker-mountfrom` helper for the same purpose).
fn mount_relative(home: &Path, options: &str, onto: &Path, shown_target: &Path) -> Result<()> {
    tracing::debug!(
        home = %home.display(),
        target = %shown_target.display(),
        data_len = options.len(),
        "mount overlay with paths relative to the driver home"
    );
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            sys::unshare_fs_attributes().map_err(|source| Error::Sys {
                operation: "unshare(CLONE_FS) before chdir to",
                path: home.to_path_buf(),
                source,
            })?;
            rustix::process::chdir(home).map_err(|source| Error::Sys {
                operation: "chdir to",
                path: home.to_path_buf(),
                source,
            })?;
            mount_legacy(onto, options, shown_target)
        });
        helper.join().unwrap_or_else(|_| {
            Err(Error::HelperThreadPanicked {
                target: shown_target.to_path_buf(),
            })
        })
    })
}

fn mount_lowerdir_plus(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    index_off: bool,
    volatile: bool,
    checked_target: &checked::CheckedTarget,
) -> Result<()> {
    let target = checked_target.shown.as_path();
    tracing::debug!(
        target = %target.display(),
        n_lowers = lowers.len(),
        "mount overlay with fsconfig lowerdir+"
    );
    let fail =
        |fs_fd: Option<&rustix::fd::OwnedFd>, step: String, source: Errno| Error::NewMountApi {
            target: target.to_path_buf(),
            step,
            kernel_log: fs_fd.map(kernel_log).unwrap_or_default(),
            source,
        };
    let fs_fd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|source| fail(None, "fsopen(\"overlay\")".to_owned(), source))?;
    let set = |key: &str, value: &Path, step: String| {
        rustix::mount::fsconfig_set_string(&fs_fd, key, value)
            .map_err(|source| fail(Some(&fs_fd), step, source))
    };
    set("source", Path::new("overlay"), "fsconfig source".to_owned())?;
    for (lower_idx, lower) in lowers.iter().enumerate() {
        set(
            "lowerdir+",
            lower,
            format!("fsconfig lowerdir+ #{} {}", lower_idx + 1, lower.display()),
        )?;
    }
    for (key, dir) in [("upperdir", upper), ("workdir", work)] {
        if let Some(dir) = dir {
            set(key, dir, format!("fsconfig {key} {}", dir.display()))?;
        }
    }
    if index_off {
        set("index", Path::new("off"), "fsconfig index=off".to_owned())?;
    }
    if volatile {
        rustix::mount::fsconfig_set_flag(&fs_fd, "volatile")
            .map_err(|source| fail(Some(&fs_fd), "fsconfig volatile".to_owned(), source))?;
    }
    rustix::mount::fsconfig_create(&fs_fd)
        .map_err(|source| fail(Some(&fs_fd), "fsconfig create".to_owned(), source))?;
    let mount_fd = rustix::mount::fsmount(
        &fs_fd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(|source| fail(Some(&fs_fd), "fsmount".to_owned(), source))?;
    rustix::mount::move_mount(
        &mount_fd,
        "",
        checked_target.fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|source| fail(Some(&fs_fd), "move_mount".to_owned(), source))
}

/// Drains the messages the kernel queued on a filesystem context (lines like
/// `e overlay: failed to ...`), formatted as `: msg; msg` or empty.
fn kernel_log(fs_fd: &rustix::fd::OwnedFd) -> String {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; the kernel keeps at most 8, so the bound is generous.
    for _ in 0..16 {
        match rustix::io::read(fs_fd, &mut buf) {
            Ok(len) if len > 0 => {
                messages.push(String::from_utf8_lossy(&buf[..len]).trim_end().to_owned());
            }
            _ => break,
        }
    }
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 26-character link id as Docker generates them (format.md §4.1).
    fn lid(layer_idx: usize) -> String {
        format!("{:A>26}", format!("L{layer_idx}"))
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn spec(n_lowers: usize, rw: bool) -> OverlaySpec {
        OverlaySpec {
            home: PathBuf::from("/var/lib/docker/overlay2"),
            lowers: (0..n_lowers).map(|idx| format!("l/{}", lid(idx))).collect(),
            upper: rw.then(|| format!("{ID}/diff")),
            work: rw.then(|| format!("{ID}/work")),
            target: format!("{ID}/merged"),
        }
    }

    fn features(index_param: bool, lowerdir_plus: bool) -> KernelFeatures {
        KernelFeatures {
            backing_fs: "extfs".to_owned(),
            d_type: true,
            index_param,
            lowerdir_plus,
            volatile: true,
            page_size: 4096,
            defaults: OverlayDefaults::default(),
        }
    }

    #[test]
    fn volatile_is_added_to_read_write_plans_that_still_fit() {
        let with = |plan: &MountPlan| match plan {
            MountPlan::Absolute { options, .. } | MountPlan::Relative { options, .. } => {
                options.ends_with(",volatile")
            }
            MountPlan::LowerdirPlus { volatile, .. } => *volatile,
        };
        // Absolute, relative and lowerdir+ plans of a read-write mount.
        for n_lowers in [2, 80, 200] {
            let plain = plan(&spec(n_lowers, true), &features(true, true)).expect("plan");
            assert!(!with(&plain), "{n_lowers}: volatile only when asked");
            let volatile =
                plan_volatile(&spec(n_lowers, true), &features(true, true)).expect("plan");
            assert!(with(&volatile), "{n_lowers}: {volatile:?}");
            let mut without = features(true, true);
            without.volatile = false;
            assert_eq!(
                plan_volatile(&spec(n_lowers, true), &without).expect("plan"),
                plain,
                "kernel without volatile"
            );
        }
        // Read-only: no upper to be volatile about.
        let read_only = plan(&spec(2, false), &features(true, true)).expect("plan");
        assert_eq!(
            plan_volatile(&spec(2, false), &features(true, true)).expect("plan"),
            read_only
        );
        // Around the page limit the option counts like any other: the mount data of every plan
        // still fits in a page (where it no longer does, the plan goes relative).
        for n_lowers in 2..=130 {
            let volatile =
                plan_volatile(&spec(n_lowers, true), &features(true, false)).expect("plan");
            assert!(with(&volatile), "{n_lowers}: {volatile:?}");
            if let MountPlan::Absolute { options, .. } | MountPlan::Relative { options, .. } =
                &volatile
            {
                assert!(options.len() <= 4095, "{n_lowers}: {}", options.len());
            }
        }
    }

    #[test]
    fn two_lowers_give_docker_absolute_options() {
        let spec = OverlaySpec {
            lowers: vec![
                "l/V5UIAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
                "l/P2HVAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            ],
            ..spec(0, true)
        };
        let plan = plan(&spec, &features(false, false)).expect("plan");
        let expected = format!(
            "lowerdir=/var/lib/docker/overlay2/l/V5UIAAAAAAAAAAAAAAAAAAAAAA:\
             /var/lib/docker/overlay2/l/P2HVAAAAAAAAAAAAAAAAAAAAAA,\
             upperdir=/var/lib/docker/overlay2/{ID}/diff,workdir=/var/lib/docker/overlay2/{ID}/work"
        );
        assert_eq!(
            plan,
            MountPlan::Absolute {
                options: expected,
                target: PathBuf::from(format!("/var/lib/docker/overlay2/{ID}/merged")),
            }
        );
    }

    /// The option string of an absolute plan.
    fn absolute_options(plan: MountPlan) -> String {
        match plan {
            MountPlan::Absolute { options, .. } => options,
            plan => panic!("expected an absolute plan, got {plan:?}"),
        }
    }

    /// The option string of a relative plan.
    fn relative_options(plan: MountPlan) -> String {
        match plan {
            MountPlan::Relative { options, .. } => options,
            plan => panic!("expected a relative plan, got {plan:?}"),
        }
    }

    #[test]
    fn index_param_adds_index_off_prefix() {
        let options = absolute_options(plan(&spec(2, true), &features(true, false)).expect("plan"));
        assert!(options.starts_with("index=off,lowerdir=/var/lib/docker/overlay2/l/"));
    }

    #[test]
    fn read_only_form_has_no_upper_or_work() {
        let spec = OverlaySpec {
            lowers: vec![format!("{ID}/diff"), "l/ABC".to_owned()],
            ..spec(0, false)
        };
        let options = absolute_options(plan(&spec, &features(false, false)).expect("plan"));
        assert_eq!(
            options,
            format!("lowerdir=/var/lib/docker/overlay2/{ID}/diff:/var/lib/docker/overlay2/l/ABC")
        );
    }

    #[test]
    fn read_only_with_one_lower_is_refused() {
        let err = plan(&spec(1, false), &features(false, true)).expect_err("one lower, no upper");
        assert!(err.to_string().contains("at least 2 lower"), "{err}");
    }

    #[test]
    fn upper_without_work_is_refused() {
        let spec = OverlaySpec {
            work: None,
            ..spec(2, true)
        };
        assert!(matches!(
            plan(&spec, &features(false, false)),
            Err(Error::InvalidSpec { .. })
        ));
    }

    #[test]
    fn eighty_lowers_overflow_absolute_form_and_fall_back_to_relative() {
        // 80 × ("/var/lib/docker/overlay2/l/" + 26 + ":") = 80 × 54 bytes is past 4095 alone.
        let (home, options, target) =
            match plan(&spec(80, true), &features(true, false)).expect("plan") {
                MountPlan::Relative {
                    home,
                    options,
                    target,
                } => (home, options, target),
                plan => panic!("expected a relative plan, got {plan:?}"),
            };
        assert_eq!(home, PathBuf::from("/var/lib/docker/overlay2"));
        assert_eq!(target, format!("{ID}/merged"));
        assert!(options.starts_with(&format!("index=off,lowerdir=l/{}:l/", lid(0))));
        assert!(options.ends_with(&format!(",upperdir={ID}/diff,workdir={ID}/work")));
        assert_eq!(options.matches(':').count(), 79);
    }

    #[test]
    fn eighty_lowers_stay_relative_when_lowerdir_plus_is_available() {
        let plan = plan(&spec(80, true), &features(true, true)).expect("plan");
        assert!(
            matches!(plan, MountPlan::Relative { .. }),
            "expected a relative plan, got {plan:?}"
        );
    }

    #[test]
    fn two_hundred_lowers_use_lowerdir_plus_when_available() {
        // 200 × 29 bytes of relative lowers alone is past 4095.
        let plan = plan(&spec(200, true), &features(true, true)).expect("plan");
        let MountPlan::LowerdirPlus {
            lowers,
            upper,
            work,
            index_off,
            target,
            ..
        } = plan
        else {
            panic!("expected a lowerdir+ plan, got {plan:?}");
        };
        assert_eq!(lowers.len(), 200);
        assert_eq!(
            lowers[0],
            PathBuf::from(format!("/var/lib/docker/overlay2/l/{}", lid(0)))
        );
        assert_eq!(
            upper,
            Some(PathBuf::from(format!("/var/lib/docker/overlay2/{ID}/diff")))
        );
        assert_eq!(
            work,
            Some(PathBuf::from(format!("/var/lib/docker/overlay2/{ID}/work")))
        );
        assert!(index_off);
        assert_eq!(
            target,
            PathBuf::from(format!("/var/lib/docker/overlay2/{ID}/merged"))
        );
    }

    #[test]
    fn relative_form_fits_130_lowers() {
        // format.md §4.2 arithmetic: 10 ("index=off,") + 9 ("lowerdir=") + 130 × 29 - 1
        // + 79 (",upperdir=<64>/diff") + 78 (",workdir=<64>/work") = 3945 ≤ 4095.
        let options =
            relative_options(plan(&spec(130, true), &features(true, false)).expect("plan"));
        assert_eq!(options.len(), 3945);
    }

    #[test]
    fn relative_overflow_is_an_error_naming_the_count() {
        // 142 × 29 bytes of lowers alone is past 4095.
        let err = plan(&spec(142, true), &features(true, false)).expect_err("too long");
        assert!(matches!(err, Error::TooManyLayers { n_lowers: 142, .. }));
        let message = err.to_string();
        assert!(
            message.starts_with("too many layers: mount data of "),
            "{message}"
        );
        assert!(message.contains("142 lowers"), "{message}");
    }

    #[test]
    fn five_hundred_lowers_fit_lowerdir_plus_and_501_do_not() {
        assert!(matches!(
            plan(&spec(500, true), &features(false, true)),
            Ok(MountPlan::LowerdirPlus { .. })
        ));
        let err = plan(&spec(501, true), &features(false, true)).expect_err("501 lowers");
        assert!(matches!(
            err,
            Error::StackTooDeep {
                n_lowers: 501,
                limit: 500
            }
        ));
        assert!(err.to_string().contains("501"));
    }

    #[test]
    fn separators_in_paths_need_lowerdir_plus() {
        let spec = OverlaySpec {
            home: PathBuf::from("/data/a,b"),
            ..spec(2, true)
        };
        assert!(matches!(
            plan(&spec, &features(false, false)),
            Err(Error::InvalidSpec { .. })
        ));
        assert!(matches!(
            plan(&spec, &features(false, true)),
            Ok(MountPlan::LowerdirPlus { .. })
        ));
    }

    #[test]
    fn absolute_entries_are_refused() {
        let spec = OverlaySpec {
            lowers: vec!["/etc".to_owned(), "l/A".to_owned()],
            ..spec(0, true)
        };
        assert!(matches!(
            plan(&spec, &features(false, true)),
            Err(Error::InvalidSpec { .. })
        ));
    }
}
