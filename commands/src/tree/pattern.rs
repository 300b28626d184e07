//! Patterns: `*`, `?` and `[...]` within a name, expanded by the client, local ones against the
//! local disk and remote ones against the server's listings (one listing per directory).
//! A pattern that matches nothing is an error naming it. A name holding one of those
//! characters literally is matched by enclosing it in brackets (`[*]`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use ferry_core::store::{EntryKind, Meta};
use ferry_core::{ClientCtx, RemotePath, WireError};

use super::walk;
use glob::{MatchOptions, Pattern};

/// How names match: case counts, `*` never crosses a `/`, and a leading `.` is matched only
/// by a pattern that starts with one, as in a shell.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// Whether a typed word is a pattern.
pub(crate) fn is_pattern(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// A pattern that matched nothing: a missing file, as far as a program reading `--json`'s
/// error codes is concerned (`not-found`).
fn no_match(message: String) -> anyhow::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, message).into()
}

/// The local paths a pattern matches, sorted; `~` is the home directory.
pub(crate) fn local(typed: &str) -> anyhow::Result<Vec<PathBuf>> {
    let expanded = crate::local_path(typed);
    let text = expanded
        .to_str()
        .with_context(|| format!("pattern '{typed}' is not UTF-8"))?;
    let mut found = Vec::new();
    for path in glob::glob_with(text, MATCH).with_context(|| format!("pattern '{typed}'"))? {
        found.push(path.with_context(|| format!("matching '{typed}'"))?);
    }
    if found.is_empty() {
        return Err(no_match(format!("no local file matches '{typed}'")));
    }
    found.sort();
    Ok(found)
}

/// What a remote pattern matched: each path, with its kind and meta when a listing told them.
pub(crate) type Matches = Vec<(RemotePath, Option<(EntryKind, Meta)>)>;

/// The remote paths a pattern matches, resolved against the working directory like any
/// typed path, sorted. Each directory that a pattern component applies to is listed once.
pub(crate) fn remote(ctx: &mut ClientCtx, typed: &str) -> anyhow::Result<Matches> {
    let start = if typed.starts_with('/') {
        RemotePath::root()
    } else {
        ctx.cwd.clone()
    };
    let mut found: Matches = vec![(start, Some((EntryKind::Dir, Meta { size: 0, mtime: 0 })))];
    let parts: Vec<&str> = typed.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        found = match *part {
            "." => found,
            ".." => found
                .into_iter()
                .map(|(p, _)| (p.parent().unwrap_or_default(), None))
                .collect(),
            part if is_pattern(part) => expand(ctx, found, part, typed, last)?,
            part => found
                .into_iter()
                .map(|(p, _)| Ok((p.join(part)?, None)))
                .collect::<anyhow::Result<_>>()?,
        };
    }
    if found.is_empty() {
        return Err(no_match(format!("nothing on the server matches '{typed}'")));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    Ok(found)
}

/// The entries matching `part` in each directory of `dirs` (only directories, unless it is
/// the `last` component).
fn expand(
    ctx: &mut ClientCtx,
    dirs: Matches,
    part: &str,
    typed: &str,
    last: bool,
) -> anyhow::Result<Matches> {
    let pattern = Pattern::new(part).with_context(|| format!("pattern '{typed}'"))?;
    let mut found: Matches = Vec::new();
    let mut bytes = 0;
    for (dir, known) in dirs {
        // A directory the listing said is not one (or that cannot be listed) matches nothing.
        if matches!(known, Some((EntryKind::File, _))) {
            continue;
        }
        let entries = match crate::list::fetch(ctx, &dir) {
            Ok((entries, _)) => entries,
            // A directory the server refuses to list (gone, a link) holds no match; a broken
            // connection is an error.
            Err(e) if matches!(e.downcast_ref(), Some(WireError::Remote(_))) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            if (last || entry.kind == EntryKind::Dir) && pattern.matches_with(&entry.name, MATCH) {
                let path = dir.join(&entry.name)?;
                bytes += walk::cost(path.components());
                if found.len() >= walk::MAX_TREE || bytes > walk::MAX_TREE_BYTES {
                    bail!("'{typed}' matches too many entries; narrow it");
                }
                found.push((path, Some((entry.kind, entry.meta))));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_wildcards_are_patterns_and_names_match_as_in_a_shell() {
        assert!(is_pattern("*.log") && is_pattern("a?") && is_pattern("[ab]"));
        assert!(!is_pattern("plain name.txt"));
        let star = Pattern::new("*.log").unwrap();
        assert!(star.matches_with("a.log", MATCH));
        assert!(!star.matches_with(".hidden.log", MATCH), "no leading dot");
        assert!(!star.matches_with("A.LOG", MATCH), "case counts");
        let literal = Pattern::new("[*]").unwrap();
        assert!(literal.matches_with("*", MATCH) && !literal.matches_with("a", MATCH));
    }

    #[test]
    fn a_local_pattern_matches_sorted_or_fails_naming_itself() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "c.txt", ".d.log"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let typed = format!("{}/*.log", dir.path().display());
        let names: Vec<_> = local(&typed)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log", "b.log"]);
        let none = format!("{}/*.gif", dir.path().display());
        let err = local(&none).unwrap_err().to_string();
        assert_eq!(err, format!("no local file matches '{none}'"));
    }
}
