//! gocompat against what the docker 20.10 client printed (`tests/corpus/`): every `--format`
//! template run over the recorded `docker image inspect` JSON must print the bytes docker printed
//! (and fail where docker failed); go-units sizes and Go's `Time.String` must match the columns
//! `docker history` and `docker images` showed.
//!
//! The corpus is recorded, never written by hand, by `tests/gocompat_corpus.rs` of the
//! `ovl-tests` package (root and dockerd 20.10 needed; it starts and stops a private daemon),
//! which records a fresh corpus on every run of the suite and replays it with these tests
//! (`OVL_GOCOMPAT_CORPUS=<dir>`); to refresh the committed one:
//!
//! ```text
//! OVL_GOCOMPAT_CORPUS=$PWD/crates/gocompat/tests/corpus cargo test -p ovl-tests --test gocompat_corpus
//! ```

use std::fs;
use std::path::PathBuf;

use gocompat::template::{Template, IMAGE_INSPECT};
use serde_json::Value;

/// The corpus directory: `OVL_GOCOMPAT_CORPUS` when set (a recording just made from the docker
/// client), else the recorded `tests/corpus/`.
fn corpus(name: &str) -> Value {
    let dir = std::env::var_os("OVL_GOCOMPAT_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"),
        PathBuf::from,
    );
    let path = dir.join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} of {case}"))
}

/// Docker's image inspect output: the template run on each document (typed first, as docker/cli's
/// `TemplateInspector`), each followed by a newline.
fn render(template: &str, documents: &[Value]) -> Result<String, String> {
    let template = Template::go(template).map_err(|err| err.to_string())?;
    let mut out = String::new();
    for document in documents {
        out.push_str(
            &template
                .render_typed(&IMAGE_INSPECT, document)
                .map_err(|err| err.to_string())?,
        );
        out.push('\n');
    }
    Ok(out)
}

/// Cases where docker's output is not yet gocompat's, each recorded as docker printed it (input
/// file, template). None today: the typed first run (`Template::render_typed` over
/// `types.ImageInspect`) covers what running on the JSON alone got wrong (`.ID`, zero values of
/// fields left out by `omitempty`, `[]` and `map[]` for null slices and maps, `<no value>` for a
/// missing label). The test fails when a listed case starts to agree, so that the list only
/// shrinks.
const TYPED_VALUE_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn templates_print_what_docker_printed() {
    let cases = corpus("templates.json");
    let cases = cases.as_array().expect("a list of cases");
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let input = corpus(text(case, "input"));
        let documents = input.as_array().expect("docker inspect prints a list");
        let template = text(case, "template");
        let got = render(template, documents);
        let ok = match (case["success"].as_bool(), &got) {
            (Some(true), Ok(out)) => out == text(case, "stdout"),
            (Some(false), Err(_)) => true,
            _ => false,
        };
        let known = TYPED_VALUE_DIFFERENCES.contains(&(text(case, "input"), template));
        if known && ok {
            failures.push(format!(
                "{} {template:?} now agrees with docker: remove it from TYPED_VALUE_DIFFERENCES",
                text(case, "input")
            ));
        }
        if !ok && !known {
            failures.push(format!(
                "{} {template:?}\n  docker: {:?} {:?}\n  gocompat: {got:?}",
                text(case, "input"),
                text(case, "stdout"),
                text(case, "stderr"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} templates differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn sizes_are_what_docker_printed() {
    for case in corpus("sizes.json").as_array().expect("a list") {
        let bytes = case["bytes"].as_i64().expect("bytes");
        assert_eq!(
            gocompat::units::human_size(bytes),
            text(case, "human_size_3"),
            "{bytes}"
        );
    }
}

#[test]
fn times_are_what_docker_printed() {
    for case in corpus("times.json").as_array().expect("a list") {
        let rfc3339 = text(case, "rfc3339");
        let seconds = gocompat::time::unix_seconds(rfc3339).expect("an RFC 3339 time");
        assert_eq!(
            gocompat::time::go_time_string_utc(seconds),
            text(case, "time_string"),
            "{rfc3339}"
        );
    }
}
