//! `ovl commit`: a container's changes as a new layer and image, like `docker commit` (the work
//! is `engine::commit`).

use std::path::Path;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g. "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    author: Option<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// LABEL, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD); repeatable.
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Same upperdir, same DiffID: clamp every mtime to SOURCE_DATE_EPOCH (default: the parent
    /// image's creation time) and date the image at that time.
    #[arg(long)]
    reproducible: bool,
    /// Fail when the layer's tar grows past SIZE (`100MiB`, `20G`, bytes), as `load` does.
    #[arg(long, env = "OVL_MAX_LAYER_SIZE", value_parser = crate::load::parse_size)]
    max_layer_size: Option<u64>,
    /// Remove the container once the image exists (unmounting it if mounted), as a build step
    /// does: its changes then become the new layer by rename instead of by copy, where the
    /// kernel's overlay defaults and the options allow (not with --reproducible or
    /// SOURCE_DATE_EPOCH).
    #[arg(long)]
    rm: bool,
    /// The container: name, id or unique id prefix.
    container: String,
    /// Tag the new image `REPO[:TAG]`.
    reference: Option<String>,
}

pub fn commit(root_path: &Path, args: &CommitArgs) -> Result<()> {
    let options = engine::commit::CommitOptions {
        author: args.author.clone(),
        message: args.message.clone(),
        changes: args.change.clone(),
        reproducible: args.reproducible,
        max_layer_size: args.max_layer_size,
        reference: args.reference.clone(),
        parse_time: crate::format::parse_rfc3339,
        remove: args.rm,
    };
    let image_id = engine::commit::commit(root_path, &args.container, &options)?;
    crate::out::outln!("{image_id}");
    Ok(())
}
