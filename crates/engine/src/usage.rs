//! What `docker system df` reports, computed the way moby v20.10 does (daemon `SystemDiskUsage`):
//! the images listed are those `docker images` lists (tagged, or without a child image), an
//! image's size is the sum of its layers' `size`, its shared size the sum over its layers that
//! more than one listed image uses, the images' total the layers those images use, each counted
//! once (`LayerDiskUsage`); a container's size is Docker's `directory.Size` of its writable layer
//! dir; local volumes are the option-less dirs of `ROOT/volumes` (`LocalVolumesSize`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use store::DataRoot;

use crate::error::{Context, Result};

/// One image as `docker system df` lists it (moby `types.ImageSummary`).
pub struct ImageUsage {
    pub id: String,
    pub repository: String,
    pub tag: String,
    /// Unix seconds of `created`; `None` for Go's zero time.
    pub created: Option<i64>,
    pub size: i64,
    pub shared_size: i64,
    pub n_containers: i64,
}

/// One container as `docker system df` lists it (moby `types.Container` with its sizes).
pub struct ContainerUsage {
    pub id: String,
    /// The image as the user named it when that still names the same image, else its id.
    pub image: String,
    pub image_id: String,
    pub command: String,
    pub labels: Vec<String>,
    pub mounts: Vec<String>,
    /// The names of its mount points of the `local` volume driver.
    pub local_volumes: Vec<String>,
    pub networks: Vec<String>,
    pub size_rw: i64,
    /// Unix seconds of `Created`.
    pub created: i64,
    /// `Created` as written, for the newest-first order (Docker sorts by the full time).
    pub created_exact: SystemTime,
    pub state: &'static str,
    pub status: String,
    pub name: String,
}

pub struct VolumeUsage {
    pub name: String,
    pub links: i64,
    pub size: i64,
    pub mountpoint: String,
}

pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
}

pub fn disk_usage(root: &DataRoot) -> Result<DiskUsage> {
    let now = SystemTime::now();
    let layer_sizes: BTreeMap<String, i64> = root
        .layers()?
        .into_iter()
        .map(|layer| (layer.chain_id, layer.size))
        .collect();
    // The images dockerd loads: the config verifies and every layer of the chain loads.
    let mut chains: BTreeMap<String, (Vec<String>, Option<String>)> = BTreeMap::new();
    for image_id in root.images()? {
        let Ok(config) = root.image_config(&image_id) else {
            continue;
        };
        let chain = store::chain_ids(&config.rootfs.diff_ids);
        if chain
            .iter()
            .all(|chain_id| layer_sizes.contains_key(chain_id))
        {
            chains.insert(image_id, (chain, config.created));
        }
    }
    let mut n_children: BTreeMap<String, usize> = BTreeMap::new();
    for image_id in chains.keys() {
        if let Ok(Some(parent)) = root.image_parent(image_id) {
            if chains.contains_key(&parent) {
                *n_children.entry(parent).or_default() += 1;
            }
        }
    }
    let references = root.references().context("reading repositories.json")?;

    let containers = container_usage(root, now)?;
    let mut n_containers_of: BTreeMap<&str, i64> = BTreeMap::new();
    for container in &containers {
        *n_containers_of
            .entry(container.image_id.as_str())
            .or_default() += 1;
    }

    // `docker images` without -a: an image without any reference but with a child is an
    // intermediate one and is not listed.
    let listed: Vec<&String> = chains
        .keys()
        .filter(|image_id| {
            let referenced = references.iter().any(|(_, id)| id == *image_id);
            referenced || n_children.get(*image_id).is_none_or(|n| *n == 0)
        })
        .collect();
    let mut layer_refs: BTreeMap<&str, usize> = BTreeMap::new();
    for image_id in &listed {
        for chain_id in &chains[*image_id].0 {
            *layer_refs.entry(chain_id.as_str()).or_default() += 1;
        }
    }
    let layers_size = layer_refs
        .keys()
        .map(|chain_id| layer_sizes[*chain_id])
        .sum();
    let mut images = Vec::new();
    for image_id in listed {
        let (chain, created) = &chains[image_id];
        let size = chain.iter().map(|chain_id| layer_sizes[chain_id]).sum();
        let shared_size = chain
            .iter()
            .filter(|chain_id| layer_refs[chain_id.as_str()] > 1)
            .map(|chain_id| layer_sizes[chain_id])
            .sum();
        let (repository, tag) = first_tag(&crate::resolve::tags_of(&references, image_id))
            .unwrap_or_else(|| ("<none>".to_string(), "<none>".to_string()));
        images.push(ImageUsage {
            id: image_id.clone(),
            repository,
            tag,
            created: created.as_deref().and_then(unix_seconds),
            size,
            shared_size,
            n_containers: n_containers_of.get(image_id.as_str()).copied().unwrap_or(0),
        });
    }
    // Newest first by whole seconds, as moby sorts `ImageSummary.Created`; the id orders ties,
    // which Docker leaves in map order.
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));

    let mut volumes = Vec::new();
    for volume in root.local_volumes()? {
        let links = containers
            .iter()
            .filter(|container| container.mounts_volume(&volume.name))
            .count();
        volumes.push(VolumeUsage {
            mountpoint: root
                .root()
                .join("volumes")
                .join(&volume.name)
                .join("_data")
                .display()
                .to_string(),
            name: volume.name,
            links: i64::try_from(links).unwrap_or(i64::MAX),
            size: volume.size,
        });
    }
    Ok(DiskUsage {
        layers_size,
        images,
        containers,
        volumes,
    })
}

/// Every container dockerd restores (a record with a mounts entry that loads), newest first.
fn container_usage(root: &DataRoot, now: SystemTime) -> Result<Vec<ContainerUsage>> {
    let mut containers = Vec::new();
    for record in root.containers()? {
        let Ok(Some(entry)) = root.mounts_entry(&record.id) else {
            continue;
        };
        let attachments = root.container_attachments(&record.id).unwrap_or_default();
        let size_rw = match root.layer_diff_size(&entry.mount_id) {
            Ok(size) => size,
            Err(err) => {
                let container = &record.id;
                tracing::error!(%container, error = %err, "failed to measure the container layer");
                -1
            }
        };
        let created_exact = gocompat::time::parse_rfc3339(&record.created).unwrap_or(UNIX_EPOCH);
        containers.push(ContainerUsage {
            image: crate::container::listed_image(root, &record),
            image_id: record.image_id.clone(),
            command: crate::state::command(&record),
            labels: crate::inspect::labels(&record),
            mounts: attachments
                .mount_points
                .iter()
                .map(|point| {
                    if point.name.is_empty() {
                        point.source.clone()
                    } else {
                        point.name.clone()
                    }
                })
                .collect(),
            local_volumes: attachments
                .mount_points
                .iter()
                .filter(|point| point.driver == "local")
                .map(|point| point.name.clone())
                .collect(),
            networks: attachments.networks,
            size_rw,
            created: unix_seconds(&record.created).unwrap_or(0),
            created_exact,
            state: crate::state::state_word(&record),
            status: crate::state::status_at(&record, false, now),
            name: record.name.clone(),
            id: record.id.clone(),
        });
    }
    containers.sort_by(|a, b| b.created_exact.cmp(&a.created_exact).then(a.id.cmp(&b.id)));
    Ok(containers)
}

impl ContainerUsage {
    pub fn mounts_volume(&self, name: &str) -> bool {
        self.local_volumes.iter().any(|volume| volume == name)
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, "running" | "paused" | "restarting")
    }
}

/// Go's zero `time.Time` as Docker writes it.
fn is_zero_time(time: &str) -> bool {
    time.is_empty() || time.starts_with("0001-01-01T00:00:00")
}

/// The repository and tag of the first of an image's tags in the order of their fully qualified
/// names (moby reference/store.go sorts `References` lexically by the full string).
pub(crate) fn first_tag(tags: &[String]) -> Option<(String, String)> {
    tags.iter()
        .filter_map(|familiar| {
            let (repo, tag) = familiar.rsplit_once(':')?;
            Some((full_name(repo), repo.to_string(), tag.to_string()))
        })
        .min_by(|a, b| format!("{}:{}", a.0, a.2).cmp(&format!("{}:{}", b.0, b.2)))
        .map(|(_, repo, tag)| (repo, tag))
}

/// `docker.io/library/busybox` for `busybox`, `docker.io/org/app` for `org/app`; names with a
/// registry host stay as they are.
fn full_name(familiar: &str) -> String {
    match familiar.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            familiar.to_string()
        }
        Some(_) => format!("docker.io/{familiar}"),
        None => format!("docker.io/library/{familiar}"),
    }
}

/// The creation time in Unix seconds, `None` for Go's zero time or unreadable text; times before
/// 1970 count from the epoch, as the docker CLI's ages do.
fn unix_seconds(rfc3339: &str) -> Option<i64> {
    if is_zero_time(rfc3339) {
        return None;
    }
    gocompat::time::unix_seconds(rfc3339).map(|seconds| seconds.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tag_follows_full_names() {
        // Full names: `docker.io/library/zz:2` < `docker.io/org/b:3` < `localhost/aa:1`, although
        // the familiar names sort the other way round.
        let tags = vec![
            "localhost/aa:1".to_string(),
            "org/b:3".to_string(),
            "zz:2".to_string(),
        ];
        assert_eq!(first_tag(&tags), Some(("zz".into(), "2".into())));
        assert_eq!(first_tag(&tags[..2]), Some(("org/b".into(), "3".into())));
        assert_eq!(first_tag(&[]), None);
    }
}
