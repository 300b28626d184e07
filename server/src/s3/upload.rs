//! [`ObjectUpload`]: an upload streamed into a multipart upload, invisible until committed;
//! and [`Object`], a file read with ranged requests.

use std::io::{self, Read, Seek, SeekFrom, Write};

use ferry_core::digest::{ALGORITHM, Digest};
use ferry_core::store::{Source, Upload};
use ferry_core::{ErrorKind, Failure, RemotePath};

use super::{S3Store, failure};

/// The part size: what an upload holds in memory at most, besides OpenDAL's own buffers.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// CopyObject's limit: a larger object cannot be copied onto itself with its digest.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// The object metadata (`x-amz-meta-…`) that keeps a file's digest.
pub const DIGEST_META: &str = "ferry-digest";
/// Its layout's version, the value's first word: `1 <size> xxh3-128 <digest>`.
const VERSION: &str = "1";

/// An upload to an object: what is written goes out a part at a time to a multipart upload
/// (a small file in one request at the end), which S3 makes visible only when completed.
/// Dropped without a commit, the multipart upload is aborted.
pub struct ObjectUpload<'s> {
    pub(super) store: &'s S3Store,
    /// The path it was created for (relative to the root).
    pub(super) path: String,
    pub(super) writer: Option<opendal::Writer>,
    pub(super) size: u64,
}

impl ObjectUpload<'_> {
    /// Aborts the multipart upload, if one was started; the upload is then empty.
    fn abort(&mut self) -> io::Result<()> {
        self.size = 0;
        match self.writer.take() {
            Some(mut writer) => self
                .store
                .block_on(writer.abort())
                .map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

impl Write for ObjectUpload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("upload already ended"));
        };
        self.store
            .block_on(writer.write(buf.to_vec()))
            .map_err(io::Error::other)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An object store cannot read back a multipart upload in progress: only resuming reads an
/// upload, and resuming is not offered on an object store yet.
impl Read for ObjectUpload<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an upload to an object store cannot be read back",
        ))
    }
}

/// Only where it ends can be asked.
impl Seek for ObjectUpload<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::End(0) => Ok(self.size),
            SeekFrom::Current(0) => Ok(self.size),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an upload to an object store only appends",
            )),
        }
    }
}

impl Upload for ObjectUpload<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn restart(&mut self) -> io::Result<()> {
        self.abort()?;
        self.writer = Some(self.store.writer(&self.path).map_err(io::Error::other)?);
        Ok(())
    }

    /// Completes the multipart upload, which replaces any old object in one step, then copies
    /// the object onto itself with its digest as metadata, provided it is still ours (by its
    /// ETag). The modification time is the store's: an object's cannot be set.
    fn commit(
        mut self: Box<Self>,
        path: &RemotePath,
        _mtime: Option<u64>,
        digest: &Digest,
    ) -> Result<(), Failure> {
        if path.relative() != self.path {
            return Err(Failure::new(
                ErrorKind::Internal,
                "upload committed elsewhere",
            ));
        }
        let Some(mut writer) = self.writer.take() else {
            return Err(Failure::new(ErrorKind::Internal, "upload already ended"));
        };
        let shown = ferry_core::name::escape(&path.to_string());
        let store = self.store;
        let meta = store
            .block_on(writer.close())
            .map_err(|e| failure(&shown, e))?;
        let etag = match meta.etag() {
            Some(etag) => Some(etag.to_string()),
            None => store
                .op
                .stat(&self.path)
                .ok()
                .and_then(|m| m.etag().map(str::to_string)),
        };
        if let Some(etag) = etag
            && self.size <= MAX_COPY
        {
            let value = format!("{VERSION} {} {ALGORITHM} {}", self.size, digest.hex());
            let key = store.settings.key(&self.path);
            if let Err(e) = store
                .raw
                .set_metadata(&key, &etag, &[(DIGEST_META, &value)])
            {
                crate::log(format_args!("cannot keep the digest of '{shown}': {e}"));
            }
        }
        Ok(())
    }

    /// Nothing is kept on an object store yet: the multipart upload is aborted.
    fn keep(mut self: Box<Self>, _path: &RemotePath) -> io::Result<u64> {
        self.abort()?;
        Ok(0)
    }
}

impl Drop for ObjectUpload<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.abort() {
            crate::log(format_args!(
                "cannot abort the upload of '{}': {e}",
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
