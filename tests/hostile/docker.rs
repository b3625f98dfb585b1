//! The hostile cases against a private dockerd 20.10.

use super::*;

/// The names in a private dockerd's scratch directory that are Docker's own or the test's, left
/// out of the sentinel snapshot there.
pub(super) const DOCKERD_SCRATCH_NAMES: [&str; 8] = [
    "data",
    "exec",
    "docker.sock",
    "docker.pid",
    "dockerd.log",
    "daemon.json",
    "client-config",
    "inputs",
];

/// The check Docker's layer must pass: the case's own when Docker contains it alike, else the
/// one that shows Docker's different result.
pub(super) fn docker_layer_check(case: &Case) -> Option<&ContainCheck> {
    match (&case.docker, &case.expect, &case.docker_check) {
        (Docker::Same, Expect::Contain(check), _) | (Docker::Loads(_), _, Some(check)) => {
            Some(check)
        }
        _ => None,
    }
}

pub(super) fn docker_case(docker: &Dockerd, scratch: &Path, case: &Case) -> anyhow::Result<()> {
    let sentinel_before = sentinel_snapshot(scratch, &DOCKERD_SCRATCH_NAMES)?;
    let host_files_before = host_file_states()?;
    let input = scratch.join("inputs").join(format!("{}.tar", case.name));
    fs::write(&input, &case.input)?;
    let args: Vec<OsString> = match case.via {
        Via::Load => vec!["load".into(), "-i".into(), input.clone().into()],
        Via::Import => vec![
            "import".into(),
            input.clone().into(),
            case.tag.clone().into(),
        ],
    };
    let run = run_bounded(docker.docker_command(&args), COMMAND_DEADLINE)?;
    let _ = fs::remove_file(&input);
    eprintln!(
        "docker case {}: exit {:?} in {:.2?}; stderr: {}",
        case.name,
        run.code,
        run.elapsed,
        run.stderr.trim_end()
    );
    if let Docker::Loads(why) = case.docker {
        eprintln!("  where Docker differs from ovl: {why}");
    }
    let mut problems = Vec::new();
    let should_load = match (&case.docker, &case.expect) {
        (Docker::Loads(_), _) | (Docker::Same, Expect::Contain(_) | Expect::Bounded) => true,
        (Docker::Same, Expect::Reject(_)) | (Docker::NotRun(_), _) => false,
    };
    let loaded = run.code == Some(0);
    if run.timed_out {
        problems.push("docker did not end within its deadline".to_string());
    } else if loaded != should_load {
        problems.push(format!(
            "docker {} exited {:?}, but the table says Docker {}; stderr: {}",
            if case.via == Via::Load {
                "load"
            } else {
                "import"
            },
            run.code,
            if should_load {
                "loads it"
            } else {
                "refuses it"
            },
            run.stderr
        ));
    } else if let (true, Some(check)) = (loaded, docker_layer_check(case)) {
        let inspect = docker.docker(["image", "inspect", case.tag.as_str()]);
        let images: serde_json::Value = serde_json::from_slice(&inspect.stdout)
            .with_context(|| format!("docker image inspect {}", case.tag))?;
        let image = &images[0];
        let upper = image["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .with_context(|| format!("no UpperDir in docker image inspect {}", case.tag))?;
        if let Err(e) = check(Path::new(upper), image) {
            problems.push(format!("Docker's layer {upper}: {e:#}"));
        }
    }
    let sentinel_after = sentinel_snapshot(scratch, &DOCKERD_SCRATCH_NAMES)?;
    host_invariants(
        &sentinel_before,
        &sentinel_after,
        &host_files_before,
        &mut problems,
    )?;
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

// ------------------------------------------------------------------------------------------------
// The cases
