//! UPLOAD of many files: what a pattern matched, a directory tree with `-r`, or files compared
//! with what the server has first (`-n`, `--sync`, `--delete`). The transfer is planned
//! (directories to make, files to send, entries to remove), then run as a pipeline: small
//! files and directories go ahead, larger files one at a time, under one meter for the whole
//! and one summary line. It stops at the first failure; what was stored before it stays.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_core::store::{EntryKind, Meta};
use ferry_core::{AHEAD_MAX, Args, ClientCtx, Flow, RemotePath};

use super::send::{self, Command};
use crate::tree::walk::{self, Node};
use crate::tree::{Options, Pipe, Tally, pattern, warn};

/// What an upload of many files will do.
#[derive(Default)]
struct Plan {
    /// The flags the transfer was given.
    options: Options,
    /// Directories to make, parents first.
    dirs: Vec<RemotePath>,
    /// Files to send: where from, where to, their size and time.
    files: Vec<(PathBuf, RemotePath, Meta)>,
    /// Entries on the server that the source does not have (`--delete`).
    removals: Vec<(RemotePath, EntryKind)>,
    /// Directory trees sent whole: their local top and where it goes.
    trees: Vec<(PathBuf, RemotePath, Vec<Node>)>,
}

pub(super) fn run(ctx: &mut ClientCtx, args: &Args, options: Options) -> anyhow::Result<Flow> {
    let typed = args.one("local-path-or-glob");
    let from_pattern = pattern::is_pattern(typed);
    let sources = if from_pattern {
        pattern::local(typed)?
    } else {
        vec![crate::local_path(typed)]
    };
    let given = args.get("remote-path");
    let dest = match given {
        Some(given) => crate::remote_path(ctx, given)?,
        None => ctx.cwd.clone(),
    };
    let dest_kind = match given {
        None => Some(EntryKind::Dir),
        Some(_) => remote_kind(ctx, &dest)?,
    };
    let slash = given.is_some_and(|g| g.ends_with('/'));
    let into = given.is_none() || slash || dest.is_root() || sources.len() > 1 || from_pattern;
    // An existing directory takes the source inside it, as with cp -r; but with --sync a
    // directory's destination is the mirror itself, so that the same command run twice
    // finds its own copy the second time (as rsync's `src/ dest`).
    let single_dir = !from_pattern && sources.len() == 1 && sources[0].is_dir();
    let mirror = options.sync && single_dir;
    let into = into || (dest_kind == Some(EntryKind::Dir) && !mirror);
    if into && dest_kind.is_none() && !slash {
        bail!("no such directory '{dest}' on the server");
    }
    let mut tally = Tally::new();
    let mut plan = Plan {
        options,
        ..Plan::default()
    };
    if into && dest_kind.is_none() {
        plan.dirs.push(dest.clone());
    }
    for source in &sources {
        let target = if into {
            dest.join(&leaf(source)?)?
        } else {
            dest.clone()
        };
        add(
            ctx,
            &mut plan,
            &mut tally,
            (source, target),
            options,
            from_pattern,
        )?;
    }
    crate::tree::distinct(plan.dirs.iter().chain(plan.files.iter().map(|f| &f.1)))?;
    if options.compares() {
        compare(ctx, &mut plan, &mut tally)?;
    }
    let place = format!("to '{}'", dest.shown_from(&ctx.cwd));
    execute(ctx, plan, &mut tally)?;
    tally.report(ctx, "uploaded", &place)?;
    Ok(Flow::Continue)
}

/// The name a local path goes under on the server: its own, or for `.` and the like, the
/// name of the directory it stands for.
fn leaf(source: &Path) -> anyhow::Result<String> {
    let real = match source.file_name() {
        Some(_) => source.to_path_buf(),
        None => source.canonicalize().unwrap_or_default(),
    };
    real.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .with_context(|| format!("'{}' has no name that can travel", source.display()))
}

/// What the server has at `path`, if anything, from its directory's listing (a STAT would
/// read a file whole for its digest).
fn remote_kind(ctx: &mut ClientCtx, path: &RemotePath) -> anyhow::Result<Option<EntryKind>> {
    let found = crate::list::lookup(ctx, path).with_context(|| format!("looking at '{path}'"))?;
    Ok(found.map(|e| e.kind))
}

/// Adds one source to the plan: a file, or with `-r` a directory and all it holds.
fn add(
    ctx: &mut ClientCtx,
    plan: &mut Plan,
    tally: &mut Tally,
    (source, target): (&Path, RemotePath),
    options: Options,
    from_pattern: bool,
) -> anyhow::Result<()> {
    let shown = source.display().to_string();
    let meta = std::fs::symlink_metadata(source).with_context(|| format!("reading '{shown}'"))?;
    if meta.is_file() {
        plan.files
            .push((source.to_path_buf(), target, walk::meta_of(&meta)));
    } else if meta.is_dir() && options.recursive {
        let (nodes, skipped) = walk::local(ctx, source)?;
        tally.skipped += skipped;
        for node in &nodes {
            let remote = node.remote(&target)?;
            match node.kind {
                EntryKind::Dir => plan.dirs.push(remote),
                EntryKind::File => plan.files.push((node.local(source), remote, node.meta)),
            }
        }
        plan.trees.push((source.to_path_buf(), target, nodes));
    } else if meta.is_dir() && !from_pattern {
        bail!("'{shown}' is a directory; UPLOAD -r copies directories");
    } else {
        let why = if meta.is_dir() {
            "a directory (-r copies directories)"
        } else if meta.is_symlink() {
            "a symbolic link, never followed"
        } else {
            "not a regular file"
        };
        warn(ctx, &format!("skipping '{shown}': {why}"));
        tally.skipped += 1;
    }
    Ok(())
}

/// With `-n`, `--sync` or `--delete`, looks at what the server has where the files go: files
/// it need not send are dropped from the plan (and counted), directories it has are not made
/// again, and with `--delete` what it has that the source does not is planned for removal.
fn compare(ctx: &mut ClientCtx, plan: &mut Plan, tally: &mut Tally) -> anyhow::Result<()> {
    let options = plan.options;
    let there = what_is_there(ctx, plan)?;
    plan.dirs
        .retain(|d| !matches!(there.get(d), Some((EntryKind::Dir, _))));
    let before = plan.files.len();
    plan.files.retain(|(_, remote, meta)| {
        let file = there
            .get(remote)
            .filter(|(kind, _)| *kind == EntryKind::File)
            .map(|(_, m)| *m);
        !options.keeps(file, *meta)
    });
    tally.kept += before - plan.files.len();
    if options.delete {
        plan_removals(ctx, plan)?;
    }
    Ok(())
}

/// What the server has at the paths `plan` writes: each directory it writes into, or makes,
/// listed once.
/// Only those paths are kept, so memory follows the plan, not the server's listings (each one
/// bounded by [`crate::list::fetch`], but a plan may list many).
fn what_is_there(
    ctx: &mut ClientCtx,
    plan: &Plan,
) -> anyhow::Result<HashMap<RemotePath, (EntryKind, Meta)>> {
    let wanted: HashSet<&RemotePath> = plan
        .files
        .iter()
        .map(|(_, remote, _)| remote)
        .chain(&plan.dirs)
        .collect();
    let mut there = HashMap::new();
    let mut listed: HashSet<RemotePath> = HashSet::new();
    let files = plan
        .files
        .iter()
        .filter_map(|(_, remote, _)| remote.parent());
    for dir in files.chain(plan.dirs.iter().cloned()) {
        if listed.insert(dir.clone()) {
            match crate::list::fetch(ctx, &dir) {
                Ok((entries, _)) => {
                    for e in entries {
                        let path = dir.join(&e.name)?;
                        if wanted.contains(&path) {
                            there.insert(path, (e.kind, e.meta));
                        }
                    }
                }
                Err(e) if crate::is_refusal(&e, ferry_core::ErrorKind::NotFound) => {}
                Err(e) => return Err(e.context(format!("listing '{dir}'"))),
            }
        }
    }
    Ok(there)
}

/// With `--delete`: what the server has in each tree sent whole that the source does not,
/// planned for removal (a directory whole, not entry by entry).
fn plan_removals(ctx: &mut ClientCtx, plan: &mut Plan) -> anyhow::Result<()> {
    for (_, target, nodes) in &plan.trees {
        let remote = match walk::remote(ctx, target) {
            Ok((remote, _)) => remote,
            // Not on the server yet: nothing there to remove.
            Err(e) if crate::is_refusal(&e, ferry_core::ErrorKind::NotFound) => continue,
            Err(e) => return Err(e),
        };
        for node in walk::extra(nodes, &remote) {
            plan.removals.push((node.remote(target)?, node.kind));
        }
    }
    Ok(())
}

/// Runs the plan: removals made, directories made, files sent, in that order, pipelined.
fn execute(ctx: &mut ClientCtx, plan: Plan, tally: &mut Tally) -> anyhow::Result<()> {
    let options = plan.options;
    crate::tree::metered(ctx, &plan.files, |ctx, pipe, base| {
        // Removals first, so that an entry of another kind makes room for what replaces it.
        for (path, kind) in &plan.removals {
            let wire = path.wire();
            let mut words = vec!["DELETE", &wire];
            if *kind == EntryKind::Dir {
                words.push("recursive");
            }
            pipe.push_request(ctx, &words, format!("removing '{path}'"))?;
            tally.removed += 1;
        }
        for dir in &plan.dirs {
            let words = ["MKDIR", &dir.wire(), "parents"];
            pipe.push_request(ctx, &words, format!("making '{dir}'"))?;
        }
        send_files(ctx, pipe, &plan.files, (base, tally), options)?;
        Ok(())
    })
}

/// Sends the plan's files: small ones ahead, larger or resumed ones on their own; counts
/// each, and moves `base` (the bytes before the next) on.
fn send_files(
    ctx: &mut ClientCtx,
    pipe: &mut Pipe,
    files: &[(PathBuf, RemotePath, Meta)],
    (base, tally): (&mut u64, &mut Tally),
    options: Options,
) -> anyhow::Result<()> {
    for (nth, (local, remote, meta)) in files.iter().enumerate() {
        let shown = crate::Shown::Within {
            base: *base,
            nth: nth + 1,
            of: files.len(),
        };
        let command = Command {
            local: local.clone(),
            path: remote.wire(),
            into: None,
            shown,
            report: false,
        };
        let context = || format!("uploading '{}'", local.display());
        if meta.size <= AHEAD_MAX && !options.resume {
            let opened = send::open_regular(local, false).with_context(context)?;
            let sent = send::eager_ahead(ctx, command, opened)?;
            pipe.push(ctx, sent)?;
        } else {
            pipe.drain(ctx)?;
            send::upload(ctx, &command, options.resume).with_context(context)?;
        }
        *base = base.saturating_add(meta.size);
        tally.files += 1;
        tally.bytes = tally.bytes.saturating_add(meta.size);
    }
    Ok(())
}
