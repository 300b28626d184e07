//! `STAT <name>`: size, modification time and digest of a file on the server, to compare with a
//! local copy without downloading it.
//!
//! # Wire
//! ```text
//! -> Q STAT <name>
//! <- O <size> <mtime> <algorithm> <digest>   (or E; mtime in Unix seconds, digest in hex)
//! ```
//! The digest is the one a DOWNLOAD of the file ends with (see `ferry_core::digest`). A script
//! sends it ahead, as `C STAT <name>`.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferry_core::{
    Args, Behind, ClientCtx, Digest, ErrorKind, Failure, Flow, Reply, Sent, ServerCtx, Verb, name,
};

inventory::submit! {
    Verb {
        name: "STAT",
        summary: "show a file's size, modification time and digest",
        example: "STAT photo.jpg",
        params: &[crate::NAME],
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let name = crate::remote_name(args)?;
    let reply = ctx
        .conn
        .call(["STAT", name])
        .map_err(anyhow::Error::from)
        .and_then(|reply| parse(&reply))
        .with_context(|| format!("stat '{name}'"))?;
    show(ctx, name, reply)
}

/// Read-only: it goes ahead of anything.
fn ahead(ctx: &mut ClientCtx, args: &Args, _: Behind) -> anyhow::Result<Option<Sent>> {
    let name = crate::remote_name(args)?;
    let owned = name.to_string();
    crate::send_ahead(
        ctx,
        &["STAT", name],
        format!("stat '{name}'"),
        move |ctx, reply| {
            let reply = parse(&reply).with_context(|| format!("stat '{owned}'"))?;
            show(ctx, &owned, reply)
        },
    )
}

fn show(
    ctx: &mut ClientCtx,
    name: &str,
    (size, mtime, digest): (u64, u64, String),
) -> anyhow::Result<Flow> {
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(mtime));
    writeln!(
        ctx.out,
        "{name}  {} ({size} bytes)  {when}  {} {digest}",
        crate::human(size),
        ferry_core::digest::ALGORITHM
    )?;
    Ok(Flow::Continue)
}

/// The size, mtime and digest in a STAT reply.
fn parse(reply: &[String]) -> anyhow::Result<(u64, u64, String)> {
    let [size, mtime, digest @ ..] = reply else {
        bail!("malformed reply from the server");
    };
    let Some(digest) = Digest::parse_words(digest) else {
        bail!(
            "the server sent no {} digest",
            ferry_core::digest::ALGORITHM
        );
    };
    Ok((
        crate::number(size, "size")?,
        crate::number(mtime, "mtime")?,
        digest.to_ascii_lowercase(),
    ))
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [name] = crate::wire_args(args)?;
    let (mut file, meta) = ctx.store.open(name)?;
    let size = meta.size;
    let mut buf = vec![0; 256 * 1024];
    let digest = Digest::of_prefix(&mut file, size, &mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Failure::new(
                ErrorKind::Io,
                format!("'{}' shrank while being read", name::escape(name)),
            )
        } else {
            Failure::io(name, &e)
        }
    })?;
    let mut words = vec![size.to_string(), meta.mtime.to_string()];
    words.extend(digest.words());
    Ok(Reply::Ok(words))
}
