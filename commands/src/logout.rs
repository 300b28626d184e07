//! LOGOUT: end the session; the server closes the connection.
//!
//! # Wire
//! ```text
//! -> Q LOGOUT
//! <- O                           (then the server closes)
//! ```

use ferry_core::{ClientCtx, Failure, Flow, Reply, ServerCtx, Verb};

inventory::submit! {
    Verb {
        name: "LOGOUT",
        usage: "LOGOUT",
        summary: "end the session",
        example: "LOGOUT",
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
    ctx.conn.call(["LOGOUT"])?;
    Ok(Flow::Quit)
}

fn receive(_ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [] = crate::wire_args(args)?;
    Ok(Reply::Close(Vec::new()))
}
