//! Broken input must fail with exit status 1, a message naming the culprit, and a data root that
//! is exactly as consistent as before.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::Path;

use ovl_tests::{
    chain_ids, check_root_consistent, docker_archive, gzip, image_config, layer_members, layerdb,
    layers_archive, root_scratch, sha256_digest, Ovl, TarBuilder,
};

const TEST: &str = "bad_input_fails_cleanly_needs_root";
/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;

/// A small layer tar whose content depends on `seed`, so every image has its own layers.
fn layer_tar(seed: &str, i: usize) -> Vec<u8> {
    let mtime = 1_600_000_000;
    let mut builder = TarBuilder::at(mtime);
    builder.dir("d/");
    // Big enough that truncating the archive in the middle cuts a layer's data.
    let data: Vec<u8> = format!("{seed} layer {i}\n").repeat(400).into_bytes();
    builder.file(&format!("d/{seed}-{i}"), &data);
    builder.finish()
}

/// A two-layer image archive; returns the archive and the DiffIDs.
fn image_archive(seed: &str, tag: &str) -> (Vec<u8>, Vec<String>) {
    let tars: Vec<Vec<u8>> = (0..2).map(|i| layer_tar(seed, i)).collect();
    layers_archive(tars, &format!("{seed}-layer"), &[tag])
}

fn assert_mentions(stderr: &str, what: &str, any_of: &[&str]) {
    assert!(
        any_of.iter().any(|needle| stderr.contains(needle)),
        "{what}: stderr should name one of {any_of:?}, got: {stderr}"
    );
}

#[test]
fn bad_input_fails_cleanly_needs_root() {
    let Some(work) = root_scratch(TEST) else {
        return;
    };
    let ovl = Ovl::new(work.join("data"));

    let (good, good_diff_ids) = image_archive("good", "ovl-good:1");
    let good_path = work.join("good.tar");
    fs::write(&good_path, &good).expect("write archive");
    assert_eq!(
        ovl.load(&good_path).unwrap_or_else(|e| panic!("{e:#}")),
        "ovl-good:1"
    );
    let images_before = ovl.ok(["images"]);
    let check_unchanged = |after: &str| {
        assert_eq!(
            ovl.ok(["images"]),
            images_before,
            "ovl images changed after {after}"
        );
        check_root_consistent(&ovl.root).unwrap_or_else(|e| panic!("after {after}: {e:#}"));
        let layers = layerdb(&ovl.root);
        for chain_id in chain_ids(&good_diff_ids) {
            assert!(
                layers.contains_key(&chain_id),
                "after {after}: {chain_id} is gone"
            );
        }
    };

    // A truncated archive: cut in the middle of the first layer's data.
    let (trunc, _) = image_archive("trunc", "ovl-trunc:1");
    let trunc_path = work.join("truncated.tar");
    fs::write(&trunc_path, &trunc[..trunc.len() / 3]).expect("write truncated");
    let stderr = ovl.fail([Path::new("load"), Path::new("-i"), &trunc_path]);
    assert_mentions(
        &stderr,
        "truncated archive",
        &["truncated.tar", "trunc-layer"],
    );
    check_unchanged("truncated archive");

    // A gzip layer whose deflate stream is damaged in the middle.
    let tar = layer_tar("corrupt", 0);
    let diff_ids = vec![sha256_digest(&tar)];
    let mut compressed = gzip(&tar);
    let middle = compressed.len() / 2;
    for byte in &mut compressed[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    let corrupt = docker_archive(
        &image_config(&diff_ids),
        &[("corrupt-layer/layer.tar".to_string(), compressed)],
        &["ovl-corrupt:1"],
    );
    let corrupt_path = work.join("corrupt-gzip.tar");
    fs::write(&corrupt_path, corrupt).expect("write corrupt");
    let stderr = ovl.fail([Path::new("load"), Path::new("-i"), &corrupt_path]);
    let diff_hex = &diff_ids[0]["sha256:".len()..];
    assert_mentions(
        &stderr,
        "corrupt gzip layer",
        &["corrupt-layer", &diff_hex[..12]],
    );
    check_unchanged("corrupt gzip layer");

    // The config lists a wrong DiffID for the second layer.
    let tars: Vec<Vec<u8>> = (0..2).map(|i| layer_tar("mismatch", i)).collect();
    let wrong = sha256_digest(b"not the layer");
    let diff_ids = vec![sha256_digest(&tars[0]), wrong.clone()];
    let layers = layer_members("mismatch-layer", tars);
    let mismatch = docker_archive(&image_config(&diff_ids), &layers, &["ovl-mismatch:1"]);
    let mismatch_path = work.join("mismatch.tar");
    fs::write(&mismatch_path, mismatch).expect("write mismatch");
    let stderr = ovl.fail([Path::new("load"), Path::new("-i"), &mismatch_path]);
    let wrong_hex = &wrong["sha256:".len()..];
    assert_mentions(
        &stderr,
        "DiffID mismatch",
        &["mismatch-layer1", &wrong_hex[..12]],
    );
    check_unchanged("DiffID mismatch");

    // Four new layers unpacked at once: the second (large, its DiffID wrong) fails late, the
    // fourth (damaged gzip) fails at once. The error is the second's, as a load of one layer
    // after the other reports it, and nothing of any of the four stays.
    let mut tars: Vec<Vec<u8>> = (0..4).map(|i| layer_tar("parallel", i)).collect();
    tars[1] = {
        let mut builder = TarBuilder::new();
        let data: Vec<u8> = (0..4_000_000u32).map(|n| (n % 251) as u8).collect();
        builder.file("big", &data);
        builder.finish()
    };
    let mut diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
    let wrong = sha256_digest(b"not the second layer");
    diff_ids[1] = wrong.clone();
    let mut blobs = tars;
    let mut damaged = gzip(&blobs[3]);
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 8] {
        *byte ^= 0x5a;
    }
    blobs[3] = damaged;
    let layers = layer_members("parallel-layer", blobs);
    let parallel = docker_archive(&image_config(&diff_ids), &layers, &["ovl-parallel:1"]);
    let parallel_path = work.join("parallel.tar");
    fs::write(&parallel_path, parallel).expect("write parallel");
    let output = ovl
        .command([Path::new("load"), Path::new("-i"), &parallel_path])
        .env("OVL_LOAD_JOBS", "4")
        .output()
        .expect("run ovl");
    assert_eq!(output.status.code(), Some(1), "load of parallel.tar");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("parallel-layer1") && stderr.contains(&wrong["sha256:".len()..][..12]),
        "the lowest failing layer, parallel-layer1, must be the one named: {stderr}"
    );
    assert!(
        !stderr.contains("parallel-layer3"),
        "a failure above the lowest one must not be reported: {stderr}"
    );
    check_unchanged("layers failing while unpacked at once");

    // An image that does not exist.
    let stderr = ovl.fail(["run-rootfs", "nosuch:1", "--name", "nosuch"]);
    assert_mentions(&stderr, "unknown image", &["nosuch:1"]);
    check_unchanged("run-rootfs of an unknown image");

    // run-rootfs as nobody: the data root is made traversable for the attempt so that the
    // refusal, not a permission error on the way in, is what is tested.
    let root_mode = fs::metadata(&ovl.root)
        .expect("stat root")
        .permissions()
        .mode();
    fs::set_permissions(&ovl.root, fs::Permissions::from_mode(0o755)).expect("chmod root");
    let output = ovl
        .command(["run-rootfs", "ovl-good:1", "--name", "as-nobody"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("spawn ovl as nobody");
    fs::set_permissions(&ovl.root, fs::Permissions::from_mode(root_mode)).expect("restore mode");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "run-rootfs as nobody: {stderr}"
    );
    assert_mentions(
        &stderr.to_lowercase(),
        "run-rootfs as nobody",
        &["root", "permission", "not permitted"],
    );
    check_unchanged("run-rootfs as nobody");
    let ps = ovl.ok(["ps", "-a"]);
    assert!(
        !ps.contains("as-nobody"),
        "a container was left behind: {ps}"
    );
}
