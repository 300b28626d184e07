//! DOWNLOAD [-r|--resume] <name> [<local-path>]: copy a file from the server. The destination
//! defaults to `--local-dir/<name>`; a directory destination gets `<name>` inside it. The file
//! is written to a hidden partial file beside the destination and renamed into place only when
//! complete and its digest checked. A download cut short by a connection error (lost, timed
//! out, or a malformed stream) leaves that partial file; with `--resume`, the next download to the same destination goes
//! on from it, provided the server's file still begins with those bytes (checked by digest);
//! otherwise it starts over.
//!
//! # Wire
//! ```text
//! -> Q DOWNLOAD <name> [<offset> <algorithm> <digest>]
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
use ferry_core::conn::{ContentError, abort_waiting};
use ferry_core::{
    Arg, Behind, ClientCtx, Digest, ErrorKind, Failure, Flag, Flow, Frame, Kind, Reply, Sent,
    ServerCtx, Verb, WireError, Words, name,
};

const FLAGS: &[Flag] = &[crate::RESUME];

inventory::submit! {
    Verb {
        name: "DOWNLOAD",
        usage: "DOWNLOAD [-r|--resume] <name> [<local-path>]",
        summary: "copy a file from the server",
        example: "DOWNLOAD photo.jpg Pictures/",
        args: &[Arg::Remote, Arg::Local],
        required: 1,
        flags: FLAGS,
        client: send,
        server: receive,
        ahead: Some(ahead),
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let words = Words::parse(FLAGS, args).map_err(|e| anyhow!(e))?;
    let name = name::validate(words.args[0])?;
    let dest = destination(ctx, name, words.args.get(1).map(PathBuf::from));
    let size = download(ctx, name, &dest, words.has("resume"))
        .with_context(|| format!("downloading '{name}'"))?;
    downloaded(ctx, name, &dest, size)
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
fn ahead(ctx: &mut ClientCtx, args: &[String], _: Behind) -> anyhow::Result<Option<Sent>> {
    let words = Words::parse(FLAGS, args).map_err(|e| anyhow!(e))?;
    if words.has("resume") {
        return Ok(None);
    }
    let name = name::validate(words.args[0])?.to_string();
    let dest = destination(ctx, &name, words.args.get(1).map(PathBuf::from));
    ctx.conn
        .queue(&Frame::new(Kind::Chained, ["DOWNLOAD", &name]))
        .with_context(|| format!("downloading '{name}'"))?;
    let finish = move |ctx: &mut ClientCtx| {
        let size = open_partial(&name, &dest)
            .and_then(|part| {
                part.file.set_len(0)?;
                let reply = ctx.conn.expect_ok()?;
                receive_into(ctx, part, &reply, 0, Digest::new(), &name, &dest)
            })
            .with_context(|| format!("downloading '{name}'"))?;
        downloaded(ctx, &name, &dest, size)
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

/// The hidden partial file for downloading `name` to `dest`: beside it, named by a digest of
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

fn download(ctx: &mut ClientCtx, name: &str, dest: &Path, resume: bool) -> anyhow::Result<u64> {
    let mut part = open_partial(name, dest)?;
    let kept = part.file.metadata()?;
    let fresh = kept
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age < ferry_core::root::DEFAULT_PARTIAL_AGE);
    let mut digest = Digest::new();
    let offset = if resume && kept.len() > 0 && fresh {
        let mut buf = vec![0; 256 * 1024];
        digest = Digest::of_prefix(&mut part.file, kept.len(), &mut buf)?;
        kept.len()
    } else {
        part.file.set_len(0)?;
        0
    };
    let reply = if offset > 0 {
        let [algorithm, hex] = digest.words();
        ctx.conn
            .call(["DOWNLOAD", name, &offset.to_string(), &algorithm, &hex])?
    } else {
        ctx.conn.call(["DOWNLOAD", name])?
    };
    receive_into(ctx, part, &reply, offset, digest, name, dest)
}

/// Receives the content that follows the server's `reply` into `part`, then renames it to
/// `dest`. `offset` bytes, with `digest`, are already in `part` (0 unless resuming).
fn receive_into(
    ctx: &mut ClientCtx,
    mut part: Partial,
    reply: &[String],
    offset: u64,
    mut digest: Digest,
    name: &str,
    dest: &Path,
) -> anyhow::Result<u64> {
    let [size, mtime, start] = reply else {
        bail!("malformed reply from the server");
    };
    let size = crate::number(size, "size")?;
    let mtime = crate::number(mtime, "mtime")?;
    let start = crate::number(start, "start")?;
    if (start != 0 && start != offset) || start > size {
        bail!("the server offered to start at byte {start}, which this client did not ask for");
    }
    if offset > 0 {
        if start == offset {
            writeln!(ctx.out, "resuming at {}", crate::human(start))?;
        } else {
            writeln!(
                ctx.out,
                "the file on the server does not begin with the part downloaded; starting over"
            )?;
            part.file.set_len(0)?;
            part.file.seek(SeekFrom::Start(0))?;
            digest = Digest::new();
        }
    }
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

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let (name, have) = match args {
        [name] => (name, None),
        [name, offset, digest @ ..] if digest.len() == 2 => (name, Some((offset, digest))),
        _ => {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                "usage: DOWNLOAD <name> [<offset> <algorithm> <digest>]",
            ));
        }
    };
    let (mut file, meta) = ctx.root.open_file(name)?;
    let size = meta.len();
    let mtime = ferry_core::root::mtime(&meta);
    let mut digest = Digest::new();
    let mut start = 0;
    if let Some((offset, theirs)) = have {
        let offset = crate::number(offset, "offset")?;
        let theirs = Digest::parse_words(theirs).ok_or_else(|| {
            Failure::new(
                ErrorKind::BadRequest,
                format!("expected a {} digest", ferry_core::digest::ALGORITHM),
            )
        })?;
        if offset <= size {
            let mut buf = vec![0; 256 * 1024];
            let mine = Digest::of_prefix(&mut file, offset, &mut buf)
                .map_err(|e| Failure::io(name, &e))?;
            if mine.hex().eq_ignore_ascii_case(theirs) {
                (digest, start) = (mine, offset);
            } else {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Failure::io(name, &e))?;
            }
        }
    }
    // A receiver cancels by sending X while the content streams; look for it between chunks.
    // Whatever arrived already comes first: a request sent ahead is not a cancel, and a
    // pipelining client does not cancel.
    let waiting = ctx
        .conn
        .buffered()
        .first()
        .map(|&b| b == Kind::Abort.byte());
    let watch = ctx
        .conn
        .stream()
        .try_clone()
        .map_err(|e| Failure::io("the connection", &e))?;
    // Queued, not sent: a small file then leaves with its reply in one write.
    let reply = [size.to_string(), mtime.to_string(), start.to_string()];
    ctx.conn
        .queue(&Frame::new(Kind::Ok, reply))
        .map_err(Failure::from_wire)?;
    match ctx.conn.send_content(
        &mut file,
        size - start,
        &mut digest,
        &mut |_| match waiting {
            Some(abort) => !abort,
            None => !abort_waiting(&watch),
        },
    ) {
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
}
