//! The big-file workloads: one file UPLOADed, then DOWNLOADed, against a raw TCP copy.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use super::{Bench, Figure, compared, human, limit_for, remove_if_present, verify};
use crate::process::{self, Ferryd, ProcStatus};
use crate::raw;
use crate::stats::{Row, Stats, Verdict};

const MIB: f64 = 1024.0 * 1024.0;

/// Ratio of Ferry's throughput to the raw copy's that the big transfers must reach: Ferry is
/// encrypted (TLS 1.3), the raw copy is not.
const RATIO_TARGET: f64 = 0.6;
/// Most CPU seconds Ferry may use, client and server together, as a multiple of the raw copy's.
const CPU_TARGET: f64 = 1.6;
/// Peak server memory allowed during big transfers, KiB.
const RSS_TARGET: u64 = 32 * 1024;
/// The target as the table shows it.
pub const TARGET: &str = ">= 0.6 raw, <= 1.6x CPU, <= 32 MiB";

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

fn mib_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / MIB / time.as_secs_f64()
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
    row.target = TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    let mut missed = Vec::new();
    if row.ratio.is_none_or(|r| r < RATIO_TARGET) {
        missed.push("throughput");
    }
    if row.cpu_ratio.is_none_or(|r| r < 1.0 / CPU_TARGET) {
        missed.push("CPU");
    }
    if status.vmhwm_kib > RSS_TARGET {
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
/// The last repetition's copy is removed just before and, on tmpfs, memory warmed on every
/// CPU ([`process::warm_pages`]), as before each of Ferry's runs, so that both find the memory
/// the same way.
fn raw_copy(bench: &Bench, size: u64, cpu: &mut CpuTimes) -> anyhow::Result<f64> {
    let (src, dst) = (bench.client().join("big"), raw_dst(bench));
    remove_elsewhere(&dst)?;
    process::warm_pages(size)?;
    let time = cpu.raw(|| raw::copy(&src, &dst))?;
    verify(&src, &dst)?;
    Ok(mib_per_s(size, time))
}

/// The big transfer's repetitions, each `once` given whether the raw copy goes first: an
/// unmeasured round, then `bench.reps` measured ones; the raw copy's speeds, Ferry's, and the
/// CPU each used.
fn repeat(
    bench: &Bench,
    label: &str,
    once: impl Fn(bool, &mut CpuTimes) -> anyhow::Result<(f64, f64)>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, CpuTimes)> {
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
    Ok((raw, ferry, cpu))
}

/// The raw copy's row and Ferry's, with the verdict and where the CPU went.
fn transfer_rows(
    label: String,
    raw: &[f64],
    ferry: &[f64],
    status: ProcStatus,
    cpu: &CpuTimes,
) -> Vec<Row> {
    let baseline = format!("raw tcp copy (vs {label})");
    let row = Row::new(label, ferry, "MiB/s");
    let mut rows = compared(&baseline, raw, row, ferry, Figure::Speed);
    cpu.report(&mut rows[1]);
    transfer_verdict(&mut rows[1], status);
    rows
}

/// UPLOAD of the big file, each repetition after a raw copy of the same file.
pub fn upload(bench: &Bench, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, size, "UPLOAD")
}

/// DOWNLOAD of the big file, each repetition after a raw copy of the same file.
pub fn download(bench: &Bench, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, size, "DOWNLOAD")
}

/// One big-file workload: `verb` is UPLOAD (client to server) or DOWNLOAD (server to client).
fn transfer(bench: &Bench, size: u64, verb: &str) -> anyhow::Result<Vec<Row>> {
    let label = format!("{verb} {}", human(size));
    let (client, src) = (bench.client(), bench.client().join("big"));
    let mut server = bench.server(&verb.to_ascii_lowercase(), &[])?;
    let files = bench.files(&server);
    let big = ["big".to_string()];
    let upload = verb == "UPLOAD";
    let command = match upload {
        true => "UPLOAD big",
        false => {
            files.stage(&client, &big)?;
            "DOWNLOAD big out"
        }
    };
    let out = client.join("out");
    // One repetition: the raw copy and Ferry's transfer, in the order given; their speeds.
    let once = |raw_first: bool, cpu: &mut CpuTimes| -> anyhow::Result<(f64, f64)> {
        let mut raw = None;
        if raw_first {
            raw = Some(raw_copy(bench, size, cpu)?);
        }
        // Every repetition writes a new file, rather than replacing the last one.
        match upload {
            true => files.remove(&big)?,
            false => remove_elsewhere(&out)?,
        }
        process::warm_pages(size)?;
        let cmd = bench.ferry(&server, &client, &[command.into()]);
        let run = cpu.ferry(&server, || {
            process::run_timed(cmd, Stdio::null(), limit_for(size))
        })?;
        run.check(command)?;
        match upload {
            true => drop(files.verify(&client, &big)?),
            false => verify(&src, &out)?,
        }
        let raw = match raw {
            Some(raw) => raw,
            None => raw_copy(bench, size, cpu)?,
        };
        Ok((raw, mib_per_s(size, run.elapsed)))
    };
    let repeated = repeat(bench, &label, once);
    let status = server.status();
    files.remove(&big)?;
    remove_if_present(&out)?;
    remove_if_present(&raw_dst(bench))?;
    drop(files);
    bench.discard(server);
    let (raw, ferry, cpu) = repeated?;
    Ok(transfer_rows(label, &raw, &ferry, status?, &cpu))
}
