//! `DELETE <name>`: remove a file from the server (through the store, never a shell). Also `rm`.
//!
//! # Wire
//! ```text
//! -> Q DELETE <name>
//! <- O                           (or E)
//! ```
//! A script sends it ahead (`C DELETE <name>`), except behind a download that has yet to
//! finish: the server would delete even if that download then failed on the client's side.

use std::io::Write;

use anyhow::Context;
use ferry_core::{Args, Behind, ClientCtx, Failure, Flow, Reply, Sent, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "DELETE",
        aliases: &["rm"],
        summary: "remove a file from the server",
        example: "DELETE old.log",
        params: &[crate::NAME],
        writes: true,
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let name = crate::remote_name(args)?;
    ctx.conn
        .call(["DELETE", name])
        .with_context(|| format!("deleting '{name}'"))?;
    deleted(ctx, name)
}

fn deleted(ctx: &mut ClientCtx, name: &str) -> anyhow::Result<Flow> {
    writeln!(ctx.out, "deleted '{name}'")?;
    Ok(Flow::Continue)
}

fn ahead(ctx: &mut ClientCtx, args: &Args, behind: Behind) -> anyhow::Result<Option<Sent>> {
    let name = crate::remote_name(args)?;
    if behind.unsettled {
        return Ok(None);
    }
    let owned = name.to_string();
    crate::send_ahead(
        ctx,
        &["DELETE", name],
        format!("deleting '{name}'"),
        move |ctx, _| deleted(ctx, &owned),
    )
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [name] = crate::wire_args(args)?;
    ctx.store.delete(name)?;
    Ok(Reply::Ok(Vec::new()))
}
