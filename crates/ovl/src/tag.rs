//! `ovl tag SOURCE TARGET`: a new name for an image, like `docker tag`.

use std::path::Path;

use anyhow::{Context, Result};
use store::Reference;

use crate::access::{self, Create};
use crate::resolve;

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The image: `name[:tag]`, id or unique id prefix.
    source: String,
    /// The new name, `name[:tag]` (the tag defaults to `latest`).
    target: String,
}

/// Points `target` at the image `source` names; a tag that named another image moves, as with
/// docker tag. Prints nothing.
pub fn tag(root_path: &Path, args: &TagArgs) -> Result<()> {
    let target =
        Reference::parse(&args.target).with_context(|| format!("tagging as {}", args.target))?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "tag an image")?;
    let image_id = resolve::image(&root, &args.source)?;
    root.add_reference(&target, &image_id)
        .with_context(|| format!("tagging image {} as {}", args.source, target.familiar()))?;
    Ok(())
}
