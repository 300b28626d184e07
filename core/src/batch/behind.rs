//! [`Groups`]: files held in groups to commit, the group being received and the one before
//! it, handed to a thread of its own to commit ([`Committing`]) while the one that received
//! them (a server's session, a client) goes on receiving the next.

use std::io;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use super::{Failed, Group};

/// Stack of a committing thread, which only flushes and renames, and of each thread that
/// helps it flush ([`super::flush`]).
pub(super) const STACK: usize = 128 * 1024;

/// What committing a group gave: what waits on each file committed, in order, and the
/// failure that stopped it, if one did.
pub(crate) type Committed<T> = (Vec<T>, Option<Failed>);

/// The files held: the group being received, and the group before it while a thread of its
/// own commits it, with the keys of that group's files (`K`: what a later transfer to the
/// same place must wait for).
pub(crate) struct Groups<T, K> {
    pub group: Group<T>,
    committing: Option<Committing<T, K>>,
}

impl<T, K> Default for Groups<T, K> {
    fn default() -> Groups<T, K> {
        Groups {
            group: Group::default(),
            committing: None,
        }
    }
}

impl<T: Send + 'static, K> Groups<T, K> {
    /// True when it holds nothing, neither received nor being committed.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty() && self.committing.is_none()
    }

    /// The keys of the files being committed by a thread.
    pub fn committing(&self) -> &[K] {
        self.committing.as_ref().map_or(&[], |c| &c.keys)
    }

    /// Waits for the group handed to a thread, if one was; what committing it gave.
    pub fn join(&mut self) -> Option<Committed<T>> {
        self.committing.take().map(Committing::join)
    }

    /// Hands the group received to a thread that commits it with `commit`, each file known by
    /// `key` of its shown path and what waits on it; the group handed over before must have
    /// been joined. Should no thread start, the group is committed here, and `Err` holds what
    /// that gave.
    pub fn hand_over(
        &mut self,
        key: fn(&str, &T) -> K,
        commit: fn(Group<T>) -> Committed<T>,
    ) -> Result<(), Committed<T>> {
        debug_assert!(self.committing.is_none(), "the group before was not joined");
        let group = mem::take(&mut self.group);
        let keys = group
            .held
            .iter()
            .map(|held| key(&held.1, &held.2))
            .collect();
        self.committing = Some(Committing::start(group, keys, commit)?);
        Ok(())
    }
}

/// A group being committed by a thread of its own, with the keys of its files.
struct Committing<T, K> {
    keys: Vec<K>,
    /// Its first file as messages show it, to name should the thread stop.
    first: String,
    thread: Option<JoinHandle<Committed<T>>>,
}

impl<T: Send + 'static, K> Committing<T, K> {
    /// Hands `group`, whose files' keys are `keys`, to a thread that commits it with
    /// `commit`. Should no thread start, the group is committed here, and `Err` holds what
    /// that gave.
    fn start(
        group: Group<T>,
        keys: Vec<K>,
        commit: fn(Group<T>) -> Committed<T>,
    ) -> Result<Self, Committed<T>> {
        let first = group.held.first().map(|held| held.1.clone());
        // Taken back from the slot if no thread takes it.
        let slot = Arc::new(Mutex::new(Some(group)));
        let taken = Arc::clone(&slot);
        let run = move |slot: &Mutex<Option<Group<T>>>| match lock(slot).take() {
            Some(group) => commit(group),
            None => (Vec::new(), None),
        };
        let spawned = thread::Builder::new()
            .name("ferry-commit".into())
            .stack_size(STACK)
            .spawn(move || run(&taken));
        match spawned {
            Ok(thread) => Ok(Committing {
                keys,
                first: first.unwrap_or_default(),
                thread: Some(thread),
            }),
            Err(_) => Err(run(&slot)),
        }
    }

    /// Waits until the thread has committed the group; what that gave.
    fn join(mut self) -> Committed<T> {
        let Some(thread) = self.thread.take() else {
            return (Vec::new(), None);
        };
        thread.join().unwrap_or_else(|_| {
            let error = io::Error::other("the thread committing it stopped");
            let shown = std::mem::take(&mut self.first);
            (
                Vec::new(),
                Some(Failed {
                    at: 0,
                    shown,
                    error,
                }),
            )
        })
    }
}

impl<T, K> Drop for Committing<T, K> {
    /// Dropped unjoined (its owner gave up), it still waits until the group is committed or
    /// its files removed, so that no thread goes on writing behind it.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
