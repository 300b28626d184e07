//! [`Temp`]: an upload being received into the root's hidden directory, committed by one
//! rename, or kept there for resuming.

use std::fs::File;
use std::io::{self, Seek};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use rustix::fs::AtFlags;

use ferry_core::Pending;
use ferry_core::behind::Behind;
use ferry_core::digest::Digest;
use ferry_core::store::{Store, Upload};
use ferry_core::{Failure, RemotePath};

use super::LocalStore;
use super::walk::DirFd;

/// Prefix of the temporary that a transfer in progress writes.
pub const TEMP_PREFIX: &str = "up-";
/// Prefix of an interrupted upload kept for resuming; a digest of the path follows.
pub const KEPT_PREFIX: &str = "resume-";

/// A temporary in the root's hidden directory: an upload being received. Dropped without
/// [`Upload::commit`] or [`Upload::keep`], it is removed.
#[derive(Debug)]
pub struct Temp<'r> {
    pub(super) store: &'r LocalStore,
    /// The hidden directory it lies in (that of the root when it was made).
    pub(super) partial: Arc<OwnedFd>,
    pub(super) name: String,
    /// Who sends it.
    pub(super) owner: IpAddr,
    pub(super) file: File,
    /// Its writeback, started behind what is written (see [`Behind`]).
    pub(super) behind: Behind,
    pub(super) done: bool,
}

#[cfg(test)]
impl Temp<'_> {
    /// The open file.
    pub fn as_file(&self) -> &File {
        &self.file
    }
}

impl io::Read for Temp<'_> {
    /// Reads what the file holds (a kept part, to resume it); writing then goes on from there.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.behind.skipped(n);
        Ok(n)
    }
}

impl io::Write for Temp<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.behind.wrote_to(&self.file, n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for Temp<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let at = self.file.seek(pos)?;
        self.behind.moved_to(at);
        Ok(at)
    }
}

impl Upload for Temp<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.seek(io::SeekFrom::Start(0)).map(drop)
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
        match self.prepare(path, mtime, digest)? {
            Some(pending) => {
                ferry_core::batch::commit_one(pending, &path.to_string()).map_err(|f| f.failure())
            }
            None => Ok(()),
        }
    }

    /// Everything of [`Upload::commit`] but the flush and the rename, which the [`Staged`]
    /// returned does. The digest is kept with the file (see [`super::digests`]), after its
    /// time is set.
    fn prepare(
        mut self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<Option<Box<dyn Pending>>, Failure> {
        self.store.check_new(path)?;
        let (dir, leaf) = self.store.parent(path)?;
        let shown = path.to_string();
        if let Some(mtime) = mtime {
            let when = UNIX_EPOCH + Duration::from_secs(mtime);
            self.file
                .set_modified(when)
                .map_err(|e| Failure::io(&shown, &e))?;
        }
        super::parts::unrecord(&self.file);
        super::digests::keep_now(&self.file, digest);
        let file = self.file.try_clone().map_err(|e| Failure::io(&shown, &e))?;
        // The temporary is the staged file's to remove now, should it never be placed.
        self.done = true;
        Ok(Some(Box::new(Staged {
            file,
            partial: Arc::clone(&self.partial),
            name: std::mem::take(&mut self.name),
            dir,
            leaf: leaf.into(),
            placed: false,
        })))
    }

    fn keep(mut self: Box<Self>, path: &RemotePath) -> io::Result<u64> {
        let store = self.store;
        store.keep_part(&mut self, path)
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&*self.partial, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// An upload written in full, waiting to be flushed and renamed into place (see
/// [`Pending`]). Dropped before [`Pending::place`], its temporary is removed.
pub struct Staged {
    file: File,
    partial: Arc<OwnedFd>,
    name: String,
    /// The directory it goes into, and its name there.
    dir: DirFd,
    leaf: String,
    placed: bool,
}

impl Pending for Staged {
    /// Starts writeback of the whole file (`POSIX_FADV_DONTNEED` starts it without waiting;
    /// pages under writeback stay cached), so that the blocks of every file in a batch are
    /// allocated in one journal transaction, which the first flush then commits for all.
    fn start(&mut self) {
        let _ = rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed);
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn place(mut self: Box<Self>) -> io::Result<Option<File>> {
        rustix::fs::renameat(
            &*self.partial,
            self.name.as_str(),
            &self.dir,
            self.leaf.as_str(),
        )?;
        self.placed = true;
        let dir = self.dir.as_fd().try_clone_to_owned()?;
        Ok(Some(File::from(dir)))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.placed {
            let _ = rustix::fs::unlinkat(&*self.partial, self.name.as_str(), AtFlags::empty());
        }
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
