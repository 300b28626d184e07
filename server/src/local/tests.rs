//! The local store's unit tests: confinement, atomic commits, resumable parts, sweeping.

use std::fs;
use std::io::{Read, Write};

use super::*;

fn root() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = LocalStore::open(&dir.path().join("data")).unwrap();
    (dir, root)
}

fn partial_count(root: &LocalStore) -> usize {
    fs::read_dir(root.path().join(PARTIAL_DIR)).unwrap().count()
}

#[test]
fn upload_commit_list_delete() {
    let (_d, root) = root();
    let mut temp = root.create().unwrap();
    temp.write_all(b"hello").unwrap();
    assert!(root.list().unwrap().is_empty(), "a temporary is invisible");
    temp.commit("a b ✓").unwrap();
    let list = root.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].name.as_str(), list[0].meta.size), ("a b ✓", 5));
    assert_eq!(root.open("a b ✓").unwrap().1.size, 5);
    root.delete("a b ✓").unwrap();
    assert_eq!(root.delete("a b ✓").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(partial_count(&root), 0);
}

#[test]
fn a_dropped_temporary_is_removed() {
    let (_d, root) = root();
    let mut temp = root.create().unwrap();
    temp.write_all(b"half").unwrap();
    assert_eq!(partial_count(&root), 1);
    drop(temp);
    assert_eq!(partial_count(&root), 0);
}

#[test]
fn symlinks_are_never_followed_for_reading_writing_or_deleting() {
    let (d, root) = root();
    let outside = d.path().join("secret");
    fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.path().join("link")).unwrap();
    let err = root.open("link").err().unwrap();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    assert!(root.delete("link").is_err());
    assert!(root.list().unwrap().is_empty());
    let mut temp = root.create().unwrap();
    temp.write_all(b"new").unwrap();
    temp.commit("link").unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"secret", "target untouched");
    assert!(
        !fs::symlink_metadata(root.path().join("link"))
            .unwrap()
            .is_symlink(),
        "the link itself was replaced"
    );
    // A link to a directory outside does not let a name reach into it either.
    std::os::unix::fs::symlink(d.path(), root.path().join("dirlink")).unwrap();
    assert!(root.open("dirlink").is_err());
    assert!(root.delete("dirlink").is_err());
    assert!(d.path().join("secret").exists());
}

#[test]
fn the_root_handle_outlives_a_swapped_path() {
    // Once open, the root is reached through its handle: replacing the directory at its
    // path with a link elsewhere does not redirect any operation.
    let (d, root) = root();
    fs::write(root.path().join("inside"), b"in").unwrap();
    let moved = d.path().join("moved");
    fs::rename(root.path(), &moved).unwrap();
    let elsewhere = d.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("inside"), b"elsewhere").unwrap();
    std::os::unix::fs::symlink(&elsewhere, d.path().join("data")).unwrap();
    let (mut file, _) = root.open("inside").unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "in");
    root.delete("inside").unwrap();
    assert!(elsewhere.join("inside").exists());
}

#[test]
fn a_planted_partial_dir_link_is_replaced_by_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, data.join(PARTIAL_DIR)).unwrap();
    let (root, _) = LocalStore::open(&data).unwrap();
    let mut temp = root.create().unwrap();
    temp.write_all(b"x").unwrap();
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside"
    );
    assert!(data.join(PARTIAL_DIR).is_dir());
}

#[test]
fn reserved_and_bad_names_are_refused_before_the_filesystem() {
    let (_d, root) = root();
    for bad in [PARTIAL_DIR, "..", "../x", "/etc/passwd", "a/b", "", "."] {
        assert_eq!(root.open(bad).err().unwrap().kind, ErrorKind::BadName);
        assert_eq!(root.delete(bad).unwrap_err().kind, ErrorKind::BadName);
        let temp = root.create().unwrap();
        assert_eq!(temp.commit(bad).unwrap_err().kind, ErrorKind::BadName);
    }
    assert_eq!(partial_count(&root), 0);
}

#[test]
fn a_kept_upload_is_resumed_once_and_invisible_meanwhile() {
    let (_d, root) = root();
    let name = "é".repeat(127);
    let mut temp = root.create().unwrap();
    temp.write_all(b"first half").unwrap();
    assert_eq!(temp.keep(&name).unwrap(), 10);
    assert!(root.list().unwrap().is_empty());
    assert!(root.resume("other").unwrap().is_none());
    let mut resumed = root.resume(&name).unwrap().expect("kept");
    assert!(root.resume(&name).unwrap().is_none(), "taken by the first");
    let mut text = String::new();
    resumed.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first half");
    drop(resumed);
    assert_eq!(partial_count(&root), 0);
    let empty = root.create().unwrap();
    assert_eq!(empty.keep("x").unwrap(), 0);
    assert_eq!(partial_count(&root), 0, "nothing kept for nothing received");
}

#[test]
fn old_kept_uploads_and_leftover_temporaries_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (root, _) = LocalStore::open_with(&data, Duration::from_secs(3600)).unwrap();
    for (name, age) in [("fresh", 0), ("old", 7200)] {
        let mut temp = root.create_temp().unwrap();
        temp.write_all(b"data").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        temp.as_file().set_modified(when).unwrap();
        Box::new(temp).keep(name).unwrap();
    }
    let leftover = root.create().unwrap();
    std::mem::forget(leftover);
    assert_eq!(
        root.sweep(false).unwrap(),
        1,
        "only the old one while serving"
    );
    assert!(root.resume("old").unwrap().is_none());
    drop(root);
    let (root, removed) = LocalStore::open_with(&data, Duration::from_secs(3600)).unwrap();
    assert_eq!(removed, 1, "the leftover temporary, at start");
    assert!(root.resume("fresh").unwrap().is_some());
}
