//! `ovl diff` and `ovl commit` against a private dockerd 20.10: one change script runs in a Docker
//! container and in an ovl container of the same image; `docker diff` and `ovl diff` must list the
//! same changes, and `docker commit` and `ovl commit` must give layers with the same entries and
//! images with the same merged tree and config. `--reproducible` commits of equal upperdirs made
//! at different times must have equal DiffIDs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use ovl_tests::{
    build_image, change_through_redirect_dir, chroot_sh, docker_merged_dump, dockerd_with_base,
    ensure_same_tree, root_scratch_base, stdout_of_success, tar_members, walk_below, Failures, Ovl,
    Record, Scratch, TarMember,
};

/// The image every container of this test starts from: files and directories for each kind of
/// change, and the change script itself as its command.
const DIFFBASE_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /d/keep /d/gone/sub /d/redo/sub /d/d2l/x /d/cu && echo a > /d/append && echo t > /d/trunc && echo m > /d/mode && chmod 644 /d/mode && echo o > /d/own && echo r > /d/rm && echo s > /d/gone/sub/s && echo q > /d/redo/q && echo q > /d/redo/sub/q && echo f > /d/f2d && echo x > /d/d2l/x/x && echo k > /d/keep/k && echo same > /d/same && echo cu > /d/cu/f && chmod 640 /d/cu/f
COPY change.sh /change.sh
CMD ["/bin/sh", "/change.sh"]
"#;

/// Create, append, truncate, chmod, chown, delete files and directories, delete then re-create a
/// directory (opaque), file → directory, directory → symlink, hardlinks, a fifo, a touch that
/// keeps the mtime, copy-ups without change; then fixed mtimes on what it wrote so that the two
/// containers' trees can be compared with their times.
const CHANGE_SCRIPT: &str = r#"set -e
echo new > /d/new
mkdir -p /n1/n2 && echo deep > /n1/n2/f
echo more >> /d/append
: > /d/trunc
chmod 600 /d/mode
chown 1000:1000 /d/own
rm /d/rm /bin/true
rm -r /d/gone
rm -r /d/redo && mkdir /d/redo && echo n > /d/redo/new
rm /d/f2d && mkdir /d/f2d && echo in > /d/f2d/in
rm -r /d/d2l && ln -s /tmp /d/d2l
ln /d/keep/k /d/keep/k2
mkfifo /d/fifo
touch -r /d/same /d/same
chmod 640 /d/cu/f
touch -c -d @1700000000 /d/new /n1/n2/f /d/append /d/trunc /d/redo/new /d/f2d/in /d/fifo
"#;

/// Paths `docker diff` must report for the script, by rule (format.md §6.4), written from the script
/// and not from any program's output; both implementations are checked against it as well as
/// against each other.
const EXPECTED_CHANGES: &[&str] = &[
    "C /bin",
    "D /bin/true",
    "C /d",
    "C /d/append",
    "C /d/d2l",
    "C /d/f2d",
    "A /d/f2d/in",
    "A /d/fifo",
    "D /d/gone",
    "C /d/keep",
    "A /d/keep/k2",
    "C /d/mode",
    "A /d/new",
    "C /d/own",
    "C /d/redo",
    "A /d/redo/new",
    "D /d/redo/q",
    "D /d/redo/sub",
    "D /d/rm",
    "C /d/trunc",
    "A /n1",
    "A /n1/n2",
    "A /n1/n2/f",
];

const COMMIT_CHANGES: [&str; 4] = [
    "LABEL org.example.stage=committed",
    "ENV COMMITTED=yes",
    "WORKDIR /d",
    r#"CMD ["/bin/cat", "/d/new"]"#,
];

#[test]
fn diff_and_commit_match_docker_needs_root_and_dockerd() {
    const TEST: &str = "diff_and_commit_match_docker_needs_root_and_dockerd";
    let Some(docker) = dockerd_with_base(TEST) else {
        return;
    };
    let work = Scratch::new();
    let mut failures = Failures::default();
    build_image(
        &docker,
        "diffbase:1",
        DIFFBASE_DOCKERFILE,
        &[("change.sh", CHANGE_SCRIPT.as_bytes().to_vec(), 0o644)],
    );
    let archive = work.join("diffbase.tar");
    docker.save("diffbase:1", &archive);

    // Docker: the script as the container's command, then `docker diff` and `docker commit`.
    let status = docker.run_and_wait("dc", &["diffbase:1"]);
    assert_eq!(status, "0", "the change script failed in Docker");
    let docker_diff = sorted_lines(&docker.docker_ok(["diff", "dc"]));

    // ovl: the same image, a container, the same script run in it with chroot.
    let root = work.join("root");
    let ovl = Ovl::new(&root);
    ovl.load(&archive).expect("ovl load diffbase");
    let merged = PathBuf::from(
        ovl.ok(["run-rootfs", "--name", "oc", "diffbase:1"])
            .trim()
            .to_string(),
    );
    let status = Command::new("chroot")
        .arg(&merged)
        .args(["/bin/sh", "/change.sh"])
        .status()
        .expect("chroot");
    assert!(
        status.success(),
        "the change script failed in the ovl container"
    );
    let started = Instant::now();
    let ovl_diff = sorted_lines(&ovl.ok(["diff", "oc"]));
    eprintln!("timing: ovl diff: {:.1?}", started.elapsed());

    let expected: Vec<String> = EXPECTED_CHANGES.iter().map(|s| s.to_string()).collect();
    failures.check(
        "docker diff = ovl diff",
        same_lines(&docker_diff, &ovl_diff),
    );
    failures.check(
        "docker diff = the rules",
        same_lines(&expected, &docker_diff),
    );
    failures.check("ovl diff --format json", {
        let json: serde_json::Value =
            serde_json::from_str(&ovl.ok(["diff", "--format", "json", "oc"])).expect("json");
        json_changes_match(&json, &ovl_diff)
    });

    // Commit on both sides with the same options.
    let mut commit_args: Vec<String> = vec!["commit".into(), "-a".into(), "ovl tests".into()];
    commit_args.extend(["-m".into(), "the change script".into()]);
    for change in COMMIT_CHANGES {
        commit_args.extend(["-c".into(), change.into()]);
    }
    let mut docker_args = commit_args.clone();
    docker_args.extend(["dc".into(), "dockcommit:1".into()]);
    docker.docker_ok(&docker_args);
    let mut ovl_args = commit_args;
    ovl_args.extend(["oc".into(), "ovlcommit:1".into()]);
    let started = Instant::now();
    let printed = ovl.ok(&ovl_args);
    eprintln!("timing: ovl commit: {:.1?}", started.elapsed());
    let ovl_image = printed.trim().to_string();
    assert!(
        ovl_image.starts_with("sha256:") && ovl_image.len() == 71,
        "ovl commit prints the image id: {printed:?}"
    );
    failures.check(
        "ovl diff unchanged by the commit",
        same_lines(&ovl_diff, &sorted_lines(&ovl.ok(["diff", "oc"]))),
    );

    // The layer tars: Docker's from `docker save`, ovl's from `ovl save`.
    let docker_saved = work.join("dockcommit.tar");
    docker.save("dockcommit:1", &docker_saved);
    let ovl_saved = work.join("ovlcommit.tar");
    ovl.ok([
        "save".as_ref(),
        "-o".as_ref(),
        ovl_saved.as_os_str(),
        "ovlcommit:1".as_ref(),
    ]);
    failures.check("commit layer entries", {
        let docker_layer = top_layer(&docker_saved).expect("Docker's commit layer");
        let ovl_layer = top_layer(&ovl_saved).expect("ovl's commit layer");
        same_entries(&docker_layer, &ovl_layer)
    });

    // The configs: equal but for what names the container.
    let docker_config = image_config(&docker_saved).expect("Docker's config");
    let ovl_config = image_config(&ovl_saved).expect("ovl's config");
    failures.check("commit configs", same_config(&docker_config, &ovl_config));

    // ovl's image in Docker: loaded, run, same merged tree as Docker's own commit.
    docker.docker_ok(["load", "-i", ovl_saved.to_str().expect("utf-8 path")]);
    let output = docker.docker_ok(["run", "--rm", "--network", "none", "ovlcommit:1"]);
    failures.check("docker run of ovl's commit", {
        if output.trim() == "new" {
            Ok(())
        } else {
            Err(anyhow::anyhow!("CMD printed {output:?}"))
        }
    });
    let changed = changed_paths(&docker_diff);
    let docker_dump = without_mtimes_of(&changed, docker_merged_dump(&docker, "dockcommit:1"));
    let ovl_dump = without_mtimes_of(&changed, docker_merged_dump(&docker, "ovlcommit:1"));
    failures.check(
        "merged tree of ovl's commit in Docker = Docker's commit",
        ensure_same_tree("commit", &docker_dump, &ovl_dump),
    );
    failures.finish();
}

#[test]
fn empty_and_reproducible_commits_needs_root() {
    const TEST: &str = "empty_and_reproducible_commits_needs_root";
    let Some((_work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    let base_layers = layers_of(&ovl, "base:1");

    // No change: a new image with an empty_layer history entry and the same layers.
    ovl.ok(["run-rootfs", "--name", "idle", "base:1"]);
    let idle = ovl.ok(["commit", "-m", "nothing", "idle", "idle:1"]);
    assert_eq!(layers_of(&ovl, "idle:1"), base_layers);
    let config = config_of(&ovl, idle.trim());
    let last = config["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("history");
    assert_eq!(last["empty_layer"], serde_json::json!(true), "{last}");
    assert_eq!(last["comment"], serde_json::json!("nothing"));

    // The same script in two containers, a second apart.
    let mut diff_ids = Vec::new();
    for (idx, name) in ["r1", "r2"].iter().enumerate() {
        if idx > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let merged = ovl.ok(["run-rootfs", "--name", name, "base:1"]);
        chroot_sh(
            &merged,
            "mkdir -p /w/x && echo one > /w/x/f && ln /w/x/f /w/h && rm /etc/group && chmod 700 /tmp && mkfifo /w/p",
        )
        .expect("change in the container");
        let plain = ovl.ok(["commit", name]);
        let reproducible = ovl.ok(["commit", "--reproducible", name]);
        diff_ids.push((
            top_diff_id(&ovl, plain.trim()),
            top_diff_id(&ovl, reproducible.trim()),
        ));
    }
    assert_ne!(
        diff_ids[0].0, diff_ids[1].0,
        "plain commits of changes made at different times differ (mtimes)"
    );
    assert_eq!(
        diff_ids[0].1, diff_ids[1].1,
        "--reproducible commits of equal upperdirs have equal DiffIDs"
    );

    // SOURCE_DATE_EPOCH does the same and dates the image.
    let mut dated = ovl.command(["commit", "r1"]);
    dated.env("SOURCE_DATE_EPOCH", "1000000000");
    let dated = stdout_of_success(dated).unwrap_or_else(|e| panic!("{e:#}"));
    let dated_id = String::from_utf8_lossy(&dated).trim().to_string();
    assert_eq!(
        config_of(&ovl, &dated_id)["created"],
        serde_json::json!("2001-09-09T01:46:40Z")
    );

    // Bad input: unknown container, invalid change; nothing is left behind.
    let images_before = ovl.ok(["images", "-q", "--no-trunc"]);
    let err = ovl.fail(["commit", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = ovl.fail(["commit", "-c", "RUN rm -rf /", "r1"]);
    assert!(err.contains("run is not a valid change command"), "{err}");
    assert_eq!(ovl.ok(["images", "-q", "--no-trunc"]), images_before);
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn same_lines(expected: &[String], actual: &[String]) -> anyhow::Result<()> {
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    let actual_set: BTreeSet<&String> = actual.iter().collect();
    let missing: Vec<&&String> = expected_set.difference(&actual_set).collect();
    let extra: Vec<&&String> = actual_set.difference(&expected_set).collect();
    ensure!(
        missing.is_empty() && extra.is_empty() && expected.len() == actual.len(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    Ok(())
}

fn json_changes_match(json: &serde_json::Value, lines: &[String]) -> anyhow::Result<()> {
    let items = json.as_array().context("an array")?;
    let mut from_json = Vec::new();
    for item in items {
        let kind = match item["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            other => bail!("bad Kind {other:?}"),
        };
        let path = item["Path"].as_str().context("Path")?;
        from_json.push(format!("{kind} {path}"));
    }
    from_json.sort();
    same_lines(lines, &from_json)
}

/// Paths whose mtimes legitimately differ between the two containers: the changed ones.
fn changed_paths(diff: &[String]) -> BTreeSet<Vec<u8>> {
    diff.iter()
        .filter_map(|line| line.get(2..))
        .map(|path| path.as_bytes().to_vec())
        .collect()
}

fn without_mtimes_of(paths: &BTreeSet<Vec<u8>>, mut dump: Vec<Record>) -> Vec<Record> {
    for record in &mut dump {
        if paths.contains(&record.path) {
            record.mtime = None;
        }
    }
    dump
}

/// The members of a `docker save` archive, by name.
fn archive_members(archive: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut members = BTreeMap::new();
    let mut reader = tar::Archive::new(fs::File::open(archive)?);
    for entry in reader.entries()? {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        members.insert(name, bytes);
    }
    Ok(members)
}

fn manifest(members: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<serde_json::Value> {
    let bytes = members.get("manifest.json").context("manifest.json")?;
    let manifest: serde_json::Value = serde_json::from_slice(bytes)?;
    manifest
        .as_array()
        .and_then(|items| items.first())
        .cloned()
        .context("one manifest item")
}

fn top_layer(archive: &Path) -> anyhow::Result<Vec<u8>> {
    let members = archive_members(archive)?;
    let manifest = manifest(&members)?;
    let layer = manifest["Layers"]
        .as_array()
        .and_then(|layers| layers.last())
        .and_then(|v| v.as_str())
        .context("Layers")?;
    members
        .get(layer)
        .cloned()
        .with_context(|| format!("member {layer}"))
}

fn image_config(archive: &Path) -> anyhow::Result<serde_json::Value> {
    let members = archive_members(archive)?;
    let manifest = manifest(&members)?;
    let config = manifest["Config"].as_str().context("Config")?;
    Ok(serde_json::from_slice(
        members.get(config).context("config member")?,
    )?)
}

/// One tar entry's comparable fields: everything but the mtime.
#[derive(Debug, PartialEq, Eq)]
struct EntryFields {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: Vec<u8>,
    size: u64,
    content: Vec<u8>,
    link: Option<Vec<u8>>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn entries(layer: &[u8]) -> anyhow::Result<Vec<EntryFields>> {
    let fields = |member: TarMember| -> anyhow::Result<EntryFields> {
        let header = &member.header;
        Ok(EntryFields {
            kind: header.entry_type().as_byte(),
            size: header.size()?,
            mode: header.mode()?,
            uid: header.uid()?,
            gid: header.gid()?,
            uname: header.username_bytes().unwrap_or_default().to_vec(),
            name: member.name,
            content: member.data,
            link: member.link,
            xattrs: member.xattrs,
        })
    };
    tar_members(layer)?.into_iter().map(fields).collect()
}

fn same_entries(docker_layer: &[u8], ovl_layer: &[u8]) -> anyhow::Result<()> {
    let docker = entries(docker_layer)?;
    let ovl = entries(ovl_layer)?;
    let names = |list: &[EntryFields]| -> Vec<String> {
        list.iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    };
    ensure!(
        names(&docker) == names(&ovl),
        "entry names differ:\n docker {:?}\n ovl    {:?}",
        names(&docker),
        names(&ovl)
    );
    for (d, o) in docker.iter().zip(&ovl) {
        ensure!(d == o, "entry differs:\n docker {d:?}\n ovl    {o:?}");
    }
    Ok(())
}

/// The configs agree on everything but what names the container (its id and hostname), the
/// times, the new layer's DiffID and the version string of the program that wrote them.
fn same_config(docker: &serde_json::Value, ovl: &serde_json::Value) -> anyhow::Result<()> {
    let normalize = |config: &serde_json::Value| -> serde_json::Value {
        let mut config = config.clone();
        if let Some(object) = config.as_object_mut() {
            for key in ["container", "created", "docker_version"] {
                object.remove(key);
            }
            for key in ["config", "container_config"] {
                if let Some(inner) = object.get_mut(key).and_then(|v| v.as_object_mut()) {
                    inner.remove("Hostname");
                }
            }
            // The new DiffID depends on the times of the changed directories, which differ
            // between the two containers; the layers' entries are compared on their own.
            if let Some(diff_ids) = object
                .get_mut("rootfs")
                .and_then(|r| r.get_mut("diff_ids"))
                .and_then(|d| d.as_array_mut())
            {
                diff_ids.pop();
            }
            if let Some(history) = object.get_mut("history").and_then(|h| h.as_array_mut()) {
                for entry in history {
                    if let Some(entry) = entry.as_object_mut() {
                        entry.remove("created");
                    }
                }
            }
        }
        config
    };
    let (docker, ovl) = (normalize(docker), normalize(ovl));
    ensure!(
        docker == ovl,
        "configs differ:\n docker {}\n ovl    {}",
        docker,
        ovl
    );
    Ok(())
}

fn layers_of(ovl: &Ovl, image: &str) -> Vec<serde_json::Value> {
    let inspect = ovl.inspect(image).expect("inspect");
    inspect["RootFS"]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn top_diff_id(ovl: &Ovl, image: &str) -> String {
    layers_of(ovl, image)
        .last()
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("a top layer")
}

fn config_of(ovl: &Ovl, image_id: &str) -> serde_json::Value {
    let hex = image_id.trim_start_matches("sha256:");
    let path = ovl
        .root
        .join("image/overlay2/imagedb/content/sha256")
        .join(hex);
    serde_json::from_slice(&fs::read(&path).expect("config file")).expect("config json")
}

/// A container whose layer was written through a `redirect_dir=on` mount (a renamed lower
/// directory is a redirect, not a copy): `ovl diff` and `ovl commit` must fall back to the merged
/// views and still list and commit the move.
#[test]
fn redirect_dir_container_diff_and_commit_needs_root() {
    const TEST: &str = "redirect_dir_container_diff_and_commit_needs_root";
    let Some((_work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    // A second layer, so that the renamed directory comes from a lower layer.
    let merged = ovl.ok(["run-rootfs", "--name", "prep", "base:1"]);
    chroot_sh(&merged, "mkdir -p /src/sub && echo k > /src/sub/k").expect("change in prep");
    ovl.ok(["commit", "prep", "base:2"]);

    ovl.ok(["run-rootfs", "--name", "mover", "base:2"]);
    let upper = change_through_redirect_dir(&ovl, "mover", |merged| {
        let moved = Command::new("chroot")
            .arg(merged)
            .args(["/bin/sh", "-c", "mv /src /dst"])
            .status()?;
        ensure!(moved.success(), "mv /src /dst");
        Ok(())
    })
    .expect("mv through a redirect_dir=on mount");
    assert!(
        has_xattr(&upper.join("dst"), "trusted.overlay.redirect"),
        "the rename through redirect_dir=on left a redirect in the upperdir"
    );

    let listed = sorted_lines(&ovl.ok(["diff", "mover"]));
    let expected: Vec<String> = ["A /dst", "A /dst/sub", "A /dst/sub/k", "D /src"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    same_lines(&expected, &listed).expect("diff through the merged views");

    // The image holds the move: the file under its new name, the old name gone.
    let check = |image: &str, container: &str| {
        let merged = ovl.ok(["run-rootfs", "--name", container, image]);
        let merged = Path::new(merged.trim());
        assert_eq!(
            fs::read(merged.join("dst/sub/k")).expect("moved file"),
            b"k\n"
        );
        assert!(!merged.join("src").exists(), "the old name is gone");
    };
    ovl.ok(["commit", "mover", "moved:1"]);
    check("moved:1", "check");

    // `commit --rm` cannot move an upperdir with a redirect: it copies from the merged tree as
    // above, and still removes the container.
    ovl.ok(["commit", "--rm", "mover", "moved:2"]);
    assert!(ovl.fail(["inspect", "mover"]).contains("mover"));
    check("moved:2", "check2");
}

fn has_xattr(path: &Path, name: &str) -> bool {
    rustix::fs::lgetxattr_query(path, name).is_ok()
}

/// What a layer dir holds, for comparing two layers: the tree (without the root's own entry and
/// without whiteouts' times, which unpacking sets to the moment it creates them), the names of
/// every entry's xattrs but security-module labels, and its layerdb entry (DiffID, size, a digest
/// of the tar-split record).
struct LayerFacts {
    diff: PathBuf,
    tree: Vec<Record>,
    xattrs: Vec<(Vec<u8>, Vec<String>)>,
    layerdb: String,
}

fn layer_facts(ovl: &Ovl, image: &str) -> LayerFacts {
    let diff_ids: Vec<String> = layers_of(ovl, image)
        .iter()
        .map(|v| v.as_str().expect("diff id").to_string())
        .collect();
    let chain_id = ovl_tests::chain_ids(&diff_ids)
        .last()
        .cloned()
        .expect("chain id");
    let entry = ovl
        .root
        .join("image/overlay2/layerdb/sha256")
        .join(chain_id.trim_start_matches("sha256:"));
    let read = |name: &str| fs::read_to_string(entry.join(name)).expect(name);
    let mut tar_split = Vec::new();
    flate2::read::GzDecoder::new(
        fs::File::open(entry.join("tar-split.json.gz")).expect("tar-split"),
    )
    .read_to_end(&mut tar_split)
    .expect("gunzip tar-split");
    let diff = ovl
        .root
        .join("overlay2")
        .join(read("cache-id").trim())
        .join("diff");
    let mut tree = ovl_tests::dump(
        &diff,
        &ovl_tests::DumpOptions {
            dir_mtimes: true,
            ..Default::default()
        },
    )
    .expect("dump layer");
    tree.retain(|record| record.path != b"/");
    for record in &mut tree {
        if record.rdev == Some((0, 0)) {
            record.mtime = None;
        }
    }
    let xattrs = tree
        .iter()
        .map(|record| {
            use std::os::unix::ffi::OsStrExt;
            let relative = record.path.strip_prefix(b"/").unwrap_or(&record.path);
            let path = diff.join(std::ffi::OsStr::from_bytes(relative));
            let names = xattr_names(&path)
                .into_iter()
                .filter(|name| !name.starts_with("security.selinux"))
                .collect();
            (record.path.clone(), names)
        })
        .collect();
    LayerFacts {
        layerdb: format!(
            "diff {} size {} tar-split {}",
            read("diff"),
            read("size"),
            ovl_tests::sha256_digest(&tar_split)
        ),
        diff,
        tree,
        xattrs,
    }
}

/// A tree dump of a new container of `image`, removed again.
fn merged_dump(ovl: &Ovl, image: &str) -> Vec<Record> {
    let merged = ovl.ok(["run-rootfs", "--name", "dumped", image]);
    // The init layer's files are made with each container.
    let exclude = [
        ".dockerenv",
        "dev",
        "proc",
        "sys",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
    ]
    .iter()
    .chain(&["etc/resolv.conf"])
    .map(PathBuf::from)
    .collect();
    let dump = ovl_tests::dump(
        Path::new(merged.trim()),
        &ovl_tests::DumpOptions {
            exclude,
            ..Default::default()
        },
    )
    .expect("dump merged");
    ovl.ok(["rm", "-f", "dumped"]);
    dump
}

/// `commit --rm` makes the container's upperdir the new layer by rename: the layer must be the
/// one a copying commit makes of the same upperdir (DiffID, size, tar-split, tree, xattrs), a big
/// changed file keeps its inode (nothing was copied), `fsck --verify-content` is clean, the
/// container is gone, and images from either layer give the same root. The upperdir holds what
/// a layer does not: overlay's `origin` and `impure` xattrs of copy-ups, whiteouts sharing the
/// kernel's one inode, a `user.*` xattr, a revision-3 capability, a socket, sub-second times.
#[test]
fn moving_commit_equals_copying_commit_needs_root() {
    const TEST: &str = "moving_commit_equals_copying_commit_needs_root";
    let Some((_work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    let merged = ovl.ok(["run-rootfs", "--name", "mover-a", "base:1"]);
    let merged = PathBuf::from(merged.trim());
    chroot_sh(
        merged.to_str().expect("utf-8"),
        "set -e; echo app:x:1000:1000::/:/bin/sh >> /etc/passwd; chmod 600 /etc/group; \
         rm /bin/true /bin/false; mkdir -p /w/x && echo one > /w/x/f && ln /w/x/f /w/h && \
         ln -s x/f /w/s; mkfifo /w/p; rm -r /tmp && mkdir /tmp && echo t > /tmp/t; \
         chown 1000:1000 /w/x/f",
    )
    .expect("change in the container");
    // Sub-second times, which the tar does not carry.
    let at = rustix::fs::Timespec {
        tv_sec: 1_577_934_245,
        tv_nsec: 678_000_000,
    };
    for path in ["w/x/f", "etc/passwd", "w/x"] {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            merged.join(path),
            &rustix::fs::Timestamps {
                last_access: at,
                last_modification: at,
            },
            rustix::fs::AtFlags::empty(),
        )
        .expect("set times");
    }
    // A big file of data (no zero blocks, which a copy would leave as holes), an xattr a layer
    // does not carry, and a socket.
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(merged.join("w/big"), &big).expect("write big file");
    rustix::fs::setxattr(
        merged.join("w/x/f"),
        "user.note",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("user xattr");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        merged.join("w/sock"),
        rustix::fs::FileType::Socket,
        rustix::fs::Mode::from_raw_mode(0o755),
        0,
    )
    .expect("socket");
    ovl.ok(["umount", "mover-a"]);
    let upper = ovl.upper_dir("mover-a");
    // A capability written as revision 3 with root id 0 (the kernel stores it as revision 2 in
    // the initial user namespace).
    let mut cap_v3 = vec![0u8; 24];
    cap_v3[..4].copy_from_slice(&0x0300_0001u32.to_le_bytes());
    cap_v3[5] = 0x04; // CAP_NET_BIND_SERVICE (bit 10)
    rustix::fs::setxattr(
        upper.join("w/x/f"),
        "security.capability",
        &cap_v3,
        rustix::fs::XattrFlags::empty(),
    )
    .expect("capability");
    assert!(
        has_xattr(&upper.join("etc/passwd"), "trusted.overlay.origin"),
        "a copy-up has its origin"
    );
    let big_inode = fs::metadata(upper.join("w/big")).expect("big").ino();

    // The same upperdir committed twice: by copy (which only reads it), then by move.
    let id = ovl.inspect("mover-a").expect("inspect")["Id"]
        .as_str()
        .expect("id")
        .to_string();
    // The copy's layer is removed before the move: a layer that exists already is kept and the
    // new one dropped (Docker's rule), which would leave nothing moved to compare.
    ovl.ok(["commit", "mover-a", "copied:1"]);
    let copied = layer_facts(&ovl, "copied:1");
    let copied_root = merged_dump(&ovl, "copied:1");
    ovl.ok(["rmi", "copied:1"]);
    ovl.ok(["commit", "--rm", "mover-a", "moved:1"]);
    let moved = layer_facts(&ovl, "moved:1");
    assert_eq!(moved.layerdb, copied.layerdb);
    ensure_same_tree(
        "moved layer against copied layer",
        &copied.tree,
        &moved.tree,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(moved.xattrs, copied.xattrs);
    assert_eq!(
        fs::metadata(moved.diff.join("w/big")).expect("big").ino(),
        big_inode,
        "the big file was moved, not copied"
    );
    let root = fs::metadata(&moved.diff).expect("layer root");
    assert_eq!(
        (root.mode() & 0o7777, root.uid(), root.gid()),
        (0o755, 0, 0)
    );

    // The container is gone, its layer dirs with it.
    let listed = ovl.ok(["ps", "-a", "-q", "--no-trunc"]);
    assert!(!listed.contains(&id), "{listed}");
    assert!(
        !upper.parent().expect("layer dir").exists(),
        "the container's layer dir is gone"
    );
    ovl.ok(["fsck", "--verify-content"]);

    // The images give the same root.
    ensure_same_tree(
        "root of moved:1 against copied:1",
        &copied_root,
        &merged_dump(&ovl, "moved:1"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    // A second move of the same changes finds the layer there: the container is removed and
    // the image uses the existing layer.
    let merged = ovl.ok(["run-rootfs", "--name", "mover-b", "moved:1"]);
    ovl.ok(["commit", "--rm", "mover-b", "again:1"]);
    assert!(ovl.fail(["inspect", "mover-b"]).contains("mover-b"));
    assert!(merged.trim().len() > 1);

    // A container a process still uses is not unmounted lazily: nothing changes.
    let merged = ovl.ok(["run-rootfs", "--name", "busy", "base:1"]);
    let held = fs::File::open(Path::new(merged.trim()).join("etc/passwd")).expect("hold a file");
    let images_before = ovl.ok(["images", "-q", "--no-trunc"]);
    let err = ovl.fail(["commit", "--rm", "busy", "busy:1"]);
    assert!(err.contains("busy"), "{err}");
    assert_eq!(ovl.ok(["images", "-q", "--no-trunc"]), images_before);
    assert!(
        Path::new(merged.trim()).join("bin/busybox").exists(),
        "still mounted"
    );
    drop(held);
    ovl.ok(["commit", "--rm", "busy", "busy:1"]);

    // Where moving is not allowed (clamped times), --rm copies and still removes the container.
    ovl.ok(["run-rootfs", "--name", "mover-c", "base:1"]);
    ovl.ok(["commit", "--rm", "--reproducible", "mover-c", "clamped:1"]);
    assert!(ovl.fail(["inspect", "mover-c"]).contains("mover-c"));
}

/// Unmounted here is not unmounted everywhere: a process that keeps its working directory in a
/// container lives on in the container's overlay after a lazy unmount (the container was busy),
/// and so does the overlay bind-mounted into a mount namespace of its own, as a container
/// runtime does, whose unmount here succeeds at once. Either can write the upperdir after the
/// commit. `commit --rm` must copy such a container's changes: the image's layer stays what its
/// DiffID says, whatever the process writes afterwards; and the container is not mounted again
/// while the overlay lives.
#[test]
fn moving_commit_copies_an_upperdir_another_overlay_still_holds_needs_root() {
    const TEST: &str = "moving_commit_copies_an_upperdir_another_overlay_still_holds_needs_root";
    let Some((work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    for (name, own_namespace) in [("lazy", false), ("runtime", true)] {
        let merged = ovl.ok(["run-rootfs", "--name", name, "base:1"]);
        let merged = PathBuf::from(merged.trim());
        fs::write(merged.join("committed"), "in the image\n").expect("change the container");
        let ready = work.join(format!("{name}.ready"));
        let go = work.join(format!("{name}.go"));
        // The process waits in the container's root until told, then writes there.
        let script = format!(
            "cd '{}' && touch '{}' && while [ ! -e '{}' ]; do sleep 0.05; done; \
             echo late > late 2>/dev/null; echo late >> committed 2>/dev/null; exit 0",
            merged.display(),
            ready.display(),
            go.display()
        );
        let mut command = match own_namespace {
            true => {
                let mut command = Command::new("unshare");
                command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
                command
            }
            false => {
                let mut command = Command::new("sh");
                command.args(["-c", &script]);
                command
            }
        };
        let mut child = command.spawn().expect("start the process in the container");
        let started = Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed().as_secs() < 30,
                "{name}: the process did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Busy here (lazy: detached) or not busy here at all (runtime): both succeed.
        ovl.ok(["umount", name]);
        // A second overlay on the same upper and work dirs is refused while this one lives.
        let err = ovl.fail(["mount", name]);
        assert!(err.contains("is still in use"), "{name}: {err}");
        assert!(
            !merged.join("bin/busybox").exists(),
            "{name}: mounted again"
        );
        let image = format!("{name}:1");
        ovl.ok(["commit", "--rm", name, &image]);
        fs::write(&go, "").expect("tell the process");
        assert!(child.wait().expect("wait for the process").success());

        let facts = layer_facts(&ovl, &image);
        assert_eq!(
            fs::read_to_string(facts.diff.join("committed")).expect("committed file"),
            "in the image\n",
            "{name}: the process changed a file of the image's layer after the commit"
        );
        assert!(
            !facts.diff.join("late").exists(),
            "{name}: the process wrote into the image's layer after the commit"
        );
        assert!(
            ovl.fail(["inspect", name]).contains(name),
            "{name}: removed"
        );
    }
    ovl.ok(["fsck", "--verify-content"]);
}

/// Asking the kernel whether an overlay still holds a container's upperdir (before `mount`, a
/// `diff` that mounts, and a moving commit) creates an overlay superblock on its upper and work
/// dirs and drops it; what that leaves in the work dir goes again, and a `volatile` mark (the
/// probe's superblock is volatile where the kernel has it, so that dropping it does not sync
/// the filesystem) never stays to break the next mount. A mark of a probe cut short (its
/// `ovl-probe` file beside it) is removed by the next probe; a mark without it is not ovl's and
/// stays, and the kernel refuses the mount, as it would without ovl.
#[test]
fn probing_whether_an_upperdir_is_held_leaves_its_work_dir_as_it_was_needs_root() {
    const TEST: &str =
        "probing_whether_an_upperdir_is_held_leaves_its_work_dir_as_it_was_needs_root";
    let Some((_work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    ovl.ok(["run-rootfs", "--name", "probed", "base:1"]);
    let upper = ovl.upper_dir("probed");
    let work_dir = upper.with_file_name("work");
    let listing = |dir: &Path| -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        walk_below(dir, |path, _| {
            names.insert(path.strip_prefix(dir).expect("below").display().to_string());
            true
        });
        names
    };
    let overlay_xattrs = |path: &Path| -> BTreeSet<String> {
        xattr_names(path)
            .into_iter()
            .filter(|name| name.starts_with("trusted.overlay."))
            .collect()
    };
    ovl.ok(["umount", "probed"]);
    let before = (listing(&work_dir), overlay_xattrs(&upper));
    // `diff` of an unmounted container mounts it (after the probe) and unmounts it again.
    ovl.ok(["diff", "probed"]);
    assert_eq!(
        (listing(&work_dir), overlay_xattrs(&upper)),
        before,
        "the probe and a mount changed the work dir or the upper root"
    );
    ovl.ok(["mount", "probed"]);
    ovl.ok(["umount", "probed"]);

    // A probe cut short after its superblock was made and before it cleaned up.
    let mark = work_dir.join("work/incompat/volatile");
    fs::create_dir_all(&mark).expect("make the volatile mark");
    fs::write(mark.join("dirty"), "").expect("make the volatile mark");
    fs::write(work_dir.join("ovl-probe"), "").expect("make the probe's marker");
    ovl.ok(["mount", "probed"]);
    ovl.ok(["umount", "probed"]);
    assert_eq!(listing(&work_dir), before.0, "the probe's leftovers stayed");

    // The same mark without ovl's marker: a volatile overlay of someone else's was cut short.
    fs::create_dir_all(&mark).expect("make the volatile mark");
    fs::write(mark.join("dirty"), "").expect("make the volatile mark");
    ovl.fail(["mount", "probed"]);
    assert!(
        mark.join("dirty").exists(),
        "a volatile mark that is not the probe's was removed"
    );
    fs::remove_dir_all(work_dir.join("work/incompat")).expect("remove the mark");
    ovl.ok(["commit", "--rm", "probed", "probed:1"]);
    ovl.ok(["fsck", "--verify-content"]);
}

/// A commit whose image cannot be written (here `repositories.json` is a directory, so the tag
/// cannot be added) fails naming the container and removes the layer it made, but not a layer
/// that existed before it, whose copy it dropped; a moving commit gives the upperdir back first.
#[test]
fn a_commit_whose_image_cannot_be_written_removes_only_its_own_layer_needs_root() {
    const TEST: &str =
        "a_commit_whose_image_cannot_be_written_removes_only_its_own_layer_needs_root";
    let Some((_work, ovl)) = root_scratch_base(TEST, "root") else {
        return;
    };
    let names_in = |dir: &str| -> BTreeSet<String> {
        fs::read_dir(ovl.root.join(dir))
            .unwrap_or_else(|err| panic!("reading {dir}: {err}"))
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let layers = || names_in("image/overlay2/layerdb/sha256");
    let layer_dirs = || names_in("overlay2");
    let repositories = ovl.root.join("image/overlay2/repositories.json");
    let break_tags = || -> Vec<u8> {
        let saved = fs::read(&repositories).expect("repositories.json");
        fs::remove_file(&repositories).expect("remove repositories.json");
        fs::create_dir(&repositories).expect("repositories.json as a directory");
        saved
    };
    let mend_tags = |saved: Vec<u8>| {
        fs::remove_dir(&repositories).expect("remove the directory");
        fs::write(&repositories, saved).expect("restore repositories.json");
    };

    for (name, moving) in [("copied", false), ("moved", true)] {
        let merged = ovl.ok(["run-rootfs", "--name", name, "base:1"]);
        fs::write(Path::new(merged.trim()).join(format!("{name}-file")), name)
            .expect("write in the container");
        ovl.ok(["umount", name]);
        let upper = ovl.upper_dir(name);
        let keeps_its_change = || {
            assert!(
                upper.join(format!("{name}-file")).is_file(),
                "{name}: the container lost its change"
            )
        };

        // A layer this commit makes.
        let (before, dirs_before) = (layers(), layer_dirs());
        let saved = break_tags();
        let mut args = vec!["commit"];
        if moving {
            args.push("--rm");
        }
        let reference = format!("{name}:1");
        args.extend([name, reference.as_str()]);
        let id = ovl.ok(["inspect", "-f", "{{.Id}}", name]);
        let stderr = ovl.fail(&args);
        mend_tags(saved);
        assert!(
            stderr.contains(id.trim()) && stderr.contains("repositories.json"),
            "the error names the container and the file: {stderr}"
        );
        assert_eq!(
            layers(),
            before,
            "{name}: the new layer stayed in the layerdb"
        );
        assert_eq!(
            layer_dirs(),
            dirs_before,
            "{name}: the new layer dir stayed"
        );
        keeps_its_change();

        // The same changes once more, now as a layer that exists: the failed commit keeps it.
        ovl.ok(["commit", name, "kept:1"]);
        let with_layer = layers();
        assert_eq!(
            with_layer.len(),
            before.len() + 1,
            "{name}: one layer committed"
        );
        let saved = break_tags();
        ovl.fail(&args);
        mend_tags(saved);
        assert_eq!(
            layers(),
            with_layer,
            "{name}: the existing layer was removed"
        );
        keeps_its_change();
        ovl.ok(["run-rootfs", "--name", &format!("{name}-check"), "kept:1"]);
        ovl.ok(["rm", "-f", &format!("{name}-check")]);
        ovl.ok(&args);
        ovl.ok(["rmi", "kept:1"]);
        ovl.ok(["fsck", "--verify-content"]);
    }
}

/// The names of `path`'s xattrs (not following a symlink).
fn xattr_names(path: &Path) -> Vec<String> {
    let mut buffer = vec![0u8; 64 * 1024];
    let len = rustix::fs::llistxattr(path, &mut buffer[..]).expect("llistxattr");
    buffer[..len]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}
