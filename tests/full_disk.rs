//! Full and read-only filesystems: on a small tmpfs data root, a load that runs out of space or
//! of inodes fails with exit status 1 and the reason, and leaves no partial layer, write-set or
//! image; a container can be removed from a root with no inode left; a read-only root is
//! reported as such; the images that were there still work.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use ovl_tests::{
    docker_archive, image_config, root_scratch, sha256_digest, unmount_below, Ovl, TarBuilder,
};

const TEST: &str = "full_and_read_only_roots_fail_cleanly_needs_root";

/// A one-layer archive of `n_files` files of `file_len` bytes that do not compress.
fn archive(tag: &str, n_files: usize, file_len: usize) -> Vec<u8> {
    let mut builder = TarBuilder::at(1_700_000_000);
    builder.dir("data/");
    let mut state: u64 = 0x1234_5678;
    for idx in 0..n_files {
        let data: Vec<u8> = (0..file_len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        builder.file(&format!("data/f{idx}"), &data);
    }
    let layer = builder.finish();
    let diff_ids = vec![sha256_digest(&layer)];
    docker_archive(
        &image_config(&diff_ids),
        &[("l/layer.tar".to_string(), layer)],
        &[tag],
    )
}

fn mount_tmpfs(target: &Path, options: &str) {
    fs::create_dir_all(target).expect("mkdir mount point");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(target)
        .status()
        .expect("mount");
    assert!(
        status.success(),
        "mount tmpfs {options} on {}",
        target.display()
    );
}

/// What a failed load may leave: nothing in the layer store but what was there before.
fn assert_nothing_partial(ovl: &Ovl, what: &str) {
    let root = &ovl.root;
    let tmp = root.join("image/overlay2/layerdb/tmp");
    let write_sets: Vec<_> = fs::read_dir(&tmp)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        write_sets.is_empty(),
        "{what}: write-sets left: {write_sets:?}"
    );
    let fsck = ovl.ok(["fsck"]);
    assert!(
        fsck.ends_with(": 0 corrupt, 0 leftovers\n"),
        "{what}: fsck after the failed load:\n{fsck}"
    );
}

#[test]
fn full_and_read_only_roots_fail_cleanly_needs_root() {
    let Some(work) = root_scratch(TEST) else {
        return;
    };
    let base = work.write_base_tar("base.tar");

    // Out of space: 6 MiB of data for a 4 MiB filesystem.
    let space = work.join("space");
    mount_tmpfs(&space, "size=4m,mode=0755");
    let ovl = Ovl::new(space.join("root"));
    ovl.import(&base, "base:1");
    let big = work.join("big.tar");
    fs::write(&big, archive("big:1", 24, 256 * 1024)).expect("write archive");
    let stderr = ovl.fail([OsStr::new("load"), OsStr::new("-i"), big.as_os_str()]);
    assert!(
        stderr.contains("No space left on device") && stderr.contains("data/f"),
        "out of space: {stderr}"
    );
    assert_nothing_partial(&ovl, "out of space");
    assert!(
        ovl.ok(["images", "-q"]).lines().count() == 1,
        "only base:1 remains"
    );
    let merged = ovl.ok(["run-rootfs", "--name", "after", "base:1"]);
    assert!(Path::new(merged.trim()).join("bin/busybox").is_file());
    ovl.ok(["rm", "-f", "after"]);

    // Out of inodes: many empty-ish files on a filesystem with few inodes.
    let inodes = work.join("inodes");
    mount_tmpfs(&inodes, "size=64m,nr_inodes=400,mode=0755");
    let ovl = Ovl::new(inodes.join("root"));
    ovl.import(&base, "base:1");
    let many = work.join("many.tar");
    fs::write(&many, archive("many:1", 1000, 16)).expect("write archive");
    let stderr = ovl.fail([OsStr::new("load"), OsStr::new("-i"), many.as_os_str()]);
    assert!(
        stderr.contains("No space left on device"),
        "out of inodes: {stderr}"
    );
    assert_nothing_partial(&ovl, "out of inodes");

    // A root with no inode left: removing a container is what frees them, so it must not need
    // one (Docker's removal goes on when it cannot save the dying container).
    let merged = ovl.ok(["run-rootfs", "--name", "stuck", "base:1"]);
    assert!(Path::new(merged.trim()).join("bin/busybox").is_file());
    let fill = inodes.join("fill");
    fs::create_dir(&fill).expect("mkdir fill");
    let mut n_filled = 0;
    while fs::File::create(fill.join(format!("f{n_filled}"))).is_ok() {
        n_filled += 1;
    }
    assert!(
        fs::create_dir(inodes.join("one-more")).is_err(),
        "the filesystem still has inodes after {n_filled} files"
    );
    ovl.ok(["rm", "-f", "stuck"]);
    assert!(
        !ovl.ok(["ps", "-a"]).contains("stuck"),
        "the container is gone"
    );
    let fsck = ovl.ok(["fsck"]);
    assert!(
        fsck.ends_with(": 0 corrupt, 0 leftovers\n"),
        "fsck after removing a container from a full root:\n{fsck}"
    );
    fs::remove_dir_all(&fill).expect("remove fill");

    // Read-only: the root is reported, reading still works.
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&inodes)
        .status()
        .expect("remount");
    assert!(status.success());
    let stderr = ovl.fail([OsStr::new("load"), OsStr::new("-i"), base.as_os_str()]);
    assert!(
        stderr.contains("Read-only file system"),
        "read-only: {stderr}"
    );
    assert!(ovl.ok(["images", "-q"]).lines().count() == 1);

    unmount_below(work.path());
}
