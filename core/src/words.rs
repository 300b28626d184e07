//! The one parser of command lines: a line into words, and words into a verb's [`Args`].
//!
//! [`split`] reads a line as a shell would (quotes, backslashes, `#` comments, exactly as the
//! `shlex` crate reads them), then [`Verb::parse`] sorts the words after the verb into its
//! flags and parameters.
//!
//! Running a command, completing a word and hinting at what comes next all go through here,
//! so that `--`, flags and quoting mean the same everywhere. [`split_partial`] reads a line cut
//! at the cursor (an open quote, a word half typed), and [`Verb::locate`] says what the word
//! at the cursor is for.

use crate::error::{ErrorKind, Failure};
use crate::verb::{Flag, Param, Verb};

/// A line cut at the cursor, split into words.
#[derive(Debug, PartialEq, Eq)]
pub struct Partial {
    /// The whole words before the one being typed.
    pub done: Vec<String>,
    /// The word being typed, unquoted (empty after whitespace).
    pub current: String,
    /// Where the word being typed starts in the line (the line's length after whitespace).
    pub start: usize,
    /// The line ends inside a quote.
    pub open_quote: bool,
}

/// Splits a line cut at the cursor; `None` inside a `#` comment, where there is nothing to
/// type.
pub fn split_partial(line: &str) -> Option<Partial> {
    let (partial, in_comment) = tokenize(line);
    (!in_comment).then_some(partial)
}

/// Splits a whole command line into words; an open quote (or a final backslash) is an error.
pub fn split(line: &str) -> Result<Vec<String>, UsageError> {
    let (partial, in_comment) = tokenize(line);
    if partial.open_quote {
        return Err(UsageError("unbalanced quotes".into()));
    }
    let mut words = partial.done;
    if !in_comment && partial.start < line.len() {
        words.push(partial.current);
    }
    Ok(words)
}

/// The words of `line` as far as it goes, and whether it ends inside a comment. A `#` that
/// starts a word starts a comment, which runs to the end of its line.
fn tokenize(line: &str) -> (Partial, bool) {
    let mut done = Vec::new();
    let mut word: Option<(usize, String)> = None;
    let mut open_quote = false;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        if matches!(c, ' ' | '\t' | '\n') {
            done.extend(word.take().map(|(_, w)| w));
            continue;
        }
        if word.is_none() && c == '#' {
            if !chars.by_ref().any(|(_, c)| c == '\n') {
                let partial = Partial {
                    done,
                    current: String::new(),
                    start: line.len(),
                    open_quote: false,
                };
                return (partial, true);
            }
            continue;
        }
        let text = &mut word.get_or_insert_with(|| (i, String::new())).1;
        open_quote = match c {
            '\'' => !single_quoted(&mut chars, text),
            '"' => !double_quoted(&mut chars, text),
            '\\' => match chars.next() {
                Some((_, '\n')) => false,
                Some((_, e)) => {
                    text.push(e);
                    false
                }
                None => true,
            },
            c => {
                text.push(c);
                false
            }
        };
    }
    let (start, current) = word.unwrap_or((line.len(), String::new()));
    let partial = Partial {
        done,
        current,
        start,
        open_quote,
    };
    (partial, false)
}

/// Reads the rest of a single-quoted part into `text`; false when the line ends inside it.
fn single_quoted(chars: &mut std::str::CharIndices<'_>, text: &mut String) -> bool {
    for (_, c) in chars.by_ref() {
        if c == '\'' {
            return true;
        }
        text.push(c);
    }
    false
}

/// Reads the rest of a double-quoted part into `text`; false when the line ends inside it.
/// Inside double quotes a backslash escapes only `$`, `` ` ``, `"`, `\` and a newline.
fn double_quoted(chars: &mut std::str::CharIndices<'_>, text: &mut String) -> bool {
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => return true,
            '\\' => match chars.next() {
                Some((_, e @ ('$' | '`' | '"' | '\\'))) => text.push(e),
                Some((_, '\n')) => {}
                None => return false,
                Some((_, e)) => {
                    text.push('\\');
                    text.push(e);
                }
            },
            c => text.push(c),
        }
    }
    false
}

/// A command line that does not fit its verb, or cannot be read: the message says why, and
/// ends with the usage line when there is a verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::new(ErrorKind::BadRequest, e.0)
    }
}

/// A command's words after the verb, sorted into its flags and parameters.
#[derive(Clone, Debug)]
pub struct Args {
    verb: &'static Verb,
    /// Each positional word, with the index of the parameter it went to.
    values: Vec<(usize, String)>,
    /// Each flag given, with its value if it takes one.
    flags: Vec<(&'static Flag, Option<String>)>,
}

impl PartialEq for Args {
    fn eq(&self, other: &Args) -> bool {
        std::ptr::eq(self.verb, other.verb)
            && self.values == other.values
            && self.flags == other.flags
    }
}

impl Args {
    /// The verb these are the arguments of.
    pub fn verb(&self) -> &'static Verb {
        self.verb
    }

    /// The word given for the required parameter `param`.
    ///
    /// # Panics
    /// When the verb has no such required parameter: a bug in the verb, caught by its tests.
    pub fn one(&self, param: &str) -> &str {
        let index = self.index(param);
        assert!(
            !self.verb.params[index].optional,
            "{}'s parameter '{param}' is optional",
            self.verb.name
        );
        self.get(param).expect("a required parameter was checked")
    }

    /// The word given for `param`, if any (the first, for a repeated one).
    pub fn get(&self, param: &str) -> Option<&str> {
        self.all(param).next()
    }

    /// Every word given for `param`, in order.
    pub fn all(&self, param: &str) -> impl Iterator<Item = &str> {
        let index = self.index(param);
        self.values
            .iter()
            .filter(move |(i, _)| *i == index)
            .map(|(_, w)| w.as_str())
    }

    /// True when the flag with this long name was given.
    pub fn flag(&self, long: &str) -> bool {
        self.flags.iter().any(|(f, _)| f.long == long)
    }

    /// The value of the flag with this long name, if it was given (the last, if repeated).
    pub fn value(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| f.long == long)
            .and_then(|(_, v)| v.as_deref())
    }

    fn index(&self, param: &str) -> usize {
        self.verb
            .params
            .iter()
            .position(|p| p.name == param)
            .unwrap_or_else(|| panic!("{} has no parameter '{param}'", self.verb.name))
    }
}

/// One word after the verb, as the flag rules read it.
enum Word<'w> {
    /// A declared flag, with the value given to it (after `=`, or the next word).
    Flag(&'static Flag, Option<&'w str>),
    /// A flag that needs a value, and the line ended first.
    NoValue(&'static Flag),
    /// A word that looks like a flag and is not one of the verb's.
    Unknown(&'w str),
    /// `--`: every word after it is positional.
    EndOfFlags,
    /// A positional word.
    Positional(&'w str),
}

/// Reads `words` (after the verb) by the flag rules: `-x` and `--long` are flags wherever
/// they stand, `--long=value` or `--long value` gives a flag its value, `--` ends the flags,
/// and a lone `-` is positional.
fn scan<'w>(verb: &Verb, words: &'w [String]) -> Vec<Word<'w>> {
    let mut out = Vec::new();
    let mut words = words.iter().map(String::as_str);
    while let Some(word) = words.next() {
        if word == "--" {
            out.push(Word::EndOfFlags);
            out.extend(words.by_ref().map(Word::Positional));
            break;
        }
        if !word.starts_with('-') || word == "-" {
            out.push(Word::Positional(word));
            continue;
        }
        let Some(flag) = verb.flag(word) else {
            out.push(Word::Unknown(word));
            continue;
        };
        let attached = word
            .strip_prefix("--")
            .and_then(|w| w.split_once('='))
            .map(|(_, v)| v);
        out.push(match (flag.value, attached) {
            (_, Some(value)) => Word::Flag(flag, Some(value)),
            (None, None) => Word::Flag(flag, None),
            (Some(_), None) => match words.next() {
                Some(value) => Word::Flag(flag, Some(value)),
                None => Word::NoValue(flag),
            },
        });
    }
    out
}

impl Verb {
    /// Sorts a command's words (after the verb) into this verb's flags and parameters, and
    /// checks them: every flag declared (with a value if it takes one, none if not), every
    /// required parameter given, no word left over. The error ends with the usage line.
    pub fn parse(&'static self, words: &[String]) -> Result<Args, UsageError> {
        let usage = |why: String| UsageError(format!("{why}; usage: {}", self.usage()));
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        for word in scan(self, words) {
            match word {
                Word::Flag(flag, Some(_)) if flag.value.is_none() => {
                    return Err(usage(format!("option '--{}' takes no value", flag.long)));
                }
                Word::Flag(flag, value) => flags.push((flag, value.map(String::from))),
                Word::NoValue(flag) => {
                    return Err(usage(format!("option '--{}' needs a value", flag.long)));
                }
                Word::Unknown(word) => {
                    let word = crate::name::escape(word);
                    return Err(usage(format!("unknown option '{word}'")));
                }
                Word::EndOfFlags => {}
                Word::Positional(word) => positional.push(word.to_string()),
            }
        }
        let slots = assign(self.params, positional.len())
            .ok_or_else(|| UsageError(format!("usage: {}", self.usage())))?;
        Ok(Args {
            verb: self,
            values: slots.into_iter().zip(positional).collect(),
            flags,
        })
    }

    /// What the word at the cursor is for, given the whole words before it (after the verb)
    /// and the word being typed.
    pub fn locate(&'static self, done: &[String], current: &str) -> Cursor {
        let mut positionals = 0;
        let mut flags_ended = false;
        let mut wants_value = None;
        for word in scan(self, done) {
            match word {
                Word::Positional(_) => positionals += 1,
                Word::EndOfFlags => flags_ended = true,
                Word::NoValue(flag) => wants_value = Some(flag),
                Word::Flag(..) | Word::Unknown(_) => {}
            }
        }
        let at = if let Some(flag) = wants_value {
            At::FlagValue(flag)
        } else if !flags_ended && current.starts_with('-') {
            // A lone `-` is a parameter once the line is done, but while it is being typed it
            // is far more often the start of a flag.
            At::Flag
        } else {
            match self.param_at(positionals) {
                Some(param) => At::Param(param),
                None => At::Nothing,
            }
        };
        Cursor { positionals, at }
    }
}

/// Where the cursor is in a command line, as [`Verb::locate`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// How many positional words come before the one being typed.
    pub positionals: usize,
    /// What the word being typed is.
    pub at: At,
}

/// What the word being typed is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// This parameter.
    Param(&'static Param),
    /// A flag's name.
    Flag,
    /// The value of this flag.
    FlagValue(&'static Flag),
    /// Nothing: the verb takes no more words.
    Nothing,
}

/// Which parameter each of `count` positional words goes to, in order: every required
/// parameter gets one, optional ones get one each from left to right while words are left
/// over, and a repeated one takes all that remain. `None` when the count does not fit.
fn assign(params: &[Param], count: usize) -> Option<Vec<usize>> {
    let required = params.iter().filter(|p| !p.optional).count();
    let mut surplus = count.checked_sub(required)?;
    let mut slots = Vec::with_capacity(count);
    for (i, param) in params.iter().enumerate() {
        let mut take = usize::from(!param.optional);
        if param.repeat {
            take += std::mem::take(&mut surplus);
        } else if param.optional && surplus > 0 {
            take = 1;
            surplus -= 1;
        }
        slots.extend(std::iter::repeat_n(i, take));
    }
    (surplus == 0).then_some(slots)
}

#[cfg(test)]
mod tests;
