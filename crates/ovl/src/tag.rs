//! `ovl tag SOURCE TARGET`: a new name for an image, like `docker tag`.

use std::path::Path;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The image: `name[:tag]`, id or unique id prefix.
    source: String,
    /// The new name, `name[:tag]` (the tag defaults to `latest`).
    target: String,
}

/// Points the target at the image the source names. Prints nothing.
pub fn tag(root_path: &Path, args: &TagArgs) -> Result<()> {
    engine::tag::tag(root_path, &args.source, &args.target)?;
    Ok(())
}
