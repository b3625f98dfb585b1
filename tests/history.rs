//! `ovl history` and the `--format` templates of `ovl images`, `ovl ps`, `ovl history` and
//! `ovl inspect -f` against the docker 20.10 client on the same data root, read while its dockerd
//! runs.
//!
//! Columns that tell the time since something ("5 seconds ago", "Exited (0) 3 seconds ago") are
//! compared with an explicit tolerance for the clock tick between the calls: docker runs before
//! and after ovl, and ovl's output must equal one of the two, or, when a tick changed a column in
//! between, say for every such column a time between docker's two and agree on everything else.

use std::ffi::OsStr;
use std::thread::sleep;
use std::time::Duration;

use anyhow::ensure;
use ovl_tests::*;

/// The image whose history has empty-layer entries (LABEL, ENV, CMD) and layers (RUN), a
/// `created_by` longer than 45 characters and one with a tab.
const DOCKERFILE: &str = "FROM ovl-base:1
LABEL org.example.purpose=\"history test\"
ENV GREETING=hello
RUN echo \"$GREETING\" > /greeting && mkdir -p /data && echo more > /data/more.txt
RUN printf 'a\tb' > /tabbed
CMD [\"/bin/sh\"]
";

#[test]
fn history_and_formats_match_docker_needs_root_and_dockerd() {
    const TEST: &str = "history_and_formats_match_docker_needs_root_and_dockerd";
    let Some(docker) = dockerd_with_base(TEST) else {
        return;
    };
    // Distinct creation seconds keep `docker images`' order (newest first) free of ties.
    sleep(Duration::from_millis(1100));
    build_image(&docker, "ovl-hist:1", DOCKERFILE, &[]);
    docker.docker_ok(["tag", "ovl-hist:1", "ovl-hist:latest"]);
    sleep(Duration::from_millis(1100));
    docker.docker_ok([
        "run",
        "--network",
        "none",
        "--name",
        "c1",
        "ovl-hist:1",
        "/bin/sh",
        "-c",
        "echo committed > /committed.txt",
    ]);
    docker.docker_ok([
        "commit",
        "-m",
        "made by commit\nsecond line",
        "c1",
        "ovl-hist:2",
    ]);
    let ovl = Ovl::new(docker.data_root());
    let mut failures = Failures::default();

    let history_formats: &[&[&str]] = &[
        &[],
        &["--no-trunc"],
        &["-q"],
        &["-q", "--no-trunc"],
        &["--human=false"],
        &["-H=false", "--no-trunc"],
        &["--format", "{{.ID}}\\t{{.CreatedBy}}\\t{{.Size}}"],
        &[
            "--format",
            "table {{.ID}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}",
        ],
        &["--format", "{{json .}}"],
        &[
            "--format",
            "table {{.CreatedAt}}\\t{{.CreatedSince}}\\t{{upper .Comment}}",
        ],
    ];
    for image in ["ovl-hist:1", "ovl-hist:2", "ovl-base:1"] {
        for options in history_formats {
            let mut args = vec!["history"];
            args.extend_from_slice(options);
            args.push(image);
            failures.check(&format!("{args:?}"), same_output(&docker, &ovl, &args));
        }
    }

    for args in [
        vec!["images"],
        vec!["images", "--no-trunc"],
        vec!["images", "-q"],
        vec!["images", "--digests"],
        vec![
            "images",
            "--format",
            "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}",
        ],
        vec![
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}} {{.CreatedAt}} {{.VirtualSize}}",
        ],
        vec!["images", "--format", "{{json .}}"],
        vec!["images", "--format", "{{.ID}}\t{{if .CreatedSince}}{{.CreatedSince}}{{end}}"],
        vec!["ps", "-a"],
        vec![
            "ps",
            "-a",
            "--format",
            "{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.State}}|{{.Labels}}|{{.Label \"org.example.purpose\"}}",
        ],
        vec!["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}\\t{{.Size}}"],
        vec!["ps", "-a", "--format", "{{json .}}"],
        vec!["inspect", "-f", "{{json .RootFS.Layers}}", "ovl-hist:1"],
        vec!["inspect", "-f", "{{json .RootFS.Layers}}", "ovl-hist:2", "ovl-base:1"],
        vec![
            "inspect",
            "-f",
            "{{.Id}} {{index .Config.Labels \"org.example.purpose\"}} {{.Config.Env}}",
            "ovl-hist:1",
        ],
        vec![
            "inspect",
            "-f",
            "{{range .RootFS.Layers}}{{println .}}{{end}}{{len .RootFS.Layers}}",
            "ovl-hist:2",
        ],
        vec!["inspect", "-f", "{{json .Config.Env}} {{.Config.Cmd}}", "ovl-hist:1"],
    ] {
        failures.check(&format!("{args:?}"), same_output(&docker, &ovl, &args));
    }

    failures.check("errors name the template and exit 1", {
        (|| {
            let stderr = ovl.fail(["history", "--format", "{{.Nope}}", "ovl-hist:1"]);
            ensure!(
                stderr.contains("{{.Nope}}") && stderr.contains("can't evaluate field Nope"),
                "{stderr}"
            );
            let stderr = ovl.fail(["images", "--format", "{{nosuch .ID}}"]);
            ensure!(
                stderr.contains("{{nosuch .ID}}") && stderr.contains("\"nosuch\" not defined"),
                "{stderr}"
            );
            let stderr = ovl.fail(["inspect", "-f", "{{.NoSuchKey}}", "ovl-hist:1"]);
            ensure!(stderr.contains("NoSuchKey"), "{stderr}");
            let stderr = ovl.fail(["history", "nosuch:1"]);
            ensure!(stderr.contains("nosuch:1"), "{stderr}");
            Ok(())
        })()
    });
    drop(docker);
    failures.finish();
}

/// Runs `docker args`, `ovl args`, `docker args` and checks that ovl printed what docker did,
/// with the clock-tick tolerance described at the top of this file.
fn same_output(docker: &Dockerd, ovl: &Ovl, args: &[&str]) -> anyhow::Result<()> {
    let run_docker = || -> anyhow::Result<String> {
        // The docker client prints times in its local zone; ovl prints UTC.
        let mut command = docker.docker_command(args);
        command.env("TZ", "UTC");
        Ok(String::from_utf8_lossy(&stdout_of_success(command)?).into_owned())
    };
    let before = run_docker()?;
    let ours = ovl.try_ok(args)?;
    let after = run_docker()?;
    eprintln!("--- docker {args:?}\n{before}--- ovl\n{ours}");
    same_up_to_clock_tick(&before, &ours, &after)
}

/// Whether ovl's output equals docker's from before or after it, or differs from both only in
/// times that lie between docker's two (a clock tick changed a column between the calls).
fn same_up_to_clock_tick(before: &str, ours: &str, after: &str) -> anyhow::Result<()> {
    if ours == before || ours == after {
        return Ok(());
    }
    let mismatch = || format!("docker (before):\n{before}\novl:\n{ours}\ndocker (after):\n{after}");
    ensure!(before != after, "ovl differs from docker:\n{}", mismatch());
    let (before_text, before_ages) = split_ages(before);
    let (our_text, our_ages) = split_ages(ours);
    let (after_text, after_ages) = split_ages(after);
    ensure!(
        our_text == before_text && our_text == after_text,
        "ovl differs from docker beyond the times:\n{}",
        mismatch()
    );
    ensure!(
        our_ages.len() == before_ages.len() && our_ages.len() == after_ages.len(),
        "different numbers of times:\n{}",
        mismatch()
    );
    for ((low, ours), high) in before_ages.iter().zip(&our_ages).zip(&after_ages) {
        ensure!(
            low <= ours && ours <= high,
            "a time ovl printed is not between docker's two:\n{}",
            mismatch()
        );
    }
    Ok(())
}

/// The text with every "<n> <unit> ago" phrase replaced by `<AGO>` and runs of spaces shortened
/// to two (a longer phrase widens its column), and the phrases as seconds, in order.
fn split_ages(text: &str) -> (String, Vec<u64>) {
    const FIXED: [(&str, u64); 3] = [
        ("Less than a second ago", 0),
        ("About a minute ago", 60),
        ("About an hour ago", 3600),
    ];
    const UNITS: [(&str, u64); 8] = [
        (" second ago", 1),
        (" seconds ago", 1),
        (" minutes ago", 60),
        (" hours ago", 3600),
        (" days ago", 86_400),
        (" weeks ago", 7 * 86_400),
        (" months ago", 30 * 86_400),
        (" years ago", 365 * 86_400),
    ];
    let mut out = String::new();
    let mut ages = Vec::new();
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (phrase, seconds) in FIXED {
            if let Some(after) = rest.strip_prefix(phrase) {
                out.push_str("<AGO>");
                ages.push(seconds);
                rest = after;
                continue 'scan;
            }
        }
        let at_word_start = !out.ends_with(|p: char| p.is_ascii_alphanumeric());
        let n_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if at_word_start && n_digits > 0 {
            for (unit, seconds) in UNITS {
                if let Some(after) = rest[n_digits..].strip_prefix(unit) {
                    let amount: u64 = rest[..n_digits].parse().unwrap_or(0);
                    out.push_str("<AGO>");
                    ages.push(amount * seconds);
                    rest = after;
                    continue 'scan;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    let mut collapsed = String::new();
    for c in out.chars() {
        if !(c == ' ' && collapsed.ends_with("  ")) {
            collapsed.push(c);
        }
    }
    (collapsed, ages)
}

#[test]
fn ages_are_found_for_the_tolerant_comparison() {
    let (text, ages) = split_ages("abc     5 seconds ago     Exited (0) About a minute ago\n");
    assert_eq!(text, "abc  <AGO>  Exited (0) <AGO>\n");
    assert_eq!(ages, vec![5, 60]);
    let (text, ages) = split_ages("v25 seconds ago 1 second ago");
    assert_eq!(text, "v25 seconds ago <AGO>");
    assert_eq!(ages, vec![1]);
}

#[test]
fn a_clock_tick_between_the_calls_is_tolerated_and_nothing_else() {
    let before =
        "ID    CREATED          SIZE\nab    9 seconds ago    1B\ncd    1 second ago     2B\n";
    let after =
        "ID    CREATED           SIZE\nab    10 seconds ago    1B\ncd    2 seconds ago     2B\n";
    assert!(same_up_to_clock_tick(before, before, after).is_ok());
    assert!(same_up_to_clock_tick(before, after, after).is_ok());
    // One column ticked before ovl ran, the other after it.
    let between =
        "ID    CREATED           SIZE\nab    10 seconds ago    1B\ncd    1 second ago      2B\n";
    assert!(same_up_to_clock_tick(before, between, after).is_ok());
    // A time outside docker's two, another size, or any difference when docker's two agree.
    let late = between.replace("10 seconds", "12 seconds");
    assert!(same_up_to_clock_tick(before, &late, after).is_err());
    let resized = between.replace("2B", "3B");
    assert!(same_up_to_clock_tick(before, &resized, after).is_err());
    let realigned = before.replace("ab    9", "ab   9");
    assert!(same_up_to_clock_tick(before, &realigned, before).is_err());
}

/// `ovl history` on a root made without dockerd: the one history entry of an imported image
/// with the columns `docker history` prints, expected values written down from Docker's rules
/// (moby's import writes `comment: "Imported from -"` and no `created_by`; the size of an applied
/// layer is overlay2's `directory.Size` of its `diff/`: file sizes and symlink target lengths).
#[test]
fn history_of_an_imported_image_needs_root() {
    const TEST: &str = "history_of_an_imported_image_needs_root";
    let Some(work) = root_scratch(TEST) else {
        return;
    };
    let archive = work.join("base.tar");
    let tar_bytes = base_rootfs_tar();
    std::fs::write(&archive, &tar_bytes).expect("write base tar");
    let mut expected_size = 0u64;
    let mut reader = tar::Archive::new(tar_bytes.as_slice());
    for entry in reader.entries().expect("read base tar") {
        let entry = entry.expect("tar entry");
        let header = entry.header();
        match header.entry_type() {
            tar::EntryType::Regular => expected_size += header.size().expect("size"),
            tar::EntryType::Symlink => {
                let target = header.link_name_bytes().expect("symlink target");
                expected_size += target.len() as u64;
            }
            _ => {}
        }
    }
    let ovl = Ovl::new(work.join("root"));
    let image_id = ovl
        .ok([
            OsStr::new("import"),
            archive.as_os_str(),
            OsStr::new("base:1"),
        ])
        .trim()
        .to_string();
    let rows = ovl.ok([
        "history",
        "--human=false",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
        "base:1",
    ]);
    assert_eq!(
        rows,
        format!("{image_id}||{expected_size}|Imported from -\n")
    );
    assert_eq!(
        ovl.ok(["history", "-q", "base:1"]),
        format!("{}\n", &image_id[7..19])
    );
    // The default table: IMAGE as wide as the 12-character id plus 3, the empty CREATED BY
    // column as wide as its header plus 3, COMMENT last and not padded.
    let table = ovl.ok(["history", "base:1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("IMAGE          CREATED "), "{table}");
    assert!(lines[0].ends_with("SIZE      COMMENT"), "{table}");
    assert!(
        lines[1].starts_with(&format!("{}   ", &image_id[7..19])),
        "{table}"
    );
    assert!(lines[1].ends_with("   Imported from -"), "{table}");
    let created_by_column = lines[0].find("CREATED BY").expect("CREATED BY header");
    assert_eq!(
        &lines[1][created_by_column..created_by_column + 13],
        " ".repeat(13)
    );
    assert!(ovl
        .fail(["history", "--format", "{{.Size", "base:1"])
        .contains("{{.Size"));
}
