//! Access: tokens and the proofs of them, SHUTDOWN's restrictions, the warning for an open
//! server, and the handshake's time limit.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferry_core::{Connection, Frame, Kind};
use ferry_tests::{DEADLINE, Daemon, text};

/// A server that requires the token in `secret`, written to a file outside its directory.
fn guarded(secret: &str) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    fs::write(&file, format!("{secret}\n")).unwrap();
    let server = Daemon::start(&["--token-file", file.to_str().unwrap()]);
    (server, dir)
}

#[test]
fn the_token_is_required_before_any_verb() {
    let (server, _dir) = guarded("correct horse ✓");
    fs::write(server.root().join("secret"), b"data").unwrap();
    let out = server.script(&["-c", "DOWNLOAD secret"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("requires an access token"),
        "{}",
        text(&out).1
    );
    assert!(!server.client_dir().join("secret").exists());

    let start = Instant::now();
    let mut cmd = server.ferry();
    cmd.env("FERRY_TOKEN", "correct horse").args(["-c", "LIST"]);
    let out = ferry_tests::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("wrong access token"),
        "{}",
        text(&out).1
    );
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "a wrong token is refused only after a delay"
    );

    let mut cmd = server.ferry();
    cmd.env("FERRY_TOKEN", "correct horse ✓")
        .args(["-c", "DOWNLOAD secret"]);
    let out = ferry_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        fs::read(server.client_dir().join("secret")).unwrap(),
        b"data"
    );

    let file = server.client_dir().join("my-token");
    fs::write(&file, "  correct horse ✓  \n").unwrap();
    let out = server.script(&["--token-file", "my-token", "-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
}

/// A connection with TLS set up and nothing sent inside it yet.
fn encrypted(addr: std::net::SocketAddr) -> Connection {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let tls = ferry_core::hello::open(stream, Instant::now() + DEADLINE).unwrap();
    Connection::boxed(tls)
}

/// Sends a greeting with `proof` and, in the same write, a DELETE; returns what the server
/// answers before it closes.
fn greet_and_delete(addr: std::net::SocketAddr, proof: Option<&str>) -> Vec<Frame> {
    let mut conn = encrypted(addr);
    let mut words = vec![ferry_core::PROTOCOL, ferry_core::VERSION, "raw"];
    words.extend(proof);
    let mut wire = Vec::new();
    Frame::new(Kind::Hello, words).encode(&mut wire).unwrap();
    // A request sent before the greeting completes is never served.
    Frame::new(Kind::Request, ["DELETE", "/x"])
        .encode(&mut wire)
        .unwrap();
    conn.stream_mut().write_all(&wire).unwrap();
    std::iter::from_fn(|| conn.recv().ok()).collect()
}

#[test]
fn a_client_without_the_token_learns_nothing_but_the_refusal() {
    let (server, _dir) = guarded("t0ken");
    fs::write(server.root().join("x"), b"x").unwrap();
    let deadline = Instant::now() + DEADLINE;
    let other_session = {
        let stream = TcpStream::connect(server.addr).unwrap();
        ferry_core::hello::open(stream, deadline).unwrap().binding()
    };
    for proof in [
        None,
        // The token itself, as protocol 3 sent it, proves nothing.
        Some("t0ken".to_string()),
        // A proof made for another session, as a relay would replay.
        Some(ferry_core::identity::proof("t0ken", &other_session)),
    ] {
        let frames = greet_and_delete(server.addr, proof.as_deref());
        assert_eq!(frames.len(), 1, "{proof:?}: {frames:?}");
        assert_eq!(frames[0].kind, Kind::Error);
        assert_eq!(frames[0].words[0], "forbidden");
    }
    assert!(server.root().join("x").exists());
}

#[test]
fn shutdown_needs_the_token_when_one_is_set() {
    let (mut server, _dir) = guarded("stop-secret");
    let out = server.script(&["-c", "SHUTDOWN"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let mut cmd = server.ferry();
    cmd.env("FERRY_TOKEN", "stop-secret").args(["-c", "LIST"]);
    assert!(ferry_tests::run(cmd, b"").status.success(), "still serving");
    let mut cmd = server.ferry();
    cmd.env("FERRY_TOKEN", "stop-secret")
        .args(["-c", "SHUTDOWN"]);
    let out = ferry_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(server.wait().success());
}

/// `ferryd --bind 192.0.2.1 ARGS` in `dir`: its exit and stderr. The address (TEST-NET-1) is
/// on no interface here, so the bind fails after the check for a token: the warning is seen
/// and nothing ever listens beyond loopback.
fn bound_nowhere(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferryd"));
    cmd.args([
        "--root",
        "data",
        "--port-file",
        "port",
        "--bind",
        "192.0.2.1",
    ])
    .args(args)
    .env_remove("FERRY_TOKEN")
    .env("XDG_DATA_HOME", dir.join("xdg"))
    .current_dir(dir);
    let out = ferry_tests::run(cmd, b"");
    let stderr = text(&out).1;
    assert!(stderr.contains("binding 192.0.2.1:"), "{stderr}");
    (out.status.code(), stderr)
}

#[test]
fn an_open_server_on_a_non_loopback_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = bound_nowhere(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("warning: listening on 192.0.2.1 without an access token"),
        "{stderr}"
    );
    let file = dir.path().join("token");
    fs::write(&file, "t").unwrap();
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, stderr) = bound_nowhere(dir.path(), &["--token-file", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let local = Daemon::start(&[]);
    assert!(!local.log().contains("warning"), "{}", local.log());
}

#[test]
fn an_empty_token_file_is_an_error_not_an_open_door() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("token"), "\n").unwrap();
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferryd"));
    cmd.args(["--root", "data", "--token-file", "token"])
        .env_remove("FERRY_TOKEN")
        .current_dir(dir.path());
    let out = ferry_tests::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token file 'token' holds no token"));
}

#[test]
fn a_connection_that_never_greets_is_closed_after_the_handshake_timeout() {
    let server = ferry_tests::InProcess::start(|c| {
        c.handshake_timeout = Duration::from_millis(300);
    });
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let start = Instant::now();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "long before the idle timeout"
    );
    let (hello, used) = Frame::decode(&bytes).unwrap();
    assert_eq!((hello.kind, used), (Kind::Hello, bytes.len()));
    // A client that greets in time keeps its connection for the idle timeout, not this one.
    let mut conn = ferry_tests::connect(server.addr);
    std::thread::sleep(Duration::from_millis(600));
    assert!(conn.call(["LIST", "/"]).is_ok());
}

#[test]
fn a_handshake_dripped_a_byte_at_a_time_is_cut_off_at_the_handshake_timeout() {
    let server = ferry_tests::InProcess::start(|c| {
        c.handshake_timeout = Duration::from_millis(300);
    });
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The start of a TLS handshake record of 512 bytes, then its body: each byte well within
    // the timeout, the whole far beyond it; the server must close before the end.
    let mut record = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    record.resize(5 + 512, 0);
    let mut writer = stream.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        for (sent, byte) in record.iter().enumerate() {
            if writer.write_all(&[*byte]).is_err() {
                return sent;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        record.len()
    });
    let mut bytes = Vec::new();
    // The server's `H`, then its close (a reset, if it came while a byte was in flight).
    let _ = stream.read_to_end(&mut bytes);
    let (hello, used) = Frame::decode(&bytes).unwrap();
    assert_eq!((hello.kind, used), (Kind::Hello, bytes.len()));
    let sent = drip.join().unwrap();
    assert!(sent < 10, "closed after {sent} bytes, at about 300 ms");
}

#[test]
fn a_greeting_dripped_inside_tls_is_cut_off_at_the_handshake_timeout() {
    let server = ferry_tests::InProcess::start(|c| {
        c.handshake_timeout = Duration::from_millis(500);
    });
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut raw = stream.try_clone().unwrap();
    let tls = ferry_core::hello::open(stream, Instant::now() + DEADLINE).unwrap();
    // The handshake is done; now the start of an encrypted record of 16 KiB, its body dripped:
    // each byte well within the timeout, the whole far beyond it.
    let mut record = vec![0x17, 0x03, 0x03, 0x40, 0x00];
    record.resize(5 + 16 * 1024, 0);
    let drip = std::thread::spawn(move || {
        for (sent, byte) in record.iter().enumerate() {
            if raw.write_all(&[*byte]).is_err() {
                return sent;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        record.len()
    });
    let mut conn = Connection::boxed(tls);
    let start = Instant::now();
    assert!(conn.recv().is_err(), "the server closes");
    assert!(start.elapsed() < Duration::from_secs(10));
    let sent = drip.join().unwrap();
    assert!(sent < 20, "closed after {sent} bytes, at about 500 ms");
}
