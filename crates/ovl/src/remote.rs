//! `ovl pull`, `ovl push`, `ovl login` and `ovl logout` (the work is `engine::pull`,
//! `engine::push` and `engine::remote`): progress on stdout as the docker client prints it
//! when stdout is not a terminal.

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use engine::remote::RegistryOptions;
use engine::Event;

/// How to reach registries, shared by pull, push and login.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// Docker's per-registry certificates: `<dir>/<host:port>/{ca.crt,client.cert,client.key}`.
    #[arg(long, env = "OVL_CERTS_D", default_value = "/etc/docker/certs.d")]
    certs_d: PathBuf,
    /// A registry (`host:port`) to reach over plain HTTP, like dockerd's
    /// `--insecure-registry`; loopback registries always are, unless they have a certs.d
    /// directory.
    #[arg(
        long = "insecure-registry",
        env = "OVL_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Blobs downloaded or uploaded at once (dockerd's `--max-concurrent-downloads`).
    #[arg(long, env = "OVL_MAX_CONCURRENT_DOWNLOADS", default_value_t = 3)]
    max_concurrent_downloads: usize,
}

impl RegistryArgs {
    fn options(&self) -> RegistryOptions {
        RegistryOptions {
            certs_d: self.certs_d.clone(),
            insecure_registries: self.insecure_registries.clone(),
            max_concurrent: self.max_concurrent_downloads.max(1),
            ..RegistryOptions::default()
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// `NAME[:TAG]` or `NAME@sha256:DIGEST`.
    reference: String,
    /// The platform to pull from a multi-platform image, `os/arch[/variant]`.
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image reference.
    #[arg(short, long)]
    quiet: bool,
    /// Refuse a layer whose uncompressed tar is larger than this (e.g. `100MiB`, `20G`).
    #[arg(long, env = "OVL_MAX_LAYER_SIZE", value_parser = crate::load::parse_size)]
    max_layer_size: Option<u64>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// `NAME[:TAG]` of a local image.
    reference: String,
    /// Print only the image reference.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The registry (`host[:port]`); Docker Hub when left out.
    server: Option<String>,
    #[arg(short, long)]
    username: Option<String>,
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`); Docker Hub when left out.
    server: Option<String>,
}

pub fn pull(root_path: &Path, args: &PullArgs) -> Result<()> {
    engine::interrupt::install()?;
    let options = engine::pull::PullOptions {
        platform: args.platform.clone(),
        registry: args.registry.options(),
        max_layer_size: args.max_layer_size,
    };
    let quiet = args.quiet;
    let last = args.reference.rsplit('/').next().unwrap_or(&args.reference);
    if !quiet && !last.contains(':') && !last.contains('@') {
        crate::out::outln!("Using default tag: latest");
    }
    let pulled = engine::pull::pull(root_path, &args.reference, &options, &mut |event| {
        if !quiet {
            show(&event)?;
        }
        Ok(())
    })?;
    if !quiet {
        crate::out::outln!("Digest: {}", pulled.digest);
        let status = if pulled.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        crate::out::outln!("Status: {status} {}", familiar(&pulled.reference));
    }
    crate::out::outln!("{}", pulled.reference);
    Ok(())
}

pub fn push(root_path: &Path, args: &PushArgs) -> Result<()> {
    let quiet = args.quiet;
    let pushed = engine::push::push(
        root_path,
        &args.reference,
        &args.registry.options(),
        &mut |event| {
            if !quiet {
                show(&event)?;
            }
            Ok(())
        },
    )?;
    if quiet {
        let named = store::Named::parse(&args.reference)?;
        crate::out::outln!("{}:{}", named.full_name(), pushed.tag);
    } else {
        crate::out::outln!(
            "{}: digest: {} size: {}",
            pushed.tag,
            pushed.digest,
            pushed.size
        );
    }
    Ok(())
}

pub fn login(args: &LoginArgs) -> Result<()> {
    let registry = engine::remote::registry_of(args.server.as_deref());
    let stdin = std::io::stdin();
    let username = match &args.username {
        Some(username) => username.clone(),
        None if stdin.is_terminal() && !args.password_stdin => {
            crate::out::err!("Username: ");
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("login to {registry}: a username is needed (-u USER)"),
    };
    if username.is_empty() {
        bail!("login to {registry}: the username is empty");
    }
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(password), false) => {
            crate::out::errln!(
                "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
            );
            password.clone()
        }
        (None, true) => {
            let mut text = String::new();
            stdin
                .lock()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if stdin.is_terminal() => prompt_password()?,
        (None, false) => {
            bail!("login to {registry}: a password is needed (--password-stdin, or -p PASSWORD)")
        }
    };
    if password.is_empty() {
        bail!("login to {registry}: the password is empty");
    }
    let credentials = registry::Credentials { username, password };
    let path = engine::remote::login(&args.registry.options(), &registry, &credentials)
        .with_context(|| format!("logging in to {registry}"))?;
    crate::out::errln!(
        "WARNING! Your password will be stored unencrypted in {} unless a credential helper is configured.",
        path.display()
    );
    crate::out::outln!("Login Succeeded");
    Ok(())
}

pub fn logout(args: &LogoutArgs) -> Result<()> {
    let registry = engine::remote::registry_of(args.server.as_deref());
    let options = RegistryOptions::default();
    if engine::remote::logout(&options, &registry)
        .with_context(|| format!("logging out of {registry}"))?
    {
        crate::out::outln!("Removing login credentials for {}", display_key(&registry));
    } else {
        crate::out::outln!("Not logged in to {}", display_key(&registry));
    }
    Ok(())
}

/// The name Docker prints for a registry's credentials (Docker Hub's legacy URL).
fn display_key(registry: &str) -> String {
    registry::credentials::server_key(registry)
}

/// Reads a password from the terminal without echo.
fn prompt_password() -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    crate::out::err!("Password: ");
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    crate::out::errln!("");
    read.context("reading the password")?;
    restored.context("restoring the terminal settings")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The reference in the familiar form `Status:` uses (`docker.io/library/` dropped).
fn familiar(reference: &str) -> String {
    let short = reference.strip_prefix("docker.io/").unwrap_or(reference);
    short.strip_prefix("library/").unwrap_or(short).to_string()
}

/// One progress line of a pull or push.
fn show(event: &Event) -> std::io::Result<()> {
    match event {
        Event::PullingFrom { tag, repository } => {
            crate::out::outln!("{tag}: Pulling from {repository}");
        }
        Event::PushRefersTo { repository } => {
            crate::out::outln!("The push refers to repository [{repository}]");
        }
        Event::LayerStatus { id, status } => crate::out::outln!("{id}: {status}"),
        _ => {}
    }
    Ok(())
}
