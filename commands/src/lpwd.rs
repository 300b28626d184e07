//! `LPWD`: print the local working directory. Runs on the client.

use anyhow::Context;
use ferry_core::{Args, ClientCtx, Flow, Verb};

inventory::submit! {
    Verb {
        name: "LPWD",
        summary: "print the local working directory",
        example: "LPWD",
        ..Verb::local(run, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, _: &Args) -> anyhow::Result<Flow> {
    let dir = std::env::current_dir().context("the local working directory")?;
    let fields = serde_json::json!({"path": dir.to_string_lossy()});
    ctx.say(dir.display(), fields)?;
    Ok(Flow::Continue)
}
