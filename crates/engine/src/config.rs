//! Docker's image and container configs as typed values, serialized as Docker 20.10 marshals
//! them: moby's `container.Config` in its struct order, `image.Image` with its top-level keys
//! sorted (moby marshals it through a map), Go's zero values for fields without `omitempty` and
//! no empty `omitempty` field. Map-valued fields are sorted as Go sorts map keys. Keys ovl does
//! not know are kept, after the known ones, in the order they came in. The bytes go through
//! `gocompat::json` (`store::go_json`): an image config's bytes are its id.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// moby's `container.Config` (api/types/container/config.go, v20.10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Hostname", default, deserialize_with = "null_as_default")]
    pub hostname: String,
    #[serde(rename = "Domainname", default, deserialize_with = "null_as_default")]
    pub domainname: String,
    #[serde(rename = "User", default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(rename = "AttachStdin", default, deserialize_with = "null_as_default")]
    pub attach_stdin: bool,
    #[serde(rename = "AttachStdout", default, deserialize_with = "null_as_default")]
    pub attach_stdout: bool,
    #[serde(rename = "AttachStderr", default, deserialize_with = "null_as_default")]
    pub attach_stderr: bool,
    /// `nat.PortSet`: `"80/tcp": {}`.
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "is_empty_map")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Tty", default, deserialize_with = "null_as_default")]
    pub tty: bool,
    #[serde(rename = "OpenStdin", default, deserialize_with = "null_as_default")]
    pub open_stdin: bool,
    #[serde(rename = "StdinOnce", default, deserialize_with = "null_as_default")]
    pub stdin_once: bool,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "HealthConfig::is_absent"
    )]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        rename = "ArgsEscaped",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    #[serde(rename = "Image", default, deserialize_with = "null_as_default")]
    pub image: String,
    /// `"/data": {}`.
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(rename = "WorkingDir", default, deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(
        rename = "NetworkDisabled",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub network_disabled: bool,
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    #[serde(rename = "OnBuild", default)]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Seconds; left out when zero, as ovl always has.
    #[serde(
        rename = "StopTimeout",
        default,
        skip_serializing_if = "is_zero_or_none"
    )]
    pub stop_timeout: Option<i64>,
    #[serde(rename = "Shell", default, skip_serializing_if = "is_empty_list")]
    pub shell: Option<Vec<String>>,
    /// Keys `container.Config` does not have, kept in their order after the known ones.
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// moby's `container.HealthConfig` (every field `omitempty`; durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test", default, skip_serializing_if = "is_empty_list")]
    pub test: Option<Vec<String>>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero_or_none")]
    pub interval: Option<i64>,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero_or_none")]
    pub timeout: Option<i64>,
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "is_zero_or_none"
    )]
    pub start_period: Option<i64>,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero_or_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl HealthConfig {
    /// A missing or empty (`{}`) health check is left out of a container config.
    fn is_absent(health: &Option<HealthConfig>) -> bool {
        health.as_ref().is_none_or(|health| {
            health.test.is_none()
                && health.interval.is_none()
                && health.timeout.is_none()
                && health.start_period.is_none()
                && health.retries.is_none()
                && health.unknown.is_empty()
        })
    }
}

impl ContainerConfig {
    /// Parses a config as Docker stores it (`config.v2.json`'s `Config`, an image's `config`);
    /// `null` is the zero config.
    pub fn from_value(value: &Value) -> serde_json::Result<ContainerConfig> {
        if value.is_null() {
            return Ok(ContainerConfig::default());
        }
        ContainerConfig::deserialize(value)
    }
}

/// moby's `image.Image` as `docker commit` and `docker import` write it (top-level keys sorted).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageConfig {
    pub architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub config: ContainerConfig,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
    pub container_config: ContainerConfig,
    pub created: String,
    pub docker_version: String,
    /// The parent's entries as they were written, then the new one.
    pub history: Vec<Value>,
    pub os: String,
    #[serde(rename = "os.features", skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Value>,
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<Value>,
    pub rootfs: RootFs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Value>,
}

/// moby's `image.RootFS`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff_ids: Vec<String>,
}

/// moby's `image.History`: one entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// What a commit takes from its parent image's config: the rest of it is not carried over.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParentImage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(rename = "os.features", default)]
    pub os_features: Option<Value>,
    #[serde(rename = "os.version", default)]
    pub os_version: Option<Value>,
    #[serde(default)]
    pub variant: Option<Value>,
    #[serde(default)]
    pub rootfs: Option<ParentRootFs>,
    /// Entries are carried over as they were written.
    #[serde(default, deserialize_with = "null_as_default")]
    pub history: Vec<Value>,
}

/// The parent's `rootfs`: only its DiffIDs matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParentRootFs {
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<String>,
}

/// An optional parent field (`variant`, `os.version`, `os.features`) carried over as Docker
/// does when it is a non-empty string or list.
pub fn carried_over(value: &Option<Value>) -> Option<Value> {
    match value {
        Some(Value::String(text)) if !text.is_empty() => value.clone(),
        Some(Value::Array(items)) if !items.is_empty() => value.clone(),
        _ => None,
    }
}

/// The architecture name Docker uses for the machine ovl runs on.
pub fn host_architecture() -> String {
    std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64")
}

/// The `docker_version` ovl writes into the configs it makes.
pub const DOCKER_VERSION: &str = concat!("ovl-", env!("CARGO_PKG_VERSION"));

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_zero_or_none(value: &Option<i64>) -> bool {
    value.is_none_or(|value| value == 0)
}

fn is_empty_list(value: &Option<Vec<String>>) -> bool {
    value.as_ref().is_none_or(Vec::is_empty)
}

fn is_empty_map<V>(value: &Option<BTreeMap<String, V>>) -> bool {
    value.as_ref().is_none_or(BTreeMap::is_empty)
}
