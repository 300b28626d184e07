//! Slow peers: a transfer must keep moving, and a write must give up after the idle timeout
//! in total, however the peer dribbles.

use std::fs;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ferry_core::{Connection, Frame, Kind};
use ferry_tests::{DEADLINE, Daemon, connect};

/// How long after `start` the server logged the end of a session, polled until `limit`
/// (`None` if it had not by then).
fn disconnected_within(server: &Daemon, start: Instant, limit: Duration) -> Option<Duration> {
    let mut pause = Duration::from_millis(1);
    while start.elapsed() < limit {
        if server.log().contains(" disconnected: ") {
            return Some(start.elapsed());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_client_that_never_reads_a_download_is_dropped_after_the_idle_timeout() {
    let server = Daemon::start(&["--idle-timeout", "2"]);
    let file = fs::File::create(server.root().join("big")).unwrap();
    file.set_len(256 << 20).unwrap();
    let mut conn = connect(server.addr);
    let start = Instant::now();
    // Ask, then read nothing: the server's writes block once the socket buffers fill, and
    // every write from then on must count against the same two seconds.
    conn.call(["DOWNLOAD", "/big"]).unwrap();
    let took = disconnected_within(&server, start, DEADLINE)
        .unwrap_or_else(|| panic!("never dropped: {}", server.log()));
    let log = server.log();
    assert!(
        took < Duration::from_millis(3500),
        "dropped after {took:?}, not about 2 s: {log}"
    );
    assert!(log.contains("DOWNLOAD interrupted: "), "{log}");
    assert!(log.contains("timed out"), "{log}");
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "the server serves others");
}

/// Drips `bytes` a byte every 250 ms (each well within an idle timeout of 1 s, the content at
/// 4 bytes a second) until the server drops the connection; how long that took, or `None` if it
/// had not within 6 s.
fn dripped_until_dropped(conn: &mut Connection, bytes: &[u8]) -> Option<Duration> {
    let never = AtomicBool::new(false);
    let every = Duration::from_millis(250);
    ferry_tests::flood::drip(conn, bytes, every, Duration::from_secs(6), &never)
}

#[test]
fn an_upload_dripped_a_byte_at_a_time_is_dropped_after_the_idle_timeout() {
    let server = Daemon::start(&["--idle-timeout", "1"]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/dripped", "100000", "0", "ready"])
        .unwrap();
    let mut header = vec![b'D'];
    header.extend_from_slice(&100_000u32.to_be_bytes());
    conn.stream_mut().write_all(&header).unwrap();
    let took = dripped_until_dropped(&mut conn, b"x")
        .unwrap_or_else(|| panic!("still served after 6 s: {}", server.log()));
    assert!(took < Duration::from_millis(2500), "dropped after {took:?}");
}

#[test]
fn a_request_dribbled_a_byte_at_a_time_is_dropped_after_the_idle_timeout() {
    let server = Daemon::start(&["--idle-timeout", "1"]);
    let mut conn = connect(server.addr);
    let mut request = Vec::new();
    let name = "n".repeat(100);
    Frame::new(Kind::Request, ["STAT", name.as_str()])
        .encode(&mut request)
        .unwrap();
    let took = dripped_until_dropped(&mut conn, &request)
        .unwrap_or_else(|| panic!("still served after 6 s: {}", server.log()));
    assert!(took < Duration::from_millis(2500), "dropped after {took:?}");
}
