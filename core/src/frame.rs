//! Frames: the codec of every message on the wire, failures included.
//!
//! A frame is a kind byte, a 32-bit big-endian payload length and the payload. Control frames
//! carry a list of UTF-8 words (each a 16-bit big-endian length and its bytes); data frames carry
//! raw file content. Each kind has its own length bound, checked before anything is allocated.

use crate::error::{Failure, WireError};

/// Bytes in a frame header: kind (1) and payload length (4).
pub const HEADER_LEN: usize = 5;
/// Largest payload of a control frame.
pub const MAX_CONTROL: u32 = 64 * 1024;
/// Largest payload of a data frame.
pub const MAX_DATA: u32 = 4 * 1024 * 1024;

/// What a frame is for; the byte is the ASCII letter shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `H`: greeting, sent once by each side.
    Hello,
    /// `Q`: a request: the verb, then its arguments.
    Request,
    /// `C`: a chained request, sent without waiting for the replies to earlier ones: run
    /// only if no chained request since the last `Q` has failed, else answered `E skipped`.
    Chained,
    /// `O`: success, with verb-specific words.
    Ok,
    /// `E`: failure: an error code and a message.
    Error,
    /// `I`: one item of a listing.
    Item,
    /// `D`: a piece of file content (raw bytes, not words).
    Data,
    /// `Z`: end of a listing or a content stream.
    End,
    /// `X`: the sender abandons a content stream: an error code and a message.
    Abort,
}

impl Kind {
    /// The kind's byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Hello => b'H',
            Kind::Request => b'Q',
            Kind::Chained => b'C',
            Kind::Ok => b'O',
            Kind::Error => b'E',
            Kind::Item => b'I',
            Kind::Data => b'D',
            Kind::End => b'Z',
            Kind::Abort => b'X',
        }
    }

    /// The kind for a byte, if it names one.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            b'H' => Kind::Hello,
            b'Q' => Kind::Request,
            b'C' => Kind::Chained,
            b'O' => Kind::Ok,
            b'E' => Kind::Error,
            b'I' => Kind::Item,
            b'D' => Kind::Data,
            b'Z' => Kind::End,
            b'X' => Kind::Abort,
            _ => return None,
        })
    }

    /// The largest payload this kind may declare.
    pub fn limit(self) -> u32 {
        match self {
            Kind::Data => MAX_DATA,
            _ => MAX_CONTROL,
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame's kind.
    pub kind: Kind,
    /// The payload length, already checked against the kind's limit.
    pub len: u32,
}

impl Header {
    /// Decodes a header from the first [`HEADER_LEN`] bytes.
    ///
    /// Fewer bytes are [`WireError::Truncated`]; an unknown kind or a length over the kind's
    /// limit (or a zero-length data frame) is [`WireError::Invalid`].
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let kind = Kind::from_byte(bytes[0])
            .ok_or_else(|| WireError::Invalid(format!("unknown frame kind 0x{:02x}", bytes[0])))?;
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if len > kind.limit() {
            return Err(WireError::Invalid(format!(
                "{kind:?} frame of {len} bytes exceeds the limit of {}",
                kind.limit()
            )));
        }
        if kind == Kind::Data && len == 0 {
            return Err(WireError::Invalid("empty data frame".into()));
        }
        Ok(Header { kind, len })
    }

    /// The header's bytes on the wire.
    pub fn encode(self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        [self.kind.byte(), l[0], l[1], l[2], l[3]]
    }
}

/// A control frame: a kind and its words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's kind (never [`Kind::Data`]).
    pub kind: Kind,
    /// The words, in order.
    pub words: Vec<String>,
}

impl Frame {
    /// A frame of `kind` with `words`.
    pub fn new<W: Into<String>>(kind: Kind, words: impl IntoIterator<Item = W>) -> Frame {
        Frame {
            kind,
            words: words.into_iter().map(Into::into).collect(),
        }
    }

    /// The `E` or `X` frame carrying `failure`: its code and message (read back with
    /// [`Failure::from_words`]).
    pub fn failure(kind: Kind, failure: &Failure) -> Frame {
        Frame::new(kind, [failure.kind.code(), failure.message.as_str()])
    }

    /// Appends the frame's bytes to `out`; a frame over [`MAX_CONTROL`] or a word over 65535
    /// bytes is refused, leaving `out` as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        for word in &self.words {
            let Ok(len) = u16::try_from(word.len()) else {
                out.truncate(start);
                return Err(WireError::Invalid(format!(
                    "word of {} bytes is too long",
                    word.len()
                )));
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(word.as_bytes());
        }
        let len = out.len() - start - HEADER_LEN;
        if len > MAX_CONTROL as usize || self.kind == Kind::Data {
            out.truncate(start);
            return Err(WireError::Invalid(format!(
                "{:?} frame of {len} bytes cannot be sent",
                self.kind
            )));
        }
        let header = Header {
            kind: self.kind,
            len: len as u32,
        };
        out[start..start + HEADER_LEN].copy_from_slice(&header.encode());
        Ok(())
    }

    /// Decodes one control frame from the start of `bytes`, returning it and the bytes used.
    pub fn decode(bytes: &[u8]) -> Result<(Frame, usize), WireError> {
        let header = Header::parse(bytes)?;
        if header.kind == Kind::Data {
            return Err(WireError::Invalid(
                "data frame where words were expected".into(),
            ));
        }
        let end = HEADER_LEN + header.len as usize;
        let payload = bytes.get(HEADER_LEN..end).ok_or(WireError::Truncated)?;
        let words = decode_words(payload)?;
        Ok((
            Frame {
                kind: header.kind,
                words,
            },
            end,
        ))
    }
}

/// Splits a control payload into its words.
pub fn decode_words(mut payload: &[u8]) -> Result<Vec<String>, WireError> {
    let mut words = Vec::new();
    while !payload.is_empty() {
        let [a, b, rest @ ..] = payload else {
            return Err(WireError::Invalid("word length cut short".into()));
        };
        let len = u16::from_be_bytes([*a, *b]) as usize;
        if rest.len() < len {
            return Err(WireError::Invalid(format!(
                "word of {len} bytes overruns its frame"
            )));
        }
        let word = std::str::from_utf8(&rest[..len])
            .map_err(|_| WireError::Invalid("word is not UTF-8".into()))?;
        words.push(word.to_owned());
        payload = &rest[len..];
    }
    Ok(words)
}

/// True when `bytes` begin with a whole request and the whole of any content sent with it:
/// its frame, then either its content's data frames and their `Z`, or the next request's
/// header. Bytes that end where content might still follow the request are not whole.
pub fn whole_request(mut bytes: &[u8]) -> bool {
    let mut first = true;
    loop {
        let Ok(header) = Header::parse(bytes) else {
            return false;
        };
        if !first && !matches!(header.kind, Kind::Data | Kind::End) {
            // The next request: the one before took no content.
            return true;
        }
        let end = HEADER_LEN + header.len as usize;
        if bytes.len() < end {
            return false;
        }
        if !first && header.kind == Kind::End {
            return true;
        }
        bytes = &bytes[end..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trip() {
        let frame = Frame::new(Kind::Request, ["UPLOAD", "my file ✓.txt", "", "42"]);
        let encoded = bytes(&frame);
        assert_eq!(&encoded[..HEADER_LEN], &[b'Q', 0, 0, 0, 31]);
        assert_eq!(Frame::decode(&encoded).unwrap(), (frame, encoded.len()));
    }

    #[test]
    fn exact_bytes() {
        let encoded = bytes(&Frame::new(Kind::Hello, ["FERRY", "1"]));
        assert_eq!(encoded, b"H\0\0\0\x0a\0\x05FERRY\0\x011");
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let encoded = bytes(&Frame::new(Kind::Error, ["not-found", "no such file"]));
        for cut in 0..encoded.len() {
            assert!(
                matches!(Frame::decode(&encoded[..cut]), Err(WireError::Truncated)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn garbage_is_invalid() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"Q\xff\xff\xff\xff",
            b"D\0\0\0\0",
            b"D\x01\0\0\x01",
            b"Q\0\0\0\x01x",
            b"Q\0\0\0\x03\0\x05a",
            b"Q\0\0\0\x04\0\x02\xff\xfe",
        ] {
            assert!(
                matches!(Frame::decode(bad), Err(WireError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn oversized_frame_is_refused_when_encoding() {
        let mut out = vec![7];
        let big = "x".repeat(60_000);
        let frame = Frame::new(Kind::Ok, [big.clone(), big]);
        assert!(frame.encode(&mut out).is_err());
        assert_eq!(out, [7]);
    }

    #[test]
    fn every_kind_round_trips_its_byte() {
        let mut kinds = 0;
        for b in 0..=255u8 {
            if let Some(kind) = Kind::from_byte(b) {
                assert_eq!(kind.byte(), b);
                kinds += 1;
            }
        }
        assert_eq!(kinds, 9, "H Q C O E I D Z X");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn control_kind() -> impl Strategy<Value = Kind> {
            prop::sample::select(vec![
                Kind::Hello,
                Kind::Request,
                Kind::Chained,
                Kind::Ok,
                Kind::Error,
                Kind::Item,
                Kind::End,
                Kind::Abort,
            ])
        }

        fn frame() -> impl Strategy<Value = Frame> {
            (control_kind(), prop::collection::vec(any::<String>(), 0..8))
                .prop_map(|(kind, words)| Frame { kind, words })
        }

        proptest! {
            #[test]
            fn any_frame_round_trips(frame in frame()) {
                let mut out = Vec::new();
                frame.encode(&mut out).unwrap();
                prop_assert_eq!(Frame::decode(&out).unwrap(), (frame, out.len()));
            }

            #[test]
            fn a_frame_followed_by_more_bytes_decodes_to_its_own_length(
                frame in frame(),
                tail in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut out = Vec::new();
                frame.encode(&mut out).unwrap();
                let len = out.len();
                out.extend_from_slice(&tail);
                prop_assert_eq!(Frame::decode(&out).unwrap(), (frame, len));
            }

            #[test]
            fn every_truncation_of_any_frame_is_truncated(frame in frame(), cut in any::<prop::sample::Index>()) {
                let mut out = Vec::new();
                frame.encode(&mut out).unwrap();
                let cut = cut.index(out.len());
                prop_assert!(matches!(Frame::decode(&out[..cut]), Err(WireError::Truncated)));
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = Header::parse(&bytes);
                let _ = decode_words(&bytes);
                if let Ok((frame, used)) = Frame::decode(&bytes) {
                    // Whatever decodes re-encodes to exactly the bytes it came from.
                    let mut again = Vec::new();
                    frame.encode(&mut again).unwrap();
                    prop_assert_eq!(&again[..], &bytes[..used]);
                }
            }

            #[test]
            fn a_header_never_admits_more_than_its_kind_allows(bytes in any::<[u8; HEADER_LEN]>()) {
                if let Ok(header) = Header::parse(&bytes) {
                    prop_assert!(header.len <= header.kind.limit());
                    prop_assert_eq!(header.encode(), bytes);
                }
            }
        }
    }

    #[test]
    fn a_request_is_whole_with_its_content_or_the_next_request() {
        let mut bytes = Vec::new();
        Frame::new(Kind::Chained, ["UPLOAD", "x", "3", "eager"])
            .encode(&mut bytes)
            .unwrap();
        let request = bytes.len();
        bytes.extend_from_slice(
            &Header {
                kind: Kind::Data,
                len: 3,
            }
            .encode(),
        );
        bytes.extend_from_slice(b"abc");
        Frame::new(Kind::End, ["xxh3", "00"])
            .encode(&mut bytes)
            .unwrap();
        assert!(whole_request(&bytes));
        for cut in 0..bytes.len() {
            assert!(!whole_request(&bytes[..cut]), "cut at {cut}");
        }
        let mut two = bytes[..request].to_vec();
        two.extend_from_slice(&bytes[..request]);
        assert!(whole_request(&two));
    }
}
