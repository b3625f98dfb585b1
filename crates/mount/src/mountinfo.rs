//! Mount point lookup in `/proc/self/mountinfo` (proc(5): the fifth field of each line is the
//! mount point, with space, tab, newline and backslash written as octal escapes like `\040`).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{Error, Result};

const MOUNTINFO: &str = "/proc/self/mountinfo";

pub(crate) fn is_mountpoint(path: &Path) -> Result<bool> {
    // statx says so directly since Linux 5.8 (STATX_ATTR_MOUNT_ROOT), without reading a
    // mountinfo whose size grows with every mount and its options.
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
    match rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::BASIC_STATS) {
        Ok(stat)
            if stat
                .stx_attributes_mask
                .contains(StatxAttributes::MOUNT_ROOT) =>
        {
            return Ok(stat.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
        }
        // Before Linux 4.11 there is no statx: mountinfo tells.
        Err(errno) if syscompat::is_unavailable(errno) => {}
        Err(source) => {
            return Err(Error::Sys {
                operation: "statx",
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(_) => {}
    }
    let canonical = std::fs::canonicalize(path).map_err(|source| Error::Io {
        operation: "resolving",
        path: path.to_path_buf(),
        source,
    })?;
    let mountinfo = std::fs::read(MOUNTINFO).map_err(|source| Error::Io {
        operation: "reading",
        path: Path::new(MOUNTINFO).to_path_buf(),
        source,
    })?;
    let wanted = canonical.as_os_str().as_bytes();
    let found = mount_points(&mountinfo).any(|mount_point| mount_point == wanted);
    Ok(found)
}

/// The decoded mount point of every line of a mountinfo text.
pub(crate) fn mount_points(mountinfo: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    mountinfo
        .split(|&byte| byte == b'\n')
        .filter_map(|line| line.split(|&byte| byte == b' ').nth(4))
        .map(unescape_octal)
}

/// Decodes the kernel's `\ooo` escapes (`mangle` in fs/proc_namespace.c); anything else is kept.
pub(crate) fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(field.len());
    let mut idx = 0;
    while idx < field.len() {
        let escape = field.get(idx + 1..idx + 4);
        if field[idx] == b'\\' {
            if let Some(digits) = escape.filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b))) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    decoded.push(byte);
                    idx += 4;
                    continue;
                }
            }
        }
        decoded.push(field[idx]);
        idx += 1;
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape_octal(br"/mnt/a\040b\011c\134d"), b"/mnt/a b\tc\\d");
        assert_eq!(unescape_octal(br"/plain\x"), br"/plain\x");
        assert_eq!(unescape_octal(br"/end\04"), br"/end\04");
    }

    #[test]
    fn fifth_field_is_the_mount_point() {
        let text = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                     35 22 0:30 / /var/lib/my\\040dir rw - overlay overlay rw,lowerdir=a:b\n";
        let points: Vec<Vec<u8>> = mount_points(text).collect();
        assert_eq!(points, vec![b"/".to_vec(), b"/var/lib/my dir".to_vec()]);
    }
}
