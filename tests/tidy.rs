//! Style rules checked as a test (rust-analyzer's tidy). Each rule is a function over a
//! workspace root that returns its violations; the `workspace_*` tests run every rule on this
//! workspace and must find none, and the `planted_*` tests build a small tree with one violation
//! of each kind and must find it, so that no rule passes because it cannot fail.
//!
//! The rules: `cargo fmt --check`; `cargo clippy --workspace --all-targets -- -D warnings` under
//! the workspace lints (`unwrap_used` denied outside tests, `unsafe_code` denied, every `unsafe`
//! documented, no standard library item newer than `rust-version`); `allow(unsafe_code)` only in
//! `sys` modules and test code; a `// SAFETY:` comment before every `unsafe`; every package
//! inheriting `rust-version`, and no dependency needing a newer Rust; no unused dependency; no
//! source file over 1,200 lines outside tests; every crate and end-to-end test file named in
//! docs/ARCHITECTURE.md or docs/testing.md; every `OVL_*` variable documented; every shell script
//! starting with `set -euo pipefail`; every `#[error]` message one line of single spaces.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The longest source file allowed outside tests.
const MAX_SOURCE_LINES: usize = 1200;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Every file below `dir` whose name satisfies `wanted`, skipping build output and test data.
fn files_below(dir: &Path, wanted: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some("target" | "data" | ".git" | "corpus" | "artifacts")
        ) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            files_below(&path, wanted, out);
        } else if file_type.is_file() && wanted(&path) {
            out.push(path);
        }
    }
}

fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["crates", "tests", "xtask", "fuzz"] {
        files_below(
            &root.join(dir),
            &|path| path.extension().is_some_and(|ext| ext == "rs"),
            &mut files,
        );
    }
    files
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Test code: the `tests` package, a crate's `tests/` directory, a `tests.rs` module, fuzz
/// targets.
fn is_test_file(root: &Path, path: &Path) -> bool {
    let relative = relative(root, path);
    relative.starts_with("tests/")
        || relative.starts_with("fuzz/")
        || relative.contains("/tests/")
        || path.file_name().is_some_and(|name| name == "tests.rs")
}

/// A file of a `sys` module: `sys.rs` or anything below a `sys/` directory.
fn is_sys_file(root: &Path, path: &Path) -> bool {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.file_name().is_some_and(|name| name == "sys.rs")
        || relative.components().any(|part| part.as_os_str() == "sys")
}

// --- The rules ---------------------------------------------------------------------------------

/// `cargo fmt --check`: the files rustfmt would change.
fn check_fmt(root: &Path) -> Vec<String> {
    let output = Command::new(cargo())
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check", "--files-with-diff"])
        .output()
        .expect("run cargo fmt");
    let mut violations: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|file| format!("{file}: not formatted (cargo fmt)"))
        .collect();
    if !output.status.success() && violations.is_empty() {
        violations.push(format!(
            "cargo fmt failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    violations
}

/// `cargo clippy --workspace --all-targets -- -D warnings`: each diagnostic as
/// `file:line: lint: message`.
fn check_clippy(root: &Path, target_dir: Option<&Path>) -> Vec<String> {
    let mut command = Command::new(cargo());
    command.current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--keep-going",
        "--message-format=json",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]);
    if let Some(target_dir) = target_dir {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    let output = command.output().expect("run cargo clippy");
    let mut violations = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-message" {
            continue;
        }
        let diagnostic = &message["message"];
        if !matches!(diagnostic["level"].as_str(), Some("error" | "warning")) {
            continue;
        }
        let Some(code) = diagnostic["code"]["code"].as_str() else {
            continue;
        };
        let span = &diagnostic["spans"][0];
        violations.push(format!(
            "{}:{}: {code}: {}",
            span["file_name"].as_str().unwrap_or("?"),
            span["line_start"],
            diagnostic["message"].as_str().unwrap_or("?")
        ));
    }
    if !output.status.success() && violations.is_empty() {
        violations.push(format!(
            "cargo clippy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    violations
}

/// `allow(unsafe_code)` outside a `sys` module and outside test code.
fn check_unsafe_allowed_only_in_sys(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for file in rust_files(root) {
        if is_sys_file(root, &file) || is_test_file(root, &file) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (idx, line) in lines.iter().enumerate() {
            if !line.contains("allow(unsafe_code)") {
                continue;
            }
            // A `#[cfg(test)]` module may allow it for itself.
            let in_test_module = idx > 0
                && lines[idx - 1].trim() == "#[cfg(test)]"
                && lines
                    .get(idx + 1)
                    .is_some_and(|next| next.trim_start().starts_with("mod "));
            if !in_test_module {
                violations.push(format!(
                    "{}:{}: allow(unsafe_code) outside a sys module",
                    relative(root, &file),
                    idx + 1
                ));
            }
        }
    }
    violations
}

/// An `unsafe` block, impl or function without a `// SAFETY:` comment (or a `# Safety` doc
/// section for a function) in the lines just before it.
fn check_safety_comments(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for file in rust_files(root) {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (idx, code) in code_only(&text).iter().enumerate() {
            let is_unsafe = ["unsafe {", "unsafe impl", "unsafe fn", "unsafe extern"]
                .iter()
                .any(|form| {
                    code.match_indices(form).any(|(at, _)| {
                        !code[..at]
                            .chars()
                            .next_back()
                            .is_some_and(|before| before.is_alphanumeric() || before == '_')
                    })
                });
            if !is_unsafe {
                continue;
            }
            let line = lines[idx];
            let documented =
                line.contains("// SAFETY:") || comment_above_says_safety(&lines[..idx]);
            if !documented {
                violations.push(format!(
                    "{}:{}: unsafe without a `// SAFETY:` comment",
                    relative(root, &file),
                    idx + 1
                ));
            }
        }
    }
    violations
}

/// The lines of a Rust file with comments and the contents of string literals (plain, raw and
/// byte strings, also across lines) blanked out, so that only code is searched.
fn code_only(text: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        Str,
        /// A raw string, closed by `"` and this many `#`.
        Raw(usize),
    }
    let mut state = State::Code;
    let mut out = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::new();
        let mut idx = 0;
        while idx < chars.len() {
            let c = chars[idx];
            let next = chars.get(idx + 1).copied();
            match state {
                State::Code if c == '/' && next == Some('/') => break,
                State::Code if c == '\'' && (next == Some('"') || next == Some('\\')) => {
                    // A char literal of a quote or an escape: up to its closing quote.
                    let close = chars[idx + 2..].iter().position(|&later| later == '\'');
                    idx += close.map_or(chars.len(), |offset| offset + 3);
                    code.push(' ');
                    continue;
                }
                State::Code if c == 'r' && matches!(next, Some('#' | '"')) => {
                    let n_hashes = chars[idx + 1..].iter().take_while(|&&h| h == '#').count();
                    if chars.get(idx + 1 + n_hashes) == Some(&'"') {
                        state = State::Raw(n_hashes);
                        idx += n_hashes + 2;
                        code.push(' ');
                        continue;
                    }
                    code.push(c);
                }
                State::Code => {
                    if c == '"' {
                        state = State::Str;
                    }
                    code.push(c);
                }
                State::Str if c == '\\' => {
                    idx += 2;
                    continue;
                }
                State::Str => {
                    if c == '"' {
                        state = State::Code;
                        code.push(c);
                    }
                }
                State::Raw(n_hashes) => {
                    let closes = c == '"'
                        && chars.len() > idx + n_hashes
                        && chars[idx + 1..=idx + n_hashes].iter().all(|&h| h == '#');
                    if closes {
                        state = State::Code;
                        idx += n_hashes + 1;
                        code.push(' ');
                        continue;
                    }
                }
            }
            idx += 1;
        }
        out.push(code);
    }
    out
}

/// Whether the comment block just above a statement (the statement may begin lines earlier,
/// as in `let len =` over `unsafe { … }`) holds a `// SAFETY:` comment or a `# Safety` doc
/// section. The walk stops at a blank line or at the end of the previous statement or block.
fn comment_above_says_safety(above: &[&str]) -> bool {
    for line in above.iter().rev() {
        let line = line.trim();
        if line.starts_with("// SAFETY:") || line.starts_with("/// # Safety") {
            return true;
        }
        if line.starts_with("//") || line.starts_with("#[") {
            continue;
        }
        if line.is_empty() || line.ends_with(';') || line.ends_with('}') || line.ends_with('{') {
            return false;
        }
    }
    false
}

/// The `[package]` manifests of the workspace's members (and the fuzz package).
fn manifests(root: &Path) -> Vec<PathBuf> {
    let mut manifests = Vec::new();
    if let Ok(entries) = fs::read_dir(root.join("crates")) {
        for entry in entries.flatten() {
            manifests.push(entry.path().join("Cargo.toml"));
        }
    }
    for dir in ["tests", "xtask", "fuzz"] {
        manifests.push(root.join(dir).join("Cargo.toml"));
    }
    manifests.retain(|path| path.is_file());
    manifests.sort();
    manifests
}

/// `rust-version` said once and true: every workspace package inherits it, and no package in
/// the dependency graph declares a newer one. (Clippy's `incompatible_msrv`, part of
/// [`check_clippy`], finds standard library items newer than it.)
fn check_rust_version(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    let workspace_manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let Some(declared) = workspace_manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .map(|value| value.trim_matches('"').to_string())
    else {
        return vec!["Cargo.toml: no workspace rust-version".to_string()];
    };
    for manifest in manifests(root) {
        if manifest.starts_with(root.join("fuzz")) {
            // cargo fuzz builds with a nightly compiler of its own.
            continue;
        }
        let text = fs::read_to_string(&manifest).unwrap_or_default();
        if !text.contains("rust-version.workspace = true") {
            violations.push(format!(
                "{}: does not inherit the workspace rust-version",
                relative(root, &manifest)
            ));
        }
    }
    let output = Command::new(cargo())
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--offline", "--quiet"])
        .output()
        .expect("run cargo metadata");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    let version = |text: &str| -> Vec<u64> {
        text.split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if let Some(needed) = package["rust_version"].as_str() {
            if version(needed) > version(&declared) {
                violations.push(format!(
                    "{} {} needs Rust {needed}, the workspace says {declared}",
                    package["name"].as_str().unwrap_or("?"),
                    package["version"].as_str().unwrap_or("?"),
                ));
            }
        }
    }
    violations
}

/// The dependencies a manifest declares, by the name the code uses (`-` as `_`).
fn declared_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = matches!(
                line,
                "[dependencies]" | "[dev-dependencies]" | "[build-dependencies]"
            );
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line
            .split(['=', '.'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if !key.is_empty() {
            names.push(key.replace('-', "_"));
        }
    }
    names
}

/// Whether `text` names the crate `name` as a path root (`name::`, `use name`, `extern crate
/// name`).
fn uses_crate(text: &str, name: &str) -> bool {
    let is_ident = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    for (idx, _) in text.match_indices(name) {
        if idx > 0 && is_ident(text.as_bytes()[idx - 1]) {
            continue;
        }
        let rest = &text[idx + name.len()..];
        if rest.starts_with("::") {
            return true;
        }
        let before = text[..idx].trim_end();
        if (before.ends_with("use") || before.ends_with("extern crate"))
            && rest.starts_with([';', ' ', ':'])
        {
            return true;
        }
    }
    false
}

/// A dependency that no source file of its package names.
fn check_unused_dependencies(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for manifest in manifests(root) {
        let package = manifest.parent().expect("a manifest has a directory");
        let text = fs::read_to_string(&manifest).unwrap_or_default();
        let mut sources = Vec::new();
        files_below(
            package,
            &|path| path.extension().is_some_and(|ext| ext == "rs"),
            &mut sources,
        );
        let code: String = sources
            .iter()
            .map(|file| fs::read_to_string(file).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for name in declared_dependencies(&text) {
            if !uses_crate(&code, &name) {
                violations.push(format!(
                    "{}: dependency {name} is not used",
                    relative(root, &manifest)
                ));
            }
        }
    }
    violations
}

/// The rows of the crate map in docs/ARCHITECTURE.md, top first: a crate may depend only on
/// crates in rows below its own. Test support crates stand beside the map.
const CRATE_ROWS: [&[&str]; 5] = [
    &["ovl"],
    &["engine"],
    &[
        "image-archive",
        "registry",
        "layer-unpack",
        "layer-pack",
        "diff",
        "mount",
        "runtime-spec",
    ],
    &["store", "tar-split", "gotar"],
    &["syscompat", "gocompat"],
];
const TEST_SUPPORT_CRATES: [&str; 2] = ["treedump", "abi-lane"];

/// A crate under `crates/` that is not in the map, or a normal dependency that points up or
/// sideways in it.
fn check_crate_layering(root: &Path) -> Vec<String> {
    let row_of = |name: &str| CRATE_ROWS.iter().position(|row| row.contains(&name));
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("run cargo metadata");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    let mut violations = Vec::new();
    let crates_dir = root.join("crates");
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("?");
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or(""));
        if !manifest.starts_with(&crates_dir) || TEST_SUPPORT_CRATES.contains(&name) {
            continue;
        }
        let Some(row) = row_of(name) else {
            violations.push(format!("crate {name} is not in the crate map"));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dependency_name = dependency["name"].as_str().unwrap_or("?");
            if !dependency["kind"].is_null() {
                continue;
            }
            if let Some(dependency_row) = row_of(dependency_name) {
                if dependency_row <= row {
                    violations.push(format!(
                        "{name} depends on {dependency_name}, which is not below it"
                    ));
                }
            } else if TEST_SUPPORT_CRATES.contains(&dependency_name) {
                violations.push(format!("{name} depends on test support {dependency_name}"));
            }
        }
    }
    violations
}

/// A source file outside tests longer than [`MAX_SOURCE_LINES`].
fn check_file_lengths(root: &Path) -> Vec<String> {
    rust_files(root)
        .into_iter()
        .filter(|file| !is_test_file(root, file))
        .filter_map(|file| {
            let n_lines = fs::read_to_string(&file)
                .unwrap_or_default()
                .lines()
                .count();
            (n_lines > MAX_SOURCE_LINES).then(|| {
                format!(
                    "{}: {n_lines} lines, more than {MAX_SOURCE_LINES}",
                    relative(root, &file)
                )
            })
        })
        .collect()
}

/// A crate without a section in docs/ARCHITECTURE.md, or an end-to-end test file (`tests/*.rs`)
/// that neither docs/ARCHITECTURE.md nor docs/testing.md names.
fn check_docs_name_crates_and_tests(root: &Path) -> Vec<String> {
    let architecture = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap_or_default();
    let testing = fs::read_to_string(root.join("docs/testing.md")).unwrap_or_default();
    let mut violations = Vec::new();
    let mut crates: Vec<String> = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    for name in crates {
        if !architecture.contains(&format!("### `{name}`")) {
            violations.push(format!(
                "docs/ARCHITECTURE.md has no section for crate {name}"
            ));
        }
    }
    // A test target is a file `tests/<name>.rs` or a directory `tests/<name>/` with a `main.rs`.
    let mut test_files = Vec::new();
    if let Ok(entries) = fs::read_dir(root.join("tests")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") && entry.path().is_file() {
                test_files.push(name);
            } else if entry.path().join("main.rs").is_file() {
                test_files.push(format!("{name}/"));
            }
        }
    }
    test_files.sort();
    for name in test_files {
        let named = |doc: &str| doc.contains(&format!("tests/{name}"));
        if !named(&architecture) && !named(&testing) {
            violations.push(format!(
                "neither docs/ARCHITECTURE.md nor docs/testing.md names tests/{name}"
            ));
        }
    }
    violations
}

/// An `OVL_*` variable the code or a script reads that docs/testing.md and docs/cli.md do not
/// name.
fn check_ovl_variables_documented(root: &Path) -> Vec<String> {
    let mut files = rust_files(root);
    files.extend(shell_scripts(root));
    // This file's own `OVL_*` strings are planted violations.
    files.retain(|file| relative(root, file) != "tests/tidy.rs");
    let mut variables = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        // String literals in Rust, `$OVL_…` and `OVL_…=` in scripts.
        for (idx, _) in text.match_indices("OVL_") {
            let before = text[..idx].chars().next_back();
            if !matches!(before, Some('"' | '$' | '{')) {
                continue;
            }
            let name: String = text[idx..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            variables.insert(name);
        }
    }
    let docs = ["docs/testing.md", "docs/cli.md"]
        .map(|doc| fs::read_to_string(root.join(doc)).unwrap_or_default())
        .join("\n");
    variables
        .into_iter()
        .filter(|name| !docs.contains(&format!("`{name}")))
        .map(|name| format!("docs/testing.md and docs/cli.md do not name {name}"))
        .collect()
}

/// An error message (`#[error("…")]` outside test code) that is not one line of single spaces:
/// a literal continued onto the next line without a trailing `\\` keeps that line's break and
/// indentation, and a `\\n` breaks the one line that docker-style errors print.
fn check_error_messages_one_line(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for file in rust_files(root) {
        if is_test_file(root, &file) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (start, _) in text.match_indices("#[error(") {
            let Some(quote) = text[start..].find('"').map(|offset| start + offset + 1) else {
                continue;
            };
            let mut message = String::new();
            let mut chars = text[quote..].chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        // A continuation: the break and the next line's indentation are not
                        // part of the string.
                        Some('\n') => while chars.next_if(|c| c.is_whitespace()).is_some() {},
                        Some('n') => message.push('\n'),
                        Some(escaped) => message.push(escaped),
                        None => break,
                    },
                    c => message.push(c),
                }
            }
            if message.contains('\n') || message.contains("  ") {
                violations.push(format!(
                    "{}:{}: the #[error] message is not one line of single spaces: {message:?}",
                    relative(root, &file),
                    text[..start].matches('\n').count() + 1
                ));
            }
        }
    }
    violations
}

/// Every shell script: `*.sh`, and any file with a `sh` or `bash` shebang, outside build output.
fn shell_scripts(root: &Path) -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    files_below(
        root,
        &|path| {
            path.extension().is_some_and(|ext| ext == "sh")
                || first_line(path).is_some_and(|first| {
                    first.starts_with("#!") && (first.ends_with("sh") || first.ends_with("bash"))
                })
        },
        &mut scripts,
    );
    scripts
}

/// The first line of a file, read from its first 256 bytes.
fn first_line(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n_read = fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = String::from_utf8_lossy(&head[..n_read]);
    head.lines().next().map(str::to_string)
}

/// A shell script whose first command is not `set -euo pipefail`.
fn check_shell_scripts(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for script in shell_scripts(root) {
        let text = fs::read_to_string(&script).unwrap_or_default();
        let first_command = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'));
        if first_command != Some("set -euo pipefail") {
            violations.push(format!(
                "{}: does not start with `set -euo pipefail`",
                relative(root, &script)
            ));
        }
    }
    violations
}

// --- This workspace ----------------------------------------------------------------------------

fn assert_clean(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule}: {} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn workspace_is_formatted() {
    assert_clean("fmt", check_fmt(&workspace()));
}

#[test]
fn workspace_passes_clippy_with_warnings_denied() {
    assert_clean("clippy", check_clippy(&workspace(), None));
}

#[test]
fn workspace_allows_unsafe_code_only_in_sys_modules() {
    assert_clean(
        "unsafe outside sys",
        check_unsafe_allowed_only_in_sys(&workspace()),
    );
}

#[test]
fn workspace_documents_every_unsafe() {
    assert_clean("SAFETY comments", check_safety_comments(&workspace()));
}

#[test]
fn workspace_rust_version_is_inherited_and_true() {
    assert_clean("rust-version", check_rust_version(&workspace()));
}

#[test]
fn workspace_has_no_unused_dependency() {
    assert_clean(
        "unused dependencies",
        check_unused_dependencies(&workspace()),
    );
}

#[test]
fn workspace_crates_depend_only_on_lower_rows_of_the_map() {
    assert_clean("crate layering", check_crate_layering(&workspace()));
}

#[test]
fn workspace_has_no_source_file_over_the_limit() {
    assert_clean("file length", check_file_lengths(&workspace()));
}

#[test]
fn docs_name_every_crate_and_end_to_end_test_file() {
    assert_clean("docs", check_docs_name_crates_and_tests(&workspace()));
}

#[test]
fn docs_name_every_ovl_variable() {
    assert_clean(
        "OVL_ variables",
        check_ovl_variables_documented(&workspace()),
    );
}

#[test]
fn every_shell_script_starts_with_strict_mode() {
    let root = workspace();
    assert!(
        shell_scripts(&root).len() >= 3,
        "the scan finds .ci/run and vm-tests/*.sh"
    );
    assert_clean("shell scripts", check_shell_scripts(&root));
}

// --- Planted violations ------------------------------------------------------------------------

/// A small workspace with this workspace's lints, `rust-version` and clippy.toml, and one crate
/// per planted violation.
struct Planted {
    dir: tempfile::TempDir,
}

impl Planted {
    fn new() -> Planted {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = fs::read_to_string(workspace().join("Cargo.toml")).expect("read Cargo.toml");
        let rust_version = real
            .lines()
            .find(|line| line.starts_with("rust-version = "))
            .expect("rust-version");
        let lints_start = real
            .find("[workspace.lints.rust]")
            .expect("workspace lints");
        let lints_end = real[lints_start..]
            .find("\n[profile")
            .map_or(real.len(), |end| lints_start + end);
        let manifest = format!(
            "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\"]\n\n\
             [workspace.package]\nversion = \"0.1.0\"\nedition = \"2021\"\n{rust_version}\n\n{}\n",
            &real[lints_start..lints_end]
        );
        let planted = Planted { dir };
        planted.write("Cargo.toml", &manifest);
        fs::copy(
            workspace().join("clippy.toml"),
            planted.path().join("clippy.toml"),
        )
        .expect("copy clippy.toml");
        planted
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    /// A library crate `name` with `lib` as its src/lib.rs and `dependencies` in its manifest.
    fn crate_with(&self, name: &str, lib: &str, dependencies: &str) {
        self.write(
            &format!("crates/{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion.workspace = true\n\
                 edition.workspace = true\nrust-version.workspace = true\n\n\
                 [lints]\nworkspace = true\n\n[dependencies]\n{dependencies}"
            ),
        );
        self.write(&format!("crates/{name}/src/lib.rs"), lib);
    }
}

fn assert_found(rule: &str, violations: &[String], expected: &[&str]) {
    for wanted in expected {
        assert!(
            violations
                .iter()
                .any(|violation| violation.contains(wanted)),
            "{rule} did not report {wanted:?}; it reported {violations:#?}"
        );
    }
}

#[test]
fn planted_clippy_violations_are_found() {
    let planted = Planted::new();
    planted.crate_with(
        "unwrap_in_library",
        "//! Planted.\n\n/// Planted.\npub fn first(values: &[u8]) -> u8 {\n    \
         values.first().copied().unwrap()\n}\n\n#[cfg(test)]\nmod tests {\n    \
         #[test]\n    fn unwrap_is_fine_in_a_test() {\n        \
         assert_eq!(super::first(&[1]), [1u8].first().copied().unwrap());\n    }\n}\n",
        "",
    );
    planted.crate_with(
        "unsafe_outside_sys",
        "//! Planted.\n\n/// Planted.\npub fn zero() -> u8 {\n    \
         // SAFETY: zero is a valid u8.\n    unsafe { std::mem::zeroed() }\n}\n",
        "",
    );
    planted.crate_with(
        "undocumented_unsafe",
        "//! Planted.\n#![allow(unsafe_code)]\n\n/// Planted.\npub fn zero() -> u8 {\n    \
         unsafe { std::mem::zeroed() }\n}\n",
        "",
    );
    planted.crate_with(
        "newer_than_rust_version",
        "//! Planted.\n\n/// Planted: `Cell::update` is stable since Rust 1.88.\n\
         pub fn bump(cell: &std::cell::Cell<u8>) {\n    cell.update(|value| value + 1);\n}\n",
        "",
    );
    let violations = check_clippy(planted.path(), Some(&planted.path().join("target")));
    assert_found(
        "clippy",
        &violations,
        &[
            "clippy::unwrap_used",
            "unsafe_code",
            "clippy::undocumented_unsafe_blocks",
            "clippy::incompatible_msrv",
        ],
    );
    assert!(
        !violations
            .iter()
            .any(|violation| violation.contains(":12:")),
        "an unwrap in a test is allowed: {violations:#?}"
    );
}

#[test]
fn planted_unformatted_file_is_found() {
    let planted = Planted::new();
    planted.crate_with("formatted", "//! Planted.\n", "");
    planted.crate_with("unformatted", "//! Planted.\npub   fn f( ){}\n", "");
    let violations = check_fmt(planted.path());
    assert_found("fmt", &violations, &["crates/unformatted/src/lib.rs"]);
    assert_eq!(violations.len(), 1, "{violations:#?}");
}

#[test]
fn planted_unsafe_and_safety_violations_are_found() {
    let planted = Planted::new();
    planted.write(
        "crates/a/src/lib.rs",
        "#![allow(unsafe_code)]\nmod sys;\n\n#[cfg(test)]\n#[allow(unsafe_code)]\nmod tests {}\n",
    );
    planted.write(
        "crates/a/src/sys.rs",
        "#![allow(unsafe_code)]\n// SAFETY: documented.\nunsafe impl Send for X {}\n\n\
         fn f() {\n    let x = unsafe { g() };\n}\n",
    );
    let unsafe_violations = check_unsafe_allowed_only_in_sys(planted.path());
    assert_eq!(
        unsafe_violations,
        ["crates/a/src/lib.rs:1: allow(unsafe_code) outside a sys module"]
    );
    assert_eq!(
        check_safety_comments(planted.path()),
        ["crates/a/src/sys.rs:6: unsafe without a `// SAFETY:` comment"]
    );
}

#[test]
fn planted_rust_version_violations_are_found() {
    let planted = Planted::new();
    planted.crate_with("inherits", "//! Planted.\n", "");
    planted.write(
        "crates/own_version/Cargo.toml",
        "[package]\nname = \"own_version\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         rust-version = \"1.99\"\n",
    );
    planted.write("crates/own_version/src/lib.rs", "//! Planted.\n");
    let violations = check_rust_version(planted.path());
    assert_found(
        "rust-version",
        &violations,
        &[
            "crates/own_version/Cargo.toml: does not inherit",
            "own_version 0.1.0 needs Rust 1.99",
        ],
    );
    assert!(
        !violations
            .iter()
            .any(|violation| violation.contains("inherits")),
        "{violations:#?}"
    );
}

#[test]
fn planted_unused_dependency_is_found() {
    let planted = Planted::new();
    planted.crate_with("used", "//! Planted.\npub use used_crate::Thing;\n", "");
    planted.crate_with(
        "user",
        "//! Planted.\nuse serde_json as _;\nfn f() { anyhow::bail!(\"x\") }\n",
        "anyhow = \"1\"\nserde-json = \"1\"\nsha2.workspace = true\n",
    );
    assert_eq!(
        check_unused_dependencies(planted.path()),
        ["crates/user/Cargo.toml: dependency sha2 is not used"]
    );
}

#[test]
fn planted_long_source_file_is_found_and_tests_may_be_long() {
    let planted = Planted::new();
    let long = "// line\n".repeat(MAX_SOURCE_LINES + 1);
    planted.write("crates/a/src/lib.rs", &long);
    planted.write("crates/a/src/tests.rs", &long);
    planted.write("crates/a/tests/long.rs", &long);
    planted.write(
        "crates/a/src/short.rs",
        &"// line\n".repeat(MAX_SOURCE_LINES),
    );
    assert_eq!(
        check_file_lengths(planted.path()),
        ["crates/a/src/lib.rs: 1201 lines, more than 1200"]
    );
}

#[test]
fn planted_undocumented_crate_test_file_and_variable_are_found() {
    let planted = Planted::new();
    planted.crate_with("named", "//! Reads `\"OVL_NAMED\"`.\n", "");
    planted.crate_with(
        "unnamed",
        "//! Planted.\nconst V: &str = \"OVL_UNNAMED\";\n",
        "",
    );
    planted.write("tests/named.rs", "");
    planted.write("tests/unnamed.rs", "");
    planted.write("tests/unnamed_dir/main.rs", "");
    planted.write("tests/support/lib.rs", "");
    planted.write(
        "vm/run.sh",
        "#!/bin/sh\nset -euo pipefail\necho $OVL_SCRIPTED\n",
    );
    planted.write(
        "docs/ARCHITECTURE.md",
        "### `named`\nThe suite in `tests/named.rs`.\n",
    );
    planted.write("docs/testing.md", "- `OVL_NAMED`: a variable.\n");
    planted.write("docs/cli.md", "");
    assert_eq!(
        check_docs_name_crates_and_tests(planted.path()),
        [
            "docs/ARCHITECTURE.md has no section for crate unnamed",
            "neither docs/ARCHITECTURE.md nor docs/testing.md names tests/unnamed.rs",
            "neither docs/ARCHITECTURE.md nor docs/testing.md names tests/unnamed_dir/",
        ]
    );
    assert_eq!(
        check_ovl_variables_documented(planted.path()),
        [
            "docs/testing.md and docs/cli.md do not name OVL_SCRIPTED",
            "docs/testing.md and docs/cli.md do not name OVL_UNNAMED",
        ]
    );
}

#[test]
fn planted_script_without_strict_mode_is_found() {
    let planted = Planted::new();
    planted.write(
        "ci/run",
        "#!/usr/bin/env bash\n# A comment.\nset -euo pipefail\n",
    );
    planted.write("vm/init.sh", "#!/bin/busybox sh\nset -e\necho\n");
    planted.write("vm/change.sh", "echo no shebang\n");
    assert_eq!(
        check_shell_scripts(planted.path()),
        [
            "vm/change.sh: does not start with `set -euo pipefail`",
            "vm/init.sh: does not start with `set -euo pipefail`",
        ]
    );
}

#[test]
fn workspace_error_messages_are_one_line() {
    assert_clean(
        "error messages",
        check_error_messages_one_line(&workspace()),
    );
}

#[test]
fn planted_error_messages_with_breaks_or_runs_of_spaces_are_found() {
    let planted = Planted::new();
    planted.write(
        "crates/e/src/lib.rs",
        "pub enum E {\n    #[error(\"one line, \\\n        continued\")]\n    Good,\n    \
         #[error(\"kept the\n        indentation\")]\n    Broken,\n    \
         #[error(\"two\\nlines\")]\n    Escaped,\n    #[error(\"two  spaces\")]\n    Spaced,\n}\n",
    );
    planted.write(
        "crates/e/src/tests.rs",
        "#[error(\"test code may  print what it likes\")]\n",
    );
    let violations = check_error_messages_one_line(planted.path());
    assert_found(
        "error messages",
        &violations,
        &[
            "crates/e/src/lib.rs:5:",
            "crates/e/src/lib.rs:8:",
            "crates/e/src/lib.rs:10:",
        ],
    );
    assert_eq!(violations.len(), 3, "{violations:#?}");
}

#[test]
fn planted_upward_and_sideways_dependencies_are_found() {
    let planted = Planted::new();
    planted.crate_with("gocompat", "//! Planted.\n", "");
    planted.crate_with(
        "syscompat",
        "//! Planted.\n",
        "store = { path = \"../store\" }\n",
    );
    planted.crate_with(
        "store",
        "//! Planted.\n",
        "gocompat = { path = \"../gocompat\" }\ngotar = { path = \"../gotar\" }\n",
    );
    planted.crate_with("gotar", "//! Planted.\n", "");
    planted.crate_with("unmapped", "//! Planted.\n", "");
    let mut violations = check_crate_layering(planted.path());
    violations.sort();
    assert_eq!(
        violations,
        [
            "crate unmapped is not in the crate map",
            "store depends on gotar, which is not below it",
            "syscompat depends on store, which is not below it",
        ]
    );
}

#[test]
fn code_only_blanks_strings_comments_and_raw_strings() {
    let text = "let a = \"unsafe { x }\"; // unsafe {\nlet b = r#\"a \" unsafe {\"#; unsafe {\n\
                let c = \"multi\\\n unsafe {\";\nlet q = '\"'; unsafe fn f() {}\n";
    let code = code_only(text);
    assert!(!code[0].contains("unsafe"), "{code:?}");
    assert!(
        code[1].contains("unsafe {") && !code[1].contains("a \""),
        "{code:?}"
    );
    assert!(!code[2].contains("unsafe"), "{code:?}");
    assert!(!code[3].contains("unsafe"), "{code:?}");
    assert!(code[4].contains("unsafe fn"), "{code:?}");
}
