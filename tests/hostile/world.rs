//! The world a case runs in: a data root inside a tree of sentinel files, the run of one case
//! with a deadline, and the checks that nothing outside the data root changed.

use super::*;

pub(super) struct World {
    pub(super) scratch: Scratch,
    pub(super) ovl: Ovl,
    pub(super) base: Base,
}

/// The base layer every load case builds on: the harness's base rootfs tar and its DiffID.
pub(super) struct Base {
    pub(super) tar: Vec<u8>,
    pub(super) diff_id: String,
}

impl Base {
    /// An image config of the base layer and `layer`.
    pub(super) fn config_with(&self, layer: &[u8]) -> Vec<u8> {
        image_config(&[self.diff_id.clone(), sha256_digest(layer)])
    }

    pub(super) fn new() -> Base {
        let tar = base_rootfs_tar();
        Base {
            diff_id: sha256_digest(&tar),
            tar,
        }
    }
}

/// What is recorded before a case and compared after it.
pub(super) struct Before {
    pub(super) sentinel: BTreeMap<Vec<u8>, String>,
    pub(super) host_files: Vec<String>,
    pub(super) layers: Vec<String>,
    pub(super) images: String,
}

/// The outcome of one ovl command.
pub(super) struct Run {
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) elapsed: Duration,
    pub(super) max_rss_kib: i64,
    pub(super) timed_out: bool,
}

impl World {
    pub(super) fn new() -> World {
        let scratch = Scratch::new();
        let world = World {
            ovl: Ovl::new(scratch.join("world/root")),
            base: Base::new(),
            scratch,
        };
        fs::create_dir_all(world.inputs()).expect("mkdir inputs");
        plant_sentinels(&world.world()).expect("plant the sentinel tree");
        let base = world.inputs().join("base.tar");
        fs::write(&base, &world.base.tar).expect("write base tar");
        world.ovl.ok([
            OsString::from("import"),
            base.into_os_string(),
            OsString::from(BASE_TAG),
        ]);
        world
    }

    /// The directory holding the sentinel tree and, as `root`, the data root.
    pub(super) fn world(&self) -> PathBuf {
        self.scratch.join("world")
    }

    /// Where archives are written, outside the world.
    pub(super) fn inputs(&self) -> PathBuf {
        self.scratch.join("inputs")
    }

    /// `ovl images --no-trunc` without the columns that change with the clock: repository, tag
    /// and image id per line.
    pub(super) fn images(&self) -> anyhow::Result<String> {
        let listing = self.ovl.try_ok(["images", "--no-trunc"])?;
        Ok(listing
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    pub(super) fn before(&self) -> anyhow::Result<Before> {
        Ok(Before {
            sentinel: sentinel_snapshot(&self.world(), &["root"])?,
            host_files: host_file_states()?,
            layers: layerdb(&self.ovl.root).into_keys().collect(),
            images: self.images()?,
        })
    }

    pub(super) fn run_case(&self, case: &Case) -> anyhow::Result<()> {
        let before = self.before()?;
        let input = self.inputs().join(format!("{}.tar", case.name));
        fs::write(&input, &case.input).with_context(|| format!("write {}", input.display()))?;
        if let Some(corpus) = std::env::var_os("OVL_HOSTILE_CORPUS") {
            let corpus = PathBuf::from(corpus);
            fs::create_dir_all(&corpus)?;
            let kind = match case.via {
                Via::Load => "load",
                Via::Import => "import",
            };
            fs::write(
                corpus.join(format!("{kind}-{}.tar", case.name)),
                &case.input,
            )?;
        }
        let mut args: Vec<OsString> = match case.via {
            Via::Load => vec!["load".into(), "-i".into(), input.clone().into()],
            Via::Import => vec![
                "import".into(),
                input.clone().into(),
                case.tag.clone().into(),
            ],
        };
        args.extend(case.args.iter().map(OsString::from));
        let deadline = match case.expect {
            Expect::Bounded => HUGE_MANIFEST_DEADLINE,
            _ => COMMAND_DEADLINE,
        };
        let run = run_bounded(self.ovl.command(&args), deadline)?;
        eprintln!(
            "case {}: exit {:?} in {:.2?}, max RSS {} KiB{}",
            case.name,
            run.code,
            run.elapsed,
            run.max_rss_kib,
            if run.timed_out {
                " (killed: deadline)"
            } else {
                ""
            }
        );
        let stderr_tail: String = run.stderr.chars().take(2000).collect();
        eprintln!("  stderr: {}", stderr_tail.trim_end());
        let _ = fs::remove_file(&input);

        let outcome = self.check_outcome(case, &run, &before);
        let invariants = self.check_invariants(case, &before);
        match (outcome, invariants) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(anyhow::anyhow!("{a:#}\nand: {b:#}")),
        }
    }

    pub(super) fn check_outcome(
        &self,
        case: &Case,
        run: &Run,
        before: &Before,
    ) -> anyhow::Result<()> {
        let command = format!(
            "ovl --root {} {} {}",
            self.ovl.root.display(),
            match case.via {
                Via::Load => format!("load -i <{}.tar>", case.name),
                Via::Import => format!("import <{}.tar> {}", case.name, case.tag),
            },
            case.args.join(" ")
        );
        ensure!(
            !run.timed_out || matches!(case.expect, Expect::Bounded),
            "{command} did not end within {COMMAND_DEADLINE:?}"
        );
        match &case.expect {
            Expect::Reject(groups) => {
                ensure!(
                    run.code == Some(1),
                    "{command} should be rejected with exit status 1, got {:?}; stdout: {} stderr: {}",
                    run.code,
                    run.stdout,
                    run.stderr
                );
                for group in groups {
                    ensure!(
                        group
                            .iter()
                            .any(|needle| run.stderr.contains(needle.as_str())),
                        "{command}: stderr should name {group:?}, got: {}",
                        run.stderr
                    );
                }
                let layers: Vec<String> = layerdb(&self.ovl.root).into_keys().collect();
                ensure!(
                    layers == before.layers,
                    "{command} was rejected but the layers changed: before {:?}, after {layers:?}",
                    before.layers
                );
                let images = self.images()?;
                ensure!(
                    images == before.images,
                    "{command} was rejected but ovl images changed:\n{}\nbecame\n{images}",
                    before.images
                );
                let inspect = self.ovl.run(["inspect", case.tag.as_str()]);
                ensure!(
                    inspect.status.code() == Some(1),
                    "{command} was rejected but {} exists",
                    case.tag
                );
                let tmp = self.ovl.root.join("tmp");
                if tmp.exists() {
                    let left: Vec<_> = fs::read_dir(&tmp)?
                        .map(|entry| entry.map(|entry| entry.file_name()))
                        .collect::<Result<_, _>>()?;
                    ensure!(left.is_empty(), "{} holds {left:?}", tmp.display());
                }
                Ok(())
            }
            Expect::Contain(check) => {
                ensure!(
                    run.code == Some(0),
                    "{command} should load and contain the layer (exit 0), got {:?}; stderr: {}",
                    run.code,
                    run.stderr
                );
                let image = self.ovl.inspect(&case.tag)?;
                let upper = image["GraphDriver"]["Data"]["UpperDir"]
                    .as_str()
                    .with_context(|| format!("no GraphDriver.Data.UpperDir for {}", case.tag))?;
                let diff = PathBuf::from(upper);
                ensure!(
                    diff.starts_with(&self.ovl.root),
                    "UpperDir {upper} is not inside the data root"
                );
                check(&diff, &image).with_context(|| format!("{command}: layer {upper}"))
            }
            Expect::Bounded => {
                let mut problems = Vec::new();
                if run.timed_out {
                    problems.push(format!(
                        "{command} was still running after {HUGE_MANIFEST_DEADLINE:?} and was killed"
                    ));
                } else if !matches!(run.code, Some(0 | 1)) {
                    problems.push(format!(
                        "{command} should end with exit 0 or 1, got {:?}; stderr: {}",
                        run.code, run.stderr
                    ));
                }
                if run.max_rss_kib > HUGE_MANIFEST_MAX_RSS_KIB {
                    problems.push(format!(
                        "{command} used {} KiB of memory{}, more than {HUGE_MANIFEST_MAX_RSS_KIB} KiB",
                        run.max_rss_kib,
                        if run.timed_out { " by then" } else { "" }
                    ));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    bail!("{}", problems.join("; "))
                }
            }
        }
    }

    /// What must hold after every case: the sentinel tree, the host's files and marker
    /// directories, and a data root that `fsck` finds clean.
    pub(super) fn check_invariants(&self, case: &Case, before: &Before) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let after = sentinel_snapshot(&self.world(), &["root"])?;
        host_invariants(&before.sentinel, &after, &before.host_files, &mut problems)?;
        if let Err(e) = self.fsck(false) {
            problems.push(format!("{e:#}"));
        }
        if let Err(e) = check_root_consistent(&self.ovl.root) {
            problems.push(format!("data root after {}: {e:#}", case.name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }

    /// `ovl fsck` (with `--verify-content` when asked) exits 0 and reports nothing corrupt and
    /// no leftovers.
    pub(super) fn fsck(&self, verify_content: bool) -> anyhow::Result<()> {
        let mut args = vec!["fsck"];
        if verify_content {
            args.push("--verify-content");
        }
        let output = self.ovl.run(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(0) && stdout.contains(": 0 corrupt, 0 leftovers"),
            "ovl fsck{} exited {:?}, wanted 0 with `0 corrupt, 0 leftovers`:\n{stdout}{stderr}",
            if verify_content {
                " --verify-content"
            } else {
                ""
            },
            output.status.code()
        );
        Ok(())
    }
}

/// Files, a private file of another owner, a setuid file, a directory with an inner file, a
/// decoy `etc/passwd`, a symlink and an empty directory, all with known modes and mtimes.
/// The depth matters: from `world/root/overlay2/<id>/diff`, `../../../..` is `world`.
pub(super) fn plant_sentinels(world: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(world.join("sentinel-dir"))?;
    fs::create_dir_all(world.join("etc"))?;
    fs::create_dir_all(world.join("empty-dir"))?;
    let files: [(&str, &[u8], u32, u32); 5] = [
        ("keep", b"keep me\n", 0o644, 0),
        ("secret", b"secret\n", 0o600, 1234),
        ("suid", b"#!/bin/sh\n", 0o4755, 0),
        ("sentinel-dir/inner", b"inner\n", 0o640, 0),
        ("etc/passwd", b"decoy:x:0:0::/:/bin/sh\n", 0o644, 0),
    ];
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(SENTINEL_MTIME);
    for (rel, content, mode, owner) in files {
        let path = world.join(rel);
        fs::write(&path, content)?;
        std::os::unix::fs::chown(&path, Some(owner), Some(owner))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(mtime)?;
    }
    symlink("keep", world.join("link-to-keep"))?;
    for rel in ["sentinel-dir", "etc", "empty-dir", "."] {
        fs::File::open(world.join(rel))?.set_modified(mtime)?;
    }
    Ok(())
}

/// Adds to `problems` how the sentinel tree changed, which markers escaped (and removes them),
/// and whether the host's files changed.
pub(super) fn host_invariants(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
    host_files_before: &[String],
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    if after != before {
        let mut diff = Vec::new();
        for (path, line) in before {
            match after.get(path) {
                None => diff.push(format!("- {line}")),
                Some(now) if now != line => diff.push(format!("- {line}\n+ {now}")),
                Some(_) => {}
            }
        }
        for (path, line) in after {
            if !before.contains_key(path) {
                diff.push(format!("+ {line}"));
            }
        }
        problems.push(format!("the sentinel tree changed:\n{}", diff.join("\n")));
    }
    let leaked = leaked_markers();
    if !leaked.is_empty() {
        problems.push(format!("markers escaped the data root: {leaked:?}"));
        for path in &leaked {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
    }
    let host_files = host_file_states()?;
    if host_files != host_files_before {
        problems.push(format!(
            "host files changed: {host_files_before:?} became {host_files:?}"
        ));
    }
    Ok(())
}

/// One line per entry under `world` (the top-level names in `skip` excluded), keyed by path:
/// type, mode, owner, size, link count, mtime, ctime, content hash, symlink target, device
/// numbers and every xattr. The world directory itself is included.
pub(super) fn sentinel_snapshot(
    world: &Path,
    skip: &[&str],
) -> anyhow::Result<BTreeMap<Vec<u8>, String>> {
    let mut lines = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let path = world.join(&rel);
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("lstat {}", path.display()))?;
        let file_type = meta.file_type();
        let mut line = format!(
            "/{} mode={:o} uid={} gid={} size={} nlink={} mtime={}.{} ctime={}.{}",
            rel.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.size(),
            meta.nlink(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        if file_type.is_file() {
            line.push_str(&format!(
                " sha256={}",
                hex(&Sha256::digest(fs::read(&path)?))
            ));
        } else if file_type.is_symlink() {
            line.push_str(&format!(" target={:?}", fs::read_link(&path)?));
        } else if file_type.is_char_device() || file_type.is_block_device() {
            line.push_str(&format!(" rdev={}", meta.rdev()));
        }
        for (name, value) in sys::list_xattrs(&path)? {
            line.push_str(&format!(
                " xattr.{}={}",
                String::from_utf8_lossy(&name),
                hex(&value)
            ));
        }
        lines.insert(rel.as_os_str().as_bytes().to_vec(), line);
        if file_type.is_dir() {
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                let child = rel.join(entry.file_name());
                if !skip.iter().any(|name| child == Path::new(name)) {
                    pending.push(child);
                }
            }
        }
    }
    Ok(lines)
}

/// Mode, owner, size, link count, mtime, ctime and content hash of `/etc/passwd` and
/// `/etc/shadow`.
pub(super) fn host_file_states() -> anyhow::Result<Vec<String>> {
    HOST_FILES
        .iter()
        .map(|path| {
            let meta = fs::symlink_metadata(path).with_context(|| format!("lstat {path}"))?;
            Ok(format!(
                "{path} mode={:o} uid={} size={} nlink={} mtime={}.{} ctime={}.{} sha256={}",
                meta.mode(),
                meta.uid(),
                meta.size(),
                meta.nlink(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                hex(&Sha256::digest(fs::read(path)?))
            ))
        })
        .collect()
}

/// Every entry named `ovl-hostile-<pid>-*` in the host directories cases aim at.
pub(super) fn leaked_markers() -> Vec<PathBuf> {
    let prefix = format!("ovl-hostile-{}-", std::process::id());
    let mut leaked = Vec::new();
    for dir in MARKER_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
                leaked.push(entry.path());
            }
        }
    }
    leaked
}

/// Runs `command` with stdout and stderr in temp files, kills it at `deadline`, and measures its
/// peak RSS as `VmHWM` of `/proc/<pid>/status`, read every few milliseconds until it exits.
/// (`wait4`'s `ru_maxrss` would not do: Linux carries the RSS of the forking test process over
/// the `exec`.)
pub(super) fn run_bounded(mut command: Command, deadline: Duration) -> anyhow::Result<Run> {
    let stdout = tempfile::tempfile()?;
    let stderr = tempfile::tempfile()?;
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?);
    let started = Instant::now();
    let child = command.spawn().context("spawn ovl")?;
    let pid = child.id() as i32;
    let mut timed_out = false;
    let mut max_rss_kib = 0;
    let status = loop {
        max_rss_kib = max_rss_kib.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(status) = sys::wait4(pid, true)? {
            break status;
        }
        if started.elapsed() > deadline {
            timed_out = true;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            break sys::wait4(pid, false)?.context("wait4 after SIGKILL")?;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let read = |mut file: fs::File| -> anyhow::Result<String> {
        use std::io::{Read as _, Seek as _};
        file.seek(std::io::SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: read(stdout)?,
        stderr: read(stderr)?,
        elapsed,
        max_rss_kib,
        timed_out,
    })
}

/// `VmHWM` (peak resident set size) of a running process, in KiB.
pub(super) fn peak_rss_kib(pid: i32) -> Option<i64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
