//! `ovl inspect`: containers and images as `docker inspect` shows them (the storage-relevant part).

use std::path::Path;

use anyhow::Result;
use serde_json::Value;
use store::DataRoot;

use crate::resolve;
use crate::template::{self, Template};

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
    let mut out: Vec<(&'static template::GoType, Value)> = Vec::new();
    let mut missing = Vec::new();
    for name in &args.names {
        let as_container = args.kind.as_deref() != Some("image");
        let as_image = args.kind.as_deref() != Some("container");
        // A container first, as docker does; the image lookup only when no container matched.
        let container = as_container
            .then(|| resolve::container(&root, name).ok())
            .flatten();
        if let Some(record) = container {
            let document = engine::inspect::container(&root, &record)?;
            out.push((&template::CONTAINER_JSON, document));
        } else if let Some(image_id) = as_image.then(|| resolve::image(&root, name).ok()).flatten()
        {
            let document = engine::inspect::image(&root, &image_id)?;
            out.push((&template::IMAGE_INSPECT, document));
        } else {
            missing.push(name.clone());
        }
    }
    match template {
        None => crate::out::outln!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(
                out.into_iter().map(|(_, value)| value).collect()
            ))?
        ),
        Some(template) => {
            // docker's TemplateInspector: each result's text and a newline, a lone newline when
            // nothing was found; a result the template fails on fails the command. The template
            // runs on the typed Go value first and on the JSON only when that fails.
            let mut text = String::new();
            for (schema, value) in &out {
                text.push_str(&template.render_typed(schema, value)?);
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
