//! LIST: one line per file on the server: name, size, modification time.
//!
//! # Wire
//! ```text
//! -> Q LIST
//! <- O <count>
//! <- I <name> <size> <mtime>     (count times, sorted by name; mtime in Unix seconds)
//! <- Z
//! ```

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use ferry_core::{ClientCtx, Failure, Flow, Frame, Kind, Reply, ServerCtx, Verb, name};

inventory::submit! {
    Verb {
        name: "LIST",
        usage: "LIST",
        summary: "list the files on the server",
        example: "LIST",
        args: &[],
        required: 0,
        flags: &[],
        client: send,
        server: receive,
        module: module_path!(),
    }
}

fn send(ctx: &mut ClientCtx, _args: &[String]) -> anyhow::Result<Flow> {
    let rows = fetch(ctx).context("listing files")?;
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    for (name, size, mtime) in rows {
        let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(mtime));
        writeln!(
            ctx.out,
            "{name:<width$}  {:>10}  {when}",
            crate::human(size)
        )?;
    }
    Ok(Flow::Continue)
}

/// The listing as (escaped name, size, mtime) rows; a name that breaks the rules fails it.
fn fetch(ctx: &mut ClientCtx) -> anyhow::Result<Vec<(String, u64, u64)>> {
    ctx.conn.call(["LIST"])?;
    let mut rows = Vec::new();
    while let Some(words) = ctx.conn.next_item()? {
        let [name, size, mtime] = words.as_slice() else {
            anyhow::bail!("malformed listing item from the server");
        };
        // Only bare names that pass the rules are accepted from the server, so that nothing
        // built on a listing (a script, a later verb) can be led outside a directory.
        name::validate(name).context("the server listed a bad name")?;
        rows.push((
            name::escape(name),
            crate::number(size, "size")?,
            crate::number(mtime, "mtime")?,
        ));
    }
    Ok(rows)
}

fn receive(ctx: &mut ServerCtx<'_>, _args: &[String]) -> Result<Reply, Failure> {
    let entries = ctx.root.list().map_err(|e| Failure::io("the root", &e))?;
    let wire = |conn: &mut ferry_core::Connection<_>| -> Result<(), ferry_core::WireError> {
        conn.queue(&Frame::new(Kind::Ok, [entries.len().to_string()]))?;
        for e in &entries {
            conn.queue(&Frame::new(
                Kind::Item,
                [e.name.clone(), e.size.to_string(), e.mtime.to_string()],
            ))?;
        }
        conn.send(&Frame::new(Kind::End, [""; 0]))
    };
    wire(ctx.conn).map_err(Failure::from_wire)?;
    Ok(Reply::Done)
}
