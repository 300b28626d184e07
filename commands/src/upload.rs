//! UPLOAD <local-path> [<name>]: store a local file on the server, replacing any file of that
//! name atomically. The name defaults to the local file's base name.
//!
//! # Wire
//! ```text
//! -> Q UPLOAD <name> <size>
//! <- O                           (ready; or E)
//! -> D <bytes> ... Z             (exactly size bytes; or X to abandon)
//! <- O                           (stored; or E)
//! ```

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow};
use ferry_core::conn::ContentError;
use ferry_core::{
    Arg, ClientCtx, Digest, ErrorKind, Failure, Flow, Reply, ServerCtx, Verb, name,
};

inventory::submit! {
    Verb {
        name: "UPLOAD",
        usage: "UPLOAD <local-path> [<name>]",
        summary: "copy a local file to the server",
        example: "UPLOAD \"holiday photo.jpg\" photo.jpg",
        args: &[Arg::Local, Arg::Remote],
        required: 1,
        client: send,
        server: receive,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let local = Path::new(&args[0]);
    let name = match args.get(1) {
        Some(name) => name.as_str(),
        None => local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("'{}' has no usable file name; give one", local.display()))?,
    };
    name::validate(name)?;
    let size = upload(ctx, local, name).with_context(|| format!("uploading '{}'", args[0]))?;
    writeln!(ctx.out, "uploaded '{name}' ({})", crate::human(size))?;
    Ok(Flow::Continue)
}

fn upload(ctx: &mut ClientCtx, local: &Path, name: &str) -> anyhow::Result<u64> {
    let mut file = File::open(local)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        anyhow::bail!("not a regular file");
    }
    let size = meta.len();
    ctx.conn.call(["UPLOAD", name, &size.to_string()])?;
    ctx.meter.start(name, size);
    let mut done = 0;
    let sent = ctx.conn.send_content(&mut file, size, &mut Digest::new(), &mut |n| {
        done = n;
        ctx.meter.update(n)
    });
    let stored = match sent {
        Ok(()) => ctx.conn.expect_ok().map(drop).map_err(anyhow::Error::from),
        Err(ContentError::Cancelled) => {
            // The server answers the X frame with a `cancelled` error; reading it keeps the
            // connection in step.
            let _ = ctx.conn.expect_ok();
            Err(anyhow!("cancelled"))
        }
        Err(e) => Err(e.into()),
    };
    ctx.meter.finish(done, stored.is_ok());
    stored.map(|()| size)
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [name, size] = crate::wire_args(args)?;
    let name = ctx.root.check(name)?;
    let size = crate::number(size, "size")?;
    let mut temp = ctx.root.create_temp()?;
    crate::ready(ctx, &[])?;
    let received = ctx
        .conn
        .recv_content(temp.as_file_mut(), size, &mut Digest::new(), &mut |_| true);
    match received {
        Ok(()) => {}
        Err(ContentError::Mismatch(m)) => {
            return Err(Failure::new(ErrorKind::DigestMismatch, m.to_string()));
        }
        Err(ContentError::Sink(e)) => return Err(Failure::io(name, &e)),
        Err(ContentError::Wire(e)) => return Err(Failure::from_wire(e)),
        Err(ContentError::Cancelled) => {
            return Err(Failure::new(ErrorKind::Cancelled, "upload cancelled"));
        }
    }
    ctx.root.commit(temp, name)?;
    Ok(Reply::Ok(Vec::new()))
}
