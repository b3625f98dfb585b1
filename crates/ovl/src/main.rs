//! `ovl`: a daemonless overlay2 graph driver for Docker 20.10 data roots.
//!
//! Only this crate knows clap, human and JSON output formats and exit codes: 0 ok, 1 error, 2 usage.

mod changes;
mod commit;
mod completion;
mod container;
mod df;
mod format;
mod fsck;
mod history;
mod image;
mod info;
mod inspect;
mod kernel;
mod load;
mod out;
mod prune;
mod remote;
mod resolve;
mod save;
mod tag;
mod views;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gocompat::template;

/// Default data root, beside Docker's own `/var/lib/docker`.
const DEFAULT_ROOT: &str = "/var/lib/ovl";

#[derive(Parser, Debug)]
#[command(
    name = "ovl",
    version,
    about = "Docker 20.10 overlay2 images and container root filesystems, without a daemon"
)]
struct Cli {
    /// The data root (a Docker 20.10 overlay2 data root).
    #[arg(long, global = true, env = "OVL_ROOT", default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load images from a docker-archive, OCI archive or OCI layout directory.
    Load(load::LoadArgs),
    /// Create a one-layer image from a root filesystem tarball, like `docker import`.
    Import(load::ImportArgs),
    /// List images.
    Images(image::ImagesArgs),
    /// Show the history of an image, like `docker history`.
    History(history::HistoryArgs),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Create a tag TARGET that refers to the image SOURCE, like `docker tag`.
    Tag(tag::TagArgs),
    /// Create a container (init and writable layers) and mount its root filesystem; prints its path.
    #[command(name = "run-rootfs")]
    RunRootfs(container::RunArgs),
    /// Write an OCI runtime bundle (config.json for runc or crun) of a container, mounting it.
    Bundle(container::BundleArgs),
    /// Write a container's root filesystem as a tar archive, like `docker export`.
    Export(container::ExportArgs),
    /// Mount existing containers' root filesystems; prints their paths.
    Mount(container::MountArgs),
    /// List containers.
    Ps(container::PsArgs),
    /// Unmount a container's root filesystem.
    #[command(visible_alias = "unmount")]
    Umount(container::UmountArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Show low-level information on containers and images as JSON.
    Inspect(inspect::InspectArgs),
    /// List the changes of a container's root filesystem, like `docker diff`.
    Diff(changes::DiffArgs),
    /// Create a new image from a container's changes, like `docker commit`.
    Commit(commit::CommitArgs),
    /// Show the storage driver's view of the data root and the kernel, like `docker info`.
    Info(info::InfoArgs),
    /// Check the data root against the format (and, with --verify-content, every layer's content).
    Fsck(fsck::FsckArgs),
    /// Download an image from a registry, like `docker pull`.
    Pull(remote::PullArgs),
    /// Upload an image to a registry, like `docker push`.
    Push(remote::PushArgs),
    /// Log in to a registry (credentials kept where docker keeps them).
    Login(remote::LoginArgs),
    /// Log out from a registry.
    Logout(remote::LogoutArgs),
    /// Write images to an archive (docker-archive, OCI archive or OCI layout), like `docker save`.
    Save(save::SaveArgs),
    /// Remove leftovers of interrupted operations, dangling images and unused layers.
    Prune(prune::PruneArgs),
    /// Manage the data root as a whole (`df`: disk usage, like `docker system df`).
    System(df::SystemArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
    /// Write the manual pages (`ovl.1` and one page per command) into a directory.
    #[command(hide = true)]
    ManPages(completion::ManPagesArgs),
}

fn main() -> ExitCode {
    // Before anything reads the limit (`syscompat::descriptor_limit`).
    syscompat::raise_descriptor_limit();
    // Loads and commits keep hundreds of descriptors open at once (layer-unpack's writers).
    syscompat::reserve_descriptors(1024);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    // A misspelt OVL_DISABLE_FEATURES is refused before any command starts work.
    if let Err(err) = kernel::disabled() {
        crate::out::errln!("ovl: {err}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        Command::Load(args) => load::load(&cli.root, args),
        Command::Import(args) => load::import(&cli.root, args),
        Command::Images(args) => image::images(&cli.root, args),
        Command::History(args) => history::history(&cli.root, args),
        Command::Rmi(args) => image::rmi(&cli.root, args),
        Command::Tag(args) => tag::tag(&cli.root, args),
        Command::RunRootfs(args) => container::run_rootfs(&cli.root, args),
        Command::Bundle(args) => container::bundle(&cli.root, args),
        Command::Export(args) => container::export(&cli.root, args),
        Command::Mount(args) => container::mount(&cli.root, args),
        Command::Ps(args) => container::ps(&cli.root, args),
        Command::Umount(args) => container::umount(&cli.root, args),
        Command::Rm(args) => container::rm(&cli.root, args),
        Command::Inspect(args) => inspect::inspect(&cli.root, args),
        Command::Diff(args) => changes::diff(&cli.root, args),
        Command::Commit(args) => commit::commit(&cli.root, args),
        Command::Save(args) => save::save(&cli.root, args),
        Command::Pull(args) => remote::pull(&cli.root, args),
        Command::Push(args) => remote::push(&cli.root, args),
        Command::Login(args) => remote::login(args),
        Command::Logout(args) => remote::logout(args),
        Command::Fsck(args) => fsck::fsck(&cli.root, args),
        Command::Prune(args) => prune::prune(&cli.root, args),
        Command::System(args) => df::system(&cli.root, args, cli.verbose > 0),
        Command::Info(args) => info::info(&cli.root, args),
        Command::Completion(args) => completion::completion(args),
        Command::ManPages(args) => completion::man_pages(args),
    };
    match result {
        Ok(()) => match out::stdout().flush() {
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                crate::out::errln!("ovl: writing output: {err}");
                ExitCode::from(1)
            }
            _ => ExitCode::SUCCESS,
        },
        Err(err) if out::is_stdout_closed(&err) => ExitCode::SUCCESS,
        Err(err) => {
            crate::out::errln!("ovl: {}", format::error_chain(&err));
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event callback's write to a closed stdout (`ovl rmi a:1 | true`) comes back inside
    /// `engine::Error::Event`, below the engine's context: `main` still sees it as a closed stdout,
    /// and any other error of the callback as an error.
    #[test]
    fn a_closed_stdout_in_an_event_callback_is_a_closed_stdout() {
        let in_engine = |event_error: engine::EventError| engine::Error::Image {
            op: "removing image",
            reference: "a:1".to_string(),
            source: Box::new(engine::Error::Event(event_error)),
        };
        let closed = std::io::Error::new(std::io::ErrorKind::BrokenPipe, out::StdoutClosed);
        let err = anyhow::Error::from(in_engine(Box::new(closed)));
        assert!(out::is_stdout_closed(&err));
        let other = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::from(in_engine(Box::new(other)));
        assert!(!out::is_stdout_closed(&err));
        assert_eq!(format::error_chain(&err), "removing image a:1: broken pipe");
    }
}
