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
    /// committed with the files around it and reported then ([`crate::batch::land`]).
    pub lands: bool,
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
/// that does not land a file finishes, after a failure, or when nothing more waits.
pub struct Window<T> {
    pending: VecDeque<Pending<T>>,
    max: usize,
    /// The tags of the commands whose files wait in [`ClientCtx::landing`], oldest first.
    landed: Vec<T>,
}

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
        }
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
    pub fn must_wait(&self, ctx: &mut ClientCtx) -> bool {
        // A failed connection shows when a reply is read.
        let _ = ctx.conn.flush_ready();
        !self.pending.is_empty() && (ctx.conn.unwritten() > 0 || self.pending.len() >= self.max)
    }

    /// Records a command just sent ahead, and writes what the socket takes at once.
    pub fn push(&mut self, ctx: &mut ClientCtx, tag: T, sent: Sent) {
        let mark = ctx.conn.sent();
        self.pending.push_back(Pending { tag, sent, mark });
        let _ = ctx.conn.flush_ready();
    }

    /// Reads the oldest command's reply and finishes it; `None` when nothing waits. After a
    /// failure the connection may be out of step. A download's file may be held, to be
    /// committed with the next ones (see [`Window`]): its result then says that it arrived,
    /// and a failure to commit it comes later, with its tag, as the first failure.
    pub fn finish_oldest(&mut self, ctx: &mut ClientCtx) -> Option<(T, anyhow::Result<Flow>)>
    where
        T: Clone,
    {
        let Pending { tag, sent, mark } = self.pending.pop_front()?;
        if !sent.lands
            && let Err(failed) = self.land(ctx)
        {
            // Finished on the next call, after this failure, which comes first.
            self.pending.push_front(Pending { tag, sent, mark });
            return Some((failed.0, Err(failed.1)));
        }
        let lands = sent.lands;
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
        let next_lands = self.pending.front().is_some_and(|next| next.sent.lands);
        if finished.is_err() || ctx.landing.is_full() || !next_lands {
            // A failure to commit an earlier file is the first failure.
            match self.land(ctx) {
                Err((early, e)) => Some((early, Err(e))),
                Ok(()) => Some((tag, finished)),
            }
        } else {
            Some((tag, finished))
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
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::socket::Memory;

    fn wire(frames: &[Frame], tail: &[u8]) -> Connection<Memory> {
        let mut bytes = Vec::new();
        for frame in frames {
            frame.encode(&mut bytes).unwrap();
        }
        bytes.extend_from_slice(tail);
        Connection::new(Memory::new(bytes))
    }

    fn run(next: Result<Next, WireError>) -> Request {
        match next {
            Ok(Next::Run(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn replies(conn: Connection<Memory>) -> Vec<Frame> {
        let mut back = Connection::new(Memory::new(conn.stream.into_inner().output));
        std::iter::from_fn(|| back.recv().ok()).collect()
    }

    #[test]
    fn after_a_failed_chained_request_the_rest_of_the_chain_is_skipped_with_its_content() {
        let c = |words: &[&str]| Frame::new(Kind::Chained, words.iter().copied());
        let content = [b'D', 0, 0, 0, 2, b'h', b'i'];
        let mut end = Vec::new();
        Frame::new(Kind::End, ["xxh3-128", "0"])
            .encode(&mut end)
            .unwrap();
        let mut tail = content.to_vec();
        tail.extend_from_slice(&end);
        let mut after = Vec::new();
        Frame::new(Kind::Request, ["LIST"])
            .encode(&mut after)
            .unwrap();
        c(&["STAT", "b"]).encode(&mut after).unwrap();
        tail.extend_from_slice(&after);
        let mut conn = wire(
            &[c(&["STAT", "a"]), c(&["UPLOAD", "x", "2", "eager"])],
            &tail,
        );
        let mut chain = Chain::new();
        let first = run(chain.next(&mut conn, &mut |_| true));
        assert_eq!((first.words[1].as_str(), first.chained), ("a", true));
        chain.ran(&first, true);
        // The upload is skipped, and its content read past; the plain LIST runs.
        let list = run(chain.next(&mut conn, &mut |_| true));
        assert_eq!(
            (&list.words[..], list.chained),
            (&["LIST".to_string()][..], false)
        );
        chain.ran(&list, true);
        let next = run(chain.next(&mut conn, &mut |_| true));
        assert_eq!(
            next.words,
            ["STAT", "b"],
            "a plain request starts a new chain"
        );
        let skipped = replies(conn);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].words[0], "skipped");
    }

    #[test]
    fn a_late_cancel_is_dropped_and_anything_else_out_of_place_is_invalid() {
        let next = |conn: &mut Connection<Memory>| Chain::new().next(conn, &mut |_| true);
        let abort = Frame::new(Kind::Abort, ["cancelled", "late"]);
        let mut conn = wire(&[abort, Frame::new(Kind::Request, ["LIST"])], &[]);
        assert_eq!(run(next(&mut conn)).words, ["LIST"]);
        let mut conn = wire(&[Frame::new(Kind::Ok, [""; 0])], &[]);
        assert!(matches!(next(&mut conn), Err(WireError::Invalid(_))));
        let mut conn = wire(&[Frame::new(Kind::Request, [""; 0])], &[]);
        assert!(matches!(next(&mut conn), Err(WireError::Invalid(_))));
        assert!(matches!(next(&mut wire(&[], &[])), Err(WireError::Closed)));
    }

    #[test]
    fn a_stopping_server_refuses_the_next_request_and_stops_after_a_skipped_one() {
        let c = Frame::new(Kind::Chained, ["STAT", "a"]);
        let mut conn = wire(&[c.clone(), c.clone(), c], &[]);
        let mut chain = Chain::new();
        let mut marks = Vec::new();
        let first = run(chain.next(&mut conn, &mut |busy| {
            marks.push(busy);
            true
        }));
        chain.ran(&first, true);
        // The next is skipped; going idle after it finds the server stopping.
        let stopped = chain.next(&mut conn, &mut |busy| {
            marks.push(busy);
            busy
        });
        assert_eq!(stopped.unwrap(), Next::Stopped);
        assert_eq!(marks, [true, true, false]);
        assert_eq!(
            chain.next(&mut conn, &mut |_| false).unwrap(),
            Next::Refused
        );
    }

    /// A log of what the commands of a window did, in order.
    type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

    /// A received file that logs its rename, which fails for `bad`.
    struct File(&'static str, Log);

    impl crate::Pending for File {
        fn start(&mut self) {}
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn place(self: Box<Self>) -> std::io::Result<Option<std::fs::File>> {
            self.1.lock().unwrap().push(format!("place {}", self.0));
            match self.0 {
                "bad" => Err(std::io::Error::other("no room")),
                _ => Ok(None),
            }
        }
    }

    /// A command sent ahead: a download that lands `name`, or another that logs it.
    fn sent(name: &'static str, lands: bool, log: &Log) -> Sent {
        let log = Log::clone(log);
        let finish = move |ctx: &mut ClientCtx| {
            log.lock().unwrap().push(format!("finish {name}"));
            if lands {
                let file = Box::new(File(name, Log::clone(&log)));
                let report = move |_: &mut ClientCtx| {
                    log.lock().unwrap().push(format!("report {name}"));
                    Ok(())
                };
                ctx.landing.push(file, name.into(), 1, Box::new(report));
            }
            Ok(Flow::Continue)
        };
        let finish = Box::new(finish);
        Sent {
            finish,
            unsettled: lands,
            lands,
        }
    }

    fn client() -> ClientCtx {
        ClientCtx {
            conn: Connection::boxed(Memory::new(Vec::new())),
            server: "127.0.0.1:1".parse().unwrap(),
            registry: Box::leak(Box::new(crate::Registry::new([]))),
            cwd: crate::RemotePath::root(),
            local_dir: ".".into(),
            out: Box::new(std::io::sink()),
            err: Box::new(std::io::sink()),
            meter: Box::new(crate::Silent),
            report: Default::default(),
            landing: crate::Group::new(),
        }
    }

    /// Runs the commands through a window; the log, and each command's tag and outcome.
    fn through_window(commands: &[(&'static str, bool)]) -> (Vec<String>, Vec<String>) {
        let (log, mut ctx, mut window) = (Log::default(), client(), Window::new(8));
        for &(name, lands) in commands {
            window.push(&mut ctx, name, sent(name, lands, &log));
        }
        let mut outcomes = Vec::new();
        while let Some((tag, outcome)) = window.finish_oldest(&mut ctx) {
            let failed = outcome.err().map(|e| format!(" {e:#}")).unwrap_or_default();
            outcomes.push(format!("{tag}{failed}"));
        }
        (log.lock().unwrap().clone(), outcomes)
    }

    #[test]
    fn downloads_in_a_row_land_together_before_another_command_finishes_and_at_the_end() {
        let (log, outcomes) =
            through_window(&[("a", true), ("b", true), ("ls", false), ("c", true)]);
        let steps = [
            "finish a",
            "finish b",
            "place a",
            "place b",
            "report a",
            "report b",
            "finish ls",
            "finish c",
            "place c",
            "report c",
        ];
        assert_eq!(log, steps);
        assert_eq!(outcomes, ["a", "b", "ls", "c"]);
    }

    #[test]
    fn a_file_that_cannot_land_fails_its_own_command_after_the_files_before_it() {
        let (log, outcomes) = through_window(&[("a", true), ("bad", true), ("c", true)]);
        let steps = [
            "finish a",
            "finish bad",
            "finish c",
            "place a",
            "place bad",
            "report a",
        ];
        assert_eq!(log, steps, "c is not placed");
        assert_eq!(outcomes, ["a", "bad", "bad downloading 'bad': no room"]);
    }
}
