//! `PWD`: print the remote working directory (from the root, as `/photos/2024`). Runs on the
//! client.

use ferry_core::{Args, ClientCtx, Flow, Verb};

inventory::submit! {
    Verb {
        name: "PWD",
        summary: "print the remote working directory",
        example: "PWD",
        ..Verb::local(run, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, _: &Args) -> anyhow::Result<Flow> {
    let cwd = ctx.cwd.clone();
    ctx.say(&cwd, serde_json::json!({"path": cwd.wire()}))?;
    Ok(Flow::Continue)
}
