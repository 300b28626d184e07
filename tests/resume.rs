//! Resuming: a transfer cut short goes on from what arrived with `-c` (`--continue`, or the old
//! `--resume`), the part kept is
//! checked against the source, and kept parts stay invisible and expire.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ferry_core::{ErrorKind, Frame, Kind, WireError};
use ferry_tests::{
    DEADLINE, Daemon, Fake, InProcess, connect, data_frames, names_in, random_bytes, same_content,
    text, wait_until,
};

/// Kills `child` (as a crash would: no clean-up runs) once a file in `dir` whose name starts
/// with `prefix` holds at least a MiB, so the transfer is known to be under way.
fn kill_mid_transfer(mut child: Child, dir: &Path, prefix: &str) {
    let start = Instant::now();
    let started = || {
        fs::read_dir(dir).ok().into_iter().flatten().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(prefix)
                && e.metadata().is_ok_and(|m| m.len() >= 1 << 20)
        })
    };
    // A tight poll: the whole transfer takes well under a second.
    while !started() {
        assert!(start.elapsed() < DEADLINE, "the transfer never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the client finished first"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn spawn(server: &Daemon, command: &str) -> Child {
    server
        .ferry()
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn an_upload_killed_midway_leaves_nothing_visible_and_resumes_byte_identical() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("big.bin");
    fs::write(&local, random_bytes(128 << 20)).unwrap();
    let partial = server.root().join(".ferry-partial");
    kill_mid_transfer(spawn(&server, "UPLOAD big.bin"), &partial, "up-");
    wait_until("the server to keep the part", || {
        server.log().contains("bytes for resuming")
    });
    assert!(!server.root().join("big.bin").exists());
    let out = server.script(&["-c", "LIST"], "");
    assert_eq!(text(&out).0, "", "nothing visible");

    let out = server.script(&["-c", "UPLOAD -c big.bin"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("resuming at "), "{stdout}");
    assert!(same_content(&local, &server.root().join("big.bin")));
    assert!(names_in(&partial).is_empty(), "nothing left behind");
}

#[test]
fn a_download_killed_midway_resumes_byte_identical() {
    let server = Daemon::start(&[]);
    let remote = server.root().join("big.bin");
    fs::write(&remote, random_bytes(128 << 20)).unwrap();
    kill_mid_transfer(
        spawn(&server, "DOWNLOAD big.bin"),
        &server.client_dir(),
        ".ferry-",
    );
    let kept = names_in(&server.client_dir());
    assert_eq!(kept.len(), 1, "only the hidden partial file: {kept:?}");
    assert!(kept[0].starts_with(".ferry-") && kept[0].ends_with(".part"));

    let out = server.script(&["-c", "DOWNLOAD --resume big.bin"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("resuming at "), "{stdout}");
    assert!(same_content(&remote, &server.client_dir().join("big.bin")));
    assert_eq!(names_in(&server.client_dir()), ["big.bin"]);
}

/// Starts an upload of `content` over a raw connection, sends `sent` bytes of it, and drops
/// the connection, as a client that vanished would.
fn interrupted_upload(server: &Daemon, name: &str, content: &[u8], sent: usize) {
    let mut conn = connect(server.addr);
    let size = content.len().to_string();
    let path = ferry_tests::rooted(name);
    let request = ["UPLOAD", &path, &size, "0", "ready"];
    assert_eq!(conn.call(request).unwrap(), ["0"]);
    conn.stream_mut()
        .write_all(&data_frames(&content[..sent]))
        .unwrap();
    drop(conn);
    wait_until("the server to keep the part", || {
        server
            .log()
            .contains(&format!("kept {sent} bytes for resuming"))
    });
}

#[test]
fn an_upload_whose_source_changed_starts_over() {
    let server = Daemon::start(&[]);
    let mut content = random_bytes(3 << 20);
    interrupted_upload(&server, "doc", &content, 1 << 20);
    content[10] ^= 1;
    fs::write(server.client_dir().join("doc"), &content).unwrap();
    let out = server.script(&["-c", "UPLOAD --continue doc"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("does not match the file; starting over"),
        "{stdout}"
    );
    assert_eq!(fs::read(server.root().join("doc")).unwrap(), content);
}

#[test]
fn an_upload_resumes_only_when_asked_and_a_plain_one_replaces_the_part() {
    let server = Daemon::start(&[]);
    let content = random_bytes(2 << 20);
    interrupted_upload(&server, "doc", &content, 1 << 20);
    fs::write(server.client_dir().join("doc"), &content).unwrap();
    let out = server.script(&["-c", "UPLOAD doc"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!text(&out).0.contains("resuming"));
    assert_eq!(fs::read(server.root().join("doc")).unwrap(), content);
    // The part kept is still there for a resumable upload, until it expires.
    let partial = server.root().join(".ferry-partial");
    assert_eq!(names_in(&partial).len(), 1);
    let out = server.script(&["-c", "UPLOAD --resume doc"], "");
    assert!(
        text(&out).0.starts_with("resuming at 1 MiB"),
        "{}",
        text(&out).0
    );
    assert!(names_in(&partial).is_empty());
}

#[test]
fn a_kept_part_is_invisible_to_every_verb() {
    let server = Daemon::start(&[]);
    let content = random_bytes(1 << 20);
    interrupted_upload(&server, "hidden", &content, 1000);
    let mut conn = connect(server.addr);
    conn.call(["LIST", "/"]).unwrap();
    assert!(conn.next_item().unwrap().is_none());
    for words in [
        &["DOWNLOAD", "/hidden"][..],
        &["STAT", "/hidden"],
        &["DELETE", "/hidden"],
    ] {
        match conn.call(words.iter().copied()) {
            Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::NotFound, "{words:?}"),
            other => panic!("{words:?}: {other:?}"),
        }
    }
    let kept = names_in(&server.root().join(".ferry-partial"));
    for name in [".ferry-partial", kept[0].as_str()] {
        match conn.call(["DOWNLOAD", name]) {
            Err(WireError::Remote(f)) => {
                assert!(matches!(f.kind, ErrorKind::BadName | ErrorKind::NotFound))
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_resumable_upload_over_the_wire() {
    // The exchange itself: offer, answer, the rest of the content, a digest over the whole.
    let server = Daemon::start(&[]);
    let content = random_bytes(100_000);
    interrupted_upload(&server, "wire", &content, 40_000);
    let mut conn = connect(server.addr);
    let reply = conn
        .call(["UPLOAD", "/wire", "100000", "0", "resume"])
        .unwrap();
    let mut prefix = ferry_core::Digest::new();
    prefix.update(&content[..40_000]);
    assert_eq!(reply, ["40000", "xxh3-128", &prefix.hex()]);
    conn.send(&Frame::new(Kind::Ok, ["40000"])).unwrap();
    conn.stream_mut()
        .write_all(&data_frames(&content[40_000..]))
        .unwrap();
    conn.stream_mut()
        .write_all(&ferry_tests::end_frame(&content))
        .unwrap();
    conn.expect_ok().unwrap();
    assert_eq!(fs::read(server.root().join("wire")).unwrap(), content);
}

/// A fake server that answers one DOWNLOAD with `sent` bytes of `content`, then hangs up.
fn cut_download(name: &'static str, content: Vec<u8>, sent: usize) -> Fake {
    Fake::start(move |conn| {
        let request = conn.recv().unwrap();
        assert_eq!(request.words, ["DOWNLOAD", &ferry_tests::rooted(name)]);
        let size = content.len().to_string();
        conn.send(&Frame::new(Kind::Ok, [size.as_str(), "0", "0"]))
            .unwrap();
        conn.stream_mut()
            .write_all(&data_frames(&content[..sent]))
            .unwrap();
    })
}

#[test]
fn a_cut_download_keeps_its_part_and_resumes_only_if_the_file_is_unchanged() {
    let server = Daemon::start(&[]);
    let content = random_bytes(3 << 20);
    // The server reads the part's bytes back to compare, unless it keeps the file's digest
    // (after a STAT, say): then the client's check at the end finds a changed file, and the
    // file is downloaded again from the start.
    let starting_over = "does not begin with the part downloaded; starting over";
    let not_the_start = "is not the start of the server's file: downloading it all";
    for (changed, kept, expect) in [
        (false, false, "resuming at 1 MiB"),
        (true, false, starting_over),
        (false, true, "resuming at 1 MiB"),
        (true, true, not_the_start),
    ] {
        fs::write(server.root().join("f"), &content).unwrap();
        let fake = cut_download("f", content.clone(), 1 << 20);
        let mut cmd = server.ferry();
        cmd.arg(fake.addr.to_string())
            .args(["--fingerprint", fake.fingerprint.as_str()])
            .args(["-c", "DOWNLOAD f"]);
        let out = ferry_tests::run(cmd, b"");
        fake.join();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out).1.contains("the part received is kept"),
            "{}",
            text(&out).1
        );
        let mut now = content.clone();
        if changed {
            now[5] ^= 0xff;
            fs::write(server.root().join("f"), &now).unwrap();
        }
        let script = if kept {
            "STAT f\nDOWNLOAD -c f\n"
        } else {
            "DOWNLOAD -c f\n"
        };
        let out = server.script(&[], script);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stdout.contains(expect) || stderr.contains(expect),
            "{stdout}{stderr}"
        );
        assert!(
            fs::read(server.client_dir().join("f")).unwrap() == now,
            "{changed} {kept}"
        );
        assert_eq!(names_in(&server.client_dir()), ["f"]);
        fs::remove_file(server.client_dir().join("f")).unwrap();
    }
}

#[test]
fn kept_parts_expire_at_start_and_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("data/.ferry-partial");
    fs::create_dir_all(&partial).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in ["resume-old", "up-leftover"] {
        let file = fs::File::create(partial.join(name)).unwrap();
        file.set_modified(old).unwrap();
    }
    fs::write(partial.join("resume-fresh"), b"x").unwrap();
    let server = InProcess::start(|c| {
        c.root = dir.path().join("data");
        c.partial_max_age = Duration::from_secs(2);
    });
    let _ = connect(server.addr);
    assert_eq!(names_in(&partial), ["resume-fresh"], "swept at start");
    // Then, while serving, the fresh one expires too.
    wait_until("the janitor to sweep", || names_in(&partial).is_empty());
}
