//! UPLOAD's server half: where the file goes, checked before any content is taken; the
//! content received into a hidden upload, committed in one step, or kept for resuming.

use ferry_core::store::{EntryKind, Meta, Upload};
use ferry_core::{
    ContentError, Digest, ErrorKind, Failure, Kind, RemotePath, Reply, ServerCtx, WireError, name,
};

use super::{Mode, Request};

pub(super) fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let request = Request::from_words(args)?;
    if request.mode != Mode::Eager {
        // Its first reply (ready) must not pass those of uploads waiting to be committed.
        ctx.batch.settle(ctx.conn)?;
    }
    let admitted = admit(ctx, &request).and_then(|(path, replaces, upload)| {
        let upload = match upload {
            // Not started: it is to resume.
            None => {
                let resumed = resume_upload(ctx, &path, request.size)?;
                return Ok((path, replaces, resumed));
            }
            Some(upload) if request.mode == Mode::Ready => {
                crate::ready(ctx, &["0"])?;
                upload
            }
            Some(upload) => upload,
        };
        Ok((path, replaces, (upload, 0, Digest::new())))
    });
    match admitted {
        Ok((path, replaces, (upload, start, digest))) => {
            let len = request.size - start;
            let target = (&path, replaces);
            receive(ctx, upload, target, (len, request.mtime), digest)
        }
        Err(failure) if request.mode == Mode::Eager && !failure.fatal => {
            Err(drain(ctx, request.size, failure))
        }
        Err(failure) => Err(failure),
    }
}

/// Receives the content into `upload` and commits it at `path` (replacing a file there when
/// `replaces`, which the final reply says): `len` bytes follow, and `digest` covers what
/// `upload` holds already; the file gets the modification time `mtime`.
fn receive(
    ctx: &mut ServerCtx<'_>,
    mut upload: Box<dyn Upload + '_>,
    (path, replaces): (&RemotePath, bool),
    (len, mtime): (u64, u64),
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
        Err(ContentError::Sink(e)) => return Err(Failure::io(&shown(path), &e)),
        Err(ContentError::Cancelled) => {
            return Err(Failure::new(ErrorKind::Cancelled, "upload cancelled"));
        }
        // The client abandoned the stream with X: what it sent is discarded.
        Err(ContentError::Wire(e @ WireError::Remote(_))) => return Err(Failure::from_wire(e)),
        Err(ContentError::Wire(e)) => return Err(interrupted(upload, path, e)),
    }
    let pending = upload.prepare(path, Some(mtime), &digest)?;
    ctx.done = Some(ferry_core::Done::transfer(path.wire(), len, &digest));
    let what = if replaces { "replaced" } else { "new" };
    let words = vec![path.wire(), what.into()];
    match pending {
        // Answered once it is durable, with the others the session commits with it.
        Some(pending) => {
            let reply = ferry_core::Frame::new(Kind::Ok, words);
            ctx.batch.push(pending, path.wire(), reply);
            Ok(Reply::Done)
        }
        None => Ok(Reply::Ok(words)),
    }
}

/// A path as messages show it.
fn shown(path: &RemotePath) -> String {
    name::escape(&path.to_string())
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

/// An upload started by [`admit`].
type Started<'r> = Box<dyn Upload + 'r>;

/// Where the file goes, checked before any content is taken: inside `path` when it is an
/// existing directory and the client gave the file's name; never onto a directory; into a
/// directory that exists; under a name the store takes for a new entry; within the size limit.
/// Also says whether a file is there already, which the upload will replace, and, unless it is
/// to resume, starts the upload, in the same look at the path (see [`Store::create_checked`]).
///
/// [`Store::create_checked`]: ferry_core::store::Store::create_checked
fn admit<'r>(
    ctx: &mut ServerCtx<'r>,
    request: &Request<'_>,
) -> Result<(RemotePath, bool, Option<Started<'r>>), Failure> {
    let store = ctx.store;
    let mut path = crate::wire_path(request.path)?;
    if let Some(into) = request.into
        && let Some((EntryKind::Dir, _)) = store.stat(&path)?
    {
        path = path.join(into)?;
    }
    if ctx.batch.holds(&path.wire()) {
        // A file for this path waits to be committed: this one replaces it, so it goes first.
        ctx.batch.settle(ctx.conn)?;
    }
    let (size, max) = (request.size, ctx.max_file_size);
    let mut replaces = false;
    let mut check = |found: Option<(EntryKind, Meta)>| {
        if let Some((EntryKind::Dir, _)) = found {
            return Err(Failure::new(
                ErrorKind::Exists,
                format!("'{}' is a directory", shown(&path)),
            ));
        }
        store.check_new(&path)?;
        if let Some(max) = max
            && size > max
        {
            return Err(Failure::new(
                ErrorKind::TooLarge,
                format!(
                    "'{}' is {size} bytes, over the server's limit of {max} bytes",
                    shown(&path)
                ),
            ));
        }
        replaces = matches!(found, Some((EntryKind::File, _)));
        Ok(())
    };
    let upload = match request.mode {
        Mode::Resume => {
            check(store.stat(&path)?)?;
            None
        }
        Mode::Ready | Mode::Eager => {
            Some(store.create_checked(&path, ctx.peer.ip(), &mut check)?)
        }
    };
    Ok((path, replaces, upload))
}

/// Takes the part kept from an interrupted upload to `path`, offers it to the client, and
/// returns the upload to go on writing, where the content starts, and the digest so far.
fn resume_upload<'r>(
    ctx: &mut ServerCtx<'r>,
    path: &RemotePath,
    size: u64,
) -> Result<(Box<dyn Upload + 'r>, u64, Digest), Failure> {
    let store = ctx.store;
    let kept = match store.resume(path, ctx.peer.ip())? {
        Some(mut upload) => {
            let len = upload.size().map_err(|e| Failure::io(&shown(path), &e))?;
            let mut buf = vec![0; 256 * 1024];
            let digest = Digest::of_prefix(&mut *upload, len, &mut buf)
                .map_err(|e| Failure::io(&shown(path), &e))?;
            // A kept part longer than the file now declared cannot be its start.
            (len <= size).then_some((upload, len, digest))
        }
        None => None,
    };
    let (mut upload, offset, digest) = match kept {
        Some(kept) => kept,
        None => (store.create(path, ctx.peer.ip())?, 0, Digest::new()),
    };
    let [algorithm, hex] = digest.words();
    let offer = offset.to_string();
    let words: &[&str] = if offset > 0 {
        &[&offer, &algorithm, &hex]
    } else {
        &[&offer]
    };
    if let Err(failure) = crate::ready(ctx, words) {
        // The offer was not sent: what was kept is as good as before.
        let _ = upload.keep(path);
        return Err(failure);
    }
    let answer = match ctx.conn.recv() {
        Ok(frame) => frame,
        Err(e) => return Err(interrupted(upload, path, e)),
    };
    match (answer.kind, answer.words.as_slice()) {
        (Kind::Ok, [start]) if *start == offer => Ok((upload, offset, digest)),
        (Kind::Ok, [start]) if start == "0" => {
            upload
                .restart()
                .map_err(|e| Failure::io(&shown(path), &e))?;
            Ok((upload, 0, Digest::new()))
        }
        (Kind::Abort, _) => {
            // The client could not check its side; what was kept is still good.
            let _ = upload.keep(path);
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
/// that `UPLOAD -c` can go on from it.
fn interrupted(upload: Box<dyn Upload + '_>, path: &RemotePath, err: WireError) -> Failure {
    // A peer that broke the protocol gets nothing kept: what it sent cannot be trusted.
    let keep = !matches!(err, WireError::Invalid(_));
    let mut failure = Failure::from_wire(err);
    if keep {
        let note = match upload.keep(path) {
            Ok(0) => String::new(),
            Ok(n) => format!("; kept {n} bytes for resuming"),
            Err(e) => format!("; cannot keep the part received: {e}"),
        };
        failure.detail = failure.detail.map(|d| d + &note);
    }
    failure
}
