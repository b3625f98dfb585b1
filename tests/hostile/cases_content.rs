//! Load cases about what entries carry: xattrs, metadata, compression and PAX sizes.

use super::*;

/// Overlay and oversized xattrs.
pub(super) fn xattr_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- xattrs
    let overlay_records: [(&[u8], &[u8]); 5] = [
        (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
        (b"SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        (
            b"SCHILY.xattr.trusted.overlay.metacopy",
            b"\x00\x04\x00\x00",
        ),
        (b"SCHILY.xattr.user.overlay.opaque", b"y"),
        (b"SCHILY.xattr.user.kept", b"1"),
    ];
    let mut tar = TarBuilder::new();
    tar.pax(&overlay_records).dir("xd/");
    tar.pax(&overlay_records).file("xd/xf", b"xattrs");
    cases.push(layer_case(
        base,
        "xattr-overlay",
        "trusted.overlay.{opaque,redirect,metacopy} and user.overlay.opaque on a file and a dir: dropped, user.kept stays",
        tar.finish(),
        contain(|diff, _| {
            for rel in ["xd", "xd/xf"] {
                let path = diff.join(rel);
                for name in [
                    "trusted.overlay.opaque",
                    "trusted.overlay.redirect",
                    "trusted.overlay.metacopy",
                    "user.overlay.opaque",
                ] {
                    expect_xattr(&path, name, None)?;
                }
                expect_xattr(&path, "user.kept", Some(b"1"))?;
            }
            Ok(())
        }),
    )
    .in_docker_checked(
        "Docker sets every SCHILY.xattr record, the overlay ones included, so they act on the mount",
        |diff, _| {
            let dir = diff.join("xd");
            expect_xattr(&dir, "trusted.overlay.opaque", Some(b"y"))?;
            expect_xattr(&dir, "trusted.overlay.redirect", Some(b"/etc"))?;
            expect_xattr(&dir.join("xf"), "user.overlay.opaque", Some(b"y"))
        },
    ));

    let huge = vec![b'v'; HUGE_XATTR_LEN];
    let mut tar = TarBuilder::new();
    tar.pax(&[(b"SCHILY.xattr.user.huge", &huge)])
        .file("huge-xattr", b"x");
    cases.push(rejected_layer(
        base,
        "xattr-huge",
        "a 200 KiB xattr value is beyond XATTR_SIZE_MAX: setxattr fails (E2BIG) and so does the layer",
        tar.finish(),
        &["huge-xattr"],
    ));

    cases
}

/// Impossible owners, modes, sizes and times, setuid files and devices.
pub(super) fn metadata_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- metadata
    let mut tar = TarBuilder::new();
    tar.pax(&[(b"uid", b"4294967296")]).file("big-uid", b"x");
    cases.push(rejected_layer(
        base,
        "uid-beyond-32-bits",
        "PAX uid=4294967296 does not fit a uid_t: refused (Docker's lchown truncates it to 0, root)",
        tar.finish(),
        &["big-uid"],
    )
    .in_docker_checked(
        "Docker passes the uid to lchown, whose 32-bit uid_t truncates 2^32 to 0: the file is root's",
        |diff, _| {
            let meta = fs::symlink_metadata(diff.join("big-uid"))?;
            ensure!(meta.uid() == 0, "big-uid is owned by {}", meta.uid());
            Ok(())
        },
    ));

    let mut tar = TarBuilder::new();
    tar.entry(
        &Header {
            size_field: Some([0xff; 12]),
            ..Header::new(b"negative-size", b'0')
        },
        b"",
    );
    cases.push(rejected_layer(
        base,
        "size-negative",
        "a base-256 size of -1: invalid header (Go: ErrHeader)",
        tar.finish(),
        &["negative-size"],
    ));

    let mut tar = TarBuilder::new();
    tar.entry(
        &Header {
            size_field: Some(octal_field::<12>(10_000)),
            ..Header::new(b"short-data", b'0')
        },
        &[b's'; 100],
    );
    cases.push(rejected_layer(
        base,
        "size-truncated",
        "a size of 10000 with 100 bytes of data and then the end of the stream: unexpected EOF",
        tar.unterminated(),
        &["short-data"],
    ));

    let mut tar = TarBuilder::new();
    tar.entry(
        &Header {
            mode: 0o666,
            dev: (1, 3),
            ..Header::new(b"dev-null", b'3')
        },
        b"",
    )
    .entry(
        &Header {
            mode: 0o660,
            gid: 6,
            dev: (8, 0),
            ..Header::new(b"dev-sda", b'4')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "device-nodes",
        "a char device 1:3 and a block device 8:0: kept as nodes in the layer, never opened",
        tar.finish(),
        contain(|diff, _| {
            expect_device(diff, "dev-null", 'c', (1, 3), 0o666)?;
            expect_device(diff, "dev-sda", 'b', (8, 0), 0o660)
        }),
    ));

    let m = marker("setuid-root");
    let script = format!("#!/bin/sh\ntouch /tmp/{m}\n");
    let expected_script = script.clone();
    let mut tar = TarBuilder::new();
    tar.entry(
        &Header {
            mode: 0o4755,
            ..Header::new(b"suid-root", b'0')
        },
        script.as_bytes(),
    );
    cases.push(layer_case(
        base,
        "setuid-root",
        "a setuid-root script: kept as data with mode 4755 and owner root, never executed",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "suid-root", expected_script.as_bytes(), 0o4755)?;
            let meta = fs::symlink_metadata(diff.join("suid-root"))?;
            ensure!(meta.uid() == 0, "suid-root is owned by {}", meta.uid());
            Ok(())
        }),
    ));

    cases
}

/// Gzip bombs, trailing and concatenated gzip members, damaged zstd.
pub(super) fn compression_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- compression
    let (bomb, bomb_diff_id) = gzip_bomb().clone();
    eprintln!(
        "gzip bomb: {} bytes of gzip inflating to {} bytes",
        bomb.len(),
        BOMB_FILE_LEN + 1536
    );
    let what =
        "a gzip bomb (2 GiB of zeros) loaded with --max-layer-size 100MiB: stopped at the limit";
    let expect = bomb_refusal(layer_member("gzip-bomb"));
    let case = layer_case_blob(base, "gzip-bomb", what, bomb, bomb_diff_id, expect);
    cases.push(case.bomb_limited());

    let tar = TarBuilder::new().file("gzip-trailing", b"data").finish();
    let diff_id = sha256_digest(&tar);
    let mut blob = gzip(&tar);
    blob.extend_from_slice(b"this is not a gzip member header, it is trailing garbage");
    let mut case = layer_case_blob(
        base,
        "gzip-trailing-garbage",
        "garbage after the gzip member: Go's multistream reader fails on the next header",
        blob,
        diff_id,
        reject_naming("gzip-trailing-garbage", &[]),
    );
    if Path::new(UNPIGZ).exists() {
        case = case.in_docker_checked(
            "with pigz installed, dockerd decompresses through unpigz, which warns about the \
             trailing garbage and ignores it: the layer loads",
            |diff, _| expect_file(diff, "gzip-trailing", b"data", 0o644),
        );
    }
    cases.push(case);

    let content: Vec<u8> = (0..20_000u32)
        .flat_map(|idx| format!("line {idx}\n").into_bytes())
        .collect();
    let tar = TarBuilder::new()
        .file("gzip-concatenated", &content)
        .finish();
    let diff_id = sha256_digest(&tar);
    let half = tar.len() / 2 + 7;
    let mut blob = gzip(&tar[..half]);
    blob.extend_from_slice(&gzip(&tar[half..]));
    cases.push(layer_case_blob(
        base,
        "gzip-concatenated",
        "two concatenated gzip members make one stream (RFC 1952): loaded",
        blob,
        diff_id,
        contain(move |diff, _| expect_file(diff, "gzip-concatenated", &content, 0o644)),
    ));

    let noise: Vec<u8> = (0..200_000u32)
        .flat_map(|idx| format!("{:x}", idx.wrapping_mul(2_654_435_761)).into_bytes())
        .collect();
    let tar = TarBuilder::new().file("zstd-damaged", &noise).finish();
    let diff_id = sha256_digest(&tar);
    let mut blob = zstd_with_checksum(&tar);
    let middle = blob.len() / 2;
    for byte in &mut blob[middle..middle + 32] {
        *byte ^= 0xa5;
    }
    cases.push(layer_case_blob(
        base,
        "zstd-damaged",
        "a zstd frame with a damaged block: decoding (or the frame checksum, or the DiffID) fails",
        blob,
        diff_id,
        reject_naming("zstd-damaged", &[]),
    ));

    cases
}

/// PAX size records that disagree with the ustar size field.
pub(super) fn pax_size_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    // ---- PAX size records that disagree with the ustar size field: Go's reader, and so
    // Docker, always takes the PAX size; readers that did not (tokio-tar, TARmageddon; tar-rs up
    // to 0.4.44) saw other members than Docker does.
    let smuggled_data = b"smuggled\n";
    let smuggled_header = Header::new(b"smuggled", b'0').bytes(smuggled_data.len() as u64);
    let mut hidden = smuggled_header.to_vec();
    hidden.extend_from_slice(smuggled_data);
    hidden.resize(1024, 0);
    let mut tar = TarBuilder::new();
    tar.pax(&[(b"size", b"1024")]).entry(
        &Header {
            size_field: Some(octal_field::<12>(0)),
            ..Header::new(b"outer", b'0')
        },
        &hidden,
    );
    let expected_outer = hidden.clone();
    cases.push(layer_case(
        base,
        "pax-size-hides-member",
        "ustar size 0 but PAX size 1024 (TARmageddon): the 1024 bytes, a header among them, are outer's data",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "outer", &expected_outer, 0o644)?;
            expect_absent(diff, "smuggled")
        }),
    ));

    let mut tar = TarBuilder::new();
    let mut after = smuggled_header.to_vec();
    after.extend_from_slice(smuggled_data);
    tar.pax(&[(b"size", b"0")]).entry(
        &Header {
            size_field: Some(octal_field::<12>(512)),
            ..Header::new(b"outer", b'0')
        },
        &after,
    );
    cases.push(layer_case(
        base,
        "pax-size-reveals-member",
        "ustar size 512 but PAX size 0 (tar-rs <= 0.4.44 read 512): outer is empty and the next block is a member",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "outer", b"", 0o644)?;
            expect_file(diff, "smuggled", smuggled_data, 0o644)
        }),
    ));

    cases
}
