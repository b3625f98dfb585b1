//! Readers of the layerdb that work on Docker's and ovl's data roots alike (they share the
//! format, format.md §3): layers, chain ids, tar-split reassembly and the root's consistency.

use super::*;

// ------------------------------------------------------------------------------------------------
// layerdb and chain ids

/// One `layerdb/sha256/<chain>/` entry, the files' exact contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub diff: String,
    pub size: String,
    pub parent: Option<String>,
    pub cache_id: String,
}

/// Every layer of a data root, keyed by `sha256:<chain id>`, read straight from
/// `image/overlay2/layerdb/sha256/*` (entries that are not 64-hex dirs are ignored, like Docker).
pub fn layerdb(data_root: &Path) -> BTreeMap<String, LayerInfo> {
    let dir = layerdb_dir(data_root);
    let mut layers = BTreeMap::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return layers;
    };
    for entry in entries {
        let entry = entry.expect("read layerdb entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_hex64(&name) || !entry.path().is_dir() {
            continue;
        }
        let read = |file: &str| fs::read_to_string(entry.path().join(file));
        let text = |file: &str| {
            read(file).unwrap_or_else(|e| panic!("read {}/{file}: {e}", entry.path().display()))
        };
        layers.insert(
            format!("sha256:{name}"),
            LayerInfo {
                diff: text("diff"),
                size: text("size"),
                parent: read("parent").ok(),
                cache_id: text("cache-id"),
            },
        );
    }
    layers
}

/// Asserts that every DiffID of `diff_ids` is a layer of `ovl`'s root and that
/// `ovl fsck --verify-content` finds every layer what its DiffID says, with no leftovers.
pub fn assert_layers_stored_clean(ovl: &Ovl, diff_ids: &[String]) {
    let layers = layerdb(&ovl.root);
    for diff_id in diff_ids {
        assert!(
            layers.values().any(|entry| entry.diff == *diff_id),
            "layer {diff_id} is not in the layerdb"
        );
    }
    let fsck = ovl.ok(["fsck", "--verify-content"]);
    assert!(fsck.ends_with(": 0 corrupt, 0 leftovers\n"), "{fsck}");
}

/// `<root>/image/overlay2/layerdb/sha256`.
pub fn layerdb_dir(data_root: &Path) -> PathBuf {
    data_root.join("image/overlay2/layerdb/sha256")
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// ChainIDs of a DiffID list (format.md §3.1): the first is the DiffID, each next one is
/// `sha256("<parent chain> <diff>")` over the full prefixed strings.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// `RootFS.Layers` of an image according to Docker.
pub fn image_diff_ids(docker: &Dockerd, image: &str) -> Vec<String> {
    let json = docker.docker_ok(["image", "inspect", "-f", "{{json .RootFS.Layers}}", image]);
    serde_json::from_str(json.trim()).expect("RootFS.Layers is a JSON array of strings")
}

/// The ChainIDs of an image's layers, bottom first, computed from Docker's `RootFS.Layers`.
pub fn image_chain(docker: &Dockerd, image: &str) -> Vec<String> {
    chain_ids(&image_diff_ids(docker, image))
}

/// Reassembles a layer's tar from `tar-split.json.gz` and `overlay2/<cache-id>/diff` and returns
/// the sha256 digest of the result.
pub fn reassembled_digest(
    data_root: &Path,
    chain_id: &str,
    cache_id: &str,
) -> anyhow::Result<String> {
    let hex_id = chain_id.trim_start_matches("sha256:");
    let tar_split = layerdb_dir(data_root)
        .join(hex_id)
        .join("tar-split.json.gz");
    let file =
        fs::File::open(&tar_split).with_context(|| format!("open {}", tar_split.display()))?;
    let diff_dir = data_root.join("overlay2").join(cache_id).join("diff");
    let dir = fs::File::open(&diff_dir).with_context(|| format!("open {}", diff_dir.display()))?;
    let mut hasher = Sha256::new();
    tar_split::reassemble(
        std::io::BufReader::new(file),
        std::os::fd::AsFd::as_fd(&dir),
        Default::default(),
        &mut hasher,
    )
    .with_context(|| format!("reassemble layer {chain_id} from {}", diff_dir.display()))?;
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

/// Checks that the reassembled tar of every layer of a data root hashes to its DiffID.
pub fn check_tar_split(data_root: &Path) -> anyhow::Result<usize> {
    let layers = layerdb(data_root);
    for (chain_id, entry) in &layers {
        let digest = reassembled_digest(data_root, chain_id, &entry.cache_id)?;
        ensure!(
            digest == entry.diff,
            "layer {chain_id}: reassembled tar has digest {digest}, diff says {}",
            entry.diff
        );
    }
    Ok(layers.len())
}

/// The invariants a data root keeps after any command, failed or not: `layerdb/tmp` is empty,
/// every `overlay2/<id>` dir (except `l`) belongs to a layer (its cache-id) or a container
/// (mount-id or init-id of a `layerdb/mounts` entry), and every `l/` link resolves.
pub fn check_root_consistent(data_root: &Path) -> anyhow::Result<()> {
    let tmp = data_root.join("image/overlay2/layerdb/tmp");
    if tmp.exists() {
        let leftovers: Vec<_> = fs::read_dir(&tmp)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        ensure!(
            leftovers.is_empty(),
            "{} holds {leftovers:?}",
            tmp.display()
        );
    }
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for (chain_id, entry) in layerdb(data_root) {
        owners.insert(entry.cache_id.clone(), format!("layer {chain_id}"));
    }
    let mounts = data_root.join("image/overlay2/layerdb/mounts");
    if mounts.exists() {
        for entry in fs::read_dir(&mounts)? {
            let entry = entry?;
            for file in ["mount-id", "init-id"] {
                if let Ok(id) = fs::read_to_string(entry.path().join(file)) {
                    owners.insert(id, format!("container {:?}", entry.file_name()));
                }
            }
        }
    }
    let overlay = data_root.join("overlay2");
    if !overlay.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(&overlay)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "l" {
            continue;
        }
        ensure!(
            owners.contains_key(&name),
            "{} belongs to no layerdb entry or container",
            entry.path().display()
        );
    }
    let links = overlay.join("l");
    if links.exists() {
        for entry in fs::read_dir(&links)? {
            let entry = entry?;
            ensure!(
                fs::metadata(entry.path()).is_ok(),
                "{} does not resolve (-> {:?})",
                entry.path().display(),
                fs::read_link(entry.path()).ok()
            );
        }
    }
    Ok(())
}
