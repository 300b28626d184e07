//! Limits: file size, a stalled upload (slow peers are in `slow`), a full disk, concurrent
//! writers of one name, and a file deleted while it is being downloaded.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ferry_core::{Digest, ErrorKind, WireError};
use ferry_tests::{Daemon, connect, data_frames, names_in, random_bytes, text, wait_until};

#[test]
fn an_upload_over_the_size_limit_is_refused_before_any_data() {
    let server = Daemon::start(&["--max-file-size", "1000"]);
    fs::write(server.client_dir().join("small"), vec![1; 1000]).unwrap();
    fs::write(server.client_dir().join("big"), vec![1; 1001]).unwrap();
    let out = server.script(&[], "UPLOAD small\n-UPLOAD big\n");
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("'/big' is 1001 bytes, over the server's limit of 1000 bytes"),
        "{stderr}"
    );
    assert!(server.root().join("small").exists());
    assert!(!server.root().join("big").exists());
    // Refused on the declared size, before a temporary exists or a byte is sent.
    let mut conn = connect(server.addr);
    match conn.call(["UPLOAD", "/huge", &u64::MAX.to_string(), "0", "ready"]) {
        Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::TooLarge),
        other => panic!("{other:?}"),
    }
    assert!(names_in(&server.root().join(".ferry-partial")).is_empty());
    assert!(conn.call(["LIST", "/"]).is_ok(), "in step");
}

#[test]
fn a_stalled_upload_times_out_and_keeps_what_arrived() {
    let server = Daemon::start(&["--idle-timeout", "1"]);
    let mut conn = connect(server.addr);
    conn.call(["UPLOAD", "/stalled", "1000", "0", "ready"])
        .unwrap();
    conn.stream_mut().write_all(&data_frames(&[5; 10])).unwrap();
    // ...and nothing more: the server gives up after a second, not after the client's 30.
    let start = std::time::Instant::now();
    match conn.expect_ok() {
        Err(WireError::Remote(f)) => assert_eq!(f.message, "transfer failed"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.recv(), Err(WireError::Closed)));
    assert!(start.elapsed().as_secs() < 10);
    wait_until("the log", || {
        server.log().contains("connection timed out; kept 10 bytes")
    });
    assert!(!server.root().join("stalled").exists());
}

/// A tmpfs of `size` mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mount = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running mount(8)");
        let out = ferry_tests::finish(mount);
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Bounded, yet without failing: a panic here, while a failing test unwinds, would
        // abort the run. A lazy unmount does not wait for the file system to be idle.
        let umount = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .spawn();
        if let Ok(mut umount) = umount {
            ferry_tests::wait_within(&mut umount);
        }
    }
}

#[test]
fn a_full_disk_gives_a_clean_error_and_removes_the_temporary() {
    let disk = Tmpfs::mount("2m");
    let root = disk.path().join("data");
    let server = Daemon::start_raw(&["--root", root.to_str().unwrap(), "--port-file", "port"]);
    fs::write(server.client_dir().join("big"), random_bytes(4 << 20)).unwrap();
    fs::write(server.client_dir().join("small"), b"fits").unwrap();
    let out = server.script(&[], "-UPLOAD big\nUPLOAD small\nLIST\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the connection goes on: {stderr}");
    assert!(
        stderr.contains("uploading 'big': no space left on the server for '/big'"),
        "{stderr}"
    );
    assert!(stdout.contains("uploaded 'small'"), "{stdout}");
    assert!(!root.join("big").exists());
    assert!(
        names_in(&root.join(".ferry-partial")).is_empty(),
        "temporary removed"
    );
    assert_eq!(fs::read(root.join("small")).unwrap(), b"fits");
}

#[test]
fn eight_concurrent_uploads_of_one_name_leave_exactly_one_complete_version() {
    let server = Daemon::start(&[]);
    let mut versions = Vec::new();
    let mut children = Vec::new();
    for i in 0..8 {
        let content = random_bytes((2 << 20) + i * 4099);
        let local = format!("v{i}");
        fs::write(server.client_dir().join(&local), &content).unwrap();
        versions.push(content);
        let child = server
            .ferry()
            .args(["-c", &format!("UPLOAD {local} same")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    for child in children {
        let out = ferry_tests::finish(child);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = fs::read(server.root().join("same")).unwrap();
    assert_eq!(
        versions.iter().filter(|v| **v == stored).count(),
        1,
        "the stored file is one whole upload"
    );
    assert_eq!(names_in(&server.root()), [".ferry-partial", "same"]);
    assert!(names_in(&server.root().join(".ferry-partial")).is_empty());
}

#[test]
fn a_delete_or_replace_during_a_download_lets_it_finish_with_the_old_content() {
    let server = Daemon::start(&[]);
    let old = random_bytes(32 << 20);
    fs::write(server.root().join("doc"), &old).unwrap();
    let mut reader = connect(server.addr);
    let mut other = connect(server.addr);
    let reply = reader.call(["DOWNLOAD", "/doc"]).unwrap();
    assert_eq!(reply, [old.len().to_string(), reply[1].clone(), "0".into()]);
    let mut got = Vec::new();
    let mut meddled = false;
    reader
        .recv_content(&mut got, old.len() as u64, &mut Digest::new(), &mut |_| {
            if !meddled {
                meddled = true;
                other.call(["DELETE", "/doc"]).unwrap();
                other.call(["UPLOAD", "/doc", "3", "0", "ready"]).unwrap();
                other.stream_mut().write_all(&data_frames(b"new")).unwrap();
                other
                    .stream_mut()
                    .write_all(&ferry_tests::end_frame(b"new"))
                    .unwrap();
                other.expect_ok().unwrap();
            }
            true
        })
        .expect("the download completes and its digest matches");
    assert!(meddled);
    assert!(got == old, "the old content, whole");
    assert_eq!(fs::read(server.root().join("doc")).unwrap(), b"new");
}

#[test]
fn a_listing_past_the_clients_bound_stops_with_a_clear_error() {
    let fake = ferry_tests::Fake::start(|conn| {
        let list = conn.recv().unwrap();
        assert_eq!(list.words, ["LIST", "/"]);
        conn.send(&ferry_core::Frame::new(ferry_core::Kind::Ok, [""; 0]))
            .unwrap();
        // One more entry than the client takes, written a batch at a time; the client hangs
        // up at its bound, which ends the writing.
        let total = 1_000_001; // the client takes 1,000,000 (`MAX_ENTRIES` in list.rs)
        let mut batch = Vec::new();
        for i in 0..total {
            let item = [format!("n{i}"), "file".into(), "0".into(), "0".into()];
            ferry_core::Frame::new(ferry_core::Kind::Item, item)
                .encode(&mut batch)
                .unwrap();
            if batch.len() > 1 << 20 || i + 1 == total {
                if conn.stream_mut().write_all(&batch).is_err() {
                    return;
                }
                batch.clear();
            }
        }
        let _ = conn.send(&ferry_core::Frame::new(ferry_core::Kind::End, [""; 0]));
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = fake.ferry(dir.path());
    cmd.args(["-c", "LIST"]);
    let out = ferry_tests::run(cmd, b"");
    fake.join();
    let stderr = text(&out).1;
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the server listed more than 1000000 entries"),
        "{stderr}"
    );
}

/// A session that moved a big file and then sits idle lets go of the buffers the transfer
/// grew (the content buffer, the TLS read-ahead): eight such sessions, four after a download
/// and four after an upload, held about 1.3 MiB each until they ended (docs/PERFORMANCE.md).
#[test]
fn sessions_idle_after_big_transfers_let_their_buffers_go() {
    let server = Daemon::start(&[]);
    let content = random_bytes(8 << 20);
    fs::write(server.root().join("big"), &content).unwrap();
    let rss = || {
        ferry_tests::ProcStatus::read(server.pid())
            .unwrap()
            .vmrss_kib
    };
    // Every session's thread, TLS state and greeting, before any transfer.
    let mut idle: Vec<_> = (0..8).map(|_| server.connect()).collect();
    let before = rss();
    let size = content.len() as u64;
    for (i, conn) in idle.iter_mut().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                conn.call(["DOWNLOAD", "/big"]).unwrap()[0],
                size.to_string()
            );
            conn.recv_content(&mut std::io::sink(), size, &mut Digest::new(), &mut |_| {
                true
            })
            .unwrap();
        } else {
            let path = format!("/up{i}");
            let request = ["UPLOAD", &path, &size.to_string(), "0", "ready"];
            assert_eq!(conn.call(request).unwrap(), ["0"]);
            let watch = ferry_core::Watch::Progress(&mut |_| true);
            conn.send_content(&mut &content[..], size, &mut Digest::new(), watch)
                .unwrap();
            conn.expect_ok().unwrap();
        }
    }
    // Without letting go: 8 x 1.3 MiB more. With it, glibc gives the blocks back.
    wait_until("the idle sessions to let their buffers go", || {
        rss().saturating_sub(before) < 3 << 10
    });
    drop(idle);
}
