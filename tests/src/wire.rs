//! Hand-made wire for tests that play a peer: content streams written frame by frame, and a
//! fake server that says what a real `ferryd` never would.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Instant;

use ferry_core::identity::Fingerprint;
use ferry_core::{Connection, Frame, Kind};
use tempfile::TempDir;

use crate::{DEADLINE, bin};

/// The `Z` frame that ends a content stream of `content`, digest included, for tests that write
/// streams by hand.
pub fn end_frame(content: &[u8]) -> Vec<u8> {
    let mut digest = ferry_core::Digest::new();
    digest.update(content);
    let mut bytes = Vec::new();
    Frame::new(Kind::End, digest.words())
        .encode(&mut bytes)
        .unwrap();
    bytes
}

/// `content` as the `D` frames of a content stream (without the `Z` that ends it).
pub fn data_frames(content: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for chunk in content.chunks(ferry_core::content::CHUNK as usize) {
        bytes.push(b'D');
        bytes.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        bytes.extend_from_slice(chunk);
    }
    bytes
}

/// An eager UPLOAD as ferry sends one, as a plain (`Q`) or chained (`C`) request: the request,
/// the content and its end, for one write. `name` is put at the root (a `/` before it) unless
/// it starts with one.
pub fn eager_upload(kind: Kind, name: &str, content: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let size = content.len().to_string();
    let path = rooted(name);
    Frame::new(kind, ["UPLOAD", &path, size.as_str(), "0", "eager"])
        .encode(&mut wire)
        .unwrap();
    wire.extend_from_slice(&data_frames(content));
    wire.extend_from_slice(&end_frame(content));
    wire
}

/// `name` as a path at the root, as requests carry it: `/name`, unless it starts with `/`.
pub fn rooted(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// A one-connection server that greets, then lets the test play the server's part, for what
/// a real `ferryd` never sends (corrupt content, bad names, a stream cut short).
pub struct Fake {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its identity, for `ferry --fingerprint`.
    pub fingerprint: Fingerprint,
    thread: Option<thread::JoinHandle<()>>,
}

impl Fake {
    /// Accepts one client on 127.0.0.1, exchanges greetings, then runs `script`.
    pub fn start(script: impl FnOnce(&mut Connection) + Send + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let identity = fake_identity();
        let fingerprint = identity.fingerprint.clone();
        // Polled, so that a client that never comes fails the script rather than hang it.
        listener.set_nonblocking(true).unwrap();
        let thread = thread::spawn(move || {
            let mut accepted = None;
            crate::wait_until("the client to connect", || {
                accepted = listener.accept().ok();
                accepted.is_some()
            });
            let (stream, _) = accepted.unwrap();
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            stream.set_write_timeout(Some(DEADLINE)).unwrap();
            let deadline = Instant::now() + DEADLINE;
            let (mut conn, _, _) =
                ferry_core::hello::receive(stream, "fake", identity.config, deadline, &mut |_| {})
                    .unwrap();
            ferry_core::hello::accept(&mut conn).unwrap();
            script(&mut conn);
        });
        Fake {
            addr,
            fingerprint,
            thread: Some(thread),
        }
    }

    /// `ferry` set up to reach this server, trusting its identity, run in `dir`.
    pub fn ferry(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", dir.join("xdg"))
            .arg(self.addr.to_string())
            .arg("--fingerprint")
            .arg(self.fingerprint.as_str())
            .current_dir(dir);
        cmd
    }

    /// Waits for the script to end, failing the test if it panicked.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            crate::join_within(thread, "the fake server's script to end");
        }
    }
}

/// One identity for every fake server of a test run, kept in a directory of its own.
fn fake_identity() -> ferry_server::Identity {
    static IDENTITY: std::sync::OnceLock<(TempDir, ferry_server::Identity)> =
        std::sync::OnceLock::new();
    let (_, identity) = IDENTITY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (identity, _) =
            ferry_server::Identity::load_or_create(&dir.path().join("identity.pem")).unwrap();
        (dir, identity)
    });
    identity.clone()
}
