use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use super::*;

/// A v2 header: command byte (0x21 PROXY, 0x20 LOCAL), family byte, and the rest.
fn header(command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
    let mut bytes = ppp::v2::PROTOCOL_PREFIX.to_vec();
    bytes.extend([command, family]);
    bytes.extend((rest.len() as u16).to_be_bytes());
    bytes.extend(rest);
    bytes
}

/// HAProxy's `send-proxy-v2` for a TCP/IPv4 client at 127.0.0.7:4000 to 127.0.0.1:443.
fn ipv4() -> Vec<u8> {
    header(
        0x21,
        0x11,
        &[127, 0, 0, 7, 127, 0, 0, 1, 0x0f, 0xa0, 0x01, 0xbb],
    )
}

#[test]
fn proxy_command_gives_the_client_address() {
    let got = parse(&ipv4()).unwrap();
    assert_eq!(got, Some("127.0.0.7:4000".parse().unwrap()));
    let mut v6 = vec![0; 36];
    v6[15] = 1;
    v6[32..34].copy_from_slice(&5000u16.to_be_bytes());
    let got = parse(&header(0x21, 0x21, &v6)).unwrap();
    assert_eq!(got, Some("[::1]:5000".parse().unwrap()));
}

#[test]
fn local_command_and_unspecified_family_keep_the_proxy_address() {
    assert_eq!(parse(&header(0x20, 0x00, &[])).unwrap(), None);
    // A LOCAL command may still carry addresses: they are not the client's.
    let mut local = ipv4();
    local[12] = 0x20;
    assert_eq!(parse(&local).unwrap(), None);
    assert_eq!(parse(&header(0x21, 0x00, &[])).unwrap(), None);
}

#[test]
fn malformed_headers_are_errors() {
    let good = ipv4();
    for len in 0..good.len() {
        assert!(parse(&good[..len]).is_err(), "truncated to {len}");
    }
    // Every single-bit change of the fixed part: never a panic, and a changed signature is
    // always refused.
    for at in 0..16 {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[at] ^= 1 << bit;
            let parsed = parse(&bad);
            if at < 12 {
                assert!(parsed.is_err(), "signature byte {at}");
            }
        }
    }
    assert!(
        parse(b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n").is_err(),
        "v1 is not v2"
    );
    assert!(
        parse(&header(0x31, 0x11, &good[16..])).is_err(),
        "version 3"
    );
    assert!(
        parse(&header(0x22, 0x11, &good[16..])).is_err(),
        "command 2"
    );
    assert!(
        parse(&header(0x21, 0x11, &[1, 2, 3])).is_err(),
        "short addresses"
    );
    let mut tlv = good[16..].to_vec();
    tlv.extend([0x04, 0, 9, 1]);
    assert!(
        parse(&header(0x21, 0x11, &tlv)).is_err(),
        "TLV past the end"
    );
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic generator: the parser must answer every input, not panic.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = ipv4();
        let len = (next() % 64) as usize;
        bytes.resize(len.max(16), 0);
        for _ in 0..(next() % 6) {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        let _ = parse(&bytes);
    }
}

#[test]
fn the_declared_length_is_bounded() {
    let mut big = header(0x21, 0x11, &vec![0; MAX_REST + 1]);
    assert!(parse(&big).unwrap_err().contains("more than"));
    big.truncate(FIXED);
    assert!(declared(&big).is_err(), "refused from the fixed part alone");
}

#[test]
fn reading_takes_exactly_the_header_and_keeps_a_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let mut sent = ipv4();
    sent.extend(b"after");
    client.write_all(&sent).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = read_header(&server, deadline).unwrap();
    assert_eq!(got, Some("127.0.0.7:4000".parse().unwrap()));
    let mut after = [0; 5];
    (&server).read_exact(&mut after).unwrap();
    assert_eq!(&after, b"after");

    // Half a header, then silence: the deadline ends it.
    let mut silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    silent.write_all(&ipv4()[..10]).unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(200);
    assert_eq!(
        read_header(&server, deadline).unwrap_err(),
        "PROXY header timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn networks_parse_and_match() {
    let net: Network = "10.1.0.0/16".parse().unwrap();
    assert!(net.contains("10.1.2.3".parse().unwrap()));
    assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    let one: Network = "127.0.0.2".parse().unwrap();
    assert!(one.contains("127.0.0.2".parse().unwrap()));
    assert!(!one.contains("127.0.0.1".parse().unwrap()));
    let all: Network = "::/0".parse().unwrap();
    assert!(all.contains("2001:db8::1".parse().unwrap()));
    assert!(!all.contains("127.0.0.1".parse().unwrap()));
    let v6: Network = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
    for bad in [
        "",
        "10.0.0.0/33",
        "::/129",
        "host",
        "10.0.0.0/",
        "10.0.0.0/x",
    ] {
        assert!(bad.parse::<Network>().is_err(), "{bad:?}");
    }
    assert_eq!(net.to_string(), "10.1.0.0/16");
}
