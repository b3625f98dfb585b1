//! One data root, two programs: a private dockerd 20.10 and ovl take turns on the same root.
//!
//! - `dockerd_runs_what_ovl_wrote_needs_root_and_dockerd`: ovl loads (docker-archive and OCI),
//!   imports, commits, tags and creates containers on a fresh root; a dockerd started on it must
//!   list, run, restore, diff, save, commit on top of and remove all of it, and leave nothing
//!   behind.
//! - `ovl_works_on_what_dockerd_wrote_needs_root_and_dockerd`: dockerd builds, loads, runs and
//!   commits; after it stops, ovl must show what Docker showed, mount Docker's images, diff and
//!   commit Docker's containers; a dockerd restarted on the root then sees ovl's work, and its own
//!   still works.
//! - `ovl_refuses_to_change_a_root_a_live_dockerd_uses_needs_root_and_dockerd`: every command
//!   that changes the root fails while dockerd runs on it, changing nothing; the read-only ones
//!   work.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context as _};
use ovl_tests::{
    base_rootfs_tar, build_image, changed_paths, chroot_sh, docker_merged_dump, dockerd_scratch,
    dockerd_with_base, ensure_same_tree, image_config, merged_dump, scratch_path, sha256_digest,
    unmount_below, walk_below, write_docker_archive, Dockerd, Failures, Ovl, Record, Scratch,
    TarBuilder,
};

/// What both programs must agree on for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageFacts {
    id: String,
    size: i64,
    layers: Vec<String>,
    parent: String,
}

fn facts_from(value: &serde_json::Value) -> anyhow::Result<ImageFacts> {
    Ok(ImageFacts {
        id: value["Id"].as_str().context("Id")?.to_string(),
        size: value["Size"].as_i64().context("Size")?,
        layers: value["RootFS"]["Layers"]
            .as_array()
            .context("RootFS.Layers")?
            .iter()
            .map(|layer| layer.as_str().unwrap_or_default().to_string())
            .collect(),
        parent: value["Parent"].as_str().unwrap_or_default().to_string(),
    })
}

fn docker_facts(docker: &Dockerd, image: &str) -> anyhow::Result<ImageFacts> {
    let text = docker.docker_ok(["image", "inspect", image]);
    let value: serde_json::Value = serde_json::from_str(&text)?;
    facts_from(&value[0])
}

fn ovl_facts(ovl: &Ovl, image: &str) -> anyhow::Result<ImageFacts> {
    facts_from(&ovl.inspect(image)?)
}

/// `repo:tag -> image id` as `docker images` lists it.
fn docker_tags(docker: &Dockerd) -> BTreeMap<String, String> {
    first_field_map(&docker.docker_ok([
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]))
}

/// `repo:tag -> image id` from `ovl inspect` of every image `ovl images -q` lists.
fn ovl_tags(ovl: &Ovl) -> anyhow::Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let ids: BTreeSet<String> = ovl
        .try_ok(["images", "-q", "--no-trunc"])?
        .lines()
        .map(str::to_string)
        .collect();
    for id in ids {
        let value = ovl.inspect(&id)?;
        for tag in value["RepoTags"].as_array().into_iter().flatten() {
            tags.insert(tag.as_str().unwrap_or_default().to_string(), id.clone());
        }
    }
    Ok(tags)
}

/// `container id -> name` as `docker ps -a` lists it.
fn docker_containers(docker: &Dockerd) -> BTreeMap<String, String> {
    first_field_map(&docker.docker_ok(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]))
}

/// Each line's first space-separated field mapped to the rest of the line.
fn first_field_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(first, rest)| (first.to_string(), rest.to_string()))
        .collect()
}

/// `container id -> name` from `ovl ps -a`.
fn ovl_containers(ovl: &Ovl) -> anyhow::Result<BTreeMap<String, String>> {
    let mut containers = BTreeMap::new();
    for id in ovl.try_ok(["ps", "-a", "-q", "--no-trunc"])?.lines() {
        let value = ovl.inspect(id)?;
        let name = value["Name"].as_str().unwrap_or_default();
        containers.insert(id.to_string(), name.trim_start_matches('/').to_string());
    }
    Ok(containers)
}

fn line_set(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// Path, type, mode, owner, size and mtime of everything in the store parts of a data root
/// (`image/`, `overlay2/`, `containers/`) and the files at its top; mount points are listed but
/// not entered.
fn store_listing(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, u64, i64, i64)> {
    let mut listing = BTreeMap::new();
    let root_dev = fs::symlink_metadata(root).map(|m| m.dev()).unwrap_or(0);
    walk_below(root, |path, _| {
        let relative = path.strip_prefix(root).unwrap_or(path).to_path_buf();
        let top = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(meta) = fs::symlink_metadata(path) else {
            return false;
        };
        let in_store = ["image", "overlay2", "containers"].contains(&top.as_str());
        if !in_store && meta.is_dir() {
            return false;
        }
        listing.insert(
            relative,
            (
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
            ),
        );
        meta.is_dir() && meta.dev() == root_dev
    });
    listing
}

/// Writes `work/twolayer.tar`, a docker-archive of the base layer and [`twolayer_top`] (members
/// `l1/layer.tar` and `l2/layer.tar`) tagged `tag`; returns its path.
fn write_twolayer_archive(work: &Scratch, tag: &str) -> PathBuf {
    let base_layer = base_rootfs_tar();
    let top_layer = twolayer_top();
    let diff_ids = vec![sha256_digest(&base_layer), sha256_digest(&top_layer)];
    let members = [
        ("l1/layer.tar".to_string(), base_layer),
        ("l2/layer.tar".to_string(), top_layer),
    ];
    let archive = work.join("twolayer.tar");
    write_docker_archive(&archive, &image_config(&diff_ids), &members, &[tag]);
    archive
}

/// The second layer of the `twolayer` archive: a whiteout, an opaque directory, a hardlink, a
/// new directory tree.
fn twolayer_top() -> Vec<u8> {
    let mtime = 1_700_000_000;
    let mut builder = TarBuilder::at(mtime);
    builder.dir("etc/");
    builder.mode(0o600).file("etc/.wh.group", b"");
    builder.mode(0o1777).dir("tmp/");
    builder.mode(0o600).file("tmp/.wh..wh..opq", b"");
    builder.file("tmp/fresh", b"fresh\n");
    builder.dir("two/");
    builder
        .mode(0o640)
        .owner(1000, 1000)
        .file("two/file", b"two\n");
    builder
        .mode(0o640)
        .owner(1000, 1000)
        .hardlink("two/link", "two/file");
    builder.finish()
}

const OVL_TEST: &str = "dockerd_runs_what_ovl_wrote_needs_root_and_dockerd";

#[test]
fn dockerd_runs_what_ovl_wrote_needs_root_and_dockerd() {
    let Some(work) = dockerd_scratch(OVL_TEST) else {
        return;
    };
    let (total, docker_scratch) = (Instant::now(), scratch_path());
    fs::create_dir_all(&docker_scratch).expect("mkdir docker scratch");
    let data_root = docker_scratch.join("data");
    let ovl = Ovl::new(&data_root);
    let mut failures = Failures::default();

    // ovl writes: an import, a docker-archive, an OCI archive, a commit, a tag, containers.
    let base_tar = work.write_base_tar("base.tar");
    ovl.import(&base_tar, "base:1");

    let base_layer = base_rootfs_tar();
    let top_layer = twolayer_top();
    let archive = write_twolayer_archive(&work, "twolayer:1");
    ovl.load(&archive).expect("ovl load twolayer");

    // The OCI archive comes from another ovl root: twolayer plus a committed change, gzip layers.
    let other = Ovl::new(work.join("other-root"));
    other.load(&archive).expect("load into the other root");
    let merged = other.ok(["run-rootfs", "--name", "maker", "twolayer:1"]);
    chroot_sh(&merged, "echo oci > /oci.txt && rm /two/link").expect("change for ociimg");
    other.ok(["commit", "maker", "ociimg:1"]);
    let oci_archive = work.join("ociimg.oci.tar");
    let save = "save --format oci-archive --compression gzip -o".split(' ');
    let names = [oci_archive.as_os_str(), OsStr::new("ociimg:1")];
    other.ok(save.map(OsStr::new).chain(names));
    other.ok(["rm", "-f", "maker"]);
    ovl.load(&oci_archive).expect("ovl load of the OCI archive");

    let merged = ovl.ok(["run-rootfs", "--name", "c1", "base:1"]);
    chroot_sh(
        &merged,
        "echo committed > /committed.txt && rm /etc/group && mkdir -p /var/x && echo y > /var/x/y",
    )
    .expect("change c1");
    ovl.ok([
        "commit",
        "-a",
        "ovl tester",
        "-m",
        "from ovl",
        "-c",
        r#"CMD ["/bin/cat", "/committed.txt"]"#,
        "c1",
        "committed:1",
    ]);
    ovl.ok(["tag", "committed:1", "alias"]);
    let merged = ovl.ok(["run-rootfs", "--name", "c2", "committed:1"]);
    chroot_sh(&merged, "echo c2 > /c2.txt && rm /var/x/y").expect("change c2");
    let ovl_diffs: BTreeMap<&str, BTreeSet<String>> = ["c1", "c2"]
        .into_iter()
        .map(|name| (name, line_set(&ovl.ok(["diff", name]))))
        .collect();
    ovl.ok(["umount", "c1", "c2"]);

    let tags = [
        "base:1",
        "twolayer:1",
        "ociimg:1",
        "committed:1",
        "alias:latest",
    ];
    let mut ovl_dumps = BTreeMap::new();
    for (idx, tag) in tags.iter().enumerate().take(4) {
        let name = format!("dump{idx}");
        let merged = ovl.ok(["run-rootfs", "--name", &name, tag]);
        ovl_dumps.insert(*tag, merged_dump(Path::new(merged.trim())).expect("dump"));
        ovl.ok(["rm", "-f", &name]);
    }
    let ovl_image_facts: BTreeMap<&str, ImageFacts> = tags
        .iter()
        .map(|tag| (*tag, ovl_facts(&ovl, tag).expect("ovl inspect")))
        .collect();
    let expected_tags = ovl_tags(&ovl).expect("ovl tags");
    let expected_containers = ovl_containers(&ovl).expect("ovl containers");
    let ovl_saved = work.join("ovl-save.tar");
    let ovl_saved_arg = ovl_saved.to_str().expect("path");
    ovl.ok(["save", "-o", ovl_saved_arg, "committed:1"]);
    let ovl_histories: BTreeMap<&str, String> = ["committed:1", "twolayer:1", "ociimg:1"]
        .into_iter()
        .map(|tag| (tag, ovl.ok(["history", "--no-trunc", tag])))
        .collect();
    let ovl_images_table = ovl.ok(["images"]);
    failures.check("ovl fsck of ovl's root", fsck_clean(&ovl));
    eprintln!("timing: ovl side {:.1?}", total.elapsed());

    // dockerd reads.
    let started = Instant::now();
    let docker = Dockerd::start(&docker_scratch);
    eprintln!(
        "timing: dockerd start on ovl's root {:.1?}",
        started.elapsed()
    );

    failures.check("docker images lists ovl's images and tags", {
        same_as(
            "docker images",
            Ok(docker_tags(&docker)),
            "ovl",
            &expected_tags,
        )
    });
    for tag in tags {
        let inspect = same_as(
            "docker",
            docker_facts(&docker, tag),
            "ovl",
            &ovl_image_facts[tag],
        );
        failures.check(&format!("docker image inspect {tag}"), inspect);
    }
    failures.check("docker history of ovl's commit", {
        let history = docker.docker_ok([
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "committed:1",
        ]);
        let first = history.lines().next().unwrap_or_default().to_string();
        (|| {
            ensure!(
                first == "|from ovl",
                "newest history row {first:?}, expected the commit's: created_by is the \
                 container's command, empty for c1 (its image has no Cmd), comment \"from ovl\""
            );
            ensure!(history.lines().count() == 2, "history rows {history:?}");
            Ok(())
        })()
    });
    for (tag, expected) in &ovl_histories {
        let listed = docker.docker_ok(["history", "--no-trunc", tag]);
        failures.check(
            &format!("docker history {tag} prints ovl history's table"),
            {
                (|| {
                    ensure!(
                        table_rows(&listed) == table_rows(expected),
                        "docker history:\n{listed}\novl history:\n{expected}"
                    );
                    Ok(())
                })()
            },
        );
    }
    failures.check("docker images prints ovl images' table", {
        let listed = docker.docker_ok(["images"]);
        (|| {
            ensure!(
                table_rows(&listed) == table_rows(&ovl_images_table),
                "docker images:\n{listed}\novl images:\n{ovl_images_table}"
            );
            Ok(())
        })()
    });
    for (tag, expected) in &ovl_dumps {
        let docker_dump = docker_merged_dump(&docker, tag);
        failures.check(
            &format!("docker's merged tree of {tag} equals ovl's"),
            ensure_same_tree(tag, &docker_dump, expected),
        );
    }
    failures.check("docker run of ovl's commit", {
        let out = docker.docker_ok(["run", "--rm", "--network", "none", "committed:1"]);
        (|| {
            ensure!(out == "committed\n", "docker run printed {out:?}");
            Ok(())
        })()
    });
    failures.check("docker ps -a restores ovl's containers", {
        same_as(
            "docker ps -a",
            Ok(docker_containers(&docker)),
            "ovl",
            &expected_containers,
        )
    });
    for (name, expected) in &ovl_diffs {
        let listed = line_set(&docker.docker_ok(["diff", name]));
        failures.check(&format!("docker diff {name} equals ovl diff"), {
            same_as("docker diff", Ok(listed), "ovl diff", expected)
        });
    }
    failures.check("docker start of an ovl container", {
        let out = docker.docker_ok(["start", "-a", "c2"]);
        let listed = line_set(&docker.docker_ok(["diff", "c2"]));
        (|| {
            ensure!(out == "committed\n", "docker start -a c2 printed {out:?}");
            ensure!(
                listed == ovl_diffs["c2"],
                "docker diff after start {listed:#?} != ovl diff {:#?}",
                ovl_diffs["c2"]
            );
            Ok(())
        })()
    });
    failures.check(
        "docker save gives the loaded and committed layers byte for byte",
        {
            let saved = work.join("docker-save.tar");
            let saved_arg = saved.to_str().expect("path");
            docker.docker_ok(["save", "-o", saved_arg, "twolayer:1", "committed:1"]);
            (|| {
                let docker_layers = archive_layers(&saved)?;
                let ovl_layers = archive_layers(&ovl_saved)?;
                for (original, what) in [(&base_layer, "base layer"), (&top_layer, "twolayer top")]
                {
                    let digest = sha256_digest(original);
                    ensure!(
                        docker_layers.get(&digest) == Some(original),
                        "docker save lacks the {what} as loaded ({digest})"
                    );
                }
                for (digest, bytes) in &ovl_layers {
                    ensure!(
                        docker_layers.get(digest) == Some(bytes),
                        "docker save's layer {digest} differs from ovl save's"
                    );
                }
                for diff_id in &ovl_image_facts["committed:1"].layers {
                    ensure!(docker_layers.contains_key(diff_id), "no layer {diff_id}");
                }
                Ok(())
            })()
        },
    );
    failures.check("docker commit on top of ovl's commit", {
        docker.docker_ok(["commit", "c2", "dcommit:1"]);
        let out = docker.docker_ok([
            "run",
            "--rm",
            "--network",
            "none",
            "dcommit:1",
            "cat",
            "/c2.txt",
        ]);
        (|| {
            ensure!(out == "c2\n", "docker run printed {out:?}");
            Ok(())
        })()
    });
    failures.check("docker rm and rmi remove everything", {
        docker.docker_ok(["rm", "c1", "c2"]);
        let mut rmi = vec!["rmi", "dcommit:1"];
        rmi.extend(tags);
        docker.docker_ok(rmi);
        let left = docker.docker_ok(["images", "-aq"]);
        (|| {
            ensure!(left.trim().is_empty(), "images left: {left}");
            Ok(())
        })()
    });
    let scratch = docker.stop_keeping_state();
    failures.check(
        "no orphan layer, link, mounts entry or container after the round trip",
        {
            leftovers(&scratch.join("data")).and_then(|left| {
                ensure!(left.is_empty(), "left behind: {left:#?}");
                Ok(())
            })
        },
    );
    failures.check(
        "ovl fsck after Docker removed everything",
        fsck_clean(&Ovl::new(scratch.join("data"))),
    );
    failures.check("ovl prune --dry-run finds nothing after the round trip", {
        Ovl::new(scratch.join("data"))
            .try_ok(["prune", "--dry-run"])
            .and_then(|out| {
                ensure!(
                    !out.contains("Would delete") && out.contains("Total reclaimed space: 0B"),
                    "ovl prune --dry-run: {out}"
                );
                Ok(())
            })
    });
    unmount_below(&scratch);
    let _ = fs::remove_dir_all(&scratch);
    eprintln!("timing: {OVL_TEST} {:.1?}", total.elapsed());
    failures.finish();
}

/// The rows of a docker-style table as sets of cells (columns are separated by two or more
/// spaces); in cells that tell a time ("5 seconds ago", "Up 2 minutes", "Exited (0) 3 seconds
/// ago") the amount of time becomes `#`, so that two listings taken a clock tick apart compare
/// equal while everything else must match exactly.
fn table_rows(text: &str) -> BTreeSet<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(|cell| {
                    if cell.ends_with(" ago") || cell.starts_with("Up ") {
                        normalize_time(cell)
                    } else {
                        cell.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

fn normalize_time(cell: &str) -> String {
    let words = [
        ("Less than a second", "# seconds"),
        ("About a minute", "# minutes"),
        ("About an hour", "# hours"),
        ("1 second ", "# seconds "),
    ];
    let mut text = cell.to_string();
    for (from, to) in words {
        text = text.replace(from, to);
    }
    // The amount before the unit; an exit code in parentheses stays.
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut in_parens = false;
    while let Some(c) = chars.next() {
        match c {
            '(' => in_parens = true,
            ')' => in_parens = false,
            _ => {}
        }
        if c.is_ascii_digit() && !in_parens {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out.replace("# second ", "# seconds ")
        .replace("# minute ", "# minutes ")
        .replace("# hour ", "# hours ")
}

/// `ovl fsck --verify-content` finds nothing at all, leftovers included.
fn fsck_clean(ovl: &Ovl) -> anyhow::Result<()> {
    let out = ovl.try_ok(["fsck", "--verify-content"])?;
    ensure!(
        out.lines().count() == 1 && out.ends_with(": 0 corrupt, 0 leftovers\n"),
        "ovl fsck: {out}"
    );
    Ok(())
}

/// The layer tars of a docker-archive by DiffID (their sha256).
fn archive_layers(archive: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut layers = BTreeMap::new();
    let mut reader = tar::Archive::new(fs::File::open(archive)?);
    for entry in reader.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.ends_with("/layer.tar") && entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)?;
            layers.insert(sha256_digest(&bytes), bytes);
        }
    }
    Ok(layers)
}

/// What is left in a data root's stores after every image and container was removed.
fn leftovers(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    for dir in [
        "image/overlay2/layerdb/sha256",
        "image/overlay2/layerdb/mounts",
        "image/overlay2/imagedb/content/sha256",
        "overlay2/l",
        "containers",
    ] {
        for entry in fs::read_dir(root.join(dir)).with_context(|| dir.to_string())? {
            left.push(format!("{dir}/{}", entry?.file_name().to_string_lossy()));
        }
    }
    for entry in fs::read_dir(root.join("overlay2"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "l" {
            left.push(format!("overlay2/{name}"));
        }
    }
    let tmp = root.join("image/overlay2/layerdb/tmp");
    if tmp.is_dir() {
        for entry in fs::read_dir(&tmp)? {
            left.push(format!(
                "image/overlay2/layerdb/tmp/{}",
                entry?.file_name().to_string_lossy()
            ));
        }
    }
    Ok(left)
}

const DOCKER_TEST: &str = "ovl_works_on_what_dockerd_wrote_needs_root_and_dockerd";

/// Docker's image for the second direction: whiteouts, a hardlink, config-only instructions.
const BUILT_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /d/sub && echo x > /d/f && echo s > /d/sub/s && rm /etc/group
ENV A=b
LABEL made.by=docker
RUN rm -r /d/sub && ln /d/f /d/hard
CMD ["/bin/cat", "/d/f"]
"#;

/// Idempotent, so that Docker can start the container again after ovl committed it.
const DC1_SCRIPT: &str = "echo hi > /hi && rm -f /d/hard && mkdir -p /newdir && echo n > /newdir/n";

#[test]
fn ovl_works_on_what_dockerd_wrote_needs_root_and_dockerd() {
    let total = Instant::now();
    // dockerd writes: an import, a build, a load, a run, a commit, a created container.
    let Some(docker) = dockerd_with_base(DOCKER_TEST) else {
        return;
    };
    let work = Scratch::new();
    let mut failures = Failures::default();
    build_image(&docker, "built:1", BUILT_DOCKERFILE, &[]);
    let archive = write_twolayer_archive(&work, "loaded:1");
    docker.docker_ok([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
    docker.docker_ok([
        "run",
        "--name",
        "dc1",
        "--network",
        "none",
        "built:1",
        "/bin/sh",
        "-c",
        DC1_SCRIPT,
    ]);
    docker.docker_ok(["commit", "dc1", "dcommitted:1"]);
    docker.docker_ok(["create", "--name", "dc2", "--network", "none", "loaded:1"]);

    let tags = ["ovl-base:1", "built:1", "loaded:1", "dcommitted:1"];
    let docker_listed = docker_tags(&docker);
    let docker_image_facts: BTreeMap<&str, ImageFacts> = tags
        .iter()
        .map(|tag| (*tag, docker_facts(&docker, tag).expect("docker inspect")))
        .collect();
    let docker_listed_containers = docker_containers(&docker);
    let docker_images_table = docker.docker_ok(["images"]);
    let docker_ps_table = docker.docker_ok(["ps", "-a"]);
    let docker_diffs: BTreeMap<&str, BTreeSet<String>> = ["dc1", "dc2"]
        .into_iter()
        .map(|name| (name, line_set(&docker.docker_ok(["diff", name]))))
        .collect();
    let docker_dumps: BTreeMap<&str, Vec<Record>> = ["built:1", "dcommitted:1"]
        .into_iter()
        .map(|tag| (tag, docker_merged_dump(&docker, tag)))
        .collect();
    let scratch = docker.stop_keeping_state();
    eprintln!("timing: docker side {:.1?}", total.elapsed());

    // ovl reads and writes.
    let ovl = Ovl::new(scratch.join("data"));
    failures.check("ovl fsck of the root Docker wrote", fsck_clean(&ovl));
    failures.check("ovl images lists Docker's images and tags", {
        same_as("ovl", ovl_tags(&ovl), "docker", &docker_listed)
    });
    for tag in tags {
        failures.check(&format!("ovl inspect {tag}"), {
            same_as(
                "ovl",
                ovl_facts(&ovl, tag),
                "docker",
                &docker_image_facts[tag],
            )
        });
    }
    failures.check("ovl images prints docker images' table", {
        ovl.try_ok(["images"]).and_then(|out| {
            let (ovl_rows, docker_rows) = (table_rows(&out), table_rows(&docker_images_table));
            ensure!(
                ovl_rows == docker_rows,
                "ovl images:\n{out}\ndocker images:\n{docker_images_table}"
            );
            Ok(())
        })
    });
    failures.check("ovl ps -a prints docker ps -a's table", {
        ovl.try_ok(["ps", "-a"]).and_then(|out| {
            let (ovl_rows, docker_rows) = (table_rows(&out), table_rows(&docker_ps_table));
            ensure!(
                ovl_rows == docker_rows,
                "ovl ps -a:\n{out}\ndocker ps -a:\n{docker_ps_table}"
            );
            Ok(())
        })
    });
    failures.check("ovl ps -a lists Docker's containers", {
        same_as(
            "ovl",
            ovl_containers(&ovl),
            "docker",
            &docker_listed_containers,
        )
    });
    for (name, expected) in &docker_diffs {
        failures.check(&format!("ovl diff {name} equals docker diff"), {
            let listed = ovl.try_ok(["diff", name]).map(|out| line_set(&out));
            same_as("ovl diff", listed, "docker diff", expected)
        });
    }
    let mut oc_diff = BTreeSet::new();
    failures.check("ovl run-rootfs of Docker's image shows Docker's tree", {
        (|| {
            let merged = ovl.try_ok(["run-rootfs", "--name", "oc", "built:1"])?;
            let dump = merged_dump(Path::new(merged.trim()))?;
            ensure_same_tree("built:1", &docker_dumps["built:1"], &dump)?;
            chroot_sh(&merged, "echo oc > /oc.txt && rm /d/hard")?;
            oc_diff = line_set(&ovl.try_ok(["diff", "oc"])?);
            ovl.try_ok(["umount", "oc"])?;
            Ok(())
        })()
    });
    let mut committed_id = String::new();
    failures.check(
        "ovl commit of Docker's container equals docker commit's tree",
        {
            (|| {
                committed_id = ovl
                    .try_ok(["commit", "dc1", "ocommitted:1"])?
                    .trim()
                    .to_string();
                let merged = ovl.try_ok(["run-rootfs", "--name", "ocheck", "ocommitted:1"])?;
                let dump = merged_dump(Path::new(merged.trim()))?;
                ovl.try_ok(["rm", "-f", "ocheck"])?;
                ensure_same_tree("ocommitted:1", &docker_dumps["dcommitted:1"], &dump)
            })()
        },
    );
    eprintln!("timing: ovl side done at {:.1?}", total.elapsed());

    // dockerd again: ovl's work is visible and Docker's still works.
    let docker = Dockerd::start(&scratch);
    failures.check("restarted dockerd lists ovl's commit", {
        let listed = docker_tags(&docker);
        (|| {
            ensure!(
                listed.get("ocommitted:1") == Some(&committed_id),
                "docker images {listed:#?} lacks ocommitted:1 = {committed_id}"
            );
            let out = docker.docker_ok([
                "run",
                "--rm",
                "--network",
                "none",
                "ocommitted:1",
                "cat",
                "/hi",
            ]);
            ensure!(out == "hi\n", "docker run ocommitted:1 printed {out:?}");
            Ok(())
        })()
    });
    failures.check("restarted dockerd restores and starts ovl's container", {
        let listed = docker_containers(&docker);
        (|| {
            ensure!(
                listed.values().any(|name| name == "oc"),
                "docker ps -a {listed:#?} lacks oc"
            );
            let diff = line_set(&docker.docker_ok(["diff", "oc"]));
            ensure!(
                diff == oc_diff,
                "docker diff oc {diff:#?} != ovl diff {oc_diff:#?}"
            );
            let out = docker.docker_ok(["start", "-a", "oc"]);
            ensure!(out == "x\n", "docker start -a oc printed {out:?}");
            Ok(())
        })()
    });
    failures.check("Docker's own images and containers still work", {
        let started = docker.docker_ok(["start", "-a", "dc1"]);
        let hi = docker.docker_ok([
            "run",
            "--rm",
            "--network",
            "none",
            "dcommitted:1",
            "cat",
            "/hi",
        ]);
        let fresh = docker.docker_ok([
            "run",
            "--rm",
            "--network",
            "none",
            "loaded:1",
            "cat",
            "/tmp/fresh",
        ]);
        docker.docker_ok(["start", "-a", "dc2"]);
        (|| {
            ensure!(
                started.is_empty(),
                "docker start -a dc1 printed {started:?}"
            );
            ensure!(hi == "hi\n", "dcommitted:1 printed {hi:?}");
            ensure!(fresh == "fresh\n", "loaded:1 printed {fresh:?}");
            Ok(())
        })()
    });
    drop(docker);
    eprintln!("timing: {DOCKER_TEST} {:.1?}", total.elapsed());
    failures.finish();
}

const LIVE_TEST: &str = "ovl_refuses_to_change_a_root_a_live_dockerd_uses_needs_root_and_dockerd";

#[test]
fn ovl_refuses_to_change_a_root_a_live_dockerd_uses_needs_root_and_dockerd() {
    let Some(docker) = dockerd_with_base(LIVE_TEST) else {
        return;
    };
    let work = Scratch::new();
    docker.docker_ok([
        "create",
        "--name",
        "live",
        "--network",
        "none",
        "ovl-base:1",
        "/bin/sh",
    ]);
    let archive = work.write_base_tar("base.tar");
    let ovl = Ovl::new(docker.data_root());
    let mut failures = Failures::default();

    let before = store_listing(docker.data_root());
    let refused: [Vec<&OsStr>; 9] = [
        vec!["load".as_ref(), "-i".as_ref(), archive.as_os_str()],
        vec!["import".as_ref(), archive.as_os_str(), "x:1".as_ref()],
        vec!["tag".as_ref(), "ovl-base:1".as_ref(), "other:1".as_ref()],
        vec!["rmi".as_ref(), "ovl-base:1".as_ref()],
        vec!["run-rootfs".as_ref(), "ovl-base:1".as_ref()],
        vec!["commit".as_ref(), "live".as_ref(), "y:1".as_ref()],
        vec!["rm".as_ref(), "-f".as_ref(), "live".as_ref()],
        vec!["umount".as_ref(), "live".as_ref()],
        vec!["rm".as_ref(), "live".as_ref()],
    ];
    for args in &refused {
        let stderr = ovl.fail(args);
        failures.check(&format!("ovl {args:?} is refused naming dockerd"), {
            (|| {
                ensure!(
                    stderr.contains("in use by dockerd (pid ")
                        && stderr.contains(&docker.data_root().display().to_string()),
                    "stderr: {stderr}"
                );
                Ok(())
            })()
        });
    }
    let after = store_listing(docker.data_root());
    failures.check("nothing in the data root changed", {
        (|| {
            let changed = changed_paths(&before, &after);
            ensure!(changed.is_empty(), "changed: {changed:#?}");
            Ok(())
        })()
    });
    for args in [
        vec!["images"],
        vec!["ps", "-a"],
        vec!["inspect", "ovl-base:1"],
        vec!["diff", "live"],
    ] {
        failures.check(&format!("read-only ovl {args:?} works"), {
            ovl.try_ok(&args).map(|_| ())
        });
    }
    failures.check("ovl info gives docker info's storage driver status", {
        let docker_status = docker.docker_ok(["info", "--format", "{{json .DriverStatus}}"]);
        (|| {
            let docker_status: serde_json::Value = serde_json::from_str(&docker_status)?;
            let info: serde_json::Value =
                serde_json::from_str(&ovl.try_ok(["info", "--format", "json"])?)?;
            ensure!(
                info["DriverStatus"] == docker_status,
                "ovl {} != docker {docker_status}",
                info["DriverStatus"]
            );
            ensure!(
                info["LiveDockerd"]
                    .as_str()
                    .is_some_and(|text| text.contains("dockerd (pid ")),
                "ovl info does not name the live dockerd: {info}"
            );
            Ok(())
        })()
    });
    let saved = work.join("saved.tar");
    failures.check("ovl save works beside the live daemon", {
        ovl.try_ok([
            OsStr::new("save"),
            OsStr::new("-o"),
            saved.as_os_str(),
            OsStr::new("ovl-base:1"),
        ])
        .map(|_| ())
    });
    drop(docker);
    failures.finish();
}

/// A data root ovl cannot fully understand is reported, never repaired: another storage driver's
/// root is refused by every command, an unknown entry or a newer Docker's file is named in a
/// warning and left alone.
#[test]
fn roots_ovl_does_not_fully_understand_are_reported() {
    let work = Scratch::new();
    let vfs_root = work.join("vfs-root");
    for dir in [
        "vfs/dir/0123",
        "image/vfs/imagedb/content/sha256",
        "containers",
    ] {
        fs::create_dir_all(vfs_root.join(dir)).expect("mkdir");
    }
    let archive = work.write_base_tar("base.tar");
    let ovl = Ovl::new(&vfs_root);
    let before = store_listing(&vfs_root);
    for args in [
        vec![OsStr::new("images")],
        vec![OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()],
    ] {
        let stderr = ovl.fail(&args);
        assert!(
            stderr.contains("data root of Docker's vfs storage driver")
                && stderr.contains(&vfs_root.display().to_string()),
            "ovl {args:?}: {stderr}"
        );
    }
    assert_eq!(store_listing(&vfs_root), before, "the vfs root was changed");
    assert!(!vfs_root.join("overlay2").exists() && !vfs_root.join("ovl.lock").exists());

    let odd_root = work.join("odd-root");
    let odd = Ovl::new(&odd_root);
    odd.import(&archive, "base:1");
    fs::create_dir(odd_root.join("mystery")).expect("mkdir mystery");
    fs::write(odd_root.join("engine-id"), b"x").expect("write engine-id");
    let output = odd.run(["images"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ovl images: {stderr}");
    assert!(
        stderr.contains("unknown entry mystery") && stderr.contains("newer than 20.10 (engine-id)"),
        "stderr: {stderr}"
    );
    assert!(odd_root.join("mystery").is_dir() && odd_root.join("engine-id").is_file());
}

/// `Ok` when what `reader` shows (`seen`) equals what `writer` shows (`expected`).
fn same_as<T: PartialEq + std::fmt::Debug>(
    reader: &str,
    seen: anyhow::Result<T>,
    writer: &str,
    expected: &T,
) -> anyhow::Result<()> {
    let seen = seen?;
    ensure!(
        &seen == expected,
        "{reader} {seen:#?} != {writer} {expected:#?}"
    );
    Ok(())
}
