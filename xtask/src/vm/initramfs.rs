//! The initramfs: busybox, init, the binaries and their libraries and the corpus shared by every
//! kernel, and each kernel's modules and `config.json`.

use super::*;

// ------------------------------------------------------------------------------------------------
// The initramfs

/// The part every kernel shares: busybox, init, binaries and libraries, corpus. `lane_ovl`, the
/// binary the lanes run, goes in as [`GUEST_LANE_OVL`] when there are lanes.
pub(super) fn common_initramfs(
    vm_dir: &Path,
    ovl: &Path,
    lane_ovl: Option<&Path>,
    runner: &Path,
    corpus: &Corpus,
    out: &Path,
) -> Result<()> {
    let stage = vm_dir.join("stage-common");
    let _ = fs::remove_dir_all(&stage);
    for dir in ["bin", "sbin", "etc", "root", "vm", "mnt", "tmp"] {
        fs::create_dir_all(stage.join(dir))?;
    }
    copy_exec(Path::new(ovl_tests::BUSYBOX), &stage.join("bin/busybox"))?;
    write_exec(&stage.join("init"), INIT_SCRIPT.as_bytes())?;
    let mut libs = BTreeSet::new();
    let mut binaries = vec![
        (ovl.to_path_buf(), "bin/ovl"),
        (runner.to_path_buf(), "bin/xtask"),
        (PathBuf::from("/usr/sbin/mke2fs"), "sbin/mkfs.ext4"),
        (PathBuf::from("/usr/sbin/mkfs.xfs"), "sbin/mkfs.xfs"),
    ];
    if let Some(lane_ovl) = lane_ovl {
        binaries.push((
            lane_ovl.to_path_buf(),
            GUEST_LANE_OVL.trim_start_matches('/'),
        ));
    }
    for (from, to) in binaries {
        copy_exec(&from, &stage.join(to))?;
        strip_debug(&stage.join(to));
        libs.extend(shared_libraries(&from)?);
    }
    for lib in &libs {
        let target = stage.join(lib.strip_prefix("/").unwrap_or(lib));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(lib, &target).with_context(|| format!("copying {}", lib.display()))?;
    }
    if Path::new("/etc/mke2fs.conf").exists() {
        fs::copy("/etc/mke2fs.conf", stage.join("etc/mke2fs.conf"))?;
    }
    fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    copy_tree(&corpus.dir, &stage.join("vm/corpus"))?;
    fs::write(stage.join("vm/change.sh"), CHANGE_SCRIPT)?;
    cpio(&stage, out)?;
    fs::remove_dir_all(&stage)?;
    Ok(())
}

/// The per-kernel part: modules and the guest's config; appended to the common archive (the
/// kernel unpacks concatenated archives one after the other).
pub(super) fn kernel_initramfs(
    vm_dir: &Path,
    kernel: &Kernel,
    common: &Path,
    options: &Options,
) -> Result<PathBuf> {
    let run_dir = vm_dir.join("run").join(&kernel.name);
    fs::create_dir_all(&run_dir)?;
    let stage = run_dir.join("stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(stage.join("vm/modules"))?;
    let mut order = String::new();
    for (group, file, bytes) in modules(kernel)? {
        fs::write(stage.join("vm/modules").join(&file), bytes)?;
        order.push_str(&format!("{group} {file}\n"));
    }
    fs::write(stage.join("vm/modules/order"), order)?;
    let config = json!({
        "kernel": kernel.name,
        "release": kernel.release,
        "scenarios": options.scenarios,
        "lanes": kernel.lanes,
        "lane_ovl": GUEST_LANE_OVL,
        "expect": expectations(kernel),
        "deep_prefixes": [DEEP_PREFIXES.start(), DEEP_PREFIXES.end()],
        "deep_max": DEEP_MAX,
    });
    fs::write(
        stage.join("vm/config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    let own = run_dir.join("kernel.cpio.gz");
    cpio(&stage, &own)?;
    fs::remove_dir_all(&stage)?;
    let initramfs = run_dir.join("initramfs.cpio.gz");
    let mut bytes = fs::read(common)?;
    bytes.extend(fs::read(&own)?);
    fs::write(&initramfs, bytes)?;
    Ok(initramfs)
}

/// The absolute paths of the shared libraries `binary` loads (and its ELF interpreter), from ldd.
pub(super) fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Drops the debug information of a staged binary (the debug ovl is about 95 MB with it, 15 MB
/// without): the guest unpacks every byte of the initramfs, under TCG slowly, and prints no
/// backtraces. Without `strip` the binary stays as it is.
pub(super) fn strip_debug(binary: &Path) {
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(binary)
        .stderr(Stdio::null())
        .status();
}

pub(super) fn copy_exec(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    set_mode(to, 0o755)
}

pub(super) fn write_exec(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes)?;
    set_mode(path, 0o755)
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A gzip'ed newc cpio of `dir`, made with busybox cpio (no cpio package needed).
pub(super) fn cpio(dir: &Path, out: &Path) -> Result<()> {
    let script = format!(
        "cd '{}' && find . | {} cpio -o -H newc 2>/dev/null | gzip -1 > '{}'",
        dir.display(),
        ovl_tests::BUSYBOX,
        out.display()
    );
    run(Command::new("sh").args(["-c", &script]))
}
