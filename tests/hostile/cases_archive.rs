//! Archive-level load cases (members, layers, manifests) and the `ovl import` cases.

use super::*;

/// A valid one-file layer of its own for the case `name`.
fn valid_layer(name: &str) -> Vec<u8> {
    TarBuilder::new()
        .file(&format!("archive-{name}"), name.as_bytes())
        .finish()
}

/// Archive members: PAX sizes, escaping layer and config members, config id mismatches.
pub(super) fn archive_member_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- archive level
    let name = "archive-pax-size";
    let layer = TarBuilder::new()
        .file("archive-pax-size", b"the image Docker sees")
        .finish();
    let config = base.config_with(&layer);
    let tag = tag_of(name);
    let manifest = manifest_json(&[(
        &config_member(&config),
        &[BASE_MEMBER, &layer_member(name)],
        &tag,
    )]);
    let mut hidden = Header {
        mtime: 1_700_000_000,
        ..Header::new(b"manifest.json", b'0')
    }
    .bytes(manifest.len() as u64)
    .to_vec();
    hidden.extend_from_slice(&manifest);
    let input = ArchiveBuilder::on_base(base)
        .file(&layer_member(name), &layer)
        .config(&config)
        .raw(|tar| {
            tar.pax(&[(b"size", b"0")]).entry(
                &Header {
                    size_field: Some(octal_field::<12>(512)),
                    ..Header::new(b"decoy", b'0')
                },
                &hidden,
            );
        })
        .finish();
    cases.push(archive_case(
        name,
        "the archive's manifest.json follows a member whose PAX size 0 overrides a ustar size of 512: found as Docker finds it",
        input,
        contain(|diff, _| expect_file(diff, "archive-pax-size", b"the image Docker sees", 0o644)),
    ));

    // A manifest naming a member outside the archive, as a layer or as the config.
    for (name, what, bad_member, as_config) in [
        (
            "manifest-layer-dotdot",
            "manifest.json names a layer ../x/layer.tar outside the archive",
            "../x/layer.tar",
            false,
        ),
        (
            "manifest-layer-absolute",
            "manifest.json names the layer /etc/passwd",
            "/etc/passwd",
            false,
        ),
        (
            "manifest-config-dotdot",
            "manifest.json names the config ../config.json",
            "../config.json",
            true,
        ),
        (
            "manifest-config-absolute",
            "manifest.json names the config /etc/passwd",
            "/etc/passwd",
            true,
        ),
    ] {
        let layer = valid_layer(name);
        let config = base.config_with(&layer);
        let (config_ref, layer_ref) = if as_config {
            (bad_member.to_string(), layer_member(name))
        } else {
            (config_member(&config), bad_member.to_string())
        };
        let input = ArchiveBuilder::on_base(base)
            .file(&layer_member(name), &layer)
            .config(&config)
            .manifest(&[(&config_ref, &[BASE_MEMBER, &layer_ref], &tag_of(name))])
            .finish();
        cases.push(archive_case(
            name,
            what,
            input,
            Expect::Reject(needles(&[&[bad_member]])),
        ));
    }

    let name = "config-id-mismatch";
    let layer = valid_layer(name);
    let config = base.config_with(&layer);
    let real_id = sha256_digest(&config);
    let wrong_member = format!(
        "{}.json",
        sha256_digest(b"another config").trim_start_matches("sha256:")
    );
    let tag = tag_of(name);
    let input = ArchiveBuilder::on_base(base)
        .file(&layer_member(name), &layer)
        .file(&wrong_member, &config)
        .manifest(&[(&wrong_member, &[BASE_MEMBER, &layer_member(name)], &tag)])
        .finish();
    cases.push(archive_case(
        name,
        "the config is stored as <other id>.json: its bytes do not hash to the id its name promises",
        input,
        Expect::Reject(needles(&[&[&wrong_member]])),
    )
    .in_docker_checked(
        "Docker never compares a config with its member name and loads it under its real id",
        move |_, image| {
            ensure!(
                image["Id"] == real_id.as_str(),
                "Docker's image id is {}, not {real_id}",
                image["Id"]
            );
            Ok(())
        },
    ));

    cases
}

/// Layers that do not match the config: wrong DiffIDs, missing and repeated layers.
pub(super) fn archive_layer_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    let name = "diffid-mismatch";
    let layer = valid_layer(name);
    let wrong = sha256_digest(b"not this layer");
    cases.push(layer_case_blob(
        base,
        name,
        "the config's DiffID is not the layer's: the layer is unpacked, found wrong and removed",
        layer,
        wrong.clone(),
        reject_naming(name, &[wrong.trim_start_matches("sha256:")]),
    ));

    let name = "missing-layer";
    let layer = valid_layer(name);
    let config = base.config_with(&layer);
    let input = ArchiveBuilder::on_base(base)
        .config(&config)
        .base_manifest(&config, name)
        .finish();
    cases.push(archive_case(
        name,
        "manifest.json names a layer blob the archive does not have",
        input,
        reject_naming(name, &[]),
    ));

    let name = "layer-twice";
    let layer = TarBuilder::new().file("twice", b"listed twice").finish();
    let layer_diff_id = sha256_digest(&layer);
    let config = image_config(&[
        base.diff_id.clone(),
        layer_diff_id.clone(),
        layer_diff_id.clone(),
    ]);
    let tag = tag_of(name);
    let input = ArchiveBuilder::on_base(base)
        .file(&layer_member(name), &layer)
        .config(&config)
        .manifest(&[(
            &config_member(&config),
            &[BASE_MEMBER, &layer_member(name), &layer_member(name)],
            &tag,
        )])
        .finish();
    let base_diff_id = base.diff_id.clone();
    cases.push(archive_case(
        name,
        "the same layer listed twice (valid in Docker): three layers, the last two alike",
        input,
        contain(move |diff, image| {
            expect_file(diff, "twice", b"listed twice", 0o644)?;
            let layers = &image["RootFS"]["Layers"];
            let expected = serde_json::json!([base_diff_id.as_str(), layer_diff_id, layer_diff_id]);
            ensure!(
                *layers == expected,
                "RootFS.Layers is {layers}, not {expected}"
            );
            Ok(())
        }),
    ));

    cases
}

/// Huge and unsafe manifests.
pub(super) fn manifest_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    let name = "manifest-huge";
    let config = image_config(std::slice::from_ref(&base.diff_id));
    let mut manifest = Vec::with_capacity(HUGE_MANIFEST_ENTRIES * 44);
    manifest.push(b'[');
    for idx in 0..HUGE_MANIFEST_ENTRIES {
        if idx > 0 {
            manifest.push(b',');
        }
        manifest.extend_from_slice(br#"{"Config":"c.json","Layers":["b/layer.tar"]}"#);
    }
    manifest.push(b']');
    let input = ArchiveBuilder::new()
        .file("b/layer.tar", &base.tar)
        .file("c.json", &config)
        .file("manifest.json", &manifest)
        .finish();
    cases.push(
        archive_case(
            name,
            "manifest.json with 10^6 images (43 MB): must end within 10 s and 512 MiB",
            input,
            Expect::Bounded,
        )
        .in_docker(Docker::NotRun(
            "Docker handles the million images one after the other, for minutes",
        )),
    );

    let name = "manifest-huge-layers";
    let layer_names: Vec<&str> = vec!["b/layer.tar"; HUGE_MANIFEST_ENTRIES];
    let diff_ids = vec![base.diff_id.clone(); HUGE_MANIFEST_ENTRIES];
    let config = image_config(&diff_ids);
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file("b/layer.tar", &base.tar)
        .config(&config)
        .manifest(&[(&config_member(&config), &layer_names, &tag)])
        .finish();
    cases.push(
        archive_case(
            name,
            "one image with 10^6 layers (a 75 MB config): must end within 10 s and 512 MiB",
            input,
            Expect::Bounded,
        )
        .in_docker(Docker::NotRun(
            "Docker unpacks 125 copies of the base layer before its depth limit stops the load",
        )),
    );

    cases.push(archive_case(
        "manifest-invalid-json",
        "manifest.json is not JSON",
        ArchiveBuilder::on_base(base)
            .file("manifest.json", br#"[{"Config": "x.json", "Layers": ["#)
            .finish(),
        Expect::Reject(needles(&[&["manifest.json"]])),
    ));

    for (name, what, target) in [
        (
            "layer-symlink-etc-passwd",
            "the layer member is a symlink to /etc/passwd",
            "/etc/passwd",
        ),
        (
            "layer-symlink-dotdot",
            "the layer member is a symlink to ../x, outside the archive",
            "../../x",
        ),
    ] {
        let layer = valid_layer(name);
        let config = base.config_with(&layer);
        let input = ArchiveBuilder::on_base(base)
            .symlink(&layer_member(name), target)
            .config(&config)
            .base_manifest(&config, name)
            .finish();
        cases.push(archive_case(
            name,
            what,
            input,
            reject_naming(name, &[target]),
        ));
    }

    cases
}

/// Layer cases run through `ovl import` as rootfs tarballs.
pub(super) fn import_cases() -> Vec<Case> {
    let import = |name: &str, what: &'static str, input: Vec<u8>, expect: Expect| Case {
        name: name.to_string(),
        what,
        docker: Docker::Same,
        docker_check: None,
        via: Via::Import,
        input,
        args: Vec::new(),
        tag: tag_of(name),
        expect,
    };
    let file_needle = |name: &str| format!("{name}.tar");
    let mut cases = Vec::new();

    let m = marker("import-dotdot");
    let entry = format!("../{m}");
    cases.push(
        import(
            "import-dotdot",
            "a tarball member named ../x: refused",
            TarBuilder::new().file(&entry, b"evil").finish(),
            Expect::Reject(vec![
                vec![file_needle("import-dotdot")],
                vec![entry.clone()],
            ]),
        )
        .in_docker_at_layer_root(m),
    );

    let m = marker("import-symlink-root");
    let inside = format!("etc/{m}");
    cases.push(import(
        "import-symlink-root",
        "l -> / then l/etc/x: written to the layer's etc/x",
        TarBuilder::new()
            .symlink("l", "/")
            .file(&format!("l/etc/{m}"), b"imported through l")
            .finish(),
        contain(move |diff, _| expect_file(diff, &inside, b"imported through l", 0o644)),
    ));

    cases.push(import(
        "import-hardlink-passwd",
        "a hardlink to /etc/passwd: missing in the layer",
        TarBuilder::new()
            .hardlink("link-passwd", "/etc/passwd")
            .finish(),
        Expect::Reject(vec![
            vec![file_needle("import-hardlink-passwd")],
            vec!["link-passwd".into()],
        ]),
    ));

    cases.push(import(
        "import-whiteout-symlink",
        "l -> ../../../.. then l/.wh.keep: the whiteout lands in the layer",
        empty_through_link("../../../..", ".wh.keep"),
        contain(|diff, _| expect_whiteout(diff, "keep")),
    ));

    let mut tar = TarBuilder::new();
    tar.pax(&[(b"SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("redirected/");
    cases.push(
        import(
            "import-xattr-redirect",
            "trusted.overlay.redirect on a directory: dropped",
            tar.finish(),
            contain(|diff, _| {
                expect_xattr(&diff.join("redirected"), "trusted.overlay.redirect", None)
            }),
        )
        .in_docker_checked(
            "Docker sets trusted.overlay.redirect on the directory",
            |diff, _| {
                expect_xattr(
                    &diff.join("redirected"),
                    "trusted.overlay.redirect",
                    Some(b"/etc"),
                )
            },
        ),
    );

    let bomb = gzip_bomb().0.clone();
    let what = "a gzip bomb imported with --max-layer-size 100MiB: stopped at the limit";
    let name = "import-gzip-bomb";
    let case = import(name, what, bomb, bomb_refusal(file_needle(name)));
    cases.push(case.bomb_limited());

    cases
}
