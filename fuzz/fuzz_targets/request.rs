//! The server's request handling, end to end: a real server runs in this process, and each
//! input is a session of requests (any words, so every verb's argument parsing is reached)
//! followed by raw bytes. Nothing may panic (a panic in a client thread aborts the fuzzer) and
//! the server must keep accepting.

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use ferry_core::{Connection, Frame, Kind};
use libfuzzer_sys::fuzz_target;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/file"), vec![7u8; 100_000]).unwrap();
        let mut config = ferry_server::Config::new(dir.join("data"));
        config.idle_timeout = Some(Duration::from_secs(2));
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
    let mut conn = Connection::new(stream.try_clone().unwrap());
    ferry_core::hello::greet(&mut conn, "fuzz", None).expect("greeting accepted");
    let mut bytes = Vec::new();
    for words in requests {
        // SHUTDOWN would stop the server that the next inputs need.
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("SHUTDOWN")) {
            continue;
        }
        let _ = Frame::new(Kind::Request, words).encode(&mut bytes);
    }
    bytes.extend_from_slice(&tail);
    // Write and read at once: a download's content must be read for the server to go on.
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        // The server may close early (a protocol error); that is fine.
        let _ = writer.write_all(&bytes);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut sink = Vec::new();
    let _ = (&stream).read_to_end(&mut sink);
    sending.join().unwrap();
});
