//! `MKDIR [-p|--parents] <dir>`: make a directory on the server. Its parent must exist, unless
//! `--parents` makes every missing one (and an existing directory is then no error).
//!
//! # Wire
//! ```text
//! -> Q MKDIR <path> [parents]
//! <- O                           (or E: exists, not-found)
//! ```
//! A script sends it ahead (`C MKDIR ...`), except behind a download that has yet to finish.

use ferry_core::store::EntryKind;
use ferry_core::{
    Args, ClientCtx, ErrorKind, Failure, Flag, Param, ParamKind, RemotePath, Reply, ServerCtx,
    Verb, name,
};

inventory::submit! {
    Verb {
        name: "MKDIR",
        aliases: &["md"],
        summary: "make a directory on the server",
        example: "MKDIR -p photos/2024",
        params: &[Param::one("dir", ParamKind::RemoteDir)],
        flags: &[Flag::new('p', "parents", "make missing parents too; an existing directory is fine")],
        writes: true,
        ahead: Some(crate::ahead_change::<Mkdir>),
        ..Verb::new(crate::run_change::<Mkdir>, serve, module_path!())
    }
}

/// The verb, for its client halves.
struct Mkdir;

impl crate::Changes for Mkdir {
    fn change(ctx: &ClientCtx, args: &Args) -> anyhow::Result<crate::PathChange> {
        let flag = args.flag("parents").then_some("parents");
        crate::PathChange::new(ctx, "MKDIR", args.one("dir"), flag, ("making", "made"))
    }
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let (path, parents) = match args {
        [path] => (path, false),
        [path, flag] if flag == "parents" => (path, true),
        _ => {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                "usage: MKDIR <path> [parents]",
            ));
        }
    };
    let path = crate::wire_path(path)?;
    if !parents {
        ctx.store.mkdir(&path)?;
        return Ok(Reply::Ok(Vec::new()));
    }
    // Each missing directory from the root down; one that exists already is passed.
    let mut dir = RemotePath::root();
    for component in path.components() {
        dir = dir.join(component)?;
        match ctx.store.stat(&dir)? {
            Some((EntryKind::Dir, _)) => {}
            Some((EntryKind::File, _)) => {
                return Err(Failure::new(
                    ErrorKind::Exists,
                    format!("'{}' is a file", name::escape(&dir.to_string())),
                ));
            }
            None => match ctx.store.mkdir(&dir) {
                // Made meanwhile by another client: as good.
                Err(f) if f.kind == ErrorKind::Exists => {}
                other => other?,
            },
        }
    }
    Ok(Reply::Ok(Vec::new()))
}
