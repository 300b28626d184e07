//! Pipelining: chained (`C`) requests on the wire, and scripts that send commands ahead of the
//! replies to earlier ones while keeping what running them one by one would give.

use std::fs;
use std::io::Write;

use ferry_core::{Digest, ErrorKind, Frame, Kind, WireError};
use ferry_tests::{
    Daemon, Fake, connect, eager_upload, random_bytes, same_content, text, wait_until,
};

fn kind_of(reply: Result<Vec<String>, WireError>) -> Result<(), ErrorKind> {
    match reply {
        Ok(_) => Ok(()),
        Err(WireError::Remote(failure)) => Err(failure.kind),
        Err(other) => panic!("{other:?}"),
    }
}

fn encoded(kind: Kind, words: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::new();
    Frame::new(kind, words.iter().copied())
        .encode(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn chained_requests_after_a_failed_one_are_skipped_until_a_plain_request() {
    let server = Daemon::start(&["--max-file-size", "3"]);
    fs::write(server.root().join("kept"), b"abc").unwrap();
    let mut conn = connect(server.addr);
    let mut wire = Vec::new();
    wire.extend(eager_upload(Kind::Chained, "first", b"abc"));
    wire.extend(eager_upload(Kind::Chained, "big", b"four"));
    // Skipped: its content is read and dropped, and so is an empty one's lone `Z`.
    wire.extend(eager_upload(Kind::Chained, "after", b"xyz"));
    wire.extend(eager_upload(Kind::Chained, "empty", b""));
    wire.extend(encoded(Kind::Chained, &["DELETE", "/kept"]));
    // A plain request runs, and starts a new chain.
    wire.extend(encoded(Kind::Request, &["STAT", "/kept"]));
    wire.extend(eager_upload(Kind::Chained, "later", b"ok"));
    conn.stream_mut().write_all(&wire).unwrap();
    let replies: Vec<_> = (0..7).map(|_| kind_of(conn.expect_ok())).collect();
    assert_eq!(
        replies,
        [
            Ok(()),
            Err(ErrorKind::TooLarge),
            Err(ErrorKind::Skipped),
            Err(ErrorKind::Skipped),
            Err(ErrorKind::Skipped),
            Ok(()),
            Ok(()),
        ]
    );
    assert_eq!(stored(&server), ["first", "kept", "later"]);
    assert!(conn.call(["LIST", "/"]).is_ok(), "still in step");
}

#[test]
fn a_request_sent_ahead_during_a_download_is_not_taken_for_a_cancel() {
    let server = Daemon::start(&[]);
    let content = random_bytes(6 << 20);
    fs::write(server.root().join("big"), &content).unwrap();
    let mut conn = connect(server.addr);
    // Both requests in one write: the second is already buffered when the stream starts.
    let mut wire = encoded(Kind::Chained, &["DOWNLOAD", "/big"]);
    wire.extend(encoded(Kind::Chained, &["STAT", "/big"]));
    conn.stream_mut().write_all(&wire).unwrap();
    // Then one that arrives while the content streams.
    conn.stream_mut()
        .write_all(&encoded(Kind::Chained, &["DOWNLOAD", "/big"]))
        .unwrap();
    for round in 0..2 {
        let reply = conn.expect_ok().unwrap();
        assert_eq!(reply[0], content.len().to_string(), "round {round}");
        if round == 1 {
            // The server is streaming the second download as this arrives: it was sent ahead
            // of the reply being read, as a pipelining client sends, and is no cancel.
            conn.stream_mut()
                .write_all(&encoded(Kind::Chained, &["STAT", "/big"]))
                .unwrap();
        }
        let mut got = Vec::new();
        conn.recv_content(
            &mut got,
            content.len() as u64,
            &mut Digest::new(),
            &mut |_| true,
        )
        .unwrap();
        assert!(got == content, "round {round}: the whole file");
        assert!(conn.expect_ok().is_ok(), "round {round}: then STAT's reply");
    }
}

/// The files the server holds (its directory of partial uploads aside).
fn stored(server: &Daemon) -> Vec<String> {
    let mut names = ferry_tests::names_in(&server.root());
    names.retain(|name| name != ".ferry-partial");
    names
}

/// Runs `script` through `ferry` against `server`; stdout, stderr and the exit code. Returns
/// once the server has ended the session too, so that whatever it was sent has been run (or
/// skipped) by then.
fn script(server: &Daemon, script: &str) -> (String, String, Option<i32>) {
    let sessions = server.log().matches(" disconnected: ").count();
    let out = server.script(&[], script);
    wait_until("the session to end", || {
        server.log().matches(" disconnected: ").count() > sessions
    });
    let (stdout, stderr) = text(&out);
    (stdout, stderr, out.status.code())
}

#[test]
fn a_script_of_many_transfers_reports_each_in_order_and_every_copy_is_whole() {
    let server = Daemon::start(&[]);
    let dir = server.client_dir();
    fs::create_dir(dir.join("got")).unwrap();
    let mut lines = String::new();
    let mut expected = String::new();
    // Sizes around the limit of what goes ahead, including empty files.
    let sizes: Vec<usize> = (0..150).map(|i| (i * 331) % (20 << 10)).collect();
    for (i, size) in sizes.iter().enumerate() {
        fs::write(dir.join(format!("f{i}")), random_bytes(*size)).unwrap();
        lines += &format!("UPLOAD f{i}\n");
        expected += &format!("uploaded 'f{i}'");
    }
    for i in 0..sizes.len() {
        lines += &format!("DOWNLOAD f{i} got/\n");
        expected += &format!("downloaded 'f{i}' to 'got/f{i}'");
    }
    let (stdout, stderr, code) = script(&server, &lines);
    assert_eq!(code, Some(0), "{stderr}");
    let reported: String = stdout
        .lines()
        .map(|line| line.split(" (").next().unwrap())
        .collect();
    assert_eq!(reported, expected);
    for i in 0..sizes.len() {
        let name = format!("f{i}");
        assert!(same_content(&dir.join(&name), &server.root().join(&name)));
        assert!(same_content(&dir.join(&name), &dir.join("got").join(&name)));
    }
}

#[test]
fn the_client_sends_commands_ahead_of_the_replies() {
    // A server that answers nothing until it has the third request: a client that waited for
    // each reply would stall (and fail at the deadline).
    let fake = Fake::start(|conn| {
        let mut names = Vec::new();
        for _ in 0..3 {
            let request = conn.recv().unwrap();
            assert_eq!(request.kind, Kind::Chained, "{request:?}");
            assert_eq!(request.words[0], "UPLOAD");
            let size: u64 = request.words[2].parse().unwrap();
            let mut sink = Vec::new();
            conn.recv_content(&mut sink, size, &mut Digest::new(), &mut |_| true)
                .unwrap();
            names.push(request.words[1].clone());
        }
        assert_eq!(names, ["/a", "/b", "/c"]);
        for name in &names {
            conn.send(&Frame::new(Kind::Ok, [name.as_str(), "new"]))
                .unwrap();
        }
        let logout = conn.recv().unwrap();
        assert_eq!(logout.words, ["LOGOUT"]);
        conn.send(&Frame::new(Kind::Ok, [""; 0])).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        fs::write(dir.path().join(name), name).unwrap();
    }
    let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
    cmd.arg(fake.addr.to_string())
        .args(["--fingerprint", fake.fingerprint.as_str()])
        .current_dir(dir.path());
    let out = ferry_tests::run(cmd, b"UPLOAD a\nUPLOAD b\nUPLOAD c\n");
    fake.join();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

#[test]
fn a_failure_stops_the_script_and_nothing_sent_after_it_runs() {
    let server = Daemon::start(&["--max-file-size", "100"]);
    let dir = server.client_dir();
    fs::write(dir.join("small"), b"small").unwrap();
    fs::write(dir.join("large"), [7u8; 200]).unwrap();
    fs::write(server.root().join("there"), b"there").unwrap();
    let (stdout, stderr, code) = script(
        &server,
        "UPLOAD small\nUPLOAD large\nUPLOAD small again\nDOWNLOAD there\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "uploaded 'small' (5 B)\n");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: line 2: uploading 'large': '/large' is 200 bytes"),
        "{stderr}"
    );
    assert_eq!(
        stored(&server),
        ["small", "there"],
        "the upload after the failure did not run"
    );
    assert!(!dir.join("there").exists(), "nor the download");
}

#[test]
fn a_line_that_may_fail_runs_in_its_place() {
    let server = Daemon::start(&["--max-file-size", "100"]);
    let dir = server.client_dir();
    for (name, size) in [("a", 1), ("large", 200), ("b", 2)] {
        fs::write(dir.join(name), vec![1u8; size]).unwrap();
    }
    let (stdout, stderr, code) = script(&server, "UPLOAD a\n-UPLOAD large\nUPLOAD b\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stderr.starts_with("warning: line 2: "), "{stderr}");
    assert_eq!(stored(&server), ["a", "b"]);
}

#[test]
fn an_upload_behind_a_download_of_its_file_sends_what_was_downloaded() {
    let server = Daemon::start(&[]);
    let dir = server.client_dir();
    fs::write(server.root().join("fresh"), b"new content").unwrap();
    fs::write(dir.join("mid"), b"old").unwrap();
    let (_, stderr, code) = script(&server, "DOWNLOAD fresh mid\nUPLOAD mid copy\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        fs::read(server.root().join("copy")).unwrap(),
        b"new content"
    );
}

#[test]
fn a_download_that_fails_here_stops_the_script_before_later_changes() {
    let server = Daemon::start(&[]);
    let dir = server.client_dir();
    fs::write(server.root().join("only"), b"the only copy").unwrap();
    fs::write(dir.join("f"), b"f").unwrap();
    // The server sends the file, but it cannot be written here; whatever follows must not have
    // run on the server.
    for after in ["UPLOAD f g", "DELETE only"] {
        let (_, stderr, code) = script(
            &server,
            &format!("DOWNLOAD only no/such/dir/only\n{after}\n"),
        );
        assert_eq!(code, Some(1));
        assert!(
            stderr.starts_with("error: line 1: downloading 'only'"),
            "{stderr}"
        );
        assert_eq!(stored(&server), ["only"], "{after} did not run");
    }
}

#[test]
fn stat_and_delete_go_ahead_and_report_in_order() {
    let server = Daemon::start(&[]);
    let mut lines = String::new();
    for i in 0..50 {
        fs::write(server.root().join(format!("s{i}")), format!("{i}")).unwrap();
        lines += &format!("STAT s{i}\nDELETE s{i}\n");
    }
    lines += "STAT s0\n";
    let (stdout, stderr, code) = script(&server, &lines);
    assert_eq!(code, Some(1), "the last STAT finds nothing");
    assert!(
        stderr.starts_with("error: line 101: stat: no such file '/s0'"),
        "{stderr}"
    );
    let out: Vec<&str> = stdout.lines().collect();
    assert_eq!(out.len(), 100, "{stdout}");
    for i in 0..50 {
        assert!(out[2 * i].starts_with(&format!("s{i}  ")), "{}", out[2 * i]);
        assert_eq!(out[2 * i + 1], format!("deleted 's{i}'"));
    }
    assert!(stored(&server).is_empty());
}

#[test]
fn a_program_feeding_one_line_at_a_time_gets_each_result_before_writing_the_next() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let server = Daemon::start(&[]);
    fs::write(server.root().join("x"), b"x").unwrap();
    let mut child = server
        .ferry()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let output = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each command is one that goes ahead; its result must come without a next line.
    for command in ["STAT x", "DOWNLOAD x y", "STAT x"] {
        writeln!(input, "{command}").unwrap();
        input.flush().unwrap();
        let line = rx
            .recv_timeout(ferry_tests::DEADLINE)
            .unwrap_or_else(|_| panic!("no result for {command:?} while ferry waits for more"))
            .unwrap();
        assert!(
            line.starts_with('x') || line.starts_with("downloaded"),
            "{line}"
        );
    }
    drop(input);
    assert!(ferry_tests::wait_for(&mut child).success());
}

/// 200 eager uploads of `content`, `f0` to `f199`, chained in one write.
fn send_200(conn: &mut ferry_core::Connection, content: &[u8]) {
    let mut wire = Vec::new();
    for i in 0..200 {
        wire.extend(eager_upload(Kind::Chained, &format!("f{i}"), content));
    }
    conn.stream_mut().write_all(&wire).unwrap();
}

#[test]
fn pipelined_uploads_are_each_answered_once_in_order_and_in_place() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    let content = random_bytes(4096);
    send_200(&mut conn, &content);
    for i in 0..200 {
        let words = conn.expect_ok().unwrap();
        assert_eq!(words[0], format!("/f{i}"), "reply {i}: {words:?}");
        let stored = fs::read(server.root().join(format!("f{i}"))).unwrap();
        assert!(stored == content, "f{i} whole when answered");
    }
    // No reply twice: the next one is the LIST's.
    conn.call(["LIST", "/"]).expect("still in step");
    let mut listed = 0;
    while conn.next_item().unwrap().is_some() {
        listed += 1;
    }
    assert_eq!(listed, 200);
}

#[test]
fn pipelined_uploads_are_answered_once_in_place_and_a_kill_leaves_no_partial_file() {
    let mut server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    let content = random_bytes(4096);
    send_200(&mut conn, &content);
    // Committed in groups, but each reply still comes only once its file is in place whole.
    let replied: Vec<_> = (0..3).map(|_| conn.expect_ok().unwrap()).collect();
    let root = server.root();
    for words in &replied {
        let name = words[0].trim_start_matches('/');
        assert_eq!(fs::read(root.join(name)).unwrap(), content, "{name}");
    }
    // Killed wherever it is in a batch: every file visible is whole (flushed, then renamed).
    server.kill();
    let mut visible = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        assert_eq!(
            fs::read(entry.path()).unwrap(),
            content,
            "{:?}",
            entry.path()
        );
        visible += 1;
    }
    assert!(visible >= replied.len());
}
