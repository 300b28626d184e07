//! LOGOUT: end the session; the server closes the connection. Also `quit`, `exit`, `bye`.
//!
//! # Wire
//! ```text
//! -> Q LOGOUT
//! <- O                           (then the server closes)
//! ```

use ferry_core::{Args, ClientCtx, Failure, Flow, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "LOGOUT",
        aliases: &["quit", "exit", "bye"],
        summary: "end the session",
        example: "LOGOUT",
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, _args: &Args) -> anyhow::Result<Flow> {
    ctx.conn.call(["LOGOUT"])?;
    Ok(Flow::Quit)
}

fn serve(_ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [] = crate::wire_args(args)?;
    Ok(Reply::Close(Vec::new()))
}
