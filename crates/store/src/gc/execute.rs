//! The executor: removes exactly the items of a plan, in its order.

use std::collections::BTreeSet;

use super::{
    GarbageItem, GcPlan, Target, CHECKED_LAYOUT, LAYERDB_MOUNTS, LAYERDB_SHA256, LAYERDB_TMP,
    LINKS, OVERLAY_HOME,
};
use crate::below::Below;
use crate::fsutil;
use crate::ids;
use crate::{DataRoot, Error, Result};

impl DataRoot {
    /// Removes the items of `plan`, in its order, calling `removed` after each; stops at the first
    /// failure (what was removed before stays removed, the item that failed is left as the store's
    /// own protocols leave it, so that a new plan finds the rest). The plan must have been made
    /// under the same lock. A plan may be cut down to some of its items; one that would then remove
    /// a layer that a remaining layer, image or container needs is refused before anything goes.
    pub fn execute_gc(&self, plan: &GcPlan, removed: &mut dyn FnMut(&GarbageItem)) -> Result<()> {
        let below = Below::open(&self.root)?;
        for dir in CHECKED_LAYOUT {
            below.dir(dir)?;
        }
        self.refuse_removing_layers_in_use(plan)?;
        // A layer whose overlay2 dir is not what the format has (a symlink out of the root, a
        // symlinked diff/ or merged/, ...) is refused before anything of the plan goes.
        for item in &plan.items {
            if let Target::Layer { chain_id, .. } = &item.target {
                if let Some(layer) = self.layer(chain_id)? {
                    self.checked_overlay_dir(&layer.cache_id)?;
                }
            }
        }
        for item in &plan.items {
            match &item.target {
                Target::Image {
                    image_id,
                    digest_references,
                } => {
                    self.remove_digest_references(digest_references)?;
                    self.delete_image(image_id)?;
                }
                Target::Layer {
                    chain_id,
                    extra_links,
                } => {
                    if let Some(layer) = self.layer(chain_id)? {
                        below.refuse_mounts(OVERLAY_HOME, &layer.cache_id)?;
                        self.remove_layer(chain_id)?;
                    }
                    for link in extra_links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                }
                Target::Removal {
                    marker,
                    layer_dir,
                    links,
                } => {
                    for link in links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                    if let Some(id) = layer_dir {
                        below.remove(OVERLAY_HOME, id)?;
                    }
                    below.remove(LAYERDB_SHA256, marker)?;
                }
                Target::WriteSet { name } => below.remove(LAYERDB_TMP, name)?,
                Target::LayerDir { id, links } => {
                    for link in links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                    below.remove(OVERLAY_HOME, id)?;
                }
                Target::Link(link) => below.remove_link(LINKS, &link.name, &link.target)?,
            }
            tracing::info!(kind = ?item.kind, name = %item.name, size = item.size, "removed");
            removed(item);
        }
        Ok(())
    }

    /// Fails when `plan` removes a layer that a layer, image or container outside the plan needs.
    fn refuse_removing_layers_in_use(&self, plan: &GcPlan) -> Result<()> {
        let mut removing_layers = BTreeSet::new();
        let mut removing_images = BTreeSet::new();
        for item in &plan.items {
            match &item.target {
                Target::Layer { chain_id, .. } => {
                    removing_layers.insert(chain_id.as_str());
                }
                Target::Image { image_id, .. } => {
                    removing_images.insert(image_id.as_str());
                }
                _ => {}
            }
        }
        if removing_layers.is_empty() {
            return Ok(());
        }
        let in_use = |chain_id: &str, user: String| {
            let hex = chain_id.trim_start_matches("sha256:");
            Error::Io {
                op: "refusing to remove a layer in use:",
                path: self.root.join(LAYERDB_SHA256).join(hex),
                source: std::io::Error::other(format!("{user} needs it")),
            }
        };
        for layer in self.layers()? {
            if let Some(parent) = &layer.parent {
                if removing_layers.contains(parent.as_str())
                    && !removing_layers.contains(layer.chain_id.as_str())
                {
                    return Err(in_use(parent, format!("layer {}", layer.chain_id)));
                }
            }
        }
        for image_id in self.images()? {
            if removing_images.contains(image_id.as_str()) {
                continue;
            }
            if let Ok(config) = self.image_config(&image_id) {
                for chain_id in ids::chain_ids(&config.rootfs.diff_ids) {
                    if removing_layers.contains(chain_id.as_str()) {
                        return Err(in_use(&chain_id, format!("image {image_id}")));
                    }
                }
            }
        }
        for (container_id, _) in fsutil::hex64_entries(&self.root.join(LAYERDB_MOUNTS))? {
            if let Ok(Some(entry)) = self.mounts_entry(&container_id) {
                if let Some(parent) = entry.parent {
                    if removing_layers.contains(parent.as_str()) {
                        return Err(in_use(&parent, format!("container {container_id}")));
                    }
                }
            }
        }
        Ok(())
    }
}
