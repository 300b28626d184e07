//! The frame codec and a connection's reading, on arbitrary bytes: nothing may panic, and
//! whatever decodes re-encodes to the same bytes.

#![no_main]

use std::io::{self, Cursor, Read, Write};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use ferry_core::frame::{Frame, Header, decode_words};
use ferry_core::socket::Waiting;
use ferry_core::{Connection, Digest, Transport};
use libfuzzer_sys::fuzz_target;

/// Reads the fuzz input; swallows what the connection writes (a cancel's `X`).
struct Peer<'a>(Cursor<&'a [u8]>);

impl Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Peer<'_> {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Err(io::ErrorKind::NotConnected.into())
    }
    fn waiting(&mut self) -> Waiting {
        Waiting::Nothing
    }
    fn write_ready(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let _ = decode_words(data);
    if let Ok((frame, used)) = Frame::decode(data) {
        let mut again = Vec::new();
        frame.encode(&mut again).expect("a decoded frame re-encodes");
        assert_eq!(&again[..], &data[..used]);
    }
    // The same bytes as a peer's stream: control frames until one fails...
    let mut conn = Connection::new(Peer(Cursor::new(data)));
    while conn.recv().is_ok() {}
    // ...and as a content stream of a length taken from the input, cancelled half way.
    if let [a, b, rest @ ..] = data {
        let len = u64::from(u16::from_be_bytes([*a, *b]));
        let mut conn = Connection::new(Peer(Cursor::new(rest)));
        let mut sink = Vec::new();
        let _ = conn.recv_content(&mut sink, len, &mut Digest::new(), &mut |n| n < len / 2);
        assert!(sink.len() as u64 <= len);
    }
});
