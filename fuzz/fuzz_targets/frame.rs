//! The frame codec and a connection's reading, on arbitrary bytes: nothing may panic, and
//! whatever decodes re-encodes to the same bytes.

#![no_main]

use ferry_core::frame::{Frame, Header, decode_words};
use ferry_core::socket::Memory;
use ferry_core::{Connection, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let _ = decode_words(data);
    if let Ok((frame, used)) = Frame::decode(data) {
        let mut again = Vec::new();
        frame.encode(&mut again).expect("a decoded frame re-encodes");
        assert_eq!(&again[..], &data[..used]);
    }
    // The same bytes as a peer's stream: control frames until one fails...
    let mut conn = Connection::new(Memory::new(data.to_vec()));
    while conn.recv().is_ok() {}
    // ...and as a content stream of a length taken from the input, cancelled half way.
    if let [a, b, rest @ ..] = data {
        let len = u64::from(u16::from_be_bytes([*a, *b]));
        let mut conn = Connection::new(Memory::new(rest.to_vec()));
        let mut sink = Vec::new();
        let _ = conn.recv_content(&mut sink, len, &mut Digest::new(), &mut |n| n < len / 2);
        assert!(sink.len() as u64 <= len);
    }
});
