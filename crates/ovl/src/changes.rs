//! `ovl diff`: a container's changes as `docker diff` lists them.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The container: name, id or unique id prefix.
    container: String,
    /// `text` (default: `A /path` lines) or `json` (`[{"Path":..,"Kind":..}]` as the Docker API).
    #[arg(long, default_value = "text")]
    format: String,
}

pub fn diff(root_path: &Path, args: &DiffArgs) -> Result<()> {
    if args.format != "text" && args.format != "json" {
        bail!("unknown --format {}: use text or json", args.format);
    }
    let changes = engine::changes::changes(root_path, &args.container)?;

    let mut out = std::io::BufWriter::new(crate::out::stdout());
    if args.format == "json" {
        let items: Vec<serde_json::Value> = changes
            .iter()
            .map(|change| {
                serde_json::json!({
                    "Path": String::from_utf8_lossy(&change.path),
                    "Kind": change.kind.code(),
                })
            })
            .collect();
        out.write_all(&store::go_json(&items)?)?;
        out.write_all(b"\n")?;
    } else {
        for change in &changes {
            out.write_all(&[change.kind.letter() as u8, b' '])?;
            out.write_all(&change.path)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}
