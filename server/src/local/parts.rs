//! Kept parts: interrupted uploads kept in the hidden directory for resuming.
//!
//! Each part carries, in an extended attribute, the path it was for and the address that sent
//! it, written when the upload starts: so a part left by a crash can be kept (the next start
//! renames it to its path's key instead of deleting it), an operator can see whose parts they
//! are (`ferryd --list-partials`), and one address can be held to its share. Together the kept
//! parts stay within a count and a byte total, and one address within a share of both: past
//! either, the oldest (by last write) are evicted first, and a part larger than an address's
//! share keeps only its start, which still resumes. On a filesystem without user extended
//! attributes parts are still kept and bounded, but a crash's parts are lost and owners unknown.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use ferry_core::RemotePath;

use super::temp::{KEPT_PREFIX, TEMP_PREFIX, kept_name};
use super::{LocalStore, Temp};

/// The record of a part: the address that sent it, then a space and the path it is for
/// (without its leading `/`), when known.
const RECORD_ATTR: &str = "user.ferry.upload";
/// Where versions before [`RECORD_ATTR`] recorded the path and the address, one attribute
/// each; still read, from the parts they left.
const PATH_ATTR: &str = "user.ferry.path";
const OWNER_ATTR: &str = "user.ferry.owner";

/// The bounds on kept parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartLimits {
    /// A part not written for this long is removed.
    pub max_age: Duration,
    /// The most bytes all kept parts hold together; `None` until the store resolves it (a
    /// tenth of the root's filesystem).
    pub max_bytes: Option<u64>,
    /// The most kept parts.
    pub max_count: usize,
    /// The share, in percent, of both that the parts from one address may hold.
    pub share: u8,
}

impl Default for PartLimits {
    /// 24 hours, a tenth of the filesystem, 1024 parts, a quarter for one address.
    fn default() -> PartLimits {
        PartLimits {
            max_age: ferry_core::store::DEFAULT_PARTIAL_AGE,
            max_bytes: None,
            max_count: 1024,
            share: 25,
        }
    }
}

impl PartLimits {
    /// The most bytes all parts may hold.
    pub fn bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(u64::MAX)
    }

    /// The most parts, and bytes, one address may hold (at least one part, if any at all).
    pub fn per_address(&self) -> (usize, u64) {
        let share = u128::from(self.share.min(100));
        let count = (self.max_count as u128 * share / 100) as usize;
        let bytes = (u128::from(self.bytes()) * share / 100) as u64;
        (count.max(self.max_count.min(1)), bytes)
    }
}

/// A file in the hidden directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its name there.
    pub name: String,
    /// A kept part (else an upload in progress, or one a crash left).
    pub kept: bool,
    /// Its size in bytes.
    pub size: u64,
    /// Its last write.
    pub modified: SystemTime,
    /// The remote path it is for, without its leading `/`, if recorded.
    pub path: Option<String>,
    /// The address that sent it, if recorded.
    pub owner: Option<IpAddr>,
}

/// Records, on an upload's file, who sends it and the path it is for, in one attribute
/// ([`RECORD_ATTR`]), so that one call writes the record and one removes it; a filesystem
/// without extended attributes records nothing. Also marks the file in use, with a lock held
/// as long as it is open: another `ferryd` starting on the same root leaves it alone (see
/// [`in_use`]), and a crash releases it.
pub fn record(file: &File, path: Option<&RemotePath>, owner: IpAddr) {
    hold(file);
    let owner = owner.to_canonical().to_string();
    let Some(path) = path else {
        let _ = rustix::fs::fsetxattr(file, RECORD_ATTR, owner.as_bytes(), XattrFlags::empty());
        return;
    };
    let value = format!("{owner} {}", path.relative());
    let set = rustix::fs::fsetxattr(file, RECORD_ATTR, value.as_bytes(), XattrFlags::empty());
    // A path near the 4 KiB limit may not fit where a value has at most a block (ext4): the
    // owner alone still holds the sender to its share.
    if let Err(Errno::TOOBIG | Errno::NOSPC | Errno::RANGE) = set {
        let _ = rustix::fs::fsetxattr(file, RECORD_ATTR, owner.as_bytes(), XattrFlags::empty());
    }
}

/// Marks `file` in use, as [`record`] does, without a record: a file of the hidden
/// directory that a crash may leave but need not be kept.
pub fn hold(file: &File) {
    let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
}

/// Removes the record, so that a committed file carries none.
pub fn unrecord(file: &File) {
    let _ = rustix::fs::fremovexattr(file, RECORD_ATTR);
}

/// Removes the records of earlier versions ([`PATH_ATTR`], [`OWNER_ATTR`]) from a part one of
/// them kept, now resumed, so that the file committed carries none of them either.
pub fn unrecord_earlier(file: &File) {
    for name in [PATH_ATTR, OWNER_ATTR] {
        let _ = rustix::fs::fremovexattr(file, name);
    }
}

/// The path and the sender recorded on a part: by [`record`], or by an earlier version.
fn recorded(file: &OwnedFd) -> (Option<String>, Option<IpAddr>) {
    match attr(file, RECORD_ATTR) {
        Some(value) => match value.split_once(' ') {
            Some((owner, path)) => (Some(path.to_owned()), owner.parse().ok()),
            None => (None, value.parse().ok()),
        },
        None => (
            attr(file, PATH_ATTR),
            attr(file, OWNER_ATTR).and_then(|o| o.parse().ok()),
        ),
    }
}

fn attr(fd: impl AsFd, name: &str) -> Option<String> {
    let mut buf = vec![0u8; 4200];
    let len = rustix::fs::fgetxattr(fd, name, &mut buf[..]).ok()?;
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// The files in the hidden directory; anything else there (a planted link, a directory, a
/// FIFO) is removed.
pub fn scan(partial: &OwnedFd) -> io::Result<Vec<Part>> {
    let mut parts = Vec::new();
    for dirent in Dir::read_from(partial)? {
        let dirent = dirent?;
        let Ok(name) = dirent.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = rustix::fs::openat(partial, name, flags, Mode::empty());
        let stat = file.as_ref().ok().and_then(|f| rustix::fs::fstat(f).ok());
        let (Ok(file), Some(stat)) = (file, stat) else {
            remove_odd(partial, name);
            continue;
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            remove_odd(partial, name);
            continue;
        }
        let (path, owner) = recorded(&file);
        parts.push(Part {
            name: name.to_owned(),
            kept: name.starts_with(KEPT_PREFIX),
            size: stat.st_size.max(0) as u64,
            modified: UNIX_EPOCH
                + Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32),
            path,
            owner,
        });
    }
    Ok(parts)
}

/// Removes whatever is not a regular file (it was planted: the server makes none).
fn remove_odd(partial: &OwnedFd, name: &str) {
    if rustix::fs::unlinkat(partial, name, AtFlags::empty()).is_err() {
        let _ = rustix::fs::unlinkat(partial, name, AtFlags::REMOVEDIR);
    }
}

/// The kept parts to evict so that every address is within its share and all within the
/// limits: the oldest first, never `spare` (the part just kept, already cut to fit).
pub fn evictions(mut parts: Vec<Part>, limits: &PartLimits, spare: Option<&str>) -> Vec<Part> {
    parts.retain(|p| p.kept);
    parts.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    let (share_count, share_bytes) = limits.per_address();
    let mut owners: HashMap<IpAddr, (usize, u64)> = HashMap::new();
    let (mut count, mut bytes) = (0usize, 0u64);
    for part in &parts {
        count += 1;
        bytes += part.size;
        if let Some(owner) = part.owner {
            let held = owners.entry(owner).or_default();
            held.0 += 1;
            held.1 += part.size;
        }
    }
    // Each address's own oldest first, as far as its share asks; only then the oldest of all,
    // so that one address over its share never costs another its part.
    let mut evicted = Vec::new();
    for pass in [true, false] {
        let mut left = Vec::new();
        for part in parts {
            let over = if pass {
                part.owner.is_some_and(|o| {
                    let held = owners[&o];
                    held.0 > share_count || held.1 > share_bytes
                })
            } else {
                count > limits.max_count || bytes > limits.bytes()
            };
            if !over || spare == Some(part.name.as_str()) {
                left.push(part);
                continue;
            }
            count -= 1;
            bytes -= part.size;
            if let Some(held) = part.owner.and_then(|o| owners.get_mut(&o)) {
                held.0 -= 1;
                held.1 -= part.size;
            }
            evicted.push(part);
        }
        parts = left;
    }
    evicted
}

/// Turns an upload a crash left (its temporary, with the path it was for recorded) into the
/// kept part of that path, unless a newer one is kept already; else removes it. True if kept.
pub fn recover(partial: &OwnedFd, part: &Part, kept: &[Part]) -> bool {
    let path = part
        .path
        .as_deref()
        .and_then(|p| RemotePath::from_wire(&format!("/{p}")).ok());
    let keep = match path {
        Some(path) if part.size > 0 => {
            let key = kept_name(&path);
            let newer = kept
                .iter()
                .any(|k| k.name == key && k.modified > part.modified);
            (!newer).then_some(key)
        }
        _ => None,
    };
    match keep {
        Some(key) => {
            rustix::fs::renameat(partial, part.name.as_str(), partial, key.as_str()).is_ok()
        }
        None => {
            let _ = rustix::fs::unlinkat(partial, part.name.as_str(), AtFlags::empty());
            false
        }
    }
}

/// True for the temporary of an upload in progress (or left by a crash).
pub fn is_temp(part: &Part) -> bool {
    part.name.starts_with(TEMP_PREFIX)
}

/// The hidden directory of the root at `root`, opened without creating anything (for the
/// operator's commands, which must not disturb a running server's uploads).
fn open_hidden(root: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, flags, Mode::empty())?;
    let flags = flags | OFlags::NOFOLLOW;
    Ok(rustix::fs::openat(
        &dir,
        super::PARTIAL_DIR,
        flags,
        Mode::empty(),
    )?)
}

impl LocalStore {
    /// Keeps `temp` as the part of `path`, cut to its sender's share, and evicts the oldest
    /// parts past the bounds. Returns the bytes kept (0: nothing; `temp` is then removed).
    pub(super) fn keep_part(&self, temp: &mut Temp<'_>, path: &RemotePath) -> io::Result<u64> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        let (share_count, share_bytes) = self.limits.per_address();
        let len = temp.hidden.file.metadata()?.len().min(share_bytes);
        if len == 0 || share_count == 0 {
            return Ok(0);
        }
        // The start of an upload resumes as well as the whole of it.
        if len < temp.hidden.file.metadata()?.len() {
            temp.hidden.file.set_len(len)?;
        }
        let partial = &*temp.hidden.partial;
        let key = kept_name(path);
        // Room first, then the part: the bounds hold at every moment, not only after.
        let mut parts = scan(partial)?;
        parts.retain(|p| p.name != key && p.name != temp.hidden.name);
        parts.push(Part {
            name: key.clone(),
            kept: true,
            size: len,
            modified: SystemTime::now(),
            path: None,
            owner: Some(temp.owner),
        });
        let evicted = evictions(parts, &self.limits, Some(&key));
        self.evict(partial, &evicted, temp.owner);
        rustix::fs::renameat(partial, temp.hidden.name.as_str(), partial, key.as_str())?;
        temp.hidden.done = true;
        Ok(len)
    }

    /// Removes `evicted`, logging each, for the part just kept from `newcomer`.
    fn evict(&self, partial: &OwnedFd, evicted: &[Part], newcomer: IpAddr) {
        for part in evicted {
            if rustix::fs::unlinkat(partial, part.name.as_str(), AtFlags::empty()).is_ok() {
                crate::log(format_args!(
                    "evicted the kept part of '/{}' from {} ({} bytes) for one from {newcomer}: \
                     kept parts are bounded",
                    ferry_core::name::escape(part.path.as_deref().unwrap_or("?")),
                    part.owner
                        .map_or("an unknown address".into(), |o| o.to_string()),
                    part.size,
                ));
            }
        }
    }

    /// Parts past the maximum age go, and the oldest past the bounds; with `all` (at start,
    /// when no upload runs) each temporary becomes the kept part of its path, or goes.
    pub(super) fn sweep_parts(&self, all: bool) -> io::Result<usize> {
        let _keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        let handles = self
            .root
            .handles()
            .map_err(|f| io::Error::other(f.message))?;
        let partial = &*handles.partial;
        let mut removed = 0;
        let found = scan(partial)?;
        let kept: Vec<Part> = found.iter().filter(|p| p.kept).cloned().collect();
        for part in &found {
            // An upload's file may carry its sender's modification time, however old, while
            // it waits in a group to be committed: one held open is never too old.
            let held = is_temp(part) && in_use(partial, part);
            let gone = if held {
                false
            } else if self.too_old(Some(part.modified)) {
                rustix::fs::unlinkat(partial, part.name.as_str(), AtFlags::empty()).is_ok()
            } else if all && is_temp(part) {
                !recover(partial, part, &kept)
            } else {
                false
            };
            removed += usize::from(gone);
        }
        for part in evictions(scan(partial)?, &self.limits, None) {
            if rustix::fs::unlinkat(partial, part.name.as_str(), AtFlags::empty()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Whether `part` is an upload that a running server (this one or another on the same root)
/// holds open: its lock cannot be taken.
fn in_use(partial: &OwnedFd, part: &Part) -> bool {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(partial, part.name.as_str(), flags, Mode::empty()) else {
        return false;
    };
    let taken = rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive);
    taken == Err(rustix::io::Errno::WOULDBLOCK)
}

/// The parts in the hidden directory of the root at `root`, oldest first, for the operator.
pub fn list(root: &Path) -> io::Result<Vec<Part>> {
    let mut parts = match open_hidden(root) {
        Ok(partial) => scan(&partial)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    parts.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    Ok(parts)
}

/// Removes every kept part of the root at `root`; uploads in progress are left alone.
/// Returns how many went and their bytes.
pub fn clear(root: &Path) -> io::Result<(usize, u64)> {
    let partial = match open_hidden(root) {
        Ok(partial) => partial,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut count, mut bytes) = (0, 0);
    for part in scan(&partial)?.into_iter().filter(|p| p.kept) {
        if rustix::fs::unlinkat(&partial, part.name.as_str(), AtFlags::empty()).is_ok() {
            count += 1;
            bytes += part.size;
        }
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, age: u64, size: u64, owner: u8) -> Part {
        Part {
            name: name.into(),
            kept: true,
            size,
            modified: UNIX_EPOCH + Duration::from_secs(1_000_000 - age),
            path: None,
            owner: Some(IpAddr::from([10, 0, 0, owner])),
        }
    }

    fn names(parts: Vec<Part>) -> Vec<String> {
        parts.into_iter().map(|p| p.name).collect()
    }

    const LIMITS: PartLimits = PartLimits {
        max_age: Duration::from_secs(60),
        max_bytes: Some(1000),
        max_count: 8,
        share: 50,
    };

    #[test]
    fn the_oldest_go_first_when_over_the_total() {
        let parts: Vec<Part> = (0..10)
            .map(|i| part(&format!("resume-{i}"), 100 - i, 10, i as u8))
            .collect();
        assert_eq!(
            names(evictions(parts, &LIMITS, None)),
            ["resume-0", "resume-1"]
        );
        let big = vec![part("resume-a", 3, 600, 1), part("resume-b", 2, 600, 2)];
        assert_eq!(
            names(evictions(big, &LIMITS, Some("resume-a"))),
            ["resume-b"]
        );
    }

    #[test]
    fn one_address_is_held_to_its_share_and_others_keep_theirs() {
        let mut parts: Vec<Part> = (0..6)
            .map(|i| part(&format!("resume-x{i}"), 50 - i, 10, 1))
            .collect();
        parts.push(part("resume-other", 99, 10, 2));
        parts.push(part("resume-third", 98, 10, 3));
        // A share of 50% of 8 parts is 4: the two oldest of address 1 go, which brings all
        // within 8, so the others' older parts stay.
        assert_eq!(
            names(evictions(parts, &LIMITS, Some("resume-x5"))),
            ["resume-x0", "resume-x1"]
        );
        assert_eq!(LIMITS.per_address(), (4, 500));
    }
}
