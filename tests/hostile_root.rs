//! A hostile or damaged data root (issue 15, items 4–6): a root copied from another machine or
//! crafted, where a directory of the format is a symlink (absolute or relative) leading out of the
//! root. Every command refuses it naming the path, exits 1, mounts nothing over, creates nothing
//! in and removes nothing from the symlink's target, and `ovl fsck` reports the path as corrupt.
//!
//! The hostile links never point at host paths: they point at sentinel directories in the test's
//! own scratch dir (`<scratch>/world/...`), whose trees are compared before and after, and no
//! mount may appear at or below the world (`/proc/self/mountinfo`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use ovl_tests::{require_root, sha256_digest, Ovl, Scratch, TarBuilder};

/// A data root with the base image `base:1` and, when asked, the container `ctr` (created and
/// unmounted again), beside a world of sentinel directories.
struct Setup {
    _work: Scratch,
    root: PathBuf,
    world: PathBuf,
    ovl: Ovl,
}

impl Setup {
    fn new(with_container: bool) -> Setup {
        let work = Scratch::new();
        let root = work.join("root");
        let world = work.join("world");
        for dir in ["etc", "l", "work", "layer"] {
            fs::create_dir_all(world.join(dir)).expect("mkdir world");
            fs::write(
                world.join(dir).join("sentinel"),
                format!("{dir} sentinel\n"),
            )
            .expect("write sentinel");
        }
        fs::write(world.join("etc/passwd"), "root:x:0:0:decoy:/root:/bin/sh\n").expect("passwd");
        let ovl = Ovl::new(&root);
        let base = work.write_base_tar("base.tar");
        ovl.import(&base, "base:1");
        if with_container {
            ovl.ok(["run-rootfs", "--name", "ctr", "base:1"]);
            ovl.ok(["umount", "ctr"]);
        }
        Setup {
            _work: work,
            root,
            world,
            ovl,
        }
    }

    fn overlay2(&self) -> PathBuf {
        self.root.join("overlay2")
    }

    /// The overlay2 dir of the container's own layer.
    fn mount_id(&self) -> String {
        let mounts = self.root.join("image/overlay2/layerdb/mounts");
        let entry = fs::read_dir(&mounts)
            .expect("list mounts")
            .next()
            .expect("one container")
            .expect("entry")
            .path();
        fs::read_to_string(entry.join("mount-id"))
            .expect("mount-id")
            .trim()
            .to_string()
    }

    /// The overlay2 dir of the image layer of `tag`'s image (a one-layer image).
    fn image_cache_id(&self, tag: &str) -> String {
        let upper = self.ovl.upper_dir(tag);
        upper
            .parent()
            .and_then(Path::file_name)
            .expect("cache id")
            .to_string_lossy()
            .into_owned()
    }

    /// Imports `other:1` and moves its layer dir to `world/layer`, leaving a symlink to it in its
    /// place; returns the layer dir's path in the root.
    fn other_image_with_layer_dir_outside(&self) -> PathBuf {
        let other = self.root.parent().expect("scratch").join("other.tar");
        fs::write(&other, other_rootfs_tar()).expect("write other");
        self.ovl.import(&other, "other:1");
        let layer_dir = self.overlay2().join(self.image_cache_id("other:1"));
        fs::remove_dir_all(self.world.join("layer")).expect("rm world layer");
        fs::rename(&layer_dir, self.world.join("layer")).expect("move layer dir out");
        symlink(self.world.join("layer"), &layer_dir).expect("plant layer dir link");
        layer_dir
    }

    /// Replaces `path` (a directory or a link) with a symlink to `target`.
    fn plant(&self, path: &Path, target: impl AsRef<Path>) {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).expect("rm dir"),
            Ok(_) => fs::remove_file(path).expect("rm"),
            Err(_) => {}
        }
        symlink(target, path).expect("plant symlink");
    }

    /// The sentinel tree's `etc` as a link target: absolute, then relative from a path two
    /// levels below the data root (`overlay2/<id>/merged`, `overlay2/l/<LID>`).
    fn world_etc_targets(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("absolute", self.world.join("etc")),
            ("relative", PathBuf::from("../../../world/etc")),
        ]
    }

    /// Every entry of the world: type, size, content hash or link target.
    fn world_tree(&self) -> BTreeMap<PathBuf, String> {
        let mut tree = BTreeMap::new();
        walk(&self.world, &self.world, &mut tree);
        tree
    }

    /// Asserts that the world is as it was and that nothing is mounted at or below it.
    fn assert_world_untouched(&self, before: &BTreeMap<PathBuf, String>, case: &str) {
        assert_eq!(&self.world_tree(), before, "{case}: the world changed");
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        for line in mountinfo.lines() {
            let mount_point = line.split(' ').nth(4).unwrap_or_default();
            assert!(
                !Path::new(mount_point).starts_with(&self.world),
                "{case}: something is mounted in the world: {line}"
            );
        }
    }

    /// `ovl fsck` fails and reports `path` as corrupt.
    fn assert_fsck_corrupt(&self, path: &Path, case: &str) {
        let output = self.ovl.run(["fsck"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{case}: fsck: {stdout}");
        let line = format!("corrupt: {}", path.display());
        assert!(
            stdout.lines().any(|l| l.starts_with(&line)),
            "{case}: fsck should report {line}; it printed:\n{stdout}"
        );
    }

    /// Runs `args`, which must exit 1 with `path` named on stderr.
    /// Each of `commands` is refused naming `path` (case `<label>: <command>`); then the world is
    /// as `before` and fsck reports `path` as corrupt.
    fn all_refused(
        &self,
        commands: &[&[&str]],
        path: &Path,
        label: &str,
        before: &BTreeMap<PathBuf, String>,
    ) {
        for args in commands {
            self.refused(args, path, &format!("{label}: {}", args[0]));
        }
        self.assert_world_untouched(before, label);
        self.assert_fsck_corrupt(path, label);
    }

    fn refused(&self, args: &[&str], path: &Path, case: &str) {
        let stderr = self.ovl.fail(args);
        assert!(
            stderr.contains(&path.display().to_string()),
            "{case}: `ovl {}` should name {}; stderr: {stderr}",
            args.join(" "),
            path.display()
        );
    }
}

fn walk(base: &Path, path: &Path, tree: &mut BTreeMap<PathBuf, String>) {
    let meta = fs::symlink_metadata(path).expect("lstat world entry");
    let rel = path
        .strip_prefix(base)
        .expect("below the world")
        .to_path_buf();
    let kind = if meta.file_type().is_symlink() {
        format!("link {}", fs::read_link(path).expect("readlink").display())
    } else if meta.is_dir() {
        for entry in fs::read_dir(path).expect("list world dir") {
            walk(base, &entry.expect("entry").path(), tree);
        }
        "dir".to_string()
    } else {
        let bytes = fs::read(path).expect("read world file");
        format!("file {} {}", bytes.len(), sha256_digest(&bytes))
    };
    tree.insert(rel, kind);
}

/// A one-file rootfs tarball, so that a second image has a layer of its own.
fn other_rootfs_tar() -> Vec<u8> {
    let mut builder = TarBuilder::new();
    builder.file("hello", b"hello\n");
    builder.finish()
}

#[test]
fn symlinked_merged_is_refused_and_nothing_is_mounted_outside_needs_root() {
    if !require_root("symlinked_merged_is_refused_and_nothing_is_mounted_outside_needs_root") {
        return;
    }
    let setup = Setup::new(true);
    let merged = setup.overlay2().join(setup.mount_id()).join("merged");
    // Absolute, then relative (overlay2/<id>/merged -> ../../../world/etc).
    for (case, target) in setup.world_etc_targets() {
        setup.plant(&merged, &target);
        let before = setup.world_tree();
        setup.refused(&["run-rootfs", "--name", "ctr", "base:1"], &merged, case);
        setup.assert_world_untouched(&before, case);
        setup.refused(&["rm", "-f", "ctr"], &merged, case);
        setup.assert_world_untouched(&before, case);
        setup.assert_fsck_corrupt(&merged, case);
        assert!(fs::symlink_metadata(&merged).is_ok_and(|m| m.file_type().is_symlink()));
    }
}

#[test]
fn symlinked_diff_is_not_a_lower_and_fsck_reports_it_needs_root() {
    if !require_root("symlinked_diff_is_not_a_lower_and_fsck_reports_it_needs_root") {
        return;
    }
    let setup = Setup::new(false);
    let diff = setup
        .overlay2()
        .join(setup.image_cache_id("base:1"))
        .join("diff");
    setup.plant(&diff, setup.world.join("etc"));
    let before = setup.world_tree();
    let layer_dirs_before = fs::read_dir(setup.overlay2()).expect("list").count();
    setup.refused(
        &["run-rootfs", "--name", "c2", "base:1"],
        &diff,
        "run-rootfs",
    );
    setup.assert_world_untouched(&before, "run-rootfs");
    assert_eq!(
        fs::read_dir(setup.overlay2()).expect("list").count(),
        layer_dirs_before,
        "no layer dir was created"
    );
    assert_eq!(
        setup.ovl.ok(["ps", "-a", "-q"]),
        "",
        "no container was created"
    );
    setup.assert_fsck_corrupt(&diff, "fsck");
    setup.assert_world_untouched(&before, "fsck");
}

#[test]
fn l_link_outside_overlay2_is_refused_needs_root() {
    if !require_root("l_link_outside_overlay2_is_refused_needs_root") {
        return;
    }
    let setup = Setup::new(true);
    let cache_id = setup.image_cache_id("base:1");
    let lid = fs::read_to_string(setup.overlay2().join(&cache_id).join("link")).expect("link");
    let link = setup.overlay2().join("l").join(lid.trim());
    // An absolute link, then a relative one that climbs out of overlay2/
    // (overlay2/l/<LID> -> ../../../world/etc).
    for (case, target) in setup.world_etc_targets() {
        setup.plant(&link, &target);
        let before = setup.world_tree();
        setup.refused(&["run-rootfs", "--name", "ctr", "base:1"], &link, case);
        setup.assert_world_untouched(&before, case);
        setup.refused(&["run-rootfs", "--name", "new", "base:1"], &link, case);
        setup.assert_world_untouched(&before, case);
        let stderr = setup.ovl.fail(["diff", "ctr"]);
        assert!(
            stderr.contains(&link.display().to_string()),
            "{case}: diff: {stderr}"
        );
        setup.assert_fsck_corrupt(&link, case);
        setup.assert_world_untouched(&before, case);
    }
}

#[test]
fn symlinked_l_work_or_layer_dir_is_not_followed_by_run_rootfs_rm_rmi_prune_needs_root() {
    if !require_root(
        "symlinked_l_work_or_layer_dir_is_not_followed_by_run_rootfs_rm_rmi_prune_needs_root",
    ) {
        return;
    }

    // overlay2/l -> world/l (holding a copy of the real links): nothing may create or remove a
    // link there.
    let setup = Setup::new(true);
    let l_dir = setup.overlay2().join("l");
    for entry in fs::read_dir(&l_dir).expect("list l") {
        let entry = entry.expect("entry");
        let target = fs::read_link(entry.path()).expect("readlink");
        symlink(target, setup.world.join("l").join(entry.file_name())).expect("copy link");
    }
    setup.plant(&l_dir, setup.world.join("l"));
    let before = setup.world_tree();
    let commands: [&[&str]; 3] = [
        &["run-rootfs", "--name", "new", "base:1"],
        &["rm", "ctr"],
        &["prune", "-f"],
    ];
    setup.all_refused(&commands, &l_dir, "l", &before);

    // overlay2/<mount-id>/work -> world/work: the overlay's workdir would be outside.
    let setup = Setup::new(true);
    let work = setup.overlay2().join(setup.mount_id()).join("work");
    setup.plant(&work, setup.world.join("work"));
    let before = setup.world_tree();
    let commands: [&[&str]; 2] = [&["run-rootfs", "--name", "ctr", "base:1"], &["rm", "ctr"]];
    setup.all_refused(&commands, &work, "work", &before);
    assert_eq!(
        setup.ovl.ok(["ps", "-a", "-q"]).lines().count(),
        1,
        "ctr is kept"
    );

    // overlay2/<mount-id> -> world/layer (the real layer dir moved there): neither mounted,
    // nor emptied by rm.
    let setup = Setup::new(true);
    let layer_dir = setup.overlay2().join(setup.mount_id());
    fs::remove_dir_all(setup.world.join("layer")).expect("rm world layer");
    fs::rename(&layer_dir, setup.world.join("layer")).expect("move layer dir out");
    symlink(setup.world.join("layer"), &layer_dir).expect("plant layer dir link");
    let before = setup.world_tree();
    let commands: [&[&str]; 2] = [
        &["run-rootfs", "--name", "ctr", "base:1"],
        &["rm", "-f", "ctr"],
    ];
    setup.all_refused(&commands, &layer_dir, "layer", &before);

    // The layer dir of an image prune removes (untagged by hand) -> world/layer: prune refuses
    // before anything of its plan goes.
    let setup = Setup::new(false);
    let layer_dir = setup.other_image_with_layer_dir_outside();
    let repositories = setup.root.join("image/overlay2/repositories.json");
    let mut tags: serde_json::Value =
        serde_json::from_slice(&fs::read(&repositories).expect("read tags")).expect("tags");
    tags["Repositories"]
        .as_object_mut()
        .expect("repositories")
        .retain(|name, _| !name.contains("other"));
    fs::write(&repositories, serde_json::to_vec(&tags).expect("json")).expect("write tags");
    let images_before = fs::read_dir(setup.root.join("image/overlay2/imagedb/content/sha256"))
        .expect("list imagedb")
        .count();
    let before = setup.world_tree();
    setup.refused(&["prune", "-f"], &layer_dir, "prune");
    setup.assert_world_untouched(&before, "prune");
    assert_eq!(
        fs::read_dir(setup.root.join("image/overlay2/imagedb/content/sha256"))
            .expect("list imagedb")
            .count(),
        images_before,
        "prune removed nothing of its plan"
    );
    assert!(fs::symlink_metadata(&layer_dir).is_ok_and(|m| m.file_type().is_symlink()));
    setup.assert_fsck_corrupt(&layer_dir, "prune");

    // The same for `rmi` of a tagged image: refused before the tag or the config goes.
    let setup = Setup::new(false);
    let layer_dir = setup.other_image_with_layer_dir_outside();
    let before = setup.world_tree();
    let images = setup.ovl.ok([
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    setup.refused(&["rmi", "other:1"], &layer_dir, "rmi");
    setup.assert_world_untouched(&before, "rmi");
    assert_eq!(
        setup.ovl.ok([
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ]),
        images,
        "rmi untagged or removed nothing"
    );
}

/// Runs `ovl args` and returns its output, failing if it has not ended within 30 s (a FIFO opened
/// for reading blocks until a writer comes).
fn run_bounded(ovl: &Ovl, args: &[&str]) -> std::process::Output {
    let mut child = ovl
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ovl");
    let started = std::time::Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ovl {args:?} blocked on a FIFO for 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A metadata file of the format (`repositories.json`, a layer's `tar-split.json.gz`, its
/// `link`) that is a FIFO or a device node: never opened (a FIFO would block every command, a
/// device could act), refused naming the path, and `fsck` reports it.
#[test]
fn fifo_or_device_in_a_metadata_files_place_is_never_opened_needs_root() {
    if !require_root("fifo_or_device_in_a_metadata_files_place_is_never_opened_needs_root") {
        return;
    }
    let mknod = |path: &Path, kind: libc::mode_t, major: u32, minor: u32| {
        let _ = fs::remove_file(path);
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::from_bits_truncate(kind),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(major.into(), minor.into()),
        )
        .unwrap_or_else(|err| panic!("mknod {}: {err}", path.display()));
    };

    let setup = Setup::new(false);
    let repositories = setup.root.join("image/overlay2/repositories.json");
    mknod(&repositories, libc::S_IFIFO, 0, 0);
    for args in [
        &["images"][..],
        &["rmi", "base:1"],
        &["tag", "base:1", "x:1"],
    ] {
        let output = run_bounded(&setup.ovl, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "ovl {args:?}: {stderr}");
        assert!(
            stderr.contains(&repositories.display().to_string()),
            "ovl {args:?} names the FIFO: {stderr}"
        );
    }

    let setup = Setup::new(false);
    let chain_id = {
        let inspect = setup.ovl.inspect("base:1").expect("inspect");
        inspect["RootFS"]["Layers"][0]
            .as_str()
            .expect("layer")
            .trim_start_matches("sha256:")
            .to_string()
    };
    // A one-layer image: its ChainID is its DiffID.
    let tar_split = setup
        .root
        .join("image/overlay2/layerdb/sha256")
        .join(&chain_id)
        .join("tar-split.json.gz");
    // /dev/null's numbers: harmless, but it must not be read as the record.
    mknod(&tar_split, libc::S_IFCHR, 1, 3);
    let out = setup.root.parent().expect("scratch").join("saved.tar");
    let output = run_bounded(
        &setup.ovl,
        &["save", "-o", out.to_str().expect("utf-8"), "base:1"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "save: {stderr}");
    assert!(
        stderr.contains(&tar_split.display().to_string()),
        "{stderr}"
    );
    assert!(!out.exists(), "a failed save leaves no archive");
    let output = run_bounded(&setup.ovl, &["fsck", "--verify-content"]);
    assert_eq!(output.status.code(), Some(1));

    let setup = Setup::new(false);
    let link = setup
        .overlay2()
        .join(setup.image_cache_id("base:1"))
        .join("link");
    mknod(&link, libc::S_IFIFO, 0, 0);
    let output = run_bounded(&setup.ovl, &["run-rootfs", "--name", "ctr", "base:1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "run-rootfs: {stderr}");
    let output = run_bounded(&setup.ovl, &["fsck"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&link.display().to_string()),
        "fsck names {}",
        link.display()
    );
}
