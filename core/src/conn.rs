//! [`Connection`]: frames and content streams over any `Read + Write`.
//!
//! File content travels as `D` frames of at most [`CHUNK`] bytes, then `Z` (complete, carrying
//! the [`Digest`] of the content) or `X` (abandoned). Both sides hash the content as it passes,
//! through one reused buffer each, so memory stays constant whatever the file size; the
//! receiver reports a [`Mismatch`] instead of success when the digests differ.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::digest::{Digest, Mismatch};
use crate::error::{ErrorKind, Failure, WireError};
use crate::frame::{self, Frame, HEADER_LEN, Header, Kind};

/// Size of the `D` frames a sender emits.
pub const CHUNK: u32 = 1024 * 1024;
/// Size of the read buffer used while receiving content.
const RECV_BUF: usize = CHUNK as usize;
/// Queued control frames are written once this many bytes are waiting.
const QUEUE_FLUSH: usize = 64 * 1024;

/// What can stop a content stream.
#[derive(Debug)]
pub enum ContentError {
    /// The connection failed, or the peer sent something invalid or abandoned the stream.
    Wire(WireError),
    /// Writing the received content failed; the rest of the stream was read and dropped, so
    /// the connection is still usable.
    Sink(io::Error),
    /// The local side cancelled; an `X` frame told the peer.
    Cancelled,
    /// The whole stream arrived, but its digest is not the one the sender computed.
    Mismatch(Mismatch),
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Wire(e) => e.fmt(f),
            ContentError::Sink(_) => f.write_str("writing failed"),
            ContentError::Cancelled => f.write_str("cancelled"),
            ContentError::Mismatch(m) => m.fmt(f),
        }
    }
}

// No `source`: each variant's text already includes its cause's, and a chain would repeat it.
impl std::error::Error for ContentError {}

impl From<WireError> for ContentError {
    fn from(e: WireError) -> ContentError {
        ContentError::Wire(e)
    }
}

impl From<io::Error> for ContentError {
    fn from(e: io::Error) -> ContentError {
        ContentError::Wire(e.into())
    }
}

/// One end of a Ferry connection.
pub struct Connection<S: Read + Write> {
    stream: BufReader<S>,
    out: Vec<u8>,
    /// The buffer content passes through, in either direction; allocated on first use.
    chunk: Vec<u8>,
    /// Bytes written to the stream so far (not counting what is still queued).
    written: u64,
}

impl<S: Read + Write> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            chunk: Vec::new(),
            written: 0,
        }
    }

    /// The underlying stream, for socket options and addresses.
    pub fn stream(&self) -> &S {
        self.stream.get_ref()
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
        if !self.out.is_empty() {
            self.flush_to(self.sent())?;
            self.stream.get_mut().flush()?;
        }
        Ok(())
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
    /// needed, and leaves the rest queued.
    pub fn flush_to(&mut self, sent: u64) -> Result<(), WireError> {
        let n = (sent.saturating_sub(self.written) as usize).min(self.out.len());
        if n > 0 {
            self.stream.get_mut().write_all(&self.out[..n])?;
            self.written += n as u64;
            self.out.drain(..n);
        }
        Ok(())
    }

    /// Bytes received and buffered but not yet read: the start of whatever the peer sent next.
    pub fn buffered(&self) -> &[u8] {
        self.stream.buffer()
    }

    /// Sends one control frame now.
    pub fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.queue(frame)?;
        self.flush()
    }

    /// Sends an `E` frame for `failure`.
    pub fn send_failure(&mut self, failure: &Failure) -> Result<(), WireError> {
        self.send(&failure_frame(Kind::Error, failure))
    }

    /// Reads a frame header; a clean end of input before it is [`WireError::Closed`].
    pub fn read_header(&mut self) -> Result<Header, WireError> {
        if self.stream.fill_buf()?.is_empty() {
            return Err(WireError::Closed);
        }
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
            Kind::Error => Err(WireError::Remote(failure_from_words(&frame.words))),
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
            Kind::Error | Kind::Abort => Err(WireError::Remote(failure_from_words(&frame.words))),
            other => Err(WireError::Invalid(format!(
                "expected a listing item, got {other:?}"
            ))),
        }
    }

    /// Streams exactly `len` bytes of `src` as `D` frames, then `Z` with the digest.
    ///
    /// `digest` holds what came before in the file (nothing, unless resuming) and is updated
    /// with every byte sent, so the `Z` frame covers the whole file. `progress` is called with
    /// the bytes sent so far before each chunk; returning false cancels (an `X` frame tells the
    /// peer). A receiver that wants to cancel sends `X`, which a sender notices with
    /// [`abort_waiting`] in its `progress`. If `src` ends early, the promised chunk is padded
    /// and the stream abandoned with `X`, so the peer never takes a short file for a whole one.
    pub fn send_content<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(), ContentError> {
        // Header and data leave in one write, so a chunk is never split into a tiny segment; a
        // small file leaves with the frames queued before it and its `Z` in a single write.
        self.queue_content(src, len, digest, progress)?;
        Ok(self.flush()?)
    }

    /// [`Connection::send_content`], except that the `Z` frame is left queued: a content of a
    /// few KiB after a queued request then stays queued whole, for the caller to flush.
    pub fn queue_content<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(), ContentError> {
        let mut buf = std::mem::take(&mut self.chunk);
        buf.resize(HEADER_LEN + CHUNK as usize, 0);
        let sent = self.send_chunks(src, len, digest, progress, &mut buf);
        self.chunk = buf;
        sent
    }

    fn send_chunks<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
        progress: &mut dyn FnMut(u64) -> bool,
        buf: &mut [u8],
    ) -> Result<(), ContentError> {
        let mut sent = 0u64;
        while sent < len {
            if !progress(sent) {
                let failure = Failure::new(ErrorKind::Cancelled, "transfer cancelled by sender");
                self.send(&failure_frame(Kind::Abort, &failure))?;
                return Err(ContentError::Cancelled);
            }
            let want = (len - sent).min(u64::from(CHUNK)) as u32;
            let frame = &mut buf[..HEADER_LEN + want as usize];
            let header = Header {
                kind: Kind::Data,
                len: want,
            };
            frame[..HEADER_LEN].copy_from_slice(&header.encode());
            let got = read_full(src, &mut frame[HEADER_LEN..])?;
            if got < want as usize {
                frame[HEADER_LEN + got..].fill(0);
                self.write_raw(frame)?;
                let failure = Failure::new(ErrorKind::Io, "the file shrank while being sent");
                self.send(&failure_frame(Kind::Abort, &failure))?;
                return Err(ContentError::Wire(WireError::Remote(failure)));
            }
            digest.update(&frame[HEADER_LEN..]);
            self.write_raw(frame)?;
            sent += u64::from(want);
        }
        progress(sent);
        self.queue(&Frame::new(Kind::End, digest.words()))?;
        Ok(())
    }

    /// Writes encoded frame bytes after whatever is queued: a small frame joins the queue (one
    /// write for request, content and end), a large one goes out directly after it.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.out.len() + bytes.len() <= QUEUE_FLUSH {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush()?;
        self.stream.get_mut().write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Reads and drops a content stream whose first header was already read: `D` frames up
    /// to the `Z` or `X` that ends it (a request that is not run still has to be read past).
    pub fn skip_content(&mut self, first: Header) -> Result<(), WireError> {
        let mut header = first;
        loop {
            match header.kind {
                Kind::Data => {
                    let len = u64::from(header.len);
                    let copied = io::copy(&mut (&mut self.stream).take(len), &mut io::sink())?;
                    if copied < len {
                        return Err(WireError::Truncated);
                    }
                }
                Kind::End | Kind::Abort => return self.read_words(header).map(drop),
                other => {
                    return Err(WireError::Invalid(format!(
                        "unexpected {other:?} frame in content"
                    )));
                }
            }
            header = self.read_header()?;
        }
    }

    /// Receives a content stream of exactly `len` bytes into `dst`, and checks its digest.
    ///
    /// `digest` holds what came before in the file (nothing, unless resuming) and is updated
    /// with every byte received; when the `Z` frame's digest differs, the result is
    /// [`ContentError::Mismatch`] and `dst` must not be trusted. `progress` is called with the
    /// bytes received so far; returning false cancels: an `X` frame asks the sender to stop,
    /// and what it had already sent is read and dropped until its `X` (or `Z`, if it finished
    /// first), so the connection stays in step. Likewise, if writing to `dst` fails, the rest
    /// of the stream is read and dropped.
    pub fn recv_content<W: Write + ?Sized>(
        &mut self,
        dst: &mut W,
        len: u64,
        digest: &mut Digest,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(), ContentError> {
        if self.chunk.len() < RECV_BUF {
            self.chunk.resize(RECV_BUF, 0);
        }
        let size = len;
        let mut received = 0u64;
        let mut sink_error = None;
        let mut cancelled = false;
        loop {
            let header = self.read_header()?;
            match header.kind {
                Kind::Data => {
                    let len = u64::from(header.len);
                    if len > size - received {
                        return Err(WireError::Invalid(format!(
                            "content longer than the {size} bytes declared"
                        ))
                        .into());
                    }
                    let mut left = header.len as usize;
                    while left > 0 {
                        // A whole frame (up to a buffer) is gathered, then written at once:
                        // writing each socket read as it came took two to four writes per
                        // frame, and tmpfs pays per write. What did arrive before a failure
                        // is written too, so that an interrupted upload keeps it.
                        let want = left.min(self.chunk.len());
                        let (got, failed) = fill(&mut self.stream, &mut self.chunk[..want]);
                        let data = &self.chunk[..got];
                        digest.update(data);
                        if sink_error.is_none()
                            && !cancelled
                            && let Err(e) = dst.write_all(data)
                        {
                            sink_error = Some(e);
                        }
                        if let Some(e) = failed {
                            return Err(WireError::from(e).into());
                        }
                        if got < want {
                            return Err(WireError::Truncated.into());
                        }
                        left -= got;
                    }
                    received += len;
                    if !cancelled && !progress(received) {
                        cancelled = true;
                        let failure =
                            Failure::new(ErrorKind::Cancelled, "transfer cancelled by receiver");
                        self.send(&failure_frame(Kind::Abort, &failure))?;
                    }
                }
                Kind::End => {
                    let frame = self.read_words(header)?;
                    if received != size {
                        return Err(WireError::Invalid(format!(
                            "content ended after {received} of {size} bytes"
                        ))
                        .into());
                    }
                    if cancelled {
                        return Err(ContentError::Cancelled);
                    }
                    if let Some(e) = sink_error {
                        return Err(ContentError::Sink(e));
                    }
                    let Some(expected) = Digest::parse_words(&frame.words) else {
                        return Err(WireError::Invalid(format!(
                            "content ended without a {} digest",
                            crate::digest::ALGORITHM
                        ))
                        .into());
                    };
                    let actual = digest.hex();
                    if !expected.eq_ignore_ascii_case(&actual) {
                        return Err(ContentError::Mismatch(Mismatch {
                            expected: expected.to_ascii_lowercase(),
                            actual,
                        }));
                    }
                    return Ok(());
                }
                Kind::Abort | Kind::Error => {
                    let frame = self.read_words(header)?;
                    if cancelled {
                        return Err(ContentError::Cancelled);
                    }
                    return Err(WireError::Remote(failure_from_words(&frame.words)).into());
                }
                other => {
                    return Err(WireError::Invalid(format!(
                        "unexpected {other:?} frame in content"
                    ))
                    .into());
                }
            }
        }
    }
}

/// A connection's reader that must be done by a deadline (see [`Connection::recv_before`]).
struct Timed<'a> {
    stream: &'a mut BufReader<std::net::TcpStream>,
    deadline: std::time::Instant,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stream.buffer().is_empty() {
            let left = self
                .deadline
                .checked_duration_since(std::time::Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or(io::ErrorKind::TimedOut)?;
            self.stream.get_ref().set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

/// Reads until `buf` is full or `src` ends; returns how much was read and the error that
/// stopped it early, if one did (the end of input is not an error: fewer bytes are read).
fn fill<R: Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

/// Reads until `buf` is full or `src` ends; returns how much was read.
fn read_full<R: Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    match fill(src, buf) {
        (got, None) => Ok(got),
        (_, Some(e)) => Err(e),
    }
}

/// True when the peer has sent something that is waiting to be read (a receiver's `X`, or a
/// closed connection), checked without blocking and without reading it.
pub fn input_waiting(stream: &std::net::TcpStream) -> bool {
    peek(stream).is_some()
}

/// True when what waits to be read is an `X` frame (a receiver's cancel), or the connection
/// has closed; a request sent ahead by a pipelining client is not a cancel.
pub fn abort_waiting(stream: &std::net::TcpStream) -> bool {
    matches!(peek(stream), Some(None | Some(b'X')))
}

/// The first byte waiting on `stream` without reading it: `None` when nothing is waiting,
/// `Some(None)` when the connection is closed or failed.
fn peek(stream: &std::net::TcpStream) -> Option<Option<u8>> {
    use rustix::net::RecvFlags;
    let mut byte = [0u8];
    match rustix::net::recv(stream, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((1, _)) => Some(Some(byte[0])),
        Ok(_) => Some(None),
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => None,
        Err(_) => Some(None),
    }
}

impl Connection<std::net::TcpStream> {
    /// Reads one control frame, all of it before `deadline`: before each read the socket's
    /// read timeout is set to the time left, so a peer that sends a frame a byte at a time
    /// cannot stretch it. Running out of time is an I/O error of kind `TimedOut`. The read
    /// timeout is left as it was last set.
    pub fn recv_before(&mut self, deadline: std::time::Instant) -> Result<Frame, WireError> {
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
        // Bounded by `Header::parse`, like every control payload.
        let mut payload = vec![0; header.len as usize];
        timed.read_exact(&mut payload)?;
        Ok(Frame {
            kind: header.kind,
            words: frame::decode_words(&payload)?,
        })
    }

    /// Writes as much of the queue as the socket takes without blocking, and keeps the rest.
    ///
    /// A pipelining client uses this to send requests ahead: it must never block on a write
    /// while replies it has not read may be filling the other direction.
    pub fn flush_ready(&mut self) -> Result<(), WireError> {
        use rustix::net::SendFlags;
        let mut done = 0;
        while done < self.out.len() {
            let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
            match rustix::net::send(self.stream.get_ref(), &self.out[done..], flags) {
                Ok(n) => done += n,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        self.written += done as u64;
        self.out.drain(..done);
        Ok(())
    }
}

/// The `E` or `X` frame carrying `failure`.
pub fn failure_frame(kind: Kind, failure: &Failure) -> Frame {
    Frame::new(kind, [failure.kind.code(), failure.message.as_str()])
}

/// The failure an `E` or `X` frame carries; missing words read as an internal error.
pub fn failure_from_words(words: &[String]) -> Failure {
    let kind = ErrorKind::from_code(words.first().map_or("", String::as_str));
    let message = words
        .get(1)
        .cloned()
        .unwrap_or_else(|| "unknown error".into());
    Failure::new(kind, crate::name::escape(&message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that reads from one buffer and writes to another.
    struct Pipe {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(input: Vec<u8>) -> Connection<Pipe> {
        Connection::new(Pipe {
            input: Cursor::new(input),
            output: Vec::new(),
        })
    }

    fn sent(size: usize) -> (Vec<u8>, Vec<u8>) {
        let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = conn(Vec::new());
        c.send_content(
            &mut Cursor::new(&content),
            size as u64,
            &mut Digest::new(),
            &mut |_| true,
        )
        .unwrap();
        (content, c.stream.into_inner().output)
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
        /// Hands out at most 1000 bytes per read, as a socket may.
        struct Trickle(Cursor<Vec<u8>>, Vec<u8>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(1000);
                self.0.read(&mut buf[..n])
            }
        }
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.write(buf)
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
        Connection::new(Trickle(Cursor::new(wire), Vec::new()))
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
        let mut c = conn(Vec::new());
        let err = c
            .send_content(
                &mut Cursor::new(vec![1u8; 10]),
                20,
                &mut Digest::new(),
                &mut |_| true,
            )
            .unwrap_err();
        assert!(matches!(err, ContentError::Wire(WireError::Remote(_))));
        let wire = c.stream.into_inner().output;
        let err = conn(wire)
            .recv_content(&mut Vec::new(), 20, &mut Digest::new(), &mut |_| true)
            .unwrap_err();
        assert!(matches!(err, ContentError::Wire(WireError::Remote(f)) if f.kind == ErrorKind::Io));
    }

    #[test]
    fn cancelling_sends_abort() {
        let mut c = conn(Vec::new());
        let err = c
            .send_content(
                &mut Cursor::new(vec![1u8; 10]),
                10,
                &mut Digest::new(),
                &mut |_| false,
            )
            .unwrap_err();
        assert!(matches!(err, ContentError::Cancelled));
        let wire = c.stream.into_inner().output;
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
        c.send_content(&mut &content[1000..], 2000, &mut seed, &mut |_| true)
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
    fn flush_ready_never_blocks_and_flush_to_writes_only_up_to_its_mark() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conn = Connection::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
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
            conn.queue_content(&mut &content[..], 16384, &mut Digest::new(), &mut |_| true)
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
