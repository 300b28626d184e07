//! The few S3 requests OpenDAL does not make, signed here with AWS Signature Version 4:
//! listing and aborting multipart uploads (the sweep), and copying an object onto itself
//! with new metadata (the digest, known only once the content has gone by).
//!
//! Requests are path-style (`ENDPOINT/BUCKET/KEY`), as every request OpenDAL makes here; a
//! body (a part, a completion) is signed with its SHA-256. The multipart requests that
//! compose kept chunks into an object are in [`super::compose`].

use std::time::SystemTime;

use opendal::Buffer;
use opendal::raw::HttpClient;

use super::config::Settings;
use super::sign::{EMPTY_SHA256, Request, authorize, encode, encode_path, payload_hash};

/// A response's headers, names in lower case.
type Headers = Vec<(String, String)>;

/// A multipart upload in progress, as ListMultipartUploads reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The object key it will make.
    pub key: String,
    /// Its id, to abort it.
    pub upload_id: String,
    /// When it was started.
    pub initiated: Option<SystemTime>,
}

/// A signing client for the bucket in `settings`.
pub struct Raw {
    settings: Settings,
    http: HttpClient,
    handle: tokio::runtime::Handle,
    /// The runtime of a client made on its own ([`Raw::standalone`]).
    own: Option<tokio::runtime::Runtime>,
}

impl Raw {
    /// A client with a runtime of its own, for tools and tests.
    pub fn standalone(settings: Settings) -> std::io::Result<Raw> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let mut raw =
            Raw::new(settings, runtime.handle().clone()).map_err(std::io::Error::other)?;
        raw.own = Some(runtime);
        Ok(raw)
    }

    /// A client sending through `handle`'s runtime.
    pub fn new(settings: Settings, handle: tokio::runtime::Handle) -> opendal::Result<Raw> {
        install_crypto();
        let _guard = handle.enter();
        let http = HttpClient::new()?;
        Ok(Raw {
            settings,
            http,
            handle,
            own: None,
        })
    }

    /// Every multipart upload in progress whose key starts with `prefix`, a page at a time.
    pub fn pending(&self, prefix: &str) -> std::io::Result<Vec<Pending>> {
        let mut all = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![
                ("encoding-type", "url".to_string()),
                ("prefix", prefix.to_string()),
                ("uploads", String::new()),
            ];
            if let Some((key, id)) = &markers {
                query.push(("key-marker", key.clone()));
                query.push(("upload-id-marker", id.clone()));
            }
            let (_, body) = self.call("GET", "", &query, &[], Buffer::new())?;
            for upload in elements(&body, "Upload") {
                let (Some(key), Some(upload_id)) =
                    (field(upload, "Key"), field(upload, "UploadId"))
                else {
                    continue;
                };
                let initiated =
                    field(upload, "Initiated").and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
                all.push(Pending {
                    key: percent_decode(&key),
                    upload_id,
                    initiated,
                });
            }
            let next = (
                field(&body, "NextKeyMarker"),
                field(&body, "NextUploadIdMarker"),
            );
            match (field(&body, "IsTruncated").as_deref(), next) {
                (Some("true"), (Some(key), Some(id))) => markers = Some((percent_decode(&key), id)),
                _ => return Ok(all),
            }
        }
    }

    /// Where the bucket is and how to reach it.
    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Aborts the multipart upload `id` of `key`.
    pub fn abort(&self, key: &str, id: &str) -> std::io::Result<()> {
        let query = [("uploadId", id.to_string())];
        self.call("DELETE", key, &query, &[], Buffer::new())
            .map(drop)
    }

    /// Every object key starting with `prefix` (for tests and tools: it holds them all).
    pub fn keys(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("encoding-type", "url".to_string()),
                ("list-type", "2".to_string()),
                ("prefix", prefix.to_string()),
            ];
            if let Some(token) = &token {
                query.push(("continuation-token", token.clone()));
            }
            let (_, body) = self.call("GET", "", &query, &[], Buffer::new())?;
            for object in elements(&body, "Contents") {
                if let Some(key) = field(object, "Key") {
                    all.push(percent_decode(&key));
                }
            }
            match (
                field(&body, "IsTruncated").as_deref(),
                field(&body, "NextContinuationToken"),
            ) {
                (Some("true"), Some(next)) => token = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Writes the object `key` (for tests and tools: the store writes through OpenDAL).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        self.call("PUT", key, &[], &[], Buffer::from(bytes))
            .map(drop)
    }

    /// The headers of object `key` (names in lower case), or `None` if there is none.
    pub fn head(&self, key: &str) -> std::io::Result<Option<Headers>> {
        match self.call("HEAD", key, &[], &[], Buffer::new()) {
            Ok((headers, _)) => Ok(Some(headers)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Copies `key` onto itself with `metadata` (names without `x-amz-meta-`) in place of its
    /// own, provided it is still the object whose ETag is `etag`.
    pub fn set_metadata(
        &self,
        key: &str,
        etag: &str,
        metadata: &[(&str, &str)],
    ) -> std::io::Result<()> {
        let source = format!("/{}/{}", self.settings.bucket, encode_path(key));
        let mut headers: Vec<(String, String)> = vec![
            ("x-amz-copy-source".into(), source),
            ("x-amz-copy-source-if-match".into(), etag.to_string()),
            ("x-amz-metadata-directive".into(), "REPLACE".into()),
        ];
        for (name, value) in metadata {
            headers.push((format!("x-amz-meta-{name}"), value.to_string()));
        }
        let (_, body) = self.call("PUT", key, &[], &headers, Buffer::new())?;
        // CopyObject may fail after its 200 status: the error is then in the body.
        if body.contains("<Error>") {
            return Err(std::io::Error::other(format!(
                "copy failed: {}",
                first_line(&body)
            )));
        }
        Ok(())
    }

    /// Sends a signed request for `key` in the bucket ("" for the bucket itself) with `body`;
    /// the headers and body of a success, else an error naming the status (never the
    /// credentials), of kind `NotFound` for a 404.
    pub(super) fn call(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, String)],
        headers: &[(String, String)],
        body: Buffer,
    ) -> std::io::Result<(Headers, String)> {
        let payload = match body.is_empty() {
            true => EMPTY_SHA256.to_string(),
            false => payload_hash(&body.to_bytes()),
        };
        let now = SystemTime::now();
        let signed = self.sign(method, (key, query), headers, &payload, now);
        let mut request = http::Request::builder().method(method).uri(&signed.url);
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if !body.is_empty() {
            request = request.header("content-length", body.len());
        }
        let request = request.body(body).map_err(std::io::Error::other)?;
        // Made inside the runtime: a timer needs its reactor.
        let within =
            async { tokio::time::timeout(self.settings.timeout, self.http.send(request)).await };
        let response = self
            .handle
            .block_on(within)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the store timed out"))?
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = String::from_utf8_lossy(&response.into_body().to_vec()).into_owned();
        if !(200..300).contains(&status) {
            let kind = match status {
                404 => std::io::ErrorKind::NotFound,
                _ => std::io::ErrorKind::Other,
            };
            let what = if key.is_empty() { "bucket" } else { "object" };
            let why = format!("{method} {what} answered {status}: {}", first_line(&body));
            return Err(std::io::Error::new(kind, why));
        }
        Ok((headers, body))
    }

    /// The URL and headers of a request signed at `now`.
    fn sign(
        &self,
        method: &str,
        (key, query): (&str, &[(&str, String)]),
        headers: &[(String, String)],
        payload: &str,
        now: SystemTime,
    ) -> Signed {
        let s = &self.settings;
        let path = match key {
            "" => format!("{}/{}", s.base_path(), encode(&s.bucket)),
            key => format!(
                "{}/{}/{}",
                s.base_path(),
                encode(&s.bucket),
                encode_path(key)
            ),
        };
        let mut query: Vec<(String, String)> =
            query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
        query.sort();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut all = headers.to_vec();
        if let Some(token) = &s.session_token {
            all.push(("x-amz-security-token".into(), token.clone()));
        }
        let request = Request {
            method,
            host: &s.host(),
            path: &path,
            query: &query,
            payload,
        };
        let headers = authorize(s, &request, all, now);
        let url = match query.is_empty() {
            true => format!("{}{path}", s.origin()),
            false => format!("{}{path}?{query}", s.origin()),
        };
        Signed { url, headers }
    }
}

/// A signed request's URL and headers.
struct Signed {
    url: String,
    headers: Vec<(String, String)>,
}

/// Makes HTTPS to the store go through rustls with the ring provider the server's own TLS
/// uses: OpenDAL's HTTP client (reqwest, built without a provider) takes the process default.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Undoes `encoding-type=url`; a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The contents of each `<tag>…</tag>` in `xml`, in order (no nesting of the same tag).
fn elements<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<tag>` in `xml`, its entities decoded.
pub(super) fn field(xml: &str, tag: &str) -> Option<String> {
    let text = elements(xml, tag).into_iter().next()?;
    // Named and numeric references alike: stores written in Go escape `"` as `&#34;`.
    match quick_xml::escape::unescape(text) {
        Ok(plain) => Some(plain.into_owned()),
        Err(_) => Some(text.to_string()),
    }
}

/// An answer's first line, cut short, for an error message.
fn first_line(body: &str) -> String {
    let code = field(body, "Code");
    code.unwrap_or_else(|| {
        body.lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_url_encoded_keys() {
        assert_eq!(percent_decode("p/a%20b+c%2"), "p/a b c%2");
    }

    #[test]
    fn reads_the_elements_of_a_listing() {
        let xml = "<R><Upload><Key>a&amp;b</Key><UploadId>1</UploadId></Upload>\
                   <Upload><Key>c</Key><UploadId>2</UploadId></Upload><IsTruncated>false</IsTruncated></R>";
        let uploads = elements(xml, "Upload");
        assert_eq!(uploads.len(), 2);
        assert_eq!(field(uploads[0], "Key").as_deref(), Some("a&b"));
        assert_eq!(field(xml, "IsTruncated").as_deref(), Some("false"));
    }

    #[test]
    fn decodes_numeric_references_as_go_stores_write_them() {
        let xml = "<CopyPartResult><ETag>&#34;9b2cf535f27731c974343645a3985328&#34;</ETag></CopyPartResult>";
        assert_eq!(
            field(xml, "ETag").as_deref(),
            Some("\"9b2cf535f27731c974343645a3985328\"")
        );
        assert_eq!(field("<E>&quot;x&#x22;</E>", "E").as_deref(), Some("\"x\""));
    }
}
