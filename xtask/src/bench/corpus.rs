//! The generated part of the benchmark corpus: `smallfiles` archives of any file count and the
//! one-layer archive of `--entries N` empty files.

use super::*;

// ------------------------------------------------------------------------------------------------
// Corpus

/// A docker-archive of `smallfiles:1`, generated once per file count.
pub(super) fn smallfiles_archive(corpus: &Path, n_files: usize) -> Result<PathBuf> {
    let archive = corpus.join(format!("smallfiles-{n_files}.tar"));
    if archive.exists() {
        return Ok(archive);
    }
    eprintln!("bench: generating {}", archive.display());
    let base = ovl_tests::base_rootfs_tar();
    let layer_path = corpus.join(format!("smallfiles-{n_files}.layer.tar"));
    let layer_diff_id = write_smallfiles_layer(&layer_path, n_files)?;
    write_one_image_archive(
        &archive,
        "smallfiles:1",
        Some(&base),
        &layer_path,
        &layer_diff_id,
    )?;
    Ok(archive)
}

/// A docker-archive of `entries:N`: one layer of `n_entries` empty files, 1000 per directory,
/// generated once per count. Only the number of entries matters to what it measures.
pub(super) fn entries_archive(corpus: &Path, n_entries: usize) -> Result<PathBuf> {
    let archive = corpus.join(format!("entries-{n_entries}.tar"));
    if archive.exists() {
        return Ok(archive);
    }
    eprintln!("bench: generating {}", archive.display());
    let layer_path = corpus.join(format!("entries-{n_entries}.layer.tar"));
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, fs::File::create(&layer_path)?),
        hasher: Sha256::new(),
    };
    let header = |name: String, typeflag: u8, mode: i64| gotar::Header {
        name: name.into_bytes(),
        typeflag,
        mode,
        mtime: 1_600_000_000,
        uname: b"root".to_vec(),
        gname: b"root".to_vec(),
        ..gotar::Header::default()
    };
    for idx in 0..n_entries {
        let dir = idx / 1000;
        if idx % 1000 == 0 {
            out.write_all(&header(format!("e{dir:05}/"), gotar::typeflag::DIR, 0o40755).encode()?)?;
        }
        let name = format!("e{dir:05}/entry-{idx:08}");
        out.write_all(&header(name, gotar::typeflag::REG, 0o100644).encode()?)?;
    }
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    let HashingWriter { mut inner, hasher } = out;
    inner.flush()?;
    drop(inner);
    let diff_id = format!("sha256:{}", crate::hex(&hasher.finalize()));
    write_one_image_archive(
        &archive,
        &format!("entries:{n_entries}"),
        None,
        &layer_path,
        &diff_id,
    )?;
    Ok(archive)
}

/// Writes a docker-archive of one image tagged `tag`: the optional `base` layer and the layer
/// at `layer_path` (removed afterwards), written to a partial file renamed into place.
pub(super) fn write_one_image_archive(
    archive: &Path,
    tag: &str,
    base: Option<&[u8]>,
    layer_path: &Path,
    layer_diff_id: &str,
) -> Result<()> {
    let mut diff_ids = Vec::new();
    let mut layer_names = Vec::new();
    if let Some(base) = base {
        diff_ids.push(format!("sha256:{}", crate::hex(&Sha256::digest(base))));
        layer_names.push("base/layer.tar");
    }
    diff_ids.push(layer_diff_id.to_string());
    layer_names.push("top/layer.tar");
    let config = image_config(&diff_ids, "PATH=/bin")?;
    let config_name = format!("{}.json", crate::hex(&Sha256::digest(&config)));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layer_names,
    }]))?;

    let partial = archive.with_extension("tar.partial");
    let mut out = BufWriter::new(fs::File::create(&partial)?);
    let mut member = |name: &str, data: &mut dyn std::io::Read, size: u64| {
        crate::tar_member(&mut out, name, data, size, 0)
    };
    member(&config_name, &mut &config[..], config.len() as u64)?;
    if let Some(base) = base {
        member("base/layer.tar", &mut &base[..], base.len() as u64)?;
    }
    let layer_len = fs::metadata(layer_path)?.len();
    member("top/layer.tar", &mut fs::File::open(layer_path)?, layer_len)?;
    member("manifest.json", &mut &manifest[..], manifest.len() as u64)?;
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("flushing {}: {e}", partial.display()))?
        .sync_all()?;
    fs::remove_file(layer_path)?;
    fs::rename(&partial, archive)?;
    Ok(())
}

/// Writes the `smallfiles` layer: `sf/dNNN/dNN/fNNNNNN`, 100 files per directory, sizes and
/// bytes from a fixed xorshift sequence. Returns its DiffID.
pub(super) fn write_smallfiles_layer(path: &Path, n_files: usize) -> Result<String> {
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, fs::File::create(path)?),
        hasher: Sha256::new(),
    };
    let mtime = 1_600_000_000;
    let dir_header = |name: String| gotar::Header {
        name: name.into_bytes(),
        typeflag: gotar::typeflag::DIR,
        mode: 0o40755,
        mtime,
        uname: b"root".to_vec(),
        gname: b"root".to_vec(),
        ..gotar::Header::default()
    };
    out.write_all(&dir_header("sf/".into()).encode()?)?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let files_per_dir = 100;
    let dirs_per_top = 10;
    let mut data = Vec::with_capacity(4096);
    for idx in 0..n_files {
        let top = idx / (files_per_dir * dirs_per_top);
        let sub = idx / files_per_dir % dirs_per_top;
        if idx % (files_per_dir * dirs_per_top) == 0 {
            out.write_all(&dir_header(format!("sf/d{top:03}/")).encode()?)?;
        }
        if idx % files_per_dir == 0 {
            out.write_all(&dir_header(format!("sf/d{top:03}/d{sub:02}/")).encode()?)?;
        }
        let size = 1024 + (next() % 3073) as usize;
        data.clear();
        while data.len() < size {
            data.extend_from_slice(&next().to_le_bytes());
        }
        data.truncate(size);
        let header = gotar::Header {
            name: format!("sf/d{top:03}/d{sub:02}/f{idx:06}").into_bytes(),
            typeflag: gotar::typeflag::REG,
            mode: 0o100644,
            size: size as i64,
            mtime,
            uname: b"root".to_vec(),
            gname: b"root".to_vec(),
            ..gotar::Header::default()
        };
        out.write_all(&header.encode()?)?;
        out.write_all(&data)?;
        out.write_all(&vec![0u8; gotar::padding(size as u64)])?;
    }
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    out.inner.flush()?;
    Ok(format!("sha256:{}", crate::hex(&out.hasher.finalize())))
}

pub(super) struct HashingWriter<W: Write> {
    pub(super) inner: W,
    pub(super) hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The config of a corpus image: `diff_ids` with one history entry each, `/bin/sh` run with
/// `env`.
pub(super) fn image_config(diff_ids: &[String], env: &str) -> Result<Vec<u8>> {
    let history: Vec<serde_json::Value> = diff_ids
        .iter()
        .map(|_| serde_json::json!({"created": "2024-01-01T00:00:00Z"}))
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"], "Env": [env]},
        "created": "2024-01-01T00:00:00Z",
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?)
}
