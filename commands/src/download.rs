//! DOWNLOAD <name> [<local-path>]: copy a file from the server. The destination defaults to
//! `--local-dir/<name>`; a directory destination gets `<name>` inside it. The file is written
//! to a temporary beside the destination and renamed into place only when complete.
//!
//! # Wire
//! ```text
//! -> Q DOWNLOAD <name>
//! <- O <size> <mtime>            (or E)
//! <- D <bytes> ... Z             (exactly size bytes; or X if the server must abandon it)
//! ```
//! To cancel, the client sends `X` while the content streams; the server stops and ends the
//! stream with `X` (or the `Z` was already on its way: a server ignores an `X` between
//! requests).

use std::fs::FileTimes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferry_core::conn::{ContentError, input_waiting};
use ferry_core::{
    Arg, ClientCtx, Digest, ErrorKind, Failure, Flow, Kind, Reply, ServerCtx, Verb, WireError,
    name,
};

inventory::submit! {
    Verb {
        name: "DOWNLOAD",
        usage: "DOWNLOAD <name> [<local-path>]",
        summary: "copy a file from the server",
        example: "DOWNLOAD photo.jpg ~/Pictures/",
        args: &[Arg::Remote, Arg::Local],
        required: 1,
        client: send,
        server: receive,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let name = name::validate(&args[0])?;
    let dest = destination(ctx, name, args.get(1).map(PathBuf::from));
    let size = download(ctx, name, &dest).with_context(|| format!("downloading '{name}'"))?;
    writeln!(
        ctx.out,
        "downloaded '{name}' to '{}' ({})",
        dest.display(),
        crate::human(size)
    )?;
    Ok(Flow::Continue)
}

/// Where the file goes: the given path (inside it if it is a directory), else the local dir.
fn destination(ctx: &ClientCtx, name: &str, given: Option<PathBuf>) -> PathBuf {
    match given {
        Some(path) if path.is_dir() => path.join(name),
        Some(path) => path,
        None => ctx.local_dir.join(name),
    }
}

fn download(ctx: &mut ClientCtx, name: &str, dest: &Path) -> anyhow::Result<u64> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".ferry-")
        .suffix(".part")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write in '{}'", parent.display()))?;
    let reply = ctx.conn.call(["DOWNLOAD", name])?;
    let [size, mtime] = reply.as_slice() else {
        bail!("malformed reply from the server");
    };
    let (size, mtime) = (crate::number(size, "size")?, crate::number(mtime, "mtime")?);
    ctx.meter.start(name, size);
    let mut done = 0;
    let received = ctx.conn.recv_content(temp.as_file_mut(), size, &mut Digest::new(), &mut |n| {
        done = n;
        ctx.meter.update(n)
    });
    ctx.meter.finish(done, received.is_ok());
    match received {
        Ok(()) => {}
        Err(ContentError::Sink(e)) => {
            return Err(e).with_context(|| format!("writing '{}'", dest.display()));
        }
        Err(e) => return Err(e.into()),
    }
    let times = FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
    // The time is a courtesy; failing to set it does not spoil the download.
    let _ = temp.as_file().set_times(times);
    temp.persist(dest)
        .with_context(|| format!("cannot replace '{}'", dest.display()))?;
    Ok(size)
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [name] = crate::wire_args(args)?;
    let (mut file, meta) = ctx.root.open_file(name)?;
    let size = meta.len();
    let mtime = ferry_core::root::mtime(&meta);
    // A receiver cancels by sending X while the content streams; look for it between chunks.
    let watch = ctx
        .conn
        .stream()
        .try_clone()
        .map_err(|e| Failure::io("the connection", &e))?;
    crate::ready(ctx, &[&size.to_string(), &mtime.to_string()])?;
    match ctx
        .conn
        .send_content(&mut file, size, &mut Digest::new(), &mut |_| {
            !input_waiting(&watch)
        })
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
