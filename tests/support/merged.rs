//! Comparing trees: merged views of Docker's and ovl's containers as treedump records, the
//! comparison itself, failures collected across cases, and mounts with `redirect_dir=on`.

use super::*;

/// Runs `f`, recording a failure under `what` instead of stopping; [`Failures::finish`] panics
/// with all of them.
#[derive(Debug, Default)]
pub struct Failures {
    failures: Vec<String>,
}

impl Failures {
    pub fn check(&mut self, what: &str, result: anyhow::Result<()>) {
        match result {
            Ok(()) => eprintln!("ok: {what}"),
            Err(e) => {
                eprintln!("FAILED: {what}: {e:#}");
                self.failures.push(format!("{what}: {e:#}"));
            }
        }
    }

    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} check(s) failed:\n{}",
                self.failures.len(),
                self.failures.join("\n\n")
            );
        }
    }
}

/// Fails with the treedump diff when two dumps differ.
pub fn ensure_same_tree(what: &str, expected: &[Record], actual: &[Record]) -> anyhow::Result<()> {
    if let Some(diff) = compare(expected, actual) {
        bail!("{what}: {diff}");
    }
    Ok(())
}

/// Unmounts `container`, mounts its layers again with `redirect_dir=on` (which ovl never
/// passes), runs `change` on the merged path, and unmounts: what a container written through
/// such a mount leaves in its upperdir. Returns the container's upperdir.
pub fn change_through_redirect_dir(
    ovl: &Ovl,
    container: &str,
    change: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let inspect = ovl.inspect(container)?;
    let data = &inspect["GraphDriver"]["Data"];
    let field = |key: &str| -> anyhow::Result<String> {
        Ok(data[key]
            .as_str()
            .with_context(|| format!("GraphDriver.Data.{key}"))?
            .to_string())
    };
    let merged = PathBuf::from(field("MergedDir")?);
    ovl.try_ok(["umount", container])?;
    fs::create_dir_all(&merged)?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=on",
        field("LowerDir")?,
        field("UpperDir")?,
        field("WorkDir")?
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()?;
    ensure!(mounted.success(), "mount with redirect_dir=on");
    let changed = change(&merged);
    let _ = Command::new("umount").arg(&merged).status();
    changed?;
    Ok(PathBuf::from(field("UpperDir")?))
}

// ------------------------------------------------------------------------------------------------
// Merged views

/// The dump options for comparing merged root filesystems.
pub fn merged_dump_options() -> DumpOptions {
    DumpOptions {
        one_filesystem: true,
        exclude: MERGED_EXCLUDES.iter().map(PathBuf::from).collect(),
        dir_mtimes: false,
    }
}

/// Docker's merged view of an image: the root of a running container (`/proc/<pid>/root`).
pub fn docker_merged_dump(docker: &Dockerd, image: &str) -> Vec<Record> {
    let id = docker
        .docker_ok([
            "run",
            "-d",
            "--network",
            "none",
            image,
            "/bin/sleep",
            "3600",
        ])
        .trim()
        .to_string();
    let pid = docker
        .docker_ok(["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .to_string();
    let root = PathBuf::from(format!("/proc/{pid}/root/"));
    let result = dump(&root, &merged_dump_options());
    docker.docker_ok(["rm", "-f", &id]);
    result.unwrap_or_else(|e| panic!("dump {} of {image}: {e}", root.display()))
}

/// When `OVL_TEST_DUMPS` names a directory, writes both sides of a comparison there as
/// `<name>.expected.txt` and `<name>.actual.txt` (for reading diffs longer than 40 lines).
pub fn save_dumps(name: &str, expected: &[Record], actual: &[Record]) {
    let Some(dir) = std::env::var_os("OVL_TEST_DUMPS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let name = name.replace(['/', ':', ' '], "_");
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(dir.join(format!("{name}.expected.txt")), format(expected));
    let _ = fs::write(dir.join(format!("{name}.actual.txt")), format(actual));
}

/// A treedump of an ovl merged rootfs path with the same options as Docker's.
pub fn merged_dump(merged: &Path) -> anyhow::Result<Vec<Record>> {
    dump(merged, &merged_dump_options()).with_context(|| format!("dump {}", merged.display()))
}

/// What changed between two listings of a tree: every path of `before` whose facts differ or
/// that is gone, then every path new in `after` (`new <path>`).
pub fn changed_paths<T: PartialEq>(
    before: &BTreeMap<PathBuf, T>,
    after: &BTreeMap<PathBuf, T>,
) -> Vec<String> {
    let changed = before
        .iter()
        .filter(|(path, facts)| after.get(*path) != Some(facts))
        .map(|(path, _)| path.display().to_string());
    let new = after
        .keys()
        .filter(|path| !before.contains_key(*path))
        .map(|path| format!("new {}", path.display()));
    changed.chain(new).collect()
}
