//! [`LocalStore`]: the [`Store`] over a local directory, reached only through its handle.
//!
//! The root is held as an open directory handle, and every file operation is made relative to
//! it (`openat`, `statat`, `renameat`, `unlinkat`), never by joining path strings: a name is
//! checked by [`ferry_core::name::validate`] to be one component, so nothing can leave the
//! root, and nothing is resolved through the root's path again after it was opened. Files are opened with
//! `O_NOFOLLOW`, so a symbolic link planted in the root is never followed; `renameat` and
//! `unlinkat` act on a link itself, never its target.
//!
//! Uploads are written to temporaries in [`PARTIAL_DIR`], which no verb can name, and renamed
//! into place only when complete. An interrupted upload's temporary is kept there under a key
//! derived from the name (see [`Upload::keep`]) so that it can be resumed; kept and abandoned
//! temporaries older than the root's maximum age are swept away.

use std::fs::{File, Metadata};
use std::io::{self, Seek};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use ferry_core::digest::Digest;
use ferry_core::name;
use ferry_core::store::{DEFAULT_PARTIAL_AGE, Entry, Meta, Source, Store, Upload};
use ferry_core::{ErrorKind, Failure};

/// The directory inside the root that holds uploads in progress; reserved, never listed.
pub const PARTIAL_DIR: &str = ".ferry-partial";

/// Prefix of the temporary that a transfer in progress writes.
const TEMP_PREFIX: &str = "up-";
/// Prefix of an interrupted upload kept for resuming; a digest of the name follows.
const KEPT_PREFIX: &str = "resume-";

/// The server's files in a local directory.
#[derive(Debug)]
pub struct LocalStore {
    path: PathBuf,
    dir: OwnedFd,
    partial: OwnedFd,
    max_age: Duration,
}

impl LocalStore {
    /// Opens (creating if needed) the root at `dir`, keeping interrupted uploads for
    /// [`DEFAULT_PARTIAL_AGE`]; see [`LocalStore::open_with`].
    pub fn open(dir: &Path) -> io::Result<(LocalStore, usize)> {
        LocalStore::open_with(dir, DEFAULT_PARTIAL_AGE)
    }

    /// Opens (creating if needed) the root at `dir`, and removes temporaries left by an earlier
    /// run (no transfer can be using them) and kept uploads older than `max_age`; returns how
    /// many it removed.
    pub fn open_with(dir: &Path, max_age: Duration) -> io::Result<(LocalStore, usize)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.canonicalize()?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&path, flags, Mode::empty())?;
        let partial = open_partial_dir(&dir)?;
        let root = LocalStore {
            path,
            dir,
            partial,
            max_age,
        };
        let removed = root.sweep(true)?;
        Ok((root, removed))
    }

    /// The root's canonical path, for messages (never used to reach a file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long an interrupted upload is kept for resuming.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Creates a hidden temporary for an upload; it is removed when dropped uncommitted.
    fn create_temp(&self) -> Result<Temp<'_>, Failure> {
        loop {
            let name = temp_name();
            let flags =
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.partial, name.as_str(), flags, Mode::from(0o644)) {
                Ok(fd) => {
                    return Ok(Temp {
                        store: self,
                        name,
                        file: File::from(fd),
                        done: false,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(errno("temporary file", e)),
            }
        }
    }

    /// The temporary a kept upload of `name` was renamed to (see [`Store::resume`]), if it is
    /// still fit to resume.
    fn reopen(&self, fresh: String) -> Result<Option<Temp<'_>>, Failure> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&self.partial, fresh.as_str(), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&self.partial, fresh.as_str(), AtFlags::empty());
                return Err(errno("temporary file", e));
            }
        };
        let temp = Temp {
            store: self,
            name: fresh,
            file,
            done: false,
        };
        let meta = temp
            .file
            .metadata()
            .map_err(|e| Failure::io("temporary file", &e))?;
        if !meta.is_file() || self.too_old(meta.modified().ok()) {
            return Ok(None);
        }
        Ok(Some(temp))
    }

    fn too_old(&self, modified: Option<SystemTime>) -> bool {
        modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > self.max_age)
    }
}

impl Store for LocalStore {
    /// The name rules, and the hidden directory's name, which is reserved.
    fn check<'n>(&self, name: &'n str) -> Result<&'n str, Failure> {
        let name = name::validate(name)?;
        if name == PARTIAL_DIR {
            return Err(Failure::new(
                ErrorKind::BadName,
                format!("name '{name}' is reserved"),
            ));
        }
        Ok(name)
    }

    /// Opens a regular file for reading, never following a symbolic link.
    fn open(&self, name: &str) -> Result<(Box<dyn Source + '_>, Meta), Failure> {
        let name = self.check(name)?;
        // O_NONBLOCK: a FIFO planted in the root must not hang the client's thread.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = rustix::fs::openat(&self.dir, name, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| errno(name, e))?;
        let meta = file.metadata().map_err(|e| Failure::io(name, &e))?;
        if !meta.is_file() {
            return Err(not_regular(name));
        }
        let meta = Meta {
            size: meta.len(),
            mtime: mtime(&meta),
        };
        Ok((Box::new(file), meta))
    }

    fn create(&self) -> Result<Box<dyn Upload + '_>, Failure> {
        Ok(Box::new(self.create_temp()?))
    }

    /// The rename that takes a kept upload is atomic, so of two uploads resuming the same
    /// name, one gets it and the other starts afresh.
    fn resume(&self, name: &str) -> Result<Option<Box<dyn Upload + '_>>, Failure> {
        let name = self.check(name)?;
        let fresh = temp_name();
        match rustix::fs::renameat(
            &self.partial,
            kept_name(name).as_str(),
            &self.partial,
            fresh.as_str(),
        ) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(errno("temporary file", e)),
        }
        Ok(self
            .reopen(fresh)?
            .map(|temp| Box::new(temp) as Box<dyn Upload>))
    }

    /// Deletes a regular file (a symbolic link is refused, never followed).
    ///
    /// A transfer reading the file keeps its open handle and finishes with the old content.
    fn delete(&self, name: &str) -> Result<(), Failure> {
        let name = self.check(name)?;
        let stat = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(name, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(not_regular(name));
        }
        // Had the name become a link since, unlinkat would remove the link, not its target.
        rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()).map_err(|e| errno(name, e))
    }

    /// The regular files directly in the root; links and directories are left out too.
    fn list(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for dirent in Dir::read_from(&self.dir)? {
            let dirent = dirent?;
            let Ok(name) = dirent.file_name().to_str() else {
                continue;
            };
            if self.check(name).is_err() {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
                entries.push(Entry {
                    name: name.to_owned(),
                    meta: Meta {
                        size: stat.st_size as u64,
                        mtime: stat.st_mtime.max(0) as u64,
                    },
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Kept uploads and temporaries older than the maximum age go, and with `all` every
    /// temporary; anything else planted in the hidden directory goes too.
    fn sweep(&self, all: bool) -> io::Result<usize> {
        let mut removed = 0;
        for dirent in Dir::read_from(&self.partial)? {
            let dirent = dirent?;
            let Ok(name) = dirent.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&self.partial, name, AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let modified = UNIX_EPOCH + Duration::from_secs(stat.st_mtime.max(0) as u64);
            let kind = FileType::from_raw_mode(stat.st_mode);
            let stale = (all && name.starts_with(TEMP_PREFIX))
                || self.too_old(Some(modified))
                || kind != FileType::RegularFile;
            let flags = if kind == FileType::Directory {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            if stale && rustix::fs::unlinkat(&self.partial, name, flags).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A temporary in the root's hidden directory: an upload being received. Dropped without
/// [`Upload::commit`] or [`Upload::keep`], it is removed.
#[derive(Debug)]
pub struct Temp<'r> {
    store: &'r LocalStore,
    name: String,
    file: File,
    done: bool,
}

#[cfg(test)]
impl Temp<'_> {
    /// The open file.
    pub fn as_file(&self) -> &File {
        &self.file
    }
}

impl io::Read for Temp<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl io::Write for Temp<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for Temp<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Upload for Temp<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0)).map(drop)
    }

    /// Renames the temporary into place, atomically replacing any old file (or a symbolic link
    /// of that name: the link is replaced, its target never touched). The data is flushed to
    /// the disk first, so a crash cannot leave a renamed but empty file.
    fn commit(mut self: Box<Self>, name: &str) -> Result<(), Failure> {
        let name = self.store.check(name)?;
        self.file.sync_data().map_err(|e| Failure::io(name, &e))?;
        rustix::fs::renameat(
            &self.store.partial,
            self.name.as_str(),
            &self.store.dir,
            name,
        )
        .map_err(|e| errno(name, e))?;
        self.done = true;
        Ok(())
    }

    fn keep(mut self: Box<Self>, name: &str) -> io::Result<u64> {
        let len = self.file.metadata()?.len();
        if len == 0 {
            return Ok(0);
        }
        let partial = &self.store.partial;
        rustix::fs::renameat(
            partial,
            self.name.as_str(),
            partial,
            kept_name(name).as_str(),
        )?;
        self.done = true;
        Ok(len)
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.store.partial, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// Opens the hidden directory, creating it; anything else of that name (a planted symbolic
/// link, a file) is removed first, so that temporaries never land outside the root.
fn open_partial_dir(dir: &OwnedFd) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..2 {
        match rustix::fs::mkdirat(dir, PARTIAL_DIR, Mode::from(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        match rustix::fs::openat(dir, PARTIAL_DIR, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                rustix::fs::unlinkat(dir, PARTIAL_DIR, AtFlags::empty())?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!(
        "cannot make '{PARTIAL_DIR}' a directory"
    )))
}

/// A fresh temporary name; uniqueness is finally ensured by `O_EXCL`.
fn temp_name() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = std::collections::hash_map::RandomState::new().hash_one((n, std::process::id()));
    format!("{TEMP_PREFIX}{random:016x}")
}

/// Where the upload of `name` is kept for resuming: a digest of the name, so that the key has
/// a fixed length whatever the name's (up to 255 bytes, which no prefix would fit beside).
fn kept_name(name: &str) -> String {
    let mut digest = Digest::new();
    digest.update(name.as_bytes());
    format!("{KEPT_PREFIX}{}", digest.hex())
}

fn errno(what: &str, e: Errno) -> Failure {
    Failure::io(what, &io::Error::from(e))
}

fn not_regular(name: &str) -> Failure {
    Failure::new(
        ErrorKind::NotFound,
        format!("'{}' is not a regular file", name::escape(name)),
    )
}

/// Modification time in whole seconds since the epoch (0 if unavailable or earlier).
fn mtime(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
