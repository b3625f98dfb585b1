//! `ovl info [--format json]`: the storage part of `docker info`, from a probe of the data root's
//! filesystem and the running kernel (a real overlay mount, never version numbers).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use store::DataRoot;

use syscompat::Resolver;

use crate::{kernel, views};

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// `json` for one JSON object instead of the `docker info`-like text.
    #[arg(long)]
    format: Option<String>,
}

/// Bytes of one lower entry in the mount data without `lowerdir+`: `l/` + a 26-character link id
/// + `:` (format.md §4.2; the link ids exist to keep this short).
const LOWER_ENTRY_LEN: usize = 2 + 26 + 1;

pub fn info(root_path: &Path, args: &InfoArgs) -> Result<()> {
    let root = DataRoot::open(root_path)?;
    let features = mount::KernelFeatures::probe(&root.overlay_home())
        .context("probing overlay support of the data root's filesystem")?;
    let features = kernel::restrict(features)?;
    let resolver = kernel::effective_resolver()?;
    let resolver_name = match resolver {
        Resolver::Kernel => "openat2",
        Resolver::Userspace => "userspace",
    };
    // mount(2) with Docker's option strings always; the new mount API only for stacks whose
    // options do not fit in a page.
    let mount_path = if features.lowerdir_plus {
        "mount(2), fsconfig lowerdir+ beyond one page"
    } else {
        "mount(2)"
    };
    let disabled: Vec<&str> = kernel::disabled()?.into_iter().collect();
    let native_diff = views::kernel_default_redirects().is_none();
    // Without lowerdir+, every lower goes into one page of mount data (less the terminating
    // NUL), next to `,upperdir=<id>/diff,workdir=<id>/work` and `index=off`.
    let fixed = ",upperdir=".len() + 64 + "/diff".len() + ",workdir=".len() + 64 + "/work".len();
    let fixed = fixed
        + if features.index_param {
            ",index=off".len()
        } else {
            0
        };
    let by_page = (features.page_size - 1 - "lowerdir=".len() - fixed) / LOWER_ENTRY_LEN;
    let max_layers = if features.lowerdir_plus {
        mount::OVL_MAX_STACK
    } else {
        by_page.min(mount::OVL_MAX_STACK)
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_default();
    let n_images = root.images()?.len();
    let n_containers = root.containers()?.len();
    let daemon = store::live_dockerd(root_path).map(|live| live.to_string());
    if args.format.as_deref() == Some("json") {
        let value = json!({
            "DockerRootDir": root_path,
            "Driver": "overlay2",
            "DriverStatus": [
                ["Backing Filesystem", features.backing_fs],
                ["Supports d_type", features.d_type.to_string()],
                ["Native Overlay Diff", native_diff.to_string()],
                ["userxattr", "false"],
            ],
            "IndexOff": features.index_param,
            "LowerdirPlus": features.lowerdir_plus,
            "Volatile": features.volatile,
            "Resolver": resolver_name,
            "MountPath": mount_path,
            "DisabledFeatures": disabled,
            "MaxLayersPerMount": max_layers,
            "KernelVersion": kernel,
            "Images": n_images,
            "Containers": n_containers,
            "LiveDockerd": daemon,
        });
        crate::out::outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if let Some(other) = &args.format {
        anyhow::bail!("unknown --format {other:?}: use json");
    }
    crate::out::outln!("Data Root: {}", root_path.display());
    crate::out::outln!(" Images: {n_images}");
    crate::out::outln!(" Containers: {n_containers}");
    crate::out::outln!(" Storage Driver: overlay2");
    crate::out::outln!("  Backing Filesystem: {}", features.backing_fs);
    crate::out::outln!("  Supports d_type: {}", features.d_type);
    crate::out::outln!("  Native Overlay Diff: {native_diff}");
    crate::out::outln!("  userxattr: false");
    crate::out::outln!("  index=off passed: {}", features.index_param);
    crate::out::outln!("  lowerdir+: {}", features.lowerdir_plus);
    crate::out::outln!("  volatile: {}", features.volatile);
    crate::out::outln!(
        "  Max layers per mount: {max_layers}{}",
        if features.lowerdir_plus {
            " (lowerdir+)"
        } else {
            " (one page of mount data with l/ links)"
        }
    );
    crate::out::outln!("  In-root resolver: {}", resolver.describe());
    crate::out::outln!("  Mount path: {mount_path}");
    if !disabled.is_empty() {
        crate::out::outln!(
            "  Disabled by {}: {}",
            kernel::DISABLE_VARIABLE,
            disabled.join(",")
        );
    }
    crate::out::outln!(" Kernel Version: {kernel}");
    crate::out::outln!(
        " Live dockerd on this root: {}",
        daemon.as_deref().unwrap_or("none")
    );
    Ok(())
}
