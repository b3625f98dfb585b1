//! Docker-archives assembled member by member, and the compressed forms the cases need.

use super::*;

/// A docker-archive assembled member by member, `manifest.json` as given.
pub(super) struct ArchiveBuilder {
    pub(super) tar: TarBuilder,
}

impl ArchiveBuilder {
    pub(super) fn new() -> ArchiveBuilder {
        ArchiveBuilder {
            tar: TarBuilder::new(),
        }
    }

    /// A builder holding the base layer as its first member.
    pub(super) fn on_base(base: &Base) -> ArchiveBuilder {
        ArchiveBuilder::new().file(BASE_MEMBER, &base.tar)
    }

    pub(super) fn file(mut self, name: &str, data: &[u8]) -> Self {
        let header = Header {
            mtime: 1_700_000_000,
            ..Header::new(name.as_bytes(), b'0')
        };
        self.tar.entry(&header, data);
        self
    }

    pub(super) fn symlink(mut self, name: &str, target: &str) -> Self {
        self.tar.symlink(name, target);
        self
    }

    /// The config as `<sha256>.json`.
    pub(super) fn config(self, config: &[u8]) -> Self {
        let name = config_member(config);
        self.file(&name, config)
    }

    /// `manifest.json` with one item per (config member, layer members, tag).
    pub(super) fn manifest(self, items: &[(&str, &[&str], &str)]) -> Self {
        self.file("manifest.json", &manifest_json(items))
    }

    /// `manifest.json` with one item: `config`, the base layer and the layer of the case
    /// `name`, tagged for the case.
    pub(super) fn base_manifest(self, config: &[u8], name: &str) -> Self {
        self.manifest(&[(
            &config_member(config),
            &[BASE_MEMBER, &layer_member(name)],
            &tag_of(name),
        )])
    }

    /// Appends raw members.
    pub(super) fn raw(mut self, append: impl FnOnce(&mut TarBuilder)) -> Self {
        append(&mut self.tar);
        self
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.tar.finish()
    }
}

/// `manifest.json` with one item per (config member, layer members, tag).
pub(super) fn manifest_json(items: &[(&str, &[&str], &str)]) -> Vec<u8> {
    let manifest: Vec<serde_json::Value> = items
        .iter()
        .map(|(config, layers, tag)| {
            serde_json::json!({"Config": config, "RepoTags": [tag], "Layers": layers})
        })
        .collect();
    serde_json::to_vec(&manifest).expect("serialize manifest")
}

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_level(bytes, flate2::Compression::default())
}

pub(super) fn gzip_level(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

pub(super) fn zstd_with_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd checksum flag");
    encoder.write_all(bytes).expect("zstd");
    encoder.finish().expect("zstd finish")
}

/// A layer whose one file is [`BOMB_FILE_LEN`] zeros, as concatenated gzip members: the header,
/// the same 16 MiB of zeros at deflate's best ratio (about 1000:1) 128 times, the end-of-archive
/// marker. About 2 MiB in all; returns the blob and its DiffID, computed once per test run (it
/// hashes 2 GiB).
pub(super) fn gzip_bomb() -> &'static (Vec<u8>, String) {
    static BOMB: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    BOMB.get_or_init(make_gzip_bomb)
}

pub(super) fn make_gzip_bomb() -> (Vec<u8>, String) {
    /// The zeros compressed once and repeated.
    const CHUNK_LEN: usize = 16 << 20;
    let header = Header::new(b"zeros", b'0').bytes(BOMB_FILE_LEN);
    let mut blob = gzip(&header);
    let zeros = vec![0u8; CHUNK_LEN];
    let chunk = gzip_level(&zeros, flate2::Compression::best());
    let mut hasher = Sha256::new();
    hasher.update(header);
    for _ in 0..BOMB_FILE_LEN / CHUNK_LEN as u64 {
        blob.extend_from_slice(&chunk);
        hasher.update(&zeros);
    }
    let end = [0u8; 1024];
    blob.extend_from_slice(&gzip(&end));
    hasher.update(end);
    (blob, format!("sha256:{}", hex(&hasher.finalize())))
}
