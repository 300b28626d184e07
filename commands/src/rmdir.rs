//! `RMDIR <dir>`: remove an empty directory from the server.
//!
//! # Wire
//! ```text
//! -> Q RMDIR <path>
//! <- O                           (or E: not-empty, not-found)
//! ```
//! A script sends it ahead (`C RMDIR <path>`), except behind a download that has yet to finish.

use ferry_core::{Args, ClientCtx, Failure, Param, ParamKind, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "RMDIR",
        aliases: &["rd"],
        summary: "remove an empty directory from the server",
        example: "RMDIR old",
        params: &[Param::one("dir", ParamKind::RemoteDir)],
        writes: true,
        ahead: Some(crate::ahead_change::<Rmdir>),
        ..Verb::new(crate::run_change::<Rmdir>, serve, module_path!())
    }
}

/// The verb, for its client halves.
struct Rmdir;

impl crate::Changes for Rmdir {
    fn change(ctx: &ClientCtx, args: &Args) -> anyhow::Result<crate::PathChange> {
        crate::PathChange::new(ctx, "RMDIR", args.one("dir"), None, ("removing", "removed"))
    }
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [path] = crate::wire_args(args)?;
    ctx.store.rmdir(&crate::wire_path(path)?)?;
    Ok(Reply::Ok(Vec::new()))
}
