//! The parts of Ferry that both the server (`ferryd`) and the client (`ferry`) share: the wire
//! protocol, the verb descriptor that every command module registers, and the server's file root.
//!
//! Nothing here prints; errors are typed so that callers can branch on them.
//!
//! Layout:
//! - [`frame`]: frame kinds, the header, encoding and decoding of control frames.
//! - [`conn`]: [`Connection`], frames and content streams over any `Read + Write`.
//! - [`digest`]: [`Digest`], the checksum that ends every content stream.
//! - [`error`]: [`ErrorKind`] (the stable codes on the wire), [`Failure`], [`WireError`].
//! - [`name`]: the rules a remote file name must pass.
//! - [`root`]: [`Root`], the server's confined view of its directory.
//! - [`verb`]: [`Verb`], [`Registry`], the contexts handlers run in.

pub mod conn;
pub mod digest;
pub mod error;
pub mod frame;
pub mod name;
pub mod root;
pub mod verb;

pub use conn::Connection;
pub use digest::Digest;
pub use error::{ErrorKind, Failure, WireError};
pub use frame::{Frame, Kind};
pub use root::Root;
pub use verb::{
    AHEAD_MAX, Arg, Behind, ClientCtx, Flag, Flow, Meter, Registry, Reply, Sent, ServerCtx,
    Shutdown, Silent, Verb, Words,
};

/// The protocol name sent in both greetings.
pub const PROTOCOL: &str = "FERRY";
/// The protocol version; a peer with another version is refused. Version 2 added the digest
/// in the `Z` frame that ends a content stream, resuming, and the access token; version 3,
/// eager uploads and chained (`C`) requests for pipelining.
pub const VERSION: &str = "3";
/// The verbs every Ferry build must have; the binaries refuse to start without them.
pub const CONTRACT: [&str; 8] = [
    "DELETE", "DOWNLOAD", "HELP", "LIST", "LOGOUT", "SHUTDOWN", "STAT", "UPLOAD",
];
