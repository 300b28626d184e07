//! Starting `ferryd` as a child process and reading the two lines it prints once listening.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use ferry_core::identity::Fingerprint;

use crate::{DEADLINE, bin};

/// Starts `ferryd ARGS` in `dir`, its log appended to `ferryd.log` there, and waits for the
/// two lines it prints once listening: its address and its fingerprint.
pub(crate) fn launch(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr, Fingerprint) {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ferryd.log"))
        .unwrap();
    let mut child = Command::new(bin("ferryd"))
        .args(args)
        // A token in the developer's environment must not leak into the tests, nor its
        // data directory be touched.
        .env_remove("FERRY_TOKEN")
        .env("XDG_DATA_HOME", dir.join("xdg"))
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    // The address line comes after the port file is written, so it also orders the two.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..2 {
            let mut line = Vec::new();
            let mut byte = [0];
            while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
        // Keep draining so that the server never blocks on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    let line = || {
        rx.recv_timeout(DEADLINE)
            .expect("ferryd printed its address")
    };
    let (first, second) = (line(), line());
    let addr = first
        .parse()
        .unwrap_or_else(|_| panic!("ferryd printed {first:?}, not an address"));
    let fingerprint = Fingerprint::parse(&second)
        .unwrap_or_else(|| panic!("ferryd printed {second:?}, not a fingerprint"));
    (child, addr, fingerprint)
}
