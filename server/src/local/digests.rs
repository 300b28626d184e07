//! Each file's digest, kept with the file in an extended attribute, so that STAT answers
//! without reading the file.
//!
//! The attribute `user.ferry.digest` holds `1 <size> <mtime seconds>.<nanoseconds> xxh3-128
//! <digest>`: the digest is valid while the file's size and modification time are still
//! those. Any write through the file system changes the modification time, so a file changed
//! behind the server's back is hashed afresh; one changed in place with its size and time
//! both put back keeps its old digest (PROTOCOL.md says what that means). Where the file
//! system has no user attributes, or refuses them, nothing is kept and every STAT reads the
//! whole file, as it would without this.
//!
//! Only files of [`KEEP_FROM`] bytes or more keep one: a smaller file is read as fast as its
//! attribute would be, and keeping none spares each small upload and download the system
//! calls and the metadata write.

use std::fs::File;
use std::io::{self, Read, Seek};

use rustix::fs::{Stat, XattrFlags};

use ferry_core::digest::Digest;
use ferry_core::store::Source;

/// The attribute's name.
const ATTRIBUTE: &str = "user.ferry.digest";
/// Its layout's version, the value's first word.
const VERSION: &str = "1";
/// Longer than any value this module writes.
const MAX_VALUE: usize = 128;
/// The smallest file that keeps its digest.
pub const KEEP_FROM: u64 = 1 << 20;

/// What must not have changed for a kept digest to hold: size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    size: i64,
    secs: i64,
    nanos: i64,
}

impl Key {
    fn of(file: &File) -> Option<Key> {
        rustix::fs::fstat(file)
            .ok()
            .map(|stat| Key::from_stat(&stat))
    }

    fn from_stat(stat: &Stat) -> Key {
        Key {
            size: stat.st_size,
            secs: stat.st_mtime,
            nanos: stat.st_mtime_nsec as i64,
        }
    }

    fn from_metadata(meta: &std::fs::Metadata) -> Key {
        use std::os::unix::fs::MetadataExt;
        Key {
            size: meta.size() as i64,
            secs: meta.mtime(),
            nanos: meta.mtime_nsec(),
        }
    }

    /// Whether a file of this size keeps its digest.
    fn keeps(self) -> bool {
        u64::try_from(self.size).is_ok_and(|size| size >= KEEP_FROM)
    }
}

/// The digest kept with `file`, if there is one and the file has not changed since.
pub fn kept(file: &File) -> Option<String> {
    let mut value = [0u8; MAX_VALUE];
    let len = rustix::fs::fgetxattr(file, ATTRIBUTE, &mut value).ok()?;
    let value = std::str::from_utf8(&value[..len]).ok()?;
    let (key, digest) = parse(value)?;
    (Key::of(file)? == key).then_some(digest)
}

/// Whether `key` (size and time when the file was opened) says there may be a digest kept.
fn may_keep(key: Option<Key>) -> bool {
    key.is_some_and(Key::keeps)
}

/// Keeps `digest` with `file`, as the digest of its content when it had size and time `key`
/// (taken before the content was read): if the file has changed since, nothing is kept.
/// Failures (no attributes on this file system, no room) only mean a later STAT reads it.
fn keep(file: &File, key: Key, digest: &Digest) {
    if key.keeps() && Key::of(file) == Some(key) {
        store(file, key, digest);
    }
}

/// Writes the attribute: `digest` for the file as it is with size and time `key`.
fn store(file: &File, key: Key, digest: &Digest) {
    let value = format!(
        "{VERSION} {} {}.{:09} xxh3-128 {}",
        key.size,
        key.secs,
        key.nanos,
        digest.hex()
    );
    let _ = rustix::fs::fsetxattr(file, ATTRIBUTE, value.as_bytes(), XattrFlags::empty());
}

/// Keeps `digest`, that of everything `file` holds now (an upload about to be committed).
/// `len`, its length if known: a file known to be too small to keep one is not asked for its
/// size and time, one system call saved per small upload.
pub fn keep_now(file: &File, len: Option<u64>, digest: &Digest) {
    if len.is_some_and(|len| len < KEEP_FROM) {
        return;
    }
    if let Some(key) = Key::of(file).filter(|k| k.keeps()) {
        store(file, key, digest);
    }
}

fn parse(value: &str) -> Option<(Key, String)> {
    let words: Vec<&str> = value.split(' ').collect();
    let [VERSION, size, time, "xxh3-128", digest] = words[..] else {
        return None;
    };
    let (secs, nanos) = time.split_once('.')?;
    let key = Key {
        size: size.parse().ok()?,
        secs: secs.parse().ok()?,
        nanos: nanos.parse().ok()?,
    };
    let hex = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| (key, digest.to_ascii_lowercase()))
}

/// A file opened for reading that knows its kept digest: what [`LocalStore::open`] returns.
///
/// [`LocalStore::open`]: ferry_core::store::Store::open
pub struct Held {
    file: File,
    /// The size and time when it was opened, before anything was read.
    opened: Option<Key>,
}

impl Held {
    /// `file`, whose metadata `meta` was read when it was opened.
    pub fn new(file: File, meta: &std::fs::Metadata) -> Held {
        let opened = Some(Key::from_metadata(meta));
        Held { file, opened }
    }
}

impl Read for Held {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for Held {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Source for Held {
    fn kept_digest(&self) -> Option<String> {
        may_keep(self.opened).then(|| kept(&self.file)).flatten()
    }

    fn keep_digest(&self, digest: &Digest) {
        if let Some(opened) = self.opened {
            keep(&self.file, opened, digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(path: &std::path::Path) -> Held {
        let file = File::open(path).unwrap();
        let meta = file.metadata().unwrap();
        Held::new(file, &meta)
    }

    #[test]
    fn a_kept_digest_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content = vec![b'c'; KEEP_FROM as usize];
        std::fs::write(&path, &content).unwrap();
        let held = opened(&path);
        assert_eq!(held.kept_digest(), None);
        let mut digest = Digest::new();
        digest.update(&content);
        held.keep_digest(&digest);
        assert_eq!(held.kept_digest(), Some(digest.hex()));
        // Written behind the server's back: the time moves, the digest no longer holds.
        std::fs::write(&path, vec![b'C'; KEEP_FROM as usize]).unwrap();
        assert_eq!(opened(&path).kept_digest(), None);
        // A small file keeps none.
        let path = dir.path().join("small");
        std::fs::write(&path, b"small").unwrap();
        let small = opened(&path);
        small.keep_digest(&Digest::new());
        assert_eq!(
            rustix::fs::fgetxattr(&small.file, ATTRIBUTE, &mut [0; 128]).ok(),
            None
        );
    }

    #[test]
    fn a_file_changed_while_it_was_read_keeps_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'o'; KEEP_FROM as usize]).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let held = opened(&path);
        std::fs::write(&path, vec![b'n'; KEEP_FROM as usize]).unwrap();
        let mut digest = Digest::new();
        digest.update(b"old");
        held.keep_digest(&digest);
        assert_eq!(held.kept_digest(), None);
    }

    #[test]
    fn malformed_values_are_ignored() {
        for value in [
            "",
            "2 3 1.0 xxh3-128 00000000000000000000000000000000",
            "1 3 1 xxh3-128 00000000000000000000000000000000",
            "1 3 1.0 sha256 00000000000000000000000000000000",
            "1 3 1.0 xxh3-128 0000",
            "1 x 1.0 xxh3-128 00000000000000000000000000000000",
        ] {
            assert_eq!(parse(value), None, "{value}");
        }
        let good = parse("1 3 1.5 xxh3-128 0000000000000000000000000000000A").unwrap();
        assert_eq!(good.1, "0000000000000000000000000000000a");
    }
}
