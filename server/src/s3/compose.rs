//! The multipart requests that make an object of kept chunks: each full chunk copied in as a
//! part (UploadPartCopy) on condition that it is still the object read (its ETag), the short
//! tail uploaded as a part of its own (Garage refuses to copy a source under 5 MiB, even as
//! the last part), and the digest set as metadata when the upload is created.

use std::io;

use opendal::Buffer;

use super::raw::Raw;
use super::sign::encode_path;

/// How many parts are sent at once.
const AT_ONCE: usize = 4;

/// A part of an object being composed.
pub enum Piece<'a> {
    /// Copied from the object `key`, provided its ETag is still `etag`.
    Copy { key: &'a str, etag: &'a str },
    /// Uploaded from memory.
    Bytes(Buffer),
}

impl Raw {
    /// Makes the object `key` of `pieces` in order, with `metadata` (names without
    /// `x-amz-meta-`), in one multipart upload: nothing shows unless all of it succeeds, and a
    /// failure aborts it. A piece copied from an object that changed fails it.
    pub fn compose(
        &self,
        key: &str,
        pieces: &[Piece<'_>],
        metadata: &[(&str, &str)],
    ) -> io::Result<()> {
        let headers: Vec<(String, String)> = metadata
            .iter()
            .map(|(name, value)| (format!("x-amz-meta-{name}"), value.to_string()))
            .collect();
        let uploads = [("uploads", String::new())];
        let (_, body) = self.call("POST", key, &uploads, &headers, Buffer::new())?;
        let Some(id) = super::raw::field(&body, "UploadId") else {
            return Err(io::Error::other("no upload id in the answer"));
        };
        let completed = self
            .parts(key, &id, pieces)
            .and_then(|etags| self.complete(key, &id, &etags));
        if completed.is_err() {
            let _ = self.abort(key, &id);
        }
        completed
    }

    /// Sends the parts of upload `id`, [`AT_ONCE`] at a time (a copy is the store's work, and
    /// one at a time leaves it idle between requests); their ETags, in order.
    fn parts(&self, key: &str, id: &str, pieces: &[Piece<'_>]) -> io::Result<Vec<String>> {
        let mut etags = Vec::with_capacity(pieces.len());
        for (batch, some) in pieces.chunks(AT_ONCE).enumerate() {
            let sent: Vec<io::Result<String>> = std::thread::scope(|scope| {
                let threads: Vec<_> = some
                    .iter()
                    .enumerate()
                    .map(|(i, piece)| {
                        let n = batch * AT_ONCE + i + 1;
                        scope.spawn(move || self.part(key, id, n, piece))
                    })
                    .collect();
                let joined = threads.into_iter().map(|t| t.join());
                joined
                    .map(|r| {
                        r.unwrap_or_else(|_| Err(io::Error::other("a part's thread panicked")))
                    })
                    .collect()
            });
            for etag in sent {
                etags.push(etag?);
            }
        }
        Ok(etags)
    }

    /// Sends part `n` of upload `id`; its ETag.
    fn part(&self, key: &str, id: &str, n: usize, piece: &Piece<'_>) -> io::Result<String> {
        let query = [("partNumber", n.to_string()), ("uploadId", id.to_string())];
        match piece {
            Piece::Bytes(bytes) => {
                let (headers, _) = self.call("PUT", key, &query, &[], bytes.clone())?;
                let etag = headers.into_iter().find(|(k, _)| k == "etag");
                etag.map(|(_, v)| v)
                    .ok_or_else(|| io::Error::other("no ETag for an uploaded part"))
            }
            Piece::Copy { key: from, etag } => {
                let bucket = &self.settings().bucket;
                let headers = vec![
                    (
                        "x-amz-copy-source".to_string(),
                        format!("/{bucket}/{}", encode_path(from)),
                    ),
                    ("x-amz-copy-source-if-match".to_string(), etag.to_string()),
                ];
                let (_, body) = self.call("PUT", key, &query, &headers, Buffer::new())?;
                // A copy may fail after its 200 status: the error is then in the body.
                match super::raw::field(&body, "ETag") {
                    Some(etag) if !body.contains("<Error>") => Ok(etag),
                    _ => Err(io::Error::other(format!("copying part {n} failed"))),
                }
            }
        }
    }

    /// Completes upload `id` of the parts whose ETags are `etags`, in order.
    fn complete(&self, key: &str, id: &str, etags: &[String]) -> io::Result<()> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            let etag = etag.replace('&', "&amp;").replace('"', "&quot;");
            xml += &format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                i + 1
            );
        }
        xml += "</CompleteMultipartUpload>";
        let query = [("uploadId", id.to_string())];
        let (_, body) = self.call("POST", key, &query, &[], Buffer::from(xml.into_bytes()))?;
        // Completion, too, may fail after its 200 status.
        if body.contains("<Error>") {
            return Err(io::Error::other("completing the upload failed"));
        }
        Ok(())
    }
}
