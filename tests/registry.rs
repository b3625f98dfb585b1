//! `ovl pull`, `ovl push`, `ovl login` against Debian's real `docker-registry` (distribution
//! 2.8), compared with a private dockerd 20.10 pulling and pushing the same images; and `ovl
//! load` from a pipe. Every expected value comes from Docker, the registry, skopeo or values
//! written down here, never from ovl's own output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ovl_tests::{
    assert_layers_stored_clean, build_conformance_images, docker_merged_dump, ensure_same_tree,
    gzip, image_chain, image_config, layerdb, layers_archive, merged_dump, nested_layer,
    peak_rss_kib, require_dockerd, require_registry, require_skopeo, scratch_path, sha256_digest,
    under_gnu_time, Dockerd, FlakyProxy, OversizedManifestServer, Ovl, Registry, RegistryAuth,
    Scratch, TarBuilder, REGISTRY_PASSWORD, REGISTRY_USER,
};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Runs ovl with extra environment variables.
fn ovl_env(ovl: &Ovl, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = ovl.command(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run ovl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs ovl and asserts success; returns stdout.
fn ok_env(ovl: &Ovl, args: &[&str], env: &[(&str, &Path)]) -> String {
    let output = ovl_env(ovl, args, env);
    assert!(
        output.status.success(),
        "ovl {} failed: {}{}",
        args.join(" "),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs ovl and asserts exit 1; returns stderr.
fn fail_env(ovl: &Ovl, args: &[&str], env: &[(&str, &Path)]) -> String {
    let output = ovl_env(ovl, args, env);
    assert_eq!(
        output.status.code(),
        Some(1),
        "ovl {} should fail with 1: {}{}",
        args.join(" "),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stderr)
}

/// What a failed pull must leave: the root's layerdb, images and tags as before, no leftover
/// in `overlay2/`, and `fsck` clean.
struct Snapshot {
    layers: Vec<String>,
    images: String,
    overlay: Vec<String>,
}

fn snapshot(ovl: &Ovl) -> Snapshot {
    let mut overlay: Vec<String> = std::fs::read_dir(ovl.root.join("overlay2"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    overlay.sort();
    Snapshot {
        layers: layerdb(&ovl.root).into_keys().collect(),
        images: ovl.ok([
            "images",
            "-a",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}",
        ]),
        overlay,
    }
}

fn assert_unchanged(ovl: &Ovl, before: &Snapshot, what: &str) {
    let after = snapshot(ovl);
    assert_eq!(after.layers, before.layers, "{what}: layerdb changed");
    assert_eq!(after.images, before.images, "{what}: images changed");
    assert_eq!(after.overlay, before.overlay, "{what}: overlay2/ changed");
    let fsck = ovl.ok(["fsck"]);
    assert!(
        fsck.contains("0 corrupt, 0 leftovers"),
        "{what}: fsck after the failure: {fsck}"
    );
}

/// `ovl login -u REGISTRY_USER --password-stdin host` with `password` on stdin.
fn login_with_stdin(ovl: &Ovl, host: &str, config_dir: &Path, password: &str) -> Output {
    use std::io::Write as _;
    let mut login = ovl
        .command(["login", "-u", REGISTRY_USER, "--password-stdin", host])
        .env("DOCKER_CONFIG", config_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ovl login");
    login
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    login.wait_with_output().expect("ovl login")
}

/// A one-layer rootfs tarball with a file of its own, so that every image of a test differs.
fn unique_tar(name: &str, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ name.len() as u64;
    for byte in name.bytes() {
        state = state.rotate_left(7) ^ u64::from(byte);
    }
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(size);
    let mut tar = TarBuilder::new();
    tar.dir("data/").file(&format!("data/{name}"), &data);
    tar.finish()
}

/// Imports a one-layer image into ovl's root as `reference`.
fn import_unique(ovl: &Ovl, scratch: &Scratch, reference: &str, size: usize) {
    let name = reference.replace([':', '/'], "_");
    let path = scratch.join(format!("{name}.tar"));
    std::fs::write(&path, unique_tar(&name, size)).expect("write tarball");
    ovl.import(&path, reference);
}

/// The layer digests of a manifest on a plain registry.
fn manifest_layers(registry: &Registry, repo: &str, tag: &str) -> Vec<String> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &registry.get(&format!("/v2/{repo}/manifests/{tag}"), DOCKER_MANIFEST),
    )
    .expect("manifest JSON");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| layer["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// `docker push` output lines that say a layer went up (not skipped or mounted).
fn pushed_lines(output: &str) -> usize {
    output.lines().filter(|l| l.ends_with(": Pushed")).count()
}

// ------------------------------------------------------------------------------------------------
// Pull against docker pull

/// The private dockerd pushes the conformance images (base, seed with whiteouts and opaque
/// directories, type changes, 100+ layers); `ovl pull` of each gives the image id, ChainIDs,
/// RepoDigests and merged tree that `docker pull` into a second daemon gives; a dockerd started on
/// ovl's root afterwards lists the images with their digests, runs them, and `docker push` skips
/// every layer.
#[test]
fn pull_matches_docker_pull_needs_root_and_dockerd_and_registry() {
    const TEST: &str = "pull_matches_docker_pull_needs_root_and_dockerd_and_registry";
    if !require_dockerd(TEST) || !require_registry(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let host = registry.host();
    let builder = Dockerd::start(&scratch_path());
    let tags = build_conformance_images(&builder);
    let mut remotes = Vec::new();
    for tag in &tags {
        let remote = format!("{host}/{tag}");
        builder.docker_ok(["tag", tag, &remote]);
        builder.docker_ok(["push", &remote]);
        remotes.push(remote);
    }
    drop(builder);

    // The reference: docker pull into a daemon that never had the images.
    let docker = Dockerd::start(&scratch_path());
    let mut expected = BTreeMap::new();
    for remote in &remotes {
        let started = Instant::now();
        docker.docker_ok(["pull", remote]);
        eprintln!("timing: docker pull {remote}: {:.1?}", started.elapsed());
        let digests = docker.docker_ok(["inspect", "-f", "{{json .RepoDigests}}", remote]);
        expected.insert(
            remote.clone(),
            (
                docker.image_id(remote),
                image_chain(&docker, remote),
                digests.trim().to_string(),
                docker_merged_dump(&docker, remote),
            ),
        );
    }

    // ovl pull into the data root a dockerd is started on afterwards.
    let shared = scratch_path();
    let ovl = Ovl::new(shared.join("data"));
    for remote in &remotes {
        let (image_id, chain, digests, dump) = &expected[remote];
        let started = Instant::now();
        let out = ovl.ok(["pull", remote]);
        eprintln!("timing: ovl pull {remote}: {:.1?}", started.elapsed());
        let repo_digest: Vec<String> = serde_json::from_str(digests).expect("RepoDigests");
        let digest = repo_digest[0].split('@').nth(1).expect("digest");
        assert!(
            out.contains(&format!("Digest: {digest}\n"))
                && out.contains(&format!("Status: Downloaded newer image for {remote}\n"))
                && out.ends_with(&format!("{remote}\n")),
            "ovl pull {remote} printed:\n{out}"
        );
        let id = ovl.ok(["inspect", "-f", "{{.Id}}", remote]);
        assert_eq!(id.trim(), image_id, "image id of {remote}");
        let layers = layerdb(&ovl.root);
        for chain_id in chain {
            assert!(
                layers.contains_key(chain_id),
                "{remote}: ChainID {chain_id} missing"
            );
        }
        let ovl_digests = ovl.ok(["inspect", "-f", "{{json .RepoDigests}}", remote]);
        assert_eq!(ovl_digests.trim(), digests, "RepoDigests of {remote}");
        // The merged tree of a container of the pulled image.
        let merged = ovl.ok(["run-rootfs", "--name", "pulled", remote]);
        let actual = merged_dump(Path::new(merged.trim()));
        ovl.ok(["rm", "-f", "pulled"]);
        ensure_same_tree(
            &format!("merged view of {remote}"),
            dump,
            &actual.expect("dump"),
        )
        .unwrap_or_else(|err| panic!("{err:#}"));
    }
    // Pulling again downloads nothing.
    let again = ovl.ok(["pull", &remotes[1]]);
    assert!(
        again.contains("Status: Image is up to date for") && !again.contains("Pull complete"),
        "second pull:\n{again}"
    );
    let fsck = ovl.ok(["fsck", "--verify-content"]);
    assert!(fsck.contains("0 corrupt, 0 leftovers"), "{fsck}");
    drop(docker);

    // A dockerd on ovl's root sees the pulls as its own.
    let daemon = Dockerd::start(&shared);
    let listed = daemon.docker_ok([
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}}@{{.Digest}}",
    ]);
    for remote in &remotes {
        let (_, _, digests, _) = &expected[remote];
        let repo_digest: Vec<String> = serde_json::from_str(digests).expect("RepoDigests");
        let digest = repo_digest[0].split('@').nth(1).expect("digest");
        assert!(
            listed
                .lines()
                .any(|line| line == format!("{remote}@{digest}")),
            "docker images --digests on ovl's root:\n{listed}"
        );
    }
    let seed = remotes
        .iter()
        .find(|r| r.contains("ovl-seed"))
        .expect("seed image");
    let run = daemon.docker_ok([
        "run",
        "--rm",
        "--network",
        "none",
        seed,
        "/bin/sh",
        "-c",
        "echo ran",
    ]);
    assert_eq!(run.trim(), "ran");
    for remote in &remotes {
        let pushed = daemon.docker_ok(["push", remote]);
        let n_layers = image_chain(&daemon, remote).len();
        let existing = pushed
            .lines()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count();
        assert_eq!(
            (existing, pushed_lines(&pushed)),
            (n_layers, 0),
            "docker push {remote} from ovl's root:\n{pushed}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Platforms

/// A two-platform OCI index (amd64 and arm64, a file naming the platform in each) pushed by
/// skopeo: `ovl pull` takes the host's (amd64), `--platform linux/arm64` the other, and the
/// digest recorded is the index's, as Docker records it.
#[test]
fn multi_platform_index_picks_the_platform_needs_root_and_registry() {
    const TEST: &str = "multi_platform_index_picks_the_platform_needs_root_and_registry";
    if !require_registry(TEST) || !require_skopeo(TEST) {
        return;
    }
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test is written for amd64 hosts"
    );
    let scratch = Scratch::new();
    let registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let layout = scratch.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir layout");
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = sha256_digest(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)
            .expect("write blob");
        (digest, bytes.len())
    };
    let mut entries = Vec::new();
    let mut layer_diff_ids = BTreeMap::new();
    for arch in ["amd64", "arm64"] {
        let mut tar = TarBuilder::new();
        tar.file("platform", format!("{arch}\n").as_bytes());
        let tar = tar.finish();
        let diff_id = sha256_digest(&tar);
        let (layer, layer_size) = put(&gzip(&tar));
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("config");
        let (config_digest, config_size) = put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": layer_size}],
        }))
        .expect("manifest");
        let (manifest_digest, manifest_size) = put(&manifest);
        entries.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
        }));
        layer_diff_ids.insert(arch, diff_id);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))
    .expect("index");
    let (index_digest, index_size) = put(&index);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_INDEX,
                "digest": index_digest,
                "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": "1"},
            }],
        }))
        .expect("top index"),
    )
    .expect("write index.json");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
    let remote = format!("{}/multi:1", registry.host());
    let status = Command::new(ovl_tests::SKOPEO)
        .args([
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{remote}"))
        .status()
        .expect("run skopeo");
    assert!(status.success(), "skopeo copy --all");
    let served = registry.get("/v2/multi/manifests/1", OCI_INDEX);
    let served_digest = sha256_digest(&served);

    for (platform, arch) in [(None, "amd64"), (Some("linux/arm64"), "arm64")] {
        let ovl = Ovl::new(scratch.join(format!("root-{arch}")));
        let mut args = vec!["pull"];
        if let Some(platform) = platform {
            args.extend(["--platform", platform]);
        }
        args.push(&remote);
        let out = ovl.ok(&args);
        assert!(out.contains(&format!("Digest: {served_digest}")), "{out}");
        let inspect = ovl.ok([
            "inspect",
            "-f",
            "{{.Architecture}} {{json .RootFS.Layers}} {{json .RepoDigests}}",
            &remote,
        ]);
        assert_eq!(
            inspect.trim(),
            format!(
                "{arch} [\"{}\"] [\"{}/multi@{served_digest}\"]",
                layer_diff_ids[arch],
                registry.host()
            )
        );
    }
    // A platform the index lacks is refused by name, with nothing written.
    let ovl = Ovl::new(scratch.join("root-none"));
    let err = ovl.fail(["pull", "--platform", "linux/s390x", &remote]);
    assert!(
        err.contains("linux/s390x") && err.contains(&remote),
        "{err}"
    );
    assert!(layerdb(&ovl.root).is_empty());
}

// ------------------------------------------------------------------------------------------------
// Push

/// `ovl push` of an image ovl committed: Docker pulls and runs it, skopeo reads its manifest,
/// pushing it twice gives the same manifest digest and uploads nothing the second time; an image
/// pulled from the registry is pushed to another repository by mounts, without uploading a blob.
#[test]
fn push_of_a_commit_runs_in_docker_needs_root_and_dockerd_and_registry() {
    const TEST: &str = "push_of_a_commit_runs_in_docker_needs_root_and_dockerd_and_registry";
    if !require_dockerd(TEST) || !require_registry(TEST) || !require_skopeo(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let host = registry.host();
    let ovl = scratch.base_root("root");
    let merged = ovl.ok(["run-rootfs", "--name", "work", "base:1"]);
    let merged = PathBuf::from(merged.trim());
    std::fs::create_dir_all(merged.join("srv")).expect("mkdir srv");
    std::fs::write(merged.join("srv/pushed"), "made in an ovl container\n").expect("write");
    ovl.ok(["umount", "work"]);
    ovl.ok([
        "commit",
        "-m",
        "pushed",
        "-c",
        "CMD [\"/bin/cat\", \"/srv/pushed\"]",
        "work",
        "app:1",
    ]);
    let remote = format!("{host}/app:1");
    ovl.ok(["tag", "app:1", &remote]);

    let first = ovl.ok(["push", &remote]);
    assert!(
        first.starts_with(&format!("The push refers to repository [{host}/app]\n")),
        "{first}"
    );
    assert_eq!(pushed_lines(&first), 2, "{first}");
    let uploads = registry.finished_uploads();
    let second = ovl.ok(["push", &remote]);
    let digest_line = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("1: digest: sha256:"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no digest line in:\n{out}"))
    };
    assert_eq!(
        digest_line(&first),
        digest_line(&second),
        "two pushes differ"
    );
    assert_eq!(pushed_lines(&second), 0, "{second}");
    assert_eq!(
        registry.finished_uploads(),
        uploads,
        "the second push uploaded"
    );
    let digest = digest_line(&first)
        .split(' ')
        .nth(2)
        .expect("digest")
        .to_string();

    let inspected: serde_json::Value = serde_json::from_slice(
        &ovl_tests::skopeo_json(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ])
        .expect("skopeo inspect"),
    )
    .expect("skopeo JSON");
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(2));
    let raw = registry.get("/v2/app/manifests/1", DOCKER_MANIFEST);
    assert_eq!(sha256_digest(&raw), digest, "the registry's manifest bytes");

    let docker = Dockerd::start(&scratch_path());
    docker.docker_ok(["pull", &remote]);
    let ran = docker.docker_ok(["run", "--rm", "--network", "none", &remote]);
    assert_eq!(ran, "made in an ovl container\n");
    let docker_digests = docker.docker_ok(["inspect", "-f", "{{json .RepoDigests}}", &remote]);
    assert_eq!(docker_digests.trim(), format!("[\"{host}/app@{digest}\"]"));
    drop(docker);

    // Pulled, then pushed to another repository of the registry: mounted, nothing uploaded.
    let other = Ovl::new(scratch.join("other"));
    other.ok(["pull", &remote]);
    let copy = format!("{host}/app-copy:1");
    other.ok(["tag", &remote, &copy]);
    let layers = manifest_layers(&registry, "app", "1");
    let uploads = registry.finished_uploads_of(&layers);
    assert_eq!(
        uploads, 2,
        "the first push's layer uploads, as the registry logged them"
    );
    let mounted = other.ok(["push", &copy]);
    assert_eq!(
        mounted
            .lines()
            .filter(|l| l.ends_with(": Mounted from app"))
            .count(),
        2,
        "{mounted}"
    );
    assert_eq!(
        registry.finished_uploads_of(&layers),
        uploads,
        "the mount uploaded a layer blob"
    );
    assert_eq!(
        digest_line(&mounted).split(' ').nth(2),
        Some(digest.as_str())
    );
}

/// `ovl pull` under a descriptor limit of 32 (soft and hard): three layers of 2,400 small files
/// in nested directories, which the default of three downloads at once would unpack at once,
/// holding more than that open; the layers at once follow the limit, and the pull succeeds with
/// every layer what its DiffID says.
#[test]
fn pull_under_a_low_descriptor_limit_needs_root_and_registry() {
    const TEST: &str = "pull_under_a_low_descriptor_limit_needs_root_and_registry";
    if !require_registry(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let reference = format!("{}/nested:1", registry.host());
    let layers = (0..3)
        .map(|idx| nested_layer(&format!("p{idx}"), 6, 400))
        .collect();
    let (bytes, diff_ids) = layers_archive(layers, "nested-", &[&reference]);
    let archive = scratch.join("nested.tar");
    std::fs::write(&archive, bytes).expect("write the archive");
    let source = Ovl::new(scratch.join("source"));
    source.load(&archive).expect("load into the source root");
    source.ok(["push", &reference]);

    let ovl = Ovl::new(scratch.join("root"));
    ovl.limited_ok(32, 32, ["pull", &reference]);
    assert_layers_stored_clean(&ovl, &diff_ids);
}

// ------------------------------------------------------------------------------------------------
// Failures

/// Each failure exits 1 naming the reference, registers nothing and leaves `fsck` clean: a blob
/// altered on the registry's disk, a tag the registry does not have, a foreign layer, a manifest
/// over 4 MiB, a manifest of 10,000 layers, a registry that wants credentials.
#[test]
fn pull_failures_register_nothing_needs_root_and_registry() {
    const TEST: &str = "pull_failures_register_nothing_needs_root_and_registry";
    if !require_registry(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let host = registry.host();
    let source = scratch.base_root("source");
    import_unique(&source, &scratch, &format!("{host}/altered:1"), 300_000);
    source.ok(["push", &format!("{host}/altered:1")]);
    let ovl = scratch.base_root("root");
    let before = snapshot(&ovl);

    // A layer blob altered on the registry's disk: same size, one byte changed.
    let layer = manifest_layers(&registry, "altered", "1")[0].clone();
    let data = registry.blob_data(&layer);
    let mut bytes = std::fs::read(&data).expect("read blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&data, &bytes).expect("alter blob");
    let reference = format!("{host}/altered:1");
    let err = fail_env(&ovl, &["pull", &reference], &[]);
    assert!(err.contains(&reference), "{err}");
    assert!(
        err.contains(&layer) && (err.contains("digest mismatch") || err.contains("invalid")),
        "the altered blob is not named: {err}"
    );
    assert_unchanged(&ovl, &before, "altered blob");

    // A tag the registry does not have.
    let missing = format!("{host}/altered:nope");
    let err = fail_env(&ovl, &["pull", &missing], &[]);
    assert!(err.contains(&missing) && err.contains("not found"), "{err}");
    assert_unchanged(&ovl, &before, "missing tag");

    // A foreign layer (a URL outside the registry), which Docker would fetch from elsewhere.
    let tar = unique_tar("foreign", 100);
    let config = registry.put_blob("foreign", &image_config(&[sha256_digest(&tar)]));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": image_config(&[sha256_digest(&tar)]).len(), "digest": config},
        "layers": [{
            "mediaType": DOCKER_FOREIGN,
            "size": 1234,
            "digest": format!("sha256:{}", "f".repeat(64)),
            "urls": ["https://foreign.example/layer.tar.gz"],
        }],
    });
    registry.put_manifest(
        "foreign",
        "1",
        DOCKER_MANIFEST,
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    let foreign = format!("{host}/foreign:1");
    let err = fail_env(&ovl, &["pull", &foreign], &[]);
    assert!(
        err.contains(&foreign) && err.contains("foreign layer"),
        "{err}"
    );
    assert_unchanged(&ovl, &before, "foreign layer");

    // 10,000 layers (one blob named 10,000 times): refused before any download.
    let gz = gzip(&tar);
    let blob = registry.put_blob("wide", &gz);
    let diff_ids = vec![sha256_digest(&tar); 10_000];
    let wide_config = image_config(&diff_ids);
    let config = registry.put_blob("wide", &wide_config);
    let layers: Vec<serde_json::Value> = (0..10_000)
        .map(|_| serde_json::json!({"mediaType": DOCKER_LAYER, "size": gz.len(), "digest": blob}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": wide_config.len(), "digest": config},
        "layers": layers,
    });
    registry.put_manifest(
        "wide",
        "1",
        DOCKER_MANIFEST,
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    let wide = format!("{host}/wide:1");
    let blob_gets = || {
        registry
            .log()
            .lines()
            .filter(|l| l.contains(&format!("\"GET /v2/wide/blobs/{blob}")))
            .count()
    };
    let err = fail_env(&ovl, &["pull", &wide], &[]);
    assert!(err.contains(&wide) && err.contains("10000 layers"), "{err}");
    assert_eq!(
        blob_gets(),
        0,
        "a layer of the 10,000-layer image was downloaded"
    );
    assert_unchanged(&ovl, &before, "10,000 layers");

    // A manifest over 4 MiB (distribution 2.8 refuses to store one, so a hostile server serves
    // it).
    let oversized = OversizedManifestServer::start(5 << 20);
    let big = format!("{}/big:1", oversized.host());
    let err = fail_env(&ovl, &["pull", &big], &[]);
    assert!(
        err.contains(&big) && err.contains("limit of 4194304 bytes"),
        "{err}"
    );
    assert_unchanged(&ovl, &before, "oversized manifest");

    // A registry that wants credentials, without any.
    let locked = Registry::start(&scratch.join("locked"), RegistryAuth::Basic);
    let config_dir = scratch.join("docker-config");
    let denied = format!("{}/altered:1", locked.host());
    let err = fail_env(&ovl, &["pull", &denied], &[("DOCKER_CONFIG", &config_dir)]);
    assert!(
        err.contains(&denied) && err.contains(&format!("ovl login {}", locked.host())),
        "{err}"
    );
    assert_unchanged(&ovl, &before, "401");
}

/// A blob download cut in the middle is resumed with a `Range` request; a registry killed in
/// the middle of a blob and started again is waited for; both pulls end with the right image.
#[test]
fn broken_downloads_resume_needs_root_and_registry() {
    const TEST: &str = "broken_downloads_resume_needs_root_and_registry";
    if !require_registry(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let mut registry = Registry::start(&scratch.join("registry"), RegistryAuth::None);
    let source = scratch.base_root("source");
    import_unique(
        &source,
        &scratch,
        &format!("{}/big:1", registry.host()),
        4 << 20,
    );
    source.ok(["push", &format!("{}/big:1", registry.host())]);
    let image_id = source.ok([
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{}/big:1", registry.host()),
    ]);

    let proxy = FlakyProxy::start(registry.port(), 1 << 20, Duration::ZERO);
    let ovl = Ovl::new(scratch.join("resumed"));
    let through = format!("{}/big:1", proxy.host());
    ovl.ok(["pull", &through]);
    assert_eq!(ovl.ok(["inspect", "-f", "{{.Id}}", &through]), image_id);
    let ranges: Vec<String> = proxy
        .heads()
        .into_iter()
        .filter(|head| head.to_ascii_lowercase().contains("\r\nrange: bytes="))
        .collect();
    assert_eq!(
        ranges.len(),
        1,
        "one Range request resumes the cut blob: {:?}",
        proxy.heads()
    );
    assert!(ovl
        .ok(["fsck", "--verify-content"])
        .contains("0 corrupt, 0 leftovers"));

    // Killed in the middle of a blob (the proxy passes 16 KiB every 10 ms), started again.
    let slow = FlakyProxy::start(registry.port(), usize::MAX, Duration::from_millis(10));
    let ovl = Ovl::new(scratch.join("restarted"));
    let through = format!("{}/big:1", slow.host());
    let child = ovl
        .command(["pull", &through])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pull");
    let started = Instant::now();
    while !slow
        .heads()
        .iter()
        .any(|h| h.starts_with("GET ") && h.contains("/blobs/sha256:"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no blob request"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(400));
    registry.stop();
    std::thread::sleep(Duration::from_millis(700));
    registry.restart();
    let output = child.wait_with_output().expect("wait for pull");
    assert!(
        output.status.success(),
        "pull across a registry restart: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(ovl.ok(["inspect", "-f", "{{.Id}}", &through]), image_id);
    assert!(ovl
        .ok(["fsck", "--verify-content"])
        .contains("0 corrupt, 0 leftovers"));
}

// ------------------------------------------------------------------------------------------------
// Authentication and TLS

/// `ovl login` against htpasswd basic auth and against the bearer token flow, credentials kept
/// where Docker keeps them; push and pull with them; `ovl logout` takes them away again; a TLS
/// registry with its CA in a `certs.d` directory, and without it.
#[test]
fn login_token_and_tls_needs_root_and_registry() {
    const TEST: &str = "login_token_and_tls_needs_root_and_registry";
    if !require_registry(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let source = scratch.base_root("source");
    let config_dir = scratch.join("docker-config");
    let env: [(&str, &Path); 1] = [("DOCKER_CONFIG", &config_dir)];
    for auth in [RegistryAuth::Basic, RegistryAuth::Token] {
        let registry = Registry::start(&scratch.join(format!("{auth:?}")), auth);
        let host = registry.host();
        let remote = format!("{host}/private:1");
        source.ok(["tag", "base:1", &remote]);
        let err = fail_env(&source, &["push", &remote], &env);
        assert!(
            err.contains(&format!("ovl login {host}")),
            "{auth:?}: {err}"
        );

        let output = login_with_stdin(&source, &host, &config_dir, "not-the-password");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{auth:?}: a wrong password logged in"
        );
        let output = login_with_stdin(&source, &host, &config_dir, REGISTRY_PASSWORD);
        assert!(
            output.status.success(),
            "{auth:?}: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), "Login Succeeded\n");
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(config_dir.join("config.json")).expect("config.json"),
        )
        .expect("config JSON");
        use base64::Engine as _;
        let expected_auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
        assert_eq!(
            config["auths"][host.as_str()]["auth"],
            expected_auth.as_str()
        );

        ok_env(&source, &["push", &remote], &env);
        let ovl = Ovl::new(scratch.join(format!("pulled-{auth:?}")));
        ok_env(&ovl, &["pull", &remote], &env);
        assert_eq!(
            ovl.ok(["inspect", "-f", "{{.Id}}", &remote]),
            source.ok(["inspect", "-f", "{{.Id}}", "base:1"])
        );
        if auth == RegistryAuth::Token {
            let scopes = registry.token_scopes();
            assert!(
                scopes.iter().any(|s| s == "repository:private:pull,push")
                    && scopes.iter().any(|s| s == "repository:private:pull"),
                "scopes the token server was asked for: {scopes:?}"
            );
        }
        let out = ok_env(&source, &["logout", &host], &env);
        assert_eq!(out, format!("Removing login credentials for {host}\n"));
        let ovl = Ovl::new(scratch.join(format!("denied-{auth:?}")));
        let err = fail_env(&ovl, &["pull", &remote], &env);
        assert!(err.contains("ovl login"), "{err}");
        assert!(layerdb(&ovl.root).is_empty());
    }

    // TLS: the test CA in certs.d/<host:port>/ca.crt.
    let registry = Registry::start(&scratch.join("tls"), RegistryAuth::Tls);
    let remote = format!("{}/secure:1", registry.host());
    let certs_d = registry.certs_d();
    let tls_env: [(&str, &Path); 2] = [("DOCKER_CONFIG", &config_dir), ("OVL_CERTS_D", &certs_d)];
    source.ok(["tag", "base:1", &remote]);
    ok_env(&source, &["push", &remote], &tls_env);
    let ovl = Ovl::new(scratch.join("pulled-tls"));
    ok_env(&ovl, &["pull", &remote], &tls_env);
    let empty = scratch.join("no-certs");
    std::fs::create_dir_all(empty.join(registry.host())).expect("mkdir");
    let untrusted: [(&str, &Path); 1] = [("OVL_CERTS_D", &empty)];
    let ovl = Ovl::new(scratch.join("untrusted"));
    let err = fail_env(&ovl, &["pull", &remote], &untrusted);
    assert!(err.contains(&remote), "{err}");
    assert!(layerdb(&ovl.root).is_empty());
}

// ------------------------------------------------------------------------------------------------
// Load from a pipe

/// `docker save | ovl load`, `ovl load < file` and `ovl load -i file` store the same images,
/// tags and layers; a 20,000-file image loads through a pipe in bounded memory.
#[test]
fn load_from_a_pipe_needs_root_and_dockerd() {
    const TEST: &str = "load_from_a_pipe_needs_root_and_dockerd";
    let Some(docker) = ovl_tests::dockerd_with_base(TEST) else {
        return;
    };
    let scratch = Scratch::new();
    let image = ovl_tests::BASE_IMAGE;
    let archive = scratch.join("base.tar");
    docker.save(image, &archive);
    // Cache ids are random: the layers compare by ChainID, DiffID, size and parent.
    let listing = |ovl: &Ovl| {
        (
            ovl.ok([
                "images",
                "--no-trunc",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.ID}}",
            ]),
            layerdb(&ovl.root)
                .into_iter()
                .map(|(chain, info)| (chain, info.diff, info.size, info.parent))
                .collect::<Vec<_>>(),
        )
    };
    let from_file = Ovl::new(scratch.join("file"));
    from_file.ok(["load", "-i", &archive.display().to_string()]);
    let expected = listing(&from_file);

    let piped = Ovl::new(scratch.join("piped"));
    let mut save = docker
        .docker_command(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let load = piped
        .command(["load"])
        .stdin(save.stdout.take().expect("docker save stdout"))
        .output()
        .expect("ovl load");
    assert!(save.wait().expect("docker save").success());
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert_eq!(text(&load.stdout), format!("Loaded image: {image}\n"));
    assert_eq!(listing(&piped), expected);

    let redirected = Ovl::new(scratch.join("redirected"));
    let load = redirected
        .command(["load"])
        .stdin(std::fs::File::open(&archive).expect("open archive"))
        .output()
        .expect("ovl load");
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert_eq!(listing(&redirected), expected);
    let dash = Ovl::new(scratch.join("dash"));
    let load = dash
        .command(["load", "-i", "-"])
        .stdin(std::fs::File::open(&archive).expect("open archive"))
        .output()
        .expect("ovl load");
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert_eq!(listing(&dash), expected);
    for ovl in [&piped, &redirected, &dash] {
        let tmp = std::fs::read_dir(ovl.root.join("tmp"))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert_eq!(tmp, 0, "a spool file was left in {}", ovl.root.display());
    }

    // Peak memory through a pipe: an image of 20,000 small files.
    let mut tar = TarBuilder::new();
    tar.dir("files/");
    for i in 0..20_000 {
        tar.file(
            &format!("files/{i:05}"),
            format!("file {i}\n").repeat(40).as_bytes(),
        );
    }
    let layer = tar.finish();
    let config = image_config(&[sha256_digest(&layer)]);
    let smallfiles = scratch.join("smallfiles.tar");
    std::fs::write(
        &smallfiles,
        ovl_tests::docker_archive(
            &config,
            &[("l/layer.tar".to_string(), layer)],
            &["smallfiles:1"],
        ),
    )
    .expect("write archive");
    let ovl = Ovl::new(scratch.join("smallfiles"));
    let report = scratch.join("rss");
    let mut load = under_gnu_time(&ovl.command(["load", "-q"]), &report);
    let mut child = load
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start ovl load");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let mut file = std::fs::File::open(&smallfiles).expect("open archive");
        std::io::copy(&mut file, &mut stdin).expect("pipe the archive");
    }
    assert!(child.wait().expect("ovl load").success());
    let rss = peak_rss_kib(&report).expect("peak RSS");
    eprintln!("ovl load of 20,000 files through a pipe: peak RSS {rss} KiB");
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB through a pipe");
    assert_eq!(layerdb(&ovl.root).len(), 1);
}
