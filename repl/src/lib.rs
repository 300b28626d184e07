//! `ferry`, Ferry's client: connects, then runs commands typed at a prompt, given with `-c`, or
//! piped in as a script. Every verb comes from the registry; nothing here names one, except
//! LOGOUT, which the end of input and Ctrl-D stand for.
//!
//! Layout:
//! - this file: [`connect`] (address, greeting), [`Client::dispatch`] (one command line);
//! - `script`: plain line reading for `-c` and piped stdin, with its exit-code rules;
//! - `interactive`: the rustyline prompt, and Ctrl-C as a cancel;
//! - `helper`: completion and usage hints, driven by each verb's parameters and flags;
//! - `remote`: the cache of the server's listings that completion offers, per directory;
//! - `history`: the history file;
//! - `trust`: the server's identity, pinned on first contact;
//! - `meter`: progress bars and transfer summaries;
//! - `color`: red errors on a terminal, unless `NO_COLOR`;
//! - `main.rs`: arguments and exit codes.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use ferry_core::{
    Args, Behind, ClientCtx, Connection, ContentError, Flow, Registry, Sent, WireError,
};

pub mod color;
pub mod helper;
pub mod history;
pub mod interactive;
pub mod meter;
pub mod remote;
pub mod script;
pub mod trust;

/// How long connecting may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits on a silent server before calling the connection lost.
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// Where `ferry` connects: the addresses to try, and the server as the user named it with its
/// port (`HOST:PORT`), which its identity is pinned under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The addresses the name resolved to.
    pub addrs: Vec<SocketAddr>,
    /// `HOST:PORT`.
    pub key: String,
    /// The port came from the port file, and so does the identity to expect (beside it).
    pub local: bool,
}

/// An error as `ferry` prints it: its causes on one line (`{:#}`), escaped
/// ([`ferry_core::name::escape_full`]), since a local path in it may hold any character.
pub fn said(e: &anyhow::Error) -> String {
    ferry_core::name::escape_full(&format!("{e:#}"))
}

/// Resolves `ferry`'s address argument: `HOST:PORT`, `[V6]:PORT`, or a host alone (default
/// 127.0.0.1) whose port is read from `port_file`.
pub fn resolve(addr: Option<&str>, port_file: &Path) -> anyhow::Result<Target> {
    let host = match addr {
        None => "127.0.0.1",
        Some(a) => {
            if let Ok(sa) = a.parse::<SocketAddr>() {
                let key = sa.to_string();
                return Ok(Target {
                    addrs: vec![sa],
                    key,
                    local: false,
                });
            }
            if a.parse::<IpAddr>().is_err() && a.contains(':') {
                let found: Vec<_> = a
                    .to_socket_addrs()
                    .with_context(|| format!("cannot resolve '{a}'"))?
                    .collect();
                let key = a.to_ascii_lowercase();
                return Ok(Target {
                    addrs: found,
                    key,
                    local: false,
                });
            }
            a
        }
    };
    let port = read_port(port_file)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve '{bare}'"))?
            .collect(),
    };
    let key = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{}:{port}", bare.to_ascii_lowercase()),
    };
    Ok(Target {
        addrs,
        key,
        local: true,
    })
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

/// The identity the server that wrote `port_file` has: what it wrote beside it.
pub fn local_identity(port_file: &Path) -> anyhow::Result<trust::Expect> {
    let file = ferry_core::identity::fingerprint_file(port_file);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read '{}', which ferryd writes beside its port file; is a ferryd of this \
             version running here?",
            file.display()
        )
    })?;
    let fingerprint = ferry_core::identity::Fingerprint::parse(&text)
        .with_context(|| format!("'{}' does not hold a fingerprint", file.display()))?;
    Ok(trust::Expect::Exactly {
        fingerprint,
        source: format!("'{}'", file.display()),
    })
}

/// The first word of a command line, as the verb it names (for reporting a line that could
/// not be read).
fn first_word(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Set once a write to standard output has failed because its reader closed it.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output that notes when its reader has closed it (`ferry -c LIST | head -1`), so
/// that a script can end quietly rather than report a broken pipe as a failed command. A
/// broken pipe on the connection is no such thing, hence a mark here rather than a look at
/// the error's kind.
pub struct Stdout(std::io::Stdout);

impl Stdout {
    /// The process's standard output.
    pub fn new() -> Stdout {
        Stdout(std::io::stdout())
    }

    /// True once a write to standard output has found its reader gone.
    pub fn closed() -> bool {
        STDOUT_CLOSED.load(Ordering::Relaxed)
    }

    fn note<T>(result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl Default for Stdout {
    fn default() -> Stdout {
        Stdout::new()
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Stdout::note(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Stdout::note(self.0.flush())
    }
}

/// How to connect: the token to prove, and the identity the server must have.
pub struct Access<'a> {
    /// The access token, if any.
    pub token: Option<&'a str>,
    /// The identity the server must present.
    pub expect: &'a trust::Expect,
    /// Asks the user a question (first contact at the prompt); true for yes.
    pub ask: &'a mut dyn FnMut(&str) -> bool,
}

/// Connects to the first address that answers: the greeting, TLS, the server's identity
/// checked, then the proof of the token. Nothing is sent inside TLS to a server whose
/// identity is not the one expected.
pub fn connect(
    addrs: &[SocketAddr],
    access: Access<'_>,
) -> anyhow::Result<(Connection, SocketAddr)> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                let conn =
                    greet(stream, access).with_context(|| format!("connecting to {addr}"))?;
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

fn greet(stream: TcpStream, access: Access<'_>) -> anyhow::Result<Connection> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let tls = ferry_core::hello::open(stream, Instant::now() + IO_TIMEOUT)?;
    let presented = tls
        .peer_fingerprint()
        .context("the server presented no certificate")?;
    access.expect.check(&presented, access.ask)?;
    let proof = access
        .token
        .map(|t| ferry_core::identity::proof(t, &tls.binding()));
    let mut conn = Connection::boxed(tls);
    let software = concat!("ferry ", env!("CARGO_PKG_VERSION"));
    ferry_core::hello::greet(&mut conn, software, proof.as_deref())?;
    Ok(conn)
}

/// The access token to present: the first in `file`, else `FERRY_TOKEN`, else none.
pub fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let tokens = ferry_core::token::read_tokens(file)?;
    Ok(tokens
        .and_then(|t| t.grants.into_iter().next())
        .map(|g| g.secret))
}

/// A connected client.
pub struct Client {
    /// What the verbs' client halves run in.
    pub ctx: ClientCtx,
}

impl Client {
    /// Wraps a greeted connection.
    pub fn new(
        conn: Connection,
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
                cwd: ferry_core::RemotePath::root(),
                local_dir,
                out,
                err: Box::new(std::io::stderr()),
                meter: Box::new(ferry_core::Silent),
                report: ferry_core::report::Report::default(),
                landing: Default::default(),
            },
        }
    }

    /// Runs one command line: shell-style words, the first a verb (any case) or one of its
    /// aliases.
    ///
    /// Knows nothing of where the line came from; the prompt, `-c` and scripts all use it.
    pub fn dispatch(&mut self, line: &str) -> anyhow::Result<Flow> {
        let flow = match self.parse(line) {
            Ok(None) => return Ok(Flow::Continue),
            Ok(Some(args)) => {
                self.ctx.report.begin(args.verb().name);
                (args.verb().client)(&mut self.ctx, &args)
            }
            Err(e) => {
                self.ctx.report.begin(first_word(line));
                Err(e)
            }
        };
        self.ctx.conclude(&flow)?;
        self.ctx.out.flush()?;
        flow
    }

    /// Ends the session (the end of a script, Ctrl-D) with LOGOUT, which the user did not
    /// type, so nothing is reported for it.
    pub fn end(&mut self) -> anyhow::Result<Flow> {
        let json = std::mem::take(&mut self.ctx.report.json);
        let flow = self.dispatch("LOGOUT");
        self.ctx.report.json = json;
        flow
    }

    /// Sends one command line ahead of the replies to earlier ones, when its verb can be
    /// pipelined and nothing [`Behind`] it stands in the way; `None` when it must instead run
    /// with [`Client::dispatch`] once every earlier reply has been read.
    ///
    /// Its success is reported when it finishes, or when its file lands (a download); a
    /// failure here, if sending it fails, else by the caller that finishes it.
    pub fn send_ahead(&mut self, line: &str, behind: Behind) -> anyhow::Result<Option<Sent>> {
        let Ok(Some(args)) = self.parse(line) else {
            return Ok(None);
        };
        let (Some(ahead), verb) = (args.verb().ahead, args.verb().name) else {
            return Ok(None);
        };
        self.ctx.report.begin(verb);
        match ahead(&mut self.ctx, &args, behind) {
            Ok(Some(mut sent)) => {
                let (finish, lands) = (sent.finish, sent.lands.is_some());
                // A failure is reported by whoever finishes it (see `script`): a download's
                // comes after the files before it are committed and reported. A download
                // that lands reports itself then.
                sent.finish = Box::new(move |ctx: &mut ClientCtx| {
                    ctx.report.begin(verb);
                    let flow = finish(ctx);
                    if flow.is_ok() && !lands {
                        ctx.conclude(&flow)?;
                    }
                    flow
                });
                Ok(Some(sent))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                let failed: anyhow::Result<Flow> = Err(e);
                self.ctx.conclude(&failed)?;
                failed.map(|_| None)
            }
        }
    }

    /// A command line read by the registry's parser: its verb and arguments, checked; `None`
    /// for a line without words.
    fn parse(&self, line: &str) -> anyhow::Result<Option<Args>> {
        Ok(self.ctx.registry.parse(line)?)
    }

    /// True when, between commands, the server has closed the connection (or sent something
    /// unasked, which leaves it out of step just the same). Does not block.
    pub fn server_gone(&mut self) -> bool {
        self.ctx.conn.waiting() != ferry_core::socket::Waiting::Nothing
    }

    /// True when the last failure left the connection unusable.
    pub fn is_lost(err: &anyhow::Error) -> bool {
        err.chain().any(|cause| {
            cause
                .downcast_ref::<WireError>()
                .is_some_and(WireError::is_fatal)
                || cause
                    .downcast_ref::<ContentError>()
                    .is_some_and(|e| matches!(e, ContentError::Wire(w) if w.is_fatal()))
        })
    }
}
