//! The project section of the annual report (årsberättelse) for one
//! organisation and year, as known on a date: what happened in the year,
//! written as prose and tables a secretary can paste in.

use crate::lang::Lang;
use crate::view::LogView;
use crate::Document;
use engine::FactValue;
use jiff::civil::Date;
use serde::Serialize;
use workflows::StepKind;

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub occurred_on: Date,
    pub instance: String,
    pub step: String,
    pub title: String,
    pub kind: &'static str,
    pub details: String,
    pub deviation: Option<String>,
    pub days_late: Option<u32>,
    pub corrected: bool,
    /// The Swedish date it was recorded, and last corrected.
    pub recorded_on: Date,
    pub corrected_on: Option<Date>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Due {
    pub last_day: Date,
    pub instance: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnnualReport {
    pub organisation: String,
    pub year: i16,
    pub as_of: Option<Date>,
    pub head_position: u64,
    pub head_hash: String,
    pub items: Vec<Item>,
    pub dialogues_held: usize,
    pub decisions_informed: usize,
    pub fees_ore: i64,
    pub due_next_year: Vec<Due>,
}

pub fn build(view: &LogView, org: &str, year: i16, lang: Lang) -> AnnualReport {
    let mut items = Vec::new();
    let mut due_next_year = Vec::new();
    let mut organisation = org.to_string();
    for v in view.select(Some(org)) {
        let inst = &v.instance;
        organisation = inst.organisation.clone();
        for o in inst.occurrences.iter().filter(|o| o.occurred_on.year() == year) {
            let Some(step) = inst.definition.step(&o.step) else { continue };
            items.push(Item {
                occurred_on: o.occurred_on,
                instance: inst.id.to_string(),
                step: step.id.clone(),
                title: lang.title(&step.title),
                kind: step.kind.name(),
                details: o
                    .facts
                    .iter()
                    .map(|f| format!("{}: {}", f.name, view.fact_text(inst, Some(&o.step), f, lang)))
                    .collect::<Vec<_>>()
                    .join("; "),
                deviation: o.deviation.clone(),
                days_late: o.late.map(|l| l.days_late),
                corrected: o.corrections > 0,
                recorded_on: crate::view::swedish_date(o.recorded_at),
                corrected_on: o.corrected_at.map(crate::view::swedish_date),
            });
        }
        for step in &inst.definition.steps {
            if let Some(d) = inst.next_deadline(step) {
                if d.year() == year + 1 && (step.repeat || inst.occurrences_of(&step.id).next().is_none()) {
                    due_next_year.push(Due {
                        last_day: d,
                        instance: inst.id.to_string(),
                        title: lang.title(&step.title),
                    });
                }
            }
        }
    }
    items.sort_by(|a, b| (a.occurred_on, &a.instance).cmp(&(b.occurred_on, &b.instance)));
    due_next_year.sort_by_key(|d| d.last_day);
    let count = |k: &str| items.iter().filter(|i| i.kind == k).count();
    let fees_ore = view
        .select(Some(org))
        .flat_map(|v| v.instance.occurrences.iter().filter(|o| o.occurred_on.year() == year).map(move |o| (v, o)))
        .filter(|(v, o)| v.instance.definition.step(&o.step).is_some_and(|s| s.kind == StepKind::Fee))
        .flat_map(|(v, o)| o.facts.iter().filter_map(move |f| view.shown(&v.instance, Some(&o.step), f).ok()))
        .filter_map(|f| match *f {
            FactValue::AmountSek { ore } => Some(ore),
            _ => None,
        })
        .sum();
    AnnualReport {
        organisation,
        year,
        as_of: view.as_of,
        head_position: view.head_position,
        head_hash: view.head_hash.to_hex(),
        dialogues_held: count("dialogue_held"),
        decisions_informed: count("result_used_in_decision"),
        items,
        fees_ore,
        due_next_year,
    }
}

const DECISIONS: &[&str] = &["application", "selection", "decision", "principles_adopted", "meeting_held", "final"];
const ORGANISATION: &[&str] = &["appointment", "group_formed", "plan", "meeting_attended"];
const DIALOGUE: &[&str] = &[
    "question_raised",
    "checklist",
    "dialogue_decided",
    "dialogue_held",
    "results_compiled",
    "result_used_in_decision",
    "feedback_given",
    "evaluation",
];

/// Which section of the report a step kind belongs to.
fn section(kind: &str) -> usize {
    if DECISIONS.contains(&kind) {
        0
    } else if ORGANISATION.contains(&kind) {
        1
    } else if DIALOGUE.contains(&kind) {
        2
    } else {
        3
    }
}

pub fn document(r: &AnnualReport, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(format!(
        "{} {}: {}",
        lang.t("Årsberättelse", "Annual report"),
        r.year,
        lang.t("medborgardialog i styrningen", "citizen dialogue in governance")
    ));
    d.meta(r.organisation.clone());
    d.meta(view.provenance(lang));
    let deviations: Vec<&Item> = r.items.iter().filter(|i| i.deviation.is_some()).collect();
    let late: Vec<&Item> = r.items.iter().filter(|i| i.days_late.is_some()).collect();
    // Counted words: "1 medborgardialog", "2 medborgardialoger"; "1 step was", "2 steps were".
    let n = |count: usize, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    let (steps, dialogues, decisions) = (r.items.len(), r.dialogues_held, r.decisions_informed);
    d.para(match lang {
        Lang::Sv => format!(
            "Under {} registrerades {} steg i arbetet med medborgardialog i styrningen. {} genomfördes och {} beslut fattades med dialogernas resultat som underlag. {} steg avvek från arbetsflödet och {} genomfördes efter sin tidsfrist.{}",
            r.year,
            steps,
            n(dialogues, "medborgardialog", "medborgardialoger"),
            decisions,
            deviations.len(),
            late.len(),
            if r.fees_ore > 0 { format!(" Avgifter: {},{:02} kr.", r.fees_ore / 100, r.fees_ore % 100) } else { String::new() }
        ),
        Lang::En => format!(
            "In {}, {} of the work on citizen dialogue in governance {} recorded. {} held and {} taken with the dialogues' results as a basis. {} from the workflow and {}.{}",
            r.year,
            n(steps, "step", "steps"),
            if steps == 1 { "was" } else { "were" },
            n(dialogues, "citizen dialogue was", "citizen dialogues were"),
            n(decisions, "decision was", "decisions were"),
            n(deviations.len(), "step deviated", "steps deviated"),
            n(late.len(), "was done after its deadline", "were done after their deadlines"),
            if r.fees_ore > 0 { format!(" Fees: SEK {},{:02}.", r.fees_ore / 100, r.fees_ore % 100) } else { String::new() }
        ),
    });
    let table = |items: Vec<&Item>| -> Vec<Vec<String>> {
        items
            .into_iter()
            .map(|i| {
                let mut flags = Vec::new();
                if let Some(dev) = &i.deviation {
                    flags.push(format!("{}: {dev}", lang.t("avvikelse", "deviation")));
                }
                if let Some(n) = i.days_late {
                    flags.push(format!("{} {}", lang.t("sen", "late"), lang.days(n.into())));
                }
                if i.corrected {
                    flags.push(lang.t("rättad", "corrected").into());
                }
                vec![i.occurred_on.to_string(), i.title.clone(), i.details.clone(), flags.join("; ")]
            })
            .collect()
    };
    let headers = [
        lang.t("datum", "date"),
        lang.t("steg", "step"),
        lang.t("uppgifter", "details"),
        lang.t("anmärkning", "remarks"),
    ];
    let sections = [
        ("Beslut", "Decisions"),
        ("Organisation och plan", "Organisation and plan"),
        ("Medborgardialoger och deras användning", "Citizen dialogues and their use"),
        ("Uppföljning, avgifter och dokumentation", "Follow-up, fees and documentation"),
    ];
    for (n, (sv, en)) in sections.iter().enumerate() {
        let rows = table(r.items.iter().filter(|i| section(i.kind) == n).collect());
        if !rows.is_empty() {
            d.heading(lang.t(sv, en).to_string());
            d.table(&headers, rows);
        }
    }
    if !deviations.is_empty() {
        d.heading(lang.t("Avvikelser", "Deviations").to_string());
        d.list(
            deviations
                .iter()
                .map(|i| format!("{} {}: {}", i.occurred_on, i.title, i.deviation.as_deref().unwrap_or_default()))
                .collect(),
        );
    }
    // What changed after the year ended: recorded after the fact, or corrected.
    let year_end = Date::new(r.year, 12, 31).expect("a valid date");
    let changed: Vec<String> = r
        .items
        .iter()
        .filter_map(|i| {
            let mut what = Vec::new();
            if i.recorded_on > year_end {
                what.push(format!("{} {}", lang.t("registrerat", "recorded"), i.recorded_on));
            }
            if let Some(c) = i.corrected_on.filter(|c| *c > year_end) {
                what.push(format!("{} {c}", lang.t("rättat", "corrected")));
            }
            (!what.is_empty()).then(|| format!("{} {}: {}", i.occurred_on, i.title, what.join(", ")))
        })
        .collect();
    if !changed.is_empty() {
        d.heading(format!("{} {}", lang.t("Registrerat eller rättat efter", "Recorded or corrected after"), year_end));
        d.para(lang.t(
            "Dessa uppgifter var inte kända, eller såg annorlunda ut, vid årets slut.",
            "These were not known, or read differently, when the year ended.",
        ));
        d.list(changed);
    }
    d.heading(format!("{} {}", lang.t("Att göra", "Due in"), r.year + 1));
    if r.due_next_year.is_empty() {
        d.para(lang.t("Inga tidsfrister.", "No deadlines.").to_string());
    } else {
        d.list(r.due_next_year.iter().map(|x| format!("{} {} ({})", x.last_day, x.title, x.instance)).collect());
    }
    d
}
