//! A container's whole life through the CLI, on the real kernel: `import`, `run-rootfs` (with
//! `--cidfile`, the init layer, mounting again by name), `ps`, the refusals docker users expect
//! (`rmi` of a used image, `rm` of a mounted container, an existing cidfile), `umount`, `rm`,
//! `rmi`, and a data root left with nothing behind.

use std::fs;
use std::path::Path;

use ovl_tests::{base_rootfs_tar, check_root_consistent, layerdb, root_scratch_ovl, sha256_digest};

const TEST: &str = "container_lifecycle_needs_root";

fn is_mountpoint(path: &Path) -> bool {
    let Ok(canonical) = fs::canonicalize(path) else {
        return false;
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let wanted = canonical.to_string_lossy().replace(' ', "\\040");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|it| {
            it.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn container_lifecycle_needs_root() {
    let Some((scratch, ovl)) = root_scratch_ovl(TEST, "data") else {
        return;
    };
    let root = ovl.root.clone();

    // import: the DiffID is the sha256 of the tarball as given, as with docker import.
    let tarball = base_rootfs_tar();
    let tar_path = scratch.join("rootfs.tar");
    fs::write(&tar_path, &tarball).expect("write tarball");
    let image_id = ovl
        .ok(["import", tar_path.to_str().expect("utf8"), "base:1"])
        .trim()
        .to_string();
    assert!(
        image_id.starts_with("sha256:") && image_id.len() == 71,
        "{image_id}"
    );
    let inspect = ovl.inspect("base:1").expect("inspect image");
    assert_eq!(inspect["Id"], image_id.as_str());
    assert_eq!(
        inspect["RootFS"]["Layers"],
        serde_json::json!([sha256_digest(&tarball)])
    );
    assert!(ovl
        .ok(["images"])
        .lines()
        .any(|l| l.starts_with("base ") && l.contains(&image_id[7..19])));

    // run-rootfs with a cidfile: a mounted merged view with the image and Docker's init entries.
    let cidfile = scratch.join("cid");
    let merged = ovl.ok([
        "run-rootfs",
        "--name",
        "c1",
        "--cidfile",
        cidfile.to_str().expect("utf8"),
        "base:1",
    ]);
    let merged = Path::new(merged.trim()).to_path_buf();
    let container_id = fs::read_to_string(&cidfile).expect("cidfile");
    assert_eq!(container_id.len(), 64, "{container_id:?}");
    assert!(
        is_mountpoint(&merged),
        "{} is not mounted",
        merged.display()
    );
    assert!(merged.join("bin/busybox").is_file());
    for init_file in [
        ".dockerenv",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "dev/console",
    ] {
        assert!(merged.join(init_file).is_file(), "init file {init_file}");
    }
    for init_dir in ["proc", "sys", "dev/pts", "dev/shm"] {
        assert!(merged.join(init_dir).is_dir(), "init dir {init_dir}");
    }
    assert_eq!(
        fs::read_link(merged.join("etc/mtab")).expect("mtab"),
        Path::new("/proc/mounts")
    );
    let container = ovl.inspect("c1").expect("inspect container");
    assert_eq!(container["Id"], container_id.as_str());
    assert_eq!(container["Image"], image_id.as_str());
    assert_eq!(
        container["GraphDriver"]["Data"]["MergedDir"],
        merged.to_str().expect("utf8")
    );
    let mount_dir = merged.parent().expect("layer dir").to_path_buf();
    let mount_id = mount_dir
        .file_name()
        .expect("id")
        .to_string_lossy()
        .into_owned();
    let mounts_entry = root
        .join("image/overlay2/layerdb/mounts")
        .join(&container_id);
    assert_eq!(
        fs::read_to_string(mounts_entry.join("mount-id")).expect("mount-id"),
        mount_id
    );
    assert_eq!(
        fs::read_to_string(mounts_entry.join("init-id")).expect("init-id"),
        format!("{mount_id}-init")
    );
    // The init layer's workdir as Docker's mount leaves it, an empty `work/`: nothing is left
    // of the volatile mount it may have been populated through.
    let init_work = root
        .join("overlay2")
        .join(format!("{mount_id}-init"))
        .join("work");
    assert_eq!(entries(&init_work), vec!["work".to_string()]);
    assert!(entries(&init_work.join("work")).is_empty());
    let lower = fs::read_to_string(mount_dir.join("lower")).expect("lower");
    assert_eq!(
        lower.split(':').count(),
        2,
        "init layer + image layer: {lower}"
    );

    // Again by name: the same container, the same path; an existing cidfile is refused.
    assert_eq!(
        ovl.ok(["run-rootfs", "--name", "c1", "base:1"]).trim(),
        merged.to_str().expect("utf8")
    );
    let stderr = ovl.fail([
        "run-rootfs",
        "--cidfile",
        cidfile.to_str().expect("utf8"),
        "base:1",
    ]);
    assert!(stderr.contains(cidfile.to_str().expect("utf8")), "{stderr}");
    assert!(ovl
        .ok(["ps"])
        .lines()
        .any(|l| l.starts_with(&container_id[..12]) && l.contains("Mounted") && l.ends_with("c1")));

    // Refusals while in use.
    let stderr = ovl.fail(["rmi", "base:1"]);
    assert!(
        stderr.contains("base:1") && stderr.contains(&container_id[..12]),
        "{stderr}"
    );
    let stderr = ovl.fail(["rm", "c1"]);
    assert!(stderr.contains("c1") && stderr.contains("-f"), "{stderr}");
    let stderr = ovl.fail(["run-rootfs", "no-such:1"]);
    assert!(stderr.contains("no-such:1"), "{stderr}");

    // umount: detached and merged removed; the container stays, as Created.
    ovl.ok(["umount", "c1"]);
    assert!(!is_mountpoint(&merged) && !merged.exists());
    assert_eq!(ovl.ok(["ps", "-q"]).trim(), "");
    assert!(ovl
        .ok(["ps", "-a"])
        .lines()
        .any(|l| l.contains("Created") && l.ends_with("c1")));

    // Mounted again by name, then removed with -f: nothing of the container remains.
    assert_eq!(
        ovl.ok(["run-rootfs", "--name", "c1", "base:1"]).trim(),
        merged.to_str().expect("utf8")
    );
    ovl.ok(["rm", "-f", &container_id[..12]]);
    assert!(!is_mountpoint(&merged));
    assert!(
        !mount_dir.exists()
            && !root
                .join("overlay2")
                .join(format!("{mount_id}-init"))
                .exists()
    );
    assert!(entries(&root.join("image/overlay2/layerdb/mounts")).is_empty());
    assert!(entries(&root.join("containers")).is_empty());
    check_root_consistent(&root).expect("consistent after rm");

    // rmi: untagged, image and layer deleted, no overlay2 dir or l/ link left.
    let out = ovl.ok(["rmi", "base:1"]);
    assert!(
        out.contains("Untagged: base:1") && out.contains(&format!("Deleted: {image_id}")),
        "{out}"
    );
    assert!(layerdb(&root).is_empty());
    assert_eq!(entries(&root.join("overlay2")), vec!["l".to_string()]);
    assert!(entries(&root.join("overlay2/l")).is_empty());
    assert!(entries(&root.join("image/overlay2/imagedb/content/sha256")).is_empty());
    assert_eq!(ovl.ok(["images", "-q"]).trim(), "");
}
