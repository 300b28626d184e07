//! LIST: one line per file on the server: name, size, modification time. Also `ls`, `dir`.
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

use anyhow::{Context, bail};
use ferry_core::{Args, ClientCtx, Failure, Flow, Frame, Kind, Reply, ServerCtx, Verb, name};

inventory::submit! {
    Verb {
        name: "LIST",
        aliases: &["ls", "dir"],
        summary: "list the files on the server",
        example: "LIST",
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, _args: &Args) -> anyhow::Result<Flow> {
    let (rows, refused) = fetch(ctx).context("listing files")?;
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    for (name, size, mtime) in rows {
        let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(mtime));
        writeln!(
            ctx.out,
            "{name:<width$}  {:>10}  {when}",
            crate::human(size)
        )?;
    }
    if !refused.is_empty() {
        let shown: Vec<String> = refused
            .iter()
            .take(3)
            .map(|n| format!("'{}'", name::escape(n)))
            .collect();
        bail!(
            "the server listed {} bad name(s), left out: {}",
            refused.len(),
            shown.join(", ")
        );
    }
    Ok(Flow::Continue)
}

/// The names of the server's files that a command can take, in the listing's order (by name),
/// for the REPL's completion. Names that break the rules are left out.
pub fn names(ctx: &mut ClientCtx) -> anyhow::Result<Vec<String>> {
    let (rows, _) = fetch(ctx).context("listing files")?;
    Ok(rows.into_iter().map(|(name, _, _)| name).collect())
}

/// One listed file: name, size, modification time.
type Row = (String, u64, u64);

/// The listing as rows, and apart the names that break the rules.
///
/// Only bare names that pass the rules are accepted from the server, so that nothing built on
/// a listing (a script, completion, a later verb) can be led outside a directory, and no
/// control character reaches a terminal.
fn fetch(ctx: &mut ClientCtx) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    ctx.conn.call(["LIST"])?;
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    while let Some(words) = ctx.conn.next_item()? {
        let [name, size, mtime] = words.as_slice() else {
            bail!("malformed listing item from the server");
        };
        if name::validate(name).is_err() {
            refused.push(name.clone());
            continue;
        }
        rows.push((
            name.clone(),
            crate::number(size, "size")?,
            crate::number(mtime, "mtime")?,
        ));
    }
    Ok((rows, refused))
}

fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [] = crate::wire_args(args)?;
    let entries = ctx.store.list().map_err(|e| Failure::io("the root", &e))?;
    let items = entries.iter().map(|e| {
        let (size, mtime) = (e.meta.size.to_string(), e.meta.mtime.to_string());
        Frame::new(Kind::Item, [e.name.as_str(), &size, &mtime])
    });
    ctx.conn.send_listing(items).map_err(Failure::from_wire)?;
    Ok(Reply::Done)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    use ferry_core::{Connection, ErrorKind, Failure, Silent};

    use super::*;

    /// A client connected to a one-request server that answers with `reply`.
    fn client_of(reply: Vec<Frame>) -> (ClientCtx, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut conn = Connection::new(stream);
            let request = conn.recv().unwrap();
            for frame in &reply {
                conn.queue(frame).unwrap();
            }
            conn.flush().unwrap();
            request.words
        });
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let ctx = ClientCtx {
            conn: Connection::boxed(stream),
            server: addr,
            registry: crate::registry(),
            local_dir: ".".into(),
            out: Box::new(std::io::sink()),
            meter: Box::new(Silent),
        };
        (ctx, server)
    }

    fn item(name: &str) -> Frame {
        Frame::new(Kind::Item, [name, "1", "0"])
    }

    #[test]
    fn names_are_the_usable_names_as_sent() {
        let long = "n".repeat(200);
        let listing = [
            "a.txt",
            "my file ✓",
            "evil\x1b[2J",
            &long,
            "x\\y",
            "..hidden",
        ];
        let mut reply = vec![Frame::new(Kind::Ok, [listing.len().to_string()])];
        reply.extend(listing.iter().map(|n| item(n)));
        reply.push(Frame::new(Kind::End, [""; 0]));
        let (mut ctx, server) = client_of(reply);
        let names = names(&mut ctx).unwrap();
        assert_eq!(names, ["a.txt", "my file ✓", long.as_str(), "..hidden"]);
        assert_eq!(server.join().unwrap(), ["LIST"]);
    }

    #[test]
    fn names_reports_a_refused_listing() {
        let failure = Failure::new(ErrorKind::Io, "i/o error on 'the root'");
        let reply = vec![Frame::failure(Kind::Error, &failure)];
        let (mut ctx, server) = client_of(reply);
        let err = names(&mut ctx).unwrap_err();
        assert_eq!(format!("{err:#}"), "listing files: i/o error on 'the root'");
        server.join().unwrap();
    }
}
