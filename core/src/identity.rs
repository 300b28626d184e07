//! Who is who: server identities by [`Fingerprint`], and the proof that a client knows an
//! access token, bound to one session.

use base64::Engine;
use ring::{digest, hmac};

/// A server's identity as people compare it: `SHA256:` and the unpadded base64 of the SHA-256
/// of its certificate (DER), as ssh prints host keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let digest = digest::digest(&digest::SHA256, cert_der);
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
///
/// SHA-256 and HMAC come from ring, which rustls already uses: a second implementation (the
/// sha2 crate) probed the CPU's features once more in every `ferry` process, and on a virtual
/// machine each CPUID instruction costs microseconds (docs/PERFORMANCE.md).
pub fn token_key(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// [`proof`] from the token's key.
pub fn proof_with_key(key: &[u8; 32], binding: &[u8; 32]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), binding))
}

/// True when `given` is the proof for the token whose key is `key`, checked in constant time
/// (ring's `hmac::verify`). What is not lower-case hex, as proofs are written, is refused
/// first: its form says nothing secret.
pub fn proof_matches(key: &[u8; 32], binding: &[u8; 32], given: &str) -> bool {
    if !given
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return false;
    }
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), binding, &given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers (Python's hashlib and hmac): what goes on the wire does not depend on
    /// which library computes it.
    #[test]
    fn fingerprints_and_proofs_are_the_standard_sha256_and_hmac() {
        assert_eq!(
            Fingerprint::of(b"certificate").as_str(),
            "SHA256:A9Zt0Ig1wco/EozOrNHzGslBYwlrIPRFroQoW8CDLXI"
        );
        let binding: [u8; 32] = std::array::from_fn(|i| i as u8);
        let expected = "00322f5265efcdeeb66a2886f212f8289d6e3d7d20293f6041d3805293fa458f";
        assert_eq!(proof("t0ken", &binding), expected);
        assert!(proof_matches(&token_key("t0ken"), &binding, expected));
    }

    #[test]
    fn a_proof_matches_only_its_token_and_session() {
        let (binding, other) = ([7u8; 32], [8u8; 32]);
        let key = token_key("t0ken");
        let given = proof("t0ken", &binding);
        assert!(proof_matches(&key, &binding, &given));
        assert!(!proof_matches(&key, &other, &given));
        assert!(!proof_matches(&token_key("t0kem"), &binding, &given));
        let upper = given.to_uppercase();
        for bad in [&given[..62], "", "zz", &format!("{given}00"), &upper] {
            assert!(!proof_matches(&key, &binding, bad), "{bad:?}");
        }
    }
}
