//! How events look on the terminal: a readable text form, and JSON Lines.

use engine::{FactValue, Payload, RecordedEvent};
use std::fmt::Write;

/// One event as a block of readable text.
pub fn text(e: &RecordedEvent) -> String {
    let b = &e.event;
    let mut s = String::new();
    let what = match &b.payload {
        Payload::InstanceStarted {
            workflow,
            organisation,
            title,
        } => {
            format!("instance started: {organisation}, workflow {workflow}: {title}")
        }
        Payload::StepRecorded { step, .. } => format!("step {step}"),
        Payload::NoteAdded { text } => format!("note: {text}"),
    };
    let _ = writeln!(
        s,
        "#{pos} {inst}/{seq}  {occ}  {what}\n    recorded {rec} by {name} ({role}), command {cmd}\n    hash {hash}",
        pos = b.position,
        inst = b.instance,
        seq = b.sequence,
        occ = b.occurred_on,
        rec = b.recorded_at,
        name = b.actor.name,
        role = b.actor.role,
        cmd = b.command_id,
        hash = e.hash,
    );
    if let Payload::StepRecorded {
        facts,
        deviation,
        corrects,
        ..
    } = &b.payload
    {
        for f in facts {
            let _ = writeln!(s, "    {}: {}", f.name, fact(&f.value));
        }
        if let Some(d) = deviation {
            let _ = writeln!(s, "    DEVIATION: {d}");
        }
        if let Some(c) = corrects {
            let _ = writeln!(s, "    corrects event {c}");
        }
    }
    s
}

fn fact(v: &FactValue) -> String {
    match v {
        FactValue::Date(d) => d.to_string(),
        FactValue::Text(t) => t.clone(),
        FactValue::AmountSek { ore } => format!("{},{:02} kr", ore / 100, (ore % 100).abs()),
        FactValue::Person { name, role, kind } => format!("{name}, {role} ({kind:?})"),
        FactValue::CaseNumber(c) => format!("Dnr {c}"),
        FactValue::MinutesRef {
            body,
            date,
            paragraph,
        } => format!("{body} {date} {paragraph}"),
        FactValue::Document { title, sha256 } => format!("{title} (sha256 {sha256})"),
        FactValue::Choice(c) => c.clone(),
    }
}

/// One event as a JSON line (the export format).
pub fn json(e: &RecordedEvent) -> String {
    serde_json::to_string(e).expect("events always serialize to JSON")
}
