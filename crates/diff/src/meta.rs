//! The `lstat` fields Docker compares, and its rule for "different".

use rustix::fs::Stat;

/// `S_IFMT`, the file type bits of `st_mode`.
const S_IFMT: u32 = 0o170_000;
/// `S_IFDIR`. Docker tests it as a bit (`mode & S_IFDIR`), so block devices (`0o060000`) and
/// sockets (`0o140000`) count as directories there; see [`Meta::is_dir_like`].
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFREG: u32 = 0o100_000;

/// The part of an entry's `lstat` that Docker looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `st_mode`, file type bits included.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) rdev: u64,
    pub(crate) size: i64,
    pub(crate) mtime_sec: i64,
    pub(crate) mtime_nsec: i64,
}

impl Meta {
    // The casts only widen or keep the width: the field types of `struct stat` differ per
    // architecture (`c_ulong` nanoseconds on x86_64, `u32` elsewhere).
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_stat(stat: &Stat) -> Meta {
        Meta {
            mode: stat.st_mode as u32,
            uid: stat.st_uid,
            gid: stat.st_gid,
            rdev: stat.st_rdev as u64,
            size: stat.st_size as i64,
            mtime_sec: stat.st_mtime as i64,
            mtime_nsec: stat.st_mtime_nsec as i64,
        }
    }

    /// A real directory (`S_ISDIR`): one that has entries.
    pub(crate) fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Docker's `isDir` (`mode & S_IFDIR != 0`), which decides whether the baseline's children of
    /// a path are compared at all. It is true for block devices and sockets too, so a socket that
    /// replaced a directory reports the directory's children as deleted, as Docker does.
    pub(crate) fn is_dir_like(&self) -> bool {
        self.mode & S_IFDIR == S_IFDIR
    }

    pub(crate) fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// An overlay whiteout: a character device with device number 0/0
    /// (<https://docs.kernel.org/filesystems/overlayfs.html#whiteouts-and-opaque-directories>).
    pub(crate) fn is_whiteout(&self) -> bool {
        self.mode & S_IFMT == S_IFCHR && self.rdev == 0
    }

    /// Whether this crate reads `security.capability` of such an entry: regular files and
    /// directories, the types it can open without side effects. Symlinks, devices, fifos and
    /// sockets count as having none.
    pub(crate) fn may_carry_capability(&self) -> bool {
        self.is_regular() || self.is_dir()
    }
}

/// Docker's `statDifferent` (moby `pkg/archive/changes_unix.go`): mode (type bits included),
/// owner, group or device number differ, or, unless the *old* mode has the `S_IFDIR` bit, size or
/// mtime differ. Directory sizes and mtimes are ignored because they change with every entry
/// added or removed (moby#9874).
pub(crate) fn stat_different(old: &Meta, new: &Meta) -> bool {
    old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.rdev != new.rdev
        || (old.mode & S_IFDIR != S_IFDIR && (!same_mtime(old, new) || old.size != new.size))
}

/// Docker's `sameFsTimeSpec`: equal seconds, and equal nanoseconds unless either side has none
/// (file systems and archives that keep whole seconds only).
fn same_mtime(old: &Meta, new: &Meta) -> bool {
    old.mtime_sec == new.mtime_sec
        && (old.mtime_nsec == new.mtime_nsec || old.mtime_nsec == 0 || new.mtime_nsec == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Meta {
        Meta {
            mode: S_IFREG | 0o644,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 10,
            mtime_sec: 1_600_000_000,
            mtime_nsec: 500,
        }
    }

    fn with(base: Meta, change: impl FnOnce(&mut Meta)) -> Meta {
        let mut meta = base;
        change(&mut meta);
        meta
    }

    #[test]
    fn identical_entries_are_not_different() {
        assert!(!stat_different(&file(), &file()));
    }

    #[test]
    fn mode_owner_and_rdev_always_count() {
        let dir = with(file(), |m| m.mode = S_IFDIR | 0o755);
        for base in [file(), dir] {
            assert!(stat_different(&base, &with(base, |m| m.mode ^= 0o001)));
            assert!(stat_different(&base, &with(base, |m| m.uid = 1)));
            assert!(stat_different(&base, &with(base, |m| m.gid = 1)));
            assert!(stat_different(&base, &with(base, |m| m.rdev = 1)));
        }
        // The type bits are part of the mode: a file that became a directory differs.
        assert!(stat_different(&file(), &dir));
    }

    #[test]
    fn size_and_mtime_count_for_files_only() {
        assert!(stat_different(&file(), &with(file(), |m| m.size = 11)));
        assert!(stat_different(&file(), &with(file(), |m| m.mtime_sec += 1)));
        assert!(stat_different(
            &file(),
            &with(file(), |m| m.mtime_nsec = 501)
        ));
        let dir = with(file(), |m| m.mode = S_IFDIR | 0o755);
        assert!(!stat_different(&dir, &with(dir, |m| m.size = 4096)));
        assert!(!stat_different(&dir, &with(dir, |m| m.mtime_sec += 1)));
    }

    #[test]
    fn missing_nanoseconds_on_either_side_compare_equal() {
        assert!(!stat_different(
            &file(),
            &with(file(), |m| m.mtime_nsec = 0)
        ));
        let whole = with(file(), |m| m.mtime_nsec = 0);
        assert!(!stat_different(&whole, &file()));
        assert!(stat_different(&whole, &with(file(), |m| m.mtime_sec += 1)));
    }

    #[test]
    fn size_and_mtime_are_ignored_when_the_old_mode_has_the_dir_bit() {
        // Sockets and block devices have the S_IFDIR bit set in their type, so Docker treats
        // them like directories here.
        for kind in [0o140_000, 0o060_000] {
            let old = with(file(), |m| m.mode = kind | 0o644);
            assert!(old.is_dir_like() && !old.is_dir());
            assert!(!stat_different(&old, &with(old, |m| m.mtime_sec += 1)));
            assert!(!stat_different(&old, &with(old, |m| m.size = 0)));
        }
        // The test is on the old mode only.
        let fifo = with(file(), |m| m.mode = 0o010_644);
        assert!(!fifo.is_dir_like());
        assert!(stat_different(&fifo, &with(fifo, |m| m.mtime_sec += 1)));
    }

    #[test]
    fn whiteouts_are_character_devices_0_0() {
        let whiteout = with(file(), |m| {
            m.mode = S_IFCHR;
            m.rdev = 0;
        });
        assert!(whiteout.is_whiteout());
        assert!(!with(whiteout, |m| m.rdev = rustix::fs::makedev(1, 3)).is_whiteout());
        assert!(!with(whiteout, |m| m.mode = 0o060_000).is_whiteout());
        assert!(!file().is_whiteout());
    }
}
