//! The greeting, both sides of it: who speaks which protocol, encryption, and the token proof.
//!
//! The server sends `H FERRY <version> <software>` in clear, so that a peer of another version
//! learns it plainly; the client checks it and starts TLS 1.3; inside it the client answers
//! with its own `H` (and the proof that it knows the access token, bound to this session, when
//! it has one), and the server accepts with `O` or refuses with `E`. Between the handshake and
//! its `H`, the client compares the server's certificate with the one it trusts.
//!
//! Each side checks the other's protocol and version here, so that what one side refuses and
//! what the other says about it are decided in one place.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;

use crate::conn::Connection;
use crate::error::{ErrorKind, Failure, WireError};
use crate::frame::{Frame, Kind};
use crate::identity::Fingerprint;
use crate::socket::Transport;
use crate::tls::Tls;

/// The protocol name sent in both greetings.
pub const PROTOCOL: &str = "FERRY";
/// The protocol version; a peer with another version is refused. Version 2 added the digest
/// in the `Z` frame that ends a content stream, resuming, and the access token; version 3,
/// eager uploads and chained (`C`) requests for pipelining; version 4, TLS after the server's
/// greeting, and a proof of the token instead of the token; version 5, paths, directories
/// and modification times; version 6, `new` or `replaced` in UPLOAD's final reply.
pub const VERSION: &str = "6";

/// Why a greeting failed.
#[derive(Debug)]
pub enum HelloError {
    /// The connection failed or closed, or the peer refused with an `E` frame.
    Wire(WireError),
    /// The peer is not a Ferry peer of this version; the server has already told the client.
    Refused(String),
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::Wire(e) => e.fmt(f),
            HelloError::Refused(why) => f.write_str(why),
        }
    }
}

// No `source`: the text of `Wire` already includes its cause's.
impl std::error::Error for HelloError {}

impl From<WireError> for HelloError {
    fn from(e: WireError) -> HelloError {
        HelloError::Wire(e)
    }
}

/// Which end of the connection this is, for the words of a refusal.
#[derive(Clone, Copy)]
enum Side {
    Server,
    Client,
}

/// The words after protocol and version in the peer's `H` frame, or why it is refused.
fn check(frame: &Frame, me: Side) -> Result<&[String], String> {
    match (frame.kind, frame.words.as_slice()) {
        (Kind::Hello, [p, v, rest @ ..]) if p == PROTOCOL && v == VERSION => Ok(rest),
        (Kind::Hello, [p, v, ..]) if p == PROTOCOL => {
            let v = crate::name::escape(v);
            Err(match me {
                Side::Server => {
                    format!("protocol version '{v}' is not supported; this server speaks {VERSION}")
                }
                Side::Client => {
                    format!("server speaks protocol version {v}, this client {VERSION}")
                }
            })
        }
        _ => Err(match me {
            Side::Server => format!("not a {PROTOCOL} client"),
            Side::Client => "not a Ferry server".to_string(),
        }),
    }
}

/// What a client said of itself in its greeting.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// Its name and version, as it gave them (unchecked text).
    pub software: Option<String>,
    /// Its proof of the access token ([`crate::identity::proof`]), if it has a token.
    pub proof: Option<String>,
}

/// How far a client has got in its greeting, as the server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// It has sent something after the server's `H` (the start of a TLS handshake, if it is a
    /// client of this version).
    Heard,
    /// The TLS handshake is done: it has proved nothing yet, but did the work of a client.
    Encrypted,
}

/// The server's part up to the client's greeting, all of it before `deadline`: `H` naming
/// `software` in clear, the TLS handshake, then the client's `H` inside it. A client of
/// another protocol or version is refused with `E version`. The caller then accepts with
/// [`accept`] or refuses with an `E`; [`Tls::binding`] is what the client's proof is bound to,
/// returned beside the connection. `progress` hears of each step the client takes, so that a
/// server short of room can tell a client that is greeting from one that only holds a socket.
pub fn receive(
    sock: TcpStream,
    software: &str,
    config: Arc<ServerConfig>,
    deadline: Instant,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Connection, ClientHello, [u8; 32]), HelloError> {
    let mut clear = Connection::new(sock);
    clear.send(&Frame::new(Kind::Hello, [PROTOCOL, VERSION, software]))?;
    let sock = clear.into_inner()?;
    first_byte(&sock, deadline)?;
    progress(Progress::Heard);
    let tls = Tls::accept(sock, config, deadline).map_err(WireError::from)?;
    progress(Progress::Encrypted);
    let binding = tls.binding();
    let mut conn = Connection::boxed(tls);
    let frame = conn.recv_before(deadline)?;
    match check(&frame, Side::Server) {
        Ok(rest) => {
            let said = ClientHello {
                software: rest.first().cloned(),
                proof: rest.get(1).cloned(),
            };
            Ok((conn, said, binding))
        }
        Err(message) => {
            let _ = conn.send_failure(&Failure::new(ErrorKind::Version, message.clone()));
            Err(HelloError::Refused(message))
        }
    }
}

/// Waits until the peer has sent something, without reading it, or `deadline` passes.
fn first_byte(sock: &TcpStream, deadline: Instant) -> Result<(), WireError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
    let resting = sock.read_timeout()?;
    sock.set_read_timeout(Some(left))?;
    let peeked = sock.peek(&mut [0]);
    sock.set_read_timeout(resting)?;
    match peeked? {
        0 => Err(WireError::Closed),
        _ => Ok(()),
    }
}

/// Ends the server's part of the greeting: the client may send requests.
pub fn accept<S: Transport>(conn: &mut Connection<S>) -> Result<(), WireError> {
    conn.send(&Frame::new(Kind::Ok, [""; 0]))
}

/// The client's part up to the server's identity: reads the server's `H` in clear, checks its
/// version, and makes the TLS handshake, before `deadline`. A server's refusal (busy) is a
/// [`WireError::Remote`] failure. Nothing has been sent inside TLS yet: the caller compares
/// [`Tls::peer_fingerprint`] with the identity it trusts, then [`greet`]s.
pub fn open(sock: TcpStream, deadline: Instant) -> Result<Tls, HelloError> {
    // The handshake's last flight and the greeting are small writes back to back: without
    // this, Nagle holds the second until the first is acknowledged (a delayed ACK, 40 ms).
    sock.set_nodelay(true).map_err(WireError::from)?;
    let mut clear = Connection::new(sock);
    let hello = clear.recv_before(deadline)?;
    if hello.kind == Kind::Error {
        return Err(WireError::Remote(Failure::from_words(&hello.words)).into());
    }
    check(&hello, Side::Client).map_err(HelloError::Refused)?;
    Ok(Tls::connect(clear.into_inner()?, deadline).map_err(WireError::from)?)
}

/// The client's greeting inside TLS, naming `software` (with `proof` of the token, when it
/// has one), and the server's acceptance. A refusal (a wrong token) is a
/// [`WireError::Remote`] failure.
pub fn greet<S: Transport>(
    conn: &mut Connection<S>,
    software: &str,
    proof: Option<&str>,
) -> Result<(), HelloError> {
    let mut words = vec![PROTOCOL, VERSION, software];
    words.extend(proof);
    conn.send(&Frame::new(Kind::Hello, words))?;
    conn.expect_ok()?;
    Ok(())
}

/// Connects as a client that trusts whatever identity the server has: for tests and tools
/// on the server's own machine that got the fingerprint some other way. Returns the
/// connection and the server's fingerprint.
pub fn connect_trusting(
    sock: TcpStream,
    software: &str,
    token: Option<&str>,
    deadline: Instant,
) -> Result<(Connection, Option<Fingerprint>), HelloError> {
    let tls = open(sock, deadline)?;
    let fingerprint = tls.peer_fingerprint();
    let proof = token.map(|t| crate::identity::proof(t, &tls.binding()));
    let mut conn = Connection::boxed(tls);
    greet(&mut conn, software, proof.as_deref())?;
    Ok((conn, fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(words: &[&str]) -> Frame {
        Frame::new(Kind::Hello, words.iter().copied())
    }

    #[test]
    fn each_side_checks_protocol_and_version() {
        let ok = hello(&[PROTOCOL, VERSION, "ferry 9", "tok"]);
        assert_eq!(check(&ok, Side::Server).unwrap(), ["ferry 9", "tok"]);
        let old = hello(&[PROTOCOL, "1"]);
        assert_eq!(
            check(&old, Side::Server).unwrap_err(),
            format!("protocol version '1' is not supported; this server speaks {VERSION}")
        );
        assert_eq!(
            check(&old, Side::Client).unwrap_err(),
            format!("server speaks protocol version 1, this client {VERSION}")
        );
        for other in [
            hello(&["HTTP", "1.1"]),
            hello(&[PROTOCOL]),
            Frame::new(Kind::Request, ["LIST"]),
        ] {
            assert_eq!(
                check(&other, Side::Server).unwrap_err(),
                "not a FERRY client"
            );
            assert_eq!(
                check(&other, Side::Client).unwrap_err(),
                "not a Ferry server"
            );
        }
    }

    #[test]
    fn a_greeting_between_both_sides_carries_the_proof_over_tls() {
        use std::net::TcpListener;
        use std::time::Duration;
        let cert = rcgen::generate_simple_self_signed(vec!["ferryd".into()]).unwrap();
        let (der, key) = (cert.cert.der().to_vec(), cert.signing_key.serialize_der());
        let config = crate::tls::server_config(&der, &key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut steps = Vec::new();
            let (mut conn, said, binding) =
                receive(stream, "ferryd test", config, deadline, &mut |p| {
                    steps.push(p)
                })
                .unwrap();
            assert_eq!(steps, [Progress::Heard, Progress::Encrypted]);
            accept(&mut conn).unwrap();
            (said, binding)
        });
        let stream = TcpStream::connect(addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (_, fingerprint) =
            connect_trusting(stream, "ferry test", Some("s3cret"), deadline).unwrap();
        assert_eq!(fingerprint, Some(Fingerprint::of(&der)));
        let (said, binding) = server.join().unwrap();
        assert_eq!(said.software.as_deref(), Some("ferry test"));
        let key = crate::identity::token_key("s3cret");
        assert!(crate::identity::proof_matches(
            &key,
            &binding,
            said.proof.as_deref().unwrap()
        ));
    }
}
