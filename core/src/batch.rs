//! [`Batch`]: uploads received and waiting to be committed together, so that a run of
//! pipelined uploads pays for one flush of the disk's journal rather than one per file.
//!
//! A store hands back a [`Pending`] for a file whose content is written. Settling the batch
//! starts writing back every file's data, waits until all of it is on the disk, renames each
//! file into place in the order received, makes each directory touched durable, and only then
//! sends the replies, in order: a reply still means that the file is on the disk, renamed.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

use crate::{Connection, Failure, Frame, Transport};

/// A file whose content is written, not yet in place.
pub trait Pending: Send {
    /// Starts writing its data to the disk, without waiting (a hint; may do nothing).
    fn start(&mut self);
    /// Waits until its data is on the disk.
    fn flush(&mut self) -> io::Result<()>;
    /// Puts it in place, by one rename; returns the directory that now holds it, which must
    /// then be flushed for the rename to last, if there is one to flush.
    fn place(self: Box<Self>) -> io::Result<Option<File>>;
}

/// The most files a batch holds before it is settled, whatever follows.
pub const MAX_FILES: usize = 128;

/// Files received and their replies, held until they are committed together.
#[derive(Default)]
pub struct Batch {
    held: Vec<Held>,
    /// The verb whose requests filled it: a request for any other verb settles it first, so
    /// that it sees every file in place.
    pub verb: Option<&'static str>,
}

/// One file held: its pending commit, its path as messages show it, and its reply.
struct Held(Box<dyn Pending>, String, Frame);

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when it must be settled before another file is taken.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_FILES
    }

    /// True when it holds a file for `path` (as given to [`Batch::push`]).
    pub fn holds(&self, path: &str) -> bool {
        self.held.iter().any(|held| held.1 == path)
    }

    /// Holds `pending`, the file at `path`, whose reply is `reply`.
    pub fn push(&mut self, pending: Box<dyn Pending>, path: String, reply: Frame) {
        self.held.push(Held(pending, path, reply));
    }

    /// Commits every file held, then sends their replies, in order. On a failure, no reply
    /// is sent for any of them and the failure (fatal: the session must end, since requests
    /// chained after these have run) is returned; files not yet renamed are removed.
    pub fn settle<S: Transport>(&mut self, conn: &mut Connection<S>) -> Result<(), Failure> {
        self.verb = None;
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let replies = commit(held).map_err(|mut failure| {
            failure.fatal = true;
            failure
        })?;
        for reply in &replies {
            conn.queue(reply).map_err(Failure::from_wire)?;
        }
        conn.flush().map_err(Failure::from_wire)
    }
}

/// Commits one file alone, durably: its data, its rename, its directory.
pub fn commit_one(pending: Box<dyn Pending>, shown: &str) -> Result<(), Failure> {
    commit(vec![Held(
        pending,
        shown.into(),
        Frame::new(crate::Kind::Ok, Vec::<String>::new()),
    )])
    .map(drop)
}

/// Writes back all the files' data at once (so that one journal commit covers them all),
/// waits for it, renames each, and flushes each directory once; returns the replies.
fn commit(held: Vec<Held>) -> Result<Vec<Frame>, Failure> {
    let mut files = Vec::with_capacity(held.len());
    let mut replies = Vec::with_capacity(held.len());
    for Held(pending, shown, reply) in held {
        files.push((pending, shown));
        replies.push(reply);
    }
    for (pending, _) in &mut files {
        pending.start();
    }
    for (pending, shown) in &mut files {
        pending.flush().map_err(|e| Failure::io(shown, &e))?;
    }
    let mut seen = HashSet::new();
    let mut dirs = Vec::new();
    for (pending, shown) in files {
        let placed = pending.place().map_err(|e| Failure::io(&shown, &e))?;
        if let Some(dir) = placed {
            let meta = dir.metadata().map_err(|e| Failure::io(&shown, &e))?;
            if seen.insert((meta.dev(), meta.ino())) {
                dirs.push((dir, shown));
            }
        }
    }
    for (dir, shown) in dirs {
        dir.sync_all().map_err(|e| Failure::io(&shown, &e))?;
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::Kind;
    use crate::socket::Memory;

    /// A file that logs each step, and fails its flush when told to.
    struct Logged(&'static str, Arc<Mutex<Vec<String>>>, bool);

    impl Pending for Logged {
        fn start(&mut self) {
            self.1.lock().unwrap().push(format!("start {}", self.0));
        }
        fn flush(&mut self) -> io::Result<()> {
            self.1.lock().unwrap().push(format!("flush {}", self.0));
            match self.2 {
                true => Err(io::Error::other("disk gone")),
                false => Ok(()),
            }
        }
        fn place(self: Box<Self>) -> io::Result<Option<File>> {
            self.1.lock().unwrap().push(format!("place {}", self.0));
            Ok(None)
        }
    }

    fn batch(log: &Arc<Mutex<Vec<String>>>, fail: &str) -> Batch {
        let mut batch = Batch::new();
        for name in ["a", "b"] {
            let file = Logged(name, Arc::clone(log), name == fail);
            let reply = Frame::new(Kind::Ok, [name]);
            batch.push(Box::new(file), name.into(), reply);
        }
        batch
    }

    #[test]
    fn every_file_is_flushed_before_any_is_placed_and_replies_come_after_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut batch = batch(&log, "");
        assert!(batch.holds("b") && !batch.holds("c"));
        let mut conn = Connection::new(Memory::new(Vec::new()));
        batch.settle(&mut conn).unwrap();
        let steps = [
            "start a", "start b", "flush a", "flush b", "place a", "place b",
        ];
        assert_eq!(*log.lock().unwrap(), steps);
        let mut expected = Vec::new();
        for name in ["a", "b"] {
            Frame::new(Kind::Ok, [name]).encode(&mut expected).unwrap();
        }
        assert_eq!(conn.stream.get_ref().output, expected);
        assert!(batch.is_empty());
    }

    #[test]
    fn a_failed_flush_sends_no_reply_and_places_nothing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut batch = batch(&log, "b");
        let mut conn = Connection::new(Memory::new(Vec::new()));
        let failure = batch.settle(&mut conn).unwrap_err();
        assert!(failure.fatal);
        assert!(conn.stream.get_ref().output.is_empty());
        assert!(
            !log.lock()
                .unwrap()
                .iter()
                .any(|step| step.starts_with("place"))
        );
    }
}
