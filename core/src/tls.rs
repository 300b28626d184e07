//! Encrypted connections: [`Tls`], the TLS 1.3 transport (rustls), and identities by
//! [`Fingerprint`].
//!
//! The server proves its identity with a self-signed certificate; the client does not judge
//! certificates (there is no authority to ask) but checks that the server holds the key of the
//! one it presents, and its caller compares that certificate's fingerprint with the one it
//! trusts before anything is sent. The access token never travels: the client sends a proof
//! ([`crate::identity::proof`]) that it knows it, bound to this session's keys
//! ([`Tls::binding`]), worthless on any other session.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::ServerName;

use crate::identity::Fingerprint;
use crate::pace::{Pace, Pacer};
use crate::socket::{Transport, Waiting};
use sock::{NonBlocking, ReadWith, writable};

mod config;
mod sock;

pub use config::server_config;

/// The label of the keying material a token proof is bound to (RFC 8446, section 7.5).
const BINDING_LABEL: &[u8] = b"EXPORTER-ferry-token-proof";

/// At most this much plaintext goes into one non-blocking write: one TLS record's worth, so
/// that what is left unsent on the socket is never more than one record.
const RECORD: usize = 16 * 1024;
/// How much rustls encrypts ahead of the socket: six records (96 KiB), which leave in one
/// system call. More costs more than it saves: rustls allocates each record, and glibc hands
/// the freed top of the main thread's heap back to the kernel past 128 KiB (its trim
/// threshold), so with a whole 1 MiB frame at once the client, whose transfer runs on its
/// main thread, faulted every page in again: 230,000 page faults and 0.4 CPU-s per GiB sent.
const SEND_LIMIT: usize = 96 * 1024;
/// The socket is read this much at a time once data streams in: rustls alone reads one record
/// (16 KiB, often 4 KiB) per system call.
const STREAM_READ: usize = 256 * 1024;
/// What the inbox starts with, to grow to [`STREAM_READ`] once a read fills it: each page is a
/// page fault in a new process, and 256 KiB at once was 64 of the 330 of a `ferry` that
/// uploads and downloads 64 KiB.
const STREAM_FIRST: usize = 64 * 1024;

/// A TLS 1.3 connection over TCP.
pub struct Tls {
    sock: TcpStream,
    tls: rustls::Connection,
    /// A plaintext byte already taken from rustls by [`Transport::waiting`].
    peeked: Option<u8>,
    /// Bytes read from the socket and not yet given to rustls.
    inbox: Inbox,
    /// When reads must give up (see [`Transport::set_deadline`]).
    deadline: Option<Instant>,
    /// The budget of waiting of an exchange in flight (see [`Transport::set_pace`]).
    pacer: Option<Pacer>,
    /// The socket's read timeout from before a paced read first moved it, to put back when
    /// the pace ends. Taken only then: most exchanges find their bytes already there, and
    /// saving and restoring both timeouts around each (four system calls) cost a 4 KiB upload
    /// some 5% of the server's CPU (docs/PERFORMANCE.md).
    resting: Option<Option<Duration>>,
}

/// What was read from the socket ahead of rustls. Empty, and holding no memory, until a read
/// fills a whole record's worth, or all that rustls asked for (small records are waiting: a
/// client's requests sent ahead, read 4 KiB a system call before): then the socket is being
/// streamed, and is read a large buffer at a time ([`STREAM_FIRST`], then [`STREAM_READ`] once
/// a read fills that). Once the stream stops (a read that brings less than a record, all of it
/// passed on), the buffer goes, so an idle connection holds none.
#[derive(Default)]
struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read filled a whole record's worth or more.
    streaming: bool,
}

impl Inbox {
    /// Whether bytes read from the socket wait here: the next read is served without one.
    fn holds_bytes(&self) -> bool {
        self.start < self.end
    }

    /// Reads from `sock` (through `read`, blocking or not) into `out`, by way of the buffer
    /// once the connection streams.
    fn read(
        &mut self,
        out: &mut [u8],
        read: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.start == self.end && !self.streaming {
            // Drained, and the last read was not a stream's: back to reading straight through.
            self.buf = Vec::new();
        }
        if self.start == self.end {
            if self.buf.is_empty() {
                let n = read(out)?;
                if n >= RECORD || n == out.len() {
                    self.buf = vec![0; STREAM_FIRST];
                    (self.start, self.end, self.streaming) = (0, 0, true);
                }
                return Ok(n);
            }
            if self.end == self.buf.len() && self.buf.len() < STREAM_READ {
                // The last read filled the buffer: the stream is more than it holds.
                self.buf.resize(STREAM_READ, 0);
            }
            // Marked empty only once the read has succeeded: a would-block leaves it as it was.
            let n = read(&mut self.buf)?;
            (self.start, self.end, self.streaming) = (0, n, n >= RECORD);
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// The socket as rustls reads it: through the inbox, blocking, for at most `limit` when
/// given (see [`Tls::read_limit`]).
struct Inbound<'a> {
    sock: &'a TcpStream,
    inbox: &'a mut Inbox,
    limit: Option<Duration>,
    /// Where the socket's own read timeout is saved before `limit` first replaces it, when
    /// it is to be put back (see [`Tls::resting`]).
    resting: Option<&'a mut Option<Option<Duration>>>,
}

impl Read for Inbound<'_> {
    /// The timeout is set only for a read of the socket itself: most of rustls' reads are
    /// served from the inbox, and a `setsockopt` for each (one per record, 65,536 per GiB)
    /// cost a receiver some 0.1 CPU-s per GiB.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let (sock, limit, resting) = (self.sock, self.limit, &mut self.resting);
        self.inbox.read(out, &mut |buf| {
            if let Some(left) = limit {
                if let Some(saved) = resting.as_deref_mut().filter(|saved| saved.is_none()) {
                    *saved = Some(sock.read_timeout()?);
                }
                sock.set_read_timeout(Some(left))?;
            }
            (&*sock).read(buf)
        })
    }
}

impl Tls {
    /// The server's side of the handshake on an accepted socket, done before `deadline`.
    pub fn accept(
        sock: TcpStream,
        config: Arc<ServerConfig>,
        deadline: Instant,
    ) -> io::Result<Tls> {
        let tls = rustls::ServerConnection::new(config).map_err(tls_error)?;
        Tls::handshake(sock, tls.into(), deadline)
    }

    /// The client's side of the handshake, done before `deadline`. The server may present any
    /// certificate: compare [`Tls::peer_fingerprint`] with the one trusted before sending.
    pub fn connect(sock: TcpStream, deadline: Instant) -> io::Result<Tls> {
        let name = ServerName::try_from("ferryd").expect("a valid name");
        let tls =
            rustls::ClientConnection::new(config::client_config(), name).map_err(tls_error)?;
        Tls::handshake(sock, tls.into(), deadline)
    }

    fn handshake(sock: TcpStream, tls: rustls::Connection, deadline: Instant) -> io::Result<Tls> {
        let (read, write) = (sock.read_timeout()?, sock.write_timeout()?);
        let mut this = Tls {
            sock,
            tls,
            peeked: None,
            inbox: Inbox::default(),
            deadline: None,
            pacer: None,
            resting: None,
        };
        this.tls.set_buffer_limit(Some(SEND_LIMIT));
        while this.tls.is_handshaking() || this.tls.wants_write() {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or(io::ErrorKind::TimedOut)?;
            if this.tls.wants_write() {
                this.sock.set_write_timeout(Some(left))?;
                this.tls.write_tls(&mut this.sock)?;
                continue;
            }
            this.sock.set_read_timeout(Some(left))?;
            if this.tls.read_tls(&mut this.sock)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
            if let Err(e) = this.tls.process_new_packets() {
                // The alert that tells the peer why goes out if it can.
                let _ = this.tls.write_tls(&mut this.sock);
                return Err(tls_error(e));
            }
        }
        this.sock.set_read_timeout(read)?;
        this.sock.set_write_timeout(write)?;
        Ok(this)
    }

    /// The fingerprint of the certificate the peer presented (a server's, seen by a client).
    pub fn peer_fingerprint(&self) -> Option<Fingerprint> {
        let certs = self.tls.peer_certificates()?;
        Some(Fingerprint::of(certs.first()?))
    }

    /// 32 bytes derived from this session's keys, the same on both ends and on no other
    /// session: what a token proof is bound to.
    pub fn binding(&self) -> [u8; 32] {
        self.tls
            .export_keying_material([0u8; 32], BINDING_LABEL, None)
            .expect("the handshake is complete")
    }

    /// Writes what rustls has encrypted, blocking as the socket needs. While paced, the
    /// socket is written without blocking and waited on between writes, so that only the
    /// time it takes no bytes counts against the budget, and partial writes cannot restart
    /// the wait; once the budget is spent, what the socket takes at once still goes (a last
    /// reply to a peer that does read), and the rest fails with a timeout.
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            let Some(pacer) = &mut self.pacer else {
                self.tls.write_tls(&mut self.sock)?;
                continue;
            };
            match self.tls.write_tls(&mut NonBlocking(&self.sock)) {
                Ok(n) => pacer.moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = pacer.left()?;
                    let since = Instant::now();
                    let waited = writable(&self.sock, left);
                    pacer.waited(since);
                    waited?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes what rustls has encrypted as far as the socket takes it without blocking.
    fn push_ready(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut NonBlocking(&self.sock)) {
                Ok(n) => {
                    if let Some(pacer) = &mut self.pacer {
                        pacer.moved(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// How long the next socket read may block: until the deadline, within the budget of
    /// the pace, whichever ends first (`None`: as the socket's timeout says).
    fn read_limit(&self) -> io::Result<Option<Duration>> {
        let until_deadline = match self.deadline {
            Some(deadline) => Some(
                deadline
                    .checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or(io::ErrorKind::TimedOut)?,
            ),
            None => None,
        };
        let in_budget = self.pacer.as_ref().map(Pacer::left).transpose()?;
        Ok(match (until_deadline, in_budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Plaintext handed out by a read: progress, for the pace. Only plaintext counts, since
    /// the peer chooses how records carry it (a record of padding moves nothing).
    fn delivered(&mut self, n: usize) -> usize {
        if let Some(pacer) = &mut self.pacer {
            pacer.moved(n);
        }
        n
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(byte) = self.peeked.take() {
            buf[0] = byte;
            let more = self.tls.reader().read(&mut buf[1..]).unwrap_or(0);
            return Ok(self.delivered(1 + more));
        }
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(self.delivered(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A peer gone without a close_notify ends the stream like one that sent it:
                // every message is framed and its content digested, so a cut shows anyway.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Anything rustls has to say (an alert, a key update) goes out, but a read never
            // blocks on a write: the peer may be blocked writing to this side.
            self.push_ready()?;
            // A record dripped a byte at a time must not outlast the deadline or the budget.
            // Bytes already in the inbox cannot wait: rustls takes them 4 KiB at a time, and
            // reading the clock three times for each was 0.8% of a receiving server's CPU.
            let waits = !self.inbox.holds_bytes();
            let limit = if waits { self.read_limit()? } else { None };
            let paced = waits && self.pacer.is_some();
            let since = paced.then(Instant::now);
            let mut inbound = Inbound {
                sock: &self.sock,
                inbox: &mut self.inbox,
                limit,
                resting: paced.then_some(&mut self.resting),
            };
            let read = self.tls.read_tls(&mut inbound);
            if let (Some(pacer), Some(since)) = (&mut self.pacer, since) {
                pacer.waited(since);
            }
            read?;
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.push_ready();
                return Err(tls_error(e));
            }
        }
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        self.push()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.push()
    }
}

impl Transport for Tls {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }

    fn waiting(&mut self) -> Waiting {
        if let Some(byte) = self.peeked {
            return Waiting::Byte(byte);
        }
        loop {
            let mut byte = [0u8];
            match self.tls.reader().read(&mut byte) {
                Ok(1) => {
                    self.peeked = Some(byte[0]);
                    return Waiting::Byte(byte[0]);
                }
                Ok(_) => return Waiting::Closed,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Waiting::Closed,
            }
            let sock = &self.sock;
            let mut nonblocking = |buf: &mut [u8]| NonBlocking(sock).read(buf);
            let inbound = &mut self.inbox;
            let read = self.tls.read_tls(&mut ReadWith(&mut |out| {
                inbound.read(out, &mut nonblocking)
            }));
            match read {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Waiting::Nothing,
                Err(_) => return Waiting::Closed,
            }
            if self.tls.process_new_packets().is_err() {
                return Waiting::Closed;
            }
        }
    }

    fn write_ready(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push_ready()?;
        if self.tls.wants_write() {
            return Ok(0);
        }
        let n = self.tls.writer().write(&buf[..buf.len().min(RECORD)])?;
        self.push_ready()?;
        Ok(n)
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn spare(&self) -> usize {
        if self.inbox.holds_bytes() {
            0
        } else {
            self.inbox.buf.capacity()
        }
    }

    fn rest(&mut self) {
        if !self.inbox.holds_bytes() {
            self.inbox = Inbox::default();
        }
    }

    fn set_pace(&mut self, pace: Option<Pace>) {
        match pace {
            // A paced write never blocks on the socket (it polls), so only the read timeout
            // moves while the pace lasts.
            Some(pace) => self.pacer = Some(Pacer::new(pace)),
            None => {
                self.pacer = None;
                if let Some(read) = self.resting.take() {
                    let _ = self.sock.set_read_timeout(read);
                }
            }
        }
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        // Tells the peer the session ended on purpose; best effort, never blocking. A
        // handshake given up (a timeout, a peer that is not TLS) just closes.
        if !self.tls.is_handshaking() {
            self.tls.send_close_notify();
            let _ = self.push_ready();
        }
    }
}

#[cfg(test)]
mod tests;
