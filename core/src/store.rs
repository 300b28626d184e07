//! [`Store`]: the server's files as verbs see them, whatever keeps them.
//!
//! A verb's server half reaches files only through this trait, by [`RemotePath`]: it opens a
//! file to read, creates an [`Upload`] and commits it at a path (or keeps it for resuming),
//! lists a directory, makes, removes and renames. The local directory (`ferryd`'s
//! `LocalStore`) is the implementation today; another (an object store) implements the same
//! calls with the same guarantees: a path is checked before anything is touched, an upload is
//! invisible until committed, and a commit replaces any old file at its path in one step.

use std::io::{self, Read, Seek, Write};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::batch::Pending;
use crate::digest::Digest;
use crate::error::Failure;
use crate::path::RemotePath;

/// How long an interrupted transfer's part is kept for resuming, unless configured otherwise
/// (on the server for uploads, on the client for downloads).
pub const DEFAULT_PARTIAL_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The latest modification time Ferry carries, in Unix seconds: 9999-12-31T23:59:59Z, the
/// last second RFC 3339 can write. A later one is sent as this; one received over it is refused
/// (UPLOAD) or taken as this.
pub const MAX_MTIME: u64 = 253_402_300_799;

/// A modification time as the wire carries it: whole seconds since the Unix epoch, 0 for a time
/// unknown or before 1970, at most [`MAX_MTIME`].
pub fn mtime_of(modified: io::Result<SystemTime>) -> u64 {
    modified
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs().min(MAX_MTIME))
}

/// A modification time from the wire as a time, taken as [`MAX_MTIME`] if later.
pub fn time_of(mtime: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(mtime.min(MAX_MTIME))
}

/// A file's size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (0 if unknown or earlier; see
    /// [`mtime_of`]).
    pub mtime: u64,
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

impl EntryKind {
    /// How the wire writes it: `file` or `dir`.
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
        }
    }

    /// The kind the wire word names.
    pub fn from_word(word: &str) -> Option<EntryKind> {
        match word {
            "file" => Some(EntryKind::File),
            "dir" => Some(EntryKind::Dir),
            _ => None,
        }
    }
}

/// One entry of a directory as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name in the directory.
    pub name: String,
    /// A file or a directory.
    pub kind: EntryKind,
    /// Its size (0 for a directory) and modification time.
    pub meta: Meta,
}

/// The names a store takes for new entries, and the one it reserves.
#[derive(Clone, Copy, Debug)]
pub struct Naming {
    /// Its hidden place's name (uploads in progress), refused wherever it appears in a path.
    pub reserved: &'static str,
    /// Whether a new entry may have any name (`ferryd --allow-any-name`), not only those
    /// [`crate::name::check_new`] takes.
    pub any_name: bool,
}

impl Naming {
    /// Whether `name` is the reserved name, in any spelling a file system may take for it
    /// ([`folds_to`]).
    pub fn reserves(&self, name: &str) -> bool {
        folds_to(name, self.reserved)
    }
}

/// Whether a file system may take `name` for `other`: the same in another ASCII case (vfat,
/// exFAT, CIFS, a case-folding ext4 or tmpfs), or with dots and spaces after it (which vfat
/// drops).
pub fn folds_to(name: &str, other: &str) -> bool {
    name.trim_end_matches(['.', ' '])
        .eq_ignore_ascii_case(other)
}

/// A file opened for reading.
pub trait Source: Read + Seek + Send {
    /// The digest of the whole file as the store keeps it with the file, if it keeps one and
    /// the file has not changed since (a store that keeps none reads the file to know it).
    fn kept_digest(&self) -> Option<String> {
        None
    }
    /// Keeps `digest`, that of the whole file as it was when opened, with the file, unless
    /// the file has changed since; a store that cannot keep it does nothing.
    fn keep_digest(&self, _digest: &Digest) {}
}

/// An upload being received: written (and read back, to resume), invisible to every verb
/// until [`Upload::commit`]. Dropped without a commit or [`Upload::keep`], it is removed.
pub trait Upload: Read + Write + Seek + Send {
    /// How many bytes it holds.
    fn size(&self) -> io::Result<u64>;
    /// Empties it, to start over.
    fn restart(&mut self) -> io::Result<()>;
    /// Makes it the file at `path`, atomically replacing any old file there, once its data is
    /// durable; `mtime` (seconds since the epoch), when given, becomes its modification time.
    /// `digest` is that of everything it holds, which the store may keep with the file.
    fn commit(
        self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<(), Failure>;
    /// Keeps what it holds, hidden, for a later [`Store::resume`] of `path` (replacing any
    /// kept before); an empty one is simply removed. The store may keep less (the start of
    /// it) or evict older parts to stay within its bounds. Returns the bytes kept.
    fn keep(self: Box<Self>, path: &RemotePath) -> io::Result<u64>;
    /// Does what [`Upload::commit`] does up to making the data durable, and returns the rest
    /// (the flush and the rename) as a [`Pending`], so that many files can be flushed together
    /// by a [`crate::Batch`]; a store that cannot split its commit commits now and returns
    /// `None`.
    fn prepare(
        self: Box<Self>,
        path: &RemotePath,
        mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<Option<Box<dyn Pending>>, Failure> {
        self.commit(path, mtime, digest).map(|()| None)
    }
}

/// The server's files.
///
/// Every path is checked before anything is touched: the name rules hold for each component
/// (a [`RemotePath`] guarantees it), a name the store reserves is refused, and no symbolic
/// link is followed on the way, so nothing outside the root is ever reached.
pub trait Store: Send + Sync {
    /// The names it takes and the one it reserves.
    fn naming(&self) -> Naming;
    /// Checks a path against the name the store reserves: no component may be it.
    fn check(&self, path: &RemotePath) -> Result<(), Failure> {
        let naming = self.naming();
        if path.components().any(|c| naming.reserves(c)) {
            return Err(Failure::new(
                crate::ErrorKind::BadName,
                format!("name '{}' is reserved", naming.reserved),
            ));
        }
        Ok(())
    }
    /// Checks a path where an entry is to be made or written (an upload, a new directory, a
    /// rename's destination): [`Store::check`], and its name against
    /// [`crate::name::check_new`], unless the store takes any name. Every call that makes or
    /// writes an entry checks it, before touching anything.
    fn check_new(&self, path: &RemotePath) -> Result<(), Failure> {
        self.check(path)?;
        match path.file_name() {
            Some(leaf) if !self.naming().any_name => crate::name::check_new(leaf).map(drop),
            _ => Ok(()),
        }
    }
    /// What is at `path`, if anything: its kind and meta. A symbolic link is `forbidden`.
    fn stat(&self, path: &RemotePath) -> Result<Option<(EntryKind, Meta)>, Failure>;
    /// Opens a regular file for reading, with its size and modification time.
    fn open(&self, path: &RemotePath) -> Result<(Box<dyn Source + '_>, Meta), Failure>;
    /// Starts a new upload to `path` for the client at `owner` (who is charged for it if it
    /// is kept), after checking what can be checked before content flows: that a file could
    /// be made in `path`'s directory.
    fn create(&self, path: &RemotePath, owner: IpAddr) -> Result<Box<dyn Upload + '_>, Failure>;
    /// [`Store::create`], once `check` has accepted what is at `path` now (as [`Store::stat`]
    /// gives it); `check`'s failure is the answer, and nothing is made. A store that can look
    /// at the path and start the upload in one go (the local one opens `path`'s directory
    /// once for both, and for the commit) does so.
    fn create_checked(
        &self,
        path: &RemotePath,
        owner: IpAddr,
        check: &mut dyn FnMut(Option<(EntryKind, Meta)>) -> Result<(), Failure>,
    ) -> Result<Box<dyn Upload + '_>, Failure> {
        check(self.stat(path)?)?;
        self.create(path, owner)
    }
    /// Takes the upload of `path` that [`Upload::keep`] kept, if there is one and it has not
    /// expired, for the client at `owner`. Of two uploads resuming the same path, one gets it
    /// and the other `None`; a store that cannot take it atomically (an object store without
    /// conditional writes) may give it to both, provided that neither commit can then mix
    /// their bytes: one fails whole, or each commits only what it read back and verified.
    fn resume(
        &self,
        path: &RemotePath,
        owner: IpAddr,
    ) -> Result<Option<Box<dyn Upload + '_>>, Failure>;
    /// Deletes a regular file.
    fn delete(&self, path: &RemotePath) -> Result<(), Failure>;
    /// Deletes a file, or a directory and everything in it; a symbolic link met on the way
    /// is removed itself, never followed. Returns how many entries went.
    fn delete_tree(&self, path: &RemotePath) -> Result<u64, Failure>;
    /// Calls `each` with every file and directory in `dir`, in no particular order, reading
    /// the directory a batch at a time (never all of it into memory); entries whose names
    /// break the rules, links and other kinds are left out. Stops at `each`'s first error.
    fn list(
        &self,
        dir: &RemotePath,
        each: &mut dyn FnMut(Entry) -> Result<(), Failure>,
    ) -> Result<(), Failure>;
    /// Creates a directory; its parent must exist.
    fn mkdir(&self, path: &RemotePath) -> Result<(), Failure>;
    /// Removes an empty directory.
    fn rmdir(&self, path: &RemotePath) -> Result<(), Failure>;
    /// Moves a file or directory to `to` in one step; an existing file at `to` is replaced
    /// only with `replace` (an existing directory never is).
    fn rename(&self, from: &RemotePath, to: &RemotePath, replace: bool) -> Result<(), Failure>;
    /// Removes kept uploads that have expired or lie past the store's bounds and, when `all`
    /// (at start), settles the uploads a crash left, as far as the store can tell them from
    /// another server's uploads in flight on the same root (the local store: those no live
    /// process holds; an object store: by age only): kept for resuming if the store knows
    /// its path, else removed; returns how many went.
    fn sweep(&self, all: bool) -> io::Result<usize>;
}

/// The refusals every store gives, worded alike whichever store serves.
pub mod refusal {
    use crate::error::{ErrorKind, Failure};
    use crate::name;
    use crate::path::RemotePath;

    /// A path as a refusal shows it: escaped, so that no name can forge a message.
    pub fn shown(path: &RemotePath) -> String {
        name::escape(&path.to_string())
    }

    /// There is no file at `path`.
    pub fn no_such_file(path: &RemotePath) -> Failure {
        let shown = shown(path);
        Failure::new(ErrorKind::NotFound, format!("no such file '{shown}'"))
    }

    /// What is at `path` is not a regular file.
    pub fn not_regular(path: &RemotePath) -> Failure {
        Failure::new(
            ErrorKind::NotFound,
            format!("'{path}' is not a regular file"),
        )
    }

    /// What is at `path` is not a directory.
    pub fn not_a_dir(path: &RemotePath) -> Failure {
        let shown = shown(path);
        Failure::new(ErrorKind::NotFound, format!("'{shown}' is not a directory"))
    }

    /// Something is at `path` already.
    pub fn exists(path: &RemotePath) -> Failure {
        let shown = shown(path);
        Failure::new(ErrorKind::Exists, format!("'{shown}' already exists"))
    }
}
