//! The server's request handling, end to end: a real server runs in this process, and each
//! input is a session of requests (any words, so every verb's argument parsing is reached)
//! followed by raw bytes. Nothing may panic (a panic in a client thread aborts the fuzzer) and
//! the server must keep accepting.

#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_core::socket::Waiting;
use ferry_core::{Frame, Kind, Transport};
use libfuzzer_sys::fuzz_target;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/file"), vec![7u8; 100_000]).unwrap();
        let mut config = ferry_server::Config::new(dir.join("data"));
        config.identity = Some(dir.join("identity.pem"));
        config.idle_timeout = Some(Duration::from_secs(1));
        config.handshake_timeout = Duration::from_secs(2);
        config.max_file_size = Some(1 << 20);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = ferry_server::Shutdown::new();
        std::thread::spawn(move || {
            ferry_server::run(listener, config, ferry_commands::registry(), shutdown).unwrap()
        });
        addr
    })
}

fuzz_target!(|input: (Vec<Vec<String>>, Vec<u8>)| {
    let (requests, tail) = input;
    let stream = TcpStream::connect(server()).expect("the server still accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut conn, _) = ferry_core::hello::connect_trusting(stream, "fuzz", None, deadline)
        .expect("greeting accepted");
    let mut bytes = Vec::new();
    for words in requests {
        // SHUTDOWN would stop the server that the next inputs need.
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("SHUTDOWN")) {
            continue;
        }
        let _ = Frame::new(Kind::Request, words).encode(&mut bytes);
    }
    bytes.extend_from_slice(&tail);
    // Ends the session, if what came before left the server in step.
    let _ = Frame::new(Kind::Request, ["LOGOUT"]).encode(&mut bytes);
    // Written and read in turn, never blocking on a write: a download's content must be read
    // for the server to go on reading. The server may close early (a protocol error).
    let transport = conn.stream_mut();
    let mut sent = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        if sent < bytes.len() {
            match transport.write_ready(&bytes[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        } else if transport.flush().is_err() {
            break;
        }
        match transport.waiting() {
            Waiting::Closed => break,
            Waiting::Byte(_) => {
                if matches!(transport.read(&mut buf), Ok(0) | Err(_)) {
                    break;
                }
            }
            Waiting::Nothing if sent == bytes.len() => {
                // All sent: wait for the rest of the replies, or the close.
                if matches!(transport.read(&mut buf), Ok(0) | Err(_)) {
                    break;
                }
            }
            Waiting::Nothing => std::thread::yield_now(),
        }
    }
});
