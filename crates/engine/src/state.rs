//! A container's state as moby keeps it in config.v2.json (`container.State`): the one word
//! `docker ps --format {{.State}}` shows and the command `docker ps` lists.

use store::ContainerRecord;

/// Go's zero time (in any zone), which Docker writes for a container that never started or
/// stopped.
const ZERO_TIME_PREFIX: &str = "0001-01-01T00:00:00";

/// Whether a state time is unset (empty or Go's zero time).
pub fn is_zero(time: &str) -> bool {
    time.is_empty() || time.starts_with(ZERO_TIME_PREFIX)
}

/// moby `State.StateString`: the one word `docker ps --format {{.State}}` and `docker system df`
/// show.
pub fn state_word(record: &ContainerRecord) -> &'static str {
    let state = &record.state;
    if record.running {
        if state.paused {
            "paused"
        } else if state.restarting {
            "restarting"
        } else {
            "running"
        }
    } else if state.removal_in_progress {
        "removing"
    } else if state.dead {
        "dead"
    } else if is_zero(&state.started_at) {
        "created"
    } else {
        "exited"
    }
}

/// The COMMAND of `docker ps` before truncation (moby `daemon/list.go`): the path, then the
/// arguments, each one that holds a space in single quotes.
pub fn command(record: &ContainerRecord) -> String {
    if record.args.is_empty() {
        return record.path.clone();
    }
    let args: Vec<String> = record
        .args
        .iter()
        .map(|arg| {
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg.clone()
            }
        })
        .collect();
    format!("{} {}", record.path, args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_as_docker_ps_quotes_them() {
        let record = ContainerRecord {
            id: "0".repeat(64),
            name: "c".to_string(),
            image_id: String::new(),
            created: String::new(),
            path: "/bin/sh".into(),
            args: vec!["-c".into(), "echo hi > /hi".into()],
            config: serde_json::Value::Null,
            running: false,
            state: store::ContainerState::default(),
        };
        assert_eq!(command(&record), "/bin/sh -c 'echo hi > /hi'");
        assert_eq!(state_word(&record), "created");
    }
}
