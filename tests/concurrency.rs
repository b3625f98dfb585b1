//! Concurrency: eight ovl processes at a time on one data root, for a bounded number of rounds,
//! load the same and different images, create containers, change them, diff, commit, remove
//! containers and images. Every command succeeds or fails with a clear "in use" error; an image
//! loaded by several processes at once is stored once; `ovl fsck` finds nothing at the end.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ovl_tests::{
    assert_layers_stored_clean, base_rootfs_tar, chroot_sh, layerdb, layers_archive, nested_layer,
    root_scratch, stdout_of_success, Ovl, TarBuilder,
};

const TEST: &str = "eight_processes_at_once_keep_the_root_consistent_needs_root";
const N_WORKERS: usize = 8;
const N_ROUNDS: usize = 6;

/// A two-layer archive: the base image's layer and one of small files, different for every
/// `seed`; returns it and its DiffIDs.
fn archive(seed: usize, tag: &str) -> (Vec<u8>, Vec<String>) {
    let custom: Vec<Vec<u8>> = (0..1)
        .map(|idx| {
            let mut builder = TarBuilder::at(1_700_000_000);
            let dir = format!("s{seed}l{idx}");
            builder.dir(&format!("{dir}/"));
            for file in 0..200 {
                let data = format!("{seed} {idx} {file}\n").repeat(20);
                builder.file(&format!("{dir}/f{file}"), data.as_bytes());
            }
            builder.finish()
        })
        .collect();
    // The busybox base below, so that the image has a shell.
    let layers: Vec<Vec<u8>> = std::iter::once(base_rootfs_tar()).chain(custom).collect();
    layers_archive(layers, &format!("{seed}-"), &[tag])
}

/// Runs one command; a failure is acceptable only when it says the object is in use, or that the
/// shared image another worker removed is gone.
fn run(ovl: &Ovl, args: &[&OsStr], log: &mut Vec<String>) -> Option<String> {
    let output = ovl.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        return Some(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let in_use = stderr.contains("is using it") || stderr.contains("in use");
    // Once a worker removed the shared image, the others may find it gone until they load it
    // again.
    let shared_gone = args.contains(&OsStr::new("shared:1")) && stderr.contains("no such image");
    assert!(in_use || shared_gone, "ovl {args:?} failed: {stderr}");
    log.push(format!("ovl {args:?}: {}", stderr.trim()));
    None
}

fn worker(ovl: &Ovl, idx: usize, archives: &[PathBuf], shared: &Path) -> Vec<String> {
    let mut log = Vec::new();
    for round in 0..N_ROUNDS {
        let name = format!("w{idx}r{round}");
        // Everybody loads the shared archive, and one of the private ones.
        run(
            ovl,
            &[
                "load".as_ref(),
                "-q".as_ref(),
                "-i".as_ref(),
                shared.as_os_str(),
            ],
            &mut log,
        );
        let private = &archives[(idx + round) % archives.len()];
        run(
            ovl,
            &[
                "load".as_ref(),
                "-q".as_ref(),
                "-i".as_ref(),
                private.as_os_str(),
            ],
            &mut log,
        );
        let Some(merged) = run(
            ovl,
            &[
                "run-rootfs".as_ref(),
                "--name".as_ref(),
                name.as_ref(),
                "shared:1".as_ref(),
            ],
            &mut log,
        ) else {
            continue;
        };
        chroot_sh(&merged, &format!("echo {name} > /{name} && rm -r /s0l0"))
            .unwrap_or_else(|e| panic!("change in {name}: {e:#}"));
        if let Some(diff) = run(ovl, &["diff".as_ref(), name.as_ref()], &mut log) {
            assert!(
                diff.contains(&format!("A /{name}")),
                "diff of {name}: {diff}"
            );
        }
        let tag = format!("{name}:1");
        run(
            ovl,
            &["commit".as_ref(), name.as_ref(), tag.as_ref()],
            &mut log,
        );
        run(
            ovl,
            &["rm".as_ref(), "-f".as_ref(), name.as_ref()],
            &mut log,
        );
        run(ovl, &["rmi".as_ref(), tag.as_ref()], &mut log);
        // Someone else's container may use the shared image: then this is refused as in use.
        if round == N_ROUNDS - 1 && idx.is_multiple_of(4) {
            run(ovl, &["rmi".as_ref(), "shared:1".as_ref()], &mut log);
        }
    }
    log
}

#[test]
fn eight_processes_at_once_keep_the_root_consistent_needs_root() {
    let Some(work) = root_scratch(TEST) else {
        return;
    };
    let ovl = Arc::new(work.base_root("root"));
    let (shared_bytes, shared_diff_ids) = archive(0, "shared:1");
    let shared = work.join("shared.tar");
    fs::write(&shared, shared_bytes).expect("write shared");
    let archives: Arc<Vec<PathBuf>> = Arc::new(
        (1..4)
            .map(|seed| {
                let path = work.join(format!("private{seed}.tar"));
                fs::write(&path, archive(seed, &format!("private{seed}:1")).0).expect("write");
                path
            })
            .collect(),
    );
    let started = Instant::now();
    let handles: Vec<_> = (0..N_WORKERS)
        .map(|idx| {
            let ovl = Arc::clone(&ovl);
            let archives = Arc::clone(&archives);
            let shared = shared.clone();
            std::thread::spawn(move || worker(&ovl, idx, &archives, &shared))
        })
        .collect();
    let mut refusals = Vec::new();
    for handle in handles {
        refusals.extend(handle.join().expect("worker panicked"));
    }
    eprintln!(
        "{N_WORKERS} workers x {N_ROUNDS} rounds in {:.1?}; refused: {refusals:#?}",
        started.elapsed()
    );

    // The shared layers are stored once: one layerdb entry per ChainID, one overlay2 dir each
    // (loaded once more, in case a worker's rmi removed the image last).
    ovl.ok([
        OsStr::new("load"),
        OsStr::new("-q"),
        OsStr::new("-i"),
        shared.as_os_str(),
    ]);
    let layers = layerdb(&ovl.root);
    let mut cache_ids: BTreeMap<String, usize> = BTreeMap::new();
    for entry in layers.values() {
        *cache_ids.entry(entry.cache_id.clone()).or_default() += 1;
    }
    for diff_id in &shared_diff_ids {
        let n_entries = layers
            .values()
            .filter(|entry| entry.diff == *diff_id)
            .count();
        assert_eq!(
            n_entries, 1,
            "layer {diff_id} of the shared image is stored {n_entries} times"
        );
    }
    assert!(
        cache_ids.values().all(|&n| n == 1),
        "a cache-id used twice: {cache_ids:?}"
    );
    let fsck = ovl.ok(["fsck", "--verify-content"]);
    assert!(fsck.ends_with(": 0 corrupt, 0 leftovers\n"), "{fsck}");
}

/// Layers of many small files unpacked at once by a process that may open only a few hundred
/// descriptors (soft and hard limit). Every small file handed to a writer thread holds a
/// descriptor until it is finished, so how many may wait, across all the layers being unpacked,
/// follows `RLIMIT_NOFILE`: four layers under a limit of 192 and eight (`OVL_LOAD_JOBS=8`)
/// under 512 load, and their layers hold exactly what their tars say.
#[test]
fn layers_at_once_under_a_descriptor_limit_needs_root() {
    let Some(work) = root_scratch("layers_at_once_under_a_descriptor_limit_needs_root") else {
        return;
    };
    for (n_layers, limit) in [(4, 192), (8, 512)] {
        let ovl = Ovl::new(work.join(format!("root{n_layers}")));
        let layers: Vec<Vec<u8>> = (0..n_layers)
            .map(|idx| {
                let mut builder = TarBuilder::at(1_700_000_000);
                for dir in 0..10 {
                    builder.dir(&format!("l{idx}d{dir}/"));
                    for file in 0..500 {
                        let data =
                            format!("layer {idx} dir {dir} file {file}\n").repeat(60 + file % 40);
                        builder.file(&format!("l{idx}d{dir}/f{file}"), data.as_bytes());
                    }
                }
                builder.finish()
            })
            .collect();
        let (bytes, diff_ids) = layers_archive(layers, "limited", &["limited:1"]);
        let archive = work.join(format!("limited{n_layers}.tar"));
        fs::write(&archive, bytes).expect("write the archive");
        let mut load = ovl.limited(
            limit,
            [OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()],
        );
        load.env("OVL_LOAD_JOBS", n_layers.to_string());
        stdout_of_success(load).unwrap_or_else(|e| panic!("{e:#}"));
        assert_layers_stored_clean(&ovl, &diff_ids);
    }
}

/// Under a descriptor limit of 32 (soft and hard) a load, a diff, a copying commit and a moving
/// commit of thousands of files in nested directories keep what they hold open in flight within
/// the limit, so they succeed, more slowly, where they used to fail with `EMFILE`: the copying
/// commit (16 files filling a batch and 16 in flight), the moving commit (96 entries waiting to
/// be settled) and a load of two layers at once.
#[test]
fn commands_under_a_low_descriptor_limit_needs_root() {
    let Some(work) = root_scratch("commands_under_a_low_descriptor_limit_needs_root") else {
        return;
    };
    const LIMIT: u64 = 32;
    let ovl = Ovl::new(work.join("root"));
    let nested = (0..2).map(|idx| nested_layer(&format!("n{idx}"), 6, 400));
    let layers: Vec<Vec<u8>> = std::iter::once(base_rootfs_tar()).chain(nested).collect();
    let (bytes, diff_ids) = layers_archive(layers, "low-", &["low:1"]);
    let archive = work.join("low.tar");
    fs::write(&archive, bytes).expect("write the archive");
    let ok = |args: &[&OsStr]| ovl.limited_ok(LIMIT, LIMIT, args);
    ok(&[OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
    assert_layers_stored_clean(&ovl, &diff_ids);

    // Two containers that change every file of the layers above the base (copy-ups, each with
    // overlay's `origin`) and add files of their own.
    for name in ["copied", "moved"] {
        let merged = ovl.ok(["run-rootfs", "--name", name, "low:1"]);
        chroot_sh(
            merged.trim(),
            &format!(
                "set -e; for f in /n*/a/b/c/d*/f*; do echo {name} >> \"$f\"; done; \
                 mkdir -p /new/x/y; for i in $(seq 1 300); do echo $i > /new/x/y/$i; done"
            ),
        )
        .expect("change the container");
        ovl.ok(["umount", name]);
    }
    let changes = ok(&[OsStr::new("diff"), OsStr::new("copied")]);
    assert!(changes.lines().count() > 5_000, "{changes}");
    ok(&[
        OsStr::new("commit"),
        OsStr::new("copied"),
        OsStr::new("copied:1"),
    ]);
    ok(&[
        OsStr::new("commit"),
        OsStr::new("--rm"),
        OsStr::new("moved"),
        OsStr::new("moved:1"),
    ]);
    assert!(ovl.fail(["inspect", "moved"]).contains("moved"));
    let top_layers = |image: &str| {
        ovl.inspect(image).expect("inspect image")["RootFS"]["Layers"]
            .as_array()
            .expect("RootFS.Layers")
            .len()
    };
    assert_eq!(top_layers("copied:1"), 4);
    assert_eq!(top_layers("moved:1"), 4);
    let fsck = ovl.ok(["fsck", "--verify-content"]);
    assert!(fsck.ends_with(": 0 corrupt, 0 leftovers\n"), "{fsck}");
}
