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

/// Reopens the inode behind an `O_PATH` descriptor for reading, and checks that the
/// descriptor it got is that inode.
fn reopen(path_fd: BorrowedFd<'_>, stat: &Stat) -> Result<OwnedFd, Errno> {
    let magic = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
    let file = rustix::fs::openat(
        CWD,
        magic.as_str(),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let now = rustix::fs::fstat(&file)?;
    if now.st_dev != stat.st_dev
        || now.st_ino != stat.st_ino
        || FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
    {
        // Not the inode of the descriptor: /proc is not the kernel's procfs.
        return Err(Errno::XDEV);
    }
    // Reads should block as usual; O_NONBLOCK only guarded the open.
    rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
    Ok(file)
}

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
