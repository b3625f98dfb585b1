//! OCI image layouts (a directory or a tar of one): `oci-layout`, `index.json`, `blobs/sha256/`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::{blob_member, parse_sha256, sha256_digest};
use crate::source::MemberReader;
use crate::{Error, ImageSource, LayerRef, OpenOptions, Result};

/// The top-level index of a layout.
pub(crate) const INDEX_MEMBER: &str = "index.json";
/// The layout marker file; its presence is required.
const LAYOUT_MEMBER: &str = "oci-layout";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The annotation naming an image in a layout: a full reference or, per the image-spec, a bare
/// tag.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker 25+'s) annotation holding the full image reference.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// BuildKit marks attestation manifests in an index with this annotation; they are never images.
const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// How deep image indexes may nest; real layouts use one or two levels, the limit stops cycles.
const MAX_INDEX_DEPTH: usize = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    size: Option<u64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: String,
}

/// What a blob named by a descriptor turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobKind {
    Index,
    Manifest,
}

/// Reads and verifies every image the layout's `index.json` names. Entries naming the same
/// manifest become one image with all their names.
pub(crate) fn read_images(
    reader: &MemberReader<'_>,
    options: &OpenOptions,
) -> Result<Vec<ImageSource>> {
    let marker_bytes = reader.read_json_bytes(LAYOUT_MEMBER)?;
    let marker: LayoutMarker = reader.parse_json(LAYOUT_MEMBER, &marker_bytes)?;
    tracing::debug!(archive = %reader.archive.display(), version = %marker.image_layout_version, "oci layout");
    let index_bytes = reader.read_json_bytes(INDEX_MEMBER)?;
    let index: Index = reader.parse_json(INDEX_MEMBER, &index_bytes)?;
    let descriptors = top_level_images(&index);
    if descriptors.is_empty() {
        return Err(Error::NoImages {
            archive: reader.archive.to_path_buf(),
            member: INDEX_MEMBER.to_string(),
        });
    }
    let mut images: Vec<ImageSource> = Vec::new();
    let mut manifest_members: Vec<String> = Vec::new();
    for descriptor in descriptors {
        let (chosen, manifest_member, manifest_bytes) =
            resolve_manifest(reader, descriptor, INDEX_MEMBER, 0)?;
        let mut names = names_for(&descriptor.annotations, options);
        if names.is_empty() {
            names = names_for(&chosen.annotations, options);
        }
        if let Some(idx) = manifest_members.iter().position(|m| *m == manifest_member) {
            for name in names {
                if !images[idx].names.contains(&name) {
                    images[idx].names.push(name);
                }
            }
            continue;
        }
        let mut image = read_image(reader, &manifest_member, &manifest_bytes)?;
        image.names = names;
        images.push(image);
        manifest_members.push(manifest_member);
    }
    Ok(images)
}

/// The entries of a layout's `index.json` that are images to load. An index.json may list
/// several images (one per name) or, like an image index, the platform variants of one image:
/// attestation manifests never count, and when an entry is marked linux/amd64, entries marked
/// with another platform are left out.
fn top_level_images(index: &Index) -> Vec<&Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .collect();
    if !candidates.iter().any(|d| is_linux_amd64(d)) {
        return candidates;
    }
    candidates
        .into_iter()
        .filter(|d| d.platform.is_none() || is_linux_amd64(d))
        .collect()
}

/// Whether BuildKit marked a descriptor as an attestation manifest rather than an image.
fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor
        .annotations
        .get(DOCKER_REFERENCE_TYPE)
        .map(String::as_str)
        == Some("attestation-manifest")
}

/// Whether a descriptor's platform is linux/amd64 (a descriptor without one is not).
fn is_linux_amd64(descriptor: &Descriptor) -> bool {
    descriptor
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
}

/// Reads the blob a descriptor (found in `parent`) names, checking its digest and size.
fn read_blob(
    reader: &MemberReader<'_>,
    descriptor: &Descriptor,
    parent: &str,
) -> Result<(String, Vec<u8>)> {
    let member = checked_blob_member(reader, descriptor, parent)?;
    let bytes = reader.read_json_bytes(&member)?;
    let actual = sha256_digest(&bytes);
    if actual != descriptor.digest {
        return Err(Error::DigestMismatch {
            archive: reader.archive.to_path_buf(),
            member,
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    if let Some(expected) = descriptor.size {
        if expected != bytes.len() as u64 {
            return Err(Error::SizeMismatch {
                archive: reader.archive.to_path_buf(),
                member,
                expected,
                actual: bytes.len() as u64,
            });
        }
    }
    Ok((member, bytes))
}

/// The blob path for a descriptor's digest, built only from a validated digest.
fn checked_blob_member(
    reader: &MemberReader<'_>,
    descriptor: &Descriptor,
    parent: &str,
) -> Result<String> {
    let hex = parse_sha256(&descriptor.digest).ok_or_else(|| Error::InvalidDigest {
        archive: reader.archive.to_path_buf(),
        member: parent.to_string(),
        digest: descriptor.digest.clone(),
    })?;
    Ok(blob_member(hex))
}

/// Follows a descriptor through nested image indexes to one image manifest, picking linux/amd64
/// (or the only image) at each index. Returns the manifest's descriptor, member and bytes.
fn resolve_manifest(
    reader: &MemberReader<'_>,
    descriptor: &Descriptor,
    parent: &str,
    depth: usize,
) -> Result<(Descriptor, String, Vec<u8>)> {
    let (member, bytes) = read_blob(reader, descriptor, parent)?;
    match blob_kind(reader, descriptor, &member, &bytes)? {
        BlobKind::Manifest => Ok((descriptor.clone(), member, bytes)),
        BlobKind::Index => {
            if depth >= MAX_INDEX_DEPTH {
                return Err(Error::IndexTooDeep {
                    archive: reader.archive.to_path_buf(),
                    member,
                    limit: MAX_INDEX_DEPTH,
                });
            }
            let index: Index = reader.parse_json(&member, &bytes)?;
            let chosen = choose_platform(reader, &index, &member)?;
            tracing::debug!(index = %member, manifest = %chosen.digest, "picked manifest from image index");
            resolve_manifest(reader, chosen, &member, depth + 1)
        }
    }
}

/// Classifies a blob by its descriptor's media type, or by its own `mediaType` and shape when
/// the descriptor has none.
fn blob_kind(
    reader: &MemberReader<'_>,
    descriptor: &Descriptor,
    member: &str,
    bytes: &[u8],
) -> Result<BlobKind> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let media_type = match &descriptor.media_type {
        Some(media_type) => media_type.clone(),
        None => {
            let probe: Probe = reader.parse_json(member, bytes)?;
            match probe.media_type {
                Some(media_type) => media_type,
                None if probe.manifests.is_some() => return Ok(BlobKind::Index),
                None => return Ok(BlobKind::Manifest),
            }
        }
    };
    match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(BlobKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(BlobKind::Manifest),
        _ => Err(Error::UnsupportedMediaType {
            archive: reader.archive.to_path_buf(),
            member: member.to_string(),
            media_type,
        }),
    }
}

/// Picks linux/amd64 from an index, or its only image; attestation manifests never count.
fn choose_platform<'i>(
    reader: &MemberReader<'_>,
    index: &'i Index,
    member: &str,
) -> Result<&'i Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .collect();
    let amd64 = candidates.iter().find(|d| is_linux_amd64(d));
    match (amd64, candidates.as_slice()) {
        (Some(found), _) => Ok(found),
        (None, [only]) => Ok(only),
        (None, _) => Err(Error::NoMatchingPlatform {
            archive: reader.archive.to_path_buf(),
            member: member.to_string(),
            candidates: candidates.len(),
        }),
    }
}

/// Reads one image manifest: verifies the config blob and pairs layers with diff_ids.
fn read_image(
    reader: &MemberReader<'_>,
    manifest_member: &str,
    manifest_bytes: &[u8],
) -> Result<ImageSource> {
    let manifest: Manifest = reader.parse_json(manifest_member, manifest_bytes)?;
    let (config_member, config) = read_blob(reader, &manifest.config, manifest_member)?;
    let image_id = sha256_digest(&config);
    let diff_ids =
        crate::docker::parse_diff_ids(reader, &config_member, &config, manifest.layers.len())?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let member = checked_blob_member(reader, descriptor, manifest_member)?;
        // Opening now reports a missing blob before any layer of the load is registered.
        reader.check(&member)?;
        layers.push(LayerRef {
            member,
            digest: Some(descriptor.digest.clone()),
            media_type: descriptor.media_type.clone(),
            diff_id,
        });
    }
    Ok(ImageSource {
        config,
        image_id,
        names: Vec::new(),
        layers,
    })
}

/// The names an index entry gives its image. A full `ref.name` is used as is; a bare tag is
/// combined with the repository of `io.containerd.image.name`, else with `OpenOptions::name`
/// (used as is when it carries its own tag). Without `ref.name`, `io.containerd.image.name` is
/// used. Nothing usable means no names: the image is loaded untagged.
fn names_for(annotations: &BTreeMap<String, String>, options: &OpenOptions) -> Vec<String> {
    let containerd_name = annotations
        .get(CONTAINERD_NAME)
        .filter(|name| !name.is_empty());
    let Some(ref_name) = annotations.get(REF_NAME).filter(|name| !name.is_empty()) else {
        return containerd_name.cloned().into_iter().collect();
    };
    if ref_name.contains('/') || ref_name.contains(':') {
        return vec![ref_name.clone()];
    }
    if let Some(full) = containerd_name {
        return vec![format!("{}:{ref_name}", repository_of(full))];
    }
    match options.name.as_deref().filter(|name| !name.is_empty()) {
        Some(name) if has_tag(name) => vec![name.to_string()],
        Some(name) => vec![format!("{name}:{ref_name}")],
        None => Vec::new(),
    }
}

/// Whether a reference carries a tag: a `:` after its last `/`.
fn has_tag(name: &str) -> bool {
    let last_component = name.rsplit('/').next().unwrap_or(name);
    last_component.contains(':')
}

/// A reference without its `@digest` and `:tag`.
fn repository_of(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    let last_slash = name.rfind('/').map_or(0, |idx| idx + 1);
    match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repository_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(
            repository_of("docker.io/library/busybox:1.36"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository_of("localhost:5000/app:v1"), "localhost:5000/app");
        assert_eq!(repository_of("app@sha256:abc"), "app");
    }

    #[test]
    fn names_follow_the_annotation_rules() {
        let none = OpenOptions::default();
        let named = OpenOptions {
            name: Some("myrepo".to_string()),
        };
        let named_tagged = OpenOptions {
            name: Some("localhost:5000/myrepo:v9".to_string()),
        };
        let latest = (CONTAINERD_NAME, "docker.io/library/app:latest");
        // Annotations, options, names.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a OpenOptions, &'a [&'a str]);
        let cases: [Case; 8] = [
            (&[(REF_NAME, "busybox:1.36")], &named, &["busybox:1.36"]),
            (
                &[(REF_NAME, "example.com/app")],
                &none,
                &["example.com/app"],
            ),
            (
                &[(REF_NAME, "v1"), latest],
                &named,
                &["docker.io/library/app:v1"],
            ),
            (&[(REF_NAME, "v1")], &named, &["myrepo:v1"]),
            (
                &[(REF_NAME, "v1")],
                &named_tagged,
                &["localhost:5000/myrepo:v9"],
            ),
            (&[(REF_NAME, "v1")], &none, &[]),
            (&[], &named, &[]),
            (
                &[(CONTAINERD_NAME, "docker.io/library/app:2")],
                &none,
                &["docker.io/library/app:2"],
            ),
        ];
        for (pairs, options, expected) in cases {
            assert_eq!(
                names_for(&annotations(pairs), options),
                expected,
                "{pairs:?}"
            );
        }
    }
}
