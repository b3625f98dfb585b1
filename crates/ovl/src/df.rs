//! `ovl system df [--format table|json]`, with the global `-v` for the detailed tables: disk
//! usage as `docker system df` 20.10 shows it.
//!
//! The numbers are computed the way moby v20.10 does: the images listed are those `docker images`
//! lists (tagged, or without a child image; daemon/images/images.go `Images`), an image's size is
//! the sum of its layers' `size`, its shared size the sum over its layers that more than one listed
//! image uses, the images' total the layers those images use, each counted once
//! (`LayerDiskUsage`); a container's size is Docker's `directory.Size` of its writable layer dir
//! (overlay2 `DiffSize` on the native path); local volumes are the option-less dirs of
//! `ROOT/volumes` (volume/service `LocalVolumesSize`). The output is docker/cli v20.10's
//! formatter/disk_usage.go: the same columns, units (`units.HumanSize`, four significant digits;
//! three for `SIZE` of containers) and a tabwriter with minimum width 10 and padding 3. BuildKit's
//! cache database is not read: the build cache is always shown empty.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use store::{DataRoot, Reference};

use crate::format;
use engine::usage::{ContainerUsage, DiskUsage, ImageUsage};

#[derive(clap::Args, Debug)]
pub struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SystemCommand {
    /// Show disk usage, like `docker system df` (the global -v adds the per-image, per-container
    /// and per-volume tables, like `docker system df -v`).
    Df(DfArgs),
}

#[derive(clap::Args, Debug)]
pub struct DfArgs {
    /// `table` (default) or `json` (like docker's `--format '{{json .}}'`).
    #[arg(long, default_value = "table")]
    format: String,
}

/// `ovl system <command>`; `verbose` is the global `-v`, which `docker system df -v` uses for its
/// detailed tables.
pub fn system(root_path: &Path, args: &SystemArgs, verbose: bool) -> Result<()> {
    match &args.command {
        SystemCommand::Df(df_args) => df(root_path, df_args, verbose),
    }
}

fn df(root_path: &Path, args: &DfArgs, verbose: bool) -> Result<()> {
    if args.format != "table" && args.format != "json" {
        bail!("unknown --format {}: use table or json", args.format);
    }
    let root = DataRoot::open(root_path)
        .with_context(|| format!("opening data root {}", root_path.display()))?;
    let usage = engine::usage::disk_usage(&root)?;
    let now = SystemTime::now();
    let text = match (verbose, args.format.as_str()) {
        (false, "table") => summary_table(&usage),
        (false, _) => summary_json(&usage)?,
        (true, "table") => verbose_tables(&usage, now),
        (true, _) => verbose_json(&usage, now)?,
    };
    let mut out = crate::out::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `units.HumanDuration(now - time.Unix(seconds, 0)) + " ago"`, as the docker CLI prints ages.
fn ago(seconds: i64, now: SystemTime) -> String {
    format::ago_unix(seconds, now)
}

/// Go's `time.Unix(seconds, 0).String()` in UTC; Go's zero time when there is none.
fn go_time_string(seconds: Option<i64>) -> String {
    format::go_time_string_utc(seconds.unwrap_or(format::GO_ZERO_TIME_UNIX))
}

// ------------------------------------------------------------------------------------------------
// The summary

/// One row of the summary: TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE.
struct SummaryRow {
    kind: &'static str,
    total: usize,
    active: usize,
    size: String,
    reclaimable: String,
}

fn summary_rows(usage: &DiskUsage) -> Vec<SummaryRow> {
    let with_percent = |reclaimable: i64, total: i64| {
        if total > 0 {
            format!(
                "{} ({}%)",
                format::go_units_human_size(reclaimable),
                reclaimable * 100 / total
            )
        } else {
            format::go_units_human_size(reclaimable)
        }
    };
    let used_by_images: i64 = usage
        .images
        .iter()
        .filter(|image| image.n_containers != 0)
        .map(|image| image.size - image.shared_size)
        .sum();
    let containers_total: i64 = usage.containers.iter().map(|c| c.size_rw).sum();
    let containers_reclaimable: i64 = usage
        .containers
        .iter()
        .filter(|c| !c.is_active())
        .map(|c| c.size_rw)
        .sum();
    let measured = || usage.volumes.iter().filter(|v| v.size != -1);
    let volumes_total: i64 = measured().map(|v| v.size).sum();
    let volumes_reclaimable: i64 = measured().filter(|v| v.links == 0).map(|v| v.size).sum();
    vec![
        SummaryRow {
            kind: "Images",
            total: usage.images.len(),
            active: usage.images.iter().filter(|i| i.n_containers > 0).count(),
            size: format::go_units_human_size(usage.layers_size),
            reclaimable: with_percent(usage.layers_size - used_by_images, usage.layers_size),
        },
        SummaryRow {
            kind: "Containers",
            total: usage.containers.len(),
            active: usage.containers.iter().filter(|c| c.is_active()).count(),
            size: format::go_units_human_size(containers_total),
            reclaimable: with_percent(containers_reclaimable, containers_total),
        },
        SummaryRow {
            kind: "Local Volumes",
            total: usage.volumes.len(),
            active: usage.volumes.iter().filter(|v| v.links > 0).count(),
            size: format::go_units_human_size(volumes_total),
            reclaimable: with_percent(volumes_reclaimable, volumes_total),
        },
        SummaryRow {
            kind: "Build Cache",
            total: 0,
            active: 0,
            size: format::go_units_human_size(0),
            reclaimable: format::go_units_human_size(0),
        },
    ]
}

fn summary_table(usage: &DiskUsage) -> String {
    let mut rows = vec![cells(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"])];
    for row in summary_rows(usage) {
        rows.push(vec![
            row.kind.to_string(),
            row.total.to_string(),
            row.active.to_string(),
            row.size,
            row.reclaimable,
        ]);
    }
    tab_table(&rows)
}

fn summary_json(usage: &DiskUsage) -> Result<String> {
    let mut out = String::new();
    for row in summary_rows(usage) {
        let object = json_object(vec![
            ("Active", row.active.to_string()),
            ("Reclaimable", row.reclaimable),
            ("Size", row.size),
            ("TotalCount", row.total.to_string()),
            ("Type", row.kind.to_string()),
        ]);
        out.push_str(&go_json(&object)?);
        out.push('\n');
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// The detailed tables (-v)

fn image_cells(image: &ImageUsage, now: SystemTime, trunc: bool) -> Vec<(&'static str, String)> {
    vec![
        ("Repository", image.repository.clone()),
        ("Tag", image.tag.clone()),
        (
            "ID",
            if trunc {
                format::truncate_id(&image.id).to_string()
            } else {
                image.id.clone()
            },
        ),
        (
            "CreatedSince",
            image.created.map_or_else(String::new, |c| ago(c, now)),
        ),
        ("VirtualSize", format::go_units_human_size(image.size)),
        ("SharedSize", format::go_units_human_size(image.shared_size)),
        (
            "UniqueSize",
            format::go_units_human_size(image.size - image.shared_size),
        ),
        ("Containers", image.n_containers.to_string()),
    ]
}

fn container_cells(
    container: &ContainerUsage,
    now: SystemTime,
    trunc: bool,
) -> Vec<(&'static str, String)> {
    let (id, image, command) = if trunc {
        (
            format::truncate_id(&container.id).to_string(),
            truncated_image(container),
            format::go_quote(&format::ellipsis(&container.command, 20)),
        )
    } else {
        (
            container.id.clone(),
            container.image.clone(),
            format::go_quote(&container.command),
        )
    };
    vec![
        ("ID", id),
        ("Image", image),
        ("Command", command),
        ("LocalVolumes", container.local_volumes.len().to_string()),
        ("Size", format::human_size(container.size_rw)),
        ("RunningFor", ago(container.created, now)),
        ("Status", container.status.clone()),
        ("Names", container.name.clone()),
    ]
}

fn verbose_tables(usage: &DiskUsage, now: SystemTime) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut rows = vec![cells(&[
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ])];
    for image in &usage.images {
        rows.push(values(image_cells(image, now, true)));
    }
    out.push_str(&tab_table(&rows));

    out.push_str("\nContainers space usage:\n\n");
    let mut rows = vec![cells(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ])];
    for container in &usage.containers {
        rows.push(values(container_cells(container, now, true)));
    }
    out.push_str(&tab_table(&rows));

    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut rows = vec![cells(&["VOLUME NAME", "LINKS", "SIZE"])];
    for volume in &usage.volumes {
        rows.push(vec![
            volume.name.clone(),
            volume.links.to_string(),
            format::go_units_human_size(volume.size),
        ]);
    }
    out.push_str(&tab_table(&rows));

    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        format::go_units_human_size(0)
    ));
    out.push_str(&tab_table(&[cells(&[
        "CACHE ID",
        "CACHE TYPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "USAGE",
        "SHARED",
    ])]));
    out
}

/// `{{json .}}` of docker/cli's verbose disk usage context: one object, each entry's fields sorted
/// by name as Go marshals a map, ids untruncated; no newline at the end, as Docker prints it.
fn verbose_json(usage: &DiskUsage, now: SystemTime) -> Result<String> {
    let images: Vec<Value> = usage
        .images
        .iter()
        .map(|image| {
            let mut fields = image_cells(image, now, false);
            fields.extend([
                ("CreatedAt", go_time_string(image.created)),
                ("Digest", String::new()),
                ("Size", format::human_size(image.size)),
            ]);
            json_object(fields)
        })
        .collect();
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .map(|container| {
            let mut fields = container_cells(container, now, false);
            fields.extend([
                ("CreatedAt", go_time_string(Some(container.created))),
                ("Labels", container.labels.join(",")),
                ("Mounts", container.mounts.join(",")),
                ("Networks", container.networks.join(",")),
                ("Ports", String::new()),
                ("State", container.state.to_string()),
            ]);
            json_object(fields)
        })
        .collect();
    let volumes: Vec<Value> = usage
        .volumes
        .iter()
        .map(|volume| {
            json_object(vec![
                ("Driver", "local".to_string()),
                ("Labels", String::new()),
                ("Links", volume.links.to_string()),
                ("Mountpoint", volume.mountpoint.clone()),
                ("Name", volume.name.clone()),
                ("Scope", "local".to_string()),
                ("Size", format::go_units_human_size(volume.size)),
            ])
        })
        .collect();
    let mut object = Map::new();
    object.insert("Images".into(), Value::Array(images));
    object.insert("Containers".into(), Value::Array(containers));
    object.insert("Volumes".into(), Value::Array(volumes));
    object.insert("BuildCache".into(), Value::Array(Vec::new()));
    go_json(&Value::Object(object))
}

/// docker/cli `ContainerContext.Image` with truncation: the short id when the container names its
/// image by id, else the familiar name (with its tag when one was given, without a digest).
fn truncated_image(container: &ContainerUsage) -> String {
    let image = container.image.as_str();
    if image.is_empty() {
        return "<no image>".to_string();
    }
    let short = |id: &str| -> String {
        let hex = id.split_once(':').map_or(id, |(_, hex)| hex);
        hex.chars().take(12).collect()
    };
    if short(&container.image_id) == short(image) {
        return short(image);
    }
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let has_tag = !image.contains('@')
        && name
            .rsplit_once('/')
            .map_or(name, |(_, last)| last)
            .contains(':');
    match Reference::parse(name) {
        Ok(reference) if has_tag => reference.familiar(),
        Ok(reference) => reference.repo,
        Err(_) => image.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------
// Go and docker/cli formatting

/// Go's text/tabwriter as docker/cli sets it up (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`):
/// every cell but the last of a line padded to the column's widest cell plus 3, at least 10.
fn tab_table(rows: &[Vec<String>]) -> String {
    gocompat::tabwriter::table_untrimmed(rows)
}

fn cells(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| text.to_string()).collect()
}

fn values(fields: Vec<(&'static str, String)>) -> Vec<String> {
    fields.into_iter().map(|(_, value)| value).collect()
}

/// A JSON object with the fields sorted by name, as Go marshals a map.
fn json_object(mut fields: Vec<(&'static str, String)>) -> Value {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut object = Map::new();
    for (key, value) in fields {
        object.insert(key.to_string(), Value::String(value));
    }
    Value::Object(object)
}

/// Go `json.Marshal` text (with its HTML escapes: `<none>` is `\u003cnone\u003e`).
fn go_json(value: &Value) -> Result<String> {
    Ok(String::from_utf8(gocompat::json::to_vec(value)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_like_docker_cli() {
        // From `docker system df` 20.10: minimum width 10, padding 3.
        let rows = vec![
            cells(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]),
            cells(&["Images", "2", "2", "1.982MB", "1.982MB (99%)"]),
            cells(&["Local Volumes", "1", "1", "6B", "0B (0%)"]),
        ];
        assert_eq!(
            tab_table(&rows),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         2         1.982MB   1.982MB (99%)\n\
             Local Volumes   1         1         6B        0B (0%)\n"
        );
    }

    #[test]
    fn commands_are_cut_and_quoted_like_docker_cli() {
        assert_eq!(
            format::go_quote(&format::ellipsis("/bin/busybox sh -c 'echo \"a b\" c'", 20)),
            "\"/bin/busybox sh -c …\""
        );
        assert_eq!(
            format::go_quote(&format::ellipsis("/bin/sh", 20)),
            "\"/bin/sh\""
        );
        assert_eq!(format::go_quote("a\tb\u{1b}"), "\"a\\tb\\x1b\"");
        assert_eq!(format::ellipsis("日本語のコマンドです", 7), "日本語…");
    }

    #[test]
    fn go_time_strings() {
        // 1795387152 is 2026-11-22T22:39:12Z.
        assert_eq!(
            go_time_string(Some(1_795_387_152)),
            "2026-11-22 22:39:12 +0000 UTC"
        );
        assert_eq!(go_time_string(None), "0001-01-01 00:00:00 +0000 UTC");
    }
}
