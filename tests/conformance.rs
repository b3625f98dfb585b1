//! ovl against a private dockerd 20.10: images built by Docker's classic builder are saved, loaded
//! by ovl into fresh data roots, and compared with Docker's own data root (layerdb entries, image
//! ids, RootFS.Layers), with their tar-split reassembly, and with the root filesystem of a running
//! Docker container. Then the `changes` image goes through skopeo into an OCI layout (gzip) and
//! an OCI archive (zstd) and must give the same ChainIDs and the same merged tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use ovl_tests::{
    build_conformance_images, chain_ids, check_tar_split, docker_merged_dump, dockerd_scratch,
    ensure_same_tree, image_diff_ids, layerdb, merged_dump, require_skopeo, scratch_path,
    skopeo_json, Dockerd, Failures, LayerInfo, Ovl, Record, Scratch, CAP_NET_BIND_SERVICE_EP,
};

const TEST: &str = "docker_conformance_needs_root_and_dockerd";

/// What Docker says about one image.
struct DockerImage {
    tag: String,
    id: String,
    diff_ids: Vec<String>,
    chain: Vec<String>,
    archive: PathBuf,
    dump: Vec<Record>,
}

#[test]
fn docker_conformance_needs_root_and_dockerd() {
    let Some(work) = dockerd_scratch(TEST) else {
        return;
    };
    let total = Instant::now();
    let mut failures = Failures::default();

    let started = Instant::now();
    let docker = Dockerd::start(&scratch_path());
    eprintln!("timing: dockerd start: {:.1?}", started.elapsed());

    let started = Instant::now();
    let tags = build_conformance_images(&docker);
    eprintln!("timing: all image builds: {:.1?}", started.elapsed());

    let mut images = Vec::new();
    for tag in &tags {
        let file_name = format!("{}.tar", tag.replace([':', '/'], "_"));
        let archive = work.join(&file_name);
        let started = Instant::now();
        docker.save(tag, &archive);
        eprintln!("timing: docker save {tag}: {:.1?}", started.elapsed());
        let started = Instant::now();
        let dump = docker_merged_dump(&docker, tag);
        eprintln!(
            "timing: docker run + merged dump {tag}: {:.1?} ({} records)",
            started.elapsed(),
            dump.len()
        );
        let diff_ids = image_diff_ids(&docker, tag);
        images.push(DockerImage {
            tag: tag.clone(),
            id: docker.image_id(tag),
            chain: chain_ids(&diff_ids),
            diff_ids,
            archive,
            dump,
        });
    }
    let docker_layers = layerdb(docker.data_root());

    // The Docker half checks itself against the spec and the Dockerfiles, so that a broken
    // harness cannot make ovl look right.
    for image in &images {
        failures.check(
            &format!("docker: layerdb chain of {}", image.tag),
            check_chain_in_layerdb(image, &docker_layers),
        );
    }
    failures.check(
        "docker: deep image depth",
        ensure_len(&images, "ovl-deep:1", 1 + ovl_tests::DEEP_RUN_LAYERS),
    );
    let started = Instant::now();
    failures.check(
        "docker: tar-split of every Docker layer reassembles to its DiffID",
        check_tar_split(docker.data_root()).map(|n| eprintln!("({n} Docker layers)")),
    );
    eprintln!(
        "timing: Docker tar-split reassembly: {:.1?}",
        started.elapsed()
    );
    failures.check("docker: seed merged view", check_seed_view(&images));
    failures.check("docker: changes merged view", check_changes_view(&images));

    for image in &images {
        let root = work.join(format!("root-{}", image.tag.replace([':', '/'], "_")));
        let started = Instant::now();
        failures.check(
            &format!("ovl: {} from docker save", image.tag),
            check_ovl_image(&root, image, &docker_layers),
        );
        eprintln!(
            "timing: ovl checks of {}: {:.1?}",
            image.tag,
            started.elapsed()
        );
    }

    if require_skopeo(TEST) {
        let changes = images
            .iter()
            .find(|i| i.tag == "ovl-changes:1")
            .expect("changes image was built");
        let started = Instant::now();
        failures.check(
            "ovl: ovl-changes:1 through skopeo (OCI layout gzip, OCI archive zstd)",
            check_oci_formats(changes, &docker_layers, &work),
        );
        eprintln!("timing: OCI format checks: {:.1?}", started.elapsed());
    }

    let started = Instant::now();
    drop(docker);
    eprintln!(
        "timing: dockerd stop and cleanup: {:.1?}",
        started.elapsed()
    );
    eprintln!("timing: total: {:.1?}", total.elapsed());
    drop(work);
    failures.finish();
}

fn ensure_len(images: &[DockerImage], tag: &str, n_layers: usize) -> anyhow::Result<()> {
    let image = images
        .iter()
        .find(|i| i.tag == tag)
        .context("image missing")?;
    ensure!(
        image.diff_ids.len() == n_layers,
        "{tag} has {} layers, expected {n_layers}",
        image.diff_ids.len()
    );
    Ok(())
}

/// Every ChainID computed from RootFS.Layers is in the layerdb with that DiffID and the previous
/// ChainID as parent.
fn check_chain_in_layerdb(
    image: &DockerImage,
    layers: &BTreeMap<String, LayerInfo>,
) -> anyhow::Result<()> {
    for (i, chain_id) in image.chain.iter().enumerate() {
        let entry = layers
            .get(chain_id)
            .with_context(|| format!("no layerdb entry for layer {i} ({chain_id})"))?;
        ensure!(
            entry.diff == image.diff_ids[i],
            "layer {i}: diff {:?}",
            entry.diff
        );
        let parent = i.checked_sub(1).map(|p| image.chain[p].clone());
        ensure!(
            entry.parent == parent,
            "layer {i}: parent {:?}",
            entry.parent
        );
        ensure!(
            entry.size.parse::<u64>().is_ok(),
            "layer {i}: size {:?} is not a bare integer",
            entry.size
        );
    }
    Ok(())
}

fn find_record<'a>(dump: &'a [Record], path: &[u8]) -> anyhow::Result<&'a Record> {
    dump.iter()
        .find(|r| r.path == path)
        .with_context(|| format!("no {} in the dump", treedump::escape_bytes(path)))
}

fn image<'a>(images: &'a [DockerImage], tag: &str) -> anyhow::Result<&'a DockerImage> {
    images
        .iter()
        .find(|i| i.tag == tag)
        .context("image missing")
}

/// The seed image as the Dockerfile and the ADDed tar say it must look.
fn check_seed_view(images: &[DockerImage]) -> anyhow::Result<()> {
    let dump = &image(images, "ovl-seed:1")?.dump;
    let ping = find_record(dump, b"/opt/capdir/ping")?;
    ensure!(
        ping.xattrs
            == vec![(
                "security.capability".to_string(),
                CAP_NET_BIND_SERVICE_EP.to_vec()
            )],
        "capability of /opt/capdir/ping: {}",
        ping.to_line()
    );
    ensure!(ping.mtime == Some((1_500_000_000, 0)), "{}", ping.to_line());
    let private = find_record(dump, b"/opt/capdir/private")?;
    ensure!(
        (private.mode, private.uid, private.gid) == (0o600, 1000, 1000),
        "{}",
        private.to_line()
    );
    let copied = find_record(dump, b"/data/dir/script.sh")?;
    ensure!(
        (copied.uid, copied.gid, copied.mode) == (1000, 1000, 0o755),
        "{}",
        copied.to_line()
    );
    let greeting = find_record(dump, b"/work/sub/greeting")?;
    ensure!(greeting.size == Some(3), "{}", greeting.to_line());
    Ok(())
}

/// The changes image as the Dockerfile says it must look.
fn check_changes_view(images: &[DockerImage]) -> anyhow::Result<()> {
    let dump = &image(images, "ovl-changes:1")?.dump;
    let paths: BTreeSet<&[u8]> = dump.iter().map(|r| r.path.as_slice()).collect();
    for gone in [
        &b"/d2/x"[..],
        b"/d2/sub",
        b"/d2/new",
        b"/d3",
        b"/links/hard2",
        b"/devs/null",
        b"/t/dir2link/in",
    ] {
        ensure!(
            !paths.contains(gone),
            "{} should be deleted",
            treedump::escape_bytes(gone)
        );
    }
    let long_name = [b"/names/".as_slice(), &[b'L'; 150]].concat();
    let long_path = [
        b"/names/".as_slice(),
        &[b'd'; 100],
        b"/",
        &[b'd'; 100],
        b"/",
        &[b'f'; 95],
    ]
    .concat();
    ensure!(long_path.len() > 300);
    for present in [
        &b"/d1/b"[..],
        b"/t/file2dir/inner",
        b"/names/bad\xffname",
        "/names/héllo wörld-日本".as_bytes(),
        &long_name,
        &long_path,
    ] {
        find_record(dump, present)?;
    }
    let dir2link = find_record(dump, b"/t/dir2link")?;
    ensure!(
        dir2link.link_target.as_deref() == Some(&b"../d1"[..]),
        "{}",
        dir2link.to_line()
    );
    let fifo = find_record(dump, b"/links/fifo")?;
    ensure!(
        fifo.file_type == treedump::FileType::Fifo,
        "{}",
        fifo.to_line()
    );
    let loop_dev = find_record(dump, b"/devs/loop")?;
    ensure!(
        loop_dev.rdev == Some((7, 200)) && loop_dev.mode == 0o640,
        "{}",
        loop_dev.to_line()
    );
    // hard1 was copied up and hard2 deleted; hard3 and orig stay linked in the lower layer, and
    // k1/k2 are linked in the top layer.
    for (path, group) in [
        (&b"/links/orig"[..], Some(&b"/links/hard3"[..])),
        (b"/links/hard3", Some(b"/links/hard3")),
        (b"/links/hard1", None),
        (b"/links/k1", Some(b"/links/k1")),
        (b"/links/k2", Some(b"/links/k1")),
    ] {
        let record = find_record(dump, path)?;
        ensure!(
            record.hardlink_group.as_deref() == group,
            "{}",
            record.to_line()
        );
    }
    let gone = find_record(dump, b"/gone")?;
    ensure!(gone.size == Some(6), "re-created /gone: {}", gone.to_line());
    let hard1 = find_record(dump, b"/links/hard1")?;
    ensure!(hard1.size == Some(10), "{}", hard1.to_line());
    for (path, mode) in [
        (&b"/suid"[..], 0o4755),
        (b"/sgid", 0o2750),
        (b"/sticky", 0o1777),
        (b"/sticky/f", 0o6711),
        (b"/d1", 0o700),
    ] {
        let record = find_record(dump, path)?;
        ensure!(record.mode == mode, "{}", record.to_line());
    }
    for (path, uid, gid) in [
        (&b"/owners/a"[..], 1234, 5678),
        (b"/owners/b", 70000, 70000),
        (b"/owners/l", 4321, 8765),
    ] {
        let record = find_record(dump, path)?;
        ensure!(
            (record.uid, record.gid) == (uid, gid),
            "{}",
            record.to_line()
        );
    }
    // touch -d in the container's time zone (UTC in a fresh busybox image).
    for (path, seconds) in [
        (&b"/mt/old"[..], 981_173_106),
        (b"/mt/oldlink", 946_684_799),
        (b"/mt/future", 2_000_000_000),
    ] {
        let record = find_record(dump, path)?;
        ensure!(record.mtime == Some((seconds, 0)), "{}", record.to_line());
    }
    Ok(())
}

/// Loads one `docker save` archive into a fresh ovl root and compares everything with Docker.
fn check_ovl_image(
    root: &Path,
    image: &DockerImage,
    docker_layers: &BTreeMap<String, LayerInfo>,
) -> anyhow::Result<()> {
    let ovl = Ovl::new(root);
    let started = Instant::now();
    let name = ovl.load(&image.archive)?;
    eprintln!("timing: ovl load {}: {:.1?}", image.tag, started.elapsed());
    ensure!(name == image.tag, "ovl load reported {name:?}");

    check_layers_like_docker(root, &image.chain, docker_layers)?;

    let inspect = ovl.inspect(&image.tag)?;
    ensure!(
        inspect["Id"].as_str() == Some(image.id.as_str()),
        "ovl inspect Id {} != Docker's {}",
        inspect["Id"],
        image.id
    );
    let layers: Vec<String> = serde_json::from_value(inspect["RootFS"]["Layers"].clone())
        .context("ovl inspect RootFS.Layers")?;
    ensure!(layers == image.diff_ids, "ovl RootFS.Layers {layers:?}");

    let n_layers = check_tar_split(root)?;
    ensure!(
        n_layers == image.chain.len(),
        "{n_layers} layers in ovl's layerdb"
    );

    check_merged_like_docker(&ovl, &image.tag, &image.dump)
}

/// ovl's layerdb holds exactly the image's ChainIDs with Docker's diff, size and parent.
fn check_layers_like_docker(
    root: &Path,
    chain: &[String],
    docker_layers: &BTreeMap<String, LayerInfo>,
) -> anyhow::Result<()> {
    let ovl_layers = layerdb(root);
    let expected: BTreeSet<&String> = chain.iter().collect();
    let actual: BTreeSet<&String> = ovl_layers.keys().collect();
    ensure!(
        expected == actual,
        "ChainIDs differ: missing in ovl {:?}, extra in ovl {:?}",
        expected.difference(&actual).collect::<Vec<_>>(),
        actual.difference(&expected).collect::<Vec<_>>()
    );
    for chain_id in chain {
        let ours = &ovl_layers[chain_id];
        let theirs = docker_layers
            .get(chain_id)
            .with_context(|| format!("{chain_id} missing in Docker's layerdb"))?;
        ensure!(
            (&ours.diff, &ours.size, &ours.parent) == (&theirs.diff, &theirs.size, &theirs.parent),
            "layer {chain_id}: ovl has diff {:?} size {:?} parent {:?}, Docker has diff {:?} \
             size {:?} parent {:?}",
            ours.diff,
            ours.size,
            ours.parent,
            theirs.diff,
            theirs.size,
            theirs.parent
        );
    }
    Ok(())
}

/// `ovl run-rootfs`, a treedump of the merged path against Docker's, then umount and rm (also
/// when the trees differ).
fn check_merged_like_docker(ovl: &Ovl, image: &str, expected: &[Record]) -> anyhow::Result<()> {
    let container = format!("conf-{}", image.replace([':', '/'], "-"));
    let started = Instant::now();
    let stdout = ovl.try_ok(["run-rootfs", image, "--name", &container])?;
    eprintln!("timing: ovl run-rootfs {image}: {:.1?}", started.elapsed());
    let merged = PathBuf::from(stdout.trim());
    let compared = merged_dump(&merged).and_then(|actual| {
        ovl_tests::save_dumps(&container, expected, &actual);
        ensure_same_tree(&format!("merged view of {image}"), expected, &actual)
    });
    let umount = ovl.try_ok(["umount", &container]);
    let rm = ovl.try_ok(["rm", &container]);
    compared?;
    umount?;
    rm?;
    ensure!(
        !merged.exists() || fs::read_dir(&merged)?.next().is_none(),
        "{} still has content after ovl umount",
        merged.display()
    );
    Ok(())
}

fn skopeo(args: &[&str]) -> anyhow::Result<()> {
    let started = Instant::now();
    skopeo_json(args)?;
    eprintln!(
        "timing: skopeo {}: {:.1?}",
        args.join(" "),
        started.elapsed()
    );
    Ok(())
}

/// The `changes` image through skopeo: an OCI layout with gzip layers and an OCI archive with
/// zstd layers, each loaded into its own root.
fn check_oci_formats(
    image: &DockerImage,
    docker_layers: &BTreeMap<String, LayerInfo>,
    work: &Scratch,
) -> anyhow::Result<()> {
    let source = format!("docker-archive:{}", image.archive.display());
    let layout = work.join("changes-oci");
    let oci_archive = work.join("changes-oci-zstd.tar");
    skopeo(&[
        "copy",
        &source,
        &format!("oci:{}:ovl-changes:1", layout.display()),
    ])?;
    skopeo(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        "--dest-compress",
        &source,
        &format!("oci-archive:{}:ovl-changes:1", oci_archive.display()),
    ])?;

    let layout_files = read_layout_dir(&layout)?;
    check_layer_media_types(&layout_files, "application/vnd.oci.image.layer.v1.tar+gzip")?;
    let archive_files = read_tar_files(&oci_archive)?;
    check_layer_media_types(
        &archive_files,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    )?;

    for (what, input) in [
        ("OCI layout", &layout),
        ("OCI archive (zstd)", &oci_archive),
    ] {
        let root = work.join(format!("root-{}", what.replace([' ', '(', ')'], "_")));
        let ovl = Ovl::new(&root);
        let started = Instant::now();
        let name = ovl
            .load(input)
            .with_context(|| format!("ovl load of the {what}"))?;
        eprintln!("timing: ovl load {what}: {:.1?}", started.elapsed());
        // The Docker layerdb is the reference for diff, size and parent here too.
        check_layers_like_docker(&root, &image.chain, docker_layers)
            .with_context(|| what.to_string())?;
        check_tar_split(&root).with_context(|| format!("{what}: tar-split"))?;
        check_merged_like_docker(&ovl, &name, &image.dump).with_context(|| what.to_string())?;
    }
    Ok(())
}

/// All regular files of a directory tree keyed by relative path.
fn read_layout_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in
            fs::read_dir(&current).with_context(|| format!("read {}", current.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                files.insert(relative, fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

/// All regular files of a tar archive keyed by member name.
fn read_tar_files(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(fs::File::open(path)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let name = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// The layers of the (single) image in an OCI layout have the expected media type, and their
/// blobs start with the matching magic (gzip 1f 8b, zstd 28 b5 2f fd).
fn check_layer_media_types(
    files: &BTreeMap<String, Vec<u8>>,
    media_type: &str,
) -> anyhow::Result<()> {
    let blob = |digest: &str| {
        files
            .get(&format!("blobs/{}", digest.replacen(':', "/", 1)))
            .with_context(|| format!("blob {digest} missing"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(files.get("index.json").context("no index.json")?)?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json has no manifest")?;
    let manifest: serde_json::Value = serde_json::from_slice(blob(manifest_digest)?)?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest has no layers")?;
    ensure!(!layers.is_empty(), "no layers");
    for layer in layers {
        ensure!(
            layer["mediaType"].as_str() == Some(media_type),
            "layer media type {}, expected {media_type}",
            layer["mediaType"]
        );
        let digest = layer["digest"].as_str().context("layer digest")?;
        let bytes = blob(digest)?;
        let magic_ok = match media_type {
            m if m.ends_with("+gzip") => bytes.starts_with(&[0x1f, 0x8b]),
            m if m.ends_with("+zstd") => bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            _ => bail!("unexpected media type {media_type}"),
        };
        ensure!(
            magic_ok,
            "blob {digest} does not start with the {media_type} magic"
        );
    }
    Ok(())
}
