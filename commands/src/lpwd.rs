//! `LPWD`: print the local working directory. Runs on the client.

use std::io::Write;

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
    writeln!(ctx.out, "{}", dir.display())?;
    Ok(Flow::Continue)
}
