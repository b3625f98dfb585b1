//! `ovl prune` and `ovl system df`.
//!
//! On an ovl root with images and a mounted container, leftovers are made by hand the way an
//! interrupted Docker leaves them; the dry run must list exactly those (the expectation is written
//! down here from the format's rules), change nothing, and the prune must remove them and nothing
//! else. On a root a private dockerd used (build, run, commit, rmi, a volume), the dry run must
//! find nothing, and `ovl system df` must print what `docker system df` printed before the daemon
//! stopped.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use ovl_tests::{
    base_image, base_rootfs_tar, build_image, chain_ids, changed_paths, chroot_sh, dockerd_scratch,
    image_config, require_root, root_scratch_ovl, sha256_digest, write_docker_archive, Dockerd,
    Failures, Ovl, Scratch, TarBuilder, BASE_IMAGE,
};
use sha2::{Digest, Sha256};

const LEFTOVERS_TEST: &str = "prune_removes_exactly_the_leftovers_needs_root";
const DOCKER_TEST: &str = "prune_finds_nothing_on_a_root_docker_used_needs_root_and_dockerd";

/// The text of every `l/` link: `../<64-hex id>/diff` (format.md §4.1).
const LINK_TARGET_LEN: usize = 3 + 64 + 5;

/// A one-file layer tar: `opt/` and `opt/<name>` holding `content`.
fn one_file_layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mtime = 1_650_000_000;
    let mut builder = TarBuilder::at(mtime);
    builder.dir("opt/");
    builder.file(&format!("opt/{name}"), content);
    builder.finish()
}

/// A 26-character link id (RFC 4648 base32 alphabet, format.md §4.1) starting with `word`.
fn link_id(word: &str) -> String {
    format!("{word:A<26}")
}

/// Path, type, mode, owner, size, mtime, link target and content hash of everything in a data
/// root; mount points (a mounted container) are listed but not entered.
fn root_listing(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut listing = BTreeMap::new();
    let root_dev = fs::symlink_metadata(root).expect("stat root").dev();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let mut facts = format!(
                "mode {:o} owner {}:{} size {} mtime {}.{}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec()
            );
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("readlink");
                facts.push_str(&format!(" -> {}", target.display()));
            } else if meta.is_file() {
                let bytes = fs::read(&path).expect("read");
                facts.push_str(&format!(" sha256 {:x}", Sha256::digest(&bytes)));
            } else if meta.is_dir() && meta.dev() == root_dev {
                stack.push(path.clone());
            }
            listing.insert(
                path.strip_prefix(root).expect("below root").to_path_buf(),
                facts,
            );
        }
    }
    listing
}

/// A layer dir made by hand as format.md §4.1 describes it: `diff/` with one file, `link`, and the
/// `l/<LID>` link to it, the link id made of `lid_word` ([`link_id`]); returns the bytes Docker's
/// `directory.Size` counts (file, `link` file, `l/` link target).
fn hand_made_layer_dir(root: &Path, id: &str, lid_word: &str, file: &str, content: &[u8]) -> usize {
    let lid = &link_id(lid_word);
    let dir = root.join("overlay2").join(id);
    fs::create_dir_all(dir.join("diff")).expect("mkdir");
    fs::write(dir.join("diff").join(file), content).expect("write");
    fs::write(dir.join("link"), lid).expect("write link");
    symlink(format!("../{id}/diff"), root.join("overlay2/l").join(lid)).expect("symlink");
    content.len() + lid.len() + LINK_TARGET_LEN
}

/// Creates `dir` holding `files` (name, content); returns the bytes written.
fn dir_of_files(dir: &Path, files: &[(&str, &[u8])]) -> usize {
    fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    for (name, content) in files {
        fs::write(dir.join(name), content).expect("write file");
    }
    files.iter().map(|(_, content)| content.len()).sum()
}

#[test]
fn prune_removes_exactly_the_leftovers_needs_root() {
    if !require_root(LEFTOVERS_TEST) {
        return;
    }
    let started = Instant::now();
    let work = Scratch::new();
    let root = work.join("root");
    let ovl = Ovl::new(&root);

    // Images and a mounted container: `base:1` imported, `other:1` sharing its layer, the
    // container on `base:1`.
    let base_tar = base_rootfs_tar();
    let base_path = work.join("base.tar");
    fs::write(&base_path, &base_tar).expect("write base");
    ovl.import(&base_path, "base:1");
    let other_top = one_file_layer("other.txt", b"other\n");
    let other_diff_ids = vec![sha256_digest(&base_tar), sha256_digest(&other_top)];
    let other_archive = work.join("other.tar");
    write_docker_archive(
        &other_archive,
        &image_config(&other_diff_ids),
        &[
            ("base/layer.tar".to_string(), base_tar.clone()),
            ("other/layer.tar".to_string(), other_top),
        ],
        &["other:1"],
    );
    ovl.load(&other_archive).expect("load other:1");
    let merged = ovl.ok(["run-rootfs", "--name", "ctr", "base:1"]);

    // An untagged image no container uses, whose top layer no other image has.
    let dangling_top = one_file_layer("dangling.txt", b"dangling!!\n");
    let dangling_diff_ids = vec![sha256_digest(&base_tar), sha256_digest(&dangling_top)];
    let dangling_config = image_config(&dangling_diff_ids);
    let dangling_image = sha256_digest(&dangling_config);
    let dangling_layer = chain_ids(&dangling_diff_ids)[1].clone();
    let dangling_archive = work.join("dangling.tar");
    write_docker_archive(
        &dangling_archive,
        &dangling_config,
        &[
            ("base/layer.tar".to_string(), base_tar.clone()),
            ("dangling/layer.tar".to_string(), dangling_top),
        ],
        &[],
    );
    ovl.load(&dangling_archive)
        .expect("load the untagged image");
    // Its layer's `size`: the one 11-byte file (directories count nothing, format.md §3.2).
    let dangling_layer_size = 11;

    // A layer removal cut short after its layerdb entry was renamed (format.md §3.4): the marker
    // and the layer dir its cache-id names.
    let removed_id = "7e".repeat(32);
    let removed_dir_size =
        hand_made_layer_dir(&root, &removed_id, "REMOVING", "gone.txt", b"removed\n");
    let marker = format!("{}-{}-removing", "ab".repeat(32), "cd".repeat(32));
    let marker_dir = root.join("image/overlay2/layerdb/sha256").join(&marker);
    let removed_diff = format!("sha256:{}", "ef".repeat(32));
    let marker_files: [(&str, &[u8]); 3] = [
        ("cache-id", removed_id.as_bytes()),
        ("diff", removed_diff.as_bytes()),
        ("size", b"8"),
    ];
    let marker_size = dir_of_files(&marker_dir, &marker_files) + removed_dir_size;

    // A registration that never committed (format.md §3.3): a write-set with its first files.
    let write_set = root.join("image/overlay2/layerdb/tmp/write-set-4242");
    let gzip_start: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let write_set_size = dir_of_files(
        &write_set,
        &[
            ("tar-split.json.gz", gzip_start),
            ("diff", b"sha256:0123456789"),
        ],
    );

    // A layer dir no layer and no container names, with its `l/` link; and a link to a dir that
    // is gone.
    let orphan_id = "0f".repeat(32);
    let orphan_size = hand_made_layer_dir(&root, &orphan_id, "ORPHAN", "orphan.txt", b"orphan\n");
    let dangling_link = link_id("DANGLING");
    symlink(
        format!("../{}/diff", "9a".repeat(32)),
        root.join("overlay2/l").join(&dangling_link),
    )
    .expect("symlink");

    let total = dangling_layer_size + marker_size + write_set_size + orphan_size + LINK_TARGET_LEN;
    assert!(total < 1000, "the expected total is written in bytes below");
    let items = [
        format!("image: {dangling_image}"),
        format!("layer: {dangling_layer}"),
        format!("interrupted layer removal: image/overlay2/layerdb/sha256/{marker}"),
        "write-set: image/overlay2/layerdb/tmp/write-set-4242".to_string(),
        format!("layer dir: overlay2/{orphan_id}"),
        format!("link: overlay2/l/{dangling_link}"),
    ];
    let expected = |verb: &str| {
        let mut text: String = items
            .iter()
            .map(|item| format!("{verb} {item}\n"))
            .collect();
        text.push_str(&format!("Total reclaimed space: {total}B\n"));
        text
    };

    let mut failures = Failures::default();
    let before = root_listing(&root);
    // `ovl <args>` succeeds and lists the leftovers, each line starting with `word`; its stderr.
    let lists_the_leftovers = |args: [&str; 2], word: &str| -> anyhow::Result<String> {
        let output = ovl.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        ensure!(output.status.success(), "ovl {args:?} failed: {stderr}");
        ensure!(
            stdout == expected(word),
            "got:\n{stdout}\nexpected:\n{}\nstderr: {stderr}",
            expected(word)
        );
        Ok(stderr)
    };
    failures.check(
        "the dry run lists exactly the leftovers",
        (|| {
            let dry_stderr = lists_the_leftovers(["prune", "--dry-run"], "Would delete")?;
            ensure!(!dry_stderr.contains("Left alone"), "{dry_stderr}");
            Ok(())
        })(),
    );
    failures.check(
        "the dry run changes nothing",
        (|| {
            let after = root_listing(&root);
            let changed = changed_paths(&before, &after);
            ensure!(changed.is_empty(), "changed: {changed:?}");
            Ok(())
        })(),
    );

    failures.check(
        "the prune removes exactly the leftovers",
        (|| {
            lists_the_leftovers(["prune", "-f"], "Deleted")?;
            for gone in [
                marker_dir.clone(),
                write_set.clone(),
                root.join("overlay2").join(&removed_id),
                root.join("overlay2").join(&orphan_id),
                root.join("overlay2/l").join(link_id("REMOVING")),
                root.join("overlay2/l").join(link_id("ORPHAN")),
                root.join("overlay2/l").join(&dangling_link),
                root.join("image/overlay2/layerdb/sha256")
                    .join(dangling_layer.trim_start_matches("sha256:")),
                root.join("image/overlay2/imagedb/content/sha256")
                    .join(dangling_image.trim_start_matches("sha256:")),
            ] {
                ensure!(
                    fs::symlink_metadata(&gone).is_err(),
                    "{} is still there",
                    gone.display()
                );
            }
            Ok(())
        })(),
    );
    failures.check(
        "a second dry run finds nothing",
        (|| {
            let again = ovl.try_ok(["prune", "--dry-run"])?;
            ensure!(again == "Total reclaimed space: 0B\n", "{again}");
            let fsck = ovl.try_ok(["fsck"])?;
            ensure!(fsck.ends_with(": 0 corrupt, 0 leftovers\n"), "{fsck}");
            Ok(())
        })(),
    );
    failures.check(
        "every image still mounts",
        (|| {
            for (idx, (image, file)) in [("base:1", "etc/passwd"), ("other:1", "opt/other.txt")]
                .into_iter()
                .enumerate()
            {
                let name = format!("check{idx}");
                let merged = ovl.try_ok(["run-rootfs", "--name", &name, image])?;
                chroot_sh(&merged, &format!("/bin/busybox test -f /{file}"))?;
                ovl.try_ok(["rm", "-f", &name])?;
            }
            Ok(())
        })(),
    );
    failures.check(
        "the container still works",
        (|| {
            let again = ovl.try_ok(["run-rootfs", "--name", "ctr", "base:1"])?;
            ensure!(again == merged, "ctr moved from {merged} to {again}");
            chroot_sh(
                &merged,
                "echo after > /after && /bin/busybox cat /etc/passwd > /dev/null",
            )?;
            let diff = ovl.try_ok(["diff", "ctr"])?;
            ensure!(diff.lines().any(|line| line == "A /after"), "{diff}");
            ovl.try_ok(["umount", "ctr"])?;
            let remounted = ovl.try_ok(["run-rootfs", "--name", "ctr", "base:1"])?;
            chroot_sh(&remounted, "/bin/busybox grep -q after /after")?;
            Ok(())
        })(),
    );
    eprintln!("timing: {LEFTOVERS_TEST}: {:.1?}", started.elapsed());
    failures.finish();
}

const MOUNTED_TEST: &str = "prune_leaves_garbage_with_a_mount_inside_alone_needs_root";

fn mount(args: &[&OsStr]) -> anyhow::Result<()> {
    let status = Command::new("mount").args(args).status().context("mount")?;
    ensure!(status.success(), "mount {args:?}: {status}");
    Ok(())
}

#[test]
fn prune_leaves_garbage_with_a_mount_inside_alone_needs_root() {
    let Some((work, ovl)) = root_scratch_ovl(MOUNTED_TEST, "root") else {
        return;
    };
    let root = ovl.root.clone();
    let base_path = work.write_base_tar("base.tar");
    ovl.import(&base_path, "base:1");

    // An orphan layer dir with a tmpfs on its `merged/`, and a write-set with a directory of the
    // same file system bind-mounted inside (same device: only the mount id tells).
    let orphan_id = "3c".repeat(32);
    hand_made_layer_dir(&root, &orphan_id, "MOUNTED", "f", b"f");
    let merged = root.join("overlay2").join(&orphan_id).join("merged");
    fs::create_dir(&merged).expect("mkdir merged");
    mount(&[
        OsStr::new("-t"),
        OsStr::new("tmpfs"),
        OsStr::new("tmpfs"),
        merged.as_os_str(),
    ])
    .expect("mount tmpfs");
    fs::write(merged.join("in-tmpfs"), b"tmpfs data").expect("write");
    let outside = work.join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("precious"), b"keep me").expect("write");
    let write_set = root.join("image/overlay2/layerdb/tmp/write-set-77");
    fs::create_dir_all(write_set.join("sub")).expect("mkdir");
    mount(&[
        OsStr::new("--bind"),
        outside.as_os_str(),
        write_set.join("sub").as_os_str(),
    ])
    .expect("bind mount");

    for args in [["prune", "--dry-run"], ["prune", "-f"]] {
        let output = ovl.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ovl {args:?}: {stderr}");
        assert_eq!(stdout, "Total reclaimed space: 0B\n", "ovl {args:?}");
        for needle in [
            format!("Left alone overlay2/{orphan_id}: a file system is mounted at "),
            "Left alone image/overlay2/layerdb/tmp/write-set-77: a file system is mounted at "
                .to_string(),
        ] {
            assert!(stderr.contains(&needle), "no {needle:?} in {stderr}");
        }
    }
    assert_eq!(
        fs::read(merged.join("in-tmpfs")).expect("read"),
        b"tmpfs data"
    );
    assert_eq!(
        fs::read(outside.join("precious")).expect("read"),
        b"keep me"
    );
    assert!(root.join("overlay2/l").join(link_id("MOUNTED")).exists());
}

/// The seconds range a `units.HumanDuration` text (with or without ` ago`) stands for; `None`
/// for texts a test of a few minutes does not produce.
fn duration_range(text: &str) -> Option<(u64, u64)> {
    let text = text.strip_suffix(" ago").unwrap_or(text);
    let number = |suffix: &str| -> Option<u64> { text.strip_suffix(suffix)?.parse().ok() };
    match text {
        "Less than a second" => Some((0, 1)),
        "1 second" => Some((1, 2)),
        "About a minute" => Some((60, 120)),
        _ => {
            if let Some(n) = number(" seconds") {
                Some((n, n + 1))
            } else {
                number(" minutes").map(|n| (n * 60, (n + 1) * 60))
            }
        }
    }
}

/// Whether `later` (printed up to `slack` after `earlier`) can be the same age grown older.
fn same_age(earlier: &str, later: &str, slack: Duration) -> bool {
    match (duration_range(earlier), duration_range(later)) {
        (Some((lo_e, hi_e)), Some((lo_l, hi_l))) => {
            lo_l < hi_e + slack.as_secs() + 1 && hi_l > lo_e
        }
        _ => earlier == later,
    }
}

/// The sections of `docker system df -v`: title lines as they are, table rows split into cells
/// (cells are separated by at least two spaces; none of this test's cells holds two in a row).
fn sections(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            if line.contains("   ") {
                line.split("  ")
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .map(str::to_string)
                    .collect()
            } else {
                vec![line.to_string()]
            }
        })
        .collect()
}

/// Compares `docker system df -v` with `ovl system df -v`, exactly except for the ages in the
/// CREATED and STATUS columns, which may have grown by up to `slack`.
fn compare_verbose(docker: &str, ovl: &str, slack: Duration) -> anyhow::Result<()> {
    let (mut docker_lines, mut ovl_lines) = (sections(docker), sections(ovl));
    // moby lists volumes in Go map order (volume/local `Root.List`): their rows are a set.
    for lines in [&mut docker_lines, &mut ovl_lines] {
        if let Some(header) = lines.iter().position(|cells| cells[0] == "VOLUME NAME") {
            let end = lines[header..]
                .iter()
                .position(|cells| cells[0].is_empty())
                .map_or(lines.len(), |offset| header + offset);
            lines[header + 1..end].sort();
        }
    }
    ensure!(
        docker_lines.len() == ovl_lines.len(),
        "docker printed {} lines, ovl {}:\ndocker:\n{docker}\novl:\n{ovl}",
        docker_lines.len(),
        ovl_lines.len()
    );
    let mut header: Vec<String> = Vec::new();
    for (docker_cells, ovl_cells) in docker_lines.iter().zip(&ovl_lines) {
        if docker_cells.len() > 1 && docker_cells.iter().all(|c| c.to_uppercase() == *c) {
            header = docker_cells.clone();
        }
        ensure!(
            docker_cells.len() == ovl_cells.len(),
            "docker {docker_cells:?} vs ovl {ovl_cells:?}"
        );
        for (idx, (d, o)) in docker_cells.iter().zip(ovl_cells).enumerate() {
            let column = header.get(idx).map(String::as_str).unwrap_or_default();
            let ok = match column {
                "CREATED" if docker_cells != &header => same_age(d, o, slack),
                "STATUS" if docker_cells != &header => {
                    match (d.split_once(") "), o.split_once(") ")) {
                        (Some((d_state, d_age)), Some((o_state, o_age))) => {
                            d_state == o_state && same_age(d_age, o_age, slack)
                        }
                        _ => d == o,
                    }
                }
                _ => d == o,
            };
            ensure!(
                ok,
                "column {column:?}: docker {d:?}, ovl {o:?}\ndocker:\n{docker}\novl:\n{ovl}"
            );
        }
    }
    Ok(())
}

#[test]
fn prune_finds_nothing_on_a_root_docker_used_needs_root_and_dockerd() {
    let Some(work) = dockerd_scratch(DOCKER_TEST) else {
        return;
    };
    let started = Instant::now();
    let docker = Dockerd::start(&work.join("docker"));
    // Listed images are made more than a second apart, so that Docker's newest-first order (by
    // whole seconds) has no ties.
    let pause = || std::thread::sleep(Duration::from_millis(1100));
    base_image(&docker);
    pause();
    build_image(
        &docker,
        "built:1",
        &format!(
            "FROM {BASE_IMAGE}\nRUN mkdir /data && echo one > /data/one\nENV A=b\n\
             RUN echo two > /data/two && ln /data/two /data/hard\nCMD [\"/bin/sh\"]\n"
        ),
        &[],
    );
    pause();
    build_image(
        &docker,
        "gone:1",
        &format!("FROM {BASE_IMAGE}\nRUN echo gone > /gone\nRUN echo more >> /gone\n"),
        &[],
    );
    docker.docker_ok(["volume", "create", "vol1"]);
    docker.docker_ok([
        "run",
        "--name",
        "r1",
        "--network",
        "none",
        "-v",
        "vol1:/vol",
        "built:1",
        "/bin/sh",
        "-c",
        "echo x > /x && echo volume > /vol/v && rm /data/one",
    ]);
    docker.docker_ok(["commit", "r1", "committed:1"]);
    pause();
    docker.docker_ok([
        "run",
        "--name",
        "r2",
        "--network",
        "none",
        "committed:1",
        "/bin/sh",
        "-c",
        "echo 'a b' > /ab",
    ]);
    docker.docker_ok([
        "create",
        "--name",
        "c3",
        "--network",
        "none",
        BASE_IMAGE,
        "/bin/true",
    ]);
    docker.docker_ok(["rmi", "gone:1"]);
    docker.docker_ok(["volume", "create", "unused"]);

    let docker_summary = docker.docker_ok(["system", "df"]);
    let docker_json = docker.docker_ok(["system", "df", "--format", "{{json .}}"]);
    let docker_verbose_at = Instant::now();
    let docker_verbose = docker.docker_ok(["system", "df", "-v"]);
    let scratch = docker.stop_keeping_state();
    eprintln!("timing: docker side {:.1?}", started.elapsed());

    let ovl = Ovl::new(scratch.join("data"));
    let mut failures = Failures::default();
    failures.check(
        "the dry run finds nothing on Docker's root",
        (|| {
            let output = ovl.run(["prune", "--dry-run"]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            ensure!(
                output.status.success(),
                "ovl prune --dry-run failed: {stderr}"
            );
            ensure!(stdout == "Total reclaimed space: 0B\n", "{stdout}");
            ensure!(!stderr.contains("Left alone"), "{stderr}");
            Ok(())
        })(),
    );
    failures.check(
        "ovl system df prints docker system df",
        (|| {
            let summary = ovl.try_ok(["system", "df"])?;
            ensure!(
                summary == docker_summary,
                "ovl:\n{summary}\ndocker:\n{docker_summary}"
            );
            let json = ovl.try_ok(["system", "df", "--format", "json"])?;
            ensure!(json == docker_json, "ovl:\n{json}\ndocker:\n{docker_json}");
            Ok(())
        })(),
    );
    failures.check(
        "ovl system df -v prints docker system df -v",
        (|| {
            let verbose = ovl.try_ok(["system", "df", "-v"])?;
            compare_verbose(&docker_verbose, &verbose, docker_verbose_at.elapsed())
        })(),
    );
    failures.check(
        "a prune of Docker's root removes nothing",
        (|| {
            let pruned = ovl.try_ok(["prune", "-f"])?;
            ensure!(pruned == "Total reclaimed space: 0B\n", "{pruned}");
            Ok(())
        })(),
    );
    eprintln!("timing: {DOCKER_TEST}: {:.1?}", started.elapsed());
    failures.finish();
}
