//! A real pseudo-terminal for driving `ferry` as a person would: keys go in, the output is
//! rendered on a virtual screen (vt100), and tests wait, against a deadline, for the screen to
//! show what they expect. Nothing sleeps to synchronise.
//!
//! ptyprocess gives the terminal (it is the layer under expectrl; expectrl's own `expect`
//! polls without pausing, which would take a whole core of this two-core machine away from
//! the server under test). A reader thread feeds the screen.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use ferry_tests::DEADLINE;
use ptyprocess::{PtyProcess, WaitStatus};

const ROWS: u16 = 40;
const COLS: u16 = 120;
/// What rustyline writes as each readline begins, with the terminal already in raw mode.
const READLINE_BEGINS: &[u8] = b"\x1b[?2004h";

/// Keys, as a terminal sends them.
pub mod key {
    pub const TAB: &str = "\t";
    pub const ENTER: &str = "\r";
    pub const CTRL_C: &str = "\x03";
    pub const CTRL_D: &str = "\x04";
    pub const CTRL_R: &str = "\x12";
    pub const CTRL_U: &str = "\x15";
    pub const UP: &str = "\x1b[A";
}

/// `ferry` (or any program) running in a pseudo-terminal.
pub struct Term {
    /// The prompt, once known: [`Term::ready`] waits for it.
    pub prompt: String,
    proc: PtyProcess,
    /// Readlines begun before the last Enter or Ctrl-C: [`Term::ready`] waits for a later one.
    awaiting: Option<usize>,
    input: File,
    shared: Arc<Shared>,
    exit: Option<i32>,
}

struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
}

struct Output {
    screen: vt100::Parser,
    raw: Vec<u8>,
    readlines: usize,
    closed: bool,
}

impl Term {
    /// Starts `ferry` with `args` in `cwd`, its home and data directories inside `home`, a
    /// colour-capable `TERM` and no `NO_COLOR`, on a terminal that echoes as a person's does
    /// (ptyprocess turns echo off; a Ctrl-C then shows as `^C`).
    pub fn ferry(home: &Path, cwd: &Path, args: &[&str]) -> Term {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "stty echo echoctl && exec \"$@\"", "sh"])
            .arg(env!("CARGO_BIN_EXE_ferry"))
            .args(args);
        Term::spawn(setup(cmd, home, cwd))
    }

    /// Starts `cmd` in a new terminal.
    pub fn spawn(cmd: Command) -> Term {
        let mut proc = PtyProcess::spawn(cmd).expect("spawning in a pty");
        proc.set_window_size(COLS, ROWS).unwrap();
        proc.set_terminate_delay(std::time::Duration::from_millis(10));
        let input = proc.get_raw_handle().unwrap();
        let mut output = proc.get_raw_handle().unwrap();
        let shared = Arc::new(Shared {
            output: Mutex::new(Output {
                screen: vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0),
                raw: Vec::new(),
                readlines: 0,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let feed = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = [0; 8192];
            loop {
                // EIO once the program has exited and the terminal is closed.
                let n = output.read(&mut buf).unwrap_or(0);
                let mut out = feed.output.lock().unwrap();
                if n == 0 {
                    out.closed = true;
                    feed.changed.notify_all();
                    return;
                }
                out.screen.process(&buf[..n]);
                out.raw.extend_from_slice(&buf[..n]);
                // Windows that take at least one new byte: each sequence is counted once.
                let tail = out.raw.len().saturating_sub(n + READLINE_BEGINS.len() - 1);
                let begun = out.raw[tail..]
                    .windows(READLINE_BEGINS.len())
                    .filter(|w| *w == READLINE_BEGINS)
                    .count();
                out.readlines += begun;
                feed.changed.notify_all();
            }
        });
        Term {
            prompt: String::new(),
            awaiting: Some(0),
            proc,
            input,
            shared,
            exit: None,
        }
    }

    /// Types `keys` at the prompt: after an Enter, first waits for the next prompt (see
    /// [`Term::ready`]).
    pub fn send(&mut self, keys: &str) {
        if self.awaiting.is_some() && !self.prompt.is_empty() {
            self.ready();
        }
        self.type_now(keys);
    }

    /// Presses Ctrl-C now, while a command runs.
    pub fn interrupt(&mut self) {
        self.type_now(key::CTRL_C);
    }

    fn type_now(&mut self, keys: &str) {
        if keys.contains(['\r', '\x03']) && self.awaiting.is_none() {
            let readlines = self.lock().readlines;
            self.awaiting = Some(readlines);
        }
        self.input.write_all(keys.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Waits until the screen shows `text`; returns the screen.
    pub fn expect(&mut self, text: &str) -> String {
        self.expect_that(&format!("the screen to show {text:?}"), |screen| {
            screen.contents().contains(text)
        });
        self.contents()
    }

    /// Waits until `done` holds for the screen.
    pub fn expect_that(&mut self, what: &str, mut done: impl FnMut(&vt100::Screen) -> bool) {
        self.wait_for(what, |out| done(out.screen.screen()));
    }

    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Output) -> bool) {
        let start = Instant::now();
        let mut out = self.lock();
        while !done(&out) {
            let left = DEADLINE.checked_sub(start.elapsed());
            let Some(left) = left.filter(|_| !out.closed) else {
                let screen = out.screen.screen().contents();
                drop(out);
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            };
            out = self.shared.changed.wait_timeout(out, left).unwrap().0;
        }
    }

    /// Waits for a fresh, empty prompt with the cursor after it: the program is reading keys
    /// again. Keys typed earlier reach a terminal in its normal mode, where rustyline may drop
    /// them and Ctrl-C and Ctrl-D mean something else.
    ///
    /// After an Enter or a Ctrl-C, the prompt must come from a new readline: rustyline turns
    /// on bracketed paste as each one begins, so the count of those sequences tells.
    pub fn ready(&mut self) {
        let prompt = self.prompt.clone();
        assert!(!prompt.is_empty(), "the prompt is not known");
        let after = self.awaiting.take();
        self.wait_for(&format!("a fresh prompt {prompt:?}"), |out| {
            let screen = out.screen.screen();
            let (row, col) = screen.cursor_position();
            let line = screen
                .rows(0, COLS)
                .nth(usize::from(row))
                .unwrap_or_default();
            line.trim_end() == prompt.trim_end()
                && usize::from(col) == prompt.chars().count()
                && after.is_none_or(|n| out.readlines > n)
        });
    }

    /// Logs out with Ctrl-D at a fresh prompt.
    pub fn logout(&mut self) {
        self.ready();
        self.send(key::CTRL_D);
    }

    /// The screen as text.
    pub fn contents(&self) -> String {
        self.lock().screen.screen().contents()
    }

    /// The colour and dimness of the first character of `text` where the screen shows it.
    pub fn cell_style(&self, text: &str) -> (vt100::Color, bool) {
        let out = self.lock();
        let screen = out.screen.screen();
        for (row, line) in screen.rows(0, COLS).enumerate() {
            if let Some(col) = line.find(text) {
                let col = line[..col].chars().count() as u16;
                let cell = screen.cell(row as u16, col).unwrap();
                return (cell.fgcolor(), cell.dim());
            }
        }
        panic!("{text:?} is not on the screen:\n{}", screen.contents());
    }

    /// Every byte the program wrote so far.
    pub fn raw(&self) -> Vec<u8> {
        self.lock().raw.clone()
    }

    /// Waits for the program to exit; returns its exit code.
    pub fn wait(&mut self) -> i32 {
        if let Some(code) = self.exit {
            return code;
        }
        let mut status = None;
        ferry_tests::wait_until("the program to exit", || {
            status = match self.proc.status() {
                Ok(WaitStatus::StillAlive) => None,
                other => Some(other),
            };
            status.is_some()
        });
        let code = match status.unwrap() {
            Ok(WaitStatus::Exited(_, code)) => code,
            other => panic!("the program did not exit normally: {other:?}"),
        };
        self.exit = Some(code);
        code
    }

    /// The program's exit code if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<i32> {
        if self.exit.is_none()
            && let Ok(WaitStatus::Exited(_, code)) = self.proc.status()
        {
            self.exit = Some(code);
        }
        self.exit
    }

    /// Kills the program at once, as a crash would.
    pub fn kill(&mut self) {
        self.proc.kill(ptyprocess::Signal::SIGKILL).unwrap();
        ferry_tests::wait_until("the program to die", || {
            !matches!(self.proc.status(), Ok(WaitStatus::StillAlive))
        });
        self.exit = Some(-9);
    }

    fn lock(&self) -> MutexGuard<'_, Output> {
        self.shared.output.lock().unwrap()
    }
}

/// The environment every test's `ferry` gets: a private home, a terminal that takes colour.
pub fn setup(mut cmd: Command, home: &Path, cwd: &Path) -> Command {
    cmd.current_dir(cwd)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    cmd
}
