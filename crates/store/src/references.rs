//! repositories.json (format.md §8.3) and Docker's reference grammar for `name[:tag]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::fsutil;
use crate::{DataRoot, Error, Result};

/// A normalized image reference: familiar repository name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Familiar repository (`busybox`, `localhost:5000/x/y`): `docker.io/library/` stripped.
    pub repo: String,
    pub tag: String,
}

/// The digest algorithm of image ids, which Docker refuses as a (familiar) repository name.
const DIGEST_ALGORITHM: &str = "sha256";

/// Docker's limit on the length of a repository name (distribution/reference NameTotalLengthMax).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

impl Reference {
    /// Parses `name[:tag]` (default tag `latest`), validating it like Docker's reference grammar.
    pub fn parse(text: &str) -> Result<Reference> {
        let invalid = |reason| Error::InvalidReference {
            reference: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty name"));
        }
        if crate::ids::is_hex64(text) {
            // Docker refuses these so that a name can never be mistaken for an image id.
            return Err(invalid("cannot specify 64-byte hexadecimal strings"));
        }
        if text.contains('@') {
            return Err(invalid(
                "digest references are not supported; use name:tag or an image id",
            ));
        }
        let last_slash = text.rfind('/').map_or(0, |idx| idx + 1);
        let (name, tag) = match text[last_slash..].rfind(':') {
            Some(idx) => (&text[..last_slash + idx], &text[last_slash + idx + 1..]),
            None => (text, "latest"),
        };
        if !valid_tag(tag) {
            return Err(invalid("invalid tag"));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        let mut components: Vec<&str> = name.split('/').collect();
        let domain = if components.len() > 1 && is_domain_like(components[0]) {
            Some(components.remove(0))
        } else {
            None
        };
        if let Some(domain) = domain {
            if !valid_domain(domain) {
                return Err(invalid("invalid registry host"));
            }
        }
        if components
            .iter()
            .any(|component| !valid_path_component(component))
        {
            return Err(invalid("invalid repository name"));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid("repository name too long"));
        }
        let path = components.join("/");
        let repo = match domain {
            None | Some("docker.io") | Some("index.docker.io") => {
                match path.strip_prefix("library/") {
                    Some(rest) if !rest.contains('/') => rest.to_string(),
                    _ => path,
                }
            }
            Some(domain) => format!("{domain}/{path}"),
        };
        if repo == DIGEST_ALGORITHM {
            // `sha256:<hex>` must only ever name an image by id, never a tag someone made.
            return Err(invalid(
                "refusing to create an ambiguous tag using digest algorithm as name",
            ));
        }
        Ok(Reference {
            repo,
            tag: tag.to_string(),
        })
    }

    /// `repo:tag`, the key used in repositories.json.
    pub fn familiar(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }
}

/// A reference as `pull` and `push` take it: `name[:tag]`, `name@sha256:<hex>` or
/// `name:tag@sha256:<hex>` (the digest wins, as in Docker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Familiar repository, as in [`Reference::repo`].
    pub repo: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Named {
    /// Parses a reference with an optional digest; the name and tag follow [`Reference::parse`].
    pub fn parse(text: &str) -> Result<Named> {
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                let valid = digest
                    .strip_prefix("sha256:")
                    .is_some_and(crate::ids::is_hex64);
                if !valid {
                    return Err(Error::InvalidReference {
                        reference: text.to_string(),
                        reason: "invalid digest: only sha256:<64 lowercase hex> is supported",
                    });
                }
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let parsed = Reference::parse(name).map_err(|err| match err {
            Error::InvalidReference { reason, .. } => Error::InvalidReference {
                reference: text.to_string(),
                reason,
            },
            other => other,
        })?;
        let last_slash = name.rfind('/').map_or(0, |idx| idx + 1);
        let has_tag = name[last_slash..].contains(':');
        let tag = (has_tag || digest.is_none()).then_some(parsed.tag);
        Ok(Named {
            repo: parsed.repo,
            tag,
            digest,
        })
    }

    /// The registry host (`docker.io` for names without one) and the path in it
    /// (`library/busybox`).
    pub fn domain_and_path(&self) -> (String, String) {
        split_domain(&self.repo)
    }

    /// The fully qualified name without tag or digest: `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        let (domain, path) = self.domain_and_path();
        format!("{domain}/{path}")
    }

    /// The tagged reference, when there is a tag.
    pub fn tagged(&self) -> Option<Reference> {
        self.tag.as_ref().map(|tag| Reference {
            repo: self.repo.clone(),
            tag: tag.clone(),
        })
    }

    /// `repo@digest`, the key of a digest reference in repositories.json.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repo)
    }

    /// The familiar text: `repo:tag`, `repo@digest` when pulled by digest.
    pub fn familiar(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => self.with_digest(digest),
            (None, Some(tag)) => format!("{}:{tag}", self.repo),
            (None, None) => self.repo.clone(),
        }
    }
}

/// The registry host and repository path of a familiar repository name, as Docker's
/// `reference.ParseNormalizedNamed` splits them: a first component with `.` or `:`, or
/// `localhost`, is the host; otherwise the host is `docker.io` and a one-component name is in
/// `library/`.
pub fn split_domain(repo: &str) -> (String, String) {
    match repo.split_once('/') {
        Some((first, rest)) if is_domain_like(first) => (first.to_string(), rest.to_string()),
        Some(_) => ("docker.io".to_string(), repo.to_string()),
        None => ("docker.io".to_string(), format!("library/{repo}")),
    }
}

/// A first component is a registry host if it has a `.` or `:` or is `localhost`.
fn is_domain_like(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    host_ok && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut idx = 0;
    while idx < bytes.len() {
        if alnum(bytes[idx]) {
            idx += 1;
            continue;
        }
        let start = idx;
        while idx < bytes.len() && !alnum(bytes[idx]) {
            idx += 1;
        }
        let separator = &component[start..idx];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Repositories {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

impl DataRoot {
    pub(crate) fn repositories_path(&self) -> PathBuf {
        self.image_dir().join("repositories.json")
    }

    fn load_repositories(&self) -> Result<Repositories> {
        let path = self.repositories_path();
        match fsutil::read_optional(&path)? {
            None => Ok(Repositories::default()),
            Some(text) => {
                serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
            }
        }
    }

    /// Removes `name@sha256:<digest>` references from repositories.json (the tag API handles
    /// `name:tag` only), dropping repositories left empty, as moby's reference store does.
    pub(crate) fn remove_digest_references(&self, references: &[String]) -> Result<()> {
        if references.is_empty() {
            return Ok(());
        }
        let mut repositories = self.load_repositories()?;
        for reference in references {
            let repo = reference.split_once('@').map_or("", |(repo, _)| repo);
            if let Some(refs) = repositories.repositories.get_mut(repo) {
                refs.remove(reference);
                if refs.is_empty() {
                    repositories.repositories.remove(repo);
                }
            }
        }
        self.save_repositories(&repositories)
    }

    fn save_repositories(&self, repositories: &Repositories) -> Result<()> {
        let bytes = crate::go_json(repositories)?;
        fsutil::write_atomic(&self.repositories_path(), &bytes, 0o600)
    }

    /// (familiar ref `repo:tag`, image id) pairs, sorted by ref.
    pub fn references(&self) -> Result<Vec<(String, String)>> {
        let repositories = self.load_repositories()?;
        Ok(repositories.repositories.into_values().flatten().collect())
    }

    /// Records `repo@digest` for an image, as a pull does (format.md §8.3).
    pub fn add_digest_reference(&self, named: &Named, digest: &str, image_id: &str) -> Result<()> {
        let mut repositories = self.load_repositories()?;
        repositories
            .repositories
            .entry(named.repo.clone())
            .or_default()
            .insert(named.with_digest(digest), image_id.to_string());
        self.save_repositories(&repositories)
    }

    pub fn add_reference(&self, reference: &Reference, image_id: &str) -> Result<()> {
        let bytes = self.repositories_json_with(reference, image_id)?;
        fsutil::write_atomic(&self.repositories_path(), &bytes, 0o600)
    }

    /// The bytes of `repositories.json` as it is, with `reference` pointing at `image_id`.
    pub(crate) fn repositories_json_with(
        &self,
        reference: &Reference,
        image_id: &str,
    ) -> Result<Vec<u8>> {
        let mut repositories = self.load_repositories()?;
        repositories
            .repositories
            .entry(reference.repo.clone())
            .or_default()
            .insert(reference.familiar(), image_id.to_string());
        crate::go_json(&repositories)
    }

    /// Removes the entry whose key is `name` exactly, whatever repository it is filed under: also
    /// names that no longer parse (written by another tool, or crafted).
    pub fn remove_reference_name(&self, name: &str) -> Result<()> {
        let mut repositories = self.load_repositories()?;
        repositories.repositories.retain(|_, refs| {
            refs.remove(name);
            !refs.is_empty()
        });
        self.save_repositories(&repositories)
    }

    pub fn remove_reference(&self, reference: &Reference) -> Result<()> {
        let mut repositories = self.load_repositories()?;
        if let Some(refs) = repositories.repositories.get_mut(&reference.repo) {
            refs.remove(&reference.familiar());
            if refs.is_empty() {
                repositories.repositories.remove(&reference.repo);
            }
        }
        self.save_repositories(&repositories)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_references_carry_digests_and_split_their_domain() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let named = Named::parse("busybox").unwrap();
        assert_eq!(named.tag.as_deref(), Some("latest"));
        assert_eq!(named.full_name(), "docker.io/library/busybox");
        let named = Named::parse(&format!("127.0.0.1:5000/a/b@{digest}")).unwrap();
        assert_eq!(
            (named.repo.as_str(), named.tag.as_deref()),
            ("127.0.0.1:5000/a/b", None)
        );
        assert_eq!(
            named.domain_and_path(),
            ("127.0.0.1:5000".to_string(), "a/b".to_string())
        );
        assert_eq!(named.familiar(), format!("127.0.0.1:5000/a/b@{digest}"));
        let named = Named::parse(&format!("me/app:1@{digest}")).unwrap();
        assert_eq!(named.tag.as_deref(), Some("1"));
        assert_eq!(named.full_name(), "docker.io/me/app");
        assert_eq!(
            split_domain("localhost/x"),
            ("localhost".to_string(), "x".to_string())
        );
        for bad in ["busybox@sha256:abc", "busybox@md5:00", "Busybox@x"] {
            assert!(Named::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_docker_references() {
        let cases = [
            ("busybox", "busybox", "latest"),
            ("busybox:1.36", "busybox", "1.36"),
            ("docker.io/library/busybox:1", "busybox", "1"),
            ("library/busybox", "busybox", "latest"),
            ("docker.io/busybox", "busybox", "latest"),
            ("index.docker.io/library/busybox:2", "busybox", "2"),
            ("docker.io/library/a/b", "library/a/b", "latest"),
            ("localhost/x", "localhost/x", "latest"),
            ("localhost:5000", "localhost", "5000"),
            ("a---b_c", "a---b_c", "latest"),
            ("docker.io/myorg/app:v2", "myorg/app", "v2"),
            // Accepted by dockerd 20.10's `docker tag` (checked by hand against it).
            ("foo/sha256:x", "foo/sha256", "x"),
            ("sha512:abc", "sha512", "abc"),
            (
                "localhost:5000/spec-ns/x:1",
                "localhost:5000/spec-ns/x",
                "1",
            ),
            (
                "quay.io/a/b__c.d-e:T_1.0-x",
                "quay.io/a/b__c.d-e",
                "T_1.0-x",
            ),
        ];
        for (text, repo, tag) in cases {
            let reference = Reference::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(
                (reference.repo.as_str(), reference.tag.as_str()),
                (repo, tag),
                "{text}"
            );
        }
        let long_tag = format!("a:{}", "t".repeat(128));
        assert_eq!(
            Reference::parse(&long_tag).map(|r| r.tag.len()).ok(),
            Some(128)
        );
        for bad in [
            "",
            "Busybox",
            "a//b",
            "a:",
            "-a",
            "a-",
            "a..b",
            "a@sha256:00",
            "a:-x",
            "ab:c/d e",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a:b:c",
            "x.io:port/a",
            "a/b:",
            &format!("a:{}", "t".repeat(129)),
            // Refused by dockerd 20.10: "refusing to create an ambiguous tag using digest
            // algorithm as name".
            "sha256:6f61810d4a18",
            "sha256",
            "docker.io/library/sha256:x",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
