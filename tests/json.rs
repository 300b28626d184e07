//! `ferry --json`: stdout carries only JSON objects, one a line, at least one a command, each
//! with `"verb"` and `"ok"`; the fields of LIST, STAT, transfers and failures.

use std::fs;

use ferry_tests::{Daemon, text};
use serde_json::Value;

/// The objects `ferry --json -c command` printed, checked to be one a line, each naming
/// `verb`; and whether it exited 0.
fn objects(server: &Daemon, verb: &str, command: &str) -> (Vec<Value>, bool) {
    let out = server.script(&["--json", "-c", command], "");
    let (stdout, stderr) = text(&out);
    let objects: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(
        !objects.is_empty(),
        "{command}: nothing on stdout; {stderr}"
    );
    for object in &objects {
        assert_eq!(object["verb"], verb, "{command}: {object}");
        assert!(object["ok"].is_boolean(), "{command}: {object}");
    }
    (objects, out.status.success())
}

#[test]
fn every_registered_verb_reports_json_for_its_example() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    fs::write(client.join("holiday photo.jpg"), b"jpeg").unwrap();
    fs::create_dir_all(server.root().join("photos")).unwrap();
    fs::write(server.root().join("photo.jpg"), b"jpeg").unwrap();
    fs::write(server.root().join("draft.txt"), b"draft").unwrap();
    fs::create_dir_all(server.root().join("old")).unwrap();
    let mut verbs: Vec<_> = ferry_commands::registry().iter().collect();
    // SHUTDOWN stops the server the others need.
    verbs.sort_by_key(|v| v.name == "SHUTDOWN");
    for verb in verbs {
        let (objects, ok) = objects(&server, verb.name, verb.example);
        let failed = objects.iter().any(|o| o["ok"] == false);
        assert_eq!(
            ok, !failed,
            "{}: the exit code agrees: {objects:?}",
            verb.example
        );
    }
}

#[test]
fn transfers_listings_and_failures_carry_their_fields() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a.txt"), b"hello\n").unwrap();
    let digest = {
        let mut d = ferry_core::Digest::new();
        d.update(b"hello\n");
        format!("xxh3-128 {}", d.hex())
    };
    let (up, _) = objects(&server, "UPLOAD", "UPLOAD a.txt");
    assert_eq!(up[0]["path"], "/a.txt");
    assert_eq!(up[0]["local"], "a.txt");
    assert_eq!(up[0]["bytes"], 6);
    assert_eq!(up[0]["digest"], digest.as_str());
    assert!(up[0]["seconds"].is_f64());
    let (down, _) = objects(&server, "DOWNLOAD", "DOWNLOAD a.txt b.txt");
    assert_eq!(
        (&down[0]["bytes"], &down[0]["digest"]),
        (&up[0]["bytes"], &up[0]["digest"])
    );
    let (stat, _) = objects(&server, "STAT", "STAT a.txt");
    assert_eq!(stat[0]["digest"], digest.as_str());
    fs::create_dir(server.root().join("dir")).unwrap();
    let (list, _) = objects(&server, "LIST", "LIST");
    let entries: Vec<(&Value, &Value, &Value)> = list
        .iter()
        .map(|o| (&o["name"], &o["type"], &o["size"]))
        .collect();
    assert_eq!(
        entries,
        [
            (&"a.txt".into(), &"file".into(), &6.into()),
            (&"dir".into(), &"dir".into(), &0.into())
        ]
    );
    let mtime = list[0]["mtime"].as_str().unwrap();
    assert!(
        mtime.ends_with('Z') && mtime.len() == 20,
        "RFC 3339, UTC: {mtime}"
    );
    let (empty, _) = objects(&server, "LIST", "LIST dir");
    assert_eq!(empty, [serde_json::json!({"verb": "LIST", "ok": true})]);
    let (failed, ok) = objects(&server, "STAT", "STAT nothere");
    assert!(!ok);
    assert_eq!(failed[0]["ok"], false);
    assert_eq!(failed[0]["error"]["code"], "not-found");
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothere")
    );
    let (nothing, _) = objects(&server, "LIST", "LIST nothing*");
    assert_eq!(nothing[0]["error"]["code"], "not-found");
    let (unknown, _) = objects(&server, "FROB", "FROB");
    assert_eq!(unknown[0]["error"]["code"], "unknown-verb");
}

#[test]
fn a_download_reported_when_its_group_lands_is_named_as_a_download() {
    let server = Daemon::start(&[]);
    for name in ["a", "b", "c"] {
        fs::write(server.root().join(name), name).unwrap();
    }
    // Each second download to a file lands the first, while later lines (a STAT among them)
    // are being sent ahead.
    let script: String = (0..100)
        .map(|i| format!("DOWNLOAD a x{i}\nDOWNLOAD b x{i}\nSTAT c\n"))
        .collect();
    let out = server.script(&["--json"], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut verbs = std::collections::BTreeMap::<String, usize>::new();
    for line in stdout.lines() {
        let object: Value = serde_json::from_str(line).unwrap();
        let kind = match object.get("local") {
            Some(_) => "a download",
            None => "a stat",
        };
        *verbs
            .entry(format!("{kind} as {}", object["verb"]))
            .or_default() += 1;
    }
    let expected = [
        ("a download as \"DOWNLOAD\"".to_string(), 200),
        ("a stat as \"STAT\"".to_string(), 100),
    ];
    assert_eq!(verbs, expected.into_iter().collect(), "{stdout}");
}
