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
    // Paths travel resolved: absolute, plain components only. `..`, `.`, empty components
    // and separators inside a name are refused, never resolved by the server.
    let refused = [
        "../outside",
        "/../outside",
        "/a/../../outside",
        "/./x",
        "//x",
        "/x/",
        "",
        "outside",
        "/a\\b",
        "/x\ny",
    ];
    // A host path is only a path under the root, which does not exist there.
    let absolute = format!("/{}", outside.to_str().unwrap().trim_start_matches('/'));
    for (name, kind) in refused
        .iter()
        .map(|n| (*n, ErrorKind::BadName))
        .chain([(absolute.as_str(), ErrorKind::NotFound)])
    {
        for words in [
            vec!["DOWNLOAD", name],
            vec!["DELETE", name],
            vec!["UPLOAD", name, "1", "0", "ready"],
            vec!["STAT", name],
            vec!["LIST", name],
        ] {
            match conn.call(words.iter().copied()) {
                Err(WireError::Remote(f)) => assert_eq!(f.kind, kind, "{words:?}: {f}"),
                other => panic!("{words:?}: {other:?}"),
            }
        }
    }
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
    assert!(
        conn.call(["LIST", "/"]).is_ok(),
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
        &["DOWNLOAD", "/link"][..],
        &["STAT", "/link"],
        &["DELETE", "/link"],
        &["DOWNLOAD", "/up"],
        &["DELETE", "/up"],
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
    conn.call(["LIST", "/"]).unwrap();
    assert!(conn.next_item().unwrap().is_none());
    // Uploading to the link's name, or through the link to a directory, is refused before
    // any content; nothing is written through either.
    for path in ["/link", "/up/outside"] {
        match conn.call(["UPLOAD", path, "3", "0", "ready"]) {
            Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::Forbidden, "{path}: {f}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert_eq!(
        fs::read(&outside).unwrap(),
        b"secret",
        "the target is untouched"
    );
    assert!(server.root().join("link").is_symlink());
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
            assert_eq!(request.words, ["LIST", "/"]);
            conn.send(&Frame::new(Kind::Ok, [""; 0])).unwrap();
            conn.send(&Frame::new(Kind::Item, ["fine", "file", "1", "0"]))
                .unwrap();
            conn.send(&Frame::new(Kind::Item, [bad, "file", "1", "0"]))
                .unwrap();
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
        assert_eq!(
            ferry_tests::listed(&stdout),
            ["fine"],
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
        assert_eq!(request.words, ["DOWNLOAD", "/wanted"]);
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
        assert_eq!(request.words, ["DOWNLOAD", "/doc"]);
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
