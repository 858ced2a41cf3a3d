//! The pure decision: given a definition or an instance's state and a
//! command, the events to append or a rejection that names the rule, the
//! step and what would satisfy it. No IO, no clock: `today` is passed in.

use crate::definition::{DeadlineRule, Definition, Step};
use crate::facts;
use crate::instance::Instance;
use engine::{Actor, DeadlineChange, EventId, Fact, FactValue, Lateness, NewEvent, Payload, PersonKind};
use jiff::civil::Date;
use std::fmt;

/// Declares [`Rule`] with each rule's code, and [`Rule::ALL`].
macro_rules! rules {
    ($($rule:ident => $code:literal,)*) => {
        /// The rules a command can break. Codes are stable (reports and the API use them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Rule {
            $($rule,)*
        }

        impl Rule {
            /// Every rule, in the order declared.
            pub const ALL: &[Rule] = &[$(Rule::$rule,)*];

            pub fn code(self) -> &'static str {
                match self {
                    $(Rule::$rule => $code,)*
                }
            }
        }
    };
}

rules! {
    UnknownStep => "unknown-step",
    RoleNotAllowed => "role-not-allowed",
    FutureDate => "future-date",
    UnknownFact => "unknown-fact",
    IllTypedFact => "ill-typed-fact",
    RepeatedFact => "repeated-fact",
    NotRepeatable => "not-repeatable",
    MissingFact => "missing-fact",
    MissingPersonKind => "missing-person-kind",
    MissingPrerequisite => "missing-prerequisite",
    BeforePrerequisite => "before-prerequisite",
    ConditionNotMet => "condition-not-met",
    DeviationNotAllowed => "deviation-not-allowed",
    UnknownEvent => "unknown-event",
    NoDeadline => "no-deadline",
    InvalidText => "invalid-text",
    WindowOpen => "window-open",
    BlockedBy => "blocked-by",
    EmptyCorrection => "empty-correction",
    NotAnExtension => "not-an-extension",
    YearOutOfRange => "year-out-of-range",
    YearAlreadyRecorded => "year-already-recorded",
    YearNotOver => "year-not-over",
}

impl Rule {
    /// Whether a justified deviation may record the step anyway.
    pub fn deviation_may_override(self) -> bool {
        matches!(
            self,
            Rule::MissingFact
                | Rule::MissingPersonKind
                | Rule::MissingPrerequisite
                | Rule::BeforePrerequisite
                | Rule::ConditionNotMet
                | Rule::WindowOpen
                | Rule::BlockedBy
                | Rule::YearAlreadyRecorded
                | Rule::YearNotOver
        )
    }
}

/// Why a command was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule: Rule,
    pub step: Option<String>,
    pub message: String,
    /// What would satisfy the rule.
    pub remedy: String,
    /// The fact the rejection is about, when it is about one (a form shows
    /// the message next to that field).
    pub fact: Option<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected by rule {}", self.rule.code())?;
        if let Some(s) = &self.step {
            write!(f, " at step {s}")?;
        }
        write!(f, ": {}. {}", self.message, self.remedy)
    }
}

impl std::error::Error for Rejection {}

fn reject(rule: Rule, step: Option<&str>, message: impl Into<String>, remedy: impl Into<String>) -> Rejection {
    Rejection { rule, step: step.map(String::from), message: message.into(), remedy: remedy.into(), fact: None }
}

impl Rejection {
    /// The same rejection, naming the fact it is about.
    fn about(mut self, fact: &str) -> Rejection {
        self.fact = Some(fact.to_string());
        self
    }
}

/// What a user asks of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Record that `step` happened on `occurred_on`, with facts as typed
    /// (`name`, `value`), optionally as a justified deviation.
    Record { step: String, occurred_on: Date, actor: Actor, facts: Vec<(String, String)>, deviation: Option<String> },
    /// Correct an earlier step: new facts replace those of the same name,
    /// `new_date` the date it happened. `on` is the date of the correction.
    Correct {
        event: EventId,
        on: Date,
        actor: Actor,
        reason: String,
        new_date: Option<Date>,
        facts: Vec<(String, String)>,
    },
    /// Extend or waive the deadline pending for `step`.
    ChangeDeadline { step: String, on: Date, actor: Actor, change: DeadlineChange, reason: String },
}

fn roles_list(roles: &[String]) -> String {
    roles.join(", ")
}

fn deviation_roles(step: &Step) -> &[String] {
    if step.deviation_by.is_empty() {
        &step.recorded_by
    } else {
        &step.deviation_by
    }
}

fn known_step<'a>(def: &'a Definition, step: &str) -> Result<&'a Step, Rejection> {
    def.step(step).ok_or_else(|| {
        reject(
            Rule::UnknownStep,
            Some(facts::shortened(step)),
            format!("workflow {} has no step {}", def.id, facts::quoted(step)),
            format!("Use one of: {}", def.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")),
        )
    })
}

fn not_future(step: Option<&str>, on: Date, today: Date) -> Result<(), Rejection> {
    if on > today {
        return Err(reject(
            Rule::FutureDate,
            step,
            format!("{on} is after today ({today})"),
            "Record a step on or after the day it happens",
        ));
    }
    Ok(())
}

/// Minutes cannot be dated after today: the meeting has not been held.
fn minutes_not_future(step: Option<&str>, facts: &[Fact], today: Date) -> Result<(), Rejection> {
    for f in facts {
        if let FactValue::MinutesRef { date, .. } = &f.value {
            if *date > today {
                return Err(reject(
                    Rule::FutureDate,
                    step,
                    format!("the minutes in {} are dated {date}, after today ({today})", facts::quoted(&f.name)),
                    "Give the date of the meeting the minutes are from",
                )
                .about(&f.name));
            }
        }
    }
    Ok(())
}

fn text_ok(step: Option<&str>, what: &str, s: &str) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(reject(
            Rule::InvalidText,
            step,
            format!("the {what} is empty"),
            format!("Give a {what} that says why"),
        ));
    }
    engine::event::check_text(what, s, engine::limits::TEXT_BYTES_MAX, true)
        .map_err(|e| reject(Rule::InvalidText, step, e.to_string(), "Shorten it or remove control characters"))
}

/// Starts an instance of `def`: the definition's text and hash go into the
/// event, so the instance keeps this version.
pub fn start(
    def: &Definition,
    organisation: &str,
    case_number: Option<&str>,
    on: Date,
    actor: Actor,
    today: Date,
) -> Result<NewEvent, Rejection> {
    if !def.has_role(&actor.role) {
        return Err(reject(
            Rule::RoleNotAllowed,
            None,
            format!("role {} is not a role of workflow {}", facts::quoted(&actor.role), def.id),
            format!("Start it as one of: {}", def.roles.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")),
        ));
    }
    not_future(None, on, today)?;
    Ok(NewEvent {
        occurred_on: on,
        actor,
        payload: Payload::InstanceStarted {
            workflow: def.id.clone(),
            definition_hash: def.hash,
            definition: def.source.clone(),
            organisation: crate::organisation_name(organisation),
            title: def.title.sv.clone(),
            case_number: case_number.map(String::from),
        },
    })
}

/// Where `step`'s yearly deadline reads the year from a fact: the year
/// given must be one the deadline covers.
fn year_in_range(step: &Step, facts: &[Fact]) -> Result<(), Rejection> {
    match crate::instance::stated_year(step, facts) {
        Some(Err(why)) => Err(reject(
            Rule::YearOutOfRange,
            Some(step.id.as_str()),
            why,
            "The year is the one the recording is for (a fee year, an operating year), as digits",
        )
        .about(step.year_fact().unwrap_or_default())),
        _ => Ok(()),
    }
}

/// Where `step`'s yearly deadline reads the year from a fact, what a
/// recording of that year dated `on` runs into: the year already has a
/// recording (other than `except`, the one being corrected), or the year
/// it names is not over on `on` although its deadline falls after it (an
/// operating year's annual report). A recording with a deviation may do
/// either; a correction may not.
fn year_violations(inst: &Instance, step: &Step, on: Date, facts: &[Fact], except: Option<EventId>) -> Vec<Rejection> {
    let sid = Some(step.id.as_str());
    let (Some(Ok(slot)), Some(DeadlineRule::Yearly { from_year, year_offset, .. })) =
        (crate::instance::stated_year(step, facts), step.deadline.as_ref().map(|d| &d.rule))
    else {
        return Vec::new();
    };
    let fact = step.year_fact().unwrap_or_default();
    let year = from_year + i16::try_from(slot).expect("a year of the rule");
    let or_deviate = if except.is_none() { ", or record it as a deviation, saying why" } else { "" };
    let mut v = Vec::new();
    let mut answered = inst.occurrences_of(&step.id).zip(inst.years_answered(step));
    if let Some((o, _)) = answered.find(|(o, y)| *y == year && Some(o.event_id) != except) {
        v.push(
            reject(
                Rule::YearAlreadyRecorded,
                sid,
                format!("{} for {year} was already recorded on {} (event {})", step.id, o.occurred_on, o.event_id),
                format!(
                    "To change that recording, correct event {} instead; if this one is for another year, give that year{or_deviate}",
                    o.event_id
                ),
            )
            .about(fact),
        );
    }
    if *year_offset > 0 && on.year() <= year {
        v.push(
            reject(
                Rule::YearNotOver,
                sid,
                format!("{} for {year} is dated {on}, before {year} is over", step.id),
                format!("Give the day it happened, in {} or later{or_deviate}", year + 1),
            )
            .about(fact),
        );
    }
    v
}

/// Parses typed facts for `step`: unknown names, wrong types and repeats
/// of single-valued facts are refused outright.
fn typed_facts(step: &Step, raw: &[(String, String)]) -> Result<Vec<Fact>, Rejection> {
    let sid = Some(step.id.as_str());
    let mut out: Vec<Fact> = Vec::new();
    for (name, value) in raw {
        let Some(spec) = step.facts.iter().find(|f| f.name == *name) else {
            return Err(reject(
                Rule::UnknownFact,
                sid,
                format!("step {} has no fact {}", step.id, facts::quoted(name)),
                format!("Its facts are: {}", step.facts.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")),
            )
            .about(name));
        };
        let value = facts::parse(spec, value)
            .map_err(|e| reject(Rule::IllTypedFact, sid, e, "Give the value in that form").about(name))?;
        if !spec.many && out.iter().any(|f| f.name == *name) {
            return Err(reject(
                Rule::RepeatedFact,
                sid,
                format!("fact {} is given twice", facts::quoted(name)),
                "Give it once",
            )
            .about(name));
        }
        out.push(Fact { name: name.into(), value });
    }
    Ok(out)
}

/// The order rules once `original` (an occurrence of `step`) is moved to
/// `to`: it may not fall before every occurrence of a step it comes after,
/// and no occurrence of a step that comes after it may then precede every
/// occurrence of it. Occurrences recorded with a deviation are exempt:
/// their deviation already says why the order was broken.
fn order_after_date_correction(
    inst: &Instance,
    step: &Step,
    original: &crate::instance::Occurrence,
    to: Date,
) -> Result<(), Rejection> {
    let sid = Some(step.id.as_str());
    if original.deviation.is_none() {
        for before in &step.after {
            let earliest = inst.occurrences_of(before).map(|o| o.occurred_on).min();
            if let Some(earliest) = earliest.filter(|e| *e > to) {
                return Err(reject(
                    Rule::BeforePrerequisite,
                    sid,
                    format!("{to} is before {before} happened ({earliest})"),
                    format!("Give a date on or after {earliest}, or correct the date of {before} first"),
                ));
            }
        }
    }
    let dates_then = |o: &crate::instance::Occurrence| if o.event_id == original.event_id { to } else { o.occurred_on };
    let earliest_then = inst.occurrences_of(&step.id).map(dates_then).min().expect("the original is one");
    for later in inst.definition.steps.iter().filter(|s| s.after.contains(&step.id)) {
        if let Some(o) = inst.occurrences_of(&later.id).find(|o| o.deviation.is_none() && o.occurred_on < earliest_then)
        {
            return Err(reject(
                Rule::BeforePrerequisite,
                sid,
                format!(
                    "{} comes after {} and was recorded as happening on {} (event {}); {to} would put {} after it",
                    later.id, step.id, o.occurred_on, o.event_id, step.id
                ),
                format!("Give a date on or before {}, or correct the date of {} first", o.occurred_on, later.id),
            ));
        }
    }
    Ok(())
}

/// Content and order rules that a justified deviation may override.
fn soft_violations(inst: &Instance, step: &Step, on: Date, facts: &[Fact]) -> Vec<Rejection> {
    let sid = Some(step.id.as_str());
    let mut v = Vec::new();
    for before in &step.after {
        let dates: Vec<Date> = inst.occurrences_of(before).map(|o| o.occurred_on).collect();
        if dates.is_empty() {
            v.push(reject(
                Rule::MissingPrerequisite,
                sid,
                format!("step {} comes after {before}, which has not been recorded", step.id),
                format!("Record {before} first, or record this step as a deviation, saying why"),
            ));
        } else if dates.iter().all(|d| *d > on) {
            let earliest = dates.iter().min().expect("non-empty");
            v.push(reject(
                Rule::BeforePrerequisite,
                sid,
                format!("{on} is before {before} happened ({earliest})"),
                format!("Give a date on or after {earliest}, correct the date of {before}, or record it as a deviation, saying why"),
            ));
        }
    }
    if let Some(w) = &step.window_closed {
        if let Some(start) = inst.occurrences_of(&w.step).map(|o| o.occurred_on).min() {
            let end = crate::calendar::add(start, w.period);
            let last = if w.next_weekday { crate::calendar::next_weekday_rule(end) } else { end };
            if on <= last {
                v.push(reject(
                    Rule::WindowOpen,
                    sid,
                    format!(
                        "{on} is within the window counted from {} ({start}), which stays open until {last}",
                        w.step
                    ),
                    format!("Record {} on {} or later", step.id, last.tomorrow().expect("in range")),
                ));
            }
        }
    }
    for u in &step.unless {
        if let Some(o) = inst.occurrences_of(u).filter(|o| o.occurred_on <= on).min_by_key(|o| o.occurred_on) {
            v.push(reject(
                Rule::BlockedBy,
                sid,
                format!("{} cannot happen once {u} has (recorded on {})", step.id, o.occurred_on),
                format!("Wait for the outcome of {u}, or record it as a deviation, saying why"),
            ));
        }
    }
    // A step that cannot happen once this one has, recorded as happening
    // on or after this one's date: this one would contradict it.
    for blocked in inst.definition.steps.iter().filter(|s| s.unless.contains(&step.id)) {
        if let Some(o) = inst.occurrences_of(&blocked.id).find(|o| o.deviation.is_none() && o.occurred_on >= on) {
            v.push(reject(
                Rule::BlockedBy,
                sid,
                format!(
                    "{} is recorded as happening on {} (event {}), which it cannot once {} has; {on} is before that",
                    blocked.id, o.occurred_on, o.event_id, step.id
                ),
                format!(
                    "Correct {} if it did not happen so, or record {} as a deviation, saying why",
                    blocked.id, step.id
                ),
            ));
        }
    }
    for c in &step.requires {
        let value = inst.condition_value(c, on);
        if value.as_deref() != Some(c.equals.as_str()) {
            v.push(reject(
                Rule::ConditionNotMet,
                sid,
                format!(
                    "step {} requires {}.{} = {:?}, but it is {}",
                    step.id,
                    c.step,
                    c.fact,
                    c.equals,
                    value.map_or("not recorded".to_string(), |x| format!("{x:?}"))
                ),
                match inst.occurrences_of(&c.step).next() {
                    Some(o) if !inst.definition.step(&c.step).is_some_and(|s| s.repeat) => format!(
                        "If {} really said {}, correct event {} to say {}={}; otherwise this is information, not dialogue",
                        c.step, c.equals, o.event_id, c.fact, c.equals
                    ),
                    _ => format!(
                        "Record {} with {}={} first; otherwise this is information, not dialogue",
                        c.step, c.fact, c.equals
                    ),
                },
            ));
        }
    }
    v.extend(year_violations(inst, step, on, facts, None));
    for spec in &step.facts {
        let given: Vec<&FactValue> = facts.iter().filter(|f| f.name == spec.name).map(|f| &f.value).collect();
        if spec.required && given.is_empty() {
            v.push(
                reject(
                    Rule::MissingFact,
                    sid,
                    format!("required fact {:?} ({}) is missing", spec.name, spec.ty.name()),
                    format!("Give the fact {}: {}", spec.name, facts::syntax(&spec.ty)),
                )
                .about(&spec.name),
            );
        }
        for kind in &spec.need_kinds {
            let present = given.iter().any(|g| matches!(g, FactValue::Person { kind: k, .. } if k == kind));
            if !present {
                let what = match kind {
                    PersonKind::ElectedMember => "an elected member (förtroendevald)",
                    PersonKind::Official => "an official (tjänsteperson)",
                    PersonKind::Other => "another person",
                };
                v.push(
                    reject(
                        Rule::MissingPersonKind,
                        sid,
                        format!("{:?} must include {what}", spec.name),
                        format!(
                            "Give {} a person as \"NAME|ROLE|{}\"",
                            spec.name,
                            if *kind == PersonKind::ElectedMember { "elected" } else { "official" }
                        ),
                    )
                    .about(&spec.name),
                );
            }
        }
    }
    v
}

/// Decides a command against an instance's state.
pub fn decide(inst: &Instance, cmd: Command, today: Date) -> Result<Vec<NewEvent>, Rejection> {
    let def = &inst.definition;
    match cmd {
        Command::Record { step, occurred_on, actor, facts: raw, deviation } => {
            let step = known_step(def, &step)?;
            let sid = Some(step.id.as_str());
            if !step.recorded_by.iter().any(|r| *r == actor.role) {
                return Err(reject(
                    Rule::RoleNotAllowed,
                    sid,
                    format!("role {} may not record {}", facts::quoted(&actor.role), step.id),
                    format!("It is recorded by: {}", roles_list(&step.recorded_by)),
                ));
            }
            not_future(sid, occurred_on, today)?;
            let facts = typed_facts(step, &raw)?;
            minutes_not_future(sid, &facts, today)?;
            if !step.repeat {
                if let Some(o) = inst.occurrences_of(&step.id).next() {
                    return Err(reject(
                        Rule::NotRepeatable,
                        sid,
                        format!(
                            "{} happens once and was recorded on {} (event {})",
                            step.id, o.occurred_on, o.event_id
                        ),
                        format!("To change it, correct event {} instead", o.event_id),
                    ));
                }
            }
            year_in_range(step, &facts)?;
            let violations = soft_violations(inst, step, occurred_on, &facts);
            match (&deviation, violations.first()) {
                (None, Some(first)) => return Err(first.clone()),
                (Some(why), _) => {
                    text_ok(sid, "deviation", why)?;
                    if !deviation_roles(step).iter().any(|r| *r == actor.role) {
                        return Err(reject(
                            Rule::DeviationNotAllowed,
                            sid,
                            format!("role {} may not record a deviation at {}", facts::quoted(&actor.role), step.id),
                            format!("Deviations here are recorded by: {}", roles_list(deviation_roles(step))),
                        ));
                    }
                }
                (None, None) => {}
            }
            let late = inst.deadline_for_recording(step, &facts).and_then(|deadline| {
                (occurred_on > deadline)
                    .then(|| Lateness { deadline, days_late: (occurred_on - deadline).get_days().unsigned_abs() })
            });
            Ok(vec![NewEvent {
                occurred_on,
                actor,
                payload: Payload::StepRecorded { step: step.id.as_str().into(), facts, deviation, late },
            }])
        }
        Command::Correct { event, on, actor, reason, new_date, facts: raw } => {
            let Some(original) = inst.occurrences.iter().find(|o| o.event_id == event) else {
                return Err(reject(
                    Rule::UnknownEvent,
                    None,
                    format!("instance {} has no recorded step with event id {event}", inst.id),
                    "Take the event id from the instance's log (its audit trail)",
                ));
            };
            let step = known_step(def, &original.step)?;
            let sid = Some(step.id.as_str());
            if !step.recorded_by.iter().any(|r| *r == actor.role) {
                return Err(reject(
                    Rule::RoleNotAllowed,
                    sid,
                    format!("role {} may not correct {}", facts::quoted(&actor.role), step.id),
                    format!("Corrections are made by those who record it: {}", roles_list(&step.recorded_by)),
                ));
            }
            not_future(sid, on, today)?;
            if let Some(d) = new_date {
                not_future(sid, d, today)?;
            }
            text_ok(sid, "reason", &reason)?;
            let facts = typed_facts(step, &raw)?;
            minutes_not_future(sid, &facts, today)?;
            year_in_range(step, &facts)?;
            // The facts as they stand after the correction: those given
            // replace those of the same name.
            let now = crate::instance::corrected_facts(&original.facts, &facts);
            // The same facts, each as many times (a fact may hold several values).
            let times = |fs: &[Fact], f: &Fact| fs.iter().filter(|g| *g == f).count();
            let same_facts =
                now.len() == original.facts.len() && now.iter().all(|f| times(&now, f) == times(&original.facts, f));
            let date_changed = new_date.is_some_and(|d| d != original.occurred_on);
            if same_facts && !date_changed {
                let given = if facts.is_empty() { "no facts" } else { "the facts given are those it has" };
                let date = match new_date {
                    Some(d) => format!("the date given ({d}) is the one it has"),
                    None => "no new date".into(),
                };
                return Err(reject(
                    Rule::EmptyCorrection,
                    sid,
                    format!("the correction of {} (event {event}) changes nothing: {date}, and {given}", step.id),
                    "Give the right date, or the right facts",
                ));
            }
            if let Some(d) = new_date.filter(|d| *d != original.occurred_on) {
                order_after_date_correction(inst, step, original, d)?;
            }
            // The year a corrected recording names, on the day it now
            // says, follows the year rules as a new recording does. What a
            // recording's own deviation allowed stays allowed while its
            // year stays: sharing its year with another recording, and (a
            // recording with a deviation) coming before its year was over,
            // though not earlier than it now says (so no two corrections
            // make a recording early for a year it was not recorded for).
            let year_of = |fs: &[Fact]| crate::instance::stated_year(step, fs).and_then(Result::ok);
            let year_changed = year_of(&now) != year_of(&original.facts);
            if year_changed || date_changed {
                let on = new_date.unwrap_or(original.occurred_on);
                if let Some(first) =
                    year_violations(inst, step, on, &now, Some(original.event_id)).into_iter().find(|r| match r.rule {
                        Rule::YearAlreadyRecorded => year_changed,
                        Rule::YearNotOver => year_changed || original.deviation.is_none() || on < original.occurred_on,
                        _ => true,
                    })
                {
                    return Err(first);
                }
            }
            Ok(vec![NewEvent {
                occurred_on: on,
                actor,
                payload: Payload::StepCorrected { corrects: event, reason, occurred_on: new_date, facts },
            }])
        }
        Command::ChangeDeadline { step, on, actor, change, reason } => {
            let step = known_step(def, &step)?;
            let sid = Some(step.id.as_str());
            if !deviation_roles(step).iter().any(|r| *r == actor.role) {
                return Err(reject(
                    Rule::RoleNotAllowed,
                    sid,
                    format!("role {} may not change the deadline of {}", facts::quoted(&actor.role), step.id),
                    format!("Deadlines here are changed by: {}", roles_list(deviation_roles(step))),
                ));
            }
            not_future(sid, on, today)?;
            text_ok(sid, "reason", &reason)?;
            let Some(pending) = inst.next_deadline(step) else {
                return Err(reject(
                    Rule::NoDeadline,
                    sid,
                    format!("{} has no pending deadline to change", step.id),
                    "The instance's status shows the deadlines that are pending",
                ));
            };
            if let DeadlineChange::Extended { to } = change {
                if to <= pending {
                    return Err(reject(
                        Rule::NotAnExtension,
                        sid,
                        format!("{to} is not later than the last day of {}'s pending deadline, {pending}", step.id),
                        format!(
                            "An extension gives a later day than {pending}; a deadline is not moved earlier once set"
                        ),
                    ));
                }
            }
            Ok(vec![NewEvent {
                occurred_on: on,
                actor,
                payload: Payload::DeadlineChanged { step: step.id.clone(), change, reason },
            }])
        }
    }
}
