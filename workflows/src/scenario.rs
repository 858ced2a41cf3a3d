//! Scenario files: a recorded history as data. A header says what the
//! history is, which source document it comes from and what had to be
//! assumed; then an ordered list of the same commands a user types
//! (`start`, `record`, `correct`, `deadline`), each with the date it was
//! typed in (`recorded_on`, "today" for that command) and an optional note
//! quoting the source. Parsing is pure and reports every problem with its
//! place in the file; applying the commands is the caller's business.
//!
//! ```toml
//! title = "Landstinget i Jönköpings län: vägen in i nätverket"
//! source = "000: skrivelse och protokollsutdrag"
//! by = "Rekonstruktion ur källa 000"   # default recorder
//! assumptions = ["..."]
//!
//! [[command]]
//! start = "skl-styrsystem-2012-2014"
//! instance = "ljl-2012-styrsystem"
//! org = "Landstinget i Jönköpings län"
//! dnr = "LJ2012/896"
//! on = 2012-01-31
//! role = "registrator"
//!
//! [[command]]
//! record = "beredning"
//! instance = "ljl-2012-styrsystem"
//! on = 2012-08-14
//! facts = ["organ=Planeringsdelegationen", "protokoll=Planeringsdelegationen|2012-08-14|§ 100"]
//! role = "sekreterare"
//! source = "Planeringsdelegationen §§ 97-106, § 100"
//! ```

use crate::definition::Problem;
use engine::{limits, DeadlineChange, EventId};
use jiff::civil::Date;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A parsed, checked scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub title: String,
    /// Which source document the history comes from.
    pub source: String,
    pub notes: Option<String>,
    /// What had to be assumed where the source is silent.
    pub assumptions: Vec<String>,
    pub commands: Vec<ScenarioCommand>,
}

/// One command of a scenario, with where it stands in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioCommand {
    /// 1-based position in the file's list of commands.
    pub index: usize,
    /// 1-based line of the command's first key.
    pub line: usize,
    pub by: String,
    pub role: String,
    /// When it happened (for `correct` and `deadline`: the date of the change).
    pub on: Date,
    /// When it was typed in: "today" for the rules (default `on`).
    pub recorded_on: Date,
    pub note: Option<String>,
    pub source: Option<String>,
    pub what: What,
}

/// Which command, with its arguments, as the command line takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Start {
        workflow: String,
        instance: String,
        org: String,
        dnr: Option<String>,
    },
    Record {
        instance: String,
        step: String,
        facts: Vec<(String, String)>,
        deviation: Option<String>,
        /// A name later commands of the file use to point at this step.
        label: Option<String>,
    },
    Correct {
        target: Target,
        reason: String,
        new_date: Option<Date>,
        facts: Vec<(String, String)>,
    },
    Deadline {
        instance: String,
        step: String,
        change: DeadlineChange,
        reason: String,
    },
}

/// The step a correction points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The `record` command of this file with that label, its 0-based
    /// index in [`Scenario::commands`], and its instance.
    Label { label: String, command: usize, instance: String },
    /// An event already in the log.
    Event(EventId),
}

impl What {
    /// `record beredning in ljl-2012-styrsystem`, for messages.
    pub fn describe(&self) -> String {
        match self {
            What::Start { workflow, instance, .. } => format!("start {workflow} as {instance}"),
            What::Record { instance, step, .. } => format!("record {step} in {instance}"),
            What::Correct { target: Target::Label { label, instance, .. }, .. } => {
                format!("correct {label} in {instance}")
            }
            What::Correct { target: Target::Event(e), .. } => format!("correct event {e}"),
            What::Deadline { instance, step, .. } => format!("deadline of {step} in {instance}"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    title: String,
    source: String,
    by: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    assumptions: Vec<String>,
    /// Read one by one ([`raw_scenario`]), so each has its problems told.
    #[serde(default, rename = "command", deserialize_with = "crate::toml_doc::later")]
    commands: Vec<Spanned<RawCommand>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    start: Option<Spanned<String>>,
    record: Option<Spanned<String>>,
    correct: Option<Spanned<String>>,
    deadline: Option<Spanned<String>>,
    instance: Option<Spanned<String>>,
    org: Option<Spanned<String>>,
    dnr: Option<Spanned<String>>,
    on: Option<Spanned<toml::Value>>,
    recorded_on: Option<Spanned<toml::Value>>,
    facts: Option<Spanned<toml::Value>>,
    deviation: Option<Spanned<String>>,
    label: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
    date: Option<Spanned<toml::Value>>,
    extend_to: Option<Spanned<toml::Value>>,
    waive: Option<Spanned<bool>>,
    by: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    note: Option<String>,
    source: Option<String>,
}

/// The file as its keys have it: every wrong key or type, in the header
/// and in each command, with its place ([`crate::toml_doc`]).
fn raw_scenario(source: &str) -> Result<RawScenario, Vec<Problem>> {
    let mut doc = crate::toml_doc::Doc::parse(source).map_err(crate::definition::cap)?;
    let header: Option<RawScenario> = doc.top();
    let commands = doc.items::<RawCommand>("command");
    match header {
        Some(h) if doc.problems.is_empty() => Ok(RawScenario { commands, ..h }),
        _ => Err(crate::definition::cap(doc.problems)),
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn at(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.0.push(Problem { span, message: message.into() });
    }
}

fn date_value(p: &mut Problems, what: &str, v: &Spanned<toml::Value>) -> Option<Date> {
    let text = match v.get_ref() {
        toml::Value::Datetime(d) if d.date.is_some() && d.time.is_none() => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => {
            p.at(v.span(), format!("{what} must be a date such as 2012-08-14, not a {}", other.type_str()));
            return None;
        }
    };
    match crate::facts::parse_date(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            p.at(v.span(), format!("{what}: {e}"));
            None
        }
    }
}

/// `["KEY=VALUE", ...]` exactly as `--fact` takes them, or a table
/// `{ key = "value", other = ["a", "b"] }`.
fn facts_value(p: &mut Problems, v: &Spanned<toml::Value>) -> Vec<(String, String)> {
    let scalar = |v: &toml::Value| -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Datetime(d) => Some(d.to_string()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    match v.get_ref() {
        toml::Value::Array(items) => {
            for item in items {
                match item.as_str().and_then(|s| s.split_once('=')) {
                    Some((k, val)) if !k.trim().is_empty() => out.push((k.trim().to_string(), val.to_string())),
                    _ => p.at(
                        v.span(),
                        match item.as_str() {
                            Some(text) => format!("facts: {text:?} is not a \"KEY=VALUE\" string"),
                            None => format!("facts: a {} is not a \"KEY=VALUE\" string", item.type_str()),
                        },
                    ),
                }
            }
        }
        toml::Value::Table(t) => {
            for (k, val) in t {
                let values = match val {
                    toml::Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                for one in values {
                    match scalar(&one) {
                        Some(s) => out.push((k.clone(), s)),
                        None => p.at(v.span(), format!("facts: {k:?} must be a string, got {}", one.type_str())),
                    }
                }
            }
        }
        other => p.at(
            v.span(),
            format!("facts must be a list of \"KEY=VALUE\" strings or a table, not a {}", other.type_str()),
        ),
    }
    out
}

impl Scenario {
    /// Parses and checks `source`; `Err` holds every problem found, each
    /// with its place (render with [`Problem::render`]).
    pub fn parse(source: &str) -> Result<Scenario, Vec<Problem>> {
        if source.len() > limits::SCENARIO_BYTES_MAX {
            return Err(vec![Problem {
                span: 0..0,
                message: format!(
                    "the scenario is {} bytes; the limit is {} (split it into several files)",
                    source.len(),
                    limits::SCENARIO_BYTES_MAX
                ),
            }]);
        }
        let raw = raw_scenario(source)?;
        // Where each line starts, to find a command's line without reading
        // the file from the top for every command.
        let line_starts: Vec<usize> =
            std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let mut p = Problems(Vec::new());
        let mut commands = Vec::new();
        let mut labels: BTreeMap<String, (usize, String)> = BTreeMap::new();
        if raw.commands.is_empty() {
            p.at(0..0, "the scenario has no [[command]]");
        }
        for (i, spanned) in raw.commands.iter().enumerate() {
            let c = spanned.get_ref();
            let whole = spanned.span();
            let kinds: Vec<(&str, &Spanned<String>)> =
                [("start", &c.start), ("record", &c.record), ("correct", &c.correct), ("deadline", &c.deadline)]
                    .into_iter()
                    .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
                    .collect();
            let (kind, arg) = match kinds.as_slice() {
                [one] => *one,
                [] => {
                    p.at(whole, format!("command {}: say what it does: start, record, correct or deadline", i + 1));
                    continue;
                }
                [_, second, ..] => {
                    p.at(
                        second.1.span(),
                        format!(
                            "command {}: one of start, record, correct or deadline, not both {} and {}",
                            i + 1,
                            kinds[0].0,
                            second.0
                        ),
                    );
                    continue;
                }
            };
            let at = arg.span();
            let line = line_starts.partition_point(|&start| start <= at.start);
            // Which keys each kind takes besides the common ones.
            let allowed: &[&str] = match kind {
                "start" => &["instance", "org", "dnr"],
                "record" => &["instance", "facts", "deviation", "label"],
                "correct" => &["reason", "date", "facts"],
                _ => &["instance", "extend_to", "waive", "reason"],
            };
            let given: [(&str, Option<std::ops::Range<usize>>); 10] = [
                ("instance", c.instance.as_ref().map(|v| v.span())),
                ("org", c.org.as_ref().map(|v| v.span())),
                ("dnr", c.dnr.as_ref().map(|v| v.span())),
                ("facts", c.facts.as_ref().map(|v| v.span())),
                ("deviation", c.deviation.as_ref().map(|v| v.span())),
                ("label", c.label.as_ref().map(|v| v.span())),
                ("reason", c.reason.as_ref().map(|v| v.span())),
                ("date", c.date.as_ref().map(|v| v.span())),
                ("extend_to", c.extend_to.as_ref().map(|v| v.span())),
                ("waive", c.waive.as_ref().map(|v| v.span())),
            ];
            for (name, span) in given {
                if let Some(span) = span {
                    if !allowed.contains(&name) {
                        p.at(span, format!("command {}: {kind} takes no {name}", i + 1));
                    }
                }
            }
            let need = |p: &mut Problems, name: &str, v: &Option<Spanned<String>>| -> Option<String> {
                match v {
                    Some(v) if !v.get_ref().trim().is_empty() => Some(v.get_ref().clone()),
                    Some(v) => {
                        p.at(v.span(), format!("command {}: {name} is empty", i + 1));
                        None
                    }
                    None => {
                        p.at(at.clone(), format!("command {} ({kind}) needs {name}", i + 1));
                        None
                    }
                }
            };
            let by = match (&c.by, &raw.by) {
                (Some(b), _) => need(&mut p, "by", &Some(b.clone())),
                (None, Some(b)) if !b.trim().is_empty() => Some(b.clone()),
                _ => {
                    p.at(at.clone(), format!("command {}: give by = \"NAME\" here or in the header", i + 1));
                    None
                }
            };
            let role = need(&mut p, "role", &c.role);
            let on = match &c.on {
                Some(v) => date_value(&mut p, "on", v),
                None => {
                    p.at(at.clone(), format!("command {} ({kind}) needs on = DATE", i + 1));
                    None
                }
            };
            let recorded_on = match &c.recorded_on {
                Some(v) => date_value(&mut p, "recorded_on", v),
                None => on,
            };
            if let (Some(on), Some(rec), Some(v)) = (on, recorded_on, &c.recorded_on) {
                if rec < on {
                    p.at(v.span(), format!("command {}: recorded_on {rec} is before it happened ({on})", i + 1));
                }
            }
            let facts = c.facts.as_ref().map(|f| facts_value(&mut p, f)).unwrap_or_default();
            let what = match kind {
                "start" => {
                    let instance = need(&mut p, "instance", &c.instance);
                    let org = need(&mut p, "org", &c.org);
                    match (instance, org) {
                        (Some(instance), Some(org)) => Some(What::Start {
                            workflow: arg.get_ref().clone(),
                            instance,
                            org,
                            dnr: c.dnr.as_ref().map(|d| d.get_ref().clone()),
                        }),
                        _ => None,
                    }
                }
                "record" => {
                    let instance = need(&mut p, "instance", &c.instance);
                    let label = c.label.as_ref().map(|l| l.get_ref().clone());
                    if let (Some(l), Some(inst)) = (&c.label, &instance) {
                        if labels.insert(l.get_ref().clone(), (i, inst.clone())).is_some() {
                            p.at(l.span(), format!("command {}: label {:?} is used twice", i + 1, l.get_ref()));
                        }
                    }
                    instance.map(|instance| What::Record {
                        instance,
                        step: arg.get_ref().clone(),
                        facts,
                        deviation: c.deviation.as_ref().map(|d| d.get_ref().clone()),
                        label,
                    })
                }
                "correct" => {
                    let reason = need(&mut p, "reason", &c.reason);
                    let new_date = c.date.as_ref().and_then(|d| date_value(&mut p, "date", d));
                    let target = match labels.get(arg.get_ref()) {
                        Some((command, instance)) => Some(Target::Label {
                            label: arg.get_ref().clone(),
                            command: *command,
                            instance: instance.clone(),
                        }),
                        None => match EventId::from_hex(arg.get_ref()) {
                            Ok(e) => Some(Target::Event(e)),
                            Err(_) => {
                                p.at(
                                    at.clone(),
                                    format!(
                                        "command {}: correct {:?} is neither the label of an earlier record in this file nor an event id",
                                        i + 1,
                                        arg.get_ref()
                                    ),
                                );
                                None
                            }
                        },
                    };
                    match (target, reason) {
                        (Some(target), Some(reason)) => Some(What::Correct { target, reason, new_date, facts }),
                        _ => None,
                    }
                }
                _ => {
                    let instance = need(&mut p, "instance", &c.instance);
                    let reason = need(&mut p, "reason", &c.reason);
                    let change = match (&c.extend_to, c.waive.as_ref().map(|w| *w.get_ref())) {
                        (Some(to), None | Some(false)) => {
                            date_value(&mut p, "extend_to", to).map(|to| DeadlineChange::Extended { to })
                        }
                        (None, Some(true)) => Some(DeadlineChange::Waived),
                        _ => {
                            p.at(
                                at.clone(),
                                format!(
                                    "command {}: a deadline change needs either extend_to = DATE or waive = true",
                                    i + 1
                                ),
                            );
                            None
                        }
                    };
                    match (instance, reason, change) {
                        (Some(instance), Some(reason), Some(change)) => {
                            Some(What::Deadline { instance, step: arg.get_ref().clone(), change, reason })
                        }
                        _ => None,
                    }
                }
            };
            if let (Some(what), Some(by), Some(role), Some(on), Some(recorded_on)) = (what, by, role, on, recorded_on) {
                commands.push(ScenarioCommand {
                    index: i + 1,
                    line,
                    by,
                    role,
                    on,
                    recorded_on,
                    note: c.note.clone(),
                    source: c.source.clone(),
                    what,
                });
            }
        }
        if !p.0.is_empty() {
            return Err(crate::definition::cap(p.0));
        }
        Ok(Scenario { title: raw.title, source: raw.source, notes: raw.notes, assumptions: raw.assumptions, commands })
    }
}
