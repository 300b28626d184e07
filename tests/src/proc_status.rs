//! [`ProcStatus`]: a process's memory and threads, read from `/proc/<pid>/status`.

use std::fs;

use anyhow::{Context, anyhow};

/// The lines of a process's `/proc/<pid>/status` that the bench and the chaos test read.
#[derive(Clone, Copy, Debug)]
pub struct ProcStatus {
    /// Peak resident set size, KiB.
    pub vmhwm_kib: u64,
    /// Resident set size now, KiB.
    pub vmrss_kib: u64,
    /// Threads now.
    pub threads: u64,
}

impl ProcStatus {
    /// Reads `/proc/<pid>/status`.
    pub fn read(pid: u32) -> anyhow::Result<ProcStatus> {
        let path = format!("/proc/{pid}/status");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            proc_field(&text, name).ok_or_else(|| anyhow!("no {name} in {path}"))
        };
        Ok(ProcStatus {
            vmhwm_kib: field("VmHWM")?,
            vmrss_kib: field("VmRSS")?,
            threads: field("Threads")?,
        })
    }
}

/// The number on the line `NAME: N` (or `NAME: N kB`) of a `/proc` file such as
/// `/proc/<pid>/status` or `/proc/meminfo`.
pub fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
