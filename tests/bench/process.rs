//! The real binaries under the bench: a `ferryd` guard that kills it on drop, `ferry` runs
//! bounded by a watchdog, and the server's memory and threads read from `/proc`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};

/// The bench's directory, whose file system [`settle`] flushes.
static SETTLED: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`settle`] flush the file system holding `dir`, for the life of the process.
pub fn settle_in(dir: &Path) {
    let _ = SETTLED.set(dir.to_path_buf());
}

/// Writes everything dirty on the bench's file system to the disk (`syncfs`), outside any
/// timing, so that each timed run starts clean. Without it a run paid for what the one
/// before it left unflushed (a peer that never flushes, the raw baseline, the staging's
/// removals and links): Ferry's first flush on ext4 commits the journal with all of it.
/// On tmpfs it costs nothing.
pub fn settle() -> anyhow::Result<()> {
    if let Some(dir) = SETTLED.get() {
        let handle = fs::File::open(dir).with_context(|| format!("opening '{}'", dir.display()))?;
        rustix::fs::syncfs(&handle).with_context(|| format!("syncfs of '{}'", dir.display()))?;
    }
    Ok(())
}

/// Touches `bytes` and an eighth more of new memory on each CPU this process may run on, one
/// pinned thread per CPU, then frees it; outside any timing, before each timed big transfer,
/// for every contender alike.
///
/// This VM hands free memory back to its host (free page reporting), and the first write to a
/// page handed back costs the writer 0.4-4 s per GiB more. What a CPU frees stays on its own
/// list (Linux' per-CPU page lists, which grow here to 1.3 GiB) and is not handed back, so a
/// 1 GiB writer was fast or slow by which CPU had last freed memory, not by what it ran
/// (docs/PERFORMANCE.md, "Fresh pages: whose CPU freed them"). Warmed on every CPU, memory is
/// ready wherever the receiver runs. At most half the memory available is touched in all.
///
/// Only when the bench's directory is on tmpfs, whose files take single pages. ext4 here
/// caches files in 1 MiB folios, which come from the shared free lists: warming took the
/// blocks the last copy's removal had freed there and left them on the per-CPU lists, and
/// made the next 1 GiB write into ext4 slow in 18 of 18 tries, against 4 of 12 without it.
pub fn warm_pages(bytes: u64) -> anyhow::Result<()> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let Some(dir) = SETTLED.get() else {
        return Ok(());
    };
    if !ferry_tests::on_tmpfs(dir)? {
        return Ok(());
    }
    let allowed = sched_getaffinity(None)?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    let room = available_kib()?.saturating_mul(1024) / 2 / cpus.len().max(1) as u64;
    let len = usize::try_from(bytes.saturating_add(bytes / 8).min(room))?;
    thread::scope(|scope| {
        let warming: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                scope.spawn(move || -> rustix::io::Result<()> {
                    let mut only = CpuSet::new();
                    only.set(cpu);
                    sched_setaffinity(None, &only)?;
                    // Zeroed memory comes from the kernel untouched: a write a page faults it
                    // in, and the kernel clears the whole page, which is what the host backs.
                    let mut memory = vec![0u8; len];
                    for page in memory.chunks_mut(4096) {
                        page[0] = 1;
                    }
                    std::hint::black_box(&memory);
                    Ok(())
                })
            })
            .collect();
        for thread in warming {
            thread
                .join()
                .map_err(|_| anyhow!("warming memory panicked"))??;
        }
        Ok(())
    })
}

/// `MemAvailable` of `/proc/meminfo`, KiB.
fn available_kib() -> anyhow::Result<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo")?;
    ferry_tests::proc_field(&meminfo, "MemAvailable").context("no MemAvailable in /proc/meminfo")
}

/// How long `ferryd` may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running `ferryd`, killed and reaped on drop.
pub struct Ferryd {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its root if it serves a directory (`dir/root`); on a bucket, beside what it keeps.
    pub root: PathBuf,
    /// Its identity, as it printed it.
    pub fingerprint: String,
    log: PathBuf,
}

impl Ferryd {
    /// Starts `ferryd --root ROOT --port 0 --port-file port --identity identity.pem EXTRA` in
    /// `dir` (created), logging to `dir/ferryd.log`, and waits for the address and fingerprint
    /// it prints. `root` is `root` (a directory in `dir`) or a bucket's `s3://...`.
    pub fn start(
        bin_dir: &Path,
        dir: &Path,
        root: &str,
        extra: &[String],
    ) -> anyhow::Result<Ferryd> {
        fs::create_dir_all(dir).with_context(|| format!("creating '{}'", dir.display()))?;
        let log = dir.join("ferryd.log");
        let mut child = Command::new(bin_dir.join("ferryd"))
            .args(["--root", root, "--port", "0", "--port-file", "port"])
            .args(["--identity", "identity.pem"])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting '{}'", bin_dir.join("ferryd").display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            for _ in 0..2 {
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
            }
            // Keep draining so that the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        // The guard exists from here on, so an early return still kills the child.
        let mut server = Ferryd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            root: dir.join("root"),
            fingerprint: String::new(),
            log,
        };
        let next = || {
            rx.recv_timeout(START_LIMIT)
                .map_err(|_| anyhow!("ferryd did not print its address within {START_LIMIT:?}"))
        };
        let (line, fingerprint) = (next()?, next()?);
        server.fingerprint = fingerprint.trim().to_string();
        server.addr = line.trim().parse().map_err(|_| {
            anyhow!(
                "ferryd printed {line:?}, not an address; its log: {}",
                server.log_tail()
            )
        })?;
        Ok(server)
    }

    /// The arguments that point `ferry` at this server and its identity.
    pub fn target_args(&self) -> [String; 3] {
        [
            self.addr.to_string(),
            "--fingerprint".into(),
            self.fingerprint.clone(),
        ]
    }

    /// Its memory and threads now; fails if it has exited.
    pub fn status(&mut self) -> anyhow::Result<ProcStatus> {
        if let Some(status) = self.child.try_wait()? {
            bail!("ferryd exited ({status}); its log: {}", self.log_tail());
        }
        ProcStatus::read(self.child.id())
    }

    /// CPU seconds it has used so far.
    pub fn cpu(&self) -> anyhow::Result<f64> {
        Ok(cpu_seconds(&self.child.id().to_string())?.0)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    }
}

impl Drop for Ferryd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat` (`USER_HZ`, which Linux fixes
/// at 100 for user space on every architecture).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user and system, all threads, 10 ms resolution) from `/proc/<pid>/stat`:
/// the process's own, and its reaped children's.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may hold spaces and parentheses; the fields start after its last ')'.
    let fields: Vec<u64> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let [utime, stime, cutime, cstime] = fields[..] else {
        bail!("unexpected format of {path}");
    };
    let seconds = |ticks: u64| ticks as f64 / TICKS_PER_S;
    Ok((seconds(utime + stime), seconds(cutime + cstime)))
}

pub use ferry_tests::ProcStatus;

/// Kills `pids` with SIGKILL unless the returned sender is dropped (or sent to) within
/// `limit`: what bounds every child process the bench waits on.
pub fn watchdog(pids: Vec<u32>, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    });
    tx
}

/// A finished `ferry` run.
pub struct Run {
    /// From just before spawning to the end of its output.
    pub elapsed: Duration,
    /// How it exited.
    pub status: ExitStatus,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Run {
    fn from(output: Output, elapsed: Duration) -> Run {
        Run {
            elapsed,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
    }

    /// Fails unless it exited 0.
    pub fn check(&self, what: &str) -> anyhow::Result<()> {
        ensure!(
            self.status.success(),
            "{what}: ferry {}: {}",
            self.status,
            self.stderr
        );
        Ok(())
    }
}

/// `ferry TARGET ARGS` in `cwd`, ready to spawn; stdout is discarded, stderr kept.
pub fn ferry(bin_dir: &Path, target: &[String], cwd: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(bin_dir.join("ferry"));
    cmd.args(target)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` with `stdin`, timing it from spawn to exit, killed after `limit`.
pub fn run_timed(mut cmd: Command, stdin: Stdio, limit: Duration) -> anyhow::Result<Run> {
    settle()?;
    let start = Instant::now();
    let child = cmd
        .stdin(stdin)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let guard = watchdog(vec![child.id()], limit);
    let output = child.wait_with_output()?;
    let elapsed = start.elapsed();
    drop(guard);
    ensure!(elapsed < limit, "ferry was killed after {limit:?}");
    Ok(Run::from(output, elapsed))
}

/// Starts every command at once and waits for all; returns the wall time and each run.
pub fn run_all(cmds: Vec<Command>, limit: Duration) -> anyhow::Result<(Duration, Vec<Run>)> {
    settle()?;
    let start = Instant::now();
    let mut children = Vec::with_capacity(cmds.len());
    let mut spawned = Ok(());
    for mut cmd in cmds {
        match cmd.stdin(Stdio::null()).spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                spawned = Err(anyhow!(e).context(format!("starting {cmd:?}")));
                break;
            }
        }
    }
    // Reap what did start even if a spawn failed; the watchdog bounds the wait.
    let guard = watchdog(children.iter().map(Child::id).collect(), limit);
    let mut runs = Vec::with_capacity(children.len());
    for child in children {
        let output = child.wait_with_output()?;
        // Reaped in spawn order, so this is an upper bound on when it ended.
        runs.push(Run::from(output, start.elapsed()));
    }
    let wall = start.elapsed();
    drop(guard);
    spawned?;
    ensure!(wall < limit, "ferry processes were killed after {limit:?}");
    Ok((wall, runs))
}
