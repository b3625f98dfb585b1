//! What `docker history` returns for an image (moby daemon `ImageHistory`): one entry per
//! history item of its config, newest first, with the sizes of the layers and the ids of the
//! images along the parent chain.

use serde_json::Value;
use store::DataRoot;

use crate::error::{Error, Result};

/// One history row as moby's API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image id, or `<missing>`.
    pub id: String,
    /// Unix seconds of `created` (Go's zero time when the entry has none).
    pub created: i64,
    pub created_by: String,
    pub comment: String,
    /// The layer's `size`; 0 for an empty-layer entry.
    pub size: i64,
}

/// The rows of `docker history` for an image, newest first (moby `ImageHistory`).
pub fn image_history(root: &DataRoot, image_id: &str) -> Result<Vec<HistoryEntry>> {
    let config = root.image_config(image_id)?;
    let chain_ids = store::chain_ids(&config.rootfs.diff_ids);
    let mut entries = Vec::with_capacity(config.history.len());
    let mut n_layers = 0;
    for (idx, item) in config.history.iter().enumerate() {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let empty_layer = item
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut size = 0;
        if !empty_layer {
            let Some(chain_id) = chain_ids.get(n_layers) else {
                return Err(Error::inconsistent(format!(
                    "image {image_id}: too many non-empty layers in History section \
                     ({} layers in rootfs.diff_ids)",
                    chain_ids.len()
                )));
            };
            let layer = root.layer(chain_id)?.ok_or_else(|| {
                Error::inconsistent(format!(
                    "layer {chain_id} of image {image_id} (history entry {idx}) is missing"
                ))
            })?;
            size = layer.size;
            n_layers += 1;
        }
        let created = match item.get("created").and_then(Value::as_str) {
            None => gocompat::time::GO_ZERO_TIME_UNIX,
            Some(text) => gocompat::time::unix_seconds(text).ok_or_else(|| {
                Error::inconsistent(format!(
                    "image {image_id}: history entry {idx} has an invalid created time {text:?}"
                ))
            })?,
        };
        entries.push(HistoryEntry {
            id: "<missing>".to_string(),
            created,
            created_by: text("created_by"),
            comment: text("comment"),
            size,
        });
    }
    entries.reverse();
    // The ids by position along the parent chain, as moby fills them in.
    let mut id = image_id.to_string();
    for entry in &mut entries {
        entry.id = id.clone();
        let parent = match root.image_parent(&id) {
            Ok(Some(parent)) => parent,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(image = %id, error = %err, "unreadable parent metadata");
                break;
            }
        };
        if let Err(err) = root.image_config_bytes(&parent) {
            tracing::debug!(image = %id, %parent, error = %err, "the parent image does not load");
            break;
        }
        id = parent;
    }
    Ok(entries)
}
