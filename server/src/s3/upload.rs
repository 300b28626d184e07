//! [`ObjectUpload`]: an upload kept as chunk objects any node can read back, made an object
//! when committed; and [`Object`], a file read with ranged requests.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;

use opendal::Buffer;
use opendal::options::WriteOptions;

use ferry_core::digest::{ALGORITHM, Digest};
use ferry_core::store::{Source, Upload};
use ferry_core::{ErrorKind, Failure, RemotePath};

use super::S3Store;
use super::compose::Piece;
use super::kept::{self, Chunk};

/// The chunk size: what an upload holds in memory at most, besides OpenDAL's own buffers,
/// and the size of every kept chunk but the last (S3 wants parts of at least 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// The object metadata (`x-amz-meta-…`) that keeps a file's digest.
pub const DIGEST_META: &str = "ferry-digest";
/// Its layout's version, the value's first word: `1 <size> xxh3-128 <digest>`.
const VERSION: &str = "1";

/// An upload to an object. Its first [`PART_SIZE`] bytes stay in memory: a smaller file
/// goes in one request at the commit. Past that, each full chunk is written as a hidden
/// object as it fills (see [`kept`]), and the commit composes them into the object, which
/// shows only then. Dropped without a commit or a keep, its own objects are removed.
pub struct ObjectUpload<'s> {
    store: &'s S3Store,
    /// The path it was created for (relative to the root).
    path: String,
    /// The client sending it.
    owner: IpAddr,
    /// Its attempt's folder, its own chunks' and records' place.
    attempt: String,
    /// Whether its base record is written.
    based: bool,
    /// The full chunks it holds, resumed or its own, in order.
    chain: Vec<Chunk>,
    /// The next, being written.
    writing: Option<kept::Writing>,
    /// What follows them, not yet written.
    tail: Vec<u8>,
    /// Where reading it back has got to, and the chunk read last.
    read: u64,
    current: Option<(usize, Buffer)>,
    /// Whether it resumed a kept upload, whose objects a commit must clear.
    resumed: bool,
    /// Committed or kept: nothing of it to remove when dropped.
    ended: bool,
}

impl<'s> ObjectUpload<'s> {
    /// A new upload of `rel` for `owner`.
    pub(super) fn new(store: &'s S3Store, rel: &str, owner: IpAddr) -> ObjectUpload<'s> {
        ObjectUpload {
            store,
            path: rel.to_string(),
            owner,
            attempt: kept::attempt_dir(&kept::group_dir(rel), owner),
            based: false,
            chain: Vec::new(),
            writing: None,
            tail: Vec::new(),
            read: 0,
            current: None,
            resumed: false,
            ended: false,
        }
    }

    /// The upload of `rel` going on from the kept `chain`: a short last chunk is read back to
    /// be written again full, and the attempt's record is written at once, so that its base
    /// counts as in use.
    pub(super) fn resumed(
        store: &'s S3Store,
        rel: &str,
        owner: IpAddr,
        mut chain: Vec<Chunk>,
    ) -> io::Result<ObjectUpload<'s>> {
        let mut upload = ObjectUpload::new(store, rel, owner);
        upload.resumed = true;
        if chain.last().is_some_and(|c| c.size < PART_SIZE as u64) {
            let short = chain.pop().expect("a last chunk");
            upload.tail = store.read_chunk(&short)?.to_vec();
        }
        upload.chain = chain;
        upload.write_base()?;
        Ok(upload)
    }

    fn write_base(&mut self) -> io::Result<()> {
        let record = kept::base_record(&self.path, &self.chain);
        let key = format!("{}base", self.attempt);
        self.store.write_chunk(&key, Buffer::from(record))?;
        self.based = true;
        Ok(())
    }

    /// Starts writing the tail as the next chunk (full, unless the upload is being kept),
    /// once the one before is written.
    fn store_tail(&mut self) -> io::Result<()> {
        self.settle()?;
        if !self.based {
            self.write_base()?;
        }
        let key = kept::chunk_key(&self.attempt, self.chain.len());
        let bytes = std::mem::replace(&mut self.tail, Vec::with_capacity(PART_SIZE));
        self.writing = Some(self.store.start_chunk(&key, Buffer::from(bytes)));
        Ok(())
    }

    /// Waits for the chunk being written, which joins the chain.
    fn settle(&mut self) -> io::Result<()> {
        if let Some(writing) = self.writing.take() {
            let chunk = self.store.finish_chunk(writing)?;
            self.chain.push(chunk);
        }
        Ok(())
    }

    /// Removes the objects of its own attempt.
    fn remove_own(&mut self) -> io::Result<()> {
        if !self.based {
            return Ok(());
        }
        let own = self.chain.iter().map(|c| c.key.clone());
        let mut own: Vec<String> = own.filter(|k| k.starts_with(&self.attempt)).collect();
        if let Some(writing) = self.writing.take() {
            own.push(writing.key.clone());
            let _ = self.store.finish_chunk(writing);
        }
        self.based = false;
        let base = format!("{}base", self.attempt);
        self.store.delete_keys(own.into_iter().chain([base]))
    }

    /// Removes the objects of the path's older attempts (by their ids' time), and its own
    /// too when `own`, but none of its chain: what it resumed from, or older kept uploads it
    /// replaces. Newer attempts are another upload's. A racing upload whose chunks go fails
    /// its commit, whole.
    fn clear_older(&self, own: bool) -> io::Result<()> {
        let group = kept::group_dir(&self.path);
        let mine = self.attempt.trim_end_matches('/');
        let spare = |key: &str| !own && self.chain.iter().any(|c| c.key == key);
        let old = |key: &str| key < mine || (own && key.starts_with(&self.attempt));
        let mut gone = Vec::new();
        for group in self.store.groups(&group)?.into_values() {
            let keys = group.objects.into_iter().map(|o| o.chunk.key);
            gone.extend(keys.filter(|k| old(k) && !spare(k)));
        }
        self.store.delete_keys(gone)
    }

    /// Whether every chunk of its chain is still in the store with the ETag it had.
    fn chain_holds(&self) -> io::Result<bool> {
        let groups = self.store.groups(&kept::group_dir(&self.path))?;
        let listed: Vec<&Chunk> = groups
            .values()
            .flat_map(|g| g.objects.iter().map(|o| &o.chunk))
            .collect();
        Ok(self.chain.iter().all(|c| listed.contains(&c)))
    }

    fn size_now(&self) -> u64 {
        let writing = self.writing.as_ref().map_or(0, |w| w.size);
        self.chain.iter().map(|c| c.size).sum::<u64>() + writing + self.tail.len() as u64
    }

    /// Makes the object, with `value` as its digest metadata: one request for a small file,
    /// else a multipart upload composed of its chunks.
    fn make_object(&self, tail: Buffer, value: &str) -> io::Result<()> {
        let store = self.store;
        if self.chain.is_empty() {
            let options = WriteOptions {
                user_metadata: Some(HashMap::from([(
                    DIGEST_META.to_string(),
                    value.to_string(),
                )])),
                ..WriteOptions::default()
            };
            return store
                .op
                .write_options(&self.path, tail, options)
                .map(drop)
                .map_err(io::Error::other);
        }
        let keys: Vec<String> = self
            .chain
            .iter()
            .map(|c| store.settings.key(&c.key))
            .collect();
        let mut pieces: Vec<Piece<'_>> = keys
            .iter()
            .zip(&self.chain)
            .map(|(key, c)| Piece::Copy { key, etag: &c.etag })
            .collect();
        if !tail.is_empty() {
            pieces.push(Piece::Bytes(tail));
        }
        let key = store.settings.key(&self.path);
        store.raw.compose(&key, &pieces, &[(DIGEST_META, value)])
    }
}

impl Write for ObjectUpload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.ended {
            return Err(io::Error::other("upload already ended"));
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(PART_SIZE - self.tail.len());
            self.tail.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.tail.len() == PART_SIZE {
                self.store_tail()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads back what it holds, from the start (to rebuild the digest on resuming): each
/// chunk on condition that it is still the object written or listed.
impl Read for ObjectUpload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.settle()?;
        let chunks = self.chain.len();
        let index = (self.read / PART_SIZE as u64) as usize;
        let at = (self.read % PART_SIZE as u64) as usize;
        let n = if index < chunks {
            if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
                self.current = Some((index, self.store.read_chunk(&self.chain[index])?));
            }
            let bytes = &self.current.as_ref().expect("read just now").1;
            let n = buf.len().min(bytes.len() - at);
            buf[..n].copy_from_slice(&bytes.slice(at..at + n).to_bytes());
            n
        } else {
            let at = (self.read - (chunks * PART_SIZE) as u64) as usize;
            let rest = self.tail.get(at..).unwrap_or_default();
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        };
        self.read += n as u64;
        Ok(n)
    }
}

/// Only where it ends can be asked.
impl Seek for ObjectUpload<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::End(0) | SeekFrom::Current(0) => Ok(self.size_now()),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an upload to an object store only appends",
            )),
        }
    }
}

impl Upload for ObjectUpload<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size_now())
    }

    /// Starts again in a new attempt; what was kept of the path goes.
    fn restart(&mut self) -> io::Result<()> {
        self.remove_own()?;
        self.attempt = kept::attempt_dir(&kept::group_dir(&self.path), self.owner);
        self.based = false;
        self.chain.clear();
        self.tail.clear();
        self.current = None;
        self.read = 0;
        self.clear_older(false)
    }

    /// Makes the object, which replaces any old one in one step, with its digest as metadata;
    /// then removes the kept chunks. A chunk that changed since it was read or written fails
    /// the commit, whole, and nothing shows; what arrived is then kept for resuming. The modification time is the store's: an
    /// object's cannot be set.
    fn commit(
        mut self: Box<Self>,
        path: &RemotePath,
        _mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<(), Failure> {
        if path.relative() != self.path || self.ended {
            return Err(Failure::new(
                ErrorKind::Internal,
                "upload committed elsewhere",
            ));
        }
        let shown = ferry_core::name::escape(&path.to_string());
        let value = format!("{VERSION} {} {ALGORITHM} {}", self.size_now(), digest.hex());
        let tail = Buffer::from(std::mem::take(&mut self.tail));
        let settled = self.settle();
        let whole = settled.is_ok();
        let made = settled.and_then(|()| self.make_object(tail.clone(), &value));
        if let Err(e) = made {
            crate::log(format_args!("cannot make '{shown}' of its chunks: {e}"));
            // Kept as if the connection were lost, if its chunks are all still there as
            // written or read (the store failed): `UPLOAD -c` goes on from it. A chunk whose
            // write failed is in no chain: what follows it would leave a hole, so not then.
            self.tail = tail.to_vec();
            if whole
                && self.chain_holds().unwrap_or(false)
                && let Err(e) = Upload::keep(self, path)
            {
                crate::log(format_args!("cannot keep the upload of '{shown}': {e}"));
            }
            return Err(Failure::new(
                ErrorKind::Io,
                format!(
                    "cannot store '{shown}' (the store failed, or what was kept of it changed); send it again"
                ),
            ));
        }
        self.ended = true;
        let cleared = match self.resumed {
            true => self.clear_older(true),
            false => self.remove_own(),
        };
        if let Err(e) = cleared {
            crate::log(format_args!("cannot remove the chunks of '{shown}': {e}"));
        }
        Ok(())
    }

    /// Writes the tail as a (short) chunk and marks the attempt kept, for any node to resume,
    /// in place of what older attempts kept of the path; past the sender's share, only the
    /// full chunks within it are kept (the start of an upload resumes as well as the whole).
    fn keep(mut self: Box<Self>, _path: &RemotePath) -> io::Result<u64> {
        let (share_count, share_bytes) = self.store.limits.per_address();
        if share_count == 0 {
            return Ok(0);
        }
        self.settle()?;
        if self.size_now() > share_bytes {
            let within = (share_bytes / PART_SIZE as u64) as usize;
            let resumed = self
                .chain
                .iter()
                .take_while(|c| !c.key.starts_with(&self.attempt));
            if within < resumed.count() {
                // The part it went on from is past the share already (the bounds were
                // lowered, or another address resumed it): that part stays kept as it was,
                // and this attempt's own chunks go.
                self.remove_own()?;
                self.ended = true;
                return Ok(0);
            }
            let cut: Vec<String> = self
                .chain
                .drain(within.min(self.chain.len())..)
                .map(|c| c.key)
                .collect();
            let cut = cut.into_iter().filter(|k| k.starts_with(&self.attempt));
            self.store.delete_keys(cut)?;
            self.tail.clear();
        }
        let size = self.size_now();
        if size == 0 {
            return Ok(0);
        }
        if !self.tail.is_empty() {
            self.store_tail()?;
            self.settle()?;
        }
        let group = kept::group_dir(&self.path);
        self.store.mark_kept(&self.attempt, &group)?;
        self.ended = true;
        self.clear_older(false)?;
        Ok(size)
    }
}

impl Drop for ObjectUpload<'_> {
    fn drop(&mut self) {
        if !self.ended
            && let Err(e) = self.remove_own()
        {
            crate::log(format_args!(
                "cannot remove the chunks of '{}': {e}",
                self.path
            ));
        }
    }
}

/// A file being read: one streamed GET from where it is read, another after a seek; each on
/// condition that the object is still the one opened (its ETag).
pub struct Object {
    pub(super) reader: opendal::blocking::StdReader,
    pub(super) kept: Option<String>,
}

impl Read for Object {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Seek for Object {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.reader.seek(pos)
    }
}

impl Source for Object {
    fn kept_digest(&self) -> Option<String> {
        self.kept.clone()
    }
    // keep_digest does nothing: keeping it would copy the object, changing its time.
}

/// The digest kept in an object's metadata, if it is one this module wrote for an object of
/// `size` bytes.
pub fn kept(meta: &opendal::Metadata) -> Option<String> {
    let value = meta.user_metadata()?.get(DIGEST_META)?;
    let words: Vec<&str> = value.split(' ').collect();
    match words.as_slice() {
        [VERSION, size, algorithm, hex]
            if *algorithm == ALGORITHM && size.parse() == Ok(meta.content_length()) =>
        {
            Some(hex.to_string())
        }
        _ => None,
    }
}
