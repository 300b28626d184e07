//! `ferryd`'s command line, through the real binary.

use std::process::Command;

fn ferryd(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferryd"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferryd(&["--version"], dir.path());
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("ferryd ", env!("CARGO_PKG_VERSION"))
    );
    let out = ferryd(&["--help"], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--root",
        "--bind",
        "--port",
        "--port-file",
        "--max-clients",
        "--max-handshakes",
        "--max-per-address",
        "--handshake-timeout",
        "--idle-timeout",
        "--min-rate",
        "--grace",
        "--max-file-size",
        "--partial-max-age",
        "--token-file",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[test]
fn bad_arguments_exit_2_without_publishing_a_port() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--bind", "not-an-ip"][..],
        &["--port", "70000"],
        &["--max-clients", "0"],
        &["--frobnicate"],
    ] {
        let out = ferryd(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let out = ferryd(&["--root", "a-file/sub"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("opening root 'a-file/sub'"), "{stderr}");
    assert!(
        !dir.path().join("port").exists(),
        "no port file for a server that failed"
    );
}

#[test]
fn the_readme_shows_the_help_as_ferryd_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(ferryd(&["--help"], dir.path()).stdout).unwrap();
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## ferryd\n\n```text\n")
        .expect("the ferryd section")
        + 19;
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("the end of the block")];
    assert_eq!(
        block, help,
        "README.md's ferryd --help block is out of date"
    );
}
