//! `ovl inspect`: containers and images as `docker inspect` shows them (the storage-relevant part).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use store::DataRoot;

use crate::template::Template;
use crate::{container, image, resolve};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Containers or images (containers are tried first, as docker does).
    #[arg(required = true)]
    names: Vec<String>,
    /// `container` or `image` to look up only one kind.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Format each result with a Go template (`{{json .RootFS.Layers}}`, `{{.Id}}`), as
    /// `docker inspect -f`.
    #[arg(short, long)]
    format: Option<String>,
}

pub fn inspect(root_path: &Path, args: &InspectArgs) -> Result<()> {
    let template = match args.format.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Template::go(text)?),
    };
    let root = DataRoot::open(root_path)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &args.names {
        let as_container = args.kind.as_deref() != Some("image");
        let as_image = args.kind.as_deref() != Some("container");
        if as_container {
            if let Ok(record) = resolve::container(&root, name) {
                out.push(container_json(&root, &record)?);
                continue;
            }
        }
        if as_image {
            if let Ok(image_id) = resolve::image(&root, name) {
                out.push(image_json(&root, &image_id)?);
                continue;
            }
        }
        missing.push(name.clone());
    }
    match template {
        None => crate::out::outln!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
        Some(template) => {
            // docker's TemplateInspector: each result's text and a newline, a lone newline when
            // nothing was found; a result the template fails on fails the command.
            let mut text = String::new();
            for value in &out {
                text.push_str(&template.render_value(value)?);
                text.push('\n');
            }
            if text.is_empty() {
                text.push('\n');
            }
            crate::out::out!("{text}");
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("no such object: {}", missing.join(", "));
    }
    Ok(())
}

fn image_json(root: &DataRoot, image_id: &str) -> Result<Value> {
    let bytes = root.image_config_bytes(image_id)?;
    let config: Map<String, Value> =
        serde_json::from_slice(&bytes).with_context(|| format!("image config {image_id}"))?;
    let parsed = root.image_config(image_id)?;
    let references = root.references()?;
    let chain_ids = store::chain_ids(&parsed.rootfs.diff_ids);
    let graph_data = match chain_ids.last() {
        Some(top) => {
            let layer = root
                .layer(top)?
                .with_context(|| format!("layer {top} of image {image_id} is missing"))?;
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
        "RepoDigests": [],
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

fn container_json(root: &DataRoot, record: &store::ContainerRecord) -> Result<Value> {
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
