//! `ferry`, Ferry's client: connects, then runs commands typed at a prompt, given with `-c`, or
//! piped in as a script. Every verb comes from the registry; nothing here names one, except
//! LOGOUT, which the end of input and Ctrl-D stand for.
//!
//! Layout:
//! - this file: [`connect`] (address, greeting), [`Client::dispatch`] (one command line);
//! - `script`: plain line reading for `-c` and piped stdin, with its exit-code rules;
//! - `interactive`: the rustyline prompt, and Ctrl-C as a cancel;
//! - `helper`: completion and usage hints, driven by each verb's `args` and `usage`;
//! - `remote`: the cache of the server's names that completion offers;
//! - `history`: the history file;
//! - `meter`: progress bars and transfer summaries;
//! - `color`: red errors on a terminal, unless `NO_COLOR`;
//! - `main.rs`: arguments and exit codes.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ferry_core::{
    Behind, ClientCtx, Connection, Flow, Frame, Kind, PROTOCOL, Registry, Sent, VERSION, Verb,
    WireError,
};

pub mod color;
pub mod helper;
pub mod history;
pub mod interactive;
pub mod meter;
pub mod remote;
pub mod script;

/// How long connecting may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits on a silent server before calling the connection lost.
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// Resolves `ferry`'s address argument: `HOST:PORT`, `[V6]:PORT`, or a host alone (default
/// 127.0.0.1) whose port is read from `port_file`.
pub fn resolve(addr: Option<&str>, port_file: &Path) -> anyhow::Result<Vec<SocketAddr>> {
    let host = match addr {
        None => "127.0.0.1",
        Some(a) => {
            if let Ok(sa) = a.parse::<SocketAddr>() {
                return Ok(vec![sa]);
            }
            if a.parse::<IpAddr>().is_err() && a.contains(':') {
                let found: Vec<_> = a
                    .to_socket_addrs()
                    .with_context(|| format!("cannot resolve '{a}'"))?
                    .collect();
                return Ok(found);
            }
            a
        }
    };
    let port = read_port(port_file)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve '{host}'"))?
        .collect())
}

fn read_port(port_file: &Path) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(port_file).with_context(|| {
        format!(
            "cannot read port file '{}'; is ferryd running here? (or give HOST:PORT)",
            port_file.display()
        )
    })?;
    text.trim().parse().map_err(|_| {
        anyhow!(
            "port file '{}' does not hold a port number",
            port_file.display()
        )
    })
}

/// Connects to the first address that answers and exchanges greetings.
pub fn connect(addrs: &[SocketAddr]) -> anyhow::Result<(Connection<TcpStream>, SocketAddr)> {
    connect_with_token(addrs, None)
}

/// [`connect`], presenting an access token in the greeting.
pub fn connect_with_token(
    addrs: &[SocketAddr],
    token: Option<&str>,
) -> anyhow::Result<(Connection<TcpStream>, SocketAddr)> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                let conn = greet(stream, token).with_context(|| format!("connecting to {addr}"))?;
                return Ok((conn, *addr));
            }
            Err(e) => last = Some((*addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(anyhow!(
            "cannot connect to {addr}: {e}; is ferryd running there?"
        )),
        None => bail!("no address to connect to"),
    }
}

fn greet(stream: TcpStream, token: Option<&str>) -> anyhow::Result<Connection<TcpStream>> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut conn = Connection::new(stream);
    let hello = conn.recv()?;
    match (hello.kind, hello.words.as_slice()) {
        (Kind::Hello, [p, v, ..]) if p == PROTOCOL && v == VERSION => {}
        (Kind::Hello, [p, v, ..]) if p == PROTOCOL => bail!(
            "server speaks protocol version {}, this client {VERSION}",
            ferry_core::name::escape(v)
        ),
        (Kind::Error, words) => {
            return Err(WireError::Remote(ferry_core::conn::failure_from_words(words)).into());
        }
        _ => bail!("not a Ferry server"),
    }
    let mut hello = Frame::new(
        Kind::Hello,
        [
            PROTOCOL,
            VERSION,
            concat!("ferry ", env!("CARGO_PKG_VERSION")),
        ],
    );
    hello.words.extend(token.map(String::from));
    conn.send(&hello)?;
    conn.expect_ok()?;
    Ok(conn)
}

/// The access token to present: the contents of `file` (surrounding whitespace ignored),
/// else `FERRY_TOKEN`, else none.
pub fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let secret = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading token file '{}'", path.display()))?,
        None => match std::env::var("FERRY_TOKEN") {
            Ok(secret) => secret,
            Err(_) => return Ok(None),
        },
    };
    let secret = secret.trim();
    Ok((!secret.is_empty()).then(|| secret.to_string()))
}

/// A connected client.
pub struct Client {
    /// What the verbs' client halves run in.
    pub ctx: ClientCtx,
}

impl Client {
    /// Wraps a greeted connection.
    pub fn new(
        conn: Connection<TcpStream>,
        server: SocketAddr,
        registry: &'static Registry,
        local_dir: PathBuf,
        out: Box<dyn Write + Send>,
    ) -> Client {
        Client {
            ctx: ClientCtx {
                conn,
                server,
                registry,
                local_dir,
                out,
                meter: Box::new(ferry_core::Silent),
            },
        }
    }

    /// Runs one command line: shell-style words, the first a verb (any case).
    ///
    /// Knows nothing of where the line came from; the prompt, `-c` and scripts all use it.
    pub fn dispatch(&mut self, line: &str) -> anyhow::Result<Flow> {
        let Some((verb, args)) = self.parse(line)? else {
            return Ok(Flow::Continue);
        };
        let flow = (verb.client)(&mut self.ctx, &args);
        self.ctx.out.flush()?;
        flow
    }

    /// Sends one command line ahead of the replies to earlier ones, when its verb can be
    /// pipelined and nothing [`Behind`] it stands in the way; `None` when it must instead run
    /// with [`Client::dispatch`] once every earlier reply has been read.
    pub fn send_ahead(&mut self, line: &str, behind: Behind) -> anyhow::Result<Option<Sent>> {
        match self.parse(line)? {
            Some((verb, args)) => match verb.ahead {
                Some(ahead) => ahead(&mut self.ctx, &args, behind),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// A command line's verb and words after it, checked against the verb's usage; `None` for
    /// a line without words.
    fn parse(&self, line: &str) -> anyhow::Result<Option<(&'static Verb, Vec<String>)>> {
        let mut words = shlex::split(line).ok_or_else(|| anyhow!("unbalanced quotes"))?;
        if words.is_empty() {
            return Ok(None);
        }
        let first = words.remove(0);
        let verb = self.ctx.registry.find(&first).ok_or_else(|| {
            anyhow!(
                "unknown verb '{}'; HELP lists them",
                ferry_core::name::escape(&first)
            )
        })?;
        // Flags are declared on the verb: the check counts only the arguments around them.
        verb.parse(&words).map_err(|usage| anyhow!(usage))?;
        Ok(Some((verb, words)))
    }

    /// True when, between commands, the server has closed the connection (or sent something
    /// unasked, which leaves it out of step just the same). Does not block.
    pub fn server_gone(&self) -> bool {
        ferry_core::conn::input_waiting(self.ctx.conn.stream())
    }

    /// True when the last failure left the connection unusable.
    pub fn is_lost(err: &anyhow::Error) -> bool {
        err.chain().any(|cause| {
            cause
                .downcast_ref::<WireError>()
                .is_some_and(WireError::is_fatal)
                || cause
                    .downcast_ref::<ferry_core::conn::ContentError>()
                    .is_some_and(
                        |e| matches!(e, ferry_core::conn::ContentError::Wire(w) if w.is_fatal()),
                    )
        })
    }
}
