//! `cargo xtask man|deb|install`: the manual pages, a Debian package, and a plain install of the
//! release build of ovl that `cargo xtask dist` makes.
//!
//! Everything installed besides the binary is made by the binary itself: the manual pages by the
//! hidden `ovl man-pages --out DIR`, the completion scripts by `ovl completion SHELL`, both from
//! the clap definitions, so they cannot drift from the commands the binary accepts.
//!
//! `deb` and `install` share one layout: [`plan_tree`] lists every file with its path below the
//! prefix, its content and its mode (plain data, unit-tested), and [`lay_out_tree`] writes such a
//! list below a directory. They differ only where Debian's conventions and a plain install's do:
//! the zsh directory (`vendor-completions` for packages, `site-functions` for local installs) and
//! the package's documentation directory.
//!
//! The package's `Depends` comes from `dpkg-shlibdeps`, run on the staged binary with a minimal
//! temporary `debian/control`: it maps each shared library the binary needs to the package that
//! ships it and the lowest version that has every symbol version the binary uses. For the
//! glibc-2.17 build of `cargo xtask dist` on Debian 12 that is `libc6 (>= 2.34)`: Debian's
//! symbols file dates libpthread's and libdl's symbols from glibc 2.34, where they moved into
//! libc, although the binary itself needs only 2.17. Dates (the pages' footer, the
//! changelog entry, the files' mtimes in the package) come from `SOURCE_DATE_EPOCH`, by default
//! the time of the last commit, so that two builds of one commit give the same package.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The Debian revision appended to the workspace version (`0.1.0-1`).
const DEBIAN_REVISION: &str = "1";

/// The one-line and long description of the package.
const DESCRIPTION: &str = "\
Docker 20.10 overlay2 images and container root filesystems without a daemon
 ovl is a userspace overlay2 graph driver and container rootfs assembler. It
 unpacks image layers into a data root in Docker 20.10's own overlay2 format
 and mounts a container's root filesystem from them with the kernel's
 OverlayFS: load, save, pull, push, commit, diff and the other image and
 container commands, without dockerd.";

/// Licences whose full text Debian ships in `/usr/share/common-licenses`.
const COMMON_LICENSES: [&str; 4] = ["Apache-2.0", "CC0-1.0", "MPL-2.0", "GPL-3"];

/// `cargo xtask man`: writes the manual pages of a release build to `target/man`.
pub fn man(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("cargo xtask man takes no arguments, got {arg}");
    }
    let build = build_release()?;
    let out = crate::workspace_root().join("target/man");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    write_man_pages(&build, &out)?;
    println!("{}", out.display());
    Ok(())
}

/// `cargo xtask deb`: builds `target/deb/ovl_<version>_<arch>.deb` and prints its path.
pub fn deb(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("cargo xtask deb takes no arguments, got {arg}");
    }
    let root = crate::workspace_root();
    let build = build_release()?;
    let version = format!("{}-{DEBIAN_REVISION}", build.version);
    let architecture =
        String::from_utf8(output_of(Command::new("dpkg").arg("--print-architecture"))?)?
            .trim()
            .to_string();
    let deb_dir = root.join("target/deb");
    let work = deb_dir.join("work");
    let staging = deb_dir.join(format!("ovl_{version}_{architecture}"));
    for dir in [&work, &staging] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    fs::create_dir_all(&work)?;
    let artifacts = make_artifacts(&build, &work)?;

    let maintainer = maintainer(&root)?;
    let mut docs = vec![
        DocFile::new("copyright", render_copyright(&build.crates).into_bytes()),
        DocFile::new(
            "changelog.Debian.gz",
            gzip(
                &work,
                "changelog.Debian",
                render_changelog(&version, &maintainer, build.source_date_epoch).as_bytes(),
            )?,
        ),
        DocFile::new("README.md", fs::read(root.join("README.md"))?),
    ];
    let mut doc_pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<_>>()?;
    doc_pages.retain(|path| path.extension().is_some_and(|ext| ext == "md"));
    doc_pages.sort();
    for path in doc_pages {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        docs.push(DocFile::new(&format!("docs/{name}"), fs::read(&path)?));
    }

    let files = plan_tree(Path::new("/usr"), &Layout::DEBIAN, &artifacts, &docs);
    lay_out_tree(&staging, &files)?;
    let depends = shlibs_depends(&work, &staging.join("usr/bin/ovl"))?;
    let control = Control {
        version: &version,
        architecture: &architecture,
        maintainer: &maintainer,
        installed_size_kib: installed_size_kib(&files),
        depends: &depends,
    };
    let debian = staging.join("DEBIAN");
    make_dir(&debian)?;
    write_file(&debian.join("control"), control.render().as_bytes(), 0o644)?;
    let md5sums = md5sums(&staging, &files)?;
    write_file(&debian.join("md5sums"), md5sums.as_bytes(), 0o644)?;

    let package = deb_dir.join(format!("ovl_{version}_{architecture}.deb"));
    crate::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&staging)
            .arg(&package)
            .env("SOURCE_DATE_EPOCH", build.source_date_epoch.to_string()),
    )?;
    // Only the package stays: the staging tree would otherwise match `target/deb/ovl_*`.
    for dir in [&work, &staging] {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let size = fs::metadata(&package)?.len();
    eprintln!(
        "deb: {} is {size} bytes ({:.1} MiB); Depends: {depends}",
        package.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    println!("{}", package.display());
    Ok(())
}

/// `cargo xtask install [--prefix DIR] [--destdir DIR]`: installs the binary, the manual pages
/// and the completion scripts below `DESTDIR/PREFIX` (prefix `/usr/local` by default).
pub fn install(args: &[String]) -> Result<()> {
    let mut prefix = PathBuf::from("/usr/local");
    let mut destdir = PathBuf::from("/");
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--prefix" | "--destdir" => {
                let Some(value) = rest.next() else {
                    bail!("{arg} needs a directory");
                };
                if arg == "--prefix" {
                    prefix = PathBuf::from(value);
                } else {
                    destdir = PathBuf::from(value);
                }
            }
            _ => bail!("usage: cargo xtask install [--prefix DIR] [--destdir DIR], got {arg}"),
        }
    }
    ensure!(
        prefix.is_absolute(),
        "--prefix must be an absolute path, got {}",
        prefix.display()
    );
    let root = crate::workspace_root();
    let build = build_release()?;
    let work = root.join("target/install-work");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work)?;
    let artifacts = make_artifacts(&build, &work)?;
    let files = plan_tree(&prefix, &Layout::PLAIN, &artifacts, &[]);
    fs::create_dir_all(&destdir).with_context(|| format!("creating {}", destdir.display()))?;
    lay_out_tree(&destdir, &files)?;
    fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    for file in &files {
        println!("{}", destdir.join(&file.path).display());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The build and what the binary makes

/// A release build of the ovl binary and what the packaging needs to know about it.
struct Build {
    binary: PathBuf,
    version: String,
    /// The crates linked into the binary, from `cargo metadata`.
    crates: Vec<LinkedCrate>,
    source_date_epoch: i64,
}

/// One crate of the binary's dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LinkedCrate {
    name: String,
    version: String,
    /// The crate's SPDX licence expression, as its manifest says it.
    license: String,
}

/// Builds the release binary and reads its version and dependency graph. The binary is the one
/// `cargo xtask dist` makes (a release build that needs glibc 2.17 at most), so that `cargo
/// xtask test` builds one release binary for the package and the old-kernel suites.
fn build_release() -> Result<Build> {
    let root = crate::workspace_root();
    let binary = crate::dist::dist_binary()?;
    let host = host_triple()?;
    let metadata: serde_json::Value = serde_json::from_slice(&output_of(
        Command::new(crate::cargo())
            .current_dir(&root)
            .args(["metadata", "--format-version", "1", "--filter-platform"])
            .arg(&host),
    )?)
    .context("parsing cargo metadata")?;
    let version = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == "ovl")
        .and_then(|package| package["version"].as_str())
        .context("cargo metadata has no package ovl")?
        .to_string();
    Ok(Build {
        binary,
        version,
        crates: linked_crates(&metadata, "ovl")?,
        source_date_epoch: source_date_epoch(&root)?,
    })
}

/// The host's Rust target triple (`rustc -vV`), which the binary is built for.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let text = String::from_utf8(output_of(Command::new(rustc).arg("-vV"))?)?;
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// `SOURCE_DATE_EPOCH` when set, else the commit time of `HEAD`, else now.
fn source_date_epoch(root: &Path) -> Result<i64> {
    if let Ok(text) = std::env::var("SOURCE_DATE_EPOCH") {
        return text
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds"));
    }
    let from_git = Command::new("git")
        .current_dir(root)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok());
    Ok(from_git.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs() as i64)
            .unwrap_or(0)
    }))
}

/// The crates statically linked into `package`'s binary: its normal dependencies, transitively,
/// without build dependencies, dev-dependencies, proc-macro crates (they run in the compiler) and
/// workspace members (covered by the workspace licence). The resolve comes from `cargo metadata
/// --filter-platform`, so dependencies of other platforms are already left out.
fn linked_crates(metadata: &serde_json::Value, package: &str) -> Result<Vec<LinkedCrate>> {
    let packages: Vec<&serde_json::Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let by_id = |id: &str| packages.iter().find(|package| package["id"] == id).copied();
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let nodes: Vec<&serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let start = packages
        .iter()
        .find(|candidate| candidate["name"] == package && members.contains(id_of(candidate)))
        .map(|candidate| id_of(candidate))
        .with_context(|| format!("cargo metadata has no workspace package {package}"))?;
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    let mut crates = BTreeSet::new();
    while let Some(id) = stack.pop() {
        let Some(node) = nodes.iter().find(|node| node["id"] == id) else {
            continue;
        };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let is_normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap_or_default();
            if !is_normal || !seen.insert(dep_id) {
                continue;
            }
            let Some(dep_package) = by_id(dep_id) else {
                continue;
            };
            let is_proc_macro =
                dep_package["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|target| {
                        target["kind"]
                            .as_array()
                            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "proc-macro"))
                    });
            if is_proc_macro {
                continue;
            }
            stack.push(dep_id);
            if !members.contains(dep_id) {
                crates.insert(LinkedCrate {
                    name: dep_package["name"].as_str().unwrap_or_default().to_string(),
                    version: dep_package["version"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    license: dep_package["license"]
                        .as_str()
                        .map(|license| license.replace('/', " OR "))
                        .unwrap_or_else(|| "unknown (see the crate's licence file)".to_string()),
                });
            }
        }
    }
    Ok(crates.into_iter().collect())
}

fn id_of(package: &serde_json::Value) -> &str {
    package["id"].as_str().unwrap_or_default()
}

/// What gets installed besides the binary, and the stripped binary itself, all under `work`.
struct Artifacts {
    binary: PathBuf,
    /// `(file name, gzip-compressed page)`: `ovl-load.1.gz`.
    man_pages: Vec<(String, Vec<u8>)>,
    bash_completion: Vec<u8>,
    zsh_completion: Vec<u8>,
    fish_completion: Vec<u8>,
}

/// A stripped copy of the binary, its manual pages compressed, and its completion scripts.
fn make_artifacts(build: &Build, work: &Path) -> Result<Artifacts> {
    let binary = work.join("ovl");
    fs::copy(&build.binary, &binary)
        .with_context(|| format!("copying {}", build.binary.display()))?;
    // The options of Debian's dh_strip for an executable.
    crate::run(
        Command::new("strip")
            .args([
                "--remove-section=.comment",
                "--remove-section=.note",
                "--strip-unneeded",
            ])
            .arg(&binary),
    )?;
    let pages_dir = work.join("man");
    write_man_pages(build, &pages_dir)?;
    let mut page_paths: Vec<PathBuf> = fs::read_dir(&pages_dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<_>>()?;
    page_paths.retain(|path| path.extension().is_some_and(|ext| ext == "1"));
    page_paths.sort();
    ensure!(
        !page_paths.is_empty(),
        "ovl man-pages wrote no page to {}",
        pages_dir.display()
    );
    let mut man_pages = Vec::new();
    for path in page_paths {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        man_pages.push((format!("{name}.gz"), gzip_file(&path)?));
    }
    let completion = |shell: &str| output_of(Command::new(&binary).args(["completion", shell]));
    Ok(Artifacts {
        bash_completion: completion("bash")?,
        zsh_completion: completion("zsh")?,
        fish_completion: completion("fish")?,
        binary,
        man_pages,
    })
}

/// Runs the built binary's hidden `man-pages` command into `out`.
fn write_man_pages(build: &Build, out: &Path) -> Result<()> {
    output_of(
        Command::new(&build.binary)
            .arg("man-pages")
            .arg("--out")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", build.source_date_epoch.to_string()),
    )?;
    Ok(())
}

/// `gzip -9n` of a file: best compression, without the name and time in the header, as Debian
/// wants for manual pages and changelogs (reproducible).
fn gzip_file(path: &Path) -> Result<Vec<u8>> {
    output_of(Command::new("gzip").args(["-9n", "-c"]).arg(path))
}

/// `gzip -9n` of `content`, through the file `work/name`.
fn gzip(work: &Path, name: &str, content: &[u8]) -> Result<Vec<u8>> {
    let path = work.join(name);
    fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    gzip_file(&path)
}

// ------------------------------------------------------------------------------------------------
// The layout, shared by `deb` and `install`

/// Where a layout puts what differs between a package and a local install.
#[derive(Debug)]
struct Layout {
    /// The zsh completion directory below the prefix.
    zsh_dir: &'static str,
    /// The documentation directory below the prefix, for the files passed as docs.
    doc_dir: &'static str,
}

impl Layout {
    /// Debian's places for a package's files below `/usr`.
    const DEBIAN: Layout = Layout {
        zsh_dir: "share/zsh/vendor-completions",
        doc_dir: "share/doc/ovl",
    };
    /// The places for a local install below `/usr/local` or another prefix.
    const PLAIN: Layout = Layout {
        zsh_dir: "share/zsh/site-functions",
        doc_dir: "share/doc/ovl",
    };
}

/// A documentation file: its path below the doc directory and its content.
struct DocFile {
    name: String,
    content: Vec<u8>,
}

impl DocFile {
    fn new(name: &str, content: Vec<u8>) -> DocFile {
        DocFile {
            name: name.to_string(),
            content,
        }
    }
}

/// Where a planned file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Copy(PathBuf),
    Bytes(Vec<u8>),
}

/// One file of the tree: its path relative to the tree's root (`usr/bin/ovl`), its content and
/// its mode. Directories are made 0755.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedFile {
    path: PathBuf,
    content: Content,
    mode: u32,
}

/// Every file of an install below `prefix` (an absolute path such as `/usr`), sorted by path.
fn plan_tree(
    prefix: &Path,
    layout: &Layout,
    artifacts: &Artifacts,
    docs: &[DocFile],
) -> Vec<PlannedFile> {
    let below = prefix.strip_prefix("/").unwrap_or(prefix);
    let file = |relative: String, content: Content, mode: u32| PlannedFile {
        path: below.join(relative),
        content,
        mode,
    };
    let mut files = vec![
        file(
            "bin/ovl".to_string(),
            Content::Copy(artifacts.binary.clone()),
            0o755,
        ),
        file(
            "share/bash-completion/completions/ovl".to_string(),
            Content::Bytes(artifacts.bash_completion.clone()),
            0o644,
        ),
        file(
            format!("{}/_ovl", layout.zsh_dir),
            Content::Bytes(artifacts.zsh_completion.clone()),
            0o644,
        ),
        file(
            "share/fish/vendor_completions.d/ovl.fish".to_string(),
            Content::Bytes(artifacts.fish_completion.clone()),
            0o644,
        ),
    ];
    for (name, page) in &artifacts.man_pages {
        files.push(file(
            format!("share/man/man1/{name}"),
            Content::Bytes(page.clone()),
            0o644,
        ));
    }
    for doc in docs {
        files.push(file(
            format!("{}/{}", layout.doc_dir, doc.name),
            Content::Bytes(doc.content.clone()),
            0o644,
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Writes `files` below `tree_root`, making missing directories 0755; each file is written to a
/// temporary name beside it and renamed into place, so an interrupted install leaves whole files.
fn lay_out_tree(tree_root: &Path, files: &[PlannedFile]) -> Result<()> {
    for planned in files {
        let path = tree_root.join(&planned.path);
        if let Some(parent) = path.parent() {
            make_dirs_below(tree_root, parent)?;
        }
        match &planned.content {
            Content::Bytes(bytes) => write_file(&path, bytes, planned.mode)?,
            Content::Copy(source) => {
                let bytes =
                    fs::read(source).with_context(|| format!("reading {}", source.display()))?;
                write_file(&path, &bytes, planned.mode)?;
            }
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents down from `tree_root`, each with mode 0755 whatever the
/// umask; existing directories are left as they are.
fn make_dirs_below(tree_root: &Path, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.exists() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) if current != tree_root => current = parent,
            _ => break,
        }
    }
    for dir in missing.iter().rev() {
        make_dir(dir)?;
    }
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))
}

/// Writes `path` with `mode` through a temporary name and a rename.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.xtask-tmp"));
    fs::write(&temporary, bytes).with_context(|| format!("writing {}", temporary.display()))?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))
}

// ------------------------------------------------------------------------------------------------
// The package's metadata

/// The fields of `DEBIAN/control` that vary.
struct Control<'a> {
    version: &'a str,
    architecture: &'a str,
    maintainer: &'a str,
    installed_size_kib: u64,
    depends: &'a str,
}

impl Control<'_> {
    fn render(&self) -> String {
        let mut text = format!(
            "Package: ovl\n\
             Version: {}\n\
             Architecture: {}\n\
             Maintainer: {}\n\
             Installed-Size: {}\n",
            self.version, self.architecture, self.maintainer, self.installed_size_kib
        );
        if !self.depends.is_empty() {
            text.push_str(&format!("Depends: {}\n", self.depends));
        }
        // Completion scripts are only read where bash-completion is installed; docker.io is the
        // daemon that can share a data root with ovl.
        text.push_str(
            "Recommends: bash-completion\n\
             Suggests: docker.io\n\
             Section: admin\n\
             Priority: optional\n",
        );
        text.push_str(&format!("Description: {DESCRIPTION}\n"));
        text
    }
}

/// `Installed-Size` as dpkg-gencontrol counts it: each file's size in KiB rounded up, plus one
/// KiB for each directory.
fn installed_size_kib(files: &[PlannedFile]) -> u64 {
    let mut directories = BTreeSet::new();
    let mut kib = 0;
    for planned in files {
        let size = match &planned.content {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Copy(source) => fs::metadata(source).map(|meta| meta.len()).unwrap_or(0),
        };
        kib += size.div_ceil(1024);
        let mut parent = planned.path.parent();
        while let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
            directories.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    kib + directories.len() as u64
}

/// The `Depends` value for the binary: `dpkg-shlibdeps` in a scratch directory with the minimal
/// `debian/control` it insists on.
fn shlibs_depends(work: &Path, binary: &Path) -> Result<String> {
    let scratch = work.join("shlibdeps");
    fs::create_dir_all(scratch.join("debian"))?;
    fs::write(
        scratch.join("debian/control"),
        "Source: ovl\n\nPackage: ovl\nArchitecture: any\n",
    )?;
    let binary = fs::canonicalize(binary)?;
    let mut argument = std::ffi::OsString::from("-e");
    argument.push(&binary);
    let text = String::from_utf8(output_of(
        Command::new("dpkg-shlibdeps")
            .current_dir(&scratch)
            .arg("-O")
            .arg(argument),
    )?)?;
    text.lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(|depends| depends.trim().to_string())
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {text:?}"))
}

/// `DEBIAN/md5sums`: `md5sum` of every file, with paths relative to the package root.
fn md5sums(staging: &Path, files: &[PlannedFile]) -> Result<String> {
    let text = String::from_utf8(output_of(
        Command::new("md5sum")
            .current_dir(staging)
            .arg("--")
            .args(files.iter().map(|planned| &planned.path)),
    )?)?;
    ensure!(
        text.lines().count() == files.len(),
        "md5sum gave {} lines for {} files",
        text.lines().count(),
        files.len()
    );
    Ok(text)
}

/// The maintainer: `DEBFULLNAME <DEBEMAIL>` when both are set (the variables Debian's tools
/// read), else the author of the last commit.
fn maintainer(root: &Path) -> Result<String> {
    if let (Ok(name), Ok(email)) = (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        return Ok(format!("{name} <{email}>"));
    }
    let text = String::from_utf8(output_of(Command::new("git").current_dir(root).args([
        "log",
        "-1",
        "--format=%an <%ae>",
    ]))?)?;
    Ok(text.trim().to_string())
}

/// `changelog.Debian`: one entry for this version.
fn render_changelog(version: &str, maintainer: &str, seconds: i64) -> String {
    format!(
        "ovl ({version}) unstable; urgency=medium\n\
         \n  * Built from the ovl source tree with `cargo xtask deb`.\n\
         \n -- {maintainer}  {}\n",
        rfc2822_date(seconds)
    )
}

/// `Fri, 04 Dec 2026 22:14:04 +0000`: the date format of Debian changelogs, in UTC.
fn rfc2822_date(seconds: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = gocompat::time::civil_from_days(days);
    // 1970-01-01, day 0, was a Thursday.
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1).clamp(0, 11) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// `copyright` in the machine-readable format (DEP-5): ovl under the workspace licence, and one
/// paragraph for the binary, which also holds the code of the crates it links statically.
fn render_copyright(crates: &[LinkedCrate]) -> String {
    let mut expressions = BTreeSet::new();
    let mut short_names = BTreeSet::from(["Apache-2.0".to_string()]);
    for linked in crates {
        expressions.insert(dep5_expression(&linked.license));
        for word in linked
            .license
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        {
            if !word.is_empty() && !matches!(word, "OR" | "AND" | "WITH") && !is_exception(word) {
                short_names.insert(word.to_string());
            }
        }
    }
    expressions.remove("Apache-2.0");
    let mut binary_license = String::from("Apache-2.0");
    for expression in &expressions {
        binary_license.push_str(" and ");
        if expression.contains(' ') {
            binary_license.push_str(&format!("({expression})"));
        } else {
            binary_license.push_str(expression);
        }
    }
    let mut text = String::from(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: ovl\n\
         \n\
         Files: *\n\
         Copyright: the ovl authors\n\
         License: Apache-2.0\n\
         \n\
         Files: usr/bin/ovl\n\
         Copyright: the ovl authors and the authors of the Rust crates listed below\n",
    );
    text.push_str(&format!("License: {binary_license}\n"));
    text.push_str(
        "Comment: The binary links these Rust crates statically (name version: licence\n \
         expression as the crate declares it); each crate's published source holds its\n \
         licence text and copyright notices.\n",
    );
    for linked in crates {
        text.push_str(&format!(
            " {} {}: {}\n",
            linked.name, linked.version, linked.license
        ));
    }
    for name in &short_names {
        text.push_str(&format!("\nLicense: {name}\n"));
        if COMMON_LICENSES.contains(&name.as_str()) {
            text.push_str(&format!(
                " On Debian systems, the full text of this licence is in\n \
                 /usr/share/common-licenses/{name}.\n"
            ));
        } else {
            text.push_str(&format!(
                " The SPDX licence {name}; its text is part of the source of each crate above\n \
                 that uses it.\n"
            ));
        }
    }
    text
}

/// An SPDX expression in DEP-5's spelling: `or`, `and` and `with` in lower case.
fn dep5_expression(spdx: &str) -> String {
    spdx.split(' ')
        .map(|word| match word {
            "OR" => "or",
            "AND" => "and",
            "WITH" => "with",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An SPDX exception identifier (`LLVM-exception`), which follows `WITH` and is no licence.
fn is_exception(word: &str) -> bool {
    word.ends_with("-exception") || word.ends_with("-exception-2.0")
}

/// Runs `command` and returns its stdout; a failure names the command and shows its stderr.
fn output_of(command: &mut Command) -> Result<Vec<u8>> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts() -> Artifacts {
        Artifacts {
            binary: PathBuf::from("/work/ovl"),
            man_pages: vec![
                ("ovl.1.gz".to_string(), b"a".to_vec()),
                ("ovl-load.1.gz".to_string(), b"b".to_vec()),
            ],
            bash_completion: b"bash".to_vec(),
            zsh_completion: b"zsh".to_vec(),
            fish_completion: b"fish".to_vec(),
        }
    }

    fn paths_and_modes(files: &[PlannedFile]) -> Vec<(String, u32)> {
        files
            .iter()
            .map(|file| (file.path.display().to_string(), file.mode))
            .collect()
    }

    #[test]
    fn the_package_puts_each_file_where_debian_looks_for_it() {
        let docs = [DocFile::new("copyright", b"c".to_vec())];
        let files = plan_tree(Path::new("/usr"), &Layout::DEBIAN, &artifacts(), &docs);
        assert_eq!(
            paths_and_modes(&files),
            [
                ("usr/bin/ovl", 0o755),
                ("usr/share/bash-completion/completions/ovl", 0o644),
                ("usr/share/doc/ovl/copyright", 0o644),
                ("usr/share/fish/vendor_completions.d/ovl.fish", 0o644),
                ("usr/share/man/man1/ovl-load.1.gz", 0o644),
                ("usr/share/man/man1/ovl.1.gz", 0o644),
                ("usr/share/zsh/vendor-completions/_ovl", 0o644),
            ]
            .map(|(path, mode)| (path.to_string(), mode))
        );
        assert_eq!(files[0].content, Content::Copy(PathBuf::from("/work/ovl")));
    }

    #[test]
    fn a_plain_install_uses_the_prefix_and_zsh_site_functions() {
        let files = plan_tree(Path::new("/opt/ovl"), &Layout::PLAIN, &artifacts(), &[]);
        let paths: Vec<String> = paths_and_modes(&files)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert!(paths.contains(&"opt/ovl/bin/ovl".to_string()));
        assert!(paths.contains(&"opt/ovl/share/zsh/site-functions/_ovl".to_string()));
        assert!(paths.contains(&"opt/ovl/share/man/man1/ovl.1.gz".to_string()));
        assert!(!paths.iter().any(|path| path.contains("doc")));
    }

    #[test]
    fn installed_size_rounds_each_file_up_and_counts_directories() {
        let files = vec![
            PlannedFile {
                path: PathBuf::from("usr/share/a"),
                content: Content::Bytes(vec![0; 1]),
                mode: 0o644,
            },
            PlannedFile {
                path: PathBuf::from("usr/share/b"),
                content: Content::Bytes(vec![0; 1025]),
                mode: 0o644,
            },
        ];
        // 1 + 2 KiB of files, and the directories usr and usr/share.
        assert_eq!(installed_size_kib(&files), 5);
    }

    #[test]
    fn the_control_file_has_the_fields_dpkg_needs() {
        let control = Control {
            version: "0.1.0-1",
            architecture: "amd64",
            maintainer: "A Person <a@example.org>",
            installed_size_kib: 9000,
            depends: "libc6 (>= 2.34), libgcc-s1 (>= 4.2)",
        }
        .render();
        assert!(control.starts_with(
            "Package: ovl\nVersion: 0.1.0-1\nArchitecture: amd64\n\
             Maintainer: A Person <a@example.org>\nInstalled-Size: 9000\n\
             Depends: libc6 (>= 2.34), libgcc-s1 (>= 4.2)\n"
        ));
        assert!(control.contains("\nSection: admin\nPriority: optional\n"));
        assert!(control.ends_with("without dockerd.\n"));
        // Every continuation line of the description starts with a space and none is empty.
        let description = &control[control.find("Description:").unwrap_or(0)..];
        for line in description.lines().skip(1) {
            assert!(line.starts_with(' ') && line.trim().len() > 1, "{line:?}");
        }
    }

    #[test]
    fn changelog_dates_are_rfc_2822_in_utc() {
        assert_eq!(rfc2822_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_date(1_796_422_444),
            "Fri, 04 Dec 2026 22:14:04 +0000"
        );
        let changelog = render_changelog("0.1.0-1", "A <a@example.org>", 0);
        assert!(changelog.starts_with("ovl (0.1.0-1) unstable; urgency=medium\n\n  * "));
        assert!(changelog.ends_with("\n -- A <a@example.org>  Thu, 01 Jan 1970 00:00:00 +0000\n"));
    }

    #[test]
    fn copyright_names_every_crate_and_licence() {
        let crates = vec![
            LinkedCrate {
                name: "anyhow".to_string(),
                version: "1.0.0".to_string(),
                license: "MIT OR Apache-2.0".to_string(),
            },
            LinkedCrate {
                name: "rustix".to_string(),
                version: "1.1.0".to_string(),
                license: "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT".to_string(),
            },
            LinkedCrate {
                name: "zerocopy".to_string(),
                version: "0.8.0".to_string(),
                license: "BSD-2-Clause".to_string(),
            },
        ];
        let text = render_copyright(&crates);
        assert!(text.contains(
            "License: Apache-2.0 and (Apache-2.0 with LLVM-exception or Apache-2.0 or MIT) \
             and BSD-2-Clause and (MIT or Apache-2.0)\n"
        ));
        assert!(text.contains("\n anyhow 1.0.0: MIT OR Apache-2.0\n"));
        assert!(text.contains("\n zerocopy 0.8.0: BSD-2-Clause\n"));
        for name in ["Apache-2.0", "MIT", "BSD-2-Clause"] {
            assert!(text.contains(&format!("\nLicense: {name}\n ")), "{name}");
        }
        assert!(!text.contains("License: LLVM-exception"));
        // Paragraphs are separated by exactly one empty line and no field line is empty.
        assert!(!text.contains("\n\n\n"));
    }

    #[test]
    fn linked_crates_follow_normal_edges_only_and_skip_members_and_proc_macros() {
        let package = |id: &str, name: &str, license: &str, kind: &str| {
            serde_json::json!({"id": id, "name": name, "version": "1.0.0", "license": license,
                "targets": [{"kind": [kind]}]})
        };
        let edge = |id: &str, kind: serde_json::Value| serde_json::json!({"pkg": id, "dep_kinds": [{"kind": kind}]});
        let metadata = serde_json::json!({
            "packages": [
                package("ovl", "ovl", "Apache-2.0", "bin"),
                package("engine", "engine", "Apache-2.0", "lib"),
                package("serde", "serde", "MIT/Apache-2.0", "lib"),
                package("derive", "serde_derive", "MIT", "proc-macro"),
                package("syn", "syn", "MIT", "lib"),
                package("cc", "cc", "MIT", "lib"),
                package("tempfile", "tempfile", "MIT", "lib"),
            ],
            "workspace_members": ["ovl", "engine"],
            "resolve": {"nodes": [
                {"id": "ovl", "deps": [edge("engine", serde_json::Value::Null),
                    edge("tempfile", serde_json::json!("dev"))]},
                {"id": "engine", "deps": [edge("serde", serde_json::Value::Null),
                    edge("cc", serde_json::json!("build"))]},
                {"id": "serde", "deps": [edge("derive", serde_json::Value::Null)]},
                {"id": "derive", "deps": [edge("syn", serde_json::Value::Null)]},
            ]},
        });
        let crates = linked_crates(&metadata, "ovl").expect("crates");
        assert_eq!(
            crates,
            vec![LinkedCrate {
                name: "serde".to_string(),
                version: "1.0.0".to_string(),
                license: "MIT OR Apache-2.0".to_string(),
            }]
        );
    }
}
