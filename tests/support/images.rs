//! The conformance image set: the busybox base image, the seed, changes and deep Dockerfiles,
//! and the layer tars the tests generate.

use super::*;

// ------------------------------------------------------------------------------------------------
// Images

/// Imports [`BASE_IMAGE`]: busybox with one symlink per applet in /bin, a minimal /etc/passwd and
/// /etc/group, and /tmp; made without network from the host's static busybox.
pub fn base_image(docker: &Dockerd) -> String {
    let tar = base_rootfs_tar();
    let path = docker.scratch().join("ovl-base.tar");
    fs::write(&path, tar).expect("write base tar");
    docker.docker_ok([
        OsStr::new("import"),
        path.as_os_str(),
        OsStr::new(BASE_IMAGE),
    ]);
    BASE_IMAGE.to_string()
}

/// The rootfs tar of the base image.
pub fn base_rootfs_tar() -> Vec<u8> {
    let busybox = fs::read(BUSYBOX).expect("read /bin/busybox");
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets = String::from_utf8(list.stdout).expect("applet list is UTF-8");
    // A fixed mtime keeps the base layer's DiffID stable across runs.
    let mtime = 1_600_000_000;
    let mut builder = TarBuilder::at(mtime);
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
    ] {
        builder.mode(mode).dir(dir);
    }
    builder.mode(0o755).file("bin/busybox", &busybox);
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "busybox" || applet.contains('/') {
            continue;
        }
        builder.symlink(&format!("bin/{applet}"), "busybox");
    }
    let passwd =
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = b"root:x:0:\nnogroup:x:65534:\n";
    builder.file("etc/passwd", passwd);
    builder.file("etc/group", group);
    builder.finish()
}

/// A file of a build context: path relative to the context, content, mode.
pub type ContextFile<'a> = (&'a str, Vec<u8>, u32);

/// Builds `dockerfile` with the classic builder and `--network none`, the context holding
/// `context_files` (path, content, mode); returns the image id.
pub fn build_image(
    docker: &Dockerd,
    tag: &str,
    dockerfile: &str,
    context_files: &[ContextFile],
) -> String {
    let ctx = docker
        .scratch()
        .join(format!("ctx-{}", tag.replace([':', '/'], "_")));
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(&ctx).expect("mkdir build context");
    fs::write(ctx.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    for (path, content, mode) in context_files {
        let file = ctx.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).expect("mkdir in context");
        }
        fs::write(&file, content).expect("write context file");
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode)).expect("chmod context file");
    }
    let build = "build --network none -q -t".split(' ').map(OsStr::new);
    docker.docker_ok(build.chain([OsStr::new(tag), ctx.as_os_str()]));
    docker.image_id(tag)
}

/// `seed`: the instructions that make layers (RUN, COPY, ADD of a local tar that the builder
/// extracts, including a `security.capability` PAX record) and the ones that only change the
/// config (ENV, WORKDIR, CMD).
pub const SEED_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /data/a && echo hello > /data/a/hello.txt && chmod 640 /data/a/hello.txt
COPY copied.txt /data/copied.txt
COPY --chown=1000:1000 dir/ /data/dir/
ADD caps.tar /opt/
ENV GREETING=hi PATH=/bin
WORKDIR /work/sub
RUN echo "$GREETING" > greeting && ln -s greeting greeting.link
CMD ["/bin/sh"]
"#;

/// `changes`: whiteouts, an opaque directory, type changes, hardlinks, special files, special
/// mode bits, long and odd names, odd owners, old and new mtimes, and changes on top of all that.
pub const CHANGES_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /d1 /d2/sub /d3/sub /t/dir2link && echo a > /d1/a && echo b > /d1/b && echo x > /d2/x && echo s > /d2/sub/s && echo y > /d3/sub/y && echo f > /t/file2dir && echo in > /t/dir2link/in && echo gone > /gone && echo keep > /keep
RUN rm /d1/b /gone && rm -r /d2 && mkdir /d2 && echo new > /d2/new && rm -r /d3 && rm /t/file2dir && mkdir /t/file2dir && echo inner > /t/file2dir/inner && rm -r /t/dir2link && ln -s ../d1 /t/dir2link
RUN mkdir /links && echo data > /links/orig && ln /links/orig /links/hard1 && ln /links/orig /links/hard2 && ln /links/orig /links/hard3 && mkfifo /links/fifo && mkdir /devs && mknod /devs/null c 1 3 && mknod /devs/loop b 7 200 && chmod 0640 /devs/loop
RUN echo su > /suid && chmod 4755 /suid && echo sg > /sgid && chmod 2750 /sgid && mkdir /sticky && chmod 1777 /sticky && echo ugs > /sticky/f && chmod 6711 /sticky/f
RUN mkdir /names && cd /names && L=$(head -c 150 /dev/zero | tr '\0' L) && echo long > "$L" && D=$(head -c 100 /dev/zero | tr '\0' d) && mkdir -p "$D/$D" && echo deep > "$D/$D/$(head -c 95 /dev/zero | tr '\0' f)" && echo utf > 'héllo wörld-日本' && echo bad > "$(printf 'bad\377name')"
RUN mkdir /owners && echo o > /owners/a && chown 1234:5678 /owners/a && echo p > /owners/b && chown 70000:70000 /owners/b && mkdir /owners/d && chown 1234:5678 /owners/d && ln -s a /owners/l && chown -h 4321:8765 /owners/l
RUN mkdir /mt && echo old > /mt/old && touch -d '2001-02-03 04:05:06' /mt/old && ln -s old /mt/oldlink && touch -h -d '1999-12-31 23:59:59' /mt/oldlink && echo future > /mt/future && touch -d '2033-05-18 03:33:20' /mt/future
RUN echo more >> /links/hard1 && rm /links/hard2 && echo b2 > /d1/b && rm /d2/new && chmod 0700 /d1 && rm /devs/null && echo again > /gone && echo k > /links/k1 && ln /links/k1 /links/k2
"#;

/// How many RUN layers the `deep` image stacks on the base image.
pub const DEEP_RUN_LAYERS: usize = 105;

/// `deep`: 105 RUN layers that add, modify, delete and re-create files and a directory.
pub fn deep_dockerfile() -> String {
    let mut dockerfile = String::from("FROM ovl-base:1\nRUN mkdir /deep && echo 0 > /deep/f0\n");
    for i in 1..DEEP_RUN_LAYERS {
        let mut steps = vec![
            format!("echo {i} > /deep/f{i}"),
            format!("echo m{i} >> /deep/f{}", i - 1),
        ];
        if i >= 3 && i % 3 == 0 {
            steps.push(format!("rm /deep/f{}", i - 3));
        }
        if i >= 6 && i % 3 == 0 {
            steps.push(format!("echo again{i} > /deep/f{}", i - 6));
        }
        if i % 10 == 0 {
            steps.push(format!(
                "rm -rf /deep/dir && mkdir /deep/dir && echo {i} > /deep/dir/v{i}"
            ));
        }
        dockerfile.push_str("RUN ");
        dockerfile.push_str(&steps.join(" && "));
        dockerfile.push('\n');
    }
    dockerfile
}

/// Layer `i` adds `layers/<i>` (content `<i>\n`) and overwrites `top` with `<i>`.
pub fn deep_layer_tar(i: usize) -> Vec<u8> {
    let mtime = 1_650_000_000 + i as u64;
    let mut builder = TarBuilder::at(mtime);
    if i == 0 {
        builder.dir("layers/");
    }
    let content = format!("{i}\n");
    builder.file(&format!("layers/{i}"), content.as_bytes());
    builder.file("top", i.to_string().as_bytes());
    builder.finish()
}

/// The build context of `seed`: plain files and `caps.tar`.
pub fn seed_context() -> Vec<ContextFile<'static>> {
    vec![
        ("copied.txt", b"copied from the context\n".to_vec(), 0o644),
        ("dir/script.sh", b"#!/bin/sh\necho script\n".to_vec(), 0o755),
        ("dir/sub/data", b"sub data".to_vec(), 0o600),
        ("caps.tar", caps_tar(), 0o644),
    ]
}

/// A tar for `ADD` with a file carrying `SCHILY.xattr.security.capability`, a private file of
/// another owner, and a symlink.
pub fn caps_tar() -> Vec<u8> {
    let mtime = 1_500_000_000;
    let mut builder = TarBuilder::at(mtime);
    builder.dir("capdir/");
    builder.pax(&[(
        &b"SCHILY.xattr.security.capability"[..],
        &CAP_NET_BIND_SERVICE_EP[..],
    )]);
    builder
        .mode(0o755)
        .file("capdir/ping", b"#!/bin/sh\necho pong\n");
    builder
        .mode(0o600)
        .owner(1000, 1000)
        .file("capdir/private", b"secret");
    builder.symlink("capdir/link", "ping");
    builder.finish()
}

/// Builds base, `ovl-seed:1`, `ovl-changes:1` and `ovl-deep:1`, printing how long each took;
/// returns the image tags.
pub fn build_conformance_images(docker: &Dockerd) -> Vec<String> {
    let started = Instant::now();
    base_image(docker);
    eprintln!(
        "timing: docker import {BASE_IMAGE}: {:.1?}",
        started.elapsed()
    );
    let mut tags = vec![BASE_IMAGE.to_string()];
    let builds: [(&str, String, Vec<ContextFile>); 3] = [
        ("ovl-seed:1", SEED_DOCKERFILE.to_string(), seed_context()),
        ("ovl-changes:1", CHANGES_DOCKERFILE.to_string(), vec![]),
        ("ovl-deep:1", deep_dockerfile(), vec![]),
    ];
    for (tag, dockerfile, context) in builds {
        let started = Instant::now();
        build_image(docker, tag, &dockerfile, &context);
        eprintln!("timing: docker build {tag}: {:.1?}", started.elapsed());
        tags.push(tag.to_string());
    }
    tags
}
