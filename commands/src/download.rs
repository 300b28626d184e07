//! `DOWNLOAD [-r|--resume] <remote-path> [<local-path>]`: copy a file from the server. The
//! destination defaults to `--local-dir/<name>` (the remote file's name); a directory
//! destination gets `<name>` inside it. The file
//! is written to a hidden partial file beside the destination and renamed into place only when
//! complete and its digest checked. A download cut short by a connection error (lost, timed
//! out, or a malformed stream) leaves that partial file; with `--resume`, the next download to
//! the same destination goes on from it, provided the server's file still begins with those
//! bytes (checked by digest); otherwise it starts over. Also `get`.
//!
//! # Wire
//! ```text
//! -> Q DOWNLOAD <path> [<offset> <algorithm> <digest>]
//! <- O <size> <mtime> <start>            (or E)
//! <- D <bytes> ... Z <algorithm> <digest>
//! ```
//! With an offset, the client has that many bytes with that digest; `start` is the offset if
//! the server's file begins with them, else 0. The content is the `size - start` bytes from
//! there (or `X` if the server must abandon it), and the digest in `Z` covers the whole file
//! from byte 0. To cancel, the client sends `X` while the content streams; the server stops and
//! ends the stream with `X` (or the `Z` was already on its way: a server ignores an `X`
//! between requests). A script sends a download without an offset ahead, as `C DOWNLOAD ...`;
//! a request waiting behind the stream is not a cancel.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use ferry_core::store::Source;
use ferry_core::{
    Args, Behind, ClientCtx, ContentError, Digest, ErrorKind, Failure, Flow, Frame, Kind, Reply,
    Sent, ServerCtx, Verb, Watch, WireError, name,
};

inventory::submit! {
    Verb {
        name: "DOWNLOAD",
        aliases: &["get"],
        summary: "copy a file from the server",
        example: "DOWNLOAD photo.jpg Pictures/",
        params: &[crate::REMOTE_PATH, crate::LOCAL_PATH.optional()],
        flags: &[crate::RESUME],
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
    }
}

/// A DOWNLOAD request as it travels: `DOWNLOAD <path> [<offset> <algorithm> <digest>]`, the
/// offset and digest of the part the client has, when resuming.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    /// The path's wire form.
    name: &'a str,
    have: Option<(u64, String)>,
}

/// The file a command line names on the server: its wire form, how to show it, its name.
struct Remote {
    wire: String,
    shown: String,
    leaf: String,
}

impl Remote {
    fn of(ctx: &ClientCtx, args: &Args) -> anyhow::Result<Remote> {
        let path = crate::remote_path(ctx, args.one("remote-path"))?;
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

impl<'a> Request<'a> {
    /// The request as a frame of `kind` (`Q`, or `C` when sent ahead).
    fn frame(&self, kind: Kind) -> Frame {
        let mut words = vec!["DOWNLOAD".to_string(), self.name.to_string()];
        if let Some((offset, hex)) = &self.have {
            let algorithm = ferry_core::digest::ALGORITHM.to_string();
            words.extend([offset.to_string(), algorithm, hex.clone()]);
        }
        Frame::new(kind, words)
    }

    /// The name in a request's wire arguments (after the verb), and the words that say which
    /// part the client has, if any, for [`Request::have`]: those are read once the file is
    /// open, so that a missing file is what a request for one hears first.
    fn split(args: &'a [String]) -> Result<(&'a str, Option<&'a [String]>), Failure> {
        match args {
            [name] => Ok((name, None)),
            [name, have @ ..] if have.len() == 3 => Ok((name, Some(have))),
            _ => Err(Failure::new(
                ErrorKind::BadRequest,
                "usage: DOWNLOAD <path> [<offset> <algorithm> <digest>]",
            )),
        }
    }

    /// The offset and digest in `<offset> <algorithm> <digest>`.
    fn have(words: &[String]) -> Result<(u64, String), Failure> {
        let [offset, digest @ ..] = words else {
            return Err(Failure::new(ErrorKind::BadRequest, "no offset"));
        };
        let offset = crate::number(offset, "offset")?;
        let hex = Digest::parse_words(digest).ok_or_else(|| {
            Failure::new(
                ErrorKind::BadRequest,
                format!("expected a {} digest", ferry_core::digest::ALGORITHM),
            )
        })?;
        Ok((offset, hex.to_ascii_lowercase()))
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let remote = Remote::of(ctx, args)?;
    let dest = destination(
        ctx,
        &remote.leaf,
        args.get("local-path").map(crate::local_path),
    );
    let size = download(ctx, &remote, &dest, args.flag("resume"))
        .with_context(|| format!("downloading '{}'", remote.shown))?;
    downloaded(ctx, &remote.shown, &dest, size)
}

fn downloaded(ctx: &mut ClientCtx, name: &str, dest: &Path, size: u64) -> anyhow::Result<Flow> {
    writeln!(
        ctx.out,
        "downloaded '{name}' to '{}' ({})",
        dest.display(),
        crate::human(size)
    )?;
    Ok(Flow::Continue)
}

/// Sends the request ahead; the partial file is opened, and the content received, when its
/// turn comes. That is also when writing may fail, after the server has done its part: the
/// command is unsettled until then. A resumed download runs on its own.
fn ahead(ctx: &mut ClientCtx, args: &Args, _: Behind) -> anyhow::Result<Option<Sent>> {
    if args.flag("resume") {
        return Ok(None);
    }
    let remote = Remote::of(ctx, args)?;
    let dest = destination(
        ctx,
        &remote.leaf,
        args.get("local-path").map(crate::local_path),
    );
    let request = Request {
        name: &remote.wire,
        have: None,
    };
    ctx.conn
        .queue(&request.frame(Kind::Chained))
        .with_context(|| format!("downloading '{}'", remote.shown))?;
    let finish = move |ctx: &mut ClientCtx| {
        let size = open_partial(&remote.wire, &dest)
            .and_then(|part| {
                part.file.set_len(0)?;
                let reply = ctx.conn.expect_ok()?;
                receive_into(
                    ctx,
                    part,
                    &reply,
                    (0, Digest::new()),
                    (&remote.shown, &dest),
                )
            })
            .with_context(|| format!("downloading '{}'", remote.shown))?;
        downloaded(ctx, &remote.shown, &dest, size)
    };
    Ok(Some(Sent {
        finish: Box::new(finish),
        unsettled: true,
    }))
}

/// Where the file goes: the given path (inside it if it is a directory), else the local dir.
/// `name` passed the name rules, so joining it cannot leave the directory.
fn destination(ctx: &ClientCtx, name: &str, given: Option<PathBuf>) -> PathBuf {
    match given {
        Some(path) if path.is_dir() => path.join(name),
        Some(path) => path,
        None => ctx.local_dir.join(name),
    }
}

/// The hidden partial file for downloading `name` (a path's wire form) to `dest`: beside it, named by a digest of
/// both, so the name has a fixed length however long theirs are.
fn partial_path(name: &str, dest: &Path) -> PathBuf {
    let mut key = Digest::new();
    key.update(name.as_bytes());
    key.update(b"\0");
    key.update(dest.file_name().map_or(&b""[..], |n| n.as_encoded_bytes()));
    parent(dest).join(format!(".ferry-{}.part", key.hex()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the partial file when dropped, unless it is kept for resuming or renamed into place.
struct Partial {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens (creating) the partial file for `dest`, locked so that two downloads to one
/// destination cannot interleave.
fn open_partial(name: &str, dest: &Path) -> anyhow::Result<Partial> {
    let path = partial_path(name, dest);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .with_context(|| format!("cannot write in '{}'", parent(dest).display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Partial {
            path,
            file,
            keep: false,
        }),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            // Not ours to remove: the other download owns it.
            Err(anyhow!(
                "another download to '{}' is in progress",
                dest.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn download(
    ctx: &mut ClientCtx,
    remote: &Remote,
    dest: &Path,
    resume: bool,
) -> anyhow::Result<u64> {
    let mut part = open_partial(&remote.wire, dest)?;
    let kept = part.file.metadata()?;
    let fresh = kept
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age < ferry_core::store::DEFAULT_PARTIAL_AGE);
    let mut digest = Digest::new();
    let offset = if resume && kept.len() > 0 && fresh {
        let mut buf = vec![0; 256 * 1024];
        digest = Digest::of_prefix(&mut part.file, kept.len(), &mut buf)?;
        kept.len()
    } else {
        part.file.set_len(0)?;
        0
    };
    let have = (offset > 0).then(|| (offset, digest.hex()));
    let name = &remote.wire;
    ctx.conn
        .send(&Request { name, have }.frame(Kind::Request))?;
    let reply = ctx.conn.expect_ok()?;
    receive_into(ctx, part, &reply, (offset, digest), (&remote.shown, dest))
}

/// Receives the content that follows the server's `reply` into `part`, then renames it to
/// `dest`. `had` bytes, with their digest, are already in `part` (0 unless resuming).
fn receive_into(
    ctx: &mut ClientCtx,
    mut part: Partial,
    reply: &[String],
    had: (u64, Digest),
    (name, dest): (&str, &Path),
) -> anyhow::Result<u64> {
    let [size, mtime, start] = reply else {
        bail!("malformed reply from the server");
    };
    let size = crate::number(size, "size")?;
    let mtime = crate::number(mtime, "mtime")?;
    let start = crate::number(start, "start")?;
    let mut digest = resume_at(ctx, &mut part, had, start, size)?;
    ctx.meter.start(name, size);
    let mut done = start;
    let received = ctx
        .conn
        .recv_content(&mut part.file, size - start, &mut digest, &mut |n| {
            done = start + n;
            ctx.meter.update(start + n)
        });
    ctx.meter.finish(done, received.is_ok());
    match received {
        Ok(()) => {}
        Err(ContentError::Sink(e)) => {
            return Err(e).with_context(|| format!("writing '{}'", dest.display()));
        }
        Err(ContentError::Wire(e)) if e.is_fatal() && part.file.metadata()?.len() > 0 => {
            part.keep = true;
            return Err(anyhow::Error::from(e)
                .context("the part received is kept; DOWNLOAD --resume goes on from it"));
        }
        Err(e) => return Err(e.into()),
    }
    let times = FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
    // The time is a courtesy; failing to set it does not spoil the download.
    let _ = part.file.set_times(times);
    part.file.sync_data()?;
    std::fs::rename(&part.path, dest)
        .with_context(|| format!("cannot replace '{}'", dest.display()))?;
    part.keep = true;
    Ok(size)
}

/// Where the server said the content starts, checked against what was asked: the part held
/// (`had`: its length and digest) goes on, or is emptied when the server starts over. Returns
/// the digest of what `part` now holds.
fn resume_at(
    ctx: &mut ClientCtx,
    part: &mut Partial,
    (offset, digest): (u64, Digest),
    start: u64,
    size: u64,
) -> anyhow::Result<Digest> {
    if (start != 0 && start != offset) || start > size {
        bail!("the server offered to start at byte {start}, which this client did not ask for");
    }
    if offset == 0 {
        return Ok(digest);
    }
    if start == offset {
        writeln!(ctx.out, "resuming at {}", crate::human(start))?;
        return Ok(digest);
    }
    writeln!(
        ctx.out,
        "the file on the server does not begin with the part downloaded; starting over"
    )?;
    part.file.set_len(0)?;
    part.file.seek(SeekFrom::Start(0))?;
    Ok(Digest::new())
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let (path, have) = Request::split(args)?;
    let path = crate::wire_path(path)?;
    let name = &name::escape(&path.to_string());
    let (mut file, meta) = ctx.store.open(&path)?;
    let (start, mut digest) = match have.map(Request::have).transpose()? {
        Some((offset, theirs)) => agree_on_start(&mut *file, name, meta.size, offset, &theirs)?,
        None => (0, Digest::new()),
    };
    // Queued, not sent: a small file then leaves with its reply in one write.
    let reply = [meta.size, meta.mtime, start].map(|n| n.to_string());
    ctx.conn
        .queue(&Frame::new(Kind::Ok, reply))
        .map_err(Failure::from_wire)?;
    // A receiver cancels by sending X while the content streams; the sender looks for it
    // between chunks. A request a pipelining client sent ahead is not a cancel.
    let len = meta.size - start;
    match ctx
        .conn
        .send_content(&mut file, len, &mut digest, Watch::PeerAbort)
    {
        Ok(()) => Ok(Reply::Done),
        Err(ContentError::Cancelled) => match ctx.conn.recv() {
            Ok(frame) if frame.kind == Kind::Abort => {
                Err(Failure::new(ErrorKind::Cancelled, "download cancelled by client").replied())
            }
            Ok(_) => Err(Failure::from_wire(WireError::Invalid(
                "expected X after a cancel".into(),
            ))),
            Err(e) => Err(Failure::from_wire(e)),
        },
        // The X frame has told the client; the connection is still in step.
        Err(ContentError::Wire(WireError::Remote(f))) => Err(f.replied()),
        Err(ContentError::Wire(e)) => Err(Failure::from_wire(e)),
        Err(ContentError::Sink(e)) => Err(Failure::io(name, &e)),
        Err(ContentError::Mismatch(m)) => Err(Failure::new(ErrorKind::Internal, m.to_string())),
    }
}

/// Where a resumed download's content starts: at `offset` when the file begins with the
/// bytes the client has (their digest `theirs`), else at 0. Returns the start and the digest
/// of what comes before it, with `file` positioned there.
fn agree_on_start(
    file: &mut dyn Source,
    name: &str,
    size: u64,
    offset: u64,
    theirs: &str,
) -> Result<(u64, Digest), Failure> {
    if offset > size {
        return Ok((0, Digest::new()));
    }
    let mut buf = vec![0; 256 * 1024];
    let mine = Digest::of_prefix(file, offset, &mut buf).map_err(|e| Failure::io(name, &e))?;
    if mine.hex() == theirs {
        return Ok((offset, mine));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Failure::io(name, &e))?;
    Ok((0, Digest::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_file_sits_beside_the_destination_with_a_fixed_length_name() {
        let long = "é".repeat(127);
        for (name, dest) in [
            ("a", "dir/a"),
            (long.as_str(), "dir/other"),
            ("a", "plain"),
            ("..x", "/abs/dir/y"),
        ] {
            let path = partial_path(name, Path::new(dest));
            assert_eq!(path.parent(), Some(parent(Path::new(dest))), "{dest}");
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(
                file.starts_with(".ferry-") && file.ends_with(".part"),
                "{file}"
            );
            assert_eq!(file.len(), ".ferry-".len() + 32 + ".part".len());
        }
        assert_ne!(
            partial_path("a", Path::new("x")),
            partial_path("b", Path::new("x"))
        );
    }

    #[test]
    fn a_request_reads_back_as_it_was_written() {
        for have in [None, Some((7, Digest::new().hex()))] {
            let request = Request {
                name: "/my file ✓",
                have,
            };
            let frame = request.frame(Kind::Request);
            assert_eq!(frame.words[0], "DOWNLOAD");
            let (name, words) = Request::split(&frame.words[1..]).unwrap();
            let have = words.map(Request::have).transpose().unwrap();
            assert_eq!(Request { name, have }, request);
        }
        let bad = ["a", "1", "md5", "x"].map(String::from);
        let odd = Request::split(&bad[1..]).unwrap_err();
        assert_eq!(odd.kind, ErrorKind::BadRequest);
        let (_, words) = Request::split(&bad).unwrap();
        let wrong = Request::have(words.unwrap()).unwrap_err();
        assert_eq!(wrong.message, "expected a xxh3-128 digest");
    }
}
