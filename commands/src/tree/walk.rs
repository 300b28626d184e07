//! Trees walked: a local directory with every entry it holds (links and other kinds left out,
//! with a warning each, never followed), and a remote one, listed a directory at a time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_core::store::{Entry, EntryKind, Meta};
use ferry_core::{ClientCtx, RemotePath};

/// Most entries a remote tree may hold for one transfer: a bound on the client's memory
/// whatever a server lists.
pub const MAX_TREE: usize = 1_000_000;
/// Most memory the paths of one tree, or of one pattern's matches, may take, as counted by
/// [`cost`]: each node holds its whole path, so depth counts as well as names.
pub const MAX_TREE_BYTES: usize = 256 << 20;

/// Roughly what a node with these names costs to hold.
pub(crate) fn cost<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names.into_iter().map(|n| n.len() + 48).sum::<usize>() + 48
}

/// One entry of a walked tree: its path below the tree's top (empty for the top itself),
/// as names, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub names: Vec<String>,
    pub kind: EntryKind,
    pub meta: Meta,
}

impl Node {
    /// Where this node lies below `top` on the server.
    pub fn remote(&self, top: &RemotePath) -> anyhow::Result<RemotePath> {
        let mut path = top.clone();
        for name in &self.names {
            path = path.join(name)?;
        }
        Ok(path)
    }

    /// Where this node lies below `top` on the local disk. Each name passed the name rules
    /// (no separator, not `.` or `..`), so the path stays below `top`.
    pub fn local(&self, top: &Path) -> PathBuf {
        self.names.iter().fold(top.to_path_buf(), |p, n| p.join(n))
    }
}

/// For `--delete`: the nodes of a destination tree (parents first) that the source tree does
/// not have; a directory once, not what it holds.
pub(crate) fn extra<'a>(source: &[Node], dest: &'a [Node]) -> Vec<&'a Node> {
    let wanted: std::collections::HashMap<&[String], EntryKind> = source
        .iter()
        .map(|n| (n.names.as_slice(), n.kind))
        .collect();
    let mut gone: Vec<&'a Node> = Vec::new();
    for node in dest {
        let inside = gone.iter().any(|g| node.names.starts_with(&g.names));
        // An entry of another kind than the source's goes too, to make room for it.
        if !inside && wanted.get(node.names.as_slice()) != Some(&node.kind) {
            gone.push(node);
        }
    }
    gone
}

/// Size and modification time of local metadata (a directory's size is 0).
pub(crate) fn meta_of(meta: &std::fs::Metadata) -> Meta {
    let mtime = ferry_core::store::mtime_of(meta.modified());
    let size = if meta.is_file() { meta.len() } else { 0 };
    Meta { size, mtime }
}

/// Every directory and regular file below the local directory `top` (the top itself first),
/// parents before children. Symbolic links, devices, sockets and names that cannot travel are
/// left out and never followed, each with a warning; returns how many.
pub(crate) fn local(ctx: &mut ClientCtx, top: &Path) -> anyhow::Result<(Vec<Node>, usize)> {
    let mut nodes = Vec::new();
    let mut skipped = 0;
    let mut walker = walkdir::WalkDir::new(top)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.with_context(|| format!("reading '{}'", top.display()))?;
        let relative = entry.path().strip_prefix(top).unwrap_or(entry.path());
        let names: Option<Vec<String>> = relative
            .iter()
            .map(|n| {
                n.to_str()
                    .filter(|n| ferry_core::name::validate(n).is_ok())
                    .map(String::from)
            })
            .collect();
        let kind = entry.file_type();
        if let Some(why) = unfit(names.as_deref(), kind) {
            let shown = entry.path().display().to_string();
            super::warn(ctx, &format!("skipping '{shown}': {why}"));
            skipped += 1;
            if kind.is_dir() {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = entry
            .metadata()
            .with_context(|| format!("reading '{}'", entry.path().display()))?;
        nodes.push(Node {
            names: names.unwrap_or_default(),
            kind: if kind.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            meta: meta_of(&meta),
        });
    }
    Ok((nodes, skipped))
}

/// Why a local entry is left out of a tree, if it is: a name that cannot travel or that the
/// server reserves, a download's partial file, a link, anything but a file or directory.
fn unfit(names: Option<&[String]>, kind: std::fs::FileType) -> Option<&'static str> {
    let Some(names) = names else {
        return Some("its name cannot travel (not UTF-8, or against the name rules)");
    };
    let leaf = names.last().map_or("", String::as_str);
    if ferry_core::store::folds_to(leaf, ".ferry-partial") {
        Some("a name the server reserves")
    } else if leaf.starts_with(".ferry-") && leaf.ends_with(".part") && kind.is_file() {
        Some("an interrupted download's partial file")
    } else if kind.is_symlink() {
        Some("a symbolic link, never followed")
    } else if !kind.is_dir() && !kind.is_file() {
        Some("not a regular file")
    } else {
        None
    }
}

/// Every directory and file below the remote directory `top` (the top itself first), parents
/// before children, one listing per directory. Names from the server that break the rules
/// are left out with a warning each; returns how many.
pub(crate) fn remote(ctx: &mut ClientCtx, top: &RemotePath) -> anyhow::Result<(Vec<Node>, usize)> {
    let dir = Meta { size: 0, mtime: 0 };
    let mut nodes = vec![Node {
        names: Vec::new(),
        kind: EntryKind::Dir,
        meta: dir,
    }];
    let mut skipped = 0;
    let mut bytes = 0;
    let mut queue = VecDeque::from([Vec::<String>::new()]);
    while let Some(names) = queue.pop_front() {
        let path = Node {
            names: names.clone(),
            kind: EntryKind::Dir,
            meta: dir,
        }
        .remote(top)?;
        let (entries, refused) =
            crate::list::fetch(ctx, &path).with_context(|| format!("listing '{path}'"))?;
        for name in refused {
            let shown = ferry_core::name::escape(&name);
            super::warn(
                ctx,
                &format!("skipping '{shown}' in '{path}': a name that cannot be used"),
            );
            skipped += 1;
        }
        for Entry { name, kind, meta } in entries {
            let mut child = names.clone();
            child.push(name);
            bytes += cost(child.iter().map(String::as_str));
            if nodes.len() >= MAX_TREE || bytes > MAX_TREE_BYTES {
                bail!(
                    "'{top}' holds more than {MAX_TREE} entries or 256 MiB of paths; copy it in parts"
                );
            }
            if kind == EntryKind::Dir {
                queue.push_back(child.clone());
            }
            nodes.push(Node {
                names: child,
                kind,
                meta,
            });
        }
    }
    // Parents before children, and in name order within a directory.
    nodes.sort_by(|a, b| a.names.cmp(&b.names));
    Ok((nodes, skipped))
}
