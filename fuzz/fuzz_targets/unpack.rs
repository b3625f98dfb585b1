//! The layer applier on arbitrary bytes: whatever the input, nothing may be created, changed or
//! removed outside the layer directory. Each input is applied into a fresh `layer/` beside a
//! sentinel file, in a sandbox directory that holds nothing else.
//!
//! With `OVL_ABI_LANE` set (`centos7`, …), the target first puts its own process in that ABI lane:
//! every system call newer than the lane's kernel fails with `ENOSYS`, so the applier resolves
//! paths with the userspace walk instead of `openat2`.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

static COUNTER: AtomicU64 = AtomicU64::new(0);

const SENTINEL: &[u8] = b"must stay as it is\n";

fn sandbox() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ovl-fuzz-unpack-{}-{n}", std::process::id()))
}

fuzz_target!(
    init: {
        if let Some(lane) = abi_lane::from_env().expect("OVL_ABI_LANE") {
            lane.reexec().expect("enter the ABI lane");
            eprintln!("unpack: running in the {} ABI lane", lane.name);
        }
    },
    |data: &[u8]| {
    let sandbox = sandbox();
    let layer = sandbox.join("layer");
    fs::create_dir_all(&layer).expect("create the layer dir");
    fs::write(sandbox.join("sentinel"), SENTINEL).expect("write the sentinel");
    let mut tar_split = tar_split::Packer::new(Vec::new());
    let options = layer_unpack::UnpackOptions {
        writers: Some(0),
        ..Default::default()
    };
    let unpacked = layer_unpack::unpack(data, &layer, &mut tar_split, &options);
    // The size taken from the stream is what Docker's walk of the layer finds.
    if let Ok(report) = unpacked {
        let walked = layer_unpack::diff_size(&layer).expect("walk the layer for its size");
        assert_eq!(report.size, walked, "size from the stream differs from the walk");
    }

    let entries = fs::read_dir(&sandbox).expect("list the sandbox");
    let mut names: Vec<_> = entries.map(|entry| entry.expect("entry").file_name()).collect();
    names.sort();
    assert_eq!(
        names,
        ["layer", "sentinel"],
        "something was written beside the layer"
    );
    assert_eq!(
        fs::read(sandbox.join("sentinel")).expect("read the sentinel"),
        SENTINEL
    );
    let _ = fs::remove_dir_all(&sandbox);
});
