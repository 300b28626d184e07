//! The frame codec and a connection's reading, on arbitrary bytes: nothing may panic, and
//! whatever decodes re-encodes to the same bytes.

#![no_main]

use std::io::{self, Cursor, Read, Write};

use ferry_core::frame::{Frame, Header, decode_words};
use ferry_core::{Connection, Digest};
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
