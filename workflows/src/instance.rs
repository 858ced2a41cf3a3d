//! An instance's state, folded from its events: which definition it runs,
//! which steps happened when (with corrections applied), and how its
//! deadlines were changed.

use crate::calendar;
use crate::definition::{DeadlineRule, Definition, Step};
use engine::{DeadlineChange, EventId, EventRef, Fact, InstanceId, Lateness, Payload, RecordedEvent, StepRef};
use jiff::civil::Date;

/// One recorded occurrence of a step, as corrected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    pub event_id: EventId,
    pub position: u64,
    pub step: engine::CompactString,
    #[serde(with = "engine::event::date_format")]
    pub occurred_on: Date,
    pub facts: Vec<Fact>,
    pub deviation: Option<String>,
    pub late: Option<Lateness>,
    pub corrections: u32,
    /// When it was recorded.
    #[serde(with = "engine::event::timestamp_format")]
    pub recorded_at: jiff::Timestamp,
    /// When it was last corrected.
    #[serde(with = "opt_timestamp")]
    pub corrected_at: Option<jiff::Timestamp>,
}

mod opt_timestamp {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<jiff::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(|t| t.as_microsecond()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|us| jiff::Timestamp::from_microsecond(us).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A step's pending deadline and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDeadline {
    /// The date the definition's rule gives.
    pub base: Date,
    /// The last day that applies.
    pub last_day: Date,
    /// The next-weekday rule moved `base` to `last_day`.
    pub moved_to_weekday: bool,
    /// A deadline change set `last_day`.
    pub extended: bool,
}

/// Where a notice on one channel stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NoticeStatus {
    /// Claimed for sending; no outcome recorded (a sender stopped between
    /// the claim and the outcome: it may or may not have gone out).
    Claimed,
    Delivered,
    Failed(String),
}

/// The last attempt to send one notice on one channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeState {
    pub step: String,
    #[serde(with = "engine::event::date_format")]
    pub deadline: Date,
    pub notice: String,
    pub recipients: Vec<String>,
    pub attempt: u32,
    pub status: NoticeStatus,
    /// When the last claim or outcome was recorded.
    #[serde(with = "engine::event::timestamp_format")]
    pub at: jiff::Timestamp,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    /// Shared by every instance started from the same text.
    pub definition: std::sync::Arc<Definition>,
    pub organisation: String,
    pub title: String,
    pub case_number: Option<String>,
    pub started_on: Date,
    /// The instance's last sequence number.
    pub version: u64,
    pub occurrences: Vec<Occurrence>,
    /// Deadline changes in order: step, change, and how many occurrences
    /// the step had then (a change applies to the deadline pending then).
    pub deadline_changes: Vec<(String, DeadlineChange, usize)>,
    /// Notices by (key, channel).
    pub notices: std::collections::BTreeMap<(String, String), NoticeState>,
    /// Missed deadlines recorded: (step, deadline).
    pub missed: Vec<(String, Date)>,
}

/// Why an instance's events could not be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("instance has no events")]
    Empty,
    #[error("the first event of instance {0} is not instance_started")]
    NotStarted(String),
    #[error("the definition carried by instance {instance} does not validate: {problem}")]
    BadDefinition { instance: String, problem: String },
}

impl Instance {
    /// Folds an instance's events, oldest first.
    pub fn fold(events: &[RecordedEvent]) -> Result<Instance, FoldError> {
        let first = events.first().ok_or(FoldError::Empty)?;
        let Payload::InstanceStarted { definition, organisation, title, case_number, .. } = &first.event.payload else {
            return Err(FoldError::NotStarted(first.event.instance.to_string()));
        };
        let definition = Definition::parse_shared(definition).map_err(|p| FoldError::BadDefinition {
            instance: first.event.instance.to_string(),
            problem: p.first().map(|p| p.message.clone()).unwrap_or_default(),
        })?;
        let mut inst = Instance {
            id: first.event.instance.clone(),
            definition,
            organisation: organisation.clone(),
            title: title.clone(),
            case_number: case_number.clone(),
            started_on: first.event.occurred_on,
            version: first.event.sequence,
            occurrences: Vec::new(),
            deadline_changes: Vec::new(),
            notices: Default::default(),
            missed: Vec::new(),
        };
        for e in &events[1..] {
            inst.apply(e);
        }
        Ok(inst)
    }

    /// Applies one more event, taking it: a recorded step's facts move into
    /// the occurrence instead of being copied (folding a long log).
    pub fn apply_owned(&mut self, e: RecordedEvent) {
        if !matches!(e.event.payload, Payload::StepRecorded { .. }) {
            return self.apply(&e);
        }
        let b = e.event;
        let Payload::StepRecorded { step, facts, deviation, late } = b.payload else { unreachable!("matched above") };
        self.version = b.sequence;
        self.occurrences.push(Occurrence {
            event_id: b.event_id,
            position: b.position,
            step,
            occurred_on: b.occurred_on,
            facts,
            deviation,
            late,
            corrections: 0,
            recorded_at: b.recorded_at,
            corrected_at: None,
        });
    }

    /// Applies a recorded step read as a borrowed view, without its facts
    /// (a fold for `status`, which shows none).
    pub fn apply_step_without_facts(&mut self, e: &EventRef<'_>, s: &StepRef<'_>) {
        self.version = e.sequence;
        self.occurrences.push(Occurrence {
            event_id: e.event_id,
            position: e.position,
            step: s.step.into(),
            occurred_on: e.occurred_on,
            facts: Vec::new(),
            deviation: s.deviation.map(str::to_string),
            late: s.late,
            corrections: 0,
            recorded_at: e.recorded_at,
            corrected_at: None,
        });
    }

    pub fn apply(&mut self, e: &RecordedEvent) {
        self.version = e.event.sequence;
        match &e.event.payload {
            Payload::InstanceStarted { .. }
            | Payload::NoteAdded { .. }
            | Payload::SigningKeyRotated { .. }
            | Payload::PersonErased { .. } => {}
            Payload::StepRecorded { step, facts, deviation, late } => self.occurrences.push(Occurrence {
                event_id: e.event.event_id,
                position: e.event.position,
                step: step.clone(),
                occurred_on: e.event.occurred_on,
                facts: facts.clone(),
                deviation: deviation.clone(),
                late: *late,
                corrections: 0,
                recorded_at: e.event.recorded_at,
                corrected_at: None,
            }),
            Payload::StepCorrected { corrects, occurred_on, facts, .. } => {
                if let Some(o) = self.occurrences.iter_mut().find(|o| o.event_id == *corrects) {
                    let year_fact = self.definition.step(&o.step).and_then(Step::year_fact);
                    let new_year = facts.iter().any(|f| Some(f.name.as_str()) == year_fact);
                    let moved = (occurred_on.is_some_and(|d| d != o.occurred_on) || new_year).then(|| o.step.clone());
                    if let Some(d) = occurred_on {
                        o.occurred_on = *d;
                    }
                    o.facts = corrected_facts(&o.facts, facts);
                    o.corrections += 1;
                    o.corrected_at = Some(e.event.recorded_at);
                    if let Some(step) = moved {
                        self.reassess_lateness(&step);
                    }
                }
            }
            Payload::DeadlineMissed { step, deadline } => self.missed.push((step.clone(), *deadline)),
            Payload::NoticeClaimed { key, step, deadline, notice, channel, recipients, attempt } => {
                self.notices.insert(
                    (key.clone(), channel.clone()),
                    NoticeState {
                        step: step.clone(),
                        deadline: *deadline,
                        notice: notice.clone(),
                        recipients: recipients.clone(),
                        attempt: *attempt,
                        status: NoticeStatus::Claimed,
                        at: e.event.recorded_at,
                    },
                );
            }
            Payload::NoticeDelivered { key, channel, attempt }
            | Payload::NoticeFailed { key, channel, attempt, .. } => {
                if let Some(n) = self.notices.get_mut(&(key.clone(), channel.clone())) {
                    if n.attempt == *attempt {
                        n.status = match &e.event.payload {
                            Payload::NoticeFailed { error, .. } => NoticeStatus::Failed(error.clone()),
                            _ => NoticeStatus::Delivered,
                        };
                        n.at = e.event.recorded_at;
                    }
                }
            }
            Payload::DeadlineChanged { step, change, .. } => {
                let pending = match self.definition.step(step) {
                    Some(s) => self.slots(s).1,
                    None => self.occurrences_of(step).count(),
                };
                self.deadline_changes.push((step.clone(), *change, pending));
            }
        }
    }

    /// The value a condition reads on `on`, as text: its fact in the latest
    /// occurrence of its step on or before that day (None when there is
    /// none). The condition holds when this equals `c.equals`; what decides
    /// a recording and what the compliance report shows both read it here.
    pub fn condition_value(&self, c: &crate::definition::Condition, on: Date) -> Option<String> {
        self.occurrences_of(&c.step)
            .filter(|o| o.occurred_on <= on)
            .max_by_key(|o| (o.occurred_on, o.position))
            .and_then(|o| o.facts.iter().find(|f| f.name == c.fact))
            .map(|f| crate::facts::as_text(&f.value))
    }

    pub fn occurrences_of<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| o.step == step)
    }

    /// The last day by which the next occurrence of `step` is due, if any:
    /// None when it has no deadline, it is waived, the step it counts from
    /// has not happened, or every yearly deadline is met.
    pub fn next_deadline(&self, step: &Step) -> Option<Date> {
        self.pending_deadline(step).map(|p| p.last_day)
    }

    /// The pending deadline of `step` with how it was reached: the date the
    /// rule gives, whether the next-weekday rule moved it, and whether it
    /// was extended.
    pub fn pending_deadline(&self, step: &Step) -> Option<PendingDeadline> {
        self.deadline_of_occurrence(step, self.slots(step).1)
    }

    /// The last day for a new recording of `step` with these facts: the
    /// deadline of the year it names, where its yearly deadline reads the
    /// year from a fact; otherwise the pending deadline.
    pub fn deadline_for_recording(&self, step: &Step, facts: &[Fact]) -> Option<Date> {
        match stated_year(step, facts) {
            Some(Ok(slot)) => self.deadline_of_occurrence(step, slot).map(|p| p.last_day),
            _ => self.next_deadline(step),
        }
    }

    /// The occurrences of `step`, each with the year it counts for where
    /// the step is due once a year ([`Instance::years_answered`]), listed
    /// by that year (a late recording for an earlier year may follow a
    /// later year's); other steps' as recorded.
    pub fn occurrences_by_year<'a>(&'a self, step: &'a Step) -> Vec<(&'a Occurrence, Option<i16>)> {
        let mut years = self.years_answered(step).into_iter();
        let mut out: Vec<_> = self.occurrences_of(&step.id).map(|o| (o, years.next())).collect();
        out.sort_by_key(|(_, year)| *year);
        out
    }

    /// The year each occurrence of `step` counts for, in the order of its
    /// occurrences, where the step has a yearly deadline (the year it
    /// names, or else the first year left open); empty for other steps.
    /// The compliance report shows it, and a second recording for a year
    /// is caught by it.
    pub fn years_answered(&self, step: &Step) -> Vec<i16> {
        let Some(DeadlineRule::Yearly { from_year, .. }) = step.deadline.as_ref().map(|d| &d.rule) else {
            return Vec::new();
        };
        let (slots, _) = self.slots(step);
        slots.iter().map(|s| year_of(*from_year, *s)).collect()
    }

    /// Which of `step`'s deadlines each of its occurrences answers (in the
    /// order of the occurrences), and the first deadline none answers.
    /// Occurrences meet the deadlines in order, except where a yearly
    /// deadline reads the year from a fact: an occurrence that names a
    /// year answers that year's, and only those that name none fill the
    /// years left, in order. So a year skipped stays open after a later
    /// year is recorded.
    ///
    /// A yearly deadline that was waived needs no recording: it is passed
    /// over as if answered, so the next year's becomes the pending one
    /// (a waiver is of one year's deadline, not of the step for good), and
    /// a recording that names no year fills the next year still open.
    fn slots(&self, step: &Step) -> (Vec<usize>, usize) {
        let count = self.occurrences_of(&step.id).count();
        if !matches!(step.deadline.as_ref().map(|d| &d.rule), Some(DeadlineRule::Yearly { .. })) {
            return ((0..count).collect(), count);
        }
        let stated: Vec<Option<usize>> =
            self.occurrences_of(&step.id).map(|o| stated_year(step, &o.facts).and_then(Result::ok)).collect();
        let mut taken: std::collections::BTreeSet<usize> = stated.iter().flatten().copied().collect();
        taken.extend(self.waived_slots(step));
        let mut free = 0;
        let mut slots = Vec::with_capacity(count);
        for s in stated {
            slots.push(s.unwrap_or_else(|| {
                while taken.contains(&free) {
                    free += 1;
                }
                taken.insert(free);
                free
            }));
        }
        let mut pending = 0;
        while taken.contains(&pending) {
            pending += 1;
        }
        (slots, pending)
    }

    /// The yearly deadlines of `step` that were waived, as indexes from the
    /// rule's first year: a waiver is of the deadline pending when it was
    /// made.
    fn waived_slots(&self, step: &Step) -> impl Iterator<Item = usize> + '_ {
        let id = step.id.clone();
        self.deadline_changes
            .iter()
            .filter(move |(s, change, _)| *s == id && matches!(change, DeadlineChange::Waived))
            .map(|(_, _, at)| *at)
    }

    /// The years whose deadline of `step` was waived, where the step is due
    /// once a year.
    pub fn years_waived(&self, step: &Step) -> Vec<i16> {
        let Some(DeadlineRule::Yearly { from_year, .. }) = step.deadline.as_ref().map(|d| &d.rule) else {
            return Vec::new();
        };
        let mut years: Vec<i16> = self.waived_slots(step).map(|at| year_of(*from_year, at)).collect();
        years.sort();
        years.dedup();
        years
    }

    /// After a step's date was corrected: whether each occurrence of it,
    /// and of the steps whose deadlines count from it, was late is judged
    /// again against the deadline that applied to it, with the dates as
    /// they now stand. The recorded events keep what was known when they
    /// were written; the state shows what is true.
    fn reassess_lateness(&mut self, moved: &str) {
        let def = self.definition.clone();
        let affected = def.steps.iter().filter(|s| {
            s.id == moved
                || matches!(s.deadline.as_ref().map(|d| &d.rule), Some(DeadlineRule::AfterStep { step, .. }) if step == moved)
        });
        for step in affected {
            let (slots, _) = self.slots(step);
            let mut nth = 0;
            for i in 0..self.occurrences.len() {
                if self.occurrences[i].step != step.id {
                    continue;
                }
                let deadline = self.deadline_of_occurrence(step, slots[nth]).map(|p| p.last_day);
                let on = self.occurrences[i].occurred_on;
                self.occurrences[i].late = deadline
                    .filter(|d| on > *d)
                    .map(|deadline| Lateness { deadline, days_late: (on - deadline).get_days().unsigned_abs() });
                nth += 1;
            }
        }
    }

    /// The deadline that applies to the occurrence of `step` after `done`
    /// earlier ones (the pending one when `done` is how many there are).
    fn deadline_of_occurrence(&self, step: &Step, done: usize) -> Option<PendingDeadline> {
        let d = step.deadline.as_ref()?;
        let base = match &d.rule {
            DeadlineRule::LastDay(date) => (done == 0).then_some(*date)?,
            DeadlineRule::AfterStep { step: from, period } => {
                if done > 0 {
                    return None;
                }
                let start = self.occurrences_of(from).map(|o| o.occurred_on).min()?;
                calendar::add(start, *period)
            }
            DeadlineRule::Yearly { month, day, from_year, to_year, year_offset, .. } => {
                let year = from_year.checked_add(i16::try_from(done).ok()?)?;
                if year > *to_year {
                    return None;
                }
                Date::new(year + year_offset, *month, *day).ok()?
            }
        };
        let mut last = if d.next_weekday { calendar::next_weekday_rule(base) } else { base };
        let moved = last != base;
        let mut extended = false;
        // Changes apply to the deadline that was pending when they were made.
        for (s, change, at) in &self.deadline_changes {
            if *s == step.id && *at == done {
                match change {
                    DeadlineChange::Extended { to } => {
                        last = *to;
                        extended = true;
                    }
                    DeadlineChange::Waived => return None,
                }
            }
        }
        Some(PendingDeadline { base, last_day: last, moved_to_weekday: moved && !extended, extended })
    }
}

/// The year of a yearly deadline's `slot`, counted from its first year.
fn year_of(from_year: i16, slot: usize) -> i16 {
    from_year.saturating_add(i16::try_from(slot).unwrap_or(i16::MAX))
}

/// The fact a step's yearly deadline reads a recording's year from, with
/// the first and last year of the rule.
fn year_rule(step: &Step) -> Option<(&str, i16, i16)> {
    match step.deadline.as_ref().map(|d| &d.rule) {
        Some(DeadlineRule::Yearly { from_year, to_year, .. }) => Some((step.year_fact()?, *from_year, *to_year)),
        _ => None,
    }
}

/// The facts of a recording once a correction gives `given`: each fact
/// given replaces every value of that name, the others stay.
pub fn corrected_facts(original: &[Fact], given: &[Fact]) -> Vec<Fact> {
    let mut now: Vec<Fact> = original.iter().filter(|f| !given.iter().any(|g| g.name == f.name)).cloned().collect();
    now.extend(given.iter().cloned());
    now
}

/// The year a recording with these facts is for, as the index of its
/// deadline (years after the rule's first), where `step`'s yearly deadline
/// reads it from a fact. None when it does not, or the recording gives no
/// such fact; an error, with the reason, when the fact is not one of the
/// rule's years.
pub fn stated_year(step: &Step, facts: &[Fact]) -> Option<Result<usize, crate::Bilingual>> {
    let (name, from, to) = year_rule(step)?;
    let value = crate::facts::as_text(&facts.iter().find(|f| f.name == name)?.value);
    // Exactly four digits: the value is kept as typed and shown in reports.
    let year =
        (value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit())).then(|| value.parse::<i16>().ok()).flatten();
    Some(match year {
        Some(y) if (from..=to).contains(&y) => Ok(usize::try_from(y - from).expect("within the rule")),
        Some(_) => Err(crate::said(
            format!(
                "uppgiften {name} är {value:?}, inte ett år som tidsfristen för {} omfattar: ange året registreringen avser, {from} till {to}",
                step.id
            ),
            format!(
                "fact {name} is {value:?}, not a year the deadline of {} covers: give the year the recording is for, {from} to {to}",
                step.id
            ),
        )),
        None => Err(crate::said(
            format!(
                "uppgiften {name} är {value:?}, inte ett år: ange året registreringen avser med fyra siffror, {from} till {to}"
            ),
            format!(
                "fact {name} is {value:?}, not a year: give the year the recording is for as four digits, {from} to {to}"
            ),
        )),
    })
}
