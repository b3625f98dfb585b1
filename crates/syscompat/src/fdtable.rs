//! The process's descriptor table: grown once up front, and the limit on its size.

use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};

/// The soft `RLIMIT_NOFILE` this process started with, when [`raise_descriptor_limit`] raised it:
/// what its children get back ([`crate::with_original_descriptor_limit`]).
static ORIGINAL_SOFT_LIMIT: OnceLock<u64> = OnceLock::new();

/// Raises the soft `RLIMIT_NOFILE` to the hard one, as dockerd and every Go program do at
/// startup: a walk keeps one descriptor per directory level, and a container may nest
/// directories 1,500 deep within `PATH_MAX` (its diff and commit failed with `EMFILE` under the
/// usual soft limit of 1,024, where Docker's succeed). To be called by `main` before anything
/// reads [`descriptor_limit`]; a limit that cannot be raised is left as it is.
pub fn raise_descriptor_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else {
        return;
    };
    if current >= maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    if rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).is_ok() {
        let _ = ORIGINAL_SOFT_LIMIT.set(current);
    }
}

/// The soft limit to give a child process back, when this process raised its own.
pub(crate) fn original_soft_limit() -> Option<u64> {
    ORIGINAL_SOFT_LIMIT.get().copied()
}

/// How many descriptors this process may have open: the soft `RLIMIT_NOFILE`, read once (a
/// limit without bound reads as `u64::MAX`). What a command keeps in flight at once (files being
/// written, entries being settled) is a share of it, so that a low limit makes the command
/// slower, not fail.
pub fn descriptor_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX)
    })
}

/// Grows this process's descriptor table to hold `n` descriptors; meant to be called while the
/// process has one thread.
///
/// The kernel grows the table by doubling it as descriptors are opened (from 64 to 128, 256, …),
/// and in a process with more than one thread every growth waits for an RCU grace period
/// (`expand_files` calls `synchronize_rcu`): about 8 ms each on a two-core machine, 24 ms of a
/// 300 ms commit that held 650 descriptors at once. Grown once before any thread starts, it
/// waits for nothing. Only an optimisation: beyond `RLIMIT_NOFILE`, or on any error, the table is
/// left as it is.
pub fn reserve_descriptors(n: u32) {
    let Ok(highest) = i32::try_from(n.saturating_sub(1)) else {
        return;
    };
    let Ok(probe) = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) else {
        return;
    };
    // The highest descriptor decides the table's size; the duplicate is closed at once.
    drop(rustix::io::fcntl_dupfd_cloexec(&probe, highest));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FDSize` of /proc/self/status: the size of this process's descriptor table.
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("FDSize:"))
            .and_then(|size| size.trim().parse().ok())
            .expect("FDSize in /proc/self/status")
    }

    #[test]
    fn the_table_holds_what_was_reserved() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let wanted = 2048.min(limit);
        reserve_descriptors(u32::try_from(wanted).expect("small"));
        assert!(table_size() >= wanted, "FDSize {} < {wanted}", table_size());
    }
}
