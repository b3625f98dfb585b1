//! The Dockerfile instructions `docker commit --change` accepts, applied to a container config
//! (Docker's `container.Config`), with the classic builder's rules:
//! shell-form CMD/ENTRYPOINT run through the config's `Shell` (default `/bin/sh -c`), ENTRYPOINT
//! resets CMD unless a CMD came before it in the same set of changes, ENV/LABEL/WORKDIR/USER/
//! EXPOSE/VOLUME/STOPSIGNAL words are expanded with the environment as it was before the
//! instruction, WORKDIR is relative to the current one.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use serde_json::{Map, Value};

use crate::config::ContainerConfig;

/// Applies `changes` (each one or more Dockerfile lines) to `config` in order.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        for line in change.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            apply_line(config, line, &mut cmd_set).map_err(|err| Error::Change {
                line: line.to_string(),
                source: Box::new(err),
            })?;
        }
    }
    Ok(())
}

fn apply_line(config: &mut ContainerConfig, line: &str, cmd_set: &mut bool) -> Result<()> {
    let (keyword, rest) = match line.split_once(char::is_whitespace) {
        Some((keyword, rest)) => (keyword, rest.trim()),
        None => (line, ""),
    };
    let env = config.env.clone().unwrap_or_default();
    match keyword.to_ascii_lowercase().as_str() {
        "cmd" => {
            let command = command_line(config, rest)?;
            config.cmd = Some(command);
            *cmd_set = true;
        }
        "entrypoint" => {
            let command = command_line(config, rest)?;
            config.entrypoint = Some(command);
            if !*cmd_set {
                config.cmd = None;
            }
        }
        "env" => {
            let mut current = env.clone();
            for (key, value) in name_values(rest, &env, "ENV")? {
                let entry = format!("{key}={value}");
                match current
                    .iter_mut()
                    .find(|item| item.split('=').next() == Some(key.as_str()))
                {
                    Some(existing) => *existing = entry,
                    None => current.push(entry),
                }
            }
            config.env = Some(current);
        }
        "label" => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (key, value) in name_values(rest, &env, "LABEL")? {
                labels.insert(key, value);
            }
        }
        "workdir" => {
            let requested = expand_word(rest, &env)?;
            if requested.is_empty() {
                return Err(Error::invalid("WORKDIR requires exactly one argument"));
            }
            let current = config.working_dir.clone();
            let dir = if requested.starts_with('/') {
                requested
            } else {
                clean_path(&format!("/{current}/{requested}"))
            };
            config.working_dir = dir;
        }
        "user" => {
            let user = expand_word(rest, &env)?;
            if user.is_empty() {
                return Err(Error::invalid("USER requires exactly one argument"));
            }
            config.user = user;
        }
        "expose" => {
            let mut ports = config.exposed_ports.clone().unwrap_or_default();
            let words = split_words(rest);
            if words.is_empty() {
                return Err(Error::invalid("EXPOSE requires at least one argument"));
            }
            for word in words {
                for port in port_specs(&expand_word(&word, &env)?)? {
                    ports.insert(port, Value::Object(Map::new()));
                }
            }
            config.exposed_ports = Some(ports);
        }
        "volume" => {
            let mut volumes = config.volumes.clone().unwrap_or_default();
            let words = match json_array(rest) {
                Some(items) => items,
                None => split_words(rest),
            };
            if words.is_empty() {
                return Err(Error::invalid("VOLUME requires at least one argument"));
            }
            for word in words {
                let volume = expand_word(&word, &env)?;
                if volume.trim().is_empty() {
                    return Err(Error::invalid(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                volumes.insert(volume.trim().to_string(), Value::Object(Map::new()));
            }
            config.volumes = Some(volumes);
        }
        "stopsignal" => {
            let signal = expand_word(rest, &env)?;
            check_signal(&signal)?;
            config.stop_signal = signal;
        }
        "onbuild" => {
            let trigger = rest.trim();
            let first = trigger.split_whitespace().next().unwrap_or("");
            match first.to_ascii_uppercase().as_str() {
                "" => return Err(Error::invalid("ONBUILD requires at least one argument")),
                "ONBUILD" => {
                    return Err(Error::invalid(
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(Error::invalid(format!(
                        "{first} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.to_string());
        }
        _ => {
            return Err(Error::invalid(format!(
                "{} is not a valid change command",
                keyword.to_ascii_lowercase()
            )))
        }
    }
    Ok(())
}

/// CMD and ENTRYPOINT arguments: a JSON array of strings (exec form) as it is, anything else
/// (shell form) after the config's shell.
fn command_line(config: &ContainerConfig, rest: &str) -> Result<Vec<String>> {
    if let Some(items) = json_array(rest) {
        return Ok(items);
    }
    let mut shell = config.shell.clone().unwrap_or_default();
    if shell.is_empty() {
        shell = vec!["/bin/sh".into(), "-c".into()];
    }
    shell.push(rest.to_string());
    Ok(shell)
}

fn json_array(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

fn name_values(rest: &str, env: &[String], instruction: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest);
    let Some(first) = words.first() else {
        return Err(Error::invalid(format!(
            "{instruction} requires at least one argument"
        )));
    };
    if !first.contains('=') {
        let Some((key, value)) = rest.split_once(char::is_whitespace) else {
            return Err(Error::invalid(format!(
                "{instruction} must have two arguments"
            )));
        };
        return Ok(vec![(
            expand_word(key, env)?,
            expand_word(value.trim(), env)?,
        )]);
    }
    let mut pairs = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Error::invalid(format!(
                "syntax error - can't find = in {word:?}. Must be of the form: name=value"
            )));
        };
        if key.is_empty() {
            return Err(Error::invalid(format!(
                "{instruction} names can not be blank"
            )));
        }
        pairs.push((expand_word(key, env)?, expand_word(value, env)?));
    }
    Ok(pairs)
}

/// Splits on unquoted, unescaped whitespace, keeping quotes and escapes in the words.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (None | Some('"'), '\\') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Quote removal, backslash escapes and `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`
/// expansion (not inside single quotes), as the Dockerfile shell lexer does.
fn expand_word(word: &str, env: &[String]) -> Result<String> {
    let lookup = |name: &str| -> Option<String> {
        env.iter().rev().find_map(|item| {
            item.strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_string)
        })
    };
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut idx = 0;
    let mut in_double = false;
    while idx < chars.len() {
        let c = chars[idx];
        match c {
            '\'' if !in_double => {
                let end = chars[idx + 1..]
                    .iter()
                    .position(|&q| q == '\'')
                    .ok_or_else(|| Error::invalid(format!("unexpected end of statement while looking for matching single-quote in {word:?}")))?;
                out.extend(&chars[idx + 1..idx + 1 + end]);
                idx += end + 2;
                continue;
            }
            '"' => in_double = !in_double,
            '\\' => {
                if let Some(&next) = chars.get(idx + 1) {
                    if in_double && !matches!(next, '"' | '\\' | '$') {
                        out.push('\\');
                    }
                    out.push(next);
                    idx += 2;
                    continue;
                }
                out.push('\\');
            }
            '$' => {
                let (text, consumed) = expand_variable(&chars[idx + 1..], &lookup, word)?;
                out.push_str(&text);
                idx += 1 + consumed;
                continue;
            }
            _ => out.push(c),
        }
        idx += 1;
    }
    if in_double {
        return Err(Error::invalid(format!(
            "unexpected end of statement while looking for matching double-quote in {word:?}"
        )));
    }
    Ok(out)
}

fn expand_variable(
    rest: &[char],
    lookup: &dyn Fn(&str) -> Option<String>,
    word: &str,
) -> Result<(String, usize)> {
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    if rest.first() == Some(&'{') {
        let end = rest
            .iter()
            .position(|&c| c == '}')
            .ok_or_else(|| Error::invalid(format!("missing '}}' in {word:?}")))?;
        let inner: String = rest[1..end].iter().collect();
        let value = if let Some((name, default)) = inner.split_once(":-") {
            lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        } else if let Some((name, alternative)) = inner.split_once(":+") {
            if lookup(name).is_some_and(|v| !v.is_empty()) {
                alternative.to_string()
            } else {
                String::new()
            }
        } else {
            lookup(&inner).unwrap_or_default()
        };
        return Ok((value, end + 1));
    }
    let n_name = rest.iter().take_while(|c| is_name(c)).count();
    if n_name == 0 {
        return Ok(("$".to_string(), 0));
    }
    let name: String = rest[..n_name].iter().collect();
    Ok((lookup(&name).unwrap_or_default(), n_name))
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, … as Docker's nat.ParsePortSpecs does for EXPOSE.
fn port_specs(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::invalid(format!("invalid proto: {proto}")));
    }
    let parse = |text: &str| -> Result<u16> {
        text.parse::<u16>().map_err(|source| Error::InvalidNumber {
            message: format!("invalid containerPort: {spec}"),
            source,
        })
    };
    let (start, end) = match ports.split_once('-') {
        Some((start, end)) => (parse(start)?, parse(end)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if end < start {
        return Err(Error::invalid(format!(
            "invalid range specified for the containerPort: {spec}"
        )));
    }
    Ok((start..=end)
        .map(|port| format!("{port}/{proto}"))
        .collect())
}

/// A signal name (`SIGTERM`, `TERM`) or number, as STOPSIGNAL accepts.
fn check_signal(signal: &str) -> Result<()> {
    if let Ok(number) = signal.parse::<i32>() {
        if (1..=64).contains(&number) {
            return Ok(());
        }
        return Err(Error::invalid(format!("invalid signal: {signal}")));
    }
    let name = signal.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: [&str; 34] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    if NAMES.contains(&name)
        || name == "XFSZ"
        || name.starts_with("RTMIN")
        || name.starts_with("RTMAX")
    {
        return Ok(());
    }
    Err(Error::invalid(format!("invalid signal: {signal}")))
}

/// Go's `filepath.Clean` for absolute paths.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> ContainerConfig {
        ContainerConfig::from_value(&json!({
            "Env": ["PATH=/usr/bin:/bin", "HOME=/root"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/srv",
            "Labels": {"b": "1"},
        }))
        .expect("config")
    }

    /// The changed config as Docker marshals it.
    fn changed(changes: &[&str]) -> Value {
        let mut config = config();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut config, &changes).expect("valid changes");
        serde_json::to_value(&config).expect("json")
    }

    #[test]
    fn cmd_shell_and_exec_forms() {
        assert_eq!(
            changed(&["CMD echo hi"])["Cmd"],
            json!(["/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(
            changed(&[r#"CMD ["echo", "hi"]"#])["Cmd"],
            json!(["echo", "hi"])
        );
        let mut with_shell = config();
        with_shell.shell = Some(vec!["/bin/bash".into(), "-ec".into()]);
        apply_changes(&mut with_shell, &["cmd ls".to_string()]).expect("valid");
        assert_eq!(
            with_shell.cmd,
            Some(vec!["/bin/bash".into(), "-ec".into(), "ls".into()])
        );
    }

    #[test]
    fn entrypoint_resets_cmd_unless_cmd_came_first() {
        let only = changed(&[r#"ENTRYPOINT ["/app"]"#]);
        assert_eq!(only["Entrypoint"], json!(["/app"]));
        assert_eq!(only["Cmd"], Value::Null);
        let both = changed(&["CMD x", r#"ENTRYPOINT ["/app"]"#]);
        assert_eq!(both["Cmd"], json!(["/bin/sh", "-c", "x"]));
    }

    #[test]
    fn env_replaces_in_place_appends_and_expands_with_the_previous_environment() {
        let config = changed(&[r#"ENV HOME=/home/u A="x y" B=$HOME/c"#, "ENV LEGACY a b  c"]);
        assert_eq!(
            config["Env"],
            json!([
                "PATH=/usr/bin:/bin",
                "HOME=/home/u",
                "A=x y",
                "B=/root/c",
                "LEGACY=a b  c"
            ])
        );
    }

    #[test]
    fn workdir_is_relative_to_the_current_one() {
        assert_eq!(
            changed(&["WORKDIR app/../data"])["WorkingDir"],
            json!("/srv/data")
        );
        assert_eq!(changed(&["WORKDIR /abs"])["WorkingDir"], json!("/abs"));
        assert_eq!(
            changed(&["WORKDIR ${HOME}/x"])["WorkingDir"],
            json!("/root/x")
        );
    }

    #[test]
    fn labels_ports_volumes_user_stopsignal() {
        let config = changed(&[
            r#"LABEL a="1 2" c=3"#,
            "EXPOSE 80 53/udp 8000-8001",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "USER nobody:nogroup",
            "STOPSIGNAL SIGQUIT",
        ]);
        assert_eq!(config["Labels"], json!({"b": "1", "a": "1 2", "c": "3"}));
        let ports: Vec<&String> = config["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(
            config["Volumes"],
            json!({"/data": {}, "/logs": {}, "/cache": {}})
        );
        assert_eq!(config["User"], json!("nobody:nogroup"));
        assert_eq!(config["StopSignal"], json!("SIGQUIT"));
    }

    #[test]
    fn invalid_changes_are_refused_naming_them() {
        for bad in [
            "RUN ls",
            "FROM x",
            "STOPSIGNAL SIGNOPE",
            "EXPOSE 99999",
            "ENV",
            "VOLUME \"\"",
        ] {
            let mut config = config();
            let err = apply_changes(&mut config, &[bad.to_string()]).expect_err(bad);
            assert!(format!("{err:#}").contains(bad), "{bad}: {err:#}");
        }
    }

    #[test]
    fn canonical_config_orders_keys_like_docker_and_sorts_maps() {
        let mut config = config();
        apply_changes(&mut config, &["LABEL z=1 a=2".to_string()]).expect("valid");
        config.image = "img:1".into();
        config.unknown.insert("Zzz".into(), json!(1));
        config.unknown.insert("Aaa".into(), json!(2));
        let canonical = serde_json::to_value(&config).expect("json");
        let keys: Vec<&String> = canonical
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "Hostname",
                "Domainname",
                "User",
                "AttachStdin",
                "AttachStdout",
                "AttachStderr",
                "Tty",
                "OpenStdin",
                "StdinOnce",
                "Env",
                "Cmd",
                "Image",
                "Volumes",
                "WorkingDir",
                "Entrypoint",
                "OnBuild",
                "Labels",
                "Zzz",
                "Aaa"
            ]
        );
        let labels: Vec<&String> = canonical["Labels"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(labels, ["a", "b", "z"]);
    }
}
