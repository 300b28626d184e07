//! `DOWNLOAD [-r] [-c] [-n] [--sync] [--delete] <remote-path-or-glob> [<local-path>]`: copy
//! files from the server. One file's destination defaults to `--local-dir/<name>` (the remote
//! file's name); a directory destination gets `<name>` inside it. The file is written to a
//! hidden partial file beside the destination and renamed into place only when complete and
//! its digest checked (`download/get.rs`). A download cut short by a connection error (lost,
//! timed out, or a malformed stream) leaves that partial file; with `-c` (`--continue`, once
//! `--resume`), the next download to the same destination goes on from it, provided the
//! server's file still begins with those bytes (checked by digest); otherwise it starts over.
//! A pattern, `-r`, `-n` or `--sync` make it a transfer of many files (`download/tree.rs`).
//! Also `get`.
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

use std::io::SeekFrom;

use anyhow::Context;
use ferry_core::store::Source;
use ferry_core::{
    Args, Behind, ClientCtx, ContentError, Digest, ErrorKind, Failure, Flow, Frame, Kind, Param,
    ParamKind, Reply, Sent, ServerCtx, Verb, Watch, WireError, name,
};

inventory::submit! {
    Verb {
        name: "DOWNLOAD",
        aliases: &["get"],
        summary: "copy files (with -r, directories) from the server",
        example: "DOWNLOAD photo.jpg Pictures/",
        params: &[
            Param::one("remote-path-or-glob", ParamKind::RemoteGlob),
            crate::LOCAL_PATH.optional(),
        ],
        flags: crate::TRANSFER_FLAGS,
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
    let options = crate::tree::Options::of(args)?;
    if options.many(args.one("remote-path-or-glob")) {
        return tree::run(ctx, args, options);
    }
    let remote = get::Remote::of(ctx, args)?;
    let dest = get::destination(ctx, &remote.leaf, args.get("local-path"))?;
    let shown = crate::Shown::Alone(remote.shown.clone());
    let got = get::download(ctx, &remote, &dest, options.resume, &shown)
        .with_context(|| format!("downloading '{}'", remote.shown))?;
    get::downloaded(ctx, &remote, &dest, &got)
}

/// Sends the request ahead (see [`get::fetch_ahead`]). A resumed download runs on its own,
/// and so does a download of many files, which pipelines its own.
fn ahead(ctx: &mut ClientCtx, args: &Args, _: Behind) -> anyhow::Result<Option<Sent>> {
    let options = crate::tree::Options::of(args)?;
    if options.resume || options.many(args.one("remote-path-or-glob")) {
        return Ok(None);
    }
    let remote = get::Remote::of(ctx, args)?;
    let dest = get::destination(ctx, &remote.leaf, args.get("local-path"))?;
    let shown = crate::Shown::Alone(remote.shown.clone());
    let dirs = &mut part::Dirs::default();
    get::fetch_ahead(ctx, remote, (dest, dirs), (shown, get::Tell::Line)).map(Some)
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let (path, have) = Request::split(args)?;
    let path = crate::wire_path(path)?;
    // As messages show it: only a failure needs it.
    let name = || name::escape(&path.to_string());
    let (mut file, meta) = ctx.store.open(&path)?;
    let (start, mut digest) = match have.map(Request::have).transpose()? {
        Some((offset, theirs)) => agree_on_start(&mut *file, &name(), meta.size, offset, &theirs)?,
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
        Ok(()) => {
            // The whole file was read: its digest is kept, or put right, for STAT.
            if file.kept_digest() != Some(digest.hex()) {
                file.keep_digest(&digest);
            }
            ctx.done = Some(ferry_core::Done::transfer(path.wire(), len, &digest));
            Ok(Reply::Done)
        }
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
        Err(ContentError::Sink(e)) => Err(Failure::io(&name(), &e)),
        Err(ContentError::Mismatch(m)) => Err(Failure::new(ErrorKind::Internal, m.to_string())),
    }
}

/// Where a resumed download's content starts: at `offset` when the file begins with the
/// bytes the client has (their digest `theirs`), else at 0. Returns the start and the digest
/// of what comes before it, with `file` positioned there.
///
/// When the store keeps the file's digest, the client's bytes are not read back: the content
/// starts at `offset` and its `Z` carries the kept digest of the whole file, which the client
/// checks against its part and what follows (and starts over from 0 if they differ). So a
/// request never makes the server read what it does not send.
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
    if let Some(kept) = file.kept_digest() {
        if offset == size && kept != theirs {
            return Ok((0, Digest::new()));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Failure::io(name, &e))?;
        return Ok((offset, Digest::vouched(kept)));
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

mod get;
mod part;
mod tree;

#[cfg(test)]
mod tests {
    use super::*;

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
