//! Typed errors: the stable codes a server replies with, and what can go wrong on the wire.

use std::fmt;
use std::io;

/// Why a request failed; each variant has a stable code that travels in `E` and `X` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `not-found`: the named file does not exist (or is not a regular file).
    NotFound,
    /// `exists`: the target exists and may not be replaced.
    Exists,
    /// `not-empty`: a directory to remove still holds entries.
    NotEmpty,
    /// `bad-name`: the remote name breaks the name rules, or, for an entry to be made, the
    /// stricter rules for new names ([`crate::name::check_new`]).
    BadName,
    /// `forbidden`: the peer may not do this: a wrong or missing token, SHUTDOWN from a
    /// non-loopback address, a file the server may not open, a symbolic link.
    Forbidden,
    /// `busy`: the server is at its client limit or shutting down.
    Busy,
    /// `bad-request`: malformed frame, wrong arguments, or a frame out of order.
    BadRequest,
    /// `unknown-verb`: no verb of that name is registered.
    UnknownVerb,
    /// `version`: the peer speaks another protocol or version.
    Version,
    /// `too-large`: a size over a limit.
    TooLarge,
    /// `no-space`: the server's disk is full.
    NoSpace,
    /// `cancelled`: the sender abandoned the transfer.
    Cancelled,
    /// `skipped`: a chained request not run, because an earlier one in its chain failed.
    Skipped,
    /// `digest-mismatch`: the content received is not what was sent; nothing was stored.
    DigestMismatch,
    /// `io`: a filesystem error on the server.
    Io,
    /// `unavailable`: the server cannot reach its files (its root directory is gone).
    Unavailable,
    /// `internal`: a bug on the server; details are in its log.
    Internal,
}

const CODES: [(ErrorKind, &str); 17] = [
    (ErrorKind::NotFound, "not-found"),
    (ErrorKind::Exists, "exists"),
    (ErrorKind::NotEmpty, "not-empty"),
    (ErrorKind::BadName, "bad-name"),
    (ErrorKind::Forbidden, "forbidden"),
    (ErrorKind::Busy, "busy"),
    (ErrorKind::BadRequest, "bad-request"),
    (ErrorKind::UnknownVerb, "unknown-verb"),
    (ErrorKind::Version, "version"),
    (ErrorKind::TooLarge, "too-large"),
    (ErrorKind::NoSpace, "no-space"),
    (ErrorKind::Cancelled, "cancelled"),
    (ErrorKind::Skipped, "skipped"),
    (ErrorKind::DigestMismatch, "digest-mismatch"),
    (ErrorKind::Io, "io"),
    (ErrorKind::Unavailable, "unavailable"),
    (ErrorKind::Internal, "internal"),
];

impl ErrorKind {
    /// The code on the wire.
    pub fn code(self) -> &'static str {
        CODES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("internal", |c| c.1)
    }

    /// The kind for a code; an unknown code (from a newer peer) reads as [`ErrorKind::Internal`].
    pub fn from_code(code: &str) -> ErrorKind {
        CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map_or(ErrorKind::Internal, |c| c.0)
    }
}

/// A failed request: what is sent to the client, plus a detail kept for the server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub kind: ErrorKind,
    /// A short, client-safe message in lower case.
    pub message: String,
    /// The underlying cause, logged by the server and never sent.
    pub detail: Option<String>,
    /// The peer already knows (an `X` frame ended its stream): send no `E` frame.
    pub replied: bool,
    /// The connection is out of step or broken: close it after replying.
    pub fatal: bool,
    /// The cause is the connection itself (closed by the peer, reset, timed out), not the
    /// request: the log names it (in `detail`) rather than the code sent.
    pub lost: bool,
}

impl Failure {
    /// A failure with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            detail: None,
            replied: false,
            fatal: false,
            lost: false,
        }
    }

    /// The failure for a wire error met while serving: a failure the peer sent (it abandoned
    /// its stream) passes through; anything else means the connection must close.
    pub fn from_wire(err: WireError) -> Failure {
        match err {
            WireError::Remote(failure) => failure,
            other => Failure {
                fatal: true,
                lost: !matches!(other, WireError::Invalid(_)),
                detail: Some(other.to_string()),
                ..Failure::new(ErrorKind::BadRequest, "transfer failed")
            },
        }
    }

    /// The failure an `E` or `X` frame carries (see [`crate::Frame::failure`]); missing words
    /// read as an internal error, and the message is escaped, since it comes from the peer.
    pub fn from_words(words: &[String]) -> Failure {
        let kind = ErrorKind::from_code(words.first().map_or("", String::as_str));
        let message = words.get(1).map_or("unknown error", String::as_str);
        Failure::new(kind, crate::name::escape(message))
    }

    /// Marks the failure as already told to the peer.
    pub fn replied(self) -> Failure {
        Failure {
            replied: true,
            ..self
        }
    }

    /// Maps a filesystem error on `what` to a failure; the OS text goes to `detail` only.
    pub fn io(what: &str, err: &io::Error) -> Failure {
        let (kind, message) = match err.kind() {
            io::ErrorKind::NotFound => (ErrorKind::NotFound, format!("no such file '{what}'")),
            io::ErrorKind::AlreadyExists => (ErrorKind::Exists, format!("'{what}' already exists")),
            io::ErrorKind::PermissionDenied => (
                ErrorKind::Forbidden,
                format!("permission denied for '{what}'"),
            ),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => (
                ErrorKind::NoSpace,
                format!("no space left on the server for '{what}'"),
            ),
            io::ErrorKind::IsADirectory => (ErrorKind::Exists, format!("'{what}' is a directory")),
            io::ErrorKind::NotADirectory => (
                ErrorKind::NotFound,
                format!("'{what}' is not a regular file"),
            ),
            io::ErrorKind::ReadOnlyFilesystem => (
                ErrorKind::Forbidden,
                format!("read-only file system: cannot write '{what}'"),
            ),
            _ if err.raw_os_error() == Some(40) => (
                // ELOOP: the name is a symbolic link, which the server never follows.
                ErrorKind::Forbidden,
                format!("'{what}' is a symbolic link"),
            ),
            _ => (ErrorKind::Io, format!("i/o error on '{what}'")),
        };
        Failure {
            detail: Some(err.to_string()),
            ..Failure::new(kind, message)
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// What can go wrong reading or writing frames.
#[derive(Debug)]
pub enum WireError {
    /// The transport failed (including timeouts).
    Io(io::Error),
    /// The peer closed the connection between frames.
    Closed,
    /// The input ended inside a frame.
    Truncated,
    /// The bytes are not a valid frame, or not the frame expected here.
    Invalid(String),
    /// The peer answered with an `E` or `X` frame.
    Remote(Failure),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) if is_timeout(e) => f.write_str("connection timed out"),
            WireError::Io(e) => write!(f, "connection lost: {e}"),
            WireError::Closed => f.write_str("connection closed by peer"),
            WireError::Truncated => f.write_str("connection closed in the middle of a frame"),
            WireError::Invalid(why) => write!(f, "protocol error: {why}"),
            WireError::Remote(failure) => failure.fmt(f),
        }
    }
}

// No `source`: the text of `Io` already includes the OS error's, and a chain would repeat it.
impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(err: io::Error) -> WireError {
        match err.kind() {
            io::ErrorKind::UnexpectedEof => WireError::Truncated,
            _ => WireError::Io(err),
        }
    }
}

impl WireError {
    /// True when the connection can no longer carry frames.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, WireError::Remote(_))
    }
}

/// True for the errors a socket timeout produces.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (kind, code) in CODES {
            assert_eq!(ErrorKind::from_code(code), kind);
            assert_eq!(kind.code(), code);
            assert_eq!(CODES.iter().filter(|c| c.1 == code).count(), 1);
        }
        assert_eq!(ErrorKind::from_code("from-the-future"), ErrorKind::Internal);
    }

    #[test]
    fn io_errors_map_to_kinds_without_leaking_detail() {
        let f = Failure::io("a b", &io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(f.kind, ErrorKind::NotFound);
        assert_eq!(f.message, "no such file 'a b'");
        let f = Failure::io("x", &io::Error::other("/srv/secret/path"));
        assert_eq!(f.kind, ErrorKind::Io);
        assert!(!f.message.contains("secret"));
        assert!(f.detail.unwrap().contains("secret"));
    }

    #[test]
    fn the_cause_of_a_refused_write_reaches_the_client() {
        let erofs = io::Error::from_raw_os_error(30);
        let f = Failure::io("a.txt", &erofs);
        assert_eq!(f.kind, ErrorKind::Forbidden);
        assert_eq!(f.message, "read-only file system: cannot write 'a.txt'");
        let eisdir = io::Error::from_raw_os_error(21);
        let f = Failure::io("photos", &eisdir);
        assert_eq!(f.kind, ErrorKind::Exists);
        assert_eq!(f.message, "'photos' is a directory");
        let eacces = io::Error::from_raw_os_error(13);
        let f = Failure::io("a.txt", &eacces);
        assert_eq!(f.message, "permission denied for 'a.txt'");
    }
}
