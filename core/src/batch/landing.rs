//! [`Landing`]: a client's pipelined downloads, held until they are committed together, their
//! reports waiting with them. While more downloads stream in, a group of
//! [`PASS_AT`](super::PASS_AT) files that may wait for a device ([`Group::waits`]) is handed
//! to a thread of its own to commit ([`pass`]), and the client goes on receiving the next
//! group meanwhile; a file is still reported only once it is committed, in order.

use std::mem;
use std::path::{Path, PathBuf};

use super::behind::{Committed, Groups};
use super::{Failed, Group, Pending};
use crate::ClientCtx;

/// What the client does once a download held in [`ClientCtx::landing`] is committed: it
/// reports the file.
pub type Report = Box<dyn FnOnce(&mut ClientCtx) -> anyhow::Result<()> + Send>;

/// A download held in [`ClientCtx::landing`]: where it goes, and what reports it.
pub struct Landed {
    /// Where it lands, as a key that is the same however the destination was spelt (the
    /// download verb makes it): another download there must wait until this one is committed.
    pub dest: PathBuf,
    /// What reports it once it is committed.
    pub report: Report,
}

/// Downloads received and not yet committed: the group being received, and the one before
/// it, if it is being committed by a thread of its own.
#[derive(Default)]
pub struct Landing {
    /// The downloads held, by where they land.
    groups: Groups<Landed, PathBuf>,
}

impl Landing {
    /// Holds `pending`, `size` bytes shown as `shown`, reported by `landed` once committed.
    pub fn push(&mut self, pending: Box<dyn Pending>, shown: String, size: u64, landed: Landed) {
        self.groups.group.push(pending, shown, size, landed);
    }

    /// True when it holds nothing, neither received nor being committed.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many files it holds, received or being committed.
    pub fn len(&self) -> usize {
        self.groups.group.len() + self.groups.committing().len()
    }

    /// True when it must be committed before another file is taken.
    pub fn is_full(&self) -> bool {
        self.groups.group.is_full()
    }

    /// True when the group being received is big enough to hand to a thread ([`pass`]), and
    /// worth it ([`Group::waits`]).
    pub fn passes(&self) -> bool {
        self.groups.group.passes()
    }

    /// True when it holds a download to `dest`, received or being committed. The keys are
    /// compared as bytes: each is made one way, so the same place has the same bytes, and
    /// this is asked for every file against every file held (comparing them as paths,
    /// component by component, took 5% of a tree download's CPU).
    pub fn lands_at(&self, dest: &Path) -> bool {
        let dest = dest.as_os_str().as_encoded_bytes();
        let same = |key: &Path| key.as_os_str().as_encoded_bytes() == dest;
        self.groups.group.held.iter().any(|held| same(&held.2.dest))
            || self.groups.committing().iter().any(|key| same(key))
    }
}

/// Commits the downloads held in `ctx.landing` and reports each one committed, in order. On
/// a failure, returns how many of them were committed and reported before it, and what went
/// wrong; the rest are not placed.
pub fn land(ctx: &mut ClientCtx) -> Result<(), (usize, anyhow::Error)> {
    let reported = finish(ctx)?;
    let group = mem::take(&mut ctx.landing.groups.group);
    report(ctx, group.commit())
        .map(drop)
        .map_err(|(at, e)| (reported + at, e))
}

/// Hands the group received so far to a thread to commit, once the group before it is
/// committed and reported; returns how many files were reported. A failure is as [`land`]'s.
pub fn pass(ctx: &mut ClientCtx) -> Result<usize, (usize, anyhow::Error)> {
    let mut reported = finish(ctx)?;
    let key = |_: &str, landed: &Landed| landed.dest.clone();
    if let Err(committed) = ctx.landing.groups.hand_over(key, Group::commit) {
        reported += report(ctx, committed).map_err(|(at, e)| (reported + at, e))?;
    }
    Ok(reported)
}

/// Waits for the group being committed, if any, and reports its files; how many.
fn finish(ctx: &mut ClientCtx) -> Result<usize, (usize, anyhow::Error)> {
    match ctx.landing.groups.join() {
        Some(committed) => report(ctx, committed),
        None => Ok(0),
    }
}

/// Reports the files of a group committed; how many. On a failure, the files received after
/// it are dropped unplaced (their partial files removed).
fn report(
    ctx: &mut ClientCtx,
    (done, failed): Committed<Landed>,
) -> Result<usize, (usize, anyhow::Error)> {
    let count = done.len();
    let reported = done
        .into_iter()
        .enumerate()
        .try_for_each(|(at, landed)| (landed.report)(ctx).map_err(|e| (at, e)));
    let failed = match (reported, failed) {
        (Err(failure), _) => failure,
        (Ok(()), Some(Failed { at, shown, error })) => (
            at,
            anyhow::Error::from(error).context(format!("downloading '{shown}'")),
        ),
        (Ok(()), None) => return Ok(count),
    };
    ctx.landing = Landing::default();
    Err(failed)
}
