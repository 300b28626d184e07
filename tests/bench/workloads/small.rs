//! The small-files workloads: many small files through one `ferry` session, against a raw exchange.

use std::fs::{self, File};
use std::path::Path;
use std::time::Duration;

use super::{Bench, human, rate_rows, rated_reps, verify, write_random};
use crate::process::{self, Ferryd, ProcStatus};
use crate::raw;
use crate::stats::{Row, Verdict};

/// Small files per second that each direction must reach.
const FILES_TARGET: f64 = 10_000.0;
/// The target as the table shows it.
pub const TARGET: &str = ">= 10000 files/s";

/// Fails unless every file of `names` in `copies` matches its original in `originals`.
fn verify_all(originals: &Path, copies: &Path, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        verify(&originals.join(name), &copies.join(name))?;
    }
    Ok(())
}

/// The small files' names: `f00000`, `f00001`, ...
pub fn small_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("f{i:05}")).collect()
}

/// Creates `count` random files of `size` bytes in `client/small`.
pub fn make_files(bench: &Bench, count: usize, size: u64) -> anyhow::Result<()> {
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
    bench.trash.renew_dir(&dst)?;
    let time = raw::files(&src, &dst, names)?;
    verify_all(&src, &dst, names)?;
    bench.trash.remove(&dst)?;
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

/// The rows of a files-per-second workload, judged against the rate target.
fn judged_rows(label: String, raw: &[f64], rates: &[f64], status: ProcStatus) -> Vec<Row> {
    let baseline = format!("raw per-file exchange (vs {label})");
    let mut rows = rate_rows((baseline, label), raw, rates, status, TARGET);
    if let Some(stats) = rows[1].stats {
        rows[1].verdict = if stats.median >= FILES_TARGET {
            Verdict::Pass
        } else {
            Verdict::Fail("rate".into())
        };
    }
    rows
}

/// `count` small files uploaded by one `ferry` reading a script of UPLOAD lines from stdin.
pub fn upload(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, count, size, "UPLOAD")
}

/// `count` small files downloaded by one `ferry` reading a script of DOWNLOAD lines.
pub fn download(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, count, size, "DOWNLOAD")
}

/// One small-files workload: `verb` is UPLOAD (client to server) or DOWNLOAD (server to
/// client), one script line per file, all in one `ferry` session.
fn transfer(bench: &Bench, count: usize, size: u64, verb: &str) -> anyhow::Result<Vec<Row>> {
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
    let files = bench.files(&server);
    let fetched = bench.client().join("fetched");
    if !upload {
        files.stage(&local, &names)?;
    }
    let repeated = rated_reps(bench, &label, || {
        let baseline = raw_files(bench, &names)?;
        match upload {
            true => files.remove(&names)?,
            false => bench.trash.renew_dir(&fetched)?,
        }
        let rate = run_script(bench, &server, &script, count)?;
        match upload {
            true => drop(files.verify(&local, &names)?),
            false => verify_all(&local, &fetched, &names)?,
        }
        Ok((baseline, rate))
    });
    let status = server.status();
    files.remove(&names)?;
    let _ = bench.trash.remove(&fetched);
    drop(files);
    bench.discard(server);
    let (raw, rates) = repeated?;
    let status = status?;
    Ok(judged_rows(label, &raw, &rates, status))
}
