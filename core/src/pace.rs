//! Pacing: the least progress an exchange in flight must make, counted in time spent waiting.
//!
//! A socket timeout restarts with every byte, so a peer that sends (or reads) one byte a little
//! faster than the timeout holds a connection for ever. A [`Pacer`] instead gives each
//! exchange a budget of waiting, [`Pace::window`], spent by every blocking read or write, and
//! refilled only when a whole [`Pace::quota`] of bytes has moved: a peer slower than
//! [`Pace::min_rate`] runs the budget out within one window, whatever it dribbles. Only time
//! blocked on the peer counts, so the server's own work (hashing a large file, a slow disk)
//! never does.

use std::io;
use std::time::{Duration, Instant};

/// How much an exchange must move, and how long it may wait on its peer for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The most time spent waiting on the peer between two quotas moved.
    pub window: Duration,
    /// The least rate, in bytes per second, averaged over a window; 0 lets any byte refill it.
    pub min_rate: u64,
}

impl Pace {
    /// The bytes that refill the budget: a window's worth at the least rate, at least one.
    pub fn quota(&self) -> u64 {
        let bytes = u128::from(self.min_rate).saturating_mul(self.window.as_millis()) / 1000;
        u64::try_from(bytes).unwrap_or(u64::MAX).max(1)
    }
}

/// One exchange's budget of waiting (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Pacer {
    pace: Pace,
    /// Time waited since the budget was last refilled.
    waited: Duration,
    /// Bytes moved since then.
    moved: u64,
    /// The budget ran out: for good, since bytes that go after it are no longer the peer
    /// keeping up (a kernel making a little room now and then, say).
    spent: bool,
}

impl Pacer {
    /// A full budget.
    pub fn new(pace: Pace) -> Pacer {
        Pacer {
            pace,
            waited: Duration::ZERO,
            moved: 0,
            spent: false,
        }
    }

    /// How long the next blocking call may wait: what is left of the budget, or a timeout
    /// error once it is spent.
    pub fn left(&self) -> io::Result<Duration> {
        let left = self.pace.window.saturating_sub(self.waited);
        if self.spent || left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer moved too little for too long",
            ));
        }
        Ok(left)
    }

    /// A blocking call that began at `since` has returned.
    pub fn waited(&mut self, since: Instant) {
        self.waited += since.elapsed();
        self.spent = self.waited >= self.pace.window;
    }

    /// `bytes` have moved; a whole quota refills the budget, unless it has run out.
    pub fn moved(&mut self, bytes: usize) {
        self.moved = self.moved.saturating_add(bytes as u64);
        if self.moved >= self.pace.quota() && !self.spent {
            self.moved = 0;
            self.waited = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        window: Duration::from_secs(2),
        min_rate: 100,
    };

    #[test]
    fn the_quota_is_a_window_at_the_least_rate_and_never_zero() {
        assert_eq!(PACE.quota(), 200);
        let any = Pace {
            min_rate: 0,
            ..PACE
        };
        assert_eq!(any.quota(), 1);
        let huge = Pace {
            window: Duration::from_secs(u64::MAX),
            min_rate: u64::MAX,
        };
        assert_eq!(huge.quota(), u64::MAX);
    }

    #[test]
    fn waiting_spends_the_budget_and_only_a_whole_quota_refills_it() {
        let mut pacer = Pacer::new(PACE);
        assert_eq!(pacer.left().unwrap(), PACE.window);
        pacer.waited = Duration::from_millis(1500);
        // A dribble short of the quota buys no time.
        pacer.moved(199);
        assert_eq!(pacer.left().unwrap(), Duration::from_millis(500));
        pacer.moved(1);
        assert_eq!(pacer.left().unwrap(), PACE.window);
        pacer.waited = PACE.window - Duration::from_millis(1);
        pacer.waited(Instant::now() - Duration::from_millis(1));
        let spent = pacer.left().unwrap_err();
        assert!(crate::error::is_timeout(&spent), "{spent:?}");
        // What moves once the budget has run out refills nothing.
        pacer.moved(1000);
        assert!(pacer.left().is_err());
    }
}
