//! HELP [<verb>]: every verb with its usage and summary, or one verb in detail. Built from the
//! registry, so a new verb appears here by being registered.
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
    Arg, ClientCtx, ErrorKind, Failure, Flow, Frame, Kind, Registry, Reply, ServerCtx, Verb, name,
};

inventory::submit! {
    Verb {
        name: "HELP",
        usage: "HELP [<verb>]",
        summary: "list the verbs, or explain one",
        example: "HELP UPLOAD",
        args: &[Arg::Verb],
        required: 0,
        flags: &[],
        client: send,
        server: receive,
        ahead: None,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let text = match args.first() {
        None => table(ctx.registry),
        Some(word) => {
            let verb = ctx
                .registry
                .find(word)
                .ok_or_else(|| anyhow!("unknown verb '{}'; HELP lists them", name::escape(word)))?;
            detail(verb)
        }
    };
    ctx.out.write_all(text.as_bytes())?;
    Ok(Flow::Continue)
}

/// Every verb: usage and summary in aligned columns, sorted by name.
pub fn table(registry: &Registry) -> String {
    let width = registry.iter().map(|v| v.usage.len()).max().unwrap_or(0);
    registry
        .iter()
        .map(|v| format!("{:<width$}  {}\n", v.usage, v.summary))
        .collect()
}

/// One verb: usage, what it does, its flags, an example.
pub fn detail(verb: &Verb) -> String {
    let mut text = format!("usage:   {}\n         {}\n", verb.usage, verb.summary);
    for flag in verb.flags {
        text += &format!("  -{}, --{:<10} {}\n", flag.short, flag.long, flag.help);
    }
    text + &format!("example: {}\n", verb.example)
}

fn receive(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let verbs: Vec<&Verb> = match args {
        [] => ctx.registry.iter().collect(),
        [word] => vec![ctx.registry.find(word).ok_or_else(|| {
            Failure::new(
                ErrorKind::UnknownVerb,
                format!("unknown verb '{}'", name::escape(word)),
            )
        })?],
        _ => return Err(Failure::new(ErrorKind::BadRequest, "usage: HELP [<verb>]")),
    };
    let mut wire = || -> Result<(), ferry_core::WireError> {
        ctx.conn
            .queue(&Frame::new(Kind::Ok, [verbs.len().to_string()]))?;
        for v in &verbs {
            ctx.conn.queue(&Frame::new(
                Kind::Item,
                [v.name, v.usage, v.summary, v.example],
            ))?;
        }
        ctx.conn.send(&Frame::new(Kind::End, [""; 0]))
    };
    wire().map_err(Failure::from_wire)?;
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
            assert!(line.starts_with(verb.usage), "{line}");
            assert!(line.ends_with(verb.summary), "{line}");
        }
        let column = lines[0].find(crate::registry().iter().next().unwrap().summary);
        assert!(
            lines
                .iter()
                .zip(crate::registry().iter())
                .all(|(l, v)| l.find(v.summary) == column)
        );
    }
}
