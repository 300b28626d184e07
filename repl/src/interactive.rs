//! The interactive prompt, for a stdin that is a terminal.

use std::io::Write;

use ferry_core::Flow;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::Client;

/// Reads and runs commands until LOGOUT, Ctrl-D or a lost connection; returns the exit code.
pub fn run(client: &mut Client) -> anyhow::Result<u8> {
    let mut editor = DefaultEditor::new()?;
    let prompt = format!("ferry {}> ", client.ctx.server);
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            // Ctrl-C clears the line, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            // Ctrl-D logs out.
            Err(ReadlineError::Eof) => {
                let _ = client.dispatch("LOGOUT");
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        match client.dispatch(&line) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => return Ok(0),
            Err(e) => {
                eprintln!("error: {e:#}");
                if Client::is_lost(&e) {
                    eprintln!("the connection to {} is lost", client.ctx.server);
                    return Ok(1);
                }
            }
        }
        std::io::stdout().flush()?;
    }
}
