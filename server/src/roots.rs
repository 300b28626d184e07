//! The root a server serves: a local directory, or with the `s3` feature a bucket.

use anyhow::Context;
use ferry_core::Store;

#[cfg(feature = "s3")]
use crate::s3;
use crate::{Config, LocalStore, Part, PartLimits};

/// Opens the root `config` names: a local directory, or with the `s3` feature an
/// `s3://BUCKET[/PREFIX]` bucket; the store, how the log names it, and how many stale uploads
/// went.
pub(crate) fn open_store(config: &Config) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    let shown = config.root.display().to_string();
    let limits = limits(config);
    if shown.starts_with(OBJECT_STORE_SCHEME) {
        return open_object_store(config, &shown, limits);
    }
    let (store, stale) = LocalStore::open_with(&config.root, limits)
        .with_context(|| format!("opening root '{shown}'"))?;
    let store = store.any_name(config.allow_any_name);
    let served = store.path().display().to_string();
    Ok((Box::new(store), served, stale))
}

/// The kept uploads of a root, for `--list-partials`, or how many `--clear-partials` removed
/// and their bytes.
pub enum Partials {
    /// The parts, oldest first.
    Listed(Vec<Part>),
    /// How many went, and their bytes.
    Cleared(usize, u64),
}

/// Lists (or with `clear` removes) the kept uploads of the root `config` names, whether or
/// not a server runs on it; uploads in progress are listed, never removed.
pub fn partials(config: &Config, clear: bool) -> anyhow::Result<Partials> {
    let shown = config.root.display().to_string();
    let context = || format!("reading the kept parts of '{shown}'");
    if shown.starts_with(OBJECT_STORE_SCHEME) {
        return object_store_partials(config, &shown, clear).with_context(context);
    }
    Ok(match clear {
        true => {
            let (count, bytes) = crate::clear_partials(&config.root).with_context(context)?;
            Partials::Cleared(count, bytes)
        }
        false => Partials::Listed(crate::list_partials(&config.root).with_context(context)?),
    })
}

#[cfg(feature = "s3")]
fn object_store_partials(config: &Config, root: &str, clear: bool) -> anyhow::Result<Partials> {
    let settings = s3::Settings::from_env(root, |name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let store = s3::S3Store::connect(settings, limits(config))?;
    Ok(match clear {
        true => {
            let (count, bytes) = store.clear_partials()?;
            Partials::Cleared(count, bytes)
        }
        false => Partials::Listed(store.partials()?),
    })
}

#[cfg(not(feature = "s3"))]
fn object_store_partials(config: &Config, root: &str, _: bool) -> anyhow::Result<Partials> {
    open_object_store(config, root, limits(config)).map(|_| unreachable!())
}

fn limits(config: &Config) -> PartLimits {
    PartLimits {
        max_age: config.partial_max_age,
        max_bytes: config.max_partial_bytes,
        max_count: config.max_partials,
        share: config.partial_share,
    }
}

/// How a root on an object store begins; a local directory cannot be named so (give
/// `./s3:/...` for one).
pub const OBJECT_STORE_SCHEME: &str = "s3://";

#[cfg(feature = "s3")]
fn open_object_store(
    config: &Config,
    root: &str,
    limits: PartLimits,
) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    let settings = s3::Settings::from_env(root, |name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening root '{root}'"))?;
    let (store, stale) =
        s3::S3Store::open(settings, limits).with_context(|| format!("opening root '{root}'"))?;
    let store = store.any_name(config.allow_any_name);
    let served = store.shown();
    Ok((Box::new(store), served, stale))
}

#[cfg(not(feature = "s3"))]
fn open_object_store(
    _: &Config,
    root: &str,
    _: PartLimits,
) -> anyhow::Result<(Box<dyn Store>, String, usize)> {
    anyhow::bail!(
        "cannot serve '{root}': this ferryd was built without object-store support (cargo \
         feature `s3` of ferry-server)"
    )
}
