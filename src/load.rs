//! `styrlogg load FILE...`: applies scenario files through the same
//! functions as `start`, `record`, `correct` and `deadline` (`flow.rs`),
//! one atomic append per command, with each command's `recorded_on` as
//! today. Every file is parsed and checked, and the instances and steps
//! the files name are checked against the log, before anything is written;
//! applying stops at the first refused command, keeping what was applied
//! before it. Commands already in the log are recognised by their derived
//! command ids and write nothing.

use crate::cli::Cli;
use crate::flow::{self, Written};
use crate::Refused;
use anyhow::{bail, Context, Result};
use engine::{Actor, AnyStore, EventId, EventStore};
use std::collections::HashMap;
use std::fmt;
use workflows::scenario::{Target, What};
use workflows::{Definition, Scenario};

/// A scenario file, parsed and checked, with the definitions its `start`
/// commands name.
pub struct Loaded {
    pub name: String,
    pub scenario: Scenario,
    definitions: Vec<Option<Definition>>,
}

/// What loading one file did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub commands: usize,
    pub applied: usize,
    pub already_present: usize,
    pub deviations: usize,
    pub late: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} command(s): {} applied, {} already present; {} deviation(s), {} late step(s)",
            self.commands, self.applied, self.already_present, self.deviations, self.late
        )
    }
}

/// Parses and checks a scenario's text: every problem with `name:line:col`,
/// the definitions its starts name, and no `recorded_on` after `today`.
pub fn check(cli: &Cli, today: jiff::civil::Date, name: &str, source: &str) -> Result<Loaded> {
    let scenario = Scenario::parse(source).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.render(name, source)).collect();
        Refused(format!("{}\n{name}: {} problem(s); nothing was loaded", lines.join("\n"), problems.len()))
    })?;
    let mut definitions = Vec::new();
    for c in &scenario.commands {
        let at = format!("{name}:{}: command {} ({})", c.line, c.index, c.what.describe());
        if c.recorded_on > today {
            bail!(Refused(format!("{at}: recorded_on {} is after today ({today}); nothing was loaded", c.recorded_on)));
        }
        definitions.push(match &c.what {
            What::Start { workflow, instance, .. } => {
                flow::instance_id(instance).with_context(|| format!("{at}; nothing was loaded"))?;
                Some(flow::resolve(cli, workflow).with_context(|| format!("{at}; nothing was loaded"))?)
            }
            _ => None,
        });
    }
    Ok(Loaded { name: name.to_string(), scenario, definitions })
}

/// Applies a checked scenario's commands in order, one atomic append each.
pub async fn apply(store: &AnyStore, keys: &crate::personal::Keys, file: &Loaded) -> Result<Summary> {
    let mut summary = Summary { commands: file.scenario.commands.len(), ..Summary::default() };
    // The event each `record` wrote, for corrections that point at its label.
    let mut events: Vec<Option<EventId>> = Vec::new();
    for (c, def) in file.scenario.commands.iter().zip(&file.definitions) {
        let actor = Actor::new(c.by.trim(), c.role.trim());
        let today = c.recorded_on;
        let result: Result<Written> = async {
            match &c.what {
                What::Start { instance, org, dnr, .. } => {
                    let def = def.as_ref().expect("checked: every start has its definition");
                    let id = flow::instance_id(instance)?;
                    flow::apply_start(store, def, &id, org, dnr.as_deref(), c.on, actor, today).await
                }
                What::Record { instance, step, facts, deviation, .. } => {
                    let id = flow::instance_id(instance)?;
                    flow::apply_record(store, keys, &id, step, c.on, facts.clone(), deviation.as_deref(), actor, today)
                        .await
                }
                What::Correct { target, reason, new_date, facts } => {
                    let event = match target {
                        Target::Event(e) => *e,
                        Target::Label { command, .. } => {
                            events.get(*command).copied().flatten().expect("checked: a label names an earlier record")
                        }
                    };
                    flow::apply_correct(store, keys, event, reason, *new_date, facts.clone(), c.on, actor, today).await
                }
                What::Deadline { instance, step, change, reason } => {
                    let id = flow::instance_id(instance)?;
                    flow::apply_deadline(store, &id, step, *change, reason, c.on, actor, today).await
                }
            }
        }
        .await;
        let at = format!("{}:{}: command {} ({})", file.name, c.line, c.index, c.what.describe());
        let w = match result {
            Ok(w) => w,
            Err(e) if crate::exit_code(&e) == 1 => bail!(Refused(format!(
                "{at} refused: {e:#}; the {} command(s) before it are loaded and stay (each command is its own atomic append); fix the file and load it again (what is loaded is recognised and skipped)",
                c.index - 1
            ))),
            Err(e) => return Err(e.context(at)),
        };
        if w.outcome.deduplicated {
            summary.already_present += 1;
        } else {
            summary.applied += 1;
        }
        summary.deviations += usize::from(w.deviation().is_some());
        summary.late += usize::from(w.late().is_some());
        events.push(matches!(c.what, What::Record { .. }).then_some(w.event.event.event_id));
    }
    Ok(summary)
}

/// Checks the files' commands against each other and the log before
/// anything is written: each instance a `record` or `deadline` names is
/// started by an earlier command of the files or is in the log, and each
/// step it names is one of that instance's workflow. (The rules that need
/// the state each command leaves are the workflow's, applied in order.)
pub async fn check_against_log(store: Option<&AnyStore>, files: &[Loaded]) -> Result<()> {
    let mut workflow_of: HashMap<String, Definition> = HashMap::new();
    for file in files {
        for (c, def) in file.scenario.commands.iter().zip(&file.definitions) {
            let at = format!("{}:{}: command {} ({})", file.name, c.line, c.index, c.what.describe());
            let (instance, step) = match &c.what {
                What::Start { instance, .. } => {
                    // A new instance's id must suit one; one the log holds keeps its own.
                    let id = flow::instance_id(instance).with_context(|| format!("{at}; nothing was loaded"))?;
                    let unfit = match store {
                        Some(s) => flow::unfit_here(s, &id).await?,
                        None => flow::unfit_for_a_new_instance(&id),
                    };
                    if let Some(why) = unfit {
                        bail!(Refused(format!("{at}: {}; nothing was loaded", why.en)));
                    }
                    let def = def.as_ref().expect("checked: every start has its definition");
                    workflow_of.entry(instance.clone()).or_insert_with(|| def.clone());
                    continue;
                }
                What::Record { instance, step, .. } | What::Deadline { instance, step, .. } => (instance, step),
                What::Correct { .. } => continue,
            };
            if !workflow_of.contains_key(instance) {
                let id = flow::instance_id(instance).with_context(|| format!("{at}; nothing was loaded"))?;
                let events = match store {
                    Some(s) => s.read_instance(&id, 1).await?,
                    None => Vec::new(),
                };
                if events.is_empty() {
                    bail!(Refused(format!(
                        "{at}: no instance {instance}: no command before it starts it, and the log has none; nothing was loaded"
                    )));
                }
                // Its start names the definition (and holds no personal facts).
                let started = workflows::instance::Instance::fold(&events[..1])
                    .map_err(|e| Refused(format!("{at}: {e}; nothing was loaded")))?;
                workflow_of.insert(instance.clone(), (*started.definition).clone());
            }
            let def = &workflow_of[instance];
            if def.step(step).is_none() {
                bail!(Refused(format!(
                    "{at}: workflow {} has no step {step:?} (its steps: {}); nothing was loaded",
                    def.id,
                    def.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// `styrlogg load FILE...`
pub async fn run(cli: &Cli, files: &[std::path::PathBuf]) -> Result<()> {
    let mut loaded = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let source = flow::read_text(f, engine::limits::SCENARIO_BYTES_MAX, "scenario")?;
        loaded.push(check(cli, flow::today(cli), &name, &source)?);
    }
    // A log that is not there yet holds no instance, and is made only once
    // the files pass.
    let existing = match crate::open(cli, engine::OpenMode::MustExist).await {
        Ok(s) => Some(s),
        Err(e) if e.chain().any(|c| matches!(c.downcast_ref(), Some(engine::StoreError::NotFound { .. }))) => None,
        Err(e) => return Err(e),
    };
    let keys = crate::personal::Keys::for_cli(cli);
    if let Err(e) = check_against_log(existing.as_ref(), &loaded).await {
        if let Some(s) = existing {
            s.close()?;
        }
        return Err(e);
    }
    let store = match existing {
        Some(s) => s,
        None => crate::open(cli, engine::OpenMode::CreateIfMissing).await?,
    };
    for file in &loaded {
        let summary = apply(&store, &keys, file).await;
        match summary {
            Ok(s) => println!("{}: {s}", file.name),
            Err(e) => {
                store.close()?;
                return Err(e);
            }
        }
    }
    store.close()?;
    Ok(())
}
