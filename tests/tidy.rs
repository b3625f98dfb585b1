//! Style rules checked as a test (rust-analyzer's tidy): the docs name every crate and every
//! `OVL_*` environment variable the code reads.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "data" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn architecture_names_every_crate() {
    let root = workspace();
    let architecture =
        fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let mut missing = Vec::new();
    for entry in fs::read_dir(root.join("crates"))
        .expect("list crates/")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !architecture.contains(&format!("### `{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md has no section for {missing:?}"
    );
}

/// Every `"OVL_…"` string literal in the code (the variables it reads) is in testing.md or
/// cli.md.
#[test]
fn docs_name_every_ovl_variable() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["crates", "tests", "xtask", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut variables = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (idx, _) in text.match_indices("\"OVL_") {
            let name: String = text[idx + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            variables.insert(name);
        }
    }
    assert!(
        variables.contains("OVL_ROOT"),
        "the scan found {variables:?}"
    );
    let docs = ["docs/testing.md", "docs/cli.md"]
        .map(|doc| fs::read_to_string(root.join(doc)).expect("read docs"))
        .join("\n");
    let missing: Vec<&String> = variables
        .iter()
        .filter(|name| !docs.contains(&format!("`{name}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/testing.md and docs/cli.md do not name {missing:?}"
    );
}
