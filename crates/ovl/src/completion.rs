//! `ovl completion SHELL` and the hidden `ovl man-pages --out DIR`: shell completion scripts and
//! manual pages, both generated from the clap definitions of the CLI, so that they list exactly
//! the commands and options this binary accepts.
//!
//! Neither needs root or a data root; the packaging task (`cargo xtask deb|install`) runs both on
//! the binary it is about to install.
//!
//! The manual pages follow git's convention: `ovl.1` for the program, and one page per command
//! named after the command's path joined with `-` (`ovl-load.1`, `ovl-system-df.1`), so that
//! `man ovl-load` finds it. The NAME line reads `ovl-load` (what man-db indexes and `man -k`
//! shows), the SYNOPSIS the command as it is typed, `ovl load`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to print the completion script for.
    shell: CompletionShell,
}

#[derive(clap::Args, Debug)]
pub struct ManPagesArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// The shells whose completion scripts are packaged.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `ovl completion SHELL`: prints the completion script for the shell.
pub fn completion(args: &CompletionArgs) -> Result<()> {
    let script = completion_script(args.shell);
    let mut stdout = crate::out::stdout();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(())
}

/// `ovl man-pages --out DIR`: writes `ovl.1` and one page per command into the directory, then
/// lists the files it wrote.
pub fn man_pages(args: &ManPagesArgs) -> Result<()> {
    let date = page_date()?;
    fs::create_dir_all(&args.out)
        .with_context(|| format!("creating directory {}", args.out.display()))?;
    let mut written = Vec::new();
    for page in man_page_list() {
        let path = args.out.join(page.file_name());
        let text = page.render(&date)?;
        write_file_atomically(&path, &text)?;
        written.push(path);
    }
    for path in written {
        crate::out::outln!("{}", path.display());
    }
    Ok(())
}

/// The date in the pages' footer, `YYYY-MM-DD`: that of `SOURCE_DATE_EPOCH` when it is set (the
/// reproducible-builds convention, which `cargo xtask man|deb|install` follow with the date of the
/// last commit; `ovl commit` reads it too), else today's.
fn page_date() -> Result<String> {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs() as i64)
            .unwrap_or(0),
    };
    let rfc3339 = gocompat::time::go_rfc3339_utc(seconds);
    Ok(rfc3339.get(..10).unwrap_or(&rfc3339).to_string())
}

/// The completion script of `shell` for the command `ovl`.
fn completion_script(shell: CompletionShell) -> Vec<u8> {
    let mut command = without_hidden_commands(crate::Cli::command());
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // The generator writes to a `Vec`, which cannot fail; the write to stdout afterwards can, and
    // its error (a closed pipe, say) is returned instead of a panic inside the generator.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ovl", &mut script);
    script
}

/// A copy of the top-level command `ovl` with the same options, version and about, but only its
/// visible commands: clap_complete's generators offer hidden commands (`man-pages`) too, and clap
/// has no way to remove a command, so the copy is made without it.
fn without_hidden_commands(command: clap::Command) -> clap::Command {
    let mut copy = clap::Command::new("ovl")
        .version(env!("CARGO_PKG_VERSION"))
        .args(command.get_arguments().cloned())
        .subcommands(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        );
    if let Some(about) = command.get_about() {
        copy = copy.about(about.clone());
    }
    copy
}

/// One manual page: the page's name (`ovl`, `ovl-load`, `ovl-system-df`) and the clap command it
/// documents, already renamed for rendering.
struct ManPage {
    name: String,
    command: clap::Command,
}

impl ManPage {
    /// The file name in section 1: `ovl-load.1`.
    fn file_name(&self) -> String {
        format!("{}.1", self.name)
    }

    /// The page in roff, dated `date`.
    fn render(&self, date: &str) -> Result<Vec<u8>> {
        // The title line's fields are positional and an empty one is left out, so the date must
        // not be empty, or the source would be taken for the date.
        let man = clap_mangen::Man::new(self.command.clone())
            .title(self.name.to_uppercase())
            .section("1")
            .date(date)
            .source(format!("ovl {}", env!("CARGO_PKG_VERSION")))
            .manual("ovl manual");
        let mut text = Vec::new();
        man.render(&mut text)
            .with_context(|| format!("rendering manual page {}", self.name))?;
        Ok(text)
    }
}

/// Every page: `ovl` first, then each visible command, depth first (`ovl-system` before
/// `ovl-system-df`). Hidden commands (`man-pages`) and clap's `help` have none.
fn man_page_list() -> Vec<ManPage> {
    let mut root = crate::Cli::command().disable_help_subcommand(true);
    // Building propagates the global options (`--root`, `-v`) into every command, so each page
    // lists them.
    root.build();
    let mut pages = Vec::new();
    collect_pages(&root, "ovl", "ovl", &mut pages);
    pages
}

/// Adds the page of `command` named `name` (typed as `typed`), then those of its visible
/// subcommands.
fn collect_pages(command: &clap::Command, name: &str, typed: &str, pages: &mut Vec<ManPage>) {
    // The page's title, NAME line and the names in its SUBCOMMANDS list come from the display
    // name, its SYNOPSIS from the bin name.
    let renamed = command
        .clone()
        .display_name(name.to_string())
        .bin_name(typed.to_string());
    pages.push(ManPage {
        name: name.to_string(),
        command: renamed,
    });
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let sub_name = format!("{name}-{}", subcommand.get_name());
        let sub_typed = format!("{typed} {}", subcommand.get_name());
        collect_pages(subcommand, &sub_name, &sub_typed, pages);
    }
}

/// Writes `path` through a temporary name in the same directory and a rename, so that an
/// interrupted run leaves either the old page or the new one.
fn write_file_atomically(path: &Path, text: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(text)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_page_named_after_its_path() {
        let names: Vec<String> = man_page_list().iter().map(ManPage::file_name).collect();
        assert_eq!(names.first().map(String::as_str), Some("ovl.1"));
        for expected in [
            "ovl-load.1",
            "ovl-run-rootfs.1",
            "ovl-system.1",
            "ovl-system-df.1",
            "ovl-completion.1",
        ] {
            assert!(names.iter().any(|name| name == expected), "{expected}");
        }
        assert!(!names.iter().any(|name| name.contains("man-pages")));
        assert!(!names.iter().any(|name| name.contains("help")));
    }

    #[test]
    fn a_command_page_is_named_like_its_file_and_shows_how_the_command_is_typed() {
        let pages = man_page_list();
        let load = pages
            .iter()
            .find(|page| page.name == "ovl-load")
            .expect("a page for ovl load");
        let text =
            String::from_utf8(load.render("2026-01-02").expect("render")).expect("UTF-8 roff");
        // roff writes a hyphen that must stay a hyphen as `\-`.
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                ".TH OVL-LOAD 1 2026-01-02 \"ovl {version}\" \"ovl manual\""
            )),
            "{text}"
        );
        assert!(text.contains("ovl\\-load \\- Load images"), "{text}");
        assert!(text.contains("\\fBovl load\\fR"), "{text}");
        // The global options are part of every command's page.
        assert!(text.contains("\\-\\-root"), "{text}");
        let system = pages
            .iter()
            .find(|page| page.name == "ovl-system")
            .expect("a page for ovl system");
        let text =
            String::from_utf8(system.render("2026-01-02").expect("render")).expect("UTF-8 roff");
        assert!(text.contains("ovl\\-system\\-df(1)"), "{text}");
    }

    #[test]
    fn completion_scripts_name_the_commands_but_not_the_hidden_one() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let script = String::from_utf8(completion_script(shell)).expect("UTF-8 script");
            assert!(script.contains("run-rootfs"), "{shell:?}");
            assert!(script.contains("logout"), "{shell:?}");
            let offered: Vec<&str> = script
                .lines()
                .filter(|line| {
                    // The lists of candidates: bash's `opts="..."`, zsh's `'name:about'` lines
                    // and fish's `-a "name"`.
                    line.trim_start().starts_with("opts=")
                        || line.trim_start().starts_with("'")
                        || line.contains(" -a \"")
                })
                .collect();
            assert!(
                !offered.iter().any(|line| line.contains("man-pages")),
                "{shell:?}: {offered:?}"
            );
        }
    }
}
