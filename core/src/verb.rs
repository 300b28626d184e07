//! The verb descriptor every command module registers, the registry, and the contexts that a
//! verb's two halves run in.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::conn::Connection;
use crate::error::Failure;
use crate::root::Root;

/// What kind of value an argument takes; drives completion and the usage check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A file on the server.
    Remote,
    /// A path on the client's filesystem.
    Local,
    /// A verb name.
    Verb,
}

/// An option a verb's client half accepts, such as `-r`/`--resume`; declared on the [`Verb`]
/// so that the usage check, HELP and completion know it without a special case.
#[derive(Debug, PartialEq, Eq)]
pub struct Flag {
    /// The one-letter form, used as `-r`.
    pub short: char,
    /// The long form, used as `--resume`.
    pub long: &'static str,
    /// What it does, lower case, no final period.
    pub help: &'static str,
}

/// A command line's words after the verb, split by [`Words::parse`].
#[derive(Debug, PartialEq, Eq)]
pub struct Words<'a> {
    /// The flags given, each once, in the order declared.
    pub flags: Vec<&'static Flag>,
    /// The positional arguments, in order.
    pub args: Vec<&'a str>,
}

impl<'a> Words<'a> {
    /// Splits `words` into the `flags` declared and positional arguments.
    ///
    /// `-x` and `--long` are flags wherever they stand; `--` ends them, so that a local path
    /// starting with `-` can still be given; a lone `-` is an argument. An undeclared flag is
    /// an error naming it.
    pub fn parse(flags: &'static [Flag], words: &'a [String]) -> Result<Words<'a>, String> {
        let mut given = vec![false; flags.len()];
        let mut args = Vec::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let found = if word == "--" {
                args.extend(words.by_ref().map(String::as_str));
                break;
            } else if let Some(long) = word.strip_prefix("--") {
                flags.iter().position(|f| f.long == long)
            } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
                let mut chars = short.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => flags.iter().position(|f| f.short == c),
                    _ => None,
                }
            } else {
                args.push(word.as_str());
                continue;
            };
            match found {
                Some(i) => given[i] = true,
                None => {
                    return Err(format!("unknown option '{}'", crate::name::escape(word)));
                }
            }
        }
        Ok(Words {
            flags: flags
                .iter()
                .zip(given)
                .filter_map(|(f, g)| g.then_some(f))
                .collect(),
            args,
        })
    }

    /// True when the flag with this long name was given.
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|f| f.long == long)
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

/// The client half of a verb: check arguments, talk to the server, print the result.
pub type ClientFn = fn(&mut ClientCtx, &[String]) -> anyhow::Result<Flow>;
/// The server half of a verb: serve one request, checking its own wire arguments.
pub type ServerFn = fn(&mut ServerCtx<'_>, &[String]) -> Result<Reply, Failure>;
/// The client half of a verb, split for pipelining: sends the request (and any content) as a
/// chained request ([`crate::Kind::Chained`]) without waiting, and returns what finishes the
/// command once its reply is next. `None` when this command cannot go ahead (a resumed
/// transfer, a large upload, or because of what is [`Behind`] it): it then runs with `client`,
/// after every earlier reply has been read.
pub type AheadFn = fn(&mut ClientCtx, &[String], Behind) -> anyhow::Result<Option<Sent>>;

/// What the commands already sent ahead, and not yet finished, may still do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behind {
    /// One of them may yet fail on this side after the server has done its part, or will
    /// write local files when it finishes (a download). The server runs what is sent ahead of
    /// it regardless, so a command that changes anything, or reads local files, must wait.
    pub unsettled: bool,
}

/// Finishes a command sent ahead: reads its reply (the next one on the connection), does the
/// local part, and prints the result. Called in the order the commands were sent; after a
/// failure the connection may be out of step, and the client stops.
pub type FinishFn = Box<dyn FnOnce(&mut ClientCtx) -> anyhow::Result<Flow>>;

/// A command sent ahead: what finishes it, and what it may still do.
pub struct Sent {
    /// See [`FinishFn`].
    pub finish: FinishFn,
    /// See [`Behind::unsettled`].
    pub unsettled: bool,
}

/// The largest content a command sent ahead may carry, so that a pipelining client's queue
/// stays small.
pub const AHEAD_MAX: u64 = 16 * 1024;

/// A protocol verb: its metadata and both halves. Registered with `inventory::submit!`.
#[derive(Debug)]
pub struct Verb {
    /// Upper-case ASCII name, matched case-insensitively.
    pub name: &'static str,
    /// Usage line, starting with the name.
    pub usage: &'static str,
    /// One line, lower case, no final period, at most 60 columns.
    pub summary: &'static str,
    /// An example command line.
    pub example: &'static str,
    /// The kind of each argument, in order.
    pub args: &'static [Arg],
    /// How many of `args` are required; the rest are optional.
    pub required: usize,
    /// The flags the client half accepts (shown in `usage` as `[-r|--resume]`).
    pub flags: &'static [Flag],
    /// The client half.
    pub client: ClientFn,
    /// The server half.
    pub server: ServerFn,
    /// The client half split for pipelining, for verbs that can be sent ahead.
    pub ahead: Option<AheadFn>,
    /// `module_path!()` of the registering module, to name it in a duplicate-name panic.
    pub module: &'static str,
}

inventory::collect!(Verb);

impl Verb {
    /// Checks an argument count; the error is the usage line.
    pub fn check_arity(&self, count: usize) -> Result<(), String> {
        if count < self.required || count > self.args.len() {
            Err(format!("usage: {}", self.usage))
        } else {
            Ok(())
        }
    }

    /// Splits a command line's words (after the verb) into this verb's flags and arguments,
    /// and checks the argument count; the error ends with the usage line.
    pub fn parse<'a>(&self, words: &'a [String]) -> Result<Words<'a>, String> {
        let parsed =
            Words::parse(self.flags, words).map_err(|e| format!("{e}; usage: {}", self.usage))?;
        self.check_arity(parsed.args.len())?;
        Ok(parsed)
    }
}

/// The registered verbs, sorted by name.
#[derive(Debug)]
pub struct Registry {
    verbs: Vec<&'static Verb>,
}

impl Registry {
    /// Builds a registry, sorted by name.
    ///
    /// # Panics
    /// On two verbs with the same name (ignoring case), naming both modules.
    pub fn new(verbs: impl IntoIterator<Item = &'static Verb>) -> Registry {
        let mut verbs: Vec<&'static Verb> = verbs.into_iter().collect();
        verbs.sort_by_key(|v| v.name.to_ascii_uppercase());
        for pair in verbs.windows(2) {
            if pair[0].name.eq_ignore_ascii_case(pair[1].name) {
                panic!(
                    "verb {} is registered twice: by {} and by {}",
                    pair[0].name, pair[0].module, pair[1].module
                );
            }
        }
        Registry { verbs }
    }

    /// The verb called `name`, ignoring case.
    pub fn find(&self, name: &str) -> Option<&'static Verb> {
        self.verbs
            .iter()
            .copied()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// Every verb, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &'static Verb> + '_ {
        self.verbs.iter().copied()
    }

    /// Contract verbs that are not registered (empty when the build is whole).
    pub fn missing_contract(&self) -> Vec<&'static str> {
        crate::CONTRACT
            .into_iter()
            .filter(|name| self.find(name).is_none())
            .collect()
    }
}

/// Where a client half runs: the connection and the user's side of things.
pub struct ClientCtx {
    /// The connection to the server, greeting done.
    pub conn: Connection<TcpStream>,
    /// The server's address, for messages.
    pub server: SocketAddr,
    /// Every verb, for HELP and completion.
    pub registry: &'static Registry,
    /// Where DOWNLOAD saves by default.
    pub local_dir: PathBuf,
    /// Where results go (stdout; a buffer in tests).
    pub out: Box<dyn Write + Send>,
    /// Shows transfer progress and reports a user's cancel.
    pub meter: Box<dyn Meter + Send>,
}

/// Progress of a transfer, as the client shows it; also where a cancel comes from.
pub trait Meter {
    /// A transfer of `total` bytes, described by `label`, begins.
    fn start(&mut self, label: &str, total: u64);
    /// `done` bytes have moved; returning false cancels the transfer.
    fn update(&mut self, done: u64) -> bool;
    /// The transfer is over: complete when `ok`, else failed or cancelled.
    fn finish(&mut self, done: u64, ok: bool);
}

/// A meter that shows nothing and never cancels (scripts, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Meter for Silent {
    fn start(&mut self, _label: &str, _total: u64) {}
    fn update(&mut self, _done: u64) -> bool {
        true
    }
    fn finish(&mut self, _done: u64, _ok: bool) {}
}

/// Where a server half runs.
pub struct ServerCtx<'a> {
    /// The client's connection.
    pub conn: &'a mut Connection<TcpStream>,
    /// The files being served.
    pub root: &'a Root,
    /// The client's address.
    pub peer: SocketAddr,
    /// Every verb, for HELP.
    pub registry: &'static Registry,
    /// Stops the whole server.
    pub shutdown: &'a Shutdown,
    /// The largest upload accepted, in bytes; `None` for no limit.
    pub max_file_size: Option<u64>,
}

/// A shared request to stop the server, with a hook that wakes its accept loop.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownInner>);

#[derive(Default)]
struct ShutdownInner {
    requested: AtomicBool,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Shutdown {
    /// A shutdown that has not been requested.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the hook run once when shutdown is requested (the first hook set wins).
    pub fn on_request(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.0.wake.set(Box::new(wake));
    }

    /// Requests shutdown; only the first call runs the hook.
    pub fn request(&self) {
        if !self.0.requested.swap(true, Ordering::SeqCst)
            && let Some(wake) = self.0.wake.get()
        {
            wake();
        }
    }

    /// True once shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shutdown({})", self.is_requested())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(_: &mut ClientCtx, _: &[String]) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }

    fn server(_: &mut ServerCtx<'_>, _: &[String]) -> Result<Reply, Failure> {
        Ok(Reply::Done)
    }

    const fn verb(name: &'static str, module: &'static str) -> Verb {
        Verb {
            name,
            usage: name,
            summary: "a test verb",
            example: name,
            args: &[Arg::Remote, Arg::Local],
            required: 1,
            flags: &FLAGS,
            client,
            server,
            ahead: None,
            module,
        }
    }

    const FLAGS: [Flag; 2] = [
        Flag {
            short: 'r',
            long: "resume",
            help: "continue",
        },
        Flag {
            short: 'f',
            long: "force",
            help: "overwrite",
        },
    ];

    static ZED: Verb = verb("ZED", "a::zed");
    static ALPHA: Verb = verb("ALPHA", "a::alpha");
    static ALPHA_AGAIN: Verb = verb("alpha", "b::alpha");

    #[test]
    fn sorted_by_name_and_found_in_any_case() {
        let registry = Registry::new([&ZED, &ALPHA]);
        let names: Vec<_> = registry.iter().map(|v| v.name).collect();
        assert_eq!(names, ["ALPHA", "ZED"]);
        assert_eq!(registry.find("zEd").unwrap().module, "a::zed");
        assert_eq!(registry.missing_contract().len(), crate::CONTRACT.len());
    }

    #[test]
    #[should_panic(expected = "registered twice: by a::alpha and by b::alpha")]
    fn a_duplicate_name_panics_naming_both_modules() {
        Registry::new([&ALPHA, &ZED, &ALPHA_AGAIN]);
    }

    #[test]
    fn arity_is_checked_against_the_argument_list() {
        assert!(ALPHA.check_arity(0).is_err());
        assert!(ALPHA.check_arity(1).is_ok());
        assert!(ALPHA.check_arity(2).is_ok());
        assert_eq!(ALPHA.check_arity(3), Err("usage: ALPHA".to_string()));
    }

    fn words(line: &str) -> Vec<String> {
        line.split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn flags_are_split_from_arguments_wherever_they_stand() {
        let line = words("a -r b");
        let parsed = ALPHA.parse(&line).unwrap();
        assert_eq!(parsed.args, ["a", "b"]);
        assert!(parsed.has("resume") && !parsed.has("force"));
        let line = words("--force --resume a");
        let parsed = ALPHA.parse(&line).unwrap();
        assert_eq!(parsed.flags.len(), 2);
        assert_eq!(parsed.args, ["a"]);
        // `--` ends the flags; a lone `-` is an argument.
        let line = words("-r -- -f -");
        let parsed = ALPHA.parse(&line).unwrap();
        assert_eq!(parsed.args, ["-f", "-"]);
        assert!(parsed.has("resume") && !parsed.has("force"));
    }

    #[test]
    fn flags_do_not_count_as_arguments_and_unknown_ones_are_named() {
        assert!(
            ALPHA
                .parse(&words("-r"))
                .unwrap_err()
                .starts_with("usage: ALPHA")
        );
        assert!(ALPHA.parse(&words("-r a b")).is_ok());
        assert!(ALPHA.parse(&words("-r a b c")).is_err());
        for bad in ["-x", "--frob", "-rf", "---"] {
            let err = ALPHA.parse(&words(&format!("a {bad}"))).unwrap_err();
            assert!(err.starts_with(&format!("unknown option '{bad}'")), "{err}");
            assert!(err.ends_with("usage: ALPHA"), "{err}");
        }
    }

    #[test]
    fn shutdown_runs_its_hook_once() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let seen = Arc::clone(&count);
        shutdown.on_request(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!shutdown.is_requested());
        shutdown.request();
        shutdown.clone().request();
        assert!(shutdown.is_requested());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
