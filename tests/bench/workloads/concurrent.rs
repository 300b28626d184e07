//! The concurrency workload: many `ferry` processes at once against one server.

use std::fs;
use std::path::Path;

use super::served::Served;
use super::{Bench, Figure, compared, human, limit_for, ms, verify, write_random};
use crate::process::{self, Ferryd};
use crate::raw;
use crate::stats::{Row, Verdict};

/// The target as the table shows it.
pub const TARGET: &str = "no failure";
/// Connections `ferryd` greets at once by default; more clients starting together need
/// `--max-handshakes`, or the last to arrive displace the slowest to greet.
const DEFAULT_MAX_HANDSHAKES: usize = 128;

/// `--max-handshakes` if the default leaves no room for `count` clients greeting at once.
pub fn max_handshakes(count: usize) -> Vec<String> {
    match count {
        need if need > DEFAULT_MAX_HANDSHAKES => {
            vec!["--max-handshakes".into(), need.to_string()]
        }
        _ => Vec::new(),
    }
}

/// One repetition: the baseline, then the clients at once, each download compared with its
/// original and the server's copies too (untimed; on a bucket, this is also what finds them
/// to remove); the two times in ms, and the failures with the first one's error.
fn repetition(
    bench: &Bench,
    server: &Ferryd,
    files: &dyn Served,
    dir: &Path,
    (names, size): (&[String], u64),
) -> anyhow::Result<(f64, f64, usize, Option<String>)> {
    let count = names.len();
    let raw = ms(raw::spawn(&bench.bin_dir, count)?);
    files.remove(names)?;
    for i in 0..count {
        bench.trash.remove(&dir.join(format!("y{i}")))?;
    }
    let cmds = (0..count)
        .map(|i| {
            let commands = [format!("UPLOAD x{i}"), format!("DOWNLOAD x{i} y{i}")];
            bench.ferry(server, dir, &commands)
        })
        .collect();
    let (wall, runs) = process::run_all(cmds, limit_for(size * count as u64))?;
    let (mut failed, mut first) = (0, None::<String>);
    for (i, run) in runs.iter().enumerate() {
        let outcome = run
            .check(&format!("client {i}"))
            .and_then(|()| verify(&dir.join(format!("x{i}")), &dir.join(format!("y{i}"))));
        if let Err(e) = outcome {
            failed += 1;
            first.get_or_insert_with(|| format!("{e:#}"));
        }
    }
    if let Err(e) = files.verify(dir, names) {
        first.get_or_insert_with(|| format!("the server's copies: {e:#}"));
    }
    Ok((raw, ms(wall), failed, first))
}

/// `count` `ferry` processes at once, each uploading and downloading its own file of `size`
/// bytes; the downloads are then compared with the originals. The baseline starts as many
/// `ferry --version`.
pub fn clients(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    let label = format!("{count} concurrent ferry, UPLOAD+DOWNLOAD {}", human(size));
    let dir = bench.dir.join("concurrent");
    fs::create_dir_all(&dir)?;
    let names: Vec<String> = (0..count).map(|i| format!("x{i}")).collect();
    for name in &names {
        write_random(&dir.join(name), size)?;
    }
    let mut server = bench.server("concurrent", &max_handshakes(count))?;
    let files = bench.files(&server);
    let (mut raw, mut walls, mut failures, mut first) = (Vec::new(), Vec::new(), 0, None);
    let mut repeated = Ok(());
    for rep in 1..=bench.reps {
        let done = bench
            .go_on()
            .and_then(|()| repetition(bench, &server, files.as_ref(), &dir, (&names, size)));
        let (r, wall, failed, error) = match done {
            Ok(done) => done,
            Err(e) => {
                repeated = Err(e);
                break;
            }
        };
        (failures, first) = (failures + failed, first.or(error));
        raw.push(r);
        walls.push(wall);
        eprintln!(
            "  {label} {rep}/{}: raw {r:.0} ms, ferry {wall:.0} ms, {failed} failed",
            bench.reps
        );
    }
    let status = server.status();
    files.remove(&names)?;
    let _ = bench.trash.remove(&dir);
    drop(files);
    bench.discard(server);
    repeated?;
    let mut row = Row::new(label, &walls, "ms wall");
    row.target = TARGET.into();
    row.vmhwm_kib = Some(status?.vmhwm_kib);
    row.note = format!("{failures} of {} runs failed", count * bench.reps);
    row.verdict = match first {
        None => Verdict::Pass,
        Some(e) => Verdict::Error(e),
    };
    let baseline = format!("raw: {count} x `ferry --version` at once");
    Ok(compared(&baseline, &raw, row, &walls, Figure::Time))
}
