//! Script mode: commands from `-c` or from a stdin that is not a terminal, one per line.
//!
//! Blank lines and `#` comments are skipped; the first failed command stops the script (exit 1)
//! unless its line starts with `-`; the end of input means LOGOUT.

use std::io::{BufRead, Write};

use ferry_core::Flow;

use crate::Client;

/// Runs `lines`; returns the exit code (0 all succeeded, 1 a command failed).
pub fn run(
    client: &mut Client,
    lines: impl IntoIterator<Item = std::io::Result<String>>,
    err: &mut dyn Write,
) -> u8 {
    for (number, line) in lines.into_iter().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                let _ = writeln!(err, "error: reading commands: {e}");
                return 1;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (may_fail, command) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, trimmed),
        };
        match client.dispatch(command) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => return 0,
            Err(e) => {
                let _ = writeln!(err, "error: line {}: {e:#}", number + 1);
                if !may_fail {
                    return 1;
                }
            }
        }
    }
    // The end of input stands for LOGOUT; if the server has already gone there is nobody to
    // tell, and every command did succeed.
    let _ = client.dispatch("LOGOUT");
    0
}

/// Lines of a reader, for [`run`].
pub fn lines(reader: impl BufRead) -> impl Iterator<Item = std::io::Result<String>> {
    reader.lines()
}
