use std::fs;
use std::time::{Duration, SystemTime};

use ferry_core::store::Store;

use super::super::PARTIAL_DIR;
use super::super::temp::tests::start;
use super::super::tests::{ME, p, partial_count};
use super::*;

/// A root that holds small uploads, whatever its filesystem.
fn root() -> (tempfile::TempDir, LocalStore) {
    let (dir, store) = super::super::tests::root();
    (dir, store.holding_small(true))
}

#[test]
fn a_small_upload_is_made_by_its_commit_and_not_before() {
    let (_d, store) = root();
    store.mkdir(&p("dir")).unwrap();
    let mut upload = start(&store, "dir/a b");
    upload.write_all(b"hello").unwrap();
    assert_eq!(upload.size().unwrap(), 5);
    let pending = upload.prepare(&p("dir/a b"), Some(1_000_000_000), &Digest::new());
    let mut pending = pending.unwrap().expect("a local upload's commit is split");
    assert_eq!(partial_count(&store), 0, "made before the commit");
    pending.start();
    assert_eq!(partial_count(&store), 1);
    pending.flush().unwrap();
    assert!(
        !store.path().join("dir/a b").exists(),
        "placed before its rename"
    );
    pending.place().unwrap();
    let placed = store.path().join("dir/a b");
    assert_eq!(fs::read(&placed).unwrap(), b"hello");
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!(fs::metadata(&placed).unwrap().modified().unwrap(), when);
    assert_eq!(partial_count(&store), 0);
}

#[test]
fn in_memory_a_small_upload_has_no_name_until_it_is_placed_over_what_is_there() {
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (store, _) = LocalStore::open(&shm.path().join("data")).unwrap();
    assert!(store.holds_small);
    let path = store.path().join("f");
    for (content, when) in [("one", 1_000_000_000), ("two", 1_100_000_000)] {
        let mut upload = store.create_checked(&p("f"), ME, &mut |_| Ok(())).unwrap();
        upload.write_all(content.as_bytes()).unwrap();
        let pending = upload.prepare(&p("f"), Some(when), &Digest::new());
        let mut pending = pending.unwrap().expect("a local upload's commit is split");
        pending.start();
        pending.flush().unwrap();
        assert_eq!(partial_count(&store), 0, "a temporary with a name");
        assert_eq!(
            fs::read_dir(store.path()).unwrap().count(),
            1 + usize::from(when > 1_000_000_000)
        );
        pending.place().unwrap();
        assert_eq!(fs::read(&path).unwrap(), content.as_bytes());
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(when);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), when);
        assert_eq!(partial_count(&store), 0);
    }
    // Written and dropped before its rename, it leaves nothing.
    let mut upload = start(&store, "g");
    upload.write_all(b"lost").unwrap();
    let mut pending = upload
        .prepare(&p("g"), None, &Digest::new())
        .unwrap()
        .unwrap();
    pending.start();
    drop(pending);
    assert_eq!(partial_count(&store), 0);
    assert!(!store.path().join("g").exists());
}

#[test]
fn an_upload_past_the_small_size_becomes_a_temporary_at_once() {
    let (_d, store) = root();
    let mut upload = start(&store, "big");
    let content: Vec<u8> = (0..=SMALL).map(|i| i as u8).collect();
    upload.write_all(&content[..SMALL as usize]).unwrap();
    assert_eq!(partial_count(&store), 0);
    upload.write_all(&content[SMALL as usize..]).unwrap();
    assert_eq!(partial_count(&store), 1, "no temporary past the size held");
    assert_eq!(upload.size().unwrap(), SMALL + 1);
    upload.commit(&p("big"), None, &Digest::new()).unwrap();
    assert_eq!(fs::read(store.path().join("big")).unwrap(), content);
}

#[test]
fn a_small_upload_interrupted_is_kept_for_resuming() {
    let (_d, store) = root();
    let mut upload = start(&store, "part");
    upload.write_all(b"the start").unwrap();
    assert_eq!(upload.keep(&p("part")).unwrap(), 9);
    let resumed = store.resume(&p("part"), ME).unwrap().expect("nothing kept");
    assert_eq!(resumed.size().unwrap(), 9);
    let empty = start(&store, "empty");
    assert_eq!(empty.keep(&p("empty")).unwrap(), 0);
}

#[test]
fn a_small_upload_that_cannot_be_written_fails_its_flush_and_is_not_placed() {
    let (_d, store) = root();
    let mut upload = start(&store, "lost");
    upload.write_all(b"hello").unwrap();
    let pending = upload.prepare(&p("lost"), None, &Digest::new()).unwrap();
    // The hidden directory is empty while the content is held, so it can go.
    fs::remove_dir(store.path().join(PARTIAL_DIR)).unwrap();
    let failed = ferry_core::batch::commit_one(pending.unwrap(), "/lost").unwrap_err();
    assert_eq!(failed.error.kind(), io::ErrorKind::NotFound, "{failed:?}");
    assert!(!store.path().join("lost").exists());
}

#[test]
fn small_uploads_are_held_on_a_root_in_memory_and_not_on_a_disk() {
    assert!(in_memory(std::path::Path::new("/dev/shm")));
    assert!(!in_memory(std::path::Path::new("/proc")));
    let (_d, store) = super::super::tests::root();
    let store = store.holding_small(false);
    let mut upload = start(&store, "written");
    upload.write_all(b"at once").unwrap();
    assert_eq!(
        partial_count(&store),
        1,
        "held on a store that holds nothing"
    );
}

#[test]
fn the_memory_held_stays_within_its_budget() {
    let mut whole = Reserved::default();
    assert!(!whole.grow(BUDGET + 1));
    assert_eq!(whole.0, 0, "a refused reservation was counted");
    let mut some = Reserved::default();
    assert!(some.grow(1));
    assert_eq!(some.0, 1);
}
