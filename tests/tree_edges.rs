//! Recursive transfers at their edges: a local failure in the middle of a pipelined download,
//! `--sync` of one file, a kind that changed under `--delete`, and two sources that would land
//! on one name.

use std::fs;

use ferry_core::Digest;
use ferry_tests::{Daemon, text};

/// Runs `script` through `ferry`, expecting success; stdout and stderr.
fn ok(server: &Daemon, script: &str) -> (String, String) {
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{script}: {stderr}");
    (stdout, stderr)
}

/// Runs `script`, expecting it to fail with exit 1; stderr.
fn fails(server: &Daemon, script: &str) -> String {
    let out = server.script(&[], script);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{script}: {stderr}");
    stderr
}

#[test]
fn a_local_failure_amid_a_pipelined_download_never_mixes_up_contents() {
    let server = Daemon::start(&[]);
    fs::create_dir(server.root().join("tree")).unwrap();
    for name in ["a", "b", "c"] {
        fs::write(server.root().join("tree").join(name), name.repeat(100)).unwrap();
    }
    // Where the client would write `b`'s part is a directory: opening it fails after `b` was
    // asked for, with `c` asked for behind it and both contents on their way.
    let back = server.client_dir().join("back/tree");
    let mut key = Digest::new();
    key.update(b"/tree/b\0b");
    fs::create_dir_all(back.join(format!(".ferry-{}.part", key.hex())).join("x")).unwrap();
    let stderr = fails(&server, "DOWNLOAD -r tree back\n");
    assert!(stderr.contains("tree/b"), "{stderr}");
    assert!(!back.join("b").exists(), "{stderr}");
    for name in ["a", "c"] {
        if let Ok(content) = fs::read(back.join(name)) {
            assert_eq!(content, name.repeat(100).as_bytes(), "{name}");
        }
    }
    // The connection stayed in step: the same client goes on with the next command.
    // (A leading `-` lets a script go on past a failed command.)
    ok(&server, "-DOWNLOAD -r tree back\nDOWNLOAD tree/c c.copy\n");
    assert_eq!(
        fs::read(server.client_dir().join("c.copy")).unwrap(),
        b"c".repeat(100)
    );
}

#[test]
fn sync_of_one_file_into_a_directory_goes_inside_it_and_then_moves_nothing() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("f"), b"first").unwrap();
    fs::create_dir(server.root().join("dir")).unwrap();
    ok(&server, "UPLOAD --sync f dir\n");
    assert_eq!(fs::read(server.root().join("dir/f")).unwrap(), b"first");
    let (stdout, _) = ok(&server, "UPLOAD --sync f dir\n");
    assert!(stdout.contains("left as they were"), "{stdout}");
    fs::create_dir(server.client_dir().join("into")).unwrap();
    ok(&server, "DOWNLOAD --sync dir/f into\n");
    assert_eq!(
        fs::read(server.client_dir().join("into/f")).unwrap(),
        b"first"
    );
}

#[test]
fn delete_replaces_an_entry_whose_kind_changed_both_ways() {
    let server = Daemon::start(&[]);
    let local = server.client_dir().join("tree");
    fs::create_dir_all(local.join("was-dir")).unwrap();
    fs::write(local.join("was-file"), b"now a file").unwrap();
    let remote = server.root().join("tree");
    fs::create_dir_all(remote.join("was-file/deep")).unwrap();
    fs::write(remote.join("was-file/deep/old"), b"old").unwrap();
    fs::write(remote.join("was-dir"), b"old file").unwrap();
    ok(&server, "UPLOAD -r --sync --delete tree\n");
    assert_eq!(fs::read(remote.join("was-file")).unwrap(), b"now a file");
    // And back: the local side changes kind to match the server's.
    fs::remove_dir_all(remote.join("was-dir")).unwrap();
    fs::write(remote.join("was-dir"), b"a file again").unwrap();
    ok(&server, "DOWNLOAD -r --sync --delete tree\n");
    assert_eq!(fs::read(local.join("was-dir")).unwrap(), b"a file again");
    assert_eq!(fs::read(local.join("was-file")).unwrap(), b"now a file");
    assert!(!remote.join("was-file/deep").exists());
}

#[test]
fn two_sources_landing_on_one_name_are_refused_before_anything_moves() {
    let server = Daemon::start(&[]);
    for dir in ["a", "b"] {
        let path = server.client_dir().join(dir);
        fs::create_dir(&path).unwrap();
        fs::write(path.join("notes.txt"), dir).unwrap();
    }
    fs::create_dir(server.root().join("backup")).unwrap();
    let stderr = fails(&server, "UPLOAD */notes.txt backup\n");
    assert!(stderr.contains("two sources would both go to"), "{stderr}");
    assert_eq!(
        ferry_tests::names_in(&server.root().join("backup")),
        [""; 0]
    );
}

#[test]
fn a_mirror_with_delete_never_empties_what_a_local_link_points_to() {
    let server = Daemon::start(&[]);
    fs::create_dir_all(server.root().join("photos/sub")).unwrap();
    let pictures = server.dir.path().join("pictures");
    fs::create_dir(&pictures).unwrap();
    fs::write(pictures.join("precious"), b"mine").unwrap();
    std::os::unix::fs::symlink(&pictures, server.client_dir().join("photos")).unwrap();
    // Where the tree would land, named by the server or matched by a pattern, the link is in
    // the way: refused before anything is removed.
    for script in [
        "DOWNLOAD -r --sync --delete photos\n",
        "DOWNLOAD -r --sync --delete pho* ./\n",
    ] {
        let stderr = fails(&server, script);
        assert!(
            stderr.contains("is a symbolic link; not writing through it"),
            "{script}: {stderr}"
        );
        assert_eq!(fs::read(pictures.join("precious")).unwrap(), b"mine");
        assert!(!pictures.join("sub").exists(), "{script}");
    }
    // Named as the destination, the link is the user's own, mirrored into.
    ok(&server, "DOWNLOAD -r --sync --delete photos photos\n");
    assert!(pictures.join("sub").is_dir());
    assert!(!pictures.join("precious").exists());
}
