//! Resuming uploads on a bucket (feature `s3`, a real SeaweedFS): an upload cut short is kept
//! as hidden chunks that any node on the bucket reads back and goes on from; a chunk that
//! changed is never committed; racing resumers never make a corrupt object; kept chunks are
//! bounded, listed, cleared and swept by age.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ferry_core::store::{Store, Upload};
use ferry_core::{Digest, RemotePath};
use ferry_server::PartLimits;
use ferry_server::s3::{DIGEST_META, PART_SIZE, Raw, S3Store};
use ferry_tests::weed::Weed;
use ferry_tests::{Daemon, random_bytes, same_content, text, wait_for, wait_until};

use crate::objectstore::{PREFIX, chunk_keys, chunks, ok, serve, serve_with, uploading, visible};

const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Uploads `size` random bytes as `big.bin` through `server`, and kills the client once at
/// least two chunks are stored; returns once the server has kept what arrived.
fn cut(server: &Daemon, raw: &Raw, size: usize) {
    let mut client = uploading(server, raw, size);
    client.kill().unwrap();
    wait_for(&mut client);
    wait_until("the upload kept", || {
        chunks(raw).iter().any(|k| k.ends_with("/kept"))
    });
}

/// Runs `command` with `ferry` through `node`, from `client`'s folder; its output.
fn through(node: &Daemon, client: &Daemon, command: &str) -> std::process::Output {
    let mut cmd = node.ferry();
    cmd.current_dir(client.client_dir()).args(["-c", command]);
    ferry_tests::run(cmd, b"")
}

/// The digest a file's object keeps in its metadata.
fn kept_digest(raw: &Raw, name: &str) -> String {
    let headers = raw.head(&format!("{PREFIX}/{name}")).unwrap().unwrap();
    let meta = format!("x-amz-meta-{DIGEST_META}");
    headers.into_iter().find(|(k, _)| *k == meta).unwrap().1
}

/// `big.bin` downloaded back through `node` is the client's own.
fn same_back(node: &Daemon) {
    ok(node, "DOWNLOAD big.bin back.bin\n");
    let dir = node.client_dir();
    assert!(same_content(&dir.join("back.bin"), &dir.join("big.bin")));
}

/// A store and two nodes on it, and an upload of `size` bytes through the first cut off and
/// kept.
fn two_nodes_and_a_cut(size: usize) -> (Weed, Raw, Daemon, Daemon) {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let first = serve(&weed);
    let second = serve(&weed);
    cut(&first, &raw, size);
    (weed, raw, first, second)
}

#[test]
fn an_upload_cut_resumes_on_the_same_node() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let server = serve(&weed);
    cut(&server, &raw, 96 << 20);
    assert!(visible(&raw).is_empty(), "{:?}", visible(&raw));
    let resumed = ok(&server, "UPLOAD -c big.bin\n");
    assert!(resumed.contains("resuming at"), "{resumed}");
    same_back(&server);
    assert!(chunks(&raw).is_empty(), "{:?}", chunks(&raw));
    assert!(kept_digest(&raw, "big.bin").starts_with("1 100663296 xxh3-128 "));
}

#[test]
fn a_client_cut_off_from_one_node_resumes_through_another() {
    let (_weed, raw, first, second) = two_nodes_and_a_cut(96 << 20);
    let out = through(&second, &first, "UPLOAD -c big.bin");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{}", second.log());
    assert!(stdout.contains("resuming at"), "{stdout}");
    same_back(&first);
    let digest = kept_digest(&raw, "big.bin");
    let hex = digest.rsplit(' ').next().unwrap();
    assert!(ok(&first, "STAT big.bin\n").contains(hex), "{digest}");
    assert!(chunks(&raw).is_empty(), "{:?}", chunks(&raw));
}

#[test]
fn an_upload_cut_by_a_node_killed_resumes_through_another_from_its_full_chunks() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let mut first = serve(&weed);
    let second = serve(&weed);
    let mut client = uploading(&first, &raw, 96 << 20);
    first.kill();
    assert!(!wait_for(&mut client).success(), "the upload was cut");
    let out = through(&second, &first, "UPLOAD -c big.bin");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{}", second.log());
    assert!(stdout.contains("resuming at"), "{stdout}");
    assert!(
        through(&second, &first, "DOWNLOAD big.bin back.bin")
            .status
            .success()
    );
    let dir = first.client_dir();
    assert!(same_content(&dir.join("back.bin"), &dir.join("big.bin")));
    assert!(chunks(&raw).is_empty(), "{:?}", chunks(&raw));
}

#[test]
fn a_kept_chunk_that_changed_makes_the_upload_start_over() {
    let (_weed, raw, first, second) = two_nodes_and_a_cut(64 << 20);
    let first_chunk = chunk_keys(&raw).into_iter().next().unwrap();
    raw.put(&first_chunk, random_bytes(PART_SIZE)).unwrap();
    let out = through(&second, &first, "UPLOAD -c big.bin");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("starting over"), "{stdout}");
    same_back(&first);
    assert!(chunks(&raw).is_empty(), "{:?}", chunks(&raw));
}

/// A store on `weed`'s bucket, driven directly, and an upload of `data` to `/f.bin` cut after
/// `at` bytes and kept.
fn kept_upload(weed: &Weed, data: &[u8], at: usize) -> (S3Store, RemotePath) {
    let store = S3Store::connect(weed.settings(PREFIX), PartLimits::default()).unwrap();
    let path = RemotePath::from_wire("/f.bin").unwrap();
    let mut upload = store.create(&path, OWNER).unwrap();
    upload.write_all(&data[..at]).unwrap();
    assert_eq!(upload.keep(&path).unwrap(), at as u64);
    (store, path)
}

/// Resumes `path` and reads back what was kept, which must be `data`'s first `at` bytes.
fn resume<'s>(
    store: &'s S3Store,
    path: &RemotePath,
    data: &[u8],
    at: usize,
) -> Box<dyn Upload + 's> {
    let mut upload = store.resume(path, OWNER).unwrap().expect("a kept upload");
    assert_eq!(upload.size().unwrap(), at as u64);
    let mut back = Vec::new();
    (&mut upload)
        .take(at as u64)
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data[..at], "the kept bytes read back");
    upload
}

fn digest(data: &[u8]) -> Digest {
    let mut digest = Digest::new();
    digest.update(data);
    digest
}

/// The object at `path`, if any.
fn content(store: &S3Store, path: &RemotePath) -> Option<Vec<u8>> {
    let (mut source, _) = store.open(path).ok()?;
    let mut all = Vec::new();
    source.read_to_end(&mut all).unwrap();
    Some(all)
}

#[test]
fn a_resumer_whose_share_is_smaller_than_what_it_resumed_leaves_that_kept_whole() {
    let weed = Weed::start();
    let data = random_bytes(3 * PART_SIZE);
    let at = 2 * PART_SIZE + PART_SIZE / 2;
    let (store, path) = kept_upload(&weed, &data, at);
    // Another node whose share per address is a chunk and a half: the two full chunks it
    // goes on from are past it already.
    let limits = PartLimits {
        max_bytes: Some(6 * PART_SIZE as u64),
        share: 25,
        ..PartLimits::default()
    };
    let small = S3Store::connect(weed.settings(PREFIX), limits).unwrap();
    let mut upload = resume(&small, &path, &data, at);
    upload.write_all(&data[at..at + 1000]).unwrap();
    upload.keep(&path).unwrap();
    // What was kept before is there whole, for a node with room to go on from.
    let mut upload = resume(&store, &path, &data, at);
    upload.write_all(&data[at..]).unwrap();
    upload.commit(&path, None, &digest(&data)).unwrap();
    assert!(content(&store, &path).unwrap() == data);
}

#[test]
fn a_chunk_changed_after_it_was_read_fails_the_commit_and_nothing_shows() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let data = random_bytes(20 << 20);
    let at = 12 << 20;
    let (store, path) = kept_upload(&weed, &data, at);
    let mut upload = resume(&store, &path, &data, at);
    let first_chunk = chunk_keys(&raw).into_iter().next().unwrap();
    raw.put(&first_chunk, random_bytes(PART_SIZE)).unwrap();
    upload.write_all(&data[at..]).unwrap();
    let failed = upload.commit(&path, None, &digest(&data)).unwrap_err();
    assert!(
        failed.message.contains("send it again"),
        "{}",
        failed.message
    );
    assert_eq!(content(&store, &path), None);
    assert!(raw.pending(&format!("{PREFIX}/")).unwrap().is_empty());
}

#[test]
fn racing_resumers_never_make_a_corrupt_object() {
    let weed = Weed::start();
    let data = random_bytes(20 << 20);
    let mut other = data.clone();
    other[18 << 20..].copy_from_slice(&random_bytes(2 << 20));
    let at = 12 << 20;
    let (store, path) = kept_upload(&weed, &data, at);
    // Both take the kept chain; each goes on in an attempt of its own, one with other bytes.
    let mut one = resume(&store, &path, &data, at);
    let mut two = resume(&store, &path, &data, at);
    one.write_all(&data[at..]).unwrap();
    two.write_all(&other[at..]).unwrap();
    let first = two.commit(&path, None, &digest(&other));
    let second = one.commit(&path, None, &digest(&data));
    assert!(first.is_ok() || second.is_ok());
    let stored = content(&store, &path).expect("an object");
    let whole = [(&data, &second), (&other, &first)];
    let winner = whole
        .iter()
        .find(|(c, _)| stored == **c)
        .expect("one upload whole");
    assert!(winner.1.is_ok(), "the object is the upload that committed");
    let raw = weed.raw(PREFIX);
    let kept = kept_digest(&raw, "f.bin");
    assert!(kept.ends_with(&digest(&stored).hex()), "{kept}");
}

#[test]
fn an_upload_started_over_and_cut_again_replaces_what_was_kept() {
    let weed = Weed::start();
    let old = random_bytes(12 << 20);
    let new = random_bytes(20 << 20);
    let (store, path) = kept_upload(&weed, &old, 12 << 20);
    // The client's file changed: it starts over, and is cut again, shorter than before.
    let mut upload = resume(&store, &path, &old, 12 << 20);
    upload.restart().unwrap();
    upload.write_all(&new[..9 << 20]).unwrap();
    assert_eq!(upload.keep(&path).unwrap(), 9 << 20);
    let mut upload = resume(&store, &path, &new, 9 << 20);
    upload.write_all(&new[9 << 20..]).unwrap();
    upload.commit(&path, None, &digest(&new)).unwrap();
    assert!(content(&store, &path) == Some(new));
    assert!(chunks(&weed.raw(PREFIX)).is_empty());
}

#[test]
fn two_clients_resuming_through_two_nodes_at_once_store_the_file_whole() {
    let (_weed, raw, first, second) = two_nodes_and_a_cut(64 << 20);
    let racers: Vec<std::process::Child> = [&first, &second]
        .iter()
        .map(|node| {
            let mut cmd = node.ferry();
            cmd.current_dir(first.client_dir())
                .args(["-q", "-c", "UPLOAD -c big.bin"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    let done: Vec<bool> = racers
        .into_iter()
        .map(|mut c| wait_for(&mut c).success())
        .collect();
    assert!(
        done.contains(&true),
        "{done:?}\n{}\n{}",
        first.log(),
        second.log()
    );
    same_back(&first);
    wait_until("the chunks removed", || chunks(&raw).is_empty());
}

/// `ferryd --root s3://… ARG` on `weed`; its stdout.
fn operator(weed: &Weed, arg: &str, more: &[&str]) -> String {
    let root = format!("s3://{}/{PREFIX}", ferry_tests::weed::BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(ferry_tests::bin("ferryd"));
    cmd.args(["--root", &root, arg])
        .args(more)
        .current_dir(dir.path());
    cmd.envs(weed.env());
    let out = ferry_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out).1);
    text(&out).0
}

#[test]
fn kept_uploads_are_listed_cleared_bounded_and_swept_by_age() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let data = random_bytes(10 << 20);
    drop(kept_upload(&weed, &data, 9 << 20));
    let listed = operator(&weed, "--list-partials", &[]);
    assert!(listed.contains("kept  /f.bin"), "{listed}");
    assert!(listed.contains("1 parts, "), "{listed}");
    let cleared = operator(&weed, "--clear-partials", &[]);
    assert!(cleared.contains("removed 1 kept parts"), "{cleared}");
    assert!(chunks(&raw).is_empty(), "{:?}", chunks(&raw));
    // Bounded: at most one kept upload, the older evicted for the newer.
    let one = PartLimits {
        max_count: 1,
        ..PartLimits::default()
    };
    let store = S3Store::connect(weed.settings(PREFIX), one).unwrap();
    for name in ["/a", "/b"] {
        let path = RemotePath::from_wire(name).unwrap();
        let mut upload = store.create(&path, OWNER).unwrap();
        upload.write_all(b"part").unwrap();
        upload.keep(&path).unwrap();
    }
    let listed = operator(&weed, "--list-partials", &[]);
    assert!(
        listed.contains("kept  /b") && !listed.contains("/a"),
        "{listed}"
    );
    // Swept by age: a server started with a short maximum age removes it.
    let _server = serve_with(&weed, &[], &["--partial-max-age", "2"]);
    wait_until("the kept upload swept", || chunks(&raw).is_empty());
    drop(store);
}
