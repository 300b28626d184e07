//! Waits on child processes and threads a test started, bounded by the deadline: a child still
//! running then is killed, and the test fails rather than hang.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// Runs a command to completion with `stdin` piped in; fails the test after the deadline.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
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
    finish(child)
}

/// Waits for a spawned child and collects its output; kills it and fails the test if it has
/// not exited by the deadline.
pub fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Not reaped yet, so the id is still this child's.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("process {pid} did not finish within {DEADLINE:?}");
        }
    }
}

/// Waits for a spawned child to exit; kills it and fails the test if it has not by the
/// deadline.
pub fn wait_for(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {DEADLINE:?}", child.id());
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
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
