//! Encryption and identity, end to end: what an eavesdropper records, a man in the middle,
//! pins, fingerprints, and read-only tokens.

use std::fs;
use std::process::Output;

use ferry_tests::{Daemon, Relay, random_bytes, text};

/// `ferry ARGS -c COMMANDS...` run in the server's client directory (its own data directory,
/// for pins), with `FERRY_TOKEN` set to `token` if given.
fn ferry(server: &Daemon, args: &[&str], token: Option<&str>, commands: &[&str]) -> Output {
    let mut cmd = server.ferry();
    cmd.args(args);
    for command in commands {
        cmd.args(["-c", command]);
    }
    if let Some(token) = token {
        cmd.env("FERRY_TOKEN", token);
    }
    ferry_tests::run(cmd, b"")
}

/// True when any of `needle`'s 32-byte pieces (or all of it, if shorter) appears in
/// `haystack`: a piece of the plaintext anywhere in the recording.
fn leaks(haystack: &[u8], needle: &[u8]) -> bool {
    let window = needle.len().min(32);
    let pieces: std::collections::HashSet<&[u8]> = needle.chunks_exact(window).collect();
    haystack.windows(window).any(|w| pieces.contains(w))
}

#[test]
fn an_eavesdropper_records_neither_the_files_nor_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let token = "tr0ub4dor&3-correct-horse";
    fs::write(&tokens, format!("{token}\n")).unwrap();
    let server = Daemon::start(&["--token-file", tokens.to_str().unwrap()]);
    let relay = Relay::start(server.addr);
    let up = random_bytes(300_000);
    let down = random_bytes(300_000);
    fs::write(server.client_dir().join("up.bin"), &up).unwrap();
    fs::write(server.root().join("down.bin"), &down).unwrap();
    let target = relay.addr.to_string();
    let fingerprint = server.fingerprint.to_string();
    let args = [target.as_str(), "--fingerprint", &fingerprint];
    let out = ferry(
        &server,
        &args,
        Some(token),
        &["UPLOAD up.bin", "DOWNLOAD down.bin"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(server.root().join("up.bin")).unwrap(), up);
    assert_eq!(
        fs::read(server.client_dir().join("down.bin")).unwrap(),
        down
    );
    let recorded = relay.recorded();
    let plain = [&b"noise"[..], &up[1000..1100], b"noise"].concat();
    assert!(
        leaks(&plain, &up),
        "the check finds plaintext where there is some"
    );
    assert!(
        recorded.len() > 600_000,
        "both files crossed: {}",
        recorded.len()
    );
    assert!(
        !leaks(&recorded, &up),
        "the upload's bytes are in the recording"
    );
    assert!(
        !leaks(&recorded, &down),
        "the download's bytes are in the recording"
    );
    assert!(
        !leaks(&recorded, token.as_bytes()),
        "the token is in the recording"
    );
    for name in ["up.bin", "down.bin"] {
        assert!(
            !leaks(&recorded, name.as_bytes()),
            "{name} is in the recording"
        );
    }
}

#[test]
fn a_man_in_the_middle_is_refused_before_anything_is_sent() {
    let real = Daemon::start(&[]);
    let impostor = Daemon::start(&[]);
    assert_ne!(real.fingerprint, impostor.fingerprint);
    let relay = Relay::start(real.addr);
    let target = relay.addr.to_string();
    // First contact in a script: refused, the fingerprint shown.
    let out = ferry(&real, &[&target], None, &["LIST"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out).1;
    assert!(stderr.contains(real.fingerprint.as_str()), "{stderr}");
    assert!(stderr.contains("--accept-new"), "{stderr}");
    // --accept-new pins it.
    let out = ferry(&real, &[&target, "--accept-new"], None, &["LIST"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let pins = fs::read_to_string(real.dir.path().join("xdg/ferry/known_servers")).unwrap();
    assert_eq!(pins, format!("{target} {}\n", real.fingerprint));
    let out = ferry(&real, &[&target], None, &["LIST"]);
    assert!(out.status.success(), "pinned: {}", text(&out).1);
    // Then the relay hands the connection to another identity: refused, every time, even
    // with --accept-new, and the request never reaches it.
    fs::write(impostor.root().join("bait"), b"x").unwrap();
    relay.point_to(impostor.addr);
    for args in [vec![target.as_str()], vec![&target, "--accept-new"]] {
        let out = ferry(&real, &args, None, &["DELETE bait"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out).1;
        assert!(stderr.contains("HAS CHANGED"), "{stderr}");
        assert!(stderr.contains(real.fingerprint.as_str()), "{stderr}");
        assert!(stderr.contains(impostor.fingerprint.as_str()), "{stderr}");
    }
    assert!(impostor.root().join("bait").exists());
    assert!(!impostor.log().contains("DELETE"), "{}", impostor.log());
}

#[test]
fn a_wrong_fingerprint_given_or_beside_the_port_file_is_refused() {
    let server = Daemon::start(&[]);
    let other = Daemon::start(&[]);
    let target = server.addr.to_string();
    let wrong = other.fingerprint.to_string();
    let out = ferry(
        &server,
        &[&target, "--fingerprint", &wrong],
        None,
        &["LIST"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("as --fingerprint says"),
        "{}",
        text(&out).1
    );
    let out = ferry(
        &server,
        &[&target, "--fingerprint", "SHA256:nope"],
        None,
        &["LIST"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("not a fingerprint"),
        "{}",
        text(&out).1
    );
    // The file beside the port file is what a client with no address trusts.
    let beside = server.dir.path().join("port.fingerprint");
    assert_eq!(
        fs::read_to_string(&beside).unwrap(),
        format!("{}\n", server.fingerprint)
    );
    fs::write(&beside, format!("{wrong}\n")).unwrap();
    let out = ferry(&server, &[], None, &["LIST"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("port.fingerprint"),
        "{}",
        text(&out).1
    );
}

#[test]
fn a_host_alone_trusts_the_port_file_only_when_it_is_named() {
    let server = Daemon::start(&[]);
    // Run where `port` and `port.fingerprint` lie: `ferry 127.0.0.1` takes the port from
    // `./port` but pins the identity like any other server's, since the current directory
    // says nothing about who wrote those files.
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(ferry_tests::bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", server.dir.path().join("xdg"))
            .current_dir(server.dir.path())
            .args(args)
            .args(["-c", "LIST"]);
        ferry_tests::run(cmd, b"")
    };
    let out = run(&["127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    assert!(
        text(&out).1.contains("is not known here"),
        "{}",
        text(&out).1
    );
    for args in [&["127.0.0.1", "--port-file", "port"][..], &[]] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out).1);
    }
}

#[test]
fn the_identity_is_kept_across_restarts_and_private() {
    let keep = tempfile::tempdir().unwrap();
    let path = keep.path().join("identity.pem");
    let args = ["--identity", path.to_str().unwrap()];
    let first = Daemon::start(&args).fingerprint.clone();
    let second = Daemon::start(&args).fingerprint.clone();
    assert_eq!(first, second);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Without --identity, it lives in the data directory.
    let server = Daemon::start(&[]);
    assert!(server.dir.path().join("xdg/ferry/identity.pem").exists());
}

#[test]
fn a_read_only_token_reads_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    fs::write(
        &tokens,
        "# the team\nadmin-secret\nread-only viewer-secret\n",
    )
    .unwrap();
    let mut server = Daemon::start(&["--token-file", tokens.to_str().unwrap()]);
    fs::write(server.root().join("doc"), b"original").unwrap();
    fs::write(server.client_dir().join("new"), b"new").unwrap();
    let viewer = Some("viewer-secret");
    let out = ferry(
        &server,
        &[],
        viewer,
        &["LIST", "STAT doc", "DOWNLOAD doc copy"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        fs::read(server.client_dir().join("copy")).unwrap(),
        b"original"
    );
    for command in ["UPLOAD new", "UPLOAD new doc", "DELETE doc", "SHUTDOWN"] {
        let out = ferry(&server, &[], viewer, &[command]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = text(&out).1;
        assert!(
            stderr.contains("this session may only read"),
            "{command}: {stderr}"
        );
    }
    let out = ferry(
        &server,
        &[],
        Some("admin-secret"),
        &["DELETE doc", "SHUTDOWN"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(server.wait().success());
}

#[test]
fn a_refused_upload_is_read_past_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    fs::write(&tokens, "admin-secret\nread-only viewer-secret\n").unwrap();
    let mut server = Daemon::start(&["--token-file", tokens.to_str().unwrap()]);
    fs::write(server.root().join("doc"), b"original").unwrap();
    fs::write(server.client_dir().join("new"), b"new").unwrap();
    // `-` lets a script line fail; the refused upload's content must not be taken as requests.
    let script = "-UPLOAD new\n-DELETE doc\nSTAT doc\nDOWNLOAD doc again\n";
    let mut cmd = server.ferry();
    cmd.env("FERRY_TOKEN", "viewer-secret");
    let out = ferry_tests::run(cmd, script.as_bytes());
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        text(&out).1.matches("may only read").count(),
        2,
        "{}",
        text(&out).1
    );
    assert_eq!(
        fs::read(server.client_dir().join("again")).unwrap(),
        b"original"
    );
    assert_eq!(
        ferry_tests::names_in(&server.root()),
        [".ferry-partial", "doc"]
    );
    assert_eq!(fs::read(server.root().join("doc")).unwrap(), b"original");
    server.signal("-TERM");
    assert!(server.wait().success());
}
