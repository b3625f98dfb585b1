//! What a data root holds besides the overlay2 store: other storage drivers' data, and entries
//! that no Docker 20.10 writes. ovl reports them and leaves them alone.

use std::path::Path;

/// Top-level entries of a Docker 20.10 data root (moby `daemon.NewDaemon` and its subsystems),
/// plus ovl's own lock file.
const KNOWN_TOP_LEVEL: [&str; 16] = [
    "buildkit",
    "builder",
    "containerd",
    "containers",
    "image",
    "network",
    "overlay2",
    "plugins",
    "runtimes",
    "swarm",
    "tmp",
    "trust",
    "volumes",
    "ovl.lock",
    "ovl.moves",
    "ovl.probe",
];

/// Directories of Docker's other storage drivers, at the top level and below `image/`.
const OTHER_DRIVERS: [&str; 8] = [
    "aufs",
    "btrfs",
    "devicemapper",
    "fuse-overlayfs",
    "overlay",
    "vfs",
    "zfs",
    "windowsfilter",
];

/// Entries a newer Docker adds (Docker 23 writes the engine id to its own file).
const NEWER_DOCKER: [&str; 1] = ["engine-id"];

/// The result of [`survey`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootSurvey {
    /// Storage drivers other than overlay2 with data in the root (`vfs`, `btrfs`, ...).
    pub other_drivers: Vec<String>,
    /// Top-level entries written by a Docker newer than 20.10.
    pub newer_docker: Vec<String>,
    /// Top-level entries no Docker 20.10 writes.
    pub unknown: Vec<String>,
}

/// Lists what `root` holds besides what ovl understands. A missing or unreadable root gives an
/// empty survey; opening it reports that.
pub fn survey(root: &Path) -> RootSurvey {
    let mut found = RootSurvey::default();
    for name in crate::fsutil::readable_names(root) {
        if OTHER_DRIVERS.contains(&name.as_str()) {
            found.other_drivers.push(name);
        } else if NEWER_DOCKER.contains(&name.as_str()) {
            found.newer_docker.push(name);
        } else if !KNOWN_TOP_LEVEL.contains(&name.as_str()) {
            found.unknown.push(name);
        }
    }
    for name in crate::fsutil::readable_names(&root.join("image")) {
        if name != "overlay2" && !found.other_drivers.contains(&name) {
            found.other_drivers.push(name);
        }
    }
    found.other_drivers.sort();
    found
}

/// Logs a warning for everything in `survey` (called whenever a data root is opened).
pub(crate) fn report(root: &Path, survey: &RootSurvey) {
    for driver in &survey.other_drivers {
        tracing::warn!(
            root = %root.display(),
            driver = %driver,
            "the data root also holds data of Docker's {driver} storage driver; ovl leaves it alone"
        );
    }
    for name in &survey.newer_docker {
        tracing::warn!(
            root = %root.display(),
            entry = %name,
            "the data root was used by a Docker newer than 20.10 ({name}); its overlay2 store is read as 20.10 writes it"
        );
    }
    for name in &survey.unknown {
        tracing::warn!(
            root = %root.display(),
            entry = %name,
            "unknown entry {name} in the data root; ovl leaves it alone"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_entries_into_drivers_newer_docker_and_unknown() {
        let dir = std::env::temp_dir().join(format!("ovl-survey-{}", std::process::id()));
        for sub in [
            "overlay2",
            "image/overlay2",
            "image/vfs",
            "vfs",
            "containers",
            "engine-id",
            "mystery",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("test setup");
        }
        let found = survey(&dir);
        assert_eq!(
            found,
            RootSurvey {
                other_drivers: vec!["vfs".into()],
                newer_docker: vec!["engine-id".into()],
                unknown: vec!["mystery".into()],
            }
        );
        std::fs::remove_dir_all(&dir).expect("test setup");
    }
}
