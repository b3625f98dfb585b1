//! treedump: one deterministic dump of a filesystem tree, used by every test layer to assert a
//! filesystem result.
//!
//! [`dump`] walks a tree with `lstat` (symlinks are never followed), optionally without crossing
//! into other mounts, and returns one [`Record`] per entry sorted by path bytes. [`format`] renders
//! the records one per line and [`compare`] gives a readable diff of two dumps.
//!
//! A line looks like
//! `/bin/sh symlink mode=0777 uid=0 gid=0 size=7 target=busybox mtime=1700000000.000000000`;
//! fields that do not apply to an entry type are left out. Paths are shown with control bytes,
//! spaces, backslashes and bytes that are not UTF-8 escaped as `\xNN`.
#![deny(unsafe_code)]

pub mod fixture;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The extended attributes a dump records. Overlay hides `trusted.overlay.*` in a merged view, so
/// the opaque marker only ever shows when a layer's `diff/` directory is dumped.
const RECORDED_XATTRS: [&str; 2] = ["security.capability", "trusted.overlay.opaque"];

/// How many differing lines [`compare`] shows before it stops.
const MAX_DIFF_LINES: usize = 40;

/// The permission bits plus setuid, setgid and sticky (`S_IFMT` excluded).
const PERMISSION_AND_SPECIAL_BITS: u32 = 0o7777;

/// Errors of this crate; each names the path it happened at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to lstat {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read symlink {path}")]
    ReadLink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read extended attribute {name} of {path}")]
    ReadXattr {
        path: PathBuf,
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a directory")]
    RootNotDirectory { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`dump`] includes.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Skip entries whose `st_dev` differs from the root's (mount points and everything below).
    pub one_filesystem: bool,
    /// Paths relative to the root (`dev`, `etc/hosts`) that are left out; a directory is skipped
    /// with everything below it.
    pub exclude: Vec<PathBuf>,
    /// Record directory mtimes (they change with every entry added or removed, so off by default).
    pub dir_mtimes: bool,
}

/// The type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

impl FileType {
    /// The name used in formatted lines.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
            FileType::Fifo => "fifo",
            FileType::CharDev => "chardev",
            FileType::BlockDev => "blockdev",
            FileType::Socket => "socket",
        }
    }

    fn from_metadata(metadata: &fs::Metadata) -> FileType {
        use std::os::unix::fs::FileTypeExt;
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            FileType::Dir
        } else if file_type.is_symlink() {
            FileType::Symlink
        } else if file_type.is_fifo() {
            FileType::Fifo
        } else if file_type.is_char_device() {
            FileType::CharDev
        } else if file_type.is_block_device() {
            FileType::BlockDev
        } else if file_type.is_socket() {
            FileType::Socket
        } else {
            FileType::File
        }
    }
}

/// One entry of a dumped tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The path below the root as bytes, starting with `/`; the root itself is `/`.
    pub path: Vec<u8>,
    pub file_type: FileType,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Content length of files, target length of symlinks.
    pub size: Option<u64>,
    /// Lower-case hex sha256 of a file's content.
    pub sha256: Option<String>,
    /// A symlink's target bytes.
    pub link_target: Option<Vec<u8>>,
    /// `(major, minor)` of device nodes.
    pub rdev: Option<(u32, u32)>,
    /// `(seconds, nanoseconds)`; for every non-directory, for directories only with `dir_mtimes`.
    pub mtime: Option<(i64, i64)>,
    /// For files with more than one link: the first path (in path order) of the dump with the
    /// same inode, which may be the record's own path.
    pub hardlink_group: Option<Vec<u8>>,
    /// Recorded extended attributes (name, value) sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The record as one line (without the newline).
    pub fn to_line(&self) -> String {
        let mut line = escape_bytes(&self.path);
        let _ = write!(
            line,
            " {} mode={:04o} uid={} gid={}",
            self.file_type.as_str(),
            self.mode,
            self.uid,
            self.gid
        );
        if let Some(size) = self.size {
            let _ = write!(line, " size={size}");
        }
        if let Some(sha256) = &self.sha256 {
            let _ = write!(line, " sha256={sha256}");
        }
        if let Some(target) = &self.link_target {
            let _ = write!(line, " target={}", escape_bytes(target));
        }
        if let Some((major, minor)) = self.rdev {
            let _ = write!(line, " rdev={major}:{minor}");
        }
        if let Some((seconds, nanoseconds)) = self.mtime {
            let _ = write!(line, " mtime={seconds}.{nanoseconds:09}");
        }
        if let Some(group) = &self.hardlink_group {
            let _ = write!(line, " hardlink={}", escape_bytes(group));
        }
        for (name, value) in &self.xattrs {
            let _ = write!(line, " xattr.{name}={}", hex(value));
        }
        line
    }
}

/// Walks `root` and returns its records sorted by path bytes.
pub fn dump(root: &Path, opts: &DumpOptions) -> Result<Vec<Record>> {
    let root_metadata = fs::symlink_metadata(root).map_err(|source| Error::Stat {
        path: root.to_path_buf(),
        source,
    })?;
    if !root_metadata.is_dir() {
        return Err(Error::RootNotDirectory {
            path: root.to_path_buf(),
        });
    }
    let mut walker = Walker {
        opts,
        root_dev: root_metadata.dev(),
        entries: Vec::new(),
    };
    walker.visit(root, Path::new(""), root_metadata)?;
    let mut entries = walker.entries;
    entries.sort_by(|a, b| a.record.path.cmp(&b.record.path));

    // Hardlink groups are assigned after sorting so that the group name does not depend on the
    // order in which the directory entries were returned.
    let mut first_path_by_inode: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut record = entry.record;
        if let Some(inode) = entry.multi_link_inode {
            let first = first_path_by_inode
                .entry(inode)
                .or_insert_with(|| record.path.clone());
            record.hardlink_group = Some(first.clone());
        }
        records.push(record);
    }
    Ok(records)
}

/// The records one per line, each line ending with `\n`.
pub fn format(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        out.push_str(&record.to_line());
        out.push('\n');
    }
    out
}

/// `None` when both dumps are equal, else a readable diff: `-` lines only in `expected`, `+`
/// lines only in `actual`, records with the same path shown next to each other; at most the
/// first 40 differing lines, followed by a count of the rest.
pub fn compare(expected: &[Record], actual: &[Record]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut diff_lines: Vec<String> = Vec::new();
    let mut n_differences = 0usize;
    let mut push = |line: String, diff_lines: &mut Vec<String>| {
        n_differences += 1;
        if diff_lines.len() < MAX_DIFF_LINES {
            diff_lines.push(line);
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < actual.len() {
        match (expected.get(i), actual.get(j)) {
            (Some(e), Some(a)) if e.path == a.path => {
                if e != a {
                    push(format!("-{}", e.to_line()), &mut diff_lines);
                    push(format!("+{}", a.to_line()), &mut diff_lines);
                }
                i += 1;
                j += 1;
            }
            (Some(e), Some(a)) if e.path < a.path => {
                push(format!("-{}", e.to_line()), &mut diff_lines);
                i += 1;
            }
            (Some(_), Some(a)) => {
                push(format!("+{}", a.to_line()), &mut diff_lines);
                j += 1;
            }
            (Some(e), None) => {
                push(format!("-{}", e.to_line()), &mut diff_lines);
                i += 1;
            }
            (None, Some(a)) => {
                push(format!("+{}", a.to_line()), &mut diff_lines);
                j += 1;
            }
            (None, None) => break,
        }
    }
    let mut out = format!(
        "tree dumps differ ({} expected records, {} actual records; - expected, + actual):\n",
        expected.len(),
        actual.len()
    );
    for line in &diff_lines {
        out.push_str(line);
        out.push('\n');
    }
    if n_differences > diff_lines.len() {
        let _ = writeln!(
            out,
            "... and {} more differing lines",
            n_differences - diff_lines.len()
        );
    }
    Some(out)
}

/// Escapes bytes for display: valid UTF-8 stays as it is except control characters, space and
/// backslash; every other byte becomes `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == ' ' || c == '\\' {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// One walked entry before hardlink groups are known.
struct WalkEntry {
    record: Record,
    /// `(st_dev, st_ino)` of non-directories with `st_nlink > 1`.
    multi_link_inode: Option<(u64, u64)>,
}

struct Walker<'a> {
    opts: &'a DumpOptions,
    root_dev: u64,
    entries: Vec<WalkEntry>,
}

impl Walker<'_> {
    /// Records `path` (whose path below the root is `relative`) and, for a directory, its entries.
    fn visit(&mut self, path: &Path, relative: &Path, metadata: fs::Metadata) -> Result<()> {
        let file_type = FileType::from_metadata(&metadata);
        let record = self.record(path, relative, &metadata, file_type)?;
        let multi_link_inode = (file_type != FileType::Dir && metadata.nlink() > 1)
            .then(|| (metadata.dev(), metadata.ino()));
        self.entries.push(WalkEntry {
            record,
            multi_link_inode,
        });
        if file_type != FileType::Dir {
            return Ok(());
        }
        let read_dir = fs::read_dir(path).map_err(|source| Error::ReadDir {
            path: path.to_path_buf(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in read_dir {
            let entry = entry.map_err(|source| Error::ReadDir {
                path: path.to_path_buf(),
                source,
            })?;
            names.push(entry.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_relative = relative.join(&name);
            if self.opts.exclude.contains(&child_relative) {
                continue;
            }
            let child = path.join(&name);
            let child_metadata = fs::symlink_metadata(&child).map_err(|source| Error::Stat {
                path: child.clone(),
                source,
            })?;
            if self.opts.one_filesystem && child_metadata.dev() != self.root_dev {
                continue;
            }
            self.visit(&child, &child_relative, child_metadata)?;
        }
        Ok(())
    }

    fn record(
        &self,
        path: &Path,
        relative: &Path,
        metadata: &fs::Metadata,
        file_type: FileType,
    ) -> Result<Record> {
        let mut record_path = b"/".to_vec();
        record_path.extend_from_slice(relative.as_os_str().as_bytes());
        let mut record = Record {
            path: record_path,
            file_type,
            mode: metadata.mode() & PERMISSION_AND_SPECIAL_BITS,
            uid: metadata.uid(),
            gid: metadata.gid(),
            size: None,
            sha256: None,
            link_target: None,
            rdev: None,
            mtime: None,
            hardlink_group: None,
            xattrs: read_xattrs(path)?,
        };
        if file_type != FileType::Dir || self.opts.dir_mtimes {
            record.mtime = Some((metadata.mtime(), metadata.mtime_nsec()));
        }
        match file_type {
            FileType::File => {
                record.size = Some(metadata.len());
                record.sha256 = Some(hash_file(path)?);
            }
            FileType::Symlink => {
                let target = fs::read_link(path).map_err(|source| Error::ReadLink {
                    path: path.to_path_buf(),
                    source,
                })?;
                record.size = Some(metadata.len());
                record.link_target = Some(target.into_os_string().into_encoded_bytes());
            }
            FileType::CharDev | FileType::BlockDev => {
                let rdev = metadata.rdev();
                record.rdev = Some((
                    rustix::fs::major(rdev as rustix::fs::Dev),
                    rustix::fs::minor(rdev as rustix::fs::Dev),
                ));
            }
            FileType::Dir | FileType::Fifo | FileType::Socket => {}
        }
        Ok(record)
    }
}

/// Hashes a regular file's content, refusing to follow a symlink swapped in since the `lstat`.
fn hash_file(path: &Path) -> Result<String> {
    let read_error = |source: io::Error| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|errno| read_error(errno.into()))?;
    let mut file = fs::File::from(fd);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n_read = file.read(&mut buffer).map_err(read_error)?;
        if n_read == 0 {
            break;
        }
        hasher.update(&buffer[..n_read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Reads the recorded extended attributes that are present, without following symlinks.
fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut xattrs = Vec::new();
    for name in RECORDED_XATTRS {
        if let Some(value) = lgetxattr(path, name)? {
            xattrs.push((name.to_string(), value));
        }
    }
    Ok(xattrs)
}

/// One attribute's value, `None` when it is absent or the filesystem does not support it.
fn lgetxattr(path: &Path, name: &'static str) -> Result<Option<Vec<u8>>> {
    let xattr_error = |errno: rustix::io::Errno| Error::ReadXattr {
        path: path.to_path_buf(),
        name,
        source: errno.into(),
    };
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, OsStr::new(name), &mut value[..]) {
            Ok(len) => {
                value.truncate(len);
                return Ok(Some(value));
            }
            Err(rustix::io::Errno::NODATA)
            | Err(rustix::io::Errno::NOTSUP)
            | Err(rustix::io::Errno::PERM) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if value.len() < 64 * 1024 => {
                let new_len = value.len() * 4;
                value.resize(new_len, 0);
            }
            Err(errno) => return Err(xattr_error(errno)),
        }
    }
}

use gocompat::digest::hex;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// The dump of `root` with the default options as `edit` changes them.
    fn dump_with(root: &Path, edit: impl FnOnce(&mut DumpOptions)) -> Vec<Record> {
        let mut options = DumpOptions::default();
        edit(&mut options);
        dump(root, &options).expect("dump")
    }

    fn mknod(path: &Path, file_type: rustix::fs::FileType, mode: u32, dev: rustix::fs::Dev) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            file_type,
            rustix::fs::Mode::from_raw_mode(mode),
            dev,
        )
        .unwrap_or_else(|err| panic!("mknod {}: {err}", path.display()));
    }

    fn find<'a>(records: &'a [Record], path: &[u8]) -> &'a Record {
        records
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no record {}", escape_bytes(path)))
    }

    #[test]
    fn files_dirs_symlinks_and_hardlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir(root.join("d")).expect("mkdir");
        fs::write(root.join("d/f"), b"hello\n").expect("write");
        fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o4750)).expect("chmod");
        fs::hard_link(root.join("d/f"), root.join("a-link")).expect("link");
        symlink("d/f", root.join("s")).expect("symlink");
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("chmod root");

        let records = dump(root, &DumpOptions::default()).expect("dump");
        let paths: Vec<String> = records.iter().map(|r| escape_bytes(&r.path)).collect();
        assert_eq!(paths, ["/", "/a-link", "/d", "/d/f", "/s"]);

        let file = find(&records, b"/d/f");
        assert_eq!(file.file_type, FileType::File);
        assert_eq!(file.mode, 0o4750);
        assert_eq!(file.size, Some(6));
        // sha256("hello\n"), computed independently with sha256sum.
        assert_eq!(
            file.sha256.as_deref(),
            Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );
        assert_eq!(file.hardlink_group.as_deref(), Some(&b"/a-link"[..]));
        assert_eq!(
            find(&records, b"/a-link").hardlink_group.as_deref(),
            Some(&b"/a-link"[..])
        );

        let link = find(&records, b"/s");
        assert_eq!(link.file_type, FileType::Symlink);
        assert_eq!(link.link_target.as_deref(), Some(&b"d/f"[..]));
        assert_eq!(link.size, Some(3));
        assert!(link.mtime.is_some());
        assert!(link.hardlink_group.is_none());

        let d = find(&records, b"/d");
        assert_eq!(d.file_type, FileType::Dir);
        assert!(d.mtime.is_none(), "dir mtimes are off by default");
        assert!(d.size.is_none() && d.sha256.is_none());

        let with_mtimes = dump_with(root, |options| options.dir_mtimes = true);
        assert!(find(&with_mtimes, b"/d").mtime.is_some());
    }

    #[test]
    fn line_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("f"), b"").expect("write");
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o640)).expect("chmod");
        let times = fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(981173106, 5));
        fs::File::options()
            .write(true)
            .open(root.join("f"))
            .expect("open")
            .set_times(times)
            .expect("set times");
        let records = dump(root, &DumpOptions::default()).expect("dump");
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        // sha256 of the empty string.
        assert_eq!(
            records[1].to_line(),
            format!(
                "/f file mode=0640 uid={uid} gid={gid} size=0 \
                 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \
                 mtime=981173106.000000005"
            )
        );
        let text = format(&records);
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn non_utf8_and_control_names_are_escaped_and_sorted_by_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for name in [
            &b"bad\xff"[..],
            b"tab\tname",
            "héllo".as_bytes(),
            b"a b",
            b"back\\",
        ] {
            fs::write(root.join(OsStr::from_bytes(name)), b"x").expect("write");
        }
        let records = dump(root, &DumpOptions::default()).expect("dump");
        let paths: Vec<String> = records.iter().map(|r| escape_bytes(&r.path)).collect();
        assert_eq!(
            paths,
            [
                "/",
                "/a\\x20b",
                "/back\\x5c",
                "/bad\\xff",
                "/héllo",
                "/tab\\x09name"
            ]
        );
        assert_eq!(records[3].path, b"/bad\xff");
    }

    #[test]
    fn excludes_skip_whole_subtrees() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("dev/pts")).expect("mkdir");
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        fs::write(root.join("dev/null"), b"").expect("write");
        fs::write(root.join("etc/hosts"), b"").expect("write");
        fs::write(root.join("etc/passwd"), b"").expect("write");
        let records = dump_with(root, |options| {
            options.exclude = vec![PathBuf::from("dev"), PathBuf::from("etc/hosts")];
        });
        let paths: Vec<String> = records.iter().map(|r| escape_bytes(&r.path)).collect();
        assert_eq!(paths, ["/", "/etc", "/etc/passwd"]);
    }

    #[test]
    fn fifo_and_socket_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        mknod(&root.join("fifo"), rustix::fs::FileType::Fifo, 0o644, 0);
        let _listener =
            std::os::unix::net::UnixListener::bind(root.join("sock")).expect("bind socket");
        let records = dump(root, &DumpOptions::default()).expect("dump");
        let fifo = find(&records, b"/fifo");
        assert_eq!(fifo.file_type, FileType::Fifo);
        assert!(fifo.size.is_none() && fifo.sha256.is_none());
        assert_eq!(find(&records, b"/sock").file_type, FileType::Socket);
    }

    #[test]
    fn device_nodes_and_capabilities_need_root() {
        if !is_root() {
            eprintln!("SKIP device_nodes_and_capabilities_need_root: not root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        mknod(
            &root.join("loop"),
            rustix::fs::FileType::BlockDevice,
            0o660,
            rustix::fs::makedev(7, 200),
        );
        // mknod applies the umask; chmod does not.
        fs::set_permissions(root.join("loop"), fs::Permissions::from_mode(0o660)).expect("chmod");
        mknod(
            &root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            0o666,
            rustix::fs::makedev(1, 3),
        );
        fs::write(root.join("capbin"), b"#!/bin/sh\n").expect("write");
        // cap_net_bind_service+ep, VFS_CAP_REVISION_2: magic/flags 0x02000001 (effective),
        // permitted low word 1 << 10.
        let capability: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        fixture::set_xattr(&root.join("capbin"), "security.capability", &capability);
        fs::create_dir(root.join("opaque")).expect("mkdir");
        fixture::set_xattr(&root.join("opaque"), "trusted.overlay.opaque", b"y");

        let records = dump(root, &DumpOptions::default()).expect("dump");
        let block = find(&records, b"/loop");
        assert_eq!(block.file_type, FileType::BlockDev);
        assert_eq!(block.rdev, Some((7, 200)));
        assert_eq!(block.mode, 0o660);
        assert!(block
            .to_line()
            .contains(" blockdev mode=0660 uid=0 gid=0 rdev=7:200 mtime="));
        let null = find(&records, b"/null");
        assert_eq!(null.file_type, FileType::CharDev);
        assert_eq!(null.rdev, Some((1, 3)));
        assert!(find(&records, b"/capbin")
            .to_line()
            .ends_with(" xattr.security.capability=0100000200040000000000000000000000000000"));
        assert!(find(&records, b"/opaque")
            .to_line()
            .ends_with(" xattr.trusted.overlay.opaque=79"));
    }

    #[test]
    fn one_filesystem_skips_mount_points_needs_root() {
        if !is_root() {
            eprintln!("SKIP one_filesystem_skips_mount_points_needs_root: not root");
            return;
        }
        /// Unmounts the test tmpfs even when an assertion fails.
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir(root.join("mnt")).expect("mkdir");
        fs::write(root.join("plain"), b"p").expect("write");
        rustix::mount::mount(
            "tmpfs",
            root.join("mnt"),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .expect("mount tmpfs");
        let _unmount = Unmount(root.join("mnt"));
        fs::write(root.join("mnt/inside"), b"i").expect("write");

        let all = dump(root, &DumpOptions::default()).expect("dump");
        let paths: Vec<String> = all.iter().map(|r| escape_bytes(&r.path)).collect();
        assert_eq!(paths, ["/", "/mnt", "/mnt/inside", "/plain"]);
        let one = dump_with(root, |options| options.one_filesystem = true);
        let paths: Vec<String> = one.iter().map(|r| escape_bytes(&r.path)).collect();
        assert_eq!(paths, ["/", "/plain"]);
    }

    #[test]
    fn compare_reports_differences() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("a"), b"1").expect("write");
        fs::write(root.join("b"), b"2").expect("write");
        let before = dump(root, &DumpOptions::default()).expect("dump");
        assert!(compare(&before, &before).is_none());
        fs::write(root.join("b"), b"3").expect("write");
        fs::remove_file(root.join("a")).expect("rm");
        fs::write(root.join("c"), b"").expect("write");
        let after = dump(root, &DumpOptions::default()).expect("dump");
        let diff = compare(&before, &after).expect("differs");
        let lines: Vec<&str> = diff.lines().skip(1).collect();
        assert_eq!(lines.len(), 4, "{diff}");
        assert!(lines[0].starts_with("-/a file"), "{diff}");
        assert!(lines[1].starts_with("-/b file"), "{diff}");
        assert!(lines[2].starts_with("+/b file"), "{diff}");
        assert!(lines[3].starts_with("+/c file"), "{diff}");
    }
}
