//! Load cases about entries: names, symlinks, hardlinks and whiteouts.

use super::*;

/// The layer cases and archive-level cases of `ovl load`.
pub(super) fn load_cases(base: &Base) -> Vec<Case> {
    let groups: [fn(&Base) -> Vec<Case>; 12] = [
        name_cases,
        header_name_cases,
        symlink_cases,
        hardlink_cases,
        whiteout_cases,
        xattr_cases,
        metadata_cases,
        compression_cases,
        pax_size_cases,
        archive_member_cases,
        archive_layer_cases,
        manifest_cases,
    ];
    groups.iter().flat_map(|group| group(base)).collect()
}

/// The case `name`: a layer of one member, `benign`, renamed to `path` by a PAX `path` record;
/// refused naming the layer member and `culprits`.
fn pax_path_rejected(
    base: &Base,
    (name, benign): (&str, &str),
    what: &'static str,
    path: &str,
    culprits: &[&str],
) -> Case {
    let mut tar = TarBuilder::new();
    tar.pax(&[(b"path", path.as_bytes())]).file(benign, b"x");
    rejected_layer(base, name, what, tar.finish(), culprits)
}

/// The case `name`, whose member `<prefix><marker>` (holding `evil`, in the layer `build`
/// makes) climbs out of the layer: refused naming the member; Docker writes it at the layer
/// root.
fn climbing_out(
    base: &Base,
    name: &str,
    what: &'static str,
    prefix: &str,
    build: impl FnOnce(&str) -> Vec<u8>,
) -> Case {
    let m = marker(name);
    let entry = format!("{prefix}{m}");
    rejected_layer(base, name, what, build(&entry), &[&entry]).in_docker_at_layer_root(m)
}

/// Entry names: `..`, absolute, NUL bytes, empty and long names.
pub(super) fn name_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- entry names
    cases.push(climbing_out(
        base,
        "name-dotdot",
        "a member named ../x climbs out of the layer: refused, naming it",
        "../",
        |entry| TarBuilder::new().file(entry, b"evil").finish(),
    ));
    cases.push(climbing_out(
        base,
        "name-inner-dotdot",
        "a/../../x cleans to ../x: refused",
        "a/../../",
        |entry| TarBuilder::new().dir("a/").file(entry, b"evil").finish(),
    ));

    let m = marker("name-absolute");
    let entry = format!("/etc/{m}");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "name-absolute",
        "an absolute name is taken relative to the layer root, as Docker joins it to the layer dir",
        TarBuilder::new().file(&entry, b"absolute").finish(),
        contain(move |diff, _| expect_file(diff, &inside, b"absolute", 0o644)),
    ));

    cases.push(
        rejected_layer(
            base,
            "name-empty",
            "a regular file with an empty name names the layer root: refused (Docker skips it)",
            TarBuilder::new().file("", b"nameless").finish(),
            &[],
        )
        .in_docker_skipped(),
    );

    cases.push(pax_path_rejected(
        base,
        ("name-nul", "benign-nul"),
        "a PAX path holding a NUL byte is an invalid header (Go: ErrHeader)",
        "nul\0inside",
        &[],
    ));

    let long_name: String = (0..50)
        .map(|idx| format!("component-{idx:03}-{}", "x".repeat(85)))
        .collect::<Vec<_>>()
        .join("/");
    assert!(long_name.len() > 4096 && long_name.len() < 5100);
    cases.push(pax_path_rejected(
        base,
        ("name-long-path", "benign-long"),
        "a 5000-byte PAX path is longer than PATH_MAX: the kernel refuses it (ENAMETOOLONG)",
        &long_name,
        &[&long_name[..60]],
    ));

    let long_component = format!("d/{}", "c".repeat(300));
    cases.push(pax_path_rejected(
        base,
        ("name-long-component", "benign-component"),
        "a 300-byte name component is longer than NAME_MAX (ENAMETOOLONG)",
        &long_component,
        &[&long_component[..60]],
    ));

    cases
}

/// Names that come from PAX records and GNU long-name headers.
pub(super) fn header_name_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut tar = TarBuilder::new();
    tar.entry(
        &Header {
            mode: 0o700,
            uid: 1234,
            gid: 1234,
            ..Header::new(b"./", b'5')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "name-dot-dir",
        "a ./ directory member is the layer root: skipped, its mode and owner are not applied",
        tar.finish(),
        contain(|diff, _| {
            let meta = fs::symlink_metadata(diff)?;
            ensure!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid()) == (0o755, 0, 0),
                "the layer root has mode {:o} and owner {}:{}, not 0755 root:root",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            );
            Ok(())
        }),
    ));

    cases.push(
        rejected_layer(
            base,
            "name-dot-file",
            "a regular file named . would replace the layer root: refused (Docker skips it)",
            TarBuilder::new().file(".", b"dot").finish(),
            &[],
        )
        .in_docker_skipped(),
    );

    cases.push(climbing_out(
        base,
        "name-pax-dotdot",
        "a PAX path record overrides a benign ustar name with ../x: refused",
        "../",
        |entry| {
            let mut tar = TarBuilder::new();
            tar.pax(&[(b"path", entry.as_bytes())])
                .file("benign", b"evil");
            tar.finish()
        },
    ));
    cases.push(climbing_out(
        base,
        "name-gnu-dotdot",
        "a GNU long name (type L) naming ../x: refused",
        "../",
        |entry| {
            let mut tar = TarBuilder::new();
            tar.gnu_long_name(entry.as_bytes()).file("benign", b"evil");
            tar.finish()
        },
    ));

    cases
}

/// Symlink games: members written through symlinks the layer planted, swaps and chains.
pub(super) fn symlink_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- symlink games
    let through_root = [
        (
            "symlink-root-file",
            "l -> / then l/etc/x as a file: written to the layer's etc/x",
            "/",
            Some(&b"through l"[..]),
        ),
        (
            "symlink-root-dir",
            "l -> ../../../../../../../.. then l/etc/x/ as a directory: created in the layer's etc/",
            "../../../../../../../..",
            None,
        ),
    ];
    for (name, what, target, content) in through_root {
        let m = marker(name);
        let inside = format!("etc/{m}");
        let mut tar = TarBuilder::new();
        tar.symlink("l", target);
        match content {
            Some(content) => tar.file(&format!("l/{inside}"), content),
            None => tar.dir(&format!("l/{inside}/")),
        };
        let check = contain(move |diff, _| {
            expect_symlink(diff, "l", target)?;
            match content {
                Some(content) => expect_file(diff, &inside, content, 0o644),
                None => expect_dir(diff, &inside),
            }
        });
        cases.push(layer_case(base, name, what, tar.finish(), check));
    }

    cases.push(rejected_layer(
        base,
        "symlink-root-hardlink",
        "l -> / then a hardlink to l/etc/passwd: the target is looked up in the layer, where it is missing",
        TarBuilder::new()
            .symlink("l", "/")
            .hardlink("link-to-passwd", "l/etc/passwd")
            .finish(),
        &["link-to-passwd"],
    ));

    cases.push(layer_case(
        base,
        "symlink-root-hardlink-inside",
        "l -> / then a hardlink to l/etc/passwd where the layer has etc/passwd: links the layer's file",
        TarBuilder::new()
            .symlink("l", "/")
            .dir("etc/")
            .file("etc/passwd", b"layer passwd\n")
            .hardlink("link-to-passwd", "l/etc/passwd")
            .finish(),
        contain(|diff, _| {
            expect_file(diff, "link-to-passwd", b"layer passwd\n", 0o644)?;
            expect_same_inode(diff, "link-to-passwd", "etc/passwd")
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-world-whiteout",
        "l -> ../../../.. (the sentinel tree, seen from diff/) then l/.wh.keep: the whiteout lands in the layer",
        empty_through_link("../../../..", ".wh.keep"),
        contain(|diff, _| {
            expect_symlink(diff, "l", "../../../..")?;
            expect_whiteout(diff, "keep")
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-root-whiteout-etc",
        "l -> / then l/etc/.wh.passwd: the whiteout is the layer's etc/passwd, never the host's",
        empty_through_link("/", "etc/.wh.passwd"),
        contain(|diff, _| expect_whiteout(diff, "etc/passwd")),
    ));

    let m = marker("symlink-swap-dir");
    let (inside, inside_deep) = (m.clone(), format!("etc/{m}"));
    cases.push(layer_case(
        base,
        "symlink-swap-dir",
        "a directory d is replaced (through x -> .) by a symlink d -> ../../../.., then d/x is written",
        TarBuilder::new()
            .symlink("x", ".")
            .dir("d/")
            .file("d/a", b"")
            .symlink("x/d", "../../../..")
            .file(&format!("d/{m}"), b"through d")
            .file(&format!("d/etc/{m}"), b"deeper")
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "d", "../../../..")?;
            expect_file(diff, &inside, b"through d", 0o644)?;
            expect_file(diff, &inside_deep, b"deeper", 0o644)?;
            expect_absent(diff, "a")
        }),
    ));

    let m = marker("symlink-chain");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "symlink-chain",
        "a -> b, b -> c, c -> ../../../.. then a/keep and a/etc/x: all inside the layer",
        TarBuilder::new()
            .symlink("a", "b")
            .symlink("b", "c")
            .symlink("c", "../../../..")
            .file("a/keep", b"overwritten?")
            .file(&format!("a/etc/{m}"), b"chained")
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "c", "../../../..")?;
            expect_file(diff, "keep", b"overwritten?", 0o644)?;
            expect_file(diff, &inside, b"chained", 0o644)
        }),
    ));

    cases.push(rejected_layer(
        base,
        "symlink-dotdot-sentinel",
        "s -> ../../../../sentinel-dir then s/inner: the target is missing inside the layer, so it fails",
        TarBuilder::new()
            .symlink("s", "../../../../sentinel-dir")
            .file("s/inner", b"evil")
            .finish(),
        &["s/inner"],
    ));

    cases.push(layer_case(
        base,
        "symlink-dotdot-sentinel-present",
        "s -> ../../../../sentinel-dir where the layer has sentinel-dir/: s/inner goes there",
        TarBuilder::new()
            .dir("sentinel-dir/")
            .symlink("s", "../../../../sentinel-dir")
            .file("s/inner", b"evil")
            .finish(),
        contain(|diff, _| expect_file(diff, "sentinel-dir/inner", b"evil", 0o644)),
    ));

    cases
}

/// Hardlinks to paths outside the layer, to symlinks and to whiteouts.
pub(super) fn hardlink_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- hardlinks
    cases.push(rejected_layer(
        base,
        "hardlink-dotdot",
        "a hardlink to ../../../../keep climbs out of the layer: refused before anything is linked",
        TarBuilder::new()
            .hardlink("link-out", "../../../../keep")
            .finish(),
        &["link-out"],
    ));

    cases.push(rejected_layer(
        base,
        "hardlink-etc-passwd",
        "a hardlink to /etc/passwd: looked up in the layer, where it is missing",
        TarBuilder::new()
            .hardlink("link-passwd", "/etc/passwd")
            .finish(),
        &["link-passwd"],
    ));

    let mut tar = TarBuilder::new();
    tar.symlink("s", "../../../../keep");
    tar.entry(
        &Header {
            mode: 0o777,
            uid: 4321,
            gid: 4321,
            mtime: 1,
            link: b"s".to_vec(),
            ..Header::new(b"h", b'1')
        },
        b"",
    );
    tar.symlink("p", "/etc/passwd");
    tar.entry(
        &Header {
            mode: 0o777,
            mtime: 1,
            link: b"p".to_vec(),
            ..Header::new(b"hp", b'1')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "hardlink-to-outside-symlink",
        "hardlinks to symlinks pointing at the sentinel tree and /etc/passwd: link the symlinks; their mode and mtime reach nothing",
        tar.finish(),
        contain(|diff, _| {
            expect_symlink(diff, "h", "../../../../keep")?;
            expect_same_inode(diff, "h", "s")?;
            expect_symlink(diff, "hp", "/etc/passwd")?;
            expect_same_inode(diff, "hp", "p")
        }),
    ));

    cases.push(rejected_layer(
        base,
        "hardlink-forward",
        "a hardlink to a path that a later member creates: its target does not exist yet",
        TarBuilder::new()
            .hardlink("early-link", "later")
            .file("later", b"later")
            .finish(),
        &["early-link"],
    ));

    cases.push(rejected_layer(
        base,
        "hardlink-dir",
        "a hardlink to a directory: refused (link(2) gives EPERM)",
        TarBuilder::new()
            .dir("d/")
            .hardlink("dir-link", "d")
            .finish(),
        &["dir-link"],
    ));

    cases
}

/// Odd whiteouts and opaque markers.
pub(super) fn whiteout_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- whiteouts
    for (name, entry, what) in [
        (
            "whiteout-empty",
            ".wh.",
            ".wh. hides nothing: Docker's mknod of the directory itself fails",
        ),
        (
            "whiteout-dot",
            ".wh..",
            ".wh.. would hide the directory it is in: refused",
        ),
        (
            "whiteout-dotdot",
            ".wh...",
            ".wh... would hide the parent directory: refused",
        ),
    ] {
        cases.push(layer_case(
            base,
            name,
            what,
            TarBuilder::new()
                .dir("d/")
                .file(&format!("d/{entry}"), b"")
                .finish(),
            reject_naming(name, &[&format!("d/{entry}")]),
        ));
    }

    cases.push(rejected_layer(
        base,
        "whiteout-parent",
        "../.wh.keep climbs out of the layer: refused",
        TarBuilder::new().file("../.wh.keep", b"").finish(),
        &["../.wh.keep"],
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory: ../.wh.keep whites out keep at the layer root",
        |diff, _| expect_whiteout(diff, "keep"),
    ));

    cases.push(layer_case(
        base,
        "whiteout-opaque-root",
        ".wh..wh..opq at the layer root: the layer root itself becomes opaque, as in Docker",
        TarBuilder::new()
            .file("opaque-root-file", b"f")
            .file(".wh..wh..opq", b"")
            .finish(),
        contain(|diff, _| {
            expect_xattr(diff, "trusted.overlay.opaque", Some(b"y"))?;
            expect_file(diff, "opaque-root-file", b"f", 0o644)
        }),
    ));

    cases.push(layer_case(
        base,
        "whiteout-opaque-under-symlink",
        "l -> ../../../.. then l/sentinel-dir/.wh..wh..opq: the opaque directory is the layer's",
        empty_through_link("../../../..", "sentinel-dir/.wh..wh..opq"),
        contain(|diff, _| {
            expect_dir(diff, "sentinel-dir")?;
            expect_xattr(
                &diff.join("sentinel-dir"),
                "trusted.overlay.opaque",
                Some(b"y"),
            )
        }),
    ));

    cases
}
