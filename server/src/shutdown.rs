//! [`Shutdown`]: a request to stop the server, shared by the signal handler, SHUTDOWN and the
//! accept loop, with a hook that wakes the accept loop; and the request to drain it (stop
//! taking sessions, let those in flight finish, keep running), for a load balancer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::{Shared, log};

/// A shared request to stop the server, with a hook that wakes its accept loop.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownInner>);

#[derive(Default)]
struct ShutdownInner {
    requested: AtomicBool,
    draining: AtomicBool,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Shutdown {
    /// A shutdown that has not been requested.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the hook run once when shutdown is requested, and once when a drain is (the first
    /// hook set wins).
    pub fn on_request(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.0.wake.set(Box::new(wake));
    }

    /// Requests shutdown; only the first call runs the hook.
    pub fn request(&self) {
        if !self.0.requested.swap(true, Ordering::SeqCst)
            && let Some(wake) = self.0.wake.get()
        {
            wake();
        }
    }

    /// Requests a drain (SIGUSR1): new connections are refused `busy`, which fails a load
    /// balancer's health check, idle sessions close, and requests in flight get the grace
    /// period; the server keeps running until shutdown. Only the first call runs the hook.
    pub fn drain(&self) {
        if !self.0.draining.swap(true, Ordering::SeqCst)
            && let Some(wake) = self.0.wake.get()
        {
            wake();
        }
    }

    /// True once a drain has been requested.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// True once shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shutdown({})", self.is_requested())
    }
}

/// Sweeps interrupted uploads older than the maximum age out of the root, a few times per age,
/// until the server stops.
pub(crate) fn janitor(shared: &Shared) {
    let every = (shared.config.partial_max_age / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(3600));
    let mut stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        stopped = shared
            .stop
            .wait_timeout(stopped, every)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        match shared.store.sweep(false) {
            Ok(0) => {}
            Ok(n) => log(format_args!("removed {n} expired partial uploads")),
            Err(e) => log(format_args!("cannot sweep partial uploads: {e}")),
        }
    }
}

/// After the accept loop: close idle clients at once, give busy ones the grace period to finish
/// their request, then close whatever is left.
pub(crate) fn drain(shared: &Shared, doing: &str) {
    let (sessions, busy) = shared.clients.close_idle();
    log(format_args!(
        "{doing}: {sessions} clients, {busy} busy; grace {:?}",
        shared.config.grace
    ));
    if shared
        .clients
        .wait_gone(Instant::now() + shared.config.grace)
    {
        return;
    }
    let left = shared.clients.close_all();
    log(format_args!("grace period over: closing {left} clients"));
    // Closed sockets fail every read and write, so the threads end promptly.
    shared
        .clients
        .wait_gone(Instant::now() + Duration::from_secs(5));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_runs_its_hook_once() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let seen = Arc::clone(&count);
        shutdown.on_request(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!shutdown.is_requested());
        shutdown.request();
        shutdown.clone().request();
        assert!(shutdown.is_requested());
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(!shutdown.is_draining());
        shutdown.drain();
        shutdown.drain();
        assert!(shutdown.is_draining());
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
