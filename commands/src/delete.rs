//! `DELETE <path>`: remove a file from the server (through the store, never a shell). Also `rm`.
//!
//! # Wire
//! ```text
//! -> Q DELETE <path>
//! <- O                           (or E)
//! ```
//! A script sends it ahead (`C DELETE <path>`), except behind a download that has yet to
//! finish: the server would delete even if that download then failed on the client's side.

use ferry_core::{Args, ClientCtx, Failure, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "DELETE",
        aliases: &["rm"],
        summary: "remove a file from the server",
        example: "DELETE old.log",
        params: &[crate::PATH],
        writes: true,
        ahead: Some(crate::ahead_change::<Delete>),
        ..Verb::new(crate::run_change::<Delete>, serve, module_path!())
    }
}

/// The verb, for its client halves.
struct Delete;

impl crate::Changes for Delete {
    fn change(ctx: &ClientCtx, args: &Args) -> anyhow::Result<crate::PathChange> {
        crate::PathChange::new(
            ctx,
            "DELETE",
            args.one("path"),
            None,
            ("deleting", "deleted"),
        )
    }
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [path] = crate::wire_args(args)?;
    ctx.store.delete(&crate::wire_path(path)?)?;
    Ok(Reply::Ok(Vec::new()))
}
