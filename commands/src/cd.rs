//! `CD [<dir>]`: change the remote working directory, which remote paths are resolved
//! against; without a directory, back to the root. The directory must exist. Runs on the
//! client: the server only answers the STAT that checks the directory.

use anyhow::{Context, bail};
use ferry_core::{Args, ClientCtx, Flow, Param, ParamKind, RemotePath, Verb};

use crate::stat::Stat;

inventory::submit! {
    Verb {
        name: "CD",
        summary: "change the remote working directory",
        example: "CD photos/2024",
        params: &[Param::one("dir", ParamKind::RemoteDir).optional()],
        ..Verb::local(run, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let Some(typed) = args.get("dir") else {
        ctx.cwd = RemotePath::root();
        return Ok(Flow::Continue);
    };
    let dir = crate::remote_path(ctx, typed)?;
    let shown = dir.shown_from(&ctx.cwd);
    match crate::stat::stat(ctx, &dir).with_context(|| format!("changing to '{shown}'"))? {
        Stat::Dir(_) => ctx.cwd = dir,
        Stat::File(..) => bail!("changing to '{shown}': not a directory"),
    }
    Ok(Flow::Continue)
}
