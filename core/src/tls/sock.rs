//! The socket under the TLS layer without blocking: reads and writes that fail with
//! would-block instead of waiting, and a wait for room to write.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Waits until `sock` takes more bytes, or `limit` has passed (a timeout is not an error:
/// the caller's budget says what it means).
pub(super) fn writable(sock: &TcpStream, limit: Duration) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    let timeout = crate::socket::timespec(limit);
    let mut fds = [PollFd::new(sock, PollFlags::OUT)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A reader that is a function.
pub(super) struct ReadWith<'a>(pub(super) &'a mut dyn FnMut(&mut [u8]) -> io::Result<usize>);

impl Read for ReadWith<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        (self.0)(out)
    }
}

/// A socket read and written without blocking: would-block is an error of that kind.
pub(super) struct NonBlocking<'a>(pub(super) &'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::net::RecvFlags;
        loop {
            return match rustix::net::recv(self.0, &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) => Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    /// rustls hands over its queue of records as one vector: a paced sender's records leave
    /// six at a time, as a blocking one's do. With only `write`, each 16 KiB record was a
    /// system call of its own, and the server sent a download at twice the copying cost.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        loop {
            return match sendmsg(self.0, bufs, &mut SendAncillaryBuffer::default(), flags) {
                Ok(n) => Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::net::TcpListener;

    use super::*;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        (a, b)
    }

    #[test]
    fn a_vectored_write_sends_every_slice_in_one_call() {
        let (a, mut b) = pair();
        let slices = [
            IoSlice::new(b"one "),
            IoSlice::new(b"two "),
            IoSlice::new(b"three"),
        ];
        assert_eq!(NonBlocking(&a).write_vectored(&slices).unwrap(), 13);
        let mut got = [0u8; 13];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two three");
    }

    #[test]
    fn a_vectored_write_to_a_full_socket_would_block_instead_of_waiting() {
        let (a, _b) = pair();
        let chunk = vec![7u8; 64 * 1024];
        let slices = [IoSlice::new(&chunk), IoSlice::new(&chunk)];
        // Nobody reads: the socket's buffers fill within a few MiB.
        let blocked = (0..10_000).find_map(|_| match NonBlocking(&a).write_vectored(&slices) {
            Ok(n) => {
                assert!(n > 0);
                None
            }
            Err(e) => Some(e.kind()),
        });
        assert_eq!(blocked, Some(io::ErrorKind::WouldBlock));
    }
}
