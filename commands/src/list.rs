//! LIST: the entries of a directory on the server, one line each: name (a directory's with a
//! trailing `/`), size, modification time. Also `ls`, `dir`.
//!
//! # Wire
//! ```text
//! -> Q LIST <dir>
//! <- O
//! <- I <name> file|dir <size> <mtime>   (per entry, in no order; mtime in Unix seconds)
//! <- Z                                   (or X, if the directory fails part way)
//! ```
//! The server sends entries as it reads the directory, never holding the listing whole; the
//! client sorts them, and takes at most [`MAX_ENTRIES`].

use anyhow::{Context, bail};
use ferry_core::store::{Entry, EntryKind, Meta};
use ferry_core::{
    Args, ClientCtx, ErrorKind, Failure, Flow, Frame, Kind, Param, ParamKind, RemotePath, Reply,
    ServerCtx, Verb, name,
};

/// Most entries the client takes from one listing: a bound on its memory whatever a server
/// sends (each entry is at most a 255-byte name and three numbers).
pub const MAX_ENTRIES: usize = 1_000_000;
/// Most bytes of names the client takes from one listing.
pub const MAX_NAME_BYTES: usize = 64 << 20;

inventory::submit! {
    Verb {
        name: "LIST",
        aliases: &["ls", "dir"],
        summary: "list a directory on the server",
        example: "LIST photos",
        params: &[Param::one("path-or-glob", ParamKind::RemoteGlob).optional()],
        ..Verb::new(run, serve, module_path!())
    }
}

fn run(ctx: &mut ClientCtx, args: &Args) -> anyhow::Result<Flow> {
    let typed = args.get("path-or-glob").unwrap_or(".");
    if crate::tree::pattern::is_pattern(typed) {
        return matches(ctx, typed);
    }
    let dir = crate::remote_path(ctx, typed)?;
    let (entries, refused) = match fetch(ctx, &dir) {
        Ok(listed) => listed,
        // A file is listed as itself, as `ls` does: found in its directory's listing.
        Err(e) if crate::is_refusal(&e, ErrorKind::NotFound) => match entry_at(ctx, &dir) {
            Some(entry) if entry.kind == EntryKind::File => (vec![entry], Vec::new()),
            _ => return Err(e.context(format!("listing '{dir}'"))),
        },
        Err(e) => return Err(e.context(format!("listing '{dir}'"))),
    };
    crate::print_entries(ctx, &entries)?;
    if entries.is_empty() && refused.is_empty() && ctx.report.at_prompt {
        ctx.tell(format_args!("'{}' is empty", dir.shown_from(&ctx.cwd)))?;
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

/// What is at `path`, as its directory lists it (the root is a directory); `None` when its
/// directory does not hold it. A failure to list other than a missing directory is an error.
pub(crate) fn lookup(ctx: &mut ClientCtx, path: &RemotePath) -> anyhow::Result<Option<Entry>> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        let meta = Meta { size: 0, mtime: 0 };
        let name = String::new();
        return Ok(Some(Entry {
            name,
            kind: EntryKind::Dir,
            meta,
        }));
    };
    match fetch(ctx, &parent) {
        Ok((entries, _)) => Ok(entries.into_iter().find(|e| e.name == name)),
        Err(e) if crate::is_refusal(&e, ErrorKind::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The entry at `path`, as its directory lists it, named as the user would type it.
fn entry_at(ctx: &mut ClientCtx, path: &RemotePath) -> Option<Entry> {
    let (parent, name) = (path.parent()?, path.file_name()?);
    let (entries, _) = fetch(ctx, &parent).ok()?;
    let found = entries.into_iter().find(|e| e.name == name)?;
    Some(Entry {
        name: path.shown_from(&ctx.cwd),
        ..found
    })
}

/// What a pattern matches, each shown by its path from the working directory.
fn matches(ctx: &mut ClientCtx, typed: &str) -> anyhow::Result<Flow> {
    let mut entries = Vec::new();
    for (path, known) in crate::tree::pattern::remote(ctx, typed)? {
        let name = path.shown_from(&ctx.cwd);
        match known {
            Some((kind, meta)) => entries.push(Entry { name, kind, meta }),
            // Named by a literal part after a pattern: there, or not.
            None => entries.extend(entry_at(ctx, &path)),
        }
    }
    crate::print_entries(ctx, &entries)?;
    Ok(Flow::Continue)
}

/// The entries of `dir` that a command can take, sorted by name, a directory's with a
/// trailing `/`, for the REPL's completion. Names that break the rules are left out.
pub fn names(ctx: &mut ClientCtx, dir: &RemotePath) -> anyhow::Result<Vec<String>> {
    let (entries, _) = fetch(ctx, dir).with_context(|| format!("listing '{dir}'"))?;
    Ok(entries
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::Dir => format!("{}/", e.name),
            EntryKind::File => e.name,
        })
        .collect())
}

/// The listing of `dir`, sorted by name, and apart the names that break the rules.
///
/// Only bare names that pass the rules are accepted from the server, so that nothing built on
/// a listing (a script, completion, a later verb) can be led outside a directory, and no
/// control character reaches a terminal.
pub(crate) fn fetch(
    ctx: &mut ClientCtx,
    dir: &RemotePath,
) -> anyhow::Result<(Vec<Entry>, Vec<String>)> {
    ctx.conn.call(["LIST".to_string(), dir.wire()])?;
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    let mut bytes = 0;
    // Past a bound, or at an item that is not one, the rest of the listing is not read: the
    // connection is lost (a fatal error), rather than held in memory or read out of step.
    let lost = |why: String| anyhow::Error::from(ferry_core::WireError::Invalid(why));
    while let Some(words) = ctx.conn.next_item()? {
        bytes += words.first().map_or(0, String::len);
        if entries.len() + refused.len() >= MAX_ENTRIES || bytes > MAX_NAME_BYTES {
            return Err(lost(format!(
                "the server listed more than {MAX_ENTRIES} entries or 64 MiB of names"
            )));
        }
        let malformed = || lost("malformed listing item from the server".into());
        let [name, kind, size, mtime] = words.as_slice() else {
            return Err(malformed());
        };
        let Some(kind) = EntryKind::from_word(kind) else {
            return Err(malformed());
        };
        if name::validate(name).is_err() {
            refused.push(name.chars().take(80).collect());
            continue;
        }
        let (Ok(size), Ok(mtime)) = (size.parse(), mtime.parse()) else {
            return Err(malformed());
        };
        let meta = Meta { size, mtime };
        entries.push(Entry {
            name: name.clone(),
            kind,
            meta,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, refused))
}

/// Streams the directory: the `O` goes once the directory is open (so that a missing one is
/// a plain `E`), each entry as it is read, and a failure part way ends it with `X`.
fn serve(ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    let [dir] = crate::wire_args(args)?;
    let dir = crate::wire_path(dir)?;
    let conn = &mut *ctx.conn;
    let mut started = false;
    let listed = ctx.store.list(&dir, &mut |entry| {
        if !started {
            conn.queue(&Frame::new(Kind::Ok, [""; 0]))
                .map_err(Failure::from_wire)?;
            started = true;
        }
        let (size, mtime) = (entry.meta.size.to_string(), entry.meta.mtime.to_string());
        let item = [entry.name.as_str(), entry.kind.word(), &size, &mtime];
        conn.queue(&Frame::new(Kind::Item, item))
            .map_err(Failure::from_wire)
    });
    match listed {
        Err(failure) if !started => return Err(failure),
        Err(failure) => {
            conn.send(&Frame::failure(Kind::Abort, &failure))
                .map_err(Failure::from_wire)?;
            return Ok(Reply::Done);
        }
        Ok(()) if !started => conn
            .queue(&Frame::new(Kind::Ok, [""; 0]))
            .map_err(Failure::from_wire)?,
        Ok(()) => {}
    }
    conn.send(&Frame::new(Kind::End, [""; 0]))
        .map_err(Failure::from_wire)?;
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
            cwd: RemotePath::root(),
            local_dir: ".".into(),
            out: Box::new(std::io::sink()),
            err: Box::new(std::io::sink()),
            meter: Box::new(Silent),
            report: Default::default(),
            landing: Default::default(),
        };
        (ctx, server)
    }

    fn item(name: &str) -> Frame {
        Frame::new(Kind::Item, [name, "file", "1", "0"])
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
        reply.push(Frame::new(Kind::Item, ["photos", "dir", "0", "0"]));
        reply.push(Frame::new(Kind::End, [""; 0]));
        let (mut ctx, server) = client_of(reply);
        let dir = RemotePath::root().resolve("my dir/ünï").unwrap();
        let names = names(&mut ctx, &dir).unwrap();
        let mut sorted = vec!["a.txt", "my file ✓", long.as_str(), "..hidden", "photos/"];
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(server.join().unwrap(), ["LIST", "/my dir/ünï"]);
    }

    #[test]
    fn names_reports_a_refused_listing() {
        let failure = Failure::new(ErrorKind::Io, "i/o error on 'the root'");
        let reply = vec![Frame::failure(Kind::Error, &failure)];
        let (mut ctx, server) = client_of(reply);
        let err = names(&mut ctx, &RemotePath::root()).unwrap_err();
        assert_eq!(format!("{err:#}"), "listing '/': i/o error on 'the root'");
        server.join().unwrap();
    }
}
