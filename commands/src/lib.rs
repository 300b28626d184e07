//! Ferry's protocol verbs. Each module in this directory is one verb: it registers a
//! [`Verb`] with `inventory::submit!` and holds both halves (what the client sends and prints,
//! what the server does), so its wire format is defined in one file.
//!
//! Adding a verb is adding a file here: `automod` turns every file into a module, and the
//! registry, the server, the REPL, HELP and completion all find it through [`registry`].
//!
//! Layout:
//! - one file per verb (`list.rs`, `upload.rs`, ...);
//! - this file: [`registry`], the only walk of the inventory, and helpers the verbs share.

use std::sync::OnceLock;

use anyhow::Context;
use ferry_core::store::{Entry, EntryKind};
use ferry_core::{
    Args, Behind, ClientCtx, ErrorKind, Failure, Flag, Flow, Frame, Kind, Meter, Param, ParamKind,
    Registry, RemotePath, Sent, ServerCtx, Verb,
};
use serde_json::json;

automod::dir!("src");
mod tree;

/// The server's usable file names, for completion (the verb modules themselves are private).
pub use list::names as remote_names;

/// Every registered verb, sorted by name, built once.
///
/// Calling this is also what links this crate (and so its registrations) into a binary.
///
/// # Panics
/// When two verbs share a name or an alias.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(inventory::iter::<Verb>))
}

/// `<path>`: a file or directory on the server, read with [`remote_path`].
pub(crate) const PATH: Param = Param::one("path", ParamKind::RemotePath);

/// `<remote-path>`: where a transfer's file lies on the server, read with [`remote_path`].
pub(crate) const REMOTE_PATH: Param = Param::one("remote-path", ParamKind::RemotePath);

/// The flags of UPLOAD and DOWNLOAD, read by [`tree::Options::of`].
pub(crate) const TRANSFER_FLAGS: &[Flag] = &[
    Flag::new('r', "recursive", "copy directories and everything in them"),
    CONTINUE,
    Flag::new(
        'n',
        "no-clobber",
        "leave files that exist at the destination alone",
    ),
    Flag::long(
        "sync",
        "copy only files missing or differing in size or modification time",
    ),
    Flag::long(
        "delete",
        "with -r --sync, remove what the source does not have",
    ),
];

/// `<local-path>`: a file on the client's side.
pub(crate) const LOCAL_PATH: Param = Param::one("local-path", ParamKind::LocalPath);

/// `-c`/`--continue` (also `--resume`), for the verbs that transfer content.
pub(crate) const CONTINUE: Flag = Flag::new(
    'c',
    "continue",
    "continue an interrupted transfer instead of starting over",
)
.or("resume");

/// A remote path as typed, resolved against the working directory: what the wire carries.
pub(crate) fn remote_path(ctx: &ClientCtx, typed: &str) -> anyhow::Result<RemotePath> {
    Ok(ctx.cwd.resolve(typed)?)
}

/// A local path as typed: `~` and `~/...` are the home directory, as in a shell.
pub(crate) fn local_path(typed: &str) -> std::path::PathBuf {
    let home = || std::env::var_os("HOME").map(std::path::PathBuf::from);
    match typed.strip_prefix('~') {
        Some("") => home().unwrap_or_else(|| typed.into()),
        Some(rest) if rest.starts_with('/') => match home() {
            Some(home) => home.join(&rest[1..]),
            None => typed.into(),
        },
        _ => typed.into(),
    }
}

/// A local path as output shows it: escaped, since a name from a server may lie in it.
pub(crate) fn local_shown(path: &std::path::Path) -> String {
    ferry_core::name::escape_full(&path.display().to_string())
}

/// Whether `err` is the server refusing a request with `kind` (rather than, say, a lost
/// connection).
pub(crate) fn is_refusal(err: &anyhow::Error, kind: ErrorKind) -> bool {
    err.chain().any(|cause| {
        matches!(cause.downcast_ref(), Some(ferry_core::WireError::Remote(f)) if f.kind == kind)
    })
}

/// A path from a request: absolute, every component a plain name.
pub(crate) fn wire_path(word: &str) -> Result<RemotePath, Failure> {
    RemotePath::from_wire(word)
}

/// `err` in the context `what` (`deleting 'x'`), unless `err` is the server's refusal that
/// names the same path itself (`no such file '/d/x'`): then the context is the action alone
/// (`deleting: no such file '/d/x'`), so that the name is not said twice.
pub(crate) fn in_context(err: impl Into<anyhow::Error>, what: &str) -> anyhow::Error {
    let err = err.into();
    let quoted = |text: &str| {
        text.split_once('\'')
            .and_then(|(_, r)| r.rsplit_once('\''))
            .map(|q| q.0.to_string())
    };
    let theirs = match err.downcast_ref() {
        Some(ferry_core::WireError::Remote(f)) => quoted(&f.message),
        _ => None,
    };
    let repeats = match (quoted(what), theirs) {
        (Some(mine), Some(theirs)) => theirs == mine || theirs.ends_with(&format!("/{mine}")),
        _ => false,
    };
    let context = match what.split_once(" '") {
        Some((action, _)) if repeats => action.to_string(),
        _ => what.to_string(),
    };
    err.context(context)
}

/// Sends `request` ahead as a chained request, for a verb whose only reply is one `O` (or
/// `E`): `finish` gets the reply's words when its turn comes; `what` names the command in an
/// error (`deleting 'x'`).
pub(crate) fn send_ahead(
    ctx: &mut ClientCtx,
    request: &[&str],
    what: String,
    finish: impl FnOnce(&mut ClientCtx, Vec<String>) -> anyhow::Result<Flow> + 'static,
) -> anyhow::Result<Option<Sent>> {
    let frame = Frame::new(Kind::Chained, request.iter().copied());
    ctx.conn.queue(&frame).with_context(|| what.clone())?;
    let finish = move |ctx: &mut ClientCtx| {
        let reply = ctx.conn.expect_ok().map_err(|e| in_context(e, &what))?;
        finish(ctx, reply)
    };
    Ok(Some(Sent {
        finish: Box::new(finish),
        unsettled: false,
        lands: None,
    }))
}

/// Entries as LIST and LLS report them, one a line as `ls -l` has them: the size (`-` for a
/// directory), the modification time, and the name (a directory's with a trailing `/`),
/// escaped, last, so that no name can push the columns out of line; in JSON, `name` (as it
/// is), `type` (`file` or `dir`), `size` in bytes and `mtime` (RFC 3339, UTC).
pub(crate) fn print_entries(ctx: &mut ClientCtx, entries: &[Entry]) -> std::io::Result<()> {
    for entry in entries {
        let name = ferry_core::name::escape_full(&entry.name);
        let (size, slash) = match entry.kind {
            EntryKind::Dir => ("-".to_string(), "/"),
            EntryKind::File => (human(entry.meta.size), ""),
        };
        let fields = json!({
            "name": entry.name,
            "type": entry.kind.word(),
            "size": entry.meta.size,
            "mtime": rfc3339(entry.meta.mtime),
        });
        let when = shown_time(ctx, entry.meta.mtime);
        ctx.say(format_args!("{size:>10}  {when}  {name}{slash}"), fields)?;
    }
    Ok(())
}

/// A modification time in Unix seconds as RFC 3339, in UTC (`2024-05-01T12:00:00Z`).
pub(crate) fn rfc3339(mtime: u64) -> String {
    humantime::format_rfc3339_seconds(ferry_core::store::time_of(mtime)).to_string()
}

/// A modification time for a person: at the prompt in local time (`2024-05-01 14:00:00
/// CEST`), unless `--utc`; elsewhere, in scripts, RFC 3339 in UTC, the same everywhere.
pub(crate) fn shown_time(ctx: &ClientCtx, mtime: u64) -> String {
    if !ctx.report.at_prompt || ctx.report.utc {
        return rfc3339(mtime);
    }
    let local = i64::try_from(mtime)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::system()));
    match local {
        Some(zoned) => zoned.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => rfc3339(mtime),
    }
}

/// How one transfer shows its progress: on a meter line of its own, with this label, or as
/// part of a transfer of many files, starting `base` bytes into the whole.
#[derive(Clone, Debug)]
pub(crate) enum Shown {
    /// A transfer on its own.
    Alone(String),
    /// The `nth` file (from 1) of `of`, after `base` bytes of the others.
    Within { base: u64, nth: usize, of: usize },
}

impl Shown {
    /// A transfer of `size` bytes begins.
    pub(crate) fn start(&self, meter: &mut Box<dyn Meter + Send>, size: u64) {
        if let Shown::Alone(label) = self {
            meter.start(label, size);
        }
    }

    /// `done` bytes of this transfer have moved; false to cancel.
    pub(crate) fn update(&self, meter: &mut Box<dyn Meter + Send>, done: u64) -> bool {
        match self {
            Shown::Alone(_) => meter.update(done),
            Shown::Within { base, .. } => meter.update(base.saturating_add(done)),
        }
    }

    /// This transfer is over.
    pub(crate) fn finish(&self, meter: &mut Box<dyn Meter + Send>, done: u64, ok: bool) {
        match self {
            Shown::Alone(_) => meter.finish(done, ok),
            Shown::Within { nth, of, .. } if ok => meter.files(*nth, *of),
            Shown::Within { .. } => {}
        }
    }
}

/// A verb whose command line makes one [`PathChange`]; its client halves are
/// [`run_change`] and [`ahead_change`].
pub(crate) trait Changes {
    /// The change a command line asks for.
    fn change(ctx: &ClientCtx, args: &Args) -> anyhow::Result<PathChange>;
}

/// The client half of a [`Changes`] verb.
pub(crate) fn run_change<C: Changes>(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    C::change(ctx, args)?.run(ctx)
}

/// The client half of a [`Changes`] verb, sent ahead.
pub(crate) fn ahead_change<C: Changes>(
    ctx: &mut ClientCtx,
    args: &Args,
    behind: Behind,
) -> anyhow::Result<Option<Sent>> {
    C::change(ctx, args)?.ahead(ctx, behind)
}

/// A change to one path whose reply is a bare `O` (DELETE, MKDIR, RMDIR): the request, and
/// what the client says while doing it and once done.
pub(crate) struct PathChange {
    words: Vec<String>,
    shown: String,
    /// `deleting`, for the error context.
    doing: &'static str,
    /// `deleted`, for the line printed on success.
    done: &'static str,
}

impl PathChange {
    /// `VERB <path> [flag]` for the path typed as `typed`.
    pub(crate) fn new(
        ctx: &ClientCtx,
        verb: &str,
        typed: &str,
        flag: Option<&str>,
        (doing, done): (&'static str, &'static str),
    ) -> anyhow::Result<PathChange> {
        let path = remote_path(ctx, typed)?;
        let mut words = vec![verb.to_string(), path.wire()];
        words.extend(flag.map(String::from));
        Ok(PathChange {
            words,
            shown: path.shown_from(&ctx.cwd),
            doing,
            done,
        })
    }

    /// Sends it and waits for the reply.
    pub(crate) fn run(self, ctx: &mut ClientCtx) -> anyhow::Result<Flow> {
        let what = format!("{} '{}'", self.doing, self.shown);
        ctx.conn
            .call(self.words.clone())
            .map_err(|e| in_context(e, &what))?;
        let fields = json!({"path": self.words[1]});
        ctx.say(format_args!("{} '{}'", self.done, self.shown), fields)?;
        Ok(Flow::Continue)
    }

    /// Sends it ahead, unless a download before it has yet to finish on the client's side:
    /// the server would make the change even if that download then failed.
    pub(crate) fn ahead(self, ctx: &mut ClientCtx, behind: Behind) -> anyhow::Result<Option<Sent>> {
        if behind.unsettled {
            return Ok(None);
        }
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let what = format!("{} '{}'", self.doing, self.shown);
        let (done, shown, path) = (self.done, self.shown.clone(), self.words[1].clone());
        send_ahead(ctx, &words, what, move |ctx, _| {
            ctx.say(format_args!("{done} '{shown}'"), json!({"path": path}))?;
            Ok(Flow::Continue)
        })
    }
}

/// Sizes as people read them, in binary units (`1.50 MiB`).
pub(crate) fn human(size: u64) -> String {
    humansize::format_size(size, humansize::BINARY)
}

/// Parses a decimal word from the peer, naming the field when it is not one.
pub(crate) fn number(word: &str, what: &str) -> Result<u64, Failure> {
    word.parse().map_err(|_| {
        Failure::new(
            ErrorKind::BadRequest,
            format!(
                "{what} '{}' is not a number",
                ferry_core::name::escape(word)
            ),
        )
    })
}

/// The arguments of a request, exactly `N` of them, else a `bad-request` failure.
pub(crate) fn wire_args<const N: usize>(args: &[String]) -> Result<&[String; N], Failure> {
    args.try_into().map_err(|_| {
        Failure::new(
            ErrorKind::BadRequest,
            format!(
                "wrong number of arguments: expected {N}, got {}",
                args.len()
            ),
        )
    })
}

/// Sends an `O` frame in the middle of an exchange (before a stream).
pub(crate) fn ready(ctx: &mut ServerCtx<'_>, words: &[&str]) -> Result<(), Failure> {
    ctx.conn
        .send(&Frame::new(Kind::Ok, words.iter().copied()))
        .map_err(Failure::from_wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_time_the_wire_can_carry_is_shown_without_a_panic() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        for late in [ferry_core::store::MAX_MTIME, 253_402_300_800, u64::MAX] {
            assert_eq!(rfc3339(late), "9999-12-31T23:59:59Z");
        }
    }

    #[test]
    fn the_registry_is_usable_sorted_and_built_from_this_crate() {
        assert!(registry().is_usable());
        let names: Vec<_> = registry().iter().map(|v| v.name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert!(
            registry()
                .iter()
                .all(|v| v.module.starts_with("ferry_commands::"))
        );
    }

    #[test]
    fn every_verb_is_well_formed() {
        for verb in registry().iter() {
            let name = verb.name;
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()),
                "{name}"
            );
            for alias in verb.aliases {
                assert!(
                    !alias.is_empty() && alias.bytes().all(|b| b.is_ascii_graphic()),
                    "{name}: alias {alias:?}"
                );
            }
            assert!(verb.example.starts_with(name), "{}", verb.example);
            let summary = verb.summary;
            assert!(
                summary.chars().count() <= 60
                    && !summary.ends_with('.')
                    && summary.chars().next().is_some_and(char::is_lowercase),
                "{name}: {summary}"
            );
            assert!(
                verb.params.iter().filter(|p| p.repeat).count() <= 1,
                "{name}"
            );
            let mut params: Vec<_> = verb.params.iter().map(|p| p.name).collect();
            let mut longs: Vec<_> = verb.flags.iter().map(|f| f.long).collect();
            let mut shorts: Vec<_> = verb.flags.iter().filter_map(|f| f.short).collect();
            let counts = (params.len(), longs.len(), shorts.len());
            params.sort_unstable();
            params.dedup();
            longs.sort_unstable();
            longs.dedup();
            shorts.sort_unstable();
            shorts.dedup();
            assert_eq!(counts, (params.len(), longs.len(), shorts.len()), "{name}");
            // The example is a command line this verb accepts.
            let example = registry().parse(verb.example);
            assert!(
                example.is_ok_and(|a| a.is_some()),
                "{name}: {}",
                verb.example
            );
        }
    }

    #[test]
    fn lookup_ignores_case_and_knows_aliases() {
        assert_eq!(registry().find("upload").unwrap().name, "UPLOAD");
        assert_eq!(registry().find("LiSt").unwrap().name, "LIST");
        assert!(registry().find("FROB").is_none());
        for (alias, name) in [
            ("ls", "LIST"),
            ("DIR", "LIST"),
            ("put", "UPLOAD"),
            ("get", "DOWNLOAD"),
            ("rm", "DELETE"),
            ("quit", "LOGOUT"),
            ("exit", "LOGOUT"),
            ("bye", "LOGOUT"),
            ("?", "HELP"),
        ] {
            assert_eq!(registry().lookup(alias).unwrap().name, name, "{alias}");
        }
    }
}
