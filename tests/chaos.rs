//! Chaos: every flood of issue 12 at once against one `ferryd`, with limits cut down in
//! proportion, while a legitimate client works. The client is served every round within a
//! bounded wait, the server's memory stays under a bound, no byte of a committed file changes,
//! and the kept parts stay within their bounds throughout.
//!
//! Each flood runs on its own thread from its own loopback address, bounded in count and
//! stopped by a flag; what it saw is tallied and checked once all have stopped.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::error::is_timeout;
use ferry_core::socket::{Transport, Waiting};
use ferry_core::{Connection, Digest, Frame, Kind, WireError};
use ferry_tests::flood::{self, kept_parts, silent_flood};
use ferry_tests::{
    DEADLINE, Daemon, ProcStatus, greet_from, loopback, random_bytes, text, wait_until,
};

/// Seconds of `--idle-timeout` and `--handshake-timeout`: what every slow flood is dropped by.
const IDLE: u64 = 2;
/// Most parts kept, and their bytes, in all (an address may hold half of each).
const MAX_PARTS: usize = 8;
const MAX_PART_BYTES: u64 = 4 << 20;
/// Entries of the directory listed by clients that never read the listing; with names of 200
/// bytes, a listing is about 4.6 MB, more than the socket buffers hold, so the server blocks.
const ENTRIES: usize = 20_000;
/// The file downloaded by a client that never reads it (sparse: far more than any buffer).
const HUGE: u64 = 32 << 20;
/// Rounds of the legitimate client, and how long each may take.
const ROUNDS: usize = 10;
const ROUND_LIMIT: Duration = Duration::from_secs(20);
/// How long a flood holds a request it never reads before it looks whether the server let it
/// go: three idle timeouts, so a busy machine still has the server give up well within it.
const HOLD: Duration = Duration::from_secs(3 * IDLE);
/// The bound on the server's resident memory, KiB. Measured (debug build, 2 shared cores):
/// about 9 MiB at rest, 35 to 37 MiB at the peak of the floods, with at most about 55 threads.
/// What each connection may hold is bounded (a listing goes in batches, content in frames of
/// at most 4 MiB), and so is how many there are (16 sessions, 16 greeting), so the peak hardly
/// varies: 64 MiB leaves nearly twice the headroom. It is there to catch a cost that grows
/// with the data: six unread listings each held whole (4.6 MB of names apiece, more as strings
/// and frames), as before issue 12, would add an estimated 30 to 60 MB.
const MEMORY_BOUND_KIB: u64 = 64 << 10;
/// The server's send buffer (`--send-buffer`), a twentieth of a listing of [`ENTRIES`].
const SEND_BUFFER: usize = 256 << 10;

/// The server's limits, cut down in proportion: 16 sessions and 16 places for greeting (1024
/// and 128 by default), slow peers dropped after [`IDLE`] seconds (10 and 300), kept parts
/// bounded at [`MAX_PARTS`] and [`MAX_PART_BYTES`], half of each for one address; 32
/// connections from one address, the default. And a send buffer of [`SEND_BUFFER`] bytes
/// per socket: left to the kernel it grows up to `net.ipv4.tcp_wmem`'s maximum (4 MiB here),
/// which with what the unread client's socket takes in came within a few hundred KB of a
/// whole listing, and on some runs held all of it, so the server never had to give up.
fn args() -> Vec<String> {
    let args = format!(
        "--max-clients 16 --max-handshakes 16 --handshake-timeout {IDLE} --idle-timeout {IDLE} \
         --max-partials {MAX_PARTS} --max-partial-bytes {MAX_PART_BYTES} --partial-share 50 \
         --send-buffer {SEND_BUFFER}"
    );
    args.split_whitespace().map(String::from).collect()
}

/// What the floods saw, read by the test while they run and checked once they stop.
#[derive(Default)]
struct Tally {
    silent: AtomicUsize,
    idle: AtomicUsize,
    /// How long each dripped upload lived before the server gave up on it.
    drips: Mutex<Vec<Duration>>,
    /// Held requests never read (downloads, listings) that the server had given up on, and
    /// any it had sent whole instead.
    downloads_dropped: AtomicUsize,
    downloads_whole: AtomicUsize,
    listings_dropped: AtomicUsize,
    listings_whole: AtomicUsize,
    cut_offs: AtomicUsize,
    /// Connections that sent garbage and were closed by the server, or left open.
    vandals_closed: AtomicUsize,
    vandals_open: AtomicUsize,
}

/// What a flood thread is given: where to go, when to stop, where to tally.
struct Flood<'a> {
    addr: SocketAddr,
    stop: &'a AtomicBool,
    tally: &'a Tally,
}

impl Flood<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits `span` in steps, for a flood's pace; false if told to stop meanwhile.
    fn pause(&self, span: Duration) -> bool {
        let end = Instant::now() + span;
        while Instant::now() < end {
            if self.stopped() {
                return false;
            }
            thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
        !self.stopped()
    }

    /// A session from 127.0.0.`host`; `None` once stopped, or on a refusal (the server full of
    /// busy sessions, say) after a pause, so that a flood turned away does not spin.
    fn session(&self, host: u8) -> Option<Connection> {
        let conn = (!self.stopped())
            .then(|| greet_from(loopback(host), self.addr).ok())
            .flatten();
        if conn.is_none() {
            self.pause(Duration::from_millis(100));
        }
        conn
    }
}

fn count(n: &AtomicUsize) -> usize {
    n.load(Ordering::Relaxed)
}

/// (1) Connections that never greet, 48 from one address, re-opened as they are closed.
fn silent(f: &Flood) {
    silent_flood((loopback(2), f.addr), 48, 4, f.stop, &f.tally.silent);
}

/// (2) Twelve sessions that greet and sit idle, each replaced once the server closes it.
fn idle(f: &Flood) {
    let mut sessions: Vec<Connection> = Vec::new();
    for _ in 0..500 {
        sessions.retain_mut(|c| matches!(c.waiting(), Waiting::Nothing));
        while sessions.len() < 12 && !f.stopped() {
            match greet_from(loopback(3), f.addr) {
                Ok(conn) => sessions.push(conn),
                Err(_) => break,
            }
            f.tally.idle.fetch_add(1, Ordering::Relaxed);
        }
        if !f.pause(Duration::from_millis(100)) {
            return;
        }
    }
}

/// (3) An upload onto a committed file, its content dripped a byte a second, again and again.
fn drip(f: &Flood) {
    let mut header = vec![b'D'];
    header.extend_from_slice(&100_000u32.to_be_bytes());
    for _ in 0..50 {
        let Some(mut conn) = f.session(4) else {
            continue;
        };
        let upload = ["UPLOAD", "/few.bin", "100000", "0", "ready"];
        if conn.call(upload).is_err() || conn.stream_mut().write_all(&header).is_err() {
            continue;
        }
        let every = Duration::from_secs(1);
        match flood::drip(&mut conn, b"x", every, Duration::from_secs(30), f.stop) {
            Some(took) => f.tally.drips.lock().unwrap().push(took),
            None => return,
        }
    }
}

/// (4) A download of the huge file, never read: held, then drained to see whether the server
/// had given up (the content cut short) or sent it whole.
fn unread_download(f: &Flood) {
    for _ in 0..50 {
        let Some(mut conn) = f.session(5) else {
            continue;
        };
        let Ok(reply) = conn.call(["DOWNLOAD", "/huge.bin"]) else {
            continue;
        };
        if !f.pause(HOLD) {
            return;
        }
        let size = reply[0].parse().unwrap();
        let whole = conn.recv_content(&mut std::io::sink(), size, &mut Digest::new(), &mut |_| {
            true
        });
        let n = match whole {
            Ok(()) => &f.tally.downloads_whole,
            Err(_) => &f.tally.downloads_dropped,
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// (5) Six listings of the large directory at once, never read: held, then drained.
fn unread_listings(f: &Flood) {
    for _ in 0..50 {
        let mut held: Vec<Connection> = (0..6)
            .filter_map(|_| greet_from(loopback(6), f.addr).ok())
            .filter_map(|mut c| c.call(["LIST", "/many"]).is_ok().then_some(c))
            .collect();
        if !f.pause(HOLD) {
            return;
        }
        for conn in &mut held {
            let whole = loop {
                match conn.next_item() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break true,
                    Err(_) => break false,
                }
            };
            let n = match whole {
                true => &f.tally.listings_whole,
                false => &f.tally.listings_dropped,
            };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// (6) Uploads that announce 10 MiB, send 1 MiB and vanish, from three addresses in turn,
/// onto a committed file and onto new names, ten a second at most.
fn cut_offs(f: &Flood) {
    let start = random_bytes(1 << 20);
    for i in 0..100u8 {
        let path = match i % 2 {
            0 => "/few.bin".to_string(),
            _ => format!("/cut {i}"),
        };
        let from = loopback(7 + i % 3);
        if flood::cut_off((from, f.addr), &path, 10 << 20, &start).is_ok() {
            f.tally.cut_offs.fetch_add(1, Ordering::Relaxed);
        }
        if !f.pause(Duration::from_millis(100)) {
            return;
        }
    }
}

/// (7) Garbage after the greeting, of four kinds in turn; the server must close each.
fn vandals(f: &Flood) {
    let mut request = Vec::new();
    Frame::new(Kind::Request, ["UPLOAD", "/few.bin", "100", "0", "ready"])
        .encode(&mut request)
        .unwrap();
    let junk: [Vec<u8>; 4] = [
        random_bytes(1000),
        b"Q\xff\xff\xff\xff".to_vec(),
        b"D\0\0\0\x02ab".to_vec(),
        request[..request.len() / 2].to_vec(),
    ];
    for i in 0..100 {
        let Some(mut conn) = f.session(10) else {
            continue;
        };
        let _ = conn
            .stream_mut()
            .set_read_timeout(Some(Duration::from_secs(10)));
        if conn.stream_mut().write_all(&junk[i % junk.len()]).is_err() {
            continue;
        }
        let end = loop {
            if let Err(e) = conn.recv() {
                break e;
            }
        };
        let n = match end {
            WireError::Io(e) if is_timeout(&e) => &f.tally.vandals_open,
            _ => &f.tally.vandals_closed,
        };
        n.fetch_add(1, Ordering::Relaxed);
        if !f.pause(Duration::from_millis(100)) {
            return;
        }
    }
}

/// The highest the server's resident memory and the kept parts reached, sampled until `stop`.
#[derive(Debug, Default)]
struct Peaks {
    rss_kib: u64,
    threads: u64,
    parts: usize,
    part_bytes: u64,
    samples: usize,
}

fn sample(pid: u32, root: &Path, stop: &AtomicBool) -> Peaks {
    let mut peaks = Peaks::default();
    while !stop.load(Ordering::Relaxed) {
        let status = ProcStatus::read(pid).expect("ferryd is running");
        let (parts, bytes) = kept_parts(root);
        peaks.rss_kib = peaks.rss_kib.max(status.vmrss_kib);
        peaks.threads = peaks.threads.max(status.threads);
        peaks.parts = peaks.parts.max(parts);
        peaks.part_bytes = peaks.part_bytes.max(bytes);
        peaks.samples += 1;
        // The sampling's pace, not a wait for the server.
        thread::sleep(Duration::from_millis(20));
    }
    peaks
}

/// Puts the committed files in `root`: a few MiB, a huge sparse file, a directory of
/// [`ENTRIES`] entries with long names, and a name outside ASCII.
fn commit(root: &Path) {
    fs::write(root.join("few.bin"), random_bytes(4 << 20)).unwrap();
    let huge = fs::File::create(root.join("huge.bin")).unwrap();
    huge.set_len(HUGE).unwrap();
    fs::write(root.join("café ünï"), b"accents").unwrap();
    let many = root.join("many");
    fs::create_dir(&many).unwrap();
    let long = "n".repeat(194);
    for i in 0..ENTRIES {
        fs::write(many.join(format!("{i:05}-{long}")), i.to_string()).unwrap();
    }
}

/// Every file below `root` but the hidden parts, by path, with its SHA-256.
fn hashes(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".ferry-partial")
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap();
            (
                rel.display().to_string(),
                ferry_tests::sha256_file(e.path()),
            )
        })
        .collect()
}

/// One round of the legitimate client, `ferry` with a script: upload a file of its own, list,
/// stat it and download it back. It must succeed, within [`ROUND_LIMIT`]; how long it took.
fn work(server: &Daemon, round: usize) -> Duration {
    let (mine, back) = (format!("mine-{round}.bin"), format!("back-{round}.bin"));
    let content = random_bytes((256 << 10) + round * 4099);
    fs::write(server.client_dir().join(&mine), &content).unwrap();
    let script = format!("UPLOAD {mine}\nLIST\nSTAT {mine}\nDOWNLOAD {mine} {back}\n");
    let start = Instant::now();
    let out = server.script(&[], &script);
    let took = start.elapsed();
    let (stdout, stderr) = text(&out);
    if !out.status.success() {
        // What became of this client's connections (it alone comes from 127.0.0.1).
        let log = server.log();
        let mine: Vec<&str> = log.lines().filter(|l| l.contains("127.0.0.1:")).collect();
        let tail = mine[mine.len().saturating_sub(10)..].join("\n");
        panic!("round {round}, after {took:?}: {stderr}\n{tail}");
    }
    assert!(took < ROUND_LIMIT, "round {round} took {took:?}");
    assert!(stdout.contains(&mine), "{stdout}");
    let got = fs::read(server.client_dir().join(&back)).unwrap();
    assert!(got == content, "round {round}: not what was uploaded");
    took
}

/// Sets the flag when dropped: a failing round still stops the floods, so the scope ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every flood has begun: the silent and idle ones at full strength, a part cut off.
fn under_way(t: &Tally) -> bool {
    count(&t.silent) >= 48 && count(&t.idle) >= 12 && count(&t.cut_offs) >= 1
}

/// Every flood that the server must end has been ended at least once (each garbage kind).
fn dealt_with(t: &Tally) -> bool {
    let downloads = count(&t.downloads_dropped) + count(&t.downloads_whole);
    let listings = count(&t.listings_dropped) + count(&t.listings_whole);
    let vandals = count(&t.vandals_closed) + count(&t.vandals_open);
    !t.drips.lock().unwrap().is_empty() && downloads >= 1 && listings >= 6 && vandals >= 4
}

/// Runs the floods, and the client's rounds until there have been [`ROUNDS`] and every flood
/// has been dealt with, then stops the floods; each round's wait, and the peaks sampled.
fn under_floods(server: &Daemon, tally: &Tally) -> (Vec<Duration>, Peaks) {
    let stop = AtomicBool::new(false);
    let f = Flood {
        addr: server.addr,
        stop: &stop,
        tally,
    };
    let floods: [fn(&Flood); 7] = [
        silent,
        idle,
        drip,
        unread_download,
        unread_listings,
        cut_offs,
        vandals,
    ];
    let root = server.root();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let sampler = s.spawn(|| sample(server.pid(), &root, &stop));
        let f = &f;
        let running: Vec<_> = floods.map(|flood| s.spawn(move || flood(f))).into();
        wait_until("every flood under way", || under_way(tally));
        let start = Instant::now();
        let mut waits = Vec::new();
        while waits.len() < ROUNDS || !dealt_with(tally) {
            assert!(start.elapsed() < DEADLINE, "floods not dealt with in time");
            waits.push(work(server, waits.len()));
        }
        stop.store(true, Ordering::Relaxed);
        for flood in running {
            flood.join().unwrap();
        }
        (waits, sampler.join().unwrap())
    })
}

/// What the floods saw: each was dealt with as the limits say.
fn check_floods(t: &Tally) {
    let drips = t.drips.lock().unwrap();
    // Dropped within an idle timeout of falling behind, and seen at the next byte; a second
    // timeout's worth of slack for a busy machine.
    let bound = Duration::from_secs(3 * IDLE + 1);
    assert!(drips.iter().all(|d| *d < bound), "drips lived {drips:?}");
    let (downloads, listings) = (count(&t.downloads_whole), count(&t.listings_whole));
    assert!(
        downloads == 0,
        "{downloads} unread downloads were sent whole"
    );
    assert!(listings == 0, "{listings} unread listings were sent whole");
    assert_eq!(count(&t.vandals_open), 0, "garbage left a connection open");
}

#[test]
fn under_every_flood_at_once_a_client_is_served_in_bounded_memory_and_no_file_changes() {
    let start = Instant::now();
    let args = args();
    let server = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    commit(&server.root());
    let before = hashes(&server.root());
    let at_rest = ProcStatus::read(server.pid()).unwrap();
    let tally = Tally::default();
    let (waits, peaks) = under_floods(&server, &tally);
    let end = ProcStatus::read(server.pid()).unwrap();
    report(&tally, &waits, (at_rest, &peaks, end), start);
    check_floods(&tally);
    let peak = peaks.rss_kib.max(end.vmhwm_kib);
    assert!(
        peak < MEMORY_BOUND_KIB,
        "ferryd reached {peak} KiB, over the bound of {MEMORY_BOUND_KIB} KiB"
    );
    assert!(
        peaks.parts <= MAX_PARTS && peaks.part_bytes <= MAX_PART_BYTES,
        "kept parts reached {} ({} bytes)",
        peaks.parts,
        peaks.part_bytes
    );
    let after = hashes(&server.root());
    let changed: Vec<_> = before
        .iter()
        .filter(|(path, hash)| after.get(*path) != Some(hash))
        .collect();
    assert!(changed.is_empty(), "committed files changed: {changed:?}");
}

/// Says what happened, for a reader of the test's output (`--nocapture`).
fn report(t: &Tally, waits: &[Duration], memory: (ProcStatus, &Peaks, ProcStatus), start: Instant) {
    let (at_rest, peaks, end) = memory;
    let slowest = waits.iter().max().unwrap();
    eprintln!(
        "chaos: {} rounds served, the slowest in {slowest:?}; ferryd's RSS {} KiB at rest, \
         {} KiB at most sampled ({} samples, {} threads at most), VmHWM {} KiB; kept parts at \
         most {} ({} bytes); {} silent connections, {} idle sessions, drips dropped after \
         {:?}, {} unread downloads and {} unread listings dropped, {} uploads cut off, {} \
         garbage connections closed; {:?} in all",
        waits.len(),
        at_rest.vmrss_kib,
        peaks.rss_kib,
        peaks.samples,
        peaks.threads,
        end.vmhwm_kib,
        peaks.parts,
        peaks.part_bytes,
        count(&t.silent),
        count(&t.idle),
        t.drips.lock().unwrap(),
        count(&t.downloads_dropped),
        count(&t.listings_dropped),
        count(&t.cut_offs),
        count(&t.vandals_closed),
        start.elapsed(),
    );
}
