//! Whole directories on an object store, where a directory is only a key prefix: deleting
//! one deletes every key under it; renaming one copies every object under it, then deletes
//! the originals. Neither is atomic: a failure half way leaves part of the tree done.

use opendal::options::ListOptions;

use ferry_core::store::{EntryKind, Store};
use ferry_core::{ErrorKind, Failure, RemotePath};

use ferry_core::store::refusal::{exists, no_such_file, shown};

use super::{S3Store, dir_key, failure};

/// The most objects (files and directory markers) that RENAME moves with a directory: each
/// is a copy and a delete, so a larger tree is refused rather than left half moved for long.
pub const MAX_RENAME_OBJECTS: usize = 1000;

/// Deletes the file at `path`, or every key under directory `path`; returns how many objects
/// went (a directory without a marker counts only the objects under it).
pub fn delete(store: &S3Store, path: &RemotePath) -> Result<u64, Failure> {
    if path.is_root() {
        return Err(Failure::new(
            ErrorKind::BadRequest,
            "'/' is the root directory itself",
        ));
    }
    match store.stat(path)? {
        Some((EntryKind::File, _)) => {
            store.delete(path)?;
            return Ok(1);
        }
        Some((EntryKind::Dir, _)) => {}
        None => return Err(no_such_file(path)),
    }
    let what = shown(path);
    let options = ListOptions {
        recursive: true,
        ..ListOptions::default()
    };
    let lister = store
        .op
        .lister_options(&dir_key(path.relative()), options)
        .map_err(|e| failure(&what, e))?;
    let mut deleter = store.op.deleter().map_err(|e| failure(&what, e))?;
    let mut markers = Vec::new();
    let mut count = 0;
    for entry in lister {
        let entry = entry.map_err(|e| failure(&what, e))?;
        match entry.path().ends_with('/') {
            true => markers.push(entry.path().to_string()),
            false => deleter
                .delete(entry.path())
                .map_err(|e| failure(&what, e))?,
        }
        count += 1;
    }
    deleter.close().map_err(|e| failure(&what, e))?;
    // Its own marker, even if the listing left it out (SeaweedFS lists an empty directory
    // as a key of its own, but not under itself).
    let own = dir_key(path.relative());
    if !markers.contains(&own) {
        markers.push(own);
    }
    delete_markers(store, markers).map_err(|e| failure(&what, e))?;
    Ok(count)
}

/// Deletes directory markers, the deepest first: a store that keeps real directories
/// (SeaweedFS) removes one only once it is empty.
fn delete_markers(store: &S3Store, mut markers: Vec<String>) -> opendal::Result<()> {
    markers.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
    for marker in markers {
        store.op.delete(&marker)?;
    }
    Ok(())
}

/// Moves `from` to `to`: a file by a copy (its metadata, the digest, goes with it) and a
/// delete; a directory by copying each object under it, then deleting each original.
pub fn rename(
    store: &S3Store,
    from: &RemotePath,
    to: &RemotePath,
    replace: bool,
) -> Result<(), Failure> {
    store.check_new(to)?;
    if to.starts_with(from) {
        return Err(Failure::new(
            ErrorKind::BadRequest,
            format!("cannot move '{from}' into itself"),
        ));
    }
    store.check(from)?;
    let kind = match store.stat(from)? {
        Some((kind, _)) => kind,
        None => return Err(no_such_file(from)),
    };
    if from.is_root() {
        return Err(Failure::new(
            ErrorKind::BadRequest,
            "'/' is the root directory itself",
        ));
    }
    match store.stat(to)? {
        Some((EntryKind::Dir, _)) => return Err(exists(to)),
        Some(_) if !replace || kind == EntryKind::Dir => return Err(exists(to)),
        _ => {}
    }
    store.parent_dir(to)?;
    match kind {
        EntryKind::File => {
            let what = shown(from);
            let (src, dst) = (from.relative(), to.relative());
            store.op.copy(src, dst).map_err(|e| failure(&what, e))?;
            store.op.delete(src).map_err(|e| failure(&what, e))
        }
        EntryKind::Dir => rename_dir(store, from, to),
    }
}

/// Copies every object under `from` to the same place under `to` (with `to`'s marker, so
/// that it exists even if `from` had none), then deletes the originals.
fn rename_dir(store: &S3Store, from: &RemotePath, to: &RemotePath) -> Result<(), Failure> {
    let what = shown(from);
    let (src, dst) = (dir_key(from.relative()), dir_key(to.relative()));
    let options = ListOptions {
        recursive: true,
        ..ListOptions::default()
    };
    let lister = store
        .op
        .lister_options(&src, options)
        .map_err(|e| failure(&what, e))?;
    let mut paths = Vec::new();
    for entry in lister {
        let entry = entry.map_err(|e| failure(&what, e))?;
        if paths.len() == MAX_RENAME_OBJECTS {
            return Err(Failure::new(
                ErrorKind::TooLarge,
                format!(
                    "'{what}' holds more than {MAX_RENAME_OBJECTS} objects, too many to move \
                     on an object store (each is copied, then deleted)"
                ),
            ));
        }
        paths.push(entry.path().to_string());
    }
    store.op.create_dir(&dst).map_err(|e| failure(&what, e))?;
    for path in &paths {
        let Some(rest) = path.strip_prefix(&src) else {
            continue;
        };
        let target = format!("{dst}{rest}");
        let copied = match rest.is_empty() || rest.ends_with('/') {
            true => store.op.create_dir(&target),
            false => store.op.copy(path, &target).map(drop),
        };
        copied.map_err(|e| failure(&what, e))?;
    }
    let (mut markers, files): (Vec<String>, Vec<String>) =
        paths.into_iter().partition(|p| p.ends_with('/'));
    if !markers.contains(&src) {
        markers.push(src);
    }
    store
        .op
        .delete_iter(files)
        .and_then(|()| delete_markers(store, markers))
        .map_err(|e| failure(&what, e))
}
