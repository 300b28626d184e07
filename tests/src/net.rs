//! Connections from chosen loopback addresses, greeted or not, for tests that play clients
//! at several addresses (any of 127.0.0.0/8 is this machine's).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Instant;

use ferry_core::Connection;

use crate::DEADLINE;

/// The loopback address 127.0.0.`n`, to play a client at another address.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `addr` from the local address `source`.
pub fn tcp_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    tcp_window_from(source, addr, None)
}

/// [`tcp_from`], with the socket's receive buffer set to `window` bytes before it connects
/// when given.
fn tcp_window_from(
    source: IpAddr,
    addr: SocketAddr,
    window: Option<usize>,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(window) = window {
        socket.set_recv_buffer_size(window)?;
    }
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), DEADLINE)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A connection from `source`, greetings exchanged (TLS included), trusting whatever identity
/// the server presents; an error where a flood expects one (refused, closed to make room).
pub fn greet_from(source: IpAddr, addr: SocketAddr) -> anyhow::Result<Connection> {
    greet_window_from(source, addr, None)
}

/// [`greet_from`] with a receive buffer of [`UNREAD_WINDOW`], for a client that will not read
/// what it asked for: left to itself the kernel grows the buffer as data comes, up to
/// `net.ipv4.tcp_rmem`'s maximum, which on some machines (32 MiB) holds a whole reply of the
/// size a test means the server to give up on.
pub fn greet_unread_from(source: IpAddr, addr: SocketAddr) -> anyhow::Result<Connection> {
    greet_window_from(source, addr, Some(UNREAD_WINDOW))
}

/// The receive buffer of a client that does not read: 64 KiB, the size of a default one.
const UNREAD_WINDOW: usize = 64 << 10;

fn greet_window_from(
    source: IpAddr,
    addr: SocketAddr,
    window: Option<usize>,
) -> anyhow::Result<Connection> {
    let stream = tcp_window_from(source, addr, window)?;
    let deadline = Instant::now() + DEADLINE;
    let (conn, _) = ferry_core::hello::connect_trusting(stream, "tests", None, deadline)?;
    Ok(conn)
}

/// [`greet_from`], which must succeed.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> Connection {
    greet_from(source, addr).unwrap()
}
