//! The log as known at a moment: every instance folded from the events
//! recorded up to the end of an `as_of` date, with the head they end at.

use crate::Lang;
use engine::{EventId, EventRef, Fact, FactValue, Hash, InstanceId, Payload, PersonId, RecordedEvent, StepRef};
use jiff::civil::Date;
use serde::Serialize;
use std::collections::BTreeMap;
use workflows::instance::FoldError;
use workflows::Instance;

/// One instance and its events.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub instance: Instance,
    pub events: Vec<RecordedEvent>,
}

/// The log as it was known at the end of `as_of` (or now).
#[derive(Debug, Clone)]
pub struct LogView {
    pub as_of: Option<Date>,
    /// The last event included: position and hash.
    pub head_position: u64,
    pub head_hash: Hash,
    pub instances: BTreeMap<InstanceId, InstanceView>,
    /// False for a view that folds without keeping events (restored from a
    /// checkpoint, or made with `folded_only`): it serves every report but
    /// the audit trail.
    pub events_kept: bool,
    /// False for a view that serves `status` only (made with
    /// `status_only`, or restored from the status checkpoint): a fold may
    /// leave recorded steps' facts out, and reads them from the log as
    /// borrowed views that skip them.
    pub facts_needed: bool,
    /// What the reports may show: set by whoever builds the view.
    pub disclosure: Disclosure,
}

/// A person's data removed (gallrad): from a `person_erased` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    pub person: String,
    /// When the erasure was recorded (Swedish date).
    pub on: Date,
    pub decision: String,
    pub reason: String,
    pub position: u64,
}

/// What reports show of personal and confidential facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    /// A public extract: personal and confidential facts are left out, and
    /// each place says so.
    pub public: bool,
    /// Persons whose data was removed, from the system instance's events.
    pub erasures: BTreeMap<PersonId, Erasure>,
}

impl Disclosure {
    /// Reads the erasures from the log's system events (any events may be
    /// given; others are ignored).
    pub fn note_erasures<'a>(&mut self, events: impl IntoIterator<Item = &'a RecordedEvent>) {
        for e in events {
            if let Payload::PersonErased { person, reason, decision, .. } = &e.event.payload {
                self.erasures.insert(
                    *person,
                    Erasure {
                        person: person.to_hex(),
                        on: swedish_date(e.event.recorded_at),
                        decision: decision.clone(),
                        reason: reason.clone(),
                        position: e.event.position,
                    },
                );
            }
        }
    }
}

/// Why a fact is not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withheld {
    /// Personal data, left out of a public extract.
    Personal,
    /// Under secrecy, left out of a public extract.
    Confidential,
    /// The person's data was removed (gallrad).
    Erased { on: Date, decision: String },
    /// Sealed, and its key is not in the key store used here.
    KeyMissing,
}

impl Withheld {
    pub fn text(&self, lang: Lang) -> String {
        match self {
            Withheld::Personal => lang.t("[utelämnad: personuppgift]", "[left out: personal data]").into(),
            Withheld::Confidential => lang.t("[utelämnad: sekretess]", "[left out: confidential]").into(),
            Withheld::Erased { on, decision } => match lang {
                Lang::Sv => format!("[gallrad {on}, beslut {decision}]"),
                Lang::En => format!("[removed {on}, decision {decision}]"),
            },
            Withheld::KeyMissing => {
                lang.t("[personuppgift: nyckeln saknas här]", "[personal data: its key is not here]").into()
            }
        }
    }
}

/// The civil date in Sweden of an instant.
pub fn swedish_date(ts: jiff::Timestamp) -> Date {
    ts.in_tz("Europe/Stockholm").map(|z| z.date()).unwrap_or_else(|_| ts.to_zoned(jiff::tz::TimeZone::UTC).date())
}

impl LogView {
    pub fn new(as_of: Option<Date>) -> Self {
        LogView {
            as_of,
            head_position: 0,
            head_hash: Hash::default(),
            instances: BTreeMap::new(),
            events_kept: true,
            facts_needed: true,
            disclosure: Disclosure::default(),
        }
    }

    /// Whether a fact may be shown, and if not, why. `step` is the step
    /// the fact belongs to (None: judged by every step's fact of that name).
    pub fn shown<'a>(&self, inst: &Instance, step: Option<&str>, fact: &'a Fact) -> Result<&'a FactValue, Withheld> {
        if let FactValue::Sealed { person, .. } = &fact.value {
            if let Some(e) = self.disclosure.erasures.get(person) {
                return Err(Withheld::Erased { on: e.on, decision: e.decision.clone() });
            }
            return Err(if self.disclosure.public { Withheld::Personal } else { Withheld::KeyMissing });
        }
        if self.disclosure.public {
            let specs = inst
                .definition
                .steps
                .iter()
                .filter(|s| step.is_none_or(|id| s.id == id))
                .flat_map(|s| s.facts.iter())
                .filter(|f| f.name == fact.name);
            let (mut personal, mut confidential) = (false, false);
            for spec in specs {
                personal |= spec.personal;
                confidential |= spec.confidential;
            }
            if personal {
                return Err(Withheld::Personal);
            }
            if confidential {
                return Err(Withheld::Confidential);
            }
        }
        Ok(&fact.value)
    }

    /// A fact's value as text, or what stands in its place.
    pub fn fact_text(&self, inst: &Instance, step: Option<&str>, fact: &Fact, lang: Lang) -> String {
        match self.shown(inst, step, fact) {
            Ok(v) => crate::lang::fact_text(v, lang),
            Err(w) => w.text(lang),
        }
    }

    /// A view that folds events without keeping them: every report but the
    /// audit trail, in the memory of the folded state alone.
    pub fn folded_only(as_of: Option<Date>) -> Self {
        LogView { events_kept: false, ..LogView::new(as_of) }
    }

    /// A view for `status` alone: no events, and recorded steps without
    /// their facts, which `status` never shows.
    pub fn status_only(as_of: Option<Date>) -> Self {
        LogView { facts_needed: false, ..LogView::folded_only(as_of) }
    }

    /// Whether a fold may feed this view recorded steps through
    /// [`LogView::feed_step`].
    pub fn takes_steps_without_facts(&self) -> bool {
        !self.events_kept && !self.facts_needed
    }

    /// [`LogView::feed`] for a recorded step read as a borrowed view,
    /// without its facts: only for a view that
    /// [takes them](LogView::takes_steps_without_facts).
    ///
    /// The few steps whose facts even `status` needs (a yearly deadline
    /// that reads the year from a fact) are not taken: the answer is
    /// [`Fed::NeedsFacts`], and the caller feeds the event decoded in full
    /// ([`LogView::feed_owned`]).
    pub fn feed_step(&mut self, e: &EventRef<'_>, step: &StepRef<'_>) -> Result<Fed, FoldError> {
        debug_assert!(self.takes_steps_without_facts());
        if self.as_of.is_some_and(|d| swedish_date(e.recorded_at) > d) {
            return Ok(Fed::Done(false));
        }
        if e.instance == engine::SYSTEM_INSTANCE {
            self.head_position = e.position;
            self.head_hash = e.hash;
            return Ok(Fed::Done(true));
        }
        match self.instances.get_mut(e.instance) {
            Some(v) => {
                let needs = &v.instance.definition.year_fact_steps;
                if !needs.is_empty() && needs.iter().any(|s| s == step.step) {
                    return Ok(Fed::NeedsFacts);
                }
                v.instance.apply_step_without_facts(e, step)
            }
            None => return Err(FoldError::NotStarted(e.instance.to_string())),
        }
        self.head_position = e.position;
        self.head_hash = e.hash;
        Ok(Fed::Done(true))
    }

    /// [`LogView::feed`], taking the event: a view that does not keep events
    /// moves a step's facts into its state instead of copying them.
    pub fn feed_owned(&mut self, e: RecordedEvent) -> Result<bool, FoldError> {
        if self.events_kept || !matches!(e.event.payload, engine::Payload::StepRecorded { .. }) {
            return self.feed(&e);
        }
        if self.as_of.is_some_and(|d| swedish_date(e.event.recorded_at) > d) {
            return Ok(false);
        }
        self.head_position = e.event.position;
        self.head_hash = e.hash;
        if e.event.instance.is_system() {
            return Ok(true);
        }
        match self.instances.get_mut(&e.event.instance) {
            Some(v) => v.instance.apply_owned(e),
            None => return Err(FoldError::NotStarted(e.event.instance.to_string())),
        }
        Ok(true)
    }

    /// Feeds the next event in position order. Returns false once an event
    /// was recorded after `as_of`: `recorded_at` never decreases along the
    /// log, so nothing after it belongs to the view either.
    pub fn feed(&mut self, e: &RecordedEvent) -> Result<bool, FoldError> {
        if self.as_of.is_some_and(|d| swedish_date(e.event.recorded_at) > d) {
            return Ok(false);
        }
        self.head_position = e.event.position;
        self.head_hash = e.hash;
        if e.event.instance.is_system() {
            // The log's own events (keys, erasures) are no workflow.
            return Ok(true);
        }
        match self.instances.get_mut(&e.event.instance) {
            Some(v) => {
                v.instance.apply(e);
                if self.events_kept {
                    v.events.push(e.clone());
                }
            }
            None => {
                let instance = Instance::fold(std::slice::from_ref(e))?;
                let events = if self.events_kept { vec![e.clone()] } else { Vec::new() };
                self.instances.insert(e.event.instance.clone(), InstanceView { instance, events });
            }
        }
        Ok(true)
    }

    /// Instances of one organisation (as [`workflows::same_organisation`] compares names), or all.
    pub fn select<'a>(&'a self, org: Option<&'a str>) -> impl Iterator<Item = &'a InstanceView> + 'a {
        self.instances
            .values()
            .filter(move |v| org.is_none_or(|o| workflows::same_organisation(&v.instance.organisation, o)))
    }

    /// The event with this id, in any instance.
    pub fn event(&self, id: &EventId) -> Option<&RecordedEvent> {
        self.instances.values().flat_map(|v| v.events.iter()).find(|e| e.event.event_id == *id)
    }

    /// "Built from log head position N hash H, as known on D".
    pub fn provenance(&self, lang: crate::Lang) -> String {
        let known = match self.as_of {
            Some(d) => lang.t(&format!(", som det var känt {d}"), &format!(", as known on {d}")).to_string(),
            None => String::new(),
        };
        lang.t(
            &format!("Byggd från loggens position {} med hash {}{known}", self.head_position, self.head_hash),
            &format!("Built from log position {} with hash {}{known}", self.head_position, self.head_hash),
        )
        .to_string()
    }
}

/// What [`LogView::feed_step`] did with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Taken (true), or past the view's `as_of` (false: stop).
    Done(bool),
    /// Not taken: this step's facts are needed; feed it decoded in full.
    NeedsFacts,
}
