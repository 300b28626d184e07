//! [`RemoteNames`]: the names in the server's directories for completion, cached per
//! directory so that Tab rarely costs a round trip, and fetched so that a slow server never
//! holds the prompt for long.
//!
//! A fetch runs on its own thread (it locks the shared client, so it never overlaps a
//! command), one at a time; completion waits for it at most [`WAIT`] and otherwise offers what
//! it had. A directory's names are refetched when older than [`MAX_AGE`] or after any command
//! ran ([`RemoteNames::after_command`]), since a command may have changed them. The listings of
//! the [`MAX_DIRS`] directories fetched last are kept.
//!
//! Typed directories are resolved against the working directory as the last command left it,
//! which this cache keeps itself: reading it from the client would wait for a fetch in flight.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::RemotePath;

/// Cached names older than this are fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(3);
/// Completion waits this long for a fetch before offering the names it already had.
pub const WAIT: Duration = Duration::from_millis(500);
/// Most directories whose listings are kept; the one fetched longest ago goes first.
pub const MAX_DIRS: usize = 32;

type Fetch = dyn Fn(&RemotePath) -> anyhow::Result<Vec<String>> + Send + Sync;

/// The names in the server's directories as last fetched; clones share one cache.
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
    /// The working directory, as the last command left it.
    cwd: RemotePath,
    listings: HashMap<RemotePath, Listing>,
    /// Bumped by every command.
    generation: u64,
    /// The directory being fetched: one at a time, since fetches share the connection.
    fetching: Option<RemotePath>,
}

/// One directory's names, when they were fetched, and in which generation.
struct Listing {
    names: Vec<String>,
    at: Instant,
    generation: u64,
}

impl RemoteNames {
    /// A cache filled by `fetch`, which lists a directory on the server (it is run on another
    /// thread), for a session in the root.
    pub fn new(
        fetch: impl Fn(&RemotePath) -> anyhow::Result<Vec<String>> + Send + Sync + 'static,
    ) -> Self {
        RemoteNames::with_timing(fetch, MAX_AGE, WAIT)
    }

    /// [`RemoteNames::new`] with other limits (tests).
    pub fn with_timing(
        fetch: impl Fn(&RemotePath) -> anyhow::Result<Vec<String>> + Send + Sync + 'static,
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

    /// Marks every listing out of date, since a command ran and may have changed any, and
    /// takes the working directory it left.
    pub fn after_command(&self, cwd: &RemotePath) {
        let mut state = self.shared.lock();
        state.generation += 1;
        state.cwd = cwd.clone();
    }

    /// The names in the directory `typed` names (resolved against the working directory; a
    /// directory's with a trailing `/`), fetched again first when out of date. A fetch that
    /// takes longer than the wait is left running, and the names it replaces are returned (or
    /// none); so are they when another directory's fetch holds the connection that long.
    pub fn names(&self, typed: &str) -> Vec<String> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.shared.lock();
        let Ok(dir) = state.cwd.resolve(typed) else {
            return Vec::new();
        };
        loop {
            if let Some(listing) = state.listings.get(&dir)
                && listing.generation == state.generation
                && listing.at.elapsed() < self.max_age
            {
                return listing.names.clone();
            }
            let ours = match &state.fetching {
                Some(fetching) => *fetching == dir,
                None => {
                    state.fetching = Some(dir.clone());
                    let (shared, dir, generation) =
                        (Arc::clone(&self.shared), dir.clone(), state.generation);
                    thread::spawn(move || shared.refresh(dir, generation));
                    true
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let (waited, timeout) = self
                .shared
                .fetched
                .wait_timeout_while(state, left, |s| s.fetching.is_some())
                .unwrap_or_else(PoisonError::into_inner);
            state = waited;
            // Once our fetch is over (done or failed) there is nothing more to wait for;
            // after another directory's, ours can start.
            if ours || timeout.timed_out() {
                return state
                    .listings
                    .get(&dir)
                    .map(|l| l.names.clone())
                    .unwrap_or_default();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is one assignment; a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refresh(&self, dir: RemotePath, generation: u64) {
        let at = Instant::now();
        // A failed fetch (a lost connection, a directory that is not there) keeps the old
        // names; the next Tab retries, and the next command reports a lost connection.
        let fetched = (self.fetch)(&dir);
        let mut state = self.lock();
        if let Ok(names) = fetched {
            let listing = Listing {
                names,
                at,
                generation,
            };
            state.listings.insert(dir, listing);
            if state.listings.len() > MAX_DIRS
                && let Some(oldest) = state.oldest()
            {
                state.listings.remove(&oldest);
            }
        }
        state.fetching = None;
        drop(state);
        self.fetched.notify_all();
    }
}

impl State {
    /// The directory whose listing was fetched longest ago.
    fn oldest(&self) -> Option<RemotePath> {
        let (dir, _) = self.listings.iter().min_by_key(|(_, l)| l.at)?;
        Some(dir.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    /// Long enough for any thread to be scheduled; only a broken cache waits this long.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// A cache whose server lists every directory as its own path, and a record of the
    /// directories it was asked for.
    fn recording() -> (RemoteNames, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&asked);
        let fetch = move |dir: &RemotePath| {
            seen.lock().unwrap().push(dir.wire());
            Ok(vec![dir.wire()])
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), DEADLINE);
        (remote, asked)
    }

    fn at(dir: &str) -> RemotePath {
        RemotePath::root().resolve(dir).unwrap()
    }

    #[test]
    fn each_directory_is_cached_until_a_command_runs() {
        let (remote, asked) = recording();
        assert_eq!(remote.names(""), ["/"]);
        assert_eq!(remote.names("photos/"), ["/photos"]);
        assert_eq!(remote.clone().names("/photos"), ["/photos"]);
        assert_eq!(remote.names("./photos//"), ["/photos"]);
        assert_eq!(remote.names("/"), ["/"]);
        assert_eq!(*asked.lock().unwrap(), ["/", "/photos"], "one fetch each");
        remote.after_command(&RemotePath::root());
        assert_eq!(remote.names("photos"), ["/photos"]);
        assert_eq!(*asked.lock().unwrap(), ["/", "/photos", "/photos"]);
    }

    #[test]
    fn directories_resolve_against_the_working_directory_a_command_left() {
        let (remote, asked) = recording();
        remote.after_command(&at("photos/2024"));
        assert_eq!(remote.names(""), ["/photos/2024"]);
        assert_eq!(remote.names("../"), ["/photos"]);
        assert_eq!(remote.names("../../../.."), ["/"]);
        assert_eq!(remote.names("été/"), ["/photos/2024/été"]);
        assert_eq!(remote.names("/docs/../music/"), ["/music"]);
        assert!(
            remote.names("a\\b/").is_empty(),
            "a bad path is not asked for"
        );
        assert_eq!(asked.lock().unwrap().len(), 5);
    }

    #[test]
    fn the_directories_fetched_longest_ago_are_dropped_past_the_bound() {
        let (remote, asked) = recording();
        for n in 0..=MAX_DIRS {
            remote.names(&format!("d{n}"));
        }
        assert_eq!(remote.shared.lock().listings.len(), MAX_DIRS);
        remote.names(&format!("d{MAX_DIRS}"));
        remote.names("d1");
        assert_eq!(asked.lock().unwrap().len(), MAX_DIRS + 1, "still cached");
        remote.names("d0");
        assert_eq!(
            asked.lock().unwrap().len(),
            MAX_DIRS + 2,
            "dropped, so fetched"
        );
    }

    #[test]
    fn old_names_are_fetched_again() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let fetch = move |_: &RemotePath| Ok(vec![seen.fetch_add(1, Ordering::SeqCst).to_string()]);
        let remote = RemoteNames::with_timing(fetch, Duration::ZERO, DEADLINE);
        assert_eq!(remote.names(""), ["0"]);
        assert_eq!(remote.names(""), ["1"]);
    }

    /// A cache whose server holds each fetch until released, completing with no wait.
    fn held() -> (RemoteNames, mpsc::Sender<()>) {
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let fetch = move |dir: &RemotePath| {
            held.lock().unwrap().recv_timeout(DEADLINE)?;
            Ok(vec![dir.wire()])
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), Duration::ZERO);
        (remote, release)
    }

    #[test]
    fn a_slow_server_does_not_hold_completion() {
        let (remote, release) = held();
        let started = Instant::now();
        assert!(
            remote.names("late").is_empty(),
            "nothing yet, and no waiting"
        );
        assert!(started.elapsed() < DEADLINE);
        release.send(()).unwrap();
        let patient = RemoteNames {
            wait: DEADLINE,
            ..remote.clone()
        };
        assert_eq!(
            patient.names("late"),
            ["/late"],
            "the fetch in flight lands"
        );
    }

    #[test]
    fn one_fetch_at_a_time_and_the_next_directory_waits_its_turn() {
        let (remote, release) = held();
        assert!(remote.names("a").is_empty());
        assert!(
            remote.names("b").is_empty(),
            "a's fetch still holds the connection"
        );
        assert_eq!(remote.shared.lock().fetching, Some(at("a")));
        release.send(()).unwrap();
        release.send(()).unwrap();
        let patient = RemoteNames {
            wait: DEADLINE,
            ..remote.clone()
        };
        assert_eq!(patient.names("b"), ["/b"], "b's fetch follows a's");
        assert_eq!(patient.names("a"), ["/a"]);
    }

    #[test]
    fn a_failed_fetch_offers_nothing_and_is_retried() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let fetch = move |_: &RemotePath| match seen.fetch_add(1, Ordering::SeqCst) {
            0 => anyhow::bail!("connection closed by peer"),
            _ => Ok(vec!["back".to_string()]),
        };
        let remote = RemoteNames::with_timing(fetch, Duration::from_secs(3600), DEADLINE);
        assert!(remote.names("").is_empty());
        assert_eq!(remote.names(""), ["back"]);
    }
}
