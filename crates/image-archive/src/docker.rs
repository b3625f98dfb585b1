//! docker-archive: `docker save` output, read through its `manifest.json`.

use serde::Deserialize;

use crate::digest::{is_sha256_hex, parse_sha256, sha256_digest};
use crate::source::MemberReader;
use crate::{Error, ImageSource, LayerRef, Result};

/// The member that makes an archive a docker-archive. Docker 25+ also writes `index.json`; when
/// both are present `manifest.json` is what is read, as `docker load` does.
pub(crate) const MANIFEST_MEMBER: &str = "manifest.json";

/// One entry of `manifest.json` (moby `image/tar.manifestItem`).
#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The most images one archive may list. A real `docker save` of many images stays far below it;
/// a manifest that repeats one entry a million times would otherwise make a load read and register
/// the same image a million times.
pub(crate) const MAX_MANIFEST_ENTRIES: usize = 10_000;

/// Reads and verifies every image `manifest.json` lists.
pub(crate) fn read_images(reader: &MemberReader<'_>) -> Result<Vec<ImageSource>> {
    let manifest_bytes = reader.read_json_bytes(MANIFEST_MEMBER)?;
    let items: Vec<ManifestItem> = reader.parse_json(MANIFEST_MEMBER, &manifest_bytes)?;
    if items.len() > MAX_MANIFEST_ENTRIES {
        return Err(Error::TooManyEntries {
            archive: reader.archive.to_path_buf(),
            member: MANIFEST_MEMBER.to_string(),
            count: items.len(),
            limit: MAX_MANIFEST_ENTRIES,
        });
    }
    if items.is_empty() {
        return Err(Error::NoImages {
            archive: reader.archive.to_path_buf(),
            member: MANIFEST_MEMBER.to_string(),
        });
    }
    items.iter().map(|item| read_image(reader, item)).collect()
}

fn read_image(reader: &MemberReader<'_>, item: &ManifestItem) -> Result<ImageSource> {
    let config_member = reader.checked_reference(&item.config)?;
    let config = reader.read_json_bytes(&config_member)?;
    let image_id = sha256_digest(&config);
    if let Some(expected_hex) = id_from_config_name(&config_member) {
        let expected = format!("sha256:{expected_hex}");
        if expected != image_id {
            return Err(Error::DigestMismatch {
                archive: reader.archive.to_path_buf(),
                member: config_member,
                expected,
                actual: image_id,
            });
        }
    }
    let diff_ids = parse_diff_ids(reader, &config_member, &config, item.layers.len())?;
    let mut layers = Vec::with_capacity(item.layers.len());
    for (layer, diff_id) in item.layers.iter().zip(diff_ids) {
        let member = reader.checked_reference(layer)?;
        // Resolving now reports a missing layer or a link leaving the archive before any layer
        // of the load is registered.
        reader.check(&member)?;
        layers.push(LayerRef {
            member,
            digest: None,
            media_type: None,
            diff_id,
        });
    }
    Ok(ImageSource {
        config,
        image_id,
        names: item.repo_tags.clone().unwrap_or_default(),
        layers,
    })
}

/// The image id a config member's name promises: `<hex>.json` (docker save up to 24) or
/// `blobs/sha256/<hex>` (Docker 25+). Other names promise nothing.
fn id_from_config_name(member: &str) -> Option<&str> {
    let file_name = member.rsplit('/').next().unwrap_or(member);
    let hex = file_name.strip_suffix(".json").unwrap_or(file_name);
    is_sha256_hex(hex).then_some(hex)
}

#[derive(Debug, Deserialize)]
struct ConfigProbe {
    rootfs: Option<RootFs>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    diff_ids: Option<Vec<String>>,
}

/// The `rootfs.diff_ids` of an image config, each a valid sha256 digest, one for each of the
/// `n_layers` layers the manifest lists.
pub(crate) fn parse_diff_ids(
    reader: &MemberReader<'_>,
    member: &str,
    config: &[u8],
    n_layers: usize,
) -> Result<Vec<String>> {
    let diff_ids = parse_config_diff_ids(reader, member, config)?;
    if diff_ids.len() != n_layers {
        return Err(Error::LayerCountMismatch {
            archive: reader.archive.to_path_buf(),
            member: member.to_string(),
            layers: n_layers,
            diff_ids: diff_ids.len(),
        });
    }
    Ok(diff_ids)
}

/// The `rootfs.diff_ids` of an image config, each a valid sha256 digest.
fn parse_config_diff_ids(
    reader: &MemberReader<'_>,
    member: &str,
    config: &[u8],
) -> Result<Vec<String>> {
    let invalid = |reason: String| Error::InvalidConfig {
        archive: reader.archive.to_path_buf(),
        member: member.to_string(),
        reason,
    };
    let probe: ConfigProbe = reader.parse_json(member, config)?;
    let diff_ids = probe
        .rootfs
        .and_then(|rootfs| rootfs.diff_ids)
        .ok_or_else(|| invalid("rootfs.diff_ids missing".to_string()))?;
    if let Some(bad) = diff_ids.iter().find(|d| parse_sha256(d).is_none()) {
        return Err(invalid(format!("invalid diff_id {bad:?}")));
    }
    Ok(diff_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_promise_ids_only_when_hex() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            id_from_config_name(&format!("{hex}.json")),
            Some(hex.as_str())
        );
        assert_eq!(
            id_from_config_name(&format!("blobs/sha256/{hex}")),
            Some(hex.as_str())
        );
        assert_eq!(id_from_config_name("config.json"), None);
        assert_eq!(id_from_config_name(&format!("{}.json", &hex[1..])), None);
    }
}
