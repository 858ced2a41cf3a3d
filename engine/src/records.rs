//! Events read for folding: a page of stored records, and borrowed views of
//! them that decode only what folding instance states without facts reads
//! (the envelope, and a recorded step's name, deviation and lateness),
//! without allocating. Anything else is decoded in full on demand.
//!
//! A view reads the bytes [`codec::decode_vouched`] reads, through mirrors
//! of the stored types whose fields borrow from the record. The mirrors
//! follow the format promise of [`crate::event`]: postcard writes a struct
//! as its fields one after another, so a mirror with the same fields in
//! the same order reads the same bytes. `tests/it/corpus.rs` checks every
//! committed encoding both ways.
//!
//! What a view checks is less than a full decode: the texts it passes
//! over (actor, command id, facts) are not checked for UTF-8, nor fact
//! dates for being dates, nor the instance id against its rules, and
//! events other than steps are read only as far as their kind. The frame
//! hash vouches for every byte, as it does for `decode_vouched`; `verify`
//! decodes and checks every record in full.

use crate::codec::{self, DecodeError};
use crate::event::{date_format, timestamp_format, EventId, FactValue, Hash, Lateness, PersonId, PersonKind};
use crate::event::{RecordedEvent, SealNonce};
use crate::store::StoreError;
use compact_str::CompactString;
use jiff::civil::Date;
use jiff::Timestamp;
use serde::de::{EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::ops::Range;

/// A page of the log, in position order.
pub struct RecordPage {
    inner: Inner,
}

enum Inner {
    /// Records as stored, vouched for by the hash of the frame each was
    /// read from: the bytes, each record's envelope decoded where the page
    /// was read, and where each frame was read (for errors).
    Stored { bytes: Vec<u8>, records: Vec<Glance>, frames: Vec<String> },
    /// Events already decoded (a backend that keeps no frames).
    Events(Vec<RecordedEvent>),
}

/// What a view shows of a stored record, decoded on the thread that read
/// the page, so that the thread folding it does not decode. Short texts
/// (ids and step names) stay inline, without allocating.
struct Glance {
    event_id: EventId,
    instance: CompactString,
    sequence: u64,
    position: u64,
    occurred_on: Date,
    recorded_at: Timestamp,
    hash: Hash,
    step: Option<(CompactString, Option<String>, Option<Lateness>)>,
    record: Range<usize>,
    frame: usize,
}

impl RecordPage {
    pub fn from_events(events: Vec<RecordedEvent>) -> Self {
        RecordPage { inner: Inner::Events(events) }
    }

    /// Records whose frames were checked: `records` holds (position, range
    /// in `bytes`, index into `frames`), `frames` where each frame was read.
    /// Each record's envelope is decoded here; a record that does not
    /// decode, or does not hold the position it is stored at, is corrupt.
    pub(crate) fn stored(
        bytes: Vec<u8>,
        records: Vec<(u64, Range<usize>, usize)>,
        frames: Vec<String>,
    ) -> Result<Self, StoreError> {
        let records = records
            .into_iter()
            .map(|(position, record, frame)| {
                let at = &frames[frame];
                let corrupt = |reason: String| StoreError::Corrupt { position, reason: format!("{at}: {reason}") };
                let g = glance(&bytes[record.clone()], record, frame).map_err(|e| corrupt(e.to_string()))?;
                if g.position != position {
                    return Err(corrupt(format!("the record says it is position {}", g.position)));
                }
                Ok(g)
            })
            .collect::<Result<_, _>>()?;
        Ok(RecordPage { inner: Inner::Stored { bytes, records, frames } })
    }

    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Stored { records, .. } => records.len(),
            Inner::Events(events) => events.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of the page's last event.
    pub fn last_position(&self) -> Option<u64> {
        match &self.inner {
            Inner::Stored { records, .. } => records.last().map(|r| r.position),
            Inner::Events(events) => events.last().map(|e| e.event.position),
        }
    }

    /// The `i`th event's view.
    pub fn get(&self, i: usize) -> EventRef<'_> {
        match &self.inner {
            Inner::Stored { bytes, records, frames } => {
                let g = &records[i];
                EventRef {
                    event_id: g.event_id,
                    instance: &g.instance,
                    sequence: g.sequence,
                    position: g.position,
                    occurred_on: g.occurred_on,
                    recorded_at: g.recorded_at,
                    hash: g.hash,
                    step: g.step.as_ref().map(|(step, deviation, late)| StepRef {
                        step,
                        deviation: deviation.as_deref(),
                        late: *late,
                    }),
                    source: Source::Record(&bytes[g.record.clone()], &frames[g.frame]),
                }
            }
            Inner::Events(events) => EventRef::of(&events[i]),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// An event's envelope, and its step when it records one, borrowed from
/// the page it was read in.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub event_id: EventId,
    pub instance: &'a str,
    pub sequence: u64,
    pub position: u64,
    pub occurred_on: Date,
    pub recorded_at: Timestamp,
    pub hash: Hash,
    /// The step, when the event is a `step_recorded`.
    pub step: Option<StepRef<'a>>,
    source: Source<'a>,
}

/// A recorded step without its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRef<'a> {
    pub step: &'a str,
    pub deviation: Option<&'a str>,
    pub late: Option<Lateness>,
}

#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// The stored record, and where it was read (for errors).
    Record(&'a [u8], &'a str),
    Event(&'a RecordedEvent),
}

impl<'a> EventRef<'a> {
    /// The view of an event already decoded.
    pub fn of(e: &'a RecordedEvent) -> Self {
        let b = &e.event;
        let step = match &b.payload {
            crate::Payload::StepRecorded { step, deviation, late, .. } => {
                Some(StepRef { step, deviation: deviation.as_deref(), late: *late })
            }
            _ => None,
        };
        EventRef {
            event_id: b.event_id,
            instance: b.instance.as_str(),
            sequence: b.sequence,
            position: b.position,
            occurred_on: b.occurred_on,
            recorded_at: b.recorded_at,
            hash: e.hash,
            step,
            source: Source::Event(e),
        }
    }

    /// The whole event, decoded.
    pub fn to_event(&self) -> Result<RecordedEvent, StoreError> {
        match self.source {
            Source::Record(record, at) => codec::decode_vouched(record)
                .map_err(|e| StoreError::Corrupt { position: self.position, reason: format!("{at}: {e}") }),
            Source::Event(e) => Ok(e.clone()),
        }
    }
}

/// Decodes what a view shows of a record, as [`codec::decode_vouched`]
/// decodes the event: length and version are checked, the hash is taken
/// as stored.
fn glance(bytes: &[u8], record: Range<usize>, frame: usize) -> Result<Glance, DecodeError> {
    let (encoded, hash) = codec::split_record(bytes)?;
    let (head, rest): (Head<'_>, _) = match encoded[0] {
        1 => postcard::take_from_bytes(&encoded[1..]).map_err(|e| DecodeError::Body(e.to_string()))?,
        v => return Err(DecodeError::UnknownVersion(v)),
    };
    // A step is read to its end: only the previous event's hash follows.
    if matches!(head.payload, PayloadHead::Step(_)) && rest.len() != HASH_BYTES {
        return Err(if rest.len() > HASH_BYTES {
            DecodeError::Trailing(rest.len() - HASH_BYTES)
        } else {
            DecodeError::Body("the record ends before the previous event's hash".into())
        });
    }
    Ok(Glance {
        event_id: head.event_id,
        instance: head.instance.into(),
        sequence: head.sequence,
        position: head.position,
        occurred_on: head.occurred_on,
        recorded_at: head.recorded_at,
        hash,
        step: match head.payload {
            PayloadHead::Step(s) => Some((s.step.into(), s.deviation.map(str::to_string), s.late)),
            PayloadHead::Other => None,
        },
        record,
        frame,
    })
}

/// `EventBody` up to its payload: the fields after it are not read.
#[derive(Deserialize)]
#[allow(dead_code)] // read to get past them
struct Head<'a> {
    event_id: EventId,
    instance: &'a str,
    sequence: u64,
    position: u64,
    #[serde(with = "date_format")]
    occurred_on: Date,
    #[serde(with = "timestamp_format")]
    recorded_at: Timestamp,
    /// `Actor { name, role }`. Texts passed over are read as the bytes
    /// they are stored as (postcard writes a text as its bytes), without
    /// checking their UTF-8 again.
    actor: (&'a [u8], &'a [u8]),
    command_id: &'a [u8],
    #[serde(borrow)]
    payload: PayloadHead<'a>,
}

/// `Payload`, read only as far as `StepRecorded` (variant 1); any other
/// variant stops there.
enum PayloadHead<'a> {
    Step(StepHead<'a>),
    Other,
}

/// `Payload::StepRecorded`, its facts passed over.
#[derive(Deserialize)]
struct StepHead<'a> {
    step: &'a str,
    #[serde(borrow)]
    _facts: Vec<FactMirror<'a>>,
    deviation: Option<&'a str>,
    late: Option<Lateness>,
}

impl<'de: 'a, 'a> Deserialize<'de> for PayloadHead<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = PayloadHead<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payload")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
                let (variant, rest): (u32, _) = data.variant()?;
                match variant {
                    STEP_RECORDED => rest.newtype_variant().map(PayloadHead::Step),
                    _ => Ok(PayloadHead::Other),
                }
            }
        }
        d.deserialize_enum("Payload", PAYLOAD_VARIANTS, V(std::marker::PhantomData))
    }
}

/// The previous event's hash, after the payload.
const HASH_BYTES: usize = 32;

/// `Payload::StepRecorded`'s index among the payload's variants.
const STEP_RECORDED: u32 = 1;
const PAYLOAD_VARIANTS: &[&str] = &[
    "instance_started",
    "step_recorded",
    "step_corrected",
    "deadline_changed",
    "note_added",
    "deadline_missed",
    "notice_claimed",
    "notice_delivered",
    "notice_failed",
    "signing_key_rotated",
    "person_erased",
];

/// `Fact`, borrowed, read to get past it.
#[derive(Deserialize)]
#[allow(dead_code)]
struct FactMirror<'a> {
    name: &'a [u8],
    #[serde(borrow)]
    value: FactValueMirror<'a>,
}

/// `FactValue`, variant for variant (dates as the `(year, month, day)`
/// they are stored as, texts as their bytes).
#[derive(Deserialize)]
#[allow(dead_code)]
enum FactValueMirror<'a> {
    Date((i16, i8, i8)),
    Text(&'a [u8]),
    AmountSek { ore: i64 },
    Person { name: &'a [u8], role: &'a [u8], kind: PersonKind },
    CaseNumber(&'a [u8]),
    MinutesRef { body: &'a [u8], date: (i16, i8, i8), paragraph: &'a [u8] },
    Document { title: &'a [u8], sha256: &'a [u8] },
    Choice(&'a [u8]),
    Sealed { person: PersonId, nonce: SealNonce, ciphertext: &'a [u8] },
}

/// Does not compile when `FactValue` gains a variant: add it to
/// [`FactValueMirror`] too (at the end, as the format promise says), or
/// steps carrying it would not decode here.
#[allow(dead_code)]
fn mirrored(v: &FactValue) {
    match v {
        FactValue::Date(_)
        | FactValue::Text(_)
        | FactValue::AmountSek { .. }
        | FactValue::Person { .. }
        | FactValue::CaseNumber(_)
        | FactValue::MinutesRef { .. }
        | FactValue::Document { .. }
        | FactValue::Choice(_)
        | FactValue::Sealed { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_another_version_or_too_short_is_refused() {
        let mut record = vec![2u8];
        record.extend_from_slice(&[0; 40]);
        assert!(matches!(glance(&record, 0..41, 0), Err(DecodeError::UnknownVersion(2))));
        assert!(matches!(glance(&[1, 2, 3], 0..3, 0), Err(DecodeError::TooShort(3))));
    }
}
