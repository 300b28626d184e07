//! [`Batch`]: a session's uploads received and their replies, held until they are committed
//! together. While more requests stream in, a group of [`PASS_AT`] files that may wait for a
//! device ([`Group::waits`]) is handed to a thread of its own to commit, and the session goes
//! on receiving the next group meanwhile; replies still leave only once their files are
//! committed, and in the order received.

use std::mem;

use super::behind::{Committed, Groups};
use super::{Group, MAX_FILES, Pending};
use crate::{Connection, Failure, Frame, Transport};

/// Files a streaming session's group holds when it is handed to a thread: a quarter of the
/// requests `ferry` sends ahead (256), so that the next groups arrive while this one is
/// committed. Between the two, a session holds no more files open than one group of
/// [`MAX_FILES`] held before.
pub const PASS_AT: usize = MAX_FILES / 2;

/// Uploads received and their replies, held until they are committed together.
#[derive(Default)]
pub struct Batch {
    /// The uploads held, by their paths.
    groups: Groups<Frame, String>,
    /// The verb whose requests filled it: a request for any other verb settles it first, so
    /// that it sees every file in place.
    pub verb: Option<&'static str>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// True when it holds nothing, neither received nor being committed.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many files the group being received holds.
    pub fn received(&self) -> usize {
        self.groups.group.len()
    }

    /// True when it must be settled before another file is taken.
    pub fn is_full(&self) -> bool {
        self.groups.group.len() >= MAX_FILES
    }

    /// True when the group being received is big enough to hand to a thread ([`Batch::pass`]),
    /// and worth it ([`Group::waits`]).
    pub fn passes(&self) -> bool {
        self.groups.group.passes()
    }

    /// True when it holds a file for `path` (as given to [`Batch::push`]), received or being
    /// committed.
    pub fn holds(&self, path: &str) -> bool {
        self.groups.group.holds(path) || self.groups.committing().iter().any(|p| p == path)
    }

    /// Holds `pending`, the file at `path`, whose reply is `reply`.
    pub fn push(&mut self, pending: Box<dyn Pending>, path: String, reply: Frame) {
        self.groups.group.push(pending, path, 0, reply);
    }

    /// Hands the group received so far to a thread to commit, once the group before it is
    /// committed and its replies sent; returns at once, for the session to read on. Should a
    /// thread not start, the group is committed here. A failure is as [`Batch::settle`]'s.
    pub fn pass<S: Transport>(&mut self, conn: &mut Connection<S>) -> Result<(), Failure> {
        self.finish(conn)?;
        if !self.groups.group.is_empty()
            && let Err(committed) = self.groups.hand_over(|path, _| path.into(), commit)
        {
            send(conn, committed)?;
        }
        conn.flush().map_err(Failure::from_wire)
    }

    /// Commits every file held, then sends their replies, in order. On a failure, only the
    /// files placed before the one that failed are answered and the failure (fatal: the
    /// session must end, since requests chained after these have run) is returned; files not
    /// yet renamed are removed, and when a flush failed, none of its group is renamed.
    pub fn settle<S: Transport>(&mut self, conn: &mut Connection<S>) -> Result<(), Failure> {
        self.verb = None;
        if self.is_empty() {
            return Ok(());
        }
        self.finish(conn)?;
        if !self.groups.group.is_empty() {
            send(conn, commit(mem::take(&mut self.groups.group)))?;
        }
        conn.flush().map_err(Failure::from_wire)
    }

    /// Waits for the group being committed, if any, and queues its replies. When it failed,
    /// the files received after it are dropped too (their temporaries removed): like the
    /// requests chained after a failed one, they are not to take effect.
    fn finish<S: Transport>(&mut self, conn: &mut Connection<S>) -> Result<(), Failure> {
        let Some(committed) = self.groups.join() else {
            return Ok(());
        };
        let sent = send(conn, committed);
        if sent.is_err() {
            self.groups.group = Group::default();
        }
        sent
    }
}

/// Flushes and places `group`'s files; see [`Group::flush`] and [`Group::place`]. When a
/// flush fails, none is placed.
fn commit(mut group: Group<Frame>) -> Committed<Frame> {
    match group.flush() {
        Err(failed) => (Vec::new(), Some(failed)),
        Ok(()) => group.place(),
    }
}

/// Queues the replies of a group committed: those of the files placed before one failed too,
/// since they are in place; then returns the failure, if one stopped it, fatal.
fn send<S: Transport>(
    conn: &mut Connection<S>,
    (replies, failed): Committed<Frame>,
) -> Result<(), Failure> {
    for reply in &replies {
        conn.queue(reply).map_err(Failure::from_wire)?;
    }
    match failed {
        Some(failed) => {
            let mut failure = failed.failure();
            failure.fatal = true;
            Err(failure)
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::super::tests::Logged;
    use super::*;
    use crate::Kind;
    use crate::socket::Memory;

    /// Holds file `name` in `batch`, failing at `fails` (a step, or nothing), its reply `O name`.
    fn hold(
        batch: &mut Batch,
        log: &Arc<Mutex<Vec<String>>>,
        name: &'static str,
        fails: &'static str,
    ) {
        let file = Logged(name, Arc::clone(log), fails);
        batch.push(Box::new(file), name.into(), Frame::new(Kind::Ok, [name]));
    }

    fn batch(log: &Arc<Mutex<Vec<String>>>, fail: &str) -> Batch {
        let mut batch = Batch::new();
        for name in ["a", "b"] {
            hold(
                &mut batch,
                log,
                name,
                if name == fail { "flush" } else { "" },
            );
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

    #[test]
    fn files_placed_before_one_that_fails_to_be_placed_are_answered_before_the_failure() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut batch = Batch::new();
        for (name, fails) in [("a", ""), ("b", "place"), ("c", "")] {
            hold(&mut batch, &log, name, fails);
        }
        let mut conn = Connection::new(Memory::new(Vec::new()));
        let failure = batch.settle(&mut conn).unwrap_err();
        assert!(
            failure.fatal && failure.to_string().contains('b'),
            "{failure}"
        );
        // Queued ahead of the failure, which the session sends next.
        conn.flush().unwrap();
        assert_eq!(conn.stream.get_ref().output, replies(&["a"]));
        assert!(!log.lock().unwrap().contains(&"place c".to_string()));
    }

    /// A file on a file system in memory: committing it never waits for a device.
    struct InMemory;

    impl Pending for InMemory {
        fn start(&mut self) {}
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn place(self: Box<Self>) -> std::io::Result<Option<Arc<crate::batch::Dir>>> {
            Ok(None)
        }
        fn waits(&self) -> bool {
            false
        }
    }

    #[test]
    fn only_a_group_that_may_wait_for_a_device_is_handed_to_a_thread() {
        let mut batch = Batch::new();
        for i in 0..PASS_AT {
            let reply = Frame::new(Kind::Ok, ["m"]);
            batch.push(Box::new(InMemory), format!("m{i}"), reply);
        }
        assert!(!batch.passes() && !batch.is_full());
        let log = Arc::new(Mutex::new(Vec::new()));
        hold(&mut batch, &log, "d", "");
        assert!(batch.passes());
        let mut conn = Connection::new(Memory::new(Vec::new()));
        batch.pass(&mut conn).unwrap();
        // The next group starts out waiting for nothing.
        let reply = Frame::new(Kind::Ok, ["n"]);
        batch.push(Box::new(InMemory), "n".into(), reply);
        assert!(!batch.groups.group.waits());
        hold(&mut batch, &log, "e", "");
        assert!(batch.groups.group.waits());
        batch.settle(&mut conn).unwrap();
        assert!(batch.is_empty());
    }

    /// The frames `names` would be sent as, in order.
    fn replies(names: &[&str]) -> Vec<u8> {
        let mut expected = Vec::new();
        for name in names {
            Frame::new(Kind::Ok, [*name]).encode(&mut expected).unwrap();
        }
        expected
    }

    /// Files `a` and `b` (failing at `fail`), handed to a thread; the log, batch and connection.
    fn passed(fail: &str) -> (Arc<Mutex<Vec<String>>>, Batch, Connection<Memory>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut batch = batch(&log, fail);
        let mut conn = Connection::new(Memory::new(Vec::new()));
        batch.pass(&mut conn).unwrap();
        (log, batch, conn)
    }

    #[test]
    fn a_group_passed_to_a_thread_is_answered_before_the_next_and_is_still_held_meanwhile() {
        let (log, mut batch, mut conn) = passed("");
        // Its replies wait until it is committed: the next pass or settle sends them.
        assert!(conn.stream.get_ref().output.is_empty());
        assert!(batch.holds("a") && !batch.is_empty() && batch.received() == 0);
        hold(&mut batch, &log, "c", "");
        batch.pass(&mut conn).unwrap();
        assert_eq!(conn.stream.get_ref().output, replies(&["a", "b"]));
        assert!(batch.holds("c") && !batch.holds("a"));
        batch.settle(&mut conn).unwrap();
        assert_eq!(conn.stream.get_ref().output, replies(&["a", "b", "c"]));
        assert!(batch.is_empty() && !batch.holds("c"));
        let log = log.lock().unwrap();
        let placed = log.iter().position(|s| s == "place b").unwrap();
        assert!(
            placed < log.iter().position(|s| s == "start c").unwrap(),
            "{log:?}"
        );
    }

    #[test]
    fn a_passed_group_that_fails_is_not_answered_and_ends_the_session_at_the_next_step() {
        let (log, mut batch, mut conn) = passed("b");
        hold(&mut batch, &log, "c", "");
        let failure = batch.settle(&mut conn).unwrap_err();
        assert!(
            failure.fatal && failure.to_string().contains('b'),
            "{failure}"
        );
        assert!(conn.stream.get_ref().output.is_empty());
        // What came after it is dropped, not committed when the session ends.
        assert!(batch.is_empty() && !batch.holds("c"));
        batch.settle(&mut conn).unwrap();
        let log = log.lock().unwrap();
        assert!(!log.iter().any(|step| step.starts_with("place")), "{log:?}");
        assert!(!log.contains(&"flush c".to_string()), "{log:?}");
    }
}
