//! [`S3Store`]: the [`Store`] over an S3-compatible bucket (`--root s3://BUCKET[/PREFIX]`),
//! through Apache OpenDAL's blocking operator, which runs its requests on a small tokio
//! runtime of its own.
//!
//! A file is an object whose key is the prefix joined with its path. A directory is a key
//! prefix ending in `/`: it exists while some key lies under it, and MKDIR makes an empty
//! marker object `DIR/` so that an empty directory exists too. An upload of one chunk goes
//! in one request at the commit; a larger one is written as hidden chunk objects as it
//! arrives, so that an interrupted one is kept for any node to resume (see [`kept`]), and the
//! commit composes them into the object in one multipart upload (see [`compose`]), which S3
//! shows only once completed (see [`upload`]). The digest is kept in the object's metadata.
//! RENAME copies then deletes each object: not atomic, and refused past
//! [`MAX_RENAME_OBJECTS`]. Stale multipart uploads and kept chunks are removed by the sweep
//! (see [`raw`] for the requests OpenDAL does not make).

mod compose;
mod config;
mod kept;
mod partials;
mod raw;
mod sign;
mod tree;
mod upload;

use std::io;
use std::net::IpAddr;
use std::time::SystemTime;

use opendal::options::{ListOptions, ReaderOptions};

use ferry_core::name;
use ferry_core::store::refusal::{exists, no_such_file, not_a_dir, not_regular, shown};
use ferry_core::store::{Entry, EntryKind, Meta, Naming, Source, Store, Upload};
use ferry_core::{ErrorKind, Failure, RemotePath};

pub use config::{Settings, parse_root};
pub use raw::{Pending, Raw};
pub use tree::MAX_RENAME_OBJECTS;
pub use upload::{DIGEST_META, PART_SIZE};
use upload::{Object, ObjectUpload};

use crate::PartLimits;

/// The name reserved at every level, as on a local root (where it holds uploads in
/// progress), so that a tree moves between the two unchanged.
const RESERVED: &str = crate::local::PARTIAL_DIR;

/// The server's files in an S3-compatible bucket.
pub struct S3Store {
    /// The blocking operator, rooted at the prefix: paths given to it are relative.
    op: opendal::blocking::Operator,
    /// The same operator, async, to check the store answers within a time limit.
    async_op: opendal::Operator,
    raw: Raw,
    settings: Settings,
    /// The bounds on kept uploads (`max_bytes` unset: none).
    limits: PartLimits,
    naming: Naming,
    // Last: dropped after everything that runs on it.
    runtime: tokio::runtime::Runtime,
}

impl S3Store {
    /// Opens the bucket `settings` names, checking that it answers, and aborts the multipart
    /// uploads left under its prefix (see [`Store::sweep`]); returns how many went.
    pub fn open(settings: Settings, limits: PartLimits) -> anyhow::Result<(S3Store, usize)> {
        let store = S3Store::connect(settings, limits)?;
        let removed = store.sweep(true)?;
        Ok((store, removed))
    }

    /// Opens the bucket `settings` names, checking that it answers, and touches nothing (for
    /// the operator's commands, which must not disturb running servers).
    pub fn connect(settings: Settings, limits: PartLimits) -> anyhow::Result<S3Store> {
        raw::install_crypto();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3")
            .enable_all()
            .build()?;
        let mut builder = opendal::services::S3::default()
            .bucket(&settings.bucket)
            .root(&format!("/{}", settings.prefix))
            .endpoint(&settings.endpoint)
            .region(&settings.region)
            .access_key_id(&settings.access_key)
            .secret_access_key(&settings.secret_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(token) = &settings.session_token {
            builder = builder.session_token(token);
        }
        // Each request times out, and is tried three times in all before it fails. (The
        // futures these layers make are large: client threads get a larger stack, lib.rs.)
        let timeout = opendal::layers::TimeoutLayer::new()
            .with_timeout(settings.timeout)
            .with_io_timeout(settings.timeout);
        let async_op = opendal::Operator::new(builder)?
            .layer(timeout)
            .layer(opendal::layers::RetryLayer::new().with_max_times(2))
            .finish();
        let op = {
            let _guard = runtime.enter();
            opendal::blocking::Operator::new(async_op.clone())?
        };
        let raw = Raw::new(settings.clone(), runtime.handle().clone())?;
        let store = S3Store {
            op,
            async_op,
            raw,
            settings,
            limits,
            naming: Naming {
                reserved: RESERVED,
                any_name: false,
            },
            runtime,
        };
        // A store that does not answer at all is found out now, not by the first client.
        let timeout = store.settings.timeout;
        let checked = store
            .runtime
            .block_on(async { tokio::time::timeout(timeout, store.async_op.check()).await });
        match checked {
            Ok(answered) => answered?,
            Err(_) => {
                anyhow::bail!("the store did not answer within {timeout:?} (FERRY_S3_TIMEOUT)")
            }
        }
        Ok(store)
    }

    /// This store, letting new entries take any name that passes [`name::validate`] when
    /// `any` (`--allow-any-name`).
    pub fn any_name(self, any: bool) -> S3Store {
        S3Store {
            naming: Naming {
                any_name: any,
                ..self.naming
            },
            ..self
        }
    }

    /// The root as given, for messages.
    pub fn shown(&self) -> String {
        self.settings.shown()
    }

    /// The client for the requests OpenDAL does not make (tests inspect the bucket with it).
    pub fn raw(&self) -> &Raw {
        &self.raw
    }

    /// The first entry under directory `path` ("" for the root), if any.
    fn first_under(&self, dir: &str) -> Result<Option<opendal::Entry>, Failure> {
        let options = ListOptions {
            limit: Some(2),
            ..ListOptions::default()
        };
        let prefix = dir_key(dir);
        let mut lister = self
            .op
            .lister_options(&prefix, options)
            .map_err(|e| failure(dir, e))?;
        lister.next().transpose().map_err(|e| failure(dir, e))
    }

    /// Whether directory `path` holds anything besides its own marker.
    fn holds_anything(&self, path: &RemotePath) -> Result<bool, Failure> {
        let prefix = dir_key(path.relative());
        let mut lister = self
            .op
            .lister(&prefix)
            .map_err(|e| failure(&shown(path), e))?;
        for entry in lister.by_ref().take(2) {
            let entry = entry.map_err(|e| failure(&shown(path), e))?;
            if entry.path() != prefix {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `path`'s parent, which must be an existing directory, for a new entry at `path`.
    fn parent_dir(&self, path: &RemotePath) -> Result<(), Failure> {
        let Some(parent) = path.parent() else {
            return Err(Failure::new(
                ErrorKind::BadRequest,
                "'/' is the root directory itself",
            ));
        };
        self.check(path)?;
        match self.stat(&parent)? {
            Some((EntryKind::Dir, _)) => Ok(()),
            Some(_) => Err(not_a_dir(&parent)),
            None => Err(Failure::new(
                ErrorKind::NotFound,
                format!("no such directory '{}'", shown(&parent)),
            )),
        }
    }
}

impl Store for S3Store {
    fn naming(&self) -> Naming {
        self.naming
    }

    /// An object at the key is a file; else a key below it makes a directory, whose time is
    /// its marker's, if it has one.
    fn stat(&self, path: &RemotePath) -> Result<Option<(EntryKind, Meta)>, Failure> {
        self.check(path)?;
        let dir_meta = Meta { size: 0, mtime: 0 };
        if path.is_root() {
            return Ok(Some((EntryKind::Dir, dir_meta)));
        }
        let rel = path.relative();
        match self.op.stat(rel) {
            Ok(meta) if meta.is_file() => return Ok(Some((EntryKind::File, meta_of(&meta)))),
            Ok(_) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(failure(&shown(path), e)),
        }
        Ok(self.first_under(rel)?.map(|entry| {
            let meta = match entry.path() == dir_key(rel) {
                true => meta_of(entry.metadata()),
                false => dir_meta,
            };
            (EntryKind::Dir, Meta { size: 0, ..meta })
        }))
    }

    /// Reads with a streamed GET, on condition that the object is still the one whose size
    /// and digest were read here (its ETag), so that a replaced file is never mixed.
    fn open(&self, path: &RemotePath) -> Result<(Box<dyn Source + '_>, Meta), Failure> {
        let meta = match self.stat(path)? {
            Some((EntryKind::File, _)) => self.op.stat(path.relative()),
            Some((EntryKind::Dir, _)) => {
                return Err(Failure::new(
                    ErrorKind::NotFound,
                    format!("'{}' is a directory, not a file", shown(path)),
                ));
            }
            None => return Err(no_such_file(path)),
        }
        .map_err(|e| failure(&shown(path), e))?;
        let options = ReaderOptions {
            if_match: meta.etag().map(str::to_string),
            ..ReaderOptions::default()
        };
        let reader = self
            .op
            .reader_options(path.relative(), options)
            .and_then(|r| r.into_std_read(0..meta.content_length()))
            .map_err(|e| failure(&shown(path), e))?;
        let object = Object {
            reader,
            kept: upload::kept(&meta),
        };
        Ok((Box::new(object), meta_of(&meta)))
    }

    fn create(&self, path: &RemotePath, owner: IpAddr) -> Result<Box<dyn Upload + '_>, Failure> {
        self.parent_dir(path)?;
        Ok(Box::new(ObjectUpload::new(self, path.relative(), owner)))
    }

    /// Takes the newest kept chain of chunks of `path`'s upload, from whichever node kept it.
    /// Two resumers may both take it: each goes on in an attempt of its own, and a commit
    /// fails whole if a chunk it composes changed or went (see [`kept`]).
    fn resume(
        &self,
        path: &RemotePath,
        owner: IpAddr,
    ) -> Result<Option<Box<dyn Upload + '_>>, Failure> {
        self.parent_dir(path)?;
        let rel = path.relative();
        let taken = self.kept_chain(rel).and_then(|chain| match chain {
            Some(chain) => ObjectUpload::resumed(self, rel, owner, chain).map(Some),
            None => Ok(None),
        });
        match taken {
            Ok(upload) => Ok(upload.map(|u| Box::new(u) as Box<dyn Upload + '_>)),
            Err(e) => {
                // A chain that cannot be read back is not resumed: the upload starts over.
                crate::log(format_args!(
                    "cannot resume the upload of '{}': {e}",
                    shown(path)
                ));
                Ok(None)
            }
        }
    }

    fn delete(&self, path: &RemotePath) -> Result<(), Failure> {
        match self.stat(path)? {
            Some((EntryKind::File, _)) => self
                .op
                .delete(path.relative())
                .map_err(|e| failure(&shown(path), e)),
            Some(_) => Err(not_regular(path)),
            None => Err(no_such_file(path)),
        }
    }

    fn delete_tree(&self, path: &RemotePath) -> Result<u64, Failure> {
        tree::delete(self, path)
    }

    /// One page of keys (a thousand) at a time, as S3 lists them.
    fn list(
        &self,
        dir: &RemotePath,
        each: &mut dyn FnMut(Entry) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        match self.stat(dir)? {
            Some((EntryKind::Dir, _)) => {}
            Some(_) => return Err(not_a_dir(dir)),
            None => return Err(no_such_file(dir)),
        }
        let prefix = dir_key(dir.relative());
        let lister = self
            .op
            .lister(&prefix)
            .map_err(|e| failure(&shown(dir), e))?;
        for entry in lister {
            let entry = entry.map_err(|e| failure(&shown(dir), e))?;
            let name = entry.name().trim_end_matches('/');
            if entry.path() == prefix
                || name::validate(name).is_err()
                || self.naming().reserves(name)
            {
                continue;
            }
            let meta = entry.metadata();
            let (kind, size) = match meta.is_dir() {
                true => (EntryKind::Dir, 0),
                false => (EntryKind::File, meta.content_length()),
            };
            let mtime = meta_of(meta).mtime;
            let name = name.to_string();
            each(Entry {
                name,
                kind,
                meta: Meta { size, mtime },
            })?;
        }
        Ok(())
    }

    /// Writes the directory's marker, `DIR/`, an empty object.
    fn mkdir(&self, path: &RemotePath) -> Result<(), Failure> {
        self.check_new(path)?;
        self.parent_dir(path)?;
        if self.stat(path)?.is_some() {
            return Err(exists(path));
        }
        self.op
            .create_dir(&dir_key(path.relative()))
            .map_err(|e| failure(&shown(path), e))
    }

    fn rmdir(&self, path: &RemotePath) -> Result<(), Failure> {
        self.parent_dir(path)?;
        match self.stat(path)? {
            Some((EntryKind::Dir, _)) => {}
            Some(_) => return Err(not_a_dir(path)),
            None => return Err(no_such_file(path)),
        }
        if self.holds_anything(path)? {
            return Err(Failure::new(
                ErrorKind::NotEmpty,
                format!("directory '{path}' is not empty"),
            ));
        }
        self.op
            .delete(&dir_key(path.relative()))
            .map_err(|e| failure(&shown(path), e))
    }

    fn rename(&self, from: &RemotePath, to: &RemotePath, replace: bool) -> Result<(), Failure> {
        tree::rename(self, from, to, replace)
    }

    /// Aborts the multipart uploads under the prefix started more than the maximum age ago,
    /// and removes the kept uploads not written for that long or past the bounds, at start as
    /// later: other nodes serving the same prefix may have uploads in flight, which nothing
    /// here can tell from a crashed node's, so only age decides for those.
    fn sweep(&self, _at_start: bool) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for pending in self.raw.pending(&self.settings.key(""))? {
            let age = pending.initiated.and_then(|t| now.duration_since(t).ok());
            if age.is_some_and(|age| age > self.limits.max_age) {
                self.raw.abort(&pending.key, &pending.upload_id)?;
                removed += 1;
            }
        }
        Ok(removed + self.sweep_kept(None)?)
    }
}

/// The key prefix of directory `rel` relative to the root: `rel/`, or "/" for the root.
fn dir_key(rel: &str) -> String {
    match rel {
        "" => "/".to_string(),
        rel => format!("{rel}/"),
    }
}

/// Size and modification time (the store's: when the object was written).
fn meta_of(meta: &opendal::Metadata) -> Meta {
    let modified = meta.last_modified().map(SystemTime::from);
    let mtime = ferry_core::store::mtime_of(modified.ok_or(io::ErrorKind::NotFound.into()));
    Meta {
        size: meta.content_length(),
        mtime,
    }
}

/// A path as messages show it.
/// Maps an OpenDAL error on `what` to a failure; its text goes to the log only.
fn failure(what: &str, e: opendal::Error) -> Failure {
    use opendal::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => io::ErrorKind::NotFound,
        K::PermissionDenied => io::ErrorKind::PermissionDenied,
        K::AlreadyExists => io::ErrorKind::AlreadyExists,
        K::IsADirectory => io::ErrorKind::IsADirectory,
        K::NotADirectory => io::ErrorKind::NotADirectory,
        _ => io::ErrorKind::Other,
    };
    Failure::io(what, &io::Error::new(kind, e.to_string()))
}
