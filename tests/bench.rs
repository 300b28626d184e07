//! The benchmark, run tiny so that it cannot rot: it must complete and print every workload.
//! Its figures are not checked; a debug build on a shared machine says nothing about speed.

use std::fs;
use std::process::Command;

use ferry_tests::{bin, run, text};

#[test]
fn a_tiny_run_completes_and_prints_every_workload() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = bin("ferryd").parent().unwrap().to_path_buf();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry-bench"));
    cmd.args(["--size", "1M", "--small-files", "20", "--tree-files", "30"])
        .args(["--concurrent", "4"])
        .args(["--idle-clients", "10", "--reps", "1", "--markdown"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bin_dir);
    let out = run(cmd, b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for row in [
        "raw tcp copy (vs UPLOAD 1 MiB)",
        "UPLOAD 1 MiB ",
        "raw tcp copy (vs DOWNLOAD 1 MiB)",
        "DOWNLOAD 1 MiB ",
        "raw per-file exchange (vs UPLOAD 20 x 4 KiB (one session))",
        "raw per-file exchange (vs DOWNLOAD 20 x 4 KiB (one session))",
        "raw tree stream (vs UPLOAD -r 30 x 4 KiB in 30 dirs (one command))",
        "raw tree stream (vs DOWNLOAD -r 30 x 4 KiB in 30 dirs (one command))",
        "raw: 4 x `ferry --version` at once",
        "4 concurrent ferry, UPLOAD+DOWNLOAD 64 KiB",
        "raw: 10 connections to a one-thread listener",
        "10 idle clients: connect+greet all",
    ] {
        // Once in the plain table, once in the markdown one (some labels are also inside
        // their baseline's label).
        assert!(stdout.matches(row).count() >= 2, "{row:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("ERROR"), "{stdout}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the bench removed its data"
    );
}
