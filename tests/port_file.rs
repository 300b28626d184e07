//! The port file belongs to its server: a second `ferryd` given the same one refuses to start,
//! one left by a dead server is replaced, and a server removes only a port file still its own.

use std::fs;
use std::process::Command;

use ferry_tests::{Daemon, text};

/// `ferryd --root data --port-file port` run to its end in `dir`.
fn second_ferryd(dir: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(ferry_tests::bin("ferryd"));
    cmd.args(["--root", "data", "--port-file", "port"])
        .env_remove("FERRY_TOKEN")
        .env("XDG_DATA_HOME", dir.join("xdg"))
        .current_dir(dir);
    ferry_tests::run(cmd, b"")
}

#[test]
fn a_second_server_refuses_a_port_file_whose_server_lives() {
    let server = Daemon::start(&[]);
    let port = fs::read_to_string(server.port_file()).unwrap();
    let out = second_ferryd(server.dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "it never listened: {stdout}");
    assert!(stderr.contains("belongs to another ferryd"), "{stderr}");
    assert!(
        stderr.contains(&format!("listening on {}", server.addr)),
        "names the running one: {stderr}"
    );
    assert!(stderr.contains("pid "), "{stderr}");
    // The first is untouched and still found through its port file.
    assert_eq!(fs::read_to_string(server.port_file()).unwrap(), port);
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn a_port_file_left_by_a_dead_server_is_replaced() {
    let mut server = Daemon::start(&[]);
    server.kill();
    let lock = ferry_server::lock_file(&server.port_file());
    assert!(
        server.port_file().exists() && lock.exists(),
        "a crash leaves both"
    );
    server.restart(&[]);
    let port = fs::read_to_string(server.port_file()).unwrap();
    assert_eq!(port, format!("{}\n", server.addr.port()));
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    server.signal("-TERM");
    assert!(server.wait().success());
    assert!(!server.port_file().exists() && !lock.exists());
}

#[test]
fn a_server_leaves_a_port_file_that_is_no_longer_its_own() {
    let mut server = Daemon::start(&[]);
    // Someone else's port file now stands where this server wrote its own.
    fs::write(server.port_file(), "12345\n").unwrap();
    server.signal("-TERM");
    assert!(server.wait().success());
    assert_eq!(fs::read_to_string(server.port_file()).unwrap(), "12345\n");
    assert!(server.log().contains("left '"), "{}", server.log());
    // What was still its own is gone.
    let beside = ferry_core::identity::fingerprint_file(&server.port_file());
    assert!(!beside.exists());
    assert!(!ferry_server::lock_file(&server.port_file()).exists());
}
