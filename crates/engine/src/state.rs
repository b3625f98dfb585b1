//! A container's state as moby keeps it in config.v2.json (`container.State`): the one word
//! `docker ps --format {{.State}}` shows, its STATUS (moby `container.State.String`, plus ovl's
//! own `Mounted`) and the command `docker ps` lists.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// `Up 2 hours`, `Exited (0) 5 minutes ago`, `Created`, `Removal In Progress`, `Dead`, or, for a
/// container whose root filesystem ovl has mounted, `Mounted`.
pub fn status(record: &ContainerRecord, mounted: bool) -> String {
    status_at(record, mounted, SystemTime::now())
}

/// [`status`] with the durations measured up to `now`.
pub fn status_at(record: &ContainerRecord, mounted: bool, now: SystemTime) -> String {
    let state = &record.state;
    let since = |time: &str| {
        let then = gocompat::time::parse_rfc3339(time).unwrap_or(UNIX_EPOCH);
        gocompat::time::human_duration(now.duration_since(then).unwrap_or_default())
    };
    if record.running {
        if state.paused {
            return format!("Up {} (Paused)", since(&state.started_at));
        }
        if state.restarting {
            return format!(
                "Restarting ({}) {} ago",
                state.exit_code,
                since(&state.finished_at)
            );
        }
        return format!("Up {}", since(&state.started_at));
    }
    if state.removal_in_progress {
        return "Removal In Progress".to_string();
    }
    if state.dead {
        return "Dead".to_string();
    }
    if mounted {
        return "Mounted".to_string();
    }
    if is_zero(&state.started_at) {
        return "Created".to_string();
    }
    if is_zero(&state.finished_at) {
        return String::new();
    }
    format!(
        "Exited ({}) {} ago",
        state.exit_code,
        since(&state.finished_at)
    )
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

#[cfg(test)]
mod status_tests {
    use super::*;

    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

    fn record(started_at: &str, finished_at: &str, exit_code: i64) -> ContainerRecord {
        ContainerRecord {
            id: "0".repeat(64),
            name: "c".to_string(),
            image_id: String::new(),
            created: String::new(),
            path: String::new(),
            args: Vec::new(),
            config: serde_json::Value::Null,
            running: false,
            state: store::ContainerState {
                exit_code,
                started_at: started_at.to_string(),
                finished_at: finished_at.to_string(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn statuses_follow_docker() {
        assert_eq!(status(&record(ZERO_TIME, ZERO_TIME, 0), false), "Created");
        assert_eq!(status(&record(ZERO_TIME, ZERO_TIME, 0), true), "Mounted");
        let now = gocompat::time::parse_rfc3339("2020-01-01T00:05:01Z").expect("time");
        assert_eq!(
            status_at(
                &record("2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", 3),
                false,
                now
            ),
            "Exited (3) 5 minutes ago"
        );
        assert_eq!(
            status(&record("2020-01-01T00:00:00Z", ZERO_TIME, 0), false),
            ""
        );
        let mut removing = record(ZERO_TIME, ZERO_TIME, 0);
        removing.state.removal_in_progress = true;
        assert_eq!(status(&removing, true), "Removal In Progress");
    }
}
