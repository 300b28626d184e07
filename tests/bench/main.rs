//! `ferry-bench`: measures the real `ferryd` and `ferry` against the speed and scale targets
//! and prints a table (median, min, max, ratio to a baseline, CPU, the server's VmHWM).
//!
//! Every Ferry figure comes with a baseline measured in the same run, interleaved repetition
//! by repetition, and the ratio of the two, because the machine it runs on is shared and
//! absolute figures drift with the load.
//! Missed targets show as FAIL in the table but exit 0; a transfer that fails or delivers
//! wrong bytes is an ERROR and exits 1.
//!
//! Layout:
//! - this file: arguments, data preparation, the order of the workloads, the report;
//! - `workloads`: what the workloads share, and a module for each: `big`, `small`, `tree`,
//!   `concurrent` and `idle`;
//! - `raw`: the baselines, the least work that does what each workload does;
//! - `process`: the `ferryd` guard, bounded `ferry` runs, `/proc/<pid>/status` and `stat`;
//! - `stats`: median, min and max, the rows and the two table formats;
//! - `bucket` (`--root s3://...`): this run's prefix, checking that ferryd serves it, and
//!   what it left there;
//! - `peers` (`--peers`): the same transfers through an rsync daemon, vsftpd and sshd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use tempfile::TempDir;

mod bucket;
mod peers;
mod process;
mod raw;
mod stats;
mod trash;
mod workloads;

use stats::{Row, Verdict};
use workloads::{Bench, big, concurrent, idle, small, tree};

/// Size of each file of the small-files workload.
const SMALL_FILE: u64 = 4 * 1024;
/// Size of each file of the concurrency workload.
const CONCURRENT_FILE: u64 = 64 * 1024;

/// Benchmarks the release ferryd and ferry, each workload against a baseline run alongside:
/// big-file throughput, small files per second, a tree of small files, concurrent clients, idle clients, and the
/// server's memory.
#[derive(Parser, Debug)]
#[command(name = "ferry-bench")]
struct Args {
    /// Size of the big file (bytes; suffix K, M or G for binary multiples)
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Number of 4 KiB files uploaded then downloaded in one session
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = one_to(100_000))]
    small_files: u64,
    /// Number of 4 KiB files in the tree moved by one UPLOAD -r and one DOWNLOAD -r (spread
    /// over 100 directories)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = one_to(100_000))]
    tree_files: u64,
    /// Number of ferry processes run at once, each moving a 64 KiB file
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = one_to(1000))]
    concurrent: u64,
    /// Number of idle clients held connected
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = one_to(20_000))]
    idle_clients: u64,
    /// Repetitions of each workload
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = one_to(100))]
    reps: u64,
    /// Where to make the data (default: /dev/shm if it exists, else the temp dir); off tmpfs,
    /// what the bench is done with is kept until its end (see docs/PERFORMANCE.md)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Where ferryd and ferry are (default: beside this executable)
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Serve each workload's files from this bucket (a prefix of its own below PREFIX, removed
    /// after) rather than a local directory; needs ferryd built with the cargo feature `s3`,
    /// and reaches the store through AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, as ferryd does
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]")]
    root: Option<String>,
    /// Run only these workloads (repeatable; default: all)
    #[arg(long, value_name = "WORKLOAD", value_enum)]
    only: Vec<Group>,
    /// Also print the table as markdown, for docs/PERFORMANCE.md
    #[arg(long)]
    markdown: bool,
    /// Run the tree, small-file and big-file transfers through Ferry and each peer installed
    /// (rsync daemon, vsftpd with lftp, sshd with sftp) on 127.0.0.1, instead of the baselines
    #[arg(long)]
    peers: bool,
    /// Install the peers from Debian's packages (apt-get), then run as --peers
    #[arg(long)]
    peers_install: bool,
}

/// The workloads `--only` can pick, each covering both directions where there are two.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    /// UPLOAD and DOWNLOAD of the big file
    Big,
    /// The small files, up and down
    Small,
    /// The tree of small files, up and down
    Tree,
    /// Concurrent ferry processes
    Concurrent,
    /// Idle clients held connected
    Idle,
}

/// Counts from 1 to `max`.
fn one_to(max: u64) -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=max)
}

/// Sizes like `4096`, `64K`, `1M`, `1G` (binary multiples), at most 64 GiB.
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 30),
        t => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 4096, 64K, 1M or 1G"))?;
    match n.checked_shl(shift) {
        Some(size) if (1..=64 << 30).contains(&size) && size >> shift == n => Ok(size),
        _ => Err(format!("'{text}' is not between 1 byte and 64G")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(rows) => {
            // With --peers, each peer's row gives Ferry's rate over the peer's.
            let ratio = match args.peers || args.peers_install {
                true => "Ferry/peer",
                false => "vs raw",
            };
            println!("\n{}", stats::plain(&rows, ratio));
            if args.markdown {
                println!("{}", stats::markdown(&rows, ratio));
            }
            let errors = rows
                .iter()
                .filter(|r| matches!(r.verdict, Verdict::Error(_)))
                .count();
            if errors > 0 {
                eprintln!("ferry-bench: {errors} workloads failed");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferry-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Sets up, runs every workload in turn (one's failure does not stop the next), cleans up.
fn bench(args: &Args) -> anyhow::Result<Vec<Row>> {
    let interrupted = watch_signals()?;
    if args.peers_install {
        peers::install()?;
    }
    let bin_dir = find_binaries(args.bin_dir.as_deref())?;
    raise_nofile(args)?;
    let bucket = match &args.root {
        None => None,
        Some(_) if args.peers || args.peers_install => bail!("--root cannot go with --peers"),
        Some(root) => Some(bucket::run_root(root).map_err(anyhow::Error::msg)?),
    };
    let temp = make_dir(args.dir.as_deref())?;
    process::settle_in(temp.path());
    let bench = Bench {
        bin_dir,
        dir: temp.path().to_path_buf(),
        reps: args.reps as usize,
        interrupted,
        bucket,
        trash: trash::Trash::new(temp.path())?,
    };
    describe(&bench, args.peers || args.peers_install);
    bucket::check_served(&bench)?;

    let started = Instant::now();
    prepare(&bench, args)?;
    let rows = match args.peers || args.peers_install {
        true => peers::run(&bench, &peer_jobs(args))?,
        false => run_plan(plan(args, &bench), &args.only),
    };
    bucket::report_leftovers(&bench);
    eprintln!(
        "done in {:.0} s; load average now {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    // Off tmpfs it holds every run's copies (`trash`), which can take a while to remove.
    eprintln!("removing '{}'", bench.dir.display());
    temp.close().context("removing the bench directory")?;
    Ok(rows)
}

/// The flag that the workloads check between repetitions, set by SIGINT or SIGTERM.
fn watch_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the bench at once; the first lets it stop and clean up.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupted))?;
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    Ok(interrupted)
}

/// The directory that holds `ferryd` and `ferry`: `bin_dir`, else the bench's own.
fn find_binaries(bin_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin_dir = match bin_dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench's own directory")?
            .to_path_buf(),
    };
    for bin in ["ferryd", "ferry"] {
        ensure!(
            bin_dir.join(bin).is_file(),
            "'{}' not found; build with `cargo build --release --workspace` or give --bin-dir",
            bin_dir.join(bin).display()
        );
    }
    Ok(bin_dir)
}

/// Raises the open-file limit to what the idle and concurrent clients need, or fails.
fn raise_nofile(args: &Args) -> anyhow::Result<()> {
    // One descriptor per idle client, plus the concurrent clients' pipes and some slack.
    let wanted = args.idle_clients + 2 * args.concurrent + 256;
    let nofile = rlimit::increase_nofile_limit(wanted).context("raising RLIMIT_NOFILE")?;
    ensure!(
        nofile >= wanted,
        "the open-file limit is {nofile}, below the {wanted} needed; lower --idle-clients"
    );
    Ok(())
}

/// The bench's own directory, in `dir`, else in /dev/shm if it exists, else in the temp dir.
fn make_dir(dir: Option<&Path>) -> anyhow::Result<TempDir> {
    let parent = match dir {
        Some(dir) => dir.to_path_buf(),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in '{}'", parent.display()))
}

/// The client's files: the big one, the small ones, and the tree if it is to run.
fn prepare(bench: &Bench, args: &Args) -> anyhow::Result<()> {
    eprintln!("preparing data in '{}'", bench.dir.display());
    std::fs::create_dir(bench.client())?;
    workloads::write_random(&bench.client().join("big"), args.size)?;
    small::make_files(bench, args.small_files as usize, SMALL_FILE)?;
    if args.only.is_empty() || args.only.contains(&Group::Tree) {
        tree::make_files(bench, args.tree_files as usize, SMALL_FILE)?;
    }
    Ok(())
}

/// One workload as the plan lists it: its `--only` group, its name and target (for its row if
/// it fails), and the run.
type Workload<'a> = (
    Group,
    String,
    &'static str,
    Box<dyn Fn() -> anyhow::Result<Vec<Row>> + 'a>,
);

/// Every workload, in the order they run.
fn plan<'a>(args: &Args, bench: &'a Bench) -> Vec<Workload<'a>> {
    let size = args.size;
    let (small_files, tree_files) = (args.small_files as usize, args.tree_files as usize);
    let (concurrent_clients, idle_clients) = (args.concurrent as usize, args.idle_clients as usize);
    vec![
        (
            Group::Big,
            format!("UPLOAD {}", workloads::human(size)),
            big::TARGET,
            Box::new(move || big::upload(bench, size)),
        ),
        (
            Group::Big,
            format!("DOWNLOAD {}", workloads::human(size)),
            big::TARGET,
            Box::new(move || big::download(bench, size)),
        ),
        (
            Group::Small,
            format!("UPLOAD {small_files} small files"),
            small::TARGET,
            Box::new(move || small::upload(bench, small_files, SMALL_FILE)),
        ),
        (
            Group::Small,
            format!("DOWNLOAD {small_files} small files"),
            small::TARGET,
            Box::new(move || small::download(bench, small_files, SMALL_FILE)),
        ),
        (
            Group::Tree,
            format!("UPLOAD -r tree of {tree_files} files"),
            tree::TARGET,
            Box::new(move || tree::upload(bench, tree_files, SMALL_FILE)),
        ),
        (
            Group::Tree,
            format!("DOWNLOAD -r tree of {tree_files} files"),
            tree::TARGET,
            Box::new(move || tree::download(bench, tree_files, SMALL_FILE)),
        ),
        (
            Group::Concurrent,
            format!("{concurrent_clients} concurrent ferry"),
            concurrent::TARGET,
            Box::new(move || concurrent::clients(bench, concurrent_clients, CONCURRENT_FILE)),
        ),
        (
            Group::Idle,
            format!("{idle_clients} idle clients"),
            idle::TARGET,
            Box::new(move || idle::clients(bench, idle_clients)),
        ),
    ]
}

/// The transfers `--peers` measures, in each direction: those of the tree, the small files,
/// the big file and the concurrent clients that `--only` picks.
fn peer_jobs(args: &Args) -> Vec<peers::Job> {
    let picked = |group| args.only.is_empty() || args.only.contains(&group);
    let mut jobs = Vec::new();
    for (group, kind, count, size) in [
        (
            Group::Tree,
            peers::Kind::Tree,
            args.tree_files as usize,
            SMALL_FILE,
        ),
        (
            Group::Small,
            peers::Kind::Files,
            args.small_files as usize,
            SMALL_FILE,
        ),
        (Group::Big, peers::Kind::Big, 1, args.size),
        (
            Group::Concurrent,
            peers::Kind::Clients,
            args.concurrent as usize,
            CONCURRENT_FILE,
        ),
    ] {
        if picked(group) {
            // Many clients each go both ways: one job.
            let ways: &[bool] = match kind {
                peers::Kind::Clients => &[true],
                _ => &[true, false],
            };
            for &up in ways {
                jobs.push(peers::Job {
                    kind,
                    up,
                    count,
                    size,
                });
            }
        }
    }
    jobs
}

/// Runs the workloads of `plan` that `only` picks (all if it is empty); one that fails gives
/// an ERROR row and the next still runs.
fn run_plan(plan: Vec<Workload>, only: &[Group]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (group, name, target, run) in plan {
        if !only.is_empty() && !only.contains(&group) {
            continue;
        }
        eprintln!("{name}:");
        match run() {
            Ok(done) => rows.extend(done),
            Err(e) => {
                eprintln!("  failed: {e:#}");
                rows.push(Row::failed(name, target, &e));
            }
        }
    }
    rows
}

/// Prints what the figures depend on: the machine, its load, the build, the directories, and
/// how to read the table (with `peers`, the table of `--peers`).
fn describe(bench: &Bench, peers: bool) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .split(':')
                        .nth(1)?
                        .trim()
                        .to_string(),
                )
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("ferry-bench: {cores} cores, {cpu}, Linux {}", kernel.trim());
    println!("load average at start: {}", load_average());
    println!("binaries: '{}'", bench.bin_dir.display());
    println!("data: '{}'", bench.dir.display());
    if let Some(bucket) = &bench.bucket {
        println!("served from: '{bucket}/WORKLOAD' (the baselines stay local)");
    }
    println!("repetitions: {}", bench.reps);
    if peers {
        println!(
            "Ferry/peer: Ferry's median rate over the peer's (above 1: Ferry is faster); each \
             repetition runs every peer once, starting with a different one; paired ratios \
             compare each repetition's Ferry run with the peer's"
        );
    } else {
        println!(
            "ferryd VmHWM: each workload starts its own server, so its peak is that workload's \
             alone"
        );
        println!(
            "vs raw: Ferry's speed as a fraction of the baseline's in the row above (higher is \
             better); paired ratios compare each repetition with the baseline run beside it"
        );
    }
    if cfg!(debug_assertions) {
        println!("warning: ferry-bench is a debug build; build with --release for real figures");
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_and_are_bounded() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "0", "1T", "G", "-1", "65G", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
