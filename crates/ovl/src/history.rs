//! `ovl history`: the history of an image as `docker history` (20.10) prints it.
//!
//! The rows are what moby's `ImageHistory` (daemon/images/image_history.go) returns: one per
//! `history` entry of the image config, newest first; a non-empty entry takes the next DiffID of
//! `rootfs.diff_ids` and shows the `size` of that layer (its layerdb entry, by ChainID), an
//! `empty_layer` entry shows 0. The IMAGE column is filled by position, as moby does: the top row
//! gets the image id, the next row its parent's (`imagedb/metadata/sha256/<id>/parent`), the one
//! after that the grandparent's, until an image has no parent or its parent does not load; every
//! other row is `<missing>`. The columns are docker/cli's (cli/command/image/formatter_history.go).

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use store::DataRoot;

use crate::template::{Row, Template};
use crate::{format, resolve};

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format (`--human=false`: RFC 3339 times, bytes).
    #[arg(
        short = 'H',
        long,
        value_name = "BOOL",
        default_value = "true",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_go_bool,
        action = clap::ArgAction::Set
    )]
    human: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// A Go template (`table {{.ID}}\t{{.CreatedBy}}`, `{{json .}}`; `json` for `{{json .}}`).
    #[arg(long)]
    format: Option<String>,
    /// The image: `name:tag`, id or unique id prefix.
    image: String,
}

/// docker/cli's table formats of `docker history`.
const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const NON_HUMAN_TABLE: &str =
    "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// docker/cli's column names of `docker history`.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// What `docker history` truncates CREATED BY to, in display columns.
const CREATED_BY_WIDTH: usize = 45;

pub fn history(root_path: &Path, args: &HistoryArgs) -> Result<()> {
    let format = match args.format.as_deref() {
        None | Some("") | Some("table") if args.quiet => "{{.ID}}",
        None | Some("") | Some("table") if !args.human => NON_HUMAN_TABLE,
        None | Some("") | Some("table") => DEFAULT_TABLE,
        Some("json") => "{{json .}}",
        Some(format) => format,
    };
    let template = Template::cli(format)?;
    let root = DataRoot::open(root_path)?;
    let image_id = resolve::image(&root, &args.image)?;
    let entries = engine::history::image_history(&root, &image_id)
        .with_context(|| format!("reading the history of image {}", args.image))?;
    let now = SystemTime::now();
    let rows: Vec<HistoryRow> = entries
        .iter()
        .map(|entry| HistoryRow {
            entry,
            trunc: !args.no_trunc,
            human: args.human,
            now,
        })
        .collect();
    crate::out::out!("{}", template.render_rows(&rows, HEADERS)?);
    Ok(())
}

/// A history row as docker/cli's `historyContext` shows it.
struct HistoryRow<'a> {
    entry: &'a engine::history::HistoryEntry,
    trunc: bool,
    human: bool,
    now: SystemTime,
}

impl Row for HistoryRow<'_> {
    fn type_name(&self) -> &'static str {
        "*image.historyContext"
    }

    fn field_names(&self) -> &'static [&'static str] {
        &[
            "ID",
            "CreatedSince",
            "CreatedAt",
            "CreatedBy",
            "Size",
            "Comment",
        ]
    }

    fn field(&self, name: &str) -> Option<String> {
        let entry = self.entry;
        Some(match name {
            "ID" if self.trunc => format::truncate_id(&entry.id).to_string(),
            "ID" => entry.id.clone(),
            "CreatedAt" => format::go_rfc3339_utc(entry.created),
            "CreatedSince" if self.human => format::ago_unix(entry.created, self.now),
            "CreatedSince" => format::go_rfc3339_utc(entry.created),
            "CreatedBy" => {
                let created_by = entry.created_by.replace('\t', " ");
                if self.trunc {
                    format::ellipsis(&created_by, CREATED_BY_WIDTH)
                } else {
                    created_by
                }
            }
            "Size" if self.human => format::human_size(entry.size),
            "Size" => entry.size.to_string(),
            "Comment" => entry.comment.clone(),
            _ => return None,
        })
    }
}

/// Go's `strconv.ParseBool`, which docker's boolean flags use.
fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::history::HistoryEntry;

    fn entry(id: &str, created: i64, created_by: &str, size: i64) -> HistoryEntry {
        HistoryEntry {
            id: id.to_string(),
            created,
            created_by: created_by.to_string(),
            comment: String::new(),
            size,
        }
    }

    #[test]
    fn columns_follow_docker_cli() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_100);
        let top = entry(
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            1_700_000_000,
            "/bin/sh -c echo hello > /greeting && echo more text to cut",
            1_234_567,
        );
        let row = HistoryRow {
            entry: &top,
            trunc: true,
            human: true,
            now,
        };
        assert_eq!(row.field("ID").as_deref(), Some("0123456789ab"));
        assert_eq!(
            row.field("CreatedSince").as_deref(),
            Some("About a minute ago")
        );
        // 2023-11-14T22:13:20Z is 1700000000 (`date -u -d @1700000000`).
        assert_eq!(
            row.field("CreatedAt").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            row.field("CreatedBy").as_deref(),
            Some("/bin/sh -c echo hello > /greeting && echo mo…")
        );
        assert_eq!(row.field("Size").as_deref(), Some("1.23MB"));
        let raw = HistoryRow {
            entry: &top,
            trunc: false,
            human: false,
            now,
        };
        assert_eq!(
            raw.field("CreatedSince").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(raw.field("Size").as_deref(), Some("1234567"));
        assert_eq!(raw.field("ID").as_deref(), Some(top.id.as_str()));
        let missing = entry("<missing>", format::GO_ZERO_TIME_UNIX, "a\tb", 0);
        let row = HistoryRow {
            entry: &missing,
            trunc: true,
            human: true,
            now,
        };
        assert_eq!(row.field("ID").as_deref(), Some("<missing>"));
        assert_eq!(row.field("CreatedBy").as_deref(), Some("a b"));
        assert_eq!(row.field("Size").as_deref(), Some("0B"));
        // Go saturates durations at about 292 years.
        assert_eq!(row.field("CreatedSince").as_deref(), Some("292 years ago"));
    }

    #[test]
    fn booleans_parse_like_go() {
        assert_eq!(parse_go_bool("false"), Ok(false));
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert!(parse_go_bool("no").is_err());
    }
}
