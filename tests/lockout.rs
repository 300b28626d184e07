//! Lock-out: connections that never greet, and sessions that sit idle, cannot keep a client
//! out; only sessions at work can, and never lose their place.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::WireError;
use ferry_tests::{DEADLINE, Daemon, connect, data_frames, end_frame, text, wait_until};

/// A connection that says nothing: it takes the server's `H` and waits.
fn silent(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// True once the server has closed `stream` (what it sent before, its `H`, is read past).
fn closed(stream: &mut TcpStream) -> bool {
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

#[test]
fn connections_that_never_greet_hold_no_session_slot() {
    let server = Daemon::start(&["--max-clients", "2"]);
    let quiet: Vec<TcpStream> = (0..10).map(|_| silent(server.addr)).collect();
    wait_until("the server to accept them all", || {
        server.log().matches(" connected (").count() == 10
    });
    for _ in 0..2 {
        let out = server.script(&["-c", "LIST"], "");
        assert!(out.status.success(), "{}", text(&out).1);
    }
    drop(quiet);
}

#[test]
fn silent_connections_give_way_to_a_client_that_greets() {
    let server = Daemon::start(&["--max-handshakes", "4"]);
    let mut quiet: Vec<TcpStream> = (0..8).map(|_| silent(server.addr)).collect();
    // The four oldest are closed for the four newest, long before the handshake timeout.
    wait_until("room made among those greeting", || {
        quiet[..4].iter_mut().all(closed)
    });
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        server.log().contains("closed to make room: silent after"),
        "{}",
        server.log()
    );
}

#[test]
fn a_full_server_closes_its_longest_idle_session_for_a_new_client() {
    let server = Daemon::start(&["--max-clients", "2"]);
    let mut active = connect(server.addr);
    let mut idle = connect(server.addr);
    active.call(["LIST"]).unwrap();
    while active.next_item().unwrap().is_some() {}
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        matches!(idle.recv(), Err(WireError::Closed)),
        "the session idle longest made room"
    );
    active.call(["LIST"]).expect("the active session is kept");
    assert!(
        server.log().contains("closed to make room: idle for"),
        "{}",
        server.log()
    );
}

#[test]
fn a_busy_session_is_never_closed_and_a_client_past_the_cap_gets_server_busy() {
    let server = Daemon::start(&["--max-clients", "1"]);
    let mut uploading = connect(server.addr);
    assert_eq!(uploading.call(["UPLOAD", "kept", "4"]).unwrap(), ["0"]);
    // The upload waits for its content: busy, so the newcomer is refused.
    let out = server.script(&["-c", "LIST"], "");
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("server busy: 1 clients connected, all busy"),
        "{stderr}"
    );
    let mut content = data_frames(b"kept");
    content.extend_from_slice(&end_frame(b"kept"));
    uploading.stream_mut().write_all(&content).unwrap();
    uploading.expect_ok().expect("the upload finishes");
    assert_eq!(std::fs::read(server.root().join("kept")).unwrap(), b"kept");
    drop(uploading);
    wait_until("the slot to free up", || {
        server.script(&["-c", "LIST"], "").status.success()
    });
}

/// Opens `count` silent connections, then keeps them open, closing the oldest and opening
/// new ones, up to `per_tick` every 10 ms, until `stop`; counts them in `opened`.
fn flood(addr: SocketAddr, count: usize, per_tick: usize, stop: &AtomicBool, opened: &AtomicUsize) {
    let mut open = std::collections::VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let want = if open.len() < count { count } else { per_tick };
        for _ in 0..want.min(count) {
            if open.len() >= count {
                open.pop_front();
            }
            // A refused or dropped connect is part of a flood.
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
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

#[test]
fn under_a_flood_of_silent_connections_and_idle_sessions_a_client_gets_through_each_time() {
    let server = Daemon::start(&["--max-clients", "64"]);
    // 64 clients greet and sit idle: every session slot is taken.
    let idle: Vec<_> = (0..64).map(|_| connect(server.addr)).collect();
    // 2,000 silent connections, the oldest re-opened continually.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flooding = {
        let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
        let addr = server.addr;
        thread::spawn(move || flood(addr, 2000, 20, &stop, &opened))
    };
    wait_until("2,000 silent connections", || {
        opened.load(Ordering::Relaxed) >= 2000
    });
    let mut waits = Vec::new();
    for round in 0..10 {
        let start = Instant::now();
        let out = server.script(&["-c", "LIST"], "");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "round {round}, after {took:?}: {}",
            text(&out).1
        );
        waits.push(took);
    }
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    let slowest = waits.iter().max().unwrap();
    let opened = opened.load(Ordering::Relaxed);
    let displaced = server.log().matches("closed to make room: silent").count();
    eprintln!(
        "{opened} silent connections opened, {displaced} closed to make room; a client got \
         through 10 times out of 10, in {slowest:?} at most"
    );
    assert!(*slowest < Duration::from_secs(5), "{waits:?}");
    drop(idle);
}
