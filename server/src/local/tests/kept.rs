//! Kept uploads: resumed once, swept when old, never while waiting for their commit.

use super::*;

#[test]
fn a_kept_upload_is_resumed_once_and_invisible_meanwhile() {
    let (_d, root) = root();
    let name = p(&format!("dir/{}", "é".repeat(127)));
    let mut temp = root.create(&p("new"), ME).unwrap();
    temp.write_all(b"first half").unwrap();
    assert_eq!(temp.keep(&name).unwrap(), 10);
    assert!(listed(&root, "/").is_empty());
    assert!(root.resume(&p("other"), ME).unwrap().is_none());
    let mut resumed = root.resume(&name, ME).unwrap().expect("kept");
    assert!(
        root.resume(&name, ME).unwrap().is_none(),
        "taken by the first"
    );
    let mut text = String::new();
    resumed.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first half");
    drop(resumed);
    assert_eq!(partial_count(&root), 0);
    let empty = root.create(&p("new"), ME).unwrap();
    assert_eq!(empty.keep(&p("x")).unwrap(), 0);
    assert_eq!(partial_count(&root), 0, "nothing kept for nothing received");
}

#[test]
fn old_kept_uploads_and_leftover_temporaries_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (root, _) = LocalStore::open_with(&data, HOUR).unwrap();
    for (name, age) in [("fresh", 0), ("old", 7200)] {
        let mut temp = root.create_temp(&p(name), ME).unwrap();
        temp.write_all(b"data").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        temp.as_file().set_modified(when).unwrap();
        Box::new(temp).keep(&p(name)).unwrap();
    }
    crashed(root.create_temp(&p("new"), ME).unwrap());
    assert_eq!(
        root.sweep(false).unwrap(),
        1,
        "only the old one while serving"
    );
    assert!(root.resume(&p("old"), ME).unwrap().is_none());
    drop(root);
    let (root, removed) = LocalStore::open_with(&data, HOUR).unwrap();
    assert_eq!(removed, 1, "the leftover temporary, at start");
    assert!(root.resume(&p("fresh"), ME).unwrap().is_some());
}

#[test]
fn an_upload_waiting_to_be_committed_with_an_old_time_is_not_swept() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = LocalStore::open_with(&dir.path().join("data"), HOUR).unwrap();
    let mut upload = root.create(&p("staged"), ME).unwrap();
    upload.write_all(b"kept").unwrap();
    // Its sender's time, a day old: the file waits under it until its group is committed.
    let day_ago = ferry_core::store::mtime_of(Ok(SystemTime::now())) - 86_400;
    let staged = upload
        .prepare(&p("staged"), Some(day_ago), &Digest::new())
        .unwrap()
        .unwrap();
    assert_eq!(root.sweep(false).unwrap(), 0);
    staged.place().unwrap();
    assert_eq!(fs::read(dir.path().join("data/staged")).unwrap(), b"kept");
}
