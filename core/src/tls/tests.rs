//! TLS between two threads over loopback: the handshake, what each side sees of the other,
//! the session binding, and the transport's non-blocking parts.

use std::net::TcpListener;
use std::thread;

use super::*;
use crate::Connection;
use crate::frame::{Frame, Kind};
use crate::identity::{proof, proof_matches, token_key};

const DEADLINE: Duration = Duration::from_secs(30);

/// A certificate and its key (DER), as a server would keep them.
fn identity() -> (Vec<u8>, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["ferryd".to_string()]).unwrap();
    (cert.cert.der().to_vec(), cert.signing_key.serialize_der())
}

/// A client and a server connected over TLS, and the server's certificate.
fn pair() -> (Tls, Tls, Vec<u8>) {
    let (cert, key) = identity();
    let config = server_config(&cert, &key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        // No test waits on either end for ever, even one that finds a write blocking.
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        sock.set_write_timeout(Some(DEADLINE)).unwrap();
        Tls::accept(sock, config, Instant::now() + DEADLINE).unwrap()
    });
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    sock.set_write_timeout(Some(DEADLINE)).unwrap();
    let client = Tls::connect(sock, Instant::now() + DEADLINE).unwrap();
    (client, server.join().unwrap(), cert)
}

#[test]
fn the_client_sees_the_servers_certificate_and_both_share_a_binding() {
    let (client, server, cert) = pair();
    assert_eq!(client.peer_fingerprint(), Some(Fingerprint::of(&cert)));
    assert_eq!(
        server.peer_fingerprint(),
        None,
        "clients present no certificate"
    );
    assert_eq!(client.binding(), server.binding());
    let (other, _, _) = pair();
    assert_ne!(
        client.binding(),
        other.binding(),
        "each session has its own"
    );
}

#[test]
fn a_proof_matches_only_its_token_and_its_session() {
    let (client, server, _) = pair();
    let given = proof("s3cret", &client.binding());
    assert!(proof_matches(
        &token_key("s3cret"),
        &server.binding(),
        &given
    ));
    assert!(!proof_matches(
        &token_key("s3cret "),
        &server.binding(),
        &given
    ));
    let (other, _, _) = pair();
    assert!(!proof_matches(
        &token_key("s3cret"),
        &other.binding(),
        &given
    ));
    assert!(!proof_matches(
        &token_key("s3cret"),
        &server.binding(),
        "00"
    ));
}

#[test]
fn fingerprints_are_written_as_ssh_writes_them_and_read_back() {
    let fp = Fingerprint::of(b"certificate");
    assert!(fp.as_str().starts_with("SHA256:"), "{fp}");
    assert_eq!(
        fp.as_str().len(),
        "SHA256:".len() + 43,
        "unpadded base64 of 32 bytes"
    );
    assert_eq!(Fingerprint::parse(&format!(" {fp}\n")), Some(fp.clone()));
    for bad in ["", "SHA256:", "MD5:abc", "SHA256:abc", &fp.as_str()[1..]] {
        assert_eq!(Fingerprint::parse(bad), None, "{bad}");
    }
}

#[test]
fn frames_content_and_a_peek_cross_the_encrypted_transport() {
    let (client, server, _) = pair();
    let mut client = Connection::new(client);
    let mut server = Connection::new(server);
    assert_eq!(server.waiting(), Waiting::Nothing);
    client.send(&Frame::new(Kind::Request, ["LIST"])).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while server.waiting() == Waiting::Nothing {
        assert!(Instant::now() < deadline, "nothing arrived");
        thread::yield_now();
    }
    assert_eq!(
        server.waiting(),
        Waiting::Byte(b'Q'),
        "peeking reads nothing"
    );
    assert_eq!(server.recv().unwrap().words, ["LIST"]);
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sender = thread::spawn(move || {
        let mut digest = crate::Digest::new();
        let watch = crate::Watch::Progress(&mut |_| true);
        server
            .send_content(&mut &content[..], 3_000_000, &mut digest, watch)
            .unwrap();
        (server, content)
    });
    let mut got = Vec::new();
    client
        .recv_content(&mut got, 3_000_000, &mut crate::Digest::new(), &mut |_| {
            true
        })
        .unwrap();
    let (server, content) = sender.join().unwrap();
    assert_eq!(got, content);
    drop(server);
    while client.waiting() == Waiting::Nothing {
        assert!(Instant::now() < deadline, "the close never arrived");
        thread::yield_now();
    }
    assert_eq!(client.waiting(), Waiting::Closed);
    assert!(matches!(client.recv(), Err(crate::WireError::Closed)));
}

#[test]
fn a_non_blocking_write_stops_when_the_socket_is_full_and_leaves_at_most_a_record() {
    let (mut client, mut server, _) = pair();
    let chunk = vec![1u8; 64 * 1024];
    let mut accepted = 0;
    loop {
        match client.write_ready(&chunk).unwrap() {
            0 => break,
            n => {
                assert!(n <= RECORD);
                accepted += n;
            }
        }
        assert!(accepted < 1 << 30, "the socket never filled");
    }
    // Everything accepted arrives once the blocking flush has pushed the last record.
    let reader = thread::spawn(move || {
        let mut got = vec![0u8; accepted];
        server.read_exact(&mut got).unwrap();
        got.iter().all(|&b| b == 1)
    });
    client.flush().unwrap();
    assert!(reader.join().unwrap());
}

#[test]
fn the_inbox_streams_and_never_replays_what_it_gave_out() {
    let mut inbox = Inbox::default();
    let would_block = |_: &mut [u8]| -> io::Result<usize> { Err(io::ErrorKind::WouldBlock.into()) };
    let mut next = 0u8;
    // A socket that gives `len` fresh, numbered bytes per read.
    let source = |len: usize| {
        let mut fill = move |buf: &mut [u8]| -> io::Result<usize> {
            let n = buf.len().min(len);
            for b in &mut buf[..n] {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(n)
        };
        move |buf: &mut [u8]| fill(buf)
    };
    let mut out = vec![0u8; 4 * RECORD];
    // A small read, less than asked for, goes straight through and keeps no buffer.
    assert_eq!(inbox.read(&mut out[..200], &mut source(100)).unwrap(), 100);
    assert!(inbox.buf.is_empty());
    // One that fills what was asked for leaves more waiting (small requests sent ahead,
    // say): the next reads take it a large buffer at a time.
    let mut waiting = source(300);
    assert_eq!(inbox.read(&mut out[..100], &mut waiting).unwrap(), 100);
    assert_eq!(inbox.buf.len(), STREAM_FIRST);
    assert_eq!(inbox.read(&mut out, &mut waiting).unwrap(), 300);
    assert_eq!(
        inbox.read(&mut out, &mut source(RECORD - 1)).unwrap(),
        RECORD - 1
    );
    // Less than a record came, and it is passed on: the buffer goes.
    assert!(inbox.read(&mut out, &mut { would_block }).is_err());
    assert!(inbox.buf.is_empty());
    // A whole record's worth: the connection streams, and a large buffer takes over.
    assert_eq!(inbox.read(&mut out, &mut source(RECORD)).unwrap(), RECORD);
    assert_eq!(inbox.buf.len(), STREAM_FIRST);
    let big = RECORD + 100;
    let mut stream = source(big);
    assert_eq!(inbox.read(&mut out[..2000], &mut stream).unwrap(), 2000);
    assert_eq!(inbox.read(&mut out, &mut stream).unwrap(), big - 2000);
    let last = out[big - 2001];
    // Drained mid-stream: a read that would block says so, gives nothing old, keeps the buffer.
    for _ in 0..2 {
        let err = inbox.read(&mut out, &mut { would_block }).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
    assert_eq!(inbox.buf.len(), STREAM_FIRST);
    assert_eq!(inbox.read(&mut out[..10], &mut stream).unwrap(), 10);
    assert_eq!(
        out[0],
        last.wrapping_add(1),
        "fresh bytes, not the old ones again"
    );
    // The stream stops: once a short read's bytes are passed on, the buffer goes.
    let rest = big - 10;
    assert_eq!(inbox.read(&mut out, &mut stream).unwrap(), rest);
    assert_eq!(inbox.read(&mut out, &mut source(3000)).unwrap(), 3000);
    assert!(inbox.read(&mut out, &mut { would_block }).is_err());
    assert!(inbox.buf.is_empty(), "an idle connection holds no buffer");
}

#[test]
fn the_inbox_grows_only_for_a_stream_that_fills_it() {
    let mut inbox = Inbox::default();
    let mut next = 0u8;
    // A socket that always has more numbered bytes than asked for.
    let mut endless = |buf: &mut [u8]| -> io::Result<usize> {
        for b in buf.iter_mut() {
            *b = next;
            next = next.wrapping_add(1);
        }
        Ok(buf.len())
    };
    let mut out = vec![0u8; RECORD];
    let mut taken = 0usize;
    // Reads once; checks the bytes are the next ones; returns the buffer's size then.
    let mut take = |inbox: &mut Inbox| {
        let n = inbox.read(&mut out, &mut endless).unwrap();
        assert!(
            out[..n]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (taken + i) as u8)
        );
        taken += n;
        (taken, inbox.buf.len())
    };
    assert_eq!(
        take(&mut inbox),
        (RECORD, STREAM_FIRST),
        "a stream starts small"
    );
    // The first buffer's worth, read in one go, is handed out; then the buffer grows.
    for at in 1..=STREAM_FIRST / RECORD {
        assert_eq!(take(&mut inbox), (RECORD * (1 + at), STREAM_FIRST));
    }
    let (_, len) = take(&mut inbox);
    assert_eq!(len, STREAM_READ, "a stream that fills it gets more");
}

#[test]
fn bytes_already_read_are_handed_over_past_the_deadline_and_the_socket_is_not() {
    let (mut client, mut server, _) = pair();
    let total = 512 * 1024;
    // Whatever the server leaves unread may keep this write waiting: it ends when the
    // server's socket closes, below.
    let sender = thread::spawn(move || {
        let _ = client.write_all(&vec![5u8; total]);
    });
    // Read a record at a time until the inbox holds bytes read ahead from the socket.
    let mut buf = vec![0u8; RECORD];
    let mut got = 0;
    while !server.inbox.holds_bytes() {
        got += server.read(&mut buf).unwrap();
        assert!(got < total, "the inbox never read ahead");
    }
    server.set_deadline(Instant::now().checked_sub(Duration::from_millis(1)));
    // What is already here still comes; the first read that needs the socket times out.
    got += server.read(&mut buf).unwrap();
    let err = loop {
        match server.read(&mut buf) {
            Ok(n) => got += n,
            Err(e) => break e,
        }
        assert!(
            got < total,
            "every byte came although the deadline had passed"
        );
    };
    assert!(crate::error::is_timeout(&err), "{err:?}");
    drop(server);
    sender.join().unwrap();
}

/// A pace of `window` ms at `min_rate` bytes a second.
fn pace(window: u64, min_rate: u64) -> Pace {
    Pace {
        window: Duration::from_millis(window),
        min_rate,
    }
}

#[test]
fn a_paced_read_gives_up_on_a_dribble_however_often_it_comes() {
    let (mut client, mut server, _) = pair();
    server.set_pace(Some(pace(300, 1000)));
    // A byte every 30 ms: ten times within the window, a tenth of the rate.
    let dribble = thread::spawn(move || {
        for _ in 0..200 {
            if client.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(30));
        }
    });
    let start = Instant::now();
    let mut got = 0;
    let err = loop {
        match server.read(&mut [0; 64]) {
            Ok(n) => got += n,
            Err(e) => break e,
        }
    };
    let took = start.elapsed();
    assert!(crate::error::is_timeout(&err), "{err:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}, {got} bytes");
    drop(server);
    dribble.join().unwrap();
}

#[test]
fn a_paced_write_gives_up_after_one_window_of_waiting_in_all() {
    let (client, mut server, _) = pair();
    server.sock.set_write_timeout(Some(DEADLINE)).unwrap();
    server.set_pace(Some(pace(300, 1000)));
    let start = Instant::now();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    // The client never reads: the socket fills, then the writes wait out the window.
    let err = loop {
        match server.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(e) => break e,
        }
        assert!(sent < 1 << 30, "the socket never filled");
    };
    assert!(crate::error::is_timeout(&err), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Once the budget is spent, nothing waits: a reply fails at once.
    let again = Instant::now();
    assert!(server.write_all(b"reply").is_err());
    assert!(again.elapsed() < Duration::from_millis(100));
    // Lifting the pace puts the timeouts back.
    server.set_pace(None);
    assert_eq!(server.sock.write_timeout().unwrap(), Some(DEADLINE));
    drop(client);
}

#[test]
fn a_paced_read_bounds_the_read_timeout_only_while_the_pace_lasts() {
    let (mut client, mut server, _) = pair();
    server.sock.set_read_timeout(Some(DEADLINE)).unwrap();
    // An exchange whose reads never reach the socket leaves the timeout alone.
    server.set_pace(Some(pace(300, 1000)));
    server.set_pace(None);
    assert_eq!(server.sock.read_timeout().unwrap(), Some(DEADLINE));
    server.set_pace(Some(pace(300, 1000)));
    client.write_all(b"hello").unwrap();
    let mut got = [0; 5];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    let during = server.sock.read_timeout().unwrap().unwrap();
    assert!(during <= Duration::from_millis(300), "{during:?}");
    server.set_pace(None);
    assert_eq!(server.sock.read_timeout().unwrap(), Some(DEADLINE));
}

#[test]
fn a_paced_transfer_slow_but_above_the_rate_goes_through() {
    use rustix::net::sockopt;
    let (mut client, mut server, _) = pair();
    // Small buffers, so that the writer waits on the reader from the start.
    sockopt::set_socket_send_buffer_size(&server.sock, 16 * 1024).unwrap();
    sockopt::set_socket_recv_buffer_size(&client.sock, 16 * 1024).unwrap();
    server.set_pace(Some(pace(400, 64 * 1024)));
    let total = 512 * 1024;
    let reader = thread::spawn(move || {
        let mut got = 0;
        let mut buf = vec![0; 16 * 1024];
        while got < total {
            got += client.read(&mut buf).unwrap();
            // Some 800 KiB a second, in pieces: far above the rate, never a window's wait.
            thread::sleep(Duration::from_millis(20));
        }
        got
    });
    server.write_all(&vec![3u8; total]).unwrap();
    server.flush().unwrap();
    assert_eq!(reader.join().unwrap(), total);
}

#[test]
fn a_connection_idle_after_a_transfer_lets_its_buffers_go_and_a_busy_one_keeps_them() {
    use crate::content::{CHUNK, Watch};
    use crate::digest::Digest;
    use crate::socket::Waiting;
    let (client, server, _) = pair();
    let (mut client, mut server) = (Connection::new(client), Connection::new(server));
    let len = 3 * u64::from(CHUNK);
    let sender = thread::spawn(move || {
        let content = vec![7u8; len as usize];
        let watch = Watch::Progress(&mut |_| true);
        client
            .send_content(&mut &content[..], len, &mut Digest::new(), watch)
            .unwrap();
        client
    });
    let sink = &mut io::sink();
    server
        .recv_content(sink, len, &mut Digest::new(), &mut |_| true)
        .unwrap();
    let mut client = sender.join().unwrap();
    assert!(server.chunk.capacity() >= CHUNK as usize);
    assert!(server.stream.get_ref().spare() >= STREAM_FIRST);

    // The next request has begun to arrive: nothing goes.
    client.send(&Frame::new(Kind::Request, ["HELP"])).unwrap();
    let start = Instant::now();
    while !matches!(server.waiting(), Waiting::Byte(_)) {
        assert!(start.elapsed() < DEADLINE, "the request never arrived");
        thread::yield_now();
    }
    server.rest_if_idle();
    assert!(
        server.chunk.capacity() >= CHUNK as usize,
        "let go with a request waiting"
    );
    let header = server.read_header().unwrap();
    assert_eq!(server.read_words(header).unwrap().words, ["HELP"]);

    // Nothing more comes: both go.
    server.rest_if_idle();
    assert_eq!(server.chunk.capacity(), 0);
    assert_eq!(server.stream.get_ref().spare(), 0);
}
