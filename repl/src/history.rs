//! Command history kept across sessions: loaded at start, each entered line appended to the
//! file as it is entered (a crash loses nothing), at most [`MAX_ENTRIES`] kept, consecutive
//! duplicates dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustyline::history::FileHistory;
use rustyline::{Editor, Helper};

/// How many entries the history keeps, in memory and in its file.
pub const MAX_ENTRIES: usize = 1000;

/// The history file: `file` when given, none when `disabled`, else [`default_path`] as the
/// process environment gives it.
pub fn choose(file: Option<PathBuf>, disabled: bool) -> Option<PathBuf> {
    if disabled {
        return None;
    }
    file.or_else(|| default_path(|name| std::env::var_os(name)))
}

/// `$XDG_DATA_HOME/ferry/history`, else `$HOME/.local/share/ferry/history` (the XDG default);
/// none without a usable home. A relative `XDG_DATA_HOME` is ignored, as the spec says.
pub fn default_path(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    ferry_core::dirs::data_file("history", env)
}

/// Loads `path` into the editor's history, creating its directory; a missing file is fine.
pub fn load<H: Helper>(editor: &mut Editor<H, FileHistory>, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
    }
    match editor.load_history(path) {
        Ok(()) => Ok(()),
        Err(rustyline::error::ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read '{}'", path.display())),
    }
}

/// Adds an entered line to the history and, when it was kept (not a repeat of the last one),
/// appends it to `path` at once.
pub fn record<H: Helper>(
    editor: &mut Editor<H, FileHistory>,
    path: Option<&Path>,
    line: &str,
) -> anyhow::Result<()> {
    if editor.add_history_entry(line)?
        && let Some(path) = path
    {
        editor
            .append_history(path)
            .with_context(|| format!("cannot write '{}'", path.display()))?;
    }
    Ok(())
}

/// The editor settings the history relies on.
pub fn configure(
    builder: rustyline::config::Builder,
) -> rustyline::Result<rustyline::config::Builder> {
    Ok(builder
        .max_history_size(MAX_ENTRIES)?
        .history_ignore_dups(true)?
        .auto_add_history(false))
}

#[cfg(test)]
mod tests {
    use rustyline::history::History;

    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_default_follows_xdg() {
        fn path(vars: &[(&str, &str)]) -> Option<PathBuf> {
            default_path(env(vars))
        }
        assert_eq!(
            path(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/data/ferry/history"))
        );
        assert_eq!(
            path(&[("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.local/share/ferry/history"))
        );
        for ignored in ["", "relative/dir"] {
            assert_eq!(
                path(&[("XDG_DATA_HOME", ignored), ("HOME", "/home/u")]),
                Some(PathBuf::from("/home/u/.local/share/ferry/history"))
            );
        }
        assert_eq!(path(&[("HOME", "")]), None);
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn a_given_file_wins_and_disabling_wins_over_it() {
        let file = PathBuf::from("/tmp/h");
        assert_eq!(choose(Some(file.clone()), false), Some(file.clone()));
        assert_eq!(choose(Some(file), true), None);
    }

    fn editor(max: usize) -> Editor<(), FileHistory> {
        let config = configure(rustyline::Config::builder())
            .unwrap()
            .max_history_size(max)
            .unwrap()
            .build();
        Editor::with_config(config).unwrap()
    }

    fn entries(editor: &Editor<(), FileHistory>) -> Vec<String> {
        editor.history().iter().cloned().collect()
    }

    #[test]
    fn lines_are_saved_as_entered_bounded_and_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new dir/history");
        let mut first = editor(3);
        load(&mut first, &path).unwrap();
        for line in ["LIST", "LIST", "UPLOAD a", "LIST"] {
            record(&mut first, Some(&path), line).unwrap();
        }
        // Nothing is saved at exit: the file is already complete, as after a crash.
        let mut second = editor(3);
        load(&mut second, &path).unwrap();
        assert_eq!(entries(&second), ["LIST", "UPLOAD a", "LIST"]);
        for line in ["HELP", "DELETE \"my file\""] {
            record(&mut second, Some(&path), line).unwrap();
        }
        let mut third = editor(3);
        load(&mut third, &path).unwrap();
        assert_eq!(entries(&third), ["LIST", "HELP", "DELETE \"my file\""]);
        assert_eq!(third.history().len(), 3);
    }

    #[test]
    fn without_a_file_history_stays_in_memory() {
        let mut editor = editor(10);
        record(&mut editor, None, "LIST").unwrap();
        assert_eq!(entries(&editor), ["LIST"]);
    }
}
