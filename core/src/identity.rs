//! Who is who: server identities by [`Fingerprint`], and the proof that a client knows an
//! access token, bound to one session.

use base64::Engine;
use sha2::{Digest as _, Sha256};

/// A server's identity as people compare it: `SHA256:` and the unpadded base64 of the SHA-256
/// of its certificate (DER), as ssh prints host keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(cert_der);
        let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest);
        Fingerprint(format!("SHA256:{text}"))
    }

    /// A fingerprint written as [`Fingerprint::of`] writes one; `None` for anything else.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let encoded = text.trim().strip_prefix("SHA256:")?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .ok()?;
        (bytes.len() == 32).then(|| Fingerprint(format!("SHA256:{encoded}")))
    }

    /// The text, `SHA256:...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a server started with `port_file` writes its fingerprint, for clients on the same
/// machine: beside it, `<port file>.fingerprint`.
pub fn fingerprint_file(port_file: &std::path::Path) -> std::path::PathBuf {
    let mut name = port_file.as_os_str().to_owned();
    name.push(".fingerprint");
    std::path::PathBuf::from(name)
}

/// The proof that the client knows `token`, for the session whose [`Tls::binding`] is
/// `binding`: HMAC-SHA256 keyed with the token's SHA-256, in hex.
pub fn proof(token: &str, binding: &[u8; 32]) -> String {
    proof_with_key(&token_key(token), binding)
}

/// The key a token's proofs are made with; a server keeps this rather than the token.
pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// [`proof`] from the token's key.
pub fn proof_with_key(key: &[u8; 32], binding: &[u8; 32]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length fits HMAC");
    mac.update(binding);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when `given` is the proof for the token whose key is `key`, compared in constant time.
pub fn proof_matches(key: &[u8; 32], binding: &[u8; 32], given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = proof_with_key(key, binding);
    // A wrong length says nothing secret; the bytes are compared in constant time.
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}
