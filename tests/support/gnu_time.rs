//! GNU time, through which the peak-RSS measurements run commands.

use super::*;

/// GNU time, which the peak-RSS measurements run commands under.
pub const GNU_TIME: &str = "/usr/bin/time";

/// `command` (its program, arguments and environment) run by GNU time, which writes the peak
/// resident memory to `report` in KiB. Measured so, and not from `wait4` of a child of the
/// caller: `exec` keeps the old image's high-water mark in `ru_maxrss`, so a child started from a
/// large process reports that process's memory. Hooks run before `exec` (an ABI lane's filter)
/// are not carried over: put them on the returned command.
pub fn under_gnu_time(command: &Command, report: &Path) -> Command {
    let mut timed = Command::new(GNU_TIME);
    timed.arg("-f").arg("%M").arg("-o").arg(report);
    timed.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    timed
}

/// The peak RSS in KiB that GNU time wrote to `report` (see [`under_gnu_time`]).
pub fn peak_rss_kib(report: &Path) -> anyhow::Result<u64> {
    let text =
        fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    text.trim()
        .lines()
        .last()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("GNU time's %M in {}: {text:?}", report.display()))
}
