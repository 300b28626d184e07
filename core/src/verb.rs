//! [`Verb`]: the descriptor every command module registers, its facts stated once as data.
//!
//! A verb states its parameters, flags and aliases once; its usage line, HELP, completion,
//! hints and the argument check ([`crate::words`]) are all derived from them.

use crate::ctx::{ClientCtx, ServerCtx};
use crate::error::Failure;
use crate::pipeline::{Behind, Sent};
use crate::words::Args;

/// What a parameter takes; completion offers candidates of this kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A file (or other entry) on the server.
    RemotePath,
    /// A directory on the server.
    RemoteDir,
    /// A pattern matched against the server's names.
    RemoteGlob,
    /// A path on the client's side.
    LocalPath,
    /// A directory on the client's side.
    LocalDir,
    /// A pattern matched against local paths.
    LocalGlob,
    /// A verb name.
    Verb,
    /// Anything; nothing to complete.
    Text,
}

/// One positional parameter of a verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// Its name, shown as `<name>` in the usage line and used to fetch its value.
    pub name: &'static str,
    /// What it takes.
    pub kind: ParamKind,
    /// May be left out (shown in `[...]`).
    pub optional: bool,
    /// Takes every remaining word (shown with `...`); at most one per verb.
    pub repeat: bool,
}

impl Param {
    /// A required parameter taking one word.
    pub const fn one(name: &'static str, kind: ParamKind) -> Param {
        Param {
            name,
            kind,
            optional: false,
            repeat: false,
        }
    }

    /// This parameter, optional.
    pub const fn optional(self) -> Param {
        Param {
            optional: true,
            ..self
        }
    }

    /// This parameter, taking one word or more (none or more, if optional).
    pub const fn repeated(self) -> Param {
        Param {
            repeat: true,
            ..self
        }
    }

    /// How the usage line shows it: `<name>`, `[<name>]`, `<name>...`, `[<name>...]`.
    pub fn placeholder(&self) -> String {
        let dots = if self.repeat { "..." } else { "" };
        if self.optional {
            format!("[<{}>{dots}]", self.name)
        } else {
            format!("<{}>{dots}", self.name)
        }
    }
}

/// An option a verb's client half accepts, such as `-r`/`--resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The one-letter form, used as `-r`, if it has one.
    pub short: Option<char>,
    /// The long form, used as `--resume`.
    pub long: &'static str,
    /// What it does, lower case, no final period.
    pub help: &'static str,
    /// The name of the value it takes (`--rate <N>`, or `--rate=N`), if it takes one.
    pub value: Option<&'static str>,
    /// Another long form it answers to (`--resume` for `--continue`), kept for old habits;
    /// usage and completion show only `long`.
    pub alias: Option<&'static str>,
}

impl Flag {
    /// A flag with a one-letter and a long form, taking no value.
    pub const fn new(short: char, long: &'static str, help: &'static str) -> Flag {
        Flag {
            short: Some(short),
            long,
            help,
            value: None,
            alias: None,
        }
    }

    /// A flag with only a long form, taking no value.
    pub const fn long(long: &'static str, help: &'static str) -> Flag {
        Flag {
            short: None,
            long,
            help,
            value: None,
            alias: None,
        }
    }

    /// This flag, answering to `--alias` too.
    pub const fn or(self, alias: &'static str) -> Flag {
        Flag {
            alias: Some(alias),
            ..self
        }
    }

    /// This flag, taking a value called `name`.
    pub const fn taking(self, name: &'static str) -> Flag {
        Flag {
            value: Some(name),
            ..self
        }
    }

    /// Its forms as typed: `-r|--resume`, `--rate <N>`.
    pub fn forms(&self) -> String {
        let value = self.value.map(|v| format!(" <{v}>")).unwrap_or_default();
        match self.short {
            Some(short) => format!("-{short}|--{}{value}", self.long),
            None => format!("--{}{value}", self.long),
        }
    }
}

/// What the client does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// The session is over (LOGOUT, SHUTDOWN).
    Quit,
}

/// What the server sends after a handler returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// An `O` frame with these words.
    Ok(Vec<String>),
    /// The handler already sent everything (a stream ends the exchange).
    Done,
    /// An `O` frame with these words, then the connection closes.
    Close(Vec<String>),
}

/// The client half of a verb: talk to the server, print the result. Its words were parsed
/// and checked against the verb's parameters and flags before it is called.
pub type ClientFn = fn(&mut ClientCtx, &Args) -> anyhow::Result<Flow>;
/// The server half of a verb: serve one request, checking its own wire arguments.
pub type ServerFn = fn(&mut ServerCtx<'_>, &[String]) -> Result<Reply, Failure>;
/// The client half of a verb, split for pipelining: sends the request (and any content) as a
/// chained request ([`crate::Kind::Chained`]) without waiting, and returns what finishes the
/// command once its reply is next. `None` when this command cannot go ahead (a resumed
/// transfer, a large upload, or because of what is [`Behind`] it): it then runs with `client`,
/// after every earlier reply has been read.
pub type AheadFn = fn(&mut ClientCtx, &Args, Behind) -> anyhow::Result<Option<Sent>>;

/// A protocol verb: its metadata and both halves. Registered with `inventory::submit!`:
///
/// ```ignore
/// inventory::submit! {
///     Verb {
///         name: "STAT",
///         summary: "show a file's size, modification time and digest",
///         example: "STAT photo.jpg",
///         params: &[Param::one("name", ParamKind::RemotePath)],
///         ..Verb::new(run, serve, module_path!())
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Verb {
    /// Upper-case ASCII name, matched case-insensitively.
    pub name: &'static str,
    /// Other names it answers to at the prompt and in scripts (`ls`), matched ignoring case;
    /// the wire carries only `name`.
    pub aliases: &'static [&'static str],
    /// One line, lower case, no final period, at most 60 columns.
    pub summary: &'static str,
    /// An example command line.
    pub example: &'static str,
    /// Its positional parameters, in order.
    pub params: &'static [Param],
    /// The flags the client half accepts.
    pub flags: &'static [Flag],
    /// Whether it may change anything on the server; access rights are checked against this
    /// for every verb.
    pub writes: bool,
    /// The client half.
    pub client: ClientFn,
    /// The server half.
    pub server: ServerFn,
    /// The client half split for pipelining, for verbs that can be sent ahead.
    pub ahead: Option<AheadFn>,
    /// Runs on the client alone (CD, LCD): the server does not serve it, and a request for
    /// it is an unknown verb there.
    pub local: bool,
    /// `module_path!()` of the registering module, to name it in a duplicate-name panic.
    pub module: &'static str,
}

inventory::collect!(Verb);

/// The server half of a local verb, never called: the server finds no such verb.
fn not_served(_: &mut ServerCtx<'_>, _: &[String]) -> Result<Reply, Failure> {
    Err(Failure::new(
        crate::ErrorKind::UnknownVerb,
        "this verb runs on the client alone",
    ))
}

impl Verb {
    /// A verb with these halves and nothing else: no name, parameters, flags or aliases yet,
    /// changing nothing, never sent ahead. Registrations fill in the rest by name.
    pub const fn new(client: ClientFn, server: ServerFn, module: &'static str) -> Verb {
        Verb {
            name: "",
            aliases: &[],
            summary: "",
            example: "",
            params: &[],
            flags: &[],
            writes: false,
            client,
            server,
            ahead: None,
            local: false,
            module,
        }
    }

    /// A verb that runs on the client alone: `client` and nothing for the server.
    pub const fn local(client: ClientFn, module: &'static str) -> Verb {
        Verb {
            local: true,
            ..Verb::new(client, not_served, module)
        }
    }

    /// The usage line: the name, each flag in `[...]`, then each parameter's placeholder.
    pub fn usage(&self) -> String {
        let mut usage = self.name.to_string();
        for flag in self.flags {
            usage += &format!(" [{}]", flag.forms());
        }
        usage + &self.rest_of_usage(0)
    }

    /// The usage line as HELP's table shows it: as [`Verb::usage`], but a verb with more than
    /// two flags shows them as `[options]` (HELP on the verb lists them).
    pub fn short_usage(&self) -> String {
        if self.flags.len() <= 2 {
            return self.usage();
        }
        format!("{} [options]{}", self.name, self.rest_of_usage(0))
    }

    /// The placeholders from the parameter that the `filled`-th positional word (0-based)
    /// goes to, each with a space before it: what is left to type once `filled` words are
    /// there. A repeated parameter that has its first word is shown as optional.
    pub fn rest_of_usage(&self, filled: usize) -> String {
        let mut rest = String::new();
        let mut slot = 0;
        for param in self.params {
            if param.repeat && filled > slot {
                rest += &format!(" [<{}>...]", param.name);
                slot = filled;
            } else if slot >= filled {
                rest += &format!(" {}", param.placeholder());
            }
            slot += 1;
        }
        rest
    }

    /// The parameter that the `index`-th positional word (0-based) goes to while a line is
    /// being typed: each parameter takes one word in turn, a repeated one every word left.
    pub fn param_at(&self, index: usize) -> Option<&'static Param> {
        let params: &'static [Param] = self.params;
        params
            .iter()
            .enumerate()
            .find(|(i, p)| *i == index || (p.repeat && *i <= index))
            .map(|(_, p)| p)
    }

    /// The flag this word names, `-x` or `--long` (a value after `=` left aside).
    pub fn flag(&self, word: &str) -> Option<&'static Flag> {
        let flags: &'static [Flag] = self.flags;
        if let Some(long) = word.strip_prefix("--") {
            let long = long.split_once('=').map_or(long, |(name, _)| name);
            return flags
                .iter()
                .find(|f| f.long == long || f.alias == Some(long));
        }
        let mut chars = word.strip_prefix('-')?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => flags.iter().find(|f| f.short == Some(c)),
            _ => None,
        }
    }
}
