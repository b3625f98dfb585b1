//! Opening a path inside a root directory, with symlinks and `..` resolved as if the root were
//! `/` (the semantics of `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`).
//!
//! Where the kernel has `openat2` (Linux 5.6) it does the walk. Elsewhere the same walk is done
//! in userspace, one component at a time from the root's descriptor:
//!
//! - every component is opened with `O_PATH | O_NOFOLLOW` relative to the descriptor of the
//!   directory before it, so nothing is ever resolved by the kernel across a symlink;
//! - a symlink is read (`readlinkat`) and its target's components are walked in its place; an
//!   absolute target starts again at the root;
//! - `..` goes back to the directory descriptor the walk came from, and at the root stays at the
//!   root (the clamp): the walk keeps its own stack of descriptors and never opens `..`;
//! - after 40 symlinks (the kernel's `MAXSYMLINKS`) the walk fails with `ELOOP`;
//! - a magic link (in procfs) is never followed as one: its text is walked inside the root like
//!   any other target.
//!
//! This is the design of libpathrs's userspace resolver and of Go's filepath-securejoin, done on
//! descriptors rather than strings; it was chosen over a chroot or pivot_root helper process (as
//! moby's archive code does) because it needs no process, no mount namespace and no
//! `CAP_SYS_CHROOT`, and it resolves per call, so no resolved path outlives the call. A walk
//! costs one `openat` per component where `openat2` costs one call per path.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How often `openat2` is retried when it reports `EAGAIN`, which `RESOLVE_IN_ROOT` does when a
/// concurrent rename could have let a `..` escape (see openat2(2)).
const OPENAT2_EAGAIN_RETRIES: u32 = 16;

/// The kernel's limit on symlinks followed in one lookup (`MAXSYMLINKS`, include/linux/namei.h).
const MAX_SYMLINKS: u32 = 40;

/// The kernel copies a path argument into a `PATH_MAX` (4096) buffer, NUL included, and refuses
/// a longer one with `ENAMETOOLONG` (`getname` in fs/namei.c); the walk refuses the same paths,
/// although it could walk them component by component, so that both resolvers take and refuse
/// the same names. The tree walks of `layer-pack` and `diff` stop at the same length, as
/// Docker's (`lstat` of every path) do.
pub const PATH_MAX: usize = 4096;

/// How paths are resolved inside a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`. A call that finds `openat2` missing or
    /// refused (`ENOSYS`, `EPERM`) walks in userspace instead.
    #[default]
    Kernel,
    /// The userspace walk, always.
    Userspace,
}

impl Resolver {
    /// The resolver this kernel offers, found by trying `openat2` once on `/`.
    pub fn probe() -> Resolver {
        let root = rustix::fs::CWD;
        match rustix::fs::openat2(
            root,
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(errno) if crate::is_unavailable(errno) => Resolver::Userspace,
            _ => Resolver::Kernel,
        }
    }

    /// How `ovl info` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Resolver::Kernel => "openat2 (RESOLVE_IN_ROOT)",
            Resolver::Userspace => "userspace (O_PATH|O_NOFOLLOW walk)",
        }
    }

    /// Opens `path` (`/`-separated; absolute or relative, both taken from `root`) with `flags`
    /// (`O_CLOEXEC` is added). Every symlink on the way, and the last component unless `flags`
    /// has `O_NOFOLLOW`, is resolved inside `root`; `..` never leaves it.
    pub fn open(self, root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        if self == Resolver::Kernel {
            let mut attempts = 0;
            loop {
                match rustix::fs::openat2(
                    root,
                    path,
                    flags | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Err(Errno::AGAIN) if attempts < OPENAT2_EAGAIN_RETRIES => attempts += 1,
                    Err(errno) if crate::is_unavailable(errno) => break,
                    result => return result,
                }
            }
        }
        open_walking(root, path, flags | OFlags::CLOEXEC)
    }

    /// Opens `path` inside `root` for reading only if it is a regular file (the last component
    /// is not followed): the name is resolved to an `O_PATH` descriptor, described, and only a
    /// regular file is reopened. Anything else gives the node and `None`, without being opened.
    pub fn open_regular(
        self,
        root: BorrowedFd<'_>,
        path: &[u8],
    ) -> Result<(crate::Node, Option<OwnedFd>), Errno> {
        let fd = self.open(root, path, OFlags::PATH | OFlags::NOFOLLOW)?;
        crate::Node::from_path_fd(fd)?.with_regular()
    }
}

/// The userspace walk described in the module documentation.
fn open_walking(root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    // As for `openat2`, an empty path names nothing.
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    // Directories below the root that the walk went through, innermost last.
    let mut dirs: Vec<OwnedFd> = Vec::new();
    let mut pending = Pending::new(path);
    let mut n_symlinks = 0;
    while let Some(component) = pending.pop() {
        let component = pending.text(component);
        if component == b".." {
            // The clamp: `..` of the root is the root.
            dirs.pop();
            continue;
        }
        let dir = dirs.last().map_or(root, |fd| fd.as_fd());
        let target = if !pending.is_empty() {
            let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, component, step, Mode::empty()) {
                Ok(fd) => {
                    dirs.push(fd);
                    continue;
                }
                // A symlink (or something that is not a directory at all).
                Err(errno @ (Errno::NOTDIR | Errno::LOOP)) => read_symlink(dir, component, errno)?,
                Err(errno) => return Err(errno),
            }
        } else {
            // The last component.
            let follows = !flags.contains(OFlags::NOFOLLOW);
            match rustix::fs::openat(dir, component, flags | OFlags::NOFOLLOW, Mode::empty()) {
                // `O_PATH | O_NOFOLLOW` opens a symlink itself; anything else cannot be one.
                Ok(fd) if follows && flags.contains(OFlags::PATH) => {
                    let stat = rustix::fs::fstat(&fd)?;
                    if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
                        return Ok(fd);
                    }
                    read_symlink(dir, component, Errno::LOOP)?
                }
                Ok(fd) => return Ok(fd),
                Err(errno @ (Errno::NOTDIR | Errno::LOOP)) if follows => {
                    read_symlink(dir, component, errno)?
                }
                Err(errno) => return Err(errno),
            }
        };
        // Walk the symlink's target in its place: from the root when it is absolute.
        n_symlinks += 1;
        if n_symlinks > MAX_SYMLINKS {
            return Err(Errno::LOOP);
        }
        if target.is_empty() {
            return Err(Errno::NOENT);
        }
        if target.starts_with(b"/") {
            dirs.clear();
        }
        pending.push_target(target);
    }
    // The path ended on a directory of the walk: empty, `.`, or ending in `..`.
    let dir = dirs.last().map_or(root, |fd| fd.as_fd());
    rustix::fs::openat(dir, ".", flags, Mode::empty())
}

/// The components still to walk, as byte ranges of the path or of a symlink target read on the
/// way, so that a walk allocates per symlink rather than per component.
struct Pending<'a> {
    path: &'a [u8],
    targets: Vec<Vec<u8>>,
    /// (text: `None` for the path, else an index into `targets`; start; end), next one last.
    stack: Vec<(Option<usize>, usize, usize)>,
}

impl<'a> Pending<'a> {
    fn new(path: &'a [u8]) -> Pending<'a> {
        let mut pending = Pending {
            path,
            targets: Vec::new(),
            stack: Vec::new(),
        };
        pending.push_components(None);
        pending
    }

    fn pop(&mut self) -> Option<(Option<usize>, usize, usize)> {
        self.stack.pop()
    }

    fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    fn text(&self, (source, start, end): (Option<usize>, usize, usize)) -> &[u8] {
        match source {
            None => &self.path[start..end],
            Some(idx) => &self.targets[idx][start..end],
        }
    }

    fn push_target(&mut self, target: Vec<u8>) {
        self.targets.push(target);
        self.push_components(Some(self.targets.len() - 1));
    }

    /// Pushes the components of a text so that its first is popped first; empty and `.`
    /// components are dropped.
    fn push_components(&mut self, source: Option<usize>) {
        let text = match source {
            None => self.path,
            Some(idx) => self.targets[idx].as_slice(),
        };
        let first = self.stack.len();
        let mut start = 0;
        for end in text
            .iter()
            .enumerate()
            .filter(|(_, &byte)| byte == b'/')
            .map(|(idx, _)| idx)
            .chain(std::iter::once(text.len()))
        {
            let component = &text[start..end];
            if !component.is_empty() && component != b"." {
                self.stack.push((source, start, end));
            }
            start = end + 1;
        }
        self.stack[first..].reverse();
    }
}

/// The target of `name` in `dir` if it is a symlink; otherwise `not_a_link`, the error opening
/// it gave.
fn read_symlink(dir: BorrowedFd<'_>, name: &[u8], not_a_link: Errno) -> Result<Vec<u8>, Errno> {
    match rustix::fs::readlinkat(dir, name, Vec::new()) {
        Ok(target) => Ok(target.into_bytes()),
        Err(Errno::INVAL) => Err(not_a_link),
        Err(errno) => Err(errno),
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// A root with a decoy tree outside it: every escape would land on `outside/...`.
    struct Fixture {
        _temp: tempfile::TempDir,
        root: OwnedFd,
    }

    fn fixture() -> Fixture {
        let temp = tempfile::tempdir().expect("tempdir");
        let top = temp.path();
        let root = top.join("root");
        for dir in ["root/etc", "root/a/b", "root/dir", "etc", "outside"] {
            std::fs::create_dir_all(top.join(dir)).expect("mkdir");
        }
        std::fs::write(root.join("etc/passwd"), "inside").expect("write");
        std::fs::write(top.join("etc/passwd"), "outside").expect("write");
        std::fs::write(root.join("a/b/file"), "file").expect("write");
        let links: [(&str, &str); 9] = [
            ("up", "../../../.."),
            ("abs", "/etc"),
            ("rel", "a/b"),
            ("a/b/back", "../.."),
            ("a/b/self_abs", "/a/b/file"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("proc_self", "/proc/self/root"),
            ("dangling", "nothing/here"),
        ];
        for (name, target) in links {
            symlink(target, root.join(name)).expect("symlink");
        }
        let root_fd = crate::dir::open_dir_path(&root).expect("open root");
        Fixture {
            _temp: temp,
            root: root_fd,
        }
    }

    fn read(resolver: Resolver, root: &OwnedFd, path: &str) -> Result<String, Errno> {
        let fd = resolver.open(root.as_fd(), path.as_bytes(), OFlags::RDONLY)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)
            .map_err(|_| Errno::IO)?;
        Ok(text)
    }

    fn where_is(fd: &OwnedFd) -> std::path::PathBuf {
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
        std::fs::read_link(Path::new(&link)).expect("readlink fd")
    }

    /// Both resolvers give the same answers: the userspace walk is checked against the kernel's.
    #[test]
    fn userspace_walk_agrees_with_openat2() {
        let fixture = fixture();
        let cases = [
            "etc/passwd",
            "/etc/passwd",
            "../etc/passwd",
            "../../../../etc/passwd",
            "up/etc/passwd",
            "up/../up/etc/passwd",
            "abs/passwd",
            "rel/file",
            "rel/back/etc/passwd",
            "a/b/back/a/b/file",
            "a/b/self_abs",
            "a/b/file/..",
            "loop1",
            "loop1/x",
            "proc_self/etc/passwd",
            "dangling",
            "a/./b/../b/file",
            "",
            ".",
        ];
        let kernel_has_openat2 = Resolver::probe() == Resolver::Kernel;
        for path in cases {
            let walked = read(Resolver::Userspace, &fixture.root, path);
            if let Ok(text) = &walked {
                assert_ne!(text, "outside", "{path} escaped the root");
            }
            if kernel_has_openat2 {
                let kernel = read(Resolver::Kernel, &fixture.root, path);
                assert_eq!(walked, kernel, "{path}");
            }
        }
        assert_eq!(
            read(Resolver::Userspace, &fixture.root, "up/etc/passwd"),
            Ok("inside".into())
        );
        assert_eq!(
            read(Resolver::Userspace, &fixture.root, "loop1"),
            Err(Errno::LOOP)
        );
        assert_eq!(
            read(Resolver::Userspace, &fixture.root, "rel/file"),
            Ok("file".into())
        );
    }

    /// Directories opened through escaping symlinks and `..` are the root's own.
    #[test]
    fn directories_resolve_inside_the_root() {
        let fixture = fixture();
        let root_path = where_is(&fixture.root);
        for path in ["up", "..", "up/..", "a/b/back", "abs/.."] {
            for resolver in [Resolver::Userspace, Resolver::Kernel] {
                let fd = resolver
                    .open(
                        fixture.root.as_fd(),
                        path.as_bytes(),
                        OFlags::PATH | OFlags::DIRECTORY,
                    )
                    .unwrap_or_else(|errno| panic!("{path}: {errno}"));
                assert!(
                    where_is(&fd).starts_with(&root_path),
                    "{path} with {resolver:?}"
                );
            }
        }
    }

    /// `O_NOFOLLOW` on the last component opens the symlink itself (with `O_PATH`) or fails.
    #[test]
    fn nofollow_keeps_the_last_symlink() {
        let fixture = fixture();
        let fd = Resolver::Userspace
            .open(
                fixture.root.as_fd(),
                b"rel/back/abs",
                OFlags::PATH | OFlags::NOFOLLOW,
            )
            .expect("open symlink");
        let stat = rustix::fs::fstat(&fd).expect("fstat");
        assert_eq!(FileType::from_raw_mode(stat.st_mode), FileType::Symlink);
        assert_eq!(
            Resolver::Userspace
                .open(
                    fixture.root.as_fd(),
                    b"abs",
                    OFlags::RDONLY | OFlags::NOFOLLOW
                )
                .err(),
            Some(Errno::LOOP)
        );
    }

    /// A path the kernel would not take is refused alike, although the walk could take it.
    #[test]
    fn paths_longer_than_path_max_are_refused_like_openat2() {
        let fixture = fixture();
        let long = "a/".repeat(2048);
        for resolver in [Resolver::Userspace, Resolver::Kernel] {
            assert_eq!(
                resolver
                    .open(fixture.root.as_fd(), long.as_bytes(), OFlags::PATH)
                    .err(),
                Some(Errno::NAMETOOLONG),
                "{resolver:?}"
            );
        }
    }

    /// A file in the middle of a path is `ENOTDIR`, as in the kernel.
    #[test]
    fn file_as_directory_is_not_a_directory() {
        let fixture = fixture();
        assert_eq!(
            Resolver::Userspace
                .open(fixture.root.as_fd(), b"a/b/file/x", OFlags::RDONLY)
                .err(),
            Some(Errno::NOTDIR)
        );
    }

    /// Under the centos7 lane `openat2` is missing; `Kernel` then walks in userspace and still
    /// stays inside the root.
    #[test]
    fn kernel_resolver_walks_when_openat2_is_missing() {
        let fixture = fixture();
        // SAFETY: the forked child makes system calls, opens files and exits without returning.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok = abi_lane::lane("centos7").is_some_and(|lane| lane.install().is_ok())
                && Resolver::probe() == Resolver::Userspace
                && read(Resolver::Kernel, &fixture.root, "up/etc/passwd").as_deref()
                    == Ok("inside");
            // SAFETY: leaving the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
