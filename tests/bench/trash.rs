//! Where the bench puts the files and trees it is done with: on tmpfs they are removed at
//! once; on any other file system they are moved aside, to go with the bench's directory at
//! the end of the run, so that no timed run creates files just after thousands were removed.
//!
//! Why: ext4 without a journal (this machine's root disk has none) will not reuse an inode
//! freed in the last minute (five, while its inode table block is unwritten), and checks each
//! free inode of the block group for it, from the group's first, every time it allocates one.
//! After a removal of thousands, every file created in that group pays for a walk past them:
//! a Python loop there created 1,000 files at 31,000 a second in a fresh place and at 2,100-
//! 3,600 right after 3,000 were removed. Every contender pays the same time a file, which
//! hides the fast one's lead (docs/PERFORMANCE.md, "Creating files after removing files").
//! On tmpfs a removal costs the next writer nothing, and the pages it frees are ready for it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_tests::on_tmpfs;

/// The bench's bin for files and trees: see the module's documentation.
#[derive(Clone)]
pub struct Trash {
    /// Where removed paths are moved, `None`: removed at once.
    aside: Option<PathBuf>,
    /// The name of the next path moved aside.
    next: Arc<AtomicUsize>,
}

impl Trash {
    /// The trash of a bench whose directory is `bench_dir`: moved aside below it, unless it is
    /// on tmpfs.
    pub fn new(bench_dir: &Path) -> io::Result<Trash> {
        let aside = match on_tmpfs(bench_dir)? {
            true => None,
            false => Some(bench_dir.join("trash")),
        };
        Ok(Trash::with(aside))
    }

    /// A trash that removes at once.
    pub fn immediate() -> Trash {
        Trash::with(None)
    }

    /// A trash that moves what it is given into `aside` (made when first needed), which must
    /// be on the same file system.
    pub fn with(aside: Option<PathBuf>) -> Trash {
        Trash {
            aside,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes the file or tree at `path` away, if there is one.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            meta => meta?,
        };
        if let Some(aside) = &self.aside {
            fs::create_dir_all(aside)?;
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            return fs::rename(path, aside.join(n.to_string()));
        }
        match meta.is_dir() {
            true => fs::remove_dir_all(path),
            false => fs::remove_file(path),
        }
    }

    /// Takes the directory at `path` away, if there is one, and makes a new empty one there.
    pub fn renew_dir(&self, path: &Path) -> io::Result<()> {
        self.remove(path)?;
        fs::create_dir_all(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file and a tree at `dir`, under awkward names.
    fn some_paths(dir: &Path) -> [PathBuf; 2] {
        let (file, tree) = (dir.join("a file"), dir.join("tr\u{e9}e"));
        fs::create_dir_all(tree.join("d")).unwrap();
        fs::write(tree.join("d/f"), b"two").unwrap();
        fs::write(&file, b"one").unwrap();
        [file, tree]
    }

    #[test]
    fn moved_aside_nothing_is_freed_and_each_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let aside = dir.path().join("trash");
        let trash = Trash::with(Some(aside.clone()));
        let paths = some_paths(dir.path());
        let inodes: Vec<u64> = paths.iter().map(|p| inode(p)).collect();
        for path in &paths {
            trash.remove(path).unwrap();
            trash.remove(path).unwrap();
            assert!(!path.exists());
        }
        let mut kept: Vec<u64> = fs::read_dir(&aside)
            .unwrap()
            .map(|e| inode(&e.unwrap().path()))
            .collect();
        kept.sort();
        let mut expected = inodes;
        expected.sort();
        assert_eq!(kept, expected, "the same files, moved, not copies");
        assert_eq!(fs::read(aside.join("1/d/f")).unwrap(), b"two");
    }

    #[test]
    fn an_immediate_trash_removes_files_and_trees_and_renews_directories() {
        let dir = tempfile::tempdir().unwrap();
        let trash = Trash::immediate();
        for path in some_paths(dir.path()) {
            trash.remove(&path).unwrap();
            trash.remove(&path).unwrap();
        }
        let fresh = dir.path().join("fresh");
        Trash::with(Some(dir.path().join("aside")))
            .renew_dir(&fresh)
            .unwrap();
        fs::write(fresh.join("x"), b"x").unwrap();
        trash.renew_dir(&fresh).unwrap();
        assert_eq!(fs::read_dir(&fresh).unwrap().count(), 0);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the renewed directory is left");
    }

    #[test]
    fn the_bench_on_tmpfs_removes_at_once() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        assert!(Trash::new(dir.path()).unwrap().aside.is_none());
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).unwrap().ino()
    }
}
