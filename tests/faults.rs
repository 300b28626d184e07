//! Faults around the server: its root deleted and made again while it runs, the server killed
//! in the middle of an upload, and errors that can be known before any content is sent (a
//! read-only file system, a directory's name, a missing directory) told early, with their cause.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ferry_core::{ErrorKind, WireError};
use ferry_tests::{
    Daemon, bin, connect, data_frames, names_in, random_bytes, rooted, same_content, text,
    wait_until,
};

#[test]
fn a_root_deleted_while_serving_is_reported_and_served_again_once_back() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a.txt"), b"a").unwrap();
    let out = server.script(&["-c", "UPLOAD a.txt"], "");
    assert!(out.status.success());
    fs::remove_dir_all(server.root()).unwrap();

    for command in ["LIST", "UPLOAD a.txt"] {
        let out = server.script(&["-c", command], "");
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{command} did not fail");
        assert!(
            stderr.contains("the server's root directory is gone"),
            "{command}: {stderr}"
        );
    }
    let mut conn = connect(server.addr);
    match conn.call(["LIST", "/"]) {
        Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::Unavailable),
        other => panic!("LIST of a gone root: {other:?}"),
    }
    assert_eq!(
        server.log().matches("was deleted").count(),
        1,
        "logged once"
    );

    fs::create_dir(server.root()).unwrap();
    let out = server.script(&["-c", "UPLOAD a.txt"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(server.root().join("a.txt")).unwrap(), b"a");
    let out = server.script(&["-c", "LIST"], "");
    assert!(text(&out).0.contains("a.txt"));
    assert!(server.log().contains("is back"));
}

#[test]
fn an_upload_cut_by_a_server_crash_resumes_after_the_restart() {
    let mut server = Daemon::start(&[]);
    let content = random_bytes(3 << 20);
    fs::write(server.client_dir().join("doc.bin"), &content).unwrap();
    let mut conn = connect(server.addr);
    let size = content.len().to_string();
    let path = rooted("doc.bin");
    let request = ["UPLOAD", path.as_str(), &size, "0", "ready"];
    assert_eq!(conn.call(request).unwrap(), ["0"]);
    conn.stream_mut()
        .write_all(&data_frames(&content[..1 << 20]))
        .unwrap();
    let partial = server.root().join(".ferry-partial");
    wait_until("the first MiB to be written", || {
        fs::read_dir(&partial).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("up-")
                && e.metadata().is_ok_and(|m| m.len() == 1 << 20)
        })
    });
    server.kill();
    drop(conn);
    server.restart(&[]);

    assert!(!server.root().join("doc.bin").exists(), "nothing committed");
    let out = server.script(&["-c", "LIST"], "");
    assert_eq!(text(&out).0, "", "nothing visible");
    let out = server.script(&["-c", "UPLOAD -c doc.bin"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("resuming at 1 MiB"), "{stdout}");
    let local = server.client_dir().join("doc.bin");
    assert!(same_content(&local, &server.root().join("doc.bin")));
    assert!(names_in(&partial).is_empty(), "nothing left behind");
}

#[test]
fn an_upload_that_cannot_be_stored_is_refused_before_its_content() {
    let server = Daemon::start(&[]);
    fs::create_dir(server.root().join("photos")).unwrap();
    let mut conn = connect(server.addr);
    let cases = [
        ("/photos", "'/photos' is a directory"),
        ("/missing/a.bin", "no such directory '/missing'"),
    ];
    for (path, message) in cases {
        // A ready upload: the answer comes instead of the ready reply, before any content.
        match conn.call(["UPLOAD", path, "3145728", "0", "ready"]) {
            Err(WireError::Remote(f)) => assert_eq!(f.message, message),
            other => panic!("UPLOAD {path}: {other:?}"),
        }
    }
    assert_eq!(conn.call(["LIST", "/"]).unwrap().len(), 0, "still in step");
}

/// A `ferryd` serving a tmpfs that is made read-only once it listens, inside a user and mount
/// namespace of its own (no privilege needed); everything in it is killed on drop.
struct ReadOnly {
    child: Child,
    dir: tempfile::TempDir,
}

impl ReadOnly {
    /// Fails where this machine cannot make such a namespace: the test needs one.
    fn start() -> ReadOnly {
        let works = Command::new("unshare")
            .args(["-rm", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            works,
            "this test needs user and mount namespaces (`unshare -rm true` failed)"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("mnt")).unwrap();
        fs::create_dir(dir.path().join("client")).unwrap();
        // The shell waits for the port file with a bounded loop; the test waits for `ready`.
        let script = r#"set -e
            mount -t tmpfs tmpfs mnt
            mkdir mnt/data
            printf old > mnt/data/old.txt
            "$0" --root mnt/data --port-file port 2> ferryd.log > /dev/null &
            n=0
            while [ ! -s port ] && [ $n -lt 3000 ]; do n=$((n + 1)); sleep 0.01; done
            mount -o remount,ro mnt
            touch ready
            wait"#;
        let child = Command::new("unshare")
            .args(["-rmp", "--fork", "--kill-child", "sh", "-c", script])
            .arg(bin("ferryd"))
            .env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let server = ReadOnly { child, dir };
        wait_until("the root to be made read-only", || {
            server.dir.path().join("ready").exists()
        });
        server
    }

    fn addr(&self) -> SocketAddr {
        let port = fs::read_to_string(self.dir.path().join("port")).unwrap();
        SocketAddr::from(([127, 0, 0, 1], port.trim().parse().unwrap()))
    }

    fn ferry(&self, command: &str) -> std::process::Output {
        let mut cmd = Command::new(bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", self.dir.path().join("xdg"))
            .arg("--port-file")
            .arg(self.dir.path().join("port"))
            .args(["-c", command])
            .current_dir(self.dir.path().join("client"));
        ferry_tests::run(cmd, b"")
    }

    fn client(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_upload_to_a_read_only_file_system_is_refused_early_with_its_cause() {
    let server = ReadOnly::start();
    let mut conn = connect(server.addr());
    match conn.call(["UPLOAD", "/new.bin", "3145728", "0", "ready"]) {
        Err(WireError::Remote(f)) => {
            assert_eq!(f.kind, ErrorKind::Forbidden);
            assert_eq!(f.message, "read-only file system: cannot write '/new.bin'");
        }
        other => panic!("UPLOAD to a read-only root: {other:?}"),
    }
    let local = server.client().join("client/small.txt");
    fs::write(&local, b"small").unwrap();
    let out = server.ferry("UPLOAD small.txt");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("read-only file system"), "{stderr}");
    // What is there is still served.
    let out = server.ferry("DOWNLOAD old.txt");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        fs::read(server.client().join("client/old.txt")).unwrap(),
        b"old"
    );
}
