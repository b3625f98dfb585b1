//! `ovl fsck [--verify-content] [--repair]`: checks the data root against the format, and repairs
//! what an interrupted operation left.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use engine::Event;
use store::Severity;

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Also reassemble every layer from its tar-split and `diff/` and check it against its DiffID.
    #[arg(long)]
    verify_content: bool,
    /// First finish interrupted container removals, remove what interrupted operations left
    /// (write-sets, `-removing` layers, orphan overlay2 dirs, dangling `l/` links) and restore
    /// lost `l/` links; never removes a layer, image or container that is referenced.
    #[arg(long)]
    repair: bool,
}

/// Prints one line per finding (`corrupt:` or `leftover:`, the path, the problem) and a summary;
/// fails when anything is corrupt. Leftovers are what `ovl prune` removes.
pub fn fsck(root_path: &Path, args: &FsckArgs) -> Result<()> {
    let checked = engine::fsck::fsck(root_path, args.verify_content, args.repair, &mut |event| {
        if let Event::Repaired { what } = event {
            crate::out::outln!("repaired: {what}");
        }
        Ok(())
    })?;
    let (report, n_verified) = (checked.report, checked.n_verified);
    let mut out = crate::out::stdout();
    for finding in &report.findings {
        let kind = match finding.severity {
            Severity::Corruption => "corrupt",
            Severity::Leftover => "leftover",
            Severity::Unknown => "unknown",
        };
        writeln!(
            out,
            "{kind}: {}: {}",
            finding.path.display(),
            finding.problem
        )?;
    }
    let count = |severity: Severity| {
        report
            .findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    };
    let n_corrupt = count(Severity::Corruption);
    let n_leftovers = count(Severity::Leftover);
    let n_unknown = count(Severity::Unknown);
    let counts = &report.counts;
    writeln!(
        out,
        "{} layers, {} images, {} tags, {} containers checked{}: {n_corrupt} corrupt, {n_leftovers} leftovers{}",
        counts.n_layers,
        counts.n_images,
        counts.n_tags,
        counts.n_containers,
        if args.verify_content {
            format!(" ({n_verified} layers' content verified)")
        } else {
            String::new()
        },
        if n_unknown > 0 {
            format!(", {n_unknown} unknown entries left alone")
        } else {
            String::new()
        }
    )?;
    out.flush()?;
    if n_corrupt > 0 {
        bail!(
            "data root {} has {n_corrupt} corrupt entries",
            root_path.display()
        );
    }
    Ok(())
}
