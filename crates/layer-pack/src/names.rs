//! uid → user name and gid → group name from the host's `/etc/passwd` and `/etc/group`, as Go's
//! `os/user` (pure Go) finds them for `tar.FileInfoHeader`: the first entry with the id; no name
//! when there is none. An export takes them from the container's own files instead
//! ([`crate::NameFiles`]).

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct NameCache {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl NameCache {
    pub(crate) fn from_host() -> NameCache {
        NameCache {
            users: parse(&std::fs::read("/etc/passwd").unwrap_or_default()),
            groups: parse(&std::fs::read("/etc/group").unwrap_or_default()),
        }
    }

    /// Names from the text of other passwd and group files.
    pub(crate) fn from_files(files: &crate::NameFiles) -> NameCache {
        NameCache {
            users: parse(&files.passwd),
            groups: parse(&files.group),
        }
    }

    pub(crate) fn user(&self, uid: u32) -> Vec<u8> {
        self.users.get(&uid).cloned().unwrap_or_default()
    }

    pub(crate) fn group(&self, gid: u32) -> Vec<u8> {
        self.groups.get(&gid).cloned().unwrap_or_default()
    }
}

/// `name:x:id:...` lines; the first line of an id wins.
fn parse(text: &[u8]) -> HashMap<u32, Vec<u8>> {
    let mut map = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        if line.first() == Some(&b'#') || line.first() == Some(&b'+') || line.first() == Some(&b'-')
        {
            continue;
        }
        let mut fields = line.split(|&b| b == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Some(id) = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        map.entry(id).or_insert_with(|| name.to_vec());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_entry_of_an_id_wins_and_junk_is_skipped() {
        let map = parse(b"root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n#c:x:5:\nbad\nn:x:notanumber:\nnobody:x:65534:65534::/:/bin/false");
        assert_eq!(map.get(&0).map(Vec::as_slice), Some(&b"root"[..]));
        assert_eq!(map.get(&65534).map(Vec::as_slice), Some(&b"nobody"[..]));
        assert_eq!(map.len(), 2);
    }
}
