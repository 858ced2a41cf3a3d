//! The compliance checklist: each obligation of an instance's workflow
//! (each step it defines) with met, met late, met with deviation, not yet
//! due, or overdue, and the evidence.

use crate::lang::Lang;
use crate::view::LogView;
use crate::Document;
use engine::FactValue;
use jiff::civil::Date;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    MetLate,
    MetWithDeviation,
    /// Recorded, but a condition the step requires no longer holds as the
    /// record now stands (a fact it depends on was corrected since).
    MetConditionNotMet,
    NotYetDue,
    Overdue,
    NotMet,
}

impl Verdict {
    pub fn text(self, lang: Lang) -> &'static str {
        match self {
            Verdict::Met => lang.t("uppfyllt", "met"),
            Verdict::MetLate => lang.t("uppfyllt för sent", "met late"),
            Verdict::MetWithDeviation => lang.t("uppfyllt med avvikelse", "met with deviation"),
            Verdict::MetConditionNotMet => {
                lang.t("genomfört, men villkoret är inte uppfyllt", "done, but its condition is not met")
            }
            Verdict::NotYetDue => lang.t("ännu inte aktuellt", "not yet due"),
            Verdict::Overdue => lang.t("ej uppfyllt, försenat", "not met, overdue"),
            Verdict::NotMet => lang.t("ej uppfyllt", "not met"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub event_id: String,
    pub occurred_on: Date,
    pub case_numbers: Vec<String>,
    pub minutes: Vec<String>,
    pub deviation: Option<String>,
    pub days_late: Option<u32>,
    /// The deadline it was late for.
    pub late_for: Option<Date>,
    /// The year it counts for, where the step is due once a year.
    pub for_year: Option<i16>,
    /// The condition the step requires that does not hold, as the record
    /// now stands, on the day it happened (e.g. after a correction).
    pub condition_not_met: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Obligation {
    pub step: String,
    pub title: String,
    pub kind: &'static str,
    pub verdict: Verdict,
    pub deadline: Option<Date>,
    pub evidence: Vec<Evidence>,
    /// The years whose deadline was waived, where the step is due once a
    /// year: no recording was needed for them.
    pub waived_years: Vec<i16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Compliance {
    pub instance: String,
    pub organisation: String,
    pub workflow: String,
    pub today: Date,
    pub head_position: u64,
    pub head_hash: String,
    pub obligations: Vec<Obligation>,
}

pub fn build(view: &LogView, instance: &str, today: Date, lang: Lang) -> Option<Compliance> {
    let v = view.instances.values().find(|v| v.instance.id.as_str() == instance)?;
    let inst = &v.instance;
    let obligations = inst
        .definition
        .steps
        .iter()
        .map(|step| {
            let evidence: Vec<Evidence> = inst
                .occurrences_by_year(step)
                .into_iter()
                .map(|(o, for_year)| Evidence {
                    for_year,
                    event_id: o.event_id.to_hex(),
                    occurred_on: o.occurred_on,
                    case_numbers: o
                        .facts
                        .iter()
                        .filter_map(|f| view.shown(inst, Some(&o.step), f).ok())
                        .filter_map(|v| match v {
                            FactValue::CaseNumber(c) => Some(c.to_string()),
                            _ => None,
                        })
                        .collect(),
                    minutes: o
                        .facts
                        .iter()
                        .filter_map(|f| view.shown(inst, Some(&o.step), f).ok())
                        .filter_map(|v| match v {
                            FactValue::MinutesRef { body, date, paragraph } => {
                                Some(format!("{body} {date} {paragraph}"))
                            }
                            _ => None,
                        })
                        .collect(),
                    deviation: o.deviation.clone(),
                    days_late: o.late.map(|l| l.days_late),
                    late_for: o.late.map(|l| l.deadline),
                    condition_not_met: step
                        .requires
                        .iter()
                        .find_map(|c| unmet(inst, c, o.occurred_on))
                        .filter(|_| o.deviation.is_none()),
                })
                .collect();
            let deadline = inst.next_deadline(step);
            let overdue = deadline.is_some_and(|d| d < today);
            let verdict = if evidence.is_empty() || (step.repeat && overdue) {
                match deadline {
                    Some(d) if d < today => Verdict::Overdue,
                    Some(_) => Verdict::NotYetDue,
                    None if evidence.is_empty() => Verdict::NotMet,
                    None => Verdict::Met,
                }
            } else if evidence.iter().any(|e| e.deviation.is_some()) {
                Verdict::MetWithDeviation
            } else if evidence.iter().any(|e| e.condition_not_met.is_some()) {
                Verdict::MetConditionNotMet
            } else if evidence.iter().any(|e| e.days_late.is_some()) {
                Verdict::MetLate
            } else {
                Verdict::Met
            };
            Obligation {
                step: step.id.clone(),
                title: lang.title(&step.title),
                kind: step.kind.name(),
                verdict,
                deadline,
                evidence,
                waived_years: inst.years_waived(step),
            }
        })
        .collect();
    Some(Compliance {
        instance: inst.id.to_string(),
        organisation: inst.organisation.clone(),
        workflow: inst.definition.id.clone(),
        today,
        head_position: view.head_position,
        head_hash: view.head_hash.to_hex(),
        obligations,
    })
}

/// Whether condition `c` fails on `on` as the record now stands, and how.
fn unmet(inst: &workflows::Instance, c: &workflows::definition::Condition, on: Date) -> Option<String> {
    let value = inst.condition_value(c, on);
    (value.as_deref() != Some(c.equals.as_str())).then(|| {
        format!(
            "{}.{} = {:?} ({})",
            c.step,
            c.fact,
            c.equals,
            value.map_or("not recorded".to_string(), |v| format!("{v:?}"))
        )
    })
}

pub fn document(c: &Compliance, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(format!("{}: {} ({})", lang.t("Efterlevnad", "Compliance"), c.organisation, c.instance));
    d.meta(format!("{} {}, {} {}", lang.t("Arbetsflöde", "Workflow"), c.workflow, lang.t("per", "as of"), c.today));
    d.meta(view.provenance(lang));
    let rows = c
        .obligations
        .iter()
        .map(|o| {
            let evidence: Vec<String> = o
                .evidence
                .iter()
                .map(|e| {
                    let mut parts = vec![e.occurred_on.to_string()];
                    if let Some(y) = e.for_year {
                        parts.push(format!("{} {y}", lang.t("för", "for")));
                    }
                    if let (Some(days), Some(deadline)) = (e.days_late, e.late_for) {
                        parts.push(format!(
                            "{} {} {deadline}",
                            lang.days(days.into()),
                            lang.t("efter tidsfristen", "after the deadline")
                        ));
                    }
                    parts.extend(e.case_numbers.iter().map(|c| format!("Dnr {c}")));
                    parts.extend(e.minutes.iter().cloned());
                    if let Some(dev) = &e.deviation {
                        parts.push(format!("{}: {dev}", lang.t("avvikelse", "deviation")));
                    }
                    if let Some(c) = &e.condition_not_met {
                        parts.push(format!("{}: {c}", lang.t("villkor inte uppfyllt", "condition not met")));
                    }
                    parts.push(format!("{} {}", lang.t("händelse", "event"), &e.event_id[..12]));
                    parts.join(", ")
                })
                .collect();
            let mut evidence = evidence;
            evidence.extend(
                o.waived_years.iter().map(|y| format!("{y}: {}", lang.t("tidsfristen efterskänkt", "deadline waived"))),
            );
            vec![
                o.title.clone(),
                o.verdict.text(lang).to_string(),
                o.deadline.map(|d| d.to_string()).unwrap_or_default(),
                evidence.join(" | "),
            ]
        })
        .collect();
    d.table(
        &[
            lang.t("åtagande", "obligation"),
            lang.t("bedömning", "verdict"),
            lang.t("tidsfrist", "deadline"),
            lang.t("belägg", "evidence"),
        ],
        rows,
    );
    let met = c
        .obligations
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Met | Verdict::MetLate | Verdict::MetWithDeviation))
        .count();
    d.para(format!(
        "{met} {} {} {}.",
        lang.t("av", "of"),
        c.obligations.len(),
        lang.t("åtaganden uppfyllda", "obligations met")
    ));
    d
}
