//! `RENAME [-f|--force] <from> <to>`: move a file or directory within the server's root, in one
//! atomic step on a local root; on an object store (`s3://`), a copy then a delete of each
//! object, not atomic, and refused past 1000 objects. When `<to>` is an existing directory, it goes inside it. An existing file at
//! the destination is kept, and the command fails, unless `--force` replaces it; an existing
//! directory is never replaced. Also `mv`.
//!
//! # Wire
//! ```text
//! -> Q RENAME <from> <to> [replace]
//! <- O <path>                    (where it went; or E: exists, not-found)
//! ```

use anyhow::{Context, bail};
use ferry_core::store::EntryKind;
use ferry_core::{
    Args, ClientCtx, ErrorKind, Failure, Flag, Flow, Param, ParamKind, RemotePath, Reply,
    ServerCtx, Verb,
};

inventory::submit! {
    Verb {
        name: "RENAME",
        aliases: &["mv"],
        // An object store has no rename: there it is a copy and a delete per object.
        summary: "move a file or directory (on a bucket: copies, not atomic)",
        example: "RENAME draft.txt final.txt",
        params: &[
            Param::one("from", ParamKind::RemotePath),
            Param::one("to", ParamKind::RemotePath),
        ],
        flags: &[Flag::new('f', "force", "replace a file at the destination")],
        writes: true,
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let from = crate::remote_path(ctx, args.one("from"))?;
    let to = crate::remote_path(ctx, args.one("to"))?;
    let shown = from.shown_from(&ctx.cwd);
    let from_wire = from.wire();
    let mut words = vec!["RENAME".to_string(), from.wire(), to.wire()];
    if args.flag("force") {
        words.push("replace".into());
    }
    let reply = ctx
        .conn
        .call(words)
        .with_context(|| format!("renaming '{shown}'"))?;
    let [went] = reply.as_slice() else {
        bail!("renaming '{shown}': malformed reply from the server");
    };
    let went = RemotePath::from_wire(went)?;
    let fields = serde_json::json!({"from": from_wire, "to": went.wire()});
    let went = went.shown_from(&ctx.cwd);
    ctx.say(format_args!("renamed '{shown}' to '{went}'"), fields)?;
    Ok(Flow::Continue)
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let (from, to, replace) = match args {
        [from, to] => (from, to, false),
        [from, to, flag] if flag == "replace" => (from, to, true),
        _ => {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                "usage: RENAME <from> <to> [replace]",
            ));
        }
    };
    let from = crate::wire_path(from)?;
    let mut to = crate::wire_path(to)?;
    if let (Some((EntryKind::Dir, _)), Some(name)) = (ctx.store.stat(&to)?, from.file_name()) {
        to = to.join(name)?;
    }
    ctx.store.rename(&from, &to, replace)?;
    Ok(Reply::Ok(vec![to.wire()]))
}
