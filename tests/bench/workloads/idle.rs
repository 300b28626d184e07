//! The idle-clients workload: many greeted connections held open while the server still serves.

use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ferry_core::{Connection, Frame, Kind, PROTOCOL, VERSION};

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
pub fn clients(bench: &Bench, count: usize) -> anyhow::Result<Vec<Row>> {
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
    row.target = TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    if let (Some(p), Some(list)) = (peak, Stats::new(&lists)) {
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
    Ok(compared(&baseline, &raw, row, &times, Figure::Time))
}
