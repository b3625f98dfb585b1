//! The data root as files on disk: modes, newline rules and the register protocol, checked against
//! the spec's tables and Docker-written fixtures (tests/data).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use store::{AppliedLayer, ContainerRecord, DataRoot, MountsEntry, Reference};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn digest(fill: char) -> String {
    format!("sha256:{}", fill.to_string().repeat(64))
}

/// A new data root `root` in a temp dir, and its path.
fn new_root() -> (tempfile::TempDir, PathBuf, DataRoot) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root_path = temp.path().join("root");
    let root = DataRoot::open_or_create(&root_path).expect("create");
    (temp, root_path, root)
}

/// A [`new_root`] with a bottom layer and a layer on it.
fn root_with_two_layers() -> (
    tempfile::TempDir,
    PathBuf,
    DataRoot,
    store::Layer,
    store::Layer,
) {
    let (temp, root_path, root) = new_root();
    let bottom = register(&root, None, &digest('a'));
    let top = register(&root, Some(&bottom), &digest('b'));
    (temp, root_path, root, bottom, top)
}

fn count_entries(dir: &Path) -> usize {
    fs::read_dir(dir).expect("read_dir").count()
}

fn register(root: &DataRoot, parent: Option<&store::Layer>, diff_id: &str) -> store::Layer {
    let diff_id = diff_id.to_string();
    root.register_layer(parent, &mut |diff_dir, tar_split| {
        fs::write(diff_dir.join("file"), b"12345")?;
        tar_split.write_all(b"not really gzip")?;
        Ok(AppliedLayer {
            diff_id: diff_id.clone(),
            size: 5,
        })
    })
    .expect("register")
}

#[test]
fn layout_has_spec_modes() {
    let (temp, root_path, root) = new_root();
    // format.md §2 directory map.
    let expected = [
        ("", 0o710),
        ("overlay2", 0o710),
        ("overlay2/l", 0o700),
        ("image", 0o700),
        ("image/overlay2", 0o700),
        ("image/overlay2/imagedb/content/sha256", 0o700),
        ("image/overlay2/imagedb/metadata/sha256", 0o700),
        ("image/overlay2/layerdb", 0o700),
        ("image/overlay2/layerdb/sha256", 0o755),
        ("image/overlay2/layerdb/mounts", 0o755),
        ("image/overlay2/layerdb/tmp", 0o755),
        ("image/overlay2/repositories.json", 0o600),
        ("containers", 0o710),
        ("tmp", 0o700),
    ];
    for (path, want) in expected {
        assert_eq!(mode(&root_path.join(path)), want, "mode of {path:?}");
    }
    assert_eq!(
        read(&root_path.join("image/overlay2/repositories.json")),
        r#"{"Repositories":{}}"#
    );
    assert!(DataRoot::open(root.root()).is_ok());
    assert!(DataRoot::open(temp.path()).is_err());
}

#[test]
fn register_writes_docker_layer_files() {
    let (_temp, root_path, root, bottom, top) = root_with_two_layers();
    assert_eq!(bottom.chain_id, digest('a'));
    assert_eq!(
        top.chain_id,
        store::chain_id(Some(&digest('a')), &digest('b'))
    );
    assert_eq!(top.parent.as_deref(), Some(digest('a').as_str()));

    let entry = root_path
        .join("image/overlay2/layerdb/sha256")
        .join(&top.chain_id[7..]);
    assert_eq!(
        mode(&entry),
        0o700,
        "the write-set keeps its 0700 mode (format.md §3.3)"
    );
    assert_eq!(read(&entry.join("diff")), digest('b'));
    assert_eq!(read(&entry.join("size")), "5");
    assert_eq!(read(&entry.join("cache-id")), top.cache_id);
    assert_eq!(read(&entry.join("parent")), digest('a'));
    for name in ["diff", "size", "cache-id", "parent", "tar-split.json.gz"] {
        assert_eq!(mode(&entry.join(name)), 0o644, "{name}");
    }
    let bottom_entry = root_path
        .join("image/overlay2/layerdb/sha256")
        .join(&bottom.chain_id[7..]);
    assert!(!bottom_entry.join("parent").exists());

    // overlay2 dirs, format.md §4.1.
    let home = root_path.join("overlay2");
    let bottom_dir = home.join(&bottom.cache_id);
    let top_dir = home.join(&top.cache_id);
    assert_eq!(mode(&bottom_dir), 0o710);
    assert_eq!(mode(&bottom_dir.join("diff")), 0o755);
    assert!(!bottom_dir.join("work").exists() && !bottom_dir.join("lower").exists());
    assert_eq!(mode(&top_dir.join("work")), 0o700);
    assert_eq!(mode(&bottom_dir.join("committed")), 0o600);
    assert_eq!(
        fs::metadata(bottom_dir.join("committed"))
            .expect("committed")
            .len(),
        0
    );
    let bottom_link = read(&bottom_dir.join("link"));
    let top_link = read(&top_dir.join("link"));
    assert_eq!(bottom_link.len(), 26);
    assert_eq!(mode(&bottom_dir.join("link")), 0o644);
    assert_eq!(read(&top_dir.join("lower")), format!("l/{bottom_link}"));
    assert_eq!(
        fs::read_link(home.join("l").join(&top_link)).expect("link"),
        Path::new(&format!("../{}/diff", top.cache_id))
    );
    assert_eq!(read(&home.join("l").join(&top_link).join("file")), "12345");

    // A third layer lists its lowers nearest first.
    let third = register(&root, Some(&top), &digest('c'));
    assert_eq!(
        read(&home.join(&third.cache_id).join("lower")),
        format!("l/{top_link}:l/{bottom_link}")
    );
    let data = root.graph_driver_data(&third.cache_id).expect("metadata");
    assert_eq!(
        data["LowerDir"],
        format!(
            "{}:{}",
            top_dir.join("diff").display(),
            bottom_dir.join("diff").display()
        )
        .as_str()
    );

    // Loading sees all three; a duplicate registration returns the existing layer.
    let mut chain_ids: Vec<String> = root
        .layers()
        .expect("layers")
        .into_iter()
        .map(|l| l.chain_id)
        .collect();
    chain_ids.sort();
    assert_eq!(chain_ids.len(), 3);
    let again = register(&root, Some(&bottom), &digest('b'));
    assert_eq!(again, top);
    let n_dirs = fs::read_dir(&home).expect("home").count();
    assert_eq!(
        n_dirs, 4,
        "three layer dirs and l/: the duplicate's dir was removed"
    );
    assert_eq!(
        count_entries(&root_path.join("image/overlay2/layerdb/tmp")),
        0
    );

    // Removal (format.md §3.4).
    root.remove_layer(&third.chain_id).expect("remove");
    assert!(root.layer(&third.chain_id).expect("lookup").is_none());
    assert!(!home.join(&third.cache_id).exists());
    assert_eq!(fs::read_dir(home.join("l")).expect("l").count(), 2);
}

#[test]
fn failed_apply_leaves_nothing() {
    let (_temp, root_path, root) = new_root();
    let bottom = register(&root, None, &digest('a'));
    let before: Vec<_> = fs::read_dir(root_path.join("overlay2"))
        .expect("home")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let err = root
        .register_layer(Some(&bottom), &mut |diff_dir, _| {
            fs::write(diff_dir.join("partial"), b"x")?;
            Err("truncated layer".into())
        })
        .expect_err("apply fails");
    assert!(format!("{err}").contains(&bottom.chain_id), "{err}");
    let after: Vec<_> = fs::read_dir(root_path.join("overlay2"))
        .expect("home")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "no overlay2 dir left");
    assert_eq!(
        count_entries(&root_path.join("overlay2/l")),
        1,
        "no l/ link left"
    );
    assert_eq!(
        count_entries(&root_path.join("image/overlay2/layerdb/tmp")),
        0,
        "no write-set left"
    );
    assert!(
        !root_path
            .join("overlay2")
            .join(&bottom.cache_id)
            .join("committed")
            .exists(),
        "committed undone"
    );
    assert_eq!(root.layers().expect("layers").len(), 1);
}

#[test]
fn size_with_newline_is_skipped_like_docker() {
    let (_temp, root_path, root, bottom, top) = root_with_two_layers();
    let entry = root_path
        .join("image/overlay2/layerdb/sha256")
        .join(&bottom.chain_id[7..]);
    fs::write(entry.join("size"), "5\n").expect("write");
    assert!(
        root.layer(&bottom.chain_id).expect("lookup").is_none(),
        "gotcha 1"
    );
    assert!(
        root.layers()
            .expect("layers")
            .iter()
            .all(|l| l.chain_id != top.chain_id),
        "children are skipped too"
    );
}

#[test]
fn images_and_references() {
    let (_temp, root_path, root) = new_root();
    let config = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/image-config-commit.json"
    ))
    .expect("fixture");
    let image_id = root.put_image(&config).expect("put");
    let sha = std::process::Command::new("sha256sum")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/image-config-commit.json"
        ))
        .output()
        .expect("sha256sum");
    assert_eq!(
        image_id,
        format!("sha256:{}", &String::from_utf8_lossy(&sha.stdout)[..64])
    );
    let content = root_path
        .join("image/overlay2/imagedb/content/sha256")
        .join(&image_id[7..]);
    assert_eq!(mode(&content), 0o600);
    assert_eq!(fs::read(&content).expect("content"), config);
    assert_eq!(root.images().expect("images"), vec![image_id.clone()]);
    assert!(!root
        .image_config(&image_id)
        .expect("parse")
        .rootfs
        .diff_ids
        .is_empty());

    root.add_reference(&Reference::parse("zeta:1").expect("ref"), &image_id)
        .expect("tag");
    root.add_reference(&Reference::parse("alpha:2").expect("ref"), &image_id)
        .expect("tag");
    root.add_reference(
        &Reference::parse("docker.io/library/alpha:1").expect("ref"),
        &image_id,
    )
    .expect("tag");
    let text = read(&root_path.join("image/overlay2/repositories.json"));
    assert_eq!(
        text,
        format!(
            r#"{{"Repositories":{{"alpha":{{"alpha:1":"{image_id}","alpha:2":"{image_id}"}},"zeta":{{"zeta:1":"{image_id}"}}}}}}"#
        )
    );
    root.remove_reference(&Reference::parse("zeta:1").expect("ref"))
        .expect("untag");
    assert!(
        !read(&root_path.join("image/overlay2/repositories.json")).contains("zeta"),
        "empty repo removed"
    );

    root.set_last_updated(&image_id).expect("lastUpdated");
    let last_updated = read(
        &root_path
            .join("image/overlay2/imagedb/metadata/sha256")
            .join(&image_id[7..])
            .join("lastUpdated"),
    );
    assert!(
        last_updated.ends_with('Z') && !last_updated.ends_with('\n'),
        "{last_updated:?}"
    );

    // Tampered content fails verification, as dockerd's does.
    fs::write(&content, b"{}").expect("tamper");
    assert!(root.image_config_bytes(&image_id).is_err());
    root.delete_image(&image_id).expect("delete");
    assert!(root.images().expect("images").is_empty());
}

#[test]
fn container_files_parse_back_and_match_docker_shape() {
    let (_temp, root_path, root) = new_root();
    let id = store::random_id().expect("id");
    let mount_id = store::random_id().expect("id");
    let entry = MountsEntry {
        container_id: id.clone(),
        mount_id: mount_id.clone(),
        init_id: Some(format!("{mount_id}-init")),
        parent: Some(digest('a')),
    };
    root.write_mounts_entry(&entry).expect("mounts");
    let dir = root_path.join("image/overlay2/layerdb/mounts").join(&id);
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(read(&dir.join("mount-id")), mount_id);
    assert_eq!(read(&dir.join("init-id")), format!("{mount_id}-init"));
    assert_eq!(mode(&dir.join("parent")), 0o644);
    assert_eq!(root.mounts_entry(&id).expect("read"), Some(entry));

    let record = ContainerRecord {
        id: id.clone(),
        name: "web".into(),
        image_id: digest('f'),
        created: store::now_rfc3339_nano(),
        path: "/bin/sh".into(),
        args: vec!["-c".into(), "true".into()],
        config: serde_json::json!({"Cmd": ["/bin/sh", "-c", "true"], "Image": "app:1"}),
        running: false,
        state: Default::default(),
    };
    root.write_container(&record).expect("write");
    let cdir = root_path.join("containers").join(&id);
    assert_eq!(mode(&cdir), 0o710);
    assert_eq!(mode(&cdir.join("config.v2.json")), 0o600);
    assert_eq!(mode(&cdir.join("hostconfig.json")), 0o644);
    let text = read(&cdir.join("config.v2.json"));
    assert!(text.ends_with("}\n"));
    // Top-level key order of the Docker-written fixture.
    let fixture: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&read(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/container-created.config.v2.json"
        ))))
        .expect("fixture");
    let ours: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("ours");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        fixture.keys().collect::<Vec<_>>()
    );
    assert!(ours["NetworkSettings"]["Networks"].is_object(), "gotcha 13");
    let back = root.containers().expect("containers");
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].name.as_str(), back[0].path.as_str(), &back[0].args),
        ("web", "/bin/sh", &record.args)
    );
    // A Docker-written record parses too.
    let docker_id = "0514edde9b14cfebfcd0a4b94ae7034dd34152947464b0fff56aa9636e0099fc";
    fs::create_dir(root_path.join("containers").join(docker_id)).expect("mkdir");
    fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/container-created.config.v2.json"
        ),
        root_path
            .join("containers")
            .join(docker_id)
            .join("config.v2.json"),
    )
    .expect("copy");
    let all = root.containers().expect("containers");
    let docker = all
        .iter()
        .find(|c| c.id == docker_id)
        .expect("docker container");
    assert_eq!(docker.name, "spec-c1");
    assert_eq!(
        docker.args,
        vec!["-c".to_string(), "sleep 1000".to_string()]
    );
    let _ = fs::metadata(&cdir).map(|m| m.uid());
}

#[test]
fn open_never_creates_and_names_the_reason() {
    let temp = tempfile::tempdir().expect("tempdir");
    let missing = temp.path().join("missing");
    let err = DataRoot::open(&missing).expect_err("missing root");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a data root: it does not exist",
            missing.display()
        )
    );
    assert!(!missing.exists(), "open created the root");
    let empty = temp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    let err = DataRoot::open(&empty).expect_err("empty root");
    assert!(err.to_string().ends_with("it is empty"), "{err}");
    assert_eq!(fs::read_dir(&empty).expect("empty").count(), 0);
    fs::write(empty.join("junk"), b"x").expect("junk");
    let err = DataRoot::open(&empty).expect_err("not a data root");
    assert!(
        err.to_string()
            .ends_with("it has neither overlay2/ nor image/overlay2/"),
        "{err}"
    );
    // A root that only has overlay2/ (a driver home without images yet) opens.
    fs::create_dir(empty.join("overlay2")).expect("mkdir");
    assert!(DataRoot::open(&empty).is_ok());
}

#[test]
fn lock_is_exclusive_until_dropped() {
    let (_temp, _, root) = new_root();
    let lock = root.lock().expect("lock");
    let try_lock = || {
        let file = fs::File::open(root.root().join("ovl.lock")).expect("open");
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    };
    assert!(!try_lock(), "a second open file description got the lock");
    drop(lock);
    assert!(try_lock(), "the lock was not released on drop");
}

#[test]
fn chain_id_of_the_spec_example() {
    // format.md §3.1: parent `sha256:dbb4…9e23` + diff `sha256:dccd…d08b` → `sha256:3051…e914`, the full
    // values taken from the Docker-written commit image (its config and layerdb `parent` file).
    assert_eq!(
        store::chain_id(
            Some("sha256:dbb48825f54dbaa2cf1de0829b3f4a8c1e6645cd4163be30090da819d6c99e23"),
            "sha256:dccdf5d381b1ccdd57a500de962f55aea0fc5d5ac86885e23daec1c2bdf3d08b"
        ),
        "sha256:305178d56c0b2af210fbbc1a6aaeab93d7a8b522cb210fec29b060784b86e914"
    );
}

#[test]
fn failed_apply_keeps_a_committed_file_it_did_not_write() {
    let (_temp, root_path, root, bottom, _middle) = root_with_two_layers();
    let committed = root_path
        .join("overlay2")
        .join(&bottom.cache_id)
        .join("committed");
    assert!(committed.exists());
    // An invalid diff id is a failure after apply; the cleanup must not touch `committed`.
    let err = root
        .register_layer(Some(&bottom), &mut |_, _| {
            Ok(AppliedLayer {
                diff_id: "sha256:short".into(),
                size: 0,
            })
        })
        .expect_err("invalid diff id");
    assert!(err.to_string().contains(&bottom.chain_id), "{err}");
    assert!(
        committed.exists(),
        "a committed file of another child was removed"
    );
    assert_eq!(count_entries(&root_path.join("overlay2")), 3);
    assert_eq!(count_entries(&root_path.join("overlay2/l")), 2);
    assert_eq!(
        count_entries(&root_path.join("image/overlay2/layerdb/tmp")),
        0
    );
}

#[test]
fn bottom_layer_metadata_and_removal_keep_parent_committed() {
    let (_temp, root_path, root, bottom, top) = root_with_two_layers();
    let home = root_path.join("overlay2");
    // format.md §4.3: no LowerDir for a parent-less layer, WorkDir and MergedDir reported anyway.
    let data = root.graph_driver_data(&bottom.cache_id).expect("metadata");
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["MergedDir", "UpperDir", "WorkDir"]);
    assert_eq!(
        data["WorkDir"],
        home.join(&bottom.cache_id)
            .join("work")
            .display()
            .to_string()
            .as_str()
    );
    assert!(root.graph_driver_data("../x").is_err());
    // format.md §3.4: the parent's committed file is never removed.
    root.remove_layer(&top.chain_id).expect("remove");
    assert!(home.join(&bottom.cache_id).join("committed").exists());
    let names: Vec<String> = fs::read_dir(root_path.join("image/overlay2/layerdb/sha256"))
        .expect("layerdb")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![bottom.chain_id[7..].to_string()],
        "no -removing marker left"
    );
    assert!(root.remove_layer(&top.chain_id).is_err());
}

#[test]
fn more_than_500_lowers_is_refused() {
    let (_temp, _, root) = new_root();
    let parent = store::random_id().expect("id");
    let child = store::random_id().expect("id");
    root.create_overlay_dir(&parent, None).expect("parent");
    // A parent with 499 lowers gives the child 500 entries: the kernel's stack limit, accepted.
    let lower = vec!["l/ABCDEFGHIJKLMNOPQRSTUVWXYZ"; 499].join(":");
    fs::write(root.overlay_dir(&parent).join("lower"), &lower).expect("lower");
    root.create_overlay_dir(&child, Some(&parent))
        .expect("500 lowers");
    assert_eq!(root.lower_entries(&child).expect("lowers").len(), 500);
    let grandchild = store::random_id().expect("id");
    let err = root
        .create_overlay_dir(&grandchild, Some(&child))
        .expect_err("501 lowers");
    assert!(err.to_string().contains("max depth exceeded"), "{err}");
    assert!(!root.overlay_dir(&grandchild).exists());
}

#[test]
fn image_metadata_parent_and_delete() {
    let (_temp, root_path, root) = new_root();
    let parent = root
        .put_image(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
        .expect("put");
    let child = root
        .put_image(br#"{"rootfs":{"type":"layers","diff_ids":[]},"os":"linux"}"#)
        .expect("put");
    assert_eq!(
        root.put_image(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
            .expect("again"),
        parent
    );
    assert!(
        root.set_image_parent(&child, &digest('9')).is_err(),
        "unknown parent"
    );
    root.set_image_parent(&child, &parent[7..]).expect("parent");
    let meta = root_path
        .join("image/overlay2/imagedb/metadata/sha256")
        .join(&child[7..]);
    assert_eq!(mode(&meta), 0o700);
    assert_eq!(mode(&meta.join("parent")), 0o600);
    assert_eq!(
        read(&meta.join("parent")),
        parent,
        "sha256: prefix, no newline"
    );
    assert_eq!(
        root.image_parent(&child).expect("parent"),
        Some(parent.clone())
    );
    // Only 64-hex names are images: leftovers of atomic writes are ignored.
    fs::write(
        root_path.join("image/overlay2/imagedb/content/sha256/.tmp-x1"),
        b"{}",
    )
    .expect("junk");
    assert_eq!(root.images().expect("images").len(), 2);
    root.delete_image(&parent).expect("delete");
    assert!(!meta.join("parent").exists(), "child's parent file removed");
    assert_eq!(root.images().expect("images"), vec![child.clone()]);
    let err = root.image_config_bytes(&parent).expect_err("gone");
    assert!(err.to_string().contains(&parent), "{err}");
}

#[test]
fn repositories_keep_digest_refs_and_unknown_repos() {
    let (_temp, root_path, root) = new_root();
    let image = digest('1');
    let manifest = digest('2');
    let path = root_path.join("image/overlay2/repositories.json");
    fs::write(
        &path,
        format!(r#"{{"Repositories":{{"busybox":{{"busybox@{manifest}":"{image}","busybox:latest":"{image}"}}}}}}"#),
    )
    .expect("seed");
    root.remove_reference(&Reference::parse("busybox").expect("ref"))
        .expect("untag");
    root.add_reference(&Reference::parse("a/b:c").expect("ref"), &image)
        .expect("tag");
    assert_eq!(
        read(&path),
        format!(
            r#"{{"Repositories":{{"a/b":{{"a/b:c":"{image}"}},"busybox":{{"busybox@{manifest}":"{image}"}}}}}}"#
        )
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        root.references().expect("refs"),
        vec![
            ("a/b:c".to_string(), image.clone()),
            (format!("busybox@{manifest}"), image.clone())
        ]
    );
}

#[test]
fn hostconfig_is_dockers_and_no_metadata_file_ends_with_a_newline() {
    let (_temp, root_path, root, _bottom, top) = root_with_two_layers();
    let image = root
        .put_image(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
        .expect("put");
    root.set_last_updated(&image).expect("lastUpdated");
    root.add_reference(&Reference::parse("x:1").expect("ref"), &image)
        .expect("tag");
    let id = store::random_id().expect("id");
    let mount_id = store::random_id().expect("id");
    root.write_mounts_entry(&MountsEntry {
        container_id: id.clone(),
        mount_id: mount_id.clone(),
        init_id: None,
        parent: Some(top.chain_id.clone()),
    })
    .expect("mounts");
    let mounts = root_path.join("image/overlay2/layerdb/mounts").join(&id);
    assert!(!mounts.join("init-id").exists(), "None writes no file");
    root.write_container(&ContainerRecord {
        id: id.clone(),
        name: "c".into(),
        image_id: image.clone(),
        created: "2026-11-22T22:39:12.52135474Z".into(),
        path: "sh".into(),
        args: Vec::new(),
        config: serde_json::json!({}),
        running: false,
        state: Default::default(),
    })
    .expect("container");
    let hostconfig = fs::read(
        root_path
            .join("containers")
            .join(&id)
            .join("hostconfig.json"),
    )
    .expect("hostconfig");
    let fixture = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/container-created.hostconfig.json"
    ))
    .expect("fixture");
    assert_eq!(
        String::from_utf8_lossy(&hostconfig),
        String::from_utf8_lossy(&fixture)
    );
    assert!(hostconfig.ends_with(b"}\n"));

    // Gotcha 2: only the json.Encoder files end with a newline.
    let mut stack = vec![root_path.clone()];
    let mut n_checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if !meta.is_file()
                || path.starts_with(root_path.join("overlay2")) && path.ends_with("diff/file")
                || ["tar-split.json.gz", "ovl.lock"].contains(&name.as_str())
            {
                continue;
            }
            let bytes = fs::read(&path).expect("read");
            let json_encoder = ["config.v2.json", "hostconfig.json"].contains(&name.as_str());
            assert_eq!(
                bytes.ends_with(b"\n"),
                json_encoder,
                "trailing newline rule of {}",
                path.display()
            );
            n_checked += 1;
        }
    }
    // 2 layerdb entries (7 files), 2 overlay dirs (link, lower, committed), image content,
    // lastUpdated, repositories.json, mount-id, parent, config.v2.json, hostconfig.json.
    assert!(n_checked >= 17, "only {n_checked} files checked");
}
