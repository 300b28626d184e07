//! [`Tool`]: what both binaries print instead of running (`completions SHELL`, `man`), made
//! from the same definitions as their `--help`.

use std::io::{self, Write};
use std::process::ExitCode;

/// The command line of a binary that takes the tools: `A`'s definitions, where a tool is
/// given alone and `help` is not one (`--help` is).
pub fn command<A: clap::CommandFactory>() -> clap::Command {
    A::command()
        .args_conflicts_with_subcommands(true)
        .disable_help_subcommand(true)
}

/// The subcommands `ferry` and `ferryd` both take instead of running.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Tool {
    /// Print the completion script for SHELL, and exit
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff: pipe it to `man -l -`), and exit
    Man,
}

impl Tool {
    /// Prints the tool's output for `cmd` on stdout; `sections` adds the binary's own sections
    /// to the manual page, before its version. A reader that goes away is no failure.
    pub fn print(
        &self,
        mut cmd: clap::Command,
        sections: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> ExitCode {
        let name = cmd.get_name().to_owned();
        let mut out = io::stdout().lock();
        let written = match self {
            Tool::Completions { shell } => {
                clap_complete::generate(*shell, &mut cmd, &name, &mut out);
                Ok(())
            }
            Tool::Man => manual(cmd, &mut out, sections),
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: writing to stdout: {e}");
                ExitCode::from(2)
            }
        }
    }
}

/// Writes `text` for roff: a backslash and a hyphen as roff spells them.
pub fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// The manual page: clap's sections, with the subcommands described here rather than pointed
/// to as pages of their own (there are none), the help's closing text left to `sections`.
fn manual(
    cmd: clap::Command,
    out: &mut dyn Write,
    sections: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let name = cmd.get_name().to_owned();
    let subs: Vec<(String, String)> = cmd
        .get_subcommands()
        .map(|sub| {
            let mut usage = sub.get_name().to_owned();
            for arg in sub.get_positionals() {
                let value = arg
                    .get_value_names()
                    .and_then(|names| names.first().cloned());
                let value = value.map_or_else(|| arg.get_id().to_string(), |v| v.to_string());
                usage += &format!(" {}", value.to_uppercase());
            }
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            (usage, about)
        })
        .collect();
    let man = clap_mangen::Man::new(cmd.after_help(None::<&str>));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for (usage, about) in subs {
        writeln!(
            out,
            ".TP\n\\fB{name} {}\\fR\n{}",
            roff(&usage),
            roff(&about)
        )?;
    }
    sections(out)?;
    man.render_version_section(out)
}
