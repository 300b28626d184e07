//! The connections the server holds, as the accept loop and the client threads see them:
//! those still greeting and the sessions, each bounded on its own, and who gives way when
//! either is full.
//!
//! A connection takes a place among those greeting when it is accepted, and a session slot only
//! once its greeting (the access token included) has succeeded, so that connections that never
//! greet cannot keep anyone out of a session. When the greeting places are all taken, the
//! connection that has got least far (refused, silent, in the middle of TLS, awaiting its
//! greeting), from the address holding the most places among those greeting, the oldest of
//! those, is closed to make room: a flood of silent or stalled sockets only ever displaces its
//! own kind, and one host's flood its own sockets, while a client that greets goes through,
//! even one slow to send its first byte. When the session slots are all taken, the session idle
//! the longest is closed to make room; a session in the middle of a request, or that finished
//! one less than [`GRACE`] ago (between the commands of a script), is never closed, and only
//! when every one is either is a newcomer refused.
//!
//! One address (IPv4, or IPv6 in full) may hold at most its share of connections of both kinds
//! together. A newcomer from an address at its share takes the place of that address's own
//! connection still greeting that has got least far, or is refused if it has none: it has
//! proved nothing yet, so it never displaces a session.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferry_core::hello::Progress;
use ferry_core::socket::Waiting;
use ferry_core::{ErrorKind, Failure, Transport};

/// How long a session that has just finished a request is still spared, as if busy, when a
/// newcomer needs its slot: a script's next command comes within milliseconds on a LAN (a round
/// trip on a far network), and without this, a burst of newcomers on a full server closed the
/// session of whoever was working between two commands (it was then idle longer than all of
/// them). A session that has made no request since it greeted is not spared: a flood of idle
/// sessions, fresh as they are, gives way as before.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// How many connections of each kind the server holds at most.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Sessions: connections that have greeted.
    pub(crate) sessions: usize,
    /// Connections still greeting.
    pub(crate) greeting: usize,
    /// Connections of both kinds from one address; `None` for no limit.
    pub(crate) per_address: Option<usize>,
    /// How long a session just idle is spared ([`GRACE`]).
    pub(crate) grace: Duration,
}

/// How far a connection still greeting has got; the least far gives way first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Its token proof was refused; it waits out the delay before hearing so.
    Refused,
    /// It has sent nothing since the server's `H`.
    Silent,
    /// It has begun the TLS handshake.
    Heard,
    /// It has done the TLS handshake and not yet greeted.
    Encrypted,
}

impl From<Progress> for Stage {
    fn from(progress: Progress) -> Stage {
        match progress {
            Progress::Heard => Stage::Heard,
            Progress::Encrypted => Stage::Encrypted,
        }
    }
}

/// A connection still greeting.
struct Greeter {
    stream: TcpStream,
    peer: SocketAddr,
    since: Instant,
    stage: Stage,
}

/// A connection that has greeted.
struct Session {
    stream: TcpStream,
    peer: SocketAddr,
    /// In the middle of a request.
    busy: bool,
    /// When it last finished a request (or greeted).
    idle_since: Instant,
    /// It has made a request: idle for less than [`Limits::grace`] since, it is spared.
    worked: bool,
}

#[derive(Default)]
struct Table {
    greeting: HashMap<u64, Greeter>,
    sessions: HashMap<u64, Session>,
    /// How many of the sessions are busy.
    busy: usize,
    /// How many connections of both kinds each address holds.
    per_address: HashMap<IpAddr, usize>,
    /// Why each connection closed to make room was closed, until its thread ends.
    displaced: HashMap<u64, String>,
    /// Client threads running, those of displaced connections included.
    threads: usize,
}

/// A connection closed to make room for another: who, and why, for the log.
#[derive(Debug)]
pub(crate) struct Displaced {
    pub(crate) peer: SocketAddr,
    pub(crate) why: String,
}

/// How many connections there are of each kind, for the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub(crate) sessions: usize,
    pub(crate) greeting: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in session, {} greeting",
            self.sessions, self.greeting
        )
    }
}

/// The connections the server holds (see the module's documentation).
pub(crate) struct Clients {
    limits: Limits,
    table: Mutex<Table>,
    /// Notified whenever a client thread ends.
    gone: Condvar,
}

impl Table {
    /// A connection from `peer` is no longer counted against its address.
    fn release(&mut self, peer: SocketAddr) {
        let ip = address(peer);
        if let Some(held) = self.per_address.get_mut(&ip) {
            *held -= 1;
            if *held == 0 {
                self.per_address.remove(&ip);
            }
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            sessions: self.sessions.len(),
            greeting: self.greeting.len(),
        }
    }

    /// Closes the greeter that has got least far, from the address holding the most places
    /// among those greeting, the oldest of those (of those from `from`, if given).
    ///
    /// The count matters while a client has not spoken yet: until the server's `H` has reached
    /// it and its TLS hello has come back, it is as silent as a flood's sockets, and the
    /// oldest silent one once a few newer have come. One host's flood would then close it
    /// whenever it comes faster than the places greeting can absorb; by the count, it closes
    /// its own.
    fn displace_greeter(&mut self, now: Instant, from: Option<IpAddr>) -> Option<Displaced> {
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for greeter in self.greeting.values() {
            *held.entry(address(greeter.peer)).or_default() += 1;
        }
        let id = loop {
            let (&id, _) = self
                .greeting
                .iter()
                .filter(|(_, g)| from.is_none_or(|ip| address(g.peer) == ip))
                .min_by_key(|(_, g)| (g.stage, Reverse(held[&address(g.peer)]), g.since))?;
            // Its thread may not have run since the client spoke: the socket knows first.
            let greeter = self.greeting.get_mut(&id)?;
            if greeter.stage == Stage::Silent
                && matches!(greeter.stream.waiting(), Waiting::Byte(_))
            {
                greeter.stage = Stage::Heard;
                continue;
            }
            break id;
        };
        let greeter = self.greeting.remove(&id)?;
        let stage = match greeter.stage {
            Stage::Refused => "refused",
            Stage::Silent => "silent",
            Stage::Heard => "in the TLS handshake",
            Stage::Encrypted => "not greeted",
        };
        let why = format!("{stage} after {}", seconds(now - greeter.since));
        Some(self.close(id, (&greeter.stream, greeter.peer), why))
    }

    /// Closes the session idle the longest, if any is idle and not spared: one that finished a
    /// request less than `grace` ago is (one that has made none, as a flood's, never is).
    fn displace_session(&mut self, now: Instant, grace: Duration) -> Option<Displaced> {
        let spared = |s: &Session| s.worked && now.saturating_duration_since(s.idle_since) < grace;
        let (&id, _) = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.busy && !spared(s))
            .min_by_key(|(_, s)| s.idle_since)?;
        let session = self.sessions.remove(&id)?;
        let why = format!(
            "idle for {}, the longest",
            seconds(now - session.idle_since)
        );
        Some(self.close(id, (&session.stream, session.peer), why))
    }

    /// Closes connection `id`, just taken out of the table, to make room, and keeps why for
    /// its thread's last line in the log.
    fn close(
        &mut self,
        id: u64,
        (stream, peer): (&TcpStream, SocketAddr),
        why: String,
    ) -> Displaced {
        self.release(peer);
        let _ = stream.shutdown(Shutdown::Both);
        let why = format!("closed to make room: {why}");
        self.displaced.insert(id, why.clone());
        Displaced { peer, why }
    }
}

/// The address a peer is counted under: an IPv4 address mapped into IPv6 is the IPv4 one.
fn address(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// A duration as the log shows it.
fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl Clients {
    /// No connections yet.
    pub(crate) fn new(limits: Limits) -> Clients {
        Clients {
            limits,
            table: Mutex::new(Table::default()),
            gone: Condvar::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panicking client thread cannot leave the table half-changed: every change is
        // made under one lock, by one call.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection just accepted, to be served on a thread of its own (`stream` is a handle
    /// to it, to close it by). Refused when every session is busy, since it could not be
    /// served after its greeting either, or when its address holds its share and none of it
    /// is still greeting; otherwise it takes a place among those greeting, where another
    /// (from its own address, if that one is at its share) may give way to it.
    ///
    /// A connection from a trusted proxy (`proxied`) is not held to its address's share: it
    /// speaks for another client, whose address [`Clients::readdress`] then counts.
    pub(crate) fn admit(
        &self,
        id: u64,
        stream: TcpStream,
        (peer, proxied): (SocketAddr, bool),
    ) -> Result<(Counts, Option<Displaced>), Failure> {
        let mut table = self.table();
        let sessions = table.sessions.len();
        if sessions >= self.limits.sessions && table.busy == sessions {
            return Err(all_busy(sessions));
        }
        let now = Instant::now();
        let ip = address(peer);
        let held = table.per_address.get(&ip).copied().unwrap_or(0);
        let displaced = match self.limits.per_address {
            Some(share) if held >= share && !proxied => match table.displace_greeter(now, Some(ip))
            {
                Some(displaced) => Some(displaced),
                None => return Err(address_full(held, ip)),
            },
            _ if table.greeting.len() >= self.limits.greeting => table.displace_greeter(now, None),
            _ => None,
        };
        *table.per_address.entry(ip).or_default() += 1;
        let greeter = Greeter {
            stream,
            peer,
            since: now,
            stage: Stage::Silent,
        };
        table.greeting.insert(id, greeter);
        table.threads += 1;
        Ok((table.counts(), displaced))
    }

    /// A connection from a trusted proxy has said whose it is: it counts against `client`'s
    /// address from now on, within its share as a newcomer from there would be. Refused when
    /// that address holds its share and none of it is still greeting, or when the connection
    /// was closed to make room meanwhile.
    pub(crate) fn readdress(
        &self,
        id: u64,
        client: SocketAddr,
    ) -> Result<(Counts, Option<Displaced>), Failure> {
        let mut table = self.table();
        // Out of the table while the address's own give way, so that it is never one of them.
        let Some(mut greeter) = table.greeting.remove(&id) else {
            return Err(Failure::new(
                ErrorKind::Busy,
                "server busy; try again later",
            ));
        };
        table.release(greeter.peer);
        let ip = address(client);
        let held = table.per_address.get(&ip).copied().unwrap_or(0);
        let displaced = match self.limits.per_address {
            Some(share) if held >= share => {
                match table.displace_greeter(Instant::now(), Some(ip)) {
                    Some(displaced) => Some(displaced),
                    None => return Err(address_full(held, ip)),
                }
            }
            _ => None,
        };
        *table.per_address.entry(ip).or_default() += 1;
        greeter.peer = client;
        table.greeting.insert(id, greeter);
        Ok((table.counts(), displaced))
    }

    /// A connection admitted whose thread could not start: it is gone.
    pub(crate) fn forget(&self, id: u64) -> Option<TcpStream> {
        let mut table = self.table();
        table.threads -= 1;
        let greeter = table.greeting.remove(&id)?;
        table.release(greeter.peer);
        Some(greeter.stream)
    }

    /// A connection still greeting has got further.
    pub(crate) fn progress(&self, id: u64, stage: Stage) {
        if let Some(greeter) = self.table().greeting.get_mut(&id) {
            greeter.stage = stage;
        }
    }

    /// The connection has greeted: it takes a session slot, for which the session idle the
    /// longest is closed when all are taken. Refused when every session is busy or spared (see
    /// [`GRACE`]), or when the connection was itself closed to make room meanwhile.
    pub(crate) fn promote(&self, id: u64) -> Result<Option<Displaced>, Failure> {
        let mut table = self.table();
        let Some(greeter) = table.greeting.remove(&id) else {
            return Err(Failure::new(
                ErrorKind::Busy,
                "server busy; try again later",
            ));
        };
        let now = Instant::now();
        let mut displaced = None;
        if table.sessions.len() >= self.limits.sessions {
            displaced = table.displace_session(now, self.limits.grace);
            if displaced.is_none() {
                table.release(greeter.peer);
                return Err(all_busy(table.sessions.len()));
            }
        }
        let session = Session {
            stream: greeter.stream,
            peer: greeter.peer,
            busy: false,
            idle_since: now,
            worked: false,
        };
        table.sessions.insert(id, session);
        Ok(displaced)
    }

    /// Marks a session busy or idle; false when it has been closed to make room.
    pub(crate) fn set_busy(&self, id: u64, busy: bool) -> bool {
        let mut table = self.table();
        let Some(session) = table.sessions.get_mut(&id) else {
            return false;
        };
        let was = std::mem::replace(&mut session.busy, busy);
        session.worked |= busy;
        if !busy {
            session.idle_since = Instant::now();
        }
        match (was, busy) {
            (false, true) => table.busy += 1,
            (true, false) => table.busy -= 1,
            _ => {}
        }
        true
    }

    /// A client thread is ending: its connection goes. Returns why it was closed, if it was
    /// closed to make room, and what is left.
    pub(crate) fn end(&self, id: u64) -> (Option<String>, Counts) {
        let mut table = self.table();
        if let Some(greeter) = table.greeting.remove(&id) {
            table.release(greeter.peer);
        }
        if let Some(session) = table.sessions.remove(&id) {
            table.release(session.peer);
            if session.busy {
                table.busy -= 1;
            }
        }
        let displaced = table.displaced.remove(&id);
        table.threads -= 1;
        let counts = table.counts();
        drop(table);
        self.gone.notify_all();
        (displaced, counts)
    }

    /// Closes every connection still greeting and every idle session (the server is
    /// stopping); returns how many sessions there were, and how many of them busy.
    pub(crate) fn close_idle(&self) -> (usize, usize) {
        let table = self.table();
        for greeter in table.greeting.values() {
            let _ = greeter.stream.shutdown(Shutdown::Both);
        }
        for session in table.sessions.values().filter(|s| !s.busy) {
            let _ = session.stream.shutdown(Shutdown::Both);
        }
        (table.sessions.len(), table.busy)
    }

    /// Closes every connection; returns how many there were.
    pub(crate) fn close_all(&self) -> usize {
        let table = self.table();
        let streams = table.greeting.values().map(|g| &g.stream);
        let all: Vec<&TcpStream> = streams
            .chain(table.sessions.values().map(|s| &s.stream))
            .collect();
        for stream in &all {
            let _ = stream.shutdown(Shutdown::Both);
        }
        all.len()
    }

    /// Waits until every client thread has ended, or `deadline`; true if they all have.
    pub(crate) fn wait_gone(&self, deadline: Instant) -> bool {
        let mut table = self.table();
        while table.threads > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            table = self
                .gone
                .wait_timeout(table, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// The refusal when an address holds its share.
fn address_full(held: usize, ip: IpAddr) -> Failure {
    Failure::new(
        ErrorKind::Busy,
        format!(
            "server busy: {held} connections from {ip}, the most one address may have; try \
             again later"
        ),
    )
}

/// The refusal when every session is busy.
fn all_busy(sessions: usize) -> Failure {
    Failure::new(
        ErrorKind::Busy,
        format!("server busy: {sessions} clients connected, all busy; try again later"),
    )
}

#[cfg(test)]
mod tests;
