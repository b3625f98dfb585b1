//! Tests against the real kernel; they need root (CI runs them as root). Every mount is held by a
//! guard that detaches it even when an assertion fails.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mount::{execute, is_mountpoint, plan, unmount, KernelFeatures, MountPlan, OverlaySpec};
use rustix::fs::{Mode, XattrFlags};
use syscompat::Resolver;
use treedump::fixture::{names, whiteout, write};

/// Detaches the mount at `target` when dropped, if something is mounted there.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mountpoint(&self.0).unwrap_or(false) {
            let _ = unmount(&self.0);
        }
    }
}

fn features(page_size: usize, lowerdir_plus: bool) -> KernelFeatures {
    KernelFeatures {
        backing_fs: "extfs".to_owned(),
        d_type: true,
        index_param: Path::new("/sys/module/overlay/parameters/index").exists(),
        lowerdir_plus,
        volatile: false,
        page_size,
        defaults: mount::OverlayDefaults::default(),
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// A Docker-shaped driver home with three image layers (top, mid, bottom), their `l/` links and
/// an empty container layer `c` (diff, work, merged).
struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

const LIDS: [&str; 3] = [
    "TOPAAAAAAAAAAAAAAAAAAAAAAA",
    "MIDAAAAAAAAAAAAAAAAAAAAAAA",
    "BOTAAAAAAAAAAAAAAAAAAAAAAA",
];

impl Home {
    fn new() -> Home {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("overlay2");
        fs::create_dir_all(home.join("l")).expect("mkdir l");
        for (layer, lid) in ["top", "mid", "bottom"].iter().zip(LIDS) {
            fs::create_dir_all(home.join(layer).join("diff")).expect("mkdir diff");
            symlink(format!("../{layer}/diff"), home.join("l").join(lid)).expect("symlink");
        }
        let bottom = home.join("bottom/diff");
        write(&bottom.join("f"), "bottom");
        write(&bottom.join("shadow"), "bottom");
        write(&bottom.join("gone"), "bottom");
        write(&bottom.join("opq/old"), "old");
        write(&bottom.join("keep/k"), "k");
        let mid = home.join("mid/diff");
        write(&mid.join("shadow"), "mid");
        write(&mid.join("opq/new"), "new");
        rustix::fs::setxattr(
            mid.join("opq"),
            "trusted.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .expect("opaque xattr");
        let top = home.join("top/diff");
        write(&top.join("shadow"), "top");
        whiteout(&top.join("gone"));
        for dir in ["c/diff", "c/work", "c/merged"] {
            fs::create_dir_all(home.join(dir)).expect("mkdir container layer");
        }
        Home { _tmp: tmp, home }
    }

    fn spec(&self, rw: bool) -> OverlaySpec {
        OverlaySpec {
            home: self.home.clone(),
            lowers: LIDS.iter().map(|lid| format!("l/{lid}")).collect(),
            upper: rw.then(|| "c/diff".to_owned()),
            work: rw.then(|| "c/work".to_owned()),
            target: "c/merged".to_owned(),
        }
    }

    fn merged(&self) -> PathBuf {
        self.home.join("c/merged")
    }

    /// Mounts `plan`, checks the merged view of the three layers, writes through it when `rw`.
    fn check_mount(&self, plan: &MountPlan, rw: bool) {
        let merged = self.merged();
        let _guard = MountGuard(merged.clone());
        execute(&self.spec(rw), plan).unwrap_or_else(|err| panic!("execute {plan:?}: {err}"));
        assert!(is_mountpoint(&merged).expect("is_mountpoint"));
        assert_eq!(read(&merged.join("f")), "bottom");
        assert_eq!(
            read(&merged.join("shadow")),
            "top",
            "the nearest lower wins"
        );
        assert!(
            fs::symlink_metadata(merged.join("gone")).is_err(),
            "the whiteout hides the bottom file"
        );
        assert_eq!(
            names(&merged.join("opq")),
            ["new"],
            "the opaque dir hides lower content"
        );
        assert_eq!(read(&merged.join("keep/k")), "k");
        let written = fs::write(merged.join("written"), "x");
        if rw {
            written.expect("write through a RW overlay");
            assert_eq!(read(&self.home.join("c/diff/written")), "x");
        } else {
            assert!(written.is_err(), "a read-only overlay refuses writes");
        }
        unmount(&merged).expect("unmount");
        assert!(!is_mountpoint(&merged).expect("is_mountpoint"));
    }
}

#[test]
fn probe_on_tmp_finds_overlay_d_type_and_lowerdir_plus_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let features = KernelFeatures::probe(tmp.path()).expect("probe");
    assert!(features.d_type);
    assert!(features.lowerdir_plus, "Linux 6.18 takes lowerdir+");
    // The probe mounts with volatile, clears the mark (mount::clear_volatile) and mounts the
    // same dirs again: true means all three worked.
    assert!(features.volatile, "Linux 6.18 takes volatile");
    assert_eq!(
        features.index_param,
        Path::new("/sys/module/overlay/parameters/index").exists()
    );
    assert!(features.page_size >= 4096 && features.page_size.is_power_of_two());
    // The magic of the test dir's filesystem, named by a hand-written table (format.md §5).
    let magic = rustix::fs::statfs(tmp.path()).expect("statfs").f_type as u32;
    let expected = match magic {
        0xEF53 => "extfs",
        0x01021994 => "tmpfs",
        0x58465342 => "xfs",
        0x9123683E => "btrfs",
        0x794C7630 => "overlayfs",
        _ => "",
    };
    if !expected.is_empty() {
        assert_eq!(features.backing_fs, expected);
    }
    assert!(names(tmp.path()).is_empty(), "the probe dir is removed");
}

#[test]
fn probe_on_overlay_fails_and_cleans_up_needs_root() {
    // overlayfs is refused as an upper filesystem, so the probe's test mount fails there.
    let home = Home::new();
    let merged = home.merged();
    let _guard = MountGuard(merged.clone());
    let plan = plan(&home.spec(true), &features(4096, false)).expect("plan");
    execute(&home.spec(true), &plan).expect("execute");
    let before = names(&merged);
    let err = KernelFeatures::probe(&merged).expect_err("overlay upper on overlay");
    assert!(
        err.to_string().starts_with("overlay not supported"),
        "{err}"
    );
    assert_eq!(
        names(&merged),
        before,
        "the probe dir is removed after a failure"
    );
    assert!(names(&home.home.join("c/diff")).is_empty());
}

/// Every plan kind but the relative one (which has its own test) mounts the three-layer home.
#[test]
fn absolute_read_only_and_lowerdir_plus_plans_mount_three_lowers_needs_root() {
    type IsKind = fn(&MountPlan) -> bool;
    let absolute: IsKind = |plan| matches!(plan, MountPlan::Absolute { .. });
    let lowerdir_plus: IsKind = |plan| matches!(plan, MountPlan::LowerdirPlus { .. });
    for (rw, kernel, expected_kind) in [
        (true, features(4096, false), absolute),
        (false, features(4096, false), absolute),
        (true, features(64, true), lowerdir_plus),
    ] {
        let home = Home::new();
        let plan = plan(&home.spec(rw), &kernel).expect("plan");
        assert!(expected_kind(&plan), "{plan:?}");
        home.check_mount(&plan, rw);
    }
}

#[test]
fn relative_plan_mounts_and_keeps_the_cwd_needs_root() {
    let home = Home::new();
    let index = if features(4096, false).index_param {
        "index=off,"
    } else {
        ""
    };
    let relative = format!(
        "{index}lowerdir=l/{}:l/{}:l/{},upperdir=c/diff,workdir=c/work",
        LIDS[0], LIDS[1], LIDS[2]
    );
    // A page just big enough for the relative form, so the absolute one cannot fit.
    let plan = plan(&home.spec(true), &features(relative.len() + 1, false)).expect("plan");
    assert_eq!(
        plan,
        MountPlan::Relative {
            home: home.home.clone(),
            options: relative,
            target: "c/merged".to_owned(),
        }
    );
    let cwd_before = std::env::current_dir().expect("cwd");
    home.check_mount(&plan, true);
    assert_eq!(std::env::current_dir().expect("cwd"), cwd_before);
}

#[test]
fn five_hundred_lowers_mount_with_lowerdir_plus_and_501_are_refused_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().to_path_buf();
    let n_lowers = 501;
    for layer_idx in 0..n_lowers {
        write(
            &home.join(format!("{layer_idx}/diff/n")),
            &layer_idx.to_string(),
        );
        write(&home.join(format!("{layer_idx}/diff/only{layer_idx}")), "");
    }
    for dir in ["c/diff", "c/work", "c/merged"] {
        fs::create_dir_all(home.join(dir)).expect("mkdir");
    }
    let spec = |n_lowers: usize| OverlaySpec {
        home: home.clone(),
        lowers: (0..n_lowers).map(|idx| format!("{idx}/diff")).collect(),
        upper: Some("c/diff".to_owned()),
        work: Some("c/work".to_owned()),
        target: "c/merged".to_owned(),
    };
    let merged = home.join("c/merged");
    let _guard = MountGuard(merged.clone());

    let plan500 = plan(&spec(500), &features(4096, true)).expect("plan 500");
    assert!(matches!(plan500, MountPlan::LowerdirPlus { .. }));
    execute(&spec(500), &plan500).expect("mount 500 lowers");
    assert_eq!(read(&merged.join("n")), "0");
    assert!(merged.join("only499").exists());
    assert!(!merged.join("only500").exists());
    unmount(&merged).expect("unmount");

    let err = plan(&spec(501), &features(4096, true)).expect_err("plan 501");
    assert!(err.to_string().contains("501"), "{err}");
    // The kernel itself refuses the 501st lower as well, so the plan's limit is the real one.
    let forced = MountPlan::LowerdirPlus {
        home: home.clone(),
        lowers: (0..n_lowers)
            .map(|idx| home.join(format!("{idx}/diff")))
            .collect(),
        upper: Some(home.join("c/diff")),
        work: Some(home.join("c/work")),
        index_off: false,
        volatile: false,
        target: merged.clone(),
    };
    let err = execute(&spec(n_lowers), &forced).expect_err("the kernel refuses 501 lowers");
    assert!(matches!(err, mount::Error::NewMountApi { .. }), "{err}");
    assert!(err.to_string().contains("lowerdir+ #501"), "{err}");
    assert!(!is_mountpoint(&merged).expect("is_mountpoint"));
}

#[test]
fn symlinked_target_upper_or_lower_outside_home_is_refused_needs_root() {
    // Each case damages a fresh home: the hostile links point at a sentinel dir beside the home,
    // never at a host path, and nothing may be mounted on it or written into it.
    type Damage = fn(&Path, &Path);
    let cases: [(&str, Damage, &str); 5] = [
        (
            "merged -> outside",
            |home, outside| {
                fs::remove_dir(home.join("c/merged")).expect("rmdir");
                symlink(outside, home.join("c/merged")).expect("symlink");
            },
            "c/merged",
        ),
        (
            "diff -> outside",
            |home, outside| {
                fs::remove_dir_all(home.join("c/diff")).expect("rm");
                symlink(outside, home.join("c/diff")).expect("symlink");
            },
            "c/diff",
        ),
        (
            "l/<LID> -> absolute",
            |home, outside| {
                fs::remove_file(home.join("l").join(LIDS[0])).expect("rm");
                symlink(outside, home.join("l").join(LIDS[0])).expect("symlink");
            },
            LIDS[0],
        ),
        (
            "l/<LID> -> ../../outside",
            |home, _| {
                fs::remove_file(home.join("l").join(LIDS[0])).expect("rm");
                symlink("../../outside", home.join("l").join(LIDS[0])).expect("symlink");
            },
            LIDS[0],
        ),
        (
            // Inside the home, but not a layer's diff: the container's own workdir.
            "l/<LID> -> ../c/work",
            |home, _| {
                fs::remove_file(home.join("l").join(LIDS[0])).expect("rm");
                symlink("../c/work", home.join("l").join(LIDS[0])).expect("symlink");
            },
            LIDS[0],
        ),
    ];
    for (name, damage, named) in cases {
        let home = Home::new();
        let outside = home.home.parent().expect("parent").join("outside");
        fs::create_dir_all(&outside).expect("mkdir outside");
        write(&outside.join("sentinel"), "s");
        damage(&home.home, &outside);
        let spec = home.spec(true);
        let plan = plan(&spec, &features(4096, false)).expect("plan");
        let _guard = MountGuard(outside.clone());
        let err = execute(&spec, &plan).expect_err(name);
        assert!(err.to_string().contains(named), "{name}: {err}");
        assert!(!is_mountpoint(&outside).expect("is_mountpoint"), "{name}");
        assert_eq!(names(&outside), ["sentinel"], "{name}");
    }
}

#[test]
fn unmount_of_a_plain_dir_says_not_mounted_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = unmount(tmp.path()).expect_err("not mounted");
    assert!(matches!(err, mount::Error::NotMounted { .. }), "{err}");
    assert!(err.to_string().ends_with("is not mounted"));
}

#[test]
fn is_mountpoint_decodes_spaces_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("a dir\twith blanks");
    fs::create_dir(&target).expect("mkdir");
    assert!(!is_mountpoint(&target).expect("is_mountpoint"));
    let _guard = MountGuard(target.clone());
    rustix::mount::mount(
        "tmpfs",
        &target,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .expect("mount tmpfs");
    assert!(is_mountpoint(&target).expect("is_mountpoint"));
    // A path through a symlink names the same mount point.
    symlink(&target, tmp.path().join("link")).expect("symlink");
    assert!(is_mountpoint(&tmp.path().join("link")).expect("is_mountpoint"));
    unmount(&target).expect("unmount");
    assert!(!is_mountpoint(&target).expect("is_mountpoint"));
}

/// An image layer `img`, an init layer `init` (diff, work, merged) mounted read-write on it.
fn mount_init(tmp: &Path, build_image: impl FnOnce(&Path)) -> (PathBuf, MountGuard) {
    let home = tmp.join("overlay2");
    let image = home.join("img/diff");
    fs::create_dir_all(&image).expect("mkdir image");
    build_image(&image);
    for dir in ["init/diff", "init/work", "init/merged"] {
        fs::create_dir_all(home.join(dir)).expect("mkdir init");
    }
    let spec = OverlaySpec {
        home: home.clone(),
        lowers: vec!["img/diff".to_owned()],
        upper: Some("init/diff".to_owned()),
        work: Some("init/work".to_owned()),
        target: "init/merged".to_owned(),
    };
    let merged = home.join("init/merged");
    let guard = MountGuard(merged.clone());
    execute(&spec, &plan(&spec, &features(4096, false)).expect("plan")).expect("mount init layer");
    (home, guard)
}

fn assert_entry(path: &Path, kind: &str, mode: u32) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let actual = if meta.file_type().is_dir() {
        "dir"
    } else if meta.file_type().is_file() {
        "file"
    } else if meta.file_type().is_symlink() {
        "symlink"
    } else {
        "other"
    };
    assert_eq!(actual, kind, "{}", path.display());
    assert_eq!(meta.uid(), 0, "{}", path.display());
    assert_eq!(meta.gid(), 0, "{}", path.display());
    if kind != "symlink" {
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            mode,
            "{}",
            path.display()
        );
    }
    if kind == "file" {
        assert_eq!(meta.len(), 0, "{}", path.display());
    }
}

#[test]
fn init_layer_replaces_image_files_and_keeps_etc_mode_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, guard) = mount_init(tmp.path(), |image| {
        let etc = image.join("etc");
        write(&etc.join("hosts"), "127.0.0.1 image\n");
        write(&etc.join("passwd"), "root:x:0:0::/root:/bin/sh\n");
        symlink("/etc/passwd", etc.join("hostname")).expect("symlink");
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o700)).expect("chmod etc");
    });
    let merged = home.join("init/merged");
    // Modes must be set explicitly, whatever the umask says.
    let old_umask = rustix::process::umask(Mode::from_raw_mode(0o077));
    let populated = mount::populate_init_layer(&merged, Default::default());
    rustix::process::umask(old_umask);
    populated.expect("populate");
    assert_eq!(
        read(&merged.join("etc/passwd")),
        "root:x:0:0::/root:/bin/sh\n"
    );
    drop(guard);
    assert!(!is_mountpoint(&merged).expect("is_mountpoint"));

    // The init diff as format.md §4.5 lists it for an image that has /etc but no /dev, /proc, /sys.
    let diff = home.join("init/diff");
    assert_eq!(
        names(&diff),
        [".dockerenv", "dev", "etc", "proc", "sys"],
        "top level of the init diff"
    );
    assert_init_dev_and_etc_names(&diff);
    let files = [
        ".dockerenv",
        "dev/console",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ];
    for (kind, paths) in [
        ("file", &files[..]),
        ("dir", &["dev", "dev/pts", "dev/shm", "proc", "sys"]),
    ] {
        for path in paths {
            assert_entry(&diff.join(path), kind, 0o755);
        }
    }
    // /etc existed in the image with 0700: overlay copied it up with that mode.
    assert_entry(&diff.join("etc"), "dir", 0o700);
    assert_entry(&diff.join("etc/mtab"), "symlink", 0);
    assert_eq!(
        fs::read_link(diff.join("etc/mtab")).expect("readlink"),
        Path::new("/proc/mounts")
    );
    // The image layer itself is untouched.
    let image_etc = home.join("img/diff/etc");
    assert_eq!(read(&image_etc.join("hosts")), "127.0.0.1 image\n");
    assert_eq!(
        fs::read_link(image_etc.join("hostname")).expect("readlink"),
        Path::new("/etc/passwd")
    );
}

/// With `openat2` and with the userspace walk older kernels get.
#[test]
fn init_layer_never_writes_through_image_symlinks_needs_root() {
    for resolver in [Resolver::Kernel, Resolver::Userspace] {
        init_layer_stays_inside(resolver);
    }
}

fn init_layer_stays_inside(resolver: Resolver) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sentinel = tmp.path().join("sentinel");
    fs::create_dir(&sentinel).expect("mkdir sentinel");
    write(&sentinel.join("keep"), "sentinel");
    // The host paths a naive implementation would write through `/etc -> /`.
    let host_paths = ["/hosts", "/hostname", "/resolv.conf", "/mtab"];
    let host_before: Vec<bool> = host_paths
        .iter()
        .map(|path| fs::symlink_metadata(path).is_ok())
        .collect();
    let (home, guard) = mount_init(tmp.path(), |image| {
        symlink("/", image.join("etc")).expect("symlink etc");
        symlink(&sentinel, image.join("dev")).expect("symlink dev");
        symlink("../../../../../..", image.join("proc")).expect("symlink proc");
    });
    let merged = home.join("init/merged");
    mount::populate_init_layer(&merged, resolver).expect("populate");
    drop(guard);

    assert_eq!(
        names(&sentinel),
        ["keep"],
        "nothing was written through /dev"
    );
    assert_eq!(read(&sentinel.join("keep")), "sentinel");
    let host_after: Vec<bool> = host_paths
        .iter()
        .map(|path| fs::symlink_metadata(path).is_ok())
        .collect();
    assert_eq!(host_after, host_before, "nothing was written through /etc");
    // The symlinks were replaced by real directories (whiteouts over the image's symlinks).
    let diff = home.join("init/diff");
    for dir in ["etc", "dev", "proc"] {
        assert_entry(&diff.join(dir), "dir", 0o755);
    }
    assert_init_dev_and_etc_names(&diff);
}

/// The entries of `/dev` and `/etc` in an init layer's diff, as format.md §4.5 lists them.
fn assert_init_dev_and_etc_names(diff: &Path) {
    assert_eq!(names(&diff.join("dev")), ["console", "pts", "shm"]);
    assert_eq!(
        names(&diff.join("etc")),
        ["hostname", "hosts", "mtab", "resolv.conf"]
    );
}
