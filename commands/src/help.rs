//! `HELP [<verb>]`: every verb with its usage and summary, or one verb in detail. Also `?`.
//! Built from the registry, so a new verb appears here by being registered.
//!
//! The client answers from its own registry, without a round trip. The server half serves
//! clients written in other languages.
//!
//! # Wire
//! ```text
//! -> Q HELP [<verb>]
//! <- O <count>
//! <- I <name> <usage> <summary> <example>   (count times, sorted by name)
//! <- Z
//! ```

use std::io::Write;

use anyhow::anyhow;
use ferry_core::{
    Args, ClientCtx, ErrorKind, Failure, Flow, Frame, Kind, Param, ParamKind, Registry, Reply,
    ServerCtx, Verb,
};

inventory::submit! {
    Verb {
        name: "HELP",
        aliases: &["?"],
        summary: "list the verbs, or explain one",
        example: "HELP UPLOAD",
        params: &[Param::one("verb", ParamKind::Verb).optional()],
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    // In JSON, one object a verb: its name, aliases, usage, summary and example.
    let described = |v: &Verb| {
        serde_json::json!({
            "name": v.name, "aliases": v.aliases, "usage": v.usage(),
            "summary": v.summary, "example": v.example,
        })
    };
    match args.get("verb") {
        None if ctx.report.json => {
            for verb in ctx.registry.iter() {
                ctx.say("", described(verb))?;
            }
        }
        None => ctx.out.write_all(table(ctx.registry).as_bytes())?,
        Some(word) => {
            let verb = ctx
                .registry
                .lookup(word)
                .ok_or_else(|| anyhow!(ctx.registry.unknown_to_user(word)))?;
            let text = detail(verb);
            ctx.say(text.trim_end(), described(verb))?;
        }
    }
    Ok(Flow::Continue)
}

/// Every verb: usage and summary in aligned columns, sorted by name, with its aliases.
pub fn table(registry: &Registry) -> String {
    let rows: Vec<(String, &Verb)> = registry.iter().map(|v| (v.short_usage(), v)).collect();
    let width = rows.iter().map(|(usage, _)| usage.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(usage, v)| {
            let aliases = match v.aliases {
                [] => String::new(),
                aliases => format!(" (also {})", aliases.join(", ")),
            };
            format!("{usage:<width$}  {}{aliases}\n", v.summary)
        })
        .collect()
}

/// One verb: usage, what it does, its aliases, its flags, an example.
pub fn detail(verb: &Verb) -> String {
    let mut text = format!("usage:   {}\n         {}\n", verb.usage(), verb.summary);
    if !verb.aliases.is_empty() {
        text += &format!("aliases: {}\n", verb.aliases.join(", "));
    }
    for flag in verb.flags {
        let short = flag.short.map(|c| format!("-{c},")).unwrap_or_default();
        let long = match flag.value {
            Some(value) => format!("{} <{value}>", flag.long),
            None => flag.long.to_string(),
        };
        let alias = flag
            .alias
            .map(|a| format!(" (also --{a})"))
            .unwrap_or_default();
        text += &format!("  {short:<3} --{long:<12} {}{alias}\n", flag.help);
    }
    text + &format!("example: {}\n", verb.example)
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let verbs: Vec<&Verb> = match args {
        [] => ctx.registry.iter().filter(|v| !v.local).collect(),
        [word] => vec![
            ctx.registry
                .served(word)
                .ok_or_else(|| Failure::new(ErrorKind::UnknownVerb, ctx.registry.unknown(word)))?,
        ],
        _ => return Err(Failure::new(ErrorKind::BadRequest, "usage: HELP [<verb>]")),
    };
    let items = verbs.iter().map(|v| {
        let usage = v.usage();
        Frame::new(Kind::Item, [v.name, &usage, v.summary, v.example])
    });
    ctx.conn.send_listing(items).map_err(Failure::from_wire)?;
    Ok(Reply::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_registered_verb_aligned() {
        let text = table(crate::registry());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), crate::registry().iter().count());
        for (line, verb) in lines.iter().zip(crate::registry().iter()) {
            assert!(line.starts_with(&verb.short_usage()), "{line}");
            assert!(line.contains(verb.summary), "{line}");
            for alias in verb.aliases {
                assert!(line.contains(alias), "{alias} in {line}");
            }
        }
        let column = |(l, v): (&&str, &Verb)| l.find(v.summary);
        let columns: Vec<_> = lines
            .iter()
            .zip(crate::registry().iter())
            .map(column)
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn detail_shows_aliases_and_flags() {
        let upload = crate::registry().find("UPLOAD").unwrap();
        let text = detail(upload);
        assert!(text.starts_with(
            "usage:   UPLOAD [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] \
             [--delete] <local-path-or-glob> [<remote-path>]\n"
        ));
        assert!(text.contains("aliases: put\n"), "{text}");
        assert!(
            text.contains("  -c, --continue     continue an interrupted transfer"),
            "{text}"
        );
        assert!(text.contains("(also --resume)"), "{text}");
        assert!(table(crate::registry()).contains("UPLOAD [options] <local-path-or-glob>"));
    }
}
