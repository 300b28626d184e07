//! Uploads kept in the bucket, for resuming on any node: fixed-size chunk objects under the
//! reserved name, which no client can reach, so that another node can read them back (the
//! digest's state cannot be saved, and parts of a multipart upload cannot be read).
//!
//! Layout, relative to the root: `RESERVED/uploads/GROUP/ATTEMPT/…`, where GROUP is the
//! digest of the upload's path and ATTEMPT `MILLIS-RANDOM-OWNER`, unique to one upload on one
//! node (so its objects are written once, by it alone, and never change):
//! - `base`: a small record, written before anything else of the attempt: the path, and the
//!   chunks (of older attempts) it resumed from, with their sizes and ETags;
//! - `000000`, `000001`, …: its own chunks, numbered on from the base's, each [`PART_SIZE`]
//!   bytes but the last, written as the content arrives (a node killed loses less than one);
//! - `kept`: an empty marker, written when the upload was interrupted and kept.
//!
//! A resumer takes the newest attempt of the path's group whose chain holds together, reads
//! it back, and goes on in an attempt of its own; a commit composes the chain (see
//! [`super::compose`]) and removes the group's attempts up to its own.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use opendal::options::{ListOptions, ReadOptions};
use opendal::{Buffer, Metadata};

use ferry_core::Digest;

use super::{PART_SIZE, RESERVED, S3Store};

/// A chunk of an upload, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Its path relative to the root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, as the store gave it when it was written or listed.
    pub etag: String,
}

/// A chunk being written in the background, while the next one fills: receiving and writing
/// overlap, at the cost of a second chunk in memory.
pub struct Writing {
    /// The key it goes to, relative to the root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    task: tokio::task::JoinHandle<opendal::Result<Metadata>>,
}

/// An object under the kept uploads, as listed.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Its key, size and ETag.
    pub chunk: Chunk,
    /// When it was written.
    pub modified: SystemTime,
}

/// One attempt of a group, as listed.
#[derive(Default, Debug)]
pub struct Attempt {
    /// Its base record, once written.
    pub base: Option<Listed>,
    /// Its own chunks, by number.
    pub chunks: BTreeMap<u32, Listed>,
    /// Whether it was marked kept.
    pub kept: bool,
}

/// The kept uploads of one path: its attempts by id (oldest first) and all their objects.
#[derive(Default, Debug)]
pub struct Group {
    /// Its attempts, by id.
    pub attempts: BTreeMap<String, Attempt>,
    /// Every object under it.
    pub objects: Vec<Listed>,
}

impl Group {
    /// Bytes held, all attempts together.
    pub fn size(&self) -> u64 {
        self.objects.iter().map(|o| o.chunk.size).sum()
    }

    /// The last write to any of its objects.
    pub fn modified(&self) -> SystemTime {
        let times = self.objects.iter().map(|o| o.modified);
        times.max().unwrap_or(UNIX_EPOCH)
    }

    /// The owner of its newest attempt, and whether that attempt was kept (else it is in
    /// progress, or its node died).
    pub fn newest(&self) -> Option<(Option<IpAddr>, bool)> {
        let (id, attempt) = self.attempts.iter().next_back()?;
        Some((owner_of(id), attempt.kept))
    }
}

/// The folder of all kept uploads, relative to the root.
pub fn uploads_dir() -> String {
    format!("{RESERVED}/uploads/")
}

/// The group folder of the upload of `rel`.
pub fn group_dir(rel: &str) -> String {
    let mut digest = Digest::new();
    digest.update(rel.as_bytes());
    format!("{}{}/", uploads_dir(), digest.hex())
}

/// A new attempt's folder in `group`, for the client at `owner`.
pub fn attempt_dir(group: &str, owner: IpAddr) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(millis);
    let owner = owner.to_canonical().to_string().replace(':', "_");
    format!("{group}{millis:013}-{:016x}-{owner}/", hasher.finish())
}

/// The owner an attempt's id names.
fn owner_of(id: &str) -> Option<IpAddr> {
    id.splitn(3, '-').nth(2)?.replace('_', ":").parse().ok()
}

/// The key of chunk `index` of the attempt in `attempt`.
pub fn chunk_key(attempt: &str, index: usize) -> String {
    format!("{attempt}{index:06}")
}

/// The record that starts an attempt for `rel`, resuming from `chain`.
pub fn base_record(rel: &str, chain: &[Chunk]) -> Vec<u8> {
    let mut text = format!("ferry-upload 1\npath {}\n", hex(rel.as_bytes()));
    for c in chain {
        text += &format!("chunk {} {} {}\n", c.key, c.size, c.etag);
    }
    text.into_bytes()
}

/// The path and chain a base record holds, if it is one.
fn parse_base(text: &str) -> Option<(String, Vec<Chunk>)> {
    let mut lines = text.lines();
    if lines.next()? != "ferry-upload 1" {
        return None;
    }
    let path = unhex(lines.next()?.strip_prefix("path ")?)?;
    let mut chain = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        let ["chunk", key, size, etag] = words.as_slice() else {
            return None;
        };
        let (key, etag) = (key.to_string(), etag.to_string());
        chain.push(Chunk {
            key,
            size: size.parse().ok()?,
            etag,
        });
    }
    Some((path, chain))
}

/// The path a base record names.
pub fn record_path(record: &[u8]) -> Option<String> {
    parse_base(std::str::from_utf8(record).ok()?).map(|(path, _)| path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl S3Store {
    /// Every object under `dir` (relative to the root), grouped by kept upload.
    pub(super) fn groups(&self, dir: &str) -> io::Result<BTreeMap<String, Group>> {
        let options = ListOptions {
            recursive: true,
            ..ListOptions::default()
        };
        let lister = self
            .op
            .lister_options(dir, options)
            .map_err(io::Error::other)?;
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let uploads = uploads_dir();
        for entry in lister {
            let entry = entry.map_err(io::Error::other)?;
            let Some(rest) = entry.path().strip_prefix(&uploads) else {
                continue;
            };
            let meta = entry.metadata();
            if meta.is_dir() {
                continue;
            }
            let mut words = rest.splitn(3, '/');
            let (Some(group), attempt, leaf) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let listed = listed(entry.path(), meta);
            let group = groups.entry(group.to_string()).or_default();
            group.objects.push(listed.clone());
            let (Some(attempt), Some(leaf)) = (attempt, leaf) else {
                continue;
            };
            let attempt = group.attempts.entry(attempt.to_string()).or_default();
            match leaf {
                "base" => attempt.base = Some(listed),
                "kept" => attempt.kept = true,
                index => {
                    if let Ok(index) = index.parse() {
                        attempt.chunks.insert(index, listed);
                    }
                }
            }
        }
        Ok(groups)
    }

    /// The chain of chunks to resume the upload of `rel` from, if one holds together: of
    /// the attempts whose chains do, the one holding the most bytes (a racing resumer's own
    /// attempt starts shorter than what it resumed), the newest of equals.
    pub(super) fn kept_chain(&self, rel: &str) -> io::Result<Option<Vec<Chunk>>> {
        let dir = group_dir(rel);
        let groups = self.groups(&dir)?;
        let Some(group) = groups.into_values().next() else {
            return Ok(None);
        };
        if self.too_old(group.modified()) {
            return Ok(None);
        }
        let present: BTreeMap<&str, &Chunk> = group
            .objects
            .iter()
            .map(|o| (o.chunk.key.as_str(), &o.chunk))
            .collect();
        let mut best: Option<(u64, Vec<Chunk>)> = None;
        for attempt in group.attempts.values() {
            let Some(chain) = self.attempt_chain(rel, attempt, &present)? else {
                continue;
            };
            let bytes = chain.iter().map(|c| c.size).sum();
            if best.as_ref().is_none_or(|(most, _)| bytes >= *most) {
                best = Some((bytes, chain));
            }
        }
        Ok(best.map(|(_, chain)| chain))
    }

    /// The chain of `attempt`, if its base record reads, names `rel` and chunks listed with
    /// the ETags recorded, every chunk but the last full.
    fn attempt_chain(
        &self,
        rel: &str,
        attempt: &Attempt,
        present: &BTreeMap<&str, &Chunk>,
    ) -> io::Result<Option<Vec<Chunk>>> {
        let Some(base) = &attempt.base else {
            return Ok(None);
        };
        let record = self.read_chunk(&base.chunk)?.to_vec();
        let Some((path, mut chain)) = parse_base(&String::from_utf8_lossy(&record)) else {
            return Ok(None);
        };
        let listed = chain
            .iter()
            .all(|c| present.get(c.key.as_str()) == Some(&c));
        if path != rel || !listed || chain.iter().any(|c| c.size != PART_SIZE as u64) {
            return Ok(None);
        }
        for (index, own) in attempt.chunks.range(chain.len() as u32..) {
            let full = chain.last().is_none_or(|c| c.size == PART_SIZE as u64);
            if *index as usize != chain.len() || !full {
                break;
            }
            chain.push(own.chunk.clone());
        }
        Ok(Some(chain))
    }

    /// Reads a chunk whole, on condition that it is still the object listed (its ETag).
    pub(super) fn read_chunk(&self, chunk: &Chunk) -> io::Result<Buffer> {
        let options = ReadOptions {
            if_match: Some(chunk.etag.clone()),
            ..ReadOptions::default()
        };
        let read = self.op.read_options(&chunk.key, options);
        let bytes = read.map_err(|e| io::Error::other(format!("a kept chunk changed: {e}")))?;
        if bytes.len() as u64 != chunk.size {
            return Err(io::Error::other("a kept chunk changed size"));
        }
        Ok(bytes)
    }

    /// Writes `bytes` as the object `key`; the chunk it makes.
    pub(super) fn write_chunk(&self, key: &str, bytes: Buffer) -> io::Result<Chunk> {
        let size = bytes.len() as u64;
        let meta = self.op.write(key, bytes).map_err(io::Error::other)?;
        self.chunk_of(key, size, &meta)
    }

    /// Starts writing `bytes` as the object `key` in the background (see [`Writing`]).
    pub(super) fn start_chunk(&self, key: &str, bytes: Buffer) -> Writing {
        let (op, path) = (self.async_op.clone(), key.to_string());
        let size = bytes.len() as u64;
        let task = self
            .runtime
            .spawn(async move { op.write(&path, bytes).await });
        let key = key.to_string();
        Writing { key, size, task }
    }

    /// Waits for a chunk written in the background; the chunk it made.
    pub(super) fn finish_chunk(&self, writing: Writing) -> io::Result<Chunk> {
        let written = self.runtime.block_on(writing.task);
        let meta = written
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        self.chunk_of(&writing.key, writing.size, &meta)
    }

    /// The chunk `key` of `size` bytes just written, its ETag from `meta` or else the store.
    fn chunk_of(&self, key: &str, size: u64, meta: &Metadata) -> io::Result<Chunk> {
        let etag = match meta.etag() {
            Some(etag) => etag.to_string(),
            None => {
                let meta = self.op.stat(key).map_err(io::Error::other)?;
                meta.etag().unwrap_or_default().to_string()
            }
        };
        Ok(Chunk {
            key: key.to_string(),
            size,
            etag,
        })
    }

    /// Deletes objects (relative keys), ignoring those already gone.
    pub(super) fn delete_keys(&self, keys: impl IntoIterator<Item = String>) -> io::Result<()> {
        self.op.delete_iter(keys).map_err(io::Error::other)
    }

    /// Whether a kept upload last written at `modified` has expired.
    pub(super) fn too_old(&self, modified: SystemTime) -> bool {
        SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age > self.limits.max_age)
    }
}

fn listed(path: &str, meta: &Metadata) -> Listed {
    let modified = meta.last_modified().map_or(UNIX_EPOCH, SystemTime::from);
    Listed {
        chunk: Chunk {
            key: path.to_string(),
            size: meta.content_length(),
            etag: meta.etag().unwrap_or_default().to_string(),
        },
        modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_record_reads_back() {
        let chain = vec![Chunk {
            key: "a/000000".into(),
            size: 8,
            etag: "\"e\"".into(),
        }];
        let text = base_record("dir/ünï cødé", &chain);
        let parsed = parse_base(std::str::from_utf8(&text).unwrap());
        assert_eq!(parsed, Some(("dir/ünï cødé".to_string(), chain)));
        assert_eq!(parse_base("ferry-upload 1\npath zz\n"), None);
    }

    #[test]
    fn an_attempt_names_its_owner() {
        for owner in ["10.0.0.1", "::1", "fe80::2"] {
            let owner: IpAddr = owner.parse().unwrap();
            let dir = attempt_dir("g/", owner);
            let id = dir.trim_start_matches("g/").trim_end_matches('/');
            assert_eq!(owner_of(id), Some(owner), "{id}");
            assert_ne!(dir, attempt_dir("g/", owner));
        }
    }
}
