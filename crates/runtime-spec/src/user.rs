//! The process user of a container from its `User` (`name`, `uid`, `name:group`, `uid:gid`, …)
//! and the image's own `/etc/passwd` and `/etc/group` text, as dockerd 20.10 finds it: runc's
//! `user.GetExecUser` with root as the default, then the primary group put first in the
//! supplementary groups (moby 20.10.18 and later; no duplicate is removed).
//!
//! The files are given as bytes: reading them safely inside the root filesystem is the caller's
//! work.

/// The largest uid and gid runc accepts (`user.maxID`, 2^31 - 1).
const MAX_ID: i64 = (1 << 31) - 1;

/// What a user spec resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary group, then every group of `/etc/group` that lists the user by name (only
    /// when the spec names no group), in file order.
    pub additional_gids: Vec<u32>,
    /// The user's home from `/etc/passwd` (`/` when there is no entry).
    pub home: String,
}

/// Why a user spec does not resolve; the messages are dockerd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("uids and gids must be in range 0-{MAX_ID}")]
    Range,
}

/// Resolves `spec` (the container's `User`; empty is root) against the image's `passwd` and
/// `group` files (`None` when the image has none).
pub fn exec_user(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<ExecUser, UserError> {
    let mut fields = spec.split(':');
    let user_arg = fields.next().unwrap_or_default();
    let group_arg = fields.next().unwrap_or_default();
    let user_number = parse_int(user_arg);
    let group_number = parse_int(group_arg);

    let mut uid: i64 = 0;
    let mut gid: i64 = 0;
    let mut home = "/".to_string();
    let mut matched_name = String::new();
    let found = passwd.and_then(|text| {
        lines(text).map(passwd_entry).find(|entry| {
            if user_arg.is_empty() {
                entry.uid == 0
            } else if let Some(number) = user_number {
                entry.uid == number
            } else {
                entry.name == user_arg
            }
        })
    });
    if let Some(entry) = found {
        matched_name = entry.name;
        uid = entry.uid;
        gid = entry.gid;
        home = entry.home;
    } else if !user_arg.is_empty() {
        let Some(number) = user_number else {
            return Err(UserError::NoUser(user_arg.to_string()));
        };
        if !(0..=MAX_ID).contains(&number) {
            return Err(UserError::Range);
        }
        uid = number;
    }

    let mut supplementary = Vec::new();
    if let Some(text) = group {
        let mut groups = lines(text).map(group_entry);
        if group_arg.is_empty() {
            supplementary = groups
                .filter(|entry| entry.members.contains(&matched_name))
                .map(|entry| entry.gid)
                .collect();
        } else {
            let found = groups.find(|entry| match group_number {
                Some(number) => entry.gid == number,
                None => entry.name == group_arg,
            });
            gid = match (found, group_number) {
                (Some(entry), _) => entry.gid,
                (None, Some(number)) if (0..=MAX_ID).contains(&number) => number,
                (None, Some(_)) => return Err(UserError::Range),
                (None, None) => return Err(UserError::NoGroup(group_arg.to_string())),
            };
        }
    } else if !group_arg.is_empty() {
        // Without a group file only a number names a group.
        gid = match group_number {
            Some(number) if (0..=MAX_ID).contains(&number) => number,
            Some(_) => return Err(UserError::Range),
            None => return Err(UserError::NoGroup(group_arg.to_string())),
        };
    }
    let id = |value: i64| u32::try_from(value).map_err(|_| UserError::Range);
    let gid = id(gid)?;
    let mut additional_gids = vec![gid];
    for group_id in supplementary {
        additional_gids.push(id(group_id)?);
    }
    Ok(ExecUser {
        uid: id(uid)?,
        gid,
        additional_gids,
        home,
    })
}

struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// The non-empty lines of a file, trimmed, as runc's parsers read them (a `#` line is not
/// special; invalid UTF-8 is taken as it can be).
fn lines(text: &[u8]) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    text.split(|&byte| byte == b'\n').filter_map(|line| {
        let line = line.trim_ascii();
        (!line.is_empty()).then(|| String::from_utf8_lossy(line))
    })
}

/// `name:password:uid:gid:gecos:home:shell`; a missing or non-numeric id reads as 0 (runc's
/// `parseLine`).
fn passwd_entry(line: std::borrow::Cow<'_, str>) -> PasswdEntry {
    let fields: Vec<&str> = line.split(':').collect();
    let field = |index: usize| fields.get(index).copied().unwrap_or_default();
    PasswdEntry {
        name: field(0).to_string(),
        uid: parse_int(field(2)).unwrap_or(0),
        gid: parse_int(field(3)).unwrap_or(0),
        home: field(5).to_string(),
    }
}

/// `name:password:gid:member,member`.
fn group_entry(line: std::borrow::Cow<'_, str>) -> GroupEntry {
    let fields: Vec<&str> = line.split(':').collect();
    let field = |index: usize| fields.get(index).copied().unwrap_or_default();
    let members = field(3);
    GroupEntry {
        name: field(0).to_string(),
        gid: parse_int(field(2)).unwrap_or(0),
        members: if members.is_empty() {
            Vec::new()
        } else {
            members.split(',').map(str::to_string).collect()
        },
    }
}

/// Go's `strconv.Atoi` for ids: an optional sign and decimal digits, nothing else.
fn parse_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Beyond i64 Go's Atoi fails too, and the text is then a name.
    text.parse::<i64>().ok()
}
