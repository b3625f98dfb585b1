//! What ovl reports and does where a kernel lacks newer system calls: `ovl info` names the
//! userspace resolver and the mount(2)-only path under an ABI lane and under
//! `OVL_DISABLE_FEATURES`, a container mounts and unmounts there, and a misspelt feature is a
//! usage error. The expectations come from the lanes' definitions (which system calls exist),
//! not from ovl.

use std::fs;

use ovl_tests::{root_scratch, Ovl};

const TEST: &str = "old_kernel_paths_are_reported_and_work_needs_root";

/// `openat2` (437) and `fsopen` (430) exist above a lane's last system call or not at all.
const SYS_OPENAT2: u32 = 437;
const SYS_FSOPEN: u32 = 430;

/// Runs `ovl args…` with `OVL_DISABLE_FEATURES=disable`.
fn run_disabled(ovl: &Ovl, args: &[&str], disable: &str) -> std::process::Output {
    ovl.command(args)
        .env("OVL_DISABLE_FEATURES", disable)
        .output()
        .unwrap_or_else(|err| panic!("ovl {args:?}: {err}"))
}

fn info(ovl: &Ovl, disable: &str) -> serde_json::Value {
    let output = run_disabled(ovl, &["info", "--format", "json"], disable);
    assert!(
        output.status.success(),
        "ovl info: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ovl info --format json")
}

#[test]
fn old_kernel_paths_are_reported_and_work_needs_root() {
    let Some(scratch) = root_scratch(TEST) else {
        return;
    };
    let ovl = Ovl::new(scratch.join("data"));
    let tar_path = scratch.write_base_tar("rootfs.tar");
    ovl.ok(["import", tar_path.to_str().expect("utf8"), "base:1"]);

    let lane = ovl_tests::abi_lane();
    let has = |number: u32| lane.is_none_or(|lane| number <= lane.last_syscall);
    let plain = info(&ovl, "");
    if !has(SYS_OPENAT2) {
        assert_eq!(plain["Resolver"], "userspace", "{plain}");
    }
    if !has(SYS_FSOPEN) {
        assert_eq!(plain["LowerdirPlus"], false, "{plain}");
        assert_eq!(plain["MountPath"], "mount(2)", "{plain}");
    }

    // Every feature turned off: the paths of a 3.10 kernel, on whatever kernel this is.
    let old = info(&ovl, "openat2,lowerdir+,index,volatile");
    assert_eq!(old["Resolver"], "userspace", "{old}");
    assert_eq!(old["LowerdirPlus"], false, "{old}");
    assert_eq!(old["IndexOff"], false, "{old}");
    assert_eq!(old["Volatile"], false, "{old}");
    assert_eq!(old["MountPath"], "mount(2)", "{old}");
    assert_eq!(
        old["DisabledFeatures"],
        serde_json::json!(["index", "lowerdir+", "openat2", "volatile"]),
        "{old}"
    );
    let merged = run_disabled(
        &ovl,
        &["run-rootfs", "--name", "old", "base:1"],
        "openat2,lowerdir+,index,volatile",
    );
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let merged = String::from_utf8_lossy(&merged.stdout).trim().to_string();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = mountinfo
        .lines()
        .find(|line| line.split(' ').nth(4) == Some(merged.as_str()))
        .unwrap_or_else(|| panic!("{merged} is not mounted"));
    assert!(!line.contains("index=off"), "index=off passed: {line}");
    assert!(fs::metadata(format!("{merged}/etc/hostname")).is_ok());
    ovl.ok(["umount", "old"]);
    ovl.ok(["rm", "old"]);

    // A misspelt feature fails every command before it starts, as a usage error.
    let output = run_disabled(&ovl, &["images"], "openat3");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OVL_DISABLE_FEATURES") && stderr.contains("openat3"),
        "{stderr}"
    );
}
