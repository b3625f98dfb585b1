//! What pull, push and login share: how to reach a registry (certificates, insecure
//! registries, credentials from Docker's client configuration), and `login`/`logout`.

use std::path::PathBuf;

use registry::credentials::{self, DockerConfig};
use registry::{Client, ClientOptions, Credentials};

use crate::error::Result;

/// How ovl reaches registries: Docker's defaults, each replaceable.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Docker's per-registry certificate directories (`/etc/docker/certs.d`).
    pub certs_d: PathBuf,
    /// Registries reached over plain HTTP besides loopback ones (dockerd's
    /// `--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// The client configuration directory (`$DOCKER_CONFIG`, `~/.docker`).
    pub config_dir: PathBuf,
    /// Blobs downloaded or uploaded at once (dockerd's `--max-concurrent-downloads`, 3).
    pub max_concurrent: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            certs_d: PathBuf::from("/etc/docker/certs.d"),
            insecure_registries: Vec::new(),
            config_dir: credentials::config_dir(),
            max_concurrent: 3,
        }
    }
}

impl RegistryOptions {
    /// A client of `registry` with the credentials stored for it.
    pub fn client(&self, registry: &str) -> Result<Client> {
        let config = DockerConfig::load(&self.config_dir)?;
        let credentials = config.credentials(registry)?;
        self.client_with(registry, credentials)
    }

    fn client_with(&self, registry: &str, credentials: Option<Credentials>) -> Result<Client> {
        let options = ClientOptions {
            certs_d: self.certs_d.clone(),
            insecure_registries: self.insecure_registries.clone(),
            credentials,
            ..ClientOptions::default()
        };
        Ok(Client::new(registry, &options)?)
    }
}

/// The registry a `login`/`logout` argument names: a host, or a URL whose host is taken; none
/// means Docker Hub.
pub fn registry_of(server: Option<&str>) -> String {
    let Some(server) = server.filter(|s| !s.is_empty()) else {
        return "docker.io".to_string();
    };
    let host = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// Checks the credentials against the registry and stores them where Docker keeps them;
/// returns the file written.
pub fn login(
    options: &RegistryOptions,
    registry: &str,
    credentials: &Credentials,
) -> Result<PathBuf> {
    let client = options.client_with(registry, Some(credentials.clone()))?;
    client.check_login()?;
    let mut config = DockerConfig::load(&options.config_dir)?;
    config.store(registry, credentials)?;
    Ok(config.path().to_path_buf())
}

/// Removes the stored credentials of a registry; returns whether there were any.
pub fn logout(options: &RegistryOptions, registry: &str) -> Result<bool> {
    let mut config = DockerConfig::load(&options.config_dir)?;
    Ok(config.erase(registry)?)
}
