//! The idle-clients workload: many greeted connections held open while the server still serves.

use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ferry_core::Connection;

use super::{Bench, Figure, compared, ms};
use crate::process::{self, Ferryd, ProcStatus};
use crate::raw;
use crate::stats::{Row, Stats, Verdict};

/// Peak server memory allowed with the idle clients connected, KiB.
const RSS_TARGET: u64 = 64 * 1024;
/// The target as the table shows it.
pub const TARGET: &str = "all served, <= 64 MiB";
/// Clients `ferryd` admits by default; more idle clients need `--max-clients`.
const DEFAULT_MAX_CLIENTS: usize = 1024;

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

/// A raw connection that has exchanged greetings, as `ferry` does (TLS included).
fn greet(addr: SocketAddr) -> anyhow::Result<Connection> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (conn, _) = ferry_core::hello::connect_trusting(stream, "ferry-bench", None, deadline)?;
    Ok(conn)
}

/// `--max-clients` if the default leaves no room for the idle clients, the LIST client and a
/// few more.
fn max_clients(count: usize) -> Vec<String> {
    match count + 16 {
        need if need > DEFAULT_MAX_CLIENTS => vec!["--max-clients".into(), need.to_string()],
        _ => Vec::new(),
    }
}

/// Runs one `ferry -c LIST` to its end, `what` naming it in errors; returns its time.
fn list(bench: &Bench, server: &Ferryd, what: &str) -> anyhow::Result<Duration> {
    let cmd = bench.ferry(server, &bench.client(), &["LIST".into()]);
    let run = process::run_timed(cmd, Stdio::null(), Duration::from_secs(60))?;
    run.check(what)?;
    Ok(run.elapsed)
}

/// Waits until the server is back to `base` threads: the next repetition must not meet this
/// one's clients still leaving.
fn wait_for_threads(server: &mut Ferryd, base: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.status()?.threads > base {
        ensure!(
            Instant::now() < deadline,
            "the server kept its client threads 30 s after they closed"
        );
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// What the repetitions measured, in ms, and the server's status at its busiest.
#[derive(Default)]
struct Samples {
    /// The baseline's.
    raw: Vec<f64>,
    /// Ferry's: every client connected and greeted.
    times: Vec<f64>,
    /// A LIST's with every client connected.
    lists: Vec<f64>,
    /// The status with the most threads, read while the clients were connected.
    peak: Option<ProcStatus>,
}

impl Samples {
    /// One repetition: the baseline, then `count` clients connected and greeted, held open
    /// while a LIST runs; returns the server's status read while they were all connected.
    fn repetition(
        &mut self,
        bench: &Bench,
        server: &mut Ferryd,
        count: usize,
    ) -> anyhow::Result<ProcStatus> {
        self.raw.push(ms(raw::connect(count)?));
        let start = Instant::now();
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            let conn = greet(server.addr)
                .with_context(|| format!("client {} of {count} not served", i + 1))?;
            conns.push(conn);
        }
        self.times.push(ms(start.elapsed()));
        let elapsed = list(bench, server, &format!("LIST with {count} idle clients"))?;
        self.lists.push(ms(elapsed));
        let status = server.status()?;
        self.peak = Some(match self.peak {
            Some(p) if p.threads >= status.threads => p,
            _ => status,
        });
        drop(conns);
        Ok(status)
    }

    /// The baseline's row and Ferry's, `status` read once the clients had gone.
    fn rows(self, label: String, count: usize, status: ProcStatus) -> Vec<Row> {
        let mut row = Row::new(label, &self.times, "ms");
        row.target = TARGET.into();
        row.vmhwm_kib = Some(status.vmhwm_kib);
        if let (Some(p), Some(list)) = (self.peak, Stats::new(&self.lists)) {
            row.note = format!(
                "LIST {:.1} ms (median) while connected; {} threads, VmRSS {:.1} MiB",
                list.median,
                p.threads,
                p.vmrss_kib as f64 / 1024.0
            );
        }
        row.verdict = if status.vmhwm_kib <= RSS_TARGET {
            Verdict::Pass
        } else {
            Verdict::Fail("memory".into())
        };
        let baseline = format!("raw: {count} connections to a one-thread listener");
        compared(&baseline, &self.raw, row, &self.times, Figure::Time)
    }
}

/// `count` clients connected and greeted, all held open while a `ferry -c LIST` runs; the
/// server's memory and threads are read while they are all connected. The baseline makes as
/// many connections to a one-thread listener.
pub fn clients(bench: &Bench, count: usize) -> anyhow::Result<Vec<Row>> {
    let label = format!("{count} idle clients: connect+greet all");
    let mut server = bench.server("idle", &max_clients(count))?;
    // The server starts its helper threads (signals, the janitor) after it prints its address;
    // once it has served a client they all exist, and the count left after is the base.
    list(bench, &server, "LIST")?;
    let base_threads = settled_threads(&mut server)?;
    let mut samples = Samples::default();
    for rep in 1..=bench.reps {
        bench.go_on()?;
        let status = samples.repetition(bench, &mut server, count)?;
        eprintln!(
            "  {label} {rep}/{}: raw {:.0} ms, ferry {:.0} ms, LIST {:.1} ms, {} threads, \
             VmRSS {:.1} MiB",
            bench.reps,
            samples.raw[rep - 1],
            samples.times[rep - 1],
            samples.lists[rep - 1],
            status.threads,
            status.vmrss_kib as f64 / 1024.0
        );
        wait_for_threads(&mut server, base_threads)?;
    }
    let status = server.status()?;
    bench.discard(server);
    Ok(samples.rows(label, count, status))
}
