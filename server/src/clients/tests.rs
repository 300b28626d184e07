//! The table on its own: who gives way, and what each address holds, over real sockets.

use std::net::TcpListener;

use super::*;

/// Open sockets to stand for clients (their peer addresses are made up by the tests).
fn sockets(n: usize) -> Vec<TcpStream> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(addr).unwrap();
            drop(listener.accept().unwrap());
            client
        })
        .collect()
}

/// A client at 127.0.0.`host`.
fn peer(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, host], port))
}

fn clients(sessions: usize, greeting: usize, per_address: Option<usize>) -> Clients {
    Clients::new(Limits {
        sessions,
        greeting,
        per_address,
        grace: Duration::ZERO,
    })
}

#[test]
fn the_greeter_that_has_got_least_far_gives_way_the_oldest_first() {
    let table = clients(10, 3, None);
    let mut socks = sockets(5).into_iter();
    for id in 1..=3 {
        table
            .admit(id, socks.next().unwrap(), (peer(1, id as u16), false))
            .unwrap();
    }
    table.progress(1, Stage::Encrypted);
    table.progress(2, Stage::Heard);
    let (_, displaced) = table
        .admit(4, socks.next().unwrap(), (peer(1, 4), false))
        .unwrap();
    assert_eq!(displaced.unwrap().peer, peer(1, 3), "the silent one");
    table.progress(4, Stage::Refused);
    let (_, displaced) = table
        .admit(5, socks.next().unwrap(), (peer(1, 5), false))
        .unwrap();
    let displaced = displaced.unwrap();
    assert_eq!(displaced.peer, peer(1, 4), "a refused proof goes first");
    assert!(displaced.why.starts_with("closed to make room: refused"));
    let why = table.end(3).0.unwrap();
    assert!(
        why.starts_with("closed to make room: silent after"),
        "{why}"
    );
}

#[test]
fn the_session_idle_longest_gives_way_and_a_busy_one_never() {
    let table = clients(2, 10, None);
    let mut socks = sockets(4).into_iter();
    for id in 1..=2 {
        table
            .admit(id, socks.next().unwrap(), (peer(1, id as u16), false))
            .unwrap();
        assert!(table.promote(id).unwrap().is_none());
    }
    assert!(table.set_busy(1, true));
    assert!(table.set_busy(1, false), "1 is now the more recently idle");
    table
        .admit(3, socks.next().unwrap(), (peer(1, 3), false))
        .unwrap();
    let displaced = table.promote(3).unwrap().unwrap();
    assert_eq!(displaced.peer, peer(1, 2));
    assert!(!table.set_busy(2, true), "a closed session is told so");
    assert!(table.set_busy(1, true) && table.set_busy(3, true));
    // Every session busy: refused at the door.
    let refused = table
        .admit(4, socks.next().unwrap(), (peer(1, 4), false))
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Busy);
    assert_eq!(
        refused.message,
        "server busy: 2 clients connected, all busy; try again later"
    );
    for id in 1..=3 {
        table.end(id);
    }
    assert!(table.wait_gone(Instant::now()));
}

#[test]
fn a_session_that_just_finished_a_request_is_spared_and_one_that_made_none_is_not() {
    let table = Clients::new(Limits {
        sessions: 1,
        greeting: 10,
        per_address: None,
        grace: Duration::from_secs(3600),
    });
    let mut socks = sockets(3).into_iter();
    table
        .admit(1, socks.next().unwrap(), (peer(1, 1), false))
        .unwrap();
    assert!(table.promote(1).unwrap().is_none());
    // Greeted but has made no request: not spared, however fresh.
    table
        .admit(3, socks.next().unwrap(), (peer(3, 3), false))
        .unwrap();
    let displaced = table.promote(3).unwrap().unwrap();
    assert_eq!(displaced.peer, peer(1, 1));
    table.end(1);
    assert!(table.set_busy(3, true) && table.set_busy(3, false));
    // It finished a request just now: the newcomer greets, then finds no slot it may take.
    table
        .admit(2, socks.next().unwrap(), (peer(2, 2), false))
        .unwrap();
    let refused = table.promote(2).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Busy);
    assert!(
        table.set_busy(3, true),
        "the working session was not closed"
    );
    table.end(3);
    table.end(2);
    assert!(table.wait_gone(Instant::now()));
}

#[test]
fn an_address_holds_its_share_and_gets_it_back() {
    let table = clients(10, 10, Some(2));
    let mut socks = sockets(6).into_iter();
    for id in 1..=2 {
        table
            .admit(id, socks.next().unwrap(), (peer(2, id as u16), false))
            .unwrap();
        table.promote(id).unwrap();
    }
    let refused = table
        .admit(3, socks.next().unwrap(), (peer(2, 3), false))
        .unwrap_err();
    assert!(
        refused.message.contains("2 connections from 127.0.0.2"),
        "{refused:?}"
    );
    // Another address is not touched; a v4-mapped IPv6 peer is its IPv4 address.
    let mapped: SocketAddr = "[::ffff:127.0.0.3]:4".parse().unwrap();
    table
        .admit(4, socks.next().unwrap(), (mapped, false))
        .unwrap();
    table
        .admit(5, socks.next().unwrap(), (peer(3, 5), false))
        .unwrap();
    let (_, displaced) = table
        .admit(6, socks.next().unwrap(), (peer(3, 6), false))
        .unwrap();
    assert_eq!(
        displaced.unwrap().peer,
        mapped,
        "its own oldest greeter makes room"
    );
    for id in [1, 2, 4, 5, 6] {
        table.end(id);
    }
    let held = table.table();
    assert!(held.per_address.is_empty(), "{:?}", held.per_address);
    assert_eq!((held.threads, held.busy), (0, 0));
}

#[test]
fn among_those_as_far_the_address_holding_the_most_places_gives_way() {
    let table = clients(10, 3, None);
    let mut socks = sockets(5).into_iter();
    // A client at .1 has not spoken yet (its first byte is on its way) when a flood at .2
    // fills the other places and keeps coming: the flood closes its own, newer though they are.
    table
        .admit(1, socks.next().unwrap(), (peer(1, 1), false))
        .unwrap();
    for id in 2..=4 {
        let (_, displaced) = table
            .admit(id, socks.next().unwrap(), (peer(2, id as u16), false))
            .unwrap();
        if id == 4 {
            assert_eq!(displaced.unwrap().peer, peer(2, 2), "the flood's oldest");
        }
    }
    // How far each has got still comes first: a flood further along outlives a silent client.
    table.progress(3, Stage::Heard);
    table.progress(4, Stage::Heard);
    let (_, displaced) = table
        .admit(5, socks.next().unwrap(), (peer(2, 5), false))
        .unwrap();
    assert_eq!(displaced.unwrap().peer, peer(1, 1));
}

#[test]
fn a_proxy_is_not_held_to_a_share_and_its_clients_are() {
    // The proxy at 127.0.0.9 brings three connections; two clients' worth of share each.
    let table = clients(10, 10, Some(2));
    let mut socks = sockets(3).into_iter();
    for id in 1..=3 {
        table
            .admit(id, socks.next().unwrap(), (peer(9, id as u16), true))
            .unwrap();
    }
    // Its header says whose each is: two from 127.0.0.7 fit, the third takes the place of
    // that address's own connection still greeting.
    assert!(table.readdress(1, peer(7, 1)).unwrap().1.is_none());
    assert!(table.readdress(2, peer(7, 2)).unwrap().1.is_none());
    table.progress(1, Stage::Encrypted);
    table.promote(1).unwrap();
    let (_, displaced) = table.readdress(3, peer(7, 3)).unwrap();
    assert_eq!(displaced.unwrap().peer, peer(7, 2));
    // Its place is one of 127.0.0.7's two, not the proxy's.
    // One place each, and the place of 127.0.0.7 in session: nothing gives way.
    let table = clients(10, 10, Some(1));
    let mut socks = sockets(2).into_iter();
    table
        .admit(1, socks.next().unwrap(), (peer(9, 1), true))
        .unwrap();
    table
        .admit(2, socks.next().unwrap(), (peer(9, 2), true))
        .unwrap();
    table.readdress(1, peer(7, 1)).unwrap();
    table.progress(1, Stage::Encrypted);
    table.promote(1).unwrap();
    let failure = table.readdress(2, peer(7, 2)).unwrap_err();
    assert!(failure.message.contains("127.0.0.7"), "{}", failure.message);
}
