//! The definition format: raw TOML types with source spans, and their
//! validation into a resolved [`Definition`]. Validation reports every
//! problem it finds, each with its place in the file.

use crate::calendar::Period;
use engine::{limits, Hash, PersonKind};
use jiff::civil::Date;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};
use toml::Spanned;

/// A title in Swedish, with English.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Title {
    pub sv: String,
    pub en: String,
}

/// The fixed vocabulary of step kinds that reports rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepKind {
    Application,
    Selection,
    Decision,
    Appointment,
    GroupFormed,
    Plan,
    MeetingAttended,
    QuestionRaised,
    Checklist,
    DialogueDecided,
    DialogueHeld,
    ResultsCompiled,
    ResultUsedInDecision,
    FeedbackGiven,
    Evaluation,
    BudgetFollowUp,
    AnnualReportFollowUp,
    Fee,
    Documentation,
    PrinciplesAdopted,
    MeetingHeld,
    MinutesApproved,
    NoticePosted,
    Appeal,
    Final,
    ProjectEnd,
}

impl StepKind {
    pub const ALL: &'static [(&'static str, StepKind)] = &[
        ("application", StepKind::Application),
        ("selection", StepKind::Selection),
        ("decision", StepKind::Decision),
        ("appointment", StepKind::Appointment),
        ("group_formed", StepKind::GroupFormed),
        ("plan", StepKind::Plan),
        ("meeting_attended", StepKind::MeetingAttended),
        ("question_raised", StepKind::QuestionRaised),
        ("checklist", StepKind::Checklist),
        ("dialogue_decided", StepKind::DialogueDecided),
        ("dialogue_held", StepKind::DialogueHeld),
        ("results_compiled", StepKind::ResultsCompiled),
        ("result_used_in_decision", StepKind::ResultUsedInDecision),
        ("feedback_given", StepKind::FeedbackGiven),
        ("evaluation", StepKind::Evaluation),
        ("budget_follow_up", StepKind::BudgetFollowUp),
        ("annual_report_follow_up", StepKind::AnnualReportFollowUp),
        ("fee", StepKind::Fee),
        ("documentation", StepKind::Documentation),
        ("principles_adopted", StepKind::PrinciplesAdopted),
        ("meeting_held", StepKind::MeetingHeld),
        ("minutes_approved", StepKind::MinutesApproved),
        ("notice_posted", StepKind::NoticePosted),
        ("appeal", StepKind::Appeal),
        ("final", StepKind::Final),
        ("project_end", StepKind::ProjectEnd),
    ];

    pub fn name(self) -> &'static str {
        StepKind::ALL.iter().find(|(_, k)| *k == self).map(|(n, _)| *n).expect("every kind is listed")
    }

    fn parse(s: &str) -> Option<StepKind> {
        StepKind::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }
}

/// The type of a fact a step carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactType {
    Date,
    Person,
    Amount,
    CaseNumber,
    Minutes,
    Document,
    Text,
    Choice(Vec<String>),
    /// An e-mail address: personal data, always sealed.
    Email,
    /// A telephone number: personal data, always sealed.
    Phone,
}

impl FactType {
    pub const NAMES: &'static [&'static str] =
        &["date", "person", "amount", "case_number", "minutes", "document", "text", "choice", "email", "phone"];

    pub fn name(&self) -> &'static str {
        match self {
            FactType::Date => "date",
            FactType::Person => "person",
            FactType::Amount => "amount",
            FactType::CaseNumber => "case_number",
            FactType::Minutes => "minutes",
            FactType::Document => "document",
            FactType::Text => "text",
            FactType::Choice(_) => "choice",
            FactType::Email => "email",
            FactType::Phone => "phone",
        }
    }

    /// What the type is called in Swedish.
    pub fn name_sv(&self) -> &'static str {
        match self {
            FactType::Date => "datum",
            FactType::Person => "person",
            FactType::Amount => "belopp",
            FactType::CaseNumber => "diarienummer",
            FactType::Minutes => "protokoll",
            FactType::Document => "dokument",
            FactType::Text => "text",
            FactType::Choice(_) => "val",
            FactType::Email => "e-post",
            FactType::Phone => "telefon",
        }
    }
}

/// A fact a step asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactSpec {
    pub name: String,
    pub title: Option<Title>,
    pub ty: FactType,
    pub required: bool,
    /// May be given more than once (the members of a group).
    pub many: bool,
    /// For `many` persons: kinds that must each appear at least once.
    pub need_kinds: Vec<PersonKind>,
    /// Personal data that may be removed (gallras) when retention rules
    /// allow: sealed in the log with its person's key, left out of public
    /// extracts, removed by `styrlogg erase`. Always true for `email` and
    /// `phone`. A public record that must be kept is not marked personal.
    pub personal: bool,
    /// Under secrecy (sekretess): kept in the log as it is, left out of
    /// public extracts.
    pub confidential: bool,
    /// For a personal fact that is not itself a person: the person fact of
    /// the same step whose person it belongs to (the n-th value goes with
    /// the n-th person).
    pub of: Option<String>,
}

/// A condition on a fact recorded by an earlier step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub step: String,
    pub fact: String,
    pub equals: String,
}

/// When a deadline falls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineRule {
    /// A fixed last day.
    LastDay(Date),
    /// A period counted from the day another step happened.
    AfterStep { step: String, period: Period },
    /// Once a year, on `month`-`day` of year + `year_offset`, for each year
    /// from `from_year` to `to_year`. With `year_fact`, a recording counts
    /// for the year that fact of it names (a text fact holding the year);
    /// without it, or when a recording does not give it, recordings meet
    /// the years in order.
    Yearly { month: i8, day: i8, from_year: i16, to_year: i16, year_offset: i16, year_fact: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub rule: DeadlineRule,
    /// Move a last day that is not a weekday to the next one (lag 1930:173).
    pub next_weekday: bool,
    /// Days before the last day when reminders go out.
    pub remind_days_before: Vec<u32>,
    /// Who is told when the deadline is missed.
    pub escalate_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub title: Title,
    pub kind: StepKind,
    pub after: Vec<String>,
    pub repeat: bool,
    pub recorded_by: Vec<String>,
    pub deviation_by: Vec<String>,
    pub facts: Vec<FactSpec>,
    pub requires: Vec<Condition>,
    pub deadline: Option<Deadline>,
    /// The step may happen only after this window has closed: the day
    /// after the last day of `period` counted from `step`.
    pub window_closed: Option<Window>,
    /// The step may not happen once any of these steps has.
    pub unless: Vec<String>,
}

/// A period counted from a step, such as the appeal window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub step: String,
    pub period: Period,
    pub next_weekday: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub title: Title,
}

/// A validated definition, ready for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub id: String,
    pub version: u32,
    pub title: Title,
    pub roles: Vec<Role>,
    pub steps: Vec<Step>,
    /// BLAKE3 of the source text: what an instance records.
    pub hash: Hash,
    pub source: String,
    /// The steps whose yearly deadline reads the year from a fact: a fold
    /// that leaves facts out must keep theirs.
    pub year_fact_steps: Vec<String>,
}

impl Step {
    /// The text fact its yearly deadline reads a recording's year from.
    pub fn year_fact(&self) -> Option<&str> {
        match self.deadline.as_ref().map(|d| &d.rule) {
            Some(DeadlineRule::Yearly { year_fact: Some(f), .. }) => Some(f),
            _ => None,
        }
    }
}

impl Definition {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn has_role(&self, id: &str) -> bool {
        self.roles.iter().any(|r| r.id == id)
    }

    /// Parses and validates `source`; `Err` holds every problem found (at
    /// most [`limits::PROBLEMS_SHOWN_MAX`], the last saying how many more).
    pub fn parse(source: &str) -> Result<Definition, Vec<Problem>> {
        check_source(source)?;
        validate(raw_definition(source).map_err(cap)?, source).map_err(cap)
    }

    /// Parses `source` like [`Definition::parse`], but shares one resolved
    /// definition between every caller with the same text: a hundred
    /// thousand instances started from one definition hold one copy of it.
    /// Parsing is a pure function of the text, so sharing changes nothing
    /// but memory.
    pub fn parse_shared(source: &str) -> Result<Arc<Definition>, Vec<Problem>> {
        static SHARED: Mutex<BTreeMap<Hash, Weak<Definition>>> = Mutex::new(BTreeMap::new());
        let hash = hash_source(source);
        if let Some(d) = SHARED.lock().unwrap_or_else(|p| p.into_inner()).get(&hash).and_then(Weak::upgrade) {
            return Ok(d);
        }
        let d = Arc::new(Definition::parse(source)?);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if shared.len() >= SHARED_DEFINITIONS_PRUNE_AT {
            shared.retain(|_, w| w.strong_count() > 0);
        }
        shared.insert(hash, Arc::downgrade(&d));
        Ok(d)
    }
}

/// What every instance started from a definition carries is its text, so
/// the text must be one the log takes: at most
/// [`limits::DEFINITION_BYTES_MAX`] bytes, with no control characters but
/// newline and tab (so LF line ends, not CRLF), and no bidirectional
/// controls.
fn check_source(source: &str) -> Result<(), Vec<Problem>> {
    if source.len() > limits::DEFINITION_BYTES_MAX {
        return Err(vec![Problem {
            span: 0..0,
            message: format!(
                "the definition is {} bytes; an instance carries its text, and the limit is {}",
                source.len(),
                limits::DEFINITION_BYTES_MAX
            ),
        }]);
    }
    let bad = source
        .char_indices()
        .find(|(_, c)| (c.is_control() && *c != '\n' && *c != '\t') || engine::event::is_bidi_control(*c));
    if let Some((at, c)) = bad {
        let what = match c {
            '\r' => "a carriage return (U+000D): save the file with LF (Unix) line ends, as instances carry its text"
                .to_string(),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("the bidirectional control U+{:04X}, which changes how the text is shown", c as u32),
        };
        return Err(vec![Problem { span: at..at + c.len_utf8(), message: format!("the definition contains {what}") }]);
    }
    Ok(())
}

/// Keeps the first [`limits::PROBLEMS_SHOWN_MAX`] problems, in the order
/// of the file, and says how many more there were.
pub(crate) fn cap(mut problems: Vec<Problem>) -> Vec<Problem> {
    if problems.len() > limits::PROBLEMS_SHOWN_MAX {
        let more = problems.len() - limits::PROBLEMS_SHOWN_MAX;
        problems.truncate(limits::PROBLEMS_SHOWN_MAX);
        let at = problems.last().map_or(0..0, |p| p.span.clone());
        problems.push(Problem { span: at, message: format!("and {more} more problem(s)") });
    }
    problems
}

/// Shared definitions no longer in use are forgotten once this many are known.
const SHARED_DEFINITIONS_PRUNE_AT: usize = 256;

/// Hashes a definition's source text.
pub fn hash_source(source: &str) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("styrlogg workflow definition v1");
    h.update(source.as_bytes());
    Hash(*h.finalize().as_bytes())
}

/// One thing wrong with a definition, at a byte range of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

impl Problem {
    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        let mut start = self.span.start.min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let before = &source[..start];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// `FILE:LINE:COL: message`
    pub fn render(&self, file: &str, source: &str) -> String {
        let (l, c) = self.line_col(source);
        format!("{file}:{l}:{c}: {}", self.message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    id: Spanned<String>,
    version: u32,
    title: Title,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Read one by one, so each has its problems told ([`crate::toml_doc`]).
    #[serde(default, deserialize_with = "crate::toml_doc::later")]
    roles: Vec<RawRole>,
    #[serde(default, deserialize_with = "crate::toml_doc::later")]
    steps: Vec<RawStep>,
}

/// The file as its keys have it: every wrong key or type, at the top and
/// in each role and step, with its place.
fn raw_definition(source: &str) -> Result<RawDefinition, Vec<Problem>> {
    let mut doc = crate::toml_doc::Doc::parse(source)?;
    let top: Option<RawDefinition> = doc.top();
    let roles = doc.items::<RawRole>("roles").into_iter().map(Spanned::into_inner).collect();
    let steps = doc.items::<RawStep>("steps").into_iter().map(Spanned::into_inner).collect();
    match top {
        Some(d) if doc.problems.is_empty() => Ok(RawDefinition { roles, steps, ..d }),
        _ => Err(doc.problems),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    id: Spanned<String>,
    title: Title,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    title: Title,
    kind: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    repeat: bool,
    recorded_by: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    deviation_by: Vec<Spanned<String>>,
    #[serde(default)]
    facts: Vec<RawFact>,
    #[serde(default)]
    requires: Vec<RawCondition>,
    deadline: Option<Spanned<RawDeadline>>,
    window_closed: Option<Spanned<RawWindow>>,
    #[serde(default)]
    unless: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    after_step: Spanned<String>,
    days: Option<i32>,
    weeks: Option<i32>,
    months: Option<i32>,
    #[serde(default)]
    next_weekday: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact {
    name: Spanned<String>,
    title: Option<Title>,
    #[serde(rename = "type")]
    ty: Spanned<String>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default)]
    many: bool,
    #[serde(default)]
    options: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    need_kinds: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    personal: bool,
    #[serde(default)]
    confidential: bool,
    #[serde(default)]
    of: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    step: Spanned<String>,
    fact: Spanned<String>,
    equals: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    by: Option<Spanned<toml::value::Datetime>>,
    before: Option<Spanned<toml::value::Datetime>>,
    after_step: Option<Spanned<String>>,
    days: Option<i32>,
    weeks: Option<i32>,
    months: Option<i32>,
    yearly: Option<Spanned<RawYearly>>,
    #[serde(default)]
    next_weekday: bool,
    #[serde(default)]
    remind_days_before: Vec<u32>,
    escalate_to: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYearly {
    month: i8,
    day: i8,
    from_year: i16,
    to_year: i16,
    #[serde(default)]
    year_offset: i16,
    /// A text fact of the step that names the year a recording is for.
    year_fact: Option<Spanned<String>>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.0.push(Problem { span, message: message.into() });
    }
}

fn check_id(p: &mut Problems, what: &str, id: &Spanned<String>) {
    let s = id.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        p.at(id.span(), format!("{what} {s:?} must be 1-64 characters of a-z, 0-9, _ and -"));
    }
}

fn toml_date(p: &mut Problems, d: &Spanned<toml::value::Datetime>) -> Option<Date> {
    let dt = d.get_ref();
    match (dt.date, dt.time) {
        (Some(date), None) => match Date::new(date.year as i16, date.month as i8, date.day as i8) {
            Ok(d) => Some(d),
            Err(e) => {
                p.at(d.span(), format!("{dt} is not a real date: {e}"));
                None
            }
        },
        _ => {
            p.at(d.span(), format!("{dt} must be a plain date such as 2012-10-15, without a time"));
            None
        }
    }
}

fn person_kind(s: &str) -> Option<PersonKind> {
    match s {
        "elected_member" => Some(PersonKind::ElectedMember),
        "official" => Some(PersonKind::Official),
        _ => None,
    }
}

/// A title is shown on one line, and the definition's Swedish title is
/// every instance's title in the log.
fn check_title(p: &mut Problems, span: Range<usize>, what: &str, t: &Title) {
    for (lang, s) in [("sv", &t.sv), ("en", &t.en)] {
        if let Err(e) = engine::event::check_text(&format!("{what} title.{lang}"), s, limits::TEXT_BYTES_MAX, false) {
            p.at(span.clone(), e.to_string());
        }
    }
}

/// Something a user types and the log keeps as a name (a fact's name in
/// `--fact NAME=VALUE`, an option of a choice): 1 to `max` bytes, no
/// surrounding spaces (input is trimmed), no control characters.
fn typable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.trim() == s && engine::event::check_text("", s, max, false).is_ok()
}

fn validate(raw: RawDefinition, source: &str) -> Result<Definition, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    check_id(&mut p, "workflow id", &raw.id);
    check_title(&mut p, raw.id.span(), "the workflow's", &raw.title);
    if raw.version == 0 {
        p.at(raw.id.span(), "version must be 1 or more");
    }
    let mut roles = Vec::new();
    let mut role_ids = BTreeSet::new();
    for r in &raw.roles {
        check_id(&mut p, "role id", &r.id);
        check_title(&mut p, r.id.span(), &format!("role {:?}", r.id.get_ref()), &r.title);
        if !role_ids.insert(r.id.get_ref().clone()) {
            p.at(r.id.span(), format!("role {:?} is defined twice", r.id.get_ref()));
        }
        roles.push(Role { id: r.id.get_ref().clone(), title: r.title.clone() });
    }
    if raw.roles.is_empty() {
        p.at(raw.id.span(), "the definition has no [[roles]]: nobody could record anything");
    }
    if raw.steps.is_empty() {
        p.at(raw.id.span(), "the definition has no [[steps]]");
    }
    let known_role = |p: &mut Problems, r: &Spanned<String>, what: &str| {
        if !role_ids.contains(r.get_ref()) {
            p.at(
                r.span(),
                format!(
                    "{what} {:?} is not a role of this workflow, so nobody can hold it; known roles: {}",
                    r.get_ref(),
                    role_ids.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    };
    let mut step_ids: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for s in &raw.steps {
        check_id(&mut p, "step id", &s.id);
        if step_ids.insert(s.id.get_ref().clone(), s.id.span()).is_some() {
            p.at(s.id.span(), format!("step {:?} is defined twice", s.id.get_ref()));
        }
    }
    let mut steps = Vec::new();
    for s in &raw.steps {
        let sid = s.id.get_ref();
        check_title(&mut p, s.id.span(), &format!("step {sid:?}"), &s.title);
        let kind = StepKind::parse(s.kind.get_ref());
        if kind.is_none() {
            p.at(
                s.kind.span(),
                format!(
                    "step {sid:?}: kind {:?} is not in the vocabulary: {}",
                    s.kind.get_ref(),
                    StepKind::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        for a in &s.after {
            if !step_ids.contains_key(a.get_ref()) {
                p.at(
                    a.span(),
                    format!("step {sid:?} comes after {:?}, which is not a step of this workflow", a.get_ref()),
                );
            } else if a.get_ref() == sid {
                p.at(a.span(), format!("step {sid:?} cannot come after itself"));
            }
        }
        if s.recorded_by.get_ref().is_empty() {
            p.at(s.recorded_by.span(), format!("step {sid:?}: recorded_by names no role, so nobody could record it"));
        }
        for r in s.recorded_by.get_ref() {
            known_role(&mut p, r, &format!("step {sid:?}: recorded_by role"));
        }
        for r in &s.deviation_by {
            known_role(&mut p, r, &format!("step {sid:?}: deviation_by role"));
        }
        let mut facts = Vec::new();
        let mut fact_names = BTreeSet::new();
        for f in &s.facts {
            let fname = f.name.get_ref();
            if !typable(fname, 64) || fname.contains('=') {
                p.at(
                    f.name.span(),
                    format!("step {sid:?}: fact name {fname:?} must be 1-64 bytes without '=', control characters or surrounding spaces (it is typed as --fact NAME=VALUE)"),
                );
            }
            if let Some(t) = &f.title {
                check_title(&mut p, f.name.span(), &format!("step {sid:?}: fact {fname:?}"), t);
            }
            if !fact_names.insert(fname.clone()) {
                p.at(f.name.span(), format!("step {sid:?}: fact {fname:?} is listed twice"));
            }
            let ty = match f.ty.get_ref().as_str() {
                "date" => Some(FactType::Date),
                "person" => Some(FactType::Person),
                "amount" => Some(FactType::Amount),
                "case_number" => Some(FactType::CaseNumber),
                "minutes" => Some(FactType::Minutes),
                "document" => Some(FactType::Document),
                "text" => Some(FactType::Text),
                "email" => Some(FactType::Email),
                "phone" => Some(FactType::Phone),
                "choice" => match &f.options {
                    Some(o) if !o.get_ref().is_empty() => {
                        for opt in o.get_ref().iter().filter(|x| !typable(x, limits::NAME_BYTES_MAX)) {
                            p.at(
                                o.span(),
                                format!("step {sid:?}: fact {fname:?}: option {opt:?} must be 1-{} bytes without control characters or surrounding spaces", limits::NAME_BYTES_MAX),
                            );
                        }
                        Some(FactType::Choice(o.get_ref().clone()))
                    }
                    _ => {
                        p.at(f.ty.span(), format!("step {sid:?}: fact {fname:?} is a choice but lists no options"));
                        None
                    }
                },
                other => {
                    p.at(
                        f.ty.span(),
                        format!(
                            "step {sid:?}: fact {fname:?} has type {other:?}, which does not exist; types: {}",
                            FactType::NAMES.join(", ")
                        ),
                    );
                    None
                }
            };
            if let (Some(o), Some(t)) = (&f.options, &ty) {
                if !matches!(t, FactType::Choice(_)) {
                    p.at(o.span(), format!("step {sid:?}: fact {fname:?}: options are only for choice facts"));
                }
            }
            let mut need_kinds = Vec::new();
            if let Some(nk) = &f.need_kinds {
                if !(f.many && matches!(ty, Some(FactType::Person))) {
                    p.at(
                        nk.span(),
                        format!("step {sid:?}: fact {fname:?}: need_kinds is only for persons with many = true"),
                    );
                }
                for k in nk.get_ref() {
                    match person_kind(k.get_ref()) {
                        Some(pk) => need_kinds.push(pk),
                        None => p.at(
                            k.span(),
                            format!(
                                "step {sid:?}: person kind {:?} is neither elected_member nor official",
                                k.get_ref()
                            ),
                        ),
                    }
                }
            }
            let always_personal = matches!(ty, Some(FactType::Email | FactType::Phone));
            let personal = f.personal || always_personal;
            if let Some(of) = &f.of {
                let target = s.facts.iter().find(|o| o.name.get_ref() == of.get_ref());
                if !personal || matches!(ty, Some(FactType::Person)) {
                    p.at(
                        of.span(),
                        format!("step {sid:?}: fact {fname:?}: `of` is for personal facts that are not persons (email, phone, personal = true)"),
                    );
                } else if !target.is_some_and(|t| t.ty.get_ref() == "person" && t.personal) {
                    p.at(
                        of.span(),
                        format!(
                            "step {sid:?}: fact {fname:?} belongs to {:?}, which is not a person fact with personal = true in this step",
                            of.get_ref()
                        ),
                    );
                }
            }
            if let Some(ty) = ty {
                facts.push(FactSpec {
                    name: fname.clone(),
                    title: f.title.clone(),
                    ty,
                    required: f.required,
                    many: f.many,
                    need_kinds,
                    personal,
                    confidential: f.confidential,
                    of: f.of.as_ref().map(|o| o.get_ref().clone()),
                });
            }
        }
        let mut requires = Vec::new();
        for c in &s.requires {
            let cstep = c.step.get_ref();
            match raw.steps.iter().find(|o| o.id.get_ref() == cstep) {
                None => p.at(
                    c.step.span(),
                    format!("step {sid:?} requires a fact of {cstep:?}, which is not a step of this workflow"),
                ),
                Some(o) => {
                    if !o.facts.iter().any(|f| f.name.get_ref() == c.fact.get_ref()) {
                        p.at(
                            c.fact.span(),
                            format!(
                                "step {sid:?} requires fact {:?} of step {cstep:?}, which has no such fact",
                                c.fact.get_ref()
                            ),
                        );
                    }
                    if !s.after.iter().any(|a| a.get_ref() == cstep) {
                        p.at(c.step.span(), format!("step {sid:?} requires a fact of {cstep:?} but does not come after it; add it to `after`"));
                    }
                }
            }
            requires.push(Condition { step: cstep.clone(), fact: c.fact.get_ref().clone(), equals: c.equals.clone() });
        }
        let deadline = s.deadline.as_ref().and_then(|d| deadline(&mut p, sid, d, &step_ids, &known_role));
        if let Some(yf) =
            s.deadline.as_ref().and_then(|d| d.get_ref().yearly.as_ref()).and_then(|y| y.get_ref().year_fact.as_ref())
        {
            if !facts.iter().any(|f| f.name == *yf.get_ref() && f.ty == FactType::Text && !f.many) {
                p.at(
                    yf.span(),
                    format!(
                        "step {sid:?}: year_fact {:?} must be a text fact of this step, given once (it holds the year a recording is for)",
                        yf.get_ref()
                    ),
                );
            }
        }
        let window_closed = s.window_closed.as_ref().and_then(|w| {
            let span = w.span();
            let w = w.get_ref();
            if !step_ids.contains_key(w.after_step.get_ref()) {
                p.at(
                    w.after_step.span(),
                    format!(
                        "step {sid:?}: the window counts from {:?}, which is not a step of this workflow",
                        w.after_step.get_ref()
                    ),
                );
            }
            let periods: Vec<Period> =
                [w.days.map(Period::Days), w.weeks.map(Period::Weeks), w.months.map(Period::Months)]
                    .into_iter()
                    .flatten()
                    .collect();
            match periods.as_slice() {
                [period] => {
                    Some(Window { step: w.after_step.get_ref().clone(), period: *period, next_weekday: w.next_weekday })
                }
                _ => {
                    p.at(span, format!("step {sid:?}: window_closed needs exactly one of days, weeks or months"));
                    None
                }
            }
        });
        for u in &s.unless {
            if !step_ids.contains_key(u.get_ref()) {
                p.at(
                    u.span(),
                    format!("step {sid:?} is blocked by {:?}, which is not a step of this workflow", u.get_ref()),
                );
            }
        }
        if let Some(kind) = kind {
            steps.push(Step {
                id: sid.clone(),
                title: s.title.clone(),
                kind,
                after: s.after.iter().map(|a| a.get_ref().clone()).collect(),
                repeat: s.repeat,
                recorded_by: s.recorded_by.get_ref().iter().map(|r| r.get_ref().clone()).collect(),
                deviation_by: s.deviation_by.iter().map(|r| r.get_ref().clone()).collect(),
                facts,
                requires,
                deadline,
                window_closed,
                unless: s.unless.iter().map(|u| u.get_ref().clone()).collect(),
            });
        }
    }
    find_cycles(&mut p, &raw.steps);
    if !p.0.is_empty() {
        p.0.sort_by_key(|x| x.span.start);
        return Err(p.0);
    }
    Ok(Definition {
        id: raw.id.into_inner(),
        version: raw.version,
        title: raw.title,
        roles,
        year_fact_steps: steps.iter().filter(|s| s.year_fact().is_some()).map(|s| s.id.clone()).collect(),
        steps,
        hash: hash_source(source),
        source: source.to_string(),
    })
}

fn deadline(
    p: &mut Problems,
    sid: &str,
    d: &Spanned<RawDeadline>,
    step_ids: &BTreeMap<String, Range<usize>>,
    known_role: &dyn Fn(&mut Problems, &Spanned<String>, &str),
) -> Option<Deadline> {
    let span = d.span();
    let d = d.get_ref();
    let given =
        [d.by.is_some(), d.before.is_some(), d.after_step.is_some(), d.yearly.is_some()].iter().filter(|x| **x).count();
    if given != 1 {
        p.at(span.clone(), format!("step {sid:?}: a deadline needs exactly one of by, before, after_step or yearly"));
        return None;
    }
    if let Some(e) = &d.escalate_to {
        known_role(p, e, &format!("step {sid:?}: escalate_to role"));
    }
    let periods = [d.days.map(Period::Days), d.weeks.map(Period::Weeks), d.months.map(Period::Months)];
    let periods: Vec<Period> = periods.into_iter().flatten().collect();
    let rule = if let Some(by) = &d.by {
        toml_date(p, by).map(DeadlineRule::LastDay)
    } else if let Some(before) = &d.before {
        toml_date(p, before).map(|b| DeadlineRule::LastDay(b.yesterday().expect("in range")))
    } else if let Some(step) = &d.after_step {
        if !step_ids.contains_key(step.get_ref()) {
            p.at(
                step.span(),
                format!(
                    "step {sid:?}: the deadline counts from {:?}, which is not a step of this workflow",
                    step.get_ref()
                ),
            );
        }
        match periods.as_slice() {
            [period] => Some(DeadlineRule::AfterStep { step: step.get_ref().clone(), period: *period }),
            _ => {
                p.at(
                    span.clone(),
                    format!("step {sid:?}: a deadline after a step needs exactly one of days, weeks or months"),
                );
                None
            }
        }
    } else {
        let y = d.yearly.as_ref().expect("counted above");
        let yr = y.get_ref();
        let probe = Date::new(2000, yr.month, yr.day);
        if probe.is_err()
            || yr.from_year > yr.to_year
            || !crate::calendar::YEARS.contains(&yr.from_year)
            || !crate::calendar::YEARS.contains(&yr.to_year)
        {
            p.at(
                y.span(),
                format!("step {sid:?}: yearly needs a real month and day and from_year <= to_year within 1900-2100"),
            );
            None
        } else {
            Some(DeadlineRule::Yearly {
                month: yr.month,
                day: yr.day,
                from_year: yr.from_year,
                to_year: yr.to_year,
                year_offset: yr.year_offset,
                year_fact: yr.year_fact.as_ref().map(|f| f.get_ref().clone()),
            })
        }
    };
    if !periods.is_empty() && d.after_step.is_none() {
        p.at(span, format!("step {sid:?}: days, weeks and months only count from after_step"));
    }
    Some(Deadline {
        rule: rule?,
        next_weekday: d.next_weekday,
        remind_days_before: d.remind_days_before.clone(),
        escalate_to: d.escalate_to.as_ref().map(|e| e.get_ref().clone()),
    })
}

/// Reports each cycle in the `after` graph once, at one of its steps.
fn find_cycles(p: &mut Problems, steps: &[RawStep]) {
    let index: BTreeMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.get_ref().as_str(), i)).collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; steps.len()];
    fn visit(
        i: usize,
        steps: &[RawStep],
        index: &BTreeMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        p: &mut Problems,
    ) {
        state[i] = 1;
        path.push(i);
        for a in &steps[i].after {
            let Some(&j) = index.get(a.get_ref().as_str()) else {
                continue;
            };
            if j == i {
                continue;
            }
            if state[j] == 1 {
                let from = path.iter().position(|x| *x == j).expect("on path");
                let mut names: Vec<&str> = path[from..].iter().map(|k| steps[*k].id.get_ref().as_str()).collect();
                names.push(steps[j].id.get_ref());
                p.at(
                    a.span(),
                    format!("the steps form a cycle, so none of them could ever be recorded: {}", names.join(" -> ")),
                );
            } else if state[j] == 0 {
                visit(j, steps, index, state, path, p);
            }
        }
        path.pop();
        state[i] = 2;
    }
    for i in 0..steps.len() {
        if state[i] == 0 {
            visit(i, steps, &index, &mut state, &mut Vec::new(), p);
        }
    }
}
