//! The greeting, both sides of it: who speaks which protocol, and the access token.
//!
//! The server sends `H FERRY <version> <software>`, the client answers with its own `H` (and
//! the access token, when it has one), and the server accepts with `O` or refuses with `E`.
//!
//! Each side checks the other's protocol and version here, so that what one side refuses and
//! what the other says about it are decided in one place.

use std::time::Instant;

use crate::conn::Connection;
use crate::error::{ErrorKind, Failure, WireError};
use crate::frame::{Frame, Kind};
use crate::socket::Transport;

/// The protocol name sent in both greetings.
pub const PROTOCOL: &str = "FERRY";
/// The protocol version; a peer with another version is refused. Version 2 added the digest
/// in the `Z` frame that ends a content stream, resuming, and the access token; version 3,
/// eager uploads and chained (`C`) requests for pipelining.
pub const VERSION: &str = "3";

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
    /// The access token it presents.
    pub token: Option<String>,
}

/// The server's part up to the client's greeting: sends `H` naming `software`, then reads the
/// client's `H`, all of it before `deadline`. A client of another protocol or version is
/// refused with `E version`. The caller then accepts with [`accept`] or refuses with an `E`.
pub fn receive<S: Transport>(
    conn: &mut Connection<S>,
    software: &str,
    deadline: Instant,
) -> Result<ClientHello, HelloError> {
    conn.send(&Frame::new(Kind::Hello, [PROTOCOL, VERSION, software]))?;
    let frame = conn.recv_before(deadline)?;
    match check(&frame, Side::Server) {
        Ok(rest) => Ok(ClientHello {
            software: rest.first().cloned(),
            token: rest.get(1).cloned(),
        }),
        Err(message) => {
            let _ = conn.send_failure(&Failure::new(ErrorKind::Version, message.clone()));
            Err(HelloError::Refused(message))
        }
    }
}

/// Ends the server's part of the greeting: the client may send requests.
pub fn accept<S: Transport>(conn: &mut Connection<S>) -> Result<(), WireError> {
    conn.send(&Frame::new(Kind::Ok, [""; 0]))
}

/// The client's part: reads the server's `H`, answers with its own naming `software` (and
/// `token`), and reads the server's acceptance. A server's refusal (busy, a wrong token) is a
/// [`WireError::Remote`] failure.
pub fn greet<S: Transport>(
    conn: &mut Connection<S>,
    software: &str,
    token: Option<&str>,
) -> Result<(), HelloError> {
    let hello = conn.recv()?;
    if hello.kind == Kind::Error {
        return Err(WireError::Remote(Failure::from_words(&hello.words)).into());
    }
    check(&hello, Side::Client).map_err(HelloError::Refused)?;
    let mut words = vec![PROTOCOL, VERSION, software];
    words.extend(token);
    conn.send(&Frame::new(Kind::Hello, words))?;
    conn.expect_ok()?;
    Ok(())
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
    fn a_greeting_between_both_sides_carries_the_token() {
        use std::net::{TcpListener, TcpStream};
        use std::time::Duration;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut conn = Connection::new(stream);
            let deadline = Instant::now() + Duration::from_secs(30);
            let said = receive(&mut conn, "ferryd test", deadline).unwrap();
            accept(&mut conn).unwrap();
            said
        });
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        greet(&mut Connection::new(stream), "ferry test", Some("s3cret")).unwrap();
        assert_eq!(
            server.join().unwrap(),
            ClientHello {
                software: Some("ferry test".into()),
                token: Some("s3cret".into())
            }
        );
    }
}
