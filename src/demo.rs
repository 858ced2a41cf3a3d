//! `styrlogg demo`: records the opening steps of Landstinget i Jönköpings
//! län's path into SKL's 2012-2014 network, as the source document (seed
//! 000) states them, then shows and verifies them.

use crate::cli::Cli;
use crate::render;
use anyhow::Result;
use engine::{
    Actor, AppendRequest, ChainVerifier, CommandId, EventStore, ExpectedVersion, Fact, FactValue,
    InstanceId, NewEvent, OpenMode, Payload, PersonKind, SledStore, SystemClock,
};
use jiff::civil::date;
use std::sync::Arc;

const INSTANCE: &str = "ljl-2012-styrsystem";

fn person(name: &str, role: &str, kind: PersonKind) -> FactValue {
    FactValue::Person {
        name: name.into(),
        role: role.into(),
        kind,
    }
}

fn fact(name: &str, value: FactValue) -> Fact {
    Fact {
        name: name.into(),
        value,
    }
}

/// The documented steps, each its own command so reruns are idempotent.
fn history() -> Vec<(&'static str, NewEvent)> {
    let recorder = Actor::new("styrlogg demo", "registrator");
    let step = |step: &str, facts: Vec<Fact>| Payload::StepRecorded {
        step: step.into(),
        facts,
        deviation: None,
        corrects: None,
    };
    vec![
        (
            "demo-ljl-start",
            NewEvent {
                occurred_on: date(2011, 6, 26),
                actor: recorder.clone(),
                payload: Payload::InstanceStarted {
                    workflow: "skl-styrsystem-2012-2014".into(),
                    organisation: "Landstinget i Jönköpings län".into(),
                    title: "Deltagande i demokratiprojekt \"Utveckling av styrsystem med medborgardialog\"".into(),
                },
            },
        ),
        (
            "demo-ljl-planeringsgruppen-30",
            NewEvent {
                occurred_on: date(2011, 6, 26),
                actor: recorder.clone(),
                payload: step(
                    "skrivelse_till_landstingsstyrelsen",
                    vec![
                        fact(
                            "protokoll",
                            FactValue::MinutesRef {
                                body: "Planeringsgruppen Allmänpolitiska utskottet".into(),
                                date: date(2011, 6, 26),
                                paragraph: "§ 30".into(),
                            },
                        ),
                        fact("ordförande", person("Tommy Bernevång Forsberg", "ordförande i Allmänpolitiska utskottet", PersonKind::ElectedMember)),
                        fact("sekreterare", person("Lena Bohman Hjelmstedt", "sekreterare i Allmänpolitiska utskottet", PersonKind::Other)),
                        fact("rätt utdraget", person("Anneli Andersson", "intygar utdraget", PersonKind::Other)),
                        fact(
                            "anmärkning",
                            FactValue::Text("Protokollet är daterat 2011-06-26 men gäller ansökan våren 2012; datum återgivet som i protokollet.".into()),
                        ),
                    ],
                ),
            },
        ),
        (
            "demo-ljl-planeringsdelegationen-100",
            NewEvent {
                occurred_on: date(2012, 8, 14),
                actor: recorder,
                payload: step(
                    "beredning_planeringsdelegationen",
                    vec![
                        fact(
                            "protokoll",
                            FactValue::MinutesRef {
                                body: "Planeringsdelegationen".into(),
                                date: date(2012, 8, 14),
                                paragraph: "§ 100".into(),
                            },
                        ),
                        fact("diarienummer", FactValue::CaseNumber("LJ2012/896".into())),
                        fact("justerare", person("Håkan Jansson", "justerare", PersonKind::Other)),
                        fact("rätt utdraget", person("Lena Sandqvist", "intygar utdraget", PersonKind::Other)),
                        fact("utdrag till", FactValue::Text("Landstingsstyrelsen".into())),
                    ],
                ),
            },
        ),
    ]
}

pub async fn run(cli: &Cli) -> Result<()> {
    let store = SledStore::open(&cli.data, OpenMode::CreateIfMissing, Arc::new(SystemClock))?;
    let instance = InstanceId::new(INSTANCE)?;
    for (command, event) in history() {
        let outcome = store
            .append(AppendRequest {
                instance: instance.clone(),
                expected: ExpectedVersion::Any,
                command_id: CommandId::new(command)?,
                events: vec![event],
            })
            .await?;
        let how = if outcome.deduplicated {
            "already recorded"
        } else {
            "recorded"
        };
        eprintln!("{how}: {command} at position {}", outcome.first_position);
    }
    println!("Event log for {instance} in {}:\n", cli.data.display());
    for e in store.read_instance(&instance, 1).await? {
        print!("{}", render::text(&e));
    }
    let mut verifier = ChainVerifier::new();
    let mut next = 1;
    loop {
        let page = store
            .read_all(next, engine::limits::READ_PAGE_EVENTS)
            .await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in &page {
            verifier.check(e)?;
        }
    }
    let report = verifier.finish();
    println!(
        "\nChain verified: {} events in {} instances, head hash {}",
        report.events, report.instances, report.head_hash
    );
    store.close()?;
    Ok(())
}
