//! The object store (`--root s3://BUCKET/PREFIX`, feature `s3`) against a real SeaweedFS:
//! every verb through the real `ferry`, bounded memory, the digest kept as metadata, nothing
//! visible left by a client or a server killed mid-upload (its chunks hidden, and swept by
//! age). Resuming uploads is in `objectstore_resume.rs`.

use std::fs;
use std::process::{Command, Stdio};

use ferry_server::s3::{DIGEST_META, Raw};
use ferry_tests::weed::Weed;
use ferry_tests::{Daemon, random_bytes, sha256_file, text, wait_for, wait_until};

pub(crate) const PREFIX: &str = "some/prefix";

/// `ferryd --root s3://BUCKET/PREFIX` on `weed`.
pub(crate) fn serve(weed: &Weed) -> Daemon {
    serve_with(weed, &[], &[])
}

/// [`serve`], with more variables in ferryd's environment and more arguments.
pub(crate) fn serve_with(weed: &Weed, more: &[(&str, &str)], args: &[&str]) -> Daemon {
    let root = format!("s3://{}/{PREFIX}", ferry_tests::weed::BUCKET);
    let env = weed.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(more);
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--root", &root, "--port-file", "port"];
    all.extend_from_slice(args);
    Daemon::start_env(dir, &all, &env)
}

/// `ferry -c "UPLOAD big.bin"` of `size` random bytes under way, once two chunks of it are
/// in the bucket `raw` reaches.
pub(crate) fn uploading(server: &Daemon, raw: &Raw, size: usize) -> std::process::Child {
    fs::write(server.client_dir().join("big.bin"), random_bytes(size)).unwrap();
    let child = server
        .ferry()
        .args(["-q", "-c", "UPLOAD big.bin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("two chunks stored", || chunk_keys(raw).len() >= 2);
    child
}

/// The chunk objects (not records) among the hidden keys.
pub(crate) fn chunk_keys(raw: &Raw) -> Vec<String> {
    let numbered = |k: &String| {
        let leaf = k.rsplit('/').next().unwrap();
        leaf.bytes().all(|b| b.is_ascii_digit())
    };
    chunks(raw).into_iter().filter(numbered).collect()
}

/// The hidden objects of uploads kept or in progress (chunks and records), sorted.
pub(crate) fn chunks(raw: &Raw) -> Vec<String> {
    let mut keys = raw.keys(&format!("{PREFIX}/.ferry-partial/")).unwrap();
    keys.sort();
    keys
}

/// The keys under the prefix that are not hidden.
pub(crate) fn visible(raw: &Raw) -> Vec<String> {
    let hidden = format!("{PREFIX}/.ferry-partial/");
    keys(raw)
        .into_iter()
        .filter(|k| !k.starts_with(&hidden))
        .collect()
}

/// `ferry -c "DOWNLOAD name as"` under way, once more than 1 MiB of it is on disk.
fn downloading(server: &Daemon, name: &str, to: &str) -> std::process::Child {
    let client = server.client_dir();
    let child = server
        .ferry()
        .args(["-q", "-c", &format!("DOWNLOAD {name} {to}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("part of the download on disk", || {
        fs::read_dir(&client).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".part") && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
        })
    });
    child
}

/// Runs `script` through `ferry`, which must succeed; its stdout.
pub(crate) fn ok(server: &Daemon, script: &str) -> String {
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{script}: {stderr}\n{}", server.log());
    stdout
}

/// Runs `script` through `ferry`, which must fail; its stderr.
pub(crate) fn fails(server: &Daemon, script: &str) -> String {
    let out = server.script(&[], script);
    assert!(!out.status.success(), "{script} succeeded");
    text(&out).1
}

/// The keys under the prefix (the prefix's own folder left out).
pub(crate) fn keys(raw: &Raw) -> Vec<String> {
    let own = format!("{PREFIX}/");
    let mut keys: Vec<String> = raw
        .keys(&own)
        .unwrap()
        .into_iter()
        .filter(|k| *k != own)
        .collect();
    keys.sort();
    keys
}

/// The server's peak resident memory in KiB (VmHWM).
fn peak_rss_kib(server: &Daemon) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn every_verb_works_on_a_bucket() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let server = serve(&weed);
    let client = server.client_dir();
    fs::write(client.join("ünï cødé.txt"), "small\n").unwrap();
    fs::write(client.join("big.bin"), random_bytes(256 << 20)).unwrap();
    ok(&server, "MKDIR 'dir one'\nMKDIR 'dir one/empty'\n");
    ok(&server, "UPLOAD 'ünï cødé.txt' 'dir one/ünï cødé.txt'\n");
    ok(&server, "UPLOAD big.bin 'dir one/big.bin'\n");
    let listed = ok(&server, "LIST 'dir one'\n");
    for name in ["ünï cødé.txt", "big.bin", "empty/"] {
        assert!(
            ferry_tests::listed(&listed).iter().any(|l| l == name),
            "{name}: {listed}"
        );
    }
    assert_eq!(ferry_tests::listed(&ok(&server, "LIST /\n")), ["dir one/"]);
    ok(&server, "DOWNLOAD 'dir one/big.bin' back.bin\n");
    ok(&server, "DOWNLOAD 'dir one/ünï cødé.txt' back.txt\n");
    assert_eq!(
        sha256_file(&client.join("back.bin")),
        sha256_file(&client.join("big.bin"))
    );
    assert_eq!(
        fs::read_to_string(client.join("back.txt")).unwrap(),
        "small\n"
    );
    let rss = peak_rss_kib(&server);
    eprintln!("ferryd peaked at {rss} KiB");
    assert!(rss < 64 * 1024, "ferryd peaked at {rss} KiB moving 256 MiB");

    assert!(fails(&server, "RMDIR 'dir one'\n").contains("not empty"));
    ok(&server, "RMDIR 'dir one/empty'\n");
    ok(&server, "RENAME 'dir one' two\n");
    let moved = ok(&server, "LIST two\n");
    assert!(
        moved.contains("big.bin") && moved.contains("ünï cødé.txt"),
        "{moved}"
    );
    assert!(fails(&server, "LIST 'dir one'\n").contains("no such"));
    ok(
        &server,
        "RENAME 'two/ünï cødé.txt' 'two/renamed.txt'\nDELETE two/renamed.txt\n",
    );
    assert_eq!(
        keys(&raw),
        [format!("{PREFIX}/two/"), format!("{PREFIX}/two/big.bin")]
    );
    ok(&server, "DELETE -r two\n");
    assert_eq!(ok(&server, "LIST /\n").trim(), "");
    assert!(keys(&raw).is_empty(), "{:?}", keys(&raw));
}

#[test]
fn trees_go_up_and_down_and_a_cut_download_resumes() {
    let weed = Weed::start();
    let server = serve(&weed);
    let client = server.client_dir();
    fs::create_dir_all(client.join("tree/a b/ç")).unwrap();
    fs::write(client.join("tree/top.txt"), "top").unwrap();
    fs::write(client.join("tree/a b/ç/deep.bin"), random_bytes(300_000)).unwrap();
    fs::write(client.join("big.bin"), random_bytes(96 << 20)).unwrap();
    ok(&server, "UPLOAD -r tree\nDOWNLOAD -r tree back\n");
    assert_eq!(fs::read(client.join("back/top.txt")).unwrap(), b"top");
    assert_eq!(
        sha256_file(&client.join("back/a b/ç/deep.bin")),
        sha256_file(&client.join("tree/a b/ç/deep.bin"))
    );
    // With nothing kept, a resumed upload starts afresh.
    ok(&server, "UPLOAD -c big.bin\n");
    let mut cut = downloading(&server, "big.bin", "got.bin");
    cut.kill().unwrap();
    wait_for(&mut cut);
    let resumed = ok(&server, "DOWNLOAD -c big.bin got.bin\n");
    assert!(resumed.contains("resuming at"), "{resumed}");
    assert_eq!(
        sha256_file(&client.join("got.bin")),
        sha256_file(&client.join("big.bin"))
    );
}

#[test]
fn stat_answers_with_the_digest_kept_in_metadata() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let server = serve(&weed);
    fs::write(server.client_dir().join("f"), random_bytes(100_000)).unwrap();
    ok(&server, "UPLOAD f\n");
    let key = format!("{PREFIX}/f");
    let headers = raw.head(&key).unwrap().expect("the object exists");
    let header = |name: &str| {
        let found = headers.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let kept = header(&format!("x-amz-meta-{DIGEST_META}"));
    let digest = kept.rsplit(' ').next().unwrap().to_string();
    assert_eq!(kept, format!("1 100000 xxh3-128 {digest}"));
    assert!(ok(&server, "STAT f\n").contains(&digest));
    // A digest put in the metadata by hand is what STAT shows: it reads no content.
    let planted = format!("1 100000 xxh3-128 {}", "ab".repeat(16));
    raw.set_metadata(&key, &header("etag"), &[(DIGEST_META, &planted)])
        .unwrap();
    assert!(ok(&server, "STAT f\n").contains(&"ab".repeat(16)));
}

#[test]
fn a_client_killed_mid_upload_leaves_nothing_visible_and_its_part_kept_hidden() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let server = serve(&weed);
    let mut client = uploading(&server, &raw, 128 << 20);
    client.kill().unwrap();
    wait_for(&mut client);
    wait_until("the upload kept", || {
        chunks(&raw).iter().any(|k| k.ends_with("/kept"))
    });
    assert!(raw.pending(&format!("{PREFIX}/")).unwrap().is_empty());
    assert!(visible(&raw).is_empty(), "{:?}", visible(&raw));
    assert_eq!(ok(&server, "LIST /\n").trim(), "");
}

#[test]
fn what_a_killed_server_left_is_removed_once_older_than_the_maximum_age() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let mut server = serve(&weed);
    let mut client = uploading(&server, &raw, 128 << 20);
    server.kill();
    wait_for(&mut client);
    assert!(!chunks(&raw).is_empty());
    // Another node may be serving the prefix, so only age tells a crash's leftovers apart.
    let server = serve_with(&weed, &[], &["--partial-max-age", "2"]);
    wait_until("the leftover removed", || chunks(&raw).is_empty());
    assert!(server.log().contains("removed 1 "), "{}", server.log());
    assert!(keys(&raw).is_empty(), "{:?}", keys(&raw));
}

#[test]
fn a_second_node_on_the_prefix_leaves_an_upload_in_flight_alone() {
    let weed = Weed::start();
    let raw = weed.raw(PREFIX);
    let first = serve(&weed);
    let mut client = uploading(&first, &raw, 192 << 20);
    let second = serve(&weed);
    assert!(!second.log().contains("removed"), "{}", second.log());
    assert!(wait_for(&mut client).success(), "{}", first.log());
    assert!(ok(&second, "STAT big.bin\n").contains("201326592 bytes"));
}

#[test]
fn a_local_root_named_like_a_bucket_is_refused_without_the_store() {
    // With the feature built, a malformed bucket name is refused before anything is made.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(ferry_tests::bin("ferryd"));
    cmd.args(["--root", "s3://No_Such", "--port-file", "port"])
        .current_dir(dir.path())
        .env("XDG_DATA_HOME", dir.path());
    let out = ferry_tests::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("not a bucket name"),
        "{}",
        text(&out).1
    );
}

#[test]
fn a_store_that_stops_answering_times_out_rather_than_hang() {
    // An endpoint that takes connections and never answers: ferryd's first request to the
    // store (its check at start) must give up after FERRY_S3_TIMEOUT.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        // Held open, unanswered, until the test process ends.
        let kept: Vec<_> = silent.incoming().collect();
        drop(kept);
    });
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut cmd = Command::new(ferry_tests::bin("ferryd"));
    cmd.args(["--root", "s3://silent-bucket", "--port-file", "port"])
        .current_dir(dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "key")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("FERRY_S3_TIMEOUT", "1");
    // Fails the test, rather than hang, if ferryd waits for ever.
    let out = ferry_tests::run(cmd, b"");
    let stderr = text(&out).1;
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the store did not answer within 1s"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "gave up in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_store_that_stops_answering_mid_session_fails_the_command_and_serving_goes_on() {
    let weed = Weed::start();
    let server = serve_with(&weed, &[("FERRY_S3_TIMEOUT", "2")], &[]);
    fs::write(server.client_dir().join("f"), b"content").unwrap();
    ok(&server, "UPLOAD f\n");
    // The store stops answering: a request times out (and is retried) rather than hold the
    // client's thread until the store comes back.
    weed.signal("-STOP");
    let started = std::time::Instant::now();
    let out = server.script(&[], "STAT f\n");
    let took = started.elapsed();
    weed.signal("-CONT");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert!(
        took < std::time::Duration::from_secs(40),
        "gave up after {took:?}"
    );
    assert!(ok(&server, "STAT f\n").contains("7 bytes"), "served again");
}

#[test]
fn two_nodes_on_a_bucket_behind_haproxy_see_each_others_uploads() {
    let weed = Weed::start();
    let shared = tempfile::tempdir().unwrap();
    let identity = shared.path().join("identity.pem");
    let identity = identity.to_str().unwrap();
    let root = format!("s3://{}/{PREFIX}", ferry_tests::weed::BUCKET);
    let env = weed.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proxy = ferry_tests::loopback(2).to_string();
    let args = [
        "--root",
        &root,
        "--port-file",
        "port",
        "--identity",
        identity,
        "--trusted-proxy",
        &proxy,
    ];
    // One after the other: the first makes the identity the second loads.
    let nodes: Vec<Daemon> = (0..2)
        .map(|_| Daemon::start_env(tempfile::tempdir().unwrap(), &args, &env))
        .collect();
    let addrs = [nodes[0].addr, nodes[1].addr];
    let balancer = ferry_tests::Balancer::start(&addrs, ferry_tests::loopback(2));
    let through = |command: &str| {
        let mut cmd = Command::new(ferry_tests::bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", shared.path().join("xdg"))
            .current_dir(nodes[0].client_dir())
            .args(["-q", "--fingerprint", nodes[0].fingerprint.as_str()])
            .arg(balancer.addr.to_string())
            .args(["-c", command]);
        ferry_tests::run(cmd, b"")
    };
    // Round robin: the uploads land through both nodes, into one bucket.
    for i in 0..4 {
        fs::write(nodes[0].client_dir().join(format!("f{i}")), format!("{i}")).unwrap();
        assert!(through(&format!("UPLOAD f{i}")).status.success());
    }
    for node in &nodes {
        let listed = ferry_tests::listed(&ok(node, "LIST\n"));
        assert_eq!(listed, ["f0", "f1", "f2", "f3"], "{}", node.log());
    }
    // SHUTDOWN through the balancer stops no node.
    let out = through("SHUTDOWN");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert!(
        text(&out).1.contains("refused through a load balancer"),
        "{}",
        text(&out).1
    );
    for node in &nodes {
        ok(node, "STAT f0\n");
    }
}

#[test]
fn a_download_cut_by_a_node_killed_resumes_through_another_node() {
    let weed = Weed::start();
    let mut first = serve(&weed);
    let second = serve(&weed);
    let client = first.client_dir();
    fs::write(client.join("big.bin"), random_bytes(160 << 20)).unwrap();
    ok(&first, "UPLOAD big.bin\n");
    let mut cut = downloading(&first, "big.bin", "got.bin");
    first.kill();
    assert!(!wait_for(&mut cut).success(), "the download was cut");
    // The part is the client's; the other node serves the rest from the same bucket.
    let mut cmd = second.ferry();
    cmd.current_dir(&client)
        .args(["-c", "DOWNLOAD -c big.bin got.bin"]);
    let out = ferry_tests::run(cmd, b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("resuming at"), "{stdout}");
    assert_eq!(
        sha256_file(&client.join("got.bin")),
        sha256_file(&client.join("big.bin"))
    );
}
