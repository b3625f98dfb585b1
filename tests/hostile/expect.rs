//! Checks of a contained case's layer: files, directories, links, whiteouts, devices, xattrs.

use super::*;

pub(super) fn expect_file(diff: &Path, rel: &str, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let path = diff.join(rel);
    let meta = fs::symlink_metadata(&path).with_context(|| format!("lstat {rel} in the layer"))?;
    ensure!(meta.file_type().is_file(), "{rel} is not a regular file");
    ensure!(
        meta.mode() & 0o7777 == mode,
        "{rel} has mode {:o}, not {mode:o}",
        meta.mode() & 0o7777
    );
    let actual = fs::read(&path).with_context(|| format!("read {rel}"))?;
    ensure!(
        actual == content,
        "{rel} holds {} bytes that differ from the {} expected",
        actual.len(),
        content.len()
    );
    Ok(())
}

pub(super) fn expect_dir(diff: &Path, rel: &str) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(diff.join(rel)).with_context(|| format!("lstat {rel}"))?;
    ensure!(meta.file_type().is_dir(), "{rel} is not a directory");
    Ok(())
}

pub(super) fn expect_symlink(diff: &Path, rel: &str, target: &str) -> anyhow::Result<()> {
    let path = diff.join(rel);
    let meta = fs::symlink_metadata(&path).with_context(|| format!("lstat {rel}"))?;
    ensure!(meta.file_type().is_symlink(), "{rel} is not a symlink");
    let actual = fs::read_link(&path)?;
    ensure!(
        actual == Path::new(target),
        "{rel} points to {actual:?}, not {target:?}"
    );
    Ok(())
}

/// An overlay whiteout: a 0/0 character device.
pub(super) fn expect_whiteout(diff: &Path, rel: &str) -> anyhow::Result<()> {
    expect_device(diff, rel, 'c', (0, 0), 0)
}

pub(super) fn expect_device(
    diff: &Path,
    rel: &str,
    kind: char,
    numbers: (u32, u32),
    mode: u32,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(diff.join(rel)).with_context(|| format!("lstat {rel}"))?;
    let file_type = meta.file_type();
    let actual_kind = if file_type.is_char_device() {
        'c'
    } else if file_type.is_block_device() {
        'b'
    } else {
        '?'
    };
    let rdev = meta.rdev();
    let actual = (
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    );
    ensure!(
        (actual_kind, actual, meta.mode() & 0o7777) == (kind, numbers, mode),
        "{rel} is {actual_kind} {}:{} mode {:o}, not {kind} {}:{} mode {mode:o}",
        actual.0,
        actual.1,
        meta.mode() & 0o7777,
        numbers.0,
        numbers.1
    );
    Ok(())
}

/// The layer holds nothing.
pub(super) fn expect_empty_dir(diff: &Path) -> anyhow::Result<()> {
    let names: Vec<_> = fs::read_dir(diff)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()?;
    ensure!(names.is_empty(), "the layer holds {names:?}");
    Ok(())
}

pub(super) fn expect_absent(diff: &Path, rel: &str) -> anyhow::Result<()> {
    ensure!(
        fs::symlink_metadata(diff.join(rel)).is_err(),
        "{rel} exists in the layer"
    );
    Ok(())
}

pub(super) fn expect_same_inode(diff: &Path, a: &str, b: &str) -> anyhow::Result<()> {
    let first = fs::symlink_metadata(diff.join(a))?;
    let second = fs::symlink_metadata(diff.join(b))?;
    ensure!(
        (first.dev(), first.ino()) == (second.dev(), second.ino()),
        "{a} and {b} are not hardlinks of one inode"
    );
    Ok(())
}

pub(super) fn expect_xattr(path: &Path, name: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
    let actual = sys::get_xattr(path, name).with_context(|| format!("getxattr {name}"))?;
    ensure!(
        actual.as_deref() == value,
        "{}: xattr {name} is {:?}, not {:?}",
        path.display(),
        actual.as_deref().map(String::from_utf8_lossy),
        value.map(String::from_utf8_lossy)
    );
    Ok(())
}
