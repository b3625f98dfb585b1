//! A hostile case: its input, how it goes in, and what must come of it.

use super::*;

/// How a case reaches the data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// `ovl load -i <archive>`.
    Load,
    /// `ovl import <tarball> <tag>`.
    Import,
}

/// A check of the contained result: the new layer's `diff/` and the image's `ovl inspect`.
pub(super) type ContainCheck = Box<dyn Fn(&Path, &serde_json::Value) -> anyhow::Result<()>>;

pub(super) enum Expect {
    /// Exit status 1; stderr holds one string of every group; nothing registered.
    Reject(Vec<Vec<String>>),
    /// Exit status 0; the check passes on the image's top layer.
    Contain(ContainCheck),
    /// Either outcome, within [`HUGE_MANIFEST_DEADLINE`] and [`HUGE_MANIFEST_MAX_RSS_KIB`].
    Bounded,
}

pub(super) struct Case {
    pub(super) name: String,
    pub(super) what: &'static str,
    /// What Docker 20.10 does with the same input.
    pub(super) docker: Docker,
    /// For a case Docker loads differently: a check of Docker's layer that shows how.
    pub(super) docker_check: Option<ContainCheck>,
    pub(super) via: Via,
    /// The archive (load) or tarball (import).
    pub(super) input: Vec<u8>,
    /// More arguments after the command's own.
    pub(super) args: Vec<String>,
    pub(super) tag: String,
    pub(super) expect: Expect,
}

/// What Docker 20.10 does with a case, as a private dockerd shows it
/// (`hostile_archives_in_docker_needs_root_and_dockerd`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Docker {
    /// The same outcome; for a contained case the same check passes on Docker's layer.
    Same,
    /// Docker loads what ovl rejects, or loads it with another result; why.
    Loads(&'static str),
    /// Not run against Docker; why.
    NotRun(&'static str),
}

impl Case {
    /// A gzip bomb case: run with `--max-layer-size` [`BOMB_LIMIT`] and not given to Docker,
    /// which has no limit.
    pub(super) fn bomb_limited(mut self) -> Case {
        self.args = vec!["--max-layer-size".into(), BOMB_LIMIT.into()];
        self.docker = Docker::NotRun("Docker has no size limit: it would write all 2 GiB");
        self
    }

    pub(super) fn in_docker(mut self, docker: Docker) -> Case {
        self.docker = docker;
        self
    }

    /// Docker unpacks chrooted into the layer directory, where `..` stops at the root: the
    /// member climbing out, `evil`, is written at the layer root as `at_root`.
    pub(super) fn in_docker_at_layer_root(self, at_root: String) -> Case {
        self.in_docker_checked(
            "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
            move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
        )
    }

    /// Docker skips a member whose name cleans to `.`: its layer stays empty.
    pub(super) fn in_docker_skipped(self) -> Case {
        self.in_docker_checked(
            "Docker skips a member whose name cleans to `.` (its data and metadata are dropped)",
            |diff, _| expect_empty_dir(diff),
        )
    }

    /// Docker loads the case differently, as `check` shows on Docker's layer.
    pub(super) fn in_docker_checked(
        mut self,
        why: &'static str,
        check: impl Fn(&Path, &serde_json::Value) -> anyhow::Result<()> + 'static,
    ) -> Case {
        self.docker = Docker::Loads(why);
        self.docker_check = Some(Box::new(check));
        self
    }
}

/// A layer of `l -> target` and then the empty file `l/<member>`, written through the link.
pub(super) fn empty_through_link(target: &str, member: &str) -> Vec<u8> {
    TarBuilder::new()
        .symlink("l", target)
        .file(&format!("l/{member}"), b"")
        .finish()
}

/// What a gzip bomb case expects: refused naming `culprit` and the limit.
pub(super) fn bomb_refusal(culprit: String) -> Expect {
    Expect::Reject(vec![
        vec![culprit],
        vec![BOMB_LIMIT_BYTES.to_string(), BOMB_LIMIT.to_string()],
    ])
}

/// `ovl-hostile-<pid>-<case>`: a name that nothing but this case can create.
pub(super) fn marker(case: &str) -> String {
    format!("ovl-hostile-{}-{case}", std::process::id())
}

pub(super) fn tag_of(case: &str) -> String {
    format!("hostile/{case}:1")
}

pub(super) fn layer_member(case: &str) -> String {
    format!("hostile-{case}/layer.tar")
}

/// Every stderr needle group: one of the strings must appear.
pub(super) fn needles(groups: &[&[&str]]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|group| group.iter().map(|s| (*s).to_string()).collect())
        .collect()
}

/// A rejection that names the layer member and, in its own group each, `more`.
pub(super) fn reject_naming(case: &str, more: &[&str]) -> Expect {
    let mut groups = vec![vec![layer_member(case)]];
    groups.extend(more.iter().map(|s| vec![(*s).to_string()]));
    Expect::Reject(groups)
}

/// A load case of an uncompressed layer tar, refused naming its layer member and `more`.
pub(super) fn rejected_layer(
    base: &Base,
    name: &str,
    what: &'static str,
    tar: Vec<u8>,
    more: &[&str],
) -> Case {
    layer_case(base, name, what, tar, reject_naming(name, more))
}

pub(super) fn contain(
    check: impl Fn(&Path, &serde_json::Value) -> anyhow::Result<()> + 'static,
) -> Expect {
    Expect::Contain(Box::new(check))
}

/// A load case: the base layer and `blob` (whose uncompressed tar hashes to `diff_id`) as the
/// image's two layers.
pub(super) fn layer_case_blob(
    base: &Base,
    name: &str,
    what: &'static str,
    blob: Vec<u8>,
    diff_id: String,
    expect: Expect,
) -> Case {
    let config = image_config(&[base.diff_id.clone(), diff_id]);
    let input = base_and_layer_archive(base, name, &blob, &config);
    archive_case(name, what, input, expect)
}

/// A docker-archive of the base layer and `layer` under `config`, tagged for the case `name`.
pub(super) fn base_and_layer_archive(
    base: &Base,
    name: &str,
    layer: &[u8],
    config: &[u8],
) -> Vec<u8> {
    ArchiveBuilder::on_base(base)
        .file(&layer_member(name), layer)
        .config(config)
        .base_manifest(config, name)
        .finish()
}

/// A load case of an uncompressed layer tar.
pub(super) fn layer_case(
    base: &Base,
    name: &str,
    what: &'static str,
    tar: Vec<u8>,
    expect: Expect,
) -> Case {
    let diff_id = sha256_digest(&tar);
    layer_case_blob(base, name, what, tar, diff_id, expect)
}

/// An archive-level case: the archive as given, the tag it would load under.
pub(super) fn archive_case(name: &str, what: &'static str, input: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        what,
        docker: Docker::Same,
        docker_check: None,
        via: Via::Load,
        input,
        args: Vec::new(),
        tag: tag_of(name),
        expect,
    }
}

/// `<sha256 of the config>.json`, the config member name `docker save` writes.
pub(super) fn config_member(config: &[u8]) -> String {
    format!(
        "{}.json",
        sha256_digest(config).trim_start_matches("sha256:")
    )
}
