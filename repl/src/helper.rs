//! [`FerryHelper`], the editor's helper: completion that knows what each argument is, and the
//! usage hint. Both come from the registry: a verb's `args` say what to complete (verb names,
//! the server's names, local paths) and its `usage` is the hint, so a new verb gets both by
//! being registered.
//!
//! Words are read as `shlex` reads them (quotes, backslashes, `#` comments), and completed
//! names that `shlex` would split are put back in double quotes.

use std::borrow::Cow;
use std::path::Path;

use ferry_core::{Arg, Registry, Verb};
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
        let Some(words) = Words::parse(&line[..pos]) else {
            return (pos, Vec::new());
        };
        let kind = match words.done.first() {
            None => Some(Arg::Verb),
            Some(verb) => self
                .registry
                .find(verb)
                .and_then(|v| v.args.get(positional(v, &words.done[1..])).copied()),
        };
        let items = match kind {
            Some(Arg::Verb) => self.verbs(&words.current),
            Some(Arg::Remote) => remote(&self.remote.names(), &words.current),
            Some(Arg::Local) => local(&words.current),
            None => Vec::new(),
        };
        let quoted = line[words.start..pos].starts_with(['"', '\'']);
        (words.start, pairs(items, quoted))
    }

    fn verbs(&self, typed: &str) -> Vec<Item> {
        self.registry
            .iter()
            .filter(|v| starts_with_ignoring_case(v.name, typed))
            .map(|v| Item::word(v.name.to_string()))
            .collect()
    }

    /// The hint for `line` with the cursor at its end: the rest of the verb's usage.
    pub fn usage_hint(&self, line: &str) -> Option<UsageHint> {
        let words = Words::parse(line)?;
        let in_word = words.start < line.len();
        match words.done.split_first() {
            None => {
                let typed = words.current.as_str();
                let verb = self.hinted_verb(typed)?;
                let rest = &verb.name[typed.len()..];
                let rest = if typed.bytes().any(|b| b.is_ascii_uppercase()) {
                    rest.to_string()
                } else {
                    rest.to_ascii_lowercase()
                };
                let display = format!("{rest}{}", &verb.usage[verb.name.len()..]);
                (!display.is_empty()).then(|| UsageHint {
                    display,
                    completion: format!("{rest} "),
                })
            }
            Some((first, args)) => {
                let verb = self.registry.find(first)?;
                let typing_flag = in_word && words.current.starts_with('-');
                let shown = positional(verb, args) + usize::from(in_word && !typing_flag);
                let rest = placeholders(verb.usage).get(shown..)?.join(" ");
                if rest.is_empty() {
                    return None;
                }
                let display = if in_word { format!(" {rest}") } else { rest };
                Some(UsageHint {
                    display,
                    completion: String::new(),
                })
            }
        }
    }

    /// The verb being typed: the only one `typed` starts, or the one it names exactly.
    fn hinted_verb(&self, typed: &str) -> Option<&'static Verb> {
        if typed.is_empty() {
            return None;
        }
        if let Some(verb) = self.registry.find(typed) {
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

/// The words of a line as far as the cursor, read as `shlex` reads them.
#[derive(Debug, PartialEq, Eq)]
struct Words {
    /// The words before the one being typed.
    done: Vec<String>,
    /// The word being typed, unquoted (empty after whitespace).
    current: String,
    /// Where the word being typed starts (the line's length after whitespace).
    start: usize,
}

impl Words {
    /// `None` inside a `#` comment, where there is nothing to complete.
    fn parse(line: &str) -> Option<Words> {
        let mut done = Vec::new();
        let mut word: Option<(usize, String)> = None;
        let mut chars = line.char_indices();
        while let Some((i, c)) = chars.next() {
            if matches!(c, ' ' | '\t' | '\n') {
                done.extend(word.take().map(|(_, w)| w));
                continue;
            }
            if word.is_none() && c == '#' {
                return None;
            }
            let text = &mut word.get_or_insert_with(|| (i, String::new())).1;
            match c {
                '\'' => text.extend(chars.by_ref().map(|(_, c)| c).take_while(|&c| c != '\'')),
                '"' => {
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => match chars.next() {
                                Some((_, e @ ('$' | '`' | '"' | '\\'))) => text.push(e),
                                Some((_, '\n')) | None => {}
                                Some((_, e)) => {
                                    text.push('\\');
                                    text.push(e);
                                }
                            },
                            c => text.push(c),
                        }
                    }
                }
                '\\' => match chars.next() {
                    Some((_, '\n')) | None => {}
                    Some((_, e)) => text.push(e),
                },
                c => text.push(c),
            }
        }
        let (start, current) = word.unwrap_or((line.len(), String::new()));
        Some(Words {
            done,
            current,
            start,
        })
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
/// has none) whose names start with its last component. Directories end in `/` and leave the
/// word open; dot files appear only when asked for; names that cannot be typed or shown safely
/// (not UTF-8, control characters) are left out.
fn local(typed: &str) -> Vec<Item> {
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
            let slash = if is_dir { "/" } else { "" };
            Some(Item {
                display: format!("{name}{slash}"),
                word: format!("{dir}{name}{slash}"),
                open: is_dir,
            })
        })
        .collect()
}

/// How many of `args` (the words after the verb) are positional: a flag the verb declares
/// (`-r`, `--resume`) takes no argument's place, so completion and hints skip it.
fn positional(verb: &Verb, args: &[String]) -> usize {
    args.iter()
        .filter(|w| {
            !verb.flags.iter().any(|f| {
                w.strip_prefix("--") == Some(f.long)
                    || w.strip_prefix('-').and_then(|c| c.parse::<char>().ok()) == Some(f.short)
            })
        })
        .count()
}

/// The argument placeholders of a usage line (`[<name>]`, `<local-path>`), after the verb and
/// without flag groups (`[-r|...]`).
fn placeholders(usage: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = None;
    for (i, c) in usage.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ' ' if depth == 0 => {
                if let Some(s) = start.take() {
                    out.push(&usage[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    out.extend(start.map(|s| &usage[s..]));
    let mut out = out.split_off(1.min(out.len()));
    out.retain(|p| !p.starts_with("[-"));
    out
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
    fn words_are_read_as_shlex_reads_them() {
        let cases = [
            "",
            "LIST",
            "UPLOAD a b",
            "UPLOAD 'my file' \"x\\\"y\"",
            "a\\ b c",
            "x\"a b\"'c d'e  f",
            "DOWNLOAD \"a\\$b\\n\"",
        ];
        for line in cases {
            let words = Words::parse(line).unwrap();
            let mut all = words.done.clone();
            if words.start < line.len() {
                all.push(words.current.clone());
            }
            assert_eq!(Some(all), shlex::split(line), "{line:?}");
        }
        let open = Words::parse("DOWNLOAD 'my fi").unwrap();
        assert_eq!((open.current.as_str(), open.start), ("my fi", 9));
        let after = Words::parse("UPLOAD a ").unwrap();
        assert_eq!(
            (after.done.len(), after.current.as_str(), after.start),
            (2, "", 9)
        );
        assert_eq!(Words::parse("LIST # UPLOAD"), None);
    }

    #[test]
    fn quoting_round_trips_through_shlex() {
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
            assert_eq!(shlex::split(&quote(name)), Some(vec![name.to_string()]));
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
    fn placeholders_keep_brackets_whole() {
        assert_eq!(
            placeholders("UPLOAD <local-path> [<name>]"),
            ["<local-path>", "[<name>]"]
        );
        assert_eq!(placeholders("X [<a> <b>] <c>"), ["[<a> <b>]", "<c>"]);
        assert!(placeholders("LIST").is_empty());
        assert_eq!(
            placeholders("DOWNLOAD [-r|--resume] <name> [<local-path>]"),
            ["<name>", "[<local-path>]"]
        );
    }
}
