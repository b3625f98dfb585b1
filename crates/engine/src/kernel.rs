//! What ovl uses of the kernel, after `OVL_DISABLE_FEATURES`: the in-root resolver and the
//! overlay features of a probe.
//!
//! `OVL_DISABLE_FEATURES` is a comma-separated list of features to treat as absent even where
//! the kernel has them, so that the paths older kernels take run on a new one:
//! - `openat2`: paths inside layers are resolved by the userspace walk;
//! - `lowerdir+`: deep stacks are mounted with mount(2) only (relative `l/` paths, one page);
//! - `index`: no `index=off` in the mount options, as on kernels without the inodes index.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use mount::KernelFeatures;
use syscompat::Resolver;

/// The environment variable, documented in docs/testing.md and docs/cli.md.
pub const DISABLE_VARIABLE: &str = "OVL_DISABLE_FEATURES";

/// The features `OVL_DISABLE_FEATURES` can name.
const KNOWN: [&str; 4] = ["openat2", "lowerdir+", "index", "volatile"];

/// The features turned off by `OVL_DISABLE_FEATURES`; an unknown name is an error.
pub fn disabled() -> Result<BTreeSet<&'static str>> {
    let text = std::env::var(DISABLE_VARIABLE).unwrap_or_default();
    let mut names = BTreeSet::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match KNOWN.iter().find(|known| **known == name) {
            Some(known) => names.insert(*known),
            None => {
                return Err(Error::invalid(format!(
                    "{DISABLE_VARIABLE}: unknown feature {name:?} (known: {})",
                    KNOWN.join(", ")
                )))
            }
        };
    }
    Ok(names)
}

/// The resolver for paths inside layers: `openat2` (falling back to the walk per call where it
/// turns out missing) unless disabled.
pub fn resolver() -> Result<Resolver> {
    Ok(if disabled()?.contains("openat2") {
        Resolver::Userspace
    } else {
        Resolver::Kernel
    })
}

/// The resolver this process will really use: what `ovl info` reports.
pub fn effective_resolver() -> Result<Resolver> {
    Ok(match resolver()? {
        Resolver::Kernel => Resolver::probe(),
        forced => forced,
    })
}

/// `features` with what `OVL_DISABLE_FEATURES` turns off taken away.
pub fn restrict(mut features: KernelFeatures) -> Result<KernelFeatures> {
    let disabled = disabled()?;
    if disabled.contains("lowerdir+") {
        features.lowerdir_plus = false;
    }
    if disabled.contains("index") {
        features.index_param = false;
    }
    if disabled.contains("volatile") {
        features.volatile = false;
    }
    Ok(features)
}

/// Unpack options with the resolver in use.
pub fn unpack_options() -> Result<layer_unpack::UnpackOptions> {
    Ok(layer_unpack::UnpackOptions {
        resolver: resolver()?,
        ..Default::default()
    })
}
