//! AWS Signature Version 4 for the requests [`super::raw`] makes.

use std::fmt::Write as _;
use std::time::SystemTime;

use hmac::{KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use super::config::Settings;

/// SHA-256 of the empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What is signed of a request besides its headers; `path` and `query` already encoded,
/// `payload` the hex SHA-256 of its body.
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub payload: &'a str,
}

/// The headers to send with `request` signed at `now` with `s`'s credentials: `headers`, the
/// date, the payload hash and the authorization (the host is left to the HTTP client).
pub fn authorize(
    s: &Settings,
    request: &Request<'_>,
    headers: Vec<(String, String)>,
    now: SystemTime,
) -> Vec<(String, String)> {
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "");
    let date = &stamp[..8];
    let mut all: Vec<(String, String)> = vec![
        ("host".into(), request.host.to_string()),
        ("x-amz-content-sha256".into(), request.payload.into()),
        ("x-amz-date".into(), stamp.clone()),
    ];
    all.extend(
        headers
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v.trim().to_string())),
    );
    all.sort();
    let names = all
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let (method, path, query) = (request.method, request.path, request.query);
    let mut canonical = format!("{method}\n{path}\n{query}\n");
    for (k, v) in &all {
        let _ = writeln!(canonical, "{k}:{v}");
    }
    let _ = write!(canonical, "\n{names}\n{}", request.payload);
    let scope = format!("{date}/{}/s3/aws4_request", s.region);
    let digest = hex(&Sha256::digest(canonical));
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}");
    let mut key = hmac(format!("AWS4{}", s.secret_key).as_bytes(), date.as_bytes());
    for part in [s.region.as_str(), "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    all.retain(|(k, _)| k != "host");
    all.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            s.access_key
        ),
    ));
    all
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length fits HMAC");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The hex SHA-256 of a request's body.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// URI-encodes everything but the unreserved characters, as SigV4 wants.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// [`encode`] for each segment of a key, keeping its slashes.
pub fn encode_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_sigv4_wants() {
        assert_eq!(encode("a b/ü~"), "a%20b%2F%C3%BC~");
        assert_eq!(encode_path("p/a b/c"), "p/a%20b/c");
    }

    #[test]
    fn knows_the_hash_of_nothing() {
        assert_eq!(hex(&Sha256::digest(b"")), EMPTY_SHA256);
    }

    /// The example of AWS's documentation ("Signature Calculations for the Authorization
    /// Header: Transferring Payload in a Single Chunk", GET Bucket Lifecycle).
    #[test]
    fn signs_as_aws_documents() {
        let settings = Settings {
            bucket: "examplebucket".into(),
            prefix: String::new(),
            endpoint: "https://s3.amazonaws.com".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            timeout: std::time::Duration::from_secs(30),
        };
        let request = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: "lifecycle=",
            payload: EMPTY_SHA256,
        };
        let now = humantime::parse_rfc3339("2013-05-24T00:00:00Z").unwrap();
        let headers = authorize(&settings, &request, Vec::new(), now);
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }
}
