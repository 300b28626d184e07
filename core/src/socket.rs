//! The byte stream under a connection: the [`Transport`] seam and its TCP implementation.
//!
//! A connection needs a few things of its stream beyond `Read + Write`: timeouts, a look at what
//! the peer has sent without reading it (a receiver's cancel, a closed connection), and a write
//! that never blocks (a pipelining client must not block writing while replies go unread).
//! Everything above this module reaches the stream through this trait only, so that another
//! transport (TLS) slots in without touching a verb.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::pace::Pace;

/// What the peer has sent that is waiting to be read, as seen without reading or blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Nothing yet.
    Nothing,
    /// Bytes, the first of which is this.
    Byte(u8),
    /// The connection is closed or failed.
    Closed,
}

/// `limit` as `poll` takes it.
pub(crate) fn timespec(limit: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: limit.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: limit.subsec_nanos().into(),
    }
}

/// A connected byte stream a [`crate::Connection`] runs over.
pub trait Transport: Read + Write + Send {
    /// How long a read may block before it fails with a timeout; `None` for ever.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// How long a write may block before it fails with a timeout; `None` for ever.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// What is waiting to be read, without reading it or blocking.
    fn waiting(&mut self) -> Waiting;
    /// Writes as much of `buf` as can go without blocking; 0 when nothing can go now.
    fn write_ready(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// The descriptor that becomes readable when the peer sends or closes, for a thread that
    /// waits for that while another uses the connection; `None` when there is none.
    fn pollable(&self) -> Option<BorrowedFd<'_>>;
    /// Reads must give up at `deadline`, however many socket reads one of them takes (a TLS
    /// record arrives in many); `None` lifts it. A transport that makes one system call per
    /// read needs nothing more than the timeout [`Timed`] sets before each, as TCP does.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}
    /// While an exchange is in flight, reads and writes share a budget of waiting that only
    /// moving bytes refills ([`crate::pace`]): a peer slower than `pace` makes them fail with
    /// a timeout. `None` ends it and puts the read and write timeouts back as they were. A
    /// transport that cannot pace (plain TCP, used by tests only) keeps its plain timeouts.
    fn set_pace(&mut self, _pace: Option<Pace>) {}
    /// Memory the transport holds for reading ahead that it could let go of now (none of it
    /// holds bytes still to be read).
    fn spare(&self) -> usize {
        0
    }
    /// Lets go of [`Transport::spare`]: the connection is idle.
    fn rest(&mut self) {}
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }

    fn waiting(&mut self) -> Waiting {
        use rustix::net::RecvFlags;
        let mut byte = [0u8];
        loop {
            return match rustix::net::recv(
                &*self,
                &mut byte[..],
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Ok((1, _)) => Waiting::Byte(byte[0]),
                Ok(_) => Waiting::Closed,
                Err(rustix::io::Errno::AGAIN) => Waiting::Nothing,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => Waiting::Closed,
            };
        }
    }

    fn write_ready(&mut self, buf: &[u8]) -> io::Result<usize> {
        use rustix::net::SendFlags;
        loop {
            return match rustix::net::send(&*self, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => Ok(n),
                Err(rustix::io::Errno::AGAIN) => Ok(0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        (**self).peer_addr()
    }

    fn waiting(&mut self) -> Waiting {
        (**self).waiting()
    }

    fn write_ready(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write_ready(buf)
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        (**self).pollable()
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        (**self).set_deadline(deadline)
    }

    fn set_pace(&mut self, pace: Option<Pace>) {
        (**self).set_pace(pace)
    }

    fn spare(&self) -> usize {
        (**self).spare()
    }

    fn rest(&mut self) {
        (**self).rest()
    }
}

/// A buffered reader that must be done by a deadline: before each read from the transport,
/// its read timeout is set to the time left, so that a peer sending a byte at a time cannot
/// stretch a read. Running out of time is an I/O error of kind `TimedOut`; the transport's
/// read timeout is left as it was last set.
pub(crate) struct Timed<'a, S: Transport> {
    pub(crate) stream: &'a mut BufReader<S>,
    pub(crate) deadline: Instant,
}

impl<S: Transport> Read for Timed<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stream.buffer().is_empty() {
            let left = self
                .deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or(io::ErrorKind::TimedOut)?;
            self.stream.get_ref().set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

/// A [`Transport`] over in-memory buffers, for tests and fuzzing of what a connection reads
/// and writes: reads come from `input`, writes go to `output`; nothing is ever waiting to be
/// peeked.
#[derive(Debug)]
pub struct Memory {
    /// What the peer "sent".
    pub input: io::Cursor<Vec<u8>>,
    /// What was written.
    pub output: Vec<u8>,
    /// The most one read hands out, as a socket may hand out less than asked.
    pub max_read: usize,
}

impl Memory {
    /// A transport whose peer sent `input`.
    pub fn new(input: Vec<u8>) -> Memory {
        Memory {
            input: io::Cursor::new(input),
            output: Vec::new(),
            max_read: usize::MAX,
        }
    }
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max_read);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Memory {
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
        self.output.write(buf)
    }
    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Waits until something from the peer is waiting on `conn` (or a test deadline passes).
    pub(crate) fn wait_for_input<S: Transport>(conn: &mut crate::Connection<S>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while conn.waiting() == Waiting::Nothing {
            assert!(Instant::now() < deadline, "nothing arrived");
            std::thread::yield_now();
        }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn waiting_peeks_without_reading_and_sees_a_close() {
        let (mut a, mut b) = pair();
        assert_eq!(a.waiting(), Waiting::Nothing);
        b.write_all(b"X").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.waiting() == Waiting::Nothing {
            assert!(Instant::now() < deadline, "the byte never arrived");
            std::thread::yield_now();
        }
        assert_eq!(
            a.waiting(),
            Waiting::Byte(b'X'),
            "peeking twice reads nothing"
        );
        let mut byte = [0];
        a.read_exact(&mut byte).unwrap();
        drop(b);
        while a.waiting() == Waiting::Nothing {
            assert!(Instant::now() < deadline, "the close never arrived");
            std::thread::yield_now();
        }
        assert_eq!(a.waiting(), Waiting::Closed);
    }

    #[test]
    fn a_timed_read_gives_up_at_its_deadline() {
        let (a, _b) = pair();
        let mut reader = BufReader::new(a);
        let mut timed = Timed {
            stream: &mut reader,
            deadline: Instant::now() + Duration::from_millis(50),
        };
        let err = timed.read(&mut [0; 4]).unwrap_err();
        assert!(crate::error::is_timeout(&err), "{err:?}");
        let mut late = Timed {
            stream: &mut reader,
            deadline: Instant::now(),
        };
        assert_eq!(
            late.read(&mut [0; 4]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }
}
