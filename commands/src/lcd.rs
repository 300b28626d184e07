//! `LCD <dir>`: change the local working directory, which local paths are resolved against
//! and DOWNLOAD saves into by default (`~` is the home directory). Runs on the client.

use anyhow::Context;
use ferry_core::{Args, ClientCtx, Flow, Param, ParamKind, Verb};

inventory::submit! {
    Verb {
        name: "LCD",
        summary: "change the local working directory",
        example: "LCD ~/Downloads",
        params: &[Param::one("dir", ParamKind::LocalDir)],
        ..Verb::local(run, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let dir = crate::local_path(args.one("dir"));
    std::env::set_current_dir(&dir).with_context(|| format!("changing to '{}'", dir.display()))?;
    // DOWNLOAD's default destination follows, whatever --local-dir said.
    ctx.local_dir = ".".into();
    Ok(Flow::Continue)
}
