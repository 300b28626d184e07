//! The hidden partial file a download is written to, beside its destination, and its commit:
//! made, renamed and removed through a handle to the destination's directory, the handle that
//! is then flushed. The files of a tree that land in one directory share that handle
//! ([`Dirs`]): opening the directory again for each, and asking it for its identity, cost three
//! system calls a file. On a file system in memory a small file sent ahead has no name at all
//! until it is placed ([`open_empty`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use ferry_core::Digest;
use ferry_core::batch::{Dir, unnamed};
use rustix::fs::{AtFlags, Mode, OFlags};

/// The directory the last download landed in, held open for the next ones that land there.
///
/// Only the last one is held: a tree's files come directory by directory. A directory renamed
/// while its files download takes the files that follow along, since they are made, renamed
/// and flushed through the handle rather than by path; the file then is where its directory is.
#[derive(Default)]
pub(crate) struct Dirs {
    last: Option<(PathBuf, Arc<Dir>)>,
}

impl Dirs {
    /// The directory that holds `dest`, open.
    pub fn of(&mut self, dest: &Path) -> io::Result<Arc<Dir>> {
        let at = parent(dest);
        if let Some((path, dir)) = &self.last
            && path.as_os_str() == at.as_os_str()
        {
            return Ok(Arc::clone(dir));
        }
        let dir = Arc::new(Dir::open(at)?);
        self.last = Some((at.to_path_buf(), Arc::clone(&dir)));
        Ok(dir)
    }
}

/// The hidden partial file's name for downloading `name` (a path's wire form) to `dest`:
/// named by a digest of both, so the name has a fixed length however long theirs are.
pub(crate) fn partial_name(name: &str, dest: &Path) -> String {
    let mut key = Digest::new();
    key.update(name.as_bytes());
    key.update(b"\0");
    key.update(dest.file_name().map_or(&b""[..], |n| n.as_encoded_bytes()));
    format!(".ferry-{}.part", key.hex())
}

/// Where a download lands, as one key however it was spelt (`./f` and `f`, an absolute path,
/// one through a link): its directory's device and inode, and its name. A second download
/// to the same file then finds the first one held ([`ferry_core::batch::Landing::lands_at`])
/// rather than its partial file locked. The directory's identity was learnt when it was
/// opened: no system call here.
pub(crate) fn landing_key(dir: &io::Result<Arc<Dir>>, dest: &Path) -> PathBuf {
    match (dir, dest.file_name()) {
        (Ok(dir), Some(leaf)) => {
            let (dev, ino) = dir.id();
            PathBuf::from(format!("{dev}:{ino}")).join(leaf)
        }
        _ => dest.to_path_buf(),
    }
}

pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the partial file when dropped, unless it is kept for resuming or renamed into place.
pub(crate) struct Partial {
    /// Its directory, which it is made in, renamed in and removed from.
    dir: Arc<Dir>,
    /// Its name there; `None` for a file made without one ([`open_empty`] on a file system in
    /// memory), which is linked in when placed and leaves nothing when dropped.
    name: Option<String>,
    pub file: File,
    keep: bool,
    /// Made by this download, so empty: there is nothing to look at or cut.
    pub made: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(name) = self.name.as_deref().filter(|_| !self.keep) {
            let _ = rustix::fs::unlinkat(self.dir.file(), name, AtFlags::empty());
        }
    }
}

impl Partial {
    /// Keeps what was received for `DOWNLOAD -c` of `name` (a path's wire form) to `dest`,
    /// under the partial file's name, and says whether it could. A file made without a name
    /// is linked in under it, unless that name is taken (a part kept before, or one that
    /// another download is writing): then what it holds is lost, as it is only what was sent
    /// ahead, at most [`ferry_core::AHEAD_MAX`].
    pub fn keep(&mut self, name: &str, dest: &Path) -> bool {
        if self.name.is_none() {
            let named = partial_name(name, dest);
            if unnamed::link(&self.file, self.dir.file(), OsStr::new(&named)).is_err() {
                return false;
            }
            self.name = Some(named);
        }
        self.keep = true;
        true
    }
}

/// Puts the unnamed `file` in `dir` as `leaf`, replacing what is there (see
/// [`unnamed::place`]): a file already there is replaced by way of a hidden name beside it,
/// new to this process (its id and a count).
fn link_over(file: &File, dir: &Dir, leaf: &OsStr) -> rustix::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TRIED: AtomicU64 = AtomicU64::new(0);
    let mut hidden = || {
        let mut key = Digest::new();
        let tried = TRIED.fetch_add(1, Ordering::Relaxed);
        key.update(format!("{} {tried}", std::process::id()).as_bytes());
        format!(".ferry-{}.part", key.hex())
    };
    unnamed::place(file, (dir.file(), leaf), dir.file(), &mut hidden)
}

/// Opens (creating) the partial file for `dest` in its directory `dir`, locked so that two
/// downloads to one destination cannot interleave.
///
/// The lock is taken on the file opened, which may have been renamed into place or removed by
/// the download that held it by the time the lock is ours: the file must then still be the
/// one at the partial file's name, or this one would write into the other's finished file.
/// If not, the name is opened again.
pub(crate) fn open_partial(
    name: &str,
    dest: &Path,
    dir: io::Result<Arc<Dir>>,
) -> anyhow::Result<Partial> {
    let cannot = || format!("cannot write in '{}'", parent(dest).display());
    let dir = dir.with_context(cannot)?;
    let name = partial_name(name, dest);
    // Each try that loses the name means another download finished in between: a few are
    // plenty unless the destination is being downloaded to in a loop.
    for _ in 0..8 {
        let (made, file) = open_locked(&dir, &name).with_context(cannot)?;
        let file = match file {
            Some(file) => file,
            None => {
                // Not ours to remove: the other download owns it.
                return Err(anyhow!(
                    "another download to '{}' is in progress",
                    dest.display()
                ));
            }
        };
        if is_at(&file, &dir, &name)? {
            return Ok(Partial {
                dir,
                name: Some(name),
                file,
                keep: false,
                made,
            });
        }
    }
    Err(anyhow!(
        "another download to '{}' keeps replacing its partial file",
        dest.display()
    ))
}

/// Opens, creating, the file `name` in `dir` and takes its lock; whether it was made here,
/// and the file, or `None` when another holds the lock.
fn open_locked(dir: &Dir, name: &str) -> io::Result<(bool, Option<File>)> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |flags| rustix::fs::openat(dir.file(), name, flags, Mode::from(0o644));
    // Made here, it is empty; one already there is emptied or resumed once it is locked.
    let (made, file) = match open(flags | OFlags::EXCL) {
        Ok(fd) => (true, fd),
        Err(rustix::io::Errno::EXIST) => (false, open(flags)?),
        Err(e) => return Err(e.into()),
    };
    let file = File::from(file);
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok((made, Some(file))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok((made, None)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `file` is still the file named `name` in `dir`.
fn is_at(file: &File, dir: &Dir, name: &str) -> io::Result<bool> {
    let held = rustix::fs::fstat(file)?;
    match rustix::fs::statat(dir.file(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) => Ok((now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Opens the partial file for `dest` as [`open_partial`] does, emptied, for a download sent
/// ahead: its directory `dir` was opened when the request went, and if it was missing then,
/// it is looked for again, since it may have been made since.
///
/// A file of `size` bytes, at most [`ferry_core::AHEAD_MAX`], on a file system in memory is
/// made without a name (`O_TMPFILE`) and linked in when placed: no name to make, lock and
/// rename away, about a sixth of a small download's CPU (docs/PERFORMANCE.md). Only there: on
/// a disk, a file linked in after its flush may not be whole after a power cut unless it is
/// flushed again, where a named one renamed is. Only then: a larger one (a script may send
/// any download ahead) keeps its locked name, which tells a second download to the same place
/// that it is not alone, and what it holds is kept for `DOWNLOAD -c` if it is cut.
pub(crate) fn open_empty(
    name: &str,
    (dest, size): (&Path, u64),
    dir: io::Result<Arc<Dir>>,
) -> anyhow::Result<Partial> {
    let dir = dir.or_else(|_| Dirs::default().of(dest));
    if let Ok(dir) = &dir
        && size <= ferry_core::AHEAD_MAX
        && dir.in_memory()
    {
        if let Ok(file) = unnamed::make(dir.file()) {
            return Ok(Partial {
                dir: Arc::clone(dir),
                name: None,
                file,
                keep: false,
                made: true,
            });
        }
    }
    let part = open_partial(name, dest, dir)?;
    if !part.made {
        part.file.set_len(0)?;
    }
    Ok(part)
}

/// A file received whole into its partial file, to be renamed to its destination.
pub(crate) struct Landing {
    pub part: Partial,
    pub dest: PathBuf,
}

impl ferry_core::Pending for Landing {
    /// Starts writeback without waiting (see the server's uploads, `local/temp.rs`): the
    /// blocks of every file in a group are then allocated in one journal transaction.
    fn start(&mut self) {
        if !self.part.dir.in_memory() {
            let _ = rustix::fs::fadvise(&self.part.file, 0, None, rustix::fs::Advice::DontNeed);
        }
    }

    /// In memory there is nothing to flush to: two system calls a file saved.
    fn flush(&mut self) -> io::Result<()> {
        if self.part.dir.in_memory() {
            return Ok(());
        }
        self.part.file.sync_data()
    }

    /// Renames the partial file over the destination, within the directory it was made in,
    /// and hands that directory on to be flushed.
    fn place(mut self: Box<Self>) -> io::Result<Option<Arc<Dir>>> {
        let cannot = |e: io::Error| {
            let why = format!("cannot replace '{}': {e}", self.dest.display());
            io::Error::new(e.kind(), why)
        };
        let leaf = self.dest.file_name().ok_or_else(|| {
            cannot(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let dir = &self.part.dir;
        let placed = match &self.part.name {
            Some(name) => rustix::fs::renameat(dir.file(), name.as_str(), dir.file(), leaf),
            None => link_over(&self.part.file, dir, leaf),
        };
        placed.map_err(|e| cannot(e.into()))?;
        self.part.keep = true;
        Ok(Some(Arc::clone(&self.part.dir)))
    }

    fn waits(&self) -> bool {
        !self.part.dir.in_memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_file_has_a_fixed_length_name_of_the_path_and_the_destination() {
        let long = "é".repeat(127);
        for (name, dest) in [
            ("a", "dir/a"),
            (long.as_str(), "dir/other"),
            ("a", "plain"),
            ("..x", "/abs/dir/y"),
        ] {
            let file = partial_name(name, Path::new(dest));
            assert!(
                file.starts_with(".ferry-") && file.ends_with(".part"),
                "{file}"
            );
            assert_eq!(file.len(), ".ferry-".len() + 32 + ".part".len());
        }
        assert_ne!(
            partial_name("a", Path::new("x")),
            partial_name("b", Path::new("x"))
        );
        assert_eq!(parent(Path::new("plain")), Path::new("."));
    }

    #[test]
    fn a_lock_won_on_a_partial_file_since_placed_is_given_up_for_a_new_one() {
        let top = std::env::temp_dir().join(format!("ferry-lockrace-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap();
        let dest = top.join("f");
        let dir = Arc::new(Dir::open(&top).unwrap());
        let name = partial_name("f", &dest);
        // One download holds the partial file; a second opened it too, and awaits its lock.
        let (made, first) = open_locked(&dir, &name).unwrap();
        assert!(made && first.is_some());
        let late = File::open(top.join(&name)).unwrap();
        // The first places it and lets go: the second then wins a lock on the placed file.
        std::fs::rename(top.join(&name), &dest).unwrap();
        drop(first);
        rustix::fs::flock(&late, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        assert!(!is_at(&late, &dir, &name).unwrap());
        let part = open_partial("f", &dest, Ok(Arc::clone(&dir))).unwrap();
        assert!(part.made && is_at(&part.file, &dir, &name).unwrap());
        drop(part);
        std::fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn the_files_of_one_directory_share_its_handle_and_its_key() {
        let top = std::env::temp_dir().join(format!("ferry-dirs-{}", std::process::id()));
        let (a, b) = (top.join("a b"), top.join("é\nc"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut dirs = Dirs::default();
        let first = dirs.of(&a.join("1")).unwrap();
        assert!(Arc::ptr_eq(&first, &dirs.of(&a.join("2")).unwrap()));
        let other = dirs.of(&b.join("1")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        let key = |dir: Arc<Dir>, dest: &Path| landing_key(&Ok(dir), dest);
        assert_eq!(
            key(first, &a.join("1")),
            key(Dir::open(&a).unwrap().into(), &a.join("1"))
        );
        assert_ne!(
            key(other, &b.join("1")),
            landing_key(&Ok(dirs.of(&a.join("3")).unwrap()), &a.join("1"))
        );
        assert!(dirs.of(&top.join("missing/1")).is_err());
        std::fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn in_memory_a_file_sent_ahead_has_no_name_until_it_is_placed_or_kept() {
        use ferry_core::Pending;
        use std::io::Write;
        let top = Path::new("/dev/shm").join(format!("ferry-unnamed-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap();
        let dest = top.join("f");
        let names = || {
            let mut names: Vec<_> = std::fs::read_dir(&top)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let open = |content: &str| {
            let before = names();
            let mut part = open_empty("f", (&dest, 3), Dirs::default().of(&dest)).unwrap();
            assert!(part.name.is_none() && part.made);
            part.file.write_all(content.as_bytes()).unwrap();
            assert_eq!(names(), before);
            part
        };
        // Linked in where nothing is; over what is there, replacing it.
        for content in ["one", "two"] {
            let part = open(content);
            Box::new(Landing {
                part,
                dest: dest.clone(),
            })
            .place()
            .unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), content.as_bytes());
            assert_eq!(names(), ["f"]);
        }
        // Dropped, it leaves nothing; kept, it takes the partial file's name, once.
        drop(open("lost"));
        assert_eq!(names(), ["f"]);
        let mut cut = open("cut");
        assert!(cut.keep("f", &dest));
        let mut again = open("again");
        assert!(!again.keep("f", &dest));
        drop((cut, again));
        let kept = partial_name("f", &dest);
        assert_eq!(names(), [kept.as_str(), "f"]);
        assert_eq!(std::fs::read(top.join(&kept)).unwrap(), b"cut");
        // A larger file has its locked name from the start, even in memory.
        std::fs::remove_file(top.join(&kept)).unwrap();
        let large = ferry_core::AHEAD_MAX + 1;
        let part = open_empty("f", (&dest, large), Dirs::default().of(&dest)).unwrap();
        assert_eq!(part.name.as_deref(), Some(kept.as_str()));
        assert!(open_empty("f", (&dest, large), Dirs::default().of(&dest)).is_err());
        drop(part);
        std::fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn a_directory_renamed_while_its_files_download_takes_them_along() {
        use ferry_core::Pending;
        use std::io::Write;
        let top = std::env::temp_dir().join(format!("ferry-moved-{}", std::process::id()));
        let (was, now) = (top.join("was"), top.join("now"));
        std::fs::create_dir_all(&was).unwrap();
        let mut dirs = Dirs::default();
        let land = |dirs: &mut Dirs, leaf: &str| {
            let dest = was.join(leaf);
            let mut part = open_partial(leaf, &dest, dirs.of(&dest)).unwrap();
            assert!(part.made);
            part.file.write_all(leaf.as_bytes()).unwrap();
            Box::new(Landing { part, dest })
        };
        let first = land(&mut dirs, "a");
        std::fs::rename(&was, &now).unwrap();
        let second = land(&mut dirs, "b");
        let dir = first.place().unwrap().unwrap();
        assert_eq!(dir.id(), Dir::open(&now).unwrap().id());
        second.place().unwrap();
        for leaf in ["a", "b"] {
            assert_eq!(std::fs::read(now.join(leaf)).unwrap(), leaf.as_bytes());
        }
        // Dropped unplaced, a partial file is removed from where its directory went.
        drop(land(&mut dirs, "c"));
        let left: Vec<_> = std::fs::read_dir(&now)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!was.exists());
        std::fs::remove_dir_all(&top).unwrap();
    }
}
