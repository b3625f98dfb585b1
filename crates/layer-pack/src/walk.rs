//! The walk of the upperdir and of the merged tree, and the header of each entry.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use gotar::{typeflag, Header};
use rustix::fs::{FileType, Stat};
use rustix::io::Errno;

use syscompat::dir::{get_xattr, list_xattrs, open_dir_at, open_tree_root, read_dir};
use syscompat::Node;

use crate::names::NameCache;
use crate::settle::{self, Op, Settler};
use crate::{lossy, ChangeKind, CountingWriter, Error, PackOptions, PackReport, Result};

/// The copy buffer for file data.
const COPY_BUFFER_LEN: usize = 128 * 1024;

/// `security.capability` as Docker exports it (VFS_CAP_REVISION_3 rewritten to revision 2).
const CAPABILITY_XATTR: &str = "security.capability";
const VFS_CAP_REVISION_OFFSET: usize = 3;
const VFS_CAP_REVISION_2: u8 = 2;
const VFS_CAP_REVISION_3: u8 = 3;
const VFS_CAP_REVISION_2_LEN: usize = 20;

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
const REDIRECT_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "user.overlay.redirect"];
const METACOPY_XATTRS: [&str; 2] = ["trusted.overlay.metacopy", "user.overlay.metacopy"];

/// Writes the tar of `upper` (format.md §6.3) to `out`, ending with two zero blocks.
///
/// An entry carrying an overlay `redirect` or `metacopy` xattr is [`Error::NeedsMergedExport`]:
/// its content is not all in the upperdir.
pub fn pack_upper(upper: &Path, out: &mut dyn Write, options: &PackOptions) -> Result<PackReport> {
    let root = Arc::new(open_root(upper)?);
    let mut packer = Packer::new(out, options);
    if options.settle {
        packer.settler = Some(Settler::start()?);
    }
    packer.walk(&root, b"", Source::Upper)?;
    if let Some(settler) = packer.settler.take() {
        settler.finish()?;
        settle::root(root.as_fd())?;
    }
    packer.finish()
}

/// Writes the tar of the whole tree at `root` as Docker's `archive.Tar` writes it for `docker
/// export` of a mounted container: every entry below the root (not the root itself), names in
/// byte order, each directory followed by its children, nothing treated as an overlay whiteout.
pub fn pack_tree(root: &Path, out: &mut dyn Write, options: &PackOptions) -> Result<PackReport> {
    let root = Arc::new(open_root(root)?);
    let mut packer = Packer::new(out, options);
    packer.walk(&root, b"", Source::Tree)?;
    packer.finish()
}

/// What a walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// An upperdir: overlay whiteouts, opaque, redirect and metacopy xattrs have their meaning.
    Upper,
    /// Entries of a merged tree named by a change list: read one by one.
    Changes,
    /// A whole tree read as it is.
    Tree,
}

/// Writes Docker's naive export of `changes` (absolute paths) read from `merged_root`: entries
/// sorted by path, the entry itself for additions and modifications (a directory's children only
/// when they are listed too), a `.wh.<name>` file for each deletion.
pub fn pack_changes(
    merged_root: &Path,
    changes: &[(Vec<u8>, ChangeKind)],
    out: &mut dyn Write,
    options: &PackOptions,
) -> Result<PackReport> {
    let root = open_root(merged_root)?;
    let mut sorted: Vec<&(Vec<u8>, ChangeKind)> = changes.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let deleted_at = options.clamp_mtime.unwrap_or_else(now_seconds);
    let mut packer = Packer::new(out, options);
    for (path, kind) in sorted {
        let relative = path.strip_prefix(b"/").unwrap_or(path);
        let (parent, base) = match relative.iter().rposition(|&b| b == b'/') {
            Some(idx) => (&relative[..idx], &relative[idx + 1..]),
            None => (&relative[..0], relative),
        };
        if base.is_empty() || base == b"." || base == b".." {
            continue;
        }
        if *kind == ChangeKind::Delete {
            let mut name = parent.to_vec();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(b".wh.");
            name.extend_from_slice(base);
            let header = Header {
                name,
                typeflag: typeflag::REG,
                mtime: deleted_at,
                ..Header::default()
            };
            packer.put_header(&header)?;
            continue;
        }
        let dir = Arc::new(open_path_dirs(root.as_fd(), parent)?);
        let name = c_name(base, relative)?;
        let listed = Listed {
            dir: &dir,
            name: &name,
            file_type: None,
        };
        packer.entry(listed, relative, Source::Changes)?;
    }
    packer.finish()
}

struct Packer<'a> {
    out: CountingWriter<'a>,
    options: PackOptions,
    names: NameCache,
    /// Inodes of non-directories with more than one link, by (dev, ino), with their first name.
    seen: HashMap<(u64, u64), Vec<u8>>,
    /// Links settling took from inodes (a whiteout given an inode of its own), by (dev, ino): a
    /// later name of such an inode counts them, so that it is linked as a copy would link it.
    unlinked: HashMap<(u64, u64), u64>,
    buffer: Vec<u8>,
    n_entries: u64,
    /// The thread that settles entries, while settling (see `settle`).
    settler: Option<Settler>,
}

impl<'a> Packer<'a> {
    fn new(out: &'a mut dyn Write, options: &PackOptions) -> Packer<'a> {
        Packer {
            out: CountingWriter {
                inner: out,
                n_bytes: 0,
            },
            options: options.clone(),
            names: options
                .names
                .as_ref()
                .map_or_else(NameCache::from_host, NameCache::from_files),
            seen: HashMap::new(),
            unlinked: HashMap::new(),
            buffer: vec![0; COPY_BUFFER_LEN],
            n_entries: 0,
            settler: None,
        }
    }

    fn finish(mut self) -> Result<PackReport> {
        self.out.put(&gotar::END_OF_ARCHIVE)?;
        self.out
            .inner
            .flush()
            .map_err(|source| Error::Write { source })?;
        Ok(PackReport {
            n_entries: self.n_entries,
            n_bytes: self.out.n_bytes,
        })
    }

    /// Emits every entry below `dir` (whose path relative to the layer is `prefix`, empty or
    /// ending in `/`), names in byte order, each directory followed by its children.
    fn walk(&mut self, dir: &Arc<OwnedFd>, prefix: &[u8], source: Source) -> Result<()> {
        let mut names =
            read_dir(dir.as_fd()).map_err(|err| io("listing", prefix_or_root(prefix), err))?;
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, listed_type) in names {
            let mut relative = prefix.to_vec();
            relative.extend_from_slice(name.as_bytes());
            // Docker's walk (`lstat` of each path) fails beyond `PATH_MAX`, and so does this one,
            // before going deeper: a container may nest directories without end through
            // descriptors, and each level is a frame of the recursion (5,000 levels overflowed
            // the packing thread's stack and aborted the commit).
            if relative.len() >= syscompat::PATH_MAX {
                return Err(io("packing", &relative, Errno::NAMETOOLONG));
            }
            let listed = Listed {
                dir,
                name: &name,
                file_type: Some(listed_type),
            };
            if let Some((child, mtime)) = self.entry(listed, &relative, source)? {
                let child_relative = [relative.as_slice(), b"/"].concat();
                self.walk(&child, &child_relative, source)?;
                if self.settling(source) {
                    // After its children: settling them may change the directory.
                    self.settle(Op::Fd {
                        fd: child,
                        xattrs: None,
                        mtime: Some(mtime),
                        relative,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Whether entries are settled in place as they are packed (see `settle`).
    fn settling(&self, source: Source) -> bool {
        self.options.settle && source == Source::Upper
    }

    /// Settles an entry: on the settling thread when there is one, here otherwise.
    fn settle(&mut self, op: Op) -> Result<()> {
        match &mut self.settler {
            Some(settler) => settler.send(op),
            None => op.run(),
        }
    }

    /// Emits the entry `name` of `dir`; returns the opened directory (with its header's mtime)
    /// when it is one and the caller walks into it.
    fn entry(
        &mut self,
        listed: Listed<'_>,
        relative: &[u8],
        source: Source,
    ) -> Result<Option<(Arc<OwnedFd>, i64)>> {
        let Listed { dir, name, .. } = listed;
        let from_upper = source == Source::Upper;
        let settling = self.settling(source);
        // The name is opened as a path only and described through that descriptor; a regular
        // file is then reopened for reading from it, so that what is read is what was
        // described, and no device or FIFO swapped in under a file's name is ever opened.
        // A directory being settled is the caller's alone (nothing else changes it): a name
        // listed as a regular file there is opened for reading at once.
        let opened = if settling && listed.file_type == Some(FileType::RegularFile) {
            syscompat::open_unshared_regular(dir.as_fd(), name)
                .map(|(stat, file)| Opened::File(stat, file))
        } else {
            Node::open_at(dir.as_fd(), name).map(Opened::Node)
        };
        let opened = match opened {
            Ok(opened) => opened,
            // Gone since it was listed: nothing to export.
            Err(Errno::NOENT) if source != Source::Changes => return Ok(None),
            Err(err) => return Err(io("stat", relative, err)),
        };
        let stat = *opened.stat();
        let file_type = FileType::from_raw_mode(stat.st_mode);
        let mut header = self.base_header(&stat, relative);
        match file_type {
            FileType::Directory => {
                // The directory that was described, not whatever the name is now.
                let fd = open_dir_at(opened.node(relative)?.fd(), c".")
                    .map_err(|err| io("opening directory", relative, err))?;
                let fd = Arc::new(fd);
                let xattrs = XattrNames::list(fd.as_fd(), relative)?;
                if from_upper {
                    xattrs.check_not_redirected(fd.as_fd(), relative, &REDIRECT_XATTRS)?;
                }
                header.typeflag = typeflag::DIR;
                header.name.push(b'/');
                xattrs.add_capability(fd.as_fd(), &mut header, relative)?;
                let opaque = from_upper && xattrs.is_opaque(fd.as_fd(), relative)?;
                self.put_header(&header)?;
                if opaque {
                    let mut marker_name = relative.to_vec();
                    marker_name.extend_from_slice(b"/.wh..wh..opq");
                    let marker = Header {
                        name: marker_name,
                        typeflag: typeflag::REG,
                        mode: i64::from(stat.st_mode & 0o777),
                        uid: header.uid,
                        gid: header.gid,
                        uname: header.uname.clone(),
                        gname: header.gname.clone(),
                        ..Header::default()
                    };
                    self.put_header(&marker)?;
                }
                if settling {
                    self.settle(Op::Fd {
                        fd: fd.clone(),
                        xattrs: Some((xattrs.0, opaque)),
                        mtime: None,
                        relative: relative.to_vec(),
                    })?;
                }
                Ok((source != Source::Changes).then_some((fd, header.mtime)))
            }
            FileType::RegularFile => {
                let file = match opened {
                    Opened::File(_, file) => file,
                    Opened::Node(node) => node
                        .open_regular()
                        .map_err(|err| io("opening", relative, err))?,
                };
                let xattrs = XattrNames::list(file.as_fd(), relative)?;
                if from_upper {
                    xattrs.check_not_redirected(file.as_fd(), relative, &METACOPY_XATTRS)?;
                }
                header.typeflag = typeflag::REG;
                xattrs.add_capability(file.as_fd(), &mut header, relative)?;
                if self.link_to_seen(&stat, &mut header, relative) {
                    self.put_header(&header)?;
                    return Ok(None);
                }
                header.size = stat.st_size;
                self.put_header(&header)?;
                // A file being settled is the caller's alone: it cannot grow while it is read.
                let file = self.copy_data(file, stat.st_size as u64, !settling, relative)?;
                if settling {
                    // After the read, which may set the atime.
                    self.settle(Op::Fd {
                        fd: Arc::new(file.into()),
                        xattrs: Some((xattrs.0, false)),
                        mtime: Some(header.mtime),
                        relative: relative.to_vec(),
                    })?;
                }
                Ok(None)
            }
            FileType::Symlink => {
                let target = opened
                    .node(relative)?
                    .read_link()
                    .map_err(|err| io("reading link", relative, err))?;
                header.typeflag = typeflag::SYMLINK;
                header.linkname = target;
                let linked = self.link_to_seen(&stat, &mut header, relative);
                self.put_header(&header)?;
                if settling && !linked {
                    self.settle(Op::at(dir, name, header.mtime, relative))?;
                }
                Ok(None)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                header.typeflag = match file_type {
                    FileType::CharacterDevice => typeflag::CHAR,
                    FileType::BlockDevice => typeflag::BLOCK,
                    _ => typeflag::FIFO,
                };
                if file_type != FileType::Fifo {
                    header.devmajor = i64::from(rustix::fs::major(stat.st_rdev));
                    header.devminor = i64::from(rustix::fs::minor(stat.st_rdev));
                }
                let linked = self.link_to_seen(&stat, &mut header, relative);
                let is_whiteout = from_upper
                    && file_type == FileType::CharacterDevice
                    && header.devmajor == 0
                    && header.devminor == 0;
                if is_whiteout {
                    // The hardlink logic ran first, as in Docker: a whiteout sharing the
                    // kernel's whiteout inode keeps the first whiteout's original path as its
                    // link name while becoming a regular file.
                    let (parent, base) = split_last(relative);
                    let mut name = parent.to_vec();
                    name.extend_from_slice(b".wh.");
                    name.extend_from_slice(base);
                    header.name = name;
                    header.mode = 0o600;
                    header.typeflag = typeflag::REG;
                    header.size = 0;
                    if self.options.clamp_mtime.is_some() {
                        header.linkname.clear();
                    }
                }
                self.put_header(&header)?;
                if settling {
                    if is_whiteout {
                        // Unpacking creates each whiteout afresh (and leaves its times).
                        settle::whiteout(
                            dir.as_fd(),
                            name,
                            stat.st_nlink,
                            stat.st_uid,
                            stat.st_gid,
                            relative,
                        )?;
                        if stat.st_nlink > 1 {
                            *self.unlinked.entry((stat.st_dev, stat.st_ino)).or_default() += 1;
                        }
                    } else if !linked {
                        self.settle(Op::at(dir, name, header.mtime, relative))?;
                    }
                }
                Ok(None)
            }
            FileType::Socket => {
                tracing::warn!(path = %lossy(relative), "skipping a socket: tar cannot hold it");
                if settling {
                    settle::socket(dir.as_fd(), name, relative)?;
                }
                Ok(None)
            }
            FileType::Unknown => Err(io("reading", relative, Errno::INVAL)),
        }
    }

    /// The fields every entry has, from `lstat`.
    fn base_header(&self, stat: &Stat, relative: &[u8]) -> Header {
        let mtime = match self.options.clamp_mtime {
            Some(clamp) => stat.st_mtime.min(clamp),
            None => stat.st_mtime,
        };
        Header {
            name: relative.to_vec(),
            mode: i64::from(stat.st_mode & 0o177777),
            uid: i64::from(stat.st_uid),
            gid: i64::from(stat.st_gid),
            mtime,
            uname: self.names.user(stat.st_uid),
            gname: self.names.group(stat.st_gid),
            ..Header::default()
        }
    }

    /// Turns `header` into a hardlink to the first name of its inode when one was seen; records
    /// the name otherwise. Returns whether it became a link.
    fn link_to_seen(&mut self, stat: &Stat, header: &mut Header, relative: &[u8]) -> bool {
        let key = (stat.st_dev, stat.st_ino);
        let unlinked = self.unlinked.get(&key).copied().unwrap_or(0);
        if stat.st_nlink + unlinked <= 1 {
            return false;
        }
        match self.seen.get(&key) {
            Some(first) => {
                header.typeflag = typeflag::LINK;
                header.linkname = first.clone();
                header.size = 0;
                true
            }
            None => {
                self.seen.insert(key, relative.to_vec());
                false
            }
        }
    }

    fn put_header(&mut self, header: &Header) -> Result<()> {
        let bytes = header.encode().map_err(|source| Error::Header {
            path: lossy(&header.name),
            source,
        })?;
        self.out.put(&bytes)?;
        self.n_entries += 1;
        Ok(())
    }

    /// Copies exactly `size` bytes of `file`, then the padding; a file that is shorter or longer
    /// (when `may_grow`: something else may write it) than its `lstat` size is an error.
    fn copy_data(
        &mut self,
        file: OwnedFd,
        size: u64,
        may_grow: bool,
        relative: &[u8],
    ) -> Result<std::fs::File> {
        let mut file = std::fs::File::from(file);
        let mut copied: u64 = 0;
        while copied < size {
            let want = (size - copied).min(self.buffer.len() as u64) as usize;
            let n = file
                .read(&mut self.buffer[..want])
                .map_err(|source| Error::Io {
                    operation: "reading",
                    path: lossy(relative),
                    source,
                })?;
            if n == 0 {
                return Err(Error::SizeChanged {
                    path: lossy(relative),
                    expected: size,
                    actual: copied,
                });
            }
            let (out, buffer) = (&mut self.out, &self.buffer);
            out.put(&buffer[..n])?;
            copied += n as u64;
        }
        let mut probe = [0u8; 1];
        if may_grow && file.read(&mut probe).is_ok_and(|n| n > 0) {
            return Err(Error::SizeChanged {
                path: lossy(relative),
                expected: size,
                actual: size + 1,
            });
        }
        self.out
            .put(&[0u8; gotar::BLOCK_LEN][..gotar::padding(size)])?;
        Ok(file)
    }
}

fn io(operation: &'static str, path: &[u8], err: Errno) -> Error {
    Error::Io {
        operation,
        path: lossy(path),
        source: err.into(),
    }
}

fn prefix_or_root(prefix: &[u8]) -> &[u8] {
    if prefix.is_empty() {
        b"/"
    } else {
        prefix
    }
}

fn split_last(relative: &[u8]) -> (&[u8], &[u8]) {
    match relative.iter().rposition(|&b| b == b'/') {
        Some(idx) => (&relative[..=idx], &relative[idx + 1..]),
        None => (&relative[..0], relative),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn c_name(name: &[u8], relative: &[u8]) -> Result<CString> {
    CString::new(name).map_err(|_| io("naming", relative, Errno::INVAL))
}

fn open_root(path: &Path) -> Result<OwnedFd> {
    open_tree_root(path).map_err(|err| io("opening", path.as_os_str().as_encoded_bytes(), err))
}

/// Opens the directories of `parent` (relative, `/`-separated) one component at a time below
/// `root`, refusing symlinks.
fn open_path_dirs(root: BorrowedFd<'_>, parent: &[u8]) -> Result<OwnedFd> {
    let mut current = rustix::io::dup(root).map_err(|err| io("opening", b"/", err))?;
    for component in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if component == b"." || component == b".." {
            return Err(io("resolving", parent, Errno::INVAL));
        }
        let name = c_name(component, parent)?;
        current = open_dir_at(current.as_fd(), &name)
            .map_err(|err| io("opening directory", parent, err))?;
    }
    Ok(current)
}

/// A name as its directory listed it.
#[derive(Clone, Copy)]
struct Listed<'a> {
    dir: &'a Arc<OwnedFd>,
    name: &'a CStr,
    /// The type the listing gave, `None` when the name was not listed but given.
    file_type: Option<FileType>,
}

/// An entry as [`Packer::entry`] opened it: as a path only, or a regular file for reading.
enum Opened {
    Node(Node),
    File(Stat, OwnedFd),
}

impl Opened {
    fn stat(&self) -> &Stat {
        match self {
            Opened::Node(node) => node.stat(),
            Opened::File(stat, _) => stat,
        }
    }

    /// The path-only open, which every entry but a regular file opened for reading has.
    fn node(&self, relative: &[u8]) -> Result<&Node> {
        match self {
            Opened::Node(node) => Ok(node),
            Opened::File(..) => Err(io("opening", relative, Errno::NOTSUP)),
        }
    }
}

/// A `security.capability` value.
pub(crate) struct VfsCapability;

impl VfsCapability {
    /// The value as Docker exports it: revision 3 (with a root id) rewritten as revision 2.
    pub(crate) fn exported(mut value: Vec<u8>) -> Vec<u8> {
        if value.len() > VFS_CAP_REVISION_OFFSET
            && value[VFS_CAP_REVISION_OFFSET] == VFS_CAP_REVISION_3
        {
            // A root id only means something in the user namespace the file came from.
            value[VFS_CAP_REVISION_OFFSET] = VFS_CAP_REVISION_2;
            value.truncate(VFS_CAP_REVISION_2_LEN);
        }
        value
    }
}

/// The names of an entry's xattrs, listed with one `flistxattr`, so that the few xattrs an export
/// looks at are only read when present (most files have none).
struct XattrNames(Vec<u8>);

impl XattrNames {
    fn list(fd: BorrowedFd<'_>, relative: &[u8]) -> Result<XattrNames> {
        list_xattrs(fd)
            .map(XattrNames)
            .map_err(|err| io("listing xattrs of", relative, err))
    }

    fn has(&self, name: &str) -> bool {
        self.0
            .split(|&b| b == 0)
            .any(|listed| listed == name.as_bytes())
    }

    /// The value of `name`, `None` when it is not listed or gone since.
    fn get(&self, fd: BorrowedFd<'_>, name: &str, relative: &[u8]) -> Result<Option<Vec<u8>>> {
        if !self.has(name) {
            return Ok(None);
        }
        get_xattr(fd, name).map_err(|err| io("reading xattrs of", relative, err))
    }

    fn add_capability(
        &self,
        fd: BorrowedFd<'_>,
        header: &mut Header,
        relative: &[u8],
    ) -> Result<()> {
        if let Some(value) = self.get(fd, CAPABILITY_XATTR, relative)? {
            header
                .xattrs
                .insert(CAPABILITY_XATTR.to_string(), VfsCapability::exported(value));
        }
        Ok(())
    }

    fn is_opaque(&self, fd: BorrowedFd<'_>, relative: &[u8]) -> Result<bool> {
        for name in OPAQUE_XATTRS {
            if self
                .get(fd, name, relative)?
                .is_some_and(|value| value == b"y")
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn check_not_redirected(
        &self,
        fd: BorrowedFd<'_>,
        relative: &[u8],
        names: &[&'static str; 2],
    ) -> Result<()> {
        for name in names {
            if self.get(fd, name, relative)?.is_some() {
                return Err(Error::NeedsMergedExport {
                    path: lossy(relative),
                    xattr: name,
                });
            }
        }
        Ok(())
    }
}
