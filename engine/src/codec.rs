//! The binary codec: a leading format-version byte, the postcard encoding of
//! the [`EventBody`], and the 32-byte chain hash.
//!
//! Stored record layout: `[version u8][postcard(EventBody)][hash 32 bytes]`.
//! The hash is BLAKE3 (derive-key mode, context [`HASH_CONTEXT`]) over
//! `version || postcard(EventBody)`; the body contains the previous event's
//! hash, so each hash covers the previous hash and the event's own bytes.

use crate::event::{EventBody, Hash, RecordedEvent};
use crate::limits;

/// The format version written by this build.
pub const FORMAT_VERSION: u8 = 1;
/// Domain separation for the chain hash.
pub const HASH_CONTEXT: &str = "styrlogg event chain v1";
const HASH_BYTES: usize = 32;

/// Why bytes could not be decoded into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {0} bytes, too short to hold a version and a hash")]
    TooShort(usize),
    #[error("record is {0} bytes; the limit is {max}", max = limits::EVENT_BYTES_MAX + HASH_BYTES)]
    TooLong(usize),
    #[error("unknown format version {0} (this build reads versions 1 to {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("body does not decode: {0}")]
    Body(String),
    #[error("{0} trailing bytes after the body")]
    Trailing(usize),
    #[error("stored hash {stored} does not match the recomputed hash {computed}")]
    HashMismatch { stored: Hash, computed: Hash },
    #[error("the body is not in its one encoding (an integer written with redundant bytes), so it cannot be the record of the event it decodes to")]
    NotCanonical,
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded event is {0} bytes; the limit is {max}", max = limits::EVENT_BYTES_MAX)]
    TooLarge(usize),
    #[error("postcard: {0}")]
    Postcard(String),
}

/// `version || postcard(body)`: the bytes the hash covers.
pub fn encode_body(version: u8, body: &EventBody) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![version];
    out = postcard::to_extend(body, out).map_err(|e| EncodeError::Postcard(e.to_string()))?;
    if out.len() > limits::EVENT_BYTES_MAX {
        return Err(EncodeError::TooLarge(out.len()));
    }
    Ok(out)
}

/// The chain hash of already encoded body bytes.
pub fn hash_encoded(encoded: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    h.update(encoded);
    Hash(*h.finalize().as_bytes())
}

/// Seals a body with the current format version and returns the stored
/// record bytes and the event.
pub fn seal(body: EventBody) -> Result<(RecordedEvent, Vec<u8>), EncodeError> {
    let mut bytes = encode_body(FORMAT_VERSION, &body)?;
    let hash = hash_encoded(&bytes);
    bytes.extend_from_slice(&hash.0);
    Ok((RecordedEvent { format_version: FORMAT_VERSION, event: body, hash }, bytes))
}

/// Re-encodes a recorded event (for example one read from an export) and
/// checks its hash. Returns the stored record bytes.
pub fn reseal(event: &RecordedEvent) -> Result<Vec<u8>, DecodeError> {
    if event.format_version == 0 || event.format_version > FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(event.format_version));
    }
    let mut bytes = encode_body(event.format_version, &event.event).map_err(|e| DecodeError::Body(e.to_string()))?;
    let computed = hash_encoded(&bytes);
    if computed != event.hash {
        return Err(DecodeError::HashMismatch { stored: event.hash, computed });
    }
    bytes.extend_from_slice(&computed.0);
    Ok(bytes)
}

/// A record split into its parts: the bytes the hash covers (`version ||
/// body`), the decoded body, and the stored hash. Length, version and
/// trailing bytes are checked; neither the hash nor the encoding's
/// canonical form is.
fn split(record: &[u8]) -> Result<(&[u8], EventBody, Hash), DecodeError> {
    let (encoded, hash) = split_record(record)?;
    let body: EventBody = match encoded[0] {
        1 => {
            let (body, rest) =
                postcard::take_from_bytes::<EventBody>(&encoded[1..]).map_err(|e| DecodeError::Body(e.to_string()))?;
            if !rest.is_empty() {
                return Err(DecodeError::Trailing(rest.len()));
            }
            body
        }
        v => return Err(DecodeError::UnknownVersion(v)),
    };
    Ok((encoded, body, hash))
}

/// A record's `version || body` bytes and its stored hash, its length
/// checked.
pub(crate) fn split_record(record: &[u8]) -> Result<(&[u8], Hash), DecodeError> {
    if record.len() < 1 + HASH_BYTES {
        return Err(DecodeError::TooShort(record.len()));
    }
    if record.len() > limits::EVENT_BYTES_MAX + HASH_BYTES {
        return Err(DecodeError::TooLong(record.len()));
    }
    let (encoded, stored) = record.split_at(record.len() - HASH_BYTES);
    let mut hash = [0u8; HASH_BYTES];
    hash.copy_from_slice(stored);
    Ok((encoded, Hash(hash)))
}

/// Decodes stored record bytes and checks the hash.
pub fn decode(record: &[u8]) -> Result<RecordedEvent, DecodeError> {
    let (encoded, body, stored) = split(record)?;
    if !encodes_to(&body, &encoded[1..]) {
        return Err(DecodeError::NotCanonical);
    }
    let computed = hash_encoded(encoded);
    if computed != stored {
        return Err(DecodeError::HashMismatch { stored, computed });
    }
    Ok(RecordedEvent { format_version: encoded[0], event: body, hash: stored })
}

/// Decodes a record whose bytes are already vouched for by an enclosing
/// hash (a frame of the embedded log, whose hash covers every byte of it,
/// the stored record hash included): the body is decoded and the stored
/// hash taken as it is. Neither the record hash nor the canonical encoding
/// is recomputed; both are checked where bytes come from outside or are
/// audited: [`decode`], `verify` (which reseals every event) and import.
/// A deliberate rewrite could recompute a record hash as easily as a frame
/// hash, so checking it again on every read would add no protection.
pub fn decode_vouched(record: &[u8]) -> Result<RecordedEvent, DecodeError> {
    let (encoded, body, hash) = split(record)?;
    Ok(RecordedEvent { format_version: encoded[0], event: body, hash })
}

/// Whether `bytes` is exactly the postcard encoding of `body`. postcard
/// also reads a varint written with redundant continuation bytes (`0x81
/// 0x00` for 1), so two records could decode to one event; only the
/// encoding `seal` writes is a record, and re-encoding a decoded event
/// gives back its bytes. Compared as it is encoded, without allocating.
fn encodes_to(body: &EventBody, bytes: &[u8]) -> bool {
    struct Same<'a>(&'a [u8]);
    impl postcard::ser_flavors::Flavor for Same<'_> {
        type Output = bool;
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            match self.0.strip_prefix(data) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(())
                }
                None => Err(postcard::Error::SerializeBufferFull),
            }
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.try_extend(&[data])
        }
        fn finalize(self) -> postcard::Result<bool> {
            Ok(self.0.is_empty())
        }
    }
    postcard::serialize_with_flavor(body, Same(bytes)).unwrap_or(false)
}
