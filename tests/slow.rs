//! Slow peers: a transfer must keep moving, and a write must give up after the idle timeout
//! in total, however the peer dribbles.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

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
    conn.call(["DOWNLOAD", "big"]).unwrap();
    let took = disconnected_within(&server, start, DEADLINE)
        .unwrap_or_else(|| panic!("never dropped: {}", server.log()));
    eprintln!("dropped after {took:?}");
    assert!(
        took < Duration::from_millis(3500),
        "dropped after {took:?}, not about 2 s: {}",
        server.log()
    );
}

#[test]
fn an_upload_dripped_a_byte_at_a_time_is_dropped_after_the_idle_timeout() {
    let server = Daemon::start(&["--idle-timeout", "1"]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "dripped", "100000"]).unwrap();
    let mut header = vec![b'D'];
    header.extend_from_slice(&100_000u32.to_be_bytes());
    conn.stream_mut().write_all(&header).unwrap();
    // A byte every 250 ms: each read waits far less than the idle timeout, but the content
    // moves at 4 bytes a second.
    let start = Instant::now();
    let mut took = None;
    while start.elapsed() < Duration::from_secs(6) {
        if server.log().contains(" disconnected: ") {
            took = Some(start.elapsed());
            break;
        }
        if conn.stream_mut().write_all(b"x").is_err() {
            took = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = took.unwrap_or_else(|| panic!("still served after 6 s: {}", server.log()));
    eprintln!("dropped after {took:?}");
    assert!(took < Duration::from_millis(2500), "dropped after {took:?}");
}
