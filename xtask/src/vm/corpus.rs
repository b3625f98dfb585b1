//! The corpus under `target/vm/corpus`: the conformance images a private dockerd built and saved,
//! their merged trees, the change script's results and the generated deep archives.

use super::*;

// ------------------------------------------------------------------------------------------------
// The corpus

#[derive(Debug)]
pub(super) struct Corpus {
    pub(super) dir: PathBuf,
}

/// Builds `target/vm/corpus` unless its stamp says the inputs are unchanged.
pub(super) fn corpus(vm_dir: &Path) -> Result<Corpus> {
    let dir = vm_dir.join("corpus");
    let mut stamp = Sha256::new();
    stamp.update(ovl_tests::SEED_DOCKERFILE);
    stamp.update(ovl_tests::CHANGES_DOCKERFILE);
    stamp.update(ovl_tests::deep_dockerfile());
    stamp.update(CHANGE_SCRIPT);
    stamp.update(format!("{DEEP_PREFIXES:?} {DEEP_MAX} v1"));
    stamp.update(fs::read(ovl_tests::BUSYBOX).context("reading /bin/busybox")?);
    let stamp = hex(&stamp.finalize());
    if fs::read_to_string(dir.join("stamp")).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(Corpus { dir });
    }
    let partial = vm_dir.join("corpus.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(partial.join("expected"))?;
    docker_corpus(vm_dir, &partial)?;
    deep_corpus(&partial)?;
    fs::write(partial.join("stamp"), &stamp)?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir)?;
    Ok(Corpus { dir })
}

/// Dump file name of an image tag.
pub fn dump_name(tag: &str) -> String {
    format!("{}.dump", tag.replace([':', '/'], "_"))
}

pub(super) fn docker_corpus(vm_dir: &Path, out: &Path) -> Result<()> {
    let scratch = vm_dir.join("dockerd");
    if scratch.exists() {
        ovl_tests::unmount_below(&scratch);
        fs::remove_dir_all(&scratch)?;
    }
    let docker = ovl_tests::Dockerd::start(&scratch);
    let tags = ovl_tests::build_conformance_images(&docker);
    let mut save = vec!["save".to_string(), "-o".to_string()];
    save.push(out.join("conformance.tar").display().to_string());
    save.extend(tags.iter().cloned());
    docker.docker_ok(&save);
    docker.save("ovl-seed:1", &out.join("seed.tar"));
    let mut images = Vec::new();
    for tag in &tags {
        let dump = ovl_tests::docker_merged_dump(&docker, tag);
        fs::write(
            out.join("expected").join(dump_name(tag)),
            treedump::format(&dump),
        )?;
        images.push(tag.clone());
    }
    // The change, as `docker run` makes it: its diff and its commit's tree.
    docker.docker_ok([
        "run",
        "--name",
        "vm-change",
        "--network",
        "none",
        "ovl-changes:1",
        "/bin/sh",
        "-c",
        CHANGE_SCRIPT,
    ]);
    let diff = docker.docker_ok(["diff", "vm-change"]);
    fs::write(out.join("expected/change.diff"), diff)?;
    docker.docker_ok(["commit", "vm-change", "vm-committed:1"]);
    let committed = ovl_tests::docker_merged_dump(&docker, "vm-committed:1");
    fs::write(
        out.join("expected/committed.dump"),
        treedump::format(&committed),
    )?;
    docker.docker_ok(["rm", "-f", "vm-change"]);
    drop(docker);
    let _ = fs::remove_dir_all(&scratch);
    fs::write(
        out.join("images.json"),
        serde_json::to_vec_pretty(&json!({ "images": images }))?,
    )?;
    Ok(())
}

/// `deep-prefixes.tar`: `deep:<n>` for every n in [`DEEP_PREFIXES`], one chain of layers;
/// `deep-max.tar`: `deep:<DEEP_MAX>`, the kernel's stack limit.
pub(super) fn deep_corpus(out: &Path) -> Result<()> {
    let layers: Vec<(String, Vec<u8>)> = (0..DEEP_MAX)
        .map(|i| (format!("layers/{i}.tar"), ovl_tests::deep_layer_tar(i)))
        .collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, bytes)| ovl_tests::sha256_digest(bytes))
        .collect();
    let prefixes: Vec<usize> = DEEP_PREFIXES.collect();
    let last = *prefixes.last().unwrap_or(&0);
    write_archive(
        &out.join("deep-prefixes.tar"),
        &layers[..last],
        &diff_ids,
        &prefixes,
    )?;
    write_archive(&out.join("deep-max.tar"), &layers, &diff_ids, &[DEEP_MAX])
}

/// A docker-archive with one manifest entry per prefix length, all sharing one chain of layers.
pub(super) fn write_archive(
    path: &Path,
    layers: &[(String, Vec<u8>)],
    diff_ids: &[String],
    prefixes: &[usize],
) -> Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut member = |name: &str, mut bytes: &[u8]| {
        let size = bytes.len() as u64;
        crate::tar_member(&mut out, name, &mut bytes, size, 1_700_000_000)
    };
    for (name, bytes) in layers {
        member(name, bytes)?;
    }
    let mut manifest = Vec::new();
    for &n in prefixes {
        let config = ovl_tests::image_config(&diff_ids[..n]);
        let config_name = format!(
            "{}.json",
            ovl_tests::sha256_digest(&config).trim_start_matches("sha256:")
        );
        member(&config_name, &config)?;
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": [format!("deep:{n}")],
            "Layers": layers[..n].iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
        }));
    }
    member("manifest.json", &serde_json::to_vec(&manifest)?)?;
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    out.flush()?;
    Ok(())
}
