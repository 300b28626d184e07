//! Kept parts under abuse: a flood of cut-off uploads stays within the bounds on kept parts,
//! the oldest go first, one address holds only its share, the operator sees and clears them,
//! and a part that was kept still resumes.

use std::fs;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_tests::flood::{self, StopOnDrop, kept_parts};
use ferry_tests::{Daemon, bin, loopback, rooted, run, text, wait_until};

const KIB: usize = 1024;
/// The bounds the server runs with: 6 parts and 3 MiB in all, half of each for one address.
const ARGS: [&str; 6] = [
    "--max-partials",
    "6",
    "--max-partial-bytes",
    "3145728",
    "--partial-share",
    "50",
];

/// Content that is the same for the same name, so that a local copy can resume it.
fn content(name: &str, len: usize) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// Announces a 4 MiB upload of `name` from `from`, sends `sent` bytes of it and vanishes.
fn cut_off(server: &Daemon, from: IpAddr, name: &str, sent: usize) {
    let start = content(name, sent);
    flood::cut_off((from, server.addr), &rooted(name), 4 << 20, &start).unwrap();
}

/// How many uploads the server has kept a part of, by its log.
fn kept(server: &Daemon) -> usize {
    server.log().matches("bytes for resuming").count()
}

/// The kept parts as `ferryd --list-partials` shows them: size, owner, path.
fn listed(server: &Daemon) -> Vec<(u64, String, String)> {
    let mut cmd = Command::new(bin("ferryd"));
    cmd.args(["--root", "data", "--list-partials"])
        .current_dir(server.dir.path());
    let out = run(cmd, b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    let summary = lines.pop().unwrap();
    assert!(summary.ends_with(" bytes"), "{stdout}");
    lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[3] == "kept").then(|| (w[0].parse().unwrap(), w[2].into(), w[4].into()))
        })
        .collect()
}

/// The kept parts on disk: their count and bytes.
fn on_disk(server: &Daemon) -> (usize, u64) {
    kept_parts(&server.root())
}

#[test]
fn kept_parts_go_oldest_first_and_one_address_holds_only_its_share() {
    let server = Daemon::start(&ARGS);
    let mut n = 0;
    let mut one = |from: u8, name: &str| {
        cut_off(&server, loopback(from), name, 512 * KIB);
        n += 1;
        wait_until("the part to be kept", || kept(&server) == n);
    };
    for name in ["a0", "a1", "a2", "a3", "a4"] {
        one(2, name);
    }
    let paths = |s: &Daemon| -> Vec<String> { listed(s).into_iter().map(|p| p.2).collect() };
    assert_eq!(
        paths(&server),
        ["/a2", "/a3", "/a4"],
        "3 parts are one share"
    );
    for name in ["b0", "b1", "b2", "b3"] {
        one(3, name);
    }
    let both = ["/a2", "/a3", "/a4", "/b1", "/b2", "/b3"];
    assert_eq!(
        paths(&server),
        both,
        "each address its share, and 6 parts in all"
    );
    one(4, "c0");
    // Seven parts, 3.5 MiB: over both bounds, and the oldest of all goes.
    let held = listed(&server);
    let names: Vec<&str> = held.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(names, ["/a3", "/a4", "/b1", "/b2", "/b3", "/c0"]);
    assert_eq!(held[0].1, "127.0.0.2");
    assert_eq!(held[5].1, "127.0.0.4");
    assert!(
        server
            .log()
            .contains("evicted the kept part of '/a2' from 127.0.0.2")
    );

    // A part larger than one address's share keeps only its start, and resumes from there.
    cut_off(&server, loopback(5), "big", 2 << 20);
    wait_until("the big part to be kept", || {
        server.log().contains("kept 1572864 bytes for resuming")
    });
    fs::write(server.client_dir().join("big"), content("big", 4 << 20)).unwrap();
    let out = server.script(&["-c", "UPLOAD -c big"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("resuming at 1.50 MiB"), "{stdout}");
    let stored = fs::read(server.root().join("big")).unwrap();
    assert!(stored == content("big", 4 << 20), "byte-identical");
}

#[test]
fn a_flood_of_cut_off_uploads_never_exceeds_the_bounds() {
    let server = Daemon::start(&ARGS);
    let over = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (over, done) = (Arc::clone(&over), Arc::clone(&done));
        let root = server.root();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let (count, bytes) = kept_parts(&root);
                if count > 6 || bytes > 3 << 20 {
                    over.store(true, Ordering::Relaxed);
                }
                std::thread::yield_now();
            }
        })
    };
    // A failed wait stops the watcher too, rather than leave it spinning.
    let _done = StopOnDrop(Arc::clone(&done));
    std::thread::scope(|s| {
        for t in 0..40u8 {
            let server = &server;
            let from = loopback(10 + t % 4);
            s.spawn(move || cut_off(server, from, &format!("flood {t}"), 700 * KIB));
        }
    });
    wait_until("every part to be kept or evicted", || kept(&server) == 40);
    done.store(true, Ordering::Relaxed);
    ferry_tests::join_within(watcher, "the watcher to stop");
    assert!(!over.load(Ordering::Relaxed), "the bounds held throughout");
    let (count, bytes) = on_disk(&server);
    assert!(
        count <= 6 && bytes <= 3 << 20,
        "{count} parts, {bytes} bytes"
    );
    for owner in ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"] {
        let held: Vec<_> = listed(&server)
            .into_iter()
            .filter(|p| p.1 == owner)
            .collect();
        let bytes: u64 = held.iter().map(|p| p.0).sum();
        assert!(held.len() <= 3 && bytes <= 1572864, "{owner}: {held:?}");
    }

    // The operator clears them, whether or not the server runs.
    let mut cmd = Command::new(bin("ferryd"));
    cmd.args(["--root", "data", "--clear-partials"])
        .current_dir(server.dir.path());
    let out = run(cmd, b"");
    assert!(out.status.success());
    assert!(
        text(&out)
            .0
            .starts_with(&format!("removed {count} kept parts"))
    );
    assert_eq!(on_disk(&server), (0, 0));
    assert!(listed(&server).is_empty());
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success() && out.stdout.is_empty());
}
