//! Workflow definitions as data: the TOML format, its two-phase parsing
//! (raw, then validated and resolved), the Swedish calendar their deadlines
//! are counted on, and the pure decisions that enforce them on an
//! instance's events; and scenario files, recorded histories as data.
//!
//! Nothing here does IO or reads a clock: callers pass the source text and
//! today's date.

pub mod builtin;
pub mod calendar;
pub mod decide;
pub mod definition;
pub mod facts;
pub mod instance;
pub mod reminders;
pub mod scenario;
pub mod status;
mod toml_doc;

pub use decide::{decide, start, Command, Rejection, Rule};
pub use definition::{Definition, Problem, StepKind};
pub use instance::Instance;
pub use scenario::Scenario;

/// An organisation's name as it is kept: Unicode NFC (an "ö" typed as
/// "o" and a combining diaeresis is the same "ö"), without leading or
/// trailing whitespace, and runs of whitespace inside as one space.
pub fn organisation_name(name: &str) -> String {
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(name);
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether two organisation names name the same organisation: equal once
/// kept as [`organisation_name`] keeps them, ignoring case.
pub fn same_organisation(a: &str, b: &str) -> bool {
    a == b || organisation_name(a).to_lowercase() == organisation_name(b).to_lowercase()
}

/// A text in the two languages styrlogg speaks: Swedish (the web pages'
/// default, the audience's language) and English (the command line, the
/// API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bilingual {
    pub sv: String,
    pub en: String,
}

/// A [`Bilingual`] text: Swedish first, then English.
pub fn said(sv: impl Into<String>, en: impl Into<String>) -> Bilingual {
    Bilingual { sv: sv.into(), en: en.into() }
}

/// Why the log refuses a value, in both languages: the log's own words in
/// English, and in Swedish of `subject` ("diarienumret"; `neuter` for an
/// ett-word, so the adjective agrees), from what the log found.
pub fn refusal(subject: &str, neuter: bool, e: &engine::event::InvalidField) -> Bilingual {
    use engine::event::Invalid;
    let (long, empty) = if neuter { ("långt", "tomt") } else { ("lång", "tom") };
    let sv = match e.kind {
        Invalid::Empty => format!("{subject} är {empty}"),
        Invalid::TooLong { bytes, max } => format!("{subject} är {bytes} byte {long}; gränsen är {max}"),
        Invalid::Control(c) => format!("{subject} innehåller styrtecknet U+{:04X}", c as u32),
        Invalid::Bidi(_) => format!("{subject} innehåller ett tecken som ändrar textens riktning"),
        Invalid::IdChar(c) => format!("{subject} innehåller {c:?}; använd bara bokstäver, siffror och - _ . : /"),
        Invalid::Other => format!("{subject} går inte att spara som det står: {}", e.reason),
    };
    said(sv, e.to_string())
}
