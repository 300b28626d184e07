//! Starting and stopping: defaults, the port file, signals, SHUTDOWN, the idle timeout, stale
//! temporaries, and a panicking handler. The client caps are in `lockout`.

use std::fs;
use std::net::TcpStream;

use ferry_core::{ErrorKind, Failure, Reply, ServerCtx, Verb, WireError};
use ferry_tests::{Daemon, InProcess, connect, text, wait_until};

#[test]
fn no_arguments_serve_server_data_and_publish_the_port() {
    let mut server = Daemon::start_raw(&[]);
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0);
    let port = fs::read_to_string(server.dir.path().join("port")).unwrap();
    assert_eq!(port, format!("{}\n", server.addr.port()));
    assert!(server.dir.path().join("server_data").is_dir());
    // The client with no arguments finds the server through ./port.
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.current_dir(server.dir.path());
    let out = ferry_tests::run(cmd, b"LIST\n");
    assert!(out.status.success(), "{}", text(&out).1);
    server.signal("-TERM");
    assert!(server.wait().success());
    assert!(
        !server.dir.path().join("port").exists(),
        "port file removed"
    );
    let log = server.log();
    assert!(
        log.contains("connected (0 in session, 1 greeting)"),
        "{log}"
    );
    assert!(log.contains("disconnected"), "{log}");
    assert!(log.starts_with("20"), "timestamped: {log}");
}

#[test]
fn binds_ipv6_loopback_when_asked() {
    let server = Daemon::start(&["--bind", "::1"]);
    assert_eq!(
        server.addr.to_string(),
        format!("[::1]:{}", server.addr.port())
    );
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg(server.addr.to_string()).args([
        "--fingerprint",
        server.fingerprint.as_str(),
        "-c",
        "LIST",
    ]);
    let out = ferry_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn sigint_stops_the_server_cleanly() {
    let mut server = Daemon::start(&[]);
    server.signal("-INT");
    assert!(server.wait().success());
    assert!(!server.port_file().exists());
    assert!(server.log().contains("shutting down"), "{}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[test]
fn shutdown_from_a_client_stops_the_server() {
    let mut server = Daemon::start(&[]);
    let out = server.script(&["-c", "SHUTDOWN"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert!(text(&out).0.contains("shutting down"));
    assert!(server.wait().success());
    assert!(!server.port_file().exists());
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn shutdown_lets_a_transfer_in_flight_finish_and_refuses_new_ones() {
    let mut server = Daemon::start(&["--grace", "20"]);
    let mut uploader = server.connect();
    uploader
        .call(["UPLOAD", "/inflight", "6", "0", "ready"])
        .unwrap();
    // Half the content, then SHUTDOWN from another client.
    use std::io::Write;
    uploader.stream_mut().write_all(b"D\0\0\0\x03abc").unwrap();
    let mut idle = server.connect();
    let out = server.script(&["-c", "SHUTDOWN"], "");
    assert!(out.status.success());
    // Closed, not merely timed out (an `Io` timeout would come after the read deadline).
    match idle.recv() {
        Err(WireError::Closed) => {}
        Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the idle client is closed, got {other:?}"),
    }
    uploader.stream_mut().write_all(b"D\0\0\0\x03def").unwrap();
    uploader
        .stream_mut()
        .write_all(&ferry_tests::end_frame(b"abcdef"))
        .unwrap();
    uploader
        .expect_ok()
        .expect("the upload in flight completes");
    assert!(server.wait().success());
    assert_eq!(fs::read(server.root().join("inflight")).unwrap(), b"abcdef");
    assert!(!server.port_file().exists());
}

#[test]
fn sigterm_lets_a_download_in_flight_finish_and_refuses_new_connections() {
    let mut server = Daemon::start(&["--grace", "20"]);
    let content = ferry_tests::random_bytes(32 << 20);
    fs::write(server.root().join("big"), &content).unwrap();
    let mut conn = server.connect();
    conn.call(["DOWNLOAD", "/big"]).unwrap();
    let mut got = Vec::new();
    let mut signalled = false;
    conn.recv_content(
        &mut got,
        content.len() as u64,
        &mut ferry_core::Digest::new(),
        &mut |_| {
            if !signalled {
                signalled = true;
                server.signal("-TERM");
                wait_until("the drain to start", || {
                    server.log().contains("shutting down: 1 clients, 1 busy")
                });
                assert!(
                    TcpStream::connect(server.addr).is_err(),
                    "no new connections while draining"
                );
            }
            true
        },
    )
    .expect("the download in flight completes, digest and all");
    assert!(got == content);
    let after = conn.call(["LIST", "/"]);
    assert!(
        matches!(after, Err(WireError::Closed | WireError::Io(_))),
        "no new request after it, not even refused: {after:?}"
    );
    assert!(server.wait().success());
    assert!(!server.port_file().exists());
}

#[test]
fn a_transfer_stalled_past_the_grace_period_is_cut_and_leaves_nothing_visible() {
    let mut server = Daemon::start(&["--grace", "1"]);
    let mut conn = server.connect();
    conn.call(["UPLOAD", "/stuck", "1000", "0", "ready"])
        .unwrap();
    use std::io::Write;
    conn.stream_mut()
        .write_all(&ferry_tests::data_frames(&[1; 10]))
        .unwrap();
    server.signal("-TERM");
    let start = std::time::Instant::now();
    assert!(server.wait().success());
    assert!(
        start.elapsed().as_secs() < 10,
        "bounded by the grace period"
    );
    assert!(
        server.log().contains("grace period over"),
        "{}",
        server.log()
    );
    assert_eq!(ferry_tests::names_in(&server.root()), [".ferry-partial"]);
    assert!(!server.port_file().exists());
}

#[test]
fn shutdown_is_refused_from_a_non_loopback_peer() {
    // Only loopback addresses may be used in tests, so the handler is called directly with a
    // documentation-range peer address.
    let server = InProcess::start(|_| {});
    let stream = TcpStream::connect(server.addr).unwrap();
    let mut conn = ferry_core::Connection::boxed(stream);
    let (store, _) = ferry_server::LocalStore::open(&server.root()).unwrap();
    let requested = std::sync::atomic::AtomicBool::new(false);
    let request = || requested.store(true, std::sync::atomic::Ordering::SeqCst);
    let verb = ferry_commands::registry().find("SHUTDOWN").unwrap();
    let mut ctx = ServerCtx {
        conn: &mut conn,
        store: &store,
        peer: "192.0.2.7:5000".parse().unwrap(),
        proxy: None,
        registry: ferry_commands::registry(),
        shutdown: &request,
        max_file_size: None,
        done: None,
        batch: &mut ferry_core::Batch::new(),
    };
    let failure = (verb.server)(&mut ctx, &[]).unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Forbidden);
    assert!(!requested.load(std::sync::atomic::Ordering::SeqCst));
    ctx.peer = "[::ffff:127.0.0.1]:5000".parse().unwrap();
    // Through a trusted balancer, even a loopback client's SHUTDOWN is refused.
    ctx.proxy = Some("127.0.0.1:6000".parse().unwrap());
    let failure = (verb.server)(&mut ctx, &[]).unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Forbidden);
    assert!(failure.message.contains("through a load balancer"));
    assert!(!requested.load(std::sync::atomic::Ordering::SeqCst));
    ctx.proxy = None;
    assert_eq!((verb.server)(&mut ctx, &[]), Ok(Reply::Close(Vec::new())));
    assert!(requested.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_silent_connection_is_dropped_after_the_idle_timeout() {
    let server = Daemon::start(&["--idle-timeout", "1"]);
    let mut conn = server.connect();
    match conn.recv() {
        Err(WireError::Closed) => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
    wait_until("the log line", || server.log().contains("idle timeout"));
}

#[test]
fn stale_temporaries_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("data/.ferry-partial");
    fs::create_dir_all(&partial).unwrap();
    fs::write(partial.join("up-leftover"), b"half").unwrap();
    let server = InProcess::start(|c| c.root = dir.path().join("data"));
    let _ = connect(server.addr);
    assert_eq!(fs::read_dir(&partial).unwrap().count(), 0);
}

inventory::submit! {
    Verb {
        name: "PANIC",
        summary: "a test verb whose server half panics",
        example: "PANIC",
        ..Verb::new(|_, _| Ok(ferry_core::Flow::Continue), panics, module_path!())
    }
}

fn panics(_: &mut ServerCtx<'_>, _: &[String]) -> Result<Reply, Failure> {
    panic!("deliberate test panic")
}

#[test]
fn a_panicking_handler_ends_only_its_own_session() {
    let server = InProcess::start(|_| {});
    let mut bystander = connect(server.addr);
    let mut victim = connect(server.addr);
    // The verb is served (not an unknown one), and its panic ends the session: no reply.
    assert!(ferry_commands::registry().find("PANIC").is_some());
    match victim.call(["PANIC"]) {
        Err(WireError::Closed) => {}
        other => panic!("the panicking session is closed, got {other:?}"),
    }
    assert!(
        matches!(
            victim.call(["LIST", "/"]),
            Err(WireError::Closed | WireError::Io(_))
        ),
        "and stays closed"
    );
    bystander
        .call(["LIST", "/"])
        .expect("others are unaffected");
    while bystander.next_item().unwrap().is_some() {}
    let mut fresh = connect(server.addr);
    fresh.call(["HELP"]).expect("the server still accepts");
}

/// The server starts itself once more with glibc's memcpy kept off `rep movsb` and its large
/// blocks given back when freed (server/src/tunables.rs): same process, same name, the
/// tunables in its environment; a user's own setting of either stands, and when the user set
/// both no second start happens.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
#[test]
fn the_server_restarts_once_with_its_glibc_tunables_unless_the_user_chose() {
    let environ = |server: &Daemon| {
        let raw = fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
        format!("\n{}", String::from_utf8_lossy(&raw).replace('\0', "\n"))
    };
    // (glibc splits the variable at its colons where it lies, in the process's memory.)
    let server = Daemon::start(&[]);
    let env = environ(&server);
    assert!(
        env.contains("\nGLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=0x40000000\n"),
        "{env}"
    );
    assert!(
        env.contains("\nglibc.malloc.mmap_threshold=262144\n"),
        "{env}"
    );
    assert!(env.contains("\nFERRYD_GLIBC_TUNED=1\n"), "{env}");
    let name = fs::read_to_string(format!("/proc/{}/comm", server.pid())).unwrap();
    assert_eq!(name, "ferryd\n");
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);

    let args = ["--root", "data", "--port-file", "port"];
    let one = "glibc.malloc.check=0:glibc.cpu.x86_rep_movsb_threshold=4096";
    let dir = tempfile::tempdir().unwrap();
    let chosen = Daemon::start_env(dir, &args, &[("GLIBC_TUNABLES", one)]);
    let env = environ(&chosen);
    assert!(env.contains("x86_rep_movsb_threshold=4096\n"), "{env}");
    assert!(!env.contains("0x40000000"), "{env}");
    assert!(
        env.contains("\nglibc.malloc.mmap_threshold=262144\n"),
        "{env}"
    );
    assert!(env.contains("\nFERRYD_GLIBC_TUNED=1\n"), "{env}");

    let both = "glibc.cpu.x86_rep_movsb_threshold=4096:glibc.malloc.mmap_threshold=65536";
    let dir = tempfile::tempdir().unwrap();
    let chosen = Daemon::start_env(dir, &args, &[("GLIBC_TUNABLES", both)]);
    let env = environ(&chosen);
    assert!(env.contains("mmap_threshold=65536\n"), "{env}");
    assert!(!env.contains("262144"), "{env}");
    assert!(!env.contains("FERRYD_GLIBC_TUNED"), "{env}");
}
