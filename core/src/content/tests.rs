//! The content stream's unit tests, on bytes: round trips, truncation, cancels from either
//! side, digests.

use std::io::Cursor;

use super::*;
use crate::socket::Memory;

fn conn(input: Vec<u8>) -> Connection<Memory> {
    Connection::new(Memory::new(input))
}

/// `content` sent as a stream declared `len` bytes long, going on while `go_on`: how it ended,
/// and what was written.
fn stream(content: &[u8], len: u64, go_on: bool) -> (Result<(), ContentError>, Vec<u8>) {
    let mut c = conn(Vec::new());
    let mut watch = |_| go_on;
    let sent = c.send_content(
        &mut Cursor::new(content),
        len,
        &mut Digest::new(),
        Watch::Progress(&mut watch),
    );
    (sent, c.stream.into_inner().output)
}

/// `size` bytes sent whole: the content, and the stream's bytes.
fn sent(size: usize) -> (Vec<u8>, Vec<u8>) {
    let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let (sent, wire) = stream(&content, size as u64, true);
    sent.unwrap();
    (content, wire)
}

#[test]
fn content_round_trips_across_chunks() {
    for size in [0, 1, CHUNK as usize, CHUNK as usize * 2 + 3] {
        let (content, wire) = sent(size);
        let mut c = conn(wire);
        let mut out = Vec::new();
        let mut seen = 0;
        c.recv_content(&mut out, size as u64, &mut Digest::new(), &mut |n| {
            seen = n;
            true
        })
        .unwrap();
        assert_eq!(out, content);
        assert_eq!(seen, if size == 0 { 0 } else { size as u64 });
    }
}

#[test]
fn truncated_content_is_an_error() {
    let (_, wire) = sent(1000);
    for cut in [0, 3, 5, 500, wire.len() - 1] {
        let mut c = conn(wire[..cut].to_vec());
        let err = c
            .recv_content(&mut Vec::new(), 1000, &mut Digest::new(), &mut |_| true)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ContentError::Wire(WireError::Truncated | WireError::Closed)
            ),
            "cut {cut}: {err:?}"
        );
    }
}

#[test]
fn what_arrived_before_a_cut_is_written_all_the_same() {
    let (content, wire) = sent(1000);
    // Cut in the middle of the one data frame, after its 5-byte header.
    let mut received = Vec::new();
    conn(wire[..505].to_vec())
        .recv_content(&mut received, 1000, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    assert_eq!(received, content[..500]);
}

#[test]
fn each_frame_is_written_whole_and_a_larger_one_in_buffer_sized_writes() {
    /// Records the size of each write.
    struct Sizes(Vec<usize>);
    impl Write for Sizes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // A frame of 5000 bytes, then one above the buffer's size (another sender may cut
    // frames up to the protocol's limit).
    let mut content = Vec::new();
    let mut wire = Vec::new();
    for len in [5000, 2 * RECV_BUF + 5] {
        let part: Vec<u8> = (0..len).map(|i| (i % 249) as u8).collect();
        let header = Header {
            kind: Kind::Data,
            len: len as u32,
        };
        wire.extend_from_slice(&header.encode());
        wire.extend_from_slice(&part);
        content.extend(part);
    }
    let mut digest = Digest::new();
    digest.update(&content);
    Frame::new(Kind::End, digest.words())
        .encode(&mut wire)
        .unwrap();
    let mut sizes = Sizes(Vec::new());
    let mut trickle = Memory::new(wire);
    trickle.max_read = 1000;
    Connection::new(trickle)
        .recv_content(
            &mut sizes,
            content.len() as u64,
            &mut Digest::new(),
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(sizes.0, [5000, RECV_BUF, RECV_BUF, 5]);
}

#[test]
fn content_longer_or_shorter_than_declared_is_invalid() {
    let (_, wire) = sent(1000);
    for declared in [999, 1001] {
        let err = conn(wire.clone())
            .recv_content(&mut Vec::new(), declared, &mut Digest::new(), &mut |_| true)
            .unwrap_err();
        assert!(matches!(err, ContentError::Wire(WireError::Invalid(_))));
    }
}

#[test]
fn a_source_that_ends_early_is_abandoned_not_padded_into_success() {
    let (err, wire) = stream(&[1; 10], 20, true);
    let err = err.unwrap_err();
    assert!(matches!(err, ContentError::Wire(WireError::Remote(_))));
    let err = conn(wire)
        .recv_content(&mut Vec::new(), 20, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    assert!(matches!(err, ContentError::Wire(WireError::Remote(f)) if f.kind == ErrorKind::Io));
}

#[test]
fn cancelling_sends_abort() {
    let (err, wire) = stream(&[1; 10], 10, false);
    let err = err.unwrap_err();
    assert!(matches!(err, ContentError::Cancelled));
    let (frame, _) = Frame::decode(&wire).unwrap();
    assert_eq!(frame.kind, Kind::Abort);
    assert_eq!(frame.words[0], "cancelled");
}

#[test]
fn a_receiver_cancel_sends_abort_and_drains_to_the_end() {
    let (_, mut wire) = sent(CHUNK as usize * 3);
    let mut after = Vec::new();
    Frame::new(Kind::Request, ["LIST"])
        .encode(&mut after)
        .unwrap();
    wire.extend_from_slice(&after);
    let mut c = conn(wire);
    let mut out = Vec::new();
    let err = c
        .recv_content(
            &mut out,
            u64::from(CHUNK) * 3,
            &mut Digest::new(),
            &mut |n| n < u64::from(CHUNK),
        )
        .unwrap_err();
    assert!(matches!(err, ContentError::Cancelled), "{err:?}");
    assert_eq!(
        out.len(),
        CHUNK as usize,
        "nothing written after the cancel"
    );
    assert_eq!(c.recv().unwrap().words, ["LIST"], "in step");
    let (abort, _) = Frame::decode(&c.stream.get_ref().output).unwrap();
    assert_eq!(abort.kind, Kind::Abort);
}

#[test]
fn a_failing_sink_still_drains_the_stream() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (_, mut wire) = sent(5000);
    let mut after = Vec::new();
    Frame::new(Kind::Request, ["LIST"])
        .encode(&mut after)
        .unwrap();
    wire.extend_from_slice(&after);
    let mut c = conn(wire);
    let err = c
        .recv_content(&mut Full, 5000, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    assert!(matches!(err, ContentError::Sink(_)));
    assert_eq!(c.recv().unwrap().words, ["LIST"]);
}

/// The offset of the `Z` frame's digest word (its last 32 bytes) in an encoded stream.
fn digest_at(wire: &[u8]) -> usize {
    wire.len() - 32
}

#[test]
fn the_end_frame_carries_the_digest_of_the_content() {
    let (content, wire) = sent(CHUNK as usize + 10);
    let mut expected = Digest::new();
    expected.update(&content);
    let (end, _) = Frame::decode(&wire[wire.len() - (HEADER_LEN + 2 + 8 + 2 + 32)..]).unwrap();
    assert_eq!(end.kind, Kind::End);
    assert_eq!(end.words, expected.words());
}

#[test]
fn a_corrupted_byte_is_a_mismatch_naming_both_digests() {
    let (content, mut wire) = sent(5000);
    wire[HEADER_LEN + 1234] ^= 0x20;
    let mut out = Vec::new();
    let err = conn(wire)
        .recv_content(&mut out, 5000, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    let ContentError::Mismatch(m) = &err else {
        panic!("{err:?}")
    };
    let mut good = Digest::new();
    good.update(&content);
    assert_eq!(m.expected, good.hex());
    assert_ne!(m.actual, m.expected);
    let text = err.to_string();
    assert!(text.starts_with("digest mismatch"), "{text}");
    assert!(
        text.contains(&m.expected) && text.contains(&m.actual),
        "{text}"
    );
}

#[test]
fn a_wrong_or_missing_digest_is_refused() {
    let (_, wire) = sent(100);
    let at = digest_at(&wire);
    let mut wrong = wire.clone();
    wrong[at] = if wrong[at] == b'0' { b'1' } else { b'0' };
    let err = conn(wrong)
        .recv_content(&mut Vec::new(), 100, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    assert!(matches!(err, ContentError::Mismatch(_)), "{err:?}");
    // The same content ended by a bare `Z`, as a version-1 sender would.
    let mut bare = wire[..HEADER_LEN + 100].to_vec();
    Frame::new(Kind::End, [""; 0]).encode(&mut bare).unwrap();
    let err = conn(bare)
        .recv_content(&mut Vec::new(), 100, &mut Digest::new(), &mut |_| true)
        .unwrap_err();
    assert!(
        matches!(err, ContentError::Wire(WireError::Invalid(_))),
        "{err:?}"
    );
}

#[test]
fn a_seeded_digest_covers_the_whole_file_when_resuming() {
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let mut buf = [0; 64];
    // The sender seeds its digest with the 1000 bytes the receiver already has.
    let mut seed = Digest::of_prefix(&mut &content[..], 1000, &mut buf).unwrap();
    let mut c = conn(Vec::new());
    c.send_content(
        &mut &content[1000..],
        2000,
        &mut seed,
        Watch::Progress(&mut |_| true),
    )
    .unwrap();
    let wire = c.stream.into_inner().output;
    let mut out = content[..1000].to_vec();
    let mut mine = Digest::of_prefix(&mut &out[..], 1000, &mut buf).unwrap();
    conn(wire.clone())
        .recv_content(&mut out, 2000, &mut mine, &mut |_| true)
        .unwrap();
    assert_eq!(out, content);
    // A receiver whose kept part differs finds out at the end.
    let mut other = Digest::of_prefix(&mut &[0u8; 1000][..], 1000, &mut buf).unwrap();
    let err = conn(wire)
        .recv_content(&mut Vec::new(), 2000, &mut other, &mut |_| true)
        .unwrap_err();
    assert!(matches!(err, ContentError::Mismatch(_)));
}

#[test]
fn a_sender_watching_for_the_peer_stops_at_its_x_but_not_at_a_request() {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut sender = Connection::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut peer = Connection::new(peer);
    // A request sent ahead is waiting: the stream goes on to its end.
    peer.send(&Frame::new(Kind::Chained, ["STAT", "x"]))
        .unwrap();
    crate::socket::tests::wait_for_input(&mut sender);
    let content = vec![5u8; 3000];
    let send = |sender: &mut Connection<TcpStream>| {
        sender.send_content(
            &mut &content[..],
            3000,
            &mut Digest::new(),
            Watch::PeerAbort,
        )
    };
    send(&mut sender).unwrap();
    let mut got = Vec::new();
    peer.recv_content(&mut got, 3000, &mut Digest::new(), &mut |_| true)
        .unwrap();
    assert_eq!(got, content);
    assert_eq!(sender.recv().unwrap().words, ["STAT", "x"]);
    // The receiver's X: the sender stops before the first chunk and ends with its own X.
    let failure = Failure::new(ErrorKind::Cancelled, "transfer cancelled by receiver");
    peer.send(&Frame::failure(Kind::Abort, &failure)).unwrap();
    crate::socket::tests::wait_for_input(&mut sender);
    let err = send(&mut sender).unwrap_err();
    assert!(matches!(err, ContentError::Cancelled), "{err:?}");
    let ended = peer.recv().unwrap();
    assert_eq!(
        (ended.kind, ended.words[0].as_str()),
        (Kind::Abort, "cancelled")
    );
}

#[test]
fn a_small_content_never_takes_a_whole_chunk_of_memory() {
    let (_, wire) = sent(4096);
    let mut receiver = conn(wire);
    receiver
        .recv_content(&mut Vec::new(), 4096, &mut Digest::new(), &mut |_| true)
        .unwrap();
    assert!(
        receiver.chunk.capacity() < 64 * 1024,
        "{}",
        receiver.chunk.capacity()
    );
    let mut sender = conn(Vec::new());
    sender
        .queue_content(&mut &[7u8; 4096][..], 4096, &mut Digest::new())
        .unwrap();
    assert!(
        sender.chunk.capacity() < 64 * 1024,
        "{}",
        sender.chunk.capacity()
    );
    // A large one then grows the buffer to a chunk, and no further.
    let (_, wire) = sent(CHUNK as usize * 2);
    let mut receiver = conn(wire);
    receiver
        .recv_content(
            &mut Vec::new(),
            u64::from(CHUNK) * 2,
            &mut Digest::new(),
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(receiver.chunk.len(), RECV_BUF);
}

/// A server's connection whose client sent `requests` ahead (chained), each read in turn.
fn server_with(requests: &[&str]) -> Connection<Memory> {
    let mut input = Vec::new();
    for name in requests {
        let frame = Frame::new(Kind::Chained, ["DOWNLOAD", name]);
        frame.encode(&mut input).unwrap();
    }
    conn(input)
}

/// Sends `size` bytes as a server does (watching for the client's cancel).
fn serve(c: &mut Connection<Memory>, size: usize) {
    let content = vec![7u8; size];
    let watch = Watch::PeerAbort;
    c.send_content(&mut &content[..], size as u64, &mut Digest::new(), watch)
        .unwrap();
}

#[test]
fn a_servers_reply_waits_while_a_chained_request_is_whole_and_leaves_with_the_next() {
    let mut c = server_with(&["a", "b", "c"]);
    c.recv().unwrap();
    serve(&mut c, 100);
    // `b` has arrived whole (`c`'s header follows it): the reply waits for `b`'s.
    assert!(c.stream.get_ref().output.is_empty());
    let held = c.unwritten();
    c.recv().unwrap();
    serve(&mut c, 100);
    // Nothing follows `c`, so it may not be whole: both replies are written.
    assert_eq!(c.unwritten(), 0);
    assert_eq!(c.stream.get_ref().output.len(), 2 * held);
    // A big reply is not held back, whatever waits.
    let mut c = server_with(&["a", "b", "c"]);
    c.recv().unwrap();
    serve(&mut c, HOLD_REPLIES);
    assert_eq!(c.unwritten(), 0);
}

#[test]
fn a_reply_is_written_when_what_waits_is_not_a_chained_request() {
    // The client's cancel crossing the end of the stream, then a request.
    let mut input = Vec::new();
    let abort = Failure::new(ErrorKind::Cancelled, "cancelled");
    Frame::failure(Kind::Abort, &abort)
        .encode(&mut input)
        .unwrap();
    Frame::new(Kind::Chained, ["DOWNLOAD", "b"])
        .encode(&mut input)
        .unwrap();
    let mut c = conn(input);
    serve(&mut c, 100);
    assert_eq!(c.unwritten(), 0);
    // Nor is one held on the client's side.
    let mut c = server_with(&["a", "b", "c"]);
    c.recv().unwrap();
    let mut watch = |_| true;
    let content = [1u8; 10];
    c.send_content(
        &mut &content[..],
        10,
        &mut Digest::new(),
        Watch::Progress(&mut watch),
    )
    .unwrap();
    assert_eq!(c.unwritten(), 0);
}
