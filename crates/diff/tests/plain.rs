//! Rootless tests on plain directories: no whiteouts or trusted xattrs (those need root, see
//! `root.rs`), but real files, symlinks, fifos and non-UTF-8 names read through the public API.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

mod support;

use diff::{tree_changes, upper_changes, Error};
use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use support::lines;
use treedump::fixture::{set_mtime, write};

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0).expect("mkfifo");
}

/// A lower layer: `/d1/{a,b}`, `/f`, `/dir2/x`, `/sym -> target`.
fn lower_layer(root: &Path) {
    write(&root.join("d1/a"), "a\n");
    write(&root.join("d1/b"), "b\n");
    write(&root.join("f"), "f\n");
    write(&root.join("dir2/x"), "x\n");
    symlink("target", root.join("sym")).expect("symlink");
}

/// A temp dir with a [`lower_layer`] in `lower` and the path of an empty `upper` beside it.
fn lower_and_upper() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("lower");
    lower_layer(&lower);
    let upper = tmp.path().join("upper");
    (tmp, lower, upper)
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).expect("stat").modified().expect("mtime")
}

#[test]
fn upper_walk_on_plain_directories() {
    let (_tmp, lower, upper) = lower_and_upper();
    // A modified copy, an added file, an unchanged copy (same size and mtime), a type change,
    // added entries of every kind, among them a symlink to a directory that must not be followed.
    write(&upper.join("d1/a"), "a, longer\n");
    write(&upper.join("d1/n"), "n\n");
    write(&upper.join("f"), "f\n");
    let lower_mtime = mtime(&lower.join("f"));
    set_mtime(&upper.join("f"), lower_mtime);
    write(&upper.join("dir2"), "now a file\n");
    write(&upper.join("newdir/x"), "x\n");
    mkfifo(&upper.join("newdir/fifo"));
    symlink("/", upper.join("link")).expect("symlink");
    write(
        &upper.join(OsStr::from_bytes(b"bad\xffname")).join("inner"),
        "",
    );

    let changes = upper_changes(&upper, &[&lower]).expect("upper_changes");
    assert_eq!(
        lines(&changes),
        [
            "A /bad\\xffname",
            "A /bad\\xffname/inner",
            "C /d1",
            "C /d1/a",
            "A /d1/n",
            "C /dir2",
            "A /link",
            "A /newdir",
            "A /newdir/fifo",
            "A /newdir/x",
        ]
    );
}

#[test]
fn mtime_alone_counts_for_files_but_not_directories() {
    let (_tmp, lower, upper) = lower_and_upper();
    write(&upper.join("f"), "f\n");
    let lower_mtime = mtime(&lower.join("f"));
    set_mtime(&upper.join("f"), lower_mtime + Duration::from_secs(1));
    fs::create_dir(upper.join("d1")).expect("mkdir");
    assert_eq!(
        lines(&upper_changes(&upper, &[&lower]).expect("upper_changes")),
        ["C /f"]
    );
}

#[test]
fn user_overlay_opaque_hides_the_lower_directory() {
    let (_tmp, lower, upper) = lower_and_upper();
    fs::create_dir_all(upper.join("d1")).expect("mkdir");
    fs::copy(lower.join("d1/a"), upper.join("d1/a")).expect("copy");
    let lower_mtime = mtime(&lower.join("d1/a"));
    set_mtime(&upper.join("d1/a"), lower_mtime);
    match rustix::fs::setxattr(
        upper.join("d1"),
        "user.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    ) {
        Ok(()) => {}
        Err(err) => {
            println!("SKIP: user xattrs not supported here: {err}");
            return;
        }
    }
    assert_eq!(
        lines(&upper_changes(&upper, &[&lower]).expect("upper_changes")),
        ["C /d1", "D /d1/b"]
    );
}

#[test]
fn tree_comparison_on_plain_directories() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old = tmp.path().join("old");
    let new = tmp.path().join("new");
    lower_layer(&old);
    // A copy with the same mtimes.
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&old)
        .arg(&new)
        .status()
        .expect("cp");
    assert!(status.success());
    // Same content written later: only the mtime differs, which counts for files.
    write(&new.join("d1/a"), "a\n");
    set_mtime(
        &new.join("d1/a"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    fs::remove_dir_all(new.join("dir2")).expect("rm");
    // A new symlink target: size and mtime differ.
    fs::remove_file(new.join("sym")).expect("rm");
    symlink("other", new.join("sym")).expect("symlink");
    fs::hard_link(new.join("f"), new.join("f2")).expect("link");
    write(&new.join("added/deeper/file"), "");

    let changes = tree_changes(&new, &old).expect("tree_changes");
    assert_eq!(
        lines(&changes),
        [
            "A /added",
            "A /added/deeper",
            "A /added/deeper/file",
            "C /d1",
            "C /d1/a",
            "D /dir2",
            "A /f2",
            "C /sym",
        ]
    );
}

#[test]
fn errors_name_the_operation_and_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("missing");
    let err = upper_changes(&missing, &[tmp.path()]).expect_err("missing upper");
    assert!(matches!(err, Error::Io { .. }));
    assert_eq!(
        err.to_string(),
        format!("opening directory {}", missing.display())
    );
    let err = tree_changes(tmp.path(), &missing).expect_err("missing old tree");
    assert_eq!(
        err.to_string(),
        format!("opening directory {}", missing.display())
    );
}
