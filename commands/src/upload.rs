//! `UPLOAD [-r|--resume] <local-path> [<remote-path>]`: store a local file on the server,
//! replacing any file at that path atomically, with the local file's modification time. The
//! remote path defaults to the local file's name in the working directory; a remote path
//! that ends in `/`, or names an existing directory, gets that name inside it. With
//! `--resume`, an earlier upload to that path that was interrupted goes on from where it
//! stopped, provided the part the server kept is the start of the local file (checked by
//! digest); otherwise it starts over. Also `put`.
//!
//! # Wire
//! ```text
//! -> Q UPLOAD <path> <size> <mtime> ready|resume [<name>]
//! <- O <offset> [<algorithm> <digest>]   (ready; or E, e.g. too-large)
//! -> O <start>                           (only with `resume`)
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O <path>                            (stored there; or E, e.g. digest-mismatch)
//! ```
//! With `<name>`, a `<path>` that is an existing directory means `<path>/<name>`; the final
//! reply says where the file went. A file of at most [`EAGER_MAX`] bytes may go without
//! waiting for the ready reply, saving a round trip per small file:
//! ```text
//! -> Q UPLOAD <path> <size> <mtime> eager [<name>]
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O <path>                            (stored; or E)
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

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, anyhow, bail};
use ferry_core::{
    AHEAD_MAX, Args, Behind, ClientCtx, ContentError, Digest, ErrorKind, Failure, Flow, Frame,
    Kind, RemotePath, Sent, Verb, Watch, WireError,
};

inventory::submit! {
    Verb {
        name: "UPLOAD",
        aliases: &["put"],
        summary: "copy a local file to the server",
        example: "UPLOAD \"holiday photo.jpg\" photo.jpg",
        params: &[crate::LOCAL_PATH, crate::REMOTE_PATH.optional()],
        flags: &[crate::RESUME],
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

/// What an UPLOAD command line asks for: the local file, where it goes on the server (its
/// wire form), and the file's name when the destination may be an existing directory.
struct Command {
    local: PathBuf,
    path: String,
    into: Option<String>,
}

fn command(ctx: &ClientCtx, args: &Args) -> anyhow::Result<Command> {
    let local = crate::local_path(args.one("local-path"));
    let leaf = || {
        local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("'{}' has no usable file name; give one", local.display()))
    };
    let (path, into) = match args.get("remote-path") {
        None => (ctx.cwd.join(leaf()?)?, None),
        Some(typed) if typed.ends_with('/') => {
            let dir = crate::remote_path(ctx, typed)?;
            (dir.join(leaf()?)?, None)
        }
        Some(typed) => match crate::remote_path(ctx, typed)? {
            root if root.is_root() => (root.join(leaf()?)?, None),
            path => (path, leaf().ok()),
        },
    };
    if path.is_root() {
        bail!("'/' is the root directory; name a file");
    }
    let into = into.map(String::from);
    Ok(Command {
        local,
        path: path.wire(),
        into,
    })
}

impl Command {
    fn request(&self, size: u64, mtime: u64, mode: Mode) -> Request<'_> {
        Request {
            path: &self.path,
            size,
            mtime,
            mode,
            into: self.into.as_deref(),
        }
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let command = command(ctx, args)?;
    let local = &command.local;
    let (stored, size) = upload(ctx, &command, args.flag("resume"))
        .with_context(|| format!("uploading '{}'", local.display()))?;
    uploaded(ctx, &stored, size)
}

/// Says where the file went, from the server's final reply (`O <path>`).
fn uploaded(ctx: &mut ClientCtx, stored: &[String], size: u64) -> anyhow::Result<Flow> {
    let [path] = stored else {
        bail!("malformed reply from the server");
    };
    let shown = RemotePath::from_wire(path)?.shown_from(&ctx.cwd);
    writeln!(ctx.out, "uploaded '{shown}' ({})", crate::human(size))?;
    Ok(Flow::Continue)
}

/// Sends a small file ahead, eager: the request and the content leave at once and the reply
/// is read when its turn comes. A resumed or larger upload runs on its own, and so does any
/// upload behind a download, which may be writing the very file this one reads.
fn ahead(ctx: &mut ClientCtx, args: &Args, behind: Behind) -> anyhow::Result<Option<Sent>> {
    let command = command(ctx, args)?;
    let local = &command.local;
    if args.flag("resume") || behind.unsettled {
        return Ok(None);
    }
    let context = || format!("uploading '{}'", local.display());
    let (mut file, size, mtime) = open_regular(local).with_context(context)?;
    if size > AHEAD_MAX {
        return Ok(None);
    }
    ctx.conn
        .queue(
            &command
                .request(size, mtime, Mode::Eager)
                .frame(Kind::Chained),
        )
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            Ok(ctx
                .conn
                .queue_content(&mut file, size, &mut Digest::new())?)
        })
        .with_context(context)?;
    let local = local.to_path_buf();
    let finish = move |ctx: &mut ClientCtx| {
        let stored = ctx
            .conn
            .expect_ok()
            .with_context(|| format!("uploading '{}'", local.display()))?;
        uploaded(ctx, &stored, size)
    };
    Ok(Some(Sent {
        finish: Box::new(finish),
        unsettled: false,
    }))
}

/// Opens `local` for reading; it must be a regular file. Also returns its size and
/// modification time (seconds since the epoch; 0 if unknown).
fn open_regular(local: &Path) -> anyhow::Result<(File, u64, u64)> {
    let file = File::open(local)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("not a regular file");
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((file, meta.len(), mtime))
}

/// The upload itself; returns the server's final reply (where the file went) and the size.
fn upload(
    ctx: &mut ClientCtx,
    command: &Command,
    resume: bool,
) -> anyhow::Result<(Vec<String>, u64)> {
    let (mut file, size, mtime) = open_regular(&command.local)?;
    let (start, mut digest) = begin(ctx, &mut file, command, (size, mtime), resume)?;
    if resume {
        // Checking the kept part read the file's start.
        file.seek(SeekFrom::Start(start))?;
    }
    let label = RemotePath::from_wire(&command.path)?.shown_from(&ctx.cwd);
    ctx.meter.start(&label, size);
    let mut done = start;
    let mut progress = |n| {
        done = start + n;
        ctx.meter.update(start + n)
    };
    let sent = ctx.conn.send_content(
        &mut file,
        size - start,
        &mut digest,
        Watch::Progress(&mut progress),
    );
    let stored = match sent {
        Ok(()) => ctx.conn.expect_ok().map_err(anyhow::Error::from),
        Err(ContentError::Cancelled) => {
            // The server answers the X frame with a `cancelled` error; reading it keeps the
            // connection in step.
            let _ = ctx.conn.expect_ok();
            Err(anyhow!("cancelled"))
        }
        Err(ContentError::Wire(WireError::Remote(failure))) => {
            // We abandoned the stream (the file shrank while being read); the server answers
            // that X frame too.
            let _ = ctx.conn.expect_ok();
            Err(failure.into())
        }
        Err(e) => Err(e.into()),
    };
    ctx.meter.finish(done, stored.is_ok());
    stored.map(|stored| (stored, size))
}

/// Sends the request and agrees where the content starts: 0, unless resuming from a part the
/// server kept; also returns the digest of what comes before that.
fn begin(
    ctx: &mut ClientCtx,
    file: &mut File,
    command: &Command,
    (size, mtime): (u64, u64),
    resume: bool,
) -> anyhow::Result<(u64, Digest)> {
    if !resume {
        let mode = if size <= EAGER_MAX {
            Mode::Eager
        } else {
            Mode::Ready
        };
        let request = command.request(size, mtime, mode).frame(Kind::Request);
        if mode == Mode::Eager {
            // Queued: it leaves with the content, and the server's only reply comes at the end.
            ctx.conn.queue(&request)?;
        } else {
            ctx.conn.send(&request)?;
            ctx.conn.expect_ok()?;
        }
        return Ok((0, Digest::new()));
    }
    let request = command.request(size, mtime, Mode::Resume);
    ctx.conn.send(&request.frame(Kind::Request))?;
    let reply = ctx.conn.expect_ok()?;
    match agree_on_start(ctx, file, &reply, size) {
        Ok((start, mine)) => {
            ctx.conn.send(&Frame::new(Kind::Ok, [start.to_string()]))?;
            Ok((start, if start > 0 { mine } else { Digest::new() }))
        }
        Err(e) => {
            // The server waits for where the content starts; abandoning keeps it in step.
            let failure = Failure::new(ErrorKind::Cancelled, "upload abandoned by client");
            ctx.conn.send(&Frame::failure(Kind::Abort, &failure))?;
            let _ = ctx.conn.expect_ok();
            Err(e)
        }
    }
}

/// Where to start a resumed upload: the server's offset when the local file begins with the
/// bytes it kept, else 0. Also returns the digest of the local bytes before that offset.
fn agree_on_start(
    ctx: &mut ClientCtx,
    file: &mut File,
    reply: &[String],
    size: u64,
) -> anyhow::Result<(u64, Digest)> {
    let (offset, kept) = match reply {
        [offset] => (crate::number(offset, "offset")?, None),
        [offset, digest @ ..] => (
            crate::number(offset, "offset")?,
            Digest::parse_words(digest),
        ),
        [] => bail!("malformed reply from the server"),
    };
    let (Some(kept), 1..) = (kept, offset) else {
        return Ok((0, Digest::new()));
    };
    if offset > size {
        writeln!(
            ctx.out,
            "the part on the server is longer than the file; starting over"
        )?;
        return Ok((0, Digest::new()));
    }
    let mut buf = vec![0; 256 * 1024];
    let mine = Digest::of_prefix(file, offset, &mut buf)?;
    if mine.hex().eq_ignore_ascii_case(kept) {
        writeln!(ctx.out, "resuming at {}", crate::human(offset))?;
        Ok((offset, mine))
    } else {
        writeln!(
            ctx.out,
            "the part on the server does not match the file; starting over"
        )?;
        Ok((0, Digest::new()))
    }
}

mod serve;
#[cfg(test)]
mod tests;
