//! `ferryd`: parse arguments, bind, publish the port, serve until a signal or SHUTDOWN.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{FromArgMatches, Parser};
use ferry_server::{
    Config, LogFormat, Network, Partials, PortFile, Server, Shutdown, Token, bind, init_log, log,
};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

/// Ferry's file server. With no arguments it serves ./server_data on 127.0.0.1, on a port the
/// OS picks, and writes that port to ./port for clients to find.
#[derive(Parser, Debug)]
#[command(name = "ferryd", version)]
struct Args {
    #[command(subcommand)]
    tool: Option<ferry_core::tool::Tool>,
    /// Directory to serve (created if missing), or with the `s3` feature a bucket,
    /// s3://BUCKET[/PREFIX], reached through AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY
    #[arg(long, value_name = "DIR", default_value = "server_data")]
    root: PathBuf,
    /// IP address to listen on
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Port to listen on (0: the OS picks one)
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// File to write the port number to; PATH.lock beside it is held while the server runs, and
    /// a second ferryd given the same PATH refuses to start
    #[arg(long, value_name = "PATH", default_value = "port")]
    port_file: PathBuf,
    /// Most sessions at once; past it the one idle longest (not one that finished a request
    /// less than a second ago) is closed for the next client, who gets a "server busy" error
    /// only if there is none
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_clients: u64,
    /// Most connections still greeting (TLS handshake, token proof) at once; past it the one
    /// that has got least far is closed for the next
    #[arg(long, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_handshakes: u64,
    /// Most connections from one IP address, greeting or in session (0: no limit); past it,
    /// its own connection that has got least far in greeting is closed for the next, or the
    /// next is refused
    #[arg(long, value_name = "N", default_value_t = 32)]
    max_per_address: usize,
    /// Seconds a new connection has to finish its TLS handshake and greeting, in all
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    handshake_timeout: u64,
    /// Drop a connection silent for this many seconds, or a request slower than --min-rate
    /// over them (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_timeout: u64,
    /// Least bytes per second a request in flight must move, over each --idle-timeout spent
    /// waiting on the client (0: any byte will do)
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    min_rate: u64,
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
    /// File of access tokens, one per line; a line `read-only TOKEN` grants only verbs that
    /// change nothing (default: $FERRY_TOKEN, if set, grants everything)
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// File keeping the server's key and certificate, made on first start [default:
    /// $XDG_DATA_HOME/ferry/identity.pem, else ~/.local/share/ferry/identity.pem]
    #[arg(long, value_name = "PATH")]
    identity: Option<PathBuf>,
    /// Seconds an interrupted upload is kept, hidden, for resuming
    #[arg(long, value_name = "SECS", default_value_t = 24 * 60 * 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    partial_max_age: u64,
    /// Let clients create names holding invisible formatting characters (bidi controls,
    /// zero-width characters, BOM) or not in Unicode NFC; such names are refused by default
    #[arg(long)]
    allow_any_name: bool,
    /// Most bytes interrupted uploads kept for resuming may hold together; past it the oldest
    /// go [default: a tenth of the root's filesystem]
    #[arg(long, value_name = "BYTES")]
    max_partial_bytes: Option<u64>,
    /// Most interrupted uploads kept for resuming; past it the oldest go
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_partials: usize,
    /// Percent of both that the uploads kept for one IP address may hold; past it that
    /// address's oldest go
    #[arg(long, value_name = "PERCENT", default_value_t = 25,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    partial_share: u8,
    /// Address or network (ADDR[/PREFIX]) of a load balancer whose connections begin with a
    /// PROXY protocol v2 header (HAProxy's send-proxy-v2) giving the client's address, which
    /// then counts for logs and limits; repeatable. Other peers may not send one
    #[arg(long, value_name = "ADDR")]
    trusted_proxy: Vec<Network>,
    /// Append the log to this file instead of writing it to stderr (keeps a background
    /// server's lines out of a terminal's prompt)
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// How log lines are written: text, or json (one object per line, for log shippers)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// Print the interrupted uploads kept under --root (size, age, sender, path), and exit
    #[arg(long, conflicts_with = "clear_partials")]
    list_partials: bool,
    /// Remove the interrupted uploads kept under --root, and exit
    #[arg(long)]
    clear_partials: bool,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let command = ferry_core::tool::command::<Args>;
    let parsed = command()
        .try_get_matches()
        .and_then(|mut matches| Args::from_arg_matches_mut(&mut matches));
    let args = parsed.unwrap_or_else(|e| e.exit());
    if let Some(tool) = &args.tool {
        return tool.print(command(), |_| Ok(()));
    }
    let registry = ferry_commands::registry();
    if !registry.is_usable() {
        eprintln!("ferryd: no verbs registered; is ferry-commands linked?");
        return ExitCode::from(2);
    }
    if args.list_partials || args.clear_partials {
        return match partials(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferryd: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    ferry_server::tune_glibc();
    match serve(args, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferryd: {e:#}");
            ExitCode::from(2)
        }
    }
}

impl Args {
    /// The server's settings these arguments give, with the access tokens read.
    fn config(&self, tokens: Vec<Token>) -> Config {
        let mut config = Config::new(&self.root);
        config.max_clients = self.max_clients as usize;
        config.max_handshakes = self.max_handshakes as usize;
        config.max_per_address = (self.max_per_address > 0).then_some(self.max_per_address);
        config.handshake_timeout = Duration::from_secs(self.handshake_timeout);
        config.idle_timeout =
            (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout));
        config.min_rate = self.min_rate;
        config.grace = Duration::from_secs(self.grace);
        config.send_buffer = self.send_buffer;
        config.recv_buffer = self.recv_buffer;
        config.max_file_size = self.max_file_size;
        config.partial_max_age = Duration::from_secs(self.partial_max_age);
        config.max_partial_bytes = self.max_partial_bytes;
        config.max_partials = self.max_partials;
        config.partial_share = self.partial_share;
        config.tokens = tokens;
        config.identity = self.identity.clone();
        config.allow_any_name = self.allow_any_name;
        config.trusted_proxies = self.trusted_proxy.clone();
        config
    }
}

fn serve(args: Args, registry: &'static ferry_core::Registry) -> anyhow::Result<()> {
    // A thread and a socket per client: make room for the client caps in the descriptor table.
    start_log(&args)?;
    // First, so that a second server refuses before touching anything the first one uses.
    let mut port_file = PortFile::claim(&args.port_file)?;
    let _ = rlimit::increase_nofile_limit((args.max_clients + args.max_handshakes) * 2 + 64);
    let tokens = read_tokens(args.token_file.as_deref())?;
    if tokens.is_empty() && !args.bind.to_canonical().is_loopback() {
        log(format_args!(
            "warning: listening on {} without an access token: anyone who can reach it can \
             read, replace and delete the files; set --token-file or FERRY_TOKEN",
            args.bind
        ));
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = bind(addr, args.backlog).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let config = args.config(tokens);

    let shutdown = Shutdown::new();
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGUSR1]).context("installing signal handlers")?;
    let on_signal = shutdown.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGUSR1 {
                    // For a load balancer: new connections are refused, so its health check
                    // fails, while transfers in flight finish.
                    log(format_args!("signal {signal}: draining"));
                    on_signal.drain();
                    continue;
                }
                log(format_args!("signal {signal}: shutting down"));
                on_signal.request();
                break;
            }
        })?;

    let server = Server::new(listener, config, registry, shutdown)?;
    let fingerprint = server.fingerprint().clone();
    port_file.publish(local, fingerprint.as_str())?;
    println!("{local}\n{fingerprint}");
    std::io::stdout().flush()?;
    let served = server.run();
    // Removes the port file, if it is still this server's, and lets the lock go.
    drop(port_file);
    served?;
    log(format_args!("stopped"));
    Ok(())
}

/// Sends the log where `--log-file` and `--log-format` say, before anything is logged.
fn start_log(args: &Args) -> anyhow::Result<()> {
    let format = match args.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    };
    let file = match &args.log_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file '{}'", path.display()))?,
        ),
        None => None,
    };
    init_log(format, file);
    Ok(())
}

/// `--list-partials` and `--clear-partials`: act on the root's kept parts, whether or not a
/// server runs on it (uploads in progress are listed, never removed).
fn partials(args: &Args) -> anyhow::Result<()> {
    let parts = match ferry_server::partials(&args.config(Vec::new()), args.clear_partials)? {
        Partials::Cleared(count, bytes) => {
            println!("removed {count} kept parts ({bytes} bytes)");
            return Ok(());
        }
        Partials::Listed(parts) => parts,
    };
    let mut out = std::io::stdout().lock();
    let now = std::time::SystemTime::now();
    for part in &parts {
        let age = now
            .duration_since(part.modified)
            .unwrap_or_default()
            .as_secs();
        let owner = part.owner.map_or("-".into(), |o| o.to_string());
        let state = if part.kept { "kept" } else { "open" };
        let path = part
            .path
            .as_deref()
            .map_or("?".into(), |p| format!("/{}", ferry_core::name::escape(p)));
        writeln!(
            out,
            "{:>12}  {age:>8}s  {owner:<15}  {state}  {path}",
            part.size
        )?;
    }
    let bytes: u64 = parts.iter().map(|p| p.size).sum();
    writeln!(out, "{} parts, {bytes} bytes", parts.len())?;
    Ok(())
}

/// The access tokens: from `--token-file`, else from `FERRY_TOKEN`; a source without one is
/// an error rather than silently no protection.
fn read_tokens(file: Option<&Path>) -> anyhow::Result<Vec<Token>> {
    let Some(read) = ferry_core::token::read_tokens(file)? else {
        return Ok(Vec::new());
    };
    let tokens: Vec<Token> = read.grants.iter().filter_map(Token::new).collect();
    if tokens.is_empty() {
        anyhow::bail!("{} holds no token", read.source);
    }
    if let Some(path) = file
        && let Ok(meta) = std::fs::metadata(path)
        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    {
        log(format_args!(
            "warning: {} may be read by other users; chmod 600 it",
            read.source
        ));
    }
    Ok(tokens)
}
