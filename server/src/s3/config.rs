//! Where the bucket is and how to reach it: `s3://BUCKET[/PREFIX]` and the standard AWS
//! variables. Requests are always path-style (`ENDPOINT/BUCKET/KEY`), which self-hosted
//! stores (SeaweedFS, Garage, MinIO) need and AWS still takes.

use std::fmt;
use std::time::Duration;

/// The variables read, besides the optional `AWS_SESSION_TOKEN`.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL";
const REGION_VAR: &str = "AWS_REGION";
const KEY_VAR: &str = "AWS_ACCESS_KEY_ID";
const SECRET_VAR: &str = "AWS_SECRET_ACCESS_KEY";
/// Seconds a request to the store may take (a read or write: without progress) before it is
/// given up, and retried.
pub const TIMEOUT_VAR: &str = "FERRY_S3_TIMEOUT";
/// Its value unless set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A bucket to serve and the credentials to reach it.
#[derive(Clone)]
pub struct Settings {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix served as the root, without slashes at either end ("" for all).
    pub prefix: String,
    /// The S3 endpoint, `http[s]://HOST[:PORT][/PATH]`, no final slash.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key: never printed (see the `Debug` impl).
    pub secret_key: String,
    /// A temporary credential's session token, if any.
    pub session_token: Option<String>,
    /// How long a request may take ([`TIMEOUT_VAR`]): a store that stops answering fails the
    /// request rather than hold a client's thread for ever.
    pub timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3://{}/{} at {}",
            self.bucket, self.prefix, self.endpoint
        )
    }
}

/// The bucket and prefix of an `s3://BUCKET[/PREFIX]` root, or `None` if `root` is not one.
pub fn parse_root(root: &str) -> Option<Result<(String, String), String>> {
    let rest = root.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
    if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
        return Some(Err(format!(
            "'{bucket}' is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
        return Some(Err(format!("'{prefix}' is not a plain key prefix")));
    }
    Some(Ok((bucket.to_string(), prefix.to_string())))
}

impl Settings {
    /// The settings for `s3://BUCKET[/PREFIX]` from the environment, through `var`.
    pub fn from_env(root: &str, var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let (bucket, prefix) = parse_root(root).ok_or("not an s3:// root")??;
        let region = var(REGION_VAR)
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = var(ENDPOINT_VAR)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(format!(
                "{ENDPOINT_VAR} must start with http:// or https://"
            ));
        }
        let need = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        let timeout = match var(TIMEOUT_VAR) {
            None => DEFAULT_TIMEOUT,
            Some(secs) => match secs.parse::<u64>() {
                Ok(secs @ 1..) => Duration::from_secs(secs),
                _ => {
                    return Err(format!(
                        "{TIMEOUT_VAR} must be a number of seconds, at least 1"
                    ));
                }
            },
        };
        Ok(Settings {
            bucket,
            prefix,
            endpoint,
            region,
            access_key: need(KEY_VAR)?,
            secret_key: need(SECRET_VAR)?,
            session_token: var("AWS_SESSION_TOKEN"),
            timeout,
        })
    }

    /// `http[s]://HOST[:PORT]`.
    pub fn origin(&self) -> &str {
        let after = self.endpoint.find("://").map_or(0, |i| i + 3);
        match self.endpoint[after..].find('/') {
            Some(slash) => &self.endpoint[..after + slash],
            None => &self.endpoint,
        }
    }

    /// The endpoint's own path ("" mostly).
    pub fn base_path(&self) -> &str {
        &self.endpoint[self.origin().len()..]
    }

    /// The Host header the HTTP client sends: the authority, less a default port.
    pub fn host(&self) -> String {
        let origin = self.origin();
        let (scheme, authority) = origin.split_once("://").unwrap_or(("https", origin));
        let default = if scheme == "http" { ":80" } else { ":443" };
        authority
            .strip_suffix(default)
            .unwrap_or(authority)
            .to_string()
    }

    /// The object key of a path below the root (`rel` relative, "" for the root itself).
    pub fn key(&self, rel: &str) -> String {
        match (self.prefix.as_str(), rel) {
            ("", rel) => rel.to_string(),
            (prefix, "") => format!("{prefix}/"),
            (prefix, rel) => format!("{prefix}/{rel}"),
        }
    }

    /// The root as given: `s3://BUCKET[/PREFIX]`.
    pub fn shown(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:8333/".into()),
            "AWS_ACCESS_KEY_ID" => Some("K".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("SECRETVALUE".into()),
            _ => None,
        }
    }

    #[test]
    fn reads_a_root_and_the_environment() {
        let s = Settings::from_env("s3://bucket/a/b/", env).unwrap();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("bucket", "a/b"));
        assert_eq!((s.origin(), s.base_path()), ("http://127.0.0.1:8333", ""));
        assert_eq!(
            (s.host(), s.region.as_str()),
            ("127.0.0.1:8333".into(), "us-east-1")
        );
        assert_eq!(s.key("x/y"), "a/b/x/y");
        assert_eq!(s.key(""), "a/b/");
        assert!(!format!("{s:?}").contains("SECRETVALUE"));
        assert_eq!(s.shown(), "s3://bucket/a/b");
    }

    #[test]
    fn refuses_what_is_not_a_bucket() {
        assert!(parse_root("data").is_none());
        assert!(parse_root("s3://B").unwrap().is_err());
        assert!(parse_root("s3://bucket/a/../b").unwrap().is_err());
        assert!(Settings::from_env("s3://bucket", |_| None).is_err());
    }
}
