use super::funcs::go_json;
use super::*;

/// A row like docker/cli's history context, with fixed values.
struct TestRow {
    id: &'static str,
    size: &'static str,
}

impl Row for TestRow {
    fn type_name(&self) -> &'static str {
        "*test.row"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["ID", "Size", "Comment"]
    }
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "ID" => Some(self.id.to_string()),
            "Size" => Some(self.size.to_string()),
            "Comment" => Some("<&>".to_string()),
            _ => None,
        }
    }
    fn method(&self, name: &str, args: &[String]) -> Option<String> {
        (name == "Label").then(|| format!("label {}", args.join(",")))
    }
}

const HEADERS: &[(&str, &str)] = &[("ID", "IMAGE"), ("Size", "SIZE"), ("Comment", "COMMENT")];

fn rows() -> Vec<TestRow> {
    vec![
        TestRow {
            id: "abc",
            size: "1.2MB",
        },
        TestRow {
            id: "<missing>",
            size: "0B",
        },
    ]
}

fn render(format: &str) -> String {
    Template::cli(format)
        .and_then(|template| template.render_rows(&rows(), HEADERS))
        .unwrap_or_else(|err| panic!("{format}: {err:#}"))
}

fn doc(template: &str, value: &Value) -> String {
    Template::go(template)
        .and_then(|template| template.render_value(value))
        .unwrap_or_else(|err| panic!("{template}: {err:#}"))
}

#[test]
fn fields_literal_text_and_escapes() {
    assert_eq!(render("{{.ID}}"), "abc\n<missing>\n");
    assert_eq!(
        render("id={{.ID}}\\t{{ .Size }}"),
        "id=abc\t1.2MB\nid=<missing>\t0B\n"
    );
    // Surrounding spaces are trimmed, `\n` becomes a newline, `\\t` keeps one backslash.
    assert_eq!(render("  {{.ID}}\\n "), "abc\n\n<missing>\n\n");
    assert_eq!(render("a\\\\tb"), "a\\\tb\na\\\tb\n");
}

#[test]
fn table_prints_the_header_and_aligns_like_tabwriter() {
    // Column width: widest cell plus 3, at least 10; the last cell is not padded.
    assert_eq!(
        render("table {{.ID}}\\t{{.Size}}"),
        "IMAGE       SIZE\nabc         1.2MB\n<missing>   0B\n"
    );
    // An empty last column still pads the column before it.
    assert_eq!(
        render("table {{.Size}}\\t{{.ID}}\\t"),
        "SIZE      IMAGE       \n1.2MB     abc         \n0B        <missing>   \n"
    );
    // Header functions pass the column name through.
    assert_eq!(
        render("table {{upper .ID}}\\t{{json .Size}}"),
        "IMAGE       SIZE\nABC         \"1.2MB\"\n<MISSING>   \"0B\"\n"
    );
    // `table` alone on no rows still prints the header line.
    let template = Template::cli("table {{.ID}}").expect("parse");
    assert_eq!(
        template
            .render_rows::<TestRow>(&[], HEADERS)
            .expect("render"),
        "IMAGE\n"
    );
}

#[test]
fn json_of_a_row_sorts_keys_and_escapes_html() {
    assert_eq!(
        render("{{json .}}").lines().next(),
        Some(r#"{"Comment":"\u003c\u0026\u003e","ID":"abc","Size":"1.2MB"}"#)
    );
    // A field's value is encoded without HTML escapes (SetEscapeHTML(false)).
    assert_eq!(render("{{json .Comment}}").lines().next(), Some(r#""<&>""#));
}

#[test]
fn functions() {
    assert_eq!(
        render("{{lower .Size}}|{{upper .ID}}").lines().next(),
        Some("1.2mb|ABC")
    );
    assert_eq!(render("{{.ID | upper}}").lines().next(), Some("ABC"));
    assert_eq!(render("{{pad .ID 2 1}}|").lines().next(), Some("  abc |"));
    assert_eq!(render("{{truncate .ID 2}}").lines().next(), Some("ab"));
    assert_eq!(
        render("{{join (split .Size \".\") \"+\"}}").lines().next(),
        Some("1+2MB")
    );
    assert_eq!(
        render("{{title \"hello wide_world-x\"}}").lines().next(),
        Some("Hello Wide_world-X")
    );
    assert_eq!(render("{{.ID}}{{println}}").lines().next(), Some("abc"));
    assert_eq!(
        render("{{println .ID .Size}}"),
        "abc 1.2MB\n\n<missing> 0B\n\n"
    );
    assert_eq!(
        render("{{printf \"%-5s|%3d\" .ID 7}}").lines().next(),
        Some("abc  |  7")
    );
    assert_eq!(
        render("{{print 1 2 \"a\" 3}}").lines().next(),
        Some("1 2a3")
    );
    assert_eq!(render("{{.Label \"x\"}}").lines().next(), Some("label x"));
    assert_eq!(render("{{len .ID}}").lines().next(), Some("3"));
}

#[test]
fn conditionals_ranges_and_variables() {
    assert_eq!(
        render("{{if eq .ID \"abc\"}}top{{else if .Size}}{{.Size}}{{else}}none{{end}}"),
        "top\n0B\n"
    );
    assert_eq!(
        render("{{with .Size}}<{{.}}>{{end}}").lines().next(),
        Some("<1.2MB>")
    );
    assert_eq!(
        render("{{range $i, $p := split .Size \".\"}}{{$i}}={{$p}};{{end}}")
            .lines()
            .next(),
        Some("0=1;1=2MB;")
    );
    assert_eq!(
        render("{{$x := .ID}}{{$x}}-{{$.Size}}").lines().next(),
        Some("abc-1.2MB")
    );
    assert_eq!(
        render("{{- \" a \" -}}  \n  {{.ID}}").lines().next(),
        Some(" a abc")
    );
    assert_eq!(
        render("{{/* a comment */}}{{.ID}}").lines().next(),
        Some("abc")
    );
    assert_eq!(
        render("{{if and .ID (not \"\")}}y{{end}}").lines().next(),
        Some("y")
    );
    assert_eq!(
        render("{{if or \"\" .Size}}{{.Size}}{{end}}")
            .lines()
            .next(),
        Some("1.2MB")
    );
}

#[test]
fn documents_print_like_go() {
    let value = serde_json::json!({
        "Id": "sha256:abc",
        "RootFS": {"Type": "layers", "Layers": ["sha256:1", "sha256:2"]},
        "Config": {"Labels": {"b": "2", "a": "1"}, "Env": ["A=1", "B=<2>"], "Volumes": null},
        "Size": 1234,
    });
    assert_eq!(doc("{{.Id}}", &value), "sha256:abc");
    assert_eq!(
        doc("{{json .RootFS.Layers}}", &value),
        r#"["sha256:1","sha256:2"]"#
    );
    assert_eq!(doc("{{.RootFS.Layers}}", &value), "[sha256:1 sha256:2]");
    assert_eq!(doc("{{.Config.Labels}}", &value), "map[a:1 b:2]");
    assert_eq!(doc("{{index .Config.Labels \"b\"}}", &value), "2");
    assert_eq!(doc("{{index .Config.Labels \"zz\"}}", &value), "");
    assert_eq!(doc("{{join .Config.Env \",\"}}", &value), "A=1,B=<2>");
    assert_eq!(doc("{{json .Config.Env}}", &value), r#"["A=1","B=<2>"]"#);
    assert_eq!(doc("{{.Config.Volumes}}", &value), "<no value>");
    assert_eq!(doc("{{.Size}}", &value), "1234");
    assert_eq!(
        doc("{{json .RootFS}}", &value),
        r#"{"Type":"layers","Layers":["sha256:1","sha256:2"]}"#
    );
    assert_eq!(
        doc("{{range .RootFS.Layers}}{{println .}}{{end}}", &value),
        "sha256:1\nsha256:2\n"
    );
    // inspect takes the template as written: `\t` stays two characters.
    assert_eq!(doc("{{.Id}}\\t", &value), "sha256:abc\\t");
    assert_eq!(
        go_json(&serde_json::json!("a\u{8}\u{2028}<"), false),
        r#""a\u0008\u2028<""#
    );
}

#[test]
fn errors_name_the_template() {
    let err = Template::cli("{{foo .ID}}").expect_err("unknown function");
    assert_eq!(
        err.to_string(),
        r#"invalid template "{{foo .ID}}": function "foo" not defined"#
    );
    let err = Template::cli("{{.ID").expect_err("unclosed");
    assert!(err.to_string().contains("unclosed action"), "{err}");
    let err = Template::cli("{{if .ID}}x").expect_err("no end");
    assert!(err.to_string().contains("without {{end}}"), "{err}");
    let err = Template::cli("{{template \"x\"}}").expect_err("unsupported");
    assert!(
        err.to_string().contains("{{template}} is not supported"),
        "{err}"
    );
    let err = Template::cli("{{html .ID}}").expect_err("unsupported function");
    assert!(
        err.to_string()
            .contains(r#"function "html" is not supported"#),
        "{err}"
    );
    let err = Template::cli("{{.Nope}}")
        .and_then(|template| template.render_rows(&rows(), HEADERS))
        .expect_err("unknown field");
    assert_eq!(
        err.to_string(),
        r#"executing template "{{.Nope}}": can't evaluate field Nope in type *test.row"#
    );
    let err = Template::go("{{.Missing}}")
        .and_then(|template| template.render_value(&serde_json::json!({"Id": "x"})))
        .expect_err("missing key");
    assert!(
        err.to_string()
            .contains(r#"map has no entry for key "Missing""#),
        "{err}"
    );
    let err = Template::cli("{{.}}")
        .and_then(|template| template.render_rows(&rows(), HEADERS))
        .expect_err("row as text");
    assert!(err.to_string().contains("use {{json .}}"), "{err}");
}

#[test]
fn header_keeps_what_was_printed_before_an_error() {
    // docker/cli ignores header errors: `.Label "x"` fails on the header map.
    assert_eq!(
        render("table {{.ID}}\\t{{.Label \"x\"}}"),
        "IMAGE       \nabc         label x\n<missing>   label x\n"
    );
}

/// An image as the daemon reports it, with a health check, ports and a `StopTimeout`, and with
/// `Metadata` left out.
fn typed_image() -> serde_json::Value {
    serde_json::json!({
        "Id": "sha256:abc",
        "RepoTags": ["a:1"],
        "RepoDigests": [],
        "Config": {
            "Env": null,
            "Cmd": ["sh"],
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30_000_000_000_i64, "Retries": 3},
            "Volumes": null,
            "Labels": {"b": "2", "a": "1"},
            "StopTimeout": 5
        },
        "ContainerConfig": null,
        "Size": 42,
        "RootFS": {"Type": "layers", "Layers": ["sha256:l1"]},
        "Extra": "only in the JSON"
    })
}

fn render_typed(template: &str) -> Result<String> {
    Template::go(template)?.render_typed(&IMAGE_INSPECT, &typed_image())
}

#[test]
fn typed_values_print_as_go_prints_them() {
    let cases = [
        ("{{.ID}} {{.Size}} {{.Os}}|", "sha256:abc 42 |"),
        ("{{.RootFS}}", "{layers [sha256:l1] }"),
        ("{{.Config.Healthcheck}}", "{[CMD true] 30s 0s 0s 3}"),
        ("{{.ContainerConfig}}", "<nil>"),
        ("{{.Config.ExposedPorts}}", "map[443/tcp:{} 80/tcp:{}]"),
        ("{{.Config.Volumes}} {{.Config.Env}}", "map[] []"),
        ("{{.Config.StopTimeout}}", "5"),
        ("{{.Metadata.LastTagTime}}", "0001-01-01 00:00:00 +0000 UTC"),
        ("{{.GraphDriver}}", "{map[] }"),
        ("{{printf \"%d %v\" .Size .RepoTags}}", "42 [a:1]"),
        (
            "{{print .RootFS.Layers .GraphDriver.Data}}",
            "[sha256:l1] map[]",
        ),
        (
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            "a=1;b=2;",
        ),
        ("{{range .Config.ExposedPorts}}{{.}}{{end}}", "{}{}"),
        (
            "{{len .Config.Volumes}} {{len .Config.Cmd}} {{join .Config.Cmd \",\"}}",
            "0 1 sh",
        ),
        (
            "{{index .Config.Labels \"zz\"}}|{{.Config.Labels.zz}}",
            "|<no value>",
        ),
        (
            "{{if .Config.Healthcheck}}hc{{end}} {{if .ContainerConfig}}cc{{end}}",
            "hc ",
        ),
        ("{{gt .Config.Healthcheck.Interval 0}}", "true"),
        ("{{printf \"%q\" .Config.Cmd}}", r#"["sh"]"#),
    ];
    for (template, want) in cases {
        assert_eq!(render_typed(template).expect(template), want, "{template}");
    }
}

#[test]
fn typed_values_encode_as_go_encodes_them() {
    assert_eq!(
        render_typed("{{json .Metadata}} {{json .RootFS}} {{json .ContainerConfig}}")
            .expect("json"),
        r#"{"LastTagTime":"0001-01-01T00:00:00Z"} {"Type":"layers","Layers":["sha256:l1"]} null"#
    );
    assert_eq!(
        render_typed("{{json .Config.Healthcheck}} {{json .Config.Labels}}").expect("json"),
        r#"{"Test":["CMD","true"],"Interval":30000000000,"Retries":3} {"a":"1","b":"2"}"#
    );
    let config = render_typed("{{json .Config}}").expect("json");
    assert!(
        config.starts_with(r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false"#),
        "{config}"
    );
    assert!(
        config.contains(r#""ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Tty":false"#),
        "{config}"
    );
    assert!(
        config.ends_with(r#""Labels":{"a":"1","b":"2"},"StopTimeout":5}"#),
        "{config}"
    );
    let all = render_typed("{{json .}}").expect("json");
    assert!(!all.contains("Extra"), "{all}");
    assert!(!all.contains("Variant"), "{all}");
}

#[test]
fn typed_failures_fall_back_to_the_json() {
    // `.Id` is no Go field of types.ImageInspect; the JSON has it.
    assert_eq!(
        render_typed("{{.Id}} {{.Extra}}").expect("fallback"),
        "sha256:abc only in the JSON"
    );
    // A string does not index a map keyed by nat.Port; the JSON's map of maps it does.
    assert_eq!(
        render_typed("{{index .Config.ExposedPorts \"80/tcp\"}}").expect("fallback"),
        "map[]"
    );
    // Both fail: the JSON's error is the one reported.
    let err = render_typed("{{.Nope}}").expect_err("no such field");
    assert!(
        err.to_string()
            .contains(r#"map has no entry for key "Nope""#),
        "{err}"
    );
    let err = render_typed("{{.ContainerConfig.Env}}").expect_err("nil pointer, then null");
    assert!(err.to_string().contains("nil pointer"), "{err}");
}

/// A container as `ovl inspect` reports one: no `HostConfig`, `NetworkSettings` or `Mounts`.
fn typed_container() -> serde_json::Value {
    serde_json::json!({
        "Id": "c1",
        "Created": "2026-12-04T16:02:16Z",
        "Path": "sh",
        "Args": [],
        "State": {"Status": "created", "Running": false},
        "Image": "sha256:abc",
        "Name": "/web",
        "Driver": "overlay2",
        "GraphDriver": {"Data": {"MergedDir": "/m"}, "Name": "overlay2"},
        "Config": {"Env": ["A=1"]}
    })
}

fn render_container(template: &str, container: &serde_json::Value) -> Result<String> {
    Template::go(template)?.render_typed(&CONTAINER_JSON, container)
}

#[test]
fn typed_containers_print_as_go_prints_them() {
    let container = typed_container();
    let cases = [
        (
            "{{.ID}} {{.Name}} {{.State.Status}} {{.State.Pid}} {{.RestartCount}}",
            "c1 /web created 0 0",
        ),
        (
            "{{.ContainerJSONBase.Name}} {{.GraphDriver.Data.MergedDir}}",
            "/web /m",
        ),
        (
            "{{.HostConfig}} {{.NetworkSettings}} {{.Mounts}} {{.Config.Env}}",
            "<nil> <nil> [] [A=1]",
        ),
        ("{{.}}", "{0xc000010000 [] 0xc000010000 <nil>}"),
        ("{{with .NetworkSettings}}net{{else}}none{{end}}", "none"),
        (
            "{{json .State}}",
            r#"{"Status":"created","Running":false,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":0,"Error":"","StartedAt":"","FinishedAt":""}"#,
        ),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_container(template, &container).expect(template),
            want,
            "{template}"
        );
    }
    let all = render_container("{{json .}}", &container).expect("json");
    assert!(
        all.starts_with(
            r#"{"Id":"c1","Created":"2026-12-04T16:02:16Z","Path":"sh","Args":[],"State":{"#
        ),
        "{all}"
    );
    assert!(
        all.contains(r#""ExecIDs":null,"HostConfig":null,"GraphDriver":{"#),
        "{all}"
    );
    assert!(
        all.contains(r#""Mounts":null,"Config":{"Hostname":"#),
        "{all}"
    );
    assert!(all.ends_with(r#""NetworkSettings":null}"#), "{all}");
}

#[test]
fn typed_containers_with_networks_and_a_host_config() {
    let mut container = typed_container();
    container["NetworkSettings"] = serde_json::json!({
        "IPAddress": "172.17.0.2",
        "Networks": {"bridge": {"IPAddress": "172.17.0.2"}}
    });
    container["HostConfig"] = serde_json::json!({"Memory": 5});
    let cases = [
        (
            "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Ports}}",
            "172.17.0.2 map[]",
        ),
        (
            "{{range $name, $net := .NetworkSettings.Networks}}{{$name}}:{{$net.IPAddress}}{{end}}",
            "bridge:172.17.0.2",
        ),
        // `HostConfig` is not described: printing it is left to the JSON run.
        ("{{if .HostConfig}}hc{{end}}", "hc"),
        ("{{.HostConfig}} {{.HostConfig.Memory}}", "map[Memory:5] 5"),
        ("{{json .HostConfig}}", r#"{"Memory":5}"#),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_container(template, &container).expect(template),
            want,
            "{template}"
        );
    }
}
