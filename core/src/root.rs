//! [`Root`]: the server's directory, seen only through single-component names.
//!
//! The root is held as an open directory handle, and every file operation is made relative to
//! it (`openat`, `statat`, `renameat`, `unlinkat`), never by joining path strings: a name is
//! checked by [`crate::name::validate`] to be one component, so nothing can leave the root, and
//! nothing is resolved through the root's path again after it was opened. Files are opened with
//! `O_NOFOLLOW`, so a symbolic link planted in the root is never followed; `renameat` and
//! `unlinkat` act on a link itself, never its target.
//!
//! Uploads are written to temporaries in [`PARTIAL_DIR`], which no verb can name, and renamed
//! into place only when complete. An interrupted upload's temporary is kept there under a key
//! derived from the name (see [`Root::keep`]) so that it can be resumed; kept and abandoned
//! temporaries older than the root's maximum age are swept away.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::digest::Digest;
use crate::error::{ErrorKind, Failure};
use crate::name;

/// The directory inside the root that holds uploads in progress; reserved, never listed.
pub const PARTIAL_DIR: &str = ".ferry-partial";
/// How long an interrupted upload is kept for resuming, unless configured otherwise.
pub const DEFAULT_PARTIAL_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Prefix of the temporary that a transfer in progress writes.
const TEMP_PREFIX: &str = "up-";
/// Prefix of an interrupted upload kept for resuming; a digest of the name follows.
const KEPT_PREFIX: &str = "resume-";

/// One file as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file's name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
}

/// The server's file root.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    dir: OwnedFd,
    partial: OwnedFd,
    max_age: Duration,
}

impl Root {
    /// Opens (creating if needed) the root at `dir`, keeping interrupted uploads for
    /// [`DEFAULT_PARTIAL_AGE`]; see [`Root::open_with`].
    pub fn open(dir: &Path) -> io::Result<(Root, usize)> {
        Root::open_with(dir, DEFAULT_PARTIAL_AGE)
    }

    /// Opens (creating if needed) the root at `dir`, and removes temporaries left by an earlier
    /// run (no transfer can be using them) and kept uploads older than `max_age`; returns how
    /// many it removed.
    pub fn open_with(dir: &Path, max_age: Duration) -> io::Result<(Root, usize)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.canonicalize()?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&path, flags, Mode::empty())?;
        let partial = open_partial_dir(&dir)?;
        let root = Root {
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

    /// Checks a remote name, including the reserved one.
    pub fn check<'n>(&self, name: &'n str) -> Result<&'n str, Failure> {
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
    pub fn open_file(&self, name: &str) -> Result<(File, Metadata), Failure> {
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
        Ok((file, meta))
    }

    /// Creates a hidden temporary for an upload; it is removed when dropped uncommitted.
    pub fn create_temp(&self) -> Result<Temp<'_>, Failure> {
        loop {
            let name = temp_name();
            let flags =
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.partial, name.as_str(), flags, Mode::from(0o644)) {
                Ok(fd) => {
                    return Ok(Temp {
                        root: self,
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

    /// Renames a complete temporary into place as `name`, atomically replacing any old file
    /// (or a symbolic link of that name: the link is replaced, its target never touched). The
    /// data is flushed to the disk first, so a crash cannot leave a renamed but empty file.
    pub fn commit(&self, mut temp: Temp<'_>, name: &str) -> Result<(), Failure> {
        let name = self.check(name)?;
        temp.file.sync_data().map_err(|e| Failure::io(name, &e))?;
        rustix::fs::renameat(&self.partial, temp.name.as_str(), &self.dir, name)
            .map_err(|e| errno(name, e))?;
        temp.done = true;
        Ok(())
    }

    /// Keeps an interrupted upload's temporary so that a later upload of `name` can resume it
    /// (replacing any kept before); an empty one is simply removed. Returns the bytes kept.
    pub fn keep(&self, mut temp: Temp<'_>, name: &str) -> io::Result<u64> {
        let len = temp.file.metadata()?.len();
        if len == 0 {
            return Ok(0);
        }
        rustix::fs::renameat(
            &self.partial,
            temp.name.as_str(),
            &self.partial,
            kept_name(name).as_str(),
        )?;
        temp.done = true;
        Ok(len)
    }

    /// Takes the upload of `name` that [`Root::keep`] kept, if there is one and it is younger
    /// than the maximum age. The rename that takes it is atomic, so of two uploads resuming the
    /// same name, one gets it and the other starts afresh.
    pub fn resume(&self, name: &str) -> Result<Option<Temp<'_>>, Failure> {
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
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&self.partial, fresh.as_str(), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&self.partial, fresh.as_str(), AtFlags::empty());
                return Err(errno("temporary file", e));
            }
        };
        let temp = Temp {
            root: self,
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

    /// Deletes a regular file (a symbolic link is refused, never followed).
    ///
    /// A transfer reading the file keeps its open handle and finishes with the old content.
    pub fn delete(&self, name: &str) -> Result<(), Failure> {
        let name = self.check(name)?;
        let stat = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(name, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(not_regular(name));
        }
        // Had the name become a link since, unlinkat would remove the link, not its target.
        rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()).map_err(|e| errno(name, e))
    }

    /// The regular files in the root, sorted by name; links, directories and names that break
    /// the rules are left out.
    pub fn list(&self) -> io::Result<Vec<Entry>> {
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
                    size: stat.st_size as u64,
                    mtime: stat.st_mtime.max(0) as u64,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Removes kept uploads and temporaries older than the maximum age, and, when `all_temps`
    /// (at start, when no transfer can be running), every temporary; returns how many.
    pub fn sweep(&self, all_temps: bool) -> io::Result<usize> {
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
            let stale = (all_temps && name.starts_with(TEMP_PREFIX))
                || self.too_old(Some(modified))
                || FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile;
            if stale {
                let flags = if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                if rustix::fs::unlinkat(&self.partial, name, flags).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn too_old(&self, modified: Option<SystemTime>) -> bool {
        modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > self.max_age)
    }
}

/// A temporary in the root's hidden directory: an upload being received. Dropped without
/// [`Root::commit`] or [`Root::keep`], it is removed.
#[derive(Debug)]
pub struct Temp<'r> {
    root: &'r Root,
    name: String,
    file: File,
    done: bool,
}

impl Temp<'_> {
    /// The open file.
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// The open file, to write to.
    pub fn as_file_mut(&mut self) -> &mut File {
        &mut self.file
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.root.partial, self.name.as_str(), AtFlags::empty());
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
pub fn mtime(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{Read, Write};

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let (root, _) = Root::open(&dir.path().join("data")).unwrap();
        (dir, root)
    }

    fn partial_count(root: &Root) -> usize {
        fs::read_dir(root.path().join(PARTIAL_DIR)).unwrap().count()
    }

    #[test]
    fn upload_commit_list_delete() {
        let (_d, root) = root();
        let mut temp = root.create_temp().unwrap();
        temp.as_file_mut().write_all(b"hello").unwrap();
        assert!(root.list().unwrap().is_empty(), "a temporary is invisible");
        root.commit(temp, "a b ✓").unwrap();
        let list = root.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].name.as_str(), list[0].size), ("a b ✓", 5));
        assert_eq!(root.open_file("a b ✓").unwrap().1.len(), 5);
        root.delete("a b ✓").unwrap();
        assert_eq!(root.delete("a b ✓").unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(partial_count(&root), 0);
    }

    #[test]
    fn a_dropped_temporary_is_removed() {
        let (_d, root) = root();
        let mut temp = root.create_temp().unwrap();
        temp.as_file_mut().write_all(b"half").unwrap();
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
        let err = root.open_file("link").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
        assert!(root.delete("link").is_err());
        assert!(root.list().unwrap().is_empty());
        let mut temp = root.create_temp().unwrap();
        temp.as_file_mut().write_all(b"new").unwrap();
        root.commit(temp, "link").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"secret", "target untouched");
        assert!(
            !fs::symlink_metadata(root.path().join("link"))
                .unwrap()
                .is_symlink(),
            "the link itself was replaced"
        );
        // A link to a directory outside does not let a name reach into it either.
        std::os::unix::fs::symlink(d.path(), root.path().join("dirlink")).unwrap();
        assert!(root.open_file("dirlink").is_err());
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
        let (mut file, _) = root.open_file("inside").unwrap();
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
        let (root, _) = Root::open(&data).unwrap();
        let mut temp = root.create_temp().unwrap();
        temp.as_file_mut().write_all(b"x").unwrap();
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
            assert_eq!(root.open_file(bad).unwrap_err().kind, ErrorKind::BadName);
            assert_eq!(root.delete(bad).unwrap_err().kind, ErrorKind::BadName);
            let temp = root.create_temp().unwrap();
            assert_eq!(root.commit(temp, bad).unwrap_err().kind, ErrorKind::BadName);
        }
        assert_eq!(partial_count(&root), 0);
    }

    #[test]
    fn a_kept_upload_is_resumed_once_and_invisible_meanwhile() {
        let (_d, root) = root();
        let name = "é".repeat(127);
        let mut temp = root.create_temp().unwrap();
        temp.as_file_mut().write_all(b"first half").unwrap();
        assert_eq!(root.keep(temp, &name).unwrap(), 10);
        assert!(root.list().unwrap().is_empty());
        assert!(root.resume("other").unwrap().is_none());
        let mut resumed = root.resume(&name).unwrap().expect("kept");
        assert!(root.resume(&name).unwrap().is_none(), "taken by the first");
        let mut text = String::new();
        resumed.as_file_mut().read_to_string(&mut text).unwrap();
        assert_eq!(text, "first half");
        drop(resumed);
        assert_eq!(partial_count(&root), 0);
        let empty = root.create_temp().unwrap();
        assert_eq!(root.keep(empty, "x").unwrap(), 0);
        assert_eq!(partial_count(&root), 0, "nothing kept for nothing received");
    }

    #[test]
    fn old_kept_uploads_and_leftover_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (root, _) = Root::open_with(&data, Duration::from_secs(3600)).unwrap();
        for (name, age) in [("fresh", 0), ("old", 7200)] {
            let mut temp = root.create_temp().unwrap();
            temp.as_file_mut().write_all(b"data").unwrap();
            let when = SystemTime::now() - Duration::from_secs(age);
            temp.as_file().set_modified(when).unwrap();
            root.keep(temp, name).unwrap();
        }
        let leftover = root.create_temp().unwrap();
        std::mem::forget(leftover);
        assert_eq!(
            root.sweep(false).unwrap(),
            1,
            "only the old one while serving"
        );
        assert!(root.resume("old").unwrap().is_none());
        drop(root);
        let (root, removed) = Root::open_with(&data, Duration::from_secs(3600)).unwrap();
        assert_eq!(removed, 1, "the leftover temporary, at start");
        assert!(root.resume("fresh").unwrap().is_some());
    }
}
