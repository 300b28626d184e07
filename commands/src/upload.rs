//! `UPLOAD [-r] [-c] [-n] [--sync] [--delete] <local-path-or-glob> [<remote-path>]`: store
//! local files on the server, each replacing any file at its path atomically, with its
//! modification time. One file's remote path defaults to its name in the working directory;
//! a remote path that ends in `/`, or names an existing directory, gets that name inside it.
//! With `-c` (`--continue`, once `--resume`), an earlier upload to that path that was
//! interrupted goes on from where it stopped, provided the part the server kept is the start
//! of the local file (checked by digest); otherwise it starts over. A pattern, `-r`
//! (directories and all they hold), `-n` or `--sync` make it a transfer of many files
//! (`upload/tree.rs`). Also `put`.
//!
//! # Wire
//! ```text
//! -> Q UPLOAD <path> <size> <mtime> ready|resume [<name>]
//! <- O <offset> [<algorithm> <digest>]   (ready; or E, e.g. too-large)
//! -> O <start>                           (only with `resume`)
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O <path> new|replaced               (stored there; or E, e.g. digest-mismatch)
//! ```
//! With `<name>`, a `<path>` that is an existing directory means `<path>/<name>`; the final
//! reply says where the file went. A file of at most [`EAGER_MAX`] bytes may go without
//! waiting for the ready reply, saving a round trip per small file:
//! ```text
//! -> Q UPLOAD <path> <size> <mtime> eager [<name>]
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O <path> new|replaced               (stored; or E)
//! ```
//! A server that refuses an eager upload (a bad name, too large) reads the content it is sent
//! and drops it, then replies `E`; an eager request over the limit closes the connection. A
//! script sends an eager upload of at most [`AHEAD_MAX`] bytes ahead, as `C UPLOAD ...`.
//! Without `resume` the offset is 0. With it, the offset is how many bytes the server kept from
//! an interrupted upload of the name, with their digest; the client answers with where its
//! content starts: the offset if its own first bytes have that digest, else 0 (the server then
//! discards what it kept). The content is the `size - start` bytes from there, but the digest
//! in `Z` covers the whole file from byte 0. Instead of `O <start>` the client may send `X` to
//! abandon.
//!
//! The server keeps an upload that a lost connection or a timeout interrupted, hidden, for a
//! bounded age; one the client abandons or whose digest differs is discarded.

use anyhow::Context;
use ferry_core::{
    AHEAD_MAX, Args, Behind, ClientCtx, ErrorKind, Failure, Flow, Frame, Kind, Param, ParamKind,
    Sent, Verb,
};

inventory::submit! {
    Verb {
        name: "UPLOAD",
        aliases: &["put"],
        summary: "copy files (with -r, directories) to the server",
        example: "UPLOAD \"holiday photo.jpg\" photo.jpg",
        params: &[
            Param::one("local-path-or-glob", ParamKind::LocalGlob),
            crate::REMOTE_PATH.optional(),
        ],
        flags: crate::TRANSFER_FLAGS,
        writes: true,
        ahead: Some(ahead),
        ..Verb::new(run, serve::serve, module_path!())
    }
}

/// Largest file sent `eager`, without waiting for the server's ready reply: one chunk.
pub const EAGER_MAX: u64 = ferry_core::content::CHUNK as u64;

/// How the client sends its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// After the server's ready reply.
    Ready,
    /// After agreeing where to resume.
    Resume,
    /// At once, with the request.
    Eager,
}

/// An UPLOAD request as it travels: `UPLOAD <path> <size> <mtime> <mode> [<name>]`.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    /// The path's wire form.
    path: &'a str,
    size: u64,
    /// The local file's modification time, seconds since the epoch.
    mtime: u64,
    mode: Mode,
    /// The file's name, for when `path` is an existing directory.
    into: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The request as a frame of `kind` (`Q`, or `C` when sent ahead).
    fn frame(&self, kind: Kind) -> Frame {
        let (size, mtime) = (self.size.to_string(), self.mtime.to_string());
        let mode = match self.mode {
            Mode::Ready => "ready",
            Mode::Resume => "resume",
            Mode::Eager => "eager",
        };
        let words = ["UPLOAD", self.path, &size, &mtime, mode];
        Frame::new(kind, words.into_iter().chain(self.into))
    }

    /// The request from its wire arguments (after the verb). A failure that leaves the
    /// connection out of step (eager content that cannot be read past) is fatal.
    fn from_words(args: &'a [String]) -> Result<Request<'a>, Failure> {
        let usage = || {
            Failure::new(
                ErrorKind::BadRequest,
                "usage: UPLOAD <path> <size> <mtime> ready|resume|eager [<name>]",
            )
        };
        let (path, size, mtime, mode, into) = match args {
            [path, size, mtime, mode] => (path, size, mtime, mode, None),
            [path, size, mtime, mode, into] => (path, size, mtime, mode, Some(into.as_str())),
            _ => return Err(usage()),
        };
        let mode = match mode.as_str() {
            "ready" => Mode::Ready,
            "resume" => Mode::Resume,
            "eager" => Mode::Eager,
            _ => return Err(usage()),
        };
        // Eager content follows at once, and without its size it cannot be skipped.
        let fatal = |failure| Failure {
            fatal: mode == Mode::Eager,
            ..failure
        };
        let size = crate::number(size, "size").map_err(fatal)?;
        let mtime = crate::number(mtime, "mtime").map_err(fatal)?;
        if mtime > ferry_core::store::MAX_MTIME {
            return Err(fatal(Failure::new(
                ErrorKind::BadRequest,
                format!("mtime '{mtime}' is past the year 9999"),
            )));
        }
        if mode == Mode::Eager && size > EAGER_MAX {
            // What follows cannot be told from a request, so the connection cannot go on.
            return Err(Failure {
                fatal: true,
                ..Failure::new(
                    ErrorKind::BadRequest,
                    format!("an eager upload may carry at most {EAGER_MAX} bytes"),
                )
            });
        }
        Ok(Request {
            path,
            size,
            mtime,
            mode,
            into,
        })
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let options = crate::tree::Options::of(args)?;
    if options.many(args.one("local-path-or-glob")) {
        return tree::run(ctx, args, options);
    }
    let command = send::command(ctx, args)?;
    let local = &command.local;
    // A destination written with a trailing `/` is a directory, made if it is missing.
    if let Some(dir) = args.get("remote-path").filter(|p| p.ends_with('/')) {
        let dir = crate::remote_path(ctx, dir)?;
        let words = ["MKDIR".to_string(), dir.wire(), "parents".into()];
        ctx.conn
            .call(words)
            .with_context(|| format!("making '{dir}'"))?;
    }
    let stored = send::upload(ctx, &command, options.resume)
        .with_context(|| format!("uploading '{}'", local.display()))?;
    send::uploaded(ctx, local, &stored)
}

/// Sends a small file ahead, eager: the request and the content leave at once and the reply
/// is read when its turn comes. A resumed or larger upload runs on its own, and so does any
/// upload behind a download, which may be writing the very file this one reads, and any
/// upload of many files (which pipelines its own).
fn ahead(ctx: &mut ClientCtx, args: &Args, behind: Behind) -> anyhow::Result<Option<Sent>> {
    let options = crate::tree::Options::of(args)?;
    let slash = args.get("remote-path").is_some_and(|p| p.ends_with('/'));
    if options.many(args.one("local-path-or-glob")) || options.resume || slash || behind.unsettled {
        return Ok(None);
    }
    let command = send::command(ctx, args)?;
    let context = || format!("uploading '{}'", command.local.display());
    let (file, size, mtime) = send::open_regular(&command.local, true).with_context(context)?;
    if size > AHEAD_MAX {
        return Ok(None);
    }
    send::eager_ahead(ctx, command, (file, size, mtime)).map(Some)
}

mod send;
mod serve;
#[cfg(test)]
mod tests;
mod tree;
