//! [`Shutdown`]: a request to stop the server, shared by the signal handler, SHUTDOWN and the
//! accept loop, with a hook that wakes the accept loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A shared request to stop the server, with a hook that wakes its accept loop.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownInner>);

#[derive(Default)]
struct ShutdownInner {
    requested: AtomicBool,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Shutdown {
    /// A shutdown that has not been requested.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the hook run once when shutdown is requested (the first hook set wins).
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
    }
}
