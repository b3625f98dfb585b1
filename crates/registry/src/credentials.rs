//! Docker's client configuration, `$DOCKER_CONFIG/config.json` (default `~/.docker`): the
//! credentials of `auths` (base64 `user:password`), and `credsStore`/`credHelpers`, which hand
//! them to a `docker-credential-<name>` program, so that a `docker login` made on the machine
//! works for ovl and the other way round.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The directory of the client configuration: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".docker")
}

/// The key of a registry in `auths` and the server URL given to helpers: Docker Hub's legacy
/// URL for `docker.io`, else the host as written.
pub fn server_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// The host of an `auths` key as Docker's `ConvertToHostname` reads it (scheme and path
/// dropped).
fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// `config.json` as read, every key kept for writing back.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    value: Map<String, Value>,
}

impl DockerConfig {
    /// Reads `<dir>/config.json`; a missing file is an empty configuration.
    pub fn load(dir: &Path) -> Result<DockerConfig> {
        let path = dir.join("config.json");
        let value = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(Error::Config {
                        path,
                        message: "not a JSON object".to_string(),
                    })
                }
                Err(err) => {
                    return Err(Error::Config {
                        path,
                        message: err.to_string(),
                    })
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(Error::Io {
                    operation: "reading",
                    path,
                    source,
                })
            }
        };
        Ok(DockerConfig { path, value })
    }

    /// The file this configuration lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper for a registry: its `credHelpers` entry, else `credsStore`.
    fn helper(&self, key: &str) -> Option<String> {
        let from_helpers = self
            .value
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|helpers| helpers.get(key))
            .and_then(Value::as_str);
        from_helpers
            .or_else(|| self.value.get("credsStore").and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    }

    /// The credentials stored for `registry`, if any.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        let key = server_key(registry);
        if let Some(helper) = self.helper(&key) {
            return helper_get(&helper, &key);
        }
        let Some(auths) = self.value.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths
            .get(&key)
            .or_else(|| {
                auths
                    .iter()
                    .find(|(name, _)| key_host(name) == key_host(&key))
                    .map(|(_, entry)| entry)
            })
            .and_then(Value::as_object);
        let Some(entry) = entry else {
            return Ok(None);
        };
        if let Some(encoded) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Error::Config {
                    path: self.path.clone(),
                    message: format!("auths.{key}.auth is not base64 of user:password"),
                })?;
            let (username, password) = decoded.split_once(':').ok_or_else(|| Error::Config {
                path: self.path.clone(),
                message: format!("auths.{key}.auth is not base64 of user:password"),
            })?;
            return Ok(Some(Credentials {
                username: username.to_string(),
                password: password.trim_end_matches('\n').to_string(),
            }));
        }
        let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("");
        if !field("username").is_empty() {
            return Ok(Some(Credentials {
                username: field("username").to_string(),
                password: field("password").to_string(),
            }));
        }
        Ok(None)
    }

    /// Stores credentials for `registry` (in its helper, or in `auths`) and writes the file.
    pub fn store(&mut self, registry: &str, credentials: &Credentials) -> Result<()> {
        let key = server_key(registry);
        if let Some(helper) = self.helper(&key) {
            helper_store(&helper, &key, credentials)?;
            // Docker keeps an empty entry in auths so that the registry is listed.
            self.auths_mut().insert(key, Value::Object(Map::new()));
        } else {
            let pair = format!("{}:{}", credentials.username, credentials.password);
            let mut entry = Map::new();
            entry.insert(
                "auth".to_string(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(pair)),
            );
            self.auths_mut().insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Removes the credentials of `registry`; returns whether there were any.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let key = server_key(registry);
        if let Some(helper) = self.helper(&key) {
            helper_erase(&helper, &key)?;
        }
        let removed = self.auths_mut().remove(&key).is_some();
        self.save()?;
        Ok(removed)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let auths = self
            .value
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        match auths {
            Value::Object(map) => map,
            _ => unreachable!("replaced by an object above"),
        }
    }

    /// Writes the file as Docker does: tab-indented JSON, mode 0600, atomically; the
    /// directory is made 0700 when missing.
    fn save(&self) -> Result<()> {
        let io_error = |operation, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                operation,
                path,
                source,
            }
        };
        if let Some(dir) = self.path.parent() {
            if !dir.is_dir() {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_error("creating", dir))?;
            }
        }
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serde::Serialize::serialize(&self.value, &mut serializer).map_err(|err| Error::Config {
            path: self.path.clone(),
            message: err.to_string(),
        })?;
        syscompat::atomic::write_atomic(&self.path, &bytes, 0o600).map_err(|err| Error::Io {
            operation: err.step,
            path: err.path,
            source: err.source,
        })
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(bool, Vec<u8>)> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| Error::Helper {
        helper: helper.to_string(),
        message,
    };
    let mut command = Command::new(&program);
    command
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    syscompat::with_original_descriptor_limit(&mut command);
    let mut child = command
        .spawn()
        .map_err(|err| fail(format!("starting {program}: {err}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|err| fail(format!("writing to {program}: {err}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| fail(format!("waiting for {program}: {err}")))?;
    let mut text = output.stdout;
    if !output.status.success() {
        text.extend_from_slice(&output.stderr);
    }
    Ok((output.status.success(), text))
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>> {
    let (ok, output) = run_helper(helper, "get", key.as_bytes())?;
    let text = String::from_utf8_lossy(&output).trim().to_string();
    if !ok {
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Helper {
            helper: helper.to_string(),
            message: format!("get {key}: {text}"),
        });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(&text).map_err(|err| Error::Helper {
        helper: helper.to_string(),
        message: format!("get {key}: not JSON: {err}"),
    })?;
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

fn helper_store(helper: &str, key: &str, credentials: &Credentials) -> Result<()> {
    let input = serde_json::json!({
        "ServerURL": key,
        "Username": credentials.username,
        "Secret": credentials.password,
    });
    let (ok, output) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(Error::Helper {
            helper: helper.to_string(),
            message: format!("store {key}: {}", String::from_utf8_lossy(&output).trim()),
        })
    }
}

fn helper_erase(helper: &str, key: &str) -> Result<()> {
    let (ok, output) = run_helper(helper, "erase", key.as_bytes())?;
    let text = String::from_utf8_lossy(&output).trim().to_string();
    if ok || text.contains("credentials not found") {
        Ok(())
    } else {
        Err(Error::Helper {
            helper: helper.to_string(),
            message: format!("erase {key}: {text}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_round_trip_and_other_keys_survive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"psFormat":"table {{.ID}}","auths":{"https://127.0.0.1:5000/v2/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let mut config = DockerConfig::load(dir.path()).unwrap();
        let found = config.credentials("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("u", "p")
        );
        let credentials = Credentials {
            username: "me".to_string(),
            password: "se:cret".to_string(),
        };
        config.store("127.0.0.1:6000", &credentials).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(text.contains("\"psFormat\": \"table {{.ID}}\""), "{text}");
        assert!(text.contains("\t\"auths\": {"), "{text}");
        assert!(text.contains("\"auth\": \"bWU6c2U6Y3JldA==\""), "{text}");
        let again = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(
            again.credentials("127.0.0.1:6000").unwrap(),
            Some(credentials)
        );
        let mut again = again;
        assert!(again.erase("127.0.0.1:6000").unwrap());
        assert_eq!(again.credentials("127.0.0.1:6000").unwrap(), None);
        assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
    }

    #[test]
    fn a_helper_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let helper = bin.join("docker-credential-ovltest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = 127.0.0.1:7000 ]; then\n  echo '{\"ServerURL\":\"127.0.0.1:7000\",\"Username\":\"hu\",\"Secret\":\"hs\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"credHelpers":{"127.0.0.1:7000":"ovltest","127.0.0.1:7001":"ovltest"}}"#,
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // The helper is found on PATH; the test sets it for this process only.
        std::env::set_var("PATH", path);
        let config = DockerConfig::load(dir.path()).unwrap();
        let found = config.credentials("127.0.0.1:7000").unwrap().unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("hu", "hs")
        );
        assert_eq!(config.credentials("127.0.0.1:7001").unwrap(), None);
    }
}
