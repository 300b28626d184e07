//! One client's session: the greeting (with the access token, when one is set), then requests
//! until LOGOUT, a closed connection, an idle timeout or shutdown. Failures are answered with an
//! `E` frame and logged with the peer; none of them reach the accept loop.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferry_core::conn::failure_frame;
use ferry_core::error::is_timeout;
use ferry_core::{
    Connection, ErrorKind, Failure, Frame, Kind, PROTOCOL, Reply, ServerCtx, VERSION, WireError,
};

use crate::{Shared, log};

/// Answers a connection the server will not serve with one `E` frame, then closes it.
pub(crate) fn refuse(mut stream: TcpStream, failure: &Failure) {
    let mut bytes = Vec::new();
    if failure_frame(Kind::Error, failure)
        .encode(&mut bytes)
        .is_ok()
    {
        // A fresh socket's send buffer is empty, so this does not block; the timeout is a guard.
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(&bytes);
    }
}

/// Serves one client; returns why the session ended, for the log.
pub(crate) fn serve(shared: &Shared, id: u64, stream: TcpStream, peer: SocketAddr) -> String {
    let mut conn = Connection::new(stream);
    match greet(shared, &mut conn) {
        Ok(()) => {}
        Err(end) => return end,
    }
    // Whether a chained request since the last plain one has failed: the chained requests
    // after it are not run, as a client that had waited for the failure would not have sent
    // them.
    let mut chain_failed = false;
    // Whether the last request was skipped: content sent with it is read and dropped.
    let mut skipped = false;
    loop {
        let header = match conn.read_header() {
            Ok(header) => header,
            Err(e) => return ended(&mut conn, e),
        };
        if std::mem::take(&mut skipped) && matches!(header.kind, Kind::Data | Kind::End) {
            if let Err(e) = conn.skip_content(header) {
                return ended(&mut conn, e);
            }
            continue;
        }
        if header.kind == Kind::Abort {
            // A receiver's cancel that crossed the end of its stream: nothing to stop.
            if let Err(e) = conn.read_words(header) {
                return ended(&mut conn, e);
            }
            continue;
        }
        if !set_busy(shared, id, true) {
            let failure = Failure::new(ErrorKind::Busy, "server is shutting down");
            let _ = conn.send_failure(&failure);
            return "server shutting down".into();
        }
        let chained = match header.kind {
            Kind::Request => false,
            Kind::Chained => true,
            other => {
                let why = format!("expected a request, got a {other:?} frame");
                return ended(&mut conn, WireError::Invalid(why));
            }
        };
        let frame = match conn.read_words(header) {
            Ok(frame) if !frame.words.is_empty() => frame,
            Ok(_) => return ended(&mut conn, WireError::Invalid("empty request".into())),
            Err(e) => return ended(&mut conn, e),
        };
        if chained && chain_failed {
            let failure = Failure::new(
                ErrorKind::Skipped,
                "not run: an earlier chained request failed",
            );
            if let Err(e) = conn.send_failure(&failure) {
                return e.to_string();
            }
            skipped = true;
        } else {
            let failed = match handle(shared, &mut conn, peer, &frame.words) {
                Handled::Succeeded => false,
                Handled::Failed => true,
                Handled::Close(why) => return why,
            };
            // A plain request starts a new chain whatever its outcome; a chained one that
            // fails breaks its chain.
            chain_failed = chained && failed;
        }
        if !set_busy(shared, id, false) {
            return "server shutting down".into();
        }
    }
}

/// Exchanges greetings: the server's `H`, the client's `H` (with the access token when the
/// server has one), then `O` (or `E` and close). The client's whole greeting must arrive within
/// the handshake timeout, so a connection that never speaks, or drips its greeting a byte at a
/// time, cannot hold a client slot for long.
fn greet(shared: &Shared, conn: &mut Connection<TcpStream>) -> Result<(), String> {
    let config = &shared.config;
    let handshake = match config.idle_timeout {
        Some(idle) => idle.min(config.handshake_timeout),
        None => config.handshake_timeout,
    };
    let hello = Frame::new(
        Kind::Hello,
        [
            PROTOCOL,
            VERSION,
            concat!("ferryd ", env!("CARGO_PKG_VERSION")),
        ],
    );
    conn.send(&hello).map_err(|e| e.to_string())?;
    let frame = match conn.recv_before(Instant::now() + handshake) {
        Ok(frame) => frame,
        Err(WireError::Io(e)) if is_timeout(&e) => return Err("handshake timeout".into()),
        Err(e) => return Err(ended(conn, e)),
    };
    let refusal = match frame.words.as_slice() {
        [p, v, ..] if frame.kind == Kind::Hello && p == PROTOCOL && v == VERSION => None,
        [p, v, ..] if frame.kind == Kind::Hello && p == PROTOCOL => Some(format!(
            "protocol version '{}' is not supported; this server speaks {VERSION}",
            ferry_core::name::escape(v)
        )),
        _ => Some(format!("not a {PROTOCOL} client")),
    };
    if let Some(message) = refusal {
        let _ = conn.send_failure(&Failure::new(ErrorKind::Version, message.clone()));
        return Err(message);
    }
    if let Some(token) = &config.token {
        let message = match frame.words.get(3) {
            Some(given) if token.matches(given) => None,
            Some(_) => Some("wrong access token"),
            None => Some("this server requires an access token"),
        };
        if let Some(message) = message {
            // The delay makes guessing slow; the client's thread and slot are held meanwhile,
            // so the client cap also bounds how many guesses run at once.
            std::thread::sleep(crate::WRONG_TOKEN_DELAY);
            let _ = conn.send_failure(&Failure::new(ErrorKind::Forbidden, message));
            return Err(message.into());
        }
    }
    let _ = conn.stream().set_read_timeout(config.idle_timeout);
    conn.send(&Frame::new(Kind::Ok, [""; 0]))
        .map_err(|e| e.to_string())
}

/// How a request went.
enum Handled {
    Succeeded,
    /// It failed, and the client was told.
    Failed,
    /// The connection must close, for this reason.
    Close(String),
}

/// Runs one request.
fn handle(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    peer: SocketAddr,
    words: &[String],
) -> Handled {
    let (name, args) = (&words[0], &words[1..]);
    let Some(verb) = shared.registry.find(name) else {
        let failure = Failure::new(
            ErrorKind::UnknownVerb,
            format!("unknown verb '{}'", ferry_core::name::escape(name)),
        );
        return match conn.send_failure(&failure) {
            Ok(()) => Handled::Failed,
            Err(e) => Handled::Close(e.to_string()),
        };
    };
    let mut ctx = ServerCtx {
        conn,
        root: &shared.root,
        peer,
        registry: shared.registry,
        shutdown: &shared.shutdown,
        max_file_size: shared.config.max_file_size,
    };
    let (sent, outcome) = match (verb.server)(&mut ctx, args) {
        Ok(Reply::Ok(words)) => (conn.send(&Frame::new(Kind::Ok, words)), Handled::Succeeded),
        Ok(Reply::Done) => (Ok(()), Handled::Succeeded),
        Ok(Reply::Close(words)) => {
            let _ = conn.send(&Frame::new(Kind::Ok, words));
            return Handled::Close(format!("{} done", verb.name));
        }
        Err(failure) => {
            let detail = failure.detail.as_deref().unwrap_or("");
            log(format_args!(
                "{peer} {}: {} ({}) {detail}",
                verb.name,
                failure.message,
                failure.kind.code()
            ));
            let sent = if failure.replied {
                Ok(())
            } else {
                conn.send_failure(&failure)
            };
            if failure.fatal {
                return Handled::Close(format!("{} failed: {}", verb.name, failure.message));
            }
            (sent, Handled::Failed)
        }
    };
    match sent {
        Ok(()) => outcome,
        Err(e) => Handled::Close(e.to_string()),
    }
}

/// Marks the client busy or idle; false when the server is shutting down.
fn set_busy(shared: &Shared, id: u64, busy: bool) -> bool {
    let mut clients = shared.clients();
    if let Some(client) = clients.get_mut(&id) {
        client.busy = busy;
    }
    !shared.shutdown.is_requested()
}

/// Why a session ended on a wire error; a malformed frame gets an `E` reply first.
fn ended(conn: &mut Connection<TcpStream>, err: WireError) -> String {
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
