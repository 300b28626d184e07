//! UPLOAD [-r|--resume] <local-path> [<name>]: store a local file on the server, replacing any
//! file of that name atomically. The name defaults to the local file's base name. With
//! `--resume`, an earlier upload of that name that was interrupted goes on from where it
//! stopped, provided the part the server kept is the start of the local file (checked by
//! digest); otherwise it starts over.
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
use ferry_core::conn::{ContentError, failure_frame};
use ferry_core::root::Temp;
use ferry_core::{
    AHEAD_MAX, Arg, Behind, ClientCtx, Digest, ErrorKind, Failure, Flag, Flow, Frame, Kind, Reply,
    Sent, ServerCtx, Verb, WireError, Words, name,
};

const FLAGS: &[Flag] = &[crate::RESUME];

inventory::submit! {
    Verb {
        name: "UPLOAD",
        usage: "UPLOAD [-r|--resume] <local-path> [<name>]",
        summary: "copy a local file to the server",
        example: "UPLOAD \"holiday photo.jpg\" photo.jpg",
        args: &[Arg::Local, Arg::Remote],
        required: 1,
        flags: FLAGS,
        client: send,
        server: receive,
        ahead: Some(ahead),
        module: module_path!(),
    }
}

/// What an UPLOAD command line asks for.
struct Command<'a> {
    local: &'a Path,
    name: &'a str,
    resume: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Command<'_>> {
    let words = Words::parse(FLAGS, args).map_err(|e| anyhow!(e))?;
    let local = Path::new(words.args[0]);
    let name = match words.args.get(1) {
        Some(name) => name,
        None => local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("'{}' has no usable file name; give one", local.display()))?,
    };
    name::validate(name)?;
    Ok(Command {
        local,
        name,
        resume: words.has("resume"),
    })
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let Command {
        local,
        name,
        resume,
    } = parse(args)?;
    let size = upload(ctx, local, name, resume)
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
fn ahead(ctx: &mut ClientCtx, args: &[String], behind: Behind) -> anyhow::Result<Option<Sent>> {
    let Command {
        local,
        name,
        resume,
    } = parse(args)?;
    if resume || behind.unsettled {
        return Ok(None);
    }
    let context = || format!("uploading '{}'", local.display());
    let (mut file, size) = open_regular(local).with_context(context)?;
    if size > AHEAD_MAX {
        return Ok(None);
    }
    let request = ["UPLOAD", name, &size.to_string(), "eager"];
    ctx.conn
        .queue(&Frame::new(Kind::Chained, request))
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let content = ctx
                .conn
                .queue_content(&mut file, size, &mut Digest::new(), &mut |_| true);
            Ok(content?)
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
    let mut digest = Digest::new();
    let start = if resume {
        let reply = ctx
            .conn
            .call(["UPLOAD", name, &size.to_string(), "resume"])?;
        match agree_on_start(ctx, &mut file, &reply, size) {
            Ok((start, mine)) => {
                ctx.conn.send(&Frame::new(Kind::Ok, [start.to_string()]))?;
                if start > 0 {
                    digest = mine;
                }
                start
            }
            Err(e) => {
                // The server waits for where the content starts; abandoning keeps it in step.
                let failure = Failure::new(ErrorKind::Cancelled, "upload abandoned by client");
                ctx.conn.send(&failure_frame(Kind::Abort, &failure))?;
                let _ = ctx.conn.expect_ok();
                return Err(e);
            }
        }
    } else if size <= EAGER_MAX {
        // Queued: it leaves with the content, and the server's only reply comes at the end.
        let request = ["UPLOAD", name, &size.to_string(), "eager"];
        ctx.conn.queue(&Frame::new(Kind::Request, request))?;
        0
    } else {
        ctx.conn.call(["UPLOAD", name, &size.to_string()])?;
        0
    };
    if resume {
        // Checking the kept part read the file's start.
        file.seek(SeekFrom::Start(start))?;
    }
    ctx.meter.start(name, size);
    let mut done = start;
    let sent = ctx
        .conn
        .send_content(&mut file, size - start, &mut digest, &mut |n| {
            done = start + n;
            ctx.meter.update(start + n)
        });
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

/// Largest file sent `eager`, without waiting for the server's ready reply: one chunk.
pub const EAGER_MAX: u64 = ferry_core::conn::CHUNK as u64;

/// How the client sends its content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// After the server's ready reply.
    Ready,
    /// After agreeing where to resume.
    Resume,
    /// At once, with the request.
    Eager,
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
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
    let admitted = admit(ctx, name, size).and_then(|name| {
        let temp = match mode {
            Mode::Resume => return resume_temp(ctx, name, size).map(|t| (name, t)),
            Mode::Ready => {
                let temp = ctx.root.create_temp()?;
                crate::ready(ctx, &["0"])?;
                temp
            }
            Mode::Eager => ctx.root.create_temp()?,
        };
        Ok((name, (temp, 0, Digest::new())))
    });
    let (name, (mut temp, start, mut digest)) = match admitted {
        Ok(admitted) => admitted,
        Err(failure) if mode == Mode::Eager && !failure.fatal => {
            // The content is on its way regardless: read it and drop it, to stay in step.
            let drained =
                ctx.conn
                    .recv_content(&mut std::io::sink(), size, &mut Digest::new(), &mut |_| {
                        true
                    });
            return match drained {
                Ok(()) | Err(ContentError::Mismatch(_)) => Err(failure),
                Err(ContentError::Wire(e)) => Err(Failure::from_wire(e)),
                Err(_) => Err(failure),
            };
        }
        Err(failure) => return Err(failure),
    };
    let received =
        ctx.conn
            .recv_content(temp.as_file_mut(), size - start, &mut digest, &mut |_| true);
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
        Err(ContentError::Wire(e)) => return Err(interrupted(ctx, temp, name, e)),
    }
    ctx.root.commit(temp, name)?;
    Ok(Reply::Ok(Vec::new()))
}

/// Checks the name and the size limit; the checked name.
fn admit<'a>(ctx: &ServerCtx<'_>, name: &'a str, size: u64) -> Result<&'a str, Failure> {
    let name = ctx.root.check(name)?;
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
/// returns the temporary to go on writing, where the content starts, and the digest so far.
fn resume_temp<'r>(
    ctx: &mut ServerCtx<'r>,
    name: &str,
    size: u64,
) -> Result<(Temp<'r>, u64, Digest), Failure> {
    let root: &'r ferry_core::Root = ctx.root;
    let kept = match root.resume(name)? {
        Some(mut temp) => {
            let len = temp
                .as_file()
                .metadata()
                .map_err(|e| Failure::io("temporary file", &e))?
                .len();
            let mut buf = vec![0; 256 * 1024];
            let digest = Digest::of_prefix(temp.as_file_mut(), len, &mut buf)
                .map_err(|e| Failure::io("temporary file", &e))?;
            // A kept part longer than the file now declared cannot be its start.
            (len <= size).then_some((temp, len, digest))
        }
        None => None,
    };
    let (mut temp, offset, digest) = match kept {
        Some(kept) => kept,
        None => (root.create_temp()?, 0, Digest::new()),
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
        Err(e) => return Err(interrupted(ctx, temp, name, e)),
    };
    match (answer.kind, answer.words.as_slice()) {
        (Kind::Ok, [start]) if *start == offset.to_string() => Ok((temp, offset, digest)),
        (Kind::Ok, [start]) if start == "0" => {
            let file = temp.as_file_mut();
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
                .map_err(|e| Failure::io("temporary file", &e))?;
            Ok((temp, 0, Digest::new()))
        }
        (Kind::Abort, _) => {
            // The client could not check its side; what was kept is still good.
            let _ = root.keep(temp, name);
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
fn interrupted(ctx: &ServerCtx<'_>, temp: Temp<'_>, name: &str, err: WireError) -> Failure {
    // A peer that broke the protocol gets nothing kept: what it sent cannot be trusted.
    let keep = !matches!(err, WireError::Invalid(_));
    let mut failure = Failure::from_wire(err);
    if keep {
        let note = match ctx.root.keep(temp, name) {
            Ok(0) => String::new(),
            Ok(n) => format!("; kept {n} bytes for resuming"),
            Err(e) => format!("; cannot keep the part received: {e}"),
        };
        failure.detail = failure.detail.map(|d| d + &note);
    }
    failure
}
