//! Helpers for Ferry's end-to-end tests: start the real `ferryd`, run the real `ferry`, or run
//! a server in-process, each in its own temporary directory, bound to 127.0.0.1 port 0.
//!
//! Nothing here sleeps to synchronise: waits poll a condition against a deadline, and every
//! child process is killed when its guard drops.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::Connection;
use ferry_core::identity::Fingerprint;
use ferry_server::Shutdown;
use tempfile::TempDir;

mod child;
mod files;
pub mod flood;
mod haproxy;
mod launch;
mod net;
mod proc_status;
mod relay;
#[cfg(feature = "s3")]
pub mod weed;
mod wire;

pub use child::{Reaped, finish, join_within, run, wait_for, wait_within};
pub use files::{listed, write_dated};
pub use haproxy::{Balancer, haproxy};
use launch::launch;
pub use net::{connect_from, greet_from, loopback, tcp_from};
pub use proc_status::{ProcStatus, proc_field};
pub use relay::Relay;
pub use wire::{Fake, data_frames, eager_upload, end_frame, rooted};

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A built binary of the workspace (`ferryd`, `ferry`), beside this test's own executable.
///
/// `cargo test` at the root builds both, since `server` and `repl` have integration tests;
/// `cargo test -p ferry-tests` alone does not, so a binary older than its Rust sources is
/// refused rather than tested.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    let built = fs::metadata(&path).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} is not built; run `cargo test` from the workspace root",
            path.display()
        );
    };
    if let Some((changed, source)) = newest_source(name)
        && changed > built
    {
        panic!(
            "{} is older than {} (`cargo test -p ferry-tests` does not rebuild it); run \
             `cargo test` from the workspace root, or `cargo build --workspace` first",
            path.display(),
            source.display()
        );
    }
    path
}

/// The most recently changed source file of a workspace binary, and when it changed.
fn newest_source(name: &str) -> Option<(std::time::SystemTime, PathBuf)> {
    let packages: &[&str] = match name {
        "ferryd" => &["core", "commands", "server"],
        "ferry" => &["core", "commands", "repl"],
        _ => return None,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let dirs = packages.iter().map(|p| root.join(p).join("src")).collect();
    rust_sources(dirs)
        .into_iter()
        .filter_map(|f| Some((fs::metadata(&f).ok()?.modified().ok()?, f)))
        .max()
}

/// The `.rs` files under `dirs` that go into a binary.
///
/// Sources only: cargo relinks a binary when one of them changes, but not on every change to
/// a manifest or the lock file, which would leave a binary "older" for good. Nor for a unit
/// test module (`tests.rs`, or a file under a `tests/` folder), which is not in it.
fn rust_sources(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name() == "tests" || entry.file_name() == "tests.rs" {
                continue;
            } else if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Polls `done` until it returns true or the deadline passes.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A running `ferryd`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The working directory (holds `port`, `data/`, `ferryd.log`, `client/`, and `xdg/`, the
    /// data directory of both sides: the server's identity, the client's pins and history).
    pub dir: TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its identity, as it printed it.
    pub fingerprint: Fingerprint,
}

impl Daemon {
    /// Starts `ferryd --root data --port-file port ARGS` in a new directory.
    pub fn start(args: &[&str]) -> Daemon {
        let mut all = vec!["--root", "data", "--port-file", "port"];
        all.extend_from_slice(args);
        Daemon::start_raw(&all)
    }

    /// Starts `ferryd ARGS` (nothing added) in a new directory, and waits for `./port`.
    pub fn start_raw(args: &[&str]) -> Daemon {
        Daemon::start_in(tempfile::tempdir().unwrap(), args)
    }

    /// Starts `ferryd ARGS` (nothing added) in `dir`, and waits for `./port`.
    pub fn start_in(dir: TempDir, args: &[&str]) -> Daemon {
        Daemon::start_env(dir, args, &[])
    }

    /// [`Daemon::start_in`] with the variables `env` set for `ferryd`.
    pub fn start_env(dir: TempDir, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        fs::create_dir(dir.path().join("client")).unwrap();
        let (child, addr, fingerprint) = launch(dir.path(), args, env);
        Daemon {
            fingerprint,
            child: Some(child),
            dir,
            addr,
        }
    }

    /// Starts `ferryd --root data --port-file port ARGS` again in the same directory, once
    /// the last one is gone ([`Daemon::kill`], [`Daemon::wait`]), as a restart would.
    pub fn restart(&mut self, args: &[&str]) {
        let mut all = vec!["--root", "data", "--port-file", "port"];
        all.extend_from_slice(args);
        self.restart_env(&all, &[]);
    }

    /// Starts `ferryd ARGS` (nothing added) with the variables `env` again in the same
    /// directory, once the last one is gone.
    pub fn restart_env(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let (child, addr, fingerprint) = launch(self.dir.path(), args, env);
        self.child = Some(child);
        self.addr = addr;
        self.fingerprint = fingerprint;
    }

    /// The served directory (for daemons started with [`Daemon::start`]).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The client's working directory.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// The port file.
    pub fn port_file(&self) -> PathBuf {
        self.dir.path().join("port")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("ferryd.log")).unwrap_or_default()
    }

    /// `ferry` set up to reach this server through its port file, run in the client directory.
    pub fn ferry(&self) -> Command {
        let mut cmd = Command::new(bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", self.dir.path().join("xdg"))
            .arg("--port-file")
            .arg(self.port_file())
            .current_dir(self.client_dir());
        cmd
    }

    /// Runs `ferry` with `args` and `stdin` as its input.
    pub fn script(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.ferry();
        cmd.args(args);
        run(cmd, stdin.as_bytes())
    }

    /// The server's process id, to read its `/proc` entries ([`ProcStatus`]).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("ferryd still owned by the guard")
            .id()
    }

    /// Sends a signal with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Runs `ferry -c command`, and once an upload's part has appeared on the server, holds
    /// the client (SIGSTOP) while `meanwhile` runs, then lets it go on; its output.
    pub fn held_during_upload(&self, command: &str, meanwhile: impl FnOnce()) -> Output {
        let mut cmd = self.ferry();
        cmd.args(["-c", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Reaped(Some(cmd.spawn().unwrap()));
        let pid = child.0.as_ref().unwrap().id().to_string();
        let partial = self.root().join(".ferry-partial");
        // Should this fail, or `meanwhile`, the client is killed (stopped or not) on the way out.
        wait_until("an upload under way", || {
            fs::read_dir(&partial).is_ok_and(|mut d| d.next().is_some())
        });
        let signal = |sig: &str| {
            let status = Command::new("kill").args([sig, &pid]).status();
            assert!(status.unwrap().success());
        };
        signal("-STOP");
        meanwhile();
        signal("-CONT");
        finish(child.0.take().unwrap())
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let child = self.child.as_mut().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the server to exit by itself.
    pub fn wait(&mut self) -> ExitStatus {
        let child = self
            .child
            .as_mut()
            .expect("ferryd still owned by the guard");
        let mut status = None;
        wait_until("ferryd to exit", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// A raw protocol connection, greeting done, to a server with this one's identity.
    pub fn connect(&self) -> Connection {
        let (conn, fingerprint) = connect_to(self.addr, None);
        assert_eq!(fingerprint, self.fingerprint);
        conn
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Opens a raw connection and exchanges greetings (TLS included), trusting whatever identity
/// the server presents.
pub fn connect(addr: SocketAddr) -> Connection {
    connect_to(addr, None).0
}

/// [`connect`], proving `token`; also returns the server's fingerprint.
pub fn connect_to(addr: SocketAddr, token: Option<&str>) -> (Connection, Fingerprint) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    // What a test writes leaves at once, as a test may stop half way through a frame.
    stream.set_nodelay(true).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let (conn, fingerprint) =
        ferry_core::hello::connect_trusting(stream, "tests", token, deadline).unwrap();
    (
        conn,
        fingerprint.expect("the server presents a certificate"),
    )
}

/// A server running in this process on a thread, stopped and joined on drop.
pub struct InProcess {
    /// Its identity.
    pub fingerprint: Fingerprint,
    shutdown: Shutdown,
    thread: Option<thread::JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its root's parent (the root is `data/` inside).
    pub dir: TempDir,
}

impl InProcess {
    /// Starts a server with the defaults, adjusted by `tweak`. Its root is open (created,
    /// stale temporaries removed) when this returns, so a test may put files in it at once.
    pub fn start(tweak: impl FnOnce(&mut ferry_server::Config)) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ferry_server::Config::new(dir.path().join("data"));
        config.identity = Some(dir.path().join("identity.pem"));
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = ferry_server::Server::new(
            listener,
            config,
            ferry_commands::registry(),
            shutdown.clone(),
        )
        .unwrap();
        let fingerprint = server.fingerprint().clone();
        let thread = thread::spawn(move || server.run().unwrap());
        InProcess {
            fingerprint,
            shutdown,
            thread: Some(thread),
            addr,
            dir,
        }
    }

    /// The served directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.request();
        // Bounded: a server that never stops fails the test rather than hang it, and a test
        // already failing is not made to panic again.
        if let Some(thread) = self.thread.take() {
            let start = Instant::now();
            while !thread.is_finished() && start.elapsed() < DEADLINE {
                thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else if !thread::panicking() {
                panic!("the in-process server did not stop within {DEADLINE:?}");
            }
        }
    }
}

/// True when two files hold the same bytes (compared piecewise, for large files).
pub fn same_content(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    if a.metadata().unwrap().len() != b.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return true;
        }
        b.read_exact(&mut y[..n]).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
    }
}

/// The names in a directory.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `path` is on a tmpfs.
pub fn on_tmpfs(path: &Path) -> std::io::Result<bool> {
    /// `f_type` of a tmpfs in `statfs` (`TMPFS_MAGIC`, linux/magic.h).
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    Ok(rustix::fs::statfs(path)?.f_type == TMPFS_MAGIC)
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    bytes
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_test_modules_are_not_sources_of_a_binary() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for file in [
            "lib.rs",
            "tests.rs",
            "a/b.rs",
            "a/tests.rs",
            "a/tests/c.rs",
            "a/d.txt",
        ] {
            let path = src.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        let mut found = rust_sources(vec![src.clone()]);
        found.sort();
        assert_eq!(found, [src.join("a/b.rs"), src.join("lib.rs")]);
    }
}
