//! The PROXY protocol (v2) header a trusted load balancer sends before anything else, saying who
//! the client really is; parsed by the `ppp` crate, read here within a bound and a deadline.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::Instant;

use ppp::v2::{Addresses, Command, Header};

use crate::{Shared, log, session};

/// Bytes before the variable part: the signature (12), version and command, family and
/// protocol, and the 16-bit length of the rest.
const FIXED: usize = 16;

/// The most bytes after the fixed part accepted: the addresses (at most 216, for UNIX sockets)
/// and room for a balancer's TLVs. The field allows 65,535; a proxy is trusted, not unbounded.
pub const MAX_REST: usize = 1024;

/// An address or a network (`ADDR` or `ADDR/PREFIX`), as `--trusted-proxy` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// True if `ip` is in this network (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IP address"))?;
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or_else(|| format!("'{p}' is not a prefix length from 0 to {bits}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Reads the header from a trusted proxy's connection, byte for byte what it declares and no
/// more (what follows belongs to the client), by `deadline`. The client's address, or `None`
/// for a LOCAL command (the proxy's own health check) or an address family without one.
pub(crate) fn read_header(
    stream: &TcpStream,
    deadline: Instant,
) -> Result<Option<SocketAddr>, String> {
    let mut bytes = vec![0; FIXED];
    read_by(stream, &mut bytes, deadline)?;
    let rest = declared(&bytes)?;
    bytes.resize(FIXED + rest, 0);
    read_by(stream, &mut bytes[FIXED..], deadline)?;
    parse(&bytes)
}

/// Reads the header on connection `id` from trusted proxy `proxy`, and counts the connection
/// against the client's address from then on; the client's address, or `None` for a LOCAL
/// command (the proxy's health check), which keeps the proxy's address. Refused (`busy`) when
/// the client's address holds its share.
pub(crate) fn identify(
    shared: &Shared,
    id: u64,
    stream: &TcpStream,
    proxy: SocketAddr,
    deadline: Instant,
) -> Result<Option<SocketAddr>, String> {
    let Some(client) = read_header(stream, deadline)? else {
        return Ok(None);
    };
    match shared.clients.readdress(id, client) {
        Ok((counts, displaced)) => {
            if let Some(d) = displaced {
                log(format_args!("{} {} (for {client})", d.peer, d.why));
            }
            log(format_args!(
                "{client} connected through trusted proxy {proxy} ({counts})"
            ));
            Ok(Some(client))
        }
        Err(failure) => {
            log(format_args!("{client} refused: {}", failure.message));
            if let Ok(stream) = stream.try_clone() {
                session::refuse(stream, &failure);
            }
            Err(format!("refused for {client}"))
        }
    }
}

/// The length of the variable part the fixed part declares, if within [`MAX_REST`].
fn declared(fixed: &[u8]) -> Result<usize, String> {
    if fixed.len() < FIXED || fixed[..12] != *ppp::v2::PROTOCOL_PREFIX {
        return Err("no PROXY protocol v2 header from a trusted proxy".into());
    }
    let rest = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if rest > MAX_REST {
        return Err(format!(
            "PROXY header of {rest} bytes after its fixed part, more than {MAX_REST}"
        ));
    }
    Ok(rest)
}

/// The client's address in a whole header (see [`read_header`]).
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<SocketAddr>, String> {
    declared(bytes)?;
    let header = Header::try_from(bytes).map_err(|e| format!("bad PROXY header: {e}"))?;
    if header.len() != bytes.len() {
        return Err("bad PROXY header: its length disagrees with its bytes".into());
    }
    if header.tlvs().any(|tlv| tlv.is_err()) {
        return Err("bad PROXY header: malformed TLVs".into());
    }
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::IPv6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

/// Fills `buf` from `stream`, each read timed to what is left before `deadline`.
fn read_by(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("PROXY header timeout".into());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("closed before its PROXY header".into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if ferry_core::error::is_timeout(&e) => {
                return Err("PROXY header timeout".into());
            }
            Err(e) => return Err(format!("reading the PROXY header: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
