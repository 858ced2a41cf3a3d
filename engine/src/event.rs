//! The event envelope and payload types: the persisted format.
//!
//! Compatibility promise: these types are encoded with postcard, which is
//! not self-describing. Never reorder, remove or retype a field or an enum
//! variant of an encoded type; add new variants only at the end of an enum.
//! `tests/corpus/` holds encodings that must decode forever.

use crate::limits;
use compact_str::CompactString;
use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a value offered to the engine was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
    /// What the reason says, for a caller that says it in other words
    /// (another language).
    pub kind: Invalid,
}

/// What is wrong with a refused value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Empty,
    TooLong {
        bytes: usize,
        max: usize,
    },
    /// A control character where none may be.
    Control(char),
    /// A bidirectional control ([`is_bidi_control`]).
    Bidi(char),
    /// A character an id may not hold.
    IdChar(char),
    /// Anything else: only the reason says it.
    Other,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidField {
    invalid_as(field, Invalid::Other, reason)
}

fn invalid_as(field: impl Into<String>, kind: Invalid, reason: impl Into<String>) -> InvalidField {
    InvalidField { field: field.into(), reason: reason.into(), kind }
}

/// Checks a short or long string: length bound, no control characters
/// (newline and tab are allowed where `multiline` is set), and no
/// bidirectional controls, which reorder how the text around them is shown
/// (U+202A-U+202E, U+2066-U+2069), so that what a report shows is what
/// was recorded.
pub fn check_text(field: &str, s: &str, max_bytes: usize, multiline: bool) -> Result<(), InvalidField> {
    if s.len() > max_bytes {
        let kind = Invalid::TooLong { bytes: s.len(), max: max_bytes };
        return Err(invalid_as(field, kind, format!("is {} bytes long; the limit is {max_bytes}", s.len())));
    }
    let control = |c: char| c.is_control() && !(multiline && (c == '\n' || c == '\t'));
    // One pass; ASCII text (nearly all) has no bidirectional controls.
    let found = if s.is_ascii() {
        s.bytes().map(char::from).find(|c| control(*c))
    } else {
        s.chars().find(|c| control(*c) || is_bidi_control(*c))
    };
    match found {
        None => Ok(()),
        Some(c) if is_bidi_control(c) => Err(invalid_as(
            field,
            Invalid::Bidi(c),
            format!("contains the bidirectional control U+{:04X}, which changes how the text is shown", c as u32),
        )),
        Some(c) => {
            Err(invalid_as(field, Invalid::Control(c), format!("contains the control character U+{:04X}", c as u32)))
        }
    }
}

/// The explicit bidirectional embeddings, overrides and isolates: they make
/// text display in another order than it is stored ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A justification: required, multi-line, up to [`limits::TEXT_BYTES_MAX`].
pub fn check_reason(field: &str, s: &str) -> Result<(), InvalidField> {
    if s.trim().is_empty() {
        return Err(invalid_as(field, Invalid::Empty, "must not be empty: say why"));
    }
    check_text(field, s, limits::TEXT_BYTES_MAX, true)
}

/// A signed-note key name: non-empty, no spaces, no `+` (C2SP signed-note).
pub fn check_key_name(s: &str) -> Result<(), InvalidField> {
    check_name("key name", s)?;
    if s.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(invalid("key name", format!("{s:?} must not contain spaces or '+' (C2SP signed-note)")));
    }
    Ok(())
}

pub fn check_name(field: &str, s: &str) -> Result<(), InvalidField> {
    if s.trim().is_empty() {
        return Err(invalid_as(field, Invalid::Empty, "must not be empty"));
    }
    check_text(field, s, limits::NAME_BYTES_MAX, false)
}

/// A workflow instance: one organisation's run through one workflow. Each
/// instance is one stream with its own contiguous sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceId(CompactString);

impl InstanceId {
    /// Letters (Swedish ones included), digits and `- _ . : /`; 1 to
    /// [`limits::INSTANCE_ID_BYTES_MAX`] bytes.
    pub fn new(s: impl Into<CompactString>) -> Result<Self, InvalidField> {
        let s = s.into();
        check_id("instance id", &s, limits::INSTANCE_ID_BYTES_MAX)?;
        Ok(InstanceId(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_id(field: &str, s: &str, max: usize) -> Result<(), InvalidField> {
    if s.is_empty() {
        return Err(invalid_as(field, Invalid::Empty, "must not be empty"));
    }
    if s.len() > max {
        let kind = Invalid::TooLong { bytes: s.len(), max };
        return Err(invalid_as(field, kind, format!("is {} bytes long; the limit is {max}", s.len())));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || "-_.:/".contains(*c))) {
        let reason = format!("{s:?} contains {c:?}; use letters, digits and - _ . : / only");
        return Err(invalid_as(field, Invalid::IdChar(c), reason));
    }
    Ok(())
}

/// Maps keyed by instance can be looked up by the id's text (a borrowed
/// [`crate::EventRef`] holds no `InstanceId`); its order is the text's.
impl std::borrow::Borrow<str> for InstanceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InstanceId::new(CompactString::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller's name for one append. Appending again with the same command
/// id returns the first result and writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CommandId(CompactString);

impl CommandId {
    pub fn new(s: impl Into<CompactString>) -> Result<Self, InvalidField> {
        let s = s.into();
        check_id("command id", &s, limits::COMMAND_ID_BYTES_MAX)?;
        Ok(CommandId(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CommandId::new(CompactString::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fixed-size bytes shown as lowercase hex in human-readable formats and
/// stored raw in postcard.
macro_rules! hex_bytes {
    ($name:ident, $len:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            pub fn from_hex(s: &str) -> Result<Self, InvalidField> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|e| invalid(stringify!($name), format!("{s:?} is not {} hex digits: {e}", $len * 2)))?;
                Ok($name(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    $name::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(d).map($name)
                }
            }
        }
    };
}

hex_bytes!(Hash, 32, "A BLAKE3 hash in the chain.");
hex_bytes!(EventId, 16, "An event's id, derived from its command id and its index in the commit.");
hex_bytes!(
    PersonId,
    16,
    "A person whose personal data is sealed in the log: random, so it says nothing about who it is once the person's key is destroyed."
);
hex_bytes!(SealNonce, 24, "The 24-byte nonce of a sealed value (XChaCha20-Poly1305).");
hex_bytes!(PublicKey, 32, "An ed25519 public key.");

/// The workflow instance that holds the log's own events (signing keys,
/// erasures): not a workflow, never folded as one.
pub const SYSTEM_INSTANCE: &str = "styrlogg:system";

impl InstanceId {
    /// The instance holding the log's own events ([`SYSTEM_INSTANCE`]).
    pub fn system() -> InstanceId {
        InstanceId(CompactString::const_new(SYSTEM_INSTANCE))
    }

    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM_INSTANCE
    }
}

/// Bytes of any length: hex when human-readable, postcard bytes otherwise.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({})", hex::encode(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(&s).map(Bytes).map_err(|e| serde::de::Error::custom(format!("not hex: {e}")))
        } else {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

impl EventId {
    /// The id of the `index`th event of command `command`: unique because
    /// command ids are unique, and the same on every retry of the command.
    pub fn derive(command: &CommandId, index: u32) -> EventId {
        let mut h = blake3::Hasher::new_derive_key("styrlogg event id v1");
        h.update(command.as_str().as_bytes());
        h.update(&index.to_be_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        EventId(out)
    }
}

/// Serde for civil dates: ISO 8601 text when human-readable, otherwise
/// `(year i16, month i8, day i8)`.
pub mod date_format {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(d)
        } else {
            (d.year(), d.month(), d.day()).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse::<Date>().map_err(|e| serde::de::Error::custom(format!("invalid date {s:?}: {e}")))
        } else {
            let (y, m, day) = <(i16, i8, i8)>::deserialize(d)?;
            Date::new(y, m, day).map_err(serde::de::Error::custom)
        }
    }
}

/// Serde for instants: RFC 3339 in UTC when human-readable, otherwise
/// microseconds since the Unix epoch as i64.
pub mod timestamp_format {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(t)
        } else {
            t.as_microsecond().serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let t = if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse::<Timestamp>().map_err(|e| serde::de::Error::custom(format!("invalid instant {s:?}: {e}")))?
        } else {
            Timestamp::from_microsecond(i64::deserialize(d)?).map_err(serde::de::Error::custom)?
        };
        if t.subsec_nanosecond() % 1000 != 0 {
            return Err(serde::de::Error::custom("instants are stored to whole microseconds"));
        }
        Ok(t)
    }
}

/// Who recorded an event, and in which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub name: CompactString,
    pub role: CompactString,
}

impl Actor {
    pub fn new(name: impl Into<CompactString>, role: impl Into<CompactString>) -> Self {
        Actor { name: name.into(), role: role.into() }
    }

    /// An actor whose name and role the log accepts (not empty, within
    /// [`limits::NAME_BYTES_MAX`], no control characters), so bad input
    /// is refused for what it is before any rule is looked at.
    pub fn checked(name: impl Into<CompactString>, role: impl Into<CompactString>) -> Result<Self, InvalidField> {
        let a = Actor::new(name, role);
        check_name("actor name", &a.name)?;
        check_name("actor role", &a.role)?;
        Ok(a)
    }
}

/// Whether a person in a fact is an elected member or an official.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonKind {
    /// förtroendevald
    ElectedMember,
    /// tjänsteperson
    Official,
    Other,
}

/// A typed fact carried by a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum FactValue {
    Date(#[serde(with = "date_format")] Date),
    Text(CompactString),
    /// An amount in Swedish kronor, in öre so it stays exact.
    AmountSek {
        ore: i64,
    },
    Person {
        name: CompactString,
        role: CompactString,
        kind: PersonKind,
    },
    /// A diarienummer such as `LJ2012/896`.
    CaseNumber(CompactString),
    /// A paragraph of a body's minutes.
    MinutesRef {
        body: CompactString,
        #[serde(with = "date_format")]
        date: Date,
        paragraph: CompactString,
    },
    /// A document and the SHA-256 of its content, in hex.
    Document {
        title: CompactString,
        sha256: CompactString,
    },
    /// One option of a closed list (such as a participation-ladder step).
    Choice(CompactString),
    /// Personal data, encrypted (XChaCha20-Poly1305) with the key of
    /// `person`, which is kept outside the log. The plaintext is the
    /// postcard encoding of the original `FactValue`; the associated data
    /// binds it to the person and the fact's name. The chain hashes this
    /// ciphertext, never the plaintext, so destroying the key removes the
    /// data without touching the chain.
    Sealed {
        person: PersonId,
        nonce: SealNonce,
        ciphertext: Bytes,
    },
}

/// A named fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub name: CompactString,
    pub value: FactValue,
}

/// A step recorded after its deadline: which deadline, and by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lateness {
    #[serde(with = "date_format")]
    pub deadline: Date,
    pub days_late: u32,
}

/// How a deadline was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineChange {
    /// The last day is now `to`.
    Extended {
        #[serde(with = "date_format")]
        to: Date,
    },
    /// The deadline no longer applies.
    Waived,
}

/// What happened. New variants go at the end, never in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A workflow instance was started for an organisation, under the
    /// definition whose full text and BLAKE3 hash are carried here, so the
    /// instance keeps that version whatever later versions say.
    InstanceStarted {
        workflow: String,
        definition_hash: Hash,
        definition: String,
        organisation: String,
        title: String,
        case_number: Option<String>,
    },
    /// A step was recorded with its facts; optionally as a justified
    /// deviation from the workflow, and flagged when late.
    StepRecorded { step: CompactString, facts: Vec<Fact>, deviation: Option<String>, late: Option<Lateness> },
    /// An earlier event is corrected: the facts named here replace the
    /// original's, and `occurred_on`, when set, its date. The original stays.
    StepCorrected {
        corrects: EventId,
        reason: String,
        #[serde(with = "opt_date_format")]
        occurred_on: Option<Date>,
        facts: Vec<Fact>,
    },
    /// A step's deadline was extended or waived.
    DeadlineChanged { step: String, change: DeadlineChange, reason: String },
    /// A free-text note on the instance.
    NoteAdded { text: String },
    /// A deadline passed without its step being recorded.
    DeadlineMissed {
        step: String,
        #[serde(with = "date_format")]
        deadline: Date,
    },
    /// A notice (a reminder before a deadline, or an escalation after a
    /// missed one) is being sent on a channel: the claim that makes every
    /// sender agree that this attempt is theirs, made before sending.
    NoticeClaimed {
        /// Instance, step, deadline and notice: the same for every channel.
        key: String,
        step: String,
        #[serde(with = "date_format")]
        deadline: Date,
        /// `reminder:N` (N days before) or `missed`.
        notice: String,
        channel: String,
        recipients: Vec<String>,
        attempt: u32,
    },
    /// The claimed notice went out.
    NoticeDelivered { key: String, channel: String, attempt: u32 },
    /// The claimed notice could not be sent; it is retried with backoff.
    NoticeFailed { key: String, channel: String, attempt: u32, error: String },
    /// The organisation's checkpoint-signing key (ed25519) from now on,
    /// under its key name (C2SP signed-note), replacing any earlier one.
    /// Recorded in the [`SYSTEM_INSTANCE`].
    SigningKeyRotated { key_name: String, public_key: PublicKey, reason: String },
    /// A person's key was destroyed: every fact sealed for `person` is
    /// removed (gallrad) from every reader, while the log stays as it was.
    /// `decision` names the decision that allowed it (a gallringsbeslut,
    /// a case number). Recorded in the [`SYSTEM_INSTANCE`].
    PersonErased { person: PersonId, reason: String, decision: String, facts: u32 },
}

/// A civil date that serialises as [`date_format`] does, for use inside
/// other types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SerdeDate(#[serde(with = "date_format")] pub Date);

/// Serde for optional civil dates, as [`date_format`].
pub mod opt_date_format {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        struct W<'a>(&'a Date);
        impl Serialize for W<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                date_format::serialize(self.0, s)
            }
        }
        d.as_ref().map(W).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "date_format")] Date);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

impl Payload {
    /// A short name for the variant, for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::InstanceStarted { .. } => "instance_started",
            Payload::StepRecorded { .. } => "step_recorded",
            Payload::StepCorrected { .. } => "step_corrected",
            Payload::DeadlineChanged { .. } => "deadline_changed",
            Payload::NoteAdded { .. } => "note_added",
            Payload::DeadlineMissed { .. } => "deadline_missed",
            Payload::NoticeClaimed { .. } => "notice_claimed",
            Payload::NoticeDelivered { .. } => "notice_delivered",
            Payload::NoticeFailed { .. } => "notice_failed",
            Payload::SigningKeyRotated { .. } => "signing_key_rotated",
            Payload::PersonErased { .. } => "person_erased",
        }
    }

    /// Checks every string and list in the payload against the limits.
    pub fn validate(&self) -> Result<(), InvalidField> {
        let check_facts = |facts: &[Fact]| {
            if facts.len() > limits::FACTS_PER_EVENT_MAX {
                return Err(invalid(
                    "facts",
                    format!("{} facts; the limit is {}", facts.len(), limits::FACTS_PER_EVENT_MAX),
                ));
            }
            for fact in facts {
                check_name("fact name", &fact.name)?;
                fact.value.validate(&fact.name)?;
            }
            Ok(())
        };
        match self {
            Payload::InstanceStarted { workflow, definition_hash: _, definition, organisation, title, case_number } => {
                check_name("workflow", workflow)?;
                check_text("definition", definition, limits::DEFINITION_BYTES_MAX, true)?;
                check_name("organisation", organisation)?;
                check_text("title", title, limits::TEXT_BYTES_MAX, false)?;
                if let Some(c) = case_number {
                    check_name("case number", c)?;
                }
                Ok(())
            }
            Payload::StepRecorded { step, facts, deviation, late: _ } => {
                check_name("step", step)?;
                check_facts(facts)?;
                if let Some(d) = deviation {
                    check_reason("deviation", d)?;
                }
                Ok(())
            }
            Payload::StepCorrected { corrects: _, reason, occurred_on: _, facts } => {
                check_reason("reason", reason)?;
                check_facts(facts)
            }
            Payload::DeadlineChanged { step, change: _, reason } => {
                check_name("step", step)?;
                check_reason("reason", reason)
            }
            Payload::NoteAdded { text } => check_text("note", text, limits::TEXT_BYTES_MAX, true),
            Payload::DeadlineMissed { step, .. } => check_name("step", step),
            Payload::NoticeClaimed { key, step, notice, channel, recipients, .. } => {
                check_text("key", key, limits::TEXT_BYTES_MAX, false)?;
                check_name("step", step)?;
                check_name("notice", notice)?;
                check_name("channel", channel)?;
                if recipients.len() > limits::RECIPIENTS_PER_NOTICE_MAX {
                    return Err(invalid(
                        "recipients",
                        format!("{} recipients; the limit is {}", recipients.len(), limits::RECIPIENTS_PER_NOTICE_MAX),
                    ));
                }
                recipients.iter().try_for_each(|r| check_name("recipient", r))
            }
            Payload::NoticeDelivered { key, channel, .. } => {
                check_text("key", key, limits::TEXT_BYTES_MAX, false)?;
                check_name("channel", channel)
            }
            Payload::NoticeFailed { key, channel, error, .. } => {
                check_text("key", key, limits::TEXT_BYTES_MAX, false)?;
                check_name("channel", channel)?;
                check_text("error", error, limits::TEXT_BYTES_MAX, true)
            }
            Payload::SigningKeyRotated { key_name, public_key: _, reason } => {
                check_key_name(key_name)?;
                check_reason("reason", reason)
            }
            Payload::PersonErased { person: _, reason, decision, facts: _ } => {
                check_reason("reason", reason)?;
                check_reason("decision", decision)?;
                check_text("decision", decision, limits::NAME_BYTES_MAX, false)
            }
        }
    }
}

impl FactValue {
    /// Whether the log takes this value of the fact `name`: each part of
    /// it within its length and free of control characters. An append
    /// checks this; a form can check it first, to refuse the value next to
    /// its field.
    pub fn validate(&self, name: &str) -> Result<(), InvalidField> {
        let field = |what: &str| format!("fact {name:?} {what}");
        // The checks name the value's part; the fact's name is added only
        // on a refusal (formatting it for every value checked costs more
        // than the checks).
        let named = |e: InvalidField| InvalidField { field: field(&e.field), ..e };
        self.validate_parts().map_err(named)
    }

    fn validate_parts(&self) -> Result<(), InvalidField> {
        match self {
            FactValue::Date(_) | FactValue::AmountSek { .. } => Ok(()),
            FactValue::Text(t) => check_text("text", t, limits::TEXT_BYTES_MAX, true),
            FactValue::Person { name: n, role, kind: _ } => {
                check_name("person name", n)?;
                check_name("person role", role)
            }
            FactValue::CaseNumber(c) => check_name("case number", c),
            FactValue::MinutesRef { body, date: _, paragraph } => {
                check_name("minutes body", body)?;
                check_name("minutes paragraph", paragraph)
            }
            FactValue::Document { title, sha256 } => {
                check_name("document title", title)?;
                if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid("document sha256", "must be 64 hex digits"));
                }
                Ok(())
            }
            FactValue::Choice(c) => check_name("choice", c),
            FactValue::Sealed { ciphertext, .. } => {
                if ciphertext.0.len() > limits::SEALED_BYTES_MAX {
                    return Err(invalid(
                        "sealed value",
                        format!("is {} bytes; the limit is {}", ciphertext.0.len(), limits::SEALED_BYTES_MAX),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// An event as a caller offers it: the engine adds the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// The civil date (Swedish time) the fact happened.
    #[serde(with = "date_format")]
    pub occurred_on: Date,
    pub actor: Actor,
    pub payload: Payload,
}

impl NewEvent {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_name("actor name", &self.actor.name)?;
        check_name("actor role", &self.actor.role)?;
        self.payload.validate()
    }
}

/// The encoded part of a stored event: everything the hash covers.
/// Field order is part of the format: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    pub event_id: EventId,
    pub instance: InstanceId,
    /// Contiguous from 1 within the instance.
    pub sequence: u64,
    /// Contiguous from 1 across the whole log.
    pub position: u64,
    /// The civil date the fact happened.
    #[serde(with = "date_format")]
    pub occurred_on: Date,
    /// The instant the log accepted it, UTC, whole microseconds.
    #[serde(with = "timestamp_format")]
    pub recorded_at: Timestamp,
    pub actor: Actor,
    pub command_id: CommandId,
    pub payload: Payload,
    /// The hash of the event at `position - 1`, zero for the first.
    pub prev_hash: Hash,
}

/// A stored event: format version, body, and the hash over both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    pub format_version: u8,
    pub event: EventBody,
    pub hash: Hash,
}
