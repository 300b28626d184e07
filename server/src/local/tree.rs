//! Removing a directory tree through handles: each directory opened below its parent with
//! `O_NOFOLLOW`, its entries unlinked relative to it, so a symbolic link anywhere in the tree
//! is removed itself and nothing it points to is touched. Names are never held for a whole
//! directory: entries are removed as they are read, and the directory read again until a
//! pass finds nothing.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Deepest tree removed: each level holds one open directory.
pub const MAX_DEPTH: usize = 256;

/// Why a tree could not be removed.
pub enum Error {
    /// Deeper than [`MAX_DEPTH`].
    Deep,
    /// The system said no.
    Os(Errno),
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error::Os(e)
    }
}

/// Removes `name` in `dir`: a directory with everything in it, anything else itself. Returns
/// how many entries went.
pub fn remove(dir: &impl AsFd, name: &OsStr, depth: usize) -> Result<u64, Error> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(1);
    }
    if depth >= MAX_DEPTH {
        return Err(Error::Deep);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let inner = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let removed = empty(&inner, depth)?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(removed + 1)
}

/// Removes everything in the directory `dir`.
fn empty(dir: &OwnedFd, depth: usize) -> Result<u64, Error> {
    let mut removed = 0;
    loop {
        let mut this_pass = 0;
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // Any name the directory holds, UTF-8 or not, goes as it is.
            let name = OsStr::from_bytes(name).to_os_string();
            this_pass += remove(dir, &name, depth + 1)?;
        }
        removed += this_pass;
        if this_pass == 0 {
            return Ok(removed);
        }
    }
}
