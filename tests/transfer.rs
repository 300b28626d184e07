//! Content: any size, any bytes, awkward names, several clients at once.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use ferry_tests::{Daemon, connect, random_bytes, sha256_file, text, wait_until};

#[test]
fn a_64_mib_random_file_round_trips_with_equal_sha256() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    fs::write(client.join("big.bin"), random_bytes(64 << 20)).unwrap();
    let out = server.script(&[], "UPLOAD big.bin\nDOWNLOAD big.bin back.bin\n");
    assert!(out.status.success(), "{}", text(&out).1);
    let original = sha256_file(&client.join("big.bin"));
    assert_eq!(sha256_file(&server.root().join("big.bin")), original);
    assert_eq!(sha256_file(&client.join("back.bin")), original);
}

#[test]
fn an_empty_file_round_trips() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    fs::write(client.join("empty"), b"").unwrap();
    let out = server.script(&[], "UPLOAD empty\nDOWNLOAD empty empty.back\nLIST\n");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(client.join("empty.back")).unwrap(), b"");
    assert!(text(&out).0.contains("uploaded 'empty' (0 B)"));
}

#[test]
fn names_with_spaces_and_unicode_round_trip() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    for (i, name) in [
        "with space.txt",
        "ünïcødé ✓.txt",
        "日本語 ファイル",
        "'quoted' \"both\"",
    ]
    .into_iter()
    .enumerate()
    {
        let content = format!("file {i}");
        fs::write(client.join(name), &content).unwrap();
        let quoted = shlex::try_quote(name).unwrap();
        let script = format!("UPLOAD {quoted}\nDOWNLOAD {quoted} out{i}\nLIST\n");
        let out = server.script(&[], &script);
        assert!(out.status.success(), "{name}: {}", text(&out).1);
        let listed = ferry_tests::listed(&text(&out).0);
        assert!(listed.iter().any(|l| l == name), "{name}");
        assert_eq!(
            fs::read_to_string(client.join(format!("out{i}"))).unwrap(),
            content
        );
    }
}

#[test]
fn two_clients_are_served_at_the_same_time() {
    let server = Daemon::start(&[]);
    // The first client is mid-upload, holding its connection and its thread...
    let mut slow = connect(server.addr);
    slow.call(["UPLOAD", "/slow", "8", "0", "ready"]).unwrap();
    slow.stream_mut().write_all(b"D\0\0\0\x04half").unwrap();
    // ...while a second client runs a whole session.
    fs::write(server.client_dir().join("quick"), b"quick").unwrap();
    let out = server.script(&[], "UPLOAD quick\nLIST\nDOWNLOAD quick q2\n");
    assert!(out.status.success(), "{}", text(&out).1);
    slow.stream_mut().write_all(b"D\0\0\0\x04done").unwrap();
    slow.stream_mut()
        .write_all(&ferry_tests::end_frame(b"halfdone"))
        .unwrap();
    slow.expect_ok().unwrap();
    assert_eq!(fs::read(server.root().join("slow")).unwrap(), b"halfdone");
}

#[test]
fn several_client_processes_at_once() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    let mut children = Vec::new();
    for i in 0..8 {
        let name = format!("f{i}");
        fs::write(client.join(&name), random_bytes(1 << 20)).unwrap();
        let mut child = server
            .ferry()
            .args([
                "-c",
                &format!("UPLOAD {name}"),
                "-c",
                &format!("DOWNLOAD {name} {name}.back"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((name, child.stderr.take(), child));
    }
    for (name, _, mut child) in children {
        let mut status = None;
        wait_until("a client to finish", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "{name}");
        assert_eq!(
            sha256_file(&client.join(&name)),
            sha256_file(&client.join(format!("{name}.back")))
        );
    }
}
