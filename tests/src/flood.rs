//! Hostile peers for the abuse tests (`lockout`, `slow`, `partials`, `chaos`): connections
//! that never greet, uploads cut off part way or dripped a byte at a time, and what they leave
//! in the hidden directory of kept parts.

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::Connection;
use ferry_core::socket::Waiting;

use crate::{DEADLINE, data_frames, greet_from, tcp_from};

/// Sets its flag when dropped, so that a thread polling it stops even when the test fails
/// before telling it to.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A connection that says nothing: it takes the server's `H` and waits.
pub fn silent(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// True once the server has closed `stream` (what it sent before, its `H`, is read past).
pub fn closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Opens `count` silent connections from `source` to `addr`, then keeps them open, closing the
/// oldest and opening new ones, up to `per_tick` every 10 ms, until `stop`; counts them in
/// `opened`.
pub fn silent_flood(
    (source, addr): (IpAddr, SocketAddr),
    count: usize,
    per_tick: usize,
    stop: &AtomicBool,
    opened: &AtomicUsize,
) {
    let mut open = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let want = if open.len() < count { count } else { per_tick };
        for _ in 0..want.min(count) {
            if open.len() >= count {
                open.pop_front();
            }
            // A refused or dropped connect is part of a flood.
            if let Ok(stream) = tcp_from(source, addr) {
                open.push_back(stream);
                opened.fetch_add(1, Ordering::Relaxed);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        thread::sleep(Duration::from_millis(10).saturating_sub(tick.elapsed()));
    }
}

/// Announces an upload of `size` bytes to `path` from `source`, sends `sent` as its start and
/// vanishes, leaving the server a part to keep.
pub fn cut_off(
    (source, addr): (IpAddr, SocketAddr),
    path: &str,
    size: u64,
    sent: &[u8],
) -> anyhow::Result<()> {
    let mut conn = greet_from(source, addr)?;
    let size = size.to_string();
    let reply = conn.call(["UPLOAD", path, &size, "0", "ready"])?;
    anyhow::ensure!(reply == ["0"], "UPLOAD answered {reply:?}");
    conn.stream_mut().write_all(&data_frames(sent))?;
    Ok(())
}

/// The parts kept for resuming in the root at `root`: their count and bytes.
pub fn kept_parts(root: &Path) -> (usize, u64) {
    let dir = root.join(".ferry-partial");
    let sizes: Vec<u64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("resume-"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect();
    (sizes.len(), sizes.iter().sum())
}

/// Writes `bytes` one at a time, cycling, one every `every`, until the server answers or
/// closes (mid-request it does that only to give up): how long that took. `None` if it had
/// not after `limit`, or once `stop` is set.
pub fn drip(
    conn: &mut Connection,
    bytes: &[u8],
    every: Duration,
    limit: Duration,
    stop: &AtomicBool,
) -> Option<Duration> {
    let start = Instant::now();
    for byte in bytes.iter().cycle() {
        if start.elapsed() > limit || stop.load(Ordering::Relaxed) {
            return None;
        }
        if !matches!(conn.waiting(), Waiting::Nothing)
            || conn.stream_mut().write_all(&[*byte]).is_err()
        {
            return Some(start.elapsed());
        }
        // The drip's pace, not a wait for the server.
        thread::sleep(every);
    }
    unreachable!("the bytes cycle")
}
