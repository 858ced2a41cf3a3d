//! Coming and missed deadlines across instances, soonest first, with the
//! next-weekday adjustment shown where it applied.

use crate::lang::Lang;
use crate::view::LogView;
use crate::Document;
use jiff::civil::Date;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DeadlineEntry {
    pub instance: String,
    pub organisation: String,
    pub step: String,
    pub title: String,
    /// The last day that applies.
    pub last_day: Date,
    /// The date the definition's rule gives, before any adjustment.
    pub rule_date: Date,
    pub moved_to_weekday: bool,
    pub extended: bool,
    pub overdue: bool,
    /// Negative when overdue.
    pub days_left: i64,
    pub escalate_to: Option<String>,
    pub remind_days_before: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deadlines {
    pub today: Date,
    pub head_position: u64,
    pub head_hash: String,
    pub entries: Vec<DeadlineEntry>,
}

pub fn build(view: &LogView, org: Option<&str>, today: Date, lang: Lang) -> Deadlines {
    let mut entries = Vec::new();
    for v in view.select(org) {
        let inst = &v.instance;
        for step in &inst.definition.steps {
            let Some(p) = inst.pending_deadline(step) else { continue };
            // A once-only step that is done has nothing pending.
            if !step.repeat && inst.occurrences_of(&step.id).next().is_some() {
                continue;
            }
            let d = step.deadline.as_ref().expect("a pending deadline has a rule");
            entries.push(DeadlineEntry {
                instance: inst.id.to_string(),
                organisation: inst.organisation.clone(),
                step: step.id.clone(),
                title: lang.title(&step.title),
                last_day: p.last_day,
                rule_date: p.base,
                moved_to_weekday: p.moved_to_weekday,
                extended: p.extended,
                overdue: p.last_day < today,
                days_left: (p.last_day - today).get_days() as i64,
                escalate_to: d.escalate_to.clone(),
                remind_days_before: d.remind_days_before.clone(),
            });
        }
    }
    entries.sort_by(|a, b| (a.last_day, &a.instance, &a.step).cmp(&(b.last_day, &b.instance, &b.step)));
    Deadlines { today, head_position: view.head_position, head_hash: view.head_hash.to_hex(), entries }
}

pub fn document(t: &Deadlines, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(lang.t("Tidsfrister", "Deadlines"));
    d.meta(format!("{} {}", lang.t("Per", "As of"), t.today));
    d.meta(view.provenance(lang));
    let rows = t
        .entries
        .iter()
        .map(|e| {
            let mut note = Vec::new();
            if e.moved_to_weekday {
                note.push(format!(
                    "{} {} {}",
                    lang.t("flyttad från", "moved from"),
                    e.rule_date,
                    lang.t("till närmaste vardag", "to the next weekday")
                ));
            }
            if e.extended {
                note.push(format!("{} {}", lang.t("förlängd från", "extended from"), e.rule_date));
            }
            let state = if e.overdue {
                format!("{} {}", lang.t("FÖRSENAD", "OVERDUE"), lang.days(-e.days_left))
            } else {
                format!("{} {}", lang.days(e.days_left), lang.t("kvar", "left"))
            };
            vec![
                e.last_day.to_string(),
                state,
                e.instance.clone(),
                e.organisation.clone(),
                format!("{} ({})", e.title, e.step),
                note.join("; "),
                e.escalate_to.clone().unwrap_or_default(),
            ]
        })
        .collect();
    d.table(
        &[
            lang.t("sista dag", "last day"),
            lang.t("läge", "state"),
            lang.t("instans", "instance"),
            lang.t("organisation", "organisation"),
            lang.t("steg", "step"),
            lang.t("anmärkning", "note"),
            lang.t("eskaleras till", "escalate to"),
        ],
        rows,
    );
    d
}
