//! Content streams: a file's bytes as `D` frames, ended by `Z` with their digest, or by `X`.
//!
//! Both sides hash the content as it passes, through one reused buffer each, so memory stays
//! constant whatever the file size; the receiver reports a [`Mismatch`] instead of success when
//! the digests differ. Either side may cancel: the sender by ending with `X`, the receiver by
//! sending `X`, which the sender notices between chunks and answers by ending with `X`.

use std::io::{self, Read, Write};

use crate::conn::{Connection, QUEUE_FLUSH};
use crate::digest::{Digest, Mismatch};
use crate::error::{ErrorKind, Failure, WireError};
use crate::frame::{Frame, HEADER_LEN, Header, Kind};
use crate::socket::{Transport, Waiting};

/// Size of the `D` frames a sender emits.
pub const CHUNK: u32 = 1024 * 1024;
/// Size of the read buffer used while receiving content.
pub(crate) const RECV_BUF: usize = CHUNK as usize;
/// Where in the content buffer an outgoing frame starts. The file is read into the buffer by
/// the kernel, and rustls copies each 16 KiB of it, 5 bytes into a block of its own, to make a
/// record; both copy with `rep movsb`, which on AMD Zen 4 runs some 30 times slower when the
/// destination lies 1 to 15 bytes further into its 4 KiB page than the source does
/// (docs/PERFORMANCE.md, "Copies that cross a page 1 to 15 bytes apart"). With the client's
/// allocator both blocks start on a page, so a frame at the start of the buffer put every
/// record of an upload on the slow path; 64 bytes in, rustls' copy and the kernel's (a page of
/// the file to 69 bytes in) are both clear of it.
const FRAME_AT: usize = 64;

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

/// The most bytes of replies a server holds back while more requests are waiting (see
/// [`Connection::send_content`]): far below what makes [`Connection::queue`] write on its own.
const HOLD_REPLIES: usize = 32 * 1024;

/// What may stop a sender before each chunk.
pub enum Watch<'a> {
    /// Called with the bytes sent so far; returning false cancels (the client's meter, which
    /// shows progress and carries the user's Ctrl-C).
    Progress(&'a mut dyn FnMut(u64) -> bool),
    /// The receiver's cancel: an `X` frame waiting on the connection (or its close). A request
    /// a pipelining client sent ahead is not a cancel.
    PeerAbort,
}

impl<S: Transport> Connection<S> {
    /// Streams exactly `len` bytes of `src` as `D` frames, then `Z` with the digest.
    ///
    /// `digest` holds what came before in the file (nothing, unless resuming) and is updated
    /// with every byte sent, so the `Z` frame covers the whole file. Before each chunk `watch`
    /// may cancel (an `X` frame tells the peer). Each chunk is read before its frame goes, so
    /// if `src` ends early or fails, the chunk is not sent and the stream is abandoned with
    /// `X`: the peer never takes a short file for a whole one.
    pub fn send_content<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
        mut watch: Watch<'_>,
    ) -> Result<(), ContentError> {
        // Header and data leave in one write, so a chunk is never split into a tiny segment; a
        // small file leaves with the frames queued before it and its `Z` in a single write.
        self.with_chunk(len, |conn, buf| {
            conn.send_chunks(src, len, digest, &mut watch, buf)
        })?;
        // A server's reply (it watches for the receiver's cancel) waits in the queue, up to
        // HOLD_REPLIES bytes, while a chained request has arrived whole after it: that one is
        // answered at once, and both replies leave in one write. Reading it cannot wait on
        // the client, and the last reply of a run is written when nothing more is waiting.
        if matches!(watch, Watch::PeerAbort)
            && self.out.len() < HOLD_REPLIES
            && self.request_waiting()
            && matches!(self.waiting(), Waiting::Byte(b) if b == Kind::Chained.byte())
        {
            return Ok(());
        }
        Ok(self.flush()?)
    }

    /// [`Connection::send_content`] without a watch, and with the `Z` frame left queued: a
    /// content of a few KiB after a queued request then stays queued whole, for the caller to
    /// flush.
    pub fn queue_content<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
    ) -> Result<(), ContentError> {
        let mut watch = Watch::Progress(&mut |_| true);
        self.with_chunk(len, |conn, buf| {
            conn.send_chunks(src, len, digest, &mut watch, buf)
        })
    }

    /// Runs `f` with the connection's content buffer, sized for a header and the largest
    /// chunk of a content of `len` bytes: a connection that moves only small files never holds
    /// a whole chunk's buffer.
    fn with_chunk<T>(&mut self, len: u64, f: impl FnOnce(&mut Self, &mut [u8]) -> T) -> T {
        let mut buf = std::mem::take(&mut self.chunk);
        let want = FRAME_AT + HEADER_LEN + len.min(u64::from(CHUNK)) as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let result = f(self, &mut buf[FRAME_AT..]);
        self.chunk = buf;
        result
    }

    fn send_chunks<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        digest: &mut Digest,
        watch: &mut Watch<'_>,
        buf: &mut [u8],
    ) -> Result<(), ContentError> {
        let mut sent = 0u64;
        while sent < len {
            if !self.go_on(watch, sent) {
                let failure = Failure::new(ErrorKind::Cancelled, "transfer cancelled by sender");
                self.send(&Frame::failure(Kind::Abort, &failure))?;
                return Err(ContentError::Cancelled);
            }
            let want = (len - sent).min(u64::from(CHUNK)) as u32;
            let frame = &mut buf[..HEADER_LEN + want as usize];
            let header = Header {
                kind: Kind::Data,
                len: want,
            };
            frame[..HEADER_LEN].copy_from_slice(&header.encode());
            // A source that fails or ends early abandons the stream with `X`, so that the
            // peer, and the connection, stay in step.
            let failure = match read_full(src, &mut frame[HEADER_LEN..]) {
                Ok(got) if got == want as usize => None,
                Ok(_) => Some(Failure::new(
                    ErrorKind::Io,
                    "the file shrank while being sent",
                )),
                Err(e) => Some(Failure::new(
                    ErrorKind::Io,
                    format!("cannot read the file: {e}"),
                )),
            };
            if let Some(failure) = failure {
                self.send(&Frame::failure(Kind::Abort, &failure))?;
                return Err(ContentError::Wire(WireError::Remote(failure)));
            }
            digest.update(&frame[HEADER_LEN..]);
            self.write_raw(frame)?;
            sent += u64::from(want);
        }
        if let Watch::Progress(progress) = watch {
            progress(sent);
        }
        self.queue(&Frame::new(Kind::End, digest.words()))?;
        Ok(())
    }

    /// Whether the sender goes on after `sent` bytes.
    fn go_on(&mut self, watch: &mut Watch<'_>, sent: u64) -> bool {
        match watch {
            Watch::Progress(progress) => progress(sent),
            Watch::PeerAbort => !self.abort_waiting(),
        }
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
        // As large as the content, up to a frame: a small file needs no large buffer.
        let want = len.min(RECV_BUF as u64) as usize;
        if self.chunk.len() < want {
            self.chunk.resize(want, 0);
        }
        let mut stream = Receiving {
            size: len,
            received: 0,
            sink_error: None,
            cancelled: false,
        };
        loop {
            let header = self.read_header()?;
            match header.kind {
                Kind::Data => {
                    stream.data(self, header, dst, digest)?;
                    if !stream.cancelled && !progress(stream.received) {
                        stream.cancelled = true;
                        let failure =
                            Failure::new(ErrorKind::Cancelled, "transfer cancelled by receiver");
                        self.send(&Frame::failure(Kind::Abort, &failure))?;
                    }
                }
                Kind::End => return stream.end(self.read_words(header)?, digest),
                Kind::Abort | Kind::Error => {
                    let frame = self.read_words(header)?;
                    if stream.cancelled {
                        return Err(ContentError::Cancelled);
                    }
                    return Err(WireError::Remote(Failure::from_words(&frame.words)).into());
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

/// A content stream being received.
struct Receiving {
    /// The bytes declared.
    size: u64,
    received: u64,
    /// Writing failed: the rest is read and dropped, and this is the result.
    sink_error: Option<io::Error>,
    /// The receiver cancelled: the rest is read and dropped until the sender's `X`.
    cancelled: bool,
}

impl Receiving {
    /// Reads one `D` frame's payload (its header read) and writes it to `dst`.
    fn data<S: Transport, W: Write + ?Sized>(
        &mut self,
        conn: &mut Connection<S>,
        header: Header,
        dst: &mut W,
        digest: &mut Digest,
    ) -> Result<(), ContentError> {
        let len = u64::from(header.len);
        if len > self.size - self.received {
            return Err(WireError::Invalid(format!(
                "content longer than the {} bytes declared",
                self.size
            ))
            .into());
        }
        let mut left = header.len as usize;
        while left > 0 {
            // A whole frame (up to a buffer) is gathered, then written at once: writing each
            // socket read as it came took two to four writes per frame, and tmpfs pays per
            // write. What did arrive before a failure is written too, so that an interrupted
            // upload keeps it.
            let want = left.min(conn.chunk.len());
            let (got, failed) = fill(&mut conn.stream, &mut conn.chunk[..want]);
            let data = &conn.chunk[..got];
            digest.update(data);
            if self.sink_error.is_none()
                && !self.cancelled
                && let Err(e) = dst.write_all(data)
            {
                self.sink_error = Some(e);
            }
            if let Some(e) = failed {
                return Err(WireError::from(e).into());
            }
            if got < want {
                return Err(WireError::Truncated.into());
            }
            left -= got;
        }
        self.received += len;
        Ok(())
    }

    /// The stream's `Z` frame arrived: the outcome.
    fn end(self, frame: Frame, digest: &Digest) -> Result<(), ContentError> {
        if self.received != self.size {
            return Err(WireError::Invalid(format!(
                "content ended after {} of {} bytes",
                self.received, self.size
            ))
            .into());
        }
        if self.cancelled {
            return Err(ContentError::Cancelled);
        }
        if let Some(e) = self.sink_error {
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
        Ok(())
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

#[cfg(test)]
mod tests;
