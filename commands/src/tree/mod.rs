//! Many files in one command: patterns expanded ([`pattern`]), local and remote trees walked
//! ([`walk`]), and what a recursive, pattern or synced transfer was asked to do
//! ([`Options`]). UPLOAD and DOWNLOAD plan and run their own transfers with these.

pub(crate) mod pattern;
pub(crate) mod walk;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_core::store::Meta;
use ferry_core::{Args, ClientCtx, Flow, Sent, Window};

/// Most requests of one transfer in flight at once.
const WINDOW: usize = 256;

/// What a transfer's flags ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `-r`: directories and all they hold.
    pub recursive: bool,
    /// `-c`: continue interrupted transfers.
    pub resume: bool,
    /// `-n`: leave destinations that exist alone.
    pub no_clobber: bool,
    /// `--sync`: copy only what is missing or differs in size or modification time.
    pub sync: bool,
    /// `--delete`: remove from the destination what the source does not have.
    pub delete: bool,
}

impl Options {
    /// The flags of a transfer command line.
    pub fn of(args: &Args) -> anyhow::Result<Options> {
        let options = Options {
            recursive: args.flag("recursive"),
            resume: args.flag("continue"),
            no_clobber: args.flag("no-clobber"),
            sync: args.flag("sync"),
            delete: args.flag("delete"),
        };
        if options.delete && !(options.recursive && options.sync) {
            bail!("--delete goes with -r and --sync: it mirrors a directory");
        }
        Ok(options)
    }

    /// Whether this is a transfer of many files (or one that compares with the destination
    /// first), rather than one file as typed.
    pub fn many(&self, source: &str) -> bool {
        self.recursive || self.no_clobber || self.sync || pattern::is_pattern(source)
    }

    /// Whether the destination must be looked at before anything moves.
    pub fn compares(&self) -> bool {
        self.no_clobber || self.sync || self.delete
    }

    /// Whether a file already at the destination, with `there`, is left as it is.
    pub fn keeps(&self, there: Option<Meta>, source: Meta) -> bool {
        match there {
            None => false,
            Some(_) if self.no_clobber => true,
            Some(there) => self.sync && there == source,
        }
    }
}

/// What a transfer of many files did, for its summary line.
#[derive(Debug)]
pub(crate) struct Tally {
    pub files: usize,
    pub bytes: u64,
    /// Entries left out (links, devices, names that cannot travel); each was warned about.
    pub skipped: usize,
    /// Files left as they were (`-n`, `--sync`).
    pub kept: usize,
    /// Entries removed (`--delete`).
    pub removed: usize,
    pub started: Instant,
}

impl Tally {
    /// A tally starting now.
    pub fn new() -> Tally {
        Tally {
            files: 0,
            bytes: 0,
            skipped: 0,
            kept: 0,
            removed: 0,
            started: Instant::now(),
        }
    }

    /// The summary line: `uploaded 3 files (1.2 MiB) to 'photos' in 0.4 s`, and what was
    /// skipped, kept and removed.
    pub fn line(&self, done: &str, place: &str) -> String {
        let secs = self
            .started
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let files = if self.files == 1 { "file" } else { "files" };
        let mut line = format!(
            "{done} {} {files} ({}) {place} in {secs:.1} s",
            self.files,
            crate::human(self.bytes)
        );
        for (count, what) in [
            (self.kept, "left as they were"),
            (self.skipped, "skipped"),
            (self.removed, "removed"),
        ] {
            if count > 0 {
                line += &format!("; {count} {what}");
            }
        }
        line
    }

    /// Reports the transfer: the summary line, or in JSON `files` and `bytes` moved,
    /// `unchanged`, `skipped` and `removed` entries, and `seconds`.
    pub fn report(&self, ctx: &mut ClientCtx, done: &str, place: &str) -> std::io::Result<()> {
        let fields = serde_json::json!({
            "files": self.files, "bytes": self.bytes, "unchanged": self.kept,
            "skipped": self.skipped, "removed": self.removed,
            "seconds": self.started.elapsed().as_secs_f64(),
        });
        ctx.say(self.line(done, place), fields)
    }
}

/// Fails when two sources of one transfer would go to the same place (two matches of a
/// pattern with the same name, say): one would silently replace the other.
pub(crate) fn distinct<T: std::hash::Hash + Eq + std::fmt::Debug>(
    targets: impl IntoIterator<Item = T>,
) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for target in targets {
        if seen.contains(&target) {
            bail!("two sources would both go to {target:?}; copy them one at a time");
        }
        seen.insert(target);
    }
    Ok(())
}

/// Writes a warning line (a skipped entry) to the client's stderr.
pub(crate) fn warn(ctx: &mut ClientCtx, text: &str) {
    use std::io::Write;
    let _ = writeln!(ctx.err, "warning: {}", ferry_core::name::escape_full(text));
}

/// Runs the steps of a transfer of `files` files and `total` bytes under one meter: `steps`
/// gets the pipe to send through and the bytes done so far (which it moves on); whatever it
/// returns, everything in flight is finished, and the first failure is the result.
pub(crate) fn metered<A, B>(
    ctx: &mut ClientCtx,
    files: &[(A, B, Meta)],
    steps: impl FnOnce(&mut ClientCtx, &mut Pipe, &mut u64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let total = files
        .iter()
        .fold(0u64, |t, (_, _, m)| t.saturating_add(m.size));
    ctx.meter.start(&format!("{} files", files.len()), total);
    let mut pipe = Pipe::new();
    let mut done = 0;
    let outcome = steps(ctx, &mut pipe, &mut done);
    let result = pipe.close(ctx, outcome);
    ctx.meter.finish(done, result.is_ok());
    result
}

/// The requests of a transfer of many files in flight: sent ahead, finished in order. The
/// first failure is kept; after it nothing more is sent, but every reply still due is read,
/// so that the connection stays in step.
pub(crate) struct Pipe {
    window: Window<()>,
    failed: Option<anyhow::Error>,
}

impl Pipe {
    pub fn new() -> Pipe {
        Pipe {
            window: Window::new(WINDOW).in_runs(),
            failed: None,
        }
    }

    /// Sends one more, finishing the oldest first while it must.
    pub fn push(&mut self, ctx: &mut ClientCtx, sent: Sent) -> anyhow::Result<()> {
        while self.window.must_wait(ctx) {
            self.finish_oldest(ctx);
            self.check()?;
        }
        self.window.push(ctx, (), sent);
        Ok(())
    }

    /// Sends a request whose reply is a bare `O`, printing nothing when it succeeds.
    pub fn push_request(
        &mut self,
        ctx: &mut ClientCtx,
        words: &[&str],
        what: String,
    ) -> anyhow::Result<()> {
        let sent = crate::send_ahead(ctx, words, what, |_, _| Ok(Flow::Continue))?;
        self.push(ctx, sent.context("a request that cannot go ahead")?)
    }

    /// Finishes everything in flight; fails if anything failed.
    pub fn drain(&mut self, ctx: &mut ClientCtx) -> anyhow::Result<()> {
        while !self.window.is_empty() {
            self.finish_oldest(ctx);
        }
        self.check()
    }

    /// Ends the transfer, whose own steps came to `outcome`: everything in flight is
    /// finished, and the first failure, from either, is the result.
    pub fn close(mut self, ctx: &mut ClientCtx, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let drained = self.drain(ctx);
        match self.failed {
            Some(e) => Err(e),
            None => outcome.and(drained),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        match self.failed {
            Some(_) => bail!("stopped by an earlier failure"),
            None => Ok(()),
        }
    }

    fn finish_oldest(&mut self, ctx: &mut ClientCtx) {
        // Each request's error already names what it was about.
        if let Some(((), Err(e))) = self.window.finish_oldest(ctx)
            && self.failed.is_none()
        {
            self.failed = Some(e);
        }
    }
}
