//! Building the trees that tests then dump: the few steps the tests of `diff` and `mount` share
//! to lay out layer directories by hand. Test support like the rest of the crate: each step
//! panics with the path it failed on, which is the test's failure message.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{FileType, Mode, XattrFlags, CWD};

/// Writes `content` to `path`, creating its missing parents.
pub fn write(path: &Path, content: &str) {
    let parent = path
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent", path.display()));
    fs::create_dir_all(parent).unwrap_or_else(|err| panic!("mkdir {}: {err}", parent.display()));
    fs::write(path, content).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// Makes `path` an overlay whiteout: a 0/0 character device (kernel
/// Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories").
pub fn whiteout(path: &Path) {
    rustix::fs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap_or_else(|err| panic!("mknod whiteout {}: {err}", path.display()));
}

/// Sets the xattr `name` of `path` (following a symlink, as `setxattr` does).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|err| panic!("setxattr {name} on {}: {err}", path.display()));
}

/// Sets the mtime of the regular file `path`.
pub fn set_mtime(path: &Path, mtime: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_times(fs::FileTimes::new().set_modified(mtime)))
        .unwrap_or_else(|err| panic!("setting the mtime of {}: {err}", path.display()));
}

/// The names in the directory `dir`, sorted (lossy where a name is not UTF-8).
pub fn names(dir: &Path) -> Vec<String> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Where two tar streams first differ, by byte and by 512-byte block, and their lengths: the
/// message of a failed byte-for-byte comparison.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "first difference at byte {at} (block {}, offset {}); lengths {} vs {}",
        at / 512,
        at % 512,
        a.len(),
        b.len()
    )
}
