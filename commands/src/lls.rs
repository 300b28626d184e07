//! `LLS [<dir>]`: list a local directory as LIST lists a remote one: files and directories,
//! sorted, with sizes and modification times (links and other kinds left out). Runs on the
//! client.

use anyhow::Context;
use ferry_core::store::{Entry, EntryKind, Meta};
use ferry_core::{Args, ClientCtx, Flow, Param, ParamKind, Verb};

inventory::submit! {
    Verb {
        name: "LLS",
        summary: "list a local directory",
        example: "LLS ~/Downloads",
        params: &[Param::one("dir", ParamKind::LocalDir).optional()],
        ..Verb::local(run, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let dir = crate::local_path(args.get("dir").unwrap_or("."));
    let context = || format!("listing '{}'", dir.display());
    let mut entries = Vec::new();
    for dirent in std::fs::read_dir(&dir).with_context(context)? {
        let dirent = dirent.with_context(context)?;
        // symlink_metadata: a link is left out, as LIST leaves it out.
        let Ok(meta) = dirent.path().symlink_metadata() else {
            continue;
        };
        let kind = if meta.is_file() {
            EntryKind::File
        } else if meta.is_dir() {
            EntryKind::Dir
        } else {
            continue;
        };
        let mtime = ferry_core::store::mtime_of(meta.modified());
        let size = if kind == EntryKind::File {
            meta.len()
        } else {
            0
        };
        entries.push(Entry {
            name: dirent.file_name().to_string_lossy().into_owned(),
            kind,
            meta: Meta { size, mtime },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    crate::print_entries(ctx, &entries)?;
    Ok(Flow::Continue)
}
