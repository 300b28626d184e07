//! DOWNLOAD's client half for one file: the request sent (or sent ahead), the content
//! received into a hidden partial file beside the destination, checked, and renamed into
//! place, or kept for resuming when the connection is cut.

use std::fs::FileTimes;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_core::{Args, ClientCtx, ContentError, Digest, Flow, Kind, RemotePath, Sent, WireError};

use super::Request;
use super::part::{Dirs, Landing, Partial, landing_key, open_empty, open_partial};

/// The file a command line names on the server: its wire form, how to show it, its name.
pub(crate) struct Remote {
    pub wire: String,
    pub shown: String,
    pub leaf: String,
}

impl Remote {
    /// The file the command line names.
    pub fn of(ctx: &ClientCtx, args: &Args) -> anyhow::Result<Remote> {
        Remote::at(
            ctx,
            &crate::remote_path(ctx, args.one("remote-path-or-glob"))?,
        )
    }

    /// The file at `path`.
    pub fn at(ctx: &ClientCtx, path: &RemotePath) -> anyhow::Result<Remote> {
        let Some(leaf) = path.file_name() else {
            bail!("'/' is the root directory, not a file");
        };
        Ok(Remote {
            leaf: leaf.to_string(),
            shown: path.shown_from(&ctx.cwd),
            wire: path.wire(),
        })
    }
}

/// Sends the request for `remote` ahead; the partial file is opened, and the content
/// received into it, when its turn comes. That is also when writing may fail, after the
/// server has done its part: the command is unsettled until then. The file received is
/// committed with the downloads around it, and reported once it is in place and durable
/// (see `ferry_core::batch`).
pub(crate) fn fetch_ahead(
    ctx: &mut ClientCtx,
    remote: Remote,
    (dest, dirs): (PathBuf, &mut Dirs),
    (shown, tell): (crate::Shown, Tell),
) -> anyhow::Result<Sent> {
    let request = Request {
        name: &remote.wire,
        have: None,
    };
    ctx.conn
        .queue(&request.frame(Kind::Chained))
        .with_context(|| format!("downloading '{}'", remote.shown))?;
    let dir = dirs.of(&dest);
    let key = landing_key(&dir, &dest);
    let lands = Some(key.clone());
    // Its file may be reported after later commands began (see `reporting_as`).
    let verb = ctx.report.verb().to_string();
    let finish = move |ctx: &mut ClientCtx| {
        let what = || format!("downloading '{}'", remote.shown);
        // The reply first: whatever fails here, its content is read, so that the replies
        // after it stay in step.
        let reply = ctx.conn.expect_ok().with_context(what)?;
        // A malformed reply is refused by `receive`, below, as for any download.
        let size = parse_reply(&reply).map_or(u64::MAX, |(size, _, _)| size);
        let part = match open_empty(&remote.wire, (&dest, size), dir) {
            Ok(part) => part,
            Err(e) => {
                skip(ctx, &reply).with_context(what)?;
                return Err(e.context(what()));
            }
        };
        let to = (&shown, remote.wire.as_str(), dest.as_path());
        let (landing, got) =
            receive(ctx, part, &reply, (0, Digest::new()), to).with_context(what)?;
        let (size, path, to) = (got.size, remote.shown.clone(), key);
        let report: ferry_core::batch::Report = Box::new(move |ctx| {
            placed(ctx, &shown, size);
            match tell {
                Tell::Line => ctx
                    .reporting_as(&verb, |ctx| downloaded(ctx, &remote, &dest, &got))
                    .map(drop),
                Tell::Count(count) => {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            }
        });
        let landed = ferry_core::batch::Landed { dest: to, report };
        ctx.landing.push(Box::new(landing), path, size, landed);
        Ok(Flow::Continue)
    };
    Ok(Sent {
        finish: Box::new(finish),
        unsettled: true,
        lands,
    })
}

/// How a download sent ahead is told once its file is in place.
pub(crate) enum Tell {
    /// A line of its own ([`downloaded`]).
    Line,
    /// One more for a count of files done, which a transfer of many files reports.
    Count(std::sync::Arc<std::sync::atomic::AtomicUsize>),
}

/// Counts a file among many as done, once it is in place.
fn placed(ctx: &mut ClientCtx, shown: &crate::Shown, size: u64) {
    if matches!(shown, crate::Shown::Within { .. }) {
        shown.finish(&mut ctx.meter, size, true);
    }
}

/// A file received whole: its size, its digest, and the seconds since it was asked for.
pub(crate) struct Received {
    pub size: u64,
    pub digest: String,
    pub seconds: f64,
}

/// Reports a download: a line, or in JSON `path` (on the server), `local`, `bytes`,
/// `digest` (as STAT gives it) and `seconds`.
pub(crate) fn downloaded(
    ctx: &mut ClientCtx,
    remote: &Remote,
    dest: &Path,
    got: &Received,
) -> anyhow::Result<Flow> {
    let local = crate::local_shown(dest);
    let human = format!(
        "downloaded '{}' to '{local}' ({})",
        remote.shown,
        crate::human(got.size)
    );
    let fields = serde_json::json!({
        "path": remote.wire, "local": dest.to_string_lossy(), "bytes": got.size,
        "digest": format!("{} {}", ferry_core::digest::ALGORITHM, got.digest),
        "seconds": got.seconds,
    });
    ctx.say(human, fields)?;
    Ok(Flow::Continue)
}

/// Where the file goes: the given path (inside it if it is a directory), else the local dir.
/// `name` passed the name rules, so joining it cannot leave the directory.
/// A given path that ends in `/` is a directory, made if it is missing.
pub(crate) fn destination(
    ctx: &ClientCtx,
    name: &str,
    given: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let Some(typed) = given else {
        return Ok(ctx.local_dir.join(name));
    };
    let path = crate::local_path(typed);
    if typed.ends_with('/') && !path.is_dir() {
        std::fs::create_dir_all(&path).with_context(|| format!("making '{}'", path.display()))?;
    }
    Ok(if path.is_dir() { path.join(name) } else { path })
}

/// Downloads `remote` to `dest`, going on from a part kept with `resume`; what was received.
///
/// A server that keeps its files' digests does not read the part's bytes back to compare:
/// a part that is not the file's beginning (the file changed since) shows as a digest
/// mismatch at the end, and the file is then downloaded again from the start.
pub(crate) fn download(
    ctx: &mut ClientCtx,
    remote: &Remote,
    dest: &Path,
    resume: bool,
    shown: &crate::Shown,
) -> anyhow::Result<Received> {
    let mut part = open_partial(&remote.wire, dest, Dirs::default().of(dest))?;
    let had = start_in(&mut part, resume)?;
    let have = (had.0 > 0).then(|| (had.0, had.1.hex()));
    let name = &remote.wire;
    ctx.conn
        .send(&Request { name, have }.frame(Kind::Request))?;
    let reply = ctx.conn.expect_ok()?;
    match receive_into(ctx, part, &reply, had, (shown, name, dest)) {
        Err(e) if resume && is_mismatch(&e) => {
            let _ = writeln!(
                ctx.err,
                "the part kept for '{}' is not the start of the server's file: downloading it all",
                remote.shown
            );
            download(ctx, remote, dest, false, shown)
        }
        other => other,
    }
}

fn is_mismatch(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref(), Some(ContentError::Mismatch(_)))
}

/// Where a download into `part` starts: with `resume`, after what a recent part holds (with
/// its digest); else at 0, the part emptied.
fn start_in(part: &mut Partial, resume: bool) -> anyhow::Result<(u64, Digest)> {
    if part.made {
        return Ok((0, Digest::new()));
    }
    let kept = part.file.metadata()?;
    let fresh = kept
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age < ferry_core::store::DEFAULT_PARTIAL_AGE);
    if resume && kept.len() > 0 && fresh {
        let mut buf = vec![0; 256 * 1024];
        let digest = Digest::of_prefix(&mut part.file, kept.len(), &mut buf)?;
        return Ok((kept.len(), digest));
    }
    part.file.set_len(0)?;
    Ok((0, Digest::new()))
}

/// Receives the content that follows the server's `reply` into `part`, then flushes it,
/// renames it to `dest` and flushes the directory. `had` bytes, with their digest, are already in `part` (0 unless
/// resuming).
fn receive_into(
    ctx: &mut ClientCtx,
    part: Partial,
    reply: &[String],
    had: (u64, Digest),
    (shown, name, dest): (&crate::Shown, &str, &Path),
) -> anyhow::Result<Received> {
    let (landing, got) = receive(ctx, part, reply, had, (shown, name, dest))?;
    // Committed as pipelined downloads are, alone: data, rename, directory.
    ferry_core::batch::commit_one(Box::new(landing), &dest.display().to_string())
        .map_err(|failed| failed.error)?;
    placed(ctx, shown, got.size);
    Ok(got)
}

/// Receives the content that follows the server's `reply` into `part`, which is then ready
/// to be flushed and renamed to `dest`. `had` bytes, with their digest, are already in `part`
/// (0 unless resuming).
fn receive(
    ctx: &mut ClientCtx,
    mut part: Partial,
    reply: &[String],
    had: (u64, Digest),
    (shown, name, dest): (&crate::Shown, &str, &Path),
) -> anyhow::Result<(Landing, Received)> {
    let began = std::time::Instant::now();
    let (size, mtime, start) = parse_reply(reply)?;
    if (start != 0 && start != had.0) || start > size {
        // Its content cannot be told apart from what comes next: the connection is lost.
        return Err(WireError::Invalid(format!(
            "the server offered to start at byte {start}, which this client did not ask for"
        ))
        .into());
    }
    let mut digest = resume_at(ctx, &mut part, had, start)?;
    shown.start(&mut ctx.meter, size);
    let mut done = start;
    let meter = &mut ctx.meter;
    let mut file = ferry_core::behind::WriteBehind {
        file: &mut part.file,
        behind: ferry_core::behind::Behind::at(start),
    };
    let received = ctx
        .conn
        .recv_content(&mut file, size - start, &mut digest, &mut |n| {
            done = start + n;
            shown.update(meter, start + n)
        });
    // A file among many counts as done once it is in place (see `placed`).
    if received.is_err() || matches!(shown, crate::Shown::Alone(_)) {
        shown.finish(&mut ctx.meter, done, received.is_ok());
    }
    match received {
        Ok(()) => {}
        Err(ContentError::Sink(e)) => {
            return Err(e).with_context(|| format!("writing '{}'", dest.display()));
        }
        Err(ContentError::Wire(e))
            if e.is_fatal() && part.file.metadata()?.len() > 0 && part.keep(name, dest) =>
        {
            return Err(anyhow::Error::from(e)
                .context("the part received is kept; DOWNLOAD -c goes on from it"));
        }
        Err(e) => return Err(e.into()),
    }
    let times = FileTimes::new().set_modified(ferry_core::store::time_of(mtime));
    // The time is a courtesy; failing to set it does not spoil the download.
    let _ = part.file.set_times(times);
    let got = Received {
        size,
        digest: digest.hex(),
        seconds: began.elapsed().as_secs_f64(),
    };
    let dest = dest.to_path_buf();
    Ok((Landing { part, dest }, got))
}

/// The size, mtime and start in a DOWNLOAD reply. A malformed one leaves the content that
/// follows unreadable, so it is a lost connection, not a failed command.
fn parse_reply(reply: &[String]) -> Result<(u64, u64, u64), WireError> {
    let malformed = || WireError::Invalid("malformed DOWNLOAD reply from the server".into());
    let [size, mtime, start] = reply else {
        return Err(malformed());
    };
    let number = |w: &String| w.parse::<u64>().map_err(|_| malformed());
    Ok((number(size)?, number(mtime)?, number(start)?))
}

/// Reads past the content a DOWNLOAD reply announces, for a download that cannot be
/// written here: the connection stays in step.
fn skip(ctx: &mut ClientCtx, reply: &[String]) -> anyhow::Result<()> {
    let (size, _, start) = parse_reply(reply)?;
    let len = size.checked_sub(start).ok_or_else(|| {
        WireError::Invalid("the server offered to start past the end of the file".into())
    })?;
    let mut sink = std::io::sink();
    match ctx
        .conn
        .recv_content(&mut sink, len, &mut Digest::new(), &mut |_| true)
    {
        Ok(()) | Err(ContentError::Mismatch(_)) => Ok(()),
        Err(ContentError::Wire(WireError::Remote(_))) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Where the server said the content starts, checked against what was asked: the part held
/// (`had`: its length and digest) goes on, or is emptied when the server starts over. Returns
/// the digest of what `part` now holds.
fn resume_at(
    ctx: &mut ClientCtx,
    part: &mut Partial,
    (offset, digest): (u64, Digest),
    start: u64,
) -> anyhow::Result<Digest> {
    if offset == 0 {
        return Ok(digest);
    }
    if start == offset {
        ctx.tell(format_args!("resuming at {}", crate::human(start)))?;
        return Ok(digest);
    }
    ctx.tell("the file on the server does not begin with the part downloaded; starting over")?;
    part.file.set_len(0)?;
    part.file.seek(SeekFrom::Start(0))?;
    Ok(Digest::new())
}
