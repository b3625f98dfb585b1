//! The engine's operations on a data root in a temp dir, without the binary and without root:
//! import, resolution, tag, rmi's events and reference counting, prune's dry run.

use std::path::Path;

use engine::Event;

/// A one-file rootfs tarball owned by the calling user, so that no chown needs privileges.
fn rootfs_tar(content: &[u8]) -> Vec<u8> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("hello").expect("path");
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(gid));
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder.append(&header, content).expect("append");
    builder.into_inner().expect("tar")
}

fn import(root: &Path, dir: &Path, name: &str, content: &[u8]) -> String {
    let tarball = dir.join(format!("{name}.tar"));
    std::fs::write(&tarball, rootfs_tar(content)).expect("write tarball");
    let mut events = Vec::new();
    let options = engine::load::ImportOptions {
        reference: Some(name.to_string()),
        ..Default::default()
    };
    let image_id = engine::load::import(root, &tarball, &options, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("import");
    assert!(
        matches!(events.last(), Some(Event::LayerLoaded { tar_bytes, .. }) if *tar_bytes > 0),
        "{events:?}"
    );
    image_id
}

#[test]
fn import_tag_resolve_and_rmi_report_what_they_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let image_id = import(&root, dir.path(), "one:1", b"hello\n");
    assert!(image_id.starts_with("sha256:") && image_id.len() == 71);

    engine::tag::tag(&root, "one:1", "two").expect("tag");
    let data_root = engine::DataRoot::open(&root).expect("open");
    assert_eq!(
        engine::resolve::image(&data_root, "two:latest").expect("by tag"),
        image_id
    );
    assert_eq!(
        engine::resolve::image(&data_root, &image_id[7..19]).expect("by prefix"),
        image_id
    );
    let err = engine::resolve::image(&data_root, "three").expect_err("unknown");
    assert_eq!(err.to_string(), "no such image: three");

    // A tag of an image with two tags only untags.
    let mut events = Vec::new();
    engine::image::rmi(&root, &["two".to_string()], false, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("rmi two");
    assert_eq!(
        events,
        [Event::Untagged {
            name: "two:latest".into()
        }]
    );

    // The last tag takes the image and its layer with it, in that order.
    let chain_id = engine::DataRoot::open(&root)
        .and_then(|root| root.image_config(&image_id))
        .map(|config| store::chain_ids(&config.rootfs.diff_ids))
        .expect("chain");
    let mut events = Vec::new();
    engine::image::rmi(&root, &["one:1".to_string()], false, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("rmi one");
    assert_eq!(
        events,
        [
            Event::Untagged {
                name: "one:1".into()
            },
            Event::Deleted {
                id: image_id.clone()
            },
            Event::Deleted {
                id: chain_id[0].clone()
            },
        ]
    );
}

#[test]
fn rmi_keeps_a_layer_another_image_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    // The same content gives the same DiffID, so both images share the one layer.
    let first = import(&root, dir.path(), "a:1", b"same\n");
    let second = import(&root, dir.path(), "b:1", b"same\n");
    assert_ne!(first, second, "the creation times differ");
    let mut events = Vec::new();
    engine::image::rmi(&root, &["a:1".to_string()], false, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("rmi");
    assert_eq!(
        events,
        [
            Event::Untagged { name: "a:1".into() },
            Event::Deleted { id: first },
        ]
    );
}

/// moby's ImageDelete with digest references (as a pull records them): the last tag of a
/// repository takes that repository's digest references with it; a digest reference of another
/// repository keeps the image; the image goes with its last name.
#[test]
fn rmi_untags_digest_references_like_docker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let image_id = import(&root, dir.path(), "app:1", b"digests\n");
    let data_root = engine::DataRoot::open(&root).expect("open");
    let digest = format!("sha256:{}", "d".repeat(64));
    for name in ["app:1", "mirror:1"] {
        let named = store::Named::parse(name).expect("name");
        data_root
            .add_digest_reference(&named, &digest, &image_id)
            .expect("digest reference");
    }
    let app_digest = format!("app@{digest}");
    let mirror_digest = format!("mirror@{digest}");
    assert_eq!(
        engine::resolve::image(&data_root, &app_digest).expect("by digest"),
        image_id
    );
    // Named by id with names in two repositories: refused without -f.
    let err = engine::image::rmi(&root, std::slice::from_ref(&image_id), false, &mut |_| {
        Ok(())
    })
    .expect_err("several repositories");
    assert!(err.to_string().contains(&image_id), "{err}");

    let mut events = Vec::new();
    engine::image::rmi(&root, &["app:1".to_string()], false, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("rmi tag");
    assert_eq!(
        events,
        [
            Event::Untagged {
                name: "app:1".into()
            },
            Event::Untagged {
                name: app_digest.clone()
            },
        ]
    );
    let mut events = Vec::new();
    engine::image::rmi(
        &root,
        std::slice::from_ref(&mirror_digest),
        false,
        &mut |event| {
            events.push(event);
            Ok(())
        },
    )
    .expect("rmi digest");
    assert_eq!(
        events[..2],
        [
            Event::Untagged {
                name: mirror_digest
            },
            Event::Deleted { id: image_id },
        ]
    );
}

#[test]
fn an_event_error_stops_the_operation_and_is_returned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    import(&root, dir.path(), "c:1", b"c\n");
    let err = engine::image::rmi(&root, &["c:1".to_string()], false, &mut |_| {
        Err("output closed".into())
    })
    .expect_err("the callback's error");
    assert_eq!(
        err.event_error().map(ToString::to_string).as_deref(),
        Some("output closed"),
        "{err:?}"
    );
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(&err);
    while let Some(err) = cause {
        chain.push(err.to_string());
        cause = err.source();
    }
    assert_eq!(chain, ["removing image c:1", "output closed"]);
}

#[test]
fn a_dry_run_on_a_clean_root_finds_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    import(&root, dir.path(), "d:1", b"d\n");
    let mut events = Vec::new();
    let plan = engine::prune::dry_run(&root, &mut |event| {
        events.push(event);
        Ok(())
    })
    .expect("dry run");
    assert!(plan.items.is_empty(), "{:?}", plan.items);
    assert!(events.is_empty(), "{events:?}");
}
