//! Crashes: `ovl` is killed with SIGKILL at random points of `load`, `import`, `commit`, `commit
//! --rm`, `rm`, `rmi` and `prune` (when present), hundreds of times on one data root; after a
//! killed `commit --rm` the container keeps its changes or its image has them. After every kill:
//! `ovl fsck` finds no corruption, every image listed before (but the one being removed) is still
//! complete and one of them still mounts, and running the interrupted command again succeeds (or,
//! for a removal, finds that the kill came after the removal was done).
//!
//! The points are drawn from a fixed seed (`OVL_CRASH_SEED`, default 1) so that a failure can be
//! replayed; `OVL_CRASH_RUNS` sets the number of kills (default 300).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ovl_tests::{chroot_sh, layers_archive, require_root, Ovl, Scratch, TarBuilder};

const TEST: &str = "sigkill_at_random_points_leaves_a_consistent_root_needs_root";

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A layer of `n_files` small files under `dir/`, different for every `seed`.
fn layer(seed: u64, dir: &str, n_files: usize) -> Vec<u8> {
    let mtime = 1_650_000_000;
    let mut builder = TarBuilder::at(mtime);
    builder.dir(&format!("{dir}/"));
    for idx in 0..n_files {
        let data = format!("{seed} {dir} {idx}\n").repeat(1 + idx % 40);
        builder.file(&format!("{dir}/f{idx}"), data.as_bytes());
    }
    builder.finish()
}

/// A two-layer docker-archive tagged `tag`.
fn archive(seed: u64, tag: &str) -> Vec<u8> {
    let layers = vec![layer(seed, "a", 300), layer(seed, "b", 300)];
    layers_archive(layers, &format!("{seed}-"), &[tag]).0
}

/// Creates the container `name` of `base:1` with 201 changes (200 new files, a deletion),
/// unmounted.
fn changed_container(ovl: &Ovl, name: &str) {
    let merged = ovl.ok(["run-rootfs", "--name", name, "base:1"]);
    chroot_sh(
        &merged,
        "mkdir -p /w && for i in $(seq 1 200); do echo $i > /w/$i; done && rm /etc/group",
    )
    .expect("change in the container");
    ovl.ok(["umount", name]);
}

/// Image ids `ovl images` lists.
fn image_ids(ovl: &Ovl) -> BTreeSet<String> {
    ovl.ok(["images", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `ovl args`, kills it with SIGKILL after `delay`; returns how long it ran when it had
/// already exited by itself.
fn run_and_kill(ovl: &Ovl, args: &[&OsStr], delay: Duration) -> Option<Duration> {
    let mut child = ovl
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ovl");
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().expect("wait").is_some() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let status = child.wait().expect("wait");
    status.code().is_some().then(|| started.elapsed())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Load,
    Import,
    Commit,
    /// `commit --rm`: the upperdir moves into the new layer.
    CommitRm,
    Rm,
    Rmi,
    Prune,
}

#[test]
fn sigkill_at_random_points_leaves_a_consistent_root_needs_root() {
    if !require_root(TEST) {
        return;
    }
    let runs: usize = std::env::var("OVL_CRASH_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("OVL_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    let work = Scratch::new();
    let ovl = work.base_root("root");
    // `base_root` wrote the base rootfs tar there; the import runs below import it again.
    let base = work.join("base.tar");
    let archives: Vec<_> = (0..6u64)
        .map(|idx| {
            let path = work.join(format!("img{idx}.tar"));
            fs::write(&path, archive(idx, &format!("img{idx}:1"))).expect("write archive");
            path
        })
        .collect();
    let has_prune = ovl.run(["prune", "--help"]).status.success();
    let mut ops = vec![
        Op::Load,
        Op::Import,
        Op::Commit,
        Op::CommitRm,
        Op::Rm,
        Op::Rmi,
    ];
    if has_prune {
        ops.push(Op::Prune);
    }
    let mut rng = Rng(seed);
    let mut n_killed = 0;
    // Kill delays are uniform below the longest time a run of the same operation took when it
    // ran to its end (60 ms until one did), so that they span each command however fast it is.
    let mut longest_runs: Vec<Option<Duration>> = vec![None; ops.len()];
    let started = Instant::now();
    for run in 0..runs {
        let op_index = rng.below(ops.len() as u64) as usize;
        let op = ops[op_index];
        // Preconditions, never killed.
        let (args, removed_image, removed_container): (
            Vec<std::ffi::OsString>,
            Option<String>,
            Option<String>,
        ) = match op {
            Op::Load => {
                let archive = &archives[rng.below(archives.len() as u64) as usize];
                (
                    vec!["load".into(), "-q".into(), "-i".into(), archive.into()],
                    None,
                    None,
                )
            }
            Op::Import => (
                vec![
                    "import".into(),
                    base.clone().into(),
                    format!("imp{run}:1").into(),
                ],
                None,
                None,
            ),
            Op::Commit => {
                let name = format!("cc{run}");
                changed_container(&ovl, &name);
                (
                    vec![
                        "commit".into(),
                        name.clone().into(),
                        format!("com{run}:1").into(),
                    ],
                    None,
                    Some(name),
                )
            }
            Op::CommitRm => {
                let name = format!("cr{run}");
                changed_container(&ovl, &name);
                (
                    vec![
                        "commit".into(),
                        "--rm".into(),
                        name.clone().into(),
                        format!("comrm{run}:1").into(),
                    ],
                    None,
                    Some(name),
                )
            }
            Op::Rm => {
                let name = format!("rm{run}");
                ovl.ok(["run-rootfs", "--name", &name, "base:1"]);
                (
                    vec!["rm".into(), "-f".into(), name.clone().into()],
                    None,
                    Some(name),
                )
            }
            Op::Rmi => {
                let archive = &archives[rng.below(archives.len() as u64) as usize];
                let loaded = ovl.load(archive).expect("load before rmi");
                let id = ovl.inspect(&loaded).expect("inspect")["Id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let tag = format!("victim{run}:1");
                ovl.ok(["tag", &loaded, &tag]);
                ovl.ok(["rmi", &loaded]);
                (vec!["rmi".into(), tag.into()], Some(id), None)
            }
            Op::Prune => (vec!["prune".into(), "-f".into()], None, None),
        };
        let before = image_ids(&ovl);
        let limit = longest_runs[op_index]
            .unwrap_or(Duration::from_millis(60))
            .as_micros()
            .max(1) as u64;
        let delay = Duration::from_micros(rng.below(limit));
        let arg_refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let ran_for = run_and_kill(&ovl, &arg_refs, delay);
        let finished = ran_for.is_some();
        if let Some(ran_for) = ran_for {
            let longest = &mut longest_runs[op_index];
            *longest = Some(longest.map_or(ran_for, |longest| longest.max(ran_for)));
        }
        if !finished {
            n_killed += 1;
        }
        let context = format!("run {run} (seed {seed}): {op:?} {args:?} killed after {delay:?}");
        // A killed `commit --rm` loses nothing: once the next command that changes the root
        // has run (it gives a container its moved changes back, or finishes a commit whose image
        // exists), the changes are in the new image or still in the container.
        let mut committed = false;
        if op == Op::CommitRm {
            ovl.ok(["tag", "base:1", &format!("after{run}:1")]);
            let name = removed_container.as_deref().unwrap_or_default();
            let image = format!("comrm{run}:1");
            if ovl.run(["inspect", &image]).status.success() {
                committed = true;
                let merged = ovl.ok(["run-rootfs", "--name", &format!("crchk{run}"), &image]);
                let file = std::path::Path::new(merged.trim()).join("w/200");
                assert_eq!(
                    fs::read_to_string(&file).unwrap_or_default(),
                    "200\n",
                    "{context}: the image lacks the changes"
                );
                ovl.ok(["rm", "-f", &format!("crchk{run}")]);
                // The removal --rm had begun, finished as `rm` finishes it.
                let _ = ovl.run(["rm", "-f", name]);
            } else {
                let listed = ovl.ok(["diff", name]);
                assert!(
                    listed.contains("A /w/200") && listed.contains("D /etc/group"),
                    "{context}: no image, and the container lost its changes ({} lines):\n{listed}",
                    listed.lines().count()
                );
            }
        }
        let fsck = ovl.run(["fsck"]);
        assert!(
            fsck.status.success(),
            "{context}: fsck found corruption:\n{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let after = image_ids(&ovl);
        for id in &before {
            if Some(id) == removed_image.as_ref() || op == Op::Prune {
                continue;
            }
            assert!(after.contains(id), "{context}: image {id} disappeared");
        }
        if run % 10 == 0 {
            let pick = after
                .iter()
                .nth(rng.below(after.len() as u64) as usize)
                .cloned();
            if let Some(image) = pick {
                let name = format!("chk{run}");
                ovl.ok(["run-rootfs", "--name", &name, &image]);
                ovl.ok(["rm", "-f", &name]);
            }
        }
        if committed {
            continue;
        }
        // Again, to the end.
        let again = ovl.run(&arg_refs);
        let stderr = String::from_utf8_lossy(&again.stderr);
        let already_done = match op {
            Op::Rmi => stderr.contains("no such image"),
            Op::Rm | Op::CommitRm => stderr.contains("no such container"),
            _ => false,
        };
        assert!(
            again.status.success() || already_done,
            "{context}: running it again failed: {stderr}"
        );
        if let Some(name) = removed_container {
            if op == Op::Commit {
                ovl.ok(["rm", "-f", &name]);
            }
        }
    }
    eprintln!(
        "{runs} runs, {n_killed} killed before they finished, in {:.1?}",
        started.elapsed()
    );
    let final_check = ovl.ok(["fsck", "--verify-content"]);
    assert!(final_check.contains(": 0 corrupt"), "{final_check}");
    assert!(
        n_killed * 2 >= runs,
        "only {n_killed} of {runs} runs were cut short: the delays are too long"
    );
}
