//! `ferryd`'s log: a line per completed change or transfer (as text or JSON), true causes for
//! sessions that end badly, and `--log-file`.

use std::fs;

use ferry_tests::{Daemon, text, wait_until};

/// Uploads, downloads, makes a directory and deletes, through the real client; the digest of
/// the content uploaded, as `STAT` prints it.
fn changes(server: &Daemon) -> String {
    fs::write(server.client_dir().join("a b.txt"), b"hello log").unwrap();
    let script = "UPLOAD 'a b.txt'\nDOWNLOAD 'a b.txt' copy.txt\nMKDIR dir\nSTAT 'a b.txt'\n\
                  DELETE 'a b.txt'\n";
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let digest = stdout
        .split_whitespace()
        .skip_while(|w| *w != "xxh3-128")
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(digest.starts_with("xxh3-128 "), "{stdout}");
    digest
}

#[test]
fn each_completed_change_and_transfer_is_logged_once() {
    let server = Daemon::start(&[]);
    let digest = changes(&server);
    wait_until("the session's end", || {
        server.log().contains("disconnected")
    });
    let log = server.log();
    let line = |start: &str| {
        let found: Vec<&str> = log.lines().filter(|l| l.contains(start)).collect();
        assert_eq!(found.len(), 1, "one line for {start} in:\n{log}");
        found[0].to_string()
    };
    for verb in ["UPLOAD", "DOWNLOAD"] {
        let line = line(&format!(" {verb} '/a b.txt' 9 bytes in "));
        assert!(line.contains(" s ("), "{line}");
        assert!(line.ends_with(&digest), "{line}");
    }
    line(" MKDIR '/dir'");
    line(" DELETE '/a b.txt'");
    assert!(
        !log.contains(" STAT '"),
        "reads that move no content are not logged: {log}"
    );
}

#[test]
fn the_json_log_has_one_object_per_line_with_the_transfer_fields() {
    let server = Daemon::start(&["--log-format", "json"]);
    let digest = changes(&server);
    wait_until("the session's end", || {
        server.log().contains("disconnected")
    });
    let log = server.log();
    let objects: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(objects.iter().all(|o| o["time"].is_string()), "{log}");
    let upload = objects
        .iter()
        .find(|o| o["verb"] == "UPLOAD")
        .expect("the upload's line");
    assert_eq!(upload["path"], "/a b.txt");
    assert_eq!(upload["bytes"], 9);
    assert_eq!(upload["digest"], digest.as_str());
    assert!(upload["seconds"].is_f64(), "{upload}");
    assert!(upload["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(objects.iter().any(|o| o["verb"] == "DELETE"), "{log}");
    assert!(
        objects
            .iter()
            .any(|o| o["message"].as_str().is_some_and(|m| m.contains("serving")))
    );
}

#[test]
fn after_shutdown_the_other_sessions_are_logged_as_closed_by_it() {
    let mut server = Daemon::start(&[]);
    let _idle = server.connect();
    let out = server.script(&["-c", "SHUTDOWN"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(server.wait().success());
    let log = server.log();
    assert!(log.contains("disconnected: closed by shutdown"), "{log}");
    assert!(!log.contains("closed by client"), "{log}");
}

#[test]
fn the_log_file_takes_the_log_off_stderr() {
    let mut server = Daemon::start(&["--log-file", "server log.txt"]);
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    server.signal("-TERM");
    assert!(server.wait().success());
    assert_eq!(server.log(), "", "stderr stays quiet");
    let file = fs::read_to_string(server.dir.path().join("server log.txt")).unwrap();
    assert!(file.contains("serving '"), "{file}");
    assert!(file.contains("disconnected: LOGOUT done"), "{file}");
    assert!(file.contains("stopped"), "{file}");
}

#[test]
fn the_quick_start_keeps_the_log_out_of_the_prompts_terminal() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("--bin ferryd -- ")
        .expect("the quick start's ferryd")
        + 16;
    let mut args: Vec<&str> = readme[start..]
        .split(" &")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    // Its log file, renamed apart from the one the test harness gives ferryd's stderr.
    let file = args
        .iter()
        .position(|a| *a == "--log-file")
        .expect("--log-file")
        + 1;
    args[file] = "quick.log";
    let mut server = Daemon::start_raw(&args);
    let out = server.script(&["-c", "LIST"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    server.signal("-TERM");
    assert!(server.wait().success());
    assert_eq!(server.log(), "", "nothing on the terminal's stderr");
    let log = fs::read_to_string(server.dir.path().join("quick.log")).unwrap();
    assert!(log.contains("stopped"), "{log}");
}
