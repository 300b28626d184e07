//! Pipelining: requests sent without waiting for the replies to earlier ones.
//!
//! On the client, a verb that can go ahead sends its request as a chained (`C`) request and
//! returns a [`Sent`], which finishes the command when its reply is next; [`Behind`] tells it
//! what the commands already sent may still do. On the server, [`Chain`] reads the next
//! request to run and applies the rules of a chain: a chained request after a failed one is
//! not run (it is answered `E skipped`, and any content sent with it is read and dropped), and
//! a receiver's `X` that crossed the end of its stream is dropped.

use std::collections::VecDeque;

use crate::conn::Connection;
use crate::ctx::ClientCtx;
use crate::error::{ErrorKind, Failure, WireError};
use crate::frame::Kind;
use crate::socket::Transport;
use crate::verb::Flow;

/// The largest content a command sent ahead may carry, so that a pipelining client's queue
/// stays small.
pub const AHEAD_MAX: u64 = 16 * 1024;

/// What the commands already sent ahead, and not yet finished, may still do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behind {
    /// One of them may yet fail on this side after the server has done its part, or will
    /// write local files when it finishes (a download). The server runs what is sent ahead of
    /// it regardless, so a command that changes anything, or reads local files, must wait.
    pub unsettled: bool,
}

/// Finishes a command sent ahead: reads its reply (the next one on the connection), does the
/// local part, and prints the result. Called in the order the commands were sent; after a
/// failure the connection may be out of step, and the client stops.
pub type FinishFn = Box<dyn FnOnce(&mut ClientCtx) -> anyhow::Result<Flow>>;

/// A command sent ahead: what finishes it, and what it may still do.
pub struct Sent {
    /// See [`FinishFn`].
    pub finish: FinishFn,
    /// See [`Behind::unsettled`].
    pub unsettled: bool,
    /// Its finish leaves a received file in [`ClientCtx::landing`] (a download), to be
    /// committed with the files around it and reported then ([`crate::batch::land`]): the
    /// file's destination.
    pub lands: Option<std::path::PathBuf>,
}

/// A request for the server to run: its words (the verb first, never empty) and whether it
/// came chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The verb, then its wire arguments.
    pub words: Vec<String>,
    /// It was sent as `C`, ahead of the replies to earlier requests.
    pub chained: bool,
}

/// What [`Chain::next`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// A request to run; the session is marked busy.
    Run(Request),
    /// A request arrived while the server is stopping; it was not read.
    Refused,
    /// The server began stopping while a skipped request was answered.
    Stopped,
}

/// The server's view of one connection's chain of requests.
#[derive(Debug, Default)]
pub struct Chain {
    /// A chained request since the last plain one has failed: the chained requests after it
    /// are not run, as a client that had waited for the failure would not have sent them.
    failed: bool,
    /// The last request was skipped: content sent with it is read and dropped.
    skipped: bool,
}

impl Chain {
    /// A connection's chain before its first request.
    pub fn new() -> Chain {
        Chain::default()
    }

    /// Reads frames until the next request to run, answering and dropping what is not one.
    /// Anything else out of place (a content frame with no request, a reply) is a protocol
    /// error.
    ///
    /// `busy` marks the session busy (`true`) as soon as a request arrives, and idle again
    /// (`false`) after one that was skipped; it returns false when the server is stopping
    /// (or no longer wants this session), and then so does this, with [`Next::Refused`] or
    /// [`Next::Stopped`].
    ///
    /// From the first byte of a frame on, the connection keeps its pace
    /// ([`Connection::exchange`]); a request to run is returned with its exchange begun, for
    /// the caller to end once it has replied.
    pub fn next<S: Transport>(
        &mut self,
        conn: &mut Connection<S>,
        busy: &mut dyn FnMut(bool) -> bool,
    ) -> Result<Next, WireError> {
        loop {
            conn.rest_if_idle();
            conn.arrival()?;
            conn.exchange(true);
            let header = conn.read_header()?;
            if std::mem::take(&mut self.skipped) && matches!(header.kind, Kind::Data | Kind::End) {
                conn.skip_content(header)?;
                conn.exchange(false);
                continue;
            }
            if header.kind == Kind::Abort {
                // A receiver's cancel that crossed the end of its stream: nothing to stop.
                conn.read_words(header)?;
                conn.exchange(false);
                continue;
            }
            if !busy(true) {
                return Ok(Next::Refused);
            }
            let chained = match header.kind {
                Kind::Request => false,
                Kind::Chained => true,
                other => {
                    let why = format!("expected a request, got a {other:?} frame");
                    return Err(WireError::Invalid(why));
                }
            };
            let words = conn.read_words(header)?.words;
            if words.is_empty() {
                return Err(WireError::Invalid("empty request".into()));
            }
            if !(chained && self.failed) {
                return Ok(Next::Run(Request { words, chained }));
            }
            let failure = Failure::new(
                ErrorKind::Skipped,
                "not run: an earlier chained request failed",
            );
            conn.send_failure(&failure)?;
            conn.exchange(false);
            self.skipped = true;
            if !busy(false) {
                return Ok(Next::Stopped);
            }
        }
    }

    /// Reads and drops the content that follows the request just answered, if any: it was
    /// refused before its verb could read it (an eager upload by a session that may only read).
    pub fn drop_content(&mut self) {
        self.skipped = true;
    }

    /// Records how a request ran: a plain request starts a new chain whatever its outcome; a
    /// chained one that failed breaks its chain.
    pub fn ran(&mut self, request: &Request, failed: bool) {
        self.failed = request.chained && failed;
    }
}

/// Commands sent ahead and not yet finished, oldest first, each with a tag of the caller's
/// (a script line, a file of a tree).
///
/// A pipelining client must keep reading replies while it sends: nothing is queued behind
/// bytes the socket has not taken, since a write that blocked while the server blocks writing
/// replies that nobody reads would never end. [`Window::must_wait`] says when the oldest must
/// be finished before another goes.
///
/// Downloads that finish one after another are committed together: the files they leave in
/// [`ClientCtx::landing`] are committed and reported when the group is full, before a command
/// that does not land a file finishes, after a failure, or when nothing more waits; while
/// more downloads follow, a group of [`crate::batch::PASS_AT`] is committed on a thread of
/// its own as the next arrive.
pub struct Window<T> {
    pending: VecDeque<Pending<T>>,
    max: usize,
    /// The tags of the commands whose files wait in [`ClientCtx::landing`], oldest first.
    landed: Vec<T>,
    /// Requests may wait in the queue while the server has enough to answer (see
    /// [`Window::in_runs`]).
    runs: bool,
}

/// The most bytes of requests a window in runs holds back: far below what makes
/// [`Connection::queue`] write, blocking, on its own.
const RUN_BYTES: usize = 4096;

struct Pending<T> {
    tag: T,
    sent: Sent,
    /// [`Connection::sent`] once the command was queued: all of it must have been written
    /// before its reply can come.
    mark: u64,
}

impl<T> Window<T> {
    /// A window of at most `max` commands.
    pub fn new(max: usize) -> Window<T> {
        Window {
            pending: VecDeque::new(),
            max,
            landed: Vec::new(),
            runs: false,
        }
    }

    /// This window, writing its requests in runs: while the server still has a quarter of a
    /// window of them to answer, a new request waits in the queue (up to [`RUN_BYTES`]), and
    /// goes with the next run, in one write. A request written alone cost a system call a
    /// file on this side, and often a wakeup and a read on the server's. Only for requests
    /// that the caller makes itself, one after another, and drains at the end: a script
    /// waiting on its input with a request held back would never hear its reply.
    pub fn in_runs(self) -> Window<T> {
        Window { runs: true, ..self }
    }

    /// Whether the requests queued go now: always, unless the window is in runs, the
    /// server has enough to answer, and the queue is short.
    fn writes_now(&self, ctx: &ClientCtx) -> bool {
        if !self.runs || ctx.conn.unwritten() >= RUN_BYTES {
            return true;
        }
        let written = ctx.conn.sent() - ctx.conn.unwritten() as u64;
        // The marks grow with each request queued: those written are the oldest. Counted by
        // bisection, as this is asked for every request (walking a window of 256 for each
        // was 5% of a tree upload's client).
        let answering = self.pending.partition_point(|p| p.mark <= written);
        // At least one: a window too small for a quarter still writes when nothing is left.
        answering < (self.max / 4).max(1)
    }

    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// What the commands in the window may still do, for the next one.
    pub fn behind(&self) -> Behind {
        Behind {
            unsettled: self.pending.iter().any(|p| p.sent.unsettled),
        }
    }

    /// Writes what the socket takes at once; true when the oldest command must be finished
    /// before another is sent (the socket holds back bytes, or the window is full).
    /// Requests held back for a run (see [`Window::in_runs`]) are not bytes the socket
    /// refused: they do not make the next one wait.
    pub fn must_wait(&self, ctx: &mut ClientCtx) -> bool {
        // A failed connection shows when a reply is read.
        let writes = self.writes_now(ctx);
        if writes {
            let _ = ctx.conn.flush_ready();
        }
        !self.pending.is_empty()
            && ((writes && ctx.conn.unwritten() > 0) || self.pending.len() >= self.max)
    }

    /// Records a command just sent ahead, and writes what the socket takes at once (unless
    /// it is held back for a run).
    pub fn push(&mut self, ctx: &mut ClientCtx, tag: T, sent: Sent) {
        let mark = ctx.conn.sent();
        self.pending.push_back(Pending { tag, sent, mark });
        if self.writes_now(ctx) {
            let _ = ctx.conn.flush_ready();
        }
    }

    /// Reads the oldest command's reply and finishes it; `None` when nothing waits. After a
    /// failure the connection may be out of step. A download's file may be held, to be
    /// committed with the next ones (see [`Window`]): its result then says that it arrived,
    /// and a failure to commit it comes later, with its tag, as the first failure.
    pub fn finish_oldest(&mut self, ctx: &mut ClientCtx) -> Option<(T, anyhow::Result<Flow>)>
    where
        T: Clone,
    {
        // Held requests go before this side waits, once the server is running short (and
        // so all of them as the window drains).
        if self.writes_now(ctx) {
            let _ = ctx.conn.flush_ready();
        }
        let Pending { tag, sent, mark } = self.pending.pop_front()?;
        // A command that lands nothing may print, or act on the files held; a download to a
        // destination held must find the one before it in place.
        let first = sent
            .lands
            .as_ref()
            .is_none_or(|dest| ctx.landing.lands_at(dest));
        if first && let Err(failed) = self.land(ctx) {
            // Finished on the next call, after this failure, which comes first.
            self.pending.push_front(Pending { tag, sent, mark });
            return Some((failed.0, Err(failed.1)));
        }
        let lands = sent.lands.is_some();
        let finished = match ctx.conn.flush_to(mark) {
            Err(WireError::Io(e)) if crate::error::is_timeout(&e) => Err(WireError::Io(e).into()),
            // Otherwise, should the request not have gone out whole, the connection failed:
            // the reply the server sent before it closed (busy, say), or the failure to read
            // one, names the command.
            _ => (sent.finish)(ctx),
        };
        if lands && finished.is_ok() && ctx.landing.len() > self.landed.len() {
            self.landed.push(tag.clone());
        }
        let next_lands = self.pending.front().is_some_and(|n| n.sent.lands.is_some());
        // A failure to commit an earlier file is the first failure.
        let landed = if finished.is_err() || ctx.landing.is_full() || !next_lands {
            self.land(ctx)
        } else if ctx.landing.passes() {
            self.pass(ctx)
        } else {
            Ok(())
        };
        match landed {
            Err((early, e)) => Some((early, Err(e))),
            Ok(()) => Some((tag, finished)),
        }
    }

    /// Hands the files held in [`ClientCtx::landing`] to a thread to commit while more
    /// arrive, once those handed over before are committed and reported (see
    /// [`crate::batch::pass`]); a failure is as [`Window::land`]'s.
    fn pass(&mut self, ctx: &mut ClientCtx) -> Result<(), (T, anyhow::Error)>
    where
        T: Clone,
    {
        match crate::batch::pass(ctx) {
            Ok(reported) => {
                self.landed.drain(..reported);
                Ok(())
            }
            Err((at, e)) => {
                let landed = std::mem::take(&mut self.landed);
                Err((landed[at].clone(), e))
            }
        }
    }

    /// Commits the files held in [`ClientCtx::landing`] and reports them; on a failure, the
    /// tag of the command whose file failed, and the error.
    fn land(&mut self, ctx: &mut ClientCtx) -> Result<(), (T, anyhow::Error)>
    where
        T: Clone,
    {
        if ctx.landing.is_empty() {
            self.landed.clear();
            return Ok(());
        }
        let landed = std::mem::take(&mut self.landed);
        crate::batch::land(ctx).map_err(|(at, e)| (landed[at].clone(), e))
    }
}

#[cfg(test)]
mod tests;
