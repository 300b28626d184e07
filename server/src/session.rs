//! One client's session: the greeting (with the access token, when one is set), then requests
//! until LOGOUT, a closed connection, an idle timeout or shutdown. Failures are answered with an
//! `E` frame and logged with the peer; none of them reach the accept loop.
//!
//! The loop asks the connection's [`Chain`] for the next request to run (it applies the rules
//! of pipelining), looks the verb up, checks access, runs the verb's server half, and sends
//! what it returns.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::error::is_timeout;
use ferry_core::hello::{self, HelloError};
use ferry_core::pipeline::Request;
use ferry_core::{
    Batch, Chain, Connection, Done, ErrorKind, Failure, Frame, Kind, Next, Pace, Registry, Reply,
    ServerCtx, Verb, WireError,
};

use crate::access::{self, Access};
use crate::clients::Stage;
use crate::{Shared, log, log_done};

/// What this server calls itself in its greeting.
const SOFTWARE: &str = concat!("ferryd ", env!("CARGO_PKG_VERSION"));

/// Answers a connection the server will not serve with one `E` frame, then closes it.
pub(crate) fn refuse(mut stream: TcpStream, failure: &Failure) {
    let mut bytes = Vec::new();
    if Frame::failure(Kind::Error, failure)
        .encode(&mut bytes)
        .is_ok()
    {
        // A fresh socket's send buffer is empty, so this does not block; the timeout is a guard.
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(&bytes);
    }
}

/// Serves one client; returns why the session ended, for the log.
/// `proxy` is the trusted proxy it came through, if any; `deadline` ends the greeting.
pub(crate) fn serve(
    shared: &Shared,
    (id, peer, proxy): (u64, SocketAddr, Option<SocketAddr>),
    stream: TcpStream,
    deadline: Instant,
) -> String {
    let (mut conn, access) = match greet(shared, (id, peer), stream, deadline) {
        Ok(greeted) => greeted,
        Err(end) => return end,
    };
    // A request in flight must keep moving: the idle timeout bounds the total time spent
    // waiting on the client for each quota of bytes, not each read or write alone.
    let window = shared.config.idle_timeout;
    let min_rate = shared.config.min_rate;
    conn.set_pace(window.map(|window| Pace { window, min_rate }));
    let mut batch = Batch::new();
    let why = requests(shared, id, (&mut conn, access), (peer, proxy), &mut batch);
    // Uploads received in full are committed and answered even as the session ends, and a
    // reply held back for a request that was then not run (see `send_content`) still leaves.
    let _ = batch.settle(&mut conn);
    let _ = conn.flush();
    why
}

/// Runs requests until the session ends; returns why it ended. Replies to uploads wait in
/// `batch` while more requests are already waiting to be read, so that the uploads are made
/// durable together; any other verb's request commits them first.
fn requests(
    shared: &Shared,
    id: u64,
    (conn, access): (&mut Connection, Access),
    (peer, proxy): (SocketAddr, Option<SocketAddr>),
    batch: &mut Batch,
) -> String {
    let mut chain = Chain::new();
    let mut busy = |busy| set_busy(shared, id, busy);
    loop {
        if let Err(failure) = commit(batch, conn) {
            return failure;
        }
        let request = match chain.next(conn, &mut busy) {
            Ok(Next::Run(request)) => request,
            Ok(Next::Refused) if stopping(shared).is_some() => {
                let doing = stopping(shared).unwrap_or_default();
                let failure = Failure::new(ErrorKind::Busy, format!("server is {doing}"));
                let _ = batch.settle(conn);
                let _ = conn.send_failure(&failure);
                return format!("server {doing}");
            }
            // Closed to make room for another client (the log says why).
            Ok(Next::Refused) => return "closed to make room".into(),
            Ok(Next::Stopped) => return ending(shared),
            // Shutdown closes idle sessions' sockets: that, not the client, ended them.
            Err(WireError::Closed | WireError::Io(_)) if stopping(shared).is_some() => {
                return "closed by shutdown".into();
            }
            // The uploads received before are answered first, each in its turn.
            Err(e) => return settle(batch, conn).map_or_else(|why| why, |()| ended(conn, e)),
        };
        let same = batch
            .verb
            .is_some_and(|v| v.eq_ignore_ascii_case(&request.words[0]));
        if !batch.is_empty()
            && !same
            && let Err(failure) = settle(batch, conn)
        {
            return failure;
        }
        let failed = match handle(shared, conn, (peer, proxy, access, &mut *batch), &request) {
            Handled::Succeeded => false,
            Handled::Failed => true,
            Handled::Refused => {
                chain.drop_content();
                true
            }
            Handled::Close(why) => return why,
        };
        conn.exchange(false);
        chain.ran(&request, failed);
        if !rest(conn.unwritten(), &mut busy, stopping(shared).is_some()) {
            return ending(shared);
        }
    }
}

/// A request has run: the session goes idle, where a drain or a shutdown may shut its socket
/// down (`Clients::close_idle`), unless `queued` bytes still wait to be written (a reply held
/// for the chained request already received, see `send_content`): they would be lost, so the
/// session stays busy, and a session that must end writes them as it ends. False when the
/// session must end.
fn rest(queued: usize, busy: &mut impl FnMut(bool) -> bool, stopping: bool) -> bool {
    if queued > 0 {
        return !stopping;
    }
    busy(false)
}

/// Commits the uploads held in `batch` and sends their replies; on a failure, tells the
/// client and returns why the session must end (requests chained after them have run).
fn settle(batch: &mut Batch, conn: &mut Connection) -> Result<(), String> {
    batch
        .settle(conn)
        .map_err(|failure| commit_failed(conn, failure))
}

/// Between requests: commits the uploads held once no request waits (or the batch is full),
/// or, while requests stream in, hands a big enough group to a thread to commit as the next
/// is received ([`Batch::pass`]).
fn commit(batch: &mut Batch, conn: &mut Connection) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    if batch.is_full() || !conn.request_waiting() {
        return settle(batch, conn);
    }
    if batch.passes() {
        return batch
            .pass(conn)
            .map_err(|failure| commit_failed(conn, failure));
    }
    Ok(())
}

/// Tells the client that committing its uploads failed; why the session ends.
fn commit_failed(conn: &mut Connection, failure: Failure) -> String {
    let _ = conn.send_failure(&failure);
    format!("commit failed: {}", failure.message)
}

/// Exchanges greetings (TLS included), checks the proof of the access token, and takes a
/// session slot. The whole greeting must be done within the handshake timeout, so a
/// connection that never speaks, or drips its greeting a byte at a time, cannot hold its place
/// among those greeting for long; each step it takes is told to [`crate::clients`], which
/// makes room by closing those that have got least far.
fn greet(
    shared: &Shared,
    (id, peer): (u64, SocketAddr),
    stream: TcpStream,
    deadline: Instant,
) -> Result<(Connection, Access), String> {
    let config = &shared.config;
    let tls = Arc::clone(&shared.identity.config);
    let mut progress = |step: hello::Progress| shared.clients.progress(id, step.into());
    let (mut conn, said, binding) =
        match hello::receive(stream, SOFTWARE, tls, deadline, &mut progress) {
            Ok(greeted) => greeted,
            Err(HelloError::Wire(WireError::Io(e))) if is_timeout(&e) => {
                return Err("handshake timeout".into());
            }
            Err(HelloError::Wire(WireError::Io(e))) => {
                return Err(format!("handshake failed: {e}"));
            }
            Err(HelloError::Wire(e)) => return Err(format!("handshake failed: {e}")),
            Err(HelloError::Refused(why)) => return Err(why),
        };
    let access = match access::check(&config.tokens, &binding, said.proof.as_deref()) {
        Ok(access) => access,
        Err(message) => {
            // The delay makes guessing slow; the client's thread and place among those
            // greeting are held meanwhile, so that limit also bounds how many guesses run at
            // once. A refused client is the first to give its place up.
            shared.clients.progress(id, Stage::Refused);
            std::thread::sleep(crate::WRONG_TOKEN_DELAY);
            let _ = conn.send_failure(&Failure::new(ErrorKind::Forbidden, message));
            return Err(message.into());
        }
    };
    let _ = conn.stream().set_read_timeout(config.idle_timeout);
    match shared.clients.promote(id) {
        Ok(Some(d)) => log(format_args!("{} {} (for {peer})", d.peer, d.why)),
        Ok(None) => {}
        Err(failure) => {
            let _ = conn.send_failure(&failure);
            return Err(failure.message);
        }
    }
    hello::accept(&mut conn).map_err(|e| e.to_string())?;
    Ok((conn, access))
}

/// When a connection accepted now must have greeted, a trusted proxy's header included.
pub(crate) fn deadline(config: &crate::Config) -> Instant {
    let handshake = match config.idle_timeout {
        Some(idle) => idle.min(config.handshake_timeout),
        None => config.handshake_timeout,
    };
    Instant::now() + handshake
}

/// How a request went.
enum Handled {
    Succeeded,
    /// It failed, and the client was told.
    Failed,
    /// It was refused before its verb ran (unknown, or not allowed), and the client was told;
    /// content sent with it (an eager upload's) is still on its way.
    Refused,
    /// The connection must close, for this reason.
    Close(String),
}

/// Runs one request: its verb's server half, then the reply it asks for.
fn handle(
    shared: &Shared,
    conn: &mut Connection,
    (peer, proxy, access, batch): (SocketAddr, Option<SocketAddr>, Access, &mut Batch),
    request: &Request,
) -> Handled {
    let (name, args) = (&request.words[0], &request.words[1..]);
    let verb = permitted(shared.registry, name, access);
    let refused = verb.is_err();
    let started = Instant::now();
    let outcome = match verb {
        Ok(verb) => {
            let mut ctx = ServerCtx {
                conn,
                store: shared.store.as_ref(),
                peer,
                proxy,
                registry: shared.registry,
                shutdown: &|| shared.shutdown.request(),
                max_file_size: shared.config.max_file_size,
                done: None,
                batch,
            };
            let held = ctx.batch.received();
            let outcome = (verb.server)(&mut ctx, args).map_err(|failure| (verb.name, failure));
            if ctx.batch.received() > held {
                ctx.batch.verb = Some(verb.name);
            } else if let Err(why) = settle(ctx.batch, ctx.conn) {
                // Replies go in order: those held go before this one.
                return Handled::Close(why);
            }
            if outcome.is_ok() {
                done(verb, args, ctx.done.take(), (peer, started));
            }
            outcome
        }
        Err(failure) => Err(("request", failure)),
    };
    let (sent, handled) = match outcome {
        Ok(Reply::Ok(words)) => (conn.send(&Frame::new(Kind::Ok, words)), Handled::Succeeded),
        Ok(Reply::Done) => (Ok(()), Handled::Succeeded),
        Ok(Reply::Close(words)) => {
            let _ = conn.send(&Frame::new(Kind::Ok, words));
            return Handled::Close(format!("{} done", name.to_ascii_uppercase()));
        }
        Err((what, failure)) => return failed(shared, conn, (peer, what), &failure, refused),
    };
    match sent {
        Ok(()) => handled,
        Err(e) => Handled::Close(e.to_string()),
    }
}

/// Logs a failed request and tells the client, unless it knows; how the session goes on.
fn failed(
    shared: &Shared,
    conn: &mut Connection,
    (peer, what): (SocketAddr, &str),
    failure: &Failure,
    refused: bool,
) -> Handled {
    let detail = failure.detail.as_deref().unwrap_or("");
    let (message, code) = (&failure.message, failure.kind.code());
    // A lost connection failed, not the request: the log says so, not the code sent.
    let by = match stopping(shared) {
        Some(_) => " by shutdown",
        None => "",
    };
    let close = if failure.lost {
        log(format_args!("{peer} {what} interrupted{by}: {detail}"));
        // The cause alone: what was kept of it is on the line above.
        let cause = detail.split(';').next().unwrap_or_default();
        Some(format!("{what} interrupted{by}: {cause}"))
    } else {
        log(format_args!("{peer} {what}: {message} ({code}) {detail}"));
        failure.fatal.then(|| format!("{what} failed: {message}"))
    };
    let sent = if failure.replied {
        Ok(())
    } else {
        // Sent even on a lost connection: a client that was only slow may still read it.
        conn.send_failure(failure)
    };
    match (close, sent) {
        (Some(why), _) => Handled::Close(why),
        (None, Ok(())) if refused => Handled::Refused,
        (None, Ok(())) => Handled::Failed,
        (None, Err(e)) => Handled::Close(e.to_string()),
    }
}

/// Logs a request that succeeded, if it moved content or changed something: with what the
/// verb said it did, else (a verb that writes) with its words.
fn done(verb: &Verb, args: &[String], done: Option<Done>, (peer, started): (SocketAddr, Instant)) {
    let done = match done {
        Some(done) => done,
        None if verb.writes => Done {
            path: args.join(" "),
            ..Done::default()
        },
        None => return,
    };
    log_done(peer, verb.name, &done, started.elapsed());
}

/// The verb a request names, if this session may run it. Every verb that changes anything
/// (its `writes`) is checked against the session's access the same way.
fn permitted(registry: &Registry, name: &str, access: Access) -> Result<&'static Verb, Failure> {
    let verb = registry
        .served(name)
        .ok_or_else(|| Failure::new(ErrorKind::UnknownVerb, registry.unknown(name)))?;
    if verb.writes && !access.writes {
        return Err(Failure::new(
            ErrorKind::Forbidden,
            format!(
                "{} changes files, and this session may only read",
                verb.name
            ),
        ));
    }
    Ok(verb)
}

/// Marks the client busy or idle; false when the server is shutting down or draining, or the
/// session was closed to make room.
fn set_busy(shared: &Shared, id: u64, busy: bool) -> bool {
    shared.clients.set_busy(id, busy) && stopping(shared).is_none()
}

/// Why a session ends that the server stops taking requests on.
fn ending(shared: &Shared) -> String {
    format!("server {}", stopping(shared).unwrap_or("shutting down"))
}

/// What the server is doing, if it takes no more requests: shutting down, or draining.
fn stopping(shared: &Shared) -> Option<&'static str> {
    if shared.shutdown.is_requested() {
        Some("shutting down")
    } else if shared.shutdown.is_draining() {
        Some("draining")
    } else {
        None
    }
}

/// Why a session ended on a wire error; a malformed frame gets an `E` reply first.
fn ended(conn: &mut Connection, err: WireError) -> String {
    match err {
        WireError::Closed => "closed by client".into(),
        WireError::Io(e) if is_timeout(&e) => "idle timeout".into(),
        WireError::Invalid(why) => {
            let failure = Failure::new(ErrorKind::BadRequest, format!("protocol error: {why}"));
            let _ = conn.send_failure(&failure);
            format!("protocol error: {why}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holding_a_reply_is_never_marked_idle() {
        let mut marked = Vec::new();
        let mut busy = |busy| {
            marked.push(busy);
            true
        };
        assert!(rest(154, &mut busy, false));
        assert!(!rest(154, &mut busy, true), "a stopping server ends it");
        assert!(rest(0, &mut busy, false));
        assert_eq!(marked, [false], "marked idle with a reply still queued");
    }

    #[test]
    fn access_is_checked_against_what_each_verb_declares() {
        let registry = ferry_commands::registry();
        let reader = Access { writes: false };
        for verb in registry.iter() {
            if verb.local {
                // Runs on the client alone: no session may run it.
                let unknown = permitted(registry, verb.name, Access { writes: true });
                assert_eq!(unknown.unwrap_err().kind, ErrorKind::UnknownVerb);
                continue;
            }
            let allowed = permitted(registry, verb.name, reader);
            assert_eq!(allowed.is_ok(), !verb.writes, "{}", verb.name);
            if let Err(failure) = allowed {
                assert_eq!(failure.kind, ErrorKind::Forbidden);
            }
            assert!(permitted(registry, verb.name, Access { writes: true }).is_ok());
        }
        let unknown = permitted(registry, "DOWNLAOD", reader).unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::UnknownVerb);
        assert_eq!(
            unknown.message,
            "unknown verb 'DOWNLAOD'; did you mean DOWNLOAD?"
        );
    }
}
