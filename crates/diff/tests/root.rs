//! Tests against real overlay mounts; they need root (CI runs them as root). A change script runs
//! inside a mounted container view, then the upperdir walk, Docker's full comparison of the
//! mounted views and a hand-written list (from Docker's rules, format.md §6.4) must all agree. Every
//! mount is held by a guard that detaches it even when an assertion fails.

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

mod support;

use diff::{tree_changes, upper_changes, Error};
use rustix::mount::UnmountFlags;
use support::lines;
use treedump::fixture::{set_mtime, set_xattr, whiteout, write};

/// Whether the test can run; without root it is skipped, except under `CI=true` where that is a
/// failure.
fn have_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "root tests must run as root when CI=true"
    );
    println!("SKIP: needs root to mount overlays and write trusted xattrs");
    false
}

/// A temp dir when the test can run (see [`have_root`]).
fn tempdir_as_root() -> Option<tempfile::TempDir> {
    have_root().then(|| tempfile::tempdir().expect("tempdir"))
}

/// Mounts a container's view at `dir/merged` over `lowerdir`, with a fresh `dir/upper` and
/// `dir/work` and the `extra_options`. Returns the mount and the upper dir.
fn mount_container(dir: &Path, lowerdir: &str, extra_options: &str) -> (Mounted, PathBuf) {
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    fs::create_dir_all(&upper).expect("mkdir upper");
    fs::create_dir_all(&work).expect("mkdir work");
    let container = Mounted::overlay(
        &dir.join("merged"),
        &format!(
            "lowerdir={lowerdir},upperdir={},workdir={},{extra_options}",
            upper.display(),
            work.display()
        ),
    );
    (container, upper)
}

/// Docker's comparison of the container's merged view with the init layer's merged view, both
/// mounted read-only; `view_options` are appended to the container view's options.
fn compare_mounted_views(
    dir: &Path,
    upper: &Path,
    lowerdir: &str,
    view_options: &str,
) -> Vec<diff::Change> {
    let container_view = Mounted::overlay(
        &dir.join("container-view"),
        &format!("lowerdir={}:{lowerdir}{view_options}", upper.display()),
    );
    let baseline_view =
        Mounted::overlay(&dir.join("baseline-view"), &format!("lowerdir={lowerdir}"));
    tree_changes(container_view.path(), baseline_view.path()).expect("tree_changes")
}

/// An overlay mount, detached when dropped.
struct Mounted(Option<PathBuf>);

impl Mounted {
    fn overlay(target: &Path, options: &str) -> Mounted {
        fs::create_dir_all(target).expect("mkdir mount point");
        run(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", options])
                .arg(target),
            &format!("mount -o {options} {}", target.display()),
        );
        Mounted(Some(target.to_owned()))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("mounted")
    }

    fn unmount(mut self) {
        let target = self.0.take().expect("mounted");
        rustix::mount::unmount(&target, UnmountFlags::empty()).expect("unmount");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(target) = self.0.take() {
            let _ = rustix::mount::unmount(&target, UnmountFlags::DETACH);
        }
    }
}

fn run_script(dir: &Path, script: &str) {
    run(
        Command::new("sh").args(["-c", script]).current_dir(dir),
        "change script failed",
    );
}

/// Runs `command`; unless it succeeds, the test fails with `what` and its stderr.
fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    if !output.status.success() {
        panic!("{what}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// A file capability, `VFS_CAP_REVISION_2` with the effective flag and `CAP_NET_BIND_SERVICE`
/// (bit 10) permitted: `magic_etc`, then permitted and inheritable words for bits 0-31 and
/// 32-63, little endian (linux/capability.h).
const CAPABILITY_V2: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// 2020-01-01T00:00:00Z, a whole-second mtime the script can set again with `touch -d`.
const JAN_2020: u64 = 1_577_836_800;

/// The image's bottom layer.
fn bottom_layer(root: &Path) {
    write(&root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    for name in ["a", "b", "c"] {
        write(&root.join("d1").join(name), name);
    }
    write(&root.join("d2/x"), "x\n");
    write(&root.join("d2/sub/y"), "y\n");
    write(&root.join("d3/f"), "f\n");
    write(&root.join("f_to_dir"), "f\n");
    write(&root.join("keep/k1"), "k\n");
    write(&root.join("keep2/k"), "k\n");
    write(&root.join("keep3/k"), "k\n");
    write(&root.join("sockdir/s1"), "s\n");
    write(&root.join("sockdir/s2/inner"), "i\n");
    write(&root.join("gone"), "gone\n");
    write(&root.join("opq/old1"), "o1\n");
    write(&root.join("opq/old2"), "o2\n");
    write(&root.join("shadow/inner"), "i\n");
    write(&root.join("mixed/m1"), "1\n");
    for name in ["same", "touched"] {
        write(&root.join(name), "t\n");
        set_mtime(
            &root.join(name),
            SystemTime::UNIX_EPOCH + Duration::from_secs(JAN_2020),
        );
    }
    for name in ["append", "trunc", "own", "mode", "link_src", "cap"] {
        write(&root.join(name), name);
    }
    write(&root.join("deep/a/b/c/file"), "deep\n");
}

/// The image's top layer: a whiteout, an opaque directory, a file over a directory and two
/// directories that merge with the bottom layer's.
fn mid_layer(root: &Path) {
    fs::create_dir_all(root).expect("mkdir");
    whiteout(&root.join("gone"));
    write(&root.join("opq/new1"), "n1\n");
    set_xattr(&root.join("opq"), "trusted.overlay.opaque", b"y");
    write(&root.join("d1/b"), "mid b\n");
    write(&root.join("shadow"), "mid shadow\n");
    write(&root.join("mixed/m2"), "2\n");
    write(&root.join("keep2/k2"), "k2\n");
}

/// The container's `-init` layer, the top lower.
fn init_layer(root: &Path) {
    write(&root.join("etc/hosts"), "127.0.0.1 localhost\n");
    write(&root.join("etc/hostname"), "h\n");
    write(&root.join(".dockerenv"), "");
    write(&root.join("dev/console"), "");
}

const CHANGE_SCRIPT: &str = r#"
set -eu
echo new > newfile
mkdir -p newdir/sub && echo x > newdir/sub/f
echo more >> d1/a
rm d1/c
: > trunc
chmod 600 mode
chown 1000:1000 own
chmod 644 same
touch -d @1577836800 same
touch -d @1609459200 touched
exec 3>>append
exec 3>&-
rm -r d2 && mkdir -p d2/sub && echo n > d2/new
rm f_to_dir && mkdir f_to_dir && echo y > f_to_dir/y
rm -r d3 && ln -s /etc d3
ln link_src hardlink
mkfifo fifo
mknod blk b 7 0
echo back > gone
rm shadow && mkdir shadow && touch shadow/n
rm opq/new1 && echo o > opq/old1
echo deep >> deep/a/b/c/file
touch "$(printf 'bad\377name')"
rm mixed/m1
rm -r keep2
chmod 700 keep3
echo '10.0.0.1 x' >> etc/hosts
mkdir tmpdir && rmdir tmpdir
echo t > tmpfile && rm tmpfile
rm -r sockdir
"#;

/// What Docker reports for [`CHANGE_SCRIPT`] plus a socket created over `/sockdir` and a
/// capability set on `/cap`, written from Docker's rules: unchanged copy-ups (`same`, `append`,
/// `link_src`), entries created and removed again, and everything of the init layer are absent;
/// `/opq/old1` is added because the opaque mid layer hides the bottom one; below the recreated
/// (opaque) `/d2`, the new `/d2/sub` shows none of the old one's children; `/gone` is added
/// because the mid layer whited it out; a socket replacing a directory deletes its children.
const EXPECTED: &[&str] = &[
    "A /bad\\xffname",
    "A /blk",
    "C /cap",
    "C /d1",
    "C /d1/a",
    "D /d1/c",
    "C /d2",
    "A /d2/new",
    "C /d2/sub",
    "D /d2/sub/y",
    "D /d2/x",
    "C /d3",
    "C /deep",
    "C /deep/a",
    "C /deep/a/b",
    "C /deep/a/b/c",
    "C /deep/a/b/c/file",
    "C /etc",
    "C /etc/hosts",
    "C /f_to_dir",
    "A /f_to_dir/y",
    "A /fifo",
    "A /gone",
    "A /hardlink",
    "D /keep2",
    "C /keep3",
    "C /mixed",
    "D /mixed/m1",
    "C /mode",
    "A /newdir",
    "A /newdir/sub",
    "A /newdir/sub/f",
    "A /newfile",
    "C /opq",
    "D /opq/new1",
    "A /opq/old1",
    "C /own",
    "C /shadow",
    "A /shadow/n",
    "C /sockdir",
    "D /sockdir/s1",
    "D /sockdir/s2",
    "C /touched",
    "C /trunc",
];

#[test]
fn upper_walk_matches_full_comparison_of_mounted_views_needs_root() {
    let Some(tmp) = tempdir_as_root() else {
        return;
    };
    let dir = tmp.path();
    let (bottom, mid, init) = (dir.join("bottom"), dir.join("mid"), dir.join("init"));
    bottom_layer(&bottom);
    mid_layer(&mid);
    init_layer(&init);
    let lowerdir = format!("{}:{}:{}", init.display(), mid.display(), bottom.display());

    let (container, upper) = mount_container(dir, &lowerdir, "redirect_dir=off,metacopy=off");
    run_script(container.path(), CHANGE_SCRIPT);
    // A socket over a lower directory; the listener's file stays after it is dropped.
    drop(UnixListener::bind(container.path().join("sockdir")).expect("bind socket"));
    set_xattr(
        &container.path().join("cap"),
        "security.capability",
        &CAPABILITY_V2,
    );
    container.unmount();

    let lowers = [init.as_path(), mid.as_path(), bottom.as_path()];
    let walked = upper_changes(&upper, &lowers).expect("upper_changes");
    assert_eq!(lines(&walked), EXPECTED, "upper walk");

    // Docker's comparison of the container's merged view with the init layer's merged view,
    // both mounted read-only.
    let compared = compare_mounted_views(dir, &upper, &lowerdir, "");
    assert_eq!(lines(&compared), EXPECTED, "full comparison");
    assert_eq!(walked, compared);
}

#[test]
fn redirect_xattr_in_a_hand_built_upper_needs_a_full_comparison_needs_root() {
    let Some(tmp) = tempdir_as_root() else {
        return;
    };
    let lower = tmp.path().join("lower");
    write(&lower.join("moveme/a"), "a\n");
    let cases: [(&str, &str, &str); 3] = [
        ("moved", "trusted.overlay.redirect", "/moved"),
        ("new/f", "trusted.overlay.metacopy", "/new/f"),
        ("moved", "user.overlay.redirect", "/moved"),
    ];
    for (idx, (entry, xattr, expected_path)) in cases.into_iter().enumerate() {
        let upper = tmp.path().join(format!("upper{idx}"));
        fs::create_dir_all(&upper).expect("mkdir upper");
        let path = upper.join(entry);
        if entry.ends_with("/f") {
            write(&path, "");
        } else {
            fs::create_dir_all(&path).expect("mkdir");
        }
        let value: &[u8] = if xattr.ends_with("redirect") {
            b"moveme"
        } else {
            b""
        };
        set_xattr(&path, xattr, value);
        whiteout(&upper.join("moveme"));
        match upper_changes(&upper, &[&lower]) {
            Err(Error::NeedsFullComparison { path, reason }) => {
                assert_eq!(
                    (String::from_utf8_lossy(&path).into_owned(), reason),
                    (expected_path.to_owned(), xattr)
                );
            }
            other => panic!("{xattr} at {entry}: expected a fallback, got {other:?}"),
        }
    }
}

#[test]
fn redirect_dir_mount_falls_back_and_full_comparison_lists_the_move_needs_root() {
    let Some(tmp) = tempdir_as_root() else {
        return;
    };
    let dir = tmp.path();
    let (bottom, mid) = (dir.join("bottom"), dir.join("mid"));
    write(&bottom.join("moveme/a"), "a\n");
    write(&bottom.join("moveme/sub/b"), "b\n");
    write(&bottom.join("stay/s"), "s\n");
    write(&mid.join("stay/m"), "m\n");
    let lowerdir = format!("{}:{}", mid.display(), bottom.display());

    let (container, upper) = mount_container(dir, &lowerdir, "redirect_dir=on,index=off");
    run_script(
        container.path(),
        "set -eu\nmv moveme moved\ntouch stay/new\n",
    );
    container.unmount();

    match upper_changes(&upper, &[&mid, &bottom]) {
        Err(Error::NeedsFullComparison { path, reason }) => {
            assert_eq!(
                (path.as_slice(), reason),
                (&b"/moved"[..], "trusted.overlay.redirect")
            );
        }
        other => panic!("expected a fallback for the renamed directory, got {other:?}"),
    }

    let compared = compare_mounted_views(dir, &upper, &lowerdir, ",redirect_dir=follow");
    assert_eq!(
        lines(&compared),
        [
            "A /moved",
            "A /moved/a",
            "A /moved/sub",
            "A /moved/sub/b",
            "D /moveme",
            "C /stay",
            "A /stay/new",
        ]
    );
}
