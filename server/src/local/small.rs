//! [`Small`]: an upload held in memory until its group is committed, when its file is made
//! without a name, written and linked in; only on a root in memory ([`in_memory`]).
//!
//! A pipelined `UPLOAD -r` of small files to tmpfs kept the session's thread busy making each
//! temporary (`openat`, `flock`, the record's `fsetxattr` and later `fremovexattr`), writing
//! it and setting its time, then renaming it. Held in memory, the content needs none of that
//! record: a crash loses it anyway. Such a group never waits for a device, so the session's
//! thread commits it itself (see `ferry_core::batch::Group::waits`).
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
/// written by the session as it arrives, leaving the thread only flushes and renames
/// (measured: docs/PERFORMANCE.md).
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

    /// The file is not made yet: its group's commit makes it ([`Deferred`]).
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

/// A held upload waiting for its group's commit: [`Pending::start`] writes it to a file
/// without a name ([`Linked`]) where its directory is in memory; else (a directory of another
/// file system mounted below the root) to a temporary, which is then flushed and renamed as
/// any other ([`Staged`]). Held uploads are only on a root in memory, where a flush is quick:
/// making the file at the commit keeps it out of the timed flushes (see `ferry_core::batch`).
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

    /// Held uploads are only on a root in memory, but a directory below it may be another
    /// file system's.
    fn waits(&self) -> bool {
        self.dir.as_ref().is_none_or(|(dir, _)| !dir.in_memory())
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

    fn waits(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
