//! Script mode: commands from `-c` or from a stdin that is not a terminal, one per line.
//!
//! Blank lines and `#` comments are skipped; the first failed command stops the script (exit 1)
//! unless its line starts with `-`; the end of input means LOGOUT.
//!
//! Commands are pipelined: a verb that can be sent ahead (see [`ferry_core::Sent`]) goes out
//! without waiting for the replies to the commands before it, as a chained request, and the
//! replies are read in order. Results, errors and the exit code are what running the lines one
//! by one would give: the server does not run a chained request after a failed one, and a
//! command that could act on what an earlier one has yet to finish (an upload or a delete
//! behind a download) waits. A line starting with `-` is never sent ahead.

use std::collections::VecDeque;
use std::io::{BufRead, Write};

use ferry_core::{Behind, Flow, Sent};

use crate::Client;

/// Most commands sent ahead and not yet finished.
const MAX_AHEAD: usize = 128;

/// Runs `lines`; returns the exit code (0 all succeeded, 1 a command failed).
pub fn run(
    client: &mut Client,
    lines: impl IntoIterator<Item = std::io::Result<String>>,
    err: &mut dyn Write,
) -> u8 {
    match run_lines(client, lines, err) {
        Ok(()) => {
            // The end of input stands for LOGOUT; if the server has already gone there is
            // nobody to tell, and every command did succeed.
            let _ = client.dispatch("LOGOUT");
            0
        }
        Err(Stop(code)) => code,
    }
}

/// The script ends early, with this exit code.
struct Stop(u8);

fn run_lines(
    client: &mut Client,
    lines: impl IntoIterator<Item = std::io::Result<String>>,
    err: &mut dyn Write,
) -> Result<(), Stop> {
    let mut window = Window::default();
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
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
            Err(e) => {
                report(err, number, &e);
                if !may_fail {
                    return Err(Stop(1));
                }
            }
        }
    }
    window.drain(client, err)
}

fn report(err: &mut dyn Write, line: usize, e: &anyhow::Error) {
    let _ = writeln!(err, "error: line {line}: {e:#}");
}

/// Commands sent ahead, oldest first.
#[derive(Default)]
struct Window {
    pending: VecDeque<Pending>,
}

struct Pending {
    /// The script line, for errors.
    line: usize,
    sent: Sent,
    /// [`ferry_core::Connection::sent`] once the command was queued: all of it must have
    /// been written before its reply can come.
    mark: u64,
}

impl Window {
    /// Sends `command` ahead when its verb allows; false when it must run on its own.
    fn send(
        &mut self,
        client: &mut Client,
        command: &str,
        line: usize,
        err: &mut dyn Write,
    ) -> Result<bool, Stop> {
        // Nothing is queued behind bytes the socket has not taken: a write that blocked
        // while the server blocks writing replies that nobody reads would never end. Reading
        // the oldest reply first lets both sides go on. (A failed connection shows when a
        // reply is read.)
        let _ = client.ctx.conn.flush_ready();
        while !self.pending.is_empty()
            && (client.ctx.conn.unwritten() > 0 || self.pending.len() >= MAX_AHEAD)
        {
            self.finish_oldest(client, err)?;
        }
        let behind = Behind {
            unsettled: self.pending.iter().any(|p| p.sent.unsettled),
        };
        match client.send_ahead(command, behind) {
            Ok(Some(sent)) => {
                let mark = client.ctx.conn.sent();
                self.pending.push_back(Pending { line, sent, mark });
                let _ = client.ctx.conn.flush_ready();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                // The commands before it come first, as if each had waited for the last.
                self.drain(client, err)?;
                report(err, line, &e);
                Err(Stop(1))
            }
        }
    }

    /// Reads the oldest command's reply and finishes it.
    fn finish_oldest(&mut self, client: &mut Client, err: &mut dyn Write) -> Result<(), Stop> {
        let Some(Pending { line, sent, mark }) = self.pending.pop_front() else {
            return Ok(());
        };
        let finished = client
            .ctx
            .conn
            .flush_to(mark)
            .map_err(anyhow::Error::from)
            .and_then(|()| (sent.finish)(&mut client.ctx))
            .and_then(|flow| {
                client.ctx.out.flush()?;
                Ok(flow)
            });
        match finished {
            Ok(Flow::Continue) => Ok(()),
            Ok(Flow::Quit) => Err(Stop(0)),
            Err(e) => {
                // The connection may be out of step now (a reply not read to its end); the
                // script stops here anyway.
                report(err, line, &e);
                Err(Stop(1))
            }
        }
    }

    /// Finishes every command sent ahead, in order.
    fn drain(&mut self, client: &mut Client, err: &mut dyn Write) -> Result<(), Stop> {
        while !self.pending.is_empty() {
            self.finish_oldest(client, err)?;
        }
        Ok(())
    }
}

/// Lines of a reader, for [`run`].
pub fn lines(reader: impl BufRead) -> impl Iterator<Item = std::io::Result<String>> {
    reader.lines()
}
