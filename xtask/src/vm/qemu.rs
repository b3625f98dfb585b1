//! QEMU: the accelerator probe, one boot per kernel with its results read from the second serial
//! port, and the kernel × lane × scenario matrix.

use super::*;

// ------------------------------------------------------------------------------------------------
// QEMU

pub(super) const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// `kvm` when a guest really boots with it (a present /dev/kvm is not enough: nested setups
/// fail on MSRs or hang), `tcg` otherwise.
pub(super) fn accelerator(vm_dir: &Path, kernel: &Kernel) -> Result<&'static str> {
    if !Path::new("/dev/kvm").exists() {
        return Ok("tcg");
    }
    let dir = vm_dir.join("kvm-probe");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("stage/bin"))?;
    copy_exec(
        Path::new(ovl_tests::BUSYBOX),
        &dir.join("stage/bin/busybox"),
    )?;
    write_exec(
        &dir.join("stage/init"),
        b"#!/bin/busybox sh\n/bin/busybox mkdir -p /dev\n/bin/busybox mount -t devtmpfs d /dev\necho KVM-OK > /dev/ttyS1\n/bin/busybox poweroff -f\n",
    )?;
    let initramfs = dir.join("probe.cpio.gz");
    cpio(&dir.join("stage"), &initramfs)?;
    let results = dir.join("results.log");
    let mut child = qemu_command(
        "kvm",
        kernel,
        &initramfs,
        &dir.join("console.log"),
        &results,
        &[],
        "",
    )
    .spawn()
    .context("starting qemu")?;
    let started = Instant::now();
    let ok = loop {
        if child.try_wait()?.is_some() {
            break fs::read_to_string(&results)
                .unwrap_or_default()
                .contains("KVM-OK");
        }
        if started.elapsed() > KVM_PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = fs::remove_dir_all(&dir);
    Ok(if ok { "kvm" } else { "tcg" })
}

pub(super) fn qemu_command(
    accel: &str,
    kernel: &Kernel,
    initramfs: &Path,
    console: &Path,
    results: &Path,
    disks: &[PathBuf],
    extra_append: &str,
) -> Command {
    let mut command = Command::new(QEMU);
    command
        .args(["-machine", &format!("q35,accel={accel}")])
        .args(["-m", &GUEST_MEMORY_MB.to_string()])
        .args(["-smp", "2"])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args([
            "-append",
            &format!("console=ttyS0 quiet panic=-1 rdinit=/init {extra_append}"),
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if accel == "kvm" {
        command.args(["-cpu", "max"]);
    }
    for disk in disks {
        command.args([
            "-drive",
            &format!("file={},format=raw,if=virtio,cache=unsafe", disk.display()),
        ]);
    }
    command
}

/// What one guest reported.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) passed: usize,
    pub(super) failed: usize,
    pub(super) skipped: usize,
    pub(super) complete: bool,
    pub(super) boot_secs: Option<f64>,
    /// From starting QEMU to its exit.
    pub(super) total: Duration,
    /// Every result line, in the order the guest ran them.
    pub(super) cells: Vec<Cell>,
    /// Why the guest did not finish (a timeout).
    pub(super) error: Option<String>,
}

/// One scenario of one run: native, or under a lane.
#[derive(Debug)]
pub(super) struct Cell {
    /// `native` or the lane's name.
    pub(super) lane: String,
    pub(super) scenario: String,
    /// `PASS`, `FAIL` or `SKIP`.
    pub(super) word: String,
    pub(super) secs: Option<f64>,
}

/// The run name of native results in the matrix.
pub(super) const NATIVE: &str = "native";

impl Report {
    pub(super) fn line(&self, kernel: &str) -> String {
        format!(
            "{kernel}: {} passed, {} failed, {} skipped{}; boot {} s, whole run {:.1} s",
            self.passed,
            self.failed,
            self.skipped,
            match (&self.error, self.complete) {
                (Some(error), _) => format!(" ({error})"),
                (None, true) => String::new(),
                (None, false) => " (no SUMMARY: the guest did not finish)".to_string(),
            },
            self.boot_secs
                .map(|secs| format!("{secs:.1}"))
                .unwrap_or_else(|| "?".to_string()),
            self.total.as_secs_f64()
        )
    }

    pub(super) fn ok(&self) -> bool {
        self.error.is_none() && self.complete && self.failed == 0
    }

    /// Counts and keeps one result line of `kernel`'s guest.
    pub(super) fn record(&mut self, kernel: &str, line: &str) {
        let mut words = line.split_whitespace();
        let word = words.next().unwrap_or_default();
        match word {
            "PASS" => self.passed += 1,
            "FAIL" => self.failed += 1,
            "SKIP" => self.skipped += 1,
            "SUMMARY" => self.complete = true,
            "BOOT" => self.boot_secs = words.next().and_then(|secs| secs.parse().ok()),
            _ => {}
        }
        if !matches!(word, "PASS" | "FAIL" | "SKIP") {
            return;
        }
        // `<kernel>/<scenario>` natively, `<kernel>/<lane>/<scenario>` under a lane.
        let name = words.next().unwrap_or_default();
        let run = name
            .strip_prefix(kernel)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(name);
        let (lane, scenario) = run.rsplit_once('/').unwrap_or((NATIVE, run));
        let secs = words
            .next()
            .and_then(|secs| secs.strip_prefix('('))
            .and_then(|secs| secs.parse().ok());
        self.cells.push(Cell {
            lane: lane.to_string(),
            scenario: scenario.to_string(),
            word: word.to_string(),
            secs,
        });
    }
}

/// The kernel × lane × scenario table of a whole vm-test, as markdown.
pub(super) struct Matrix<'a> {
    pub(super) accel: &'a str,
    /// Guests that ran at once.
    pub(super) jobs: usize,
    /// The ovl of the native runs.
    pub(super) native_ovl: String,
    /// The ovl of the lanes, when there were lanes.
    pub(super) lane_ovl: Option<String>,
    pub(super) scenarios: &'a [String],
    pub(super) reports: &'a [(&'a Kernel, Report)],
    pub(super) whole: Duration,
}

impl Matrix<'_> {
    pub(super) fn render(&self) -> String {
        let mut out = String::from("## vm-test matrix\n\n");
        out.push_str(&format!(
            "`cargo xtask vm-test` under {}, {} guest{} at a time: ovl's {} natively{}. Seconds \
             are the guest's own clock; boot is QEMU's start to the runner; a run is the sum of \
             its scenarios.\n\n",
            self.accel.to_uppercase(),
            self.jobs,
            if self.jobs == 1 { "" } else { "s" },
            self.native_ovl,
            self.lane_ovl
                .as_ref()
                .map(|path| format!(", {path} under the lanes"))
                .unwrap_or_default()
        ));
        out.push_str("| kernel | boot | lane | ");
        out.push_str(&self.scenarios.join(" | "));
        out.push_str(" | run |\n|---|---:|---|");
        out.push_str(&"---|".repeat(self.scenarios.len()));
        out.push_str("---:|\n");
        for (kernel, report) in self.reports {
            let mut lanes: Vec<&str> = vec![NATIVE];
            lanes.extend(kernel.lanes.iter().copied());
            for cell in &report.cells {
                if !lanes.contains(&cell.lane.as_str()) {
                    lanes.push(&cell.lane);
                }
            }
            for (i, lane) in lanes.iter().enumerate() {
                let (name, boot) = if i == 0 {
                    (
                        format!("{} ({})", kernel.name, kernel.release),
                        report
                            .boot_secs
                            .map(|secs| format!("{secs:.1} s"))
                            .unwrap_or_else(|| "?".to_string()),
                    )
                } else {
                    (String::new(), String::new())
                };
                let mut sum = 0.0;
                let mut row = format!("| {name} | {boot} | {lane} |");
                for scenario in self.scenarios {
                    let cell = report
                        .cells
                        .iter()
                        .find(|cell| cell.lane == *lane && cell.scenario == *scenario);
                    let text = match cell {
                        Some(cell) => {
                            sum += cell.secs.unwrap_or(0.0);
                            match cell.secs {
                                Some(secs) => format!("{} {secs:.1} s", cell.word),
                                None => cell.word.clone(),
                            }
                        }
                        None => "–".to_string(),
                    };
                    row.push_str(&format!(" {text} |"));
                }
                row.push_str(&format!(" {sum:.1} s |\n"));
                out.push_str(&row);
            }
        }
        out.push('\n');
        let guests: Vec<String> = self
            .reports
            .iter()
            .map(|(kernel, report)| {
                format!(
                    "{} {:.0} s{}",
                    kernel.name,
                    report.total.as_secs_f64(),
                    report
                        .error
                        .as_ref()
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!(
            "Each guest from QEMU's start to its power-off: {}. The whole command: {:.0} s \
             ({:.1} min).\n",
            guests.join(", "),
            self.whole.as_secs_f64(),
            self.whole.as_secs_f64() / 60.0
        ));
        out
    }
}

/// Boots every kernel, `jobs` guests at once, each as soon as a slot is free, in the order
/// given; the outcomes in that order.
pub(super) fn boot_all(
    vm_dir: &Path,
    kernels: &[Kernel],
    common: &Path,
    accel: &str,
    options: &Options,
    jobs: usize,
) -> Vec<Result<Report>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<std::sync::Mutex<Option<Result<Report>>>> = kernels
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(kernel) = kernels.get(i) else {
                    break;
                };
                let outcome = boot(vm_dir, kernel, common, accel, options);
                if let Ok(mut slot) = outcomes[i].lock() {
                    *slot = Some(outcome);
                }
            });
        }
    });
    outcomes
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("the guest's thread panicked")))
        })
        .collect()
}

pub(super) fn boot(
    vm_dir: &Path,
    kernel: &Kernel,
    common: &Path,
    accel: &str,
    options: &Options,
) -> Result<Report> {
    let initramfs = kernel_initramfs(vm_dir, kernel, common, options)?;
    let run_dir = vm_dir.join("run").join(&kernel.name);
    let mut disks = Vec::new();
    for i in 0..3 {
        let disk = run_dir.join(format!("disk{i}.img"));
        let file = fs::File::create(&disk)?;
        file.set_len(DISK_SIZE)?;
        disks.push(disk);
    }
    let console = run_dir.join("console.log");
    let results = run_dir.join("results.log");
    let _ = fs::remove_file(&results);
    fs::File::create(&results)?;
    eprintln!(
        "vm-test: booting {} ({}, {accel}; lanes: {}); console log {}",
        kernel.name,
        kernel.release,
        if kernel.lanes.is_empty() {
            "none".to_string()
        } else {
            kernel.lanes.join(", ")
        },
        console.display()
    );
    let started = Instant::now();
    let mut child = qemu_command(accel, kernel, &initramfs, &console, &results, &disks, "")
        .spawn()
        .context("starting qemu")?;
    let mut report = Report::default();
    let mut seen = 0usize;
    let mut timed_out = false;
    loop {
        let exited = child.try_wait()?;
        seen = read_results(&results, seen, &kernel.name, &mut report)?;
        if let Some(status) = exited {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            if !status.success() {
                eprintln!("vm-test: qemu exited with {status}: {stderr}");
            }
            break;
        }
        if started.elapsed() > options.timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    report.total = started.elapsed();
    for disk in &disks {
        let _ = fs::remove_file(disk);
    }
    let _ = fs::remove_file(&initramfs);
    if !report.ok() || timed_out {
        print_tail(&console, 60);
    }
    if timed_out {
        report.error = Some(format!(
            "the guest did not power off within {} s (console log {})",
            options.timeout.as_secs(),
            console.display()
        ));
    }
    Ok(report)
}

/// Prints result lines past the first `seen` and records them; returns the new count.
pub(super) fn read_results(
    path: &Path,
    seen: usize,
    kernel: &str,
    report: &mut Report,
) -> Result<usize> {
    let text = fs::read_to_string(path)?;
    // Only whole lines: the last one may still be being written.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let lines: Vec<&str> = complete.lines().collect();
    for line in lines.iter().skip(seen) {
        let line = line.trim_end_matches('\r');
        report.record(kernel, line);
        println!("[{kernel}] {line}");
        let _ = std::io::stdout().flush();
    }
    Ok(lines.len().max(seen))
}

pub(super) fn print_tail(path: &Path, n: usize) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last {n} lines of {} ---", path.display());
    for line in &lines[lines.len().saturating_sub(n)..] {
        eprintln!("{line}");
    }
    eprintln!("---");
}
