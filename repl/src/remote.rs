//! [`RemoteNames`]: the server's file names for completion, cached so that Tab rarely costs a
//! round trip, and fetched so that a slow server never holds the prompt for long.
//!
//! A fetch runs on its own thread (it locks the shared client, so it never overlaps a
//! command); completion waits for it at most [`WAIT`] and otherwise offers what it had. The
//! names are refetched when older than [`MAX_AGE`] or after any command ran
//! ([`RemoteNames::invalidate`]), since a command may have changed them.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Cached names older than this are fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(3);
/// Completion waits this long for a fetch before offering the names it already had.
pub const WAIT: Duration = Duration::from_millis(500);

type Fetch = dyn Fn() -> anyhow::Result<Vec<String>> + Send + Sync;

/// The server's names as last fetched; clones share one cache.
#[derive(Clone)]
pub struct RemoteNames {
    shared: Arc<Shared>,
    max_age: Duration,
    wait: Duration,
}

struct Shared {
    fetch: Box<Fetch>,
    state: Mutex<State>,
    fetched: Condvar,
}

#[derive(Default)]
struct State {
    names: Vec<String>,
    /// When `names` were fetched, and in which generation.
    at: Option<(Instant, u64)>,
    /// Bumped by every invalidation.
    generation: u64,
    fetching: bool,
}

impl RemoteNames {
    /// A cache filled by `fetch`, which asks the server (it is run on another thread).
    pub fn new(fetch: impl Fn() -> anyhow::Result<Vec<String>> + Send + Sync + 'static) -> Self {
        RemoteNames::with_timing(fetch, MAX_AGE, WAIT)
    }

    /// [`RemoteNames::new`] with other limits (tests).
    pub fn with_timing(
        fetch: impl Fn() -> anyhow::Result<Vec<String>> + Send + Sync + 'static,
        max_age: Duration,
        wait: Duration,
    ) -> Self {
        RemoteNames {
            shared: Arc::new(Shared {
                fetch: Box::new(fetch),
                state: Mutex::new(State::default()),
                fetched: Condvar::new(),
            }),
            max_age,
            wait,
        }
    }

    /// Marks the names out of date: a command ran and may have changed them.
    pub fn invalidate(&self) {
        self.shared.lock().generation += 1;
    }

    /// The names, fetched again first when out of date; a fetch that takes longer than the
    /// wait is left running, and the names it replaces are returned (or none).
    pub fn names(&self) -> Vec<String> {
        let mut state = self.shared.lock();
        let fresh = state.at.is_some_and(|(at, generation)| {
            generation == state.generation && at.elapsed() < self.max_age
        });
        if fresh {
            return state.names.clone();
        }
        if !state.fetching {
            state.fetching = true;
            let generation = state.generation;
            let shared = Arc::clone(&self.shared);
            thread::spawn(move || shared.refresh(generation));
        }
        let (state, _) = self
            .shared
            .fetched
            .wait_timeout_while(state, self.wait, |s| s.fetching)
            .unwrap_or_else(PoisonError::into_inner);
        state.names.clone()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is one assignment; a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refresh(&self, generation: u64) {
        let started = Instant::now();
        // A failed fetch (a lost connection, say) keeps the old names; the next Tab retries,
        // and the next command reports the failure.
        let fetched = (self.fetch)();
        let mut state = self.lock();
        if let Ok(names) = fetched {
            state.names = names;
            state.at = Some((started, generation));
        }
        state.fetching = false;
        drop(state);
        self.fetched.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    fn counting(names: &'static [&'static str]) -> (RemoteNames, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let fetch = move || {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(names.iter().map(|n| n.to_string()).collect())
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), DEADLINE);
        (remote, count)
    }

    /// Long enough for any thread to be scheduled; only a broken cache waits this long.
    const DEADLINE: Duration = Duration::from_secs(30);

    #[test]
    fn names_are_cached_until_a_command_runs() {
        let (remote, count) = counting(&["a", "b"]);
        assert_eq!(remote.names(), ["a", "b"]);
        assert_eq!(remote.clone().names(), ["a", "b"]);
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "the clone shares the cache"
        );
        remote.invalidate();
        assert_eq!(remote.names(), ["a", "b"]);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn old_names_are_fetched_again() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let fetch = move || Ok(vec![seen.fetch_add(1, Ordering::SeqCst).to_string()]);
        let remote = RemoteNames::with_timing(fetch, Duration::ZERO, DEADLINE);
        assert_eq!(remote.names(), ["0"]);
        assert_eq!(remote.names(), ["1"]);
    }

    #[test]
    fn a_slow_server_does_not_hold_completion() {
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let fetch = move || {
            held.lock().unwrap().recv_timeout(DEADLINE)?;
            Ok(vec!["late".to_string()])
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), Duration::ZERO);
        let started = Instant::now();
        assert!(remote.names().is_empty(), "nothing yet, and no waiting");
        assert!(started.elapsed() < DEADLINE);
        release.send(()).unwrap();
        let patient = RemoteNames {
            wait: DEADLINE,
            ..remote.clone()
        };
        assert_eq!(patient.names(), ["late"], "the fetch in flight lands");
    }

    #[test]
    fn a_failed_fetch_offers_nothing_and_is_retried() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let fetch = move || match seen.fetch_add(1, Ordering::SeqCst) {
            0 => anyhow::bail!("connection closed by peer"),
            _ => Ok(vec!["back".to_string()]),
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), DEADLINE);
        assert!(remote.names().is_empty());
        assert_eq!(remote.names(), ["back"]);
    }
}
