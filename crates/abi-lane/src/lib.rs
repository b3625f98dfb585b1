//! Test support: runs a process under the system-call table of an older kernel.
//!
//! A *lane* names a kernel that Docker 20.10 data roots live on and the last x86_64 system call
//! number that kernel has. Under a lane, a seccomp filter makes every newer system call fail with
//! `ENOSYS`, exactly as the old kernel answers a number it does not know, while the real kernel
//! underneath still provides everything else (overlayfs, the file systems). That is how the tests
//! run ovl as it would run on CentOS 7's 3.10 without such a kernel at hand: every fallback for a
//! missing system call is taken, and a missing fallback shows as a failure.
//!
//! The filter is installed with `prctl(PR_SET_SECCOMP)`, not `seccomp(2)` (number 317, itself
//! missing under the `centos7` lane), after `PR_SET_NO_NEW_PRIVS`, and is inherited by every
//! child. x86_64 only: another architecture's numbers differ, and the filter refuses to install.

mod sys;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A kernel's system-call table, by its last x86_64 system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// The lane's name as the tests and `OVL_ABI_LANE` spell it.
    pub name: &'static str,
    /// The kernel it stands for.
    pub kernel: &'static str,
    /// The last system call that kernel has (arch/x86/entry/syscalls/syscall_64.tbl); every
    /// higher number fails with `ENOSYS`.
    pub last_syscall: u32,
    /// That system call's name, for reports.
    pub last_syscall_name: &'static str,
}

/// The lanes, oldest first.
///
/// - `centos7`: CentOS/RHEL 7's 3.10 ends at `finit_module` (313): no `getrandom` (318),
///   `renameat2` (316), `seccomp` (317), `memfd_create` (319), `copy_file_range` (326), `statx`
///   (332), new mount API (428–432), `openat2` (437), `fchmodat2` (452).
/// - `rhel8`: RHEL 8's 4.18 ends at `rseq` (334): `statx` and `copy_file_range` are there,
///   `openat2` and the new mount API are not.
/// - `ubuntu20.04`: Ubuntu 20.04's 5.4 ends at `clone3` (435): the new mount API is there, but
///   not `openat2` (5.6), `close_range`, `faccessat2`, `fchmodat2` or `setxattrat`.
pub const LANES: [Lane; 3] = [
    Lane {
        name: "centos7",
        kernel: "CentOS 7 (Linux 3.10)",
        last_syscall: 313,
        last_syscall_name: "finit_module",
    },
    Lane {
        name: "rhel8",
        kernel: "RHEL 8 (Linux 4.18)",
        last_syscall: 334,
        last_syscall_name: "rseq",
    },
    Lane {
        name: "ubuntu20.04",
        kernel: "Ubuntu 20.04 (Linux 5.4)",
        last_syscall: 435,
        last_syscall_name: "clone3",
    },
];

/// The lane called `name`.
pub fn lane(name: &str) -> Option<Lane> {
    LANES.iter().copied().find(|lane| lane.name == name)
}

/// The lane named by `OVL_ABI_LANE`, if it is set and not empty; an unknown name is an error.
pub fn from_env() -> io::Result<Option<Lane>> {
    match std::env::var("OVL_ABI_LANE") {
        Ok(name) if name.is_empty() => Ok(None),
        Ok(name) => lane(&name).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "OVL_ABI_LANE={name:?} names no lane (known: {})",
                    LANES.map(|lane| lane.name).join(", ")
                ),
            )
        }),
        Err(_) => Ok(None),
    }
}

impl Lane {
    /// Installs the lane's filter on the calling thread; threads and processes it starts after
    /// this inherit it. Threads that already run keep their system calls.
    ///
    /// A process whose C library registered `rseq` at startup (glibc 2.35 and later) aborts when
    /// it starts a thread after this ("rseq registration failed"): on the emulated kernel the
    /// library would have found `rseq` missing from the start. Such a process uses
    /// [`Lane::reexec`]; `install` is for a process that starts no threads.
    pub fn install(&self) -> io::Result<()> {
        let program = self.program();
        sys::install_filter(&program)
    }

    /// Puts the running program in the lane the way a real old kernel would have it from the
    /// start: installs the filter and executes `/proc/self/exe` again with the same arguments.
    /// In the new image (marked by `OVL_ABI_LANE_ACTIVE`) it returns at once. Only the calling
    /// thread survives the exec; call it before anything else.
    pub fn reexec(&self) -> io::Result<()> {
        if std::env::var_os(ACTIVE_VARIABLE).is_some_and(|name| name == self.name) {
            return Ok(());
        }
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let mut command = Command::new("/proc/self/exe");
        command
            .args(args.iter().skip(1))
            .env(ACTIVE_VARIABLE, self.name);
        if let Some(arg0) = args.first() {
            command.arg0(arg0);
        }
        self.install()?;
        // `exec` returns only on failure.
        Err(command.exec())
    }

    /// Makes `command` run under the lane: the filter is installed in the child just before it
    /// executes the program.
    pub fn wrap(&self, command: &mut Command) {
        sys::install_filter_before_exec(command, self.program());
    }

    /// The classic BPF program: anything not x86_64, or numbered above the last system call,
    /// fails with `ENOSYS`; the rest is allowed.
    fn program(&self) -> [libc::sock_filter; 6] {
        let stmt = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        let enosys = SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & SECCOMP_RET_DATA);
        [
            // 0: A = seccomp_data.arch
            stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH),
            // 1: not x86_64 -> 5
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
            // 2: A = seccomp_data.nr
            stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
            // 3: newer than the lane's kernel (x32 numbers included) -> 5
            jump(BPF_JMP | BPF_JGT | BPF_K, self.last_syscall, 1, 0),
            // 4: allow
            stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            // 5: fail as an unknown system call does
            stmt(BPF_RET | BPF_K, enosys),
        ]
    }
}

/// Set in a program [`Lane::reexec`] started, to the lane's name.
const ACTIVE_VARIABLE: &str = "OVL_ABI_LANE_ACTIVE";

// Classic BPF and seccomp constants (include/uapi/linux/bpf_common.h, seccomp.h, audit.h).
const BPF_LD: u32 = 0x00;
const BPF_W: u32 = 0x00;
const BPF_ABS: u32 = 0x20;
const BPF_JMP: u32 = 0x05;
const BPF_JEQ: u32 = 0x10;
const BPF_JGT: u32 = 0x20;
const BPF_K: u32 = 0x00;
const BPF_RET: u32 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_DATA: u32 = 0x0000_ffff;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;
/// `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Offsets in `struct seccomp_data`: `int nr; __u32 arch; …`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_known_by_name_and_ordered() {
        assert_eq!(lane("centos7").map(|lane| lane.last_syscall), Some(313));
        assert_eq!(lane("rhel8").map(|lane| lane.last_syscall), Some(334));
        assert_eq!(lane("ubuntu20.04").map(|lane| lane.last_syscall), Some(435));
        assert!(lane("centos6").is_none());
        assert!(LANES
            .windows(2)
            .all(|w| w[0].last_syscall < w[1].last_syscall));
    }

    /// A child under the centos7 lane gets ENOSYS for getrandom (318) and openat2 (437), and
    /// still has getpid (39); the same calls work outside the lane.
    #[test]
    fn centos7_lane_denies_newer_syscalls_in_a_child() {
        let probe = |lane: Option<Lane>| {
            let mut command = Command::new("/bin/sh");
            command.args(["-c", "exit 0"]);
            if let Some(lane) = lane {
                lane.wrap(&mut command);
            }
            command.status().expect("run /bin/sh").success()
        };
        assert!(probe(None));
        assert!(probe(lane("centos7")));
        // In-process check in a forked child, so the test process keeps its system calls.
        // SAFETY: the child only makes raw system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = (|| {
                let centos7 = lane("centos7")?;
                centos7.install().ok()?;
                let mut byte = 0u8;
                // SAFETY: getrandom writes at most one byte into `byte`.
                let random = unsafe { libc::syscall(libc::SYS_getrandom, &mut byte, 1, 0) };
                let random_errno = io::Error::last_os_error().raw_os_error();
                // SAFETY: getpid has no arguments.
                let pid = unsafe { libc::syscall(libc::SYS_getpid) };
                Some(random == -1 && random_errno == Some(libc::ENOSYS) && pid > 0)
            })();
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(if code == Some(true) { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
