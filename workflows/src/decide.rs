//! The pure decision: given a definition or an instance's state and a
//! command, the events to append or a rejection that names the rule, the
//! step and what would satisfy it. No IO, no clock: `today` is passed in.

use crate::definition::{DeadlineRule, Definition, Step};
use crate::facts;
use crate::instance::Instance;
use crate::{said, Bilingual};
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
    /// What is wrong, in English (the command line and the API say this).
    pub message: String,
    /// What would satisfy the rule, in English.
    pub remedy: String,
    /// The message and the remedy in Swedish (the web pages say these by
    /// default): see [`Rejection::said`].
    pub sv: Box<(String, String)>,
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

fn reject(rule: Rule, step: Option<&str>, message: Bilingual, remedy: Bilingual) -> Rejection {
    Rejection {
        rule,
        step: step.map(String::from),
        message: message.en,
        remedy: remedy.en,
        sv: Box::new((message.sv, remedy.sv)),
        fact: None,
    }
}

impl Rejection {
    /// The message and the remedy, in Swedish or in English.
    pub fn said(&self, swedish: bool) -> (&str, &str) {
        match swedish {
            true => (&self.sv.0, &self.sv.1),
            false => (&self.message, &self.remedy),
        }
    }

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

/// The roles that may record a step with a deviation, or change its
/// deadline: `deviation_by`, or `recorded_by` when it names none.
pub fn deviation_roles(step: &Step) -> &[String] {
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
            said(
                format!("arbetsflödet {} har inget steg {}", def.id, facts::quoted(step)),
                format!("workflow {} has no step {}", def.id, facts::quoted(step)),
            ),
            {
                let steps = def.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ");
                said(format!("Välj ett av: {steps}"), format!("Use one of: {steps}"))
            },
        )
    })
}

fn not_future(step: Option<&str>, on: Date, today: Date) -> Result<(), Rejection> {
    if on > today {
        return Err(reject(
            Rule::FutureDate,
            step,
            said(format!("{on} är efter dagens datum ({today})"), format!("{on} is after today ({today})")),
            said(
                "Registrera ett steg samma dag som det sker eller senare",
                "Record a step on or after the day it happens",
            ),
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
                    said(
                        format!(
                            "protokollet i {} är daterat {date}, efter dagens datum ({today})",
                            facts::quoted(&f.name)
                        ),
                        format!("the minutes in {} are dated {date}, after today ({today})", facts::quoted(&f.name)),
                    ),
                    said(
                        "Ange datumet för det sammanträde protokollet är från",
                        "Give the date of the meeting the minutes are from",
                    ),
                )
                .about(&f.name));
            }
        }
    }
    Ok(())
}

/// A justification: `what` is `deviation` or `reason`.
fn text_ok(step: Option<&str>, what: &str, s: &str) -> Result<(), Rejection> {
    let what_sv = if what == "deviation" { "avvikelsens motivering" } else { "motiveringen" };
    if s.trim().is_empty() {
        return Err(reject(
            Rule::InvalidText,
            step,
            said(format!("{what_sv} är tom"), format!("the {what} is empty")),
            said("Skriv varför", format!("Give a {what} that says why")),
        ));
    }
    engine::event::check_text(what, s, engine::limits::TEXT_BYTES_MAX, true).map_err(|e| {
        reject(
            Rule::InvalidText,
            step,
            crate::refusal(what_sv, false, &e),
            said("Korta den eller ta bort styrtecknen", "Shorten it or remove control characters"),
        )
    })
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
            said(
                format!("rollen {} finns inte i arbetsflödet {}", facts::quoted(&actor.role), def.id),
                format!("role {} is not a role of workflow {}", facts::quoted(&actor.role), def.id),
            ),
            {
                let roles = def.roles.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ");
                said(format!("Starta den i en av rollerna: {roles}"), format!("Start it as one of: {roles}"))
            },
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
            said(
                "Året är det år registreringen avser (ett avgiftsår, ett verksamhetsår), med siffror",
                "The year is the one the recording is for (a fee year, an operating year), as digits",
            ),
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
    let (or_deviate, eller_avvikelse) = match except {
        None => {
            (", or record it as a deviation, saying why", ", eller registrera det som en avvikelse och skriv varför")
        }
        Some(_) => ("", ""),
    };
    let mut v = Vec::new();
    let mut answered = inst.occurrences_of(&step.id).zip(inst.years_answered(step));
    if let Some((o, _)) = answered.find(|(o, y)| *y == year && Some(o.event_id) != except) {
        v.push(
            reject(
                Rule::YearAlreadyRecorded,
                sid,
                said(
                    format!("{} för {year} är redan registrerat {} (händelse {})", step.id, o.occurred_on, o.event_id),
                    format!("{} for {year} was already recorded on {} (event {})", step.id, o.occurred_on, o.event_id),
                ),
                said(
                    format!(
                        "Rätta i stället händelse {} för att ändra den registreringen; gäller den här ett annat år, ange det året{eller_avvikelse}",
                        o.event_id
                    ),
                    format!(
                        "To change that recording, correct event {} instead; if this one is for another year, give that year{or_deviate}",
                        o.event_id
                    ),
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
                said(
                    format!("{} för {year} är daterat {on}, innan {year} är slut", step.id),
                    format!("{} for {year} is dated {on}, before {year} is over", step.id),
                ),
                said(
                    format!("Ange dagen det skedde, under {} eller senare{eller_avvikelse}", year + 1),
                    format!("Give the day it happened, in {} or later{or_deviate}", year + 1),
                ),
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
                said(
                    format!("steget {} har ingen uppgift {}", step.id, facts::quoted(name)),
                    format!("step {} has no fact {}", step.id, facts::quoted(name)),
                ),
                {
                    let names = step.facts.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
                    said(format!("Stegets uppgifter är: {names}"), format!("Its facts are: {names}"))
                },
            )
            .about(name));
        };
        let value = facts::parse(spec, value).map_err(|e| {
            reject(Rule::IllTypedFact, sid, e, said("Ange värdet i den formen", "Give the value in that form"))
                .about(name)
        })?;
        // What the log would refuse, refused here, next to the fact's field.
        value.validate(name).map_err(|e| {
            let (name_max, text_max) = (engine::limits::NAME_BYTES_MAX, engine::limits::TEXT_BYTES_MAX);
            reject(
                Rule::IllTypedFact,
                sid,
                crate::refusal(&format!("en del av uppgiften {}", facts::quoted(name)), false, &e),
                said(
                    format!("Korta den (högst {name_max} byte för ett namn eller en roll, {text_max} för en fritext) eller ta bort styrtecknen"),
                    format!("Shorten it (at most {name_max} bytes for a name or a role, {text_max} for a text) or remove the control characters"),
                ),
            )
            .about(name)
        })?;
        if !spec.many && out.iter().any(|f| f.name == *name) {
            return Err(reject(
                Rule::RepeatedFact,
                sid,
                said(
                    format!("uppgiften {} är angiven två gånger", facts::quoted(name)),
                    format!("fact {} is given twice", facts::quoted(name)),
                ),
                said("Ange den en gång", "Give it once"),
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
                    said(
                        format!("{to} är före dagen då {before} skedde ({earliest})"),
                        format!("{to} is before {before} happened ({earliest})"),
                    ),
                    said(
                        format!("Ange {earliest} eller ett senare datum, eller rätta först datumet för {before}"),
                        format!("Give a date on or after {earliest}, or correct the date of {before} first"),
                    ),
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
                said(
                    format!(
                        "{} kommer efter {} och är registrerat den {} (händelse {}); med {to} hamnar {} efter det",
                        later.id, step.id, o.occurred_on, o.event_id, step.id
                    ),
                    format!(
                        "{} comes after {} and was recorded as happening on {} (event {}); {to} would put {} after it",
                        later.id, step.id, o.occurred_on, o.event_id, step.id
                    ),
                ),
                said(
                    format!(
                        "Ange {} eller ett tidigare datum, eller rätta först datumet för {}",
                        o.occurred_on, later.id
                    ),
                    format!("Give a date on or before {}, or correct the date of {} first", o.occurred_on, later.id),
                ),
            ));
        }
    }
    Ok(())
}

/// The rejection to answer with, `first` of `violations`: when it is a
/// missing fact, it names every missing fact, so a form or a command is
/// put right in one go rather than one refusal per fact. It stays about
/// the first one (the field a form shows it beside).
fn with_the_missing_facts(first: &Rejection, violations: &[Rejection]) -> Rejection {
    let missing: Vec<&Rejection> = violations.iter().filter(|r| r.rule == Rule::MissingFact).collect();
    if first.rule != Rule::MissingFact || missing.len() < 2 {
        return first.clone();
    }
    let join = |part: fn(&Rejection) -> &str| missing.iter().map(|r| part(r)).collect::<Vec<_>>().join("; ");
    // Each remedy is a sentence of its own.
    let join_sentences = |part: fn(&Rejection) -> &str| missing.iter().map(|r| part(r)).collect::<Vec<_>>().join(". ");
    Rejection {
        message: join(|r| &r.message),
        remedy: join_sentences(|r| &r.remedy),
        sv: Box::new((join(|r| &r.sv.0), join_sentences(|r| &r.sv.1))),
        ..first.clone()
    }
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
                said(
                    format!("steget {} kommer efter {before}, som inte är registrerat", step.id),
                    format!("step {} comes after {before}, which has not been recorded", step.id),
                ),
                said(
                    format!(
                        "Registrera {before} först, eller registrera det här steget som en avvikelse och skriv varför"
                    ),
                    format!("Record {before} first, or record this step as a deviation, saying why"),
                ),
            ));
        } else if dates.iter().all(|d| *d > on) {
            let earliest = dates.iter().min().expect("non-empty");
            v.push(reject(
                Rule::BeforePrerequisite,
                sid,
                said(format!("{on} är före dagen då {before} skedde ({earliest})"), format!("{on} is before {before} happened ({earliest})")),
                said(
                    format!("Ange {earliest} eller ett senare datum, rätta datumet för {before}, eller registrera det som en avvikelse och skriv varför"),
                    format!("Give a date on or after {earliest}, correct the date of {before}, or record it as a deviation, saying why"),
                ),
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
                    said(
                        format!(
                            "{on} ligger inom perioden räknad från {} ({start}), som pågår till och med {last}",
                            w.step
                        ),
                        format!(
                            "{on} is within the window counted from {} ({start}), which stays open until {last}",
                            w.step
                        ),
                    ),
                    {
                        let next = last.tomorrow().expect("in range");
                        said(
                            format!("Registrera {} med datum {next} eller senare", step.id),
                            format!("Record {} on {next} or later", step.id),
                        )
                    },
                ));
            }
        }
    }
    for u in &step.unless {
        if let Some(o) = inst.occurrences_of(u).filter(|o| o.occurred_on <= on).min_by_key(|o| o.occurred_on) {
            v.push(reject(
                Rule::BlockedBy,
                sid,
                said(
                    format!("{} kan inte ske när {u} har skett (registrerat {})", step.id, o.occurred_on),
                    format!("{} cannot happen once {u} has (recorded on {})", step.id, o.occurred_on),
                ),
                said(
                    format!("Vänta på utfallet av {u}, eller registrera det som en avvikelse och skriv varför"),
                    format!("Wait for the outcome of {u}, or record it as a deviation, saying why"),
                ),
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
                said(
                    format!(
                        "{} är registrerat den {} (händelse {}), vilket det inte kan vara när {} har skett; {on} är före det",
                        blocked.id, o.occurred_on, o.event_id, step.id
                    ),
                    format!(
                        "{} is recorded as happening on {} (event {}), which it cannot once {} has; {on} is before that",
                        blocked.id, o.occurred_on, o.event_id, step.id
                    ),
                ),
                said(
                    format!(
                        "Rätta {} om det inte skedde så, eller registrera {} som en avvikelse och skriv varför",
                        blocked.id, step.id
                    ),
                    format!(
                        "Correct {} if it did not happen so, or record {} as a deviation, saying why",
                        blocked.id, step.id
                    ),
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
                said(
                    format!(
                        "steget {} kräver {}.{} = {:?}, men det är {}",
                        step.id,
                        c.step,
                        c.fact,
                        c.equals,
                        value.as_ref().map_or("inte registrerat".to_string(), |x| format!("{x:?}"))
                    ),
                    format!(
                        "step {} requires {}.{} = {:?}, but it is {}",
                        step.id,
                        c.step,
                        c.fact,
                        c.equals,
                        value.as_ref().map_or("not recorded".to_string(), |x| format!("{x:?}"))
                    ),
                ),
                match inst.occurrences_of(&c.step).next() {
                    Some(o) if !inst.definition.step(&c.step).is_some_and(|s| s.repeat) => said(
                        format!(
                            "Om {} verkligen angav {}, rätta händelse {} så att den anger {}={}; annars är detta information, inte dialog",
                            c.step, c.equals, o.event_id, c.fact, c.equals
                        ),
                        format!(
                            "If {} really said {}, correct event {} to say {}={}; otherwise this is information, not dialogue",
                            c.step, c.equals, o.event_id, c.fact, c.equals
                        ),
                    ),
                    _ => said(
                        format!(
                            "Registrera först {} med {}={}; annars är detta information, inte dialog",
                            c.step, c.fact, c.equals
                        ),
                        format!(
                            "Record {} with {}={} first; otherwise this is information, not dialogue",
                            c.step, c.fact, c.equals
                        ),
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
                    said(
                        match spec.ty.name_sv() {
                            same if same == spec.name => format!("den obligatoriska uppgiften {:?} saknas", spec.name),
                            ty => format!("den obligatoriska uppgiften {:?} ({ty}) saknas", spec.name),
                        },
                        format!("required fact {:?} ({}) is missing", spec.name, spec.ty.name()),
                    ),
                    said(
                        format!("Ange uppgiften {}: {}", spec.name, facts::syntax_sv(&spec.ty)),
                        format!("Give the fact {}: {}", spec.name, facts::syntax(&spec.ty)),
                    ),
                )
                .about(&spec.name),
            );
        }
        for kind in &spec.need_kinds {
            let present = given.iter().any(|g| matches!(g, FactValue::Person { kind: k, .. } if k == kind));
            if !present {
                let (what_sv, what) = match kind {
                    PersonKind::ElectedMember => ("en förtroendevald", "an elected member (förtroendevald)"),
                    PersonKind::Official => ("en tjänsteperson", "an official (tjänsteperson)"),
                    PersonKind::Other => ("en annan person", "another person"),
                };
                let kind_word = if *kind == PersonKind::ElectedMember { "elected" } else { "official" };
                v.push(
                    reject(
                        Rule::MissingPersonKind,
                        sid,
                        said(
                            format!("uppgiften {:?} ska innehålla {what_sv}", spec.name),
                            format!("{:?} must include {what}", spec.name),
                        ),
                        said(
                            format!("Ange i {} en person som \"NAMN|ROLL|{kind_word}\"", spec.name),
                            format!("Give {} a person as \"NAME|ROLE|{kind_word}\"", spec.name),
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
                    said(
                        format!("rollen {} får inte registrera {}", facts::quoted(&actor.role), step.id),
                        format!("role {} may not record {}", facts::quoted(&actor.role), step.id),
                    ),
                    said(
                        format!("Det registreras av: {}", roles_list(&step.recorded_by)),
                        format!("It is recorded by: {}", roles_list(&step.recorded_by)),
                    ),
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
                        said(
                            format!(
                                "{} sker en gång och är registrerat {} (händelse {})",
                                step.id, o.occurred_on, o.event_id
                            ),
                            format!(
                                "{} happens once and was recorded on {} (event {})",
                                step.id, o.occurred_on, o.event_id
                            ),
                        ),
                        said(
                            format!("Rätta i stället händelse {} för att ändra det", o.event_id),
                            format!("To change it, correct event {} instead", o.event_id),
                        ),
                    ));
                }
            }
            year_in_range(step, &facts)?;
            let violations = soft_violations(inst, step, occurred_on, &facts);
            match (&deviation, violations.first()) {
                (None, Some(first)) => return Err(with_the_missing_facts(first, &violations)),
                (Some(why), _) => {
                    text_ok(sid, "deviation", why)?;
                    if !deviation_roles(step).iter().any(|r| *r == actor.role) {
                        return Err(reject(
                            Rule::DeviationNotAllowed,
                            sid,
                            said(
                                format!(
                                    "rollen {} får inte registrera en avvikelse vid {}",
                                    facts::quoted(&actor.role),
                                    step.id
                                ),
                                format!(
                                    "role {} may not record a deviation at {}",
                                    facts::quoted(&actor.role),
                                    step.id
                                ),
                            ),
                            said(
                                format!("Avvikelser här registreras av: {}", roles_list(deviation_roles(step))),
                                format!("Deviations here are recorded by: {}", roles_list(deviation_roles(step))),
                            ),
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
                    said(
                        format!("instansen {} har inget registrerat steg med händelse-id {event}", inst.id),
                        format!("instance {} has no recorded step with event id {event}", inst.id),
                    ),
                    said(
                        "Ta händelsens id från instansens logg (dess granskningsspår)",
                        "Take the event id from the instance's log (its audit trail)",
                    ),
                ));
            };
            let step = known_step(def, &original.step)?;
            let sid = Some(step.id.as_str());
            if !step.recorded_by.iter().any(|r| *r == actor.role) {
                return Err(reject(
                    Rule::RoleNotAllowed,
                    sid,
                    said(
                        format!("rollen {} får inte rätta {}", facts::quoted(&actor.role), step.id),
                        format!("role {} may not correct {}", facts::quoted(&actor.role), step.id),
                    ),
                    said(
                        format!("Rättelser görs av dem som registrerar det: {}", roles_list(&step.recorded_by)),
                        format!("Corrections are made by those who record it: {}", roles_list(&step.recorded_by)),
                    ),
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
                let given = match facts.is_empty() {
                    true => said("inga uppgifter", "no facts"),
                    false => said("de angivna uppgifterna är desamma som förut", "the facts given are those it has"),
                };
                let date = match new_date {
                    Some(d) => said(
                        format!("det angivna datumet ({d}) är detsamma som förut"),
                        format!("the date given ({d}) is the one it has"),
                    ),
                    None => said("inget nytt datum", "no new date"),
                };
                return Err(reject(
                    Rule::EmptyCorrection,
                    sid,
                    said(
                        format!(
                            "rättelsen av {} (händelse {event}) ändrar ingenting: {}, och {}",
                            step.id, date.sv, given.sv
                        ),
                        format!(
                            "the correction of {} (event {event}) changes nothing: {}, and {}",
                            step.id, date.en, given.en
                        ),
                    ),
                    said("Ange rätt datum eller rätt uppgifter", "Give the right date, or the right facts"),
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
                    said(
                        format!("rollen {} får inte ändra tidsfristen för {}", facts::quoted(&actor.role), step.id),
                        format!("role {} may not change the deadline of {}", facts::quoted(&actor.role), step.id),
                    ),
                    said(
                        format!("Tidsfrister här ändras av: {}", roles_list(deviation_roles(step))),
                        format!("Deadlines here are changed by: {}", roles_list(deviation_roles(step))),
                    ),
                ));
            }
            not_future(sid, on, today)?;
            text_ok(sid, "reason", &reason)?;
            let Some(pending) = inst.next_deadline(step) else {
                return Err(reject(
                    Rule::NoDeadline,
                    sid,
                    said(
                        format!("{} har ingen väntande tidsfrist att ändra", step.id),
                        format!("{} has no pending deadline to change", step.id),
                    ),
                    said(
                        "Instansens status visar de tidsfrister som väntar",
                        "The instance's status shows the deadlines that are pending",
                    ),
                ));
            };
            if let DeadlineChange::Extended { to } = change {
                if to <= pending {
                    return Err(reject(
                        Rule::NotAnExtension,
                        sid,
                        said(
                            format!("{to} är inte senare än sista dagen för den väntande tidsfristen för {}, {pending}", step.id),
                            format!("{to} is not later than the last day of {}'s pending deadline, {pending}", step.id),
                        ),
                        said(
                            format!(
                                "En förlängning anger en senare dag än {pending}; en tidsfrist flyttas inte tidigare när den väl är satt"
                            ),
                            format!(
                                "An extension gives a later day than {pending}; a deadline is not moved earlier once set"
                            ),
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
