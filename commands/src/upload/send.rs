//! UPLOAD's client half for one file: the command line read, the request sent (eager,
//! ready or resumed) and the content streamed, or a small file sent ahead.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use ferry_core::{
    Args, ClientCtx, ContentError, Digest, ErrorKind, Failure, Flow, Frame, Kind, RemotePath, Sent,
    Watch, WireError,
};

use super::{EAGER_MAX, Mode, Request};

/// One file to upload: the local file, where it goes on the server (its wire form), the
/// file's name when the destination may be an existing directory, how its progress shows,
/// and whether a line reports it when done.
pub(crate) struct Command {
    pub local: PathBuf,
    pub path: String,
    pub into: Option<String>,
    pub shown: crate::Shown,
    pub report: bool,
}

/// The one file an UPLOAD command line asks for.
pub(crate) fn command(ctx: &ClientCtx, args: &Args) -> anyhow::Result<Command> {
    let local = crate::local_path(args.one("local-path-or-glob"));
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
        shown: crate::Shown::Alone(path.shown_from(&ctx.cwd)),
        path: path.wire(),
        into,
        report: true,
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

/// An upload the server has stored: its final reply (`O <path> new|replaced`), the size, the digest of
/// the content, and the seconds it took.
pub(crate) struct Stored {
    pub reply: Vec<String>,
    pub size: u64,
    pub digest: Digest,
    pub seconds: f64,
}

/// Says where the file went, from the server's final reply (`<path> new|replaced`): the
/// source too when the names differ, and whether a file there was replaced; in JSON, `path`
/// (where it went on the server), `local`, `bytes`, `digest` (as STAT gives it), `seconds`
/// and `replaced`.
pub(crate) fn uploaded(ctx: &mut ClientCtx, local: &Path, stored: &Stored) -> anyhow::Result<Flow> {
    let (path, replaced) = match stored.reply.as_slice() {
        [path, what] if what == "new" || what == "replaced" => (path, what == "replaced"),
        _ => bail!("malformed reply from the server"),
    };
    let shown = RemotePath::from_wire(path)?.shown_from(&ctx.cwd);
    let source = crate::local_shown(local);
    let size = crate::human(stored.size);
    let mut line = match source == shown {
        true => format!("uploaded '{shown}' ({size})"),
        false => format!("uploaded '{source}' to '{shown}' ({size})"),
    };
    if replaced {
        line += ", replacing the file there";
    }
    let fields = serde_json::json!({
        "path": path, "local": local.to_string_lossy(), "bytes": stored.size,
        "digest": stored.digest.words().join(" "), "seconds": stored.seconds,
        "replaced": replaced,
    });
    ctx.say(line, fields)?;
    Ok(Flow::Continue)
}

/// Sends a small file eager, as a chained request: the request and the content leave at
/// once, and the reply is read when its turn comes. `opened` is the file, its size and mtime.
pub(crate) fn eager_ahead(
    ctx: &mut ClientCtx,
    command: Command,
    (mut file, size, mtime): (File, u64, u64),
) -> anyhow::Result<Sent> {
    let context = || format!("uploading '{}'", command.local.display());
    let began = Instant::now();
    let request = command.request(size, mtime, Mode::Eager);
    ctx.conn
        .queue(&request.frame(Kind::Chained))
        .with_context(context)?;
    // Once the request is queued its reply will come, whatever happens to the content: the
    // finish always reads it, so that the replies after it stay in step.
    let mut digest = Digest::new();
    let abandoned = match ctx.conn.queue_content(&mut file, size, &mut digest) {
        Ok(()) => None,
        // The file failed or shrank: the stream was abandoned with `X`, which the server
        // answers with an error.
        Err(ContentError::Wire(WireError::Remote(failure))) => Some(failure),
        Err(e) => return Err(anyhow::Error::from(e).context(context())),
    };
    let finish = move |ctx: &mut ClientCtx| {
        let what = || format!("uploading '{}'", command.local.display());
        let replied = ctx.conn.expect_ok();
        if let Some(failure) = abandoned {
            return Err(anyhow::Error::from(failure).context(what()));
        }
        let stored = replied.with_context(what)?;
        if !command.shown.update(&mut ctx.meter, size) {
            bail!("cancelled");
        }
        if let crate::Shown::Within { .. } = command.shown {
            command.shown.finish(&mut ctx.meter, size, true);
        }
        if command.report {
            let seconds = began.elapsed().as_secs_f64();
            let stored = Stored {
                reply: stored,
                size,
                digest,
                seconds,
            };
            uploaded(ctx, &command.local, &stored)?;
        }
        Ok(Flow::Continue)
    };
    Ok(Sent {
        finish: Box::new(finish),
        unsettled: false,
        lands: None,
    })
}

/// Opens `local` for reading; it must be a regular file. Also returns its size and
/// modification time (seconds since the epoch; 0 if unknown).
/// With `follow` false (a file met walking a tree), a symbolic link at its place, put there
/// since the walk, is refused rather than followed.
pub(crate) fn open_regular(local: &Path, follow: bool) -> anyhow::Result<(File, u64, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if follow {
        0
    } else {
        rustix::fs::OFlags::NOFOLLOW.bits() as i32
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(local)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            bail!("a symbolic link, never followed")
        }
        opened => opened?,
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        bail!("a directory; UPLOAD -r copies directories");
    }
    if !meta.is_file() {
        bail!("not a regular file");
    }
    let mtime = ferry_core::store::mtime_of(meta.modified());
    Ok((file, meta.len(), mtime))
}

/// The upload itself, up to the server's final reply (where the file went).
pub(crate) fn upload(
    ctx: &mut ClientCtx,
    command: &Command,
    resume: bool,
) -> anyhow::Result<Stored> {
    let began = Instant::now();
    // A file named by the user is followed if it is a link, as `cp` follows one; a file met
    // walking a tree is not.
    let follow = matches!(command.shown, crate::Shown::Alone(_));
    let (mut file, size, mtime) = open_regular(&command.local, follow)?;
    let (start, mut digest) = begin(ctx, &mut file, command, (size, mtime), resume)?;
    if resume {
        // Checking the kept part read the file's start.
        file.seek(SeekFrom::Start(start))?;
    }
    let shown = &command.shown;
    shown.start(&mut ctx.meter, size);
    let mut done = start;
    let meter = &mut ctx.meter;
    let mut progress = |n| {
        done = start + n;
        shown.update(meter, start + n)
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
    command.shown.finish(&mut ctx.meter, done, stored.is_ok());
    stored.map(|reply| Stored {
        reply,
        size,
        digest,
        seconds: began.elapsed().as_secs_f64(),
    })
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
        ctx.tell("the part on the server is longer than the file; starting over")?;
        return Ok((0, Digest::new()));
    }
    let mut buf = vec![0; 256 * 1024];
    let mine = Digest::of_prefix(file, offset, &mut buf)?;
    if mine.hex().eq_ignore_ascii_case(kept) {
        ctx.tell(format_args!("resuming at {}", crate::human(offset)))?;
        Ok((offset, mine))
    } else {
        ctx.tell("the part on the server does not match the file; starting over")?;
        Ok((0, Digest::new()))
    }
}
