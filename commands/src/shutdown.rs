//! SHUTDOWN: stop the server (only from the server's own machine). Transfers in flight finish
//! first; the server then removes its port file and exits.
//!
//! # Wire
//! ```text
//! -> Q SHUTDOWN
//! <- O                           (then the server closes; or E forbidden)
//! ```

use std::io::Write;

use anyhow::Context;
use ferry_core::{ClientCtx, ErrorKind, Failure, Flow, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "SHUTDOWN",
        usage: "SHUTDOWN",
        summary: "stop the server (from its own machine only)",
        example: "SHUTDOWN",
        args: &[],
        required: 0,
        flags: &[],
        client: send,
        server: receive,
        ahead: None,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, _args: &[String]) -> anyhow::Result<Flow> {
    ctx.conn
        .call(["SHUTDOWN"])
        .context("shutting down the server")?;
    writeln!(ctx.out, "server at {} is shutting down", ctx.server)?;
    Ok(Flow::Quit)
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [] = crate::wire_args(args)?;
    if !ctx.peer.ip().to_canonical().is_loopback() {
        return Err(Failure::new(
            ErrorKind::Forbidden,
            "SHUTDOWN is allowed only from the server's own machine",
        ));
    }
    ctx.shutdown.request();
    Ok(Reply::Close(Vec::new()))
}
