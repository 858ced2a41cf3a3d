//! `styrlogg demo`: starts Landstinget i Jönköpings län's instance of SKL's
//! 2012-2014 network and records the first documented step (seed 000),
//! with the date inconsistency of the minutes flagged as a deviation; shows
//! a rejection, the log, the status as of 2012-09-01, and verifies the chain.

use crate::cli::Cli;
use crate::{open, render};
use anyhow::Result;
use engine::{Actor, AppendRequest, ChainVerifier, CommandId, EventStore, ExpectedVersion, InstanceId, OpenMode};
use jiff::civil::date;
use workflows::status::InstanceStatus;
use workflows::{builtin, decide, Command, Definition, Instance};

const INSTANCE: &str = "ljl-2012-styrsystem";

pub async fn run(cli: &Cli) -> Result<()> {
    let source = builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("skl-styrsystem")).expect("built in").1;
    let def = Definition::parse(source).map_err(|p| anyhow::anyhow!("built-in definition invalid: {p:?}"))?;
    let store = open(cli, OpenMode::CreateIfMissing)?;
    let id = InstanceId::new(INSTANCE)?;
    let today = crate::flow::today(cli);
    let recorder = Actor::new("styrlogg demo", "sekreterare");

    if store.read_instance(&id, 1).await?.is_empty() {
        let start = workflows::start(
            &def,
            "Landstinget i Jönköpings län",
            Some("LJ2012/896"),
            date(2011, 6, 26),
            recorder.clone(),
            today,
        )?;
        let outcome = store
            .append(AppendRequest {
                instance: id.clone(),
                expected: ExpectedVersion::NoStream,
                command_id: CommandId::new("demo-ljl-start")?,
                events: vec![start],
            })
            .await?;
        eprintln!("recorded the start at position {}", outcome.first_position);
        let inst = Instance::fold(&store.read_instance(&id, 1).await?)?;
        let step = decide(
            &inst,
            Command::Record {
                step: "intresseanmalan".into(),
                occurred_on: date(2011, 6, 26),
                actor: recorder.clone(),
                facts: vec![
                    ("kontaktperson".into(), "Tommy Bernevång Forsberg|ordförande i Allmänpolitiska utskottet|elected".into()),
                    ("organisation".into(), "Landstinget i Jönköpings län, Allmänpolitiska utskottet".into()),
                ],
                deviation: Some(
                    "Skrivelsen säger att utskottet ansökte under våren 2012, men planeringsgruppens protokoll (§ 30) är daterat 2011-06-26; datumet återges som i protokollet.".into(),
                ),
            },
            today,
        )?;
        let outcome = store
            .append(AppendRequest {
                instance: id.clone(),
                expected: ExpectedVersion::Exactly(inst.version),
                command_id: CommandId::new("demo-ljl-intresseanmalan")?,
                events: step,
            })
            .await?;
        eprintln!("recorded intresseanmalan at position {}", outcome.first_position);
    } else {
        eprintln!("{INSTANCE} is already in {}; recording nothing new", cli.data.display());
    }

    let events = store.read_instance(&id, 1).await?;
    println!("Event log for {INSTANCE} in {}:\n", cli.data.display());
    for e in &events {
        print!("{}", render::text(e));
    }
    let inst = Instance::fold(&events)?;

    println!("\nA step out of order is refused, and nothing is written:");
    let attempt = Command::Record {
        step: "projektplan".into(),
        occurred_on: date(2012, 10, 1),
        actor: Actor::new("styrlogg demo", "projektledare"),
        facts: vec![],
        deviation: None,
    };
    match decide(&inst, attempt, today) {
        Err(rejection) => println!("  styrlogg: {rejection}"),
        Ok(_) => println!("  (unexpectedly accepted)"),
    }

    println!("\nStatus as of 2012-09-01:");
    let status = InstanceStatus::of(&inst, date(2012, 9, 1));
    for s in &status.steps {
        let state = if s.overdue { "OVERDUE".to_string() } else { format!("{:?}", s.state).to_lowercase() };
        let due = s.deadline.map(|d| format!(" (due {d})")).unwrap_or_default();
        println!("  {:<28} {state}{due}", s.id);
    }

    let mut verifier = ChainVerifier::new();
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
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
