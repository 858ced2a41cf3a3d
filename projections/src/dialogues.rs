//! The dialogue register: each citizen dialogue with its question, ladder
//! step, dates, method, participants, results, the decisions that used
//! them, feedback and evaluation; also in the case template of SKR's
//! dialogue guide (Ingress, Bakgrund, Syfte, Process, Resultat).
//!
//! Facts are read by their names in the built-in definitions: `fraga`,
//! `syfte`, `trappsteg`, `metod`, `deltagare_antal`, `hur`, `utvardering`,
//! `sektor`. An instance whose workflow has a question or dialogue-decision
//! step is one dialogue; otherwise each dialogue-held step is one, and a
//! decision that names a `sektor` belongs to the dialogues of that sector.
//! A decision is shown by its minutes and case numbers, or by its step's
//! title when it has neither.

use crate::lang::{fact_text, Lang};
use crate::view::LogView;
use crate::Document;
use jiff::civil::Date;
use serde::Serialize;
use workflows::instance::Occurrence;
use workflows::{Instance, StepKind};

#[derive(Debug, Clone, Serialize)]
pub struct Dialogue {
    pub instance: String,
    pub organisation: String,
    pub question: Option<String>,
    pub purpose: Option<String>,
    pub ladder_step: Option<String>,
    pub dates: Vec<Date>,
    pub method: Option<String>,
    pub participants: Option<String>,
    pub results: Vec<String>,
    pub decisions: Vec<String>,
    pub feedback: Option<String>,
    pub evaluation: Option<String>,
    pub deviations: Vec<String>,
    /// The sector that held it, where a workflow records one.
    pub sector: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Register {
    pub head_position: u64,
    pub head_hash: String,
    pub dialogues: Vec<Dialogue>,
}

fn fact(view: &LogView, inst: &Instance, occ: &[&Occurrence], name: &str, lang: Lang) -> Option<String> {
    occ.iter()
        .flat_map(|o| o.facts.iter().map(move |f| (o, f)))
        .find(|(_, f)| f.name == name)
        .map(|(o, f)| view.fact_text(inst, Some(&o.step), f, lang))
}

pub fn build(view: &LogView, org: Option<&str>, lang: Lang) -> Register {
    let mut dialogues = Vec::new();
    for v in view.select(org) {
        let inst = &v.instance;
        let of_kind = |kinds: &[StepKind]| -> Vec<&Occurrence> {
            inst.occurrences
                .iter()
                .filter(|o| inst.definition.step(&o.step).is_some_and(|s| kinds.contains(&s.kind)))
                .collect()
        };
        let held = of_kind(&[StepKind::DialogueHeld]);
        let decision_text = |o: &Occurrence| -> String {
            let refs: Vec<String> = o
                .facts
                .iter()
                .filter_map(|f| view.shown(inst, Some(&o.step), f).ok())
                .filter(|v| matches!(v, engine::FactValue::MinutesRef { .. } | engine::FactValue::CaseNumber(_)))
                .map(|v| fact_text(v, lang))
                .collect();
            if refs.is_empty() {
                inst.definition.step(&o.step).map(|s| lang.title(&s.title)).unwrap_or_else(|| o.step.to_string())
            } else {
                refs.join(", ")
            }
        };
        let used = of_kind(&[StepKind::ResultUsedInDecision]);
        let results: Vec<String> = of_kind(&[StepKind::ResultsCompiled])
            .iter()
            .flat_map(|o| o.facts.iter().map(|f| view.fact_text(inst, Some(&o.step), f, lang)))
            .collect();
        let feedback = of_kind(&[StepKind::FeedbackGiven]);
        let evaluation = of_kind(&[StepKind::Evaluation]);
        let deviations = |occ: &[&Occurrence]| occ.iter().filter_map(|o| o.deviation.clone()).collect::<Vec<_>>();
        let one_dialogue = inst
            .definition
            .steps
            .iter()
            .any(|s| matches!(s.kind, StepKind::QuestionRaised | StepKind::DialogueDecided));
        if one_dialogue {
            if held.is_empty() && of_kind(&[StepKind::QuestionRaised, StepKind::DialogueDecided]).is_empty() {
                continue;
            }
            let all: Vec<&Occurrence> = inst.occurrences.iter().collect();
            dialogues.push(Dialogue {
                instance: inst.id.to_string(),
                organisation: inst.organisation.clone(),
                question: fact(view, inst, &all, "fraga", lang),
                purpose: fact(view, inst, &all, "syfte", lang),
                ladder_step: fact(view, inst, &all, "trappsteg", lang),
                dates: held.iter().map(|o| o.occurred_on).collect(),
                method: fact(view, inst, &held, "metod", lang).or_else(|| fact(view, inst, &all, "metod", lang)),
                participants: fact(view, inst, &held, "deltagare_antal", lang),
                results: results.clone(),
                // A decision before the first dialogue was held cannot
                // have used its results.
                decisions: used
                    .iter()
                    .filter(|d| held.iter().map(|h| h.occurred_on).min().is_none_or(|first| d.occurred_on >= first))
                    .map(|d| decision_text(d))
                    .collect(),
                feedback: (!feedback.is_empty())
                    .then(|| fact(view, inst, &feedback, "hur", lang).unwrap_or_else(|| lang.t("ja", "yes").into())),
                evaluation: (!evaluation.is_empty()).then(|| {
                    fact(view, inst, &evaluation, "utvardering", lang).unwrap_or_else(|| lang.t("ja", "yes").into())
                }),
                deviations: deviations(&all),
                sector: fact(view, inst, &all, "sektor", lang),
            });
        } else {
            for h in &held {
                let one = [*h];
                let sector = fact(view, inst, &one, "sektor", lang);
                // A decision naming a sector belongs to that sector's
                // dialogues, and one made before a dialogue was held did not
                // use it.
                let decisions: Vec<String> = used
                    .iter()
                    .filter(|d| d.occurred_on >= h.occurred_on)
                    .filter(|d| match (fact(view, inst, &[**d], "sektor", lang), &sector) {
                        (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
                        _ => true,
                    })
                    .map(|d| decision_text(d))
                    .collect();
                dialogues.push(Dialogue {
                    instance: inst.id.to_string(),
                    organisation: inst.organisation.clone(),
                    question: fact(view, inst, &one, "fraga", lang),
                    purpose: fact(view, inst, &one, "syfte", lang),
                    ladder_step: fact(view, inst, &one, "trappsteg", lang),
                    dates: vec![h.occurred_on],
                    method: fact(view, inst, &one, "metod", lang),
                    participants: fact(view, inst, &one, "deltagare_antal", lang),
                    results: results.clone(),
                    decisions,
                    feedback: None,
                    evaluation: None,
                    deviations: deviations(&one),
                    sector,
                });
            }
        }
    }
    Register { head_position: view.head_position, head_hash: view.head_hash.to_hex(), dialogues }
}

/// The organisation, with the sector that held the dialogue if known.
fn organisation(x: &Dialogue) -> String {
    match &x.sector {
        Some(s) => format!("{} ({s})", x.organisation),
        None => x.organisation.clone(),
    }
}

fn or_dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "–".into())
}

pub fn document(r: &Register, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(lang.t("Dialogregister", "Dialogue register"));
    d.meta(view.provenance(lang));
    let rows = r
        .dialogues
        .iter()
        .map(|x| {
            vec![
                organisation(x),
                or_dash(&x.question),
                or_dash(&x.ladder_step),
                x.dates.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                or_dash(&x.method),
                or_dash(&x.participants),
                x.results.join("; "),
                x.decisions.join("; "),
                or_dash(&x.feedback),
                or_dash(&x.evaluation),
                x.deviations.join("; "),
            ]
        })
        .collect();
    d.table(
        &[
            lang.t("organisation", "organisation"),
            lang.t("fråga", "question"),
            lang.t("trappsteg", "ladder step"),
            lang.t("datum", "dates"),
            lang.t("metod", "method"),
            lang.t("deltagare", "participants"),
            lang.t("resultat", "results"),
            lang.t("beslut som använt resultatet", "decisions that used the results"),
            lang.t("återkoppling", "feedback"),
            lang.t("utvärdering", "evaluation"),
            lang.t("avvikelser", "deviations"),
        ],
        rows,
    );
    d
}

/// Each dialogue in the dialogue guide's case template.
pub fn case_template(r: &Register, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(lang.t(
        "Medborgardialoger: exempel enligt Dialogguidens mall",
        "Citizen dialogues: cases in the dialogue guide's template",
    ));
    d.meta(view.provenance(lang));
    for x in &r.dialogues {
        d.heading(format!("{}: {}", organisation(x), or_dash(&x.question)));
        d.subheading(lang.t("Ingress", "Summary").to_string());
        let on = match x.question.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => format!(" {} {q}", lang.t("om", "on")),
            None => format!(" ({})", lang.t("frågan är inte registrerad", "the question is not on record")),
        };
        let start = x.dates.first().map(|d| format!(" {} {d}", lang.t("med start", "starting"))).unwrap_or_default();
        d.para(format!(
            "{} {}{on}{start}.",
            x.organisation,
            lang.t("förde en medborgardialog", "held a citizen dialogue"),
        ));
        d.subheading(lang.t("Bakgrund", "Background").to_string());
        d.para(format!("{} {}.", lang.t("Frågan väcktes inom", "The question was raised within"), x.instance));
        d.subheading(lang.t("Syfte", "Purpose").to_string());
        d.para(or_dash(&x.purpose));
        d.subheading(lang.t("Process", "Process").to_string());
        d.list(vec![
            format!("{}: {}", lang.t("Trappsteg", "Ladder step"), or_dash(&x.ladder_step)),
            format!("{}: {}", lang.t("Metod", "Method"), or_dash(&x.method)),
            format!(
                "{}: {}",
                lang.t("Datum", "Dates"),
                x.dates.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ),
            format!("{}: {}", lang.t("Deltagare", "Participants"), or_dash(&x.participants)),
        ]);
        d.subheading(lang.t("Resultat", "Results").to_string());
        let mut items: Vec<String> =
            x.results.iter().map(|r| format!("{}: {r}", lang.t("Sammanställning", "Compilation"))).collect();
        items.extend(
            x.decisions.iter().map(|b| format!("{}: {b}", lang.t("Underlag för beslut", "Basis for decision"))),
        );
        items.push(format!("{}: {}", lang.t("Återkoppling", "Feedback"), or_dash(&x.feedback)));
        items.push(format!("{}: {}", lang.t("Utvärdering", "Evaluation"), or_dash(&x.evaluation)));
        d.list(items);
    }
    d
}
