//! Images: their size and their removal (`docker rmi`'s reference counting).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{Context, Error, Result};
use store::DataRoot;

use crate::access::{self, Create};
use crate::{resolve, Event, Events};

/// An image as moby's image list returns it.
#[derive(Debug, Clone)]
pub struct ListedImage {
    pub image_id: String,
    /// Unix seconds of `created` (Go's zero time when the config has none).
    pub created: i64,
    /// `created` as written, to order images created in the same second.
    pub created_text: String,
    pub size: i64,
    /// Familiar `repo:tag` names, sorted.
    pub tags: Vec<String>,
    /// Familiar `repo@sha256:...` names, sorted.
    pub digests: Vec<String>,
}

/// The images `docker images` lists (moby daemon/images/images.go `Images`): every image whose
/// config loads and whose layers are all there, but untagged images that are the parent of another
/// image only with `--all`; newest first. `unix_seconds` reads a `created` time as Go does (the
/// caller's Go-compatibility code), Go's zero time for none.
pub fn list(root: &DataRoot, all: bool, unix_seconds: fn(&str) -> i64) -> Result<Vec<ListedImage>> {
    let references = root.references()?;
    let all_images = root.images()?;
    // Images other images name as their parent: Docker hides them when untagged, unless -a.
    let parents: BTreeSet<String> = all_images
        .iter()
        .filter_map(|id| root.image_parent(id).ok().flatten())
        .collect();
    let mut listed = Vec::new();
    for image_id in all_images {
        let config = match root.image_config(&image_id) {
            Ok(config) => config,
            Err(err) => {
                tracing::warn!(%image_id, error = %err, "skipping an unreadable image");
                continue;
            }
        };
        let size = match image_size(root, &config.rootfs.diff_ids) {
            Ok(size) => size,
            Err(err) => {
                tracing::warn!(%image_id, error = %err, "skipping an image with a missing layer");
                continue;
            }
        };
        let (digests, tags): (Vec<String>, Vec<String>) = references
            .iter()
            .filter(|(_, id)| *id == image_id)
            .map(|(name, _)| name.clone())
            .partition(|name| name.contains('@'));
        if tags.is_empty() && digests.is_empty() && !all && parents.contains(&image_id) {
            continue;
        }
        let created_text = config.created.unwrap_or_default();
        listed.push(ListedImage {
            created: unix_seconds(&created_text),
            created_text,
            image_id,
            size,
            tags,
            digests,
        });
    }
    listed.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| b.created_text.cmp(&a.created_text))
            .then_with(|| a.image_id.cmp(&b.image_id))
    });
    Ok(listed)
}

/// The image size Docker shows: the sum of the layer `size` values over the chain.
pub fn image_size(root: &DataRoot, diff_ids: &[String]) -> Result<i64> {
    let mut total = 0;
    for chain_id in store::chain_ids(diff_ids) {
        let layer = root
            .layer(&chain_id)?
            .ok_or_else(|| Error::inconsistent(format!("layer {chain_id} is missing")))?;
        total += layer.size;
    }
    Ok(total)
}

/// Removes the images `texts` name, in order, as `docker rmi` does: a tag of an image with other
/// tags only untags; an image goes with the layers nothing else holds. Reports
/// [`Event::Untagged`] and [`Event::Deleted`].
pub fn rmi(root_path: &Path, texts: &[String], force: bool, events: Events<'_>) -> Result<()> {
    let (root, _lock) = access::open_for_change(root_path, Create::No, "remove images")?;
    for text in texts {
        remove_image(&root, text, force, events).image_context("removing image", text)?;
    }
    Ok(())
}

fn remove_image(root: &DataRoot, text: &str, force: bool, events: Events<'_>) -> Result<()> {
    let image_id = resolve::image(root, text)?;
    let references = root.references()?;
    let tags = resolve::tags_of(&references, &image_id);
    let digests = resolve::digests_of(&references, &image_id);
    // As moby's ImageDelete: a name (tag or digest reference) is untagged, and with the last tag
    // of a repository go that repository's digest references; the image itself goes only when
    // no name is left.
    if let Some(name) = named_reference(text, &tags, &digests) {
        let repo = repository_of(&name);
        let mut untag = vec![name.clone()];
        let tag_left_in_repo = tags
            .iter()
            .any(|tag| *tag != name && repository_of(tag) == repo);
        if !name.contains('@') && !tag_left_in_repo {
            untag.extend(
                digests
                    .iter()
                    .filter(|digest| repository_of(digest) == repo)
                    .cloned(),
            );
        }
        if tags.len() + digests.len() > untag.len() {
            for name in untag {
                root.remove_reference_name(&name)?;
                events(Event::Untagged { name })?;
            }
            return Ok(());
        }
    } else if tags.len() + digests.len() > 1 && !force && !single_reference(&tags, &digests) {
        return Err(Error::MultipleReferences {
            short_id: gocompat::digest::truncate_id(&image_id).to_string(),
        });
    }
    let users: Vec<String> = root
        .containers()?
        .into_iter()
        .filter(|c| c.image_id == image_id)
        .map(|c| gocompat::digest::truncate_id(&c.id).to_string())
        .collect();
    if !users.is_empty() && !force {
        return Err(Error::ImageInUse {
            reference: text.to_string(),
            containers: users.join(", "),
        });
    }
    // What the other images and the containers hold is known before anything changes: an image
    // whose config cannot be read holds layers nobody can name, so nothing is removed then.
    // So are the layers that will go, and their directories are checked as the format has them
    // (a layer dir that is a symlink out of the root is refused now, not after the untagging).
    let release = if users.is_empty() {
        let config = root.image_config(&image_id)?;
        let held = held_chain_ids(root, &image_id)?;
        let planned = layers_to_release(root, &config.rootfs.diff_ids, &held)?;
        for layer in &planned {
            root.checked_overlay_dir(&layer.cache_id)
                .map_err(|err| Error::ImageLayer {
                    chain_id: layer.chain_id.clone(),
                    image_id: image_id.clone(),
                    source: Box::new(err.into()),
                })?;
        }
        Some(planned)
    } else {
        None
    };
    for name in tags.iter().chain(&digests) {
        root.remove_reference_name(name)?;
        events(Event::Untagged { name: name.clone() })?;
    }
    let Some(planned) = release else {
        // Forced with containers still using it: Docker keeps the image, untagged.
        return Ok(());
    };
    root.delete_image(&image_id)?;
    events(Event::Deleted {
        id: image_id.clone(),
    })?;
    for layer in planned {
        root.remove_layer(&layer.chain_id)?;
        events(Event::Deleted { id: layer.chain_id })?;
    }
    Ok(())
}

/// The reference key (`repo:tag` or `repo@digest`) `text` names among an image's names, if it
/// names one (and not the image by id).
fn named_reference(text: &str, tags: &[String], digests: &[String]) -> Option<String> {
    let named = store::Named::parse(text).ok()?;
    let key = match &named.digest {
        Some(digest) => named.with_digest(digest),
        None => named.tagged()?.familiar(),
    };
    (tags.contains(&key) || digests.contains(&key)).then_some(key)
}

/// The repository of a reference key.
fn repository_of(key: &str) -> &str {
    match key.split_once('@') {
        Some((repo, _)) => repo,
        None => key.rsplit_once(':').map_or(key, |(repo, _)| repo),
    }
}

/// moby's `isSingleReference`: one tag, and digest references of its repository only (or
/// digest references of one repository only).
fn single_reference(tags: &[String], digests: &[String]) -> bool {
    let repos: BTreeSet<&str> = digests.iter().map(|d| repository_of(d)).collect();
    match tags {
        [] => repos.len() == 1,
        [tag] => digests.is_empty() || (repos.len() == 1 && repos.contains(repository_of(tag))),
        _ => false,
    }
}

/// The layers of a chain, top first, that no other image, child layer or container references:
/// those that removing the image removes.
fn layers_to_release(
    root: &DataRoot,
    diff_ids: &[String],
    held: &BTreeSet<String>,
) -> Result<Vec<store::Layer>> {
    // How many registered layers sit directly on each layer; a layer with children stays.
    let mut n_children: BTreeMap<String, usize> = BTreeMap::new();
    for parent in root.layers()?.into_iter().filter_map(|layer| layer.parent) {
        *n_children.entry(parent).or_default() += 1;
    }
    let mut planned = Vec::new();
    for chain_id in store::chain_ids(diff_ids).iter().rev() {
        if held.contains(chain_id) || n_children.get(chain_id).is_some_and(|n| *n > 0) {
            break;
        }
        let Some(layer) = root.layer(chain_id)? else {
            continue;
        };
        if let Some(parent) = &layer.parent {
            n_children.entry(parent.clone()).and_modify(|n| *n -= 1);
        }
        planned.push(layer);
    }
    Ok(planned)
}

/// Every ChainID that the chain of an image other than `removed`, or a container layer, holds.
/// An image whose config cannot be read fails it: its layers would look unused.
fn held_chain_ids(root: &DataRoot, removed: &str) -> Result<BTreeSet<String>> {
    let mut held = BTreeSet::new();
    for image_id in root.images()? {
        if image_id == removed {
            continue;
        }
        let config = root
            .image_config(&image_id)
            .map_err(|err| Error::KeptImageUnreadable {
                image_id: image_id.clone(),
                source: Box::new(err.into()),
            })?;
        held.extend(store::chain_ids(&config.rootfs.diff_ids));
    }
    for container in root.containers()? {
        held.extend(
            root.mounts_entry(&container.id)?
                .and_then(|entry| entry.parent),
        );
    }
    Ok(held)
}
