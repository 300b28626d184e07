//! `STAT <path>`: what is at a path on the server: a file's size, modification time and
//! digest, to compare with a local copy without downloading it, or that it is a directory.
//!
//! # Wire
//! ```text
//! -> Q STAT <path>
//! <- O file <size> <mtime> <algorithm> <digest>   (mtime in Unix seconds, digest in hex)
//! <- O dir <mtime>                                (or E)
//! ```
//! The digest is the one a DOWNLOAD of the file ends with (see `ferry_core::digest`). A script
//! sends it ahead, as `C STAT <path>`.

use anyhow::{Context, bail};
use ferry_core::store::EntryKind;
use ferry_core::{
    Args, Behind, ClientCtx, Digest, ErrorKind, Failure, Flow, RemotePath, Reply, Sent, ServerCtx,
    Verb, name,
};

inventory::submit! {
    Verb {
        name: "STAT",
        summary: "show a file's size, modification time and digest",
        example: "STAT photo.jpg",
        params: &[crate::PATH],
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
    }
}

/// What STAT says of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stat {
    /// A regular file: size, modification time, digest in hex.
    File(u64, u64, String),
    /// A directory, and its modification time.
    Dir(u64),
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let path = crate::remote_path(ctx, args.one("path"))?;
    let shown = path.shown_from(&ctx.cwd);
    let what = format!("stat '{shown}'");
    let stat = stat(ctx, &path).map_err(|e| crate::in_context(e, &what))?;
    show(ctx, (&path.wire(), &shown), stat)
}

/// Asks the server what is at `path`.
pub(crate) fn stat(ctx: &mut ClientCtx, path: &RemotePath) -> anyhow::Result<Stat> {
    let reply = ctx.conn.call(["STAT".to_string(), path.wire()])?;
    parse(&reply)
}

/// Read-only: it goes ahead of anything.
fn ahead(ctx: &mut ClientCtx, args: &Args, _: Behind) -> anyhow::Result<Option<Sent>> {
    let path = crate::remote_path(ctx, args.one("path"))?;
    let shown = path.shown_from(&ctx.cwd);
    let wire = path.wire();
    crate::send_ahead(
        ctx,
        &["STAT", &wire.clone()],
        format!("stat '{shown}'"),
        move |ctx, reply| {
            let stat = parse(&reply).with_context(|| format!("stat '{shown}'"))?;
            show(ctx, (&wire, &shown), stat)
        },
    )
}

fn show(ctx: &mut ClientCtx, (path, shown): (&str, &str), stat: Stat) -> anyhow::Result<Flow> {
    let when = crate::rfc3339;
    match stat {
        Stat::File(size, mtime, digest) => {
            let algorithm = ferry_core::digest::ALGORITHM;
            let human = format!(
                "{shown}  {} ({size} bytes)  {}  {algorithm} {digest}",
                crate::human(size),
                crate::shown_time(ctx, mtime),
            );
            let fields = serde_json::json!({
                "path": path, "type": "file", "size": size, "mtime": when(mtime),
                "digest": format!("{algorithm} {digest}"),
            });
            ctx.say(human, fields)?;
        }
        Stat::Dir(mtime) => {
            let fields = serde_json::json!({"path": path, "type": "dir", "mtime": when(mtime)});
            let at = crate::shown_time(ctx, mtime);
            ctx.say(format_args!("{shown}/  directory  {at}"), fields)?;
        }
    }
    Ok(Flow::Continue)
}

/// What a STAT reply says.
fn parse(reply: &[String]) -> anyhow::Result<Stat> {
    match reply {
        [kind, mtime] if kind == "dir" => Ok(Stat::Dir(crate::number(mtime, "mtime")?)),
        [kind, size, mtime, digest @ ..] if kind == "file" => {
            let Some(digest) = Digest::parse_words(digest) else {
                bail!(
                    "the server sent no {} digest",
                    ferry_core::digest::ALGORITHM
                );
            };
            Ok(Stat::File(
                crate::number(size, "size")?,
                crate::number(mtime, "mtime")?,
                digest.to_ascii_lowercase(),
            ))
        }
        _ => bail!("malformed reply from the server"),
    }
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [path] = crate::wire_args(args)?;
    let path = crate::wire_path(path)?;
    let shown = name::escape(&path.to_string());
    match ctx.store.stat(&path)? {
        None => {
            return Err(Failure::new(
                ErrorKind::NotFound,
                format!("no such file '{shown}'"),
            ));
        }
        Some((EntryKind::Dir, meta)) => {
            return Ok(Reply::Ok(vec!["dir".into(), meta.mtime.to_string()]));
        }
        Some((EntryKind::File, _)) => {}
    }
    let (mut file, meta) = ctx.store.open(&path)?;
    let size = meta.size;
    let digest = match file.kept_digest() {
        Some(kept) => kept,
        None => {
            let mut buf = vec![0; 256 * 1024];
            let digest = Digest::of_prefix(&mut file, size, &mut buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Failure::new(ErrorKind::Io, format!("'{shown}' shrank while being read"))
                } else {
                    Failure::io(&shown, &e)
                }
            })?;
            file.keep_digest(&digest);
            digest.hex()
        }
    };
    let words = [
        "file",
        &size.to_string(),
        &meta.mtime.to_string(),
        ferry_core::digest::ALGORITHM,
        &digest,
    ];
    Ok(Reply::Ok(words.map(String::from).to_vec()))
}
