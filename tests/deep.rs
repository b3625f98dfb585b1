//! A 500-layer image (the kernel's overlay stack limit, OVL_MAX_STACK) generated in the test:
//! ovl must load it and mount it so that every layer is visible, and list a container's changes
//! under descriptor limits that its lower stacks exceed.

use std::fs;
use std::time::Instant;

use ovl_tests::{
    chain_ids, check_root_consistent, deep_layer_tar, image_config, layerdb, root_scratch,
    sha256_digest, write_docker_archive, Ovl,
};

const TEST: &str = "five_hundred_layers_mount_needs_root";
const N_LAYERS: usize = 500;

#[test]
fn five_hundred_layers_mount_needs_root() {
    let Some(work) = root_scratch(TEST) else {
        return;
    };
    let mut layers = Vec::with_capacity(N_LAYERS);
    let mut diff_ids = Vec::with_capacity(N_LAYERS);
    for i in 0..N_LAYERS {
        let tar = deep_layer_tar(i);
        diff_ids.push(sha256_digest(&tar));
        layers.push((format!("layer{i:03}/layer.tar"), tar));
    }
    let config = image_config(&diff_ids);
    let archive = work.join("deep500.tar");
    write_docker_archive(&archive, &config, &layers, &["ovl-deep:500"]);

    let ovl = Ovl::new(work.join("root"));
    let started = Instant::now();
    let name = ovl.load(&archive).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "timing: ovl load of {N_LAYERS} layers: {:.1?}",
        started.elapsed()
    );
    assert_eq!(name, "ovl-deep:500");

    let inspect = ovl
        .inspect("ovl-deep:500")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        inspect["Id"].as_str(),
        Some(sha256_digest(&config).as_str())
    );
    let reported: Vec<String> =
        serde_json::from_value(inspect["RootFS"]["Layers"].clone()).expect("RootFS.Layers");
    assert_eq!(reported, diff_ids);
    let layerdb = layerdb(&ovl.root);
    let expected_chain = chain_ids(&diff_ids);
    assert_eq!(layerdb.len(), N_LAYERS);
    for (i, chain_id) in expected_chain.iter().enumerate() {
        let entry = layerdb
            .get(chain_id)
            .unwrap_or_else(|| panic!("layer {i}: no layerdb entry {chain_id}"));
        assert_eq!(entry.diff, diff_ids[i], "layer {i}");
    }

    // Loading the same archive again reuses every layer (same ChainIDs): nothing is unpacked twice.
    let overlay_dirs = fs::read_dir(ovl.root.join("overlay2"))
        .expect("overlay2")
        .count();
    let started = Instant::now();
    let again = ovl.run(["load", "-i", archive.to_str().expect("utf8")]);
    eprintln!(
        "timing: second ovl load of {N_LAYERS} layers: {:.1?}",
        started.elapsed()
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let reused = String::from_utf8_lossy(&again.stderr)
        .matches("Layer already exists")
        .count();
    assert_eq!(reused, N_LAYERS, "every layer reported as reused");
    assert_eq!(
        fs::read_dir(ovl.root.join("overlay2"))
            .expect("overlay2")
            .count(),
        overlay_dirs,
        "no new overlay2 dir"
    );

    let started = Instant::now();
    let merged = ovl.ok(["run-rootfs", "ovl-deep:500", "--name", "deep"]);
    eprintln!(
        "timing: ovl run-rootfs of {N_LAYERS} layers: {:.1?}",
        started.elapsed()
    );
    let merged = std::path::PathBuf::from(merged.trim());
    let check = || {
        let mut names: Vec<String> = fs::read_dir(merged.join("layers"))
            .expect("read merged layers/")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
        let expected: Vec<String> = (0..N_LAYERS).map(|i| i.to_string()).collect();
        assert_eq!(names, expected);
        for i in 0..N_LAYERS {
            let content = fs::read_to_string(merged.join(format!("layers/{i}"))).expect("read");
            assert_eq!(content, format!("{i}\n"), "layers/{i}");
        }
        assert_eq!(
            fs::read_to_string(merged.join("top")).expect("read top"),
            "499"
        );
        // `ovl diff` under descriptor limits: the upperdir walk keeps the lower stack of every
        // level open (500 roots, 500 `layers/`), more than a limit of 256 allows and close to
        // the default of 1,024 (both failed with `EMFILE` before); beyond its share the changes
        // come from the full comparison of the mounted views, the same list.
        fs::write(merged.join("layers/new"), "new\n").expect("write layers/new");
        let unlimited = ovl.ok(["diff", "deep"]);
        assert!(unlimited.contains("A /layers/new\n"), "{unlimited}");
        for limit in [256, 1024] {
            assert_eq!(
                ovl.limited_ok(limit, limit, ["diff", "deep"]),
                unlimited,
                "RLIMIT_NOFILE {limit}"
            );
        }
    };
    let result = std::panic::catch_unwind(check);
    let umount = ovl.run(["umount", "deep"]);
    let rm = ovl.run(["rm", "deep"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        umount.status.success(),
        "ovl umount: {}",
        String::from_utf8_lossy(&umount.stderr)
    );
    assert!(
        rm.status.success(),
        "ovl rm: {}",
        String::from_utf8_lossy(&rm.stderr)
    );
    check_root_consistent(&ovl.root).unwrap_or_else(|e| panic!("{e:#}"));

    // rmi releases the whole chain: every layer, its overlay2 dir and its l/ link.
    let started = Instant::now();
    let out = ovl.ok(["rmi", "ovl-deep:500"]);
    eprintln!(
        "timing: ovl rmi of {N_LAYERS} layers: {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Deleted: ")).count(),
        N_LAYERS + 1,
        "{out}"
    );
    assert!(ovl_tests::layerdb(&ovl.root).is_empty());
    assert_eq!(
        fs::read_dir(ovl.root.join("overlay2"))
            .expect("overlay2")
            .count(),
        1,
        "only l/ left"
    );
    assert_eq!(
        fs::read_dir(ovl.root.join("overlay2/l"))
            .expect("l")
            .count(),
        0
    );
}
