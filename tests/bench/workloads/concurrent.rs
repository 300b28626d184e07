//! The concurrency workload: many `ferry` processes at once against one server.

use std::fs;

use super::{
    Bench, Figure, compared, human, limit_for, ms, remove_if_present, verify, write_random,
};
use crate::process;
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

/// `count` `ferry` processes at once, each uploading and downloading its own file of `size`
/// bytes; the downloads are then compared with the originals. The baseline starts as many
/// `ferry --version`.
pub fn clients(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    let label = format!("{count} concurrent ferry, UPLOAD+DOWNLOAD {}", human(size));
    let dir = bench.dir.join("concurrent");
    fs::create_dir_all(&dir)?;
    for i in 0..count {
        write_random(&dir.join(format!("x{i}")), size)?;
    }
    let mut server = bench.server("concurrent", &max_handshakes(count))?;
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
    row.target = TARGET.into();
    row.vmhwm_kib = Some(status.vmhwm_kib);
    row.note = format!("{failures} of {} runs failed", count * bench.reps);
    row.verdict = match first {
        None => Verdict::Pass,
        Some(e) => Verdict::Error(e),
    };
    let baseline = format!("raw: {count} x `ferry --version` at once");
    Ok(compared(&baseline, &raw, row, &walls, Figure::Time))
}
