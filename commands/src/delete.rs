//! `DELETE [-r|--recursive] <path-or-glob>...`: remove files from the server (through the
//! store, never a shell); with `--recursive`, directories and everything in them. Patterns
//! are expanded against the server's listings; one that matches nothing is an error. Also
//! `rm`.
//!
//! # Wire
//! ```text
//! -> Q DELETE <path> [recursive]
//! <- O                           (or E)
//! ```
//! A script sends a single path ahead (`C DELETE <path>`), except behind a download that has
//! yet to finish: the server would delete even if that download then failed on the client's
//! side. Several paths, or a pattern's matches, go ahead of each other within the command.

use ferry_core::{
    Args, Behind, ClientCtx, ErrorKind, Failure, Flag, Flow, Param, ParamKind, Reply, Sent,
    ServerCtx, Verb,
};

use crate::tree::{Pipe, pattern};

inventory::submit! {
    Verb {
        name: "DELETE",
        aliases: &["rm"],
        summary: "remove files (with -r, directories) from the server",
        example: "DELETE old.log *.tmp",
        params: &[Param::one("path-or-glob", ParamKind::RemoteGlob).repeated()],
        flags: &[Flag::new('r', "recursive", "remove directories and everything in them")],
        writes: true,
        ahead: Some(ahead),
        ..Verb::new(run, serve, module_path!())
    }
}

/// The change for one path.
fn change(ctx: &ClientCtx, typed: &str, recursive: bool) -> anyhow::Result<crate::PathChange> {
    let flag = recursive.then_some("recursive");
    crate::PathChange::new(ctx, "DELETE", typed, flag, ("deleting", "deleted"))
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let recursive = args.flag("recursive");
    let typed: Vec<&str> = args.all("path-or-glob").collect();
    if let [one] = typed[..]
        && !pattern::is_pattern(one)
    {
        return change(ctx, one, recursive)?.run(ctx);
    }
    // Every pattern is expanded before anything is deleted, so one that matches nothing
    // stops the command before it changes anything.
    let mut paths = Vec::new();
    for word in typed {
        if pattern::is_pattern(word) {
            let found = pattern::remote(ctx, word)?;
            paths.extend(found.into_iter().map(|(p, _)| p.wire()));
        } else {
            paths.push(word.to_string());
        }
    }
    let mut pipe = Pipe::new();
    let outcome = (|| -> anyhow::Result<()> {
        for path in &paths {
            let sent = change(ctx, path, recursive)?.ahead(ctx, Behind::default())?;
            if let Some(sent) = sent {
                pipe.push(ctx, sent)?;
            }
        }
        Ok(())
    })();
    pipe.close(ctx, outcome)?;
    Ok(Flow::Continue)
}

/// One path that is no pattern goes ahead; anything else runs on its own.
fn ahead(ctx: &mut ClientCtx, args: &Args, behind: Behind) -> anyhow::Result<Option<Sent>> {
    let typed: Vec<&str> = args.all("path-or-glob").collect();
    match typed[..] {
        [one] if !pattern::is_pattern(one) => {
            change(ctx, one, args.flag("recursive"))?.ahead(ctx, behind)
        }
        _ => Ok(None),
    }
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    match args {
        [path] => ctx.store.delete(&crate::wire_path(path)?)?,
        [path, flag] if flag == "recursive" => {
            ctx.store.delete_tree(&crate::wire_path(path)?)?;
        }
        _ => {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                "usage: DELETE <path> [recursive]",
            ));
        }
    }
    Ok(Reply::Ok(Vec::new()))
}
