//! `ovl load` and `ovl import` (the work is `engine::load`): arguments and progress on stderr, a
//! line per layer that rewrites itself when stderr is a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use engine::Event;

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The archive: docker-archive (plain or gzip'd), OCI archive, or an OCI layout directory;
    /// `-` or none: standard input.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Repository (or `name:tag`) for OCI images whose `ref.name` annotation is a bare tag.
    #[arg(long)]
    name: Option<String>,
    /// Print only the `Loaded image` lines.
    #[arg(short, long)]
    quiet: bool,
    /// Refuse a layer whose uncompressed tar is larger than this (e.g. `100MiB`, `20G`): a small
    /// compressed blob can inflate to fill the disk.
    #[arg(long, env = "OVL_MAX_LAYER_SIZE", value_parser = parse_size)]
    max_layer_size: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A root filesystem tarball (plain, gzip or zstd).
    file: PathBuf,
    /// The `name[:tag]` to give the image.
    reference: Option<String>,
    /// Commit message recorded in the image history.
    #[arg(short, long)]
    message: Option<String>,
    /// Refuse a tarball whose uncompressed size is larger than this (e.g. `100MiB`, `20G`).
    #[arg(long, env = "OVL_MAX_LAYER_SIZE", value_parser = parse_size)]
    max_layer_size: Option<u64>,
}

pub fn load(root_path: &Path, args: &LoadArgs) -> Result<()> {
    engine::interrupt::install()?;
    let options = engine::load::LoadOptions {
        name: args.name.clone(),
        max_layer_size: args.max_layer_size,
    };
    let progress = Progress::new(!args.quiet);
    let stdin = std::io::stdin();
    let mut stdin_lock;
    let input = match &args.input {
        Some(path) if path.as_os_str() != "-" => engine::load::LoadInput::Path(path),
        // A file given as stdin (`ovl load < app.tar`) is read in place, like one given with -i.
        _ if stdin_is_regular_file() => engine::load::LoadInput::Path(Path::new("/dev/stdin")),
        _ if stdin.is_terminal() => {
            anyhow::bail!("requested load from stdin, but stdin is a terminal: give -i FILE or pipe an archive in")
        }
        _ => {
            stdin_lock = stdin.lock();
            engine::load::LoadInput::Stream(&mut stdin_lock)
        }
    };
    engine::load::load(root_path, input, &options, &mut |event| {
        match event {
            Event::ImageLoaded {
                image_id,
                name: None,
            } => crate::out::outln!("Loaded image ID: {image_id}"),
            Event::ImageLoaded {
                name: Some(name), ..
            } => crate::out::outln!("Loaded image: {name}"),
            other => progress.show(&other),
        }
        Ok(())
    })?;
    Ok(())
}

pub fn import(root_path: &Path, args: &ImportArgs) -> Result<()> {
    let options = engine::load::ImportOptions {
        reference: args.reference.clone(),
        message: args.message.clone(),
        max_layer_size: args.max_layer_size,
    };
    let progress = Progress::new(true);
    let image_id = engine::load::import(root_path, &args.file, &options, &mut |event| {
        progress.show(&event);
        Ok(())
    })?;
    crate::out::outln!("{image_id}");
    Ok(())
}

/// Whether standard input is a regular file, which can be read at any offset.
fn stdin_is_regular_file() -> bool {
    rustix::fs::fstat(std::io::stdin()).is_ok_and(|stat| {
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
    })
}

/// Parses a size: a number of bytes with an optional unit, `k`/`m`/`g`/`t` (powers of 1000,
/// with an optional `b`) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), in any case.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected a number of bytes, e.g. 100MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("invalid size unit {other:?} in {text:?}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Progress on stderr: a line per layer that rewrites itself when stderr is a terminal.
struct Progress {
    enabled: bool,
    terminal: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, event: &Event) {
        if !self.enabled {
            return;
        }
        match event {
            Event::LayerExists { diff_id } => {
                crate::out::errln!(
                    "{}: Layer already exists",
                    crate::format::truncate_id(diff_id)
                );
            }
            Event::LayerProgress { label, n_bytes } if self.terminal => {
                crate::out::err!(
                    "\r\x1b[2KLoading layer {label}: {}",
                    crate::format::human_size(*n_bytes as i64)
                );
            }
            Event::LayerLoaded { label, tar_bytes } => {
                if self.terminal {
                    crate::out::err!("\r\x1b[2K");
                }
                crate::out::errln!(
                    "Loaded layer {label}: {}",
                    crate::format::human_size(*tar_bytes as i64)
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("2g"), Ok(2_000_000_000));
        assert_eq!(parse_size("3 KB"), Ok(3_000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
