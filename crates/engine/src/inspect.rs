//! What `docker inspect` returns for an image or a container (the storage-relevant part), as the
//! daemon builds it (moby daemon `LookupImage` and `ContainerInspect`): plain JSON the caller
//! prints or formats.

use serde_json::{json, Map, Value};
use store::{ContainerRecord, DataRoot};

use crate::error::{Context, Error, Result};
use crate::{container, image, resolve};

/// An image as `docker image inspect` shows it: the config's fields under Docker's names, its
/// tags, parent, size, graph driver data and layers.
pub fn image(root: &DataRoot, image_id: &str) -> Result<Value> {
    let bytes = root.image_config_bytes(image_id)?;
    let config: Map<String, Value> =
        serde_json::from_slice(&bytes).image_context("image config", image_id)?;
    let parsed = root.image_config(image_id)?;
    let references = root.references()?;
    let chain_ids = store::chain_ids(&parsed.rootfs.diff_ids);
    let graph_data = match chain_ids.last() {
        Some(top) => {
            let layer = root.layer(top)?.ok_or_else(|| {
                Error::inconsistent(format!("layer {top} of image {image_id} is missing"))
            })?;
            Value::Object(root.graph_driver_data(&layer.cache_id)?)
        }
        None => json!({}),
    };
    let size = image::image_size(root, &parsed.rootfs.diff_ids).unwrap_or(-1);
    let field = |key: &str| {
        config
            .get(key)
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    Ok(json!({
        "Id": image_id,
        "RepoTags": resolve::tags_of(&references, image_id),
        "RepoDigests": resolve::digests_of(&references, image_id),
        "Parent": root.image_parent(image_id)?.unwrap_or_default(),
        "Comment": field("comment"),
        "Created": field("created"),
        "Container": field("container"),
        "ContainerConfig": config.get("container_config").cloned().unwrap_or(Value::Null),
        "DockerVersion": field("docker_version"),
        "Author": field("author"),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": field("architecture"),
        "Os": config.get("os").cloned().unwrap_or(json!("linux")),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": graph_data, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": parsed.rootfs.diff_ids},
    }))
}

/// A container as `docker container inspect` shows it: its record, state and graph driver data.
pub fn container(root: &DataRoot, record: &ContainerRecord) -> Result<Value> {
    let graph_data = match root.mounts_entry(&record.id)? {
        Some(entry) => Value::Object(root.graph_driver_data(&entry.mount_id)?),
        None => Value::Null,
    };
    let mounted = container::is_mounted(root, &record.id);
    Ok(json!({
        "Id": record.id,
        "Created": record.created,
        "Path": record.path,
        "Args": record.args,
        "State": {"Status": if mounted { "mounted" } else { "created" }, "Running": record.running},
        "Image": record.image_id,
        "Name": format!("/{}", record.name),
        "Driver": "overlay2",
        "GraphDriver": {"Data": graph_data, "Name": "overlay2"},
        "Config": record.config,
    }))
}

/// The labels of a container (`Config.Labels`) as `key=value`, sorted.
pub fn labels(record: &ContainerRecord) -> Vec<String> {
    let mut labels: Vec<String> = record
        .config
        .get("Labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels
}

/// The value of one label of a container, if it has it.
pub fn label(record: &ContainerRecord, name: &str) -> Option<String> {
    record
        .config
        .get("Labels")?
        .get(name)?
        .as_str()
        .map(str::to_string)
}
