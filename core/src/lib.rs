//! The parts of Ferry that both the server (`ferryd`) and the client (`ferry`) share: the wire
//! protocol, the verb descriptor that every command module registers, the one parser of
//! command lines, and the seams under it all (the byte stream, the server's storage).
//!
//! Nothing here prints; errors are typed so that callers can branch on them.
//!
//! Layout:
//! - [`frame`]: the frame codec: kinds, headers, control frames, failures as frames.
//! - [`socket`]: [`Transport`], the byte stream under a connection, and its TCP implementation.
//! - [`tls`]: [`tls::Tls`], the encrypted transport.
//! - [`identity`]: server identities by fingerprint, and proofs of access tokens.
//! - [`conn`]: [`Connection`], the control exchange: frames queued, written and read.
//! - [`content`]: content streams over a connection, hashed as they pass.
//! - [`pace`]: [`Pace`], the least progress an exchange in flight must make.
//! - [`hello`]: the greeting, both sides of it.
//! - [`pipeline`]: requests sent ahead: the client's [`Sent`], the server's [`Chain`].
//! - [`verb`]: [`Verb`], the descriptor: parameters, flags, aliases, both halves.
//! - [`registry`]: [`Registry`], the verbs by name and alias.
//! - [`words`]: the one parser: a line into words, words into a verb's [`Args`].
//! - [`ctx`]: the contexts a verb's halves run in.
//! - [`store`]: [`Store`], the server's files as verbs see them.
//! - [`batch`]: [`Group`], files committed together: the server's [`Batch`] of uploads,
//!   replied to once durable, and the client's pipelined downloads, reported once durable.
//! - [`digest`]: [`Digest`], the checksum that ends every content stream.
//! - [`error`]: [`ErrorKind`] (the stable codes on the wire), [`Failure`], [`WireError`].
//! - [`name`]: the rules a remote file name must pass.
//! - [`path`]: [`RemotePath`], where an entry lies under the served root.
//! - [`token`]: where access tokens come from, and what each grants.
//! - [`dirs`]: where Ferry keeps a user's files.

pub mod batch;
pub mod behind;
pub mod conn;
pub mod content;
pub mod ctx;
pub mod digest;
pub mod dirs;
pub mod error;
pub mod frame;
pub mod hello;
pub mod identity;
pub mod name;
pub mod pace;
pub mod path;
pub mod pipeline;
pub mod registry;
pub mod report;
pub mod socket;
pub mod store;
pub mod tls;
pub mod token;
#[cfg(feature = "tool")]
pub mod tool;
pub mod verb;
pub mod words;

pub use batch::{Batch, Group, Pending};
pub use conn::Connection;
pub use content::{ContentError, Watch};
pub use ctx::{ClientCtx, Done, Meter, ServerCtx, Silent};
pub use digest::Digest;
pub use error::{ErrorKind, Failure, WireError};
pub use frame::{Frame, Kind};
pub use hello::{PROTOCOL, VERSION};
pub use pace::Pace;
pub use path::RemotePath;
pub use pipeline::{AHEAD_MAX, Behind, Chain, Next, Sent, Window};
pub use registry::Registry;
pub use socket::Transport;
pub use store::Store;
pub use verb::{Flag, Flow, Param, ParamKind, Reply, Verb};
pub use words::Args;
