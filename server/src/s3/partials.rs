//! The bounds on uploads kept in the bucket, the same as on a local root (`--max-partials`,
//! `--max-partial-bytes`, `--partial-share`, `--partial-max-age`), and the operator's view of
//! them (`--list-partials`, `--clear-partials`). A kept upload is a path's group of chunks
//! (see [`super::kept`]); one whose newest attempt was not marked kept is in progress on some
//! node (or its node died): age alone removes it, as nothing tells the two apart.

use std::io;

use opendal::Buffer;

use super::S3Store;
use super::kept::{self, Group};
use crate::Part;

impl S3Store {
    /// Removes the kept uploads not written for the maximum age, then the oldest kept past
    /// the bounds, never `spare` (the group just kept); returns how many went.
    pub(super) fn sweep_kept(&self, spare: Option<&str>) -> io::Result<usize> {
        let mut removed = 0;
        let mut parts = Vec::new();
        let mut groups = self.groups(&kept::uploads_dir())?;
        for (name, group) in &groups {
            if self.too_old(group.modified()) {
                self.remove_group(group)?;
                removed += 1;
            } else {
                parts.push(part(name, group, None));
            }
        }
        for part in crate::local::evictions(parts, &self.limits, spare) {
            let Some(group) = groups.remove(&part.name) else {
                continue;
            };
            self.remove_group(&group)?;
            removed += 1;
            crate::log(format_args!(
                "evicted the kept upload {} from {} ({} bytes): kept uploads are bounded",
                part.name,
                part.owner
                    .map_or("an unknown address".into(), |o| o.to_string()),
                part.size,
            ));
        }
        Ok(removed)
    }

    fn remove_group(&self, group: &Group) -> io::Result<()> {
        self.delete_keys(group.objects.iter().map(|o| o.chunk.key.clone()))
    }

    /// The kept uploads and those in progress, oldest first, for the operator: each with the
    /// path its newest record names.
    pub fn partials(&self) -> io::Result<Vec<Part>> {
        let mut parts = Vec::new();
        for (name, group) in self.groups(&kept::uploads_dir())? {
            let base = group.attempts.values().rev().find_map(|a| a.base.as_ref());
            let record = match base {
                Some(base) => self.read_chunk(&base.chunk).ok(),
                None => None,
            };
            let path = record.as_ref().and_then(|r| kept::record_path(&r.to_vec()));
            parts.push(part(&name, &group, path));
        }
        parts.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        Ok(parts)
    }

    /// Removes every kept upload (those in progress are left alone); how many went and their
    /// bytes.
    pub fn clear_partials(&self) -> io::Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for group in self.groups(&kept::uploads_dir())?.values() {
            if group.newest().is_some_and(|(_, kept)| kept) {
                self.remove_group(group)?;
                count += 1;
                bytes += group.size();
            }
        }
        Ok((count, bytes))
    }

    /// Marks the attempt in `attempt` kept, then brings the kept uploads within their bounds.
    pub(super) fn mark_kept(&self, attempt: &str, group: &str) -> io::Result<()> {
        self.write_chunk(&format!("{attempt}kept"), Buffer::new())?;
        let name = group.trim_end_matches('/').rsplit('/').next();
        self.sweep_kept(name).map(drop)
    }
}

/// A group as the bounds and the operator see it.
fn part(name: &str, group: &Group, path: Option<String>) -> Part {
    let (owner, kept) = group.newest().unwrap_or((None, false));
    Part {
        name: name.to_string(),
        kept,
        size: group.size(),
        modified: group.modified(),
        path,
        owner,
    }
}
