//! The interactive prompt, for a stdin that is a terminal: rustyline with history, completion
//! and hints ([`FerryHelper`]), progress bars ([`Progress`]), and Ctrl-C as a cancel.
//!
//! Ctrl-C at the prompt clears the line (rustyline reads it as a key). While a command runs
//! the terminal is back in its normal mode and Ctrl-C is a SIGINT: a handler sets the flag
//! that the meter reads, so the transfer stops cleanly and the prompt returns. A second Ctrl-C
//! in the same command ends the process (exit 130), for a server that does not answer.
//!
//! A watcher thread notices a server that goes away while the prompt waits (a SHUTDOWN from
//! another client, a crash) and interrupts the prompt, so the REPL says so and exits at once
//! rather than at the next command.
//!
//! Only the watcher thread takes SIGINT; every other thread blocks it. A signal handled by the
//! thread running the command would make its socket reads fail with EINTR (a socket with a
//! timeout does so even under SA_RESTART), and the connection would be lost, not the transfer.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use anyhow::Context;
use ferry_core::{Flow, Transport};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use rustyline::Editor;
use rustyline::config::{Builder, CompletionType};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;

use crate::color::Paint;
use crate::helper::FerryHelper;
use crate::meter::Progress;
use crate::remote::RemoteNames;
use crate::{Client, history};

/// How the prompt behaves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The history file; `None` keeps history for this session only.
    pub history: Option<PathBuf>,
    /// Show no progress bars.
    pub quiet: bool,
}

/// Reads and runs commands until LOGOUT, Ctrl-D or a lost connection; returns the exit code.
pub fn run(mut client: Client, options: Options) -> anyhow::Result<u8> {
    let cancel = Arc::new(AtomicBool::new(false));
    watch_sigint(&cancel).context("installing the Ctrl-C handler")?;
    sigint_mask()
        .thread_block()
        .context("blocking SIGINT outside the watcher")?;
    let bars = !options.quiet && std::io::stderr().is_terminal();
    client.ctx.meter = Box::new(Progress::new(Arc::clone(&cancel), bars));
    client.ctx.report.at_prompt = true;
    let mut prompt = Prompt::new(client, options.history, cancel)?;
    // With an external printer, rustyline waits for keys in select() on its signal pipe too,
    // so the watcher's SIGINT from another thread ends readline (a blocking read would only be
    // interrupted in the thread that takes the signal). It must live as long as the editor.
    let _printer = prompt.editor.create_external_printer()?;
    let at_prompt = Arc::new(AtomicBool::new(false));
    let gone = Arc::new(AtomicBool::new(false));
    watch_server(&prompt.client, &at_prompt, &gone).context("watching the connection")?;
    let server = lock(&prompt.client).ctx.server;
    loop {
        // The remote working directory, as CD left it.
        let cwd = ferry_core::name::escape(&lock(&prompt.client).ctx.cwd.to_string());
        let text = format!("ferry {server}:{cwd}> ");
        if gone.load(Ordering::SeqCst) || lock(&prompt.client).server_gone() {
            let message = format!("error: the server at {server} closed the connection");
            eprintln!("{}", prompt.paint.error(&message));
            return Ok(1);
        }
        at_prompt.store(true, Ordering::SeqCst);
        let read = prompt.editor.readline(&text);
        at_prompt.store(false, Ordering::SeqCst);
        let line = match read {
            Ok(line) => line,
            // Ctrl-C clears the line, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            // Ctrl-D logs out.
            Err(ReadlineError::Eof) => {
                println!();
                let _ = lock(&prompt.client).end();
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(code) = prompt.run_lines(&line)? {
            return Ok(code);
        }
    }
}

/// The prompt's state between lines.
struct Prompt {
    /// Shared with completion, which fetches names on another thread; the lock keeps it out
    /// of a running command.
    client: Arc<Mutex<Client>>,
    editor: Editor<FerryHelper, FileHistory>,
    /// Where each line is saved; `None` once saving has failed.
    history: Option<PathBuf>,
    remote: RemoteNames,
    paint: Paint,
    /// Set by Ctrl-C while a command runs.
    cancel: Arc<AtomicBool>,
}

impl Prompt {
    fn new(
        client: Client,
        history: Option<PathBuf>,
        cancel: Arc<AtomicBool>,
    ) -> anyhow::Result<Prompt> {
        let registry = client.ctx.registry;
        let paint = Paint::new(std::io::stderr().is_terminal());
        let client = Arc::new(Mutex::new(client));
        let remote = RemoteNames::new({
            let client = Arc::clone(&client);
            move |dir: &_| ferry_commands::remote_names(&mut lock(&client).ctx, dir)
        });
        // Forced: rustyline turns highlighting off under NO_COLOR, and the hint, shown plain,
        // would read as typed text. The only highlighting is the hint's dimness, a style and
        // not a colour, so NO_COLOR is still honoured.
        let config = history::configure(Builder::new())?
            .completion_type(CompletionType::List)
            .color_mode(rustyline::ColorMode::Forced)
            .build();
        let mut editor: Editor<FerryHelper, FileHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(FerryHelper::new(registry, remote.clone())));
        let mut history = history;
        if let Some(path) = &history
            && let Err(e) = history::load(&mut editor, path)
        {
            eprintln!("{}", paint.error(&format!("warning: no history: {e:#}")));
            history = None;
        }
        Ok(Prompt {
            client,
            editor,
            history,
            remote,
            paint,
            cancel,
        })
    }

    /// Runs what was entered at the prompt. A paste of several lines arrives as one (the
    /// terminal brackets it): each line is a command, run in turn, as if typed; a Ctrl-C drops
    /// the ones not yet run. Returns the exit code when the session is over.
    fn run_lines(&mut self, line: &str) -> anyhow::Result<Option<u8>> {
        let commands: Vec<&str> = line
            .lines()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        for (done, command) in commands.iter().copied().enumerate() {
            if let Err(e) = history::record(&mut self.editor, self.history.as_deref(), command) {
                let warning = format!("warning: history not saved: {e:#}");
                eprintln!("{}", self.paint.error(&warning));
                self.history = None;
            }
            self.cancel.store(false, Ordering::SeqCst);
            let (result, cwd) = {
                let mut client = lock(&self.client);
                (client.dispatch(command), client.ctx.cwd.clone())
            };
            let interrupted = self.cancel.swap(false, Ordering::SeqCst);
            self.remote.after_command(&cwd);
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => return Ok(Some(0)),
                Err(e) if Client::is_lost(&e) => {
                    let server = lock(&self.client).ctx.server;
                    let message = format!(
                        "error: lost the connection to {server}: {}",
                        crate::said(&e)
                    );
                    eprintln!("{}", self.paint.error(&message));
                    return Ok(Some(1));
                }
                // The user asked for it: not an error, and on a line of its own, after the
                // `^C` the terminal echoed.
                Err(e) if interrupted => eprintln!("\n{}", crate::said(&e)),
                Err(e) => eprintln!(
                    "{}",
                    self.paint.error(&format!("error: {}", crate::said(&e)))
                ),
            }
            std::io::stdout().flush()?;
            let left = commands.len() - done - 1;
            if interrupted && left > 0 {
                let lines = if left == 1 { "line" } else { "lines" };
                eprintln!("{left} pasted {lines} not run");
                break;
            }
        }
        Ok(None)
    }
}

/// Ctrl-C while a command runs sets `cancel`; a second one, with `cancel` still set, exits.
fn watch_sigint(cancel: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::SIGINT;
    use signal_hook::flag;
    // Registered first, so it sees the flag as it was before this signal set it.
    flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(cancel))?;
    flag::register(SIGINT, Arc::clone(cancel))?;
    Ok(())
}

/// Starts the thread that notices the server going away while nothing else reads the
/// connection; it sets `gone` and, if the prompt is up, interrupts it with a SIGINT (which
/// rustyline turns into `Interrupted` while it reads a line).
fn watch_server(
    client: &Arc<Mutex<Client>>,
    at_prompt: &Arc<AtomicBool>,
    gone: &Arc<AtomicBool>,
) -> std::io::Result<()> {
    // A descriptor of its own that becomes readable when the server sends or closes; the
    // connection itself stays with whoever holds the client.
    let fd = match lock(client).ctx.conn.stream().pollable() {
        Some(fd) => fd.try_clone_to_owned()?,
        None => return Ok(()),
    };
    let (client, at_prompt, gone) = (Arc::clone(client), Arc::clone(at_prompt), Arc::clone(gone));
    let watch = move || {
        // The one thread that takes SIGINT (see the module's comment); if it cannot, Ctrl-C
        // still reaches the prompt as a key, and only a transfer's cancel is lost.
        let _ = sigint_mask().thread_unblock();
        loop {
            // Wakes when the server sends anything or closes; reads nothing.
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                // Interrupted (a Ctrl-C this thread took): wait again.
                continue;
            }
            // Whoever holds the client is in an exchange and reads the reply; once they are
            // done, anything still waiting was not asked for: the end of the connection.
            if !lock(&client).server_gone() {
                continue;
            }
            gone.store(true, Ordering::SeqCst);
            if at_prompt.load(Ordering::SeqCst) {
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGINT);
            }
            return;
        }
    };
    thread::Builder::new()
        .name("watch-server".into())
        .spawn(watch)
        .map(drop)
}

fn sigint_mask() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set
}

fn lock(client: &Mutex<Client>) -> MutexGuard<'_, Client> {
    // Only a bug panics while holding the lock, and the prompt may as well go on after it.
    client.lock().unwrap_or_else(PoisonError::into_inner)
}
