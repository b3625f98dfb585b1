//! `push`: an image of the data root to a registry, as `docker push` sends it.
//!
//! Each layer is sent at most once: a blob the repository has (by the distribution records of
//! a pull or an earlier push, checked with `HEAD`) is skipped, a blob another repository of the
//! same registry has is mounted, and any other layer is rebuilt from tar-split and `diff/`,
//! compressed with gzip deterministically (no name, no time, default level) and streamed up
//! while it is compressed. Pushing the same image twice gives the same manifest digest. Then
//! the config, then a Docker schema 2 manifest, laid out as Docker writes it.

use std::io::{BufWriter, Write};
use std::path::Path;

use std::sync::Mutex;

use gocompat::digest::{truncate_id, Digest};
use image_archive::LayerSource as _;
use registry::manifest::{self, Descriptor, ImageManifest};
use registry::{Client, Mount};
use store::{DataRoot, Named, V2Metadata};

use crate::access::{self, Create};
use crate::error::{Context, Error, Result};
use crate::save::StoredLayer;
use crate::{Event, Events};

/// What a push did: `<tag>: digest: <digest> size: <size>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub tag: String,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's length in bytes.
    pub size: u64,
}

/// Pushes the image `text` (`name[:tag]`) names, reporting [`Event::PushRefersTo`] and an
/// [`Event::LayerStatus`] per layer (top first, as Docker prints them).
pub fn push(
    root_path: &Path,
    text: &str,
    options: &crate::remote::RegistryOptions,
    events: Events<'_>,
) -> Result<Pushed> {
    let named = Named::parse(text).image_context("pushing", text)?;
    push_named(root_path, &named, options, events).image_context("pushing", &named.familiar())
}

fn push_named(
    root_path: &Path,
    named: &Named,
    options: &crate::remote::RegistryOptions,
    events: Events<'_>,
) -> Result<Pushed> {
    let Some(tagged) = named.tagged().filter(|_| named.digest.is_none()) else {
        return Err(Error::invalid(
            "cannot push a digest reference; push name:tag",
        ));
    };
    let (root, _lock) = access::open_for_change(root_path, Create::No, "push an image")?;
    let key = tagged.familiar();
    let image_id = root
        .references()?
        .into_iter()
        .find(|(name, _)| *name == key)
        .map(|(_, id)| id)
        .ok_or_else(|| {
            Error::invalid(format!(
                "an image does not exist locally with the tag: {}",
                tagged.repo
            ))
        })?;
    let (domain, path) = named.domain_and_path();
    let full_name = named.full_name();
    let client = options.client(&domain)?;
    events(Event::PushRefersTo {
        repository: full_name.clone(),
    })?;
    let config = root
        .image_config_bytes(&image_id)
        .image_context("image", &key)?;
    let layers = crate::save::stored_layers(&root, &image_id, &key)?;
    let target = Target {
        root: &root,
        client: &client,
        domain: &domain,
        path: &path,
        full_name: &full_name,
    };
    let descriptors = target.push_layers(layers, options.max_concurrent.max(1), events)?;
    let config_digest = Digest::of(&config).to_string();
    if client.blob_size(&path, &config_digest)?.is_none() {
        client.upload_bytes(&path, &config)?;
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: manifest::DOCKER_MANIFEST.to_string(),
        config: descriptor(manifest::DOCKER_CONFIG, config.len() as u64, config_digest),
        layers: descriptors,
    };
    let bytes = docker_manifest_bytes(&manifest)?;
    let digest = client.put_manifest(&path, &tagged.tag, manifest::DOCKER_MANIFEST, &bytes)?;
    root.add_digest_reference(named, &digest, &image_id)?;
    Ok(Pushed {
        tag: tagged.tag,
        digest,
        size: bytes.len() as u64,
    })
}

/// The manifest as Docker's distribution code marshals it: `json.MarshalIndent` with three
/// spaces.
fn docker_manifest_bytes(manifest: &ImageManifest) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(manifest, &mut serializer)?;
    Ok(bytes)
}

fn descriptor(media_type: &str, size: u64, digest: String) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        size,
        digest,
        urls: Vec::new(),
        annotations: Default::default(),
        platform: None,
    }
}

/// Where a push goes.
struct Target<'a> {
    root: &'a DataRoot,
    client: &'a Client,
    domain: &'a str,
    path: &'a str,
    full_name: &'a str,
}

impl Target<'_> {
    /// Sends the layers (bottom up), `jobs` at once, top first as Docker lists them, reporting
    /// each as it is done; returns their descriptors bottom up.
    fn push_layers(
        &self,
        layers: Vec<(String, StoredLayer)>,
        jobs: usize,
        events: Events<'_>,
    ) -> Result<Vec<Descriptor>> {
        struct Item {
            diff_id: String,
            layer: StoredLayer,
            descriptor: Option<Descriptor>,
        }
        let mut items: Vec<Item> = layers
            .into_iter()
            .rev()
            .map(|(diff_id, layer)| Item {
                diff_id,
                layer,
                descriptor: None,
            })
            .collect();
        let events = Mutex::new(events);
        crate::layers::run_at_once(&mut items, jobs, &|item| {
            let (descriptor, status) = self
                .push_layer(&item.diff_id, &mut item.layer)
                .layer_context("pushing layer", &item.diff_id)?;
            let mut events = events.lock().map_err(|_| Error::WorkerPanicked)?;
            (*events)(Event::LayerStatus {
                id: truncate_id(&item.diff_id).to_string(),
                status,
            })?;
            item.descriptor = Some(descriptor);
            Ok(())
        })?;
        items
            .into_iter()
            .rev()
            .map(|item| item.descriptor.ok_or(Error::WorkerPanicked))
            .collect()
    }

    /// Sends one layer unless the registry has it; returns its descriptor and Docker's word
    /// for what happened.
    fn push_layer(&self, diff_id: &str, layer: &mut StoredLayer) -> Result<(Descriptor, String)> {
        let known = self.root.v2metadata(diff_id)?;
        let prefix = format!("{}/", self.domain);
        // Newest first, this repository before others of the same registry.
        let mut candidates: Vec<&V2Metadata> = known
            .iter()
            .rev()
            .filter(|meta| meta.source_repository.starts_with(&prefix))
            .filter(|meta| meta.digest.parse::<Digest>().is_ok())
            .collect();
        candidates.sort_by_key(|meta| meta.source_repository != self.full_name);
        let mut location = None;
        for meta in candidates {
            if let Some(size) = self.client.blob_size(self.path, &meta.digest)? {
                self.record(diff_id, &meta.digest)?;
                return Ok((
                    descriptor(manifest::DOCKER_LAYER_GZIP, size, meta.digest.clone()),
                    "Layer already exists".to_string(),
                ));
            }
            let from = &meta.source_repository[prefix.len()..];
            if from == self.path || location.is_some() {
                continue;
            }
            match self.client.mount_blob(self.path, &meta.digest, from)? {
                Mount::Mounted => {
                    let size = self.client.blob_size(self.path, &meta.digest)?.unwrap_or(0);
                    self.record(diff_id, &meta.digest)?;
                    return Ok((
                        descriptor(manifest::DOCKER_LAYER_GZIP, size, meta.digest.clone()),
                        format!("Mounted from {from}"),
                    ));
                }
                Mount::Upload(started) => location = Some(started),
            }
        }
        let uploaded = self.upload(layer, location)?;
        self.record(diff_id, &uploaded.digest)?;
        Ok((
            descriptor(manifest::DOCKER_LAYER_GZIP, uploaded.size, uploaded.digest),
            "Pushed".to_string(),
        ))
    }

    /// Compresses the layer's tar on this thread and uploads it from another, through a pipe.
    fn upload(
        &self,
        layer: &mut StoredLayer,
        location: Option<String>,
    ) -> Result<registry::UploadedBlob> {
        let (reader, writer) =
            std::io::pipe().map_err(|source| Error::io("creating", "a pipe", source))?;
        let client = self.client;
        let path = self.path;
        std::thread::scope(|scope| {
            let uploader = scope.spawn(move || {
                let mut reader = reader;
                client.upload_blob(path, location, &mut reader, None)
            });
            let written = (|| -> Result<()> {
                let mut gzip = flate2::GzBuilder::new().write(
                    BufWriter::with_capacity(256 * 1024, writer),
                    flate2::Compression::default(),
                );
                layer
                    .write_tar(&mut gzip)
                    .map_err(|err| Error::invalid(format!("rebuilding the layer tar: {err}")))?;
                gzip.finish()
                    .and_then(|mut out| out.flush())
                    .map_err(|source| Error::io("compressing", "the layer", source))?;
                Ok(())
            })();
            let uploaded = uploader.join().map_err(|_| Error::WorkerPanicked)?;
            match (written, uploaded) {
                (Ok(()), Ok(uploaded)) => Ok(uploaded),
                (_, Err(err)) => Err(err.into()),
                (Err(err), Ok(_)) => Err(err),
            }
        })
    }

    /// Records that the layer is this blob in this repository (format.md §8.4).
    fn record(&self, diff_id: &str, digest: &str) -> Result<()> {
        self.root.set_diffid_by_digest(digest, diff_id)?;
        self.root.add_v2metadata(
            diff_id,
            V2Metadata {
                digest: digest.to_string(),
                source_repository: self.full_name.to_string(),
                hmac: String::new(),
            },
        )?;
        Ok(())
    }
}
