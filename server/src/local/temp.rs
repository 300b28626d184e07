//! [`Temp`]: an upload being received into the root's hidden directory, committed by one
//! rename, or kept there for resuming.

use std::fs::File;
use std::io::{self, Seek};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use ferry_core::Pending;
use ferry_core::behind::Behind;
use ferry_core::digest::Digest;
use ferry_core::store::{Store, Upload};
use ferry_core::{Failure, RemotePath};

use super::LocalStore;
use ferry_core::batch::Dir;

/// Prefix of the temporary that a transfer in progress writes.
pub const TEMP_PREFIX: &str = "up-";
/// Prefix of an interrupted upload kept for resuming; a digest of the path follows.
pub const KEPT_PREFIX: &str = "resume-";

/// A file in the root's hidden directory, removed when dropped unless `done`.
#[derive(Debug)]
pub struct Hidden {
    /// The hidden directory it lies in (that of the root when it was made).
    pub(super) partial: Arc<OwnedFd>,
    pub(super) name: String,
    pub(super) file: File,
    /// Placed or kept: no longer this value's to remove.
    pub(super) done: bool,
}

impl Hidden {
    /// `file`, just made as `name` in `partial`.
    pub(super) fn new(partial: Arc<OwnedFd>, name: String, file: File) -> Hidden {
        Hidden {
            partial,
            name,
            file,
            done: false,
        }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&*self.partial, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// A temporary in the root's hidden directory: an upload being received. Dropped without
/// [`Upload::commit`] or [`Upload::keep`], it is removed.
#[derive(Debug)]
pub struct Temp<'r> {
    pub(super) store: &'r LocalStore,
    pub(super) hidden: Hidden,
    /// Who sends it.
    pub(super) owner: IpAddr,
    /// Its writeback, started behind what is written (see [`Behind`]).
    pub(super) behind: Behind,
    /// Its length, while that is known without asking the file system: a new temporary
    /// written front to back (not one read back or moved in, to resume it).
    pub(super) len: Option<u64>,
    /// The directory it goes into, opened below the root when the upload was admitted, and
    /// the path it was opened for: the commit to that path renames into it (see
    /// [`Upload::prepare`]).
    pub(super) target: Option<(RemotePath, Arc<Dir>)>,
}

impl<'r> Temp<'r> {
    /// An upload from `owner` received into `hidden`; `target` as in [`Temp::target`].
    pub(super) fn new(
        store: &'r LocalStore,
        hidden: Hidden,
        owner: IpAddr,
        target: Option<(RemotePath, Arc<Dir>)>,
    ) -> Temp<'r> {
        Temp {
            store,
            hidden,
            owner,
            behind: Behind::default(),
            len: target.as_ref().map(|_| 0),
            target,
        }
    }
}

#[cfg(test)]
impl Temp<'_> {
    /// The open file.
    pub fn as_file(&self) -> &File {
        &self.hidden.file
    }
}

impl io::Read for Temp<'_> {
    /// Reads what the file holds (a kept part, to resume it); writing then goes on from there.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.hidden.file.read(buf)?;
        self.behind.skipped(n);
        self.len = None;
        Ok(n)
    }
}

impl io::Write for Temp<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.hidden.file.write(buf)?;
        self.behind.wrote_to(&self.hidden.file, n);
        if let Some(len) = &mut self.len {
            *len += n as u64;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hidden.file.flush()
    }
}

impl io::Seek for Temp<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let at = self.hidden.file.seek(pos)?;
        self.behind.moved_to(at);
        self.len = None;
        Ok(at)
    }
}

impl Upload for Temp<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.hidden.file.metadata()?.len())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.hidden.file.set_len(0)?;
        self.seek(io::SeekFrom::Start(0))?;
        self.len = Some(0);
        Ok(())
    }

    /// Renames the temporary into place, atomically replacing any old file (or a symbolic link
    /// of that name: the link is replaced, its target never touched). The data is flushed to
    /// the disk first, so a crash cannot leave a renamed but empty file; the directory is
    /// flushed after, so that the rename lasts too.
    fn commit(
        self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<(), Failure> {
        commit_prepared(self.prepare(path, mtime, digest)?, path)
    }

    /// Everything of [`Upload::commit`] but the flush and the rename, which the [`Staged`]
    /// returned does. The digest is kept with the file (see [`super::digests`]), after its
    /// time is set.
    ///
    /// The file goes into the directory opened when the upload was admitted, if it was
    /// admitted for `path` ([`Temp::target`]): that directory wherever it is now, should it
    /// have been renamed meanwhile, as the root itself is served wherever it is moved (see
    /// [`super::root`]); opening it again here would cost a second resolution per file.
    /// Otherwise (a resumed upload, or one committed elsewhere) `path`'s directory is opened
    /// now.
    fn prepare(
        mut self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<Option<Box<dyn Pending>>, Failure> {
        let (dir, leaf) = destination(self.store, self.target.take(), path)?;
        let file = &self.hidden.file;
        if let Some(mtime) = mtime {
            file.set_modified(ferry_core::store::time_of(mtime))
                .map_err(|e| Failure::io(&path.to_string(), &e))?;
        }
        super::parts::unrecord(file);
        super::digests::keep_now(file, self.len, digest);
        // The temporary moves to the staged file (no descriptor is duplicated), which removes
        // it should it never be placed.
        let Temp { hidden, .. } = *self;
        Ok(Some(Box::new(Staged::new(hidden, dir, leaf))))
    }

    fn keep(mut self: Box<Self>, path: &RemotePath) -> io::Result<u64> {
        let store = self.store;
        store.keep_part(&mut self, path)
    }
}

/// Commits what [`Upload::prepare`] returned: the flush and the rename, now.
pub(super) fn commit_prepared(
    prepared: Option<Box<dyn Pending>>,
    path: &RemotePath,
) -> Result<(), Failure> {
    match prepared {
        Some(pending) => {
            ferry_core::batch::commit_one(pending, &path.to_string()).map_err(|f| f.failure())
        }
        None => Ok(()),
    }
}

/// Where an upload committed at `path` goes, once `path` is checked as a new entry: into
/// the directory opened when it was admitted, if it was admitted for `path` (`admitted`),
/// that directory wherever it is now; otherwise into `path`'s directory, opened now.
pub(super) fn destination<'p>(
    store: &LocalStore,
    admitted: Option<(RemotePath, Arc<Dir>)>,
    path: &'p RemotePath,
) -> Result<(Arc<Dir>, &'p str), Failure> {
    store.check_new(path)?;
    let held = admitted.filter(|(admitted, _)| admitted == path);
    match (held, path.file_name()) {
        (Some((_, dir)), Some(leaf)) => Ok((dir, leaf)),
        _ => {
            let (dir, leaf) = store.parent(path)?;
            let dir = super::admit::flushed(dir).map_err(|e| Failure::io(&path.to_string(), &e))?;
            Ok((dir, leaf))
        }
    }
}

/// A fresh temporary in the hidden directory `partial`, under a name no other file has.
pub(super) fn create_hidden(partial: &Arc<OwnedFd>) -> io::Result<Hidden> {
    loop {
        let name = temp_name();
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&**partial, name.as_str(), flags, Mode::from(0o644)) {
            Ok(fd) => return Ok(Hidden::new(Arc::clone(partial), name, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An upload written in full, waiting to be flushed and renamed into place (see
/// [`Pending`]). Dropped before [`Pending::place`], its temporary is removed.
pub struct Staged {
    hidden: Hidden,
    /// The directory it goes into (shared by the uploads into it; see [`super::admit`]), and
    /// its name there.
    dir: Arc<Dir>,
    leaf: String,
}

impl Staged {
    /// `hidden`, to be renamed to `leaf` in `dir`.
    pub(super) fn new(hidden: Hidden, dir: Arc<Dir>, leaf: &str) -> Staged {
        Staged {
            hidden,
            dir,
            leaf: leaf.into(),
        }
    }
}

impl Pending for Staged {
    /// Starts writeback of the whole file (`POSIX_FADV_DONTNEED` starts it without waiting;
    /// pages under writeback stay cached), so that the blocks of every file in a batch are
    /// allocated in one journal transaction, which the first flush then commits for all.
    fn start(&mut self) {
        let _ = rustix::fs::fadvise(&self.hidden.file, 0, None, rustix::fs::Advice::DontNeed);
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hidden.file.sync_data()
    }

    /// Renames the file into its directory and hands that directory on, to be flushed.
    fn place(mut self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
        let hidden = &mut self.hidden;
        rustix::fs::renameat(
            &*hidden.partial,
            hidden.name.as_str(),
            self.dir.file(),
            self.leaf.as_str(),
        )?;
        hidden.done = true;
        Ok(Some(self.dir))
    }

    fn waits(&self) -> bool {
        !self.dir.in_memory()
    }
}

/// A fresh temporary name; uniqueness is finally ensured by `O_EXCL`.
pub fn temp_name() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The process id once: asking for it is a system call per upload otherwise.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let random = std::collections::hash_map::RandomState::new().hash_one((n, pid));
    format!("{TEMP_PREFIX}{random:016x}")
}

/// Where the upload of `path` is kept for resuming: a digest of the path, so that the key has
/// a fixed length whatever the path's (up to 4 KiB, which no file name would hold).
pub fn kept_name(path: &RemotePath) -> String {
    let mut digest = Digest::new();
    digest.update(path.relative().as_bytes());
    format!("{KEPT_PREFIX}{}", digest.hex())
}

#[cfg(test)]
pub(super) mod tests {
    use std::fs;
    use std::io::Write;

    use ferry_core::store::{EntryKind, Meta};
    use ferry_core::{ErrorKind, Failure};

    use super::super::digests::{self, KEEP_FROM};
    use super::super::tests::{ME, p, partial_count, root};
    use super::*;

    /// Starts an upload to `path`, expecting nothing there yet.
    pub(in super::super) fn start<'r>(store: &'r LocalStore, path: &str) -> Box<dyn Upload + 'r> {
        let check = &mut |found: Option<(EntryKind, Meta)>| {
            assert_eq!(found, None);
            Ok(())
        };
        store.create_checked(&p(path), ME, check).unwrap()
    }

    #[test]
    fn an_upload_lands_in_its_directory_wherever_that_was_renamed_meanwhile() {
        let (_d, store) = root();
        store.mkdir(&p("dir")).unwrap();
        let mut upload = start(&store, "dir/f");
        upload.write_all(b"content").unwrap();
        store.rename(&p("dir"), &p("moved"), false).unwrap();
        // A new directory at the old path does not take it: the one admitted does.
        store.mkdir(&p("dir")).unwrap();
        upload.commit(&p("dir/f"), None, &Digest::new()).unwrap();
        assert_eq!(fs::read(store.path().join("moved/f")).unwrap(), b"content");
        assert!(!store.path().join("dir/f").exists());
        // Deleted meanwhile, it takes nothing: the upload fails and leaves no temporary.
        let mut upload = start(&store, "dir/g");
        upload.write_all(b"lost").unwrap();
        store.rmdir(&p("dir")).unwrap();
        let failed = upload
            .commit(&p("dir/g"), None, &Digest::new())
            .unwrap_err();
        assert_eq!(failed.kind, ErrorKind::NotFound, "{failed}");
        assert_eq!(partial_count(&store), 0);
    }

    #[test]
    fn a_refused_check_starts_nothing_and_an_upload_elsewhere_opens_its_own_directory() {
        let (_d, store) = root();
        store.mkdir(&p("a")).unwrap();
        store.mkdir(&p("b")).unwrap();
        fs::write(store.path().join("a/f"), b"old").unwrap();
        let refuse = &mut |found: Option<(EntryKind, Meta)>| {
            assert!(matches!(found, Some((EntryKind::File, _))), "{found:?}");
            Err(Failure::new(ErrorKind::Exists, "refused"))
        };
        let refused = store.create_checked(&p("a/f"), ME, refuse).err().unwrap();
        assert_eq!(refused.kind, ErrorKind::Exists);
        assert_eq!(partial_count(&store), 0);
        // Admitted for a/g, committed to b/g: b is opened then.
        let mut upload = start(&store, "a/g");
        upload.write_all(b"g").unwrap();
        upload.commit(&p("b/g"), None, &Digest::new()).unwrap();
        assert_eq!(fs::read(store.path().join("b/g")).unwrap(), b"g");
        assert!(!store.path().join("a/g").exists());
    }

    #[test]
    fn a_large_upload_keeps_its_digest_and_a_small_one_none() {
        let (_d, store) = root();
        for (name, len) in [("large", KEEP_FROM), ("small", KEEP_FROM - 1)] {
            let content = vec![b'x'; len as usize];
            let mut digest = Digest::new();
            digest.update(&content);
            let mut upload = start(&store, name);
            upload.write_all(&content).unwrap();
            upload.commit(&p(name), None, &digest).unwrap();
            let file = File::open(store.path().join(name)).unwrap();
            let expected = (len >= KEEP_FROM).then(|| digest.hex());
            assert_eq!(digests::kept(&file), expected, "{name}");
        }
    }
}
