//! DELETE <name>: remove a file from the server (through the filesystem API, never a shell).
//!
//! # Wire
//! ```text
//! -> Q DELETE <name>
//! <- O                           (or E)
//! ```

use std::io::Write;

use anyhow::Context;
use ferry_core::{Arg, ClientCtx, Failure, Flow, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "DELETE",
        usage: "DELETE <name>",
        summary: "remove a file from the server",
        example: "DELETE old.log",
        args: &[Arg::Remote],
        required: 1,
        flags: &[],
        client: send,
        server: receive,
        ahead: None,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let name = crate::remote_name(args)?;
    ctx.conn
        .call(["DELETE", name])
        .with_context(|| format!("deleting '{name}'"))?;
    writeln!(ctx.out, "deleted '{name}'")?;
    Ok(Flow::Continue)
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [name] = crate::wire_args(args)?;
    ctx.root.delete(name)?;
    Ok(Reply::Ok(Vec::new()))
}
