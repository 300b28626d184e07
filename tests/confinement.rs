//! Confinement: no name a client sends, and no link planted in the root, reaches a file
//! outside the root.

use std::fs;
use std::io::Write;

use ferry_core::{ErrorKind, WireError};
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
    let mut stream = conn.stream().try_clone().unwrap();
    stream.write_all(b"D\0\0\0\x03new").unwrap();
    stream.write_all(&end_frame(b"new")).unwrap();
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
