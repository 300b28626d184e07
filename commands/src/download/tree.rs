//! DOWNLOAD of many files: what a pattern matched on the server, a directory tree with `-r`,
//! or files compared with what is on the local disk first (`-n`, `--sync`, `--delete`). The
//! transfer is planned (directories to make, files to fetch, entries to remove), then run as
//! a pipeline under one meter and one summary line. It stops at the first failure; what was
//! written before it stays.
//!
//! Only names that pass the name rules come from a listing (see `list::fetch`), so every
//! local path is the destination joined with plain names; every directory on the way is made
//! or checked to be a real directory, never a symbolic link, and files are written beside
//! their destination and renamed over it, which replaces a link rather than writing through it.
//!
//! Nor does it make a local name that holds an invisible formatting character (a bidi control,
//! a zero-width character; see `ferry_core::name::needs_escape`), taken from a listing or a
//! pattern's matches rather than typed: `ferry` shows such names escaped, but a file manager or
//! a shell would show them raw, as another name. Each is left out with a warning; `DOWNLOAD`
//! of that one file, named, fetches it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use ferry_core::batch::Dir;
use ferry_core::store::{EntryKind, Meta};
use ferry_core::{Args, ClientCtx, Flow, RemotePath, name};

use super::get::{self, Remote};
use crate::tree::walk::{self, Node};
use crate::tree::{Options, Tally, pattern, warn};

/// What a download of many files will do.
#[derive(Default)]
struct Plan {
    /// The flags the transfer was given.
    options: Options,
    /// The destination the user named (or the default one).
    dest: PathBuf,
    /// Local directories to make, parents first.
    dirs: Vec<PathBuf>,
    /// Files to fetch: from where, to where, their size and time.
    files: Vec<(RemotePath, PathBuf, Meta)>,
    /// Local entries the source does not have (`--delete`), and whether each is a directory.
    removals: Vec<(PathBuf, bool)>,
    /// Trees fetched whole: their local top and what the server holds there.
    trees: Vec<(PathBuf, Vec<Node>)>,
}

pub(super) fn run(ctx: &mut ClientCtx, args: &Args, options: Options) -> anyhow::Result<Flow> {
    let typed = args.one("remote-path-or-glob");
    let from_pattern = pattern::is_pattern(typed);
    let sources = sources(ctx, typed, from_pattern)?;
    let given = args.get("local-path");
    let dest = match given {
        Some(given) => crate::local_path(given),
        None => ctx.local_dir.clone(),
    };
    let slash = given.is_some_and(|g| g.ends_with('/'));
    let single = !from_pattern && sources.len() == 1;
    let single_dir = single && sources[0].1.0 == EntryKind::Dir;
    // An existing directory takes the source inside it, as with cp -r; but with --sync a
    // directory's destination is the mirror itself, so that the same command run twice
    // finds its own copy the second time (as rsync's `src/ dest`).
    let mirror = options.sync && single_dir;
    let into = given.is_none() || slash || !single || (dest.is_dir() && !mirror);
    let mut tally = Tally::new();
    let mut plan = Plan {
        dest: dest.clone(),
        options,
        ..Plan::default()
    };
    if into && !dest.is_dir() {
        if !slash {
            bail!("no such directory '{}'", dest.display());
        }
        plan.dirs.push(dest.clone());
    }
    for (source, found) in sources {
        let target = match source.file_name() {
            Some(leaf) if into => dest.join(leaf),
            _ => dest.clone(),
        };
        add(
            ctx,
            &mut plan,
            &mut tally,
            (source, target, found),
            (options, from_pattern),
        )?;
    }
    crate::tree::distinct(plan.dirs.iter().chain(plan.files.iter().map(|f| &f.1)))?;
    if options.compares() {
        compare(ctx, &mut plan, &mut tally)?;
    }
    let place = format!("to '{}'", crate::local_shown(&dest));
    execute(ctx, plan, &mut tally)?;
    tally.report(ctx, "downloaded", &place)?;
    Ok(Flow::Continue)
}

/// What `typed` names on the server (what it matches, when `from_pattern`), and what each is.
fn sources(
    ctx: &mut ClientCtx,
    typed: &str,
    from_pattern: bool,
) -> anyhow::Result<Vec<(RemotePath, (EntryKind, Meta))>> {
    let matched = if from_pattern {
        pattern::remote(ctx, typed)?
    } else {
        vec![(crate::remote_path(ctx, typed)?, None)]
    };
    let mut sources = Vec::new();
    for (source, known) in matched {
        let found = match known {
            Some(found) => found,
            None => kind_of(ctx, &source)?,
        };
        sources.push((source, found));
    }
    Ok(sources)
}

/// What the server has at `path`, from its directory's listing (a STAT would read a file
/// whole for its digest).
fn kind_of(ctx: &mut ClientCtx, path: &RemotePath) -> anyhow::Result<(EntryKind, Meta)> {
    match crate::list::lookup(ctx, path).with_context(|| format!("downloading '{path}'"))? {
        Some(entry) => Ok((entry.kind, entry.meta)),
        None => bail!(
            "downloading '{}': no such file '{path}'",
            path.shown_from(&ctx.cwd)
        ),
    }
}

/// Adds one source to the plan: a file, or with `-r` a directory and all it holds.
fn add(
    ctx: &mut ClientCtx,
    plan: &mut Plan,
    tally: &mut Tally,
    (source, target, (kind, meta)): (RemotePath, PathBuf, (EntryKind, Meta)),
    (options, from_pattern): (Options, bool),
) -> anyhow::Result<()> {
    if from_pattern && !source.file_name().is_none_or(name::shows_as_itself) {
        skip_hidden(ctx, tally, &source);
        return Ok(());
    }
    match kind {
        EntryKind::File => plan.files.push((source, target, meta)),
        EntryKind::Dir if options.recursive => {
            let (nodes, skipped) = walk::remote(ctx, &source)?;
            tally.skipped += skipped;
            for node in &nodes {
                if let Some(at) = node.names.iter().position(|n| !name::shows_as_itself(n)) {
                    // Warned about once, where the name is; what lies below it goes too.
                    if at + 1 == node.names.len() {
                        skip_hidden(ctx, tally, &node.remote(&source)?);
                    }
                    continue;
                }
                let local = node.local(&target);
                match node.kind {
                    EntryKind::Dir => plan.dirs.push(local),
                    EntryKind::File => plan.files.push((node.remote(&source)?, local, node.meta)),
                }
            }
            plan.trees.push((target, nodes));
        }
        EntryKind::Dir if from_pattern => {
            let shown = source.shown_from(&ctx.cwd);
            warn(
                ctx,
                &format!("skipping '{shown}': a directory (-r copies directories)"),
            );
            tally.skipped += 1;
        }
        EntryKind::Dir => bail!(
            "'{}' is a directory; DOWNLOAD -r copies directories",
            source.shown_from(&ctx.cwd)
        ),
    }
    Ok(())
}

/// Leaves out `path`, whose name holds an invisible formatting character, with a warning.
fn skip_hidden(ctx: &mut ClientCtx, tally: &mut Tally, path: &RemotePath) {
    let shown = path.shown_from(&ctx.cwd);
    warn(
        ctx,
        &format!("skipping '{shown}': its name holds an invisible formatting character"),
    );
    tally.skipped += 1;
}

/// With `-n`, `--sync` or `--delete`, looks at the local side: files it need not fetch are
/// dropped from the plan (and counted), and with `--delete` what it has that the server does
/// not is planned for removal.
fn compare(ctx: &mut ClientCtx, plan: &mut Plan, tally: &mut Tally) -> anyhow::Result<()> {
    let options = plan.options;
    let before = plan.files.len();
    plan.files.retain(|(_, local, meta)| {
        let there = std::fs::symlink_metadata(local)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| walk::meta_of(&m));
        !options.keeps(there, *meta)
    });
    tally.kept += before - plan.files.len();
    if options.delete {
        for (top, nodes) in &plan.trees {
            // A link is never walked, let alone emptied, unless the user named it as the
            // destination: `execute` refuses to write through any other.
            if !top.is_dir() || (is_link(top) && top != &plan.dest) {
                continue;
            }
            let (local, _) = walk::local(ctx, top)?;
            for node in walk::extra(nodes, &local) {
                plan.removals
                    .push((node.local(top), node.kind == EntryKind::Dir));
            }
        }
    }
    Ok(())
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_symlink())
}

/// Refuses a directory of the plan that is a symbolic link, unless it is the destination the
/// user named (`given`), which may be their own link to a directory.
fn not_a_link(dir: &Path, given: bool) -> anyhow::Result<()> {
    if is_link(dir) && !(given && dir.is_dir()) {
        bail!(
            "'{}' is a symbolic link; not writing through it",
            dir.display()
        );
    }
    Ok(())
}

/// Makes `dir` if it is missing; one that exists must be a real directory, never a link,
/// unless it is the destination the user named (`given`).
fn ensure_dir(dir: &Path, given: bool) -> anyhow::Result<()> {
    not_a_link(dir, given)?;
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() || meta.is_symlink() => Ok(()),
        Ok(_) => bail!("'{}' exists and is not a directory", dir.display()),
        Err(_) => {
            let making = || format!("making '{}'", dir.display());
            std::fs::create_dir(dir).with_context(making)?;
            // Its files are flushed with it; its own entry lasts once its parent is flushed.
            let parent = Dir::open(super::part::parent(dir)).with_context(making)?;
            if !parent.in_memory() {
                parent.file().sync_all().with_context(making)?;
            }
            Ok(())
        }
    }
}

/// Removes what `--delete` planned to, before anything else, so that an entry of another
/// kind makes room for what replaces it.
fn remove(removals: &[(PathBuf, bool)], tally: &mut Tally) -> anyhow::Result<()> {
    for (path, dir) in removals {
        let removed = if *dir {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        removed.with_context(|| format!("removing '{}'", path.display()))?;
        tally.removed += 1;
    }
    Ok(())
}

/// Runs the plan: removals made, directories made, files fetched, in that order, pipelined.
/// On a failure, the error says how many files were downloaded (in place and durable).
fn execute(ctx: &mut ClientCtx, plan: Plan, tally: &mut Tally) -> anyhow::Result<()> {
    let options = plan.options;
    let count = plan.files.len();
    let done = Arc::new(AtomicUsize::new(0));
    let run = crate::tree::metered(ctx, &plan.files, |ctx, pipe, base| {
        // The directory files land in, held for the next ones that land there.
        let mut dirs = super::part::Dirs::default();
        // Nothing is removed for a download that would then stop at a link.
        for dir in &plan.dirs {
            not_a_link(dir, dir == &plan.dest)?;
        }
        remove(&plan.removals, tally)?;
        for dir in &plan.dirs {
            ensure_dir(dir, dir == &plan.dest)?;
        }
        for (nth, (source, local, meta)) in plan.files.iter().enumerate() {
            let remote = Remote::at(ctx, source)?;
            let shown = crate::Shown::Within {
                base: *base,
                nth: nth + 1,
                of: count,
            };
            // Only what fits ahead goes ahead: a larger file streams on its own, so that a
            // cancel stops it rather than waiting for every file already asked for.
            if options.resume || meta.size > ferry_core::AHEAD_MAX {
                pipe.drain(ctx)?;
                let context = format!("downloading '{}'", remote.shown);
                get::download(ctx, &remote, local, true, &shown).context(context)?;
                done.fetch_add(1, Ordering::Relaxed);
            } else {
                let tell = get::Tell::Count(Arc::clone(&done));
                let to = (local.clone(), &mut dirs);
                let sent = get::fetch_ahead(ctx, remote, to, (shown, tell))?;
                pipe.push(ctx, sent)?;
            }
            *base = base.saturating_add(meta.size);
            tally.files += 1;
            tally.bytes = tally.bytes.saturating_add(meta.size);
        }
        pipe.drain(ctx)?;
        Ok(())
    });
    run.with_context(|| {
        let done = done.load(Ordering::Relaxed);
        format!("{done} of {count} files downloaded")
    })
}
