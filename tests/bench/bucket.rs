//! `--root s3://BUCKET[/PREFIX]`: the prefix of this run below the one given, the check that
//! `ferryd` can serve it before any data is made, and what the run left in the bucket.
//!
//! Each workload's server serves `RUN/WORKLOAD` and the workload removes what it put there, so
//! a run leaves nothing; built with the feature `s3`, the bench lists the run's prefix at the
//! end to show it.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::workloads::Bench;

/// The root of this run: `root` (which must be `s3://BUCKET[/PREFIX]`) with a prefix of its
/// own, so that runs sharing a bucket never meet.
pub fn run_root(root: &str) -> Result<String, String> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    below(root, &format!("ferry-bench-{secs}-{}", std::process::id()))
}

/// `root` with `run` appended as one more prefix level.
fn below(root: &str, run: &str) -> Result<String, String> {
    let rest = root
        .strip_prefix("s3://")
        .ok_or_else(|| format!("--root takes s3://BUCKET[/PREFIX], not '{root}'"))?;
    let rest = rest.trim_end_matches('/');
    match rest.split('/').next() {
        Some(bucket) if !bucket.is_empty() => Ok(format!("s3://{rest}/{run}")),
        _ => Err(format!("'{root}' names no bucket")),
    }
}

/// Starts and stops one `ferryd` on the bucket, so that a ferryd built without the store, or
/// a store out of reach, stops the bench at once rather than fail every workload.
pub fn check_served(bench: &Bench) -> anyhow::Result<()> {
    let Some(bucket) = &bench.bucket else {
        return Ok(());
    };
    let server = bench.server("check", &[]).with_context(|| {
        format!(
            "ferryd cannot serve '{bucket}' (it needs the cargo feature `s3`, and \
             AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        )
    })?;
    bench.discard(server);
    Ok(())
}

/// Says on stderr whether the run left objects or multipart uploads below its prefix.
#[cfg(feature = "s3")]
pub fn report_leftovers(bench: &Bench) {
    use ferry_server::s3::{Raw, Settings};
    let Some(bucket) = &bench.bucket else {
        return;
    };
    let found = Settings::from_env(bucket, |name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)
        .and_then(|settings| {
            let prefix = format!("{}/", settings.prefix);
            let raw = Raw::standalone(settings)?;
            let pending = raw.pending(&prefix)?.into_iter().map(|p| p.key);
            Ok(raw
                .keys(&prefix)?
                .into_iter()
                .chain(pending)
                .collect::<Vec<_>>())
        });
    match found {
        Ok(left) if left.is_empty() => eprintln!("the bucket holds nothing below '{bucket}'"),
        Ok(left) => eprintln!(
            "ferry-bench: {} objects or uploads left below '{bucket}', such as '{}'",
            left.len(),
            left[0]
        ),
        Err(e) => eprintln!("ferry-bench: could not list '{bucket}': {e:#}"),
    }
}

/// Without the store's client, says that the bucket was not looked at.
#[cfg(not(feature = "s3"))]
pub fn report_leftovers(bench: &Bench) {
    if let Some(bucket) = &bench.bucket {
        eprintln!(
            "not checked that '{bucket}' is empty: ferry-bench was built without the feature \
             `s3` (ferry-tests/s3)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::below;

    #[test]
    fn each_run_gets_a_prefix_below_the_one_given() {
        assert_eq!(below("s3://ferry", "r1"), Ok("s3://ferry/r1".into()));
        assert_eq!(below("s3://ferry/", "r1"), Ok("s3://ferry/r1".into()));
        assert_eq!(
            below("s3://ferry/bench/x/", "r1"),
            Ok("s3://ferry/bench/x/r1".into())
        );
        for bad in ["ferry", "/srv/ferry", "s3://", "s3:///x", "S3://ferry"] {
            assert!(below(bad, "r1").is_err(), "{bad}");
        }
    }
}
