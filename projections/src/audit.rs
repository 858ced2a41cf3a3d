//! The audit trail: every event in order, with when it happened and when
//! it was recorded, who, the step, its facts, case numbers and minutes,
//! deviation and lateness flags, corrections against what they correct,
//! and the hash.

use crate::lang::Lang;
use crate::view::{swedish_date, LogView};
use crate::Document;
use engine::{DeadlineChange, FactValue, Payload};
use jiff::civil::Date;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub position: u64,
    pub instance: String,
    pub sequence: u64,
    pub event_id: String,
    pub occurred_on: Date,
    pub recorded_at: String,
    /// Days between when it happened and when it was recorded.
    pub recorded_days_after: i64,
    pub actor: String,
    pub role: String,
    pub kind: String,
    pub step: Option<String>,
    pub what: String,
    pub facts: Vec<(String, String)>,
    pub case_numbers: Vec<String>,
    pub minutes: Vec<String>,
    pub deviation: Option<String>,
    pub days_late: Option<u32>,
    /// For a correction: the event it corrects.
    pub corrects: Option<String>,
    /// For a corrected event: the corrections that point at it.
    pub corrected_by: Vec<String>,
    pub hash: String,
    pub prev_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditTrail {
    pub scope: String,
    pub as_of: Option<Date>,
    pub head_position: u64,
    pub head_hash: String,
    pub entries: Vec<AuditEntry>,
}

/// The trail of one instance (`instance`) or of one organisation (`org`).
pub fn build(view: &LogView, instance: Option<&str>, org: Option<&str>, lang: Lang) -> AuditTrail {
    let mut events: Vec<&engine::RecordedEvent> = view
        .select(org)
        .filter(|v| instance.is_none_or(|i| v.instance.id.as_str() == i))
        .flat_map(|v| v.events.iter())
        .collect();
    events.sort_by_key(|e| e.event.position);
    let mut entries: Vec<AuditEntry> = Vec::new();
    for e in events {
        let b = &e.event;
        let inst = &view.instances[&b.instance].instance;
        let (step, what, facts, deviation, days_late, corrects) = match &b.payload {
            Payload::InstanceStarted { workflow, organisation, definition_hash, case_number, .. } => (
                None,
                format!(
                    "{} {workflow} v{} ({organisation}{}), {} {}",
                    lang.t("Startad:", "Started:"),
                    inst.definition.version,
                    case_number.as_ref().map(|c| format!(", Dnr {c}")).unwrap_or_default(),
                    lang.t("definition", "definition"),
                    &definition_hash.to_hex()[..16]
                ),
                Vec::new(),
                None,
                None,
                None,
            ),
            Payload::StepRecorded { step, facts, deviation, late } => {
                let title =
                    inst.definition.step(step).map(|s| lang.title(&s.title)).unwrap_or_else(|| step.to_string());
                (Some(step.to_string()), title, facts.clone(), deviation.clone(), late.map(|l| l.days_late), None)
            }
            Payload::StepCorrected { corrects, reason, occurred_on, facts } => {
                let mut what = format!("{} {corrects}: {reason}", lang.t("Rättelse av", "Correction of"));
                if let Some(d) = occurred_on {
                    what.push_str(&format!(" ({} {d})", lang.t("rätt datum", "correct date")));
                }
                let step = view.event(corrects).and_then(|o| match &o.event.payload {
                    Payload::StepRecorded { step, .. } => Some(step.to_string()),
                    _ => None,
                });
                (step, what, facts.clone(), None, None, Some(corrects.to_hex()))
            }
            Payload::DeadlineChanged { step, change, reason } => {
                let what = match change {
                    DeadlineChange::Extended { to } => {
                        format!("{} {to}: {reason}", lang.t("Tidsfrist förlängd till", "Deadline extended to"))
                    }
                    DeadlineChange::Waived => {
                        format!("{}: {reason}", lang.t("Tidsfrist efterskänkt", "Deadline waived"))
                    }
                };
                (Some(step.clone()), what, Vec::new(), None, None, None)
            }
            Payload::NoteAdded { text } => {
                (None, format!("{} {text}", lang.t("Anteckning:", "Note:")), Vec::new(), None, None, None)
            }
            Payload::DeadlineMissed { step, deadline } => (
                Some(step.clone()),
                format!("{} {deadline} {}", lang.t("Tidsfristen", "The deadline"), lang.t("missades", "was missed")),
                Vec::new(),
                None,
                None,
                None,
            ),
            Payload::NoticeClaimed { step, deadline, notice, channel, recipients, attempt, .. } => (
                Some(step.clone()),
                format!(
                    "{} {notice} ({} {deadline}) {} {channel} {} {}{}",
                    lang.t("Påminnelse", "Notice"),
                    lang.t("tidsfrist", "deadline"),
                    lang.t("via", "by"),
                    lang.t("till", "to"),
                    recipients.join(", "),
                    if *attempt > 1 { format!(", {} {attempt}", lang.t("försök", "attempt")) } else { String::new() }
                ),
                Vec::new(),
                None,
                None,
                None,
            ),
            Payload::NoticeDelivered { channel, attempt, .. } => (
                None,
                format!(
                    "{} {channel} ({} {attempt})",
                    lang.t("Skickad via", "Delivered by"),
                    lang.t("försök", "attempt")
                ),
                Vec::new(),
                None,
                None,
                None,
            ),
            // The log's own events live in the system instance, which views
            // do not fold as a workflow.
            Payload::SigningKeyRotated { .. } | Payload::PersonErased { .. } => continue,
            Payload::NoticeFailed { channel, attempt, error, .. } => (
                None,
                format!(
                    "{} {channel} ({} {attempt}): {error}",
                    lang.t("Misslyckades via", "Failed by"),
                    lang.t("försök", "attempt")
                ),
                Vec::new(),
                None,
                None,
                None,
            ),
        };
        let case_numbers = facts
            .iter()
            .filter_map(|f| view.shown(inst, step.as_deref(), f).ok())
            .filter_map(|v| match v {
                FactValue::CaseNumber(c) => Some(c.to_string()),
                _ => None,
            })
            .chain(match &b.payload {
                Payload::InstanceStarted { case_number: Some(c), .. } => Some(c.clone()),
                _ => None,
            })
            .collect();
        let minutes = facts
            .iter()
            .filter_map(|f| view.shown(inst, step.as_deref(), f).ok())
            .filter_map(|v| match v {
                FactValue::MinutesRef { body, date, paragraph } => Some(format!("{body} {date} {paragraph}")),
                _ => None,
            })
            .collect();
        let fact_texts =
            facts.iter().map(|f| (f.name.to_string(), view.fact_text(inst, step.as_deref(), f, lang))).collect();
        entries.push(AuditEntry {
            position: b.position,
            instance: b.instance.to_string(),
            sequence: b.sequence,
            event_id: b.event_id.to_hex(),
            occurred_on: b.occurred_on,
            recorded_at: b.recorded_at.to_string(),
            recorded_days_after: (swedish_date(b.recorded_at) - b.occurred_on).get_days() as i64,
            actor: b.actor.name.to_string(),
            role: b.actor.role.to_string(),
            kind: b.payload.kind().to_string(),
            step,
            what,
            facts: fact_texts,
            case_numbers,
            minutes,
            deviation,
            days_late,
            corrects,
            corrected_by: Vec::new(),
            hash: e.hash.to_hex(),
            prev_hash: b.prev_hash.to_hex(),
        });
    }
    let links: Vec<(String, String)> =
        entries.iter().filter_map(|e| e.corrects.clone().map(|c| (c, e.event_id.clone()))).collect();
    for (original, correction) in links {
        if let Some(o) = entries.iter_mut().find(|e| e.event_id == original) {
            o.corrected_by.push(correction);
        }
    }
    AuditTrail {
        scope: instance
            .map(String::from)
            .or(org.map(String::from))
            .unwrap_or_else(|| lang.t("hela loggen", "the whole log").into()),
        as_of: view.as_of,
        head_position: view.head_position,
        head_hash: view.head_hash.to_hex(),
        entries,
    }
}

/// Flags of an entry as short text.
fn flags(e: &AuditEntry, lang: Lang) -> String {
    let mut f = Vec::new();
    if let Some(d) = &e.deviation {
        f.push(format!("{}: {d}", lang.t("AVVIKELSE", "DEVIATION")));
    }
    if let Some(n) = e.days_late {
        f.push(format!("{} {}", lang.t("SEN", "LATE"), lang.days(n.into())));
    }
    if e.recorded_days_after > 30 {
        f.push(format!(
            "{} {} {}",
            lang.t("registrerad", "recorded"),
            lang.days(e.recorded_days_after),
            lang.t("i efterhand", "after the fact")
        ));
    }
    for c in &e.corrected_by {
        f.push(format!("{} {}", lang.t("RÄTTAD av", "CORRECTED by"), &c[..12]));
    }
    f.join("; ")
}

pub fn document(t: &AuditTrail, view: &LogView, lang: Lang) -> Document {
    let mut d = Document::new(format!("{}: {}", lang.t("Granskningsspår", "Audit trail"), t.scope));
    d.meta(view.provenance(lang));
    let rows = t
        .entries
        .iter()
        .map(|e| {
            let facts: Vec<String> = e.facts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            vec![
                e.position.to_string(),
                format!("{}/{}", e.instance, e.sequence),
                e.occurred_on.to_string(),
                e.recorded_at.clone(),
                format!("{} ({})", e.actor, e.role),
                e.step.clone().unwrap_or_default(),
                e.what.clone(),
                facts.join("; "),
                flags(e, lang),
                e.event_id.clone(),
                e.hash.clone(),
            ]
        })
        .collect();
    d.table(
        &[
            "#",
            lang.t("instans/nr", "instance/seq"),
            lang.t("hände", "happened"),
            lang.t("registrerad", "recorded"),
            lang.t("av (roll)", "by (role)"),
            lang.t("steg", "step"),
            lang.t("vad", "what"),
            lang.t("uppgifter", "facts"),
            lang.t("flaggor", "flags"),
            lang.t("händelse-id", "event id"),
            "hash",
        ],
        rows,
    );
    d
}
