//! [`Root`]: the server's directory, seen only through single-component names.
//!
//! Every name is checked by [`crate::name::validate`] before the filesystem is touched, so a
//! path can never leave the root. Files are opened with `O_NOFOLLOW`, so a symbolic link planted
//! in the root is never followed; `rename` and `unlink` act on the link itself, never its target.
//! Uploads are written to temporaries in [`PARTIAL_DIR`], which no verb can name, and renamed
//! into place only when complete.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tempfile::NamedTempFile;

use crate::error::{ErrorKind, Failure};
use crate::name;

/// The directory inside the root that holds uploads in progress; reserved, never listed.
pub const PARTIAL_DIR: &str = ".ferry-partial";

/// One file as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file's name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
}

/// The server's file root.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    partial: PathBuf,
}

impl Root {
    /// Opens (creating if needed) the root at `dir`, and removes temporaries left by an earlier
    /// run; returns how many it removed.
    pub fn open(dir: &Path) -> io::Result<(Root, usize)> {
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let partial = dir.join(PARTIAL_DIR);
        let stale = fs::read_dir(&partial).map_or(0, Iterator::count);
        match fs::remove_dir_all(&partial) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        fs::create_dir(&partial)?;
        Ok((Root { dir, partial }, stale))
    }

    /// The root's canonical path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Checks a remote name, including the reserved one.
    pub fn check<'n>(&self, name: &'n str) -> Result<&'n str, Failure> {
        let name = name::validate(name)?;
        if name == PARTIAL_DIR {
            return Err(Failure::new(
                ErrorKind::BadName,
                format!("name '{name}' is reserved"),
            ));
        }
        Ok(name)
    }

    /// Opens a regular file for reading, never following a symbolic link.
    pub fn open_file(&self, name: &str) -> Result<(File, Metadata), Failure> {
        let name = self.check(name)?;
        let file = OpenOptions::new()
            .read(true)
            // O_NONBLOCK: a FIFO planted in the root must not hang the client's thread.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.dir.join(name))
            .map_err(|e| Failure::io(name, &e))?;
        let meta = file.metadata().map_err(|e| Failure::io(name, &e))?;
        if !meta.is_file() {
            return Err(Failure::new(
                ErrorKind::NotFound,
                format!("'{}' is not a regular file", name::escape(name)),
            ));
        }
        Ok((file, meta))
    }

    /// Creates a hidden temporary for an upload.
    pub fn create_temp(&self) -> Result<NamedTempFile, Failure> {
        tempfile::Builder::new()
            .prefix("up-")
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(&self.partial)
            .map_err(|e| Failure::io("temporary file", &e))
    }

    /// Renames a complete temporary into place as `name`, atomically replacing any old file.
    pub fn commit(&self, temp: NamedTempFile, name: &str) -> Result<(), Failure> {
        let name = self.check(name)?;
        temp.persist(self.dir.join(name))
            .map(drop)
            .map_err(|e| Failure::io(name, &e.error))
    }

    /// Deletes a regular file (a symbolic link is refused, never followed).
    pub fn delete(&self, name: &str) -> Result<(), Failure> {
        let name = self.check(name)?;
        let path = self.dir.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|e| Failure::io(name, &e))?;
        if !meta.is_file() {
            return Err(Failure::new(
                ErrorKind::NotFound,
                format!("'{}' is not a regular file", name::escape(name)),
            ));
        }
        fs::remove_file(&path).map_err(|e| Failure::io(name, &e))
    }

    /// The regular files in the root, sorted by name; links, directories and names that break
    /// the rules are left out.
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.dir)? {
            let dirent = dirent?;
            let Ok(name) = dirent.file_name().into_string() else {
                continue;
            };
            if self.check(&name).is_err() {
                continue;
            }
            // DirEntry::metadata does not follow symbolic links.
            let Ok(meta) = dirent.metadata() else {
                continue;
            };
            if meta.is_file() {
                entries.push(Entry {
                    name,
                    size: meta.len(),
                    mtime: mtime(&meta),
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// Modification time in whole seconds since the epoch (0 if unavailable or earlier).
pub fn mtime(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let (root, _) = Root::open(&dir.path().join("data")).unwrap();
        (dir, root)
    }

    #[test]
    fn upload_commit_list_delete() {
        let (_d, root) = root();
        let mut temp = root.create_temp().unwrap();
        temp.write_all(b"hello").unwrap();
        assert!(root.list().unwrap().is_empty(), "a temporary is invisible");
        root.commit(temp, "a b ✓").unwrap();
        let list = root.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].name.as_str(), list[0].size), ("a b ✓", 5));
        assert_eq!(root.open_file("a b ✓").unwrap().1.len(), 5);
        root.delete("a b ✓").unwrap();
        assert_eq!(root.delete("a b ✓").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (d, root) = root();
        let outside = d.path().join("secret");
        fs::write(&outside, b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("link")).unwrap();
        let err = root.open_file("link").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
        assert!(root.delete("link").is_err());
        assert!(root.list().unwrap().is_empty());
        let mut temp = root.create_temp().unwrap();
        temp.write_all(b"new").unwrap();
        root.commit(temp, "link").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"secret", "target untouched");
    }

    #[test]
    fn reserved_and_bad_names_are_refused_before_the_filesystem() {
        let (_d, root) = root();
        for bad in [PARTIAL_DIR, "..", "../x", "/etc/passwd", "a/b"] {
            assert_eq!(root.open_file(bad).unwrap_err().kind, ErrorKind::BadName);
            assert_eq!(root.delete(bad).unwrap_err().kind, ErrorKind::BadName);
        }
    }

    #[test]
    fn stale_temporaries_are_removed_at_open() {
        let (d, root) = root();
        let temp = root.create_temp().unwrap();
        let (_, path) = temp.keep().unwrap();
        let (_, stale) = Root::open(&d.path().join("data")).unwrap();
        assert_eq!(stale, 1);
        assert!(!path.exists());
    }
}
