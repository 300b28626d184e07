//! `ferry`: parse arguments, connect, run commands, exit 0 (all succeeded), 1 (a command
//! failed), 2 (bad usage, or no connection) or 141 (stdout closed under a script).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::FromArgMatches;
use ferry_core::identity::Fingerprint;
use ferry_repl::trust::{Expect, FirstContact};
use ferry_repl::{
    Access, Client, Target, connect, history, interactive, read_token, resolve, script,
};

/// Ferry's client. With no address it connects to 127.0.0.1 on the port in ./port, and
/// trusts the identity its server wrote beside it. Commands come from -c, from stdin when it
/// is not a terminal (one per line), or from a prompt with history, Tab completion, usage hints
/// and progress bars (Ctrl-C cancels a transfer).
#[derive(clap::Parser, Debug)]
#[command(name = "ferry", version)]
struct Args {
    #[command(subcommand)]
    tool: Option<ferry_core::tool::Tool>,
    /// Server address: HOST[:PORT]; without a port, the port file's (a host named like a
    /// command goes after `--`: `ferry -- man`)
    #[arg(value_name = "HOST[:PORT]")]
    addr: Option<String>,
    /// File holding the server's port (and beside it, its identity) [default: port]
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,
    /// Run this command (repeatable), then exit; it may start with `-`, as a script line may
    #[arg(
        short = 'c',
        long = "command",
        value_name = "CMD",
        allow_hyphen_values = true
    )]
    commands: Vec<String>,
    /// File holding the server's access token (default: $FERRY_TOKEN, if set)
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Connect only if the server's identity is this one (as ferryd prints it)
    #[arg(long, value_name = "SHA256:...", value_parser = parse_fingerprint)]
    fingerprint: Option<Fingerprint>,
    /// Trust and pin a server not seen before without asking (scripts)
    #[arg(long)]
    accept_new: bool,
    /// Where DOWNLOAD saves files by default
    #[arg(long, value_name = "DIR", default_value = ".")]
    local_dir: PathBuf,
    /// Keep the prompt's history in FILE [default: $XDG_DATA_HOME/ferry/history, else
    /// ~/.local/share/ferry/history]
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Keep no history across sessions
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
    /// Show no progress bars
    #[arg(short, long)]
    quiet: bool,
    /// Report on stdout as JSON objects, one a line (see the README for their fields)
    #[arg(long)]
    json: bool,
    /// Show times in UTC at the prompt too (scripts always get UTC)
    #[arg(long)]
    utc: bool,
}

/// mimalloc rather than glibc's malloc. rustls decrypts each record 5 bytes into its receive
/// buffer and copies it out to a new block; in glibc's heap that block often lands right after
/// the buffer, 11 bytes further into its page, where glibc's memcpy (`rep movsb`) runs some 30
/// times slower on AMD Zen 4: half the downloads measured paid 0.4 CPU-s more per GiB. mimalloc
/// starts both blocks on a page, 5 bytes apart the safe way, on every download
/// (docs/PERFORMANCE.md, "Copies that cross a page 1 to 15 bytes apart"). The server keeps
/// glibc's, whose arenas hold a thousand connections' threads in far less memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let registry = ferry_commands::registry();
    if !registry.is_usable() {
        eprintln!("ferry: no verbs registered; is ferry-commands linked?");
        return ExitCode::from(2);
    }
    let parsed = command(registry)
        .try_get_matches_from(command_after_dashes(std::env::args_os().collect()))
        .and_then(|mut matches| Args::from_arg_matches_mut(&mut matches));
    let args = match parsed {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Some(tool) = &args.tool {
        return tool.print(command(registry), verbs_section);
    }
    if !args.local_dir.is_dir() {
        eprintln!(
            "ferry: --local-dir '{}' is not a directory",
            args.local_dir.display()
        );
        return ExitCode::from(2);
    }
    let interactive = args.commands.is_empty() && std::io::stdin().is_terminal();
    let connected = read_token(args.token_file.as_deref()).and_then(|token| {
        let target = resolve(args.addr.as_deref(), args.port_file())?;
        let expect = expectation(&args, &target, interactive)?;
        let access = Access {
            token: token.as_deref(),
            expect: &expect,
            ask: &mut ask,
        };
        connect(&target.addrs, access)
    });
    let (conn, server) = match connected {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("ferry: {}", ferry_repl::said(&e));
            return ExitCode::from(2);
        }
    };
    let out = Box::new(ferry_repl::Stdout::new());
    let mut client = Client::new(conn, server, registry, args.local_dir.clone(), out);
    client.ctx.report = ferry_core::report::Report::new(args.json);
    client.ctx.report.utc = args.utc;
    ExitCode::from(run(client, args))
}

/// The command line's definition, with the verbs after the options in `--help` and the manual.
fn command(registry: &ferry_core::Registry) -> clap::Command {
    let mut verbs =
        String::from("Verbs (at the prompt, in a script or with -c; HELP <verb> for more):");
    for verb in registry.iter() {
        verbs += &format!("\n  {:<10}{}{}", verb.name, verb.summary, also(verb));
    }
    ferry_core::tool::command::<Args>().after_help(verbs)
}

/// The manual page's own section: the verbs as a list, rather than the help's text block,
/// which roff would run together.
fn verbs_section(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use ferry_core::tool::roff;
    writeln!(out, ".SH VERBS")?;
    for verb in ferry_commands::registry().iter() {
        writeln!(out, ".TP\n\\fB{}\\fR", roff(&verb.usage()))?;
        writeln!(out, "{}{}", roff(verb.summary), roff(&also(verb)))?;
    }
    Ok(())
}

/// The arguments with `-c -- CMD` read as `-c CMD`: a command may start with `-` as it is,
/// and the form with `--` is the one clap's own tips teach, so it is taken too.
fn command_after_dashes(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    while i < args.len() && args[i] != "--" {
        if args[i] == "-c" || args[i] == "--command" {
            if args.get(i + 1).is_some_and(|a| a == "--") && i + 2 < args.len() {
                args.remove(i + 1);
            }
            // The command itself, whatever it looks like.
            i += 1;
        }
        i += 1;
    }
    args
}

/// ` (also ALIASES)`, or nothing for a verb without aliases.
fn also(verb: &ferry_core::Verb) -> String {
    match verb.aliases {
        [] => String::new(),
        aliases => format!(" (also {})", aliases.join(", ")),
    }
}

/// Runs the commands from `-c`, the prompt, or a script on stdin; the exit code.
fn run(mut client: Client, args: Args) -> u8 {
    let stdin = std::io::stdin();
    if !args.commands.is_empty() {
        let mut commands = script::Commands::new(args.commands);
        script::run(&mut client, &mut commands, &mut std::io::stderr())
    } else if stdin.is_terminal() {
        let options = interactive::Options {
            history: history::choose(args.history, args.no_history),
            quiet: args.quiet,
        };
        interactive::run(client, options).unwrap_or_else(|e| {
            eprintln!("ferry: {}", ferry_repl::said(&e));
            1
        })
    } else {
        let mut lines = script::Reader::new(stdin);
        script::run(&mut client, &mut lines, &mut std::io::stderr())
    }
}

/// The identity the server must have: the one given with `--fingerprint`; when the port came
/// from the port file, the one its server wrote beside it; else the one pinned for it.
fn expectation(args: &Args, target: &Target, interactive: bool) -> anyhow::Result<Expect> {
    if let Some(fingerprint) = &args.fingerprint {
        return Ok(Expect::Exactly {
            fingerprint: fingerprint.clone(),
            source: "--fingerprint".into(),
        });
    }
    // The file beside the port file is trusted when the server was found through it: with no
    // address, or a host alone and the port file named. A host alone with the default port
    // file is pinned like any other server.
    if target.local && (args.addr.is_none() || args.port_file.is_some()) {
        return ferry_repl::local_identity(args.port_file());
    }
    let first = if args.accept_new {
        FirstContact::Accept
    } else if interactive {
        FirstContact::Ask
    } else {
        FirstContact::Refuse
    };
    Ok(Expect::pinned(target.key.clone(), first))
}

impl Args {
    /// The port file: as given, else `./port`.
    fn port_file(&self) -> &std::path::Path {
        self.port_file
            .as_deref()
            .unwrap_or(std::path::Path::new("port"))
    }
}

/// Puts a question at the terminal; true when the answer is yes.
fn ask(question: &str) -> bool {
    eprint!("{question}");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    Fingerprint::parse(text)
        .ok_or_else(|| "not a fingerprint: expected SHA256: and 43 base64 characters".into())
}
