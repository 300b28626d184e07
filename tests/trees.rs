//! Many files in one command: recursive transfers both ways, `--sync`, `--delete`, `-n`,
//! patterns on both sides, DELETE -r, entries that cannot travel, and a hostile server's
//! listing during a recursive download; entries swapped for links while a tree goes up.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_core::{Frame, Kind};
use ferry_tests::{Daemon, Fake, text};

/// Runs `script` through `ferry`, expecting success; stdout and stderr.
fn ok(server: &Daemon, script: &str) -> (String, String) {
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{script}: {stderr}");
    (stdout, stderr)
}

/// Every file below `dir`, as (relative path, content, mtime), sorted; directories as
/// (path/, empty, 0).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>, u64)> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .display()
            .to_string();
        if relative.starts_with(".ferry") {
            continue;
        }
        if entry.file_type().is_dir() {
            found.push((format!("{relative}/"), Vec::new(), 0));
        } else {
            let modified = entry.metadata().unwrap().modified().unwrap();
            let secs = modified.duration_since(SystemTime::UNIX_EPOCH).unwrap();
            found.push((relative, fs::read(entry.path()).unwrap(), secs.as_secs()));
        }
    }
    found
}

/// A small tree with awkward names, an empty directory, and old modification times.
fn make_tree(top: &Path) {
    fs::create_dir_all(top.join("été 2024/deep er")).unwrap();
    fs::create_dir_all(top.join("empty")).unwrap();
    let files = [
        ("top.txt", b"top".to_vec()),
        ("été 2024/a b.jpg", ferry_tests::random_bytes(70_000)),
        (
            "été 2024/deep er/ünï.bin",
            ferry_tests::random_bytes(2 << 20),
        ),
        ("été 2024/deep er/small", b"s".to_vec()),
    ];
    for (i, (name, content)) in files.iter().enumerate() {
        write_dated(&top.join(name), content, 1_600_000_000 + i as u64);
    }
}

/// Writes `content` to `path`, modified `secs` seconds after the epoch.
fn write_dated(path: &Path, content: &[u8], secs: u64) {
    fs::write(path, content).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn a_tree_goes_up_and_comes_back_byte_for_byte_with_its_times() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("trip");
    make_tree(&local);
    let (stdout, _) = ok(&server, "UPLOAD -r trip\nDOWNLOAD -r trip back\n");
    assert!(
        stdout.contains("uploaded 4 files (2.07 MiB) to '.'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("downloaded 4 files (2.07 MiB) to 'back'"),
        "{stdout}"
    );
    assert_eq!(tree(&server.root().join("trip")), tree(&local));
    assert_eq!(tree(&server.client_dir().join("back")), tree(&local));
    // Into an existing directory, the tree goes inside it, as cp -r does.
    ok(&server, "MKDIR box\nUPLOAD -r trip box\n");
    assert_eq!(tree(&server.root().join("box/trip")), tree(&local));
}

#[test]
fn sync_moves_nothing_twice_and_then_only_what_changed() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("trip");
    make_tree(&local);
    ok(&server, "UPLOAD -r --sync trip\n");
    // With a destination, --sync makes it the mirror itself, the first time as the next.
    for _ in 0..2 {
        ok(&server, "UPLOAD -r --sync trip mirror\n");
    }
    assert_eq!(tree(&server.root().join("mirror")), tree(&local));
    let (again, _) = ok(&server, "UPLOAD -r --sync trip\n");
    assert!(again.contains("uploaded 0 files (0 B)"), "{again}");
    assert!(again.contains("4 left as they were"), "{again}");
    fs::write(local.join("top.txt"), b"changed").unwrap();
    let (third, _) = ok(&server, "UPLOAD -r --sync trip\n");
    assert!(third.contains("uploaded 1 file (7 B)"), "{third}");
    assert_eq!(
        fs::read(server.root().join("trip/top.txt")).unwrap(),
        b"changed"
    );
    // The same the other way.
    ok(&server, "DOWNLOAD -r --sync trip back\n");
    let (down, _) = ok(&server, "DOWNLOAD -r --sync trip back\n");
    assert!(down.contains("downloaded 0 files"), "{down}");
    fs::write(server.root().join("trip/top.txt"), b"server side").unwrap();
    let (down, _) = ok(&server, "DOWNLOAD -r --sync trip back\n");
    assert!(down.contains("downloaded 1 file"), "{down}");
    let back = server.client_dir().join("back/top.txt");
    assert_eq!(fs::read(back).unwrap(), b"server side");
}

#[test]
fn delete_mirrors_a_tree_both_ways() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("trip");
    make_tree(&local);
    ok(&server, "UPLOAD -r trip\n");
    fs::write(server.root().join("trip/stray"), b"x").unwrap();
    fs::create_dir_all(server.root().join("trip/old/dir")).unwrap();
    fs::remove_dir(local.join("empty")).unwrap();
    let (stdout, _) = ok(&server, "UPLOAD -r --sync --delete trip\n");
    assert!(stdout.contains("3 removed"), "{stdout}");
    assert_eq!(tree(&server.root().join("trip")), tree(&local));
    fs::write(local.join("only here"), b"x").unwrap();
    ok(&server, "DOWNLOAD -r --sync --delete trip\n");
    assert!(!local.join("only here").exists());
    assert_eq!(tree(&server.root().join("trip")), tree(&local));
    let out = server.script(&[], "UPLOAD --delete trip\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("--delete goes with -r and --sync"));
}

#[test]
fn no_clobber_leaves_what_exists_alone() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("a"), b"new a").unwrap();
    fs::write(server.client_dir().join("b"), b"new b").unwrap();
    fs::write(server.root().join("a"), b"old a").unwrap();
    let (stdout, _) = ok(&server, "UPLOAD -n a\nUPLOAD -n b\n");
    assert!(stdout.contains("1 left as they were"), "{stdout}");
    assert_eq!(fs::read(server.root().join("a")).unwrap(), b"old a");
    assert_eq!(fs::read(server.root().join("b")).unwrap(), b"new b");
    fs::write(server.root().join("b"), b"server b").unwrap();
    ok(&server, "DOWNLOAD -n b\n");
    assert_eq!(fs::read(server.client_dir().join("b")).unwrap(), b"new b");
}

#[test]
fn patterns_match_on_both_sides_and_a_pattern_matching_nothing_fails() {
    let server = Daemon::start(&[]);
    for name in ["a.log", "b.log", ".hidden.log", "c.txt"] {
        fs::write(server.client_dir().join(name), name).unwrap();
    }
    let (stdout, _) = ok(
        &server,
        "UPLOAD *.log\nMKDIR logs\nUPLOAD ?.log logs\nLIST *.log\n",
    );
    assert!(stdout.contains("uploaded 2 files"), "{stdout}");
    assert!(
        !server.root().join(".hidden.log").exists(),
        "* skips dot files"
    );
    assert!(server.root().join("logs/b.log").exists());
    assert!(
        ferry_tests::listed(&stdout).contains(&"a.log".to_string()) && !stdout.contains("c.txt"),
        "{stdout}"
    );
    let (stdout, _) = ok(
        &server,
        "DOWNLOAD logs/[ab].log fetched/\nDELETE *.log\nLIST\n",
    );
    assert!(stdout.contains("downloaded 2 files"), "{stdout}");
    assert!(server.client_dir().join("fetched/a.log").exists());
    assert!(!server.root().join("a.log").exists());
    for script in [
        "UPLOAD *.gif\n",
        "DOWNLOAD *.gif\n",
        "DELETE *.gif\n",
        "LIST no*\n",
    ] {
        let out = server.script(&[], script);
        assert_eq!(out.status.code(), Some(1), "{script}");
        assert!(
            text(&out).1.contains(".gif") || text(&out).1.contains("no*"),
            "{script}"
        );
    }
    let (stdout, _) = ok(&server, "DELETE -r logs\nLIST\n");
    assert!(stdout.contains("deleted 'logs'"), "{stdout}");
    assert!(!server.root().join("logs").exists());
}

#[test]
fn links_fifos_and_untravelled_names_are_skipped_with_a_warning_each() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("src");
    fs::create_dir(&local).unwrap();
    fs::write(local.join("kept"), b"k").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", local.join("link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        local.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from(0o644),
        0,
    )
    .unwrap();
    fs::write(local.join("back\\slash"), b"b").unwrap();
    // The server's reserved name, as a file system that folds case would take it.
    fs::create_dir(local.join(".FERRY-PARTIAL")).unwrap();
    let (stdout, stderr) = ok(&server, "UPLOAD -r src\n");
    assert!(
        stdout.contains("uploaded 1 file") && stdout.contains("4 skipped"),
        "{stdout}"
    );
    for what in [
        "link': a symbolic link",
        "fifo': not a regular file",
        "its name cannot",
        "FERRY-PARTIAL': a name the server reserves",
    ] {
        assert!(stderr.contains(what), "{what}: {stderr}");
    }
    assert_eq!(ferry_tests::names_in(&server.root().join("src")), ["kept"]);
}

/// A fake server for `DOWNLOAD -r dir back`: lists `/dir` as a directory in `/`, lists `items` in it,
/// and serves `/dir/ok` if asked.
fn hostile(items: Vec<[&'static str; 4]>) -> Fake {
    Fake::start(move |conn| {
        let root = conn.recv().unwrap();
        assert_eq!(root.words, ["LIST", "/"]);
        conn.send(&Frame::new(Kind::Ok, [""; 0])).unwrap();
        conn.send(&Frame::new(Kind::Item, ["dir", "dir", "0", "0"]))
            .unwrap();
        conn.send(&Frame::new(Kind::End, [""; 0])).unwrap();
        let list = conn.recv().unwrap();
        assert_eq!(list.words, ["LIST", "/dir"]);
        conn.send(&Frame::new(Kind::Ok, [""; 0])).unwrap();
        for item in &items {
            conn.send(&Frame::new(Kind::Item, *item)).unwrap();
        }
        conn.send(&Frame::new(Kind::End, [""; 0])).unwrap();
        while let Ok(request) = conn.recv() {
            if request.words == ["DOWNLOAD", "/dir/ok"] {
                conn.send(&Frame::new(Kind::Ok, ["2", "0", "0"])).unwrap();
                let mut wire = ferry_tests::data_frames(b"ok");
                wire.extend(ferry_tests::end_frame(b"ok"));
                std::io::Write::write_all(conn.stream_mut(), &wire).unwrap();
            } else {
                conn.send(&Frame::new(Kind::Ok, [""; 0])).unwrap();
            }
        }
    })
}

#[test]
fn a_hostile_listing_cannot_lead_a_recursive_download_out_of_its_destination() {
    let items = vec![
        ["../x", "file", "2", "0"],
        ["/etc/x", "file", "2", "0"],
        ["a/../../x", "file", "2", "0"],
        ["ok", "file", "2", "0"],
    ];
    let fake = hostile(items);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = fake.ferry(dir.path());
    cmd.args(["-c", "DOWNLOAD -r dir back"]);
    let out = ferry_tests::run(cmd, b"");
    fake.join();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("downloaded 1 file") && stdout.contains("3 skipped"),
        "{stdout}"
    );
    assert_eq!(ferry_tests::names_in(&dir.path().join("back")), ["ok"]);
    assert_eq!(
        ferry_tests::names_in(dir.path()),
        ["back"],
        "nothing beside it"
    );
    // A kind the protocol does not have (a link, say) ends the listing as malformed.
    let fake = hostile(vec![["ok", "link", "2", "0"]]);
    let mut cmd = fake.ferry(dir.path());
    cmd.args(["-c", "DOWNLOAD -r dir other"]);
    let out = ferry_tests::run(cmd, b"");
    fake.join();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("malformed listing item"),
        "{}",
        text(&out).1
    );
    assert!(!dir.path().join("other").exists());
}

#[test]
fn a_local_link_in_the_way_of_a_recursive_download_is_not_written_through() {
    let server = Daemon::start(&[]);
    fs::create_dir_all(server.root().join("tree/sub")).unwrap();
    fs::write(server.root().join("tree/sub/f"), b"f").unwrap();
    let outside = server.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir(server.client_dir().join("tree")).unwrap();
    std::os::unix::fs::symlink(&outside, server.client_dir().join("tree/sub")).unwrap();
    let out = server.script(&[], "DOWNLOAD -r tree\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("is a symbolic link; not writing through it")
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

/// A server, and a local `tree` holding `a/big` (128 MiB, which goes first and on its own)
/// and `b/small`; the local tree's path.
fn big_then_small() -> (Daemon, std::path::PathBuf) {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("tree");
    fs::create_dir_all(local.join("a")).unwrap();
    fs::create_dir_all(local.join("b")).unwrap();
    fs::File::create(local.join("a/big"))
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    fs::write(local.join("b/small"), b"small").unwrap();
    (server, local)
}

#[test]
fn a_directory_swapped_for_a_link_during_a_recursive_upload_is_not_gone_through() {
    let (server, _) = big_then_small();
    // While the large file is on its way the client is held, and `b`, made on the server
    // already, is swapped for a link to a directory outside.
    let outside = server.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let out = server.held_during_upload("UPLOAD -r tree", || {
        let b = server.root().join("tree/b");
        fs::rename(&b, server.root().join("tree/b.real")).unwrap();
        std::os::unix::fs::symlink(&outside, &b).unwrap();
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing went through"
    );
    assert_eq!(
        fs::metadata(server.root().join("tree/a/big"))
            .unwrap()
            .len(),
        128 << 20
    );
}

#[test]
fn a_local_file_swapped_for_a_link_during_a_recursive_upload_is_not_read_through() {
    let (server, local) = big_then_small();
    let secret = server.dir.path().join("secret");
    fs::write(&secret, b"secret").unwrap();
    // Held while the large file is on its way, after the walk found `b/small` a plain file.
    let out = server.held_during_upload("UPLOAD -r tree", || {
        fs::remove_file(local.join("b/small")).unwrap();
        std::os::unix::fs::symlink(&secret, local.join("b/small")).unwrap();
    });
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("b/small"), "{stderr}");
    assert!(!server.root().join("tree/b/small").exists(), "{stderr}");
}

#[test]
fn in_memory_small_files_go_up_and_come_down_whole_with_their_times_and_leave_nothing_hidden() {
    // There, small uploads wait in memory and the committing thread writes them, and small
    // downloads are written to files without a name, linked in when placed.
    let shm = Path::new("/dev/shm");
    assert!(
        ferry_tests::on_tmpfs(shm).unwrap(),
        "/dev/shm is not a tmpfs"
    );
    let root = ["--root", "data", "--port-file", "port"];
    let server = Daemon::start_in(tempfile::tempdir_in(shm).unwrap(), &root);
    let local = server.client_dir().join("many");
    let write_all = |round: u64| {
        // Around the 64 KiB held, in several directories, enough for groups on a thread.
        for i in 0..300u64 {
            let dir = local.join(format!("d{}", i % 3));
            fs::create_dir_all(&dir).unwrap();
            let size = [0, 1, 4096, 65_536, 65_537][(i % 5) as usize];
            let content = ferry_tests::random_bytes(size);
            write_dated(
                &dir.join(format!("f{i}")),
                &content,
                1_500_000_000 + i + round,
            );
        }
    };
    let back = server.client_dir().join("back");
    for round in 0..2 {
        // The second round replaces every file, both ways.
        write_all(round);
        ok(&server, "UPLOAD -r many\nDOWNLOAD -r many back/\n");
        assert_eq!(tree(&server.root().join("many")), tree(&local));
        assert_eq!(tree(&back.join("many")), tree(&local));
    }
    let hidden = fs::read_dir(server.root().join(".ferry-partial")).unwrap();
    assert_eq!(hidden.count(), 0, "a temporary was left behind");
    let left: Vec<_> = walkdir::WalkDir::new(&back)
        .into_iter()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".ferry"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
