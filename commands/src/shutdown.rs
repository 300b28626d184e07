//! SHUTDOWN: stop the server (only from the server's own machine, never through a load
//! balancer). Transfers in flight finish first; the server then removes its port file and exits.
//!
//! # Wire
//! ```text
//! -> Q SHUTDOWN
//! <- O                           (then the server closes; or E forbidden)
//! ```

use anyhow::Context;
use ferry_core::{Args, ClientCtx, ErrorKind, Failure, Flow, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "SHUTDOWN",
        summary: "stop the server (from its own machine only)",
        example: "SHUTDOWN",
        // Stopping the server takes every file away from everyone: a change, for access.
        writes: true,
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, _args: &Args) -> anyhow::Result<Flow> {
    ctx.conn
        .call(["SHUTDOWN"])
        .context("shutting down the server")?;
    let server = ctx.server;
    let fields = serde_json::json!({"server": server.to_string()});
    ctx.say(format_args!("server at {server} is shutting down"), fields)?;
    Ok(Flow::Quit)
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [] = crate::wire_args(args)?;
    // Through a balancer, which node answers is the balancer's choice, not the sender's.
    if ctx.proxy.is_some() {
        return Err(Failure::new(
            ErrorKind::Forbidden,
            "SHUTDOWN is refused through a load balancer; send it to the node directly",
        ));
    }
    if !ctx.peer.ip().to_canonical().is_loopback() {
        return Err(Failure::new(
            ErrorKind::Forbidden,
            "SHUTDOWN is allowed only from the server's own machine",
        ));
    }
    (ctx.shutdown)();
    Ok(Reply::Close(Vec::new()))
}
