//! Folders end to end: remote paths, MKDIR, RMDIR, RENAME, CD and PWD, the local LCD, LPWD
//! and LLS, modification times kept both ways, and no path leaving the root.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_core::{ErrorKind, Frame, Kind, WireError};
use ferry_tests::{Daemon, connect, text};

/// Runs `script` through `ferry` and expects it to succeed; its stdout.
fn ok(server: &Daemon, script: &str) -> String {
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{script}: {stderr}");
    stdout
}

/// Runs `script` through `ferry`, expecting exit 1; its stderr.
fn fails(server: &Daemon, script: &str) -> String {
    let out = server.script(&[], script);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{script}: {stderr}");
    stderr
}

fn mtime(path: &std::path::Path) -> u64 {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    modified.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn a_nested_tree_with_awkward_names_round_trips_with_its_times() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("photo ✓.jpg");
    fs::write(&local, b"pixels").unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let stdout = ok(
        &server,
        "MKDIR -p 'trips/été 2024'\nUPLOAD 'photo ✓.jpg' 'trips/été 2024/'\n\
         LIST trips\nSTAT trips\nDOWNLOAD 'trips/été 2024/photo ✓.jpg' back.jpg\n",
    );
    let stored = server.root().join("trips/été 2024/photo ✓.jpg");
    assert_eq!(fs::read(&stored).unwrap(), b"pixels");
    assert_eq!(mtime(&stored), 1_500_000_000, "kept on upload");
    let back = server.client_dir().join("back.jpg");
    assert_eq!(fs::read(&back).unwrap(), b"pixels");
    assert_eq!(mtime(&back), 1_500_000_000, "kept on download");
    assert!(
        stdout.contains("uploaded 'photo ✓.jpg' to 'trips/été 2024/photo ✓.jpg'"),
        "{stdout}"
    );
    assert!(
        ferry_tests::listed(&stdout).contains(&"été 2024/".to_string()),
        "a directory is marked: {stdout}"
    );
    assert!(stdout.contains("trips/  directory  "), "{stdout}");
}

#[test]
fn cd_and_pwd_move_the_remote_working_directory_and_never_above_the_root() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("f"), b"f").unwrap();
    fs::create_dir_all(server.root().join("a/b")).unwrap();
    fs::write(server.root().join("a/file"), b"x").unwrap();
    let stdout = ok(
        &server,
        "CD a\nPWD\nUPLOAD f\nCD b\nPWD\nUPLOAD f g\nCD ../..\nPWD\nCD ..\nPWD\nCD /a/b\nCD\nPWD\n",
    );
    let pwds: Vec<&str> = stdout.lines().filter(|l| l.starts_with('/')).collect();
    assert_eq!(pwds, ["/a", "/a/b", "/", "/", "/"], "{stdout}");
    assert_eq!(fs::read(server.root().join("a/f")).unwrap(), b"f");
    assert_eq!(fs::read(server.root().join("a/b/g")).unwrap(), b"f");
    let stderr = fails(&server, "CD nowhere\n");
    assert!(
        stderr.contains("changing to 'nowhere': no such file '/nowhere'"),
        "{stderr}"
    );
    let stderr = fails(&server, "CD a/file\n");
    assert!(stderr.contains("not a directory"), "{stderr}");
}

#[test]
fn mkdir_and_rmdir_refuse_what_they_cannot_do() {
    let server = Daemon::start(&[]);
    ok(
        &server,
        "MKDIR one\nMKDIR -p one/two/three\nMKDIR --parents one/two\n",
    );
    assert!(server.root().join("one/two/three").is_dir());
    let stderr = fails(&server, "MKDIR one\n");
    assert!(stderr.contains("'/one' already exists"), "{stderr}");
    let stderr = fails(&server, "MKDIR missing/child\n");
    assert!(stderr.contains("no such directory '/missing'"), "{stderr}");
    let stderr = fails(&server, "RMDIR one\n");
    assert!(stderr.contains("directory '/one' is not empty"), "{stderr}");
    ok(&server, "RMDIR one/two/three\nRMDIR one/two\nRMDIR one\n");
    assert!(!server.root().join("one").exists());
    fs::write(server.root().join("plain"), b"p").unwrap();
    let stderr = fails(&server, "RMDIR plain\n");
    assert!(stderr.contains("'/plain' is not a directory"), "{stderr}");
    let stderr = fails(&server, "MKDIR -p plain/sub\n");
    assert!(stderr.contains("'/plain' is a file"), "{stderr}");
}

#[test]
fn rename_moves_files_and_trees_and_replaces_only_when_forced() {
    let server = Daemon::start(&[]);
    fs::create_dir_all(server.root().join("src/deep")).unwrap();
    fs::write(server.root().join("src/deep/f"), b"tree").unwrap();
    fs::write(server.root().join("draft"), b"new").unwrap();
    fs::write(server.root().join("final"), b"old").unwrap();
    fs::create_dir(server.root().join("box")).unwrap();
    let stderr = fails(&server, "RENAME draft final\n");
    assert!(stderr.contains("'/final' already exists"), "{stderr}");
    assert_eq!(fs::read(server.root().join("final")).unwrap(), b"old");
    let stdout = ok(
        &server,
        "RENAME -f draft final\nmv src box\nRENAME final box\n",
    );
    assert_eq!(fs::read(server.root().join("box/final")).unwrap(), b"new");
    assert_eq!(
        fs::read(server.root().join("box/src/deep/f")).unwrap(),
        b"tree"
    );
    assert!(stdout.contains("renamed 'src' to 'box/src'"), "{stdout}");
    let stderr = fails(&server, "RENAME box box/src/inside\n");
    assert!(stderr.contains("into itself"), "{stderr}");
    fs::create_dir(server.root().join("other")).unwrap();
    fs::create_dir(server.root().join("other/src")).unwrap();
    let stderr = fails(&server, "RENAME -f box/src other\n");
    assert!(stderr.contains("'/other/src' already exists"), "{stderr}");
}

#[test]
fn upload_goes_into_a_directory_and_never_onto_one() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("f"), b"content").unwrap();
    fs::create_dir(server.root().join("dir")).unwrap();
    ok(&server, "UPLOAD f dir\nUPLOAD f dir/renamed\n");
    assert_eq!(fs::read(server.root().join("dir/f")).unwrap(), b"content");
    assert_eq!(
        fs::read(server.root().join("dir/renamed")).unwrap(),
        b"content"
    );
    // A destination that is a directory, named by the default, is refused before any
    // content moves.
    fs::create_dir(server.client_dir().join("sub")).unwrap();
    fs::write(server.client_dir().join("sub/dir"), b"x").unwrap();
    let stderr = fails(&server, "UPLOAD sub/dir\n");
    assert!(stderr.contains("'/dir' is a directory"), "{stderr}");
    // A trailing `/` says "into a directory": it is made if missing, never taken for a file.
    ok(&server, "UPLOAD f nowhere/\n");
    assert_eq!(
        fs::read(server.root().join("nowhere/f")).unwrap(),
        b"content"
    );
    let stderr = fails(&server, "UPLOAD f nowhere/f/\n");
    assert!(stderr.contains("'/nowhere/f' is a file"), "{stderr}");
    let stderr = fails(&server, "DOWNLOAD dir\n");
    assert!(
        stderr.contains("'/dir' is a directory, not a file"),
        "{stderr}"
    );
}

#[test]
fn a_symlinked_directory_in_the_root_is_never_gone_through() {
    let server = Daemon::start(&[]);
    let outside = server.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, server.root().join("link")).unwrap();
    fs::write(server.client_dir().join("f"), b"f").unwrap();
    for script in [
        "DOWNLOAD link/secret\n",
        "UPLOAD f link/f\n",
        "LIST link\n",
        "CD link\n",
        "DELETE link/secret\n",
        "MKDIR link/new\n",
        "RENAME link/secret stolen\n",
    ] {
        let stderr = fails(&server, script);
        assert!(stderr.contains("symbolic link"), "{script}: {stderr}");
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    assert!(!server.root().join("stolen").exists());
}

#[test]
fn lcd_lpwd_and_lls_act_on_the_local_side() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("remote"), b"r").unwrap();
    let home = server.client_dir().join("home");
    fs::create_dir_all(home.join("inbox/nested")).unwrap();
    fs::write(home.join("inbox/local.txt"), b"12345").unwrap();
    let mut cmd = server.ferry();
    cmd.env("HOME", &home)
        .args(["-c", "LCD ~/inbox", "-c", "LPWD", "-c", "DOWNLOAD remote"])
        .args(["-c", "UPLOAD local.txt", "-c", "LLS", "-c", "LLS ~"]);
    let out = ferry_tests::run(cmd, b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.lines().any(|l| l.ends_with("home/inbox")),
        "{stdout}"
    );
    assert_eq!(fs::read(home.join("inbox/remote")).unwrap(), b"r");
    assert_eq!(fs::read(server.root().join("local.txt")).unwrap(), b"12345");
    let listed = ferry_tests::listed(&stdout);
    for name in ["local.txt", "nested/", "inbox/"] {
        assert!(listed.iter().any(|l| l == name), "{name}: {stdout}");
    }
}

#[test]
fn local_verbs_are_unknown_to_the_server() {
    let server = Daemon::start(&[]);
    let mut conn = connect(server.addr);
    for verb in ["CD", "PWD", "LCD", "LPWD", "LLS"] {
        match conn.call([verb, "/"]) {
            Err(WireError::Remote(f)) => assert_eq!(f.kind, ErrorKind::UnknownVerb, "{verb}"),
            other => panic!("{verb}: {other:?}"),
        }
    }
    conn.send(&Frame::new(Kind::Request, ["HELP"])).unwrap();
    conn.expect_ok().unwrap();
    let mut served = Vec::new();
    while let Some(item) = conn.next_item().unwrap() {
        served.push(item[0].clone());
    }
    assert!(served.contains(&"MKDIR".to_string()), "{served:?}");
    assert!(
        !served.iter().any(|v| v == "CD" || v == "LLS"),
        "{served:?}"
    );
}
