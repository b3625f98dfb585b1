//! Looking at a name without opening what it names.
//!
//! Opening a device node can have effects (a watchdog that starts counting, a tape that
//! rewinds), and a FIFO can block; a directory entry that a container process owns can turn
//! into either between a `stat` and an `open`. So a name is first opened with
//! `O_PATH | O_NOFOLLOW`, which opens nothing but the path, and described by `fstat` of that
//! descriptor; only an inode that is a regular file is then opened for reading, through the
//! descriptor's own `/proc/self/fd` entry, which names that inode and no other whatever
//! happens to the name meanwhile (Linux 2.6.39; the same reopening runc does).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;

/// A path-only open of a name itself, never of what a symlink there points to.
const PATH_NOFOLLOW: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// A name opened as a path only (`O_PATH | O_NOFOLLOW`), with what `fstat` says of it.
#[derive(Debug)]
pub struct Node {
    fd: OwnedFd,
    stat: Stat,
}

impl Node {
    /// Opens `name` in `dir` without following a symlink and without opening the inode.
    pub fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<Node, Errno> {
        let fd = rustix::fs::openat(dir, name, PATH_NOFOLLOW, Mode::empty())?;
        Node::from_path_fd(fd)
    }

    /// Describes a descriptor opened with `O_PATH` (or any descriptor).
    pub fn from_path_fd(fd: OwnedFd) -> Result<Node, Errno> {
        let stat = rustix::fs::fstat(&fd)?;
        Ok(Node { fd, stat })
    }

    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The target of the symlink this node is (`readlinkat(fd, "")`): the same inode that was
    /// described, whatever the name has become since.
    pub fn read_link(&self) -> Result<Vec<u8>, Errno> {
        if self.file_type() != FileType::Symlink {
            return Err(Errno::INVAL);
        }
        Ok(rustix::fs::readlinkat(&self.fd, c"", Vec::new())?.into_bytes())
    }

    /// Opens a path (relative to the working directory, or absolute) without following its last
    /// component and without opening the inode. Earlier components are followed as usual: the
    /// caller has checked them, or they are the caller's own.
    pub fn open_path(path: &std::path::Path) -> Result<Node, Errno> {
        let fd = rustix::fs::open(path, PATH_NOFOLLOW, Mode::empty())?;
        Node::from_path_fd(fd)
    }

    /// The node with its regular file opened for reading, `None` when it is anything else.
    pub fn with_regular(self) -> Result<(Node, Option<OwnedFd>), Errno> {
        if self.file_type() != FileType::RegularFile {
            return Ok((self, None));
        }
        let file = reopen(self.fd(), self.stat())?;
        Ok((self, Some(file)))
    }

    /// The regular file this node is, opened for reading. A node that is anything else gives
    /// `Err(Errno::NOTSUP)` and is not opened.
    pub fn open_regular(&self) -> Result<OwnedFd, Errno> {
        if self.file_type() != FileType::RegularFile {
            return Err(Errno::NOTSUP);
        }
        reopen(self.fd.as_fd(), &self.stat)
    }
}

/// Opens the regular file `name` in `dir` for reading without ever opening anything else:
/// `Ok(None)` with the node when it is not a regular file.
pub fn open_regular_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<(Node, Option<OwnedFd>), Errno> {
    Node::open_at(dir, name)?.with_regular()
}

/// Opens the regular file `name` in `dir` for reading with one `openat`, for a directory that
/// nothing else changes while this process reads it (a directory it has taken over): the name
/// cannot turn into a device or FIFO between the listing that said it is a regular file and the
/// open, so the path-only open and the reopening are not needed. A name that is not a regular
/// file all the same (a symlink: `ELOOP`) is an error, never followed.
pub fn open_unshared_regular(dir: BorrowedFd<'_>, name: &CStr) -> Result<(Stat, OwnedFd), Errno> {
    // O_NONBLOCK all the same: should the name be a FIFO after all, the open must not wait.
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty())?,
        opened => opened?,
    };
    let stat = rustix::fs::fstat(&file)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Errno::NOTSUP);
    }
    // O_NONBLOCK stays: it has no effect on reads of a regular file (open(2)).
    Ok((stat, file))
}

/// Reopens the inode behind an `O_PATH` descriptor for reading, and checks that the
/// descriptor it got is that inode. The read does not update the file's access time where the
/// caller may ask so (`O_NOATIME`: the file's owner, or root).
fn reopen(path_fd: BorrowedFd<'_>, stat: &Stat) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match open_magic(path_fd, flags | OFlags::NOATIME) {
        Err(Errno::PERM) => open_magic(path_fd, flags)?,
        opened => opened?,
    };
    let now = rustix::fs::fstat(&file)?;
    if now.st_dev != stat.st_dev
        || now.st_ino != stat.st_ino
        || FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
    {
        // Not the inode of the descriptor: /proc is not the kernel's procfs.
        return Err(Errno::XDEV);
    }
    // O_NONBLOCK only guarded the open, and stays: it has no effect on reads of a regular file
    // (open(2)); clearing it would cost two calls per file.
    Ok(file)
}

/// Opens `/proc/self/fd/<fd>` with `flags`: through a descriptor of this process's
/// `/proc/self/fd` kept once it was found to be on procfs, so that each reopening looks up one
/// name instead of four; by the whole path where there is none.
fn open_magic(fd: BorrowedFd<'_>, flags: OFlags) -> Result<OwnedFd, Errno> {
    static FD_DIR: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    let dir = FD_DIR.get_or_init(|| {
        let dir = rustix::fs::open(
            "/proc/self/fd",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let on_procfs = rustix::fs::fstatfs(&dir).ok()?.f_type == PROC_SUPER_MAGIC;
        on_procfs.then_some(dir)
    });
    match dir {
        Some(dir) => {
            // The descriptor's number in decimal, NUL-terminated, without an allocation.
            let mut name = [0_u8; 12];
            let mut at = name.len() - 1;
            let mut number = fd.as_raw_fd().unsigned_abs();
            loop {
                at -= 1;
                name[at] = b'0' + (number % 10) as u8;
                number /= 10;
                if number == 0 {
                    break;
                }
            }
            let name = CStr::from_bytes_with_nul(&name[at..]).map_err(|_| Errno::INVAL)?;
            rustix::fs::openat(dir, name, flags, Mode::empty())
        }
        None => rustix::fs::openat(
            CWD,
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            flags,
            Mode::empty(),
        ),
    }
}

/// `f_type` of procfs (`linux/magic.h`).
const PROC_SUPER_MAGIC: rustix::fs::FsWord = 0x9fa0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir_fd(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir")
    }

    #[test]
    fn an_unshared_name_opens_only_as_a_regular_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), b"hello").expect("write");
        symlink("f", tmp.path().join("s")).expect("symlink");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("p"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("fifo");
        let dir = dir_fd(tmp.path());
        let (stat, file) = open_unshared_regular(dir.as_fd(), c"f").expect("open");
        assert_eq!(stat.st_size, 5);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(file), &mut text).expect("read");
        assert_eq!(text, "hello");
        assert_eq!(
            open_unshared_regular(dir.as_fd(), c"s").err(),
            Some(Errno::LOOP)
        );
        // A FIFO is neither waited on nor handed out.
        assert_eq!(
            open_unshared_regular(dir.as_fd(), c"p").err(),
            Some(Errno::NOTSUP)
        );
    }

    #[test]
    fn a_regular_file_is_opened_and_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), b"hello").expect("write");
        let dir = dir_fd(tmp.path());
        let (node, file) = open_regular_at(dir.as_fd(), c"f").expect("open");
        assert_eq!(node.file_type(), FileType::RegularFile);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(file.expect("file")), &mut text)
            .expect("read");
        assert_eq!(text, "hello");
    }

    #[test]
    fn a_fifo_symlink_or_directory_is_described_not_opened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        rustix::fs::mknodat(
            CWD,
            tmp.path().join("fifo").as_path(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        symlink("/etc/passwd", tmp.path().join("link")).expect("symlink");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        let dir = dir_fd(tmp.path());
        // A FIFO without a writer would block an open for reading (without O_NONBLOCK).
        let (node, file) = open_regular_at(dir.as_fd(), c"fifo").expect("fifo");
        assert_eq!(node.file_type(), FileType::Fifo);
        assert!(file.is_none());
        assert_eq!(
            node.open_regular().expect_err("a FIFO is not reopened"),
            Errno::NOTSUP
        );
        let (node, file) = open_regular_at(dir.as_fd(), c"link").expect("link");
        assert_eq!(node.file_type(), FileType::Symlink);
        assert!(file.is_none());
        assert_eq!(node.read_link().expect("readlink"), b"/etc/passwd");
        let (node, file) = open_regular_at(dir.as_fd(), c"d").expect("dir");
        assert_eq!(node.file_type(), FileType::Directory);
        assert!(file.is_none());
    }

    #[test]
    fn the_reopened_file_is_the_described_inode_after_a_rename() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), b"first").expect("write");
        let dir = dir_fd(tmp.path());
        let node = Node::open_at(dir.as_fd(), c"f").expect("node");
        std::fs::rename(tmp.path().join("f"), tmp.path().join("g")).expect("rename");
        std::fs::write(tmp.path().join("f"), b"second").expect("write");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::fs::File::from(node.open_regular().expect("reopen")),
            &mut text,
        )
        .expect("read");
        assert_eq!(text, "first");
    }
}
