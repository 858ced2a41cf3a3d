//! How events look on the terminal: a readable text form, and JSON Lines.

use engine::{DeadlineChange, FactValue, Payload, RecordedEvent};
use std::fmt::Write;

/// One event as a block of readable text.
pub fn text(e: &RecordedEvent) -> String {
    let b = &e.event;
    let mut s = String::new();
    let what = match &b.payload {
        Payload::InstanceStarted { workflow, definition_hash, organisation, case_number, .. } => format!(
            "instance started: {organisation}, workflow {workflow} (definition {}){}",
            &definition_hash.to_hex()[..16],
            case_number.as_ref().map(|c| format!(", Dnr {c}")).unwrap_or_default()
        ),
        Payload::StepRecorded { step, .. } => format!("step {step}"),
        Payload::StepCorrected { corrects, .. } => format!("correction of event {corrects}"),
        Payload::DeadlineChanged { step, change, reason } => match change {
            DeadlineChange::Extended { to } => {
                format!("deadline of {step} extended to {to}: {reason}")
            }
            DeadlineChange::Waived => format!("deadline of {step} waived: {reason}"),
        },
        Payload::NoteAdded { text } => format!("note: {text}"),
        Payload::DeadlineMissed { step, deadline } => format!("deadline {deadline} of {step} missed"),
        Payload::NoticeClaimed { step, notice, channel, recipients, attempt, .. } => {
            format!("notice {notice} for {step} by {channel} to {} (attempt {attempt})", recipients.join(", "))
        }
        Payload::NoticeDelivered { channel, attempt, .. } => {
            format!("notice delivered by {channel} (attempt {attempt})")
        }
        Payload::NoticeFailed { channel, attempt, error, .. } => {
            format!("notice failed by {channel} (attempt {attempt}): {error}")
        }
        Payload::SigningKeyRotated { key_name, public_key, reason } => {
            format!("signing key {key_name} is now {public_key}: {reason}")
        }
        Payload::PersonErased { person, reason, decision, facts } => {
            format!("personal data of person {person} erased ({facts} sealed fact(s)), decision {decision}: {reason}")
        }
    };
    let _ = writeln!(
        s,
        "#{pos} {inst}/{seq}  {occ}  {what}\n    event {id}, recorded {rec} by {name} ({role})\n    hash {hash}",
        pos = b.position,
        inst = b.instance,
        seq = b.sequence,
        occ = b.occurred_on,
        id = b.event_id,
        rec = b.recorded_at,
        name = b.actor.name,
        role = b.actor.role,
        hash = e.hash,
    );
    let facts = match &b.payload {
        Payload::StepRecorded { facts, deviation, late, .. } => {
            if let Some(d) = deviation {
                let _ = writeln!(s, "    DEVIATION: {d}");
            }
            if let Some(l) = late {
                let _ = writeln!(s, "    LATE: {} day(s) after the deadline {}", l.days_late, l.deadline);
            }
            facts.as_slice()
        }
        Payload::StepCorrected { reason, occurred_on, facts, .. } => {
            let _ = writeln!(s, "    reason: {reason}");
            if let Some(d) = occurred_on {
                let _ = writeln!(s, "    happened on: {d}");
            }
            facts.as_slice()
        }
        _ => &[],
    };
    for f in facts {
        let _ = writeln!(s, "    {}: {}", f.name, fact(&f.value));
    }
    s
}

fn fact(v: &FactValue) -> String {
    match v {
        FactValue::Date(d) => d.to_string(),
        FactValue::Text(t) => t.to_string(),
        FactValue::AmountSek { ore } => format!("{},{:02} kr", ore / 100, (ore % 100).abs()),
        FactValue::Person { name, role, kind } => format!(
            "{name}, {role} ({})",
            match kind {
                engine::PersonKind::ElectedMember => "förtroendevald",
                engine::PersonKind::Official => "tjänsteperson",
                engine::PersonKind::Other => "övrig",
            }
        ),
        FactValue::CaseNumber(c) => format!("Dnr {c}"),
        FactValue::MinutesRef { body, date, paragraph } => format!("{body} {date} {paragraph}"),
        FactValue::Document { title, sha256 } => format!("{title} (sha256 {sha256})"),
        FactValue::Choice(c) => c.to_string(),
        FactValue::Sealed { person, .. } => format!("[sealed personal data of person {person}]"),
    }
}

/// One event as a JSON line (the export format).
pub fn json(e: &RecordedEvent) -> String {
    serde_json::to_string(e).expect("events always serialize to JSON")
}
