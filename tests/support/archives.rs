//! Archives made in the tests: image configs, docker-archives and gzip.

use super::*;

// ------------------------------------------------------------------------------------------------
// Archives made in the tests

/// A minimal image config with the given DiffIDs (Go-like compact JSON, sorted keys).
pub fn image_config(diff_ids: &[String]) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&config).expect("serialize config")
}

/// A docker-archive (`docker save` layout): `<member>` per layer as given (stored bytes may be
/// compressed), `<config id>.json` and `manifest.json`; returns the archive bytes.
pub fn docker_archive(config: &[u8], layers: &[(String, Vec<u8>)], repo_tags: &[&str]) -> Vec<u8> {
    let config_name = format!(
        "{}.json",
        sha256_digest(config).trim_start_matches("sha256:")
    );
    let mtime = 1_700_000_000;
    let mut builder = TarBuilder::at(mtime);
    let mut dirs_done = std::collections::BTreeSet::new();
    for (member, bytes) in layers {
        if let Some((dir, _)) = member.rsplit_once('/') {
            if dirs_done.insert(dir.to_string()) {
                builder.dir(&format!("{dir}/"));
            }
        }
        builder.file(member, bytes);
    }
    builder.file(&config_name, config);
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(repo_tags) },
        "Layers": layers.iter().map(|(member, _)| member.clone()).collect::<Vec<_>>(),
    }]);
    let mut manifest_bytes = serde_json::to_vec(&manifest).expect("serialize manifest");
    manifest_bytes.push(b'\n');
    let manifest_header = Header {
        mtime: 0,
        ..Header::new(b"manifest.json", b'0')
    };
    builder.entry(&manifest_header, &manifest_bytes);
    builder.finish()
}

/// Writes a [`docker_archive`] to `path`.
pub fn write_docker_archive(
    path: &Path,
    config: &[u8],
    layers: &[(String, Vec<u8>)],
    repo_tags: &[&str],
) {
    fs::write(path, docker_archive(config, layers, repo_tags))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `layers` as docker-archive members `<prefix><idx>/layer.tar`.
pub fn layer_members(prefix: &str, layers: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    layers
        .into_iter()
        .enumerate()
        .map(|(idx, bytes)| (format!("{prefix}{idx}/layer.tar"), bytes))
        .collect()
}

/// A docker-archive of `layers` (member `<prefix><idx>/layer.tar` each) with an
/// [`image_config`] of their DiffIDs, tagged `tags`; returns the archive and the DiffIDs.
pub fn layers_archive(layers: Vec<Vec<u8>>, prefix: &str, tags: &[&str]) -> (Vec<u8>, Vec<String>) {
    let diff_ids: Vec<String> = layers.iter().map(|layer| sha256_digest(layer)).collect();
    let archive = docker_archive(
        &image_config(&diff_ids),
        &layer_members(prefix, layers),
        tags,
    );
    (archive, diff_ids)
}

/// One tar member as the `tar` crate decodes it.
#[derive(Debug, Clone)]
pub struct TarMember {
    pub header: tar::Header,
    /// The name and link name, with any PAX or GNU long-name records applied.
    pub name: Vec<u8>,
    pub link: Option<Vec<u8>>,
    /// The `SCHILY.xattr.` PAX records: the xattr name and its value.
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub data: Vec<u8>,
}

/// Every member of the tar `reader` holds, in order.
pub fn tar_members(reader: impl std::io::Read) -> anyhow::Result<Vec<TarMember>> {
    let mut archive = tar::Archive::new(reader);
    let mut members = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut xattrs = Vec::new();
        for extension in entry.pax_extensions()?.into_iter().flatten() {
            let extension = extension?;
            let key = extension.key().map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.push((name.to_string(), extension.value_bytes().to_vec()));
            }
        }
        let header = entry.header().clone();
        let name = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data)?;
        members.push(TarMember {
            header,
            name,
            link,
            xattrs,
            data,
        });
    }
    Ok(members)
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// Runs `skopeo --insecure-policy args`; returns its stdout.
pub fn skopeo_json(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut skopeo = Command::new(SKOPEO);
    skopeo.arg("--insecure-policy").args(args);
    stdout_of_success(skopeo)
}

/// Runs `command`; its stdout when it succeeds, else an error with its stderr.
pub fn stdout_of_success(mut command: Command) -> anyhow::Result<Vec<u8>> {
    let output = command
        .output()
        .with_context(|| format!("spawn {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// A layer tar of `n_dirs` directories of `n_files` small files each, four levels down under
/// `top/` (`top/a/b/c/d<N>/f<M>`): enough descriptors in flight, at every level, to find what a
/// command keeps open.
pub fn nested_layer(top: &str, n_dirs: usize, n_files: usize) -> Vec<u8> {
    let mut builder = TarBuilder::at(1_700_000_000);
    for parent in ["", "/a", "/a/b", "/a/b/c"] {
        builder.dir(&format!("{top}{parent}/"));
    }
    for dir in 0..n_dirs {
        let path = format!("{top}/a/b/c/d{dir}");
        builder.dir(&format!("{path}/"));
        for file in 0..n_files {
            let data = format!("{top} {dir} {file}\n").repeat(30 + file % 50);
            builder.file(&format!("{path}/f{file}"), data.as_bytes());
        }
    }
    builder.finish()
}
