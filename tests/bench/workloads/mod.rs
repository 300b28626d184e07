//! What every workload shares: the [`Bench`], data generation and verification, the rows.
//!
//! Each workload starts its own `ferryd`, so the VmHWM it reports is that workload's peak
//! alone, runs its baseline (see [`crate::raw`]) beside each repetition (just before it; for
//! the big transfers, before and after it in turn), and returns two rows: the baseline's and
//! Ferry's. Verification is never timed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};

use crate::process::{self, Ferryd, ProcStatus};
use crate::stats::{Row, Stats};
use crate::trash::Trash;
use served::{Bucket, LocalRoot, Served};

pub mod big;
pub mod concurrent;
pub mod idle;
pub mod served;
pub mod small;
pub mod tree;

/// Buffer size of data generation and verification.
const BUF: usize = 1 << 20;

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
    /// `s3://BUCKET/PREFIX` for this run: each workload's server serves a prefix of its own
    /// below it; `None`: a local directory.
    pub bucket: Option<String>,
    /// Where the files and trees the bench is done with go: every removal between runs goes
    /// through it.
    pub trash: Trash,
}

impl Bench {
    /// The client's working directory, where the local files live.
    pub fn client(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A fresh `ferryd` in its own directory, `srv-<name>`, serving `root` there, or on a
    /// bucket the prefix `<name>`. Every client of the bench connects from this machine's
    /// loopback address, so no limit per address applies.
    pub fn server(&self, name: &str, extra: &[String]) -> anyhow::Result<Ferryd> {
        let mut args = vec!["--max-per-address".to_string(), "0".to_string()];
        args.extend_from_slice(extra);
        let root = match &self.bucket {
            Some(bucket) => format!("{bucket}/{name}"),
            None => "root".into(),
        };
        let dir = self.dir.join(format!("srv-{name}"));
        Ferryd::start(&self.bin_dir, &dir, &root, &args)
    }

    /// The files of `server`, to stage, check and remove them untimed.
    pub fn files<'a>(&self, server: &Ferryd) -> Box<dyn Served + 'a> {
        match self.bucket {
            Some(_) => {
                let scratch = server.root.with_file_name("checked");
                Box::new(Bucket::new(
                    &self.bin_dir,
                    server,
                    scratch,
                    self.trash.clone(),
                ))
            }
            None => Box::new(LocalRoot {
                root: server.root.clone(),
                trash: self.trash.clone(),
            }),
        }
    }

    /// Removes a server's directory (and the files uploaded to it) once it has stopped.
    pub fn discard(&self, server: Ferryd) {
        let dir = server.root.parent().map(Path::to_path_buf);
        drop(server);
        if let Some(dir) = dir {
            let _ = self.trash.remove(&dir);
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
        process::ferry(&self.bin_dir, &server.target_args(), cwd, &args)
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
pub fn verify(original: &Path, copy: &Path) -> anyhow::Result<()> {
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

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A hard link (free on one filesystem), else a copy.
pub fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    fs::hard_link(from, to).or_else(|_| fs::copy(from, to).map(drop))
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

/// Runs `bench.reps` repetitions of a files-per-second workload, each `rep` giving the raw
/// baseline's rate and Ferry's, printing both as a progress line; returns them, in order.
fn rated_reps(
    bench: &Bench,
    label: &str,
    mut rep: impl FnMut() -> anyhow::Result<(f64, f64)>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut raw, mut rates) = (Vec::new(), Vec::new());
    for nth in 1..=bench.reps {
        bench.go_on()?;
        let (baseline, rate) = rep()?;
        eprintln!(
            "  {label} {nth}/{}: raw {baseline:.0} files/s, ferry {rate:.0} files/s",
            bench.reps
        );
        raw.push(baseline);
        rates.push(rate);
    }
    Ok((raw, rates))
}

/// The rows of a files-per-second workload against its `baseline`, Ferry's with its
/// `target` and the server's memory.
fn rate_rows(
    (baseline, label): (String, String),
    raw: &[f64],
    rates: &[f64],
    status: ProcStatus,
    target: &str,
) -> Vec<Row> {
    let ferry = Row::new(label, rates, "files/s");
    let mut rows = compared(&baseline, raw, ferry, rates, Figure::Speed);
    rows[1].vmhwm_kib = Some(status.vmhwm_kib);
    rows[1].target = target.into();
    rows
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
