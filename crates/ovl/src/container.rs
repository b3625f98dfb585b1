//! Containers: `run-rootfs`, `ps`, `umount`, `rm` (the work is `engine::container`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use engine::Event;
use store::{ContainerRecord, DataRoot};

use crate::format;
use crate::template::{Row, Template};
use engine::state;

pub use engine::container::is_mounted;

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Also write an OCI runtime bundle into DIR (`config.json` for runc or crun, whose root is
    /// the mounted root filesystem); created if missing.
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Overwrite the image's entrypoint (`""` clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Set environment variables (`KEY=VALUE`; a bare `KEY` takes this environment's value).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The user the command runs as: `name|uid[:group|gid]`, looked up in the image.
    #[arg(short, long)]
    user: Option<String>,
    /// The working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// The image: `name:tag`, id or unique id prefix.
    image: String,
    /// The command and its arguments (replace the image's `CMD`).
    #[arg(allow_hyphen_values = true)]
    command: Vec<String>,
    /// Name the container (an existing container of that name is mounted again).
    #[arg(long)]
    name: Option<String>,
    /// Write the container id to this file (which must not exist), as `docker run --cidfile`.
    #[arg(long)]
    cidfile: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just mounted ones).
    #[arg(short, long)]
    all: bool,
    /// Only display container ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Display total file sizes (the container layer, and with the image as `virtual`).
    #[arg(short, long)]
    size: bool,
    /// `table` (default), `json` (`{{json .}}`) or a Go template (`{{.ID}} {{.Names}}`,
    /// `table {{.Names}}\t{{.Status}}`).
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(clap::Args, Debug)]
pub struct UmountArgs {
    /// Containers to unmount.
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Unmount a mounted container first.
    #[arg(short, long)]
    force: bool,
    /// Containers to remove.
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run_rootfs(root_path: &Path, args: &RunArgs) -> Result<()> {
    let options = engine::container::CreateOptions {
        image: args.image.clone(),
        name: args.name.clone(),
        cidfile: args.cidfile.clone(),
        run: engine::container::RunOverrides {
            command: args.command.clone(),
            entrypoint: args.entrypoint.clone(),
            env: args
                .env
                .iter()
                .filter_map(|variable| resolve_env(variable))
                .collect(),
            user: args.user.clone(),
            workdir: args.workdir.clone(),
        },
        bundle: args.bundle.clone(),
    };
    let merged = engine::container::run_rootfs(root_path, &options)?;
    crate::out::outln!("{}", merged.display());
    Ok(())
}

/// docker/cli's `-e`: `KEY=VALUE` as given, a bare `KEY` with this environment's value, or
/// dropped when it is not set.
fn resolve_env(variable: &str) -> Option<String> {
    if variable.contains('=') {
        return Some(variable.to_string());
    }
    std::env::var(variable)
        .ok()
        .map(|value| format!("{variable}={value}"))
}

#[derive(clap::Args, Debug)]
pub struct BundleArgs {
    /// The container.
    container: String,
    /// The bundle directory (created if missing; must not hold a `config.json`).
    dir: PathBuf,
}

/// `ovl bundle CONTAINER DIR`: mounts the container if needed and writes its runtime bundle.
pub fn bundle(root_path: &Path, args: &BundleArgs) -> Result<()> {
    let dir = engine::bundle::bundle(root_path, &args.container, &args.dir)?;
    crate::out::outln!("{}", dir.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The container.
    container: String,
}

/// `ovl export CONTAINER [-o FILE]`: the container's root filesystem as a tar, as `docker
/// export`; stdout is refused when it is a terminal.
pub fn export(root_path: &Path, args: &ExportArgs) -> Result<()> {
    use std::io::IsTerminal;
    match &args.output {
        Some(path) => engine::export::export(
            root_path,
            &args.container,
            engine::export::ExportOutput::Path(path.clone()),
        )?,
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            let mut stdout = crate::out::stdout();
            engine::export::export(
                root_path,
                &args.container,
                engine::export::ExportOutput::Stream(&mut stdout),
            )?
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Containers to mount.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `ovl mount CONTAINER...`: mounts existing containers and prints each merged path (with the
/// container's id first when there are several, as podman prints them).
pub fn mount(root_path: &Path, args: &MountArgs) -> Result<()> {
    let several = args.containers.len() > 1;
    engine::container::mount(root_path, &args.containers, &mut |event| {
        if let Event::Mounted { container_id, path } = event {
            if several {
                crate::out::outln!("{container_id} {}", path.display());
            } else {
                crate::out::outln!("{}", path.display());
            }
        }
        Ok(())
    })?;
    Ok(())
}

pub fn ps(root_path: &Path, args: &PsArgs) -> Result<()> {
    let format = match args.format.as_str() {
        "table" | "" if args.quiet => "{{.ID}}".to_string(),
        "table" | "" if args.size => format!("{PS_TABLE}\t{{{{.Size}}}}"),
        "table" | "" => PS_TABLE.to_string(),
        "json" => "{{json .}}".to_string(),
        custom => custom.to_string(),
    };
    let template = Template::cli(&format)?;
    let root = DataRoot::open(root_path)?;
    let mut containers = root.containers()?;
    containers.sort_by(|a, b| b.created.cmp(&a.created));
    let now = std::time::SystemTime::now();
    let rows: Vec<PsRow> = containers
        .into_iter()
        .filter_map(|record| {
            let mounted = is_mounted(&root, &record.id);
            (args.all || mounted).then(|| PsRow {
                root: &root,
                image: ps_image(&root, &record),
                mounted,
                record,
                trunc: !args.no_trunc,
                now,
                sizes: std::cell::OnceCell::new(),
                attachments: std::cell::OnceCell::new(),
            })
        })
        .collect();
    let out = if format == PS_TABLE || format == format!("{PS_TABLE}\t{{{{.Size}}}}") {
        let mut columns = vec![
            "ID",
            "Image",
            "Command",
            "RunningFor",
            "Status",
            "Ports",
            "Names",
        ];
        if args.size {
            columns.push("Size");
        }
        let header = columns
            .iter()
            .map(|column| {
                PS_HEADERS
                    .iter()
                    .find(|(field, _)| field == column)
                    .map_or(String::new(), |(_, header)| header.to_string())
            })
            .collect();
        let mut table = vec![header];
        for row in &rows {
            table.push(
                columns
                    .iter()
                    .map(|column| row.field(column).unwrap_or_default())
                    .collect(),
            );
        }
        format::table(&table)
    } else {
        template.render_rows(&rows, PS_HEADERS)?
    };
    crate::out::out!("{out}");
    Ok(())
}

/// docker/cli's default table of `docker ps`.
const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// docker/cli's column names of `docker ps`.
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
];

/// One container of `ovl ps`, as docker/cli's `ContainerContext` shows it. Sizes and mount
/// points are read only when a field asks for them.
struct PsRow<'a> {
    root: &'a DataRoot,
    record: ContainerRecord,
    /// The image as moby's container list names it (see [`ps_image`]).
    image: String,
    mounted: bool,
    trunc: bool,
    now: std::time::SystemTime,
    /// The container layer's size and that plus the image's (moby `GetContainerLayerSize`).
    sizes: std::cell::OnceCell<(i64, i64)>,
    attachments: std::cell::OnceCell<store::ContainerAttachments>,
}

impl PsRow<'_> {
    fn created(&self) -> i64 {
        format::unix_seconds(&self.record.created).unwrap_or(format::GO_ZERO_TIME_UNIX)
    }

    fn attachments(&self) -> &store::ContainerAttachments {
        self.attachments.get_or_init(|| {
            self.root
                .container_attachments(&self.record.id)
                .unwrap_or_else(|err| {
                    let container = &self.record.id;
                    tracing::warn!(%container, error = %err, "reading the container's mounts");
                    store::ContainerAttachments::default()
                })
        })
    }

    fn sizes(&self) -> (i64, i64) {
        *self
            .sizes
            .get_or_init(|| engine::container::layer_sizes(self.root, &self.record.id))
    }
}

impl Row for PsRow<'_> {
    fn type_name(&self) -> &'static str {
        "*formatter.ContainerContext"
    }

    fn field_names(&self) -> &'static [&'static str] {
        &[
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status",
        ]
    }

    fn field(&self, name: &str) -> Option<String> {
        let record = &self.record;
        Some(match name {
            "ID" if self.trunc => format::truncate_id(&record.id).to_string(),
            "ID" => record.id.clone(),
            "Names" => record.name.clone(),
            "Image" if self.image.is_empty() => "<no image>".to_string(),
            "Image" if self.trunc => {
                if format::truncate_id(&record.image_id) == format::truncate_id(&self.image) {
                    format::truncate_id(&self.image).to_string()
                } else {
                    familiar_image(&self.image)
                }
            }
            "Image" => self.image.clone(),
            "Command" if self.trunc => {
                format::go_quote(&format::ellipsis(&state::command(record), 20))
            }
            "Command" => format::go_quote(&state::command(record)),
            "CreatedAt" => format::go_time_string_utc(self.created()),
            "RunningFor" => format::ago_unix(self.created(), self.now),
            "Ports" => String::new(),
            "State" => state::state_word(record).to_string(),
            "Status" => state::status(record, self.mounted),
            "Size" => {
                let (size_rw, size_root_fs) = self.sizes();
                let rw = format::human_size(size_rw);
                if size_root_fs > 0 {
                    format!("{rw} (virtual {})", format::human_size(size_root_fs))
                } else {
                    rw
                }
            }
            "Labels" => engine::inspect::labels(record).join(","),
            "Mounts" => self
                .attachments()
                .mount_points
                .iter()
                .map(|point| {
                    let name = if point.name.is_empty() {
                        &point.source
                    } else {
                        &point.name
                    };
                    if self.trunc {
                        format::ellipsis(name, 15)
                    } else {
                        name.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            "LocalVolumes" => self
                .attachments()
                .mount_points
                .iter()
                .filter(|point| point.driver == "local")
                .count()
                .to_string(),
            "Networks" => self.attachments().networks.join(","),
            _ => return None,
        })
    }

    fn method(&self, name: &str, args: &[String]) -> Option<String> {
        match (name, args) {
            ("Label", [key]) => Some(engine::inspect::label(&self.record, key).unwrap_or_default()),
            _ => None,
        }
    }
}

/// The image of a container as moby's list names it (`refreshImage` in daemon/list.go): the name
/// the container was created with while it still names the container's image, else the image id.
fn ps_image(root: &DataRoot, record: &ContainerRecord) -> String {
    engine::container::listed_image(root, record)
}

/// docker/cli's short form of an image name: the familiar name with its tag, without a digest.
fn familiar_image(name: &str) -> String {
    let without_digest = name.split_once('@').map_or(name, |(name, _)| name);
    [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|prefix| without_digest.strip_prefix(prefix))
    .unwrap_or(without_digest)
    .to_string()
}

pub fn umount(root_path: &Path, args: &UmountArgs) -> Result<()> {
    engine::container::umount(root_path, &args.containers, &mut print_container)?;
    Ok(())
}

pub fn rm(root_path: &Path, args: &RmArgs) -> Result<()> {
    engine::container::rm(
        root_path,
        &args.containers,
        args.force,
        &mut print_container,
    )?;
    Ok(())
}

/// Prints the name of a container unmounted or removed, as the user gave it.
fn print_container(event: Event) -> std::result::Result<(), engine::EventError> {
    if let Event::Unmounted { text } | Event::ContainerRemoved { text } = event {
        crate::out::outln!("{text}");
    }
    Ok(())
}
