//! `ovl save`: images to a docker-archive, an OCI archive or an OCI layout directory (the work
//! is `engine::save`); stdout is refused when it is a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use engine::save::Compression;

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Images: `name:tag`, `name` (all its tags), an image id or a unique id prefix.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
    /// Write to this file (the directory to create for `--format oci`) instead of stdout.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::DockerArchive)]
    format: SaveFormat,
    /// Layer compression for the OCI formats (default gzip); a docker-archive is uncompressed.
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SaveFormat {
    /// `docker save`'s format (Docker 20.10), read by `docker load`.
    DockerArchive,
    /// A tar of an OCI image layout.
    OciArchive,
    /// An OCI image layout directory.
    Oci,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

pub fn save(root_path: &Path, args: &SaveArgs) -> Result<()> {
    let compression = match (args.format, args.compression) {
        (SaveFormat::DockerArchive, None | Some(CompressionArg::None)) => Compression::None,
        (SaveFormat::DockerArchive, Some(other)) => bail!(
            "--compression {} is not supported with --format docker-archive: docker-archive layers \
             are uncompressed (use --format oci-archive or oci, or compress the whole archive)",
            compression_of(other).name()
        ),
        (_, None) => Compression::Gzip,
        (_, Some(arg)) => compression_of(arg),
    };
    if args.format == SaveFormat::Oci && args.output.is_none() {
        bail!("--format oci writes a directory: give it with -o DIR");
    }
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }

    let format = match args.format {
        SaveFormat::DockerArchive => engine::save::SaveFormat::DockerArchive,
        SaveFormat::OciArchive => engine::save::SaveFormat::OciArchive,
        SaveFormat::Oci => engine::save::SaveFormat::Oci,
    };
    match &args.output {
        Some(path) => engine::save::save(
            root_path,
            &args.images,
            format,
            compression,
            engine::save::SaveOutput::Path(path.clone()),
        )?,
        None => {
            let mut stdout = crate::out::stdout();
            engine::save::save(
                root_path,
                &args.images,
                format,
                compression,
                engine::save::SaveOutput::Stream(&mut stdout),
            )?
        }
    }
    Ok(())
}

fn compression_of(arg: CompressionArg) -> Compression {
    match arg {
        CompressionArg::None => Compression::None,
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
    }
}
