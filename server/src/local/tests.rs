//! The local store's unit tests: confinement, atomic commits, resumable parts, sweeping.

use std::fs;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use ferry_core::digest::Digest;
use rustix::fs::XattrFlags;

use super::*;

mod kept;

/// The address tests upload from.
pub(super) const ME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Kept parts expire after an hour, with the other bounds at their defaults.
const HOUR: PartLimits = PartLimits {
    max_age: Duration::from_secs(3600),
    max_bytes: None,
    max_count: 1024,
    share: 25,
};

pub(super) fn root() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = LocalStore::open(&dir.path().join("data")).unwrap();
    (dir, root)
}

/// The path typed as `typed` at the root.
pub(super) fn p(typed: &str) -> RemotePath {
    RemotePath::root().resolve(typed).unwrap()
}

/// The entries of `dir`, sorted: name and kind.
fn listed(root: &LocalStore, dir: &str) -> Vec<(String, EntryKind)> {
    let mut entries = Vec::new();
    root.list(&p(dir), &mut |e| {
        entries.push((e.name, e.kind));
        Ok(())
    })
    .unwrap();
    entries.sort();
    entries
}

pub(super) fn partial_count(root: &LocalStore) -> usize {
    fs::read_dir(root.path().join(PARTIAL_DIR)).unwrap().count()
}

#[test]
fn upload_commit_list_delete() {
    let (_d, root) = root();
    let mut temp = root.create(&p("new"), ME).unwrap();
    temp.write_all(b"hello").unwrap();
    assert!(listed(&root, "/").is_empty(), "a temporary is invisible");
    temp.commit(&p("a b ✓"), Some(1_000_000_000), &Digest::new())
        .unwrap();
    assert_eq!(listed(&root, "/"), [("a b ✓".to_string(), EntryKind::File)]);
    let meta = root.open(&p("a b ✓")).unwrap().1;
    assert_eq!((meta.size, meta.mtime), (5, 1_000_000_000));
    root.delete(&p("a b ✓")).unwrap();
    assert_eq!(
        root.delete(&p("a b ✓")).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(partial_count(&root), 0);
}

#[test]
fn a_dropped_temporary_is_removed() {
    let (_d, root) = root();
    let mut temp = root.create(&p("new"), ME).unwrap();
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
    let err = root.open(&p("link")).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    assert!(root.delete(&p("link")).is_err());
    assert!(listed(&root, "/").is_empty());
    let mut temp = root.create(&p("new"), ME).unwrap();
    temp.write_all(b"new").unwrap();
    temp.commit(&p("link"), None, &Digest::new()).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"secret", "target untouched");
    assert!(
        !fs::symlink_metadata(root.path().join("link"))
            .unwrap()
            .is_symlink(),
        "the link itself was replaced"
    );
    // A link to a directory outside does not let a name reach into it either.
    std::os::unix::fs::symlink(d.path(), root.path().join("dirlink")).unwrap();
    assert!(root.open(&p("dirlink")).is_err());
    assert!(root.delete(&p("dirlink")).is_err());
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
    let (mut file, _) = root.open(&p("inside")).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "in");
    root.delete(&p("inside")).unwrap();
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
    let mut temp = root.create(&p("new"), ME).unwrap();
    temp.write_all(b"x").unwrap();
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside"
    );
    assert!(data.join(PARTIAL_DIR).is_dir());
}

#[test]
fn the_reserved_name_is_refused_anywhere_before_the_filesystem() {
    let (_d, root) = root();
    fs::create_dir(root.path().join("sub")).unwrap();
    // Also as a file system that folds case or drops trailing dots (vfat) would read it.
    let spellings = [
        ".FERRY-PARTIAL",
        "sub/.Ferry-Partial/x",
        ".ferry-partial.",
        ".ferry-partial ",
    ];
    for bad in [PARTIAL_DIR, "sub/.ferry-partial", ".ferry-partial/x"]
        .into_iter()
        .chain(spellings)
    {
        let bad = p(bad);
        assert_eq!(root.open(&bad).err().unwrap().kind, ErrorKind::BadName);
        assert_eq!(root.delete(&bad).unwrap_err().kind, ErrorKind::BadName);
        assert_eq!(root.mkdir(&bad).unwrap_err().kind, ErrorKind::BadName);
        assert_eq!(root.stat(&bad).unwrap_err().kind, ErrorKind::BadName);
        let temp = root.create(&p("new"), ME).unwrap();
        let err = temp.commit(&bad, None, &Digest::new()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadName);
    }
    assert_eq!(partial_count(&root), 0);
    assert_eq!(listed(&root, "/"), [("sub".to_string(), EntryKind::Dir)]);
}

#[test]
fn a_tree_is_made_listed_renamed_and_removed_through_handles() {
    for walking in [false, true] {
        let (_d, root) = root();
        let root = if walking { root.walking() } else { root };
        root.mkdir(&p("a")).unwrap();
        root.mkdir(&p("a/b c")).unwrap();
        assert_eq!(root.mkdir(&p("a")).unwrap_err().kind, ErrorKind::Exists);
        let missing = root.mkdir(&p("x/y")).unwrap_err();
        assert_eq!(missing.message, "no such directory '/x'");
        let mut temp = root.create(&p("new"), ME).unwrap();
        temp.write_all(b"deep").unwrap();
        temp.commit(&p("a/b c/f.txt"), None, &Digest::new())
            .unwrap();
        assert_eq!(fs::read(root.path().join("a/b c/f.txt")).unwrap(), b"deep");
        assert_eq!(
            listed(&root, "a"),
            [("b c".to_string(), EntryKind::Dir)],
            "walking: {walking}"
        );
        let file = root.stat(&p("a/b c/f.txt")).unwrap().unwrap();
        assert_eq!((file.0, file.1.size), (EntryKind::File, 4));
        assert_eq!(root.stat(&p("a/nothing")).unwrap(), None);
        assert_eq!(root.stat(&p("/")).unwrap().unwrap().0, EntryKind::Dir);
        let not_dir = root.open(&p("a/b c/f.txt/x")).err().unwrap();
        assert_eq!(not_dir.message, "'/a/b c/f.txt' is not a directory");
        assert_eq!(root.rmdir(&p("a")).unwrap_err().kind, ErrorKind::NotEmpty);
        // A file moves, and another at its destination stays unless replacing.
        root.rename(&p("a/b c/f.txt"), &p("g.txt"), false).unwrap();
        fs::write(root.path().join("h.txt"), b"h").unwrap();
        let kept = root.rename(&p("g.txt"), &p("h.txt"), false).unwrap_err();
        assert_eq!(kept.kind, ErrorKind::Exists);
        assert_eq!(fs::read(root.path().join("h.txt")).unwrap(), b"h");
        root.rename(&p("g.txt"), &p("h.txt"), true).unwrap();
        assert_eq!(fs::read(root.path().join("h.txt")).unwrap(), b"deep");
        // A directory moves whole; never into itself, never onto a directory.
        let into_itself = root.rename(&p("a"), &p("a/b c/a"), false).unwrap_err();
        assert_eq!(into_itself.kind, ErrorKind::BadRequest);
        root.mkdir(&p("z")).unwrap();
        let onto_dir = root.rename(&p("a"), &p("z"), true).unwrap_err();
        assert_eq!(onto_dir.kind, ErrorKind::Exists);
        root.rename(&p("a"), &p("z/a"), false).unwrap();
        root.rmdir(&p("z/a/b c")).unwrap();
        root.rmdir(&p("z/a")).unwrap();
        assert_eq!(
            root.rmdir(&p("h.txt")).unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(root.rmdir(&p("/")).unwrap_err().kind, ErrorKind::BadRequest);
    }
}

#[test]
fn a_symlinked_directory_is_never_gone_through() {
    for walking in [false, true] {
        let (d, root) = root();
        let root = if walking { root.walking() } else { root };
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("real/link")).unwrap();
        std::os::unix::fs::symlink("../..", root.path().join("real/up")).unwrap();
        for through in ["real/link/secret", "real/up/outside/secret"] {
            let err = root.open(&p(through)).err().unwrap();
            assert_eq!(err.kind, ErrorKind::Forbidden, "{through}: {err}");
            assert_eq!(
                root.delete(&p(through)).unwrap_err().kind,
                ErrorKind::Forbidden
            );
            let temp = root.create(&p("new"), ME).unwrap();
            assert!(temp.commit(&p(through), None, &Digest::new()).is_err());
            assert!(root.mkdir(&p(&format!("{through}x"))).is_err());
        }
        let err = root.list(&p("real/link"), &mut |_| Ok(())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);
        assert_eq!(listed(&root, "real"), []);
        let stat = root.stat(&p("real/link")).unwrap_err();
        assert_eq!(stat.kind, ErrorKind::Forbidden);
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }
}

#[test]
fn a_tree_with_links_inside_is_deleted_without_following_them() {
    for walking in [false, true] {
        let (d, root) = root();
        let root = if walking { root.walking() } else { root };
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("inner")).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        let tree = root.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("f"), b"f").unwrap();
        fs::write(tree.join("sub/g"), b"g").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), tree.join("filelink")).unwrap();
        std::os::unix::fs::symlink("../../..", tree.join("sub/up")).unwrap();
        root.delete_tree(&p("tree")).unwrap();
        assert!(!tree.exists() && fs::symlink_metadata(&tree).is_err());
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
        assert!(outside.join("inner").is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 2);
    }
}

#[test]
fn new_names_pass_the_stricter_rules_unless_any_name_is_allowed() {
    let (_d, root) = root();
    let (rlo, nfd) = ("a\u{202e}txt.exe", "cafe\u{301}");
    fs::write(root.path().join(rlo), b"old").unwrap();
    root.mkdir(&p("ok")).unwrap();
    for bad in [rlo, nfd] {
        let refused = |r: Result<(), Failure>| assert_eq!(r.unwrap_err().kind, ErrorKind::BadName);
        refused(root.mkdir(&p(bad)));
        refused(root.rename(&p("ok"), &p(bad), false));
        refused(
            root.create(&p("new"), ME)
                .unwrap()
                .commit(&p(bad), None, &Digest::new()),
        );
    }
    // What is on disk already is listed, read, and may be renamed to a plain name.
    assert!(listed(&root, "/").contains(&(rlo.to_string(), EntryKind::File)));
    assert!(root.open(&p(rlo)).is_ok());
    root.rename(&p(rlo), &p("plain.exe"), false).unwrap();
    let any = root.any_name(true);
    any.mkdir(&p(nfd)).unwrap();
    any.rename(&p("plain.exe"), &p(rlo), false).unwrap();
    any.create(&p("new"), ME)
        .unwrap()
        .commit(&p("ok/\u{feff}x"), None, &Digest::new())
        .unwrap();
}

#[test]
fn kept_parts_stay_within_the_share_cut_to_fit_and_the_oldest_go() {
    let dir = tempfile::tempdir().unwrap();
    let limits = PartLimits {
        max_bytes: Some(100),
        max_count: 4,
        share: 50,
        ..HOUR
    };
    let (root, _) = LocalStore::open_with(&dir.path().join("data"), limits).unwrap();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let mut temp = root.create_temp(&p(name), ME).unwrap();
        temp.write_all(&[b'x'; 30]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(100 - i as u64);
        temp.as_file().set_modified(when).unwrap();
        assert_eq!(Box::new(temp).keep(&p(name)).unwrap(), 30);
    }
    // Two parts are this address's share: the oldest went.
    assert!(root.resume(&p("a"), ME).unwrap().is_none());
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut big = root.create(&p("big"), other).unwrap();
    big.write_all(&[b'y'; 80]).unwrap();
    assert_eq!(big.keep(&p("big")).unwrap(), 50, "cut to the share");
    let parts = list_partials(root.path()).unwrap();
    let held: Vec<_> = parts
        .iter()
        .map(|p| (p.path.clone().unwrap(), p.size))
        .collect();
    // 110 bytes were over the 100: the oldest of the rest went.
    assert_eq!(held, [("c".to_string(), 30), ("big".to_string(), 50)]);
    assert_eq!(parts[1].owner, Some(other));
    let mut resumed = root.resume(&p("big"), ME).unwrap().unwrap();
    let mut text = Vec::new();
    resumed.read_to_end(&mut text).unwrap();
    assert_eq!(text, [b'y'; 50], "the start of what was sent");
}

#[test]
fn an_upload_a_crash_left_is_kept_at_the_next_start_and_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (root, _) = LocalStore::open_with(&data, HOUR).unwrap();
    fs::create_dir(data.join("dir é")).unwrap();
    let mut temp = root.create_temp(&p("dir é/doc"), ME).unwrap();
    temp.write_all(b"half of it").unwrap();
    crashed(temp);
    let mut nameless = root.create_temp(&p("other"), ME).unwrap();
    nameless.write_all(b"unrecorded").unwrap();
    parts::record(nameless.as_file(), None, ME);
    crashed(nameless);
    drop(root);
    let (root, removed) = LocalStore::open_with(&data, HOUR).unwrap();
    assert_eq!(removed, 1, "only the part whose path was not recorded");
    assert!(listed(&root, "dir é").is_empty(), "nothing committed");
    let mut resumed = root.resume(&p("dir é/doc"), ME).unwrap().expect("kept");
    let mut text = String::new();
    resumed.read_to_string(&mut text).unwrap();
    assert_eq!(text, "half of it");
    resumed.commit(&p("doc"), None, &Digest::new()).unwrap();
    let mut attrs = [0u8; 256];
    let file = fs::File::open(root.path().join("doc")).unwrap();
    let len = rustix::fs::flistxattr(&file, &mut attrs[..]).unwrap();
    let names = String::from_utf8_lossy(&attrs[..len]);
    assert!(!names.contains("ferry."), "no record left: {names}");
}

#[test]
fn a_root_deleted_or_replaced_is_noticed_and_served_again_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (root, _) = LocalStore::open(&data).unwrap();
    fs::write(data.join("old"), b"old").unwrap();
    fs::remove_dir_all(&data).unwrap();
    // A link in its place is not followed.
    std::os::unix::fs::symlink(dir.path(), &data).unwrap();
    for failed in [
        root.list(&p("/"), &mut |_| Ok(())).unwrap_err(),
        root.stat(&p("old")).unwrap_err(),
        root.create(&p("new"), ME).err().unwrap(),
    ] {
        assert_eq!(failed.kind, ErrorKind::Unavailable, "{failed}");
    }
    fs::remove_file(&data).unwrap();
    fs::create_dir(&data).unwrap();
    fs::write(data.join("new"), b"new").unwrap();
    assert_eq!(listed(&root, "/"), [("new".to_string(), EntryKind::File)]);
    let mut temp = root.create(&p("up"), ME).unwrap();
    temp.write_all(b"up").unwrap();
    temp.commit(&p("up"), None, &Digest::new()).unwrap();
    assert_eq!(fs::read(data.join("up")).unwrap(), b"up");
    // Deleted and made again at once (its inode may well be reused).
    fs::remove_dir_all(&data).unwrap();
    fs::create_dir(&data).unwrap();
    assert!(listed(&root, "/").is_empty());
    assert!(data.join(PARTIAL_DIR).is_dir());
}

/// An upload as a crash leaves it: the file stays, and its lock goes with the process (here,
/// given up by hand, since the test's process lives on).
fn crashed(temp: Temp<'_>) {
    rustix::fs::flock(temp.as_file(), rustix::fs::FlockOperation::Unlock).unwrap();
    std::mem::forget(temp);
}

#[test]
fn a_second_server_on_the_root_leaves_an_upload_in_progress_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (first, _) = LocalStore::open_with(&data, HOUR).unwrap();
    let mut temp = first.create(&p("doc"), ME).unwrap();
    temp.write_all(b"on its way").unwrap();
    // Another node starts on the same root while the upload runs: it must not take the
    // upload's temporary for one a crash left.
    let (_second, removed) = LocalStore::open_with(&data, HOUR).unwrap();
    assert_eq!(removed, 0);
    temp.commit(&p("doc"), None, &Digest::new()).unwrap();
    assert_eq!(fs::read(data.join("doc")).unwrap(), b"on its way");
}

#[test]
fn a_part_an_earlier_version_recorded_is_read_and_resumed_without_its_record() {
    let (_d, store) = root();
    let path = p("dir/doc");
    let partial = Arc::clone(&store.root.handles().unwrap().partial);
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
    let key = kept_name(&path);
    let fd = rustix::fs::openat(&*partial, key.as_str(), flags, Mode::from(0o644)).unwrap();
    let mut file = fs::File::from(fd);
    file.write_all(b"kept").unwrap();
    // One attribute each, as versions before `user.ferry.upload` wrote them.
    for (name, value) in [
        ("user.ferry.path", "dir/doc"),
        ("user.ferry.owner", "10.0.0.1"),
    ] {
        rustix::fs::fsetxattr(&file, name, value.as_bytes(), XattrFlags::empty()).unwrap();
    }
    let scanned = parts::scan(&partial).unwrap();
    assert_eq!(scanned[0].path.as_deref(), Some("dir/doc"));
    assert_eq!(scanned[0].owner, Some(IpAddr::from([10, 0, 0, 1])));
    let resumed = store.resume(&path, ME).unwrap().expect("kept");
    resumed.commit(&p("doc"), None, &Digest::new()).unwrap();
    let file = fs::File::open(store.path().join("doc")).unwrap();
    let mut names = [0u8; 256];
    let len = rustix::fs::flistxattr(&file, &mut names[..]).unwrap();
    assert_eq!(len, 0, "{:?}", String::from_utf8_lossy(&names[..len]));
}
