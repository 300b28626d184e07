//! The contexts a verb's two halves run in, and the client's progress [`Meter`].
//!
//! [`ClientCtx`] holds the connection and the user's side; [`ServerCtx`] the connection, the
//! store and the server's settings.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::conn::Connection;
use crate::path::RemotePath;
use crate::registry::Registry;
use crate::store::Store;

/// Where a client half runs: the connection and the user's side of things.
pub struct ClientCtx {
    /// The connection to the server, greeting done.
    pub conn: Connection,
    /// The server's address, for messages.
    pub server: SocketAddr,
    /// Every verb, for HELP and completion.
    pub registry: &'static Registry,
    /// The remote working directory, which typed remote paths are resolved against (CD).
    pub cwd: RemotePath,
    /// Where DOWNLOAD saves by default.
    pub local_dir: PathBuf,
    /// Where results go (stdout; a buffer in tests).
    pub out: Box<dyn Write + Send>,
    /// Where warnings go, such as entries a transfer of many files skips (stderr).
    pub err: Box<dyn Write + Send>,
    /// Shows transfer progress and reports a user's cancel.
    pub meter: Box<dyn Meter + Send>,
    /// How results go to `out`: lines, or JSON objects (see [`crate::report`]).
    pub report: crate::report::Report,
    /// Downloads received and waiting to be committed together, each with its report (see
    /// [`crate::batch::land`]).
    pub landing: crate::batch::Landing,
}

/// Progress of a transfer, as the client shows it; also where a cancel comes from.
pub trait Meter {
    /// A transfer of `total` bytes, described by `label`, begins.
    fn start(&mut self, label: &str, total: u64);
    /// `done` bytes have moved; returning false cancels the transfer.
    fn update(&mut self, done: u64) -> bool;
    /// The transfer is over: complete when `ok`, else failed or cancelled.
    fn finish(&mut self, done: u64, ok: bool);
    /// A transfer of many files has `done` of its `total` files complete.
    fn files(&mut self, _done: usize, _total: usize) {}
}

/// A meter that shows nothing and never cancels (scripts, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Meter for Silent {
    fn start(&mut self, _label: &str, _total: u64) {}
    fn update(&mut self, _done: u64) -> bool {
        true
    }
    fn finish(&mut self, _done: u64, _ok: bool) {}
}

/// Where a server half runs.
pub struct ServerCtx<'a> {
    /// The client's connection.
    pub conn: &'a mut Connection,
    /// The files being served.
    pub store: &'a dyn Store,
    /// The client's address: when it came through a trusted load balancer, the address the
    /// balancer reported.
    pub peer: SocketAddr,
    /// The trusted load balancer (`--trusted-proxy`) the connection came through, if any.
    pub proxy: Option<SocketAddr>,
    /// Every verb, for HELP.
    pub registry: &'static Registry,
    /// Asks the whole server to stop (SHUTDOWN): it stops accepting, lets requests in flight
    /// finish, and exits.
    pub shutdown: &'a (dyn Fn() + Sync),
    /// The largest upload accepted, in bytes; `None` for no limit.
    pub max_file_size: Option<u64>,
    /// What the request did, for the server's log line: set by a verb that moved content
    /// (its bytes and digest); a verb that `writes` and sets nothing is logged with its words.
    pub done: Option<Done>,
    /// Uploads received whose replies wait until they are committed together.
    pub batch: &'a mut crate::Batch,
}

/// What a completed request moved or changed, as the server logs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// The path acted on, as the wire carries it (`/a/b`).
    pub path: String,
    /// Content bytes that crossed the connection, if any did.
    pub bytes: Option<u64>,
    /// The whole file's digest (`xxh3-128 <hex>`, as STAT prints it), when content moved.
    pub digest: Option<String>,
}

impl Done {
    /// A transfer of `bytes` of the file at `path`, whose digest is `digest`.
    pub fn transfer(path: String, bytes: u64, digest: &crate::Digest) -> Done {
        Done {
            path,
            bytes: Some(bytes),
            digest: Some(digest.words().join(" ")),
        }
    }
}
