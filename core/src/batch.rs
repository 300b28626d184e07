//! [`Group`]: files written and waiting to be committed together, so that a run of pipelined
//! transfers pays for one flush of the disk's journal rather than one per file.
//!
//! A file whose content is written is held as a [`Pending`]. Committing the group starts
//! writing back every file's data, waits until all of it is on the disk, renames each file
//! into place in the order received, makes each directory touched durable, and only then is
//! each file reported: a report still means that the file is on the disk, renamed.
//!
//! The server holds uploads in a [`Batch`], their replies waiting with them; the client holds
//! pipelined downloads in [`ClientCtx::landing`], their reports waiting with them ([`land`]).

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

mod behind;
mod flush;
mod landing;
mod session;
pub mod unnamed;
pub use landing::{Landed, Landing, Report, land, pass};
pub use session::{Batch, PASS_AT};

use crate::Failure;

/// A file whose content is written, not yet in place.
pub trait Pending: Send {
    /// Starts writing its data to the disk, without waiting (a hint; may do nothing).
    fn start(&mut self);
    /// Waits until its data is on the disk.
    fn flush(&mut self) -> io::Result<()>;
    /// Puts it in place, by one rename; returns the directory that now holds it, which must
    /// then be flushed for the rename to last, if there is one to flush.
    fn place(self: Box<Self>) -> io::Result<Option<Arc<Dir>>>;
    /// Whether committing it may wait for a device: not on a file system in memory, where
    /// a flush writes nothing. A group of files that never wait is committed by the thread
    /// that received it (see [`Group::waits`]).
    fn waits(&self) -> bool {
        true
    }
}

/// An open directory that files are placed in, and its identity (device and inode), learnt
/// when it was opened: a group flushes each directory once however many of its files it
/// places, and a directory shared by many files ([`Arc`]) is not asked again for each.
#[derive(Debug)]
pub struct Dir {
    file: File,
    id: (u64, u64),
    /// Whether its file system is in memory, asked the first time it is wanted.
    memory: std::sync::OnceLock<bool>,
}

/// Whether the file system `fs` describes (from `statfs`) keeps its files in memory (tmpfs,
/// ramfs): nothing there survives a power cut, and a flush writes nothing.
pub fn in_memory(fs: &rustix::fs::StatFs) -> bool {
    /// `f_type` of these in `statfs` (linux/magic.h).
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    matches!(fs.f_type, TMPFS_MAGIC | RAMFS_MAGIC)
}

impl Dir {
    /// The directory open as `file`; one `fstat` for its identity.
    pub fn new(file: File) -> io::Result<Dir> {
        let meta = file.metadata()?;
        Ok(Dir {
            file,
            id: (meta.dev(), meta.ino()),
            memory: std::sync::OnceLock::new(),
        })
    }

    /// Opens the directory at `path` (following a symbolic link there, as any path would).
    pub fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
            .open(path)?;
        Dir::new(file)
    }

    /// Its handle, to open, rename and remove entries relative to it.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its device and inode numbers.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Whether it is on a file system in memory ([`in_memory`]); one `fstatfs` the first
    /// time, none after.
    pub fn in_memory(&self) -> bool {
        *self
            .memory
            .get_or_init(|| rustix::fs::fstatfs(&self.file).is_ok_and(|fs| in_memory(&fs)))
    }
}

/// The most files a group holds before it is committed, whatever follows.
pub const MAX_FILES: usize = 128;

/// The most bytes of content a group holds before it is committed: what a flush must write
/// stays bounded, and a failure loses no more than this much received content.
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Files written, each with what waits on it (`T`: a reply, a report), held until they are
/// committed together.
pub struct Group<T> {
    held: Vec<Held<T>>,
    bytes: u64,
    /// One of its files may wait for a device when committed ([`Pending::waits`]).
    waits: bool,
}

/// One file held: its pending commit, its path as messages show it, and what waits on it.
struct Held<T>(Box<dyn Pending>, String, T);

/// A file of a group that could not be committed; those before it were, those after it were
/// not (their partial files are removed).
#[derive(Debug)]
pub struct Failed {
    /// How many files before it were committed.
    pub at: usize,
    /// Its path as messages show it.
    pub shown: String,
    /// What went wrong.
    pub error: io::Error,
}

impl Failed {
    /// The failure as the server reports it.
    pub fn failure(&self) -> Failure {
        Failure::io(&self.shown, &self.error)
    }
}

impl<T> Default for Group<T> {
    fn default() -> Group<T> {
        Group {
            held: Vec::new(),
            bytes: 0,
            waits: false,
        }
    }
}

impl<T> Group<T> {
    /// An empty group.
    pub fn new() -> Group<T> {
        Group::default()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when it must be committed before another file is taken: it holds
    /// [`MAX_FILES`] files or [`MAX_BYTES`] bytes.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_FILES || self.bytes >= MAX_BYTES
    }

    /// True when it holds a file for `path` (as given to [`Group::push`]).
    pub fn holds(&self, path: &str) -> bool {
        self.held.iter().any(|held| held.1 == path)
    }

    /// True when committing it may wait for a device: then, while more files stream in, it
    /// is worth handing to a thread of its own. A group on a file system in memory commits in
    /// less time than handing it over costs, in the thread's start, the wakeups and the
    /// contention on the directories both threads use (a tree upload to tmpfs took 10% less
    /// time committed where it was received; docs/PERFORMANCE.md).
    pub fn waits(&self) -> bool {
        self.waits
    }

    /// True when, while more files stream in, it is to be handed to a thread of its own: it
    /// holds [`PASS_AT`] files and is worth it ([`Group::waits`]).
    pub fn passes(&self) -> bool {
        self.held.len() >= PASS_AT && self.waits
    }

    /// Holds `pending`, `size` bytes at `path`, with what waits on it.
    pub fn push(&mut self, pending: Box<dyn Pending>, path: String, size: u64, waits: T) {
        self.bytes = self.bytes.saturating_add(size);
        self.waits |= pending.waits();
        self.held.push(Held(pending, path, waits));
    }

    /// Writes back all the files' data at once (so that one journal commit covers them
    /// all) and waits for it, on several threads where flushes wait for a device
    /// ([`flush::flush_all`]). On a failure, the files from the one that failed on are not
    /// to be placed.
    pub fn flush(&mut self) -> Result<(), Failed> {
        for Held(pending, ..) in &mut self.held {
            pending.start();
        }
        let mut files: Vec<_> = self.held.iter_mut().map(|held| &mut held.0).collect();
        flush::flush_all(&mut files, flush::SLOW).map_err(|(at, error)| {
            let shown = self.held[at].1.clone();
            Failed { at, shown, error }
        })
    }

    /// Renames each file into place, in order, and flushes each directory touched once;
    /// returns what waits on each file committed, in order, and the failure that stopped it,
    /// if one did. Only files before the failed one count as committed: a directory that
    /// cannot be flushed fails the first file placed in it.
    pub fn place(self) -> (Vec<T>, Option<Failed>) {
        let mut done = Vec::with_capacity(self.held.len());
        let mut failed = None;
        let mut seen = HashSet::new();
        let mut dirs = Vec::new();
        for (at, Held(pending, shown, waits)) in self.held.into_iter().enumerate() {
            match pending.place() {
                Ok(Some(dir)) if seen.insert(dir.id()) => dirs.push((dir, at, shown)),
                Ok(_) => {}
                Err(error) => {
                    failed = Some(Failed { at, shown, error });
                    break;
                }
            }
            done.push(waits);
        }
        for (dir, at, shown) in dirs {
            if let Err(error) = dir.file().sync_all()
                && failed.as_ref().is_none_or(|f| at < f.at)
            {
                failed = Some(Failed { at, shown, error });
            }
        }
        if let Some(failed) = &failed {
            done.truncate(failed.at);
        }
        (done, failed)
    }

    /// Flushes and places the files, keeping what comes before a failure: see
    /// [`Group::flush`] and [`Group::place`].
    pub fn commit(mut self) -> (Vec<T>, Option<Failed>) {
        let flushed = self.flush();
        if let Err(failed) = &flushed {
            // Dropped unplaced, the rest remove their partial files.
            self.held.truncate(failed.at);
        }
        let (done, placed) = self.place();
        (done, flushed.err().or(placed))
    }
}

/// Commits one file alone, durably: its data, its rename, its directory.
pub fn commit_one(pending: Box<dyn Pending>, shown: &str) -> Result<(), Failed> {
    let mut group = Group::new();
    group.push(pending, shown.into(), 0, ());
    match group.commit() {
        (_, Some(failed)) => Err(failed),
        (_, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A file that logs each step, and fails the step named by its third field.
    pub(super) struct Logged(
        pub &'static str,
        pub Arc<Mutex<Vec<String>>>,
        pub &'static str,
    );

    impl Logged {
        fn step(&self, step: &str) -> io::Result<()> {
            self.1.lock().unwrap().push(format!("{step} {}", self.0));
            match self.2 == step {
                true => Err(io::Error::other("disk gone")),
                false => Ok(()),
            }
        }
    }

    impl Pending for Logged {
        fn start(&mut self) {
            let _ = self.step("start");
        }
        fn flush(&mut self) -> io::Result<()> {
            self.step("flush")
        }
        fn place(self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
            self.step("place").map(|()| None)
        }
    }

    pub(super) type Log = Arc<Mutex<Vec<String>>>;

    /// A group of files `a`, `b`, `c`, where `b` fails at `step`.
    fn group(log: &Log, step: &'static str) -> Group<&'static str> {
        let mut group = Group::new();
        for name in ["a", "b", "c"] {
            let fails = if name == "b" { step } else { "" };
            let file = Logged(name, Arc::clone(log), fails);
            group.push(Box::new(file), name.into(), 1, name);
        }
        group
    }

    #[test]
    fn a_group_commits_the_files_before_a_failed_flush_and_places_none_after_it() {
        let log = Log::default();
        let (done, failed) = group(&log, "flush").commit();
        assert_eq!(done, ["a"]);
        let failed = failed.unwrap();
        assert_eq!((failed.at, failed.shown.as_str()), (1, "b"));
        let steps = [
            "start a", "start b", "start c", "flush a", "flush b", "place a",
        ];
        assert_eq!(*log.lock().unwrap(), steps);
    }

    #[test]
    fn a_failed_rename_stops_the_group_at_that_file() {
        let log = Log::default();
        let (done, failed) = group(&log, "place").commit();
        assert_eq!(done, ["a"]);
        assert_eq!(failed.unwrap().at, 1);
        let log = log.lock().unwrap();
        assert!(log.contains(&"flush c".to_string()), "{log:?}");
        assert!(!log.contains(&"place c".to_string()), "{log:?}");
        let (done, failed) = group(&Log::default(), "").commit();
        assert_eq!((done, failed.is_none()), (vec!["a", "b", "c"], true));
    }

    #[test]
    fn a_group_is_full_at_its_count_of_files_or_of_bytes() {
        let log = Log::default();
        let mut group = Group::new();
        for _ in 1..MAX_FILES {
            group.push(
                Box::new(Logged("f", Arc::clone(&log), "")),
                "f".into(),
                1,
                (),
            );
        }
        assert!(!group.is_full());
        group.push(
            Box::new(Logged("f", Arc::clone(&log), "")),
            "f".into(),
            1,
            (),
        );
        assert!(group.is_full());
        let mut group = Group::new();
        group.push(
            Box::new(Logged("f", Arc::clone(&log), "")),
            "f".into(),
            MAX_BYTES - 1,
            (),
        );
        assert!(!group.is_full());
        group.push(
            Box::new(Logged("g", Arc::clone(&log), "")),
            "g".into(),
            1,
            (),
        );
        assert!(group.is_full() && group.holds("g") && !group.holds("h"));
    }
}
