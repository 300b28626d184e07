//! `ferryd`, Ferry's server: one named thread per client, verbs dispatched through the registry.
//!
//! Layout:
//! - this file: [`Config`], [`bind`] (the listener, built with socket2), [`run`]
//!   (the accept loop, the janitor that expires kept uploads, and graceful shutdown);
//! - `clients`: the connections held, greeting and in session, their limits (in all and per
//!   address), and who gives way when one is reached;
//! - `session`: one client's greeting and request loop;
//! - `local`: [`LocalStore`], the files in a local directory, reached through directory handles;
//! - `s3` (feature `s3`): [`s3::S3Store`], the files in an S3-compatible bucket, through OpenDAL;
//! - `shutdown`: [`Shutdown`], the shared request to stop, or to drain, and the draining
//!   itself; the janitor;
//! - `proxy`: the PROXY protocol header a trusted load balancer sends, and [`Network`];
//! - `identity`: [`Identity`], the key and certificate clients know the server by;
//! - `access`: [`Token`]s and the [`Access`] a client's proof of one grants;
//! - `log`: [`log`] and [`log_done`], the log's lines, as text or JSON, to stderr or a file;
//! - `portfile`: [`PortFile`], the port file a server owns while it runs, and its lock;
//! - `tunables`: [`tune_glibc`], the second start that keeps glibc's memcpy off its slow path
//!   and its large blocks returned when freed;
//! - `main.rs`: arguments, the port file, signals, exit codes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use ferry_core::{ErrorKind, Failure, Registry, Store};
use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

mod access;
mod clients;
mod identity;
mod local;
mod log;
mod portfile;
mod proxy;
mod roots;
#[cfg(feature = "s3")]
pub mod s3;
mod session;
mod shutdown;
mod tunables;

pub use access::{Access, Token};
use clients::{Clients, Limits};
pub use identity::Identity;
pub use local::{LocalStore, Part, PartLimits, clear_partials, list_partials};
pub use log::{LogFormat, init_log, log, log_done};
pub use portfile::{PortFile, lock_file};
pub use proxy::Network;
use roots::open_store;
pub use roots::{OBJECT_STORE_SCHEME, Partials, partials};
pub use shutdown::Shutdown;
pub use tunables::tune_glibc;

/// How long a peer that sent a wrong access token waits for its refusal, to slow guessing.
pub const WRONG_TOKEN_DELAY: Duration = Duration::from_secs(1);

/// Stack size of a client thread: the handlers keep their buffers on the heap, so a small
/// stack lets a thousand idle clients fit in a few megabytes.
const CLIENT_STACK: usize = 256 * 1024;
/// Stack size of a client thread serving an object store: OpenDAL's futures (with their retry
/// and timeout layers) are polled on it, and overflow a small stack. Only the pages used are
/// ever touched, so the cost is address space, not memory.
const OBJECT_STORE_STACK: usize = 2 * 1024 * 1024;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory served (created if missing).
    pub root: PathBuf,
    /// The most sessions (connections that have greeted) at once; past it, the session idle
    /// the longest is closed to make room (not one that finished a request less than a second
    /// ago), and only when there is none is a client refused.
    pub max_clients: usize,
    /// The most connections still greeting at once; past it, the one that has got least far
    /// (from the address holding the most places, the oldest of those) is closed to make room.
    pub max_handshakes: usize,
    /// The most connections of both kinds from one address; past it, that address's own
    /// connection still greeting that has got least far is closed to make room, or the
    /// newcomer refused. `None`: no limit.
    pub max_per_address: Option<usize>,
    /// A connection silent this long between requests is dropped; while a request is in
    /// flight, the most time spent waiting on the client per quota moved (see `min_rate`).
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// The least rate, in bytes per second, a request in flight must move, over each
    /// `idle_timeout` spent waiting on the client ([`ferry_core::Pace`]).
    pub min_rate: u64,
    /// How long transfers in flight may take to finish after shutdown is requested.
    pub grace: Duration,
    /// `SO_SNDBUF` for client sockets; `None` keeps the kernel's autotuning.
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF` for client sockets; `None` keeps the kernel's autotuning.
    pub recv_buffer: Option<usize>,
    /// Uploads declaring more bytes than this are refused before any data is sent.
    pub max_file_size: Option<u64>,
    /// How long an interrupted upload is kept, hidden, for resuming.
    pub partial_max_age: Duration,
    /// The most bytes interrupted uploads kept for resuming may hold together; `None`: a
    /// tenth of the root's filesystem.
    pub max_partial_bytes: Option<u64>,
    /// The most interrupted uploads kept for resuming.
    pub max_partials: usize,
    /// The share of both, in percent, that uploads from one address may hold.
    pub partial_share: u8,
    /// The tokens a client may prove it knows, each granting what it grants; when empty,
    /// every client may do everything.
    pub tokens: Vec<Token>,
    /// How long a new connection may take to greet, the TLS handshake included, in total.
    pub handshake_timeout: Duration,
    /// The file that keeps the server's identity (made there on first start); `None` for the
    /// user's data directory's `ferry/identity.pem`.
    pub identity: Option<PathBuf>,
    /// Lets clients make entries whose names hold invisible formatting characters or are
    /// not in NFC (`--allow-any-name`); by default such names are refused on creation.
    pub allow_any_name: bool,
    /// Load balancers whose connections begin with a PROXY protocol v2 header, which must be
    /// there and says who the client is (`--trusted-proxy`); from elsewhere none is accepted.
    pub trusted_proxies: Vec<Network>,
}

impl Config {
    /// The defaults for serving `root`.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            max_clients: 1024,
            max_handshakes: 128,
            max_per_address: Some(32),
            idle_timeout: Some(Duration::from_secs(300)),
            min_rate: 1024,
            grace: Duration::from_secs(10),
            send_buffer: None,
            recv_buffer: None,
            max_file_size: None,
            partial_max_age: ferry_core::store::DEFAULT_PARTIAL_AGE,
            max_partial_bytes: None,
            max_partials: 1024,
            partial_share: 25,
            tokens: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            identity: None,
            allow_any_name: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Binds a listener: reuse-address (a restarted server need not wait out TIME_WAIT), v6-only
/// for IPv6 (so v4 and v6 servers can share a port), and an explicit backlog.
pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// The state every client thread shares.
struct Shared {
    store: Box<dyn Store>,
    /// Who the server is, to clients.
    identity: Identity,
    /// What is served, for the log.
    served: String,
    /// Each client thread's stack size: what the store's calls need.
    stack: usize,
    config: Config,
    registry: &'static Registry,
    shutdown: Shutdown,
    clients: Clients,
    /// Set when the accept loop has ended; wakes the janitor.
    stopped: Mutex<bool>,
    stop: Condvar,
}

/// A server whose root is open and whose listener is bound, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Opens the root (settling what an earlier run left in its hidden directory) for serving
    /// on `listener`.
    pub fn new(
        listener: TcpListener,
        config: Config,
        registry: &'static Registry,
        shutdown: Shutdown,
    ) -> anyhow::Result<Server> {
        let path = match &config.identity {
            Some(path) => path.clone(),
            None => identity::default_path().context(
                "no home directory to keep the server's identity in; give --identity PATH",
            )?,
        };
        let (identity, created) = Identity::load_or_create(&path)?;
        if created {
            log(format_args!(
                "made a new identity in '{}': {}",
                path.display(),
                identity.fingerprint
            ));
        }
        let (store, served, stale) = open_store(&config)?;
        if stale > 0 {
            log(format_args!(
                "removed {stale} stale or expired partial uploads"
            ));
        }
        let clients = Clients::new(Limits {
            sessions: config.max_clients,
            greeting: config.max_handshakes,
            per_address: config.max_per_address,
            grace: clients::GRACE,
        });
        let object_store = config
            .root
            .display()
            .to_string()
            .starts_with(OBJECT_STORE_SCHEME);
        let stack = if object_store {
            OBJECT_STORE_STACK
        } else {
            CLIENT_STACK
        };
        let shared = Arc::new(Shared {
            identity,
            served,
            stack,
            store,
            config,
            registry,
            shutdown,
            clients,
            stopped: Mutex::new(false),
            stop: Condvar::new(),
        });
        Ok(Server { listener, shared })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The fingerprint clients know the server by.
    pub fn fingerprint(&self) -> &ferry_core::identity::Fingerprint {
        &self.shared.identity.fingerprint
    }

    /// Serves until shutdown is requested, then lets requests in flight finish (within
    /// `config.grace`) and returns.
    pub fn run(self) -> io::Result<()> {
        let local = self.listener.local_addr()?;
        let shared = &self.shared;
        log(format_args!(
            "serving '{}' on {local} as {} (max {} clients, {} greeting{})",
            shared.served,
            shared.identity.fingerprint,
            shared.config.max_clients,
            shared.config.max_handshakes,
            if !shared.config.tokens.is_empty() {
                ", access token required"
            } else {
                ""
            }
        ));
        shared.shutdown.on_request(move || wake(local));
        let sweeper = Arc::clone(shared);
        let janitor = thread::Builder::new()
            .name("janitor".into())
            .spawn(move || shutdown::janitor(&sweeper))?;
        // A request that came before the hook was set would have found nothing to wake.
        let drainer = match shared.shutdown.is_requested() {
            false => accept_loop(&self.listener, shared),
            true => None,
        };
        drop(self.listener);
        if let Some(drainer) = drainer {
            let _ = drainer.join();
        }
        *shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        shared.stop.notify_all();
        let _ = janitor.join();
        shutdown::drain(shared, "shutting down");
        Ok(())
    }
}

/// [`Server::new`] then [`Server::run`].
pub fn run(
    listener: TcpListener,
    config: Config,
    registry: &'static Registry,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    Server::new(listener, config, registry, shutdown)?.run()?;
    Ok(())
}

/// Unblocks `accept` by connecting to the listener.
fn wake(local: SocketAddr) {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
}

/// Accepts until shutdown; returns the thread draining the server, if a drain began.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> Option<thread::JoinHandle<()>> {
    let mut next_id = 0u64;
    let mut backoff = Duration::from_millis(5);
    let mut drainer = None;
    loop {
        let accepted = listener.accept();
        if shared.shutdown.is_requested() {
            return drainer;
        }
        if shared.shutdown.is_draining() {
            if drainer.is_none() {
                let shared = Arc::clone(shared);
                drainer = thread::Builder::new()
                    .name("drain".into())
                    .spawn(move || shutdown::drain(&shared, "draining"))
                    .ok();
            }
            // Refused before any thread or count: a balancer's health check fails fast. An
            // accept error backs off below, as always.
            if let Ok((stream, _)) = accepted {
                let failure = Failure::new(ErrorKind::Busy, "server draining; try another node");
                session::refuse(stream, &failure);
                continue;
            }
        }
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(e) => {
                // Usually EMFILE: waiting lets other clients finish and free descriptors.
                log(format_args!("accept failed: {e}; retrying in {backoff:?}"));
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        next_id += 1;
        if let Err(e) = tune(&stream, &shared.config) {
            log(format_args!("{peer}: socket setup failed: {e}"));
            continue;
        }
        admit(shared, next_id, stream, peer);
    }
}

/// Registers a client and starts its thread, or refuses it with `busy`.
fn admit(shared: &Arc<Shared>, id: u64, stream: TcpStream, peer: SocketAddr) {
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    let proxied = shared
        .config
        .trusted_proxies
        .iter()
        .any(|n| n.contains(peer.ip()));
    let (counts, displaced) = match shared.clients.admit(id, handle, (peer, proxied)) {
        Ok(admitted) => admitted,
        Err(failure) => {
            log(format_args!("{peer} refused: {}", failure.message));
            session::refuse(stream, &failure);
            return;
        }
    };
    if let Some(d) = displaced {
        log(format_args!("{} {} (for {peer})", d.peer, d.why));
    }
    // A proxy's connection is logged once its header has said whose it is.
    if !proxied {
        log(format_args!("{peer} connected ({counts})"));
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("client-{id}"))
        .stack_size(shared.stack)
        .spawn(move || client_thread(&worker, id, stream, (peer, proxied)));
    if let Err(e) = spawned {
        log(format_args!("{peer}: cannot start a thread: {e}"));
        if let Some(stream) = shared.clients.forget(id) {
            let failure = Failure::new(
                ErrorKind::Busy,
                "server busy: out of threads; try again later",
            );
            session::refuse(stream, &failure);
        }
    }
}

/// Serves one client: through a trusted proxy, its header first, whose address then stands
/// for the client's.
fn client_thread(
    shared: &Shared,
    id: u64,
    stream: TcpStream,
    (accepted, proxied): (SocketAddr, bool),
) {
    let mut peer = accepted;
    // A proxy's LOCAL connection: its health check, quiet unless it does more than greet.
    let mut check = false;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let deadline = session::deadline(&shared.config);
        let proxy = proxied.then_some(accepted);
        if proxied {
            match proxy::identify(shared, id, &stream, accepted, deadline) {
                Ok(Some(client)) => peer = client,
                Ok(None) => check = true,
                Err(why) => return why,
            }
        }
        session::serve(shared, (id, peer, proxy), stream, deadline)
    }));
    let why = match outcome {
        Ok(why) => why,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("handler panicked: {what}")
        }
    };
    let (displaced, counts) = shared.clients.end(id);
    let why = displaced.unwrap_or(why);
    if !(check && why.starts_with("handshake failed")) {
        log(format_args!("{peer} disconnected: {why} ({counts})"));
    }
}

/// Socket options for an accepted client: no Nagle delay on the request path, keepalive to
/// notice vanished peers, the configured buffer sizes, and the idle timeout on both directions.
fn tune(stream: &TcpStream, config: &Config) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = SockRef::from(stream);
    sock.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10)),
    )?;
    if let Some(size) = config.send_buffer {
        sock.set_send_buffer_size(size)?;
    }
    if let Some(size) = config.recv_buffer {
        sock.set_recv_buffer_size(size)?;
    }
    stream.set_read_timeout(config.idle_timeout)?;
    stream.set_write_timeout(config.idle_timeout)?;
    Ok(())
}
