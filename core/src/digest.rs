//! [`Digest`]: the checksum that ends every content stream, verifying a transfer end to end.
//!
//! The sender hashes exactly the bytes it sends and puts the result in the `Z` frame; the
//! receiver hashes what it receives and keeps the file only when the two agree. The algorithm is
//! xxh3-128: about 7 GB/s on one core here over data from memory, 20 to 35 GB/s over a chunk
//! just read (in cache), several times what a LAN carries, with 128 bits so
//! that random corruption goes unnoticed with negligible probability even over many large
//! files. It detects corruption; it does not authenticate (TLS does that: whoever could change
//! the content could change the digest too). docs/PROTOCOL.md, "Integrity", has the
//! measurements behind the choice.
//!
//! This is the one place that knows the algorithm: swapping it means changing this file and
//! bumping [`crate::VERSION`].

use std::fmt;
use std::io::{self, Read};

// twox-hash picks the SIMD width (AVX2 where the CPU has it) at run time; a build for the
// baseline x86-64 target would otherwise hash with SSE2 only.
use twox_hash::XxHash3_128 as Xxh3;

/// The algorithm's name, as the first word of a content stream's `Z` frame.
pub const ALGORITHM: &str = "xxh3-128";

/// A running digest of content, in the order it was sent or received.
#[derive(Clone)]
pub struct Digest {
    // Boxed: the hasher carries its buffers inline, and connections move around.
    hasher: Box<Xxh3>,
    /// The result, when it was known before the content went by (see [`Digest::vouched`]).
    known: Option<String>,
}

impl Digest {
    /// The digest of nothing yet.
    pub fn new() -> Digest {
        Digest {
            hasher: Box::new(Xxh3::new()),
            known: None,
        }
    }

    /// A digest whose result is already known, `hex` (a file's digest kept with the file):
    /// what goes by is not hashed, and the receiver's own digest is the check.
    pub fn vouched(hex: String) -> Digest {
        Digest {
            known: Some(hex),
            ..Digest::new()
        }
    }

    /// Adds `bytes` to the digest.
    pub fn update(&mut self, bytes: &[u8]) {
        if self.known.is_none() {
            self.hasher.write(bytes);
        }
    }

    /// The digest of everything so far, as 32 lower-case hex digits.
    pub fn hex(&self) -> String {
        match &self.known {
            Some(hex) => hex.clone(),
            // As `{:032x}` writes it (most significant byte first), without the formatting
            // machinery (1.5% of the client's CPU in a tree download), and into a buffer at
            // once: `hex::encode` pushes a char at a time (2% of a server's CPU there, which
            // asks for a file's digest thrice).
            None => {
                let mut digits = [0; 32];
                let bytes = self.hasher.finish_128().to_be_bytes();
                hex::encode_to_slice(bytes, &mut digits).expect("two digits a byte");
                String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
            }
        }
    }

    /// The words of a content stream's `Z` frame: the algorithm and the digest.
    pub fn words(&self) -> [String; 2] {
        [ALGORITHM.to_string(), self.hex()]
    }

    /// The digest of exactly the first `len` bytes of `src`, read through `buf` (whose size
    /// bounds the memory used). A source shorter than `len` is `UnexpectedEof`.
    pub fn of_prefix<R: Read + ?Sized>(
        src: &mut R,
        len: u64,
        buf: &mut [u8],
    ) -> io::Result<Digest> {
        let mut digest = Digest::new();
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = src.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            digest.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(digest)
    }

    /// The digest a peer sent as `[algorithm, hex]` words, if they name this algorithm.
    pub fn parse_words(words: &[String]) -> Option<&str> {
        match words {
            [algorithm, hex]
                if algorithm == ALGORITHM
                    && hex.len() == 32
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(hex)
            }
            _ => None,
        }
    }
}

impl Default for Digest {
    fn default() -> Digest {
        Digest::new()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({ALGORITHM} {})", self.hex())
    }
}

/// Two digests that should have agreed: the content is not what the sender sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// What the sender said the content hashes to.
    pub expected: String,
    /// What the content received hashes to.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "digest mismatch: sent content has {ALGORITHM} {}, received content has {}",
            self.expected, self.actual
        )
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vouched_digest_ignores_what_goes_by() {
        let kept = "0123456789abcdef0123456789abcdef".to_string();
        let mut digest = Digest::vouched(kept.clone());
        digest.update(b"anything");
        assert_eq!(digest.hex(), kept);
        assert_eq!(digest.words(), [ALGORITHM.to_string(), kept]);
    }

    #[test]
    fn known_values_and_streaming_agree() {
        // The reference value of XXH3-128 for empty input.
        assert_eq!(Digest::new().hex(), "99aa06d3014798d86001c324468d497f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let mut whole = Digest::new();
        whole.update(&data);
        let mut pieces = Digest::new();
        for chunk in data.chunks(777) {
            pieces.update(chunk);
        }
        assert_eq!(whole.hex(), pieces.hex());
        let mut buf = [0; 1000];
        let prefix = Digest::of_prefix(&mut &data[..], 5000, &mut buf).unwrap();
        let mut direct = Digest::new();
        direct.update(&data[..5000]);
        assert_eq!(prefix.hex(), direct.hex());
        let short = Digest::of_prefix(&mut &data[..10], 11, &mut buf).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn words_parse_back_and_others_do_not() {
        let d = Digest::new();
        let words = d.words();
        assert_eq!(Digest::parse_words(&words), Some(d.hex().as_str()));
        for bad in [
            vec![],
            vec!["xxh3-128".to_string()],
            vec!["crc32".into(), d.hex()],
            vec!["xxh3-128".into(), "zz".repeat(16)],
            vec!["xxh3-128".into(), d.hex(), "extra".into()],
        ] {
            assert_eq!(Digest::parse_words(&bad), None, "{bad:?}");
        }
    }
}
