//! [`Small`]: an upload held in memory until its group is committed, so that its file is
//! made and written on the committing thread rather than on the session's; only on a root in
//! memory ([`in_memory`]).
//!
//! A pipelined `UPLOAD -r` of small files to tmpfs kept the session's thread busy making each
//! temporary (`openat`, `flock`, the record's `fsetxattr` and later `fremovexattr`), writing
//! it and setting its time, while the committing thread only flushed and renamed. Held in
//! memory, the content reaches its file on the committing thread, which runs alongside.
//!
//! Only up to [`SMALL`] bytes an upload, and [`BUDGET`] for the whole process, are held: an
//! upload that outgrows either, or is read back, moved in or kept for resuming, becomes an
//! ordinary [`Temp`] at once. What is held is lost if the server crashes, as an upload's
//! temporary without a record is: its reply had not been sent, and so little is resent
//! sooner than resumed.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_core::Pending;
use ferry_core::batch::{Dir, unnamed};
use ferry_core::digest::Digest;
use ferry_core::store::Upload;
use ferry_core::{Failure, RemotePath};

use super::root::Handles;
use super::temp::{Staged, Temp, commit_prepared, create_hidden, destination, temp_name};
use super::{LocalStore, parts};

/// The most bytes one upload holds in memory.
pub const SMALL: u64 = 64 * 1024;
/// The most bytes all uploads of the process hold in memory together.
pub const BUDGET: u64 = 16 * 1024 * 1024;

// Whatever the store keeps a digest with is written to its file from the start.
const _: () = assert!(SMALL < super::digests::KEEP_FROM);

/// Whether the directory at `path` is in memory (tmpfs or ramfs), where a flush costs
/// nothing and the session's own system calls bound an upload of many small files; on a
/// disk, the committing thread is the busier one, waiting for flushes, and an upload is better
/// written by the session, as it arrives (measured: docs/PERFORMANCE.md).
pub fn in_memory(path: &std::path::Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| ferry_core::batch::in_memory(&fs))
}

/// The bytes held now, by every upload.
static HELD: AtomicU64 = AtomicU64::new(0);

/// Bytes taken from [`BUDGET`], given back when dropped.
#[derive(Debug, Default)]
struct Reserved(u64);

impl Reserved {
    /// Takes `n` more bytes, if the budget has them.
    fn grow(&mut self, n: u64) -> bool {
        let taken = HELD.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(n).filter(|&total| total <= BUDGET)
        });
        if taken.is_ok() {
            self.0 += n;
        }
        taken.is_ok()
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// An upload admitted at a path in a directory, its content held until it outgrows the
/// memory allowed; from then on a [`Temp`].
#[derive(Debug)]
pub struct Small<'r> {
    store: &'r LocalStore,
    handles: Arc<Handles>,
    owner: IpAddr,
    /// The path admitted and its directory, opened then.
    target: (RemotePath, Arc<Dir>),
    held: Vec<u8>,
    reserved: Reserved,
    /// The temporary it became, if it did.
    temp: Option<Temp<'r>>,
}

impl<'r> Small<'r> {
    /// An empty upload from `owner` to `target`, a path and its directory.
    pub(super) fn new(
        store: &'r LocalStore,
        handles: Arc<Handles>,
        owner: IpAddr,
        target: (RemotePath, Arc<Dir>),
    ) -> Small<'r> {
        Small {
            store,
            handles,
            owner,
            target,
            held: Vec::new(),
            reserved: Reserved::default(),
            temp: None,
        }
    }

    /// The temporary it is, made now and given what was held if it was not yet.
    fn temp(&mut self) -> io::Result<&mut Temp<'r>> {
        let temp = match self.temp.take() {
            Some(temp) => temp,
            None => {
                let (path, dir) = &self.target;
                let handles = (Arc::clone(&self.handles), Arc::clone(dir), false);
                let mut temp = self
                    .store
                    .create_in(path, self.owner, handles)
                    .map_err(io::Error::other)?;
                temp.write_all(&self.held)?;
                self.held = Vec::new();
                self.reserved = Reserved::default();
                temp
            }
        };
        Ok(self.temp.insert(temp))
    }
}

impl Write for Small<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.temp.is_none() {
            let n = buf.len() as u64;
            if self.held.len() as u64 + n <= SMALL && self.reserved.grow(n) {
                // Exactly: the budget counts what is held, not what a doubling Vec keeps.
                self.held.reserve_exact(buf.len());
                self.held.extend_from_slice(buf);
                return Ok(buf.len());
            }
        }
        self.temp()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.temp {
            Some(temp) => temp.flush(),
            None => Ok(()),
        }
    }
}

impl Read for Small<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.temp()?.read(buf)
    }
}

impl Seek for Small<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.temp()?.seek(pos)
    }
}

impl Upload for Small<'_> {
    fn size(&self) -> io::Result<u64> {
        match &self.temp {
            Some(temp) => temp.size(),
            None => Ok(self.held.len() as u64),
        }
    }

    fn restart(&mut self) -> io::Result<()> {
        match &mut self.temp {
            Some(temp) => temp.restart(),
            None => {
                self.held = Vec::new();
                self.reserved = Reserved::default();
                Ok(())
            }
        }
    }

    fn commit(
        self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<(), Failure> {
        commit_prepared(self.prepare(path, mtime, digest)?, path)
    }

    fn keep(mut self: Box<Self>, path: &RemotePath) -> io::Result<u64> {
        if self.temp.is_none() && self.held.is_empty() {
            return Ok(0);
        }
        self.temp()?;
        match self.temp.take() {
            Some(temp) => Box::new(temp).keep(path),
            None => Ok(0),
        }
    }

    /// The file is not made yet: the committing thread makes it ([`Deferred`]).
    fn prepare(
        self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<Option<Box<dyn Pending>>, Failure> {
        let Small {
            store,
            handles,
            target,
            held,
            reserved,
            temp,
            ..
        } = *self;
        if let Some(temp) = temp {
            return Box::new(temp).prepare(path, mtime, digest);
        }
        let (dir, leaf) = destination(store, Some(target), path)?;
        Ok(Some(Box::new(Deferred {
            partial: Arc::clone(&handles.partial),
            content: Some((held, reserved, mtime)),
            dir: Some((dir, leaf.into())),
            staged: None,
        })))
    }
}

/// A held upload waiting for its group's commit: [`Pending::start`], on the committing
/// thread, writes it to a temporary, which is then flushed and renamed as any other
/// ([`Staged`]); or, on a file system in memory, to a file without a name ([`Linked`]).
/// Held uploads are only on a root in memory, where a flush is quick: the flushes that follow
/// then stay on the committing thread (see `ferry_core::batch`), which they would not if each
/// timed flush included making its file.
struct Deferred {
    partial: Arc<OwnedFd>,
    /// The content, its share of the budget and its modification time, until written.
    content: Option<(Vec<u8>, Reserved, Option<u64>)>,
    /// The directory it goes into and its name there, until written.
    dir: Option<(Arc<Dir>, String)>,
    /// Written: the file; or why it could not be, for [`Pending::flush`] to report.
    staged: Option<io::Result<Box<dyn Pending>>>,
}

impl Deferred {
    /// Writes the content, with its time, to a file without a name if the directory it goes
    /// into is in memory, else to a fresh temporary, marked in use.
    fn write(&mut self) -> io::Result<Box<dyn Pending>> {
        let (Some((content, reserved, mtime)), Some((dir, leaf))) =
            (self.content.take(), self.dir.take())
        else {
            return Err(io::Error::other("upload already written"));
        };
        let written = |mut file: &File| {
            file.write_all(&content)?;
            match mtime {
                Some(mtime) => file.set_modified(ferry_core::store::time_of(mtime)),
                None => Ok(()),
            }
        };
        let unnamed = dir
            .in_memory()
            .then(|| unnamed::make(&*self.partial).ok())
            .flatten();
        let staged: Box<dyn Pending> = match unnamed {
            Some(file) => {
                written(&file)?;
                let partial = Arc::clone(&self.partial);
                Box::new(Linked {
                    file,
                    partial,
                    dir,
                    leaf,
                })
            }
            None => {
                let hidden = create_hidden(&self.partial)?;
                parts::hold(&hidden.file);
                written(&hidden.file)?;
                Box::new(Staged::new(hidden, dir, &leaf))
            }
        };
        drop((content, reserved));
        Ok(staged)
    }
}

impl Pending for Deferred {
    fn start(&mut self) {
        if self.staged.is_none() {
            self.staged = Some(self.write());
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.start();
        match &mut self.staged {
            Some(Ok(staged)) => staged.flush(),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(io::Error::other("upload not written before its flush")),
        }
    }

    fn place(self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
        match self.staged {
            Some(Ok(staged)) => staged.place(),
            Some(Err(e)) => Err(e),
            None => Err(io::Error::other("upload not written before its rename")),
        }
    }
}

/// A held upload written to a file without a name, on a file system in memory (see
/// `ferry_core::batch::unnamed`): no temporary to make, lock and rename across directories.
/// Dropped before it is placed, it leaves nothing.
struct Linked {
    file: File,
    /// The root's hidden directory: where it is made, and linked first if its name is taken.
    partial: Arc<OwnedFd>,
    dir: Arc<Dir>,
    leaf: String,
}

impl Pending for Linked {
    fn start(&mut self) {}

    /// In memory there is nothing to flush to.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Links the file in as its name, or over a file already there by way of a temporary
    /// name in the hidden directory, marked in use for the moment it is there.
    fn place(self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
        let mut hidden = || {
            parts::hold(&self.file);
            temp_name()
        };
        let leaf = std::ffi::OsStr::new(&self.leaf);
        unnamed::place(
            &self.file,
            (self.dir.file(), leaf),
            &*self.partial,
            &mut hidden,
        )?;
        Ok(Some(Arc::clone(&self.dir)))
    }
}

#[cfg(test)]
mod tests {
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
}
