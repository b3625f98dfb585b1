//! `ovl fsck`: clean on a healthy root; each kind of corruption, made by hand on a copy of the
//! root the way a crash, a bad disk or a careless hand leaves it, is found and named; leftovers of
//! interrupted operations are reported as such without failing the check.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use ovl_tests::{root_scratch_ovl, Ovl};

const TEST: &str = "fsck_finds_corruption_and_leftovers_needs_root";

/// One layer of the base image: its layerdb entry and overlay2 dir.
struct LayerPaths {
    entry: PathBuf,
    dir: PathBuf,
}

/// The first entry `dir` lists (the tests' roots hold one of each kind).
fn first_entry(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .next()
        .unwrap_or_else(|| panic!("{} is empty", dir.display()))
        .expect("directory entry")
        .path()
}

fn only_layer(root: &Path) -> LayerPaths {
    let sha = root.join("image/overlay2/layerdb/sha256");
    let entry = first_entry(&sha);
    let cache_id = fs::read_to_string(entry.join("cache-id")).expect("cache-id");
    LayerPaths {
        entry,
        dir: root.join("overlay2").join(cache_id.trim()),
    }
}

/// Each case: what to break, and the path and words its finding must carry.
#[rustfmt::skip]
const CASES: [(&str, Corruption, &str, &str); 10] = [
    ("diff file rewritten", Write("{entry}/diff", ZERO_DIFF_ID), "layerdb/sha256/", "give ChainID"),
    ("cache-id dir gone", Remove("{layer}"), "overlay2/", "missing: the cache-id dir of layer"),
    ("tar-split gone", Remove("{entry}/tar-split.json.gz"), "tar-split.json.gz", "cannot be saved"),
    ("size unparsable", Write("{entry}/size", "12\n"), "/size", "invalid size"),
    ("image config changed", Append("{config}"), "imagedb/content/sha256/", "hashes to"),
    ("tag of a missing image", ReplaceId("image/overlay2/repositories.json"), "repositories.json",
        "tag base:1 names image"),
    ("container without mounts entry", Remove("{mounts}"), "layerdb/mounts/",
        "has no mounts entry"),
    ("link file wrong", Write("{layer}/link", "AAAAAAAAAAAAAAAAAAAAAAAAAA"), "/link",
        "does not point at this dir"),
    ("lower entry dangling", Write("{container}/lower", "l/BBBBBBBBBBBBBBBBBBBBBBBBBB"), "/lower",
        "does not resolve"),
    // Same size, one byte different: only the content check can see it.
    ("layer content changed", FlipCase("{layer}/diff/etc/passwd"), "/diff", "layer sha256:"),
];

/// A sha256 DiffID of no layer.
const ZERO_DIFF_ID: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A corruption made by hand on a copy of the root. Paths are relative to the root, or start
/// with `{layer}` (the only layer's overlay2 dir), `{entry}` (its layerdb entry), `{config}` (the
/// image config), `{mounts}` (the container's layerdb mounts entry) or `{container}` (the
/// container's overlay2 dir).
enum Corruption {
    /// The file gets this content.
    Write(&'static str, &'static str),
    /// The file or directory is removed.
    Remove(&'static str),
    /// A space is appended to the file.
    Append(&'static str),
    /// The case of the file's first byte flips: the same size, one byte different.
    FlipCase(&'static str),
    /// The first image id the file names becomes the id of no image.
    ReplaceId(&'static str),
}

use Corruption::{Append, FlipCase, Remove, ReplaceId, Write};

impl Corruption {
    fn apply(&self, root: &Path) {
        match *self {
            Write(path, content) => fs::write(resolve(root, path), content).expect("write"),
            Remove(path) => {
                let path = resolve(root, path);
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
            }
            Append(path) => change_bytes(&resolve(root, path), |bytes| bytes.push(b' ')),
            FlipCase(path) => change_bytes(&resolve(root, path), |bytes| bytes[0] ^= 0x20),
            ReplaceId(path) => change_bytes(&resolve(root, path), |bytes| {
                let at = bytes
                    .windows(7)
                    .position(|w| w == b"sha256:")
                    .expect("an id")
                    + 7;
                bytes[at..at + 64].fill(b'f');
            }),
        }
    }
}

/// `pattern` (see [`Corruption`]) as a path below `root`.
fn resolve(root: &Path, pattern: &str) -> PathBuf {
    let (head, rest) = pattern.split_once('/').unwrap_or((pattern, ""));
    let mounts = || first_entry(&root.join("image/overlay2/layerdb/mounts"));
    let base = match head {
        "{layer}" => only_layer(root).dir,
        "{entry}" => only_layer(root).entry,
        "{config}" => first_entry(&root.join("image/overlay2/imagedb/content/sha256")),
        "{mounts}" => mounts(),
        "{container}" => {
            let mount_id = fs::read_to_string(mounts().join("mount-id")).expect("mount-id");
            root.join("overlay2").join(mount_id.trim())
        }
        _ => return root.join(pattern),
    };
    if rest.is_empty() {
        base
    } else {
        base.join(rest)
    }
}

/// Reads the file, changes its bytes and writes them back.
fn change_bytes(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    change(&mut bytes);
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn copy_root(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp -a");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

#[test]
fn fsck_finds_corruption_and_leftovers_needs_root() {
    let Some((work, ovl)) = root_scratch_ovl(TEST, "pristine") else {
        return;
    };
    let pristine = &ovl.root;
    let base = work.write_base_tar("base.tar");
    ovl.import(&base, "base:1");
    ovl.ok(["run-rootfs", "--name", "ctr", "base:1"]);
    ovl.ok(["umount", "ctr"]);
    let clean = ovl.ok(["fsck", "--verify-content"]);
    assert!(
        clean.ends_with(
            "1 layers, 1 images, 1 tags, 1 containers checked (1 layers' content verified): 0 corrupt, 0 leftovers\n"
        ),
        "{clean}"
    );

    for (idx, (what, corruption, path_part, words)) in CASES.iter().enumerate() {
        let copy = work.join(format!("broken-{idx}"));
        copy_root(pristine, &copy);
        corruption.apply(&copy);
        let stdout =
            String::from_utf8_lossy(&Ovl::new(&copy).run(["fsck", "--verify-content"]).stdout)
                .into_owned();
        let stderr = Ovl::new(&copy).fail(["fsck", "--verify-content"]);
        let finding = stdout.lines().find(|line| {
            line.starts_with("corrupt: ") && line.contains(path_part) && line.contains(words)
        });
        assert!(
            finding.is_some(),
            "{what}: no `corrupt:` line naming {path_part:?} with {words:?}:\n{stdout}"
        );
        assert!(stderr.contains("corrupt entries"), "{what}: {stderr}");
    }

    // Leftovers of interrupted operations: reported, not failing.
    let leftover = work.join("leftover");
    copy_root(pristine, &leftover);
    let layerdb = leftover.join("image/overlay2/layerdb");
    fs::create_dir_all(layerdb.join("tmp/write-set-123")).expect("write-set");
    fs::create_dir_all(layerdb.join(format!(
        "sha256/{}-0123456789abcdef-removing",
        "a".repeat(64)
    )))
    .expect("removing");
    let orphan = "b".repeat(64);
    fs::create_dir_all(leftover.join("overlay2").join(&orphan).join("diff")).expect("orphan");
    symlink(
        format!("../{}/diff", "c".repeat(64)),
        leftover.join("overlay2/l/CCCCCCCCCCCCCCCCCCCCCCCCCC"),
    )
    .expect("link");
    symlink(
        "../gone/diff",
        leftover.join("overlay2/l/DDDDDDDDDDDDDDDDDDDDDDDDDD"),
    )
    .expect("link");
    let out = Ovl::new(&leftover).ok(["fsck"]);
    for needle in [
        "leftover: ",
        "write-set-123: a layer registration that never committed",
        "-removing: a layer removal that was interrupted",
        &format!("overlay2/{orphan}: an overlay2 dir that no layer and no container uses"),
        "overlay2/l/CCCCCCCCCCCCCCCCCCCCCCCCCC: dangling link",
        "unknown: ",
        "overlay2/l/DDDDDDDDDDDDDDDDDDDDDDDDDD: a link Docker does not write",
        ": 0 corrupt, 4 leftovers, 1 unknown entries left alone",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }

    // Repair: the leftovers go, a lost l/ link comes back, an interrupted container removal is
    // finished; the image still mounts.
    let layer = only_layer(&leftover);
    let link = fs::read_to_string(layer.dir.join("link")).expect("link");
    fs::remove_file(leftover.join("overlay2/l").join(link.trim())).expect("lose the link");
    let lost = Ovl::new(&leftover).run(["fsck"]);
    assert!(
        !lost.status.success(),
        "a lost link of a layer is corruption"
    );
    let containers = leftover.join("containers");
    let container = first_entry(&containers);
    let config_path = container.join("config.v2.json");
    let config = fs::read_to_string(&config_path).expect("r");
    fs::write(
        &config_path,
        config.replace("\"RemovalInProgress\":false", "\"RemovalInProgress\":true"),
    )
    .expect("w");
    let repaired = Ovl::new(&leftover).ok(["fsck", "--repair"]);
    for needle in [
        "repaired: finished removing container",
        "repaired: removed image/overlay2/layerdb/tmp/write-set-123",
        "repaired: restored the l/ link of layer sha256:",
        "repaired: removed overlay2/l/CCCCCCCCCCCCCCCCCCCCCCCCCC",
        ": 0 corrupt, 0 leftovers, 1 unknown entries left alone",
    ] {
        assert!(repaired.contains(needle), "no {needle:?} in:\n{repaired}");
    }
    assert!(fs::read_dir(&containers).expect("ls").next().is_none());
    let merged = Ovl::new(&leftover).ok(["run-rootfs", "--name", "again", "base:1"]);
    assert!(Path::new(merged.trim()).join("bin/busybox").is_file());
    Ovl::new(&leftover).ok(["rm", "-f", "again"]);
}

/// The layer dir (`overlay2/<cache-id>`) of the top layer of `image`.
fn top_layer_dir(ovl: &Ovl, image: &str) -> PathBuf {
    ovl.upper_dir(image)
        .parent()
        .expect("layer dir")
        .to_path_buf()
}

/// `--verify-content` compares every layer directory with the tree its tar makes: an entry added
/// to a layer, or one whose kind, owner, mode, link target, whiteout or opaque mark changed, is
/// corruption even where every file the tar names still has its bytes (the reassembled tar alone
/// still hashes to the DiffID). Each change is made on a copy of a clean root, in the base layer
/// or in a committed one that deletes a file (a whiteout) and replaces a directory (opaque).
#[test]
fn fsck_verify_content_compares_layer_dirs_with_their_tars_needs_root() {
    const TEST: &str = "fsck_verify_content_compares_layer_dirs_with_their_tars_needs_root";
    let Some((work, ovl)) = root_scratch_ovl(TEST, "pristine") else {
        return;
    };
    let base = work.write_base_tar("base.tar");
    ovl.import(&base, "base:1");
    let merged = ovl.ok(["run-rootfs", "--name", "ctr", "base:1"]);
    let merged = Path::new(merged.trim());
    fs::remove_file(merged.join("bin/true")).expect("delete a file");
    fs::remove_dir_all(merged.join("tmp")).expect("delete a directory");
    fs::create_dir(merged.join("tmp")).expect("make it again");
    fs::write(merged.join("tmp/new"), "new\n").expect("a file in it");
    ovl.ok(["umount", "ctr"]);
    ovl.ok(["commit", "ctr", "changed:1"]);
    ovl.ok(["rm", "ctr"]);
    let clean = ovl.ok(["fsck", "--verify-content"]);
    assert!(
        clean.contains("(2 layers' content verified): 0 corrupt"),
        "{clean}"
    );
    let base_layer = top_layer_dir(&ovl, "base:1");
    let changed_layer = top_layer_dir(&ovl, "changed:1");
    let in_copy = |copy: &Path, layer: &Path, path: &str| {
        copy.join(layer.strip_prefix(&ovl.root).expect("below the root"))
            .join("diff")
            .join(path)
    };
    let opaque = "trusted.overlay.opaque";
    type Change = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, &Path, &str, Change, &str)> = vec![
        (
            "a file added",
            &base_layer,
            "etc/added",
            Box::new(|path| fs::write(path, "x").expect("add")),
            "/etc/added is in the layer's directory but not in its tar",
        ),
        (
            "a mode changed",
            &base_layer,
            "etc/passwd",
            Box::new(|path| {
                rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(0o4777)).expect("chmod")
            }),
            "/etc/passwd has mode 4777",
        ),
        (
            "an owner changed",
            &base_layer,
            "bin/busybox",
            Box::new(|path| {
                std::os::unix::fs::lchown(path, Some(1234), Some(1234)).expect("chown")
            }),
            "/bin/busybox is owned by 1234:1234",
        ),
        (
            "a symlink retargeted",
            &base_layer,
            "bin/ls",
            Box::new(|path| {
                fs::remove_file(path).expect("rm");
                symlink("/etc/passwd", path).expect("symlink");
            }),
            "/bin/ls links to /etc/passwd",
        ),
        (
            "a whiteout removed",
            &changed_layer,
            "bin/true",
            Box::new(|path| fs::remove_file(path).expect("rm")),
            "/bin/true is in the layer's tar but not in its directory",
        ),
        (
            "a whiteout made a file",
            &changed_layer,
            "bin/true",
            Box::new(|path| {
                fs::remove_file(path).expect("rm");
                fs::write(path, "").expect("file");
            }),
            "/bin/true is a regular file where the tar has a whiteout",
        ),
        (
            "an opaque mark removed",
            &changed_layer,
            "tmp",
            Box::new(move |path| rustix::fs::removexattr(path, opaque).expect("removexattr")),
            "/tmp is not opaque where the tar marks it so",
        ),
        (
            "an opaque mark added",
            &base_layer,
            "etc",
            Box::new(move |path| {
                rustix::fs::setxattr(path, opaque, b"y", rustix::fs::XattrFlags::empty())
                    .expect("setxattr")
            }),
            "/etc is opaque where the tar does not mark it so",
        ),
    ];
    for (idx, (what, layer, path, change, words)) in cases.iter().enumerate() {
        let copy = work.join(format!("changed-{idx}"));
        copy_root(&ovl.root, &copy);
        change(&in_copy(&copy, layer, path));
        let copied = Ovl::new(&copy);
        let out = copied.run(["fsck", "--verify-content"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{what}: fsck succeeded:\n{stdout}");
        let layer_dir = in_copy(&copy, layer, "");
        let finding = stdout.lines().find(|line| {
            line.starts_with("corrupt: ")
                && line.contains(layer_dir.to_str().expect("utf-8").trim_end_matches('/'))
                && line.contains("layer sha256:")
                && line.contains(words)
        });
        assert!(
            finding.is_some(),
            "{what}: no `corrupt:` line for {} with {words:?}:\n{stdout}",
            layer_dir.display()
        );
        // Only that layer: the other one is still clean.
        assert!(
            stdout.contains(": 1 corrupt"),
            "{what}: more than one finding:\n{stdout}"
        );
    }
}
