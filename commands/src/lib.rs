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

use ferry_core::{Flag, Registry, Verb};

automod::dir!("src");

/// The server's usable file names, for completion (the verb modules themselves are private).
pub use list::names as remote_names;

/// Every registered verb, sorted by name, built once.
///
/// Calling this is also what links this crate (and so its registrations) into a binary.
///
/// # Panics
/// When two verbs share a name.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(inventory::iter::<Verb>))
}

/// `-r`/`--resume`, for the verbs that transfer content.
pub(crate) const RESUME: Flag = Flag {
    short: 'r',
    long: "resume",
    help: "continue an interrupted transfer instead of starting over",
};

/// The one remote name of a verb that takes no flags: its words parsed like every verb's, so
/// that `--` lets a name begin with `-`, and the name checked against the rules.
pub(crate) fn remote_name(args: &[String]) -> anyhow::Result<&str> {
    let words = ferry_core::Words::parse(&[], args).map_err(|e| anyhow::anyhow!(e))?;
    Ok(ferry_core::name::validate(words.args[0])?)
}

/// Sends `request` ahead as a chained request, for a verb whose only reply is one `O` (or
/// `E`): `finish` gets the reply's words when its turn comes; `what` names the command in an
/// error (`deleting 'x'`).
pub(crate) fn send_ahead(
    ctx: &mut ferry_core::ClientCtx,
    request: &[&str],
    what: String,
    finish: impl FnOnce(&mut ferry_core::ClientCtx, Vec<String>) -> anyhow::Result<ferry_core::Flow>
    + 'static,
) -> anyhow::Result<Option<ferry_core::Sent>> {
    use anyhow::Context;
    let frame = ferry_core::Frame::new(ferry_core::Kind::Chained, request.iter().copied());
    ctx.conn.queue(&frame).with_context(|| what.clone())?;
    let finish = move |ctx: &mut ferry_core::ClientCtx| {
        let reply = ctx.conn.expect_ok().with_context(|| what)?;
        finish(ctx, reply)
    };
    Ok(Some(ferry_core::Sent {
        finish: Box::new(finish),
        unsettled: false,
    }))
}

/// Sizes as people read them, in binary units (`1.50 MiB`).
pub(crate) fn human(size: u64) -> String {
    humansize::format_size(size, humansize::BINARY)
}

/// Parses a decimal word from the peer, naming the field when it is not one.
pub(crate) fn number(word: &str, what: &str) -> Result<u64, ferry_core::Failure> {
    word.parse().map_err(|_| {
        ferry_core::Failure::new(
            ferry_core::ErrorKind::BadRequest,
            format!(
                "{what} '{}' is not a number",
                ferry_core::name::escape(word)
            ),
        )
    })
}

/// The arguments of a request, exactly `N` of them, else a `bad-request` failure.
pub(crate) fn wire_args<const N: usize>(
    args: &[String],
) -> Result<&[String; N], ferry_core::Failure> {
    args.try_into().map_err(|_| {
        ferry_core::Failure::new(
            ferry_core::ErrorKind::BadRequest,
            format!(
                "wrong number of arguments: expected {N}, got {}",
                args.len()
            ),
        )
    })
}

/// Sends an `O` frame in the middle of an exchange (before a stream).
pub(crate) fn ready(
    ctx: &mut ferry_core::ServerCtx<'_>,
    words: &[&str],
) -> Result<(), ferry_core::Failure> {
    ctx.conn
        .send(&ferry_core::Frame::new(
            ferry_core::Kind::Ok,
            words.iter().copied(),
        ))
        .map_err(ferry_core::Failure::from_wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_holds_the_contract_verbs_sorted_and_unique() {
        assert!(registry().missing_contract().is_empty());
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
            assert!(
                !verb.name.is_empty() && verb.name.bytes().all(|b| b.is_ascii_uppercase()),
                "{}",
                verb.name
            );
            assert!(verb.usage.starts_with(verb.name), "{}", verb.usage);
            assert!(verb.example.starts_with(verb.name), "{}", verb.example);
            assert!(
                verb.summary.chars().count() <= 60
                    && !verb.summary.ends_with('.')
                    && verb.summary.chars().next().is_some_and(char::is_lowercase),
                "{}",
                verb.summary
            );
            assert!(verb.required <= verb.args.len(), "{}", verb.name);
            // The usage line shows every argument and flag, and brackets exactly the optional
            // arguments and the flags.
            assert_eq!(
                verb.usage.matches('<').count(),
                verb.args.len(),
                "{}",
                verb.usage
            );
            assert_eq!(
                verb.usage.matches('[').count(),
                verb.args.len() - verb.required + verb.flags.len(),
                "{}",
                verb.usage
            );
            for flag in verb.flags {
                let shown = format!("[-{}|--{}]", flag.short, flag.long);
                assert!(verb.usage.contains(&shown), "{shown} in {}", verb.usage);
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(registry().find("upload").unwrap().name, "UPLOAD");
        assert_eq!(registry().find("LiSt").unwrap().name, "LIST");
        assert!(registry().find("FROB").is_none());
    }
}
