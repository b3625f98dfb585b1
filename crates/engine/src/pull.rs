//! `pull`: an image from a registry into the data root, as `docker pull` stores it.
//!
//! The manifest (through a manifest list or index, for the platform asked) and the config are
//! read and checked first; nothing is written before they are valid. Then the layers the root
//! lacks are begun bottom up and downloaded several at once, each blob streamed straight into
//! its `diff/` (decompressed, its DiffID and its compressed digest checked on the way, no copy of
//! the blob kept), and committed bottom up as a load does. Layers whose ChainID is present are
//! not downloaded. Last come the config, the tag, the digest reference and the distribution
//! records (format.md §8.3, §8.4). A failure removes every layer this pull registered.

use std::path::Path;

use gocompat::digest::{truncate_id, Digest};
use registry::manifest::{self, ImageManifest, Manifest, PlatformSpec};
use registry::{BlobReader, Client};
use store::{Named, V2Metadata};

use crate::access::{self, Create};
use crate::error::{Context, Error, Result};
use crate::layers::{self, LayerBlob, Progress, Registered};
use crate::remote::RegistryOptions;
use crate::{Event, Events};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]`; the host's platform when `None`.
    pub platform: Option<String>,
    pub registry: RegistryOptions,
    /// Refuse a layer whose uncompressed tar is larger than this.
    pub max_layer_size: Option<u64>,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference as Docker prints it last: `127.0.0.1:5000/app:1`,
    /// `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The manifest digest (of the list, when the reference named one), as `RepoDigests`
    /// records it.
    pub digest: String,
    pub image_id: String,
    /// The reference already named this image (`Status: Image is up to date`).
    pub up_to_date: bool,
}

impl LayerBlob for BlobReader<'_> {
    fn finish(self: Box<Self>) -> std::result::Result<(), store::ApplyError> {
        Ok(BlobReader::finish(*self)?)
    }
}

/// Pulls `text` (`name[:tag]`, `name@sha256:…`), reporting [`Event::PullingFrom`] and a
/// [`Event::LayerStatus`] per layer.
pub fn pull(
    root_path: &Path,
    text: &str,
    options: &PullOptions,
    events: Events<'_>,
) -> Result<Pulled> {
    let named = Named::parse(text).image_context("pulling", text)?;
    pull_named(root_path, &named, options, events).image_context("pulling", &named.familiar())
}

fn pull_named(
    root_path: &Path,
    named: &Named,
    options: &PullOptions,
    events: Events<'_>,
) -> Result<Pulled> {
    let platform = match &options.platform {
        Some(text) => PlatformSpec::parse(text)?,
        None => PlatformSpec::host(),
    };
    let (domain, path) = named.domain_and_path();
    let what = named.familiar();
    let target = named
        .digest
        .clone()
        .or_else(|| named.tag.clone())
        .unwrap_or_else(|| "latest".to_string());
    let client = options.registry.client(&domain)?;
    let progress = Progress::new(events);
    let (digest, image) = resolve_manifest(&client, &path, &target, &what, &platform)?;
    progress.emit(Event::PullingFrom {
        tag: target.clone(),
        repository: path.clone(),
    })?;
    let config = client.get_blob_bytes(&path, &image.config.digest, manifest::MAX_CONFIG_SIZE)?;
    let image_id = Digest::of(&config).to_string();
    let explicit = options.platform.is_some();
    let diff_ids = check_config(&config, &image, &platform, explicit)?;

    let (root, _lock) = access::open_for_change(root_path, Create::Yes, "pull an image")?;
    let chain: Vec<(String, String)> = image
        .layers
        .iter()
        .zip(&diff_ids)
        .map(|(layer, diff_id)| (layer.digest.clone(), diff_id.clone()))
        .collect();
    let mut registered = Registered::new(&root);
    let (mut work, _chain_ids) = layers::begin_chain(&root, &chain, &progress, &mut |index, _| {
        Event::LayerStatus {
            id: truncate_id(&image.layers[index].digest).to_string(),
            status: "Already exists".to_string(),
        }
    })?;
    for item in &work {
        progress.emit(Event::LayerStatus {
            id: truncate_id(&item.label).to_string(),
            status: "Pulling fs layer".to_string(),
        })?;
    }
    let open = |index: usize| -> Result<Box<dyn LayerBlob + '_>> {
        let layer = &image.layers[index];
        Ok(Box::new(client.blob_reader(
            &path,
            &layer.digest,
            Some(layer.size),
        )))
    };
    layers::apply_layers(
        &root,
        &mut work,
        &open,
        &progress,
        options.max_layer_size,
        layers::within_descriptor_limit(options.registry.max_concurrent),
    )?;
    layers::commit_chain(&root, work, &mut registered, &progress, &mut |item| {
        Event::LayerStatus {
            id: truncate_id(&item.label).to_string(),
            status: "Pull complete".to_string(),
        }
    })?;
    let previous = match &named.tag {
        Some(tag) if named.digest.is_none() => format!("{}:{tag}", named.repo),
        _ => named.with_digest(&digest),
    };
    let up_to_date = root
        .references()?
        .iter()
        .any(|(name, id)| *name == previous && *id == image_id);
    crate::interrupt::check()?;
    let stored = root.put_image(&config).context("storing image config")?;
    if stored != image_id {
        return Err(Error::inconsistent(format!(
            "image config stored as {stored} but its digest is {image_id}"
        )));
    }
    registered.keep();
    let full_name = named.full_name();
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        root.set_diffid_by_digest(&layer.digest, diff_id)?;
        root.add_v2metadata(
            diff_id,
            V2Metadata {
                digest: layer.digest.clone(),
                source_repository: full_name.clone(),
                hmac: String::new(),
            },
        )?;
    }
    if named.digest.is_none() {
        if let Some(tagged) = named.tagged() {
            root.add_reference(&tagged, &image_id)?;
        }
    }
    root.add_digest_reference(named, &digest, &image_id)?;
    let reference = match (&named.digest, &named.tag) {
        (Some(digest), _) => format!("{full_name}@{digest}"),
        (None, Some(tag)) => format!("{full_name}:{tag}"),
        (None, None) => full_name,
    };
    Ok(Pulled {
        reference,
        digest,
        image_id,
        up_to_date,
    })
}

/// The image manifest `target` names, through a list or index for `platform`; returns the
/// digest to record (the list's, when there is one) and the manifest.
fn resolve_manifest(
    client: &Client,
    path: &str,
    target: &str,
    what: &str,
    platform: &PlatformSpec,
) -> Result<(String, ImageManifest)> {
    let fetched = client.get_manifest(path, target, what)?;
    let parsed = Manifest::parse(what, fetched.content_type.as_deref(), &fetched.bytes)?;
    let image = match parsed {
        Manifest::Image(image) => image,
        Manifest::Index(index) => {
            let chosen = manifest::select(what, &index, platform)?;
            check_digest(what, "manifest", &chosen.digest)?;
            let inner = client.get_manifest(path, &chosen.digest, what)?;
            match Manifest::parse(what, inner.content_type.as_deref(), &inner.bytes)? {
                Manifest::Image(image) => image,
                Manifest::Index(_) => {
                    return Err(Error::invalid(format!(
                        "{what}: the manifest list names another list ({}) for {platform}",
                        chosen.digest
                    )))
                }
            }
        }
    };
    check_image_manifest(what, &image)?;
    Ok((fetched.digest, image))
}

/// Checks a manifest before anything is written: digests, layer kinds, the depth limit.
fn check_image_manifest(what: &str, image: &ImageManifest) -> Result<()> {
    check_digest(what, "config", &image.config.digest)?;
    if image.config.size > manifest::MAX_CONFIG_SIZE {
        return Err(Error::invalid(format!(
            "{what}: the config is {} bytes, more than the limit of {}",
            image.config.size,
            manifest::MAX_CONFIG_SIZE
        )));
    }
    if image.layers.len() > store::MAX_LAYER_DEPTH {
        return Err(Error::invalid(format!(
            "{what}: the image has {} layers; ovl stores at most {} (the kernel's overlay stack limit)",
            image.layers.len(),
            store::MAX_LAYER_DEPTH
        )));
    }
    for layer in &image.layers {
        check_digest(what, "layer", &layer.digest)?;
        manifest::layer_compression(what, layer)?;
    }
    Ok(())
}

fn check_digest(what: &str, kind: &str, digest: &str) -> Result<()> {
    if digest.parse::<Digest>().is_ok() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what}: {kind} digest {digest:?} is not sha256:<64 lowercase hex>"
        )))
    }
}

/// The DiffIDs of a config, one per manifest layer. An image for another OS is refused, and
/// one for another platform than an `explicit` one (a single manifest, not chosen from a list),
/// as Docker 20.10 does.
fn check_config(
    config: &[u8],
    image: &ImageManifest,
    platform: &PlatformSpec,
    explicit: bool,
) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
        rootfs: crate::config::RootFs,
    }
    let parsed: Config = serde_json::from_slice(config)
        .map_err(|err| Error::invalid(format!("image config {}: {err}", image.config.digest)))?;
    if !parsed.os.is_empty() && parsed.os != platform.os {
        return Err(Error::invalid(format!(
            "image operating system {:?} cannot be used on this platform ({platform})",
            parsed.os
        )));
    }
    let found = manifest::Platform {
        architecture: parsed.architecture.clone(),
        os: if parsed.os.is_empty() {
            "linux".to_string()
        } else {
            parsed.os.clone()
        },
        variant: parsed.variant.clone(),
    };
    if explicit && !parsed.architecture.is_empty() && !platform.matches(&found) {
        return Err(Error::invalid(format!(
            "the image was found but does not match the specified platform: wanted {platform}, actual: {}/{}",
            found.os, found.architecture
        )));
    }
    let diff_ids = parsed.rootfs.diff_ids;
    if diff_ids.len() != image.layers.len() {
        return Err(Error::invalid(format!(
            "image config {} names {} DiffIDs for {} layers in the manifest",
            image.config.digest,
            diff_ids.len(),
            image.layers.len()
        )));
    }
    if let Some(bad) = diff_ids.iter().find(|id| id.parse::<Digest>().is_err()) {
        return Err(Error::invalid(format!(
            "image config {}: DiffID {bad:?} is not sha256:<64 lowercase hex>",
            image.config.digest
        )));
    }
    Ok(diff_ids)
}
