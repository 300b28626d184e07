//! The directory an upload is admitted into, opened once for a run of uploads into it.
//!
//! A session's uploads wait in its batch until their group is committed (see
//! [`ferry_core::Batch`]), each holding the directory it goes into. The next upload into the
//! same directory, while one of those still waits, takes that same handle instead of opening
//! the directory again: `UPLOAD -r` sends a directory's files one after the other, and the
//! open, its access check, the handle's identity (for the group's flush) and the close were
//! a fifth of the server's system calls a file. The handle is taken only if the path still
//! leads to it (one `statat`): a directory renamed away, or replaced, since the handle was
//! opened is opened afresh from its path, as if nothing had been held. Nothing is held for a
//! session that has no upload waiting, so an idle session keeps no directory open.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};

use rustix::fs::{Access, AtFlags};

use ferry_core::batch::Dir;
use ferry_core::{Failure, RemotePath};

use super::root::Handles;
use super::walk::{DirFd, Resolve, open_dir};

thread_local! {
    /// The directory this thread's session last admitted an upload into. Sessions have a
    /// thread each, so this is the session's.
    static RECENT: RefCell<Option<Recent>> = const { RefCell::new(None) };
}

/// A directory an upload was admitted into: while any upload still holds it, `dir` upgrades.
struct Recent {
    /// The root handle it was opened below (another store's, or a root opened again after
    /// it was deleted, never matches).
    root: Weak<OwnedFd>,
    parent: RemotePath,
    dir: Weak<Dir>,
}

/// `parent` (a directory below the root, or the root), opened below `handles.dir` as `how`
/// says, as a directory a group of uploads flushes; `true` with it when it was opened now
/// rather than taken from an upload of this session still waiting to be committed.
pub(super) fn admission_dir(
    handles: &Handles,
    parent: &RemotePath,
    how: Resolve,
) -> Result<(Arc<Dir>, bool), Failure> {
    if let Some(dir) = recent(handles, parent) {
        return Ok((dir, false));
    }
    let dir = flushed(open_dir(&handles.dir, parent, how)?)
        .map_err(|e| Failure::io(&ferry_core::name::escape(&parent.to_string()), &e))?;
    RECENT.with_borrow_mut(|recent| {
        *recent = Some(Recent {
            root: Arc::downgrade(&handles.dir),
            parent: parent.clone(),
            dir: Arc::downgrade(&dir),
        });
    });
    Ok((dir, true))
}

/// The directory held for `parent`, if an upload still holds it and `parent` still leads to
/// it from the root.
fn recent(handles: &Handles, parent: &RemotePath) -> Option<Arc<Dir>> {
    let dir = RECENT.with_borrow(|recent| {
        let recent = recent.as_ref()?;
        let same = recent.root.as_ptr() == Arc::as_ptr(&handles.dir) && recent.parent == *parent;
        same.then(|| recent.dir.upgrade()).flatten()
    })?;
    if parent.is_root() {
        // The root's handle is checked at every request (see `Root::handles`).
        return Some(dir);
    }
    let now =
        rustix::fs::statat(&*handles.dir, parent.relative(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
    ((now.st_dev as u64, now.st_ino as u64) == dir.id()).then_some(dir)
}

/// `dir` as a directory a group flushes: its own handle, or the root's duplicated, since
/// that one is shared.
pub(super) fn flushed(dir: DirFd) -> io::Result<Arc<Dir>> {
    let fd = match dir {
        DirFd::Below(dir) => dir,
        DirFd::Root(root) => Arc::try_unwrap(root).or_else(|root| root.try_clone())?,
    };
    Dir::new(File::from(fd)).map(Arc::new)
}

/// Checks that `dir` takes new entries: the rename at the end of an upload into it needs
/// that, and it is cheaper to learn it before any content.
pub(super) fn writable(dir: &Dir, path: &RemotePath) -> Result<(), Failure> {
    rustix::fs::accessat(dir.file(), ".", Access::WRITE_OK, AtFlags::empty())
        .map_err(|e| Failure::io(&ferry_core::name::escape(&path.to_string()), &e.into()))
}

/// How many uploads hold the directory last admitted into on this thread (tests).
#[cfg(test)]
fn holders() -> usize {
    RECENT.with_borrow(|recent| recent.as_ref().map_or(0, |r| r.dir.strong_count()))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use ferry_core::Digest;
    use ferry_core::store::{EntryKind, Meta, Store, Upload};

    use super::super::LocalStore;
    use super::super::tests::{ME, p, root};
    use super::holders;

    fn start<'r>(store: &'r LocalStore, path: &str) -> Box<dyn Upload + 'r> {
        let check = &mut |found: Option<(EntryKind, Meta)>| {
            assert_eq!(found, None);
            Ok(())
        };
        let mut upload = store.create_checked(&p(path), ME, check).unwrap();
        upload.write_all(path.as_bytes()).unwrap();
        upload
    }

    fn commit(upload: Box<dyn Upload + '_>, path: &str) {
        upload.commit(&p(path), None, &Digest::new()).unwrap();
    }

    #[test]
    fn uploads_into_one_directory_while_one_waits_share_its_handle_and_no_idle_one_holds_it() {
        let (_d, store) = root();
        store.mkdir(&p("dir")).unwrap();
        let a = start(&store, "dir/a");
        let b = start(&store, "dir/b");
        assert_eq!(holders(), 2, "the second upload opened the directory again");
        let elsewhere = start(&store, "c");
        assert_eq!(holders(), 1);
        commit(a, "dir/a");
        commit(b, "dir/b");
        commit(elsewhere, "c");
        assert_eq!(holders(), 0, "a committed upload still holds its directory");
        for name in ["dir/a", "dir/b", "c"] {
            assert_eq!(fs::read(store.path().join(name)).unwrap(), name.as_bytes());
        }
    }

    #[test]
    fn an_upload_admitted_after_its_directory_was_renamed_or_replaced_goes_where_its_path_leads() {
        let (_d, store) = root();
        store.mkdir(&p("dir")).unwrap();
        let a = start(&store, "dir/a");
        store.rename(&p("dir"), &p("moved"), false).unwrap();
        store.mkdir(&p("dir")).unwrap();
        // Admitted after the rename: the new directory at its path, not the one `a` holds.
        let b = start(&store, "dir/b");
        assert_eq!(holders(), 1);
        commit(b, "dir/b");
        commit(a, "dir/a");
        assert_eq!(fs::read(store.path().join("moved/a")).unwrap(), b"dir/a");
        assert_eq!(fs::read(store.path().join("dir/b")).unwrap(), b"dir/b");
        assert!(!store.path().join("moved/b").exists());

        // Removed and made again: the new one is opened, and the upload held by the old fails.
        let c = start(&store, "moved/c");
        fs::remove_file(store.path().join("moved/a")).unwrap();
        store.rmdir(&p("moved")).unwrap();
        store.mkdir(&p("moved")).unwrap();
        let d = start(&store, "moved/d");
        assert_eq!(holders(), 1);
        commit(d, "moved/d");
        assert_eq!(fs::read(store.path().join("moved/d")).unwrap(), b"moved/d");
        let lost = c.commit(&p("moved/c"), None, &Digest::new()).unwrap_err();
        assert_eq!(lost.kind, ferry_core::ErrorKind::NotFound, "{lost}");
    }
}
