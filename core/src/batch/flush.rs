//! Waiting for a group's files to reach the disk: one at a time where a flush returns at
//! once, on several threads where each one waits for the device.
//!
//! On a disk, each `fdatasync` waits for the device to write the file's data and its inode
//! and to flush its cache; the block layer merges cache flushes that are in flight together.
//! On this machine's ext4, one `UPLOAD -r` of 10,000 files of 4 KiB ran at about 6,800 files
//! a second flushed one at a time, 7,600 on two threads, 9,200 on four, 10,900 on eight and
//! 10,400 on sixteen (docs/PERFORMANCE.md). On tmpfs a flush does nothing, and a thread would
//! cost more than it saves.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Pending;

/// A first flush that takes longer than this waited for a device: the rest of the group are
/// then flushed by [`FLUSHERS`] threads.
pub const SLOW: Duration = Duration::from_micros(50);
/// How many threads flush a group at once on a device, this one included (see the module's
/// documentation).
const FLUSHERS: usize = 8;

/// A flush that failed: the index of its file, and why.
type Failure = (usize, io::Error);

/// Waits until every one of `files` is on the disk; a flush that fails gives its index (the
/// lowest, if several fail) and its error. The first file is flushed alone, and if that
/// took more than `slow`, the rest are shared by [`FLUSHERS`] threads; else they are flushed
/// in order on this one.
pub fn flush_all(files: &mut [&mut Box<dyn Pending>], slow: Duration) -> Result<(), Failure> {
    let Some((first, rest)) = files.split_first_mut() else {
        return Ok(());
    };
    let since = Instant::now();
    first.flush().map_err(|e| (0, e))?;
    let after_first = |(at, e)| (at + 1, e);
    if rest.len() < 2 || since.elapsed() <= slow {
        return in_order(rest).map_err(after_first);
    }
    let queue = Queue::new(rest);
    thread::scope(|scope| {
        for _ in 1..FLUSHERS {
            // One that cannot be started leaves its share to the others, this one among them.
            let _ = thread::Builder::new()
                .name("ferry-flush".into())
                .stack_size(super::behind::STACK)
                .spawn_scoped(scope, || queue.work());
        }
        queue.work();
    });
    let failed = queue.failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.map_or(Ok(()), |failure| Err(after_first(failure)))
}

/// Flushes `files` one after another, stopping at the first that fails.
fn in_order(files: &mut [&mut Box<dyn Pending>]) -> Result<(), Failure> {
    for (at, file) in files.iter_mut().enumerate() {
        file.flush().map_err(|e| (at, e))?;
    }
    Ok(())
}

/// Files taken in order by whichever flusher is free.
struct Queue<'a> {
    /// Each file, locked by the one flusher that takes it.
    files: Vec<Mutex<&'a mut Box<dyn Pending>>>,
    /// The index of the next file to take.
    next: AtomicUsize,
    /// Set by a failure: no file is taken after it. Files are taken in order, so every file
    /// before the lowest failure was taken, and is flushed by the time the flushers are done.
    stop: AtomicBool,
    /// The lowest failure.
    failed: Mutex<Option<Failure>>,
}

impl<'a> Queue<'a> {
    fn new(files: &'a mut [&mut Box<dyn Pending>]) -> Queue<'a> {
        Queue {
            files: files
                .iter_mut()
                .map(|file| Mutex::new(&mut **file))
                .collect(),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            failed: Mutex::new(None),
        }
    }

    /// Takes and flushes files until none are left or one has failed.
    fn work(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let at = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = self.files.get(at) else {
                return;
            };
            let flushed = file.lock().unwrap_or_else(|e| e.into_inner()).flush();
            if let Err(error) = flushed {
                self.stop.store(true, Ordering::Relaxed);
                let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                if failed.as_ref().is_none_or(|(lowest, _)| at < *lowest) {
                    *failed = Some((at, error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Condvar};
    use std::thread::ThreadId;

    use super::*;
    use crate::batch::Dir;

    /// Where the files numbered 1 to [`FLUSHERS`] wait until all of them are being flushed
    /// at once, or for 10 s at most.
    #[derive(Default)]
    struct Gate {
        arrived: Mutex<usize>,
        all_in: Condvar,
    }

    impl Gate {
        /// Waits for the others; true if all arrived in time.
        fn pass(&self) -> bool {
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.all_in.notify_all();
            let wait = self
                .all_in
                .wait_timeout_while(arrived, Duration::from_secs(10), |n| *n < FLUSHERS);
            !wait.unwrap().1.timed_out()
        }
    }

    type Flushed = Arc<Mutex<Vec<(usize, ThreadId, bool)>>>;

    /// A file that records which thread flushed it (and, if it had to pass the gate,
    /// whether all the others were there), and fails its flush if told to.
    struct Counted {
        at: usize,
        flushed: Flushed,
        fails: bool,
        gate: Option<Arc<Gate>>,
    }

    impl Pending for Counted {
        fn start(&mut self) {}
        fn flush(&mut self) -> io::Result<()> {
            let together = match &self.gate {
                Some(gate) if (1..=FLUSHERS).contains(&self.at) => gate.pass(),
                _ => true,
            };
            let me = thread::current().id();
            self.flushed.lock().unwrap().push((self.at, me, together));
            match self.fails {
                true => Err(io::Error::other(format!("disk gone at {}", self.at))),
                false => Ok(()),
            }
        }
        fn place(self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
            Ok(None)
        }
    }

    /// `count` files, of which those in `failing` fail, and the record of their flushes.
    fn files(
        count: usize,
        failing: &[usize],
        gate: Option<Arc<Gate>>,
    ) -> (Vec<Box<dyn Pending>>, Flushed) {
        let flushed = Flushed::default();
        let files = (0..count)
            .map(|at| {
                let (fails, gate) = (failing.contains(&at), gate.clone());
                let flushed = Arc::clone(&flushed);
                Box::new(Counted {
                    at,
                    flushed,
                    fails,
                    gate,
                }) as Box<dyn Pending>
            })
            .collect();
        (files, flushed)
    }

    fn flush(files: &mut [Box<dyn Pending>], slow: Duration) -> Result<(), Failure> {
        let mut refs: Vec<&mut Box<dyn Pending>> = files.iter_mut().collect();
        flush_all(&mut refs, slow)
    }

    #[test]
    fn slow_flushes_are_shared_by_threads_and_each_file_is_flushed_once() {
        let (mut all, flushed) = files(130, &[], Some(Arc::default()));
        flush(&mut all, Duration::ZERO).unwrap();
        let flushed = flushed.lock().unwrap();
        let mut seen: Vec<usize> = flushed.iter().map(|f| f.0).collect();
        seen.sort();
        assert_eq!(seen, (0..130).collect::<Vec<_>>());
        let me = thread::current().id();
        assert_eq!(flushed[0], (0, me, true), "the first alone, on this thread");
        assert!(flushed.iter().all(|f| f.2), "{FLUSHERS} flushed at once");
        let threads: HashSet<ThreadId> = flushed.iter().map(|f| f.1).collect();
        assert_eq!(threads.len(), FLUSHERS, "{threads:?}");
    }

    #[test]
    fn fast_flushes_stay_on_this_thread_in_order() {
        let (mut all, flushed) = files(130, &[], None);
        flush(&mut all, Duration::from_secs(3600)).unwrap();
        let me = thread::current().id();
        let expected: Vec<_> = (0..130).map(|at| (at, me, true)).collect();
        assert_eq!(*flushed.lock().unwrap(), expected);
    }

    #[test]
    fn the_lowest_failure_is_reported_whichever_thread_meets_it() {
        for slow in [Duration::ZERO, Duration::from_secs(3600)] {
            let (mut all, flushed) = files(130, &[129, 77, 40], None);
            let (at, error) = flush(&mut all, slow).unwrap_err();
            assert_eq!((at, error.to_string()), (40, "disk gone at 40".into()));
            let flushed: HashSet<usize> = flushed.lock().unwrap().iter().map(|f| f.0).collect();
            assert!((0..40).all(|at| flushed.contains(&at)), "all before it");
            let (mut all, _) = files(130, &[0, 5], None);
            assert_eq!(flush(&mut all, slow).unwrap_err().0, 0);
        }
        let (mut none, _) = files(0, &[], None);
        flush(&mut none, Duration::ZERO).unwrap();
        let (mut two, _) = files(2, &[1], None);
        assert_eq!(flush(&mut two, Duration::ZERO).unwrap_err().0, 1);
    }
}
