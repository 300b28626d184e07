//! Script mode and `-c`: what scripts rely on.

use std::fs;

use ferry_tests::{Daemon, text};

#[test]
fn comments_and_blank_lines_are_skipped() {
    let server = Daemon::start(&[]);
    let out = server.script(&[], "# a comment\n\n   \n  # indented comment\nLIST\n");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).1.is_empty());
}

#[test]
fn the_first_failure_stops_the_script_with_exit_1() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a"), b"a").unwrap();
    let out = server.script(&[], "DELETE missing\nUPLOAD a\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(!server.root().join("a").exists(), "the script stopped");
    let (_, stderr) = text(&out);
    assert!(
        stderr.starts_with("error: line 1: deleting: no such file '/missing'"),
        "{stderr}"
    );
}

#[test]
fn a_dash_prefixed_line_may_fail_without_changing_the_exit_code() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a"), b"a").unwrap();
    let out = server.script(&[], "-DELETE missing\n- DOWNLOAD nothing\nUPLOAD a\n");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        2,
        "both failures reported: {stderr}"
    );
    // Reported as what they are: warnings that change nothing, not errors.
    for (line, number) in stderr.lines().zip(1..) {
        assert!(
            line.starts_with(&format!("warning: line {number}: ")),
            "{stderr}"
        );
        assert!(
            line.ends_with("(ignored: the line starts with '-')"),
            "{stderr}"
        );
    }
    assert!(server.root().join("a").exists(), "the script went on");
}

#[test]
fn a_closed_stdout_ends_the_script_quietly() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("listed"), b"x").unwrap();
    fs::write(server.client_dir().join("a"), b"a").unwrap();
    for args in [&["-c", "LIST", "-c", "UPLOAD a"][..], &[]] {
        let mut cmd = server.ferry();
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // The reader has gone before the first line, as `head` goes after its last.
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"LIST\nUPLOAD a\n").unwrap();
        drop(stdin);
        let mut status = None;
        ferry_tests::wait_until("ferry to exit", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            status.unwrap().code(),
            Some(141),
            "{args:?}: {}",
            text(&out).1
        );
        assert!(text(&out).1.is_empty(), "quiet: {}", text(&out).1);
        assert!(
            !server.root().join("a").exists(),
            "the script stopped there"
        );
    }
}

#[test]
fn unknown_verbs_and_bad_quoting_are_failed_commands() {
    let server = Daemon::start(&[]);
    for (line, expect) in [
        ("FROB x", "unknown verb 'FROB'"),
        ("UPLOAD \"unclosed", "unbalanced quotes"),
    ] {
        let out = server.script(&[], &format!("{line}\n"));
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert!(text(&out).1.contains(expect), "{}", text(&out).1);
    }
}

#[test]
fn aliases_run_their_verb_and_a_near_miss_gets_a_suggestion() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a.txt"), b"alias").unwrap();
    let script = "put a.txt\nls\nget a.txt b.txt\nrm a.txt\ndir\nbye\nLIST\n";
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        fs::read(server.client_dir().join("b.txt")).unwrap(),
        b"alias"
    );
    assert!(!server.root().join("a.txt").exists(), "rm deleted it");
    assert_eq!(
        ferry_tests::listed(&stdout)
            .iter()
            .filter(|l| *l == "a.txt")
            .count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("uploaded 'a.txt'") && stdout.contains("deleted 'a.txt'"));
    let out = server.script(&["-c", "DOWNLAOD a.txt"], "");
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert_eq!(
        stderr.trim_end(),
        "error: line 1: unknown verb 'DOWNLAOD'; did you mean DOWNLOAD?"
    );
}

#[test]
fn quoted_words_carry_spaces() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("my file.txt"), b"spaced").unwrap();
    let out = server.script(&[], "UPLOAD \"my file.txt\" 'other name ✓'\n");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        fs::read(server.root().join("other name ✓")).unwrap(),
        b"spaced"
    );
}

#[test]
fn dash_c_runs_its_commands_in_order_then_exits() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a"), b"a").unwrap();
    // -c wins over stdin: the piped line must not run.
    let out = server.script(
        &["-c", "UPLOAD a", "-c", "DELETE a", "-c", "LIST"],
        "UPLOAD a\n",
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!server.root().join("a").exists());
    let out = server.script(&["-c", "DELETE a", "-c", "LIST"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn end_of_input_logs_out() {
    let server = Daemon::start(&[]);
    let out = server.script(&[], "LIST");
    assert!(out.status.success());
    ferry_tests::wait_until("the logout to be logged", || {
        server.log().contains("disconnected: LOGOUT done")
    });
}

#[test]
fn a_lost_connection_fails_the_command_with_exit_1() {
    use std::io::Write;
    use std::process::Stdio;
    let mut server = Daemon::start(&[]);
    let mut child = server
        .ferry()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A first command that prints a line proves the session is up before the server dies.
    std::fs::write(server.root().join("marker"), b"x").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "LIST").unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        lines.for_each(drop);
    });
    let first = rx.recv_timeout(ferry_tests::DEADLINE).unwrap();
    assert!(first.unwrap().unwrap().ends_with("  marker"));
    server.kill();
    let _ = writeln!(stdin, "LIST");
    drop(stdin);
    let mut status = None;
    ferry_tests::wait_until("the client to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{}", text(&out).1);
    assert!(
        text(&out).1.contains("listing '/': connection"),
        "{}",
        text(&out).1
    );
}

#[test]
fn connection_failures_exit_2_quickly_with_advice() {
    let server = Daemon::start(&[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cmd = server.ferry();
    cmd.arg(format!("127.0.0.1:{port}")).args(["-c", "LIST"]);
    let start = std::time::Instant::now();
    let out = ferry_tests::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(start.elapsed().as_secs() < 10);
    let (_, stderr) = text(&out);
    assert!(stderr.contains("cannot connect to 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("is ferryd running"), "{stderr}");

    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.args(["--port-file", "no-such-port-file", "-c", "LIST"])
        .current_dir(server.client_dir());
    let out = ferry_tests::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("cannot read port file 'no-such-port-file'")
    );
}

#[test]
fn bad_usage_exits_2() {
    let server = Daemon::start(&[]);
    let out = server.script(&["--no-such-flag"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = server.script(&["--local-dir", "missing-dir", "-c", "LIST"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("missing-dir"));
}

#[test]
fn an_explicit_address_needs_no_port_file() {
    let server = Daemon::start(&[]);
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg(server.addr.to_string())
        .args(["--fingerprint", server.fingerprint.as_str(), "-c", "LIST"])
        .current_dir(server.client_dir());
    let out = ferry_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out).1);
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg("127.0.0.1")
        .args(["--port-file"])
        .arg(server.port_file())
        .args(["-c", "LIST"]);
    assert!(
        ferry_tests::run(cmd, b"").status.success(),
        "host alone reads the port file"
    );
}
