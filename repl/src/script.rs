//! Script mode: commands from `-c` or from a stdin that is not a terminal, one per line.
//!
//! Blank lines and `#` comments are skipped; the first failed command stops the script (exit 1)
//! unless its line starts with `-`, whose failure is a warning marked as ignored; the end of
//! input means LOGOUT. A standard output closed by its reader (`| head -1`) ends the script
//! quietly with [`CLOSED_STDOUT`], what a shell reports for `ls` killed by SIGPIPE.
//!
//! Commands are pipelined: a verb that can be sent ahead (see [`ferry_core::Sent`]) goes out
//! without waiting for the replies to the commands before it, as a chained request, and the
//! replies are read in order. Results, errors and the exit code are what running the lines one
//! by one would give: the server does not run a chained request after a failed one, and a
//! command that could act on what an earlier one has yet to finish (an upload or a delete
//! behind a download) waits. A line starting with `-` is never sent ahead. Whenever the next
//! line is not there yet (a program feeding commands one at a time and waiting for each
//! result), everything sent ahead is finished and printed first.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;

use ferry_core::{Flow, Window};

use crate::Client;

/// A script's lines, and whether the next one is there without waiting.
pub trait Lines {
    /// The next line, without its line ending; `None` at the end of the script.
    fn next_line(&mut self) -> Option<std::io::Result<String>>;
    /// True when the next line, or the end, can be had without waiting for whoever writes
    /// the script.
    fn ready(&mut self) -> bool;
}

/// Commands given with `-c`: all there from the start.
pub struct Commands(std::vec::IntoIter<String>);

impl Commands {
    /// The commands, in order.
    pub fn new(commands: Vec<String>) -> Commands {
        Commands(commands.into_iter())
    }
}

impl Lines for Commands {
    fn next_line(&mut self) -> Option<std::io::Result<String>> {
        self.0.next().map(Ok)
    }

    fn ready(&mut self) -> bool {
        true
    }
}

/// Lines read from a file or pipe (stdin): the next one is ready when a whole line is
/// buffered, or the descriptor has input (or its end) waiting.
pub struct Reader<R: Read + AsFd>(BufReader<R>);

impl<R: Read + AsFd> Reader<R> {
    /// Reads lines from `source`.
    pub fn new(source: R) -> Reader<R> {
        Reader(BufReader::new(source))
    }
}

impl<R: Read + AsFd> Lines for Reader<R> {
    fn next_line(&mut self) -> Option<std::io::Result<String>> {
        let mut line = String::new();
        match self.0.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                let end = line.trim_end_matches('\n').trim_end_matches('\r').len();
                line.truncate(end);
                Some(Ok(line))
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn ready(&mut self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if self.0.buffer().contains(&b'\n') {
            return true;
        }
        let mut fds = [PollFd::new(self.0.get_ref().as_fd(), PollFlags::POLLIN)];
        // An error here says nothing is known to be waiting: finish what was sent.
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
    }
}

/// The exit code when standard output was closed under the script: 128 + SIGPIPE, as a shell
/// reports a program that SIGPIPE ended, since the commands after that point did not run.
pub const CLOSED_STDOUT: u8 = 141;

/// Most commands sent ahead and not yet finished.
const MAX_AHEAD: usize = 256;

/// Runs `lines`; returns the exit code (0 all succeeded, 1 a command failed).
pub fn run(client: &mut Client, lines: &mut dyn Lines, err: &mut dyn Write) -> u8 {
    match run_lines(client, lines, err) {
        Ok(()) => {
            // The end of input stands for LOGOUT; if the server has already gone there is
            // nobody to tell, and every command did succeed.
            let _ = client.end();
            0
        }
        Err(Stop(code)) => code,
    }
}

/// The script ends early, with this exit code.
struct Stop(u8);

fn run_lines(client: &mut Client, lines: &mut dyn Lines, err: &mut dyn Write) -> Result<(), Stop> {
    let mut window = Ahead::default();
    let mut number = 0;
    loop {
        // Results are not held back waiting for a line that has not been written yet.
        if !window.0.is_empty() && !lines.ready() {
            window.drain(client, err)?;
        }
        let Some(line) = lines.next_line() else {
            break;
        };
        number += 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                window.drain(client, err)?;
                let _ = writeln!(err, "error: reading commands: {e}");
                return Err(Stop(1));
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
        if !may_fail && window.send(client, command, number, err)? {
            continue;
        }
        window.drain(client, err)?;
        match client.dispatch(command) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => return Err(Stop(0)),
            Err(e) if may_fail && !crate::Stdout::closed() => {
                let said = crate::said(&e);
                let _ = writeln!(
                    err,
                    "warning: line {number}: {said} (ignored: the line starts with '-')"
                );
            }
            Err(e) => return Err(failed(err, number, &e)),
        }
    }
    window.drain(client, err)
}

/// Reports a failed command and says how the script ends: quietly with [`CLOSED_STDOUT`] when
/// the failure was that nobody reads the output any more, else with the error and exit 1.
fn failed(err: &mut dyn Write, line: usize, e: &anyhow::Error) -> Stop {
    if crate::Stdout::closed() {
        return Stop(CLOSED_STDOUT);
    }
    let _ = writeln!(err, "error: line {line}: {}", crate::said(e));
    Stop(1)
}

/// Commands sent ahead, tagged with their script lines.
struct Ahead(Window<usize>);

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead(Window::new(MAX_AHEAD))
    }
}

impl Ahead {
    /// Sends `command` ahead when its verb allows; false when it must run on its own.
    fn send(
        &mut self,
        client: &mut Client,
        command: &str,
        line: usize,
        err: &mut dyn Write,
    ) -> Result<bool, Stop> {
        while self.0.must_wait(&mut client.ctx) {
            self.finish_oldest(client, err)?;
        }
        match client.send_ahead(command, self.0.behind()) {
            Ok(Some(sent)) => {
                self.0.push(&mut client.ctx, line, sent);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                // The commands before it come first, as if each had waited for the last.
                self.drain(client, err)?;
                Err(failed(err, line, &e))
            }
        }
    }

    /// Reads the oldest command's reply and finishes it.
    fn finish_oldest(&mut self, client: &mut Client, err: &mut dyn Write) -> Result<(), Stop> {
        let Some((line, finished)) = self.0.finish_oldest(&mut client.ctx) else {
            return Ok(());
        };
        let finished = finished.and_then(|flow| {
            client.ctx.out.flush()?;
            Ok(flow)
        });
        match finished {
            Ok(Flow::Continue) => Ok(()),
            Ok(Flow::Quit) => Err(Stop(0)),
            Err(e) => {
                // The connection may be out of step now (a reply not read to its end); the
                // script stops here anyway.
                let failure = Err(e);
                let _ = client.ctx.conclude(&failure);
                Err(failed(err, line, failure.as_ref().unwrap_err()))
            }
        }
    }

    /// Finishes every command sent ahead, in order.
    fn drain(&mut self, client: &mut Client, err: &mut dyn Write) -> Result<(), Stop> {
        while !self.0.is_empty() {
            self.finish_oldest(client, err)?;
        }
        Ok(())
    }
}
