//! `ovl images` and `ovl rmi`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use store::{DataRoot, Reference};

use crate::access::{self, Create};
use crate::{format, resolve};

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// `table` (default) or `json` (one JSON object per line, like `--format '{{json .}}'`).
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Remove the image even if containers use it, and every tag of an image named by id.
    #[arg(short, long)]
    force: bool,
    /// Images to remove.
    #[arg(required = true)]
    images: Vec<String>,
}

/// One row of `ovl images`.
struct ImageRow {
    repository: String,
    tag: String,
    image_id: String,
    created: Option<String>,
    size: i64,
}

pub fn images(root_path: &Path, args: &ImagesArgs) -> Result<()> {
    if args.format != "table" && args.format != "json" {
        bail!("unknown --format {}: use table or json", args.format);
    }
    let root = DataRoot::open(root_path)?;
    let references = root.references()?;
    let mut rows = Vec::new();
    for image_id in root.images()? {
        let config = match root.image_config(&image_id) {
            Ok(config) => config,
            Err(err) => {
                tracing::warn!(%image_id, error = %err, "skipping an unreadable image");
                continue;
            }
        };
        let size = image_size(&root, &config.rootfs.diff_ids).unwrap_or(-1);
        let tags = resolve::tags_of(&references, &image_id);
        if tags.is_empty() {
            rows.push(ImageRow {
                repository: "<none>".into(),
                tag: "<none>".into(),
                image_id,
                created: config.created,
                size,
            });
            continue;
        }
        for tag in tags {
            let (repository, tag) = tag
                .rsplit_once(':')
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .unwrap_or((tag, String::new()));
            rows.push(ImageRow {
                repository,
                tag,
                image_id: image_id.clone(),
                created: config.created.clone(),
                size,
            });
        }
    }
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.repository.cmp(&b.repository))
            .then(a.tag.cmp(&b.tag))
    });
    let show_id = |id: &str| {
        if args.no_trunc {
            id.to_string()
        } else {
            format::short_id(id).to_string()
        }
    };
    let mut out = String::new();
    if args.quiet {
        let mut seen = BTreeSet::new();
        for row in &rows {
            if seen.insert(row.image_id.clone()) {
                out.push_str(&show_id(&row.image_id));
                out.push('\n');
            }
        }
    } else if args.format == "json" {
        for row in &rows {
            let line = serde_json::json!({
                "Repository": row.repository, "Tag": row.tag, "ID": show_id(&row.image_id),
                "CreatedAt": row.created.clone().unwrap_or_default(),
                "CreatedSince": format::age(row.created.as_deref()),
                "Size": format::human_size(row.size), "VirtualSize": row.size,
            });
            out.push_str(&serde_json::to_string(&line)?);
            out.push('\n');
        }
    } else {
        let mut table = vec![vec![
            "REPOSITORY".to_string(),
            "TAG".into(),
            "IMAGE ID".into(),
            "CREATED".into(),
            "SIZE".into(),
        ]];
        for row in &rows {
            table.push(vec![
                row.repository.clone(),
                row.tag.clone(),
                show_id(&row.image_id),
                format::age(row.created.as_deref()),
                format::human_size(row.size),
            ]);
        }
        out = format::table(&table);
    }
    print!("{out}");
    Ok(())
}

/// The image size Docker shows: the sum of the layer `size` values over the chain.
pub fn image_size(root: &DataRoot, diff_ids: &[String]) -> Result<i64> {
    let mut total = 0;
    for chain_id in store::chain_ids(diff_ids) {
        let layer = root
            .layer(&chain_id)?
            .with_context(|| format!("layer {chain_id} is missing"))?;
        total += layer.size;
    }
    Ok(total)
}

pub fn rmi(root_path: &Path, args: &RmiArgs) -> Result<()> {
    let (root, _lock) = access::open_for_change(root_path, Create::No, "remove images")?;
    for text in &args.images {
        remove_image(&root, text, args.force).with_context(|| format!("removing image {text}"))?;
    }
    Ok(())
}

fn remove_image(root: &DataRoot, text: &str, force: bool) -> Result<()> {
    let image_id = resolve::image(root, text)?;
    let references = root.references()?;
    let tags = resolve::tags_of(&references, &image_id);
    let named_by_tag = Reference::parse(text)
        .ok()
        .map(|r| r.familiar())
        .filter(|name| tags.contains(name));
    // A tag of an image that has other tags only loses that tag, as with docker rmi.
    if let Some(name) = &named_by_tag {
        if tags.len() > 1 {
            root.remove_reference(&Reference::parse(name)?)?;
            println!("Untagged: {name}");
            return Ok(());
        }
    } else if tags.len() > 1 && !force {
        bail!(
            "image {} is referenced in multiple repositories: remove them by name or use -f",
            format::short_id(&image_id)
        );
    }
    let users: Vec<String> = root
        .containers()?
        .into_iter()
        .filter(|c| c.image_id == image_id)
        .map(|c| format::short_id(&c.id).to_string())
        .collect();
    if !users.is_empty() && !force {
        bail!(
            "unable to remove image {text}: container {} is using it (remove it first, or use -f)",
            users.join(", ")
        );
    }
    for name in &tags {
        root.remove_reference(&Reference::parse(name)?)?;
        println!("Untagged: {name}");
    }
    if !users.is_empty() {
        // Forced with containers still using it: Docker keeps the image, untagged.
        return Ok(());
    }
    let config = root.image_config(&image_id)?;
    root.delete_image(&image_id)?;
    println!("Deleted: {image_id}");
    release_layers(root, &config.rootfs.diff_ids)?;
    Ok(())
}

/// Removes the layers of a chain, top first, that no image, child layer or container references.
fn release_layers(root: &DataRoot, diff_ids: &[String]) -> Result<()> {
    let held = held_chain_ids(root)?;
    // How many registered layers sit directly on each layer; a layer with children stays.
    let mut n_children: BTreeMap<String, usize> = BTreeMap::new();
    for parent in root.layers()?.into_iter().filter_map(|layer| layer.parent) {
        *n_children.entry(parent).or_default() += 1;
    }
    for chain_id in store::chain_ids(diff_ids).iter().rev() {
        if held.contains(chain_id) || n_children.get(chain_id).is_some_and(|n| *n > 0) {
            break;
        }
        let Some(layer) = root.layer(chain_id)? else {
            continue;
        };
        root.remove_layer(chain_id)?;
        println!("Deleted: {chain_id}");
        if let Some(parent) = layer.parent {
            n_children.entry(parent).and_modify(|n| *n -= 1);
        }
    }
    Ok(())
}

/// Every ChainID that a remaining image's chain or a container layer holds.
fn held_chain_ids(root: &DataRoot) -> Result<BTreeSet<String>> {
    let mut held = BTreeSet::new();
    for image_id in root.images()? {
        if let Ok(config) = root.image_config(&image_id) {
            held.extend(store::chain_ids(&config.rootfs.diff_ids));
        }
    }
    for container in root.containers()? {
        held.extend(
            root.mounts_entry(&container.id)?
                .and_then(|entry| entry.parent),
        );
    }
    Ok(held)
}
