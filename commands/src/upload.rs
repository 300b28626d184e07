//! `UPLOAD [-r|--resume] <local-path> [<name>]`: store a local file on the server, replacing any
//! file of that name atomically. The name defaults to the local file's base name. With
//! `--resume`, an earlier upload of that name that was interrupted goes on from where it
//! stopped, provided the part the server kept is the start of the local file (checked by
//! digest); otherwise it starts over. Also `put`.
//!
//! # Wire
//! ```text
//! -> Q UPLOAD <name> <size> [resume]
//! <- O <offset> [<algorithm> <digest>]   (ready; or E, e.g. too-large)
//! -> O <start>                           (only with `resume`)
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O                                   (stored; or E, e.g. digest-mismatch)
//! ```
//! A file of at most [`EAGER_MAX`] bytes may go without waiting for the ready reply, saving a
//! round trip per small file:
//! ```text
//! -> Q UPLOAD <name> <size> eager
//! -> D <bytes> ... Z <algorithm> <digest>
//! <- O                                   (stored; or E)
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
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use ferry_core::store::Upload;
use ferry_core::{
    AHEAD_MAX, Args, Behind, ClientCtx, ContentError, Digest, ErrorKind, Failure, Flow, Frame,
    Kind, Reply, Sent, ServerCtx, Verb, Watch, WireError, name,
};

inventory::submit! {
    Verb {
        name: "UPLOAD",
        aliases: &["put"],
        summary: "copy a local file to the server",
        example: "UPLOAD \"holiday photo.jpg\" photo.jpg",
        params: &[crate::LOCAL_PATH, crate::NAME.optional()],
        flags: &[crate::RESUME],
        writes: true,
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
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

/// An UPLOAD request as it travels: `UPLOAD <name> <size> [resume|eager]`.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    name: &'a str,
    size: u64,
    mode: Mode,
}

impl<'a> Request<'a> {
    /// The request as a frame of `kind` (`Q`, or `C` when sent ahead).
    fn frame(&self, kind: Kind) -> Frame {
        let size = self.size.to_string();
        let mode = match self.mode {
            Mode::Ready => None,
            Mode::Resume => Some("resume"),
            Mode::Eager => Some("eager"),
        };
        Frame::new(kind, ["UPLOAD", self.name, &size].into_iter().chain(mode))
    }

    /// The request from its wire arguments (after the verb). A failure that leaves the
    /// connection out of step (eager content that cannot be read past) is fatal.
    fn from_words(args: &'a [String]) -> Result<Request<'a>, Failure> {
        let (name, size, mode) = match args {
            [name, size] => (name, size, Mode::Ready),
            [name, size, flag] if flag == "resume" => (name, size, Mode::Resume),
            [name, size, flag] if flag == "eager" => (name, size, Mode::Eager),
            _ => {
                return Err(Failure::new(
                    ErrorKind::BadRequest,
                    "usage: UPLOAD <name> <size> [resume|eager]",
                ));
            }
        };
        let size = crate::number(size, "size").map_err(|failure| Failure {
            // Eager content follows at once, and without its size it cannot be skipped.
            fatal: mode == Mode::Eager,
            ..failure
        })?;
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
        Ok(Request { name, size, mode })
    }
}

/// What an UPLOAD command line asks for: the local file, and its name on the server.
struct Command<'a> {
    local: &'a Path,
    name: &'a str,
}

fn command(args: &Args) -> anyhow::Result<Command<'_>> {
    let local = Path::new(args.one("local-path"));
    let name = match args.get("name") {
        Some(name) => name,
        None => local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("'{}' has no usable file name; give one", local.display()))?,
    };
    name::validate(name)?;
    Ok(Command { local, name })
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let Command { local, name } = command(args)?;
    let size = upload(ctx, local, name, args.flag("resume"))
        .with_context(|| format!("uploading '{}'", local.display()))?;
    uploaded(ctx, name, size)
}

fn uploaded(ctx: &mut ClientCtx, name: &str, size: u64) -> anyhow::Result<Flow> {
    writeln!(ctx.out, "uploaded '{name}' ({})", crate::human(size))?;
    Ok(Flow::Continue)
}

/// Sends a small file ahead, eager: the request and the content leave at once and the reply
/// is read when its turn comes. A resumed or larger upload runs on its own, and so does any
/// upload behind a download, which may be writing the very file this one reads.
fn ahead(ctx: &mut ClientCtx, args: &Args, behind: Behind) -> anyhow::Result<Option<Sent>> {
    let Command { local, name } = command(args)?;
    if args.flag("resume") || behind.unsettled {
        return Ok(None);
    }
    let context = || format!("uploading '{}'", local.display());
    let (mut file, size) = open_regular(local).with_context(context)?;
    if size > AHEAD_MAX {
        return Ok(None);
    }
    let mode = Mode::Eager;
    ctx.conn
        .queue(&Request { name, size, mode }.frame(Kind::Chained))
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            Ok(ctx
                .conn
                .queue_content(&mut file, size, &mut Digest::new())?)
        })
        .with_context(context)?;
    let (local, name) = (local.to_path_buf(), name.to_string());
    let finish = move |ctx: &mut ClientCtx| {
        ctx.conn
            .expect_ok()
            .with_context(|| format!("uploading '{}'", local.display()))?;
        uploaded(ctx, &name, size)
    };
    Ok(Some(Sent {
        finish: Box::new(finish),
        unsettled: false,
    }))
}

/// Opens `local` for reading; it must be a regular file. Also returns its size.
fn open_regular(local: &Path) -> anyhow::Result<(File, u64)> {
    let file = File::open(local)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("not a regular file");
    }
    Ok((file, meta.len()))
}

fn upload(ctx: &mut ClientCtx, local: &Path, name: &str, resume: bool) -> anyhow::Result<u64> {
    let (mut file, size) = open_regular(local)?;
    let (start, mut digest) = begin(ctx, &mut file, name, size, resume)?;
    if resume {
        // Checking the kept part read the file's start.
        file.seek(SeekFrom::Start(start))?;
    }
    ctx.meter.start(name, size);
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
        Ok(()) => ctx.conn.expect_ok().map(drop).map_err(anyhow::Error::from),
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
    stored.map(|()| size)
}

/// Sends the request and agrees where the content starts: 0, unless resuming from a part the
/// server kept; also returns the digest of what comes before that.
fn begin(
    ctx: &mut ClientCtx,
    file: &mut File,
    name: &str,
    size: u64,
    resume: bool,
) -> anyhow::Result<(u64, Digest)> {
    if !resume {
        let mode = if size <= EAGER_MAX {
            Mode::Eager
        } else {
            Mode::Ready
        };
        let request = Request { name, size, mode }.frame(Kind::Request);
        if mode == Mode::Eager {
            // Queued: it leaves with the content, and the server's only reply comes at the end.
            ctx.conn.queue(&request)?;
        } else {
            ctx.conn.send(&request)?;
            ctx.conn.expect_ok()?;
        }
        return Ok((0, Digest::new()));
    }
    let mode = Mode::Resume;
    ctx.conn
        .send(&Request { name, size, mode }.frame(Kind::Request))?;
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

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let request = Request::from_words(args)?;
    let store = ctx.store;
    let admitted = admit(ctx, &request).and_then(|name| {
        let upload = match request.mode {
            Mode::Resume => return resume_upload(ctx, name, request.size).map(|u| (name, u)),
            Mode::Ready => {
                let upload = store.create()?;
                crate::ready(ctx, &["0"])?;
                upload
            }
            Mode::Eager => store.create()?,
        };
        Ok((name, (upload, 0, Digest::new())))
    });
    match admitted {
        Ok((name, (upload, start, digest))) => {
            receive(ctx, upload, name, request.size - start, digest)
        }
        Err(failure) if request.mode == Mode::Eager && !failure.fatal => {
            Err(drain(ctx, request.size, failure))
        }
        Err(failure) => Err(failure),
    }
}

/// Receives the content into `upload` and commits it as `name`: `len` bytes follow, and
/// `digest` covers what `upload` holds already.
fn receive(
    ctx: &mut ServerCtx<'_>,
    mut upload: Box<dyn Upload + '_>,
    name: &str,
    len: u64,
    mut digest: Digest,
) -> Result<Reply, Failure> {
    let received = ctx
        .conn
        .recv_content(&mut *upload, len, &mut digest, &mut |_| true);
    match received {
        Ok(()) => {}
        Err(ContentError::Mismatch(m)) => {
            return Err(Failure::new(ErrorKind::DigestMismatch, m.to_string()));
        }
        Err(ContentError::Sink(e)) => return Err(Failure::io(name, &e)),
        Err(ContentError::Cancelled) => {
            return Err(Failure::new(ErrorKind::Cancelled, "upload cancelled"));
        }
        // The client abandoned the stream with X: what it sent is discarded.
        Err(ContentError::Wire(e @ WireError::Remote(_))) => return Err(Failure::from_wire(e)),
        Err(ContentError::Wire(e)) => return Err(interrupted(upload, name, e)),
    }
    upload.commit(name)?;
    Ok(Reply::Ok(Vec::new()))
}

/// An eager upload refused before its content was read: the content is on its way
/// regardless, so it is read and dropped, to stay in step; then `failure` is the answer.
fn drain(ctx: &mut ServerCtx<'_>, size: u64, failure: Failure) -> Failure {
    let mut sink = std::io::sink();
    let drained = ctx
        .conn
        .recv_content(&mut sink, size, &mut Digest::new(), &mut |_| true);
    match drained {
        Err(ContentError::Wire(e)) => Failure::from_wire(e),
        Ok(()) | Err(_) => failure,
    }
}

/// Checks the name and the size limit; the checked name.
fn admit<'a>(ctx: &ServerCtx<'_>, request: &Request<'a>) -> Result<&'a str, Failure> {
    let name = ctx.store.check(request.name)?;
    let size = request.size;
    if let Some(max) = ctx.max_file_size
        && size > max
    {
        return Err(Failure::new(
            ErrorKind::TooLarge,
            format!(
                "'{}' is {size} bytes, over the server's limit of {max} bytes",
                name::escape(name)
            ),
        ));
    }
    Ok(name)
}

/// Takes the part kept from an interrupted upload of `name`, offers it to the client, and
/// returns the upload to go on writing, where the content starts, and the digest so far.
fn resume_upload<'r>(
    ctx: &mut ServerCtx<'r>,
    name: &str,
    size: u64,
) -> Result<(Box<dyn Upload + 'r>, u64, Digest), Failure> {
    let store = ctx.store;
    let kept = match store.resume(name)? {
        Some(mut upload) => {
            let len = upload
                .size()
                .map_err(|e| Failure::io("temporary file", &e))?;
            let mut buf = vec![0; 256 * 1024];
            let digest = Digest::of_prefix(&mut *upload, len, &mut buf)
                .map_err(|e| Failure::io("temporary file", &e))?;
            // A kept part longer than the file now declared cannot be its start.
            (len <= size).then_some((upload, len, digest))
        }
        None => None,
    };
    let (mut upload, offset, digest) = match kept {
        Some(kept) => kept,
        None => (store.create()?, 0, Digest::new()),
    };
    let [algorithm, hex] = digest.words();
    let offer = offset.to_string();
    let words: &[&str] = if offset > 0 {
        &[&offer, &algorithm, &hex]
    } else {
        &[&offer]
    };
    crate::ready(ctx, words)?;
    let answer = match ctx.conn.recv() {
        Ok(frame) => frame,
        Err(e) => return Err(interrupted(upload, name, e)),
    };
    match (answer.kind, answer.words.as_slice()) {
        (Kind::Ok, [start]) if *start == offer => Ok((upload, offset, digest)),
        (Kind::Ok, [start]) if start == "0" => {
            upload
                .restart()
                .map_err(|e| Failure::io("temporary file", &e))?;
            Ok((upload, 0, Digest::new()))
        }
        (Kind::Abort, _) => {
            // The client could not check its side; what was kept is still good.
            let _ = upload.keep(name);
            Err(Failure::new(
                ErrorKind::Cancelled,
                "upload abandoned by client",
            ))
        }
        _ => Err(Failure::from_wire(WireError::Invalid(
            "expected O <start> or X after a resumable UPLOAD".into(),
        ))),
    }
}

/// The failure for a connection lost or timed out mid-upload; what arrived is kept hidden so
/// that `UPLOAD --resume` can go on from it.
fn interrupted(upload: Box<dyn Upload + '_>, name: &str, err: WireError) -> Failure {
    // A peer that broke the protocol gets nothing kept: what it sent cannot be trusted.
    let keep = !matches!(err, WireError::Invalid(_));
    let mut failure = Failure::from_wire(err);
    if keep {
        let note = match upload.keep(name) {
            Ok(0) => String::new(),
            Ok(n) => format!("; kept {n} bytes for resuming"),
            Err(e) => format!("; cannot keep the part received: {e}"),
        };
        failure.detail = failure.detail.map(|d| d + &note);
    }
    failure
}

#[cfg(test)]
mod tests;
