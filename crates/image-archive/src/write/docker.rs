//! docker-archive as Docker 20.10's `docker save` writes it (moby `image/tar` save, format.md §11.1).
//!
//! Docker fills a temp directory and tars it: per layer a `<v1id>/` directory with `VERSION`,
//! `json` and `layer.tar`, then `<config hex>.json`, `manifest.json` and, when any tag is saved,
//! `repositories`. The walk of that directory sorts names, so the archive lists top-level names
//! in byte order, each directory followed by its files. Files get the mode 0644 and their
//! directories 0755; layer files and directories carry the image's creation time (clamped to the
//! epoch as `system.Chtimes` does), `manifest.json` and `repositories` the epoch. A layer whose
//! DiffID was already written gets a `layer.tar` symlink to that copy, and its directory is not
//! stamped, so it keeps the time of the save. A layer directory already written (same v1 id) is
//! not written again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::tarball::TarWriter;
use super::v1::V1Image;
use super::{copy_layer, split_tag, Prepared, SaveImage};
use crate::{Error, Result};

/// The content of every `VERSION` member.
const LEGACY_VERSION: &[u8] = b"1.0";
const MANIFEST_MEMBER: &str = "manifest.json";
const REPOSITORIES_MEMBER: &str = "repositories";

/// The members of a docker-archive in the order they are written.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) members: Vec<Member>,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) mtime: i64,
    pub(crate) body: Body,
}

#[derive(Debug)]
pub(crate) enum Body {
    Dir,
    Bytes(Vec<u8>),
    Symlink(String),
    /// The tar of layer `layer` of image `image` (indexes into the caller's list).
    Layer {
        image: usize,
        layer: usize,
    },
}

/// One `manifest.json` entry (moby `manifestItem`), fields in declaration order.
#[derive(Debug, Serialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
    #[serde(rename = "Parent", skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

/// Plans the archive of `unique` (prepared from `images`), images in the given order.
pub(crate) fn plan(images: &[SaveImage], unique: &[Prepared], now: i64) -> Result<Plan> {
    // Top-level name → the members it contributes (a layer directory and its files, or a file).
    let mut top_level: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    let mut saved_v1_ids: HashSet<String> = HashSet::new();
    // DiffID → the `<v1id>/layer.tar` holding its tar.
    let mut layer_paths: HashMap<&str, String> = HashMap::new();
    let mut manifest: Vec<ManifestItem> = Vec::with_capacity(unique.len());
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let saved_ids: HashSet<&str> = unique
        .iter()
        .map(|p| images[p.idx].image_id.as_str())
        .collect();

    for prepared in unique {
        let image = &images[prepared.idx];
        let invalid = |reason: String| Error::InvalidSaveImage {
            image: image.name.clone(),
            reason,
        };
        let encode_error = |err: serde_json::Error| invalid(format!("encoding json: {err}"));
        if image.layers.is_empty() {
            // Docker's save refuses such an image too ("empty export - not implemented"): the
            // format names an image's layers by the v1 id of its top layer.
            return Err(invalid(
                "an image without layers cannot be saved as a docker-archive".to_string(),
            ));
        }
        let top = V1Image::from_config(&image.config).map_err(invalid)?;
        let created = top.created.chtimes_mtime();
        let n_layers = image.layers.len();
        let mut parent_hex: Option<String> = None;
        let mut layer_members = Vec::with_capacity(n_layers);
        for (layer_idx, layer) in image.layers.iter().enumerate() {
            let mut legacy = if layer_idx + 1 == n_layers {
                top.clone()
            } else {
                V1Image::below_top()
            };
            let parent_digest = parent_hex.as_ref().map(|hex| format!("sha256:{hex}"));
            let v1_id = legacy
                .v1_id(&prepared.chain_ids[layer_idx], parent_digest.as_deref())
                .map_err(encode_error)?;
            if saved_v1_ids.insert(v1_id.clone()) {
                legacy.os = top.os.clone();
                let json = legacy
                    .json_bytes(&v1_id, parent_hex.as_deref().unwrap_or(""))
                    .map_err(encode_error)?;
                let (mtime, layer_body) = match layer_paths.get(layer.diff_id.as_str()) {
                    Some(earlier) => (now, Body::Symlink(format!("../{earlier}"))),
                    None => {
                        layer_paths.insert(&layer.diff_id, format!("{v1_id}/layer.tar"));
                        (
                            created,
                            Body::Layer {
                                image: prepared.idx,
                                layer: layer_idx,
                            },
                        )
                    }
                };
                let member = |file: &str, body: Body| Member {
                    name: format!("{v1_id}/{file}"),
                    mtime,
                    body,
                };
                let members = vec![
                    member("", Body::Dir),
                    member("VERSION", Body::Bytes(LEGACY_VERSION.to_vec())),
                    member("json", Body::Bytes(json)),
                    member("layer.tar", layer_body),
                ];
                top_level.insert(v1_id.clone(), members);
            }
            layer_members.push(format!("{v1_id}/layer.tar"));
            parent_hex = Some(v1_id);
        }

        let config_name = format!("{}.json", image.image_id.trim_start_matches("sha256:"));
        top_level.insert(
            config_name.clone(),
            vec![Member {
                name: config_name.clone(),
                mtime: created,
                body: Body::Bytes(image.config.clone()),
            }],
        );
        for tag in &prepared.repo_tags {
            if let (Some((repo, tag)), Some(top_v1_id)) = (split_tag(tag), &parent_hex) {
                repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), top_v1_id.clone());
            }
        }
        let parent = image
            .parent
            .as_deref()
            .filter(|p| *p != image.image_id && saved_ids.contains(p))
            .map(str::to_string);
        manifest.push(ManifestItem {
            config: config_name,
            repo_tags: (!prepared.repo_tags.is_empty()).then(|| prepared.repo_tags.clone()),
            layers: layer_members,
            parent,
        });
    }

    top_level.insert(
        MANIFEST_MEMBER.to_string(),
        vec![Member {
            name: MANIFEST_MEMBER.to_string(),
            mtime: 0,
            body: Body::Bytes(encoder_line(MANIFEST_MEMBER, &manifest)?),
        }],
    );
    if !repositories.is_empty() {
        top_level.insert(
            REPOSITORIES_MEMBER.to_string(),
            vec![Member {
                name: REPOSITORIES_MEMBER.to_string(),
                mtime: 0,
                body: Body::Bytes(encoder_line(REPOSITORIES_MEMBER, &repositories)?),
            }],
        );
    }
    Ok(Plan {
        members: top_level.into_values().flatten().collect(),
    })
}

/// Writes the planned members to `out`, streaming each layer from its source.
pub(crate) fn write(
    images: &mut [SaveImage],
    plan: &Plan,
    out: &mut dyn Write,
    output: &Path,
) -> Result<()> {
    let mut tar = TarWriter::new(out, output);
    for member in &plan.members {
        match &member.body {
            Body::Dir => tar.dir(&member.name, member.mtime)?,
            Body::Bytes(bytes) => tar.file(&member.name, bytes, member.mtime)?,
            Body::Symlink(target) => tar.symlink(&member.name, target, member.mtime)?,
            Body::Layer { image, layer } => {
                let image = &mut images[*image];
                let tar_len = image.layers[*layer].tar_len;
                tracing::debug!(image = %image.name, diff_id = %image.layers[*layer].diff_id, member = %member.name, "writing layer");
                tar.file_header(&member.name, tar_len, member.mtime)?;
                let output = tar.output().to_path_buf();
                copy_layer(image, *layer, tar.out(), &output)?;
                tar.pad(&member.name, tar_len)?;
            }
        }
    }
    tar.finish()
}

/// What Go's `json.NewEncoder(f).Encode(value)` writes: compact JSON and a newline.
fn encoder_line<T: Serialize>(member: &str, value: &T) -> Result<Vec<u8>> {
    let mut bytes = gocompat::json::to_vec(value).map_err(|err| Error::InvalidSaveImage {
        image: member.to_string(),
        reason: format!("encoding json: {err}"),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}
