//! [`Root`]: the served directory's handles, checked before each use, so that a root deleted
//! while the server runs (or replaced: deleted and made again) is noticed, and served again
//! once it is back.
//!
//! A handle alone would go on reading a deleted directory: empty, every create failing. So each
//! operation first checks that the held root still has a link (`st_nlink > 0`, one `fstat`).
//! While it has, it is served wherever it was moved: a path swapped for another directory or a
//! link never redirects the server (confinement rests on that). Once it is deleted, the
//! directory now at the root's path (a real one: a link there is not followed) is opened and
//! served from then on; with none there, requests get `unavailable` until one is back. Each
//! change is logged once.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use ferry_core::{ErrorKind, Failure};

use super::PARTIAL_DIR;
use crate::log;

/// The open root and its hidden directory.
#[derive(Debug)]
pub struct Handles {
    /// The root.
    pub dir: Arc<OwnedFd>,
    /// The hidden directory inside it.
    pub partial: Arc<OwnedFd>,
}

impl Handles {
    /// Opens the directory at `path` (canonical: a symbolic link there now is not followed)
    /// and its hidden directory, creating that.
    fn open(path: &Path) -> io::Result<Handles> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::open(path, flags, Mode::empty())?;
        let partial = open_partial_dir(&dir)?;
        Ok(Handles {
            dir: Arc::new(dir),
            partial: Arc::new(partial),
        })
    }
}

/// The served directory, by path and by handle.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    current: RwLock<Arc<Handles>>,
    /// Set while the root is gone, so that the loss is logged once.
    lost: AtomicBool,
    /// Held while a deleted root is opened again, so that one thread does it.
    reopening: Mutex<()>,
}

impl Root {
    /// Opens (creating if needed) the root at `dir`.
    pub fn open(dir: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(dir)?;
        let path = dir.canonicalize()?;
        let handles = Handles::open(&path)?;
        Ok(Root {
            path,
            current: RwLock::new(Arc::new(handles)),
            lost: AtomicBool::new(false),
            reopening: Mutex::new(()),
        })
    }

    /// The root's canonical path, for messages and for finding it again.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handles to use now: the held ones while their directory exists (wherever it has
    /// been moved), else those of a directory now at the root's path, else `unavailable`.
    pub fn handles(&self) -> Result<Arc<Handles>, Failure> {
        let held = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        if rustix::fs::fstat(held.dir.as_ref()).is_ok_and(|st| st.st_nlink > 0) {
            return Ok(held);
        }
        let _reopening = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        let current = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        if !Arc::ptr_eq(&current, &held) {
            // Another thread has just opened the new one.
            return Ok(current);
        }
        match Handles::open(&self.path) {
            Ok(handles) => {
                let handles = Arc::new(handles);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&handles);
                self.lost.store(false, Ordering::Relaxed);
                log(format_args!(
                    "root '{}' was deleted and is back: serving the directory now there",
                    self.path.display()
                ));
                Ok(handles)
            }
            Err(e) => {
                if !self.lost.swap(true, Ordering::Relaxed) {
                    log(format_args!(
                        "root '{}' was deleted ({e}): requests fail until a directory is back",
                        self.path.display()
                    ));
                }
                Err(gone())
            }
        }
    }
}

/// The answer while the root is missing.
pub fn gone() -> Failure {
    Failure::new(
        ErrorKind::Unavailable,
        "the server's root directory is gone; try again once it is back",
    )
}

/// Opens the hidden directory, creating it; anything else of that name (a planted symbolic
/// link, a file) is removed first, so that temporaries never land outside the root.
fn open_partial_dir(dir: &OwnedFd) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..2 {
        match rustix::fs::mkdirat(dir, PARTIAL_DIR, Mode::from(0o700)) {
            // EROFS: a read-only root may still hold the directory, and be served for reading.
            Ok(()) | Err(Errno::EXIST) | Err(Errno::ROFS) => {}
            Err(e) => return Err(e.into()),
        }
        match rustix::fs::openat(dir, PARTIAL_DIR, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                rustix::fs::unlinkat(dir, PARTIAL_DIR, AtFlags::empty())?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!(
        "cannot make '{PARTIAL_DIR}' a directory"
    )))
}
