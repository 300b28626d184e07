//! [`Connection`]: the control exchange, frames queued, written and read over a transport.
//!
//! Control frames are queued and leave together (a request with its content, a reply with the
//! start of a stream), so that a small exchange costs one write; a pipelining client also marks
//! how much it has sent, to write exactly up to a request before reading its reply. Content
//! streams are in [`crate::content`], over the same connection.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use crate::error::{Failure, WireError};
use crate::frame::{self, Frame, HEADER_LEN, Header, Kind};
use crate::pace::Pace;
use crate::socket::{Timed, Transport, Waiting};

/// The buffer control frames are read through.
const READ_BUF: usize = 16 * 1024;
/// Queued control frames are written once this many bytes are waiting.
pub(crate) const QUEUE_FLUSH: usize = 64 * 1024;
/// What a connection waiting for its next request may keep of the buffers a transfer grew
/// (content, read-ahead); past it they go once the wait lasts [`REST_AFTER`].
const KEEP_IDLE: usize = 16 * 1024;
/// How long the next request may take to begin before an idle connection lets its buffers
/// go: requests that follow each other keep them.
const REST_AFTER: Duration = Duration::from_millis(100);

/// One end of a Ferry connection, over a boxed [`Transport`] unless said otherwise.
pub struct Connection<S: Transport = Box<dyn Transport>> {
    pub(crate) stream: BufReader<S>,
    pub(crate) out: Vec<u8>,
    /// The buffer content passes through, in either direction; allocated on first use.
    pub(crate) chunk: Vec<u8>,
    /// Bytes written to the stream so far (not counting what is still queued).
    pub(crate) written: u64,
    /// The pace an exchange must keep once begun (see [`Connection::exchange`]).
    pace: Option<Pace>,
}

impl Connection {
    /// A connection over any transport, boxed, as the contexts verbs run in hold it.
    pub fn boxed(transport: impl Transport + 'static) -> Connection {
        Connection::new(Box::new(transport))
    }
}

impl<S: Transport> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            // Enough for a burst of small frames. A transport that cannot read into memory
            // left uninitialised (TLS) has this zeroed, so resident, on its first read: a larger
            // buffer would cost every idle connection more. Content bypasses it.
            stream: BufReader::with_capacity(READ_BUF, stream),
            out: Vec::new(),
            chunk: Vec::new(),
            written: 0,
            pace: None,
        }
    }

    /// The least progress each exchange must make (a server's, of its clients); `None`, the
    /// default, holds exchanges to the transport's plain timeouts only.
    pub fn set_pace(&mut self, pace: Option<Pace>) {
        self.pace = pace;
    }

    /// An exchange begins (the first frame of a request has arrived) or ends (its reply has
    /// been sent). Between the two, reading the rest of the request, its content, and writing
    /// the reply must keep the pace, with a fresh budget each time: the peer cannot dribble
    /// them out, nor leave a reply unread, for longer than its window. Between exchanges the
    /// transport's plain timeouts apply again (an idle session may sit silent for its
    /// timeout).
    pub fn exchange(&mut self, begun: bool) {
        if let Some(pace) = self.pace {
            self.stream.get_mut().set_pace(begun.then_some(pace));
        }
    }

    /// The underlying stream, for its options and addresses.
    pub fn stream(&self) -> &S {
        self.stream.get_ref()
    }

    /// The underlying stream, to write bytes that are not frames (tests that play a broken
    /// peer). Whatever is queued must be flushed first, or the bytes overtake it.
    pub fn stream_mut(&mut self) -> &mut S {
        self.stream.get_mut()
    }

    /// The stream back, when nothing was read past the last frame and nothing is queued: the
    /// greeting in clear is over, and TLS takes the stream next.
    pub fn into_inner(self) -> Result<S, WireError> {
        if !self.stream.buffer().is_empty() || !self.out.is_empty() {
            return Err(WireError::Invalid("bytes after the greeting".into()));
        }
        Ok(self.stream.into_inner())
    }

    /// Queues a control frame; it is written by [`Connection::flush`] or once enough is queued.
    pub fn queue(&mut self, frame: &Frame) -> Result<(), WireError> {
        frame.encode(&mut self.out)?;
        if self.out.len() >= QUEUE_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every queued frame.
    pub fn flush(&mut self) -> Result<(), WireError> {
        self.flush_to(self.sent())
    }

    /// Bytes sent so far, counting those still queued: after a request is queued, the mark
    /// that [`Connection::flush_to`] takes to make sure all of it has left.
    pub fn sent(&self) -> u64 {
        self.written + self.out.len() as u64
    }

    /// Bytes queued and not yet written.
    pub fn unwritten(&self) -> usize {
        self.out.len()
    }

    /// Writes what is queued up to the mark `sent` (from [`Connection::sent`]), blocking as
    /// needed, and leaves the rest queued. What the transport still holds of earlier writes
    /// (the end of a record, for TLS) goes out too.
    pub fn flush_to(&mut self, sent: u64) -> Result<(), WireError> {
        let n = (sent.saturating_sub(self.written) as usize).min(self.out.len());
        if n > 0 {
            self.stream.get_mut().write_all(&self.out[..n])?;
            self.written += n as u64;
            self.out.drain(..n);
        }
        self.stream.get_mut().flush()?;
        Ok(())
    }

    /// Writes as much of the queue as the transport takes without blocking, and keeps the
    /// rest.
    ///
    /// A pipelining client uses this to send requests ahead: it must never block on a write
    /// while replies it has not read may be filling the other direction.
    pub fn flush_ready(&mut self) -> Result<(), WireError> {
        let mut done = 0;
        while done < self.out.len() {
            match self.stream.get_mut().write_ready(&self.out[done..])? {
                0 => break,
                n => done += n,
            }
        }
        self.written += done as u64;
        self.out.drain(..done);
        Ok(())
    }

    /// Sends one control frame now.
    pub fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.queue(frame)?;
        self.flush()
    }

    /// Sends an `E` frame for `failure`.
    pub fn send_failure(&mut self, failure: &Failure) -> Result<(), WireError> {
        self.send(&Frame::failure(Kind::Error, failure))
    }

    /// What the peer has sent and this side has not read yet, without blocking: what is
    /// buffered comes first, then what waits in the transport.
    pub fn waiting(&mut self) -> Waiting {
        match self.stream.buffer().first() {
            Some(&byte) => Waiting::Byte(byte),
            None => self.stream.get_mut().waiting(),
        }
    }

    /// True when what waits to be read is an `X` frame (a receiver's cancel), or the
    /// connection has closed; a request sent ahead by a pipelining client is not a cancel.
    pub fn abort_waiting(&mut self) -> bool {
        matches!(self.waiting(), Waiting::Closed | Waiting::Byte(b'X'))
    }

    /// True when the next request, and any content sent with it, has arrived whole, so that
    /// reading it cannot wait on the peer (see [`frame::whole_request`]). Reads what the
    /// transport holds when nothing is buffered; never blocks on a plain socket.
    pub fn request_waiting(&mut self) -> bool {
        if self.stream.buffer().is_empty()
            && (!matches!(self.waiting(), Waiting::Byte(_)) || self.stream.fill_buf().is_err())
        {
            return false;
        }
        frame::whole_request(self.stream.buffer())
    }

    /// Before waiting for the next request: when nothing of it has arrived within
    /// [`REST_AFTER`], lets go of what a transfer grew past [`KEEP_IDLE`] (the content buffer,
    /// the transport's read-ahead). A session that moved a big file and then sat idle held
    /// about 1.3 MiB until its end (docs/PERFORMANCE.md); requests that follow each other
    /// closely keep their buffers, and a connection holding little never waits here. (The
    /// idle timeout starts after this wait, so such a session may sit silent 100 ms longer.)
    pub(crate) fn rest_if_idle(&mut self) {
        let held = self.chunk.capacity() + self.stream.get_ref().spare();
        if held <= KEEP_IDLE || !matches!(self.waiting(), Waiting::Nothing) {
            return;
        }
        let Some(fd) = self.stream.get_ref().pollable() else {
            return;
        };
        use rustix::event::{PollFd, PollFlags, poll};
        let wait = crate::socket::timespec(REST_AFTER);
        // Readable (or closed) in time: the next request is on its way. A failed or
        // interrupted wait changes nothing.
        if poll(&mut [PollFd::new(&fd, PollFlags::IN)], Some(&wait)) == Ok(0) {
            self.chunk = Vec::new();
            self.stream.get_mut().rest();
        }
    }

    /// Waits for the first byte of the next frame; a clean end of input is
    /// [`WireError::Closed`].
    pub(crate) fn arrival(&mut self) -> Result<(), WireError> {
        if self.stream.fill_buf()?.is_empty() {
            return Err(WireError::Closed);
        }
        Ok(())
    }

    /// Reads a frame header; a clean end of input before it is [`WireError::Closed`].
    pub fn read_header(&mut self) -> Result<Header, WireError> {
        self.arrival()?;
        let mut bytes = [0; HEADER_LEN];
        self.stream.read_exact(&mut bytes)?;
        Header::parse(&bytes)
    }

    /// Reads one control frame; a data frame here is a protocol error.
    pub fn recv(&mut self) -> Result<Frame, WireError> {
        let header = self.read_header()?;
        if header.kind == Kind::Data {
            return Err(WireError::Invalid("unexpected data frame".into()));
        }
        self.read_words(header)
    }

    /// Reads one control frame, all of it before `deadline`: before each read the read timeout
    /// is set to the time left, so that a peer that sends a frame a byte at a time cannot
    /// stretch it. Running out of time is an I/O error of kind `TimedOut`; the read timeout is
    /// left as it was last set.
    pub fn recv_before(&mut self, deadline: Instant) -> Result<Frame, WireError> {
        self.stream.get_mut().set_deadline(Some(deadline));
        let frame = self.recv_timed(deadline);
        self.stream.get_mut().set_deadline(None);
        frame
    }

    fn recv_timed(&mut self, deadline: Instant) -> Result<Frame, WireError> {
        let mut timed = Timed {
            stream: &mut self.stream,
            deadline,
        };
        let mut bytes = [0; HEADER_LEN];
        match timed.read(&mut bytes)? {
            0 => return Err(WireError::Closed),
            n => timed.read_exact(&mut bytes[n..])?,
        }
        let header = Header::parse(&bytes)?;
        if header.kind == Kind::Data {
            return Err(WireError::Invalid("unexpected data frame".into()));
        }
        let mut payload = vec![0; header.len as usize];
        timed.read_exact(&mut payload)?;
        Ok(Frame {
            kind: header.kind,
            words: frame::decode_words(&payload)?,
        })
    }

    /// Reads the payload of a control frame whose header was read by [`Connection::read_header`].
    pub fn read_words(&mut self, header: Header) -> Result<Frame, WireError> {
        // The length was bounded by `Header::parse`, so this allocation is bounded too.
        let mut payload = vec![0; header.len as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(Frame {
            kind: header.kind,
            words: frame::decode_words(&payload)?,
        })
    }

    /// Reads a reply: the words of an `O` frame, or the failure of an `E` frame.
    pub fn expect_ok(&mut self) -> Result<Vec<String>, WireError> {
        let frame = self.recv()?;
        match frame.kind {
            Kind::Ok => Ok(frame.words),
            Kind::Error => Err(WireError::Remote(Failure::from_words(&frame.words))),
            other => Err(WireError::Invalid(format!(
                "expected a reply, got {other:?}"
            ))),
        }
    }

    /// Sends a request and reads its reply.
    pub fn call<W: Into<String>>(
        &mut self,
        words: impl IntoIterator<Item = W>,
    ) -> Result<Vec<String>, WireError> {
        self.send(&Frame::new(Kind::Request, words))?;
        self.expect_ok()
    }

    /// Reads the next item of a listing: `Some(words)` for `I`, `None` at `Z`.
    pub fn next_item(&mut self) -> Result<Option<Vec<String>>, WireError> {
        let frame = self.recv()?;
        match frame.kind {
            Kind::Item => Ok(Some(frame.words)),
            Kind::End => Ok(None),
            Kind::Error | Kind::Abort => Err(WireError::Remote(Failure::from_words(&frame.words))),
            other => Err(WireError::Invalid(format!(
                "expected a listing item, got {other:?}"
            ))),
        }
    }

    /// Sends `frames` and ends the listing with `Z`: an `O` with the count, an `I` per item.
    pub fn send_listing<I>(&mut self, items: I) -> Result<(), WireError>
    where
        I: IntoIterator<Item = Frame>,
        I::IntoIter: ExactSizeIterator,
    {
        let items = items.into_iter();
        self.queue(&Frame::new(Kind::Ok, [items.len().to_string()]))?;
        for item in items {
            self.queue(&item)?;
        }
        self.send(&Frame::new(Kind::End, [""; 0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::digest::Digest;
    use crate::socket::Memory;

    fn conn(input: Vec<u8>) -> Connection<Memory> {
        Connection::new(Memory::new(input))
    }

    #[test]
    fn clean_close_between_frames_is_closed() {
        assert!(matches!(conn(Vec::new()).recv(), Err(WireError::Closed)));
        assert!(matches!(
            conn(b"Q\0".to_vec()).recv(),
            Err(WireError::Truncated)
        ));
    }

    #[test]
    fn error_replies_become_remote_failures_with_escaped_text() {
        let mut wire = Vec::new();
        Frame::new(Kind::Error, ["not-found", "no such file '\x1b[2J'"])
            .encode(&mut wire)
            .unwrap();
        match conn(wire).expect_ok() {
            Err(WireError::Remote(f)) => {
                assert_eq!(f.kind, ErrorKind::NotFound);
                assert!(!f.message.contains('\x1b'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_listing_counts_its_items_and_ends_with_z() {
        let mut c = conn(Vec::new());
        let items = ["a", "b"].map(|n| Frame::new(Kind::Item, [n]));
        c.send_listing(items).unwrap();
        let wire = c.stream.into_inner().output;
        let mut back = conn(wire);
        assert_eq!(back.expect_ok().unwrap(), ["2"]);
        assert_eq!(back.next_item().unwrap().unwrap(), ["a"]);
        assert_eq!(back.next_item().unwrap().unwrap(), ["b"]);
        assert_eq!(back.next_item().unwrap(), None);
    }

    #[test]
    fn flush_ready_never_blocks_and_flush_to_writes_only_up_to_its_mark() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // A write that blocks, which flush_ready must never do, fails the test rather than
        // hanging it.
        stream
            .set_write_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut conn = Connection::new(stream);
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        // Requests with content, sent ahead until the socket takes no more: nobody reads yet.
        let content = vec![7u8; 16 * 1024];
        let mut marks = Vec::new();
        while conn.unwritten() == 0 {
            assert!(marks.len() < 10_000, "the socket never filled");
            conn.queue(&Frame::new(
                Kind::Chained,
                ["UPLOAD", "x", "16384", "eager"],
            ))
            .unwrap();
            conn.queue_content(&mut &content[..], 16384, &mut Digest::new())
                .unwrap();
            marks.push(conn.sent());
            conn.flush_ready().unwrap();
        }
        let written = conn.sent() - conn.unwritten() as u64;
        let last = *marks.last().unwrap();
        assert!(written < last);
        // Writing up to the first request not yet whole writes that much and no more.
        let mark = *marks.iter().find(|&&m| m > written).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0; mark as usize];
            peer.read_exact(&mut got).unwrap();
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).unwrap();
            got.len() + rest.len()
        });
        conn.flush_to(mark).unwrap();
        assert_eq!(conn.sent() - conn.unwritten() as u64, mark);
        assert_eq!(conn.sent(), last, "the rest is still queued");
        conn.flush().unwrap();
        assert_eq!(conn.unwritten(), 0);
        drop(conn);
        assert_eq!(reader.join().unwrap() as u64, last);
    }
}
