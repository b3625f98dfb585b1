//! What one tar member means for the layer directory, decided without touching the filesystem:
//! the name cleaned and checked against breakouts, whiteouts and opaque markers recognised, the
//! type flag mapped to the kind of node to create (format.md §6.1).

use crate::header::{typeflag, Member};

/// The basename prefix of AUFS whiteouts; `.wh.<name>` deletes `<name>` from lower layers.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The basename prefix of AUFS metadata entries (`.wh..wh.plnk`, `.wh..wh.aufs`, ...).
pub(crate) const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The basename marking its directory opaque (lower layers' contents hidden).
pub(crate) const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// A path below the layer root as its components; empty for the root itself.
pub(crate) type Components = Vec<Vec<u8>>;

/// The on-disk effect of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing is written; the reason is logged.
    Skip(&'static str),
    /// Set `trusted.overlay.opaque=y` on the directory `dir`.
    Opaque { dir: Components },
    /// Replace `parent/name` with a 0/0 character device owned by the header's uid/gid.
    Whiteout {
        parent: Components,
        name: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    /// Create `parent/name` as `node` and apply the header's metadata.
    Create {
        parent: Components,
        name: Vec<u8>,
        node: Node,
        meta: Metadata,
    },
}

/// The kind of node a member creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File,
    /// A PAX (GNU 0.0, 0.1, 1.0) sparse file: the data fragments go to these (offset, length)
    /// places and the file is extended to `real_size`; the holes are never written.
    SparseFile {
        fragments: Vec<(u64, u64)>,
        real_size: u64,
    },
    /// The target is stored as is; containment comes from resolving every path inside the root.
    Symlink {
        target: Vec<u8>,
    },
    /// The target is a path relative to the layer root.
    Hardlink {
        target: Components,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// Ownership, permissions, times and xattrs from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Nanoseconds since the epoch; `None` when the header has no atime.
    pub atime: Option<i128>,
    pub mtime: i128,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a member cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanError {
    Breakout,
    HardlinkBreakout,
    MalformedWhiteout,
    RootNotDirectory,
    UnsupportedType(u8),
    IdOutOfRange(i64),
    DeviceOutOfRange(i64),
    InvalidSize(i64),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::Breakout => write!(f, "path is outside of the layer directory"),
            PlanError::HardlinkBreakout => {
                write!(f, "hardlink target is outside of the layer directory")
            }
            PlanError::MalformedWhiteout => write!(f, "malformed whiteout name"),
            PlanError::RootNotDirectory => write!(f, "the layer root can only be a directory"),
            PlanError::UnsupportedType(flag) => {
                write!(
                    f,
                    "unhandled tar header type {flag} ({:?})",
                    char::from(*flag)
                )
            }
            PlanError::IdOutOfRange(id) => write!(f, "uid or gid {id} out of range"),
            PlanError::DeviceOutOfRange(number) => {
                write!(f, "device number {number} out of range")
            }
            PlanError::InvalidSize(size) => write!(f, "invalid size {size}"),
        }
    }
}

/// Decides what `member` does to the layer directory.
pub(crate) fn plan(member: &Member) -> Result<Action, PlanError> {
    if member.typeflag == typeflag::PAX_GLOBAL {
        return Ok(Action::Skip("PAX global extended header"));
    }
    let mut components = clean_in_root(&member.name).ok_or(PlanError::Breakout)?;
    let Some(name) = components.pop() else {
        // Docker skips `.` on an existing directory; the layer root always exists.
        return if member.typeflag == typeflag::DIR {
            Ok(Action::Skip("the layer root"))
        } else {
            Err(PlanError::RootNotDirectory)
        };
    };
    let parent = components;
    let uid = id(member.uid)?;
    let gid = id(member.gid)?;

    if name == WHITEOUT_OPAQUE {
        return Ok(Action::Opaque { dir: parent });
    }
    if name.starts_with(WHITEOUT_META_PREFIX) {
        return Ok(Action::Skip("AUFS metadata"));
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(PlanError::MalformedWhiteout);
        }
        return Ok(Action::Whiteout {
            parent,
            name: hidden.to_vec(),
            uid,
            gid,
        });
    }

    let node = match member.typeflag {
        typeflag::DIR => Node::Dir,
        typeflag::REG => match &member.sparse {
            None => Node::File,
            Some(fragments) => Node::SparseFile {
                fragments: fragments.clone(),
                real_size: u64::try_from(member.size)
                    .map_err(|_| PlanError::InvalidSize(member.size))?,
            },
        },
        typeflag::SYMLINK => Node::Symlink {
            target: member.link_name.clone(),
        },
        typeflag::LINK => {
            let target = clean_in_root(&member.link_name).ok_or(PlanError::HardlinkBreakout)?;
            if target.is_empty() {
                return Err(PlanError::HardlinkBreakout);
            }
            Node::Hardlink { target }
        }
        typeflag::CHAR => Node::CharDevice {
            major: device(member.dev_major)?,
            minor: device(member.dev_minor)?,
        },
        typeflag::BLOCK => Node::BlockDevice {
            major: device(member.dev_major)?,
            minor: device(member.dev_minor)?,
        },
        typeflag::FIFO => Node::Fifo,
        other => return Err(PlanError::UnsupportedType(other)),
    };
    // Go's `FileInfo().Mode()` keeps the permission, setuid, setgid and sticky bits; file type
    // bits some writers put in the mode field are dropped.
    let mode = (member.mode & 0o7777) as u32;
    let meta = Metadata {
        uid,
        gid,
        mode,
        atime: member.atime,
        mtime: member.mtime,
        xattrs: member
            .xattrs
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    };
    Ok(Action::Create {
        parent,
        name,
        node,
        meta,
    })
}

/// Cleans `name` like Go's `filepath.Clean` and makes it relative to the layer root: a leading
/// `/` is dropped (`/..` stays at the root), and `None` is returned when `..` climbs above the
/// root of a relative name. The result is the list of components, empty for the root.
pub(crate) fn clean_in_root(name: &[u8]) -> Option<Components> {
    let cleaned = gocompat::path::clean(name);
    // A rooted name keeps no `..` after cleaning; a relative one keeps them only at its start.
    let relative = cleaned.strip_prefix(b"/").unwrap_or(&cleaned);
    let mut components: Components = Vec::new();
    for element in relative.split(|&byte| byte == b'/') {
        match element {
            b"" | b"." => {}
            b".." => return None,
            _ => components.push(element.to_vec()),
        }
    }
    Some(components)
}

/// Joins components with `/`; the root is `.`.
pub(crate) fn join(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b".".to_vec();
    }
    components.join(&b'/')
}

fn id(value: i64) -> Result<u32, PlanError> {
    u32::try_from(value).map_err(|_| PlanError::IdOutOfRange(value))
}

fn device(value: i64) -> Result<u32, PlanError> {
    u32::try_from(value).map_err(|_| PlanError::DeviceOutOfRange(value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn member(name: &str, flag: u8) -> Member {
        Member {
            name: name.as_bytes().to_vec(),
            link_name: Vec::new(),
            typeflag: flag,
            size: 0,
            mode: 0o100644,
            uid: 1,
            gid: 2,
            mtime: 0,
            atime: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: BTreeMap::new(),
            sparse: None,
        }
    }

    fn comps(path: &str) -> Components {
        path.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn names_are_cleaned_inside_the_root() {
        assert_eq!(clean_in_root(b"a/b/"), Some(comps("a/b")));
        assert_eq!(clean_in_root(b"./a//./b"), Some(comps("a/b")));
        assert_eq!(clean_in_root(b"/etc/passwd"), Some(comps("etc/passwd")));
        assert_eq!(clean_in_root(b"/../x"), Some(comps("x")));
        assert_eq!(clean_in_root(b"a/../b"), Some(comps("b")));
        assert_eq!(clean_in_root(b"./"), Some(Vec::new()));
        assert_eq!(clean_in_root(b"../x"), None);
        assert_eq!(clean_in_root(b"a/../../x"), None);
        assert_eq!(clean_in_root(b".."), None);
    }

    #[test]
    fn whiteouts_and_opaque_markers() {
        assert_eq!(
            plan(&member("d/.wh.x", typeflag::REG)),
            Ok(Action::Whiteout {
                parent: comps("d"),
                name: b"x".to_vec(),
                uid: 1,
                gid: 2
            })
        );
        assert_eq!(
            plan(&member("d/e/.wh..wh..opq", typeflag::REG)),
            Ok(Action::Opaque { dir: comps("d/e") })
        );
        assert_eq!(
            plan(&member(".wh..wh.plnk", typeflag::DIR)),
            Ok(Action::Skip("AUFS metadata"))
        );
        for bad in ["d/.wh.", "d/.wh..", "d/.wh..."] {
            assert_eq!(
                plan(&member(bad, typeflag::REG)),
                Err(PlanError::MalformedWhiteout),
                "{bad}"
            );
        }
    }

    #[test]
    fn breakouts_and_bad_members_are_rejected() {
        assert_eq!(
            plan(&member("../x", typeflag::REG)),
            Err(PlanError::Breakout)
        );
        let mut link = member("x", typeflag::LINK);
        link.link_name = b"../../etc/passwd".to_vec();
        assert_eq!(plan(&link), Err(PlanError::HardlinkBreakout));
        link.link_name = b"/etc/passwd".to_vec();
        assert!(matches!(
            plan(&link),
            Ok(Action::Create { node: Node::Hardlink { ref target }, .. }) if *target == comps("etc/passwd")
        ));
        assert_eq!(
            plan(&member("x", b'7')),
            Err(PlanError::UnsupportedType(b'7'))
        );
        let mut big = member("x", typeflag::REG);
        big.uid = i64::from(u32::MAX) + 1;
        assert_eq!(plan(&big), Err(PlanError::IdOutOfRange(big.uid)));
        assert_eq!(
            plan(&member("./", typeflag::DIR)),
            Ok(Action::Skip("the layer root"))
        );
        assert_eq!(
            plan(&member("/", typeflag::REG)),
            Err(PlanError::RootNotDirectory)
        );
    }

    #[test]
    fn mode_keeps_special_bits_only() {
        let mut file = member("bin/su", typeflag::REG);
        file.mode = 0o104755;
        let Ok(Action::Create { meta, .. }) = plan(&file) else {
            panic!("not a create");
        };
        assert_eq!(meta.mode, 0o4755);
    }
}
