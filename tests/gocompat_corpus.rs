//! The conformance corpus of `crates/gocompat`, recorded from the docker 20.10 client and replayed
//! by gocompat on every run: the plain
//! `docker image inspect` JSON of two images, and for a fixed list of `--format` templates what
//! `docker image inspect --format T` printed over it (stdout and whether it succeeded); sizes as
//! `docker history` prints them with and without `--human`; creation times as `docker images`
//! prints them (`CreatedAt`, Go's `Time.String` with `TZ=UTC`) next to the RFC 3339 text.
//!
//! As root with dockerd 20.10 installed (a private daemon is started and stopped), the test
//! records a fresh corpus into a scratch directory and runs gocompat's conformance tests
//! (`crates/gocompat/tests/conformance.rs`) over it, so that gocompat is checked against the
//! docker client of this machine, not only against the committed recording. With
//! `OVL_GOCOMPAT_CORPUS=<dir>` it records there instead (`crates/gocompat/tests/corpus` refreshes
//! the committed corpus).

use std::fs;
use std::path::PathBuf;

use ovl_tests::*;
use serde_json::{json, Value};

/// An image with labels (one with HTML characters), environment, ports, volumes, an entrypoint,
/// a user and a working directory, and a layer of a known size.
const LABELLED_DOCKERFILE: &str = r#"FROM ovl-base:1
LABEL org.example.name="corpus image" version="1.0" html="<b>&</b>" quote="a \"b\" c"
ENV GREETING="hello world" PATH=/usr/local/bin:/usr/bin:/bin
COPY payload.bin /srv/payload.bin
WORKDIR /srv/app
EXPOSE 80/tcp 443 53/udp
VOLUME ["/data", "/cache"]
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#;

/// The templates, run on every recorded image.
const TEMPLATES: &[&str] = &[
    "{{.Id}}",
    "{{.ID}}",
    "{{.Os}}/{{.Architecture}}",
    "{{.Size}}",
    "{{.VirtualSize}}",
    "{{.Created}}",
    "{{.RepoTags}}",
    "{{.RepoDigests}}",
    "{{index .RepoTags 0}}",
    "{{len .RootFS.Layers}}",
    "{{join .RepoTags \",\"}}",
    "{{json .RepoTags}}",
    "{{json .RootFS}}",
    "{{.RootFS.Type}} {{.RootFS.Layers}}",
    "{{.Config.Labels}}",
    "{{json .Config.Labels}}",
    "{{index .Config.Labels \"version\"}}",
    "{{.Config.Labels.version}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    "{{range .Config.Env}}{{println .}}{{end}}",
    "{{range $i, $e := .RootFS.Layers}}{{$i}}:{{truncate $e 19}} {{end}}",
    "{{json .Config.Env}}",
    "{{.Config.Env}}",
    "{{.Config.Entrypoint}} {{.Config.Cmd}}",
    "{{json .Config.Entrypoint}}",
    "{{.Config.WorkingDir}} {{.Config.User}}",
    "{{json .Config.ExposedPorts}}",
    "{{json .Config.Volumes}}",
    "{{upper .Os}} {{lower \"MiXeD\"}} {{title \"hello docker world\"}}",
    "{{split .Config.WorkingDir \"/\"}}",
    "{{join (split .Config.WorkingDir \"/\") \"|\"}}",
    "{{printf \"%s-%s\" .Os .Architecture}}",
    "{{printf \"%d bytes\" .Size}}",
    "{{printf \"%q\" .Config.WorkingDir}}",
    "{{printf \"%v\" .RepoTags}}",
    "{{printf \"[%-8s][%8s]\" .Os .Architecture}}",
    "{{print .Os 1 2 \"x\" true}}",
    "{{println .Os .Architecture}}",
    "{{if .Config.Labels}}labels{{else}}none{{end}}",
    "{{if eq .Os \"linux\"}}yes{{else if eq .Os \"windows\"}}win{{else}}no{{end}}",
    "{{with .Config}}{{.WorkingDir}}{{end}}",
    "{{with .Config.Healthcheck}}hc{{else}}no healthcheck{{end}}",
    "{{gt .Size 1000}} {{lt (len .RepoTags) 2}} {{ge .Size .Size}} {{le 1 2}}",
    "{{ne .Architecture \"arm64\"}} {{eq .Os \"linux\" \"windows\"}}",
    "{{and .Os .Architecture}} {{or .Parent \"no parent\"}} {{not .Config.Tty}}",
    "{{$x := .Os}}{{$x}} {{$}}{{end}}",
    "{{$x := .Os}}{{$x}}-{{$.Architecture}}",
    "  {{- .Os -}}  |{{/* a comment */}}|",
    "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.StopSignal}}",
    "{{json .Metadata}}",
    "{{.GraphDriver.Name}}",
    "{{json .ContainerConfig.Labels}}",
    "{{.Comment}}|{{.Author}}|{{.DockerVersion}}|{{.Parent}}",
    "{{index .Config.Labels \"html\"}} {{json (index .Config.Labels \"html\")}}",
    "{{len .Config.Labels}} {{len .Id}}",
    "{{range .RepoTags}}[{{.}}]{{else}}untagged{{end}}",
    "{{pad .Os 2 3}}|",
    "{{.NoSuchField}}",
    "{{.Config.Labels.nosuchkey}}",
    "{{index .RepoTags 5}}",
    "{{printf \"%d\" .Os}}",
    "{{json .}}",
];

#[test]
fn gocompat_prints_what_the_docker_client_prints_needs_root_and_dockerd() {
    const TEST: &str = "gocompat_prints_what_the_docker_client_prints_needs_root_and_dockerd";
    if !require_dockerd(TEST) {
        return;
    }
    let scratch = Scratch::new();
    let corpus = std::env::var_os("OVL_GOCOMPAT_CORPUS")
        .map_or_else(|| scratch.path().join("corpus"), PathBuf::from);
    fs::create_dir_all(&corpus).expect("mkdir corpus");
    record(&corpus);
    let replay = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["test", "-p", "gocompat", "--test", "conformance"])
        .env("OVL_GOCOMPAT_CORPUS", &corpus)
        .output()
        .expect("run gocompat's conformance tests");
    assert!(
        replay.status.success(),
        "gocompat differs from the docker client over {}:\n{}{}",
        corpus.display(),
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
}

/// Records the corpus into `corpus` with a private dockerd.
fn record(corpus: &std::path::Path) {
    let docker = Dockerd::start(&scratch_path());
    base_image(&docker);
    build_image(
        &docker,
        "corpus/labelled:1.0",
        LABELLED_DOCKERFILE,
        &[("payload.bin", vec![7u8; 1_234_567], 0o644)],
    );
    docker.docker_ok(["tag", "corpus/labelled:1.0", "corpus/labelled:latest"]);
    let size_files: &[(&str, usize)] = &[
        ("s1", 1),
        ("s999", 999),
        ("s1000", 1000),
        ("s1m", 999_500),
        ("s12m", 12_345_678),
    ];
    for (name, size) in size_files {
        build_image(
            &docker,
            &format!("corpus/size:{name}"),
            "FROM ovl-base:1\nCOPY blob /blob\n",
            &[("blob", vec![1u8; *size], 0o644)],
        );
    }

    let images = [("base", "ovl-base:1"), ("labelled", "corpus/labelled:1.0")];
    let mut cases = Vec::new();
    for (name, image) in images {
        let raw = docker.docker_ok(["image", "inspect", image]);
        fs::write(corpus.join(format!("inspect-{name}.json")), &raw).expect("write inspect");
        for template in TEMPLATES {
            let output = docker.docker(["image", "inspect", "--format", template, image]);
            cases.push(json!({
                "input": format!("inspect-{name}.json"),
                "template": template,
                "success": output.status.success(),
                "stdout": String::from_utf8_lossy(&output.stdout),
                "stderr": String::from_utf8_lossy(&output.stderr),
            }));
        }
    }
    write_json(&corpus.join("templates.json"), &Value::Array(cases));

    // Sizes: `docker history` with raw byte counts and with go-units HumanSizeWithPrecision(3).
    let mut sizes = Vec::new();
    let mut times = Vec::new();
    let mut all: Vec<String> = images.iter().map(|(_, image)| image.to_string()).collect();
    all.extend(
        size_files
            .iter()
            .map(|(name, _)| format!("corpus/size:{name}")),
    );
    for image in &all {
        let raw = docker.docker_ok(["history", "--human=false", "--format", "{{.Size}}", image]);
        let human = docker.docker_ok(["history", "--human=true", "--format", "{{.Size}}", image]);
        for (raw, human) in raw.lines().zip(human.lines()) {
            sizes.push(
                json!({"bytes": raw.parse::<i64>().expect("raw size"), "human_size_3": human}),
            );
        }
        let size = docker.docker_ok(["image", "inspect", "--format", "{{.Size}}", image]);
        let listed = docker.docker_ok(["images", "--format", "{{.Size}}", image]);
        sizes.push(json!({"bytes": size.trim().parse::<i64>().expect("size"), "human_size_3": listed.trim()}));
        let created = docker.docker_ok(["image", "inspect", "--format", "{{.Created}}", image]);
        let mut command = docker.docker_command(["images", "--format", "{{.CreatedAt}}", image]);
        let listed = command.env("TZ", "UTC").output().expect("docker images");
        times.push(json!({
            "rfc3339": created.trim(),
            "time_string": String::from_utf8_lossy(&listed.stdout).trim(),
        }));
    }
    write_json(&corpus.join("sizes.json"), &Value::Array(sizes));
    write_json(&corpus.join("times.json"), &Value::Array(times));
    drop(docker);
}

fn write_json(path: &std::path::Path, value: &Value) {
    let mut text = serde_json::to_string_pretty(value).expect("encode");
    text.push('\n');
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
