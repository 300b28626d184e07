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
}

/// The digest kept with `file`, if there is one and the file has not changed since.
pub fn kept(file: &File) -> Option<String> {
    let mut value = [0u8; MAX_VALUE];
    let len = rustix::fs::fgetxattr(file, ATTRIBUTE, &mut value).ok()?;
    let value = std::str::from_utf8(&value[..len]).ok()?;
    let (key, digest) = parse(value)?;
    (Key::of(file)? == key).then_some(digest)
}

/// Keeps `digest` with `file`, as the digest of its content when it had size and time `key`
/// (taken before the content was read): if the file has changed since, nothing is kept.
/// Failures (no attributes on this file system, no room) only mean a later STAT reads it.
fn keep(file: &File, key: Key, digest: &Digest) {
    if Key::of(file) != Some(key) {
        return;
    }
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
pub fn keep_now(file: &File, digest: &Digest) {
    if let Some(key) = Key::of(file) {
        keep(file, key, digest);
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
    pub fn new(file: File) -> Held {
        let opened = Key::of(&file);
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
        kept(&self.file)
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

    #[test]
    fn a_kept_digest_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"content").unwrap();
        let held = Held::new(File::open(&path).unwrap());
        assert_eq!(held.kept_digest(), None);
        let mut digest = Digest::new();
        digest.update(b"content");
        held.keep_digest(&digest);
        assert_eq!(held.kept_digest(), Some(digest.hex()));
        // Written behind the server's back: the time moves, the digest no longer holds.
        std::fs::write(&path, b"CONTENT").unwrap();
        assert_eq!(Held::new(File::open(&path).unwrap()).kept_digest(), None);
    }

    #[test]
    fn a_file_changed_while_it_was_read_keeps_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"old").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let held = Held::new(File::open(&path).unwrap());
        std::fs::write(&path, b"new").unwrap();
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
