//! [`LocalStore`]: the [`Store`] over a local directory, reached only through handles.
//!
//! The root is held as an open directory handle, and every operation is made relative to a
//! directory handle (`openat`, `statat`, `renameat`, `unlinkat`), never by joining path
//! strings: the directory an entry lies in is opened below the root without following any
//! symbolic link (see [`walk`]), and the entry itself is then reached by its one name, with
//! `O_NOFOLLOW`, so a symbolic link planted anywhere is never followed; `renameat` and
//! `unlinkat` act on a link itself, never its target. Nothing is resolved through the root's
//! path again after it was opened, unless it was deleted (see [`root`]).
//!
//! Uploads are written to temporaries in [`PARTIAL_DIR`], which no verb can name, and renamed
//! into place only when complete (see [`temp`]). An interrupted upload's temporary is kept
//! there under a key derived from its path so that it can be resumed, within bounds, and so
//! is one a crash left (see [`parts`]); parts older than the maximum age are swept away.

mod admit;
mod digests;
mod parts;
mod root;
mod small;
mod temp;
mod tree;
mod walk;

use std::fs::{File, Metadata};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use ferry_core::name;
use ferry_core::store::refusal::{exists, not_a_dir, not_regular};
use ferry_core::store::{Entry, EntryKind, Meta, Naming, Source, Store, Upload};
use ferry_core::{ErrorKind, Failure, RemotePath};

#[cfg(feature = "s3")]
pub(crate) use parts::evictions;
pub use parts::{Part, PartLimits, clear as clear_partials, list as list_partials};
use root::{Handles, Root};
use small::Small;
use temp::Hidden;
pub use temp::Temp;
use temp::{kept_name, temp_name};
use walk::{DirFd, Resolve, open_dir, split, stat_in};

/// The directory inside the root that holds uploads in progress; reserved, never listed.
pub const PARTIAL_DIR: &str = ".ferry-partial";

/// The server's files in a local directory.
#[derive(Debug)]
pub struct LocalStore {
    root: Root,
    /// The bounds on kept parts, the byte total resolved.
    limits: PartLimits,
    /// Held while a part is kept and the bounds enforced, so that two uploads kept at once
    /// are each counted by the other.
    keeping: Mutex<()>,
    resolve: Resolve,
    naming: Naming,
    /// Small uploads wait in memory for their commit (see [`small`]): on a root in memory.
    holds_small: bool,
}

impl LocalStore {
    /// Opens (creating if needed) the root at `dir`, with the default bounds on kept parts;
    /// see [`LocalStore::open_with`].
    pub fn open(dir: &Path) -> io::Result<(LocalStore, usize)> {
        LocalStore::open_with(dir, PartLimits::default())
    }

    /// Opens (creating if needed) the root at `dir`. Temporaries left by an earlier run (no
    /// transfer can be using them) become the kept parts of the paths they were for, or go;
    /// kept parts older than the maximum age go, and the oldest past the bounds; returns how
    /// many went. A byte bound left unset is a tenth of the root's filesystem.
    pub fn open_with(dir: &Path, mut limits: PartLimits) -> io::Result<(LocalStore, usize)> {
        let root = Root::open(dir)?;
        if limits.max_bytes.is_none() {
            let fs = rustix::fs::statvfs(root.path())?;
            limits.max_bytes = Some(fs.f_blocks.saturating_mul(fs.f_frsize) / 10);
        }
        let store = LocalStore {
            root,
            limits,
            keeping: Mutex::new(()),
            resolve: Resolve::Beneath,
            naming: Naming {
                reserved: PARTIAL_DIR,
                any_name: false,
            },
            holds_small: small::in_memory(dir),
        };
        let removed = store.sweep(true)?;
        Ok((store, removed))
    }

    /// This store, reaching directories one component at a time, as on a kernel without
    /// `openat2` (tests).
    #[cfg(test)]
    pub fn walking(self) -> LocalStore {
        LocalStore {
            resolve: Resolve::Walk,
            ..self
        }
    }

    /// This store, holding small uploads in memory until their commit or not, whatever its
    /// filesystem (tests).
    pub fn holding_small(self, holds_small: bool) -> LocalStore {
        LocalStore {
            holds_small,
            ..self
        }
    }

    /// This store, letting new entries take any name that passes [`name::validate`] when
    /// `any` (`--allow-any-name`), rather than only those that pass [`name::check_new`].
    pub fn any_name(self, any: bool) -> LocalStore {
        LocalStore {
            naming: Naming {
                any_name: any,
                ..self.naming
            },
            ..self
        }
    }

    /// The root's canonical path, for messages (never used to reach a file).
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The bounds on kept parts.
    pub fn limits(&self) -> &PartLimits {
        &self.limits
    }

    /// Creates a hidden temporary for an upload to `path`, once `path`'s directory is known
    /// to exist and take a new file; it is removed when dropped uncommitted.
    fn create_temp(&self, path: &RemotePath, owner: IpAddr) -> Result<Temp<'_>, Failure> {
        let (handles, dir, _) = self.place(path)?;
        let dir = admit::flushed(dir).map_err(|e| Failure::io(&path.to_string(), &e))?;
        self.create_in(path, owner, (handles, dir, true))
    }

    /// [`LocalStore::create_temp`] in `path`'s directory, opened: the temporary keeps the
    /// handle for its commit (see [`Temp::target`]). Whether the directory takes new entries
    /// is checked when it was `opened` now, not when it is held by an upload admitted before.
    fn create_in(
        &self,
        path: &RemotePath,
        owner: IpAddr,
        (handles, dir, opened): (Arc<Handles>, Arc<ferry_core::batch::Dir>, bool),
    ) -> Result<Temp<'_>, Failure> {
        if opened {
            admit::writable(&dir, path)?;
        }
        let hidden = temp::create_hidden(&handles.partial)
            .map_err(|e| Failure::io(&name::escape(&path.to_string()), &e))?;
        parts::record(&hidden.file, Some(path), owner);
        Ok(Temp::new(self, hidden, owner, Some((path.clone(), dir))))
    }

    /// The directory `dir`, opened below the root.
    fn dir(&self, dir: &RemotePath) -> Result<DirFd, Failure> {
        self.check(dir)?;
        open_dir(&self.root.handles()?.dir, dir, self.resolve)
    }

    /// The directory holding `path`, opened, and `path`'s name in it. The root itself has
    /// no parent: it is refused as not a file.
    fn parent<'p>(&self, path: &'p RemotePath) -> Result<(DirFd, &'p str), Failure> {
        self.place(path).map(|(_, dir, leaf)| (dir, leaf))
    }

    /// [`LocalStore::parent`], with the root's handles it was opened from.
    fn place<'p>(&self, path: &'p RemotePath) -> Result<Place<'p>, Failure> {
        let (parent, leaf) = split(path)?;
        self.check(path)?;
        let handles = self.root.handles()?;
        let dir = open_dir(&handles.dir, &parent, self.resolve)?;
        Ok((handles, dir, leaf))
    }

    /// The temporary a kept upload of `path` was renamed to (see [`Store::resume`]), if it is
    /// still fit to resume; `owner` is charged for it from now on.
    fn reopen(
        &self,
        handles: &Handles,
        fresh: String,
        (path, owner): (&RemotePath, IpAddr),
    ) -> Result<Option<Temp<'_>>, Failure> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let partial = &*handles.partial;
        let file = match rustix::fs::openat(partial, fresh.as_str(), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                let _ = rustix::fs::unlinkat(partial, fresh.as_str(), AtFlags::empty());
                return Err(errno(&path.to_string(), e));
            }
        };
        parts::unrecord_earlier(&file);
        parts::record(&file, Some(path), owner);
        let hidden = Hidden::new(Arc::clone(&handles.partial), fresh, file);
        let temp = Temp::new(self, hidden, owner, None);
        let meta = temp
            .hidden
            .file
            .metadata()
            .map_err(|e| Failure::io(&path.to_string(), &e))?;
        if !meta.is_file() || self.too_old(meta.modified().ok()) {
            return Ok(None);
        }
        Ok(Some(temp))
    }

    fn too_old(&self, modified: Option<SystemTime>) -> bool {
        modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > self.limits.max_age)
    }
}

impl Store for LocalStore {
    fn naming(&self) -> Naming {
        self.naming
    }

    fn stat(&self, path: &RemotePath) -> Result<Option<(EntryKind, Meta)>, Failure> {
        if path.is_root() {
            let handles = self.root.handles()?;
            let stat = rustix::fs::fstat(&*handles.dir).map_err(|e| errno("/", e))?;
            return Ok(Some((EntryKind::Dir, meta_of(&stat))));
        }
        let (dir, leaf) = self.parent(path)?;
        stat_in(&dir, leaf, path)
    }

    /// Opens a regular file for reading, never following a symbolic link.
    fn open(&self, path: &RemotePath) -> Result<(Box<dyn Source + '_>, Meta), Failure> {
        let shown = path.to_string();
        // O_NONBLOCK: a FIFO planted in the root must not hang the client's thread.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        self.check(path)?;
        let at_once = walk::open_beneath(&self.root.handles()?.dir, path, flags, self.resolve);
        let file = match at_once {
            Some(fd) => File::from(fd),
            None => {
                let (dir, leaf) = self.parent(path)?;
                rustix::fs::openat(&dir, leaf, flags, Mode::empty())
                    .map(File::from)
                    .map_err(|e| errno(&shown, e))?
            }
        };
        let meta = file.metadata().map_err(|e| Failure::io(&shown, &e))?;
        if meta.is_dir() {
            return Err(Failure::new(
                ErrorKind::NotFound,
                format!("'{}' is a directory, not a file", name::escape(&shown)),
            ));
        }
        if !meta.is_file() {
            return Err(not_regular(path));
        }
        let held = digests::Held::new(file, &meta);
        let meta = Meta {
            size: meta.len(),
            mtime: mtime(&meta),
        };
        Ok((Box::new(held), meta))
    }

    fn create(&self, path: &RemotePath, owner: IpAddr) -> Result<Box<dyn Upload + '_>, Failure> {
        Ok(Box::new(self.create_temp(path, owner)?))
    }

    /// Opens `path`'s directory once, for the look at `path`, the temporary and its commit.
    fn create_checked(
        &self,
        path: &RemotePath,
        owner: IpAddr,
        check: &mut dyn FnMut(Option<(EntryKind, Meta)>) -> Result<(), Failure>,
    ) -> Result<Box<dyn Upload + '_>, Failure> {
        if path.is_root() {
            check(self.stat(path)?)?;
            return Ok(Box::new(self.create_temp(path, owner)?));
        }
        let (parent, leaf) = split(path)?;
        self.check(path)?;
        let handles = self.root.handles()?;
        let (dir, opened) = admit::admission_dir(&handles, &parent, self.resolve)?;
        check(stat_in(dir.file(), leaf, path)?)?;
        if opened {
            admit::writable(&dir, path)?;
        }
        if !self.holds_small {
            return Ok(Box::new(self.create_in(
                path,
                owner,
                (handles, dir, false),
            )?));
        }
        Ok(Box::new(Small::new(
            self,
            handles,
            owner,
            (path.clone(), dir),
        )))
    }

    /// The rename that takes a kept upload is atomic, so of two uploads resuming the same
    /// path, one gets it and the other starts afresh.
    fn resume(
        &self,
        path: &RemotePath,
        owner: IpAddr,
    ) -> Result<Option<Box<dyn Upload + '_>>, Failure> {
        self.check(path)?;
        let handles = self.root.handles()?;
        let partial = &*handles.partial;
        let fresh = temp_name();
        match rustix::fs::renameat(partial, kept_name(path).as_str(), partial, fresh.as_str()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(errno(&path.to_string(), e)),
        }
        Ok(self
            .reopen(&handles, fresh, (path, owner))?
            .map(|temp| Box::new(temp) as Box<dyn Upload>))
    }

    /// Deletes a regular file (a symbolic link is refused, never followed).
    ///
    /// A transfer reading the file keeps its open handle and finishes with the old content.
    fn delete(&self, path: &RemotePath) -> Result<(), Failure> {
        let (dir, leaf) = self.parent(path)?;
        let shown = path.to_string();
        let stat = rustix::fs::statat(&dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(&shown, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(not_regular(path));
        }
        // Had the name become a link since, unlinkat would remove the link, not its target.
        rustix::fs::unlinkat(&dir, leaf, AtFlags::empty()).map_err(|e| errno(&shown, e))
    }

    fn delete_tree(&self, path: &RemotePath) -> Result<u64, Failure> {
        let (dir, leaf) = self.parent(path)?;
        let shown = path.to_string();
        tree::remove(&dir, leaf.as_ref(), 0).map_err(|e| match e {
            tree::Error::Deep => Failure::new(
                ErrorKind::TooLarge,
                format!(
                    "'{}' is more than {} directories deep",
                    name::escape(&shown),
                    tree::MAX_DEPTH
                ),
            ),
            tree::Error::Os(e) => errno(&shown, e),
        })
    }

    /// The regular files and directories in `dir`, read by `getdents` a buffer at a time;
    /// links and other kinds are left out, and so is the hidden directory.
    fn list(
        &self,
        dir: &RemotePath,
        each: &mut dyn FnMut(Entry) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let fd = self.dir(dir)?;
        let shown = dir.to_string();
        let entries = Dir::read_from(&fd).map_err(|e| errno(&shown, e))?;
        for dirent in entries {
            let dirent = dirent.map_err(|e| errno(&shown, e))?;
            let Ok(name) = dirent.file_name().to_str() else {
                continue;
            };
            if name::validate(name).is_err() || self.naming().reserves(name) {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let kind = match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => EntryKind::File,
                FileType::Directory => EntryKind::Dir,
                _ => continue,
            };
            each(Entry {
                name: name.to_owned(),
                kind,
                meta: meta_of(&stat),
            })?;
        }
        Ok(())
    }

    /// Makes a directory, and flushes the one it is made in: files uploaded into it are
    /// flushed with it, and would be lost with it in a power cut were its own entry not
    /// durable (on a file system in memory nothing is, and nothing is flushed).
    fn mkdir(&self, path: &RemotePath) -> Result<(), Failure> {
        self.check_new(path)?;
        let (dir, leaf) = self.parent(path)?;
        let shown = path.to_string();
        rustix::fs::mkdirat(&dir, leaf, Mode::from(0o755)).map_err(|e| errno(&shown, e))?;
        if !self.holds_small {
            rustix::fs::fsync(&dir).map_err(|e| errno(&shown, e))?;
        }
        Ok(())
    }

    /// Removes an empty directory; a symbolic link to one is not a directory here.
    fn rmdir(&self, path: &RemotePath) -> Result<(), Failure> {
        let (dir, leaf) = self.parent(path)?;
        rustix::fs::unlinkat(&dir, leaf, AtFlags::REMOVEDIR).map_err(|e| match e {
            Errno::NOTEMPTY | Errno::EXIST => Failure::new(
                ErrorKind::NotEmpty,
                format!("directory '{path}' is not empty"),
            ),
            Errno::NOTDIR => not_a_dir(path),
            e => errno(&path.to_string(), e),
        })
    }

    /// One `renameat`: without `replace`, `RENAME_NOREPLACE` keeps whatever is at `to`.
    fn rename(&self, from: &RemotePath, to: &RemotePath, replace: bool) -> Result<(), Failure> {
        self.check_new(to)?;
        if to.starts_with(from) {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                format!("cannot move '{from}' into itself"),
            ));
        }
        if let Some((EntryKind::Dir, _)) = self.stat(to)? {
            return Err(exists(to));
        }
        let (from_dir, from_leaf) = self.parent(from)?;
        let (to_dir, to_leaf) = self.parent(to)?;
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&from_dir, from_leaf, &to_dir, to_leaf, flags).map_err(
            |e| match e {
                Errno::EXIST | Errno::NOTEMPTY | Errno::ISDIR | Errno::NOTDIR => exists(to),
                Errno::NOENT => errno(&from.to_string(), e),
                e => errno(&to.to_string(), e),
            },
        )
    }

    /// Kept parts older than the maximum age go, and the oldest past the bounds; with `all`
    /// (at start) temporaries become kept parts (see [`parts`]).
    fn sweep(&self, all: bool) -> io::Result<usize> {
        self.sweep_parts(all)
    }
}

/// The root's handles, a directory opened below them, and a name in that directory.
type Place<'p> = (Arc<Handles>, DirFd, &'p str);

fn errno(what: &str, e: Errno) -> Failure {
    Failure::io(&name::escape(what), &io::Error::from(e))
}

fn symlink(path: &RemotePath) -> Failure {
    Failure::new(
        ErrorKind::Forbidden,
        format!("'{path}' is a symbolic link, which is never followed"),
    )
}

/// Size and modification time from a `stat` (a directory's size is given as 0).
fn meta_of(stat: &Stat) -> Meta {
    let dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
    Meta {
        size: if dir { 0 } else { stat.st_size as u64 },
        mtime: (stat.st_mtime.max(0) as u64).min(ferry_core::store::MAX_MTIME),
    }
}

/// Modification time in whole seconds since the epoch (0 if unavailable or earlier).
fn mtime(meta: &Metadata) -> u64 {
    ferry_core::store::mtime_of(meta.modified())
}

#[cfg(test)]
mod tests;
