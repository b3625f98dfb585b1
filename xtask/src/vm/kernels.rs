//! The kernels: built-in Debian packages fetched with `apt-get download` (another release's through
//! a private apt configuration), or a kernel given by path; their modules and what their build
//! configuration says they offer.

use super::*;

pub(super) fn resolve_kernel(vm_dir: &Path, arg: &KernelArg, lanes: &LaneChoice) -> Result<Kernel> {
    let builtin = BUILTIN_KERNELS.iter().find(|k| k.name == arg.spec);
    let lanes = match lanes {
        LaneChoice::Default => builtin
            .map(|builtin| builtin.lanes.to_vec())
            .unwrap_or_default(),
        LaneChoice::All => abi_lane::LANES.map(|lane| lane.name).to_vec(),
        LaneChoice::Only(lanes) => lanes.clone(),
    };
    if let Some(builtin) = builtin {
        ensure!(
            arg.modules.is_none(),
            "--modules is for --kernel PATH, not the built-in {}",
            builtin.name
        );
        let mut kernel = builtin_kernel(vm_dir, builtin)?;
        kernel.lanes = lanes;
        return Ok(kernel);
    }
    let vmlinuz = PathBuf::from(&arg.spec);
    ensure!(
        vmlinuz.is_file(),
        "--kernel {}: neither a built-in kernel ({}) nor a kernel image file",
        arg.spec,
        BUILTIN_KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let modules = arg.modules.clone().with_context(|| {
        format!(
            "--kernel {} needs --modules <lib/modules/RELEASE>",
            arg.spec
        )
    })?;
    let release = modules
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
        .with_context(|| format!("--modules {} names no release", modules.display()))?;
    let config = vmlinuz
        .parent()
        .map(|dir| dir.join(format!("config-{release}")))
        .filter(|path| path.is_file());
    let file_name = vmlinuz
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Kernel {
        name: file_name,
        vmlinuz,
        modules,
        release,
        config,
        lanes,
    })
}

/// The newest package matching the built-in's pattern, downloaded and unpacked once.
pub(super) fn builtin_kernel(vm_dir: &Path, builtin: &Builtin) -> Result<Kernel> {
    let kernels_dir = vm_dir.join("kernels");
    fs::create_dir_all(&kernels_dir)?;
    // Another release's packages come through a private apt configuration; the host's own
    // through the host's apt.
    let apt_config = match builtin.suite {
        Some(suite) => match private_apt(vm_dir, suite) {
            Ok(config) => Some(config),
            Err(err) => {
                eprintln!("vm-test: no apt source for {suite}: {err:#}");
                None
            }
        },
        None => None,
    };
    let apt = |program: &str| {
        let mut command = Command::new(program);
        if let Some(config) = &apt_config {
            command.env("APT_CONFIG", config);
        }
        command
    };
    let searched = match (builtin.suite, &apt_config) {
        // Without its private configuration, the host's apt would find the host's packages.
        (Some(_), None) => None,
        _ => Some(
            apt("apt-cache")
                .args(["search", "--names-only", builtin.pattern])
                .output()
                .context("running apt-cache search")?,
        ),
    };
    let mut packages: Vec<String> = searched
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    packages.sort_by_key(|name| version_key(name));
    let package = match packages.last() {
        Some(package) => package.clone(),
        None => {
            // Offline: a package unpacked by an earlier run.
            let mut unpacked: Vec<String> = fs::read_dir(&kernels_dir)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".unpacked"))
                .map(|name| name.trim_end_matches(".unpacked").to_string())
                .filter(|name| {
                    let prefix = builtin.pattern.split(r"\.").next().unwrap_or_default();
                    name.starts_with(prefix.trim_start_matches('^'))
                })
                .collect();
            unpacked.sort_by_key(|name| version_key(name));
            unpacked.pop().with_context(|| {
                let source = match builtin.suite {
                    Some(suite) => format!(
                        "the private apt configuration for {suite} (target/vm/apt/{suite}) found \
                         none"
                    ),
                    None => "is bookworm(-security) in the apt sources, and `apt-get update` \
                             done?"
                        .to_string(),
                };
                format!(
                    "no Debian package matches {} for kernel {} ({source})",
                    builtin.pattern, builtin.name
                )
            })?
        }
    };
    let dir = kernels_dir.join(format!("{package}.unpacked"));
    if !dir.join("boot").is_dir() {
        let download = kernels_dir.join("download");
        let _ = fs::remove_dir_all(&download);
        fs::create_dir_all(&download)?;
        if let Ok(policy) = apt("apt-cache").args(["policy", &package]).output() {
            let origin = candidate_origin(&String::from_utf8_lossy(&policy.stdout));
            eprintln!("vm-test: apt-get download {package} ({origin})");
        }
        run(apt("apt-get")
            .current_dir(&download)
            // The download directory is root's: apt's sandbox user could not write to it.
            .args(["-o", "APT::Sandbox::User=root", "download", "-qq", &package]))?;
        let deb = fs::read_dir(&download)?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
            .with_context(|| format!("apt-get download {package} left no .deb"))?;
        let partial = kernels_dir.join(format!("{package}.partial"));
        let _ = fs::remove_dir_all(&partial);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        fs::rename(&partial, &dir)?;
        fs::remove_dir_all(&download)?;
    }
    let boot = dir.join("boot");
    let vmlinuz = fs::read_dir(&boot)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = vmlinuz
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    let config = boot.join(format!("config-{release}"));
    Ok(Kernel {
        name: builtin.name.to_string(),
        modules: dir.join("lib/modules").join(&release),
        vmlinuz,
        config: config.is_file().then_some(config),
        release,
        lanes: Vec::new(),
    })
}

/// The candidate version of an `apt-cache policy` output and the source it comes from, as
/// `5.10.262-1 from http://deb.debian.org/debian-security bullseye-security/main amd64 Packages`.
pub(super) fn candidate_origin(policy: &str) -> String {
    let candidate = policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .unwrap_or("?");
    let mut lines = policy.lines().map(str::trim);
    let origin = lines
        .by_ref()
        .find(|line| line.trim_start_matches("*** ").starts_with(candidate))
        .and_then(|_| lines.next())
        .map(|line| {
            // "500 http://... suite/component arch Packages": the priority goes.
            line.split_once(' ').map_or(line, |(_, rest)| rest)
        })
        .unwrap_or("?");
    format!("{candidate} from {origin}")
}

// ------------------------------------------------------------------------------------------------
// A private apt configuration

/// A Debian archive the host's apt uses: its URI and the `Signed-By` value that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostSource {
    pub(super) uri: String,
    pub(super) signed_by: Option<String>,
    /// The file it was found in, for messages.
    pub(super) file: PathBuf,
}

/// Sets up `target/vm/apt/<suite>/` — its own `apt.conf`, sources, package lists, cache and
/// dpkg status — for `suite` from the host's own Debian mirror, refreshes its lists when they
/// are missing, stale or for other sources, and returns the `APT_CONFIG` file to run apt with.
/// The host's /etc/apt is only read: `apt.conf` points every directory apt reads or writes,
/// configuration parts and preferences included, into the private directory.
pub(super) fn private_apt(vm_dir: &Path, suite: &str) -> Result<PathBuf> {
    let (archive, security) = host_debian_sources()?;
    let dir = vm_dir.join("apt").join(suite);
    for sub in [
        "apt.conf.d",
        "preferences.d",
        "sources.list.d",
        "state/lists/partial",
        "cache/archives/partial",
    ] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let status = dir.join("state/status");
    if !status.exists() {
        fs::write(&status, "")?;
    }
    let mut sources = format!(
        "# Written by `cargo xtask vm-test`: the host's Debian mirror ({}) with suite {suite}.\n",
        archive.file.display()
    );
    let mut entries = vec![(archive, suite.to_string())];
    if let Some(security) = security {
        entries.push((security, format!("{suite}-security")));
    }
    for (source, suite) in &entries {
        sources.push_str(&format!(
            "\nTypes: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n",
            source.uri
        ));
        if let Some(signed_by) = &source.signed_by {
            sources.push_str(&format!("Signed-By: {signed_by}\n"));
        }
    }
    let sources_file = dir.join(format!("sources.list.d/{suite}.sources"));
    let path = |sub: &str| dir.join(sub).display().to_string();
    let config = [
        ("Dir::Etc::Main", path("apt.conf")),
        ("Dir::Etc::Parts", path("apt.conf.d")),
        ("Dir::Etc::SourceList", path("sources.list")),
        ("Dir::Etc::SourceParts", path("sources.list.d")),
        ("Dir::Etc::Preferences", path("preferences")),
        ("Dir::Etc::PreferencesParts", path("preferences.d")),
        ("Dir::State", path("state")),
        ("Dir::State::Lists", path("state/lists")),
        ("Dir::State::Status", path("state/status")),
        ("Dir::Cache", path("cache")),
        // The package lists only: no translations.
        ("Acquire::Languages", "none".to_string()),
        // Downloads go to directories root owns; apt would otherwise warn that its sandbox
        // user cannot write there, and then download as root all the same.
        ("APT::Sandbox::User", "root".to_string()),
    ]
    .iter()
    .map(|(key, value)| format!("{key} \"{value}\";\n"))
    .collect::<String>();
    let apt_conf = dir.join("apt.conf");
    let changed = fs::read_to_string(&sources_file).ok().as_deref() != Some(sources.as_str())
        || fs::read_to_string(&apt_conf).ok().as_deref() != Some(config.as_str());
    fs::write(&sources_file, &sources)?;
    fs::write(&apt_conf, &config)?;
    let updated = dir.join("state/updated");
    let fresh = fs::metadata(&updated)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|time| time.elapsed().ok())
        .is_some_and(|age| age < APT_LISTS_MAX_AGE);
    if changed || !fresh {
        let _ = fs::remove_file(&updated);
        eprintln!(
            "vm-test: apt-get update of the private {suite} sources ({})",
            sources_file.display()
        );
        let status = Command::new("apt-get")
            .env("APT_CONFIG", &apt_conf)
            .args(["update", "-qq"])
            .status()
            .context("running apt-get update")?;
        if status.success() {
            fs::write(&updated, "")?;
        } else {
            // Offline: older lists, or a package unpacked by an earlier run, may still do.
            eprintln!("vm-test: apt-get update of the private {suite} sources failed: {status}");
        }
    }
    Ok(apt_conf)
}

/// The host's Debian archive and security archive: the sources whose suite is the host's own
/// release (`VERSION_CODENAME` of /etc/os-release) and `<codename>-security`, from
/// /etc/apt/sources.list and the `.list` and `.sources` files of /etc/apt/sources.list.d.
pub(super) fn host_debian_sources() -> Result<(HostSource, Option<HostSource>)> {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|value| value.trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME: is the host Debian?")?;
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "list" || ext == "sources")
            })
            .collect();
        parts.sort();
        files.extend(parts);
    }
    let mut entries = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        if file.extension().is_some_and(|ext| ext == "sources") {
            entries.extend(parse_deb822_sources(&text, file));
        } else {
            entries.extend(parse_one_line_sources(&text, file));
        }
    }
    let find = |suite: &str| {
        entries
            .iter()
            .find(|(_, suites)| suites.iter().any(|s| s == suite))
            .map(|(source, _)| source.clone())
    };
    let archive = find(&codename).with_context(|| {
        format!(
            "no `deb` source with suite {codename} in {}: the host's Debian mirror is needed",
            files
                .iter()
                .map(|file| file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((archive, find(&format!("{codename}-security"))))
}

/// `deb [options] URI SUITE COMPONENT...` lines: each source with its suites.
pub(super) fn parse_one_line_sources(text: &str, file: &Path) -> Vec<(HostSource, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line
            .strip_prefix("deb")
            .filter(|rest| rest.starts_with([' ', '\t']))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let signed_by = options
            .split_whitespace()
            .find_map(|option| option.strip_prefix("signed-by="))
            .map(str::to_string);
        let mut fields = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (fields.next(), fields.next()) else {
            continue;
        };
        out.push((
            HostSource {
                uri: uri.to_string(),
                signed_by,
                file: file.to_path_buf(),
            },
            vec![suite.to_string()],
        ));
    }
    out
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Signed-By:`, `Enabled:`): each URI with the
/// stanza's suites. A multi-line `Signed-By` (an inline key) is kept with its continuation lines.
pub(super) fn parse_deb822_sources(text: &str, file: &Path) -> Vec<(HostSource, Vec<String>)> {
    let mut out = Vec::new();
    let uncommented: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    for stanza in uncommented.split(|line| line.trim().is_empty()) {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in stanza {
            if line.starts_with([' ', '\t']) {
                if let Some(key) = &last {
                    if let Some(value) = fields.get_mut(key) {
                        value.push('\n');
                        value.push_str(line);
                    }
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                let key = key.trim().to_ascii_lowercase();
                fields.insert(key.clone(), value.trim().to_string());
                last = Some(key);
            }
        }
        let field = |key: &str| fields.get(key).map(String::as_str).unwrap_or_default();
        if !field("types").split_whitespace().any(|t| t == "deb")
            || field("enabled").eq_ignore_ascii_case("no")
        {
            continue;
        }
        let suites: Vec<String> = field("suites")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let signed_by = fields.get("signed-by").cloned();
        for uri in field("uris").split_whitespace() {
            out.push((
                HostSource {
                    uri: uri.to_string(),
                    signed_by: signed_by.clone(),
                    file: file.to_path_buf(),
                },
                suites.clone(),
            ));
        }
    }
    out
}

/// Sorts package names by the numbers in them, so that `-56-` comes after `-9-`.
pub(super) fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// What the kernel's build config and release say it offers, for the guest to compare with what
/// `ovl info` finds by trying. `None` where the host cannot tell (no config file).
pub(super) fn expectations(kernel: &Kernel) -> serde_json::Value {
    let numbers = version_key(&kernel.release);
    let (major, minor) = (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    );
    // The release is all there is to go on for system calls: `lowerdir+` came with 6.8
    // (fs/overlayfs/params.c), openat2 with 5.6; and for the overlay's `volatile` option, 5.10
    // (Documentation/filesystems/overlayfs.rst, "Volatile mount").
    let lowerdir_plus = (major, minor) >= (6, 8);
    let openat2 = (major, minor) >= (5, 6);
    let volatile = (major, minor) >= (5, 10);
    let config = kernel
        .config
        .as_ref()
        .and_then(|path| fs::read_to_string(path).ok());
    let option = |name: &str| -> Option<Option<String>> {
        let config = config.as_ref()?;
        let set = format!("{name}=");
        let unset = format!("# {name} is not set");
        for line in config.lines() {
            if let Some(value) = line.strip_prefix(&set) {
                return Some(Some(value.to_string()));
            }
            if line == unset {
                return Some(None);
            }
        }
        // Not mentioned at all: the option does not exist in this kernel.
        Some(Some("absent".to_string()))
    };
    let enabled = |name: &str| option(name).map(|value| value.as_deref() == Some("y"));
    json!({
        "lowerdir_plus": lowerdir_plus,
        "openat2": openat2,
        "volatile": volatile,
        "xfs_v4": enabled("CONFIG_XFS_SUPPORT_V4"),
        // Docker uses naive diff when the kernel turns redirect_dir (or metacopy) on by default.
        "native_diff": match (enabled("CONFIG_OVERLAY_FS_REDIRECT_DIR"), enabled("CONFIG_OVERLAY_FS_METACOPY")) {
            (Some(redirect), Some(metacopy)) => Some(!redirect && !metacopy),
            _ => None,
        },
        // The `index` module parameter exists wherever the option exists, set or not.
        "index_param": option("CONFIG_OVERLAY_FS_INDEX").map(|value| value.as_deref() != Some("absent")),
    })
}

// ------------------------------------------------------------------------------------------------
// Modules

/// The modules to load, dependencies first: `(group, file name in the initramfs, bytes)`.
pub(super) fn modules(kernel: &Kernel) -> Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut files = BTreeMap::new();
    index_modules(&kernel.modules.join("kernel"), &mut files)?;
    let builtin: BTreeSet<String> = fs::read_to_string(kernel.modules.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .map(module_name)
        .collect();
    let mut loaded = BTreeSet::new();
    let mut out = Vec::new();
    for (group, names) in [
        ("base", &BASE_MODULES[..]),
        ("overlay", &OVERLAY_MODULES[..]),
    ] {
        for name in names {
            add_module(
                name,
                group,
                &files,
                &builtin,
                &mut loaded,
                &mut out,
                &kernel.modules,
            )?;
        }
    }
    Ok(out)
}

pub(super) fn add_module(
    name: &str,
    group: &'static str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    loaded: &mut BTreeSet<String>,
    out: &mut Vec<(&'static str, String, Vec<u8>)>,
    modules_dir: &Path,
) -> Result<()> {
    let name = name.replace('-', "_");
    if loaded.contains(&name) || builtin.contains(&name) {
        return Ok(());
    }
    let Some(path) = files.get(&name) else {
        if OPTIONAL_MODULES.contains(&name.as_str()) {
            return Ok(());
        }
        bail!(
            "module {name} is neither built into the kernel nor in {}",
            modules_dir.display()
        );
    };
    let bytes = decompress(path)?;
    loaded.insert(name.clone());
    for dep in modinfo(&bytes, "depends")
        .split(',')
        .filter(|dep| !dep.is_empty())
    {
        add_module(dep, group, files, builtin, loaded, out, modules_dir)?;
    }
    out.push((group, format!("{name}.ko"), bytes));
    Ok(())
}

pub(super) fn module_name(file: &str) -> String {
    file.split(".ko")
        .next()
        .unwrap_or_default()
        .replace('-', "_")
}

pub(super) fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, files)?;
        } else {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.contains(".ko") {
                files.insert(module_name(&file), path);
            }
        }
    }
    Ok(())
}

pub(super) fn decompress(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("reading {}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("running {tool} -dc {}", path.display()))?;
            ensure!(
                out.status.success(),
                "{tool} -dc {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(out.stdout)
        }
    }
}

/// A `key=value` string of a module's `.modinfo` section (NUL-separated strings).
pub(super) fn modinfo(bytes: &[u8], key: &str) -> String {
    let needle = format!("{key}=");
    bytes
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(needle.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}
