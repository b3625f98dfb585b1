//! The image archive reader (docker-archive and OCI archive: manifest.json, index.json, image
//! configs, member paths) on arbitrary bytes: it may refuse the input, never panic, and never
//! read outside the archive.
#![no_main]

use std::fs;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ovl-fuzz-archive-{}-{n}", std::process::id()));
    fs::create_dir_all(&dir).expect("create the scratch dir");
    let path = dir.join("archive.tar");
    fs::write(&path, data).expect("write the input");
    let options = image_archive::OpenOptions::default();
    if let Ok(archive) = image_archive::Archive::open(&path, &dir, &options) {
        for image in archive.images() {
            for layer in &image.layers {
                if let Ok(mut reader) = archive.open_layer(layer) {
                    let mut sink = Vec::new();
                    let _ = reader.by_ref().take(1 << 20).read_to_end(&mut sink);
                }
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
});
