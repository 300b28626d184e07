//! [`Store`]: the server's files as verbs see them, whatever keeps them.
//!
//! A verb's server half reaches files only through this trait: it opens a file to read,
//! creates an [`Upload`] and commits it under a name (or keeps it for resuming), lists,
//! deletes. The local directory (`ferryd`'s `LocalStore`) is the implementation today; another
//! (an object store) implements the same calls with the same guarantees: a name is checked
//! against the rules before anything is touched, an upload is invisible until committed, and
//! a commit replaces any old file of that name in one step.

use std::io::{self, Read, Seek, Write};
use std::time::Duration;

use crate::error::Failure;

/// How long an interrupted transfer's part is kept for resuming, unless configured otherwise
/// (on the server for uploads, on the client for downloads).
pub const DEFAULT_PARTIAL_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// A file's size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (0 if unknown or earlier).
    pub mtime: u64,
}

/// One file as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file's name.
    pub name: String,
    /// Its size and modification time.
    pub meta: Meta,
}

/// A file opened for reading.
pub trait Source: Read + Seek + Send {}

impl<T: Read + Seek + Send> Source for T {}

/// An upload being received: written (and read back, to resume), invisible to every verb
/// until [`Upload::commit`]. Dropped without a commit or [`Upload::keep`], it is removed.
pub trait Upload: Read + Write + Seek + Send {
    /// How many bytes it holds.
    fn size(&self) -> io::Result<u64>;
    /// Empties it, to start over.
    fn restart(&mut self) -> io::Result<()>;
    /// Makes it the file `name`, atomically replacing any old one, once its data is durable.
    fn commit(self: Box<Self>, name: &str) -> Result<(), Failure>;
    /// Keeps what it holds, hidden, for a later [`Store::resume`] of `name` (replacing any
    /// kept before); an empty one is simply removed. Returns the bytes kept.
    fn keep(self: Box<Self>, name: &str) -> io::Result<u64>;
}

/// The server's files.
pub trait Store: Send + Sync {
    /// Checks a remote name: the name rules, and any name the store reserves.
    fn check<'n>(&self, name: &'n str) -> Result<&'n str, Failure>;
    /// Opens a regular file for reading, with its size and modification time.
    fn open(&self, name: &str) -> Result<(Box<dyn Source + '_>, Meta), Failure>;
    /// Starts a new upload.
    fn create(&self) -> Result<Box<dyn Upload + '_>, Failure>;
    /// Takes the upload of `name` that [`Upload::keep`] kept, if there is one and it has not
    /// expired. Of two uploads resuming the same name, one gets it and the other `None`.
    fn resume(&self, name: &str) -> Result<Option<Box<dyn Upload + '_>>, Failure>;
    /// Deletes a regular file.
    fn delete(&self, name: &str) -> Result<(), Failure>;
    /// The regular files, sorted by name; names that break the rules are left out.
    fn list(&self) -> io::Result<Vec<Entry>>;
    /// Removes kept uploads that have expired and, when `all` (at start, when no upload can
    /// be running), every upload in progress; returns how many.
    fn sweep(&self, all: bool) -> io::Result<usize>;
}
