//! The corpus of the differential test: every layer with what Docker does with it.

use super::*;

/// A case of a layer of `members` that Docker loads.
fn loads(name: &'static str, members: &[Vec<u8>]) -> Case {
    Case::new(name, Docker::Loads, layer(members))
}

/// A case of a layer of `members` that Docker refuses.
fn refuses(name: &'static str, members: &[Vec<u8>]) -> Case {
    Case::new(name, Docker::Refuses, layer(members))
}

/// One case a line where it fits: a table, not code to lay out.
#[rustfmt::skip]
pub(super) fn corpus(scratch: &Scratch) -> Vec<Case> {
    use Docker::{Loads, Refuses};
    let data = Some(&b"data"[..]);
    let sparse = sparse_content();
    let sparse_case = |name, options: &[&str]| {
        Case::new(name, Loads, gnu_tar_sparse(scratch, options))
            .expect("sparse", Some(sparse.as_slice()))
            .save(DockerSave::Fails)
    };
    vec![
        // Formats and names.
        loads("ustar-plain", &[file_member(b"a", b"data")]).expect("a", data),
        loads("v7-plain", &[v7(b"v7file", b'0', b"v7")]).expect("v7file", Some(b"v7")),
        loads("v7-nul-type-dir", &[v7(b"d/", 0, b""), v7(b"d/f", 0, b"f")])
            .expect("d", None)
            .expect("d/f", Some(b"f")),
        loads("ustar-prefix", &[ustar_version(b"00", b"pre/fix", b"file")])
            .expect("pre/fix/file", data),
        loads("ustar-version-nul", &[ustar_version(b"\0\0", b"pv", b"file")])
            .expect("pv/file", data),
        loads("gnu-prefix-text", &[gnu_with_prefix(b"gnupfx", b"foo")]).expect("gnupfx/foo", data),
        loads("gnu-times-octal", &[gnu_with_times(b"foo2")]).expect("foo2", data),
        loads("gnu-prefix-non-ascii", &[gnu_with_prefix(b"\xe9", b"foo3")]).expect("foo3", data),
        loads("star-prefix", &[star_with_prefix(b"starpfx", b"file")]).expect("starpfx/file", data),
        refuses("star-bad-atime", &[star_bad_atime(b"file")]),
        loads("pax-path-over-prefix", &[
            pax(&[("path", b"from/pax")]),
            ustar_version(b"00", b"pre", b"file"),
        ]).expect("from/pax", data),
        loads("gnu-long-name-over-prefix", &[
            gnu_long_name(b"long/name"),
            ustar_version(b"00", b"pre", b"file"),
        ]).expect("long/name", data),
        loads("gnu-long-name-empty", &[gnu_long_name(b""), file_member(b"kept", b"k")])
            .expect("kept", Some(b"k")),
        loads("gnu-long-link", &[
            gnu_long_link(&b"t".repeat(150)),
            symlink_member(b"link", b"short"),
        ])
            .expect("link", None),
        // Numbers.
        loads("numbers-space-padded", &[
            with_fields(b"sp", &[(100, b"  644 \0\0"), (124, b"     4      ")]),
        ])
            .expect("sp", data),
        loads("numbers-unterminated", &[
            with_fields(b"un", &[(100, b"00000644"), (124, b"000000000004")]),
        ])
            .expect("un", data),
        loads("numbers-base-256", &[with_fields(b"b256", &[
            (108, &base256::<8>(1000)),
            (124, &base256::<12>(4)),
            (136, &base256::<12>(MTIME)),
        ])]).expect("b256", data),
        refuses("numbers-plus-sign", &[with_fields(b"plus", &[(100, b"+000644\0")])]),
        refuses("numbers-bad-devmajor", &[with_fields(b"dev", &[(329, b"9999999\0")])]),
        loads("negative-size-symlink", &[negative_size_symlink()])
            .expect("nsl", None)
            .save(DockerSave::Fails),
        refuses("negative-size-pax-fixed", &[
            pax(&[("size", b"4")]),
            with_fields(b"neg", &[(124, &base256::<12>(u64::MAX))]),
        ]),
        loads("size-on-directory", &[dir_with_size(b"sized", 1024), file_member(b"after", b"a")])
            .expect("sized", None)
            .expect("after", Some(b"a"))
            .save(DockerSave::Fails),
        loads("checksum-signed", &[signed_checksum_member()]).expect("signed", data),
        refuses("checksum-bad", &[bad_checksum_member()]),
        loads("empty-file", &[file_member(b"empty", b"")]).expect("empty", Some(b"")),
        loads("big-file", &[file_member(b"big", &big_data())]).expect("big", Some(&big_data())),
        loads("zero-file", &[file_member(b"zeros", &vec![0u8; 1 << 20])])
            .expect("zeros", Some(&vec![0u8; 1 << 20])),
        refuses("typeflag-contiguous", &[typed_member(b"cont", b'7')]),
        // PAX records.
        loads("pax-overrides-every-field", &[
            pax(&[
                ("path", b"pax/name"), ("uid", b"1234"), ("gid", b"+5678"),
                ("mtime", b"1600000000.123456789"), ("atime", b"1600000001.5"), ("size", b"7"),
                ("SCHILY.xattr.user.dialect", b"v\nw"), ("uname", b"nobody"),
            ]),
            with_data(b"ignored-name", b"payload"),
        ]).expect("pax/name", Some(b"payload")),
        loads("pax-linkpath", &[
            pax(&[("linkpath", b"target/from/pax")]),
            symlink_member(b"plink", b"short"),
        ])
            .expect("plink", None),
        loads("pax-empty-values", &[
            pax(&[("path", b""), ("size", b"")]),
            file_member(b"keep", b"data"),
        ])
            .expect("keep", data),
        loads("pax-global-header", &[
            pax_global(&[("path", b"global"), ("comment", b"hello")]),
            file_member(b"g", b"g"),
        ]).expect("g", Some(b"g")),
        loads("pax-global-bad-uid", &[pax_global(&[("uid", b"abc")]), file_member(b"g", b"g")]),
        loads("pax-local-dropped-by-global", &[
            pax(&[("path", b"lost")]),
            pax_global(&[("comment", b"x")]),
            file_member(b"kept", b"k"),
        ]).expect("kept", Some(b"k")),
        loads("pax-two-local-headers", &[
            pax(&[("path", b"first")]),
            pax(&[("mtime", b"1")]),
            file_member(b"second", b"s"),
        ]).expect("second", Some(b"s")),
        refuses("pax-bad-length", &[pax_raw(b"99 path=x\n"), file_member(b"x", b"x")]),
        refuses("pax-bad-mtime", &[pax(&[("mtime", b"1.x")]), file_member(b"m", b"m")]),
        // Sparse files.
        Case::new("sparse-old-gnu", Refuses, gnu_tar_sparse(scratch, &["--format=gnu"])),
        sparse_case("sparse-pax-0.0", &["--format=pax", "--sparse-version=0.0"]),
        sparse_case("sparse-pax-0.1", &["--format=pax", "--sparse-version=0.1"]),
        sparse_case("sparse-pax-1.0", &["--format=pax", "--sparse-version=1.0"]),
        Case::new(
            "sparse-pax-1.0-1000-bytes",
            Loads,
            pax_sparse_1x0_layer("small", 1000, &[(10, b"ten".to_vec())]),
        )
            .expect("small", Some(&sparse_bytes(1000, &[(10, b"ten")])))
            .save(DockerSave::Fails),
        loads("sparse-pax-unknown-version", &[
            pax(&[
                ("GNU.sparse.major", b"2"), ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"real"),
            ]),
            file_member(b"GNUSparseFile.0/real", b"raw"),
        ]).expect("GNUSparseFile.0/real", Some(b"raw")),
        refuses("sparse-pax-on-symlink", &[
            pax(&[("GNU.sparse.map", b"0,0"), ("GNU.sparse.numblocks", b"1")]),
            symlink_member(b"sl", b"t"),
        ]),
        refuses("sparse-pax-0.0-out-of-order", &[
            pax(&[
                ("GNU.sparse.numblocks", b"1"), ("GNU.sparse.numbytes", b"3"),
                ("GNU.sparse.offset", b"0"),
            ]),
            file_member(b"ooo", b"abc"),
        ]),
        refuses("sparse-pax-0.1-missing-data", &[
            pax(&[
                ("GNU.sparse.major", b"0"), ("GNU.sparse.minor", b"1"),
                ("GNU.sparse.numblocks", b"1"), ("GNU.sparse.map", b"0,10"),
                ("GNU.sparse.realsize", b"10"),
            ]),
            file_member(b"short", b"abc"),
        ]),
        Case::new("sparse-pax-1.0-map-too-long", Loads, sparse_map_too_long())
            .stricter("a sparse map over 1 MiB (newer Go releases refuse it too: errSparseTooLong)")
            .save(DockerSave::Fails),
        // Framing.
        Case::new("trailing-garbage", Loads, [
            layer(&[file_member(b"t", b"t")]),
            b"garbage".repeat(150),
        ].concat())
            .expect("t", Some(b"t")),
        Case::new("no-end-marker", Loads, file_member(b"n", b"n")).expect("n", Some(b"n")),
        Case::new("one-zero-block", Loads, [file_member(b"o", b"o"), vec![0; 512]].concat())
            .expect("o", Some(b"o")),
        Case::new("zero-block-then-header", Refuses, [
            vec![0; 512],
            file_member(b"z", b"z"),
        ].concat()),
        Case::new("truncated-data", Refuses, file_member(b"tr", &[b'x'; 1000])[..800].to_vec()),
        loads("pax-uid-beyond-32-bits", &[pax(&[("uid", b"4294967296")]), file_member(b"u", b"u")])
            .stricter("a uid beyond 32 bits (Docker's lchown truncates it to root's)"),
    ]
}
