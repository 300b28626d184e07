//! Reaching a directory below the root through handles alone: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, else one component at a
//! time, each opened relative to its parent with `O_NOFOLLOW`. Either way no symbolic link is
//! followed and nothing above the root is reached, whatever is renamed or swapped meanwhile.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use ferry_core::store::{EntryKind, Meta};
use ferry_core::{ErrorKind, Failure, RemotePath};

/// An open directory in the store: the root's own handle, or one opened below it.
#[derive(Debug)]
pub enum DirFd {
    /// The root (shared: the root's handle may be replaced while this one is in use).
    Root(Arc<OwnedFd>),
    /// A directory below it.
    Below(OwnedFd),
}

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => fd.as_fd(),
            DirFd::Below(fd) => fd.as_fd(),
        }
    }
}

/// How a directory is reached; the walk is kept for kernels without `openat2` (before 5.6,
/// or where a sandbox refuses it), and for the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// `openat2`, falling back to the walk where it is missing.
    Beneath,
    /// One component at a time.
    #[cfg_attr(not(test), allow(dead_code))]
    Walk,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How `openat2` resolves a path: below the root, through no symbolic link.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Opens the directory `path` below `root`.
pub fn open_dir(root: &Arc<OwnedFd>, path: &RemotePath, how: Resolve) -> Result<DirFd, Failure> {
    if path.is_root() {
        return Ok(DirFd::Root(Arc::clone(root)));
    }
    if how == Resolve::Beneath {
        // EAGAIN: a rename raced the lookup; the kernel asks to try again.
        for _ in 0..8 {
            match rustix::fs::openat2(root, path.relative(), DIR_FLAGS, Mode::empty(), BENEATH) {
                Ok(fd) => return Ok(DirFd::Below(fd)),
                Err(Errno::AGAIN) => continue,
                // ENOTDIR also comes of `O_NOFOLLOW` on a link: the walk tells which it is.
                Err(Errno::NOSYS | Errno::PERM | Errno::NOTDIR) => break,
                Err(e) => return Err(dir_error(path, e)),
            }
        }
    }
    let mut dir: Option<OwnedFd> = None;
    for component in path.components() {
        let parent = dir.as_ref().unwrap_or(root.as_ref());
        let next = rustix::fs::openat(parent, component, DIR_FLAGS, Mode::empty())
            .map_err(|e| dir_error(path, link_or(parent, component, e)))?;
        dir = Some(next);
    }
    Ok(dir.map_or_else(|| DirFd::Root(Arc::clone(root)), DirFd::Below))
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symbolic link fails with `ENOTDIR`, as on a file: tell
/// the link apart, as `openat2` does (`ELOOP`).
fn link_or(parent: &OwnedFd, component: &str, e: Errno) -> Errno {
    let link = e == Errno::NOTDIR
        && rustix::fs::statat(parent, component, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
    if link { Errno::LOOP } else { e }
}

/// The file `path` opened with `flags` by one `openat2` below `root`, following no symbolic
/// link (the last component's included), where `how` allows it and it succeeds. `None`
/// otherwise: the caller then opens its directory and the file in it, which also tells what
/// failed. A download costs one system call here instead of three (the directory's open and
/// close, and the file's open).
pub fn open_beneath(
    root: &OwnedFd,
    path: &RemotePath,
    flags: OFlags,
    how: Resolve,
) -> Option<OwnedFd> {
    if how != Resolve::Beneath || path.is_root() {
        return None;
    }
    rustix::fs::openat2(root, path.relative(), flags, Mode::empty(), BENEATH).ok()
}

/// What is at `leaf` in `dir` (`path`), if anything; a symbolic link is `forbidden`.
pub fn stat_in(
    dir: impl AsFd,
    leaf: &str,
    path: &RemotePath,
) -> Result<Option<(EntryKind, Meta)>, Failure> {
    let stat = match rustix::fs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(super::errno(&path.to_string(), e)),
    };
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(Some((EntryKind::File, super::meta_of(&stat)))),
        FileType::Directory => Ok(Some((EntryKind::Dir, super::meta_of(&stat)))),
        FileType::Symlink => Err(super::symlink(path)),
        _ => Err(ferry_core::store::refusal::not_regular(path)),
    }
}

/// Why the directory `path` could not be opened.
pub fn dir_error(path: &RemotePath, e: Errno) -> Failure {
    let shown = ferry_core::name::escape(&path.to_string());
    match e {
        Errno::NOENT => Failure::new(ErrorKind::NotFound, format!("no such directory '{shown}'")),
        Errno::NOTDIR => Failure::new(ErrorKind::NotFound, format!("'{shown}' is not a directory")),
        // ELOOP: a component is a symbolic link; EXDEV: it would leave the root.
        Errno::LOOP | Errno::XDEV => Failure::new(
            ErrorKind::Forbidden,
            format!("'{shown}' leads through a symbolic link, which is never followed"),
        ),
        e => Failure::io(&shown, &std::io::Error::from(e)),
    }
}

/// The directory holding `path` and `path`'s name in it. The root itself has no parent: it
/// is refused as not a file.
pub fn split(path: &RemotePath) -> Result<(RemotePath, &str), Failure> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(leaf)) => Ok((parent, leaf)),
        _ => Err(Failure::new(
            ErrorKind::BadRequest,
            "'/' is the root directory itself",
        )),
    }
}
