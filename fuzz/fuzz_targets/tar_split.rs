//! The tar-split reader on arbitrary bytes (gzip'd NDJSON): it may refuse the input, never panic,
//! and the length it computes must agree with the entries it yields.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut total: u64 = 0;
    let mut complete = true;
    for entry in tar_split::Unpacker::new(data) {
        match entry {
            Ok(tar_split::Entry::Segment { payload }) => total += payload.len() as u64,
            Ok(tar_split::Entry::File { size, .. }) => total = total.saturating_add(size),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    if complete {
        if let Ok(len) = tar_split::reassembled_len(data) {
            assert_eq!(len, total, "reassembled_len disagrees with the entries");
        }
    }
});
