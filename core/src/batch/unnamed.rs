//! Files made without a name (`O_TMPFILE`) and linked in whole: on a file system in memory
//! ([`super::in_memory`]), a received file needs no hidden name to make, lock and rename
//! away. Both receivers use them there for small files: the client for downloads sent ahead,
//! the server for uploads held in memory. Not on a disk: a file linked in after its flush is
//! not sure to be whole after a power cut unless it is flushed again, where a named one
//! renamed is.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::{Errno, Result};

/// A new file without a name on the file system of the directory `dir`, or why not.
pub fn make(dir: impl AsFd) -> Result<File> {
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    rustix::fs::openat(dir, ".", flags, Mode::from(0o644)).map(File::from)
}

/// Links the unnamed `file` into `dir` as `name`: by its handle (`AT_EMPTY_PATH`, allowed to
/// the process that opened it since Linux 6.10), else by `/proc/self/fd`, as older kernels
/// require of a process without `CAP_DAC_READ_SEARCH`.
pub fn link(file: &File, dir: impl AsFd, name: &OsStr) -> Result<()> {
    match rustix::fs::linkat(file, "", &dir, name, AtFlags::EMPTY_PATH) {
        Err(Errno::NOENT) => link_by_proc(file, dir, name),
        other => other,
    }
}

fn link_by_proc(file: &File, dir: impl AsFd, name: &OsStr) -> Result<()> {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let cwd = rustix::fs::CWD;
    rustix::fs::linkat(cwd, path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
}

/// Puts the unnamed `file` in `dir` as `leaf`, replacing what is there: linked in at once if
/// nothing is, else linked into `aside` (on the same file system) under a hidden name from
/// `hidden` and renamed over it. A hidden name found taken is passed over, a few times at most.
pub fn place(
    file: &File,
    (dir, leaf): (impl AsFd, &OsStr),
    aside: impl AsFd,
    hidden: &mut dyn FnMut() -> String,
) -> Result<()> {
    let mut outcome = link(file, &dir, leaf);
    for _ in 0..8 {
        if outcome != Err(Errno::EXIST) {
            break;
        }
        let name = hidden();
        outcome = link(file, &aside, OsStr::new(&name));
        if outcome.is_ok() {
            let placed = rustix::fs::renameat(&aside, name.as_str(), &dir, leaf);
            if placed.is_err() {
                let _ = rustix::fs::unlinkat(&aside, name.as_str(), AtFlags::empty());
            }
            return placed;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_file_without_a_name_is_linked_in_and_replaces_what_is_there() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let (top, aside) = (shm.path().join("top"), shm.path().join("aside"));
        std::fs::create_dir_all(&top).unwrap();
        std::fs::create_dir_all(&aside).unwrap();
        let (dir, aside_dir) = (File::open(&top).unwrap(), File::open(&aside).unwrap());
        let mut tried = 0;
        let mut hidden = || {
            tried += 1;
            // The first name tried is taken: the next is.
            format!("h{}", tried.min(3))
        };
        std::fs::write(aside.join("h1"), b"not mine").unwrap();
        for content in ["one", "two", "three"] {
            let before = std::fs::read_dir(&top).unwrap().count();
            let mut file = make(&dir).unwrap();
            file.write_all(content.as_bytes()).unwrap();
            assert_eq!(std::fs::read_dir(&top).unwrap().count(), before);
            place(&file, (&dir, OsStr::new("f")), &aside_dir, &mut hidden).unwrap();
            assert_eq!(std::fs::read(top.join("f")).unwrap(), content.as_bytes());
        }
        // The first over another passed `h1` over for `h2`; nothing is left aside.
        assert_eq!(tried, 3);
        let left: Vec<_> = std::fs::read_dir(&aside).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(std::fs::read(aside.join("h1")).unwrap(), b"not mine");
        // The way older kernels allow to an unprivileged process.
        let mut file = make(&dir).unwrap();
        file.write_all(b"by proc").unwrap();
        link_by_proc(&file, &dir, OsStr::new("g")).unwrap();
        assert_eq!(std::fs::read(top.join("g")).unwrap(), b"by proc");
    }
}
