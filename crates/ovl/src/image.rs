//! `ovl images` and `ovl rmi`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;
use engine::Event;
use store::DataRoot;

use crate::format;
use crate::template::{Row, Template};

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (by default untagged images that other images are built on are hidden).
    #[arg(short, long)]
    all: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// `table` (default), `json` (`{{json .}}`) or a Go template (`{{.Repository}}:{{.Tag}}`,
    /// `table {{.ID}}\t{{.Size}}`).
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

/// docker/cli's table formats of `docker images`.
const DEFAULT_TABLE: &str = concat!(
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t",
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
);
const DIGEST_TABLE: &str = concat!(
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t",
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
);

/// docker/cli's column names of `docker images`.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// One row of `ovl images`, as docker/cli's `imageContext` shows it.
struct ImageRow<'a> {
    image: &'a engine::image::ListedImage,
    repository: String,
    tag: String,
    digest: String,
    trunc: bool,
    now: SystemTime,
}

impl Row for ImageRow<'_> {
    fn type_name(&self) -> &'static str {
        "*formatter.imageContext"
    }

    fn field_names(&self) -> &'static [&'static str] {
        &[
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize",
        ]
    }

    fn field(&self, name: &str) -> Option<String> {
        let image = self.image;
        Some(match name {
            "ID" if self.trunc => format::truncate_id(&image.image_id).to_string(),
            "ID" => image.image_id.clone(),
            "Repository" => self.repository.clone(),
            "Tag" => self.tag.clone(),
            "Digest" => self.digest.clone(),
            "CreatedSince" if image.created == format::GO_ZERO_TIME_UNIX => String::new(),
            "CreatedSince" => format::ago_unix(image.created, self.now),
            "CreatedAt" => format::go_time_string_utc(image.created),
            "Size" => format::human_size(image.size),
            "VirtualSize" => format::go_units_human_size(image.size),
            // `docker images` does not compute these (moby leaves them at -1).
            "Containers" | "SharedSize" | "UniqueSize" => "N/A".to_string(),
            _ => return None,
        })
    }
}

pub fn images(root_path: &Path, args: &ImagesArgs) -> Result<()> {
    let format = match args.format.as_str() {
        "table" | "" if args.quiet => "{{.ID}}".to_string(),
        "table" | "" if args.digests => DIGEST_TABLE.to_string(),
        "table" | "" => DEFAULT_TABLE.to_string(),
        "json" => "{{json .}}".to_string(),
        custom
            if custom.starts_with("table") && args.digests && !custom.contains("{{.Digest}}") =>
        {
            format!("{custom}\t{{{{.Digest}}}}")
        }
        custom => custom.to_string(),
    };
    let template = Template::cli(&format)?;
    let root = DataRoot::open(root_path)?;
    let listed = engine::image::list(&root, args.all, |created| {
        format::unix_seconds(created).unwrap_or(format::GO_ZERO_TIME_UNIX)
    })?;
    let need_digest = args.digests || format.contains("{{.Digest}}");
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for image in &listed {
        let mut row = |repository: &str, tag: &str, digest: &str| {
            rows.push(ImageRow {
                image,
                repository: repository.to_string(),
                tag: tag.to_string(),
                digest: digest.to_string(),
                trunc: !args.no_trunc,
                now,
            });
        };
        if image.tags.is_empty() && image.digests.is_empty() {
            row("<none>", "<none>", "<none>");
            continue;
        }
        // docker/cli `imageFormatTaggedAndDigest`: a row per tag (per tag and digest when digests
        // are shown), then a row per repository that only has digests.
        let mut tagged: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for name in &image.tags {
            let (repository, tag) = name.rsplit_once(':').unwrap_or((name, ""));
            tagged.entry(repository).or_default().push(tag);
        }
        let mut digested: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for name in &image.digests {
            let (repository, digest) = name.split_once('@').unwrap_or((name, ""));
            digested.entry(repository).or_default().push(digest);
        }
        for (repository, tags) in &tagged {
            let digests = digested.remove(repository).unwrap_or_default();
            for tag in tags {
                if !need_digest || digests.is_empty() {
                    row(repository, tag, "<none>");
                    continue;
                }
                for digest in &digests {
                    row(repository, tag, digest);
                }
            }
        }
        for (repository, digests) in &digested {
            if args.digests {
                for digest in digests {
                    row(repository, "<none>", digest);
                }
            } else {
                row(repository, "<none>", "");
            }
        }
    }
    let out = if format == DEFAULT_TABLE || format == DIGEST_TABLE {
        default_table(&rows, args.digests)
    } else {
        template.render_rows(&rows, HEADERS)?
    };
    crate::out::out!("{out}");
    Ok(())
}

/// `docker images`' default table (the same cells as [`DEFAULT_TABLE`] and [`DIGEST_TABLE`]).
fn default_table(rows: &[ImageRow], digests: bool) -> String {
    let cell = |row: &ImageRow, name: &str| row.field(name).unwrap_or_default();
    let mut table = vec![Vec::new()];
    let columns: &[&str] = if digests {
        &["Repository", "Tag", "Digest", "ID", "CreatedSince", "Size"]
    } else {
        &["Repository", "Tag", "ID", "CreatedSince", "Size"]
    };
    for column in columns {
        let header = HEADERS
            .iter()
            .find(|(field, _)| field == column)
            .map_or("", |(_, header)| header);
        table[0].push(header.to_string());
    }
    for row in rows {
        table.push(
            columns
                .iter()
                .map(|column| match cell(row, column) {
                    created if *column == "CreatedSince" && created.is_empty() => "N/A".to_string(),
                    text => text,
                })
                .collect(),
        );
    }
    format::table(&table)
}

pub fn rmi(root_path: &Path, args: &RmiArgs) -> Result<()> {
    engine::image::rmi(root_path, &args.images, args.force, &mut |event| {
        match event {
            Event::Untagged { name } => crate::out::outln!("Untagged: {name}"),
            Event::Deleted { id } => crate::out::outln!("Deleted: {id}"),
            _ => {}
        }
        Ok(())
    })?;
    Ok(())
}
