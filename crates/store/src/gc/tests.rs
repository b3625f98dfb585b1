//! The planner and the executor on temp data roots.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::ids;
use crate::{AppliedLayer, ContainerRecord, DataRoot, Layer, MountsEntry, Reference};

/// A fresh data root in a temp dir.
fn new_root() -> (tempfile::TempDir, DataRoot) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = DataRoot::open_or_create(&dir.path().join("root")).expect("data root");
    (dir, root)
}

/// Registers a layer holding `files`; its DiffID is a digest of `tag` (the content is not a
/// tar here, only the store's bookkeeping matters).
fn add_layer(root: &DataRoot, parent: Option<&Layer>, tag: &str, files: &[(&str, &[u8])]) -> Layer {
    root.register_layer(
        parent,
        &mut |diff: &Path, _tar_split: &mut dyn std::io::Write| {
            for (name, bytes) in files {
                fs::write(diff.join(name), bytes)?;
            }
            Ok(AppliedLayer {
                diff_id: ids::sha256_digest(tag.as_bytes()),
                size: files.iter().map(|(_, bytes)| bytes.len() as i64).sum(),
            })
        },
    )
    .expect("register layer")
}

fn add_image(root: &DataRoot, layers: &[&Layer], created: &str) -> String {
    let diff_ids: Vec<&str> = layers.iter().map(|layer| layer.diff_id.as_str()).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created, "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []
    });
    root.put_image(&serde_json::to_vec(&config).expect("json"))
        .expect("put image")
}

fn tag(root: &DataRoot, name: &str, image_id: &str) {
    root.add_reference(&Reference::parse(name).expect("ref"), image_id)
        .expect("tag");
}

/// A container of `image_id` on `top` with an init dir and a container dir, as run-rootfs
/// makes them.
fn add_container(root: &DataRoot, image_id: &str, top: &Layer) -> MountsEntry {
    let container_id = ids::random_id().expect("id");
    let mount_id = ids::random_id().expect("id");
    let init_id = format!("{mount_id}-init");
    root.create_overlay_dir(&init_id, Some(&top.cache_id))
        .expect("init dir");
    root.create_overlay_dir(&mount_id, Some(&init_id))
        .expect("container dir");
    let entry = MountsEntry {
        container_id: container_id.clone(),
        mount_id,
        init_id: Some(init_id),
        parent: Some(top.chain_id.clone()),
    };
    root.write_mounts_entry(&entry).expect("mounts entry");
    root.write_container(&ContainerRecord {
        id: container_id,
        name: "c".into(),
        image_id: image_id.to_string(),
        created: "2026-01-01T00:00:00Z".into(),
        path: "/bin/sh".into(),
        args: vec![],
        config: serde_json::json!({}),
        running: false,
        state: Default::default(),
    })
    .expect("record");
    entry
}

fn kinds_and_names(plan: &GcPlan) -> Vec<(GarbageKind, String)> {
    plan.items
        .iter()
        .map(|item| (item.kind, item.name.clone()))
        .collect()
}

/// The plan items of unused `layers`, in plan order.
fn unused_layers(layers: &[&Layer]) -> Vec<(GarbageKind, String)> {
    layers
        .iter()
        .map(|layer| (GarbageKind::UnusedLayer, layer.chain_id.clone()))
        .collect()
}

/// `../<id>/diff`, the target of every `l/` link (format.md §4.1).
fn link_len(id: &str) -> u64 {
    format!("../{id}/diff").len() as u64
}

/// A tagged image with a container, used by most tests.
fn base(root: &DataRoot) -> (Layer, String, MountsEntry) {
    let layer = add_layer(root, None, "base", &[("a", b"12345")]);
    let image = add_image(root, &[&layer], "2026-01-01T00:00:00Z");
    tag(root, "base:1", &image);
    let container = add_container(root, &image, &layer);
    (layer, image, container)
}

/// A fresh data root with [`base`] in it.
fn root_with_base() -> (tempfile::TempDir, DataRoot, (Layer, String, MountsEntry)) {
    let (dir, root) = new_root();
    let base = base(&root);
    (dir, root, base)
}

/// An untagged child image of the base image, with one layer of its own.
fn add_child_image(root: &DataRoot, base_layer: &Layer, base_image: &str) -> (Layer, String) {
    let child_layer = add_layer(root, Some(base_layer), "child", &[("b", b"1234567")]);
    let child = add_image(root, &[base_layer, &child_layer], "2026-01-02T00:00:00Z");
    root.set_image_parent(&child, base_image).expect("parent");
    (child_layer, child)
}

#[test]
fn clean_root_has_no_garbage() {
    let (_dir, root) = new_root();
    base(&root);
    let plan = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&plan), vec![]);
    assert_eq!(plan.left_alone, vec![]);
    assert_eq!(plan.total_size(), 0);
}

#[test]
fn leftovers_are_found_with_their_sizes() {
    let (_dir, root) = new_root();
    base(&root);
    let home = root.overlay_home();
    let sha = root.root().join(LAYERDB_SHA256);

    // A write-set with one 10-byte file.
    let write_set = root.root().join(LAYERDB_TMP).join("write-set-123");
    fs::create_dir(&write_set).expect("mkdir");
    fs::write(write_set.join("diff"), b"sha256:abc").expect("write");

    // An interrupted removal: the renamed entry and the layer dir its cache-id names, with a
    // 3-byte file.
    let removed_id = "c".repeat(64);
    root.create_overlay_dir(&removed_id, None).expect("dir");
    fs::write(home.join(&removed_id).join("diff/f"), b"xyz").expect("write");
    let marker = format!("{}-{}-removing", "d".repeat(64), "e".repeat(64));
    fs::create_dir(sha.join(&marker)).expect("mkdir");
    fs::write(sha.join(&marker).join("cache-id"), &removed_id).expect("write");

    // An orphan dir with a 4-byte file, and a dangling link.
    let orphan_id = "f".repeat(64);
    root.create_overlay_dir(&orphan_id, None).expect("dir");
    fs::write(home.join(&orphan_id).join("diff/g"), b"1234").expect("write");
    let gone = "a".repeat(64);
    symlink(
        format!("../{gone}/diff"),
        home.join("l/DANGLINGDANGLINGDANGLING22"),
    )
    .expect("link");

    let plan = root.plan_gc().expect("plan");
    assert_eq!(
        kinds_and_names(&plan),
        vec![
            (
                GarbageKind::InterruptedRemoval,
                format!("{LAYERDB_SHA256}/{marker}")
            ),
            (
                GarbageKind::WriteSet,
                format!("{LAYERDB_TMP}/write-set-123")
            ),
            (GarbageKind::OrphanLayerDir, format!("overlay2/{orphan_id}")),
            (
                GarbageKind::DanglingLink,
                "overlay2/l/DANGLINGDANGLINGDANGLING22".to_string()
            ),
        ]
    );
    // Sizes by Docker's directory.Size rule: file sizes, the 26-byte `link` file, the link's
    // target length; directories count nothing.
    let sizes: Vec<u64> = plan.items.iter().map(|item| item.size).collect();
    assert_eq!(
        sizes,
        vec![
            64 + 26 + 3 + link_len(&removed_id),
            10,
            26 + 4 + link_len(&orphan_id),
            link_len(&gone),
        ]
    );
    assert_eq!(plan.total_size(), sizes.iter().sum::<u64>());
    assert_eq!(plan.left_alone, vec![]);
}

#[test]
fn dangling_images_follow_docker_image_prune() {
    let (_dir, root, (base_layer, base_image, _)) = root_with_base();
    // An untagged child of the tagged base: dangling.
    let (child_layer, child) = add_child_image(&root, &base_layer, &base_image);
    // An untagged intermediate with an untagged head on it: both go, the head first.
    let mid_layer = add_layer(&root, Some(&base_layer), "mid", &[("m", b"mm")]);
    let mid = add_image(&root, &[&base_layer, &mid_layer], "2026-01-03T00:00:00Z");
    let head_layer = add_layer(&root, Some(&mid_layer), "head", &[("h", b"hhh")]);
    let head = add_image(
        &root,
        &[&base_layer, &mid_layer, &head_layer],
        "2026-01-04T00:00:00Z",
    );
    root.set_image_parent(&head, &mid).expect("parent");
    // An untagged image a container uses, and an untagged intermediate under a tagged image:
    // both stay.
    let used_layer = add_layer(&root, None, "used", &[("u", b"u")]);
    let used = add_image(&root, &[&used_layer], "2026-01-05T00:00:00Z");
    add_container(&root, &used, &used_layer);
    let below_tag = add_image(&root, &[&base_layer], "2026-01-06T00:00:00Z");
    let tagged = add_image(&root, &[&base_layer], "2026-01-07T00:00:00Z");
    root.set_image_parent(&tagged, &below_tag).expect("parent");
    tag(&root, "tagged:1", &tagged);

    let plan = root.plan_gc().expect("plan");
    let mut images: Vec<String> = plan
        .items
        .iter()
        .filter(|item| item.kind == GarbageKind::DanglingImage)
        .map(|item| item.name.clone())
        .collect();
    let head_at = images
        .iter()
        .position(|id| *id == head)
        .expect("head pruned");
    let mid_at = images.iter().position(|id| *id == mid).expect("mid pruned");
    assert!(
        head_at < mid_at,
        "a child goes before its parent: {images:?}"
    );
    images.sort();
    let mut expected = vec![child.clone(), mid.clone(), head.clone()];
    expected.sort();
    assert_eq!(images, expected);
    // Their own layers go too, children first; the base layer stays.
    let layers: Vec<(String, u64)> = plan
        .items
        .iter()
        .filter(|item| item.kind == GarbageKind::UnusedLayer)
        .map(|item| (item.name.clone(), item.size))
        .collect();
    let head_at = layers.iter().position(|(id, _)| *id == head_layer.chain_id);
    let mid_at = layers.iter().position(|(id, _)| *id == mid_layer.chain_id);
    assert!(head_at < mid_at, "{layers:?}");
    let mut layers = layers;
    layers.sort();
    let mut expected = vec![
        (child_layer.chain_id.clone(), 7),
        (mid_layer.chain_id.clone(), 2),
        (head_layer.chain_id.clone(), 3),
    ];
    expected.sort();
    assert_eq!(layers, expected);
    assert_eq!(plan.total_size(), 12);
}

#[test]
fn layers_no_image_or_container_needs_are_unused() {
    let (_dir, root, (base_layer, _, _)) = root_with_base();
    // A chain of two layers no image names, on the base layer; and a layer only a container
    // without image (a mounts entry) names.
    let lone = add_layer(&root, Some(&base_layer), "lone", &[("x", b"xx")]);
    let lone_top = add_layer(&root, Some(&lone), "lone-top", &[("y", b"yyy")]);
    let held = add_layer(&root, None, "held", &[("z", b"z")]);
    let mount_id = ids::random_id().expect("id");
    root.create_overlay_dir(&mount_id, Some(&held.cache_id))
        .expect("dir");
    root.write_mounts_entry(&MountsEntry {
        container_id: "9".repeat(63) + "a",
        mount_id,
        init_id: None,
        parent: Some(held.chain_id.clone()),
    })
    .expect("mounts");
    let plan = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&plan), unused_layers(&[&lone_top, &lone]));
    assert_eq!(plan.total_size(), 5);
}

#[test]
fn a_container_layer_without_record_is_kept_and_named() {
    let (_dir, root, (base_layer, image, _)) = root_with_base();
    let entry = add_container(&root, &image, &base_layer);
    fs::remove_dir_all(root.root().join(CONTAINERS).join(&entry.container_id)).expect("rm");
    let plan = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&plan), vec![]);
    assert_eq!(
        plan.left_alone
            .iter()
            .map(|left| path_text(&left.path))
            .collect::<Vec<_>>(),
        vec![format!("{LAYERDB_MOUNTS}/{}", entry.container_id)]
    );
}

#[test]
fn a_dir_a_kept_lower_file_reaches_is_not_an_orphan() {
    let (_dir, root, (_, _, container)) = root_with_base();
    // The init dir of the container loses its place in the mounts entry: the container
    // layer's `lower` still reaches it, so it stays.
    let init_id = container.init_id.clone().expect("init");
    let entry_dir = root
        .root()
        .join(LAYERDB_MOUNTS)
        .join(&container.container_id);
    fs::remove_file(entry_dir.join("init-id")).expect("rm");
    let plan = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&plan), vec![]);
    assert!(root.overlay_dir(&init_id).is_dir());
}

#[test]
fn what_cannot_be_read_blocks_removals_of_its_kind() {
    let (_dir, root, (base_layer, _, _)) = root_with_base();
    let lone = add_layer(&root, Some(&base_layer), "lone", &[("x", b"xx")]);
    let orphan_id = "f".repeat(64);
    root.create_overlay_dir(&orphan_id, None).expect("dir");
    // An image config that no longer hashes to its name: it may need `lone`.
    let broken = add_image(&root, &[&base_layer, &lone], "2026-01-02T00:00:00Z");
    let content = root
        .root()
        .join("image/overlay2/imagedb/content/sha256")
        .join(broken.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&content).expect("read");
    bytes.push(b' ');
    fs::write(&content, bytes).expect("write");
    // A mounts entry without mount-id: it may own the orphan dir.
    let mounts = root.root().join(LAYERDB_MOUNTS).join("7".repeat(64));
    fs::create_dir(&mounts).expect("mkdir");
    // Names nobody writes.
    fs::create_dir(root.root().join(LAYERDB_TMP).join("mystery")).expect("mkdir");
    fs::write(root.overlay_home().join("notes.txt"), b"x").expect("write");

    let plan = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&plan), vec![]);
    let left: Vec<String> = plan
        .left_alone
        .iter()
        .map(|left| path_text(&left.path))
        .collect();
    for expected in [
        "image/overlay2/layerdb".to_string(),
        format!("{LAYERDB_MOUNTS}/{}", "7".repeat(64)),
        format!("{LAYERDB_TMP}/mystery"),
        "overlay2/notes.txt".to_string(),
        format!("overlay2/{orphan_id}"),
    ] {
        assert!(left.contains(&expected), "{expected} not in {left:?}");
    }
    assert!(root.layer(&lone.chain_id).expect("read").is_some());
}

#[test]
fn symlinks_are_never_followed() {
    let (dir, root) = new_root();
    base(&root);
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("precious"), b"keep me").expect("write");
    // A write-set that is a symlink is left alone; a real one holding a symlink to the outside
    // is removed without touching what the symlink points at.
    let tmp = root.root().join(LAYERDB_TMP);
    symlink(&outside, tmp.join("write-set-1")).expect("link");
    fs::create_dir(tmp.join("write-set-2")).expect("mkdir");
    symlink(&outside, tmp.join("write-set-2/escape")).expect("link");
    let plan = root.plan_gc().expect("plan");
    assert_eq!(
        kinds_and_names(&plan),
        vec![(GarbageKind::WriteSet, format!("{LAYERDB_TMP}/write-set-2"))]
    );
    assert_eq!(
        plan.left_alone
            .iter()
            .map(|left| path_text(&left.path))
            .collect::<Vec<_>>(),
        vec![format!("{LAYERDB_TMP}/write-set-1")]
    );
    root.execute_gc(&plan, &mut |_| {}).expect("execute");
    assert_eq!(
        fs::read(outside.join("precious")).expect("read"),
        b"keep me"
    );
    assert!(fs::symlink_metadata(tmp.join("write-set-1")).is_ok());
    assert!(fs::symlink_metadata(tmp.join("write-set-2")).is_err());

    // A symlink in the layout itself refuses the whole plan.
    let links = root.overlay_home().join("l");
    fs::rename(&links, dir.path().join("moved-l")).expect("mv");
    symlink(dir.path().join("moved-l"), &links).expect("link");
    let err = root.plan_gc().expect_err("a symlinked l/ must be refused");
    assert!(err.to_string().contains("symlink"), "{err}");
}

#[test]
fn execution_removes_exactly_the_plan() {
    let (_dir, root, (base_layer, base_image, container)) = root_with_base();
    let (child_layer, child) = add_child_image(&root, &base_layer, &base_image);
    // The dangling image also has a digest reference, as after a pull whose tag moved on.
    let repositories = root.repositories_path();
    let mut value: serde_json::Value =
        serde_json::from_slice(&fs::read(&repositories).expect("read")).expect("json");
    let digest_ref = format!("pulled@sha256:{}", "1".repeat(64));
    value["Repositories"]["pulled"] = serde_json::json!({ digest_ref.clone(): child });
    fs::write(&repositories, serde_json::to_vec(&value).expect("json")).expect("write");
    fs::create_dir(root.root().join(LAYERDB_TMP).join("write-set-9")).expect("mkdir");
    let orphan_id = "f".repeat(64);
    root.create_overlay_dir(&orphan_id, None).expect("dir");

    let plan = root.plan_gc().expect("plan");
    assert_eq!(
        kinds_and_names(&plan),
        vec![
            (GarbageKind::DanglingImage, child.clone()),
            (GarbageKind::UnusedLayer, child_layer.chain_id.clone()),
            (GarbageKind::WriteSet, format!("{LAYERDB_TMP}/write-set-9")),
            (GarbageKind::OrphanLayerDir, format!("overlay2/{orphan_id}")),
        ]
    );
    let mut seen = Vec::new();
    root.execute_gc(&plan, &mut |item| seen.push(item.name.clone()))
        .expect("execute");
    assert_eq!(seen.len(), 4);
    assert_eq!(root.images().expect("images"), vec![base_image.clone()]);
    assert_eq!(
        root.references().expect("refs"),
        vec![("base:1".to_string(), base_image)]
    );
    assert!(root.layer(&child_layer.chain_id).expect("read").is_none());
    assert!(!root.overlay_dir(&child_layer.cache_id).exists());
    assert!(root.layer(&base_layer.chain_id).expect("read").is_some());
    assert!(root.overlay_dir(&container.mount_id).is_dir());
    assert!(!root.overlay_dir(&orphan_id).exists());
    // Every `l/` link left resolves.
    for entry in fs::read_dir(root.overlay_home().join("l")).expect("ls") {
        let path = entry.expect("entry").path();
        assert!(path.join(".").is_dir(), "{} dangles", path.display());
    }
    let again = root.plan_gc().expect("plan");
    assert_eq!(kinds_and_names(&again), vec![]);
    assert_eq!(again.left_alone, vec![]);
}

#[test]
fn a_cut_down_plan_never_breaks_what_stays() {
    let (_dir, root, (base_layer, _, _)) = root_with_base();
    // An unused chain of two layers; the upper one's `lower` also reaches a dir no layerdb
    // entry names (as after a lost entry).
    let lower = add_layer(&root, Some(&base_layer), "lower", &[("x", b"xx")]);
    let upper = add_layer(&root, Some(&lower), "upper", &[("y", b"y")]);
    let stray_id = "5".repeat(63) + "b";
    root.create_overlay_dir(&stray_id, None).expect("dir");
    let stray_link = fs::read_to_string(root.overlay_dir(&stray_id).join("link")).expect("link");
    let upper_lower = root.overlay_dir(&upper.cache_id).join("lower");
    let text = fs::read_to_string(&upper_lower).expect("lower");
    fs::write(&upper_lower, format!("{text}:l/{stray_link}")).expect("write");

    let plan = root.plan_gc().expect("plan");
    // The stray dir is reached by a registered layer: not an orphan while that layer exists.
    assert_eq!(kinds_and_names(&plan), unused_layers(&[&upper, &lower]));
    // Only the lower layer, without the one on top of it: refused, nothing removed.
    let mut cut = plan.clone();
    cut.items.retain(|item| item.name == lower.chain_id);
    let err = root
        .execute_gc(&cut, &mut |_| {})
        .expect_err("removing a parent of a remaining layer must be refused");
    assert!(
        err.to_string()
            .contains("refusing to remove a layer in use"),
        "{err}"
    );
    assert!(root.layer(&lower.chain_id).expect("read").is_some());
    // The whole plan goes; then the stray dir is an orphan.
    root.execute_gc(&plan, &mut |_| {}).expect("execute");
    let again = root.plan_gc().expect("plan");
    assert_eq!(
        kinds_and_names(&again),
        vec![(GarbageKind::OrphanLayerDir, format!("overlay2/{stray_id}"))]
    );
}
