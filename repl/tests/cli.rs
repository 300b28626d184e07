//! `ferry`'s command line, through the real binary against an in-process server.

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
    let server = ferry_tests::InProcess::start(|_| {});
    std::fs::write(server.root().join("hello"), b"hi").unwrap();
    let fingerprint = server.fingerprint.to_string();
    let out = ferry(&[
        &server.addr.to_string(),
        "--fingerprint",
        &fingerprint,
        "-c",
        "LIST",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("  hello\n"));
}
