//! Manifests and indexes: Docker schema 2 and OCI, as a registry serves them; the layer media
//! types a pull accepts; the platform Docker chooses from a list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// The `Accept` header of a manifest request: every kind ovl reads.
pub const ACCEPT: &str = concat!(
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.oci.image.index.v1+json"
);

/// The largest manifest or index read (containerd's and Docker 23's limit, 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// The largest image config read.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list or image index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest request returned.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

impl Manifest {
    /// Parses manifest bytes by the response's `Content-Type`, or by their own `mediaType`
    /// (and shape) when the registry sends a generic one. `what` names the reference.
    pub fn parse(what: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: String,
            #[serde(default)]
            schema_version: u32,
            manifests: Option<serde_json::Value>,
        }
        let invalid = |message: String| Error::invalid(format!("manifest of {what}"), message);
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|err| invalid(format!("not JSON: {err}")))?;
        let content_type = content_type
            .map(|text| text.split(';').next().unwrap_or("").trim().to_string())
            .filter(|text| !text.is_empty() && text != "application/json" && text != "text/plain");
        let media_type = match content_type {
            Some(content_type) => content_type,
            None if !probe.media_type.is_empty() => probe.media_type.clone(),
            None if probe.manifests.is_some() => OCI_INDEX.to_string(),
            None => OCI_MANIFEST.to_string(),
        };
        if probe.schema_version == 1 || media_type == DOCKER_SCHEMA1 {
            return Err(invalid(
                "Docker schema 1 manifests are not supported; push the image again with a current client".to_string(),
            ));
        }
        if probe.schema_version != 2 {
            return Err(invalid(format!(
                "unsupported schemaVersion {}",
                probe.schema_version
            )));
        }
        match media_type.as_str() {
            DOCKER_MANIFEST | OCI_MANIFEST => serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(|err| invalid(err.to_string())),
            DOCKER_MANIFEST_LIST | OCI_INDEX => serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(|err| invalid(err.to_string())),
            other => Err(invalid(format!("unsupported media type {other}"))),
        }
    }
}

/// How a layer blob is compressed, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
    None,
}

/// The compression a layer's media type names; foreign and non-distributable layers, which
/// live outside the registry, and unknown types are refused.
pub fn layer_compression(what: &str, descriptor: &Descriptor) -> Result<LayerCompression> {
    let media_type = descriptor.media_type.as_str();
    let refuse =
        |message: String| Error::invalid(format!("layer {} of {what}", descriptor.digest), message);
    match media_type {
        DOCKER_LAYER_GZIP | OCI_LAYER_GZIP => Ok(LayerCompression::Gzip),
        OCI_LAYER_ZSTD => Ok(LayerCompression::Zstd),
        OCI_LAYER => Ok(LayerCompression::None),
        DOCKER_LAYER_FOREIGN => Err(refuse(format!(
            "foreign layer ({media_type}, urls {:?}) is not distributable; ovl pulls only layers the registry holds",
            descriptor.urls
        ))),
        _ if media_type.starts_with(OCI_LAYER_NONDISTRIBUTABLE) => Err(refuse(format!(
            "non-distributable layer ({media_type}) is not supported"
        ))),
        _ => Err(refuse(format!("unsupported layer media type {media_type:?}"))),
    }
}

/// A platform to pull: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The host's platform, as Go names it.
    pub fn host() -> PlatformSpec {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        PlatformSpec {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os[/arch[/variant]]` (`linux/arm64`, `linux/arm/v7`), normalised like
    /// containerd's `platforms.Parse`.
    pub fn parse(text: &str) -> Result<PlatformSpec> {
        let invalid = || {
            Error::invalid(
                format!("platform {text:?}"),
                "expected os/arch[/variant], such as linux/arm64",
            )
        };
        let parts: Vec<&str> = text.split('/').collect();
        if parts.iter().any(|part| part.is_empty()) || parts.len() > 3 {
            return Err(invalid());
        }
        let host = PlatformSpec::host();
        let os = parts[0].to_ascii_lowercase();
        let (architecture, variant) = match parts.get(1) {
            Some(arch) => normalize_arch(arch, parts.get(2).copied()),
            None => (host.architecture, host.variant),
        };
        Ok(PlatformSpec {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an index entry's platform is this one. A spec without a variant takes any
    /// variant; arm64's default variant is v8.
    pub fn matches(&self, platform: &Platform) -> bool {
        let (architecture, variant) =
            normalize_arch(&platform.architecture, platform.variant.as_deref());
        platform.os.eq_ignore_ascii_case(&self.os)
            && architecture == self.architecture
            && match (&self.variant, &variant) {
                (None, _) => true,
                (Some(wanted), Some(found)) => wanted == found,
                (Some(wanted), None) => self.architecture == "arm64" && wanted == "v8",
            }
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "i386" => ("386".to_string(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".to_string(),
            match variant.as_deref() {
                Some("8") | Some("v8") | None => Some("v8".to_string()),
                _ => variant,
            },
        ),
        "armhf" => ("arm".to_string(), Some("v7".to_string())),
        "armel" => ("arm".to_string(), Some("v6".to_string())),
        "arm" => (
            "arm".to_string(),
            match variant.as_deref() {
                None | Some("7") => Some("v7".to_string()),
                Some("5") | Some("6") | Some("8") => variant.map(|v| format!("v{v}")),
                _ => variant,
            },
        ),
        _ => (arch, variant),
    }
}

/// Chooses the entry of an index for `platform`: the first match, attestation manifests
/// never. `what` names the reference.
pub fn select<'i>(what: &str, index: &'i Index, platform: &PlatformSpec) -> Result<&'i Descriptor> {
    index
        .manifests
        .iter()
        .filter(|descriptor| {
            descriptor
                .annotations
                .get("vnd.docker.reference.type")
                .map(String::as_str)
                != Some("attestation-manifest")
        })
        .find(|descriptor| {
            descriptor
                .platform
                .as_ref()
                .is_some_and(|found| platform.matches(found))
        })
        .ok_or_else(|| Error::NotFound {
            what: format!("manifest for {what}"),
            message: format!(
                "no matching manifest for {platform} in the manifest list entries (the list has {})",
                index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn platforms_match_like_containerds() {
        let arm64 = PlatformSpec::parse("linux/arm64").unwrap();
        assert!(arm64.matches(&platform("linux", "arm64", None)));
        assert!(arm64.matches(&platform("linux", "arm64", Some("v8"))));
        assert!(arm64.matches(&platform("linux", "aarch64", None)));
        assert!(!arm64.matches(&platform("linux", "amd64", None)));
        let armv7 = PlatformSpec::parse("linux/arm/v7").unwrap();
        assert!(armv7.matches(&platform("linux", "arm", None)));
        assert!(!armv7.matches(&platform("linux", "arm", Some("v6"))));
        let amd64 = PlatformSpec::parse("linux/amd64").unwrap();
        assert!(amd64.matches(&platform("linux", "amd64", None)));
        assert!(!amd64.matches(&platform("windows", "amd64", None)));
        assert!(PlatformSpec::parse("linux//x").is_err());
        assert!(PlatformSpec::parse("a/b/c/d").is_err());
    }

    #[test]
    fn schema1_and_unknown_kinds_are_refused_by_name() {
        let schema1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let err = Manifest::parse("r:1", None, schema1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1"), "{err}");
        let odd = br#"{"schemaVersion":2,"mediaType":"application/x-odd"}"#;
        let err = Manifest::parse("r:1", None, odd).unwrap_err().to_string();
        assert!(
            err.contains("application/x-odd") && err.contains("r:1"),
            "{err}"
        );
    }

    #[test]
    fn foreign_layers_are_refused() {
        let descriptor = Descriptor {
            media_type: DOCKER_LAYER_FOREIGN.to_string(),
            size: 1,
            digest: format!("sha256:{}", "a".repeat(64)),
            urls: vec!["https://example.invalid/x".to_string()],
            annotations: BTreeMap::new(),
            platform: None,
        };
        let err = layer_compression("r:1", &descriptor)
            .unwrap_err()
            .to_string();
        assert!(err.contains("foreign layer"), "{err}");
    }
}
