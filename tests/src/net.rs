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
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
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
    let stream = tcp_from(source, addr)?;
    let deadline = Instant::now() + DEADLINE;
    let (conn, _) = ferry_core::hello::connect_trusting(stream, "tests", None, deadline)?;
    Ok(conn)
}

/// [`greet_from`], which must succeed.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> Connection {
    greet_from(source, addr).unwrap()
}
