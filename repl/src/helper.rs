//! [`FerryHelper`], the editor's helper: completion that knows what each argument is, and the
//! usage hint. Both come from the registry and the one parser ([`ferry_core::words`]): a
//! verb's parameters say what to complete (verb names, paths on the server or local ones, or
//! only directories), its flags complete after `-`, and its usage line is the hint, so a new
//! verb gets both by being registered, and `--`, flags and quoting read here as they do when
//! the command runs.
//!
//! A path completes with the entries of the directory typed before its last `/`, kept as
//! typed; a directory ends in `/` and leaves the word open for the next Tab. Completed words
//! that the parser would split are put back in double quotes.

use std::borrow::Cow;
use std::path::PathBuf;

use ferry_core::words::{At, split_partial};
use ferry_core::{ParamKind, Registry, Verb};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::{Context, Helper, Validator};

use crate::remote::RemoteNames;

/// Completion, hints and their highlighting for the prompt.
#[derive(Helper, Validator)]
pub struct FerryHelper {
    registry: &'static Registry,
    remote: RemoteNames,
}

impl FerryHelper {
    /// A helper for `registry`'s verbs, completing remote names from `remote`.
    pub fn new(registry: &'static Registry, remote: RemoteNames) -> FerryHelper {
        FerryHelper { registry, remote }
    }

    /// What `line` completes to with the cursor at `pos`: where the replaced word starts, and
    /// the candidates (display, replacement).
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let Some(words) = split_partial(&line[..pos]) else {
            return (pos, Vec::new());
        };
        let typed = words.current.as_str();
        let items = match words.done.split_first() {
            None => self.verbs(typed),
            Some((first, rest)) => match self.registry.lookup(first) {
                Some(verb) => match verb.locate(rest, typed).at {
                    At::Param(param) => self.of_kind(param.kind, typed),
                    At::Flag => flags(verb, typed),
                    At::FlagValue(_) | At::Nothing => Vec::new(),
                },
                None => Vec::new(),
            },
        };
        let quoted = line[words.start..pos].starts_with(['"', '\'']);
        (words.start, pairs(items, typed, quoted))
    }

    /// The candidates for a parameter of `kind`.
    fn of_kind(&self, kind: ParamKind, typed: &str) -> Vec<Item> {
        match kind {
            ParamKind::Verb => self.verbs(typed),
            ParamKind::RemotePath | ParamKind::RemoteGlob => self.remote(typed, false),
            ParamKind::RemoteDir => self.remote(typed, true),
            ParamKind::LocalPath | ParamKind::LocalGlob => local(typed, false),
            ParamKind::LocalDir => local(typed, true),
            ParamKind::Text => Vec::new(),
        }
    }

    /// The server's entries that complete `typed`: those in its directory (resolved against
    /// the working directory; the working directory itself when it names none) whose names
    /// start with its last component, or only directories when `dirs`.
    fn remote(&self, typed: &str, dirs: bool) -> Vec<Item> {
        let (dir, prefix) = split_dir(typed);
        self.remote
            .names(dir)
            .into_iter()
            .filter_map(|name| {
                let is_dir = name.ends_with('/');
                let name = name.strip_suffix('/').unwrap_or(&name);
                let wanted = name.starts_with(prefix) && (is_dir || !dirs);
                wanted.then(|| Item::entry(dir, name, is_dir))
            })
            .collect()
    }

    /// Verb names that start with `typed`, or, when none does, aliases that do.
    fn verbs(&self, typed: &str) -> Vec<Item> {
        let names: Vec<Item> = self
            .registry
            .iter()
            .filter(|v| starts_with_ignoring_case(v.name, typed))
            .map(|v| Item::word(v.name.to_string()))
            .collect();
        if !names.is_empty() || typed.is_empty() {
            return names;
        }
        self.registry
            .iter()
            .flat_map(|v| v.aliases.iter())
            .filter(|a| starts_with_ignoring_case(a, typed))
            .map(|a| Item::word(a.to_string()))
            .collect()
    }

    /// The hint for `line` with the cursor at its end: the rest of the verb's usage.
    pub fn usage_hint(&self, line: &str) -> Option<UsageHint> {
        let words = split_partial(line)?;
        let in_word = words.start < line.len();
        let Some((first, rest)) = words.done.split_first() else {
            return self.verb_hint(&words.current);
        };
        let verb = self.registry.lookup(first)?;
        let cursor = verb.locate(rest, &words.current);
        // The word being typed fills its parameter's place.
        let typing = in_word && matches!(cursor.at, At::Param(_));
        let rest = verb.rest_of_usage(cursor.positionals + usize::from(typing));
        if rest.is_empty() {
            return None;
        }
        let display = if in_word { rest } else { rest[1..].to_string() };
        Some(UsageHint {
            display,
            completion: String::new(),
        })
    }

    /// The hint while the verb itself is typed: the rest of its name, then its usage.
    fn verb_hint(&self, typed: &str) -> Option<UsageHint> {
        let verb = self.hinted_verb(typed)?;
        let rest = if starts_with_ignoring_case(verb.name, typed) {
            &verb.name[typed.len()..]
        } else {
            // An alias, typed whole.
            ""
        };
        let rest = if typed.bytes().any(|b| b.is_ascii_uppercase()) {
            rest.to_string()
        } else {
            rest.to_ascii_lowercase()
        };
        let display = format!("{rest}{}", &verb.usage()[verb.name.len()..]);
        (!display.is_empty()).then(|| UsageHint {
            display,
            completion: format!("{rest} "),
        })
    }

    /// The verb being typed: the one it names (or an alias of), or the only one it starts.
    fn hinted_verb(&self, typed: &str) -> Option<&'static Verb> {
        if typed.is_empty() {
            return None;
        }
        if let Some(verb) = self.registry.lookup(typed) {
            return Some(verb);
        }
        let mut matching = self
            .registry
            .iter()
            .filter(|v| starts_with_ignoring_case(v.name, typed));
        let verb = matching.next()?;
        matching.next().is_none().then_some(verb)
    }
}

/// A verb's flags that complete `typed`: the long forms it starts, and a short form it names.
fn flags(verb: &Verb, typed: &str) -> Vec<Item> {
    verb.flags
        .iter()
        .flat_map(|f| {
            let long = format!("--{}", f.long);
            let short = f.short.map(|c| format!("-{c}"));
            if long.starts_with(typed) {
                Some(long)
            } else {
                short.filter(|s| s == typed)
            }
        })
        .map(Item::word)
        .collect()
}

impl Completer for FerryHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for FerryHelper {
    type Hint = UsageHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<UsageHint> {
        if pos < line.len() {
            return None;
        }
        self.usage_hint(line)
    }
}

impl Highlighter for FerryHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dim, so that the hint never reads as typed text (a style, not a colour).
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

/// A usage hint: shown dimmed after the cursor; Right-arrow takes only the verb's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageHint {
    /// What is shown.
    pub display: String,
    /// What Right-arrow inserts (the rest of the verb name, never the placeholders).
    pub completion: String,
}

impl Hint for UsageHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        Some(self.completion.as_str()).filter(|c| !c.is_empty())
    }
}

/// A completion before quoting: what is shown, the word it stands for, and whether the word
/// goes on (a directory: no closing quote, no space).
struct Item {
    display: String,
    word: String,
    open: bool,
}

impl Item {
    fn word(word: String) -> Item {
        Item {
            display: word.clone(),
            word,
            open: false,
        }
    }

    /// The entry `name` of the directory typed as `dir`: shown by its name (escaped), completed with
    /// the directory as typed; a directory with a trailing `/`, open for the next Tab.
    fn entry(dir: &str, name: &str, is_dir: bool) -> Item {
        let slash = if is_dir { "/" } else { "" };
        Item {
            display: format!("{}{slash}", ferry_core::name::escape_full(name)),
            word: format!("{dir}{name}{slash}"),
            open: is_dir,
        }
    }
}

/// The candidates for the word `typed`, quoted alike: when one needs quotes (or the user
/// opened one), all get them, so that their common prefix is still a prefix of each.
///
/// Except candidates that share nothing past `typed`: Tab only lists those, and quoted or
/// closed by a space, their common prefix could be longer by a lone `"` or a space, which Tab
/// would insert. They are left bare.
fn pairs(mut items: Vec<Item>, typed: &str, quoted: bool) -> Vec<Pair> {
    items.sort_by(|a, b| a.display.cmp(&b.display));
    let listed_only = items.len() > 1 && common_prefix(&items).len() <= typed.len();
    let quote_all = quoted || items.iter().any(|i| needs_quotes(&i.word));
    items
        .into_iter()
        .map(|item| {
            let end = if item.open { "" } else { " " };
            let replacement = if listed_only {
                item.word
            } else if quote_all {
                let close = if item.open { "" } else { "\"" };
                format!("\"{}{close}{end}", escape_double(&item.word))
            } else {
                format!("{}{end}", item.word)
            };
            Pair {
                display: item.display,
                replacement,
            }
        })
        .collect()
}

/// The longest prefix that every item's word starts with.
fn common_prefix(items: &[Item]) -> &str {
    let Some((first, rest)) = items.split_first() else {
        return "";
    };
    let mut len = first.word.len();
    for item in rest {
        len = first.word[..len]
            .char_indices()
            .zip(item.word.chars())
            .find(|((_, a), b)| a != b)
            .map_or(len.min(item.word.len()), |((i, _), _)| i);
    }
    &first.word[..len]
}

/// True when `shlex` would not read `word` back as itself.
pub fn needs_quotes(word: &str) -> bool {
    word.is_empty() || word.starts_with('#') || word.contains([' ', '\t', '\n', '\'', '"', '\\'])
}

/// `word` inside double quotes: a backslash before `"` and `\`, as `shlex` reads them.
fn escape_double(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `word` as one `shlex` word: unchanged if it can be, else in double quotes.
pub fn quote(word: &str) -> String {
    if needs_quotes(word) {
        format!("\"{}\"", escape_double(word))
    } else {
        word.to_string()
    }
}

fn starts_with_ignoring_case(name: &str, typed: &str) -> bool {
    name.len() >= typed.len()
        && name.is_char_boundary(typed.len())
        && name[..typed.len()].eq_ignore_ascii_case(typed)
}

/// `typed` split after its last `/`: the directory as typed (empty for the working one) and
/// the start of a name in it.
fn split_dir(typed: &str) -> (&str, &str) {
    match typed.rfind('/') {
        Some(i) => typed.split_at(i + 1),
        None => ("", typed),
    }
}

/// Local entries that complete `typed`: those in its directory (the working directory when it
/// names none; `~/` is the home directory) whose names start with its last component, or only
/// directories when `dirs`. Dot files appear only when asked for; names that cannot be typed
/// or shown safely (not UTF-8, control characters) are left out.
fn local(typed: &str, dirs: bool) -> Vec<Item> {
    let (dir, prefix) = split_dir(typed);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let path = match (dir.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if dir.is_empty() => PathBuf::from("."),
        _ => PathBuf::from(dir),
    };
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let wanted = name.starts_with(prefix)
                && (prefix.starts_with('.') || !name.starts_with('.'))
                && !name.chars().any(char::is_control);
            let is_dir = wanted && path.join(&name).is_dir();
            (wanted && (is_dir || !dirs)).then(|| Item::entry(dir, &name, is_dir))
        })
        .collect()
}

#[cfg(test)]
mod tests;
