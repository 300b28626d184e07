//! The wire, from a raw client: greetings, malformed and hostile input, abandoned transfers.

use std::io::{Read, Write};
use std::net::TcpStream;

use ferry_core::{ErrorKind, Frame, Kind, WireError};
use ferry_tests::{DEADLINE, Daemon, connect, text, wait_until};

fn raw(server: &Daemon) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// A connection with TLS set up and nothing sent inside it yet.
fn encrypted(server: &Daemon) -> ferry_core::Connection {
    let deadline = std::time::Instant::now() + DEADLINE;
    let tls = ferry_core::hello::open(raw(server), deadline).unwrap();
    ferry_core::Connection::boxed(tls)
}

/// Everything the server sends on `stream` until it closes it (a reset counts: it may come
/// while unread bytes are in flight); a read that times out instead fails the test.
fn until_closed(mut stream: &TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server never closed the connection: {e}"),
    }
    bytes
}

/// Reads frames until the server closes.
fn replies_until_close(conn: &mut ferry_core::Connection) -> Vec<Frame> {
    std::iter::from_fn(|| conn.recv().ok()).collect()
}

#[test]
fn the_server_says_its_version_in_clear_before_anything_else() {
    let server = Daemon::start(&[]);
    let mut clear = ferry_core::Connection::new(raw(&server));
    let hello = clear.recv().unwrap();
    assert_eq!(hello.kind, Kind::Hello);
    assert_eq!(
        hello.words[..2],
        [ferry_core::PROTOCOL, ferry_core::VERSION]
    );
    assert!(hello.words[2].starts_with("ferryd "), "{hello:?}");
}

#[test]
fn a_client_of_another_version_is_told_and_closed() {
    let server = Daemon::start(&[]);
    let mut conn = encrypted(&server);
    conn.send(&Frame::new(Kind::Hello, ["FERRY", "99"]))
        .unwrap();
    let frames = replies_until_close(&mut conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].kind, Kind::Error);
    assert_eq!(frames[0].words[0], "version");
    assert!(frames[0].words[1].contains("'99'"), "{:?}", frames[0]);
}

#[test]
fn a_peer_that_is_not_ferry_is_told_and_closed() {
    let server = Daemon::start(&[]);
    // Inside TLS, anything but a greeting first.
    let mut conn = encrypted(&server);
    conn.send(&Frame::new(Kind::Request, ["LIST", "/"]))
        .unwrap();
    let frames = replies_until_close(&mut conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].words[..2], ["version", "not a FERRY client"]);
    // In clear, where TLS belongs: the server's greeting, then the connection ends.
    let mut stream = raw(&server);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let bytes = until_closed(&stream);
    let (hello, _) = Frame::decode(&bytes).unwrap();
    assert_eq!(hello.kind, Kind::Hello);
    wait_until("the log", || server.log().contains("handshake failed"));
}

#[test]
fn a_huge_declared_length_is_refused_before_allocation() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.stream_mut().write_all(b"Q\xff\xff\xff\xff").unwrap();
    match conn.recv() {
        Ok(frame) => {
            assert_eq!(frame.kind, Kind::Error);
            assert_eq!(frame.words[0], "bad-request");
            assert!(frame.words[1].contains("exceeds the limit"), "{frame:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.recv(), Err(WireError::Closed)), "then closed");
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "the server still serves others");
}

#[test]
fn unknown_verbs_get_an_error_and_the_connection_stays_usable() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    match conn.call(["FROB", "x"]) {
        Err(WireError::Remote(f)) => {
            assert_eq!(f.kind, ErrorKind::UnknownVerb);
            assert_eq!(f.message, "unknown verb 'FROB'");
        }
        other => panic!("{other:?}"),
    }
    assert!(conn.call(["LIST", "/"]).is_ok());
    while conn.next_item().unwrap().is_some() {}
    for (words, kind) in [
        (&["DELETE"][..], ErrorKind::BadRequest),
        (&["DELETE", "a", "b"], ErrorKind::BadRequest),
        (
            &["UPLOAD", "/x", "many", "0", "ready"],
            ErrorKind::BadRequest,
        ),
        (&["DOWNLOAD", "/../etc/passwd"], ErrorKind::BadName),
        (&["DELETE", "/.ferry-partial"], ErrorKind::BadName),
        (&["LIST", "/", "x"], ErrorKind::BadRequest),
        (&["LIST", "x"], ErrorKind::BadName),
        (&["LOGOUT", "x"], ErrorKind::BadRequest),
    ] {
        match conn.call(words.iter().copied()) {
            Err(WireError::Remote(f)) => assert_eq!(f.kind, kind, "{words:?}: {f}"),
            other => panic!("{words:?}: {other:?}"),
        }
    }
    assert!(conn.call(["LOGOUT"]).is_ok());
}

#[test]
fn help_over_the_wire_matches_the_registry() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    let count = conn.call(["HELP"]).unwrap();
    let mut names = Vec::new();
    while let Some(item) = conn.next_item().unwrap() {
        assert_eq!(item.len(), 4);
        names.push(item[0].clone());
    }
    assert_eq!(count, [names.len().to_string()]);
    let shipped: Vec<_> = ferry_commands::registry()
        .iter()
        .filter(|v| v.module.starts_with("ferry_commands::") && !v.local)
        .map(|v| v.name)
        .collect();
    assert_eq!(
        names, shipped,
        "every verb the server serves, and only those"
    );
}

#[test]
fn garbage_connections_do_not_disturb_a_working_client() {
    let server = Daemon::start(&[]);
    let mut worker = connect(server.addr);
    let mut vandals = Vec::new();
    for i in 0..20 {
        let mut stream = raw(&server);
        let junk = ferry_tests::random_bytes(1000 + i * 97);
        let _ = stream.write_all(&junk);
        vandals.push(stream);
        worker.call(["LIST", "/"]).unwrap();
        while worker.next_item().unwrap().is_some() {}
    }
    for stream in vandals {
        // Each gets the greeting and at most a TLS alert or an error frame, then the server
        // closes it.
        let rest = until_closed(&stream);
        let (hello, used) = Frame::decode(&rest).unwrap();
        assert_eq!(hello.kind, Kind::Hello);
        let tail = &rest[used..];
        let alert = tail.len() >= 5
            && tail[0] == 0x15
            && tail.len() == 5 + u16::from_be_bytes([tail[3], tail[4]]) as usize;
        let error =
            Frame::decode(tail).is_ok_and(|(f, n)| f.kind == Kind::Error && n == tail.len());
        assert!(
            tail.is_empty() || alert || error,
            "after the greeting: {tail:?}"
        );
    }
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_nothing_visible() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/half", "1000000", "0", "ready"])
        .unwrap();
    conn.stream_mut().write_all(b"D\0\x01\0\0").unwrap();
    conn.stream_mut().write_all(&[7u8; 4000]).unwrap();
    drop(conn);
    // Logged with its true cause: the connection, not a bad request.
    wait_until("the server to notice", || {
        server
            .log()
            .contains("UPLOAD interrupted: connection closed in the middle of a frame")
    });
    assert!(!server.log().contains("bad-request"), "{}", server.log());
    assert!(!server.root().join("half").exists());
    // What arrived is kept, hidden, for UPLOAD -c (see the resume tests).
    let partial = server.root().join(".ferry-partial");
    let kept = ferry_tests::names_in(&partial);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("resume-"), "{kept:?}");
    let out = server.script(&["-c", "LIST"], "");
    assert!(text(&out).0.is_empty(), "{}", text(&out).0);
}

#[test]
fn an_abandoned_upload_is_discarded_and_the_connection_goes_on() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/gone", "10", "0", "ready"]).unwrap();
    conn.stream_mut().write_all(b"D\0\0\0\x04abcd").unwrap();
    let mut abort = Vec::new();
    Frame::new(Kind::Abort, ["cancelled", "changed my mind"])
        .encode(&mut abort)
        .unwrap();
    conn.stream_mut().write_all(&abort).unwrap();
    match conn.expect_ok() {
        Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::Cancelled),
        other => panic!("{other:?}"),
    }
    assert!(!server.root().join("gone").exists());
    assert!(conn.call(["LIST", "/"]).is_ok(), "still in step");
}

#[test]
fn a_download_cancelled_by_the_receiver_stops_early_and_the_connection_goes_on() {
    let server = Daemon::start(&[]);
    // Large enough that the server is still sending when the cancel arrives.
    let size = 256u64 << 20;
    let file = std::fs::File::create(server.root().join("huge")).unwrap();
    file.set_len(size).unwrap();
    let mut conn = connect(server.addr);
    let reply = conn.call(["DOWNLOAD", "/huge"]).unwrap();
    assert_eq!(reply[0], size.to_string());
    let mut got = 0u64;
    let err = conn
        .recv_content(
            &mut std::io::sink(),
            size,
            &mut ferry_core::Digest::new(),
            &mut |n| {
                got = n;
                false
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ferry_core::ContentError::Cancelled),
        "{err:?}"
    );
    assert!(conn.call(["LIST", "/"]).is_ok(), "in step after the cancel");
    while conn.next_item().unwrap().is_some() {}
    wait_until("the cancel in the log", || {
        server.log().contains("download cancelled by client")
    });
    assert!(got < size);
}

#[test]
fn a_data_frame_where_a_request_belongs_is_named_in_the_error() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.stream_mut().write_all(b"D\0\0\0\x02ab").unwrap();
    match conn.recv() {
        Ok(frame) => {
            assert_eq!(frame.words[0], "bad-request");
            assert!(frame.words[1].contains("got a Data frame"), "{frame:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn uploads_held_for_their_commit_are_answered_before_a_protocol_error_after_them() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    // Sent at once, with a request after the stray frame, so the server holds both uploads
    // to commit them together while it reads on, and meets the stray frame before they are
    // answered.
    let mut bytes = eager_upload("one", b"1");
    bytes.extend(eager_upload("two", b"2"));
    bytes.extend(b"D\0\0\0\x02ab");
    Frame::new(Kind::Request, ["LIST", "/"])
        .encode(&mut bytes)
        .unwrap();
    conn.stream_mut().write_all(&bytes).unwrap();
    assert_eq!(conn.expect_ok().unwrap(), ["/one", "new"]);
    assert_eq!(conn.expect_ok().unwrap(), ["/two", "new"]);
    match conn.recv() {
        Ok(frame) => assert!(frame.words[1].contains("got a Data frame"), "{frame:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(server.root().join("two")).unwrap(), b"2");
}

#[test]
fn a_corrupted_upload_is_refused_and_nothing_is_kept() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/corrupt", "8", "0", "ready"])
        .unwrap();
    // The digest of other content than the bytes sent, as if a bit flipped in transit.
    let mut digest = ferry_core::Digest::new();
    digest.update(b"abcdefgX");
    let mut wire = b"D\0\0\0\x08abcdefgh".to_vec();
    Frame::new(Kind::End, digest.words())
        .encode(&mut wire)
        .unwrap();
    conn.stream_mut().write_all(&wire).unwrap();
    match conn.expect_ok() {
        Err(WireError::Remote(f)) => {
            assert_eq!(f.kind, ErrorKind::DigestMismatch);
            assert!(f.message.starts_with("digest mismatch"), "{f}");
            assert!(
                f.message.contains(&digest.hex()),
                "names the sent digest: {f}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!server.root().join("corrupt").exists());
    let partial = server.root().join(".ferry-partial");
    assert_eq!(
        std::fs::read_dir(partial).unwrap().count(),
        0,
        "temporary removed"
    );
    assert!(
        conn.call(["LIST", "/"]).is_ok(),
        "in step after the refusal"
    );
}

#[test]
fn truncated_frames_and_abrupt_closes_do_not_disturb_the_server() {
    let server = Daemon::start(&[]);
    let mut worker = connect(server.addr);
    let mut request = Vec::new();
    Frame::new(Kind::Request, ["UPLOAD", "/x", "100", "0", "ready"])
        .encode(&mut request)
        .unwrap();
    let mut hello = Vec::new();
    Frame::new(Kind::Hello, [ferry_core::PROTOCOL, ferry_core::VERSION])
        .encode(&mut hello)
        .unwrap();
    for cut in 0..request.len() {
        // Cut inside a request after the greeting...
        let mut conn = connect(server.addr);
        conn.stream_mut().write_all(&request[..cut]).unwrap();
        drop(conn);
        // ...and inside the greeting itself.
        let mut stream = raw(&server);
        stream
            .write_all(&hello[..cut.min(hello.len() - 1)])
            .unwrap();
    }
    // Cut inside a data frame.
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/y", "100", "0", "ready"]).unwrap();
    conn.stream_mut().write_all(b"D\0\0\0\x64abc").unwrap();
    drop(conn);
    worker.call(["LIST", "/"]).unwrap();
    while worker.next_item().unwrap().is_some() {}
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.is_empty(), "nothing half-sent became visible");
}

#[test]
fn a_slow_sender_does_not_hold_up_other_clients() {
    let server = Daemon::start(&[]);
    let mut slow = connect(server.addr);
    let mut request = Vec::new();
    Frame::new(Kind::Request, ["LIST", "/"])
        .encode(&mut request)
        .unwrap();
    let payload = ferry_tests::random_bytes(1 << 20);
    std::fs::write(server.client_dir().join("f"), &payload).unwrap();
    // One byte of a request at a time, interleaved with whole sessions of another client.
    for byte in &request[..request.len() - 1] {
        slow.stream_mut().write_all(&[*byte]).unwrap();
        let out = server.script(&[], "UPLOAD f\nDOWNLOAD f back\n");
        assert!(out.status.success(), "{}", text(&out).1);
    }
    slow.stream_mut()
        .write_all(&request[request.len() - 1..])
        .unwrap();
    assert!(
        slow.expect_ok().is_ok(),
        "the slow request is served in the end"
    );
    assert_eq!(
        std::fs::read(server.client_dir().join("back")).unwrap(),
        payload
    );
}

#[test]
fn a_flood_of_connections_does_not_stop_a_working_client() {
    let server = Daemon::start(&["--max-clients", "1000"]);
    let mut worker = connect(server.addr);
    let mut flood = Vec::new();
    for i in 0..300 {
        let mut stream = raw(&server);
        if i % 3 == 0 {
            let _ = stream.write_all(&ferry_tests::random_bytes(64));
        }
        flood.push(stream);
        if i % 50 == 0 {
            worker.call(["LIST", "/"]).unwrap();
            while worker.next_item().unwrap().is_some() {}
        }
    }
    let out = server.script(&["-c", "LIST"], "");
    assert!(
        out.status.success(),
        "a new client is served during the flood: {}",
        text(&out).1
    );
    drop(flood);
    // Every one of them, and the script's client, is let go (the log lines of concurrent
    // disconnections may come in any order, so they are counted).
    wait_until("the flood to drain", || {
        server.log().matches(" disconnected: ").count() == 301
    });
    assert!(worker.call(["LIST", "/"]).is_ok());
}

fn eager_upload(name: &str, content: &[u8]) -> Vec<u8> {
    ferry_tests::eager_upload(Kind::Request, name, content)
}

#[test]
fn an_eager_upload_is_stored_with_a_single_reply() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    conn.stream_mut()
        .write_all(&eager_upload("quick", b"fast"))
        .unwrap();
    assert_eq!(
        conn.expect_ok().unwrap(),
        ["/quick", "new"],
        "where it went"
    );
    assert_eq!(std::fs::read(server.root().join("quick")).unwrap(), b"fast");
    assert!(
        conn.call(["LIST", "/"]).is_ok(),
        "no second reply was pending"
    );
}

#[test]
fn a_refused_eager_upload_drains_its_content_and_the_connection_goes_on() {
    let server = Daemon::start(&["--max-file-size", "3"]);
    let mut conn = connect(server.addr);
    for (name, kind) in [("../x", ErrorKind::BadName), ("big", ErrorKind::TooLarge)] {
        conn.stream_mut()
            .write_all(&eager_upload(name, b"four"))
            .unwrap();
        match conn.expect_ok() {
            Err(WireError::Remote(f)) => assert_eq!(f.kind, kind, "{name}: {f}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        conn.call(["LIST", "/"]).is_ok(),
        "in step after both refusals"
    );
    assert!(!server.root().join("big").exists());
    // Through the real client: the refusal is one error line, and the session goes on.
    std::fs::write(server.client_dir().join("big"), b"four").unwrap();
    let out = server.script(&[], "-UPLOAD big\nLIST\n");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("over the server's limit of 3 bytes"),
        "{stderr}"
    );
}

#[test]
fn an_eager_upload_over_one_chunk_closes_the_connection() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    let too_big = (u64::from(ferry_core::content::CHUNK) + 1).to_string();
    match conn.call(["UPLOAD", "/x", too_big.as_str(), "0", "eager"]) {
        Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::BadRequest),
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.recv(), Err(WireError::Closed)));
}

#[test]
fn an_eager_upload_without_a_usable_size_closes_the_connection() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    match conn.call(["UPLOAD", "/x", "many", "0", "eager"]) {
        Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::BadRequest),
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.recv(), Err(WireError::Closed)));
}
