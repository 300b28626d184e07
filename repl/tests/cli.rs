//! `ferry`'s command line, through the real binary against an in-process server.

use std::net::TcpListener;
use std::process::Command;

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn version_and_help() {
    let out = ferry(&["--version"]);
    assert!(out.status.success());
    let out = ferry(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--port-file",
        "--command",
        "--local-dir",
        "--history",
        "--no-history",
        "--quiet",
        "--token-file",
        "HOST[:PORT]",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[test]
fn a_history_file_and_no_history_conflict() {
    let out = ferry(&["--history", "h", "--no-history", "-c", "LIST"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn runs_commands_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ferry_server::Config::new(dir.path().join("data"));
    let shutdown = ferry_core::Shutdown::new();
    let server = ferry_server::Server::new(
        listener,
        config,
        ferry_commands::registry(),
        shutdown.clone(),
    )
    .unwrap();
    let thread = std::thread::spawn(move || server.run());
    std::fs::write(dir.path().join("data/hello"), b"hi").unwrap();
    let out = ferry(&[&addr.to_string(), "-c", "LIST"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello "));
    shutdown.request();
    thread.join().unwrap().unwrap();
}
