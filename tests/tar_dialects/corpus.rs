//! The corpus of the differential test: every layer with what Docker does with it.

use super::*;

pub(super) fn corpus(scratch: &Scratch) -> Vec<Case> {
    use Docker::{Loads, Refuses};
    let mut cases = vec![
        // Formats and names.
        Case::new("ustar-plain", Loads, layer(&[file_member(b"a", b"data")]))
            .expect("a", Some(b"data")),
        Case::new("v7-plain", Loads, layer(&[v7(b"v7file", b'0', b"v7")]))
            .expect("v7file", Some(b"v7")),
        Case::new(
            "v7-nul-type-dir",
            Loads,
            layer(&[v7(b"d/", 0, b""), v7(b"d/f", 0, b"f")]),
        )
        .expect("d", None)
        .expect("d/f", Some(b"f")),
        Case::new(
            "ustar-prefix",
            Loads,
            layer(&[ustar_version(b"00", b"pre/fix", b"file")]),
        )
        .expect("pre/fix/file", Some(b"data")),
        Case::new(
            "ustar-version-nul",
            Loads,
            layer(&[ustar_version(b"\0\0", b"pv", b"file")]),
        )
        .expect("pv/file", Some(b"data")),
        Case::new(
            "gnu-prefix-text",
            Loads,
            layer(&[gnu_with_prefix(b"gnupfx", b"foo")]),
        )
        .expect("gnupfx/foo", Some(b"data")),
        Case::new("gnu-times-octal", Loads, layer(&[gnu_with_times(b"foo2")]))
            .expect("foo2", Some(b"data")),
        Case::new(
            "gnu-prefix-non-ascii",
            Loads,
            layer(&[gnu_with_prefix(b"\xe9", b"foo3")]),
        )
        .expect("foo3", Some(b"data")),
        Case::new(
            "star-prefix",
            Loads,
            layer(&[star_with_prefix(b"starpfx", b"file")]),
        )
        .expect("starpfx/file", Some(b"data")),
        Case::new("star-bad-atime", Refuses, layer(&[star_bad_atime(b"file")])),
        Case::new(
            "pax-path-over-prefix",
            Loads,
            layer(&[
                pax(&[("path", b"from/pax")]),
                ustar_version(b"00", b"pre", b"file"),
            ]),
        )
        .expect("from/pax", Some(b"data")),
        Case::new(
            "gnu-long-name-over-prefix",
            Loads,
            layer(&[
                gnu_long_name(b"long/name"),
                ustar_version(b"00", b"pre", b"file"),
            ]),
        )
        .expect("long/name", Some(b"data")),
        Case::new(
            "gnu-long-name-empty",
            Loads,
            layer(&[gnu_long_name(b""), file_member(b"kept", b"k")]),
        )
        .expect("kept", Some(b"k")),
        Case::new(
            "gnu-long-link",
            Loads,
            layer(&[
                gnu_long_link(&b"t".repeat(150)),
                symlink_member(b"link", b"short"),
            ]),
        )
        .expect("link", None),
        // Numbers.
        Case::new(
            "numbers-space-padded",
            Loads,
            layer(&[with_fields(
                b"sp",
                &[(100, b"  644 \0\0"), (124, b"     4      ")],
            )]),
        )
        .expect("sp", Some(b"data")),
        Case::new(
            "numbers-unterminated",
            Loads,
            layer(&[with_fields(
                b"un",
                &[(100, b"00000644"), (124, b"000000000004")],
            )]),
        )
        .expect("un", Some(b"data")),
        Case::new(
            "numbers-base-256",
            Loads,
            layer(&[with_fields(
                b"b256",
                &[
                    (108, &base256::<8>(1000)),
                    (124, &base256::<12>(4)),
                    (136, &base256::<12>(MTIME)),
                ],
            )]),
        )
        .expect("b256", Some(b"data")),
        Case::new(
            "numbers-plus-sign",
            Refuses,
            layer(&[with_fields(b"plus", &[(100, b"+000644\0")])]),
        ),
        Case::new(
            "numbers-bad-devmajor",
            Refuses,
            layer(&[with_fields(b"dev", &[(329, b"9999999\0")])]),
        ),
        Case::new(
            "negative-size-symlink",
            Loads,
            layer(&[negative_size_symlink()]),
        )
        .expect("nsl", None)
        .save(DockerSave::Fails),
        Case::new(
            "negative-size-pax-fixed",
            Refuses,
            layer(&[
                pax(&[("size", b"4")]),
                with_fields(b"neg", &[(124, &base256::<12>(u64::MAX))]),
            ]),
        ),
        Case::new(
            "size-on-directory",
            Loads,
            layer(&[dir_with_size(b"sized", 1024), file_member(b"after", b"a")]),
        )
        .expect("sized", None)
        .expect("after", Some(b"a"))
        .save(DockerSave::Fails),
        Case::new("checksum-signed", Loads, layer(&[signed_checksum_member()]))
            .expect("signed", Some(b"data")),
        Case::new("checksum-bad", Refuses, layer(&[bad_checksum_member()])),
        Case::new("empty-file", Loads, layer(&[file_member(b"empty", b"")]))
            .expect("empty", Some(b"")),
        Case::new(
            "big-file",
            Loads,
            layer(&[file_member(b"big", &big_data())]),
        )
        .expect("big", Some(&big_data())),
        Case::new(
            "zero-file",
            Loads,
            layer(&[file_member(b"zeros", &vec![0u8; 1 << 20])]),
        )
        .expect("zeros", Some(&vec![0u8; 1 << 20])),
        Case::new(
            "typeflag-contiguous",
            Refuses,
            layer(&[typed_member(b"cont", b'7')]),
        ),
        // PAX records.
        Case::new(
            "pax-overrides-every-field",
            Loads,
            layer(&[
                pax(&[
                    ("path", b"pax/name"),
                    ("uid", b"1234"),
                    ("gid", b"+5678"),
                    ("mtime", b"1600000000.123456789"),
                    ("atime", b"1600000001.5"),
                    ("size", b"7"),
                    ("SCHILY.xattr.user.dialect", b"v\nw"),
                    ("uname", b"nobody"),
                ]),
                with_data(b"ignored-name", b"payload"),
            ]),
        )
        .expect("pax/name", Some(b"payload")),
        Case::new(
            "pax-linkpath",
            Loads,
            layer(&[
                pax(&[("linkpath", b"target/from/pax")]),
                symlink_member(b"plink", b"short"),
            ]),
        )
        .expect("plink", None),
        Case::new(
            "pax-empty-values",
            Loads,
            layer(&[
                pax(&[("path", b""), ("size", b"")]),
                file_member(b"keep", b"data"),
            ]),
        )
        .expect("keep", Some(b"data")),
        Case::new(
            "pax-global-header",
            Loads,
            layer(&[
                pax_global(&[("path", b"global"), ("comment", b"hello")]),
                file_member(b"g", b"g"),
            ]),
        )
        .expect("g", Some(b"g")),
        Case::new(
            "pax-global-bad-uid",
            Loads,
            layer(&[pax_global(&[("uid", b"abc")]), file_member(b"g", b"g")]),
        ),
        Case::new(
            "pax-local-dropped-by-global",
            Loads,
            layer(&[
                pax(&[("path", b"lost")]),
                pax_global(&[("comment", b"x")]),
                file_member(b"kept", b"k"),
            ]),
        )
        .expect("kept", Some(b"k")),
        Case::new(
            "pax-two-local-headers",
            Loads,
            layer(&[
                pax(&[("path", b"first")]),
                pax(&[("mtime", b"1")]),
                file_member(b"second", b"s"),
            ]),
        )
        .expect("second", Some(b"s")),
        Case::new(
            "pax-bad-length",
            Refuses,
            layer(&[pax_raw(b"99 path=x\n"), file_member(b"x", b"x")]),
        ),
        Case::new(
            "pax-bad-mtime",
            Refuses,
            layer(&[pax(&[("mtime", b"1.x")]), file_member(b"m", b"m")]),
        ),
        // Sparse files.
        Case::new(
            "sparse-old-gnu",
            Refuses,
            gnu_tar_sparse(scratch, &["--format=gnu"]),
        ),
        Case::new(
            "sparse-pax-0.0",
            Loads,
            gnu_tar_sparse(scratch, &["--format=pax", "--sparse-version=0.0"]),
        )
        .expect("sparse", Some(&sparse_content()))
        .save(DockerSave::Fails),
        Case::new(
            "sparse-pax-0.1",
            Loads,
            gnu_tar_sparse(scratch, &["--format=pax", "--sparse-version=0.1"]),
        )
        .expect("sparse", Some(&sparse_content()))
        .save(DockerSave::Fails),
        Case::new(
            "sparse-pax-1.0",
            Loads,
            gnu_tar_sparse(scratch, &["--format=pax", "--sparse-version=1.0"]),
        )
        .expect("sparse", Some(&sparse_content()))
        .save(DockerSave::Fails),
        Case::new(
            "sparse-pax-1.0-1000-bytes",
            Loads,
            pax_sparse_1x0_layer("small", 1000, &[(10, b"ten".to_vec())]),
        )
        .expect("small", Some(&sparse_bytes(1000, &[(10, b"ten")])))
        .save(DockerSave::Fails),
        Case::new(
            "sparse-pax-unknown-version",
            Loads,
            layer(&[
                pax(&[
                    ("GNU.sparse.major", b"2"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"real"),
                ]),
                file_member(b"GNUSparseFile.0/real", b"raw"),
            ]),
        )
        .expect("GNUSparseFile.0/real", Some(b"raw")),
        Case::new(
            "sparse-pax-on-symlink",
            Refuses,
            layer(&[
                pax(&[("GNU.sparse.map", b"0,0"), ("GNU.sparse.numblocks", b"1")]),
                symlink_member(b"sl", b"t"),
            ]),
        ),
        Case::new(
            "sparse-pax-0.0-out-of-order",
            Refuses,
            layer(&[
                pax(&[
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.numbytes", b"3"),
                    ("GNU.sparse.offset", b"0"),
                ]),
                file_member(b"ooo", b"abc"),
            ]),
        ),
        Case::new(
            "sparse-pax-0.1-missing-data",
            Refuses,
            layer(&[
                pax(&[
                    ("GNU.sparse.major", b"0"),
                    ("GNU.sparse.minor", b"1"),
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.map", b"0,10"),
                    ("GNU.sparse.realsize", b"10"),
                ]),
                file_member(b"short", b"abc"),
            ]),
        ),
        Case::new("sparse-pax-1.0-map-too-long", Loads, sparse_map_too_long())
            .stricter("a sparse map over 1 MiB (newer Go releases refuse it too: errSparseTooLong)")
            .save(DockerSave::Fails),
        // Framing.
        Case::new(
            "trailing-garbage",
            Loads,
            [layer(&[file_member(b"t", b"t")]), b"garbage".repeat(150)].concat(),
        )
        .expect("t", Some(b"t")),
        Case::new("no-end-marker", Loads, file_member(b"n", b"n")).expect("n", Some(b"n")),
        Case::new(
            "one-zero-block",
            Loads,
            [file_member(b"o", b"o"), vec![0; 512]].concat(),
        )
        .expect("o", Some(b"o")),
        Case::new(
            "zero-block-then-header",
            Refuses,
            [vec![0; 512], file_member(b"z", b"z")].concat(),
        ),
        Case::new(
            "truncated-data",
            Refuses,
            file_member(b"tr", &[b'x'; 1000])[..800].to_vec(),
        ),
    ];
    cases.push(
        Case::new(
            "pax-uid-beyond-32-bits",
            Loads,
            layer(&[pax(&[("uid", b"4294967296")]), file_member(b"u", b"u")]),
        )
        .stricter("a uid beyond 32 bits (Docker's lchown truncates it to root's)"),
    );
    cases
}
