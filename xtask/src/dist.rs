//! `cargo xtask dist`: writes `target/dist/ovl`, a release build of the ovl binary that starts on
//! every x86-64 Linux with glibc 2.17 or newer (CentOS 7, RHEL 8, Ubuntu 20.04, Debian 11 and the
//! distributions after them).
//!
//! Why glibc 2.17: a binary records, for every glibc function it calls, the symbol version of the
//! glibc it was linked against, and the dynamic loader of an older glibc refuses to start it. A
//! plain `cargo build` on the Debian 12 build host links against glibc 2.36 and needs at least
//! GLIBC_2.34 (the version of `__libc_start_main` since libpthread moved into libc), so it does not
//! start on CentOS 7, RHEL 8, Ubuntu 20.04 or Debian 11. Glibc 2.17 is CentOS 7's, and the oldest
//! glibc that Rust's `x86_64-unknown-linux-gnu` target supports; the functions std and rustix
//! want from newer glibcs (`statx`, `getrandom`, `gettid`) are weak references that they look up
//! at run time, with fallbacks.
//!
//! Why zig: a static musl build would need the musl target from rustup, which this machine cannot
//! download. cargo-zigbuild instead links with `zig cc`, which carries stub libraries for every
//! glibc release and links against the one named in the target
//! (`x86_64-unknown-linux-gnu.2.17`); it also compiles the C code of zstd-sys with zig, so that
//! part is bound to glibc 2.17 too. Both tools come from PyPI (`ziglang` and `cargo-zigbuild`).
//! When they are not on the PATH, `dist` installs the tested versions with pip into
//! `target/dist-tools`, the way `deps` installs the Debian packages.
//!
//! The result is checked rather than trusted: `dist` reads the ELF's version-needs section
//! (`.gnu.version_r`) with the small parser below, fails naming every GLIBC version above 2.17,
//! starts the binary once with `--version`, and only then puts it in place with a rename.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

/// The newest glibc symbol version the dist binary may need: CentOS 7's glibc 2.17.
const MAX_GLIBC: [u32; 2] = [2, 17];

/// The Rust target the dist binary is built for; cargo-zigbuild takes the glibc version as a
/// suffix of it (see `zig_target`) and writes its output under the plain triple.
const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The PyPI packages `dist` installs when the tools are missing, pinned to the versions it was
/// tested with.
const PYPI_PACKAGES: [&str; 2] = ["ziglang==0.17.1", "cargo-zigbuild==0.24.1"];

/// The ELF section type of the GNU version-needs table (`.gnu.version_r`), from `<elf.h>`.
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;

/// `cargo xtask dist`: builds and checks `target/dist/ovl`, then prints its path.
pub fn dist(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("cargo xtask dist takes no arguments, got {arg}");
    }
    let binary = dist_binary()?;
    println!("{}", binary.display());
    Ok(())
}

/// Builds the dist binary (cargo-zigbuild is always run: it is incremental, so an up-to-date
/// binary costs a second), checks it, puts it at `target/dist/ovl` and returns that path.
pub(crate) fn dist_binary() -> Result<PathBuf> {
    let root = crate::workspace_root();
    let tools = zig_tools(&root)?;
    // A separate target directory, so that this build neither waits for the lock of a concurrent
    // `cargo build` in `target/` nor invalidates its artifacts.
    let target_dir = root.join("target/dist-build");
    let started = std::time::Instant::now();
    let mut build = Command::new(&tools.cargo_zigbuild);
    build
        .current_dir(&root)
        .args(["zigbuild", "--release", "-p", "ovl", "--target"])
        .arg(zig_target())
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host build (say `-C target-cpu=native`) would make the portable
        // binary start only on machines like this one.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // A binary to copy to other hosts carries no debug information: about 7 MB instead of
        // 36 MB with the release profile's line tables.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    if let Some(zig) = &tools.zig {
        build.env("CARGO_ZIGBUILD_ZIG_PATH", zig);
    }
    crate::run(&mut build)?;
    eprintln!("dist: cargo zigbuild done in {:.1?}", started.elapsed());

    let built = target_dir.join(RUST_TARGET).join("release/ovl");
    let elf = fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let needs = version_needs(&elf).with_context(|| format!("parsing {}", built.display()))?;
    let highest = check_glibc(&needs, &MAX_GLIBC)
        .with_context(|| format!("{} would not start on CentOS 7", built.display()))?;
    // The loader has to accept the binary here too, and `--version` needs no data root.
    let started_ok = Command::new(&built)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", built.display()))?;
    ensure!(
        started_ok.success(),
        "{} --version failed with {started_ok}",
        built.display()
    );

    let dist_dir = root.join("target/dist");
    let binary = dist_dir.join("ovl");
    install_atomically(&built, &binary)?;
    eprintln!(
        "dist: {} is {} bytes ({:.1} MiB); highest glibc version needed: {} (at most GLIBC_{})",
        binary.display(),
        elf.len(),
        elf.len() as f64 / (1024.0 * 1024.0),
        highest.as_deref().unwrap_or("none"),
        version_string(&MAX_GLIBC),
    );
    Ok(binary)
}

/// The cargo-zigbuild target: the Rust target with the glibc version to link against as suffix.
fn zig_target() -> String {
    format!("{RUST_TARGET}.{}", version_string(&MAX_GLIBC))
}

fn version_string(version: &[u32]) -> String {
    version
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Where cargo-zigbuild and zig are.
struct ZigTools {
    cargo_zigbuild: PathBuf,
    /// The zig binary to hand cargo-zigbuild, when it should not look for one itself (on the
    /// PATH, then `python3 -m ziglang`).
    zig: Option<PathBuf>,
}

/// Finds cargo-zigbuild and zig on the PATH (zig as `zig` or as the `ziglang` Python module);
/// otherwise installs both with pip into `target/dist-tools`, once.
fn zig_tools(root: &Path) -> Result<ZigTools> {
    let zig_found = succeeds(Command::new("zig").arg("version"))
        || succeeds(Command::new("python3").args(["-m", "ziglang", "version"]));
    if zig_found && succeeds(Command::new("cargo-zigbuild").arg("--version")) {
        return Ok(ZigTools {
            cargo_zigbuild: PathBuf::from("cargo-zigbuild"),
            zig: None,
        });
    }
    let prefix = root.join("target/dist-tools");
    // `pip install --target` puts the wheels' executables in `bin/` and the packages beside it.
    let cargo_zigbuild = prefix.join("bin/cargo-zigbuild");
    let zig = prefix.join("ziglang/zig");
    if !(cargo_zigbuild.exists() && zig.exists()) {
        pip_install(&prefix)?;
    }
    ensure!(
        cargo_zigbuild.exists() && zig.exists(),
        "pip installed {} without {} and {}",
        PYPI_PACKAGES.join(" "),
        cargo_zigbuild.display(),
        zig.display()
    );
    Ok(ZigTools {
        cargo_zigbuild,
        zig: Some(zig),
    })
}

/// Installs the PyPI packages into `prefix` with `pip install --target`, which touches no Python
/// installation (and so also works where Debian marks the system Python as externally managed).
fn pip_install(prefix: &Path) -> Result<()> {
    if !succeeds(Command::new("python3").args(["-m", "pip", "--version"])) {
        crate::install(&[("python3-pip", "/usr/lib/python3/dist-packages/pip")])?;
    }
    eprintln!(
        "dist: installing {} into {}",
        PYPI_PACKAGES.join(" "),
        prefix.display()
    );
    // A partial directory renamed into place, so that an interrupted download is not mistaken for
    // an installation next time.
    let partial = prefix.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    crate::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&partial)
            .args(PYPI_PACKAGES),
    )?;
    if prefix.exists() {
        fs::remove_dir_all(prefix).with_context(|| format!("removing {}", prefix.display()))?;
    }
    fs::rename(&partial, prefix)
        .with_context(|| format!("renaming {} to {}", partial.display(), prefix.display()))
}

/// Whether the command runs and exits 0, with its output discarded.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Copies `from` to `to` through a temporary name in the same directory and a rename, so that a
/// reader of `to` sees the old binary or the new one, never a partial copy.
fn install_atomically(from: &Path, to: &Path) -> Result<()> {
    let dir = to
        .parent()
        .context("the dist binary has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!(".ovl.partial-{}", std::process::id()));
    let result = (|| -> Result<()> {
        // `fs::copy` also copies the permission bits, so the copy stays executable.
        fs::copy(from, &partial)?;
        fs::File::open(&partial)?.sync_all()?;
        fs::rename(&partial, to)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result.with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// One entry of an ELF's version-needs table: a symbol version (`GLIBC_2.17`) that the binary
/// needs from a shared library (`libc.so.6`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionNeed {
    file: String,
    version: String,
}

/// Checks the GLIBC versions among `needs` against `max` and returns the highest one (`None` for
/// a binary that needs no GLIBC version); fails naming every version above `max`. A GLIBC name
/// that is not a version number (`GLIBC_PRIVATE`) counts as above: no other glibc promises it.
fn check_glibc(needs: &[VersionNeed], max: &[u32]) -> Result<Option<String>> {
    let mut highest: Option<(Vec<u32>, &str)> = None;
    // The offending versions with their parsed numbers, so that they are listed in version order
    // (GLIBC_2.3 before GLIBC_2.28), the unparsable ones last.
    let mut too_new: Vec<(Option<Vec<u32>>, &str)> = Vec::new();
    for need in needs {
        let Some(number) = need.version.strip_prefix("GLIBC_") else {
            continue;
        };
        let Some(parsed) = parse_version(number) else {
            too_new.push((None, &need.version));
            continue;
        };
        if parsed.as_slice() > max {
            too_new.push((Some(parsed.clone()), &need.version));
        }
        if highest.as_ref().is_none_or(|(top, _)| parsed > *top) {
            highest = Some((parsed, &need.version));
        }
    }
    too_new.sort_by(|(a_number, a_name), (b_number, b_name)| {
        (a_number.is_none(), a_number, a_name).cmp(&(b_number.is_none(), b_number, b_name))
    });
    too_new.dedup();
    if !too_new.is_empty() {
        let names: Vec<&str> = too_new.iter().map(|(_, name)| *name).collect();
        bail!(
            "it needs {}, newer than GLIBC_{}",
            names.join(", "),
            version_string(max)
        );
    }
    Ok(highest.map(|(_, name)| name.to_string()))
}

/// `2.3.4` as `[2, 3, 4]`, so that versions compare component by component.
fn parse_version(text: &str) -> Option<Vec<u32>> {
    text.split('.').map(|part| part.parse().ok()).collect()
}

/// The version-needs table of a 64-bit little-endian ELF file (the only kind `dist` builds): the
/// section of type SHT_GNU_verneed, a chain of Verneed records (one per library) each with a chain
/// of Vernaux records (one per version), their names in the string section the table links to.
/// The layouts are those of `Elf64_Ehdr`, `Elf64_Shdr`, `Elf64_Verneed` and `Elf64_Vernaux` in
/// `<elf.h>`; see https://refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/LSB-Core-generic/symversion.html.
/// A file without the section needs no versions; a malformed one is an error, never a panic.
fn version_needs(elf: &[u8]) -> Result<Vec<VersionNeed>> {
    ensure!(elf.get(..4) == Some(b"\x7fELF"), "not an ELF file");
    // e_ident[EI_CLASS] is 2 for ELFCLASS64, e_ident[EI_DATA] is 1 for ELFDATA2LSB.
    ensure!(
        elf.get(4..6) == Some(&[2, 1]),
        "not a 64-bit little-endian ELF file"
    );
    let section_table = usize_at(elf, 0x28, 8)?; // e_shoff
    let entry_size = usize_at(elf, 0x3a, 2)?; // e_shentsize
    let mut n_sections = usize_at(elf, 0x3c, 2)?; // e_shnum
    if section_table == 0 {
        return Ok(Vec::new());
    }
    ensure!(
        entry_size >= 64,
        "section header entries of {entry_size} bytes"
    );
    let section = |idx: usize| -> Result<Section> {
        let base = idx
            .checked_mul(entry_size)
            .and_then(|off| off.checked_add(section_table))
            .context("section header offset overflows")?;
        Ok(Section {
            kind: usize_at(elf, base + 4, 4)? as u32,
            offset: usize_at(elf, base + 24, 8)?,
            size: usize_at(elf, base + 32, 8)?,
            link: usize_at(elf, base + 40, 4)?,
            info: usize_at(elf, base + 44, 4)?,
        })
    };
    // With 0xff00 sections or more, e_shnum is 0 and the count is the size of section 0.
    if n_sections == 0 {
        n_sections = section(0)?.size;
    }
    let table_end = n_sections
        .checked_mul(entry_size)
        .and_then(|len| len.checked_add(section_table));
    ensure!(
        table_end.is_some_and(|end| end <= elf.len()),
        "the table of {n_sections} section headers lies outside the file"
    );
    let mut needs = Vec::new();
    for idx in 0..n_sections {
        let verneed = section(idx)?;
        if verneed.kind != SHT_GNU_VERNEED {
            continue;
        }
        ensure!(
            verneed.link < n_sections,
            "version-needs section {idx} links to section {} of {n_sections}",
            verneed.link
        );
        let strings = section(verneed.link)?.bytes(elf)?;
        let table = verneed.bytes(elf)?;
        // sh_info is the number of Verneed records; vn_cnt that of each one's Vernaux records.
        let mut need_at = 0usize;
        for _ in 0..verneed.info {
            let n_aux = usize_at(table, need_at + 2, 2)?; // vn_cnt
            let file = string_at(strings, usize_at(table, need_at + 4, 4)?)?; // vn_file
            let mut aux_at = need_at
                .checked_add(usize_at(table, need_at + 8, 4)?) // vn_aux
                .context("vernaux offset overflows")?;
            for _ in 0..n_aux {
                let version = string_at(strings, usize_at(table, aux_at + 8, 4)?)?; // vna_name
                needs.push(VersionNeed {
                    file: file.clone(),
                    version,
                });
                // vna_next
                let Some(next_at) = chain_next(table, aux_at, 12, "vernaux")? else {
                    break;
                };
                aux_at = next_at;
            }
            // vn_next
            let Some(next_at) = chain_next(table, need_at, 12, "verneed")? else {
                break;
            };
            need_at = next_at;
        }
    }
    Ok(needs)
}

/// The fields of an `Elf64_Shdr` the parser uses.
struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    info: usize,
}

impl Section {
    fn bytes<'a>(&self, elf: &'a [u8]) -> Result<&'a [u8]> {
        self.offset
            .checked_add(self.size)
            .and_then(|end| elf.get(self.offset..end))
            .with_context(|| {
                format!(
                    "section at {} of {} bytes lies outside the file",
                    self.offset, self.size
                )
            })
    }
}

/// The offset of the next record of a Verneed or Vernaux chain, whose 4-byte `next` field
/// (relative to the record at `at`) lies at `at + next_field`; `None` at the chain's end (0).
fn chain_next(table: &[u8], at: usize, next_field: usize, what: &str) -> Result<Option<usize>> {
    let next = usize_at(table, at + next_field, 4)?;
    if next == 0 {
        return Ok(None);
    }
    let next_at = at
        .checked_add(next)
        .with_context(|| format!("{what} offset overflows"))?;
    Ok(Some(next_at))
}

/// The little-endian unsigned integer of `len` bytes (2, 4 or 8) at `offset`.
fn usize_at(bytes: &[u8], offset: usize, len: usize) -> Result<usize> {
    let field = offset
        .checked_add(len)
        .and_then(|end| bytes.get(offset..end))
        .with_context(|| format!("{len}-byte field at {offset} lies outside the data"))?;
    let mut buf = [0u8; 8];
    buf[..len].copy_from_slice(field);
    usize::try_from(u64::from_le_bytes(buf)).context("field does not fit in usize")
}

/// The NUL-terminated string at `offset` in a string section.
fn string_at(strings: &[u8], offset: usize) -> Result<String> {
    let tail = strings
        .get(offset..)
        .with_context(|| format!("string at {offset} lies outside its section"))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .with_context(|| format!("string at {offset} has no terminating NUL"))?;
    Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(file: &str, version: &str) -> VersionNeed {
        VersionNeed {
            file: file.to_string(),
            version: version.to_string(),
        }
    }

    /// A minimal ELF64 file: the header, a string section, a version-needs section for `libs`
    /// (each library with its versions), and the section header table (null, strings, verneed).
    fn synthetic_elf(libs: &[(&str, &[&str])]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut intern = |name: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            at
        };
        let mut table = Vec::new();
        for (lib_idx, (file, versions)) in libs.iter().enumerate() {
            let n_aux = versions.len() as u16;
            let last_lib = lib_idx + 1 == libs.len();
            table.extend_from_slice(&1u16.to_le_bytes()); // vn_version
            table.extend_from_slice(&n_aux.to_le_bytes()); // vn_cnt
            table.extend_from_slice(&intern(file).to_le_bytes()); // vn_file
            table.extend_from_slice(&16u32.to_le_bytes()); // vn_aux
            let next = if last_lib {
                0
            } else {
                16 + 16 * u32::from(n_aux)
            };
            table.extend_from_slice(&next.to_le_bytes()); // vn_next
            for (aux_idx, version) in versions.iter().enumerate() {
                table.extend_from_slice(&0u32.to_le_bytes()); // vna_hash
                table.extend_from_slice(&0u16.to_le_bytes()); // vna_flags
                table.extend_from_slice(&0u16.to_le_bytes()); // vna_other
                table.extend_from_slice(&intern(version).to_le_bytes()); // vna_name
                let next: u32 = if aux_idx + 1 == versions.len() { 0 } else { 16 };
                table.extend_from_slice(&next.to_le_bytes()); // vna_next
            }
        }
        let strings_at = 64u64;
        let table_at = strings_at + strings.len() as u64;
        let headers_at = table_at + table.len() as u64;
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x28..0x30].copy_from_slice(&headers_at.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf.extend_from_slice(&strings);
        elf.extend_from_slice(&table);
        let header = |kind: u32, offset: u64, size: u64, link: u32, info: u32| {
            let mut header = vec![0u8; 64];
            header[4..8].copy_from_slice(&kind.to_le_bytes());
            header[24..32].copy_from_slice(&offset.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            header[40..44].copy_from_slice(&link.to_le_bytes());
            header[44..48].copy_from_slice(&info.to_le_bytes());
            header
        };
        elf.extend(header(0, 0, 0, 0, 0));
        elf.extend(header(3, strings_at, strings.len() as u64, 0, 0));
        elf.extend(header(
            SHT_GNU_VERNEED,
            table_at,
            table.len() as u64,
            1,
            libs.len() as u32,
        ));
        elf
    }

    #[test]
    fn version_needs_reads_every_library_and_version() -> Result<()> {
        let elf = synthetic_elf(&[
            ("libc.so.6", &["GLIBC_2.2.5", "GLIBC_2.17"]),
            ("libpthread.so.0", &["GLIBC_2.12"]),
        ]);
        assert_eq!(
            version_needs(&elf)?,
            [
                need("libc.so.6", "GLIBC_2.2.5"),
                need("libc.so.6", "GLIBC_2.17"),
                need("libpthread.so.0", "GLIBC_2.12"),
            ]
        );
        Ok(())
    }

    #[test]
    fn version_needs_rejects_truncated_files_without_panicking() {
        let elf = synthetic_elf(&[("libc.so.6", &["GLIBC_2.2.5", "GLIBC_2.17"])]);
        for len in 0..elf.len() {
            assert!(version_needs(&elf[..len]).is_err(), "prefix of {len} bytes");
        }
        assert!(version_needs(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn check_glibc_returns_the_highest_version_within_the_limit() -> Result<()> {
        let needs = [
            need("libc.so.6", "GLIBC_2.17"),
            need("libc.so.6", "GLIBC_2.3.4"),
            need("libgcc_s.so.1", "GCC_4.2.0"),
        ];
        assert_eq!(
            check_glibc(&needs, &MAX_GLIBC)?.as_deref(),
            Some("GLIBC_2.17")
        );
        assert_eq!(check_glibc(&[], &MAX_GLIBC)?, None);
        Ok(())
    }

    #[test]
    fn check_glibc_names_every_version_above_the_limit() {
        let needs = [
            need("libc.so.6", "GLIBC_PRIVATE"),
            need("libc.so.6", "GLIBC_2.34"),
            need("libc.so.6", "GLIBC_2.2.5"),
            need("libm.so.6", "GLIBC_2.29"),
            need("libpthread.so.0", "GLIBC_2.34"),
        ];
        let message = check_glibc(&needs, &MAX_GLIBC)
            .expect_err("versions above 2.17 must fail the check")
            .to_string();
        assert_eq!(
            message,
            "it needs GLIBC_2.29, GLIBC_2.34, GLIBC_PRIVATE, newer than GLIBC_2.17"
        );
    }

    /// This test binary is an ordinary build linked against the host's glibc (2.36 on Debian 12,
    /// any glibc from 2.34 on has `__libc_start_main@GLIBC_2.34`), so the check must refuse it,
    /// and the parser must find exactly the GLIBC versions objdump finds.
    #[test]
    fn a_host_build_needs_a_glibc_above_2_17_and_the_check_finds_it() -> Result<()> {
        let exe = std::env::current_exe()?;
        let needs = version_needs(&fs::read(&exe)?)?;
        let message = check_glibc(&needs, &MAX_GLIBC)
            .expect_err("a host build must fail the check")
            .to_string();
        assert!(message.contains("GLIBC_2.34"), "{message}");

        let objdump = Command::new("objdump").arg("-T").arg(&exe).output()?;
        assert!(objdump.status.success(), "{objdump:?}");
        let mut from_objdump: Vec<String> = String::from_utf8_lossy(&objdump.stdout)
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .filter(|word| word.starts_with("GLIBC_"))
            .map(str::to_string)
            .collect();
        from_objdump.sort();
        from_objdump.dedup();
        let mut from_parser: Vec<String> = needs
            .into_iter()
            .map(|need| need.version)
            .filter(|version| version.starts_with("GLIBC_"))
            .collect();
        from_parser.sort();
        from_parser.dedup();
        assert_eq!(from_parser, from_objdump);
        Ok(())
    }
}
