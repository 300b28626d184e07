//! `ferryd`: parse arguments, bind, publish the port, serve until a signal or SHUTDOWN.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferry_server::{Config, Server, Shutdown, Token, bind, log};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Ferry's file server. With no arguments it serves ./server_data on 127.0.0.1, on a port the
/// OS picks, and writes that port to ./port for clients to find.
#[derive(Parser, Debug)]
#[command(name = "ferryd", version)]
struct Args {
    /// Directory to serve (created if missing)
    #[arg(long, value_name = "DIR", default_value = "server_data")]
    root: PathBuf,
    /// IP address to listen on
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Port to listen on (0: the OS picks one)
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// File to write the port number to
    #[arg(long, value_name = "PATH", default_value = "port")]
    port_file: PathBuf,
    /// Most clients served at once; the next get a "server busy" error
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_clients: u64,
    /// Drop a connection silent for this many seconds (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_timeout: u64,
    /// Seconds that transfers in flight get to finish at shutdown
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    grace: u64,
    /// SO_SNDBUF for client sockets in bytes (default: the kernel's autotuning)
    #[arg(long, value_name = "BYTES")]
    send_buffer: Option<usize>,
    /// SO_RCVBUF for client sockets in bytes (default: the kernel's autotuning)
    #[arg(long, value_name = "BYTES")]
    recv_buffer: Option<usize>,
    /// Listen backlog
    #[arg(long, value_name = "N", default_value_t = 1024)]
    backlog: i32,
    /// Refuse uploads larger than this many bytes (default: no limit)
    #[arg(long, value_name = "BYTES")]
    max_file_size: Option<u64>,
    /// File holding the access token clients must present (default: $FERRY_TOKEN, if set)
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Seconds an interrupted upload is kept, hidden, for resuming
    #[arg(long, value_name = "SECS", default_value_t = 24 * 60 * 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    partial_max_age: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let registry = ferry_commands::registry();
    if !registry.is_usable() {
        eprintln!("ferryd: no verbs registered; is ferry-commands linked?");
        return ExitCode::from(2);
    }
    match serve(args, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferryd: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: Args, registry: &'static ferry_core::Registry) -> anyhow::Result<()> {
    // A thread and a socket per client: make room for the client cap in the descriptor table.
    let _ = rlimit::increase_nofile_limit(args.max_clients * 2 + 64);
    let token = read_token(args.token_file.as_deref())?;
    if token.is_none() && !args.bind.to_canonical().is_loopback() {
        log(format_args!(
            "warning: listening on {} without an access token: anyone who can reach it can \
             read, replace and delete the files; set --token-file or FERRY_TOKEN",
            args.bind
        ));
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = bind(addr, args.backlog).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let mut config = Config::new(args.root);
    config.max_clients = args.max_clients as usize;
    config.idle_timeout = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.grace = Duration::from_secs(args.grace);
    config.send_buffer = args.send_buffer;
    config.recv_buffer = args.recv_buffer;
    config.max_file_size = args.max_file_size;
    config.partial_max_age = Duration::from_secs(args.partial_max_age);
    config.token = token;

    let shutdown = Shutdown::new();
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let on_signal = shutdown.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                log(format_args!("signal {signal}: shutting down"));
                on_signal.request();
            }
        })?;

    let server = Server::new(listener, config, registry, shutdown)?;
    write_port_file(&args.port_file, local.port())
        .with_context(|| format!("writing port file '{}'", args.port_file.display()))?;
    println!("{local}");
    std::io::stdout().flush()?;
    let served = server.run();
    if let Err(e) = std::fs::remove_file(&args.port_file) {
        log(format_args!(
            "cannot remove port file '{}': {e}",
            args.port_file.display()
        ));
    }
    served?;
    log(format_args!("stopped"));
    Ok(())
}

/// The access token: from `--token-file`, else from `FERRY_TOKEN`; an empty one is an error
/// rather than silently no protection.
fn read_token(file: Option<&Path>) -> anyhow::Result<Option<Token>> {
    let Some(secret) = ferry_core::token::read_token(file)? else {
        return Ok(None);
    };
    match Token::new(&secret.text) {
        Some(token) => Ok(Some(token)),
        None => anyhow::bail!("{} is empty", secret.source),
    }
}

/// Writes the port atomically: a temporary beside the file, then a rename, so a client never
/// reads a half-written number.
fn write_port_file(path: &Path, port: u16) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new().prefix(".port-").tempfile_in(dir)?;
    writeln!(temp, "{port}")?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
