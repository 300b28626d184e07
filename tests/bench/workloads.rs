//! One function per workload. Each starts its own `ferryd`, so the VmHWM it reports is that
//! workload's peak alone, runs its baseline (see [`crate::raw`]) beside each repetition (just
//! before it; for the big transfers, before and after it in turn), and returns two rows: the
//! baseline's and Ferry's. Verification is never timed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ferry_core::{Connection, Frame, Kind, PROTOCOL, VERSION};

use crate::process::{self, Ferryd, ProcStatus};
use crate::raw;
use crate::stats::{Row, Stats, Verdict};

/// Buffer size of data generation and verification.
const BUF: usize = 1 << 20;
const MIB: f64 = 1024.0 * 1024.0;

/// Ratio of Ferry's throughput to the raw copy's that the big transfers must reach.
const RATIO_TARGET: f64 = 0.85;
/// Peak server memory allowed during big transfers, KiB.
const BIG_RSS_TARGET: u64 = 32 * 1024;
/// Small files per second that each direction must reach.
const FILES_TARGET: f64 = 10_000.0;
/// Peak server memory allowed with the idle clients connected, KiB.
const IDLE_RSS_TARGET: u64 = 64 * 1024;
/// The targets as the table shows them.
pub const BIG_TARGET: &str = ">= 0.85 raw, <= 32 MiB";
/// See [`BIG_TARGET`].
pub const SMALL_TARGET: &str = ">= 10000 files/s";
/// See [`BIG_TARGET`].
pub const CONCURRENT_TARGET: &str = "no failure";
/// See [`BIG_TARGET`].
pub const IDLE_TARGET: &str = "all served, <= 64 MiB";
/// Clients `ferryd` admits by default; more idle clients need `--max-clients`.
const DEFAULT_MAX_CLIENTS: usize = 1024;

/// What every workload needs: where the binaries and the data are, how often to repeat.
pub struct Bench {
    /// Holds `ferryd` and `ferry`.
    pub bin_dir: PathBuf,
    /// The bench's own temporary directory.
    pub dir: PathBuf,
    /// Repetitions of each workload.
    pub reps: usize,
    /// Set by SIGINT or SIGTERM; checked between repetitions.
    pub interrupted: Arc<AtomicBool>,
}

impl Bench {
    /// The client's working directory, where the local files live.
    pub fn client(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A fresh `ferryd` in its own directory, `srv-<name>`.
    fn server(&self, name: &str, extra: &[String]) -> anyhow::Result<Ferryd> {
        Ferryd::start(&self.bin_dir, &self.dir.join(format!("srv-{name}")), extra)
    }

    /// Removes a server's directory (and the files uploaded to it) once it has stopped.
    fn discard(&self, server: Ferryd) {
        let dir = server.root.parent().map(Path::to_path_buf);
        drop(server);
        if let Some(dir) = dir {
            let _ = fs::remove_dir_all(dir);
        }
    }

    /// Fails once the bench has been asked to stop.
    fn go_on(&self) -> anyhow::Result<()> {
        ensure!(!self.interrupted.load(Ordering::Relaxed), "interrupted");
        Ok(())
    }

    fn ferry(&self, server: &Ferryd, cwd: &Path, commands: &[String]) -> std::process::Command {
        let mut args = Vec::new();
        for command in commands {
            args.push("-c".to_string());
            args.push(command.clone());
        }
        process::ferry(&self.bin_dir, &server.addr_arg(), cwd, &args)
    }
}

/// `bytes` as the table shows sizes: "1 GiB", "64 KiB", else bytes.
pub fn human(bytes: u64) -> String {
    for (unit, name) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

/// Writes `size` random bytes to `path`.
pub fn write_random(path: &Path, size: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        rand::fill(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Fails unless `copy` has the size and bytes of `original`.
fn verify(original: &Path, copy: &Path) -> anyhow::Result<()> {
    let context = || {
        format!(
            "comparing '{}' with '{}'",
            copy.display(),
            original.display()
        )
    };
    let (mut a, mut b) = (
        File::open(original)?,
        File::open(copy).with_context(context)?,
    );
    let (size, copied) = (a.metadata()?.len(), b.metadata()?.len());
    ensure!(
        size == copied,
        "'{}' has {copied} bytes, not {size}",
        copy.display()
    );
    let (mut x, mut y) = (vec![0u8; BUF], vec![0u8; BUF]);
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        a.read_exact(&mut x[..n])?;
        b.read_exact(&mut y[..n]).with_context(context)?;
        ensure!(x[..n] == y[..n], "'{}' differs", copy.display());
        left -= n as u64;
    }
    Ok(())
}

/// Fails unless every file of `names` in `copies` matches its original in `originals`.
fn verify_all(originals: &Path, copies: &Path, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        verify(&originals.join(name), &copies.join(name))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a big transfer's last destination on a thread of its own, for either side alike.
///
/// The pages a removal frees go back to the freeing thread's CPU first, and a writer that gets
/// them is spared the slow first touch of fresh pages on this VM. The raw copy's receiver, run
/// on the thread that removed its last copy, used to get them every time; Ferry's receiver, in
/// another process, did not (see docs/PERFORMANCE.md).
fn remove_elsewhere(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    thread::spawn(move || remove_if_present(&path))
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("removing a file panicked")))
}

/// An empty directory at `path`, whatever was there.
fn fresh_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::create_dir_all(path)
}

/// A hard link (free on one filesystem), else a copy.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    fs::hard_link(from, to).or_else(|_| fs::copy(from, to).map(drop))
}

fn mib_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / MIB / time.as_secs_f64()
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

/// How long one `ferry` moving `bytes` may take: generous, since this is a guard, not a target.
fn limit_for(bytes: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_secs(bytes / (10 << 20))
}

/// Whether a workload's figure is a speed (higher is better) or a time (lower is better).
#[derive(Clone, Copy)]
enum Figure {
    Speed,
    Time,
}

/// The baseline's row and Ferry's, with Ferry's speed as a fraction of the baseline's: the
/// ratio of the medians, and in the note each repetition's ratio to the baseline run beside it
/// (a second view, less sensitive to load that comes and goes).
fn compared(baseline: &str, raw: &[f64], mut row: Row, ferry: &[f64], figure: Figure) -> Vec<Row> {
    let speed = |f: f64, r: f64| match figure {
        Figure::Speed => f / r,
        Figure::Time => r / f,
    };
    let base = Row::new(baseline, raw, row.unit);
    if let (Some(b), Some(f)) = (base.stats, row.stats) {
        row.ratio = Some(speed(f.median, b.median));
    }
    let paired: Vec<f64> = ferry.iter().zip(raw).map(|(&f, &r)| speed(f, r)).collect();
    if let Some(p) = Stats::new(&paired) {
        row.add_note(format!(
            "paired ratios {:.3} ({:.3}-{:.3})",
            p.median, p.min, p.max
        ));
    }
    vec![base, row]
}

/// CPU seconds of each repetition: the baseline's (both its threads), and Ferry's client and
/// server.
#[derive(Default)]
struct CpuTimes {
    raw: Vec<f64>,
    client: Vec<f64>,
    server: Vec<f64>,
}

impl CpuTimes {
    /// Runs `f` and records the CPU this process used meanwhile, as the baseline's.
    fn raw<T>(&mut self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let before = process::cpu_seconds("self")?.0;
        let out = f()?;
        self.raw.push(process::cpu_seconds("self")?.0 - before);
        Ok(out)
    }

    /// Runs `f`, which runs one `ferry` to its end, and records the CPU that the reaped client
    /// and `server` used meanwhile.
    fn ferry<T>(
        &mut self,
        server: &Ferryd,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let (server_before, client_before) = (server.cpu()?, process::cpu_seconds("self")?.1);
        let out = f()?;
        self.client
            .push(process::cpu_seconds("self")?.1 - client_before);
        self.server.push(server.cpu()? - server_before);
        Ok(out)
    }

    /// The last repetition's figures, for the progress lines.
    fn last(&self) -> String {
        let last = |v: &[f64]| v.last().copied().unwrap_or(0.0);
        format!(
            "CPU s raw {:.2}, client {:.2}, server {:.2}",
            last(&self.raw),
            last(&self.client),
            last(&self.server)
        )
    }

    /// Sets the row's CPU ratio (medians) and notes where Ferry's CPU went.
    fn report(&self, row: &mut Row) {
        let ferry: Vec<f64> = self
            .client
            .iter()
            .zip(&self.server)
            .map(|(c, s)| c + s)
            .collect();
        let median = |v: &[f64]| Stats::new(v).map(|s| s.median);
        let (Some(raw), Some(total)) = (median(&self.raw), median(&ferry)) else {
            return;
        };
        if total > 0.0 {
            row.cpu_ratio = Some(raw / total);
        }
        row.add_note(format!(
            "CPU s (medians): raw {raw:.2}, ferry {total:.2} = client {:.2} + server {:.2}",
            median(&self.client).unwrap_or(0.0),
            median(&self.server).unwrap_or(0.0)
        ));
    }
}

/// The verdict of a big transfer: its ratio and the server's peak memory.
fn transfer_verdict(row: &mut Row, status: ProcStatus) {
    row.target = BIG_TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    let mut missed = Vec::new();
    if row.ratio.is_none_or(|r| r < RATIO_TARGET) {
        missed.push("throughput");
    }
    if status.vmhwm_kib > BIG_RSS_TARGET {
        missed.push("memory");
    }
    row.verdict = if missed.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(missed.join(", "))
    };
}

/// Where the raw copy of the big file goes.
fn raw_dst(bench: &Bench) -> PathBuf {
    bench.dir.join("raw-received")
}

/// The raw copy of the big file, into a new file: one baseline repetition, in MiB/s.
///
/// The last repetition's copy is removed just before, as Ferry's is before each of its runs,
/// so that both find the memory the same way.
fn raw_copy(bench: &Bench, size: u64, cpu: &mut CpuTimes) -> anyhow::Result<f64> {
    let (src, dst) = (bench.client().join("big"), raw_dst(bench));
    remove_elsewhere(&dst)?;
    let time = cpu.raw(|| raw::copy(&src, &dst))?;
    verify(&src, &dst)?;
    Ok(mib_per_s(size, time))
}

/// UPLOAD of the big file, each repetition after a raw copy of the same file.
pub fn big_upload(bench: &Bench, size: u64) -> anyhow::Result<Vec<Row>> {
    big_transfer(bench, size, "UPLOAD")
}

/// DOWNLOAD of the big file, each repetition after a raw copy of the same file.
pub fn big_download(bench: &Bench, size: u64) -> anyhow::Result<Vec<Row>> {
    big_transfer(bench, size, "DOWNLOAD")
}

/// One big-file workload: `verb` is UPLOAD (client to server) or DOWNLOAD (server to client).
fn big_transfer(bench: &Bench, size: u64, verb: &str) -> anyhow::Result<Vec<Row>> {
    let label = format!("{verb} {}", human(size));
    let src = bench.client().join("big");
    let mut server = bench.server(&verb.to_ascii_lowercase(), &[])?;
    let (command, dst) = if verb == "UPLOAD" {
        ("UPLOAD big", server.root.join("big"))
    } else {
        link_or_copy(&src, &server.root.join("big"))?;
        ("DOWNLOAD big out", bench.client().join("out"))
    };
    // One repetition: the raw copy and Ferry's transfer, in the order given; their speeds.
    let once = |raw_first: bool, cpu: &mut CpuTimes| -> anyhow::Result<(f64, f64)> {
        let mut raw = None;
        if raw_first {
            raw = Some(raw_copy(bench, size, cpu)?);
        }
        // Every repetition writes a new file, rather than replacing the last one.
        remove_elsewhere(&dst)?;
        let cmd = bench.ferry(&server, &bench.client(), &[command.into()]);
        let run = cpu.ferry(&server, || {
            process::run_timed(cmd, Stdio::null(), limit_for(size))
        })?;
        run.check(command)?;
        verify(&src, &dst)?;
        let raw = match raw {
            Some(raw) => raw,
            None => raw_copy(bench, size, cpu)?,
        };
        Ok((raw, mib_per_s(size, run.elapsed)))
    };
    // An unmeasured round first: the first writes of this much data after the machine has
    // been idle meet the slow first-touch mode (see docs/PERFORMANCE.md) far more often than
    // later ones, and would land on whichever side happened to come first.
    let (warm_raw, warm_ferry) = once(true, &mut CpuTimes::default())?;
    eprintln!(
        "  {label} warm-up (not counted): raw {warm_raw:.0} MiB/s, ferry {warm_ferry:.0} MiB/s"
    );
    let (mut raw, mut ferry, mut cpu) = (Vec::new(), Vec::new(), CpuTimes::default());
    for rep in 1..=bench.reps {
        bench.go_on()?;
        // Which copy goes first alternates: on this VM the second of two back-to-back 1 GiB
        // writes into tmpfs hits the slow first-touch mode several times as often as the first,
        // whatever program writes (see docs/PERFORMANCE.md), so a fixed order penalises one side.
        let raw_first = rep % 2 == 1;
        let (r, f) = once(raw_first, &mut cpu)?;
        raw.push(r);
        ferry.push(f);
        eprintln!(
            "  {label} {rep}/{} ({} first): raw {r:.0} MiB/s, ferry {f:.0} MiB/s; {}",
            bench.reps,
            if raw_first { "raw" } else { "ferry" },
            cpu.last()
        );
    }
    let status = server.status()?;
    if verb == "DOWNLOAD" {
        remove_if_present(&dst)?;
    }
    remove_if_present(&raw_dst(bench))?;
    bench.discard(server);
    let baseline = format!("raw tcp copy (vs {label})");
    let mut rows = compared(
        &baseline,
        &raw,
        Row::new(label, &ferry, "MiB/s"),
        &ferry,
        Figure::Speed,
    );
    transfer_verdict(&mut rows[1], status);
    cpu.report(&mut rows[1]);
    Ok(rows)
}

/// The server's thread count once it has stopped changing (a client thread that just served a
/// request may still be on its way out).
fn settled_threads(server: &mut Ferryd) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = server.status()?.threads;
    let mut same = 0;
    while same < 5 {
        ensure!(
            Instant::now() < deadline,
            "the server's threads never settled"
        );
        thread::sleep(Duration::from_millis(10));
        let now = server.status()?.threads;
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// The small files' names: `f00000`, `f00001`, ...
fn small_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("f{i:05}")).collect()
}

/// Creates `count` random files of `size` bytes in `client/small`.
pub fn make_small_files(bench: &Bench, count: usize, size: u64) -> anyhow::Result<()> {
    let dir = bench.client().join("small");
    fs::create_dir_all(&dir)?;
    for name in small_names(count) {
        write_random(&dir.join(name), size)?;
    }
    Ok(())
}

/// The raw per-file exchange of the small files into a new directory: one baseline
/// repetition, in files per second.
fn raw_files(bench: &Bench, names: &[String]) -> anyhow::Result<f64> {
    let (src, dst) = (bench.client().join("small"), bench.dir.join("raw-files"));
    fresh_dir(&dst)?;
    let time = raw::files(&src, &dst, names)?;
    verify_all(&src, &dst, names)?;
    fs::remove_dir_all(&dst)?;
    Ok(names.len() as f64 / time.as_secs_f64())
}

/// Runs the script at `script` through one `ferry` process; returns files per second.
fn run_script(bench: &Bench, server: &Ferryd, script: &Path, count: usize) -> anyhow::Result<f64> {
    let cmd = bench.ferry(server, &bench.client(), &[]);
    let limit = Duration::from_secs(60) + Duration::from_millis(10 * count as u64);
    let run = process::run_timed(cmd, File::open(script)?.into(), limit)?;
    run.check("script")?;
    Ok(count as f64 / run.elapsed.as_secs_f64())
}

/// The rows of a files-per-second workload.
fn rate_rows(label: String, raw: &[f64], rates: &[f64], status: ProcStatus) -> Vec<Row> {
    let baseline = format!("raw per-file exchange (vs {label})");
    let mut rows = compared(
        &baseline,
        raw,
        Row::new(label, rates, "files/s"),
        rates,
        Figure::Speed,
    );
    let row = &mut rows[1];
    row.target = SMALL_TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    if let Some(stats) = row.stats {
        row.verdict = if stats.median >= FILES_TARGET {
            Verdict::Pass
        } else {
            Verdict::Fail("rate".into())
        };
    }
    rows
}

/// `count` small files uploaded by one `ferry` reading a script of UPLOAD lines from stdin.
pub fn small_upload(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    small_transfer(bench, count, size, "UPLOAD")
}

/// `count` small files downloaded by one `ferry` reading a script of DOWNLOAD lines.
pub fn small_download(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    small_transfer(bench, count, size, "DOWNLOAD")
}

/// One small-files workload: `verb` is UPLOAD (client to server) or DOWNLOAD (server to
/// client), one script line per file, all in one `ferry` session.
fn small_transfer(bench: &Bench, count: usize, size: u64, verb: &str) -> anyhow::Result<Vec<Row>> {
    let label = format!("{verb} {count} x {} (one session)", human(size));
    let names = small_names(count);
    let local = bench.client().join("small");
    let upload = verb == "UPLOAD";
    let script = bench
        .dir
        .join(format!("{}-script", verb.to_ascii_lowercase()));
    let lines: String = names
        .iter()
        .map(|name| match upload {
            true => format!("UPLOAD small/{name} {name}\n"),
            false => format!("DOWNLOAD {name} fetched/{name}\n"),
        })
        .collect();
    fs::write(&script, lines)?;
    let mut server = bench.server(&format!("small-{}", verb.to_ascii_lowercase()), &[])?;
    let fetched = bench.client().join("fetched");
    let copies = if upload {
        server.root.clone()
    } else {
        for name in &names {
            link_or_copy(&local.join(name), &server.root.join(name))?;
        }
        fetched.clone()
    };
    let (mut raw, mut rates) = (Vec::new(), Vec::new());
    for rep in 1..=bench.reps {
        bench.go_on()?;
        raw.push(raw_files(bench, &names)?);
        if upload {
            for name in &names {
                remove_if_present(&server.root.join(name))?;
            }
        } else {
            fresh_dir(&fetched)?;
        }
        let rate = run_script(bench, &server, &script, count)?;
        verify_all(&local, &copies, &names)?;
        rates.push(rate);
        eprintln!(
            "  {label} {rep}/{}: raw {:.0} files/s, ferry {rate:.0} files/s",
            bench.reps,
            raw[rep - 1]
        );
    }
    let status = server.status()?;
    if !upload {
        let _ = fs::remove_dir_all(&fetched);
    }
    bench.discard(server);
    Ok(rate_rows(label, &raw, &rates, status))
}

/// `count` `ferry` processes at once, each uploading and downloading its own file of `size`
/// bytes; the downloads are then compared with the originals. The baseline starts as many
/// `ferry --version`.
pub fn concurrent(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    let label = format!("{count} concurrent ferry, UPLOAD+DOWNLOAD {}", human(size));
    let dir = bench.dir.join("concurrent");
    fs::create_dir_all(&dir)?;
    for i in 0..count {
        write_random(&dir.join(format!("x{i}")), size)?;
    }
    let mut server = bench.server("concurrent", &[])?;
    let (mut raw, mut walls, mut failures, mut first) = (Vec::new(), Vec::new(), 0, None::<String>);
    for rep in 1..=bench.reps {
        bench.go_on()?;
        raw.push(ms(raw::spawn(&bench.bin_dir, count)?));
        for i in 0..count {
            remove_if_present(&server.root.join(format!("x{i}")))?;
            remove_if_present(&dir.join(format!("y{i}")))?;
        }
        let cmds = (0..count)
            .map(|i| {
                let commands = [format!("UPLOAD x{i}"), format!("DOWNLOAD x{i} y{i}")];
                bench.ferry(&server, &dir, &commands)
            })
            .collect();
        let (wall, runs) = process::run_all(cmds, limit_for(size * count as u64))?;
        let mut failed = 0;
        for (i, run) in runs.iter().enumerate() {
            let outcome = run
                .check(&format!("client {i}"))
                .and_then(|()| verify(&dir.join(format!("x{i}")), &dir.join(format!("y{i}"))));
            if let Err(e) = outcome {
                failed += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        failures += failed;
        walls.push(ms(wall));
        eprintln!(
            "  {label} {rep}/{}: raw {:.0} ms, ferry {:.0} ms, {failed} failed",
            bench.reps,
            raw[rep - 1],
            walls[rep - 1]
        );
    }
    let status = server.status()?;
    let _ = fs::remove_dir_all(&dir);
    bench.discard(server);
    let mut row = Row::new(label, &walls, "ms wall");
    row.target = CONCURRENT_TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    row.note = format!("{failures} of {} runs failed", count * bench.reps);
    row.verdict = match first {
        None => Verdict::Pass,
        Some(e) => Verdict::Error(e),
    };
    let baseline = format!("raw: {count} x `ferry --version` at once");
    Ok(compared(&baseline, &raw, row, &walls, Figure::Time))
}

/// A raw connection that has exchanged greetings, as `ferry` does.
fn greet(addr: SocketAddr) -> anyhow::Result<Connection<TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = Connection::new(stream);
    let hello = conn.recv()?;
    ensure!(
        hello.kind == Kind::Hello,
        "expected a greeting, got {hello:?}"
    );
    conn.send(&Frame::new(Kind::Hello, [PROTOCOL, VERSION, "ferry-bench"]))?;
    conn.expect_ok()?;
    Ok(conn)
}

/// `count` clients connected and greeted, all held open while a `ferry -c LIST` runs; the
/// server's memory and threads are read while they are all connected. The baseline makes as
/// many connections to a one-thread listener.
pub fn idle_clients(bench: &Bench, count: usize) -> anyhow::Result<Vec<Row>> {
    let label = format!("{count} idle clients: connect+greet all");
    // Room for the idle clients, the LIST client and a few more.
    let extra = match count + 16 {
        need if need > DEFAULT_MAX_CLIENTS => vec!["--max-clients".into(), need.to_string()],
        _ => Vec::new(),
    };
    let mut server = bench.server("idle", &extra)?;
    // The server starts its helper threads (signals, the janitor) after it prints its address;
    // once it has served a client they all exist, and the count left after is the base.
    let cmd = bench.ferry(&server, &bench.client(), &["LIST".into()]);
    process::run_timed(cmd, Stdio::null(), Duration::from_secs(60))?.check("LIST")?;
    let base_threads = settled_threads(&mut server)?;
    let (mut raw, mut times, mut lists) = (Vec::new(), Vec::new(), Vec::new());
    let mut peak = None::<ProcStatus>;
    for rep in 1..=bench.reps {
        bench.go_on()?;
        raw.push(ms(raw::connect(count)?));
        let start = Instant::now();
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            let conn = greet(server.addr)
                .with_context(|| format!("client {} of {count} not served", i + 1))?;
            conns.push(conn);
        }
        times.push(ms(start.elapsed()));
        let cmd = bench.ferry(&server, &bench.client(), &["LIST".into()]);
        let run = process::run_timed(cmd, Stdio::null(), Duration::from_secs(60))?;
        run.check(&format!("LIST with {count} idle clients"))?;
        lists.push(ms(run.elapsed));
        let status = server.status()?;
        peak = Some(match peak {
            Some(p) if p.threads >= status.threads => p,
            _ => status,
        });
        drop(conns);
        eprintln!(
            "  {label} {rep}/{}: raw {:.0} ms, ferry {:.0} ms, LIST {:.1} ms, {} threads, \
             VmRSS {:.1} MiB",
            bench.reps,
            raw[rep - 1],
            times[rep - 1],
            lists[rep - 1],
            status.threads,
            status.vmrss_kib as f64 / 1024.0
        );
        // The next repetition must not meet this one's clients still leaving.
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.status()?.threads > base_threads {
            ensure!(
                Instant::now() < deadline,
                "the server kept its client threads 30 s after they closed"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
    let status = server.status()?;
    bench.discard(server);
    let mut row = Row::new(label, &times, "ms");
    row.target = IDLE_TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    if let (Some(p), Some(list)) = (peak, Stats::new(&lists)) {
        row.note = format!(
            "LIST {:.1} ms (median) while connected; {} threads, VmRSS {:.1} MiB",
            list.median,
            p.threads,
            p.vmrss_kib as f64 / 1024.0
        );
    }
    row.verdict = if status.vmhwm_kib <= IDLE_RSS_TARGET {
        Verdict::Pass
    } else {
        Verdict::Fail("memory".into())
    };
    let baseline = format!("raw: {count} connections to a one-thread listener");
    Ok(compared(&baseline, &raw, row, &times, Figure::Time))
}
