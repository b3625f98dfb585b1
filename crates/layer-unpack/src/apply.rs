//! The executor: carries out planned actions inside the layer directory through file
//! descriptors only.
//!
//! The layer directory is opened once (`O_PATH`). A member's parent directory is reached from
//! that root in one of two ways, and the last component is handled with `*at` calls that never
//! follow it:
//!
//! - Through the chain of directory descriptors kept from the previous member's parent
//!   (`Applier::chain`): the components the two parents share are reused, the rest are opened one at a
//!   time with `O_NOFOLLOW | O_DIRECTORY`, which fails on a symlink. A chain therefore only ever
//!   holds real directories reached without a symlink, from the root, by exactly the member's
//!   own components, and it stays what the path names because the stream is the only writer of
//!   a layer that is not yet published: the only changes to the namespace are this member's
//!   own, below the parent, never of the parent's ancestors (a member that removes or replaces
//!   an ancestor of the chain names that ancestor's parent as its own parent, which cuts the
//!   chain there first).
//! - Where that walk meets a symlink or a missing directory, by `syscompat::Resolver`
//!   (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or its userspace walk where the kernel
//!   has no `openat2`) from the root, so a symlink planted by an earlier member (`l -> /`,
//!   `l -> ../../..`) resolves inside the layer directory. Nothing resolved through a symlink is
//!   kept for the next member.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use syscompat::Resolver;

use crate::plan::{join, Action, Components, Metadata, Node};
use crate::writers::{WriterFailure, Writers, HANDOFF_MAX_LEN};

/// The size of the buffer file data is copied through.
const COPY_BUFFER_LEN: usize = 128 * 1024;

/// Mode of parent directories that are missing from the archive, as Docker creates them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// The xattr overlayfs reads to hide a directory's lower contents.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Xattr namespaces that control overlayfs itself; a layer tar must not smuggle them in.
const OVERLAY_XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// A failed filesystem operation.
#[derive(Debug)]
pub(crate) struct ApplyError {
    pub operation: &'static str,
    pub source: io::Error,
}

/// Why a member could not be applied: its own operation failed, or a writer thread failed on an
/// earlier member (named by its path).
#[derive(Debug)]
pub(crate) enum Failure {
    This(ApplyError),
    Earlier(Vec<u8>, ApplyError),
}

impl From<ApplyError> for Failure {
    fn from(error: ApplyError) -> Failure {
        Failure::This(error)
    }
}

impl From<WriterFailure> for Failure {
    fn from((entry, error): WriterFailure) -> Failure {
        Failure::Earlier(entry, error)
    }
}

fn fail(operation: &'static str) -> impl FnOnce(Errno) -> ApplyError {
    move |errno| ApplyError {
        operation,
        source: errno.into(),
    }
}

fn fail_io(operation: &'static str) -> impl FnOnce(io::Error) -> ApplyError {
    move |source| ApplyError { operation, source }
}

/// Applies actions below one layer directory.
pub(crate) struct Applier {
    root: Arc<OwnedFd>,
    resolver: Resolver,
    /// The previous member's parent directory as the descriptors of its components, each opened
    /// from the one before without following symlinks (see the module documentation).
    chain: Vec<(Vec<u8>, Arc<OwnedFd>)>,
    /// Docker's `size` of what was written so far, as the stream declares it: regular files'
    /// lengths and symlinks' target lengths (hardlinks add no inode).
    stream_size: u64,
    /// Whether a member removed or replaced something in the layer: then `stream_size` may count
    /// what is no longer there.
    replaced: bool,
    /// Directories whose times are set once everything else is written (creating entries in a
    /// directory changes its mtime), in archive order.
    /// Each path is kept joined, one allocation per directory.
    dir_times: Vec<(Box<[u8]>, Timestamps)>,
    copy_buffer: Vec<u8>,
    /// Threads that finish small files; `None` writes everything on this thread.
    writers: Option<Writers>,
}

impl Applier {
    /// Opens the layer directory; with `n_writers > 0`, small files are finished by that many
    /// writer threads (see `writers`).
    pub fn open(diff_dir: &Path, n_writers: usize, resolver: Resolver) -> io::Result<Applier> {
        let root = syscompat::dir::open_dir_path(diff_dir)?;
        let writers = match n_writers {
            0 => None,
            n => Some(Writers::start(n)?),
        };
        Ok(Applier {
            root: Arc::new(root),
            resolver,
            chain: Vec::new(),
            stream_size: 0,
            replaced: false,
            dir_times: Vec::new(),
            copy_buffer: vec![0; COPY_BUFFER_LEN],
            writers,
        })
    }

    /// Carries out one action; `data` yields the member's data (regular files read it).
    pub fn apply(&mut self, action: &Action, data: &mut dyn Read) -> Result<(), Failure> {
        match action {
            Action::Skip(_) => Ok(()),
            Action::Opaque { dir } => Ok(self.set_opaque(dir)?),
            Action::Whiteout {
                parent,
                name,
                uid,
                gid,
            } => Ok(self.whiteout(parent, name, *uid, *gid)?),
            Action::Create {
                parent,
                name,
                node,
                meta,
            } => self.create(parent, name, node, meta, data),
        }
    }

    /// Docker's `size` of the layer (format.md §3.2) as the members declared it, when no member
    /// removed or replaced anything already written (then only a walk of the layer can tell).
    pub fn stream_size(&self) -> Option<u64> {
        (!self.replaced).then_some(self.stream_size)
    }

    /// Waits for the writer threads, then sets the times of all directories, resolving each
    /// again by name. An error comes with the path of the file or directory.
    pub fn finish(mut self) -> Result<(), (Vec<u8>, ApplyError)> {
        if let Some(writers) = self.writers.take() {
            writers.finish()?;
        }
        self.chain.clear();
        for (path, times) in &self.dir_times {
            let (parent, name): (&[u8], &[u8]) = match path.iter().rposition(|&b| b == b'/') {
                Some(idx) => (&path[..idx], &path[idx + 1..]),
                None => (b".", path),
            };
            let parent_fd = match self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                // A later member removed the directory; there is nothing to set.
                Err(Errno::NOENT) => continue,
                Err(errno) => {
                    return Err((
                        path.to_vec(),
                        fail("resolve directory to set its times")(errno),
                    ))
                }
            };
            match rustix::fs::utimensat(&parent_fd, name, times, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(errno) => return Err((path.to_vec(), fail("set directory times")(errno))),
            }
        }
        Ok(())
    }

    fn set_opaque(&mut self, dir: &Components) -> Result<(), ApplyError> {
        // Like Docker, the directory is created when the archive did not list it.
        self.parent_dir(dir)?;
        let fd = self
            .open_in_root(&join(dir), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(fail("open opaque directory"))?;
        rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(fail("set trusted.overlay.opaque"))
    }

    fn whiteout(
        &mut self,
        parent: &Components,
        name: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(), ApplyError> {
        let parent_fd = self.parent_dir(parent)?;
        self.forget(parent, name);
        if remove_all(parent_fd.as_fd(), name).map_err(fail("remove whiteout target"))? {
            self.replaced = true;
        }
        // An overlay whiteout is a character device with device number 0/0 and mode 0.
        rustix::fs::mknodat(
            &parent_fd,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(fail("create whiteout device"))?;
        chown_at(parent_fd.as_fd(), name, uid, gid).map_err(fail("chown whiteout"))
    }

    fn create(
        &mut self,
        parent: &Components,
        name: &[u8],
        node: &Node,
        meta: &Metadata,
        data: &mut dyn Read,
    ) -> Result<(), Failure> {
        if let (Node::Hardlink { .. }, Some(writers)) = (node, &mut self.writers) {
            // Docker changes the linked inode's mode and times through the link; the target's
            // own metadata must be final before that.
            writers.barrier()?;
        }
        let parent_fd = self.parent_dir(parent)?;
        let parent_fd = parent_fd.as_fd();
        let create_mode = Mode::from_raw_mode(meta.mode & 0o777);
        // Most members name an entry that does not exist yet: it is created straight away, and
        // what is in the way is looked at only when the creation reports `EEXIST`. Hardlinks
        // always look first, so that a link replacing its own target fails as in Docker.
        let first_try = match node {
            Node::Hardlink { .. } => Err(Errno::EXIST),
            _ => make_node(parent_fd, name, node, create_mode),
        };
        let made = match first_try {
            Ok(made) => made,
            Err(Errno::EXIST) => {
                let existing = match rustix::fs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(stat) => Some(FileType::from_raw_mode(stat.st_mode)),
                    Err(Errno::NOENT) => None,
                    Err(errno) => return Err(fail("inspect existing entry")(errno).into()),
                };
                let keep_dir = existing == Some(FileType::Directory) && *node == Node::Dir;
                if existing.is_some() && !keep_dir {
                    self.forget(parent, name);
                    remove_all(parent_fd, name).map_err(fail("remove existing entry"))?;
                    self.replaced = true;
                }
                match node {
                    _ if keep_dir => Made::Other,
                    Node::Hardlink { .. } => Made::Other,
                    _ => make_node(parent_fd, name, node, create_mode)
                        .map_err(fail(node_operation(node)))?,
                }
            }
            Err(errno) => return Err(fail(node_operation(node))(errno).into()),
        };
        match node {
            Node::Dir => {
                let fd = rustix::fs::openat(
                    parent_fd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(fail("open directory"))?;
                rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                    .map_err(fail("chown directory"))?;
                set_xattrs(XattrTarget::Fd(fd.as_fd()), &meta.xattrs)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                    .map_err(fail("chmod directory"))?;
                let mut components = parent.clone();
                components.push(name.to_vec());
                self.dir_times
                    .push((join(&components).into_boxed_slice(), dir_times(meta)));
            }
            Node::File | Node::SparseFile { .. } => {
                let Made::File(fd) = made else {
                    unreachable!("make_node opens every regular file it creates")
                };
                if let (Node::File, Some(writers)) = (node, &mut self.writers) {
                    // A small file goes to a writer thread with all its data, read into the
                    // buffer of the batch it goes with.
                    let buffer = writers.data_buffer();
                    let start = buffer.len();
                    let read = data.take(HANDOFF_MAX_LEN as u64 + 1).read_to_end(buffer);
                    let head_len = buffer.len() - start;
                    if let Err(error) = read {
                        buffer.truncate(start);
                        return Err(fail_io("read file data")(error).into());
                    }
                    if head_len <= HANDOFF_MAX_LEN {
                        self.stream_size += head_len as u64;
                        writers.submit(fd, start, meta, parent, name)?;
                        return Ok(());
                    }
                    let file = File::from(fd);
                    let mut holes = HoleWriter::new(&file);
                    let written = holes.write(&buffer[start..]);
                    buffer.truncate(start);
                    written.map_err(fail_io("write file data"))?;
                    let rest = self.write_data(holes, data)?;
                    self.stream_size += head_len as u64 + rest;
                    finish_file(file.as_fd(), meta)?;
                    return Ok(());
                }
                let file = File::from(fd);
                let len = match node {
                    Node::SparseFile {
                        fragments,
                        real_size,
                    } => {
                        self.write_sparse(&file, data, fragments, *real_size)?;
                        *real_size
                    }
                    _ => self.write_data(HoleWriter::new(&file), data)?,
                };
                self.stream_size += len;
                finish_file(file.as_fd(), meta)?;
            }
            Node::Symlink { target } => {
                // A symlink's size is the length of its target.
                self.stream_size += target.len() as u64;
                chown_at(parent_fd, name, meta.uid, meta.gid).map_err(fail("chown symlink"))?;
                if !meta.xattrs.is_empty() {
                    skipped_symlink_xattrs(name);
                }
                rustix::fs::utimensat(
                    parent_fd,
                    name,
                    &symlink_times(meta),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(fail("set symlink times"))?;
            }
            Node::Hardlink { target } => {
                let target_fd = self
                    .open_in_root(&join(target), OFlags::PATH | OFlags::NOFOLLOW)
                    .map_err(fail("open hardlink target"))?;
                let target_type = FileType::from_raw_mode(
                    rustix::fs::fstat(&target_fd)
                        .map_err(fail("inspect hardlink target"))?
                        .st_mode,
                );
                if target_type == FileType::Directory {
                    return Err(Failure::This(ApplyError {
                        operation: "create hardlink",
                        source: io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "hardlink target is a directory",
                        ),
                    }));
                }
                rustix::fs::linkat(&target_fd, "", parent_fd, name, AtFlags::EMPTY_PATH)
                    .map_err(fail("create hardlink"))?;
                chown_at(parent_fd, name, meta.uid, meta.gid).map_err(fail("chown hardlink"))?;
                // Docker changes mode and times only when the link does not point to a symlink
                // (its chmod and chtimes would follow it); xattrs of symlinks are skipped here
                // as for symlink members. The new name is the inode, changed without opening it.
                if target_type != FileType::Symlink {
                    finish_node_at(
                        parent_fd,
                        name,
                        meta,
                        ["chmod hardlink", "set hardlink times"],
                    )?;
                } else if !meta.xattrs.is_empty() {
                    skipped_symlink_xattrs(name);
                }
            }
            Node::CharDevice { .. } | Node::BlockDevice { .. } | Node::Fifo => {
                chown_at(parent_fd, name, meta.uid, meta.gid).map_err(fail("chown device node"))?;
                // Opening a device could have side effects, so the node is changed through its
                // parent directory and name, never followed.
                finish_node_at(
                    parent_fd,
                    name,
                    meta,
                    ["chmod device node", "set device node times"],
                )?;
            }
        }
        Ok(())
    }

    /// Copies the rest of `data` into the file, leaving blocks of zeros as holes; returns the
    /// number of bytes copied.
    fn write_data(
        &mut self,
        mut file: HoleWriter<'_>,
        data: &mut dyn Read,
    ) -> Result<u64, ApplyError> {
        let mut copied: u64 = 0;
        loop {
            let n_read = match data.read(&mut self.copy_buffer) {
                Ok(0) => break,
                Ok(n_read) => n_read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(fail_io("read file data")(source)),
            };
            file.write(&self.copy_buffer[..n_read])
                .map_err(fail_io("write file data"))?;
            copied += n_read as u64;
        }
        file.finish()
            .map_err(fail_io("extend file over its last hole"))?;
        Ok(copied)
    }

    /// Writes each data fragment at its offset and extends the file to its real size, leaving
    /// holes in between.
    fn write_sparse(
        &mut self,
        file: &File,
        data: &mut dyn Read,
        fragments: &[(u64, u64)],
        real_size: u64,
    ) -> Result<(), ApplyError> {
        for &(offset, len) in fragments {
            let mut done: u64 = 0;
            while done < len {
                let want = usize::try_from(len - done)
                    .unwrap_or(usize::MAX)
                    .min(self.copy_buffer.len());
                let n_read = match data.read(&mut self.copy_buffer[..want]) {
                    Ok(0) => {
                        return Err(ApplyError {
                            operation: "read sparse file data",
                            source: io::ErrorKind::UnexpectedEof.into(),
                        })
                    }
                    Ok(n_read) => n_read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => return Err(fail_io("read sparse file data")(source)),
                };
                file.write_all_at(&self.copy_buffer[..n_read], offset + done)
                    .map_err(fail_io("write sparse file data"))?;
                done += n_read as u64;
            }
        }
        file.set_len(real_size)
            .map_err(fail_io("extend sparse file"))
    }

    /// Opens `path` (relative, `/`-separated) with every symlink resolved inside the root.
    fn open_in_root(&self, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        self.resolver.open(self.root.as_fd(), path, flags)
    }

    /// The directory `parent`, from the chain of the previous member's parent where it can be
    /// walked without meeting a symlink or a missing directory, else resolved inside the root
    /// (and created where missing).
    fn parent_dir(&mut self, parent: &[Vec<u8>]) -> Result<Arc<OwnedFd>, ApplyError> {
        let shared = self
            .chain
            .iter()
            .zip(parent)
            .take_while(|((kept, _), component)| kept == *component)
            .count();
        self.chain.truncate(shared);
        while let Some(component) = parent.get(self.chain.len()) {
            if !is_plain_component(component) {
                break;
            }
            let base = self.chain.last().map_or(&self.root, |(_, fd)| fd);
            // Fails with ENOTDIR on a symlink and ENOENT on a missing directory: both go the way
            // of the resolver, which follows the one inside the root and creates the other.
            match rustix::fs::openat(
                base.as_fd(),
                component.as_slice(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => self.chain.push((component.clone(), Arc::new(fd))),
                Err(_) => break,
            }
        }
        if self.chain.len() == parent.len() {
            return Ok(Arc::clone(
                self.chain.last().map_or(&self.root, |(_, fd)| fd),
            ));
        }
        self.resolve_parent(parent).map(Arc::new)
    }

    /// Forgets the chain below `parent/name`, which a member is about to remove or replace.
    fn forget(&mut self, parent: &[Vec<u8>], name: &[u8]) {
        let depth = parent.len();
        if self.chain.len() > depth
            && self.chain[depth].0 == name
            && self.chain[..depth]
                .iter()
                .zip(parent)
                .all(|((kept, _), component)| kept == component)
        {
            self.chain.truncate(depth);
        }
    }

    /// Resolves the directory `parent` inside the root, creating missing directories (mode
    /// 0755, owned by root) as Docker does.
    fn resolve_parent(&self, parent: &[Vec<u8>]) -> Result<OwnedFd, ApplyError> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.open_in_root(&join(parent), dir_flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(errno) => return Err(fail("resolve parent directory")(errno)),
        }
        let mut dir = self
            .open_in_root(b".", dir_flags)
            .map_err(fail("open layer root"))?;
        for idx in 0..parent.len() {
            let prefix = join(&parent[..=idx]);
            match self.open_in_root(&prefix, dir_flags) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(errno) => return Err(fail("resolve parent directory")(errno)),
            }
            let component = parent[idx].as_slice();
            match rustix::fs::mkdirat(&dir, component, Mode::from_raw_mode(IMPLICIT_DIR_MODE)) {
                Ok(()) => {
                    let created = rustix::fs::openat(
                        &dir,
                        component,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(fail("open created parent directory"))?;
                    // The process umask must not change the mode Docker gives these directories.
                    rustix::fs::fchown(&created, Some(uid(0)), Some(gid(0)))
                        .map_err(fail("chown created parent directory"))?;
                    rustix::fs::fchmod(&created, Mode::from_raw_mode(IMPLICIT_DIR_MODE))
                        .map_err(fail("chmod created parent directory"))?;
                }
                // A dangling symlink is in the way; resolving it below fails with ENOENT.
                Err(Errno::EXIST) => {}
                Err(errno) => return Err(fail("create parent directory")(errno)),
            }
            dir = self
                .open_in_root(&prefix, dir_flags)
                .map_err(fail("resolve created parent directory"))?;
        }
        Ok(dir)
    }
}

/// Gives a written regular file its owner, xattrs, mode and times, in Docker's order (chown
/// first: it clears setuid and setgid bits that the chmod then sets).
pub(crate) fn finish_file(file: BorrowedFd<'_>, meta: &Metadata) -> Result<(), ApplyError> {
    rustix::fs::fchown(file, Some(uid(meta.uid)), Some(gid(meta.gid)))
        .map_err(fail("chown file"))?;
    set_xattrs(XattrTarget::Fd(file), &meta.xattrs)?;
    rustix::fs::fchmod(file, Mode::from_raw_mode(meta.mode)).map_err(fail("chmod file"))?;
    rustix::fs::futimens(file, &file_times(meta)).map_err(fail("set file times"))
}

/// What [`make_node`] created.
enum Made {
    /// A regular file, open for writing.
    File(OwnedFd),
    Other,
}

/// Creates the node of a member (not hardlinks) with `*at` calls that never follow `name`;
/// `EEXIST` when something is in the way.
fn make_node(parent: BorrowedFd<'_>, name: &[u8], node: &Node, mode: Mode) -> Result<Made, Errno> {
    match node {
        Node::Dir => rustix::fs::mkdirat(parent, name, mode).map(|()| Made::Other),
        Node::File | Node::SparseFile { .. } => rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )
        .map(Made::File),
        Node::Symlink { target } => {
            rustix::fs::symlinkat(target.as_slice(), parent, name).map(|()| Made::Other)
        }
        Node::CharDevice { major, minor } | Node::BlockDevice { major, minor } => {
            let file_type = if matches!(node, Node::CharDevice { .. }) {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let dev = rustix::fs::makedev(*major, *minor);
            rustix::fs::mknodat(parent, name, file_type, mode, dev).map(|()| Made::Other)
        }
        Node::Fifo => {
            rustix::fs::mknodat(parent, name, FileType::Fifo, mode, 0).map(|()| Made::Other)
        }
        Node::Hardlink { .. } => Err(Errno::INVAL),
    }
}

/// The operation named in the error when creating `node` fails.
fn node_operation(node: &Node) -> &'static str {
    match node {
        Node::Dir => "create directory",
        Node::File | Node::SparseFile { .. } => "create file",
        Node::Symlink { .. } => "create symlink",
        Node::Hardlink { .. } => "create hardlink",
        Node::CharDevice { .. } | Node::BlockDevice { .. } | Node::Fifo => "create device node",
    }
}

/// Where xattrs are set: a descriptor of the opened node (files, directories), or a name in a
/// directory that is not followed (device nodes, FIFOs, hardlinks).
enum XattrTarget<'fd> {
    Fd(BorrowedFd<'fd>),
    At(BorrowedFd<'fd>, &'fd [u8]),
}

/// Logs that a symlink's xattrs from the archive are not applied. Docker's layers never carry
/// any (it exports only `security.capability`, which a symlink cannot have), and leaving them
/// out keeps symlinks to creation, owner and times.
fn skipped_symlink_xattrs(name: &[u8]) {
    tracing::warn!(
        name = %String::from_utf8_lossy(name),
        "xattrs on a symlink are not applied"
    );
}

/// Sets the member's xattrs, ignoring `ENOTSUP` and `EPERM` as Docker does, and dropping the
/// overlayfs control namespaces with a warning.
fn set_xattrs(target: XattrTarget<'_>, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ApplyError> {
    for (key, value) in xattrs {
        if OVERLAY_XATTR_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            tracing::warn!(
                xattr = %String::from_utf8_lossy(key),
                "dropping overlayfs xattr from layer tar"
            );
            continue;
        }
        let result = match target {
            XattrTarget::Fd(fd) => {
                rustix::fs::fsetxattr(fd, key.as_slice(), value, XattrFlags::empty())
            }
            XattrTarget::At(dir, name) => crate::sys::setxattr_nofollow(dir, name, key, value),
        };
        match result {
            Ok(()) => {}
            Err(errno @ (Errno::NOTSUP | Errno::PERM)) => {
                tracing::debug!(
                    xattr = %String::from_utf8_lossy(key),
                    %errno,
                    "ignoring xattr the filesystem refuses"
                );
            }
            Err(errno) => return Err(fail("set xattr")(errno)),
        }
    }
    Ok(())
}

/// Sets the xattrs, mode and times of `parent/name` through its parent and name, never following
/// it; `operations` name the chmod and the times steps in errors.
fn finish_node_at(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &Metadata,
    [chmod_operation, times_operation]: [&'static str; 2],
) -> Result<(), ApplyError> {
    set_xattrs(XattrTarget::At(parent, name), &meta.xattrs)?;
    crate::sys::chmod_nofollow(parent, name, meta.mode).map_err(fail(chmod_operation))?;
    rustix::fs::utimensat(parent, name, &file_times(meta), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(fail(times_operation))
}

fn chown_at(parent: BorrowedFd<'_>, name: &[u8], owner: u32, group: u32) -> Result<(), Errno> {
    rustix::fs::chownat(
        parent,
        name,
        Some(uid(owner)),
        Some(gid(group)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

fn uid(raw: u32) -> Uid {
    Uid::from_raw(raw)
}

fn gid(raw: u32) -> Gid {
    Gid::from_raw(raw)
}

/// Removes `name` in `parent` and, for a directory, everything below it, without following
/// symlinks. A missing entry is not an error; returns whether there was one.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &[u8]) -> Result<bool, Errno> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) => return Ok(true),
        Err(Errno::NOENT) => return Ok(false),
        Err(Errno::ISDIR) => {}
        Err(errno) => return Err(errno),
    }
    let dir = syscompat::dir::open_dir_at(parent, name)?;
    for (child, _) in syscompat::dir::read_dir(dir.as_fd())? {
        remove_all(dir.as_fd(), child.as_bytes())?;
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(errno) => Err(errno),
    }
}

/// A component the chain may open as it is: not empty, `.` or `..`, and without a `/` (the
/// planner's cleaned names never are; checked so that the chain cannot climb whatever it gets).
fn is_plain_component(component: &[u8]) -> bool {
    !component.is_empty()
        && component != b"."
        && component != b".."
        && !component.contains(&b'/')
        && !component.contains(&0)
}

/// Times for files, devices, FIFOs and hardlinks: atime is never before mtime, and times
/// outside what Go's `os.Chtimes` accepts fall back to the epoch (Docker's `system.Chtimes`).
fn file_times(meta: &Metadata) -> Timestamps {
    let atime = meta.atime.map_or(meta.mtime, |atime| atime.max(meta.mtime));
    Timestamps {
        last_access: timespec(clamp_to_epoch(atime)),
        last_modification: timespec(clamp_to_epoch(meta.mtime)),
    }
}

/// Times for directories, set at the end: the header's atime as is (absent means the epoch).
fn dir_times(meta: &Metadata) -> Timestamps {
    Timestamps {
        last_access: timespec(clamp_to_epoch(meta.atime.unwrap_or(0))),
        last_modification: timespec(clamp_to_epoch(meta.mtime)),
    }
}

/// Times for symlinks, which Docker sets with `lutimes` and no clamping.
fn symlink_times(meta: &Metadata) -> Timestamps {
    let atime = meta.atime.map_or(meta.mtime, |atime| atime.max(meta.mtime));
    Timestamps {
        last_access: timespec(atime),
        last_modification: timespec(meta.mtime),
    }
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Times before the epoch or beyond the largest `int64` nanosecond count become the epoch.
fn clamp_to_epoch(nanos: i128) -> i128 {
    if nanos < 0 || nanos > i128::from(i64::MAX) {
        0
    } else {
        nanos
    }
}

fn timespec(nanos: i128) -> Timespec {
    let secs = nanos.div_euclid(NANOS_PER_SEC);
    let secs = i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX });
    Timespec {
        tv_sec: secs,
        // The remainder is in 0..1e9 and fits.
        tv_nsec: nanos.rem_euclid(NANOS_PER_SEC) as _,
    }
}

/// Writes a new, empty file sequentially, leaving every filesystem block that would hold only
/// zeros unwritten: a hole, as `cp --sparse=auto` does. A file that a container made with
/// `truncate -s 1T` then costs the host no more than it cost the container.
pub(crate) struct HoleWriter<'a> {
    file: &'a File,
    /// Where the next byte goes.
    offset: u64,
    /// Where the written part ends; the file is extended to `offset` at the end.
    written_end: u64,
}

/// The unit of holes: zero runs are left out in whole blocks of this size, aligned in the file.
const HOLE_BLOCK: u64 = 4096;

impl<'a> HoleWriter<'a> {
    pub(crate) fn new(file: &'a File) -> HoleWriter<'a> {
        HoleWriter {
            file,
            offset: 0,
            written_end: 0,
        }
    }

    pub(crate) fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
        // The buffer is cut at the file's block boundaries. Pieces that hold only zeros are
        // skipped, whole or partial (the file is new: what is not written reads as zeros, and a
        // block none of whose pieces is written stays a hole); each run of the others is
        // written with one call.
        while !buf.is_empty() {
            let mut run = 0usize;
            let mut skip = 0usize;
            while run + skip < buf.len() {
                let at = run + skip;
                let piece = self.piece_len(at, buf.len() - at);
                let zero = is_zero(&buf[at..at + piece]);
                if run > 0 && zero {
                    break;
                }
                if zero {
                    skip += piece;
                } else if skip > 0 {
                    break;
                } else {
                    run += piece;
                }
            }
            if skip > 0 {
                self.offset += skip as u64;
                buf = &buf[skip..];
            } else {
                self.file.write_all_at(&buf[..run], self.offset)?;
                self.offset += run as u64;
                self.written_end = self.offset;
                buf = &buf[run..];
            }
        }
        Ok(())
    }

    /// The length of the piece at `at` bytes into the current write: up to the next block
    /// boundary of the file.
    fn piece_len(&self, at: usize, left: usize) -> usize {
        let position = self.offset + at as u64;
        ((HOLE_BLOCK - position % HOLE_BLOCK) as usize).min(left)
    }

    /// Gives the file its full length when it ends in a hole.
    pub(crate) fn finish(self) -> io::Result<()> {
        if self.offset > self.written_end {
            self.file.set_len(self.offset)?;
        }
        Ok(())
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(16);
    let zero_words = words
        .by_ref()
        .all(|word| u128::from_ne_bytes(word.try_into().unwrap_or([1; 16])) == 0);
    zero_words && words.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(atime: Option<i128>, mtime: i128) -> Metadata {
        Metadata {
            uid: 0,
            gid: 0,
            mode: 0o644,
            atime,
            mtime,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn times_follow_docker() {
        let times = file_times(&meta(None, 5_500_000_000));
        assert_eq!(
            (times.last_access.tv_sec, times.last_access.tv_nsec),
            (5, 500_000_000)
        );
        let times = file_times(&meta(Some(1_000_000_000), 5_000_000_000));
        assert_eq!(times.last_access.tv_sec, 5);
        let times = file_times(&meta(Some(9_000_000_000), 5_000_000_000));
        assert_eq!(times.last_access.tv_sec, 9);
        let times = file_times(&meta(None, -5_000_000_000));
        assert_eq!(times.last_modification.tv_sec, 0);
        let times = dir_times(&meta(None, 7_000_000_000));
        assert_eq!(
            (times.last_access.tv_sec, times.last_modification.tv_sec),
            (0, 7)
        );
        let times = symlink_times(&meta(None, -1_500_000_000));
        assert_eq!(
            (
                times.last_modification.tv_sec,
                times.last_modification.tv_nsec
            ),
            (-2, 500_000_000)
        );
    }

    #[test]
    fn zero_blocks_become_holes_and_the_content_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = File::create(&path).expect("create");
        // 8 MiB of zeros between data, written in odd pieces, ending in zeros.
        let mut expected = vec![0u8; 10 << 20];
        expected[..100].fill(7);
        expected[9 << 20..(9 << 20) + 5000].fill(9);
        let mut writer = HoleWriter::new(&file);
        for piece in expected.chunks(12_345) {
            writer.write(piece).expect("write");
        }
        writer.finish().expect("finish");
        drop(file);
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.len(), expected.len() as u64);
        // Three blocks of data (the second run straddles a block boundary), not 10 MiB.
        assert!(meta.blocks() * 512 <= 64 * 1024, "{} blocks", meta.blocks());
    }
}
