//! [`FerryHelper`], the editor's helper: completion that knows what each argument is, and the
//! usage hint. Both come from the registry and the one parser ([`ferry_core::words`]): a
//! verb's parameters say what to complete (verb names, the server's names, local paths), its
//! flags complete after `-`, and its usage line is the hint, so a new verb gets both by being
//! registered, and `--`, flags and quoting read here as they do when the command runs.
//!
//! Completed names that the parser would split are put back in double quotes.

use std::borrow::Cow;
use std::path::Path;

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
        (words.start, pairs(items, quoted))
    }

    /// The candidates for a parameter of `kind`.
    fn of_kind(&self, kind: ParamKind, typed: &str) -> Vec<Item> {
        match kind {
            ParamKind::Verb => self.verbs(typed),
            ParamKind::RemotePath | ParamKind::RemoteDir | ParamKind::RemoteGlob => {
                remote(&self.remote.names(), typed)
            }
            ParamKind::LocalPath | ParamKind::LocalGlob => local(typed, false),
            ParamKind::LocalDir => local(typed, true),
            ParamKind::Text => Vec::new(),
        }
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
}

/// The candidates, quoted alike: when one needs quotes (or the user opened one), all get them,
/// so that their common prefix is still a prefix of each.
fn pairs(mut items: Vec<Item>, quoted: bool) -> Vec<Pair> {
    items.sort_by(|a, b| a.display.cmp(&b.display));
    let quote_all = quoted || items.iter().any(|i| needs_quotes(&i.word));
    items
        .into_iter()
        .map(|item| {
            let end = if item.open { "" } else { " " };
            let replacement = if quote_all {
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

/// The server's names that start with `typed`.
fn remote(names: &[String], typed: &str) -> Vec<Item> {
    names
        .iter()
        .filter(|n| n.starts_with(typed))
        .map(|n| Item::word(n.clone()))
        .collect()
}

/// Local entries that complete `typed`: files in its directory (the working directory when it
/// has none) whose names start with its last component, or only directories when `dirs`.
/// Directories end in `/` and leave the word open; dot files appear only when asked for; names
/// that cannot be typed or shown safely (not UTF-8, control characters) are left out.
fn local(typed: &str, dirs: bool) -> Vec<Item> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(i) => typed.split_at(i + 1),
        None => ("", typed),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let wanted = name.starts_with(prefix)
                && (prefix.starts_with('.') || !name.starts_with('.'))
                && !name.chars().any(char::is_control);
            if !wanted {
                return None;
            }
            let is_dir = Path::new(dir).join(&name).is_dir();
            if dirs && !is_dir {
                return None;
            }
            let slash = if is_dir { "/" } else { "" };
            Some(Item {
                display: format!("{name}{slash}"),
                word: format!("{dir}{name}{slash}"),
                open: is_dir,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn helper(names: &'static [&'static str]) -> FerryHelper {
        let remote = RemoteNames::new(move || Ok(names.iter().map(|n| n.to_string()).collect()));
        FerryHelper::new(ferry_commands::registry(), remote)
    }

    fn complete(helper: &FerryHelper, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = helper.candidates(line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn quoting_round_trips_through_the_parser() {
        for name in [
            "plain.txt",
            "my file.txt",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "#hash",
            "tab\there",
            "ünï ✓",
            "$HOME",
        ] {
            let words = ferry_core::words::split(&quote(name)).unwrap();
            assert_eq!(words, [name]);
        }
        assert_eq!(quote("plain.txt"), "plain.txt");
        assert_eq!(quote("my file.txt"), "\"my file.txt\"");
    }

    #[test]
    fn the_first_word_completes_verbs_ignoring_case() {
        let h = helper(&[]);
        assert_eq!(complete(&h, "down"), (0, vec!["DOWNLOAD ".into()]));
        assert_eq!(
            complete(&h, "D"),
            (0, vec!["DELETE ".into(), "DOWNLOAD ".into()])
        );
        assert_eq!(complete(&h, "  upl"), (2, vec!["UPLOAD ".into()]));
        assert_eq!(
            complete(&h, "").1.len(),
            ferry_commands::registry().iter().count()
        );
        assert_eq!(complete(&h, "HELP up"), (5, vec!["UPLOAD ".into()]));
        assert!(complete(&h, "FROB x").1.is_empty());
        assert!(complete(&h, "LIST x").1.is_empty(), "LIST takes nothing");
    }

    #[test]
    fn remote_arguments_complete_server_names_quoted_when_needed() {
        let h = helper(&["notes.txt", "my file.txt", "my-other", "say \"hi\""]);
        assert_eq!(complete(&h, "DOWNLOAD no"), (9, vec!["notes.txt ".into()]));
        assert_eq!(
            complete(&h, "delete my"),
            (7, vec!["\"my file.txt\" ".into(), "\"my-other\" ".into()])
        );
        assert_eq!(
            complete(&h, "DOWNLOAD 'my f"),
            (9, vec!["\"my file.txt\" ".into()])
        );
        assert_eq!(
            complete(&h, "DOWNLOAD say"),
            (9, vec!["\"say \\\"hi\\\"\" ".into()])
        );
        assert_eq!(complete(&h, "UPLOAD a.txt no").1, ["notes.txt "]);
        assert!(complete(&h, "DOWNLOAD x").1.is_empty());
    }

    #[test]
    fn local_arguments_complete_paths() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        fs::write(dir.path().join("report.pdf"), b"").unwrap();
        fs::write(dir.path().join("read me.txt"), b"").unwrap();
        fs::write(dir.path().join(".hidden"), b"").unwrap();
        fs::create_dir(dir.path().join("photos")).unwrap();
        fs::write(dir.path().join("photos/cat.jpg"), b"").unwrap();
        let h = helper(&["remote.txt"]);
        let line = format!("UPLOAD {base}/rep");
        assert_eq!(
            complete(&h, &line),
            (7, vec![format!("{base}/report.pdf ")])
        );
        let line = format!("UPLOAD {base}/read");
        assert_eq!(complete(&h, &line).1, [format!("\"{base}/read me.txt\" ")]);
        let line = format!("UPLOAD {base}/ph");
        assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
        let line = format!("UPLOAD {base}/photos/");
        assert_eq!(complete(&h, &line).1, [format!("{base}/photos/cat.jpg ")]);
        let line = format!("UPLOAD {base}/");
        let (_, pairs) = h.candidates(&line, line.len());
        let shown: Vec<_> = pairs.iter().map(|p| p.display.as_str()).collect();
        assert_eq!(shown, ["photos/", "read me.txt", "report.pdf"]);
        let line = format!("UPLOAD {base}/.h");
        assert_eq!(complete(&h, &line).1, [format!("{base}/.hidden ")]);
        // DOWNLOAD's second argument is local, its first remote.
        let line = format!("DOWNLOAD remote.txt {base}/ph");
        assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
        assert_eq!(complete(&h, "DOWNLOAD rem").1, ["remote.txt "]);
        // Flags take no argument's place.
        assert_eq!(complete(&h, "DOWNLOAD -r rem").1, ["remote.txt "]);
        let line = format!("DOWNLOAD --resume remote.txt {base}/ph");
        assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
    }

    #[test]
    fn the_hint_is_the_rest_of_the_usage() {
        let h = helper(&[]);
        let hint = |line| h.usage_hint(line).map(|u| u.display);
        assert_eq!(
            hint("UPL").as_deref(),
            Some("OAD [-r|--resume] <local-path> [<name>]")
        );
        assert_eq!(
            hint("upl").as_deref(),
            Some("oad [-r|--resume] <local-path> [<name>]")
        );
        assert_eq!(
            hint("UPLOAD").as_deref(),
            Some(" [-r|--resume] <local-path> [<name>]")
        );
        // A flag takes no argument's place.
        assert_eq!(hint("UPLOAD -r ").as_deref(), Some("<local-path> [<name>]"));
        assert_eq!(hint("UPLOAD --resume a.txt").as_deref(), Some(" [<name>]"));
        assert_eq!(hint("UPLOAD ").as_deref(), Some("<local-path> [<name>]"));
        assert_eq!(hint("UPLOAD a.txt").as_deref(), Some(" [<name>]"));
        assert_eq!(hint("upload a.txt ").as_deref(), Some("[<name>]"));
        assert_eq!(hint("UPLOAD a.txt b"), None);
        assert_eq!(hint("D"), None, "DELETE or DOWNLOAD");
        assert_eq!(hint("LIST"), None);
        assert_eq!(hint("FROB "), None);
        assert_eq!(hint(""), None);
        let upl = h.usage_hint("upl").unwrap();
        assert_eq!(
            upl.completion(),
            Some("oad "),
            "Right-arrow takes the name only"
        );
        assert_eq!(h.usage_hint("UPLOAD ").unwrap().completion(), None);
    }

    #[test]
    fn after_a_double_dash_every_word_is_an_argument_for_completion_and_hints() {
        let h = helper(&["notes.txt", "-odd"]);
        assert_eq!(complete(&h, "DOWNLOAD -- no").1, ["notes.txt "]);
        assert_eq!(complete(&h, "DOWNLOAD -- -o").1, ["-odd "]);
        let hint = |line| h.usage_hint(line).map(|u| u.display);
        assert_eq!(hint("UPLOAD -- ").as_deref(), Some("<local-path> [<name>]"));
        assert_eq!(hint("UPLOAD -- -x").as_deref(), Some(" [<name>]"));
        assert_eq!(hint("UPLOAD -- a ").as_deref(), Some("[<name>]"));
    }

    #[test]
    fn flags_complete_after_a_dash() {
        let h = helper(&["notes.txt"]);
        assert_eq!(complete(&h, "UPLOAD --r"), (7, vec!["--resume ".into()]));
        assert_eq!(complete(&h, "DOWNLOAD -"), (9, vec!["--resume ".into()]));
        assert_eq!(complete(&h, "DOWNLOAD -r").1, ["-r "]);
        assert!(complete(&h, "DELETE -").1.is_empty(), "DELETE has no flags");
    }

    #[test]
    fn aliases_complete_and_hint_as_their_verb() {
        let h = helper(&["notes.txt"]);
        assert_eq!(complete(&h, "pu").1, ["put "]);
        assert_eq!(complete(&h, "get no").1, ["notes.txt "]);
        assert_eq!(complete(&h, "? up").1, ["UPLOAD "]);
        let hint = |line| h.usage_hint(line).map(|u| u.display);
        assert_eq!(
            hint("put").as_deref(),
            Some(" [-r|--resume] <local-path> [<name>]")
        );
        assert_eq!(hint("rm ").as_deref(), Some("<name>"));
    }
}
