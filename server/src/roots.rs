//! The root a server serves: a local directory, or with the `s3` feature a bucket.

use anyhow::Context;
use ferry_core::Store;

#[cfg(feature = "s3")]
use crate::s3;
use crate::{Config, LocalStore, PartLimits};

/// Opens the root `config` names: a local directory, or with the `s3` feature an
/// `s3://BUCKET[/PREFIX]` bucket; the store, how the log names it, and how many stale uploads
/// went.
pub(crate) fn open_store(config: &Config) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    let shown = config.root.display().to_string();
    if shown.starts_with(OBJECT_STORE_SCHEME) {
        return open_object_store(config, &shown);
    }
    let limits = PartLimits {
        max_age: config.partial_max_age,
        max_bytes: config.max_partial_bytes,
        max_count: config.max_partials,
        share: config.partial_share,
    };
    let (store, stale) = LocalStore::open_with(&config.root, limits)
        .with_context(|| format!("opening root '{shown}'"))?;
    let store = store.any_name(config.allow_any_name);
    let served = store.path().display().to_string();
    Ok((Box::new(store), served, stale))
}

/// How a root on an object store begins; a local directory cannot be named so (give
/// `./s3:/...` for one).
pub const OBJECT_STORE_SCHEME: &str = "s3://";

#[cfg(feature = "s3")]
fn open_object_store(
    config: &Config,
    root: &str,
) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    let settings = s3::Settings::from_env(root, |name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening root '{root}'"))?;
    let (store, stale) = s3::S3Store::open(settings, config.partial_max_age)
        .with_context(|| format!("opening root '{root}'"))?;
    let store = store.any_name(config.allow_any_name);
    let served = store.shown();
    Ok((Box::new(store), served, stale))
}

#[cfg(not(feature = "s3"))]
fn open_object_store(_: &Config, root: &str) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    anyhow::bail!(
        "cannot serve '{root}': this ferryd was built without object-store support (cargo \
         feature `s3` of ferry-server)"
    )
}
