//! The exporter against Docker: the upperdir behind Docker's own commit layers is rebuilt from
//! their headers (whiteouts as 0/0 character devices sharing one inode as the kernel makes them,
//! the opaque xattr, capabilities, hardlinks, times, owners) and packed again; the bytes must be
//! Docker's. Needs root (devices, owners, trusted xattrs).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};

use super::*;
use treedump::fixture::first_difference;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root under CI=true"
    );
    eprintln!("SKIP {test}: not root");
    false
}

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL")
}

/// Sets the owner of `path` itself (a symlink is not followed).
fn chown(path: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        CWD,
        c(path).as_c_str(),
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("chown");
}

fn set_times(path: &Path, mtime: i64) {
    set_times_ns(path, mtime, 0);
}

/// Sets atime and mtime of `path` itself (a symlink is not followed).
fn set_times_ns(path: &Path, mtime: i64, nanoseconds: i64) {
    let time = Timespec {
        tv_sec: mtime,
        tv_nsec: nanoseconds,
    };
    rustix::fs::utimensat(
        CWD,
        c(path).as_c_str(),
        &Timestamps {
            last_access: time,
            last_modification: time,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

/// Recreates, below `upper`, the directory that Docker exported as `layer`.
fn rebuild_upper(layer: &[u8], upper: &Path) {
    let mut archive = tar::Archive::new(layer);
    let mut times: Vec<(std::path::PathBuf, i64, bool)> = Vec::new();
    let mut first_whiteout: Option<std::path::PathBuf> = None;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let header = entry.header().clone();
        let name = entry.path().expect("path").into_owned();
        let base = name
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let parent = upper.join(name.parent().unwrap_or(Path::new("")));
        let mode = header.mode().expect("mode") & 0o7777;
        let (uid, gid) = (
            header.uid().expect("uid") as u32,
            header.gid().expect("gid") as u32,
        );
        let mtime = header.mtime().expect("mtime") as i64;
        if base == b".wh..wh..opq" {
            rustix::fs::setxattr(
                c(&parent).as_c_str(),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .expect("opaque xattr");
            continue;
        }
        let path = if let Some(hidden) = base.strip_prefix(b".wh.") {
            let path = parent.join(std::ffi::OsStr::from_bytes(hidden));
            match &first_whiteout {
                Some(first) => std::fs::hard_link(first, &path).expect("whiteout link"),
                None => {
                    rustix::fs::mknodat(
                        CWD,
                        c(&path).as_c_str(),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        0,
                    )
                    .expect("whiteout");
                    first_whiteout = Some(path.clone());
                }
            }
            chown(&path, uid, gid);
            times.push((path, mtime, false));
            continue;
        } else {
            upper.join(&name)
        };
        let kind = header.entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&path).expect("mkdir");
        } else if kind.is_hard_link() {
            let target = upper.join(entry.link_name().expect("link").expect("target"));
            std::fs::hard_link(&target, &path).expect("link");
            continue;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(entry.link_name().expect("link").expect("target"), &path)
                .expect("symlink");
        } else if kind.is_fifo() {
            rustix::fs::mknodat(
                CWD,
                c(&path).as_c_str(),
                FileType::Fifo,
                Mode::from_raw_mode(mode),
                0,
            )
            .expect("fifo");
        } else if kind.is_character_special() {
            let dev = rustix::fs::makedev(
                header.device_major().expect("major").unwrap_or(0),
                header.device_minor().expect("minor").unwrap_or(0),
            );
            rustix::fs::mknodat(
                CWD,
                c(&path).as_c_str(),
                FileType::CharacterDevice,
                Mode::from_raw_mode(mode),
                dev,
            )
            .expect("cdev");
        } else {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("data");
            std::fs::write(&path, &data).expect("write");
        }
        chown(&path, uid, gid);
        if !kind.is_symlink() {
            rustix::fs::chmodat(
                CWD,
                c(&path).as_c_str(),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .expect("chmod");
        }
        if let Some(extensions) = entry.pax_extensions().expect("pax") {
            for extension in extensions {
                let extension = extension.expect("pax record");
                if let Some(xattr) = extension.key().expect("key").strip_prefix("SCHILY.xattr.") {
                    rustix::fs::setxattr(
                        c(&path).as_c_str(),
                        xattr,
                        extension.value_bytes(),
                        rustix::fs::XattrFlags::empty(),
                    )
                    .expect("setxattr");
                }
            }
        }
        times.push((path, mtime, kind.is_dir()));
    }
    // Files first, then directories deepest first, so no later write moves a directory's time.
    times.sort_by_key(|(path, _, is_dir)| (*is_dir, std::cmp::Reverse(path.components().count())));
    for (path, mtime, _) in times {
        set_times(&path, mtime);
    }
}

fn pack(upper: &Path, options: &PackOptions) -> Vec<u8> {
    let mut out = Vec::new();
    pack_upper(upper, &mut out, options).expect("pack");
    out
}

fn check_docker_layer(test: &str, fixture: &[u8]) {
    if !require_root(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let upper = dir.path().join("diff");
    std::fs::create_dir(&upper).expect("mkdir");
    rebuild_upper(fixture, &upper);
    let packed = pack(&upper, &PackOptions::default());
    assert!(packed == fixture, "{}", first_difference(&packed, fixture));
}

#[test]
fn docker_commit_layer_is_reproduced_byte_for_byte_needs_root() {
    check_docker_layer(
        "docker_commit_layer_is_reproduced_byte_for_byte_needs_root",
        include_bytes!("../tests/data/commit-layer.tar"),
    );
}

#[test]
fn docker_commit_layer_with_devices_and_owners_is_reproduced_byte_for_byte_needs_root() {
    check_docker_layer(
        "docker_commit_layer_with_devices_and_owners_is_reproduced_byte_for_byte_needs_root",
        include_bytes!("../tests/data/commit2-layer.tar"),
    );
}

#[test]
fn empty_upper_is_the_empty_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let packed = pack(dir.path(), &PackOptions::default());
    assert_eq!(packed, vec![0u8; 1024]);
}

#[test]
fn clamped_times_and_no_whiteout_link_names_make_equal_bytes_needs_root() {
    if !require_root("clamped_times_and_no_whiteout_link_names_make_equal_bytes_needs_root") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = include_bytes!("../tests/data/commit-layer.tar");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for upper in [&a, &b] {
        std::fs::create_dir(upper).expect("mkdir");
        rebuild_upper(fixture, upper);
    }
    // The second upperdir was "made later": newer times everywhere, and separate whiteout inodes.
    set_times(&b.join("d1/a"), 1_900_000_000);
    std::fs::remove_file(b.join("d3/sym")).expect("rm");
    rustix::fs::mknodat(
        CWD,
        c(&b.join("d3/sym")).as_c_str(),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .expect("whiteout");
    set_times(&b.join("d3/sym"), 1_795_387_134);
    set_times(&b.join("d3"), 1_795_387_146);
    assert_ne!(
        pack(&a, &PackOptions::default()),
        pack(&b, &PackOptions::default())
    );
    let clamp = PackOptions {
        clamp_mtime: Some(1_700_000_000),
        ..PackOptions::default()
    };
    let (packed_a, packed_b) = (pack(&a, &clamp), pack(&b, &clamp));
    assert!(
        packed_a == packed_b,
        "{}",
        first_difference(&packed_a, &packed_b)
    );
    let mut archive = tar::Archive::new(&packed_a[..]);
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        assert!(entry.header().mtime().expect("mtime") <= 1_700_000_000);
    }
}

#[test]
fn symlinks_are_emitted_not_followed_and_changes_export_reads_the_merged_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::os::unix::fs::symlink("/etc", root.join("escape")).expect("symlink");
    std::fs::create_dir_all(root.join("d/sub")).expect("mkdir");
    std::fs::write(root.join("d/sub/f"), b"data").expect("write");
    let mut out = Vec::new();
    let report = pack_changes(
        root,
        &[
            (b"/d/sub/f".to_vec(), ChangeKind::Add),
            (b"/escape".to_vec(), ChangeKind::Modify),
            (b"/d".to_vec(), ChangeKind::Modify),
            (b"/d/gone".to_vec(), ChangeKind::Delete),
        ],
        &mut out,
        &PackOptions {
            clamp_mtime: Some(5),
            ..PackOptions::default()
        },
    )
    .expect("pack changes");
    assert_eq!(report.n_entries, 4);
    let mut entries = BTreeMap::new();
    let mut order = Vec::new();
    for entry in tar::Archive::new(&out[..]).entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("data");
        order.push(name.clone());
        entries.insert(
            name,
            (
                entry.header().entry_type(),
                entry.link_name_bytes().map(|l| l.to_vec()),
                data,
                entry.header().mtime().expect("mtime"),
            ),
        );
    }
    assert_eq!(order, ["d/", "d/.wh.gone", "d/sub/f", "escape"]);
    assert_eq!(entries["escape"].1.as_deref(), Some(&b"/etc"[..]));
    assert_eq!(entries["d/sub/f"].2, b"data");
    assert_eq!(entries["d/.wh.gone"].3, 5);

    // Through a symlinked directory, a change path cannot be read.
    let err = pack_changes(
        root,
        &[(b"/escape/passwd".to_vec(), ChangeKind::Add)],
        &mut Vec::new(),
        &PackOptions::default(),
    )
    .expect_err("a symlink is not a directory here");
    assert!(err.to_string().contains("escape"), "{err}");
}

#[test]
fn redirect_and_metacopy_xattrs_ask_for_the_merged_export_needs_root() {
    if !require_root("redirect_and_metacopy_xattrs_ask_for_the_merged_export_needs_root") {
        return;
    }
    for (path, xattr) in [
        ("moved", "trusted.overlay.redirect"),
        ("meta", "trusted.overlay.metacopy"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join(path);
        if path == "moved" {
            std::fs::create_dir(&target).expect("mkdir");
        } else {
            std::fs::write(&target, b"").expect("write");
        }
        rustix::fs::setxattr(
            c(&target).as_c_str(),
            xattr,
            b"/x",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("xattr");
        let err =
            pack_upper(dir.path(), &mut Vec::new(), &PackOptions::default()).expect_err(xattr);
        assert!(matches!(err, Error::NeedsMergedExport { .. }), "{err}");
        assert!(err.to_string().contains(path), "{err}");
    }
}

#[test]
fn a_tree_export_holds_every_entry_below_the_root_named_from_the_given_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::os::unix::fs::symlink("/etc", root.join("escape")).expect("symlink");
    std::fs::create_dir_all(root.join("d/sub")).expect("mkdir");
    std::fs::write(root.join("d/sub/f"), b"data").expect("write");
    std::fs::write(root.join(".wh.x"), b"").expect("write");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let names = NameFiles {
        passwd: format!("someone:x:{uid}:{gid}::/:/bin/sh\n").into_bytes(),
        group: format!("crew:x:{gid}:\n").into_bytes(),
    };
    let mut out = Vec::new();
    let report = pack_tree(
        root,
        &mut out,
        &PackOptions {
            names: Some(names),
            ..PackOptions::default()
        },
    )
    .expect("pack tree");
    assert_eq!(report.n_entries, 5);
    let mut archive = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let header = entry.header();
        assert_eq!(header.username().ok().flatten(), Some("someone"));
        assert_eq!(header.groupname().ok().flatten(), Some("crew"));
        seen.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
    }
    // A `.wh.` name in a tree is a plain file; the symlink is an entry, never followed.
    assert_eq!(seen, [".wh.x", "d/", "d/sub/", "d/sub/f", "escape"]);
}

/// Settling runs on a thread of its own, in batches: across many of them, every entry ends as
/// unpacking the tar would leave it (whole-second mtime as atime and mtime, a directory's set
/// after a socket below it was removed, no overlay or user xattrs), and the tar is the one an
/// export without settling makes.
#[test]
fn settling_many_entries_leaves_what_unpacking_makes_needs_root() {
    if !require_root("settling_many_entries_leaves_what_unpacking_makes_needs_root") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let upper = dir.path().join("diff");
    let xattr = |path: &Path, name: &str| {
        rustix::fs::lsetxattr(
            c(path).as_c_str(),
            name,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("xattr");
    };
    let sub_second = |path: &Path, seconds: i64| set_times_ns(path, seconds, 987_654_321);
    let mut expected: Vec<(std::path::PathBuf, i64)> = Vec::new();
    for d in 0..3 {
        let sub = upper.join(format!("d{d}/inner"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..150 {
            let file = sub.join(format!("f{f:03}"));
            std::fs::write(&file, format!("{d} {f}\n")).expect("write");
            xattr(&file, "trusted.overlay.origin");
            if f % 7 == 0 {
                xattr(&file, "user.note");
            }
            sub_second(&file, 1_600_000_000 + f);
            expected.push((file, 1_600_000_000 + f));
        }
        let link = sub.join("link");
        rustix::fs::symlinkat(c"f000", CWD, c(&link).as_c_str()).expect("symlink");
        xattr(&link, "trusted.overlay.origin");
        sub_second(&link, 1_500_000_000);
        expected.push((link, 1_500_000_000));
        rustix::fs::mknodat(
            CWD,
            c(&sub.join("sock")).as_c_str(),
            FileType::Socket,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("socket");
        xattr(&sub, "trusted.overlay.impure");
        for (path, seconds) in [
            (sub.clone(), 1_400_000_000),
            (upper.join(format!("d{d}")), 1_300_000_000),
        ] {
            sub_second(&path, seconds);
            expected.push((path, seconds));
        }
    }
    let unsettled = pack(&upper, &PackOptions::default());
    let settled = pack(
        &upper,
        &PackOptions {
            settle: true,
            ..PackOptions::default()
        },
    );
    assert!(
        settled == unsettled,
        "{}",
        first_difference(&settled, &unsettled)
    );
    for (path, seconds) in &expected {
        let meta = std::fs::symlink_metadata(path).expect("stat");
        assert_eq!(
            (
                meta.mtime(),
                meta.mtime_nsec(),
                meta.atime(),
                meta.atime_nsec()
            ),
            (*seconds, 0, *seconds, 0),
            "times of {}",
            path.display()
        );
        let names = rustix::fs::llistxattr(c(path).as_c_str(), &mut [0u8; 256][..]).expect("list");
        assert_eq!(names, 0, "xattrs left on {}", path.display());
    }
    for d in 0..3 {
        assert!(!upper.join(format!("d{d}/inner/sock")).exists());
    }
    let root = std::fs::metadata(&upper).expect("root");
    assert_eq!((root.mode() & 0o7777, root.uid()), (0o755, 0));
}

/// A settling step that fails (an immutable file cannot take new times) fails the export, named
/// by the entry, however far the walk has gone beyond it.
#[test]
fn a_failed_settling_step_fails_the_export_naming_the_entry_needs_root() {
    if !require_root("a_failed_settling_step_fails_the_export_naming_the_entry_needs_root") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let upper = dir.path().join("diff");
    std::fs::create_dir_all(upper.join("a")).expect("mkdir");
    for f in 0..200 {
        std::fs::write(upper.join(format!("a/f{f:03}")), b"x").expect("write");
    }
    let stuck = upper.join("a/f007");
    let chattr = |flag: &str| {
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&stuck)
            .status()
            .expect("chattr runs");
        assert!(status.success(), "chattr {flag}");
    };
    chattr("+i");
    let err = pack_upper(
        &upper,
        &mut Vec::new(),
        &PackOptions {
            settle: true,
            ..PackOptions::default()
        },
    )
    .expect_err("an immutable file cannot be settled");
    chattr("-i");
    assert!(err.to_string().contains("a/f007"), "{err}");
}
