//! Tagging: a new name for an image, like `docker tag`.

use std::path::Path;

use crate::error::{Context, Error, Result};
use store::Reference;

use crate::access::{self, Create};
use crate::resolve;

/// Points `target` at the image `source` names; a tag that named another image moves, as with
/// docker tag.
pub fn tag(root_path: &Path, source: &str, target: &str) -> Result<()> {
    let target_text = target;
    let target = Reference::parse(target_text).image_context("tagging as", target_text)?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "tag an image")?;
    let image_id = resolve::image(&root, source)?;
    root.add_reference(&target, &image_id)
        .map_err(|err| Error::Tag {
            image: source.to_string(),
            target: target.familiar(),
            source: Box::new(err.into()),
        })?;
    Ok(())
}
