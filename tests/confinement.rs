//! Confinement: no name a client sends, and no link planted in the root, reaches a file
//! outside the root.

use std::fs;
use std::io::Write;

use ferry_core::{ErrorKind, Frame, Kind, WireError};
use ferry_tests::{Daemon, connect, end_frame};

#[test]
fn traversal_names_are_refused_by_the_server() {
    let server = Daemon::start(&[]);
    fs::write(server.dir.path().join("outside"), b"secret").unwrap();
    let mut conn = connect(server.addr);
    let outside = server.dir.path().join("outside");
    let absolute = outside.to_str().unwrap();
    for name in ["../outside", absolute, "a/b", "..", ".", "", "a\\b", "x\ny"] {
        for words in [
            vec!["DOWNLOAD", name],
            vec!["DELETE", name],
            vec!["UPLOAD", name, "1"],
            vec!["STAT", name],
        ] {
            match conn.call(words.iter().copied()) {
                Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::BadName, "{words:?}"),
                other => panic!("{words:?}: {other:?}"),
            }
        }
    }
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
    assert!(
        conn.call(["LIST"]).is_ok(),
        "the connection survives them all"
    );
}

#[test]
fn a_symlink_in_the_root_pointing_outside_is_never_followed() {
    let server = Daemon::start(&[]);
    let outside = server.dir.path().join("outside");
    fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, server.root().join("link")).unwrap();
    std::os::unix::fs::symlink(server.dir.path(), server.root().join("up")).unwrap();
    let mut conn = connect(server.addr);
    for words in [
        &["DOWNLOAD", "link"][..],
        &["STAT", "link"],
        &["DELETE", "link"],
        &["DOWNLOAD", "up"],
        &["DELETE", "up"],
    ] {
        match conn.call(words.iter().copied()) {
            Err(WireError::Remote(f)) => assert!(
                matches!(f.kind, ErrorKind::Forbidden | ErrorKind::NotFound),
                "{words:?}: {f}"
            ),
            other => panic!("{words:?}: {other:?}"),
        }
    }
    // LIST leaves links out.
    conn.call(["LIST"]).unwrap();
    assert!(conn.next_item().unwrap().is_none());
    // Uploading to the link's name replaces the link, never writes through it.
    conn.call(["UPLOAD", "link", "3"]).unwrap();
    conn.stream_mut().write_all(b"D\0\0\0\x03new").unwrap();
    conn.stream_mut().write_all(&end_frame(b"new")).unwrap();
    conn.expect_ok().unwrap();
    assert_eq!(
        fs::read(&outside).unwrap(),
        b"secret",
        "the target is untouched"
    );
    assert_eq!(fs::read(server.root().join("link")).unwrap(), b"new");
    assert!(
        server.root().join("up").is_symlink(),
        "the other link is still there"
    );
}

#[test]
fn the_client_accepts_only_bare_names_from_the_server() {
    for bad in ["../evil", "/etc/passwd", "a/b", "..", "x\u{1b}[2J"] {
        let fake = ferry_tests::Fake::start(move |conn| {
            let request = conn.recv().unwrap();
            assert_eq!(request.words, ["LIST"]);
            conn.send(&Frame::new(Kind::Ok, ["2"])).unwrap();
            conn.send(&Frame::new(Kind::Item, ["fine", "1", "0"]))
                .unwrap();
            conn.send(&Frame::new(Kind::Item, [bad, "1", "0"])).unwrap();
            conn.send(&Frame::new(Kind::End, [""; 0])).unwrap();
            let _ = conn.recv();
        });
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
        cmd.arg(fake.addr.to_string())
            .args(["--fingerprint", fake.fingerprint.as_str()])
            .args(["-c", "LIST"])
            .current_dir(dir.path());
        let out = ferry_tests::run(cmd, b"");
        fake.join();
        let (stdout, stderr) = ferry_tests::text(&out);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(
            stderr.contains("the server listed 1 bad name(s), left out: '"),
            "{stderr}"
        );
        assert!(!stderr.contains('\u{1b}'), "escaped: {stderr:?}");
        assert!(
            stdout.starts_with("fine "),
            "the good names are listed: {stdout}"
        );
        assert_eq!(stdout.lines().count(), 1, "and only those: {stdout}");
    }
}

#[test]
fn a_download_writes_only_its_destination_whatever_the_server_sends() {
    // The reply names no file: the client writes only the destination it derived from the
    // name the user typed (checked by the name rules), and its hidden partial file is gone.
    let fake = ferry_tests::Fake::start(|conn| {
        let request = conn.recv().unwrap();
        assert_eq!(request.words, ["DOWNLOAD", "wanted"]);
        conn.send(&Frame::new(Kind::Ok, ["3", "0", "0"])).unwrap();
        conn.stream_mut()
            .write_all(&ferry_tests::data_frames(b"abc"))
            .unwrap();
        conn.stream_mut().write_all(&end_frame(b"abc")).unwrap();
        let _ = conn.recv();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg(fake.addr.to_string())
        .args(["--fingerprint", fake.fingerprint.as_str()])
        .args(["-c", "DOWNLOAD wanted"])
        .current_dir(dir.path());
    let out = ferry_tests::run(cmd, b"");
    fake.join();
    assert!(out.status.success(), "{}", ferry_tests::text(&out).1);
    assert_eq!(ferry_tests::names_in(dir.path()), ["wanted"]);
}

#[test]
fn a_corrupted_download_is_refused_and_leaves_no_file() {
    let fake = ferry_tests::Fake::start(|conn| {
        let request = conn.recv().unwrap();
        assert_eq!(request.words, ["DOWNLOAD", "doc"]);
        conn.send(&Frame::new(Kind::Ok, ["8", "0", "0"])).unwrap();
        conn.stream_mut()
            .write_all(&ferry_tests::data_frames(b"abcdefgh"))
            .unwrap();
        // The digest of what was meant, not of what arrived.
        conn.stream_mut()
            .write_all(&end_frame(b"abcdefgX"))
            .unwrap();
        let _ = conn.recv();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg(fake.addr.to_string())
        .args(["--fingerprint", fake.fingerprint.as_str()])
        .args(["-c", "DOWNLOAD doc"])
        .current_dir(dir.path());
    let out = ferry_tests::run(cmd, b"");
    fake.join();
    let (_, stderr) = ferry_tests::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("downloading 'doc': digest mismatch: sent content has xxh3-128 "),
        "{stderr}"
    );
    assert!(
        ferry_tests::names_in(dir.path()).is_empty(),
        "no file, no partial"
    );
}
