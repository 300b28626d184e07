//! Waits on child processes and threads a test started, bounded by the deadline: a child still
//! running then is killed, and the test fails rather than hang.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// Runs a command to completion with `stdin` piped in; fails the test after the deadline.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let words = std::iter::once(cmd.get_program()).chain(cmd.get_args());
    let name = command_line(words.map(|w| w.to_string_lossy()));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A client that exits early closes its stdin; the write error is expected then.
    thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    finish_as(child, Some(name))
}

/// Waits for a spawned child and collects its output; kills it and fails the test if it has
/// not exited by the deadline.
pub fn finish(child: Child) -> Output {
    finish_as(child, None)
}

/// [`finish`], naming the child `name` if it is known, else as `/proc` shows it.
fn finish_as(child: Child, name: Option<String>) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Not reaped yet, so the id is still this child's.
            let what = name.map_or_else(|| described(pid), |n| format!("{n} (pid {pid})"));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} did not finish within {DEADLINE:?}");
        }
    }
}

/// Waits for a spawned child to exit; kills it and fails the test if it has not by the
/// deadline.
pub fn wait_for(child: &mut Child) -> ExitStatus {
    exit_or_kill(child).unwrap_or_else(|what| panic!("{what} did not exit within {DEADLINE:?}"))
}

/// Waits for a spawned child to exit, at most until the deadline; kills (and reaps) it then,
/// and returns `None` rather than fail: for a `Drop`, which must not panic during a panic.
pub fn wait_within(child: &mut Child) -> Option<ExitStatus> {
    exit_or_kill(child).ok()
}

/// The child's exit status, or, if it was still running at the deadline and so was killed,
/// what to call it.
fn exit_or_kill(child: &mut Child) -> Result<ExitStatus, String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok(status);
        }
        if start.elapsed() > DEADLINE {
            // Read while it still runs: once reaped, its `/proc` entry is gone.
            let what = described(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Err(what);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A running process as a failure names it: its command line from `/proc` and its pid, or
/// the pid alone where `/proc` has no command line (a zombie, another system).
fn described(pid: u32) -> String {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(line) if !line.is_empty() => {
            let words = line.split(|&b| b == 0).filter(|w| !w.is_empty());
            let name = command_line(words.map(String::from_utf8_lossy));
            format!("{name} (pid {pid})")
        }
        _ => format!("process {pid}"),
    }
}

/// A command line as a failure names it, quoted: the program's file name, then its arguments.
fn command_line<'a>(mut words: impl Iterator<Item = Cow<'a, str>>) -> String {
    let program = words.next().unwrap_or_default();
    let mut line = match Path::new(&*program).file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => program.into_owned(),
    };
    for word in words {
        line.push(' ');
        line.push_str(&word);
    }
    format!("'{line}'")
}

/// Joins `thread` once it has finished, failing the test if it has not by the deadline; a
/// panic in it is the test's.
pub fn join_within<T>(thread: thread::JoinHandle<T>, what: &str) -> T {
    crate::wait_until(what, || thread.is_finished());
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A child killed (and reaped) when dropped, as when the test fails while it runs.
pub struct Reaped(pub Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SIGKILL ends a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_named_by_its_command_line() {
        let child = Reaped(Some(Command::new("sleep").arg("30").spawn().unwrap()));
        let pid = child.0.as_ref().unwrap().id();
        // `spawn` may return before the kernel has put the new program's arguments in place.
        crate::wait_until("the command line in /proc", || {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| !line.is_empty())
        });
        assert_eq!(described(pid), format!("'sleep 30' (pid {pid})"));
        let words = ["/some where/ferry", "-c", "LIST"].map(Cow::from);
        assert_eq!(command_line(words.into_iter()), "'ferry -c LIST'");
    }
}
