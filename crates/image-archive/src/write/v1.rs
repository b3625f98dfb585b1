//! The legacy v1 image JSON of a docker-archive and the v1 ids that name its layer directories
//! (format.md §11.1), computed as Docker 20.10 computes them.
//!
//! Docker reads the image config into its Go structs (`image.Image` embedding `image.V1Image`,
//! `container.Config`) and marshals those structs again; what ends up in a layer's `json` and in
//! the hash behind its v1 id is that re-encoding, not the config's own bytes. This module redoes it
//! with Go's rules: keys matched to fields exactly or else ignoring ASCII case (the last matching key
//! wins), fields written in declaration order with their `omitempty` rules, map keys sorted,
//! times written back with `RFC3339Nano` in the offset they were read with.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::digest::format_sha256;
use gocompat::time::GoTime;

/// The fields of Docker's `image.V1Image` that an image config fills, decoded with Go's rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct V1Image {
    pub(crate) comment: String,
    pub(crate) created: GoTime,
    pub(crate) container: String,
    pub(crate) container_config: ContainerConfig,
    pub(crate) docker_version: String,
    pub(crate) author: String,
    pub(crate) config: Option<ContainerConfig>,
    pub(crate) architecture: String,
    pub(crate) variant: String,
    pub(crate) os: String,
    pub(crate) size: i64,
}

impl V1Image {
    /// The stand-in Docker saves for every layer but the top one: created at the epoch, a zero
    /// container config, nothing else.
    pub(crate) fn below_top() -> V1Image {
        V1Image {
            comment: String::new(),
            created: GoTime::EPOCH,
            container: String::new(),
            container_config: ContainerConfig::default(),
            docker_version: String::new(),
            author: String::new(),
            config: None,
            architecture: String::new(),
            variant: String::new(),
            os: String::new(),
            size: 0,
        }
    }

    /// Decodes the V1 fields of an image config as Go's `json.Unmarshal` into `image.Image`
    /// would. A value of the wrong type is an error, as it is for Docker (which then cannot load
    /// the image at all).
    pub(crate) fn from_config(config: &[u8]) -> Result<V1Image, String> {
        let value: Value =
            serde_json::from_slice(config).map_err(|err| format!("invalid json: {err}"))?;
        let Value::Object(object) = value else {
            return Err("not a json object".to_string());
        };
        // Every field of `image.Image` after Go's embedding rules: `parent`, `rootfs`, `history`,
        // `os.version` and `os.features` belong to `Image` itself (its `parent` hides the one of
        // `V1Image`); `id` is replaced by the computed v1 id. Listing them keeps their keys
        // from matching another field ignoring case.
        const FIELDS: [&str; 17] = [
            "id",
            "comment",
            "created",
            "container",
            "container_config",
            "docker_version",
            "author",
            "config",
            "architecture",
            "variant",
            "os",
            "Size",
            "parent",
            "rootfs",
            "history",
            "os.version",
            "os.features",
        ];
        let [_, comment, created, container, container_config, docker_version, author, config, architecture, variant, os, size, ..] =
            go_fields(&object, &FIELDS);
        let created = match created {
            None | Some(Value::Null) => GoTime::ZERO,
            Some(Value::String(text)) => GoTime::parse_rfc3339(text)
                .ok_or_else(|| format!("created: {text:?} is not an RFC 3339 time"))?,
            Some(_) => return Err("created: not a string".to_string()),
        };
        Ok(V1Image {
            comment: go_string("comment", comment)?,
            created,
            container: go_string("container", container)?,
            container_config: match container_config {
                None | Some(Value::Null) => ContainerConfig::default(),
                Some(value) => ContainerConfig::decode("container_config", value)?,
            },
            docker_version: go_string("docker_version", docker_version)?,
            author: go_string("author", author)?,
            config: match config {
                None | Some(Value::Null) => None,
                Some(value) => Some(ContainerConfig::decode("config", value)?),
            },
            architecture: go_string("architecture", architecture)?,
            variant: go_string("variant", variant)?,
            os: go_string("os", os)?,
            size: go_int("Size", size)?.unwrap_or(0),
        })
    }

    /// The struct as Go's `json.Marshal` writes it, in declaration order: `id, parent?, comment?,
    /// created, container?, container_config, docker_version?, author?, config?, architecture?,
    /// variant?, os?, Size?`.
    fn to_map(&self, id: &str, parent: &str) -> Map<String, Value> {
        let mut object = Map::new();
        let optional = |object: &mut Map<String, Value>, key: &str, text: &str| {
            if !text.is_empty() {
                object.insert(key.to_string(), Value::String(text.to_string()));
            }
        };
        optional(&mut object, "id", id);
        optional(&mut object, "parent", parent);
        optional(&mut object, "comment", &self.comment);
        object.insert(
            "created".to_string(),
            Value::String(self.created.to_rfc3339_nano()),
        );
        optional(&mut object, "container", &self.container);
        object.insert(
            "container_config".to_string(),
            self.container_config.to_value(),
        );
        optional(&mut object, "docker_version", &self.docker_version);
        optional(&mut object, "author", &self.author);
        if let Some(config) = &self.config {
            object.insert("config".to_string(), config.to_value());
        }
        optional(&mut object, "architecture", &self.architecture);
        optional(&mut object, "variant", &self.variant);
        optional(&mut object, "os", &self.os);
        if self.size != 0 {
            object.insert("Size".to_string(), Value::from(self.size));
        }
        object
    }

    /// The bytes of a layer's `json` member: the struct with its v1 id (hex) and its parent's
    /// (hex, empty for the bottom layer).
    pub(crate) fn json_bytes(&self, id_hex: &str, parent_hex: &str) -> serde_json::Result<Vec<u8>> {
        gocompat::json::to_vec(&self.to_map(id_hex, parent_hex))
    }

    /// Docker's `v1.CreateID`: the struct without id and parent, turned into a map with
    /// `layer_id` (the ChainID) and, above the bottom, `parent` (the previous v1 id as a digest)
    /// added, marshalled with sorted keys and hashed. Returns the hex.
    pub(crate) fn v1_id(
        &self,
        chain_id: &str,
        parent_digest: Option<&str>,
    ) -> serde_json::Result<String> {
        let mut sorted: BTreeMap<String, Value> = self.to_map("", "").into_iter().collect();
        sorted.insert("layer_id".to_string(), Value::String(chain_id.to_string()));
        if let Some(parent) = parent_digest {
            sorted.insert("parent".to_string(), Value::String(parent.to_string()));
        }
        let bytes = gocompat::json::to_vec(&sorted)?;
        let digest = format_sha256(&Sha256::digest(&bytes));
        Ok(digest.trim_start_matches("sha256:").to_string())
    }
}

/// Docker 20.10's `container.Config`, decoded with Go's rules. `None` is Go's nil (written as
/// `null` or left out, per field).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContainerConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<Vec<String>>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    healthcheck: Option<HealthConfig>,
    args_escaped: bool,
    image: String,
    volumes: Option<Vec<String>>,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    network_disabled: bool,
    mac_address: String,
    on_build: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: String,
    stop_timeout: Option<i64>,
    shell: Option<Vec<String>>,
}

/// The field names of `container.Config` in declaration order.
const CONTAINER_CONFIG_FIELDS: [&str; 25] = [
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

impl ContainerConfig {
    fn decode(what: &str, value: &Value) -> Result<ContainerConfig, String> {
        let Value::Object(object) = value else {
            return Err(format!("{what}: not a json object"));
        };
        let field = |name: &str| format!("{what}.{name}");
        let [hostname, domainname, user, attach_stdin, attach_stdout, attach_stderr, exposed_ports, tty, open_stdin, stdin_once, env, cmd, healthcheck, args_escaped, image, volumes, working_dir, entrypoint, network_disabled, mac_address, on_build, labels, stop_signal, stop_timeout, shell] =
            go_fields(object, &CONTAINER_CONFIG_FIELDS);
        Ok(ContainerConfig {
            hostname: go_string(&field("Hostname"), hostname)?,
            domainname: go_string(&field("Domainname"), domainname)?,
            user: go_string(&field("User"), user)?,
            attach_stdin: go_bool(&field("AttachStdin"), attach_stdin)?,
            attach_stdout: go_bool(&field("AttachStdout"), attach_stdout)?,
            attach_stderr: go_bool(&field("AttachStderr"), attach_stderr)?,
            exposed_ports: go_set(&field("ExposedPorts"), exposed_ports)?,
            tty: go_bool(&field("Tty"), tty)?,
            open_stdin: go_bool(&field("OpenStdin"), open_stdin)?,
            stdin_once: go_bool(&field("StdinOnce"), stdin_once)?,
            env: go_strings(&field("Env"), env)?,
            cmd: go_str_slice(&field("Cmd"), cmd)?,
            healthcheck: match healthcheck {
                None | Some(Value::Null) => None,
                Some(value) => Some(HealthConfig::decode(&field("Healthcheck"), value)?),
            },
            args_escaped: go_bool(&field("ArgsEscaped"), args_escaped)?,
            image: go_string(&field("Image"), image)?,
            volumes: go_set(&field("Volumes"), volumes)?,
            working_dir: go_string(&field("WorkingDir"), working_dir)?,
            entrypoint: go_str_slice(&field("Entrypoint"), entrypoint)?,
            network_disabled: go_bool(&field("NetworkDisabled"), network_disabled)?,
            mac_address: go_string(&field("MacAddress"), mac_address)?,
            on_build: go_strings(&field("OnBuild"), on_build)?,
            labels: go_string_map(&field("Labels"), labels)?,
            stop_signal: go_string(&field("StopSignal"), stop_signal)?,
            stop_timeout: go_int(&field("StopTimeout"), stop_timeout)?,
            shell: go_str_slice(&field("Shell"), shell)?,
        })
    }

    /// The struct as Go marshals it (`omitempty` on ExposedPorts, Healthcheck, ArgsEscaped,
    /// NetworkDisabled, MacAddress, StopSignal, StopTimeout and Shell).
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_string(), value);
        };
        put("Hostname", Value::from(self.hostname.as_str()));
        put("Domainname", Value::from(self.domainname.as_str()));
        put("User", Value::from(self.user.as_str()));
        put("AttachStdin", Value::Bool(self.attach_stdin));
        put("AttachStdout", Value::Bool(self.attach_stdout));
        put("AttachStderr", Value::Bool(self.attach_stderr));
        if let Some(ports) = self.exposed_ports.as_ref().filter(|p| !p.is_empty()) {
            put("ExposedPorts", set_value(ports));
        }
        put("Tty", Value::Bool(self.tty));
        put("OpenStdin", Value::Bool(self.open_stdin));
        put("StdinOnce", Value::Bool(self.stdin_once));
        put("Env", strings_value(self.env.as_deref()));
        put("Cmd", strings_value(self.cmd.as_deref()));
        if let Some(healthcheck) = &self.healthcheck {
            put("Healthcheck", healthcheck.to_value());
        }
        if self.args_escaped {
            put("ArgsEscaped", Value::Bool(true));
        }
        put("Image", Value::from(self.image.as_str()));
        put(
            "Volumes",
            self.volumes.as_deref().map_or(Value::Null, set_value),
        );
        put("WorkingDir", Value::from(self.working_dir.as_str()));
        put("Entrypoint", strings_value(self.entrypoint.as_deref()));
        if self.network_disabled {
            put("NetworkDisabled", Value::Bool(true));
        }
        if !self.mac_address.is_empty() {
            put("MacAddress", Value::from(self.mac_address.as_str()));
        }
        put("OnBuild", strings_value(self.on_build.as_deref()));
        put(
            "Labels",
            self.labels.as_ref().map_or(Value::Null, |labels| {
                Value::Object(
                    labels
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                        .collect(),
                )
            }),
        );
        if !self.stop_signal.is_empty() {
            put("StopSignal", Value::from(self.stop_signal.as_str()));
        }
        if let Some(timeout) = self.stop_timeout {
            put("StopTimeout", Value::from(timeout));
        }
        if let Some(shell) = self.shell.as_deref().filter(|s| !s.is_empty()) {
            put("Shell", strings_value(Some(shell)));
        }
        Value::Object(object)
    }
}

/// Docker 20.10's `container.HealthConfig`; every field `omitempty`, durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq)]
struct HealthConfig {
    test: Option<Vec<String>>,
    interval: i64,
    timeout: i64,
    start_period: i64,
    retries: i64,
}

impl HealthConfig {
    fn decode(what: &str, value: &Value) -> Result<HealthConfig, String> {
        let Value::Object(object) = value else {
            return Err(format!("{what}: not a json object"));
        };
        let field = |name: &str| format!("{what}.{name}");
        let [test, interval, timeout, start_period, retries] = go_fields(
            object,
            &["Test", "Interval", "Timeout", "StartPeriod", "Retries"],
        );
        Ok(HealthConfig {
            test: go_strings(&field("Test"), test)?,
            interval: go_int(&field("Interval"), interval)?.unwrap_or(0),
            timeout: go_int(&field("Timeout"), timeout)?.unwrap_or(0),
            start_period: go_int(&field("StartPeriod"), start_period)?.unwrap_or(0),
            retries: go_int(&field("Retries"), retries)?.unwrap_or(0),
        })
    }

    fn to_value(&self) -> Value {
        let mut object = Map::new();
        if let Some(test) = self.test.as_deref().filter(|t| !t.is_empty()) {
            object.insert("Test".to_string(), strings_value(Some(test)));
        }
        for (key, value) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("Retries", self.retries),
        ] {
            if value != 0 {
                object.insert(key.to_string(), Value::from(value));
            }
        }
        Value::Object(object)
    }
}

/// The value Go's decoder stores in each of `fields` (struct field names in declaration order):
/// for every key of `object` in document order, the field of the same name, or else the first
/// whose name equals it ignoring ASCII case; a later key overwrites an earlier one.
fn go_fields<'v, const N: usize>(
    object: &'v Map<String, Value>,
    fields: &[&str; N],
) -> [Option<&'v Value>; N] {
    let mut found = [None; N];
    for (key, value) in object {
        let idx = fields.iter().position(|name| name == key).or_else(|| {
            fields
                .iter()
                .position(|name| name.eq_ignore_ascii_case(key))
        });
        if let Some(idx) = idx {
            found[idx] = Some(value);
        }
    }
    found
}

fn go_string(what: &str, value: Option<&Value>) -> Result<String, String> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(format!("{what}: not a string")),
    }
}

fn go_bool(what: &str, value: Option<&Value>) -> Result<bool, String> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(format!("{what}: not a boolean")),
    }
}

/// An integer field; `None` when absent or null. Like Go, a number with a fraction or exponent is
/// refused.
fn go_int(what: &str, value: Option<&Value>) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{what}: {number} is not a 64-bit integer")),
        Some(_) => Err(format!("{what}: not a number")),
    }
}

/// A `[]string`: null elements decode to empty strings, as in Go.
fn go_strings(what: &str, value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Null => Ok(String::new()),
                _ => Err(format!("{what}: an element is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{what}: not an array")),
    }
}

/// A `strslice.StrSlice`: an array of strings, or a single string taken as a one-element array.
fn go_str_slice(what: &str, value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    match value {
        Some(Value::String(text)) => Ok(Some(vec![text.clone()])),
        other => go_strings(what, other),
    }
}

/// A `map[string]struct{}` (ports, volumes): the keys, sorted; each value must be an object.
fn go_set(what: &str, value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => {
            if object
                .values()
                .any(|v| !matches!(v, Value::Object(_) | Value::Null))
            {
                return Err(format!("{what}: a value is not an object"));
            }
            let mut keys: Vec<String> = object.keys().cloned().collect();
            keys.sort();
            Ok(Some(keys))
        }
        Some(_) => Err(format!("{what}: not an object")),
    }
}

/// A `map[string]string`: null values decode to empty strings.
fn go_string_map(
    what: &str,
    value: Option<&Value>,
) -> Result<Option<BTreeMap<String, String>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => object
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Null => Ok((key.clone(), String::new())),
                _ => Err(format!("{what}: value of {key:?} is not a string")),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some),
        Some(_) => Err(format!("{what}: not an object")),
    }
}

fn strings_value(items: Option<&[String]>) -> Value {
    items.map_or(Value::Null, |items| {
        Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
    })
}

/// A sorted `map[string]struct{}` as Go writes it: `{"key":{},…}`.
fn set_value(keys: &[String]) -> Value {
    Value::Object(
        keys.iter()
            .map(|key| (key.clone(), Value::Object(Map::new())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zero container config exactly as Docker 20.10 writes it into every `json` member below
    /// an image's top layer (copied from a `docker save` archive).
    const DOCKER_ZERO_CONTAINER_CONFIG: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;

    #[test]
    fn zero_container_config_matches_docker() {
        let bytes = gocompat::json::to_vec(&ContainerConfig::default().to_value()).expect("encode");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            DOCKER_ZERO_CONTAINER_CONFIG
        );
    }

    #[test]
    fn fields_match_exactly_first_then_ignoring_case_and_the_last_key_wins() {
        let object: Map<String, Value> =
            serde_json::from_str(r#"{"COMMENT":"a","comment":"b","Os":"c","os":"d","OS":"e"}"#)
                .expect("json");
        let [comment, os] = go_fields(&object, &["comment", "os"]);
        assert_eq!(comment, Some(&Value::from("b")));
        assert_eq!(os, Some(&Value::from("e")));
    }

    /// Reads `name` members of a `docker save` fixture into a map.
    fn fixture_members(fixture: &str) -> BTreeMap<String, Vec<u8>> {
        use std::io::Read as _;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(fixture);
        let file = std::fs::File::open(&path).expect("fixture");
        let mut archive = tar::Archive::new(file);
        let mut members = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("data");
            members.insert(name, data);
        }
        members
    }

    /// The v1 ids and `json` members of single-image archives Docker 20.10 wrote, recomputed
    /// from their configs: one built by Docker with every Dockerfile config field, one with a
    /// hand-written config (mixed-case keys, `Cmd` as a string, a `+02:00` time, `Size`).
    #[test]
    fn v1_ids_and_json_match_docker_save() {
        for fixture in ["docker-save-rich.tar", "docker-save-foreign.tar"] {
            let members = fixture_members(fixture);
            let manifest: Value =
                serde_json::from_slice(&members["manifest.json"]).expect("manifest");
            let config_name = manifest[0]["Config"].as_str().expect("Config");
            let config = &members[config_name];
            let diff_ids: Vec<String> = serde_json::from_slice::<Value>(config).expect("config")
                ["rootfs"]["diff_ids"]
                .as_array()
                .expect("diff_ids")
                .iter()
                .map(|d| d.as_str().expect("diff id").to_string())
                .collect();
            let diff_id_refs: Vec<&str> = diff_ids.iter().map(String::as_str).collect();
            let chain_ids = super::super::chain_ids(&diff_id_refs);
            let top = V1Image::from_config(config).expect("decodes");
            let layers = manifest[0]["Layers"].as_array().expect("Layers");
            let mut parent: Option<String> = None;
            for (idx, layer) in layers.iter().enumerate() {
                let expected_id = layer
                    .as_str()
                    .expect("layer")
                    .trim_end_matches("/layer.tar");
                let mut legacy = if idx + 1 == layers.len() {
                    top.clone()
                } else {
                    V1Image::below_top()
                };
                let parent_digest = parent.as_ref().map(|p| format!("sha256:{p}"));
                let id = legacy
                    .v1_id(&chain_ids[idx], parent_digest.as_deref())
                    .expect("v1 id");
                assert_eq!(id, expected_id, "{fixture}: v1 id of layer {idx}");
                legacy.os = top.os.clone();
                let json = legacy
                    .json_bytes(&id, parent.as_deref().unwrap_or(""))
                    .expect("json");
                assert_eq!(
                    String::from_utf8_lossy(&json),
                    String::from_utf8_lossy(&members[&format!("{id}/json")]),
                    "{fixture}: json of layer {idx}"
                );
                parent = Some(id);
            }
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = V1Image::from_config(br#"{"config":{"Env":"x"}}"#).expect_err("bad Env");
        assert_eq!(err, "config.Env: not an array");
        let err = V1Image::from_config(br#"{"created":"now"}"#).expect_err("bad created");
        assert!(err.starts_with("created:"), "{err}");
        let err = V1Image::from_config(br#"{"Size":1.5}"#).expect_err("bad Size");
        assert!(err.starts_with("Size:"), "{err}");
    }
}
