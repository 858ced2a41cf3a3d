//! The workflow commands: checking definitions, starting instances,
//! recording steps, corrections and deadline changes, and status. Each
//! write folds the instance from the log, decides purely, and appends with
//! the version it decided on. `apply_start`, `apply_record`,
//! `apply_correct` and `apply_deadline` are the one path for each write:
//! the command line and the scenario loader both call them.

use crate::cli::{By, Cli, Format, WorkflowsCommand};
use crate::personal::{self, Keys};
use crate::{open, Refused};
use anyhow::{bail, Context, Result};
use engine::{
    Actor, AnyStore, AppendError, AppendRequest, CommandId, DeadlineChange, EventId, EventStore, ExpectedVersion,
    InstanceId, OpenMode, Payload, RecordedEvent,
};
use jiff::civil::Date;
use std::path::Path;
use workflows::status::{InstanceStatus, StepState};
use workflows::{builtin, decide, Command as WfCommand, Definition, Instance};

/// Today in Swedish time, unless --today says otherwise.
pub fn today(cli: &Cli) -> Date {
    cli.today.unwrap_or_else(real_today)
}

/// Today in Swedish time, by the clock.
pub fn real_today() -> Date {
    jiff::Timestamp::now().in_tz("Europe/Stockholm").map(|z| z.date()).unwrap_or_else(|_| jiff::Zoned::now().date())
}

/// Every definition available: built-in ones, then those in --workflows DIR.
fn available(cli: &Cli) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> =
        builtin::DEFINITIONS.iter().map(|(name, src)| (format!("(built-in) {name}"), src.to_string())).collect();
    if let Some(dir) = &cli.workflows {
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read --workflows {}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let src = read_text(&p, engine::limits::DEFINITION_BYTES_MAX, "workflow definition")?;
            out.push((p.display().to_string(), src));
        }
    }
    Ok(out)
}

/// Every definition that parses, in the order of [`available`] (a later
/// one with the same id replaces an earlier one); the others are warned of.
pub fn definitions(cli: &Cli) -> Result<Vec<Definition>> {
    Ok(parsed(cli, false)?.into_iter().map(|(_, d)| d).collect())
}

/// [`definitions`] for a command that starts instances (`serve`): a file
/// in --workflows with errors is refused, not skipped, since skipping it
/// would start its workflow from the built-in version, for good.
pub fn definitions_to_start(cli: &Cli) -> Result<Vec<Definition>> {
    Ok(parsed(cli, true)?.into_iter().map(|(_, d)| d).collect())
}

/// Every definition available, parsed, with its name; one with errors is
/// refused when `strict`, and otherwise warned of and skipped.
fn parsed(cli: &Cli, strict: bool) -> Result<Vec<(String, Definition)>> {
    let mut out = Vec::new();
    for (name, src) in available(cli)? {
        match Definition::parse(&src) {
            Ok(d) => out.push((name, d)),
            Err(p) if strict => bail!(Refused(format!(
                "{name} has errors, and no workflow is started or shown while a file of --workflows does not \
                 parse (its workflow would be taken from the built-in version, and an instance started so would \
                 stay so): fix it, or move it out of the directory; `styrlogg workflows check {name}` lists every \
                 problem:\n{}",
                problems_text(&name, &src, &p)
            ))),
            Err(p) => tracing::warn!("{name} has errors and is skipped:\n{}", problems_text(&name, &src, &p)),
        }
    }
    Ok(out)
}

/// Refuses a role that no workflow definition has, for the log's own
/// records (erasures, signing keys), which belong to no one workflow.
pub fn known_role(cli: &Cli, role: &str) -> Result<()> {
    known_roles(cli, [role])
}

/// [`known_role`] for several, reading the definitions once.
pub fn known_roles<'a>(cli: &Cli, roles: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let defs = definitions(cli)?;
    for role in roles {
        if defs.iter().any(|d| d.has_role(role.trim())) {
            continue;
        }
        let roles: std::collections::BTreeSet<&str> =
            defs.iter().flat_map(|d| d.roles.iter().map(|r| r.id.as_str())).collect();
        bail!(Refused(format!(
            "role {:?} is not a role of any workflow definition; the roles are: {}",
            role.trim(),
            roles.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
    Ok(())
}

/// Opens a file the user named to read: one that is not there, not
/// readable, or a directory is the user's to fix (exit 1), saying which;
/// any other failure is the system's (exit 3).
pub fn open_input(path: &Path, what: &str) -> Result<std::fs::File> {
    let shown = path.display();
    if path.is_dir() {
        bail!(Refused(format!("cannot read {what} {shown}: it is a directory; give a file")));
    }
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::Error::new(Refused(format!("cannot read {what} {shown}: no such file")))
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow::Error::new(Refused(format!("cannot read {what} {shown}: not readable (permission denied)")))
        }
        _ => anyhow::Error::new(e).context(format!("cannot read {what} {shown}")),
    })
}

/// Reads a text file a user names, refusing one larger than `max` bytes
/// without reading it whole, and one that is not UTF-8, with its name.
pub fn read_text(path: &Path, max: usize, what: &str) -> Result<String> {
    use std::io::Read;
    let file = open_input(path, what)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() > max {
        bail!(Refused(format!("{}: a {what} is at most {max} bytes; this one is larger", path.display())));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Refused(format!("{}: not UTF-8 text (byte {at} is not): save the {what} as UTF-8", path.display())).into()
    })
}

fn problems_text(file: &str, source: &str, problems: &[workflows::Problem]) -> String {
    problems.iter().map(|p| p.render(file, source)).collect::<Vec<_>>().join("\n")
}

/// A definition by id (built-in or --workflows DIR; the latter wins) or by path.
pub fn resolve(cli: &Cli, workflow: &str) -> Result<Definition> {
    let path = Path::new(workflow);
    if workflow.ends_with(".toml") || path.is_file() {
        let src = read_text(path, engine::limits::DEFINITION_BYTES_MAX, "workflow definition")?;
        return Definition::parse(&src)
            .map_err(|p| Refused(format!("{workflow} has errors:\n{}", problems_text(workflow, &src, &p))).into());
    }
    let mut found = None;
    let mut ids = Vec::new();
    for (_, d) in parsed(cli, true)? {
        ids.push(d.id.clone());
        if d.id == workflow {
            found = Some(d);
        }
    }
    found.ok_or_else(|| {
        Refused(format!("no workflow {}; known: {}", workflows::facts::quoted(workflow), ids.join(", "))).into()
    })
}

pub fn workflows(cli: &Cli, cmd: &WorkflowsCommand) -> Result<()> {
    match cmd {
        WorkflowsCommand::Check { files: given } => {
            // A directory stands for its definitions (*.toml), as with
            // --workflows.
            let mut files = Vec::new();
            for f in given {
                if !f.is_dir() {
                    files.push(f.clone());
                    continue;
                }
                let entries = std::fs::read_dir(f).with_context(|| format!("cannot read {}", f.display()))?;
                let mut inside: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                if inside.is_empty() {
                    bail!(Refused(format!("{} holds no workflow definitions (*.toml)", f.display())));
                }
                inside.sort();
                files.extend(inside);
            }
            let mut failed = 0;
            for f in &files {
                let name = f.display().to_string();
                let src = read_text(f, engine::limits::DEFINITION_BYTES_MAX, "workflow definition")?;
                match Definition::parse(&src) {
                    Ok(d) => println!(
                        "{name}: ok: {} version {}, {} steps, {} roles",
                        d.id,
                        d.version,
                        d.steps.len(),
                        d.roles.len()
                    ),
                    Err(problems) => {
                        failed += 1;
                        eprintln!("{}", problems_text(&name, &src, &problems));
                        eprintln!("{name}: {} problem(s)", problems.len());
                    }
                }
            }
            if failed > 0 {
                bail!(Refused(format!("{failed} of {} definition file(s) have problems", files.len())));
            }
        }
        WorkflowsCommand::List => {
            for (name, src) in available(cli)? {
                match Definition::parse(&src) {
                    Ok(d) => println!("{:<28} v{}  {}  [{}]", d.id, d.version, d.title.sv, name),
                    Err(p) => println!("{name}: {} problem(s); run `styrlogg workflows check`", p.len()),
                }
            }
        }
        WorkflowsCommand::Show { workflow } => print!("{}", resolve(cli, workflow)?.source),
    }
    Ok(())
}

fn actor(by: &By) -> Result<Actor> {
    option(engine::event::check_name("--by", by.by.trim()))?;
    option(engine::event::check_name("--role", by.role.trim()))?;
    Actor::checked(by.by.trim(), by.role.trim()).map_err(|e| Refused(e.to_string()).into())
}

/// A check of an option's text, refused under the option's name (`--org:
/// must not be empty`), before the log's own check would name its field.
pub fn option(checked: Result<(), engine::event::InvalidField>) -> Result<()> {
    checked.map_err(|e| Refused(e.to_string()).into())
}

pub fn instance_id(s: &str) -> Result<InstanceId> {
    InstanceId::new(s).map_err(|e| Refused(e.to_string()).into())
}

/// A command id derived from what the user asked: repeating the exact same
/// command (a retry) is recognised and writes nothing.
fn derived_command_id(instance: &InstanceId, what: &str) -> CommandId {
    let mut h = blake3::Hasher::new_derive_key("styrlogg cli command v1");
    h.update(instance.as_str().as_bytes());
    h.update(what.as_bytes());
    CommandId::new(format!("cli-{}", &h.finalize().to_hex()[..32])).expect("valid id")
}

/// Folds an instance to decide on it, with its personal facts opened
/// where their keys are here: decisions see plaintext.
async fn load(store: &AnyStore, keys: &Keys, id: &InstanceId) -> Result<Instance> {
    if id.is_system() {
        bail!(Refused(format!("{id} holds the log's own events (signing keys, erasures); it is no workflow instance")));
    }
    let mut events = store.read_instance(id, 1).await?;
    if events.is_empty() {
        bail!(Refused(format!("no instance {id}; start it with `styrlogg start WORKFLOW --instance {id} ...`")));
    }
    personal::open_events(keys, &mut events)?;
    Instance::fold(&events).map_err(|e| Refused(e.to_string()).into())
}

/// What a write command did: the append's outcome (`deduplicated` when the
/// same command had been applied before) and the first event it wrote, or
/// the one written the first time.
pub struct Written {
    pub outcome: engine::AppendOutcome,
    pub event: RecordedEvent,
}

impl Written {
    /// The lateness flag of a recorded step, if any.
    pub fn late(&self) -> Option<&engine::Lateness> {
        match &self.event.event.payload {
            Payload::StepRecorded { late, .. } => late.as_ref(),
            _ => None,
        }
    }

    /// The deviation of a recorded step, if any.
    pub fn deviation(&self) -> Option<&str> {
        match &self.event.event.payload {
            Payload::StepRecorded { deviation, .. } => deviation.as_deref(),
            _ => None,
        }
    }
}

async fn written(store: &AnyStore, outcome: engine::AppendOutcome) -> Result<Written> {
    let event = store
        .read_all(outcome.first_position, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the log has no event at position {}", outcome.first_position))?;
    Ok(Written { outcome, event })
}

/// Folds, decides, seals personal facts and appends at the decided
/// version; a concurrent writer makes it decide again (up to 16 times,
/// backing off).
async fn decide_and_append(
    store: &AnyStore,
    keys: &Keys,
    id: &InstanceId,
    cmd: WfCommand,
    today: Date,
) -> Result<Written> {
    let what = format!("{cmd:?}");
    // A command that carries personal data gets an id keyed with the key
    // store's secret, so the id says nothing about the data.
    let keyed = personal::touches_personal(&load(store, keys, id).await?, &cmd);
    let id_of = |what: &str| match keyed {
        true => personal::keyed_command_id(keys, id, what),
        false => Ok(derived_command_id(id, what)),
    };
    let mut command_id = id_of(&what)?;
    // The same correction or deadline change given again after another
    // one of the same event or step is no retry: it changes the state back,
    // and gets an id of its own (the n-th time it is given anew).
    let mut reissue = 0;
    while let Some(done) = store.command_outcome(id, &command_id).await? {
        if !superseded_since(store, id, &cmd, done.last_position).await? {
            return written(store, engine::AppendOutcome { deduplicated: true, ..done }).await;
        }
        reissue += 1;
        command_id = id_of(&format!("{what} given anew #{reissue}"))?;
    }
    // Another process writing the same instance (two loads of one file at
    // once) can win several times in a row on a busy machine: back off a
    // little more each time, up to about a second in all.
    let mut lost = None;
    for attempt in 0..16u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1 << attempt.min(6))).await;
        }
        let inst = load(store, keys, id).await?;
        let mut events = match decide(&inst, cmd.clone(), today) {
            Ok(events) => events,
            Err(rejection) => {
                // The same command by another process, landed since the
                // check above, is what changed the state: a retry, not a refusal.
                if let Some(done) = store.command_outcome(id, &command_id).await? {
                    return written(store, engine::AppendOutcome { deduplicated: true, ..done }).await;
                }
                return Err(rejection.into());
            }
        };
        personal::seal(keys, &inst, &mut events)?;
        match store
            .append(AppendRequest {
                instance: id.clone(),
                expected: ExpectedVersion::Exactly(inst.version),
                command_id: command_id.clone(),
                events,
            })
            .await
        {
            Err(conflict @ AppendError::Conflict { .. }) => {
                if let Some(done) = store.command_outcome(id, &command_id).await? {
                    return written(store, engine::AppendOutcome { deduplicated: true, ..done }).await;
                }
                lost = Some(conflict);
                continue;
            }
            other => return written(store, other?).await,
        }
    }
    Err(kept_changing(id, lost.expect("16 attempts, each lost to a conflict")))
}

/// Every attempt lost to another writer of the instance: nothing was
/// stored, and the conflict stays in the chain (the web answers 409).
fn kept_changing(id: &InstanceId, conflict: AppendError) -> anyhow::Error {
    anyhow::Error::new(conflict).context(format!("instance {id} kept changing while deciding; try again"))
}

/// Whether a correction of the same event, or a change of the same step's
/// deadline, was recorded after `position`. Other commands are never
/// superseded: the same command again is a retry.
async fn superseded_since(store: &AnyStore, id: &InstanceId, cmd: &WfCommand, position: u64) -> Result<bool> {
    let later = |e: &RecordedEvent| match (cmd, &e.event.payload) {
        (WfCommand::Correct { event, .. }, Payload::StepCorrected { corrects, .. }) => corrects == event,
        (WfCommand::ChangeDeadline { step, .. }, Payload::DeadlineChanged { step: changed, .. }) => changed == step,
        _ => false,
    };
    if !matches!(cmd, WfCommand::Correct { .. } | WfCommand::ChangeDeadline { .. }) {
        return Ok(false);
    }
    let events = store.read_instance(id, 1).await?;
    Ok(events.iter().any(|e| e.event.position > position && later(e)))
}

/// `start`: a new instance of `def`, one atomic append. The same start
/// again is recognised and writes nothing; another start under the same
/// instance id is refused.
#[allow(clippy::too_many_arguments)]
pub async fn apply_start(
    store: &AnyStore,
    def: &Definition,
    id: &InstanceId,
    org: &str,
    dnr: Option<&str>,
    on: Date,
    actor: Actor,
    today: Date,
) -> Result<Written> {
    if let Some(why) = unfit_here(store, id).await? {
        bail!(Refused(why.en));
    }
    let event = workflows::start(def, org, dnr, on, actor, today)?;
    let command_id = derived_command_id(id, &serde_json::to_string(&event)?);
    let result = store
        .append(AppendRequest {
            instance: id.clone(),
            expected: ExpectedVersion::NoStream,
            command_id,
            events: vec![event],
        })
        .await;
    match result {
        Err(AppendError::Conflict { .. }) => {
            bail!(Refused(format!("instance {id} already exists; choose another instance id")))
        }
        other => written(store, other?).await,
    }
}

/// Why `id` may not name a new instance, if it may not: the log's own
/// instance, or an id with `/` at either end, `//`, or a `.` or `..` part,
/// which a path in a web address would not keep as it is (a proxy may
/// resolve or refuse it). Instances already in the log keep their ids.
pub fn unfit_for_a_new_instance(id: &InstanceId) -> Option<workflows::Bilingual> {
    if id.is_system() {
        return Some(workflows::said(
            format!("instansens id {id} är reserverat för loggens egna händelser; välj ett annat id"),
            format!("instance id {id} is reserved for the log's own events; choose another instance id"),
        ));
    }
    let s = id.as_str();
    let parts_unfit =
        s.starts_with('/') || s.ends_with('/') || s.split('/').any(|p| p.is_empty() || p == "." || p == "..");
    parts_unfit.then(|| {
        workflows::said(
            format!("instansens id {s:?} får inte börja eller sluta med /, ha // eller en del som är . eller ..; välj ett annat id"),
            format!("instance id {s:?} may not start or end with /, hold //, or have a part that is . or ..; choose another instance id"),
        )
    })
}

/// [`unfit_for_a_new_instance`], for a start in `store`: an instance the
/// log already holds keeps its id (the same start again is a retry,
/// another one is refused as existing), so only a new one is asked.
pub async fn unfit_here(store: &impl engine::EventStore, id: &InstanceId) -> Result<Option<workflows::Bilingual>> {
    let Some(why) = unfit_for_a_new_instance(id) else { return Ok(None) };
    let held = !id.is_system() && !store.read_instance(id, 1).await?.is_empty();
    Ok((!held).then_some(why))
}

/// `record`: a step happened on `on`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_record(
    store: &AnyStore,
    keys: &Keys,
    id: &InstanceId,
    step: &str,
    on: Date,
    facts: Vec<(String, String)>,
    deviation: Option<&str>,
    actor: Actor,
    today: Date,
) -> Result<Written> {
    let cmd = WfCommand::Record {
        step: step.to_string(),
        occurred_on: on,
        actor,
        facts,
        deviation: deviation.map(String::from),
    };
    decide_and_append(store, keys, id, cmd, today).await
}

/// The instance an event belongs to, by scanning the log.
async fn instance_of(store: &AnyStore, event: EventId) -> Result<InstanceId> {
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        if let Some(e) = page.into_iter().find(|e| e.event.event_id == event) {
            if let Payload::StepCorrected { corrects, .. } = &e.event.payload {
                // Corrections are of the recorded step; they apply in
                // order, so a later one puts an earlier one right.
                bail!(Refused(format!(
                    "event {} (#{}) is itself a correction, of event {}: correct that one instead; its \
                     corrections apply in order, so a new one replaces what an earlier one said",
                    &event.to_hex()[..12],
                    e.event.position,
                    corrects.to_hex()
                )));
            }
            return Ok(e.event.instance);
        }
    }
    bail!(Refused(format!("no event {event} in the log")))
}

/// `correct`: a correction of an earlier step (`event`), made on `on`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_correct(
    store: &AnyStore,
    keys: &Keys,
    event: EventId,
    reason: &str,
    new_date: Option<Date>,
    facts: Vec<(String, String)>,
    on: Date,
    actor: Actor,
    today: Date,
) -> Result<Written> {
    let id = instance_of(store, event).await?;
    let cmd = WfCommand::Correct { event, on, actor, reason: reason.to_string(), new_date, facts };
    decide_and_append(store, keys, &id, cmd, today).await
}

/// `deadline`: a step's pending deadline extended or waived on `on`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_deadline(
    store: &AnyStore,
    id: &InstanceId,
    step: &str,
    change: DeadlineChange,
    reason: &str,
    on: Date,
    actor: Actor,
    today: Date,
) -> Result<Written> {
    let cmd = WfCommand::ChangeDeadline { step: step.to_string(), on, actor, change, reason: reason.to_string() };
    decide_and_append(store, &Keys::new(None), id, cmd, today).await
}

fn report(w: &Written, what: &str) {
    let outcome = &w.outcome;
    if outcome.deduplicated {
        println!("{what} was already recorded (position {}); nothing new written", outcome.first_position);
    } else {
        println!(
            "{what} recorded at position {} (instance sequence {})",
            outcome.first_position, outcome.first_sequence
        );
    }
}

pub async fn start(
    cli: &Cli,
    workflow: &str,
    instance: &str,
    org: &str,
    dnr: Option<&str>,
    on: Option<Date>,
    by: &By,
) -> Result<()> {
    let def = resolve(cli, workflow)?;
    let id = instance_id(instance)?;
    option(engine::event::check_name("--org", org))?;
    // Before a store is made; in a store, `apply_start` checks it (an
    // instance the log already holds keeps its id).
    let no_store = cli.nats.is_none() && !cli.data.join("STORE").exists();
    if let Some(why) = unfit_for_a_new_instance(&id).filter(|_| no_store || id.is_system()) {
        bail!(Refused(why.en));
    }
    let today = today(cli);
    // Refuse what the rules refuse before creating a store.
    workflows::start(&def, org, dnr, on.unwrap_or(today), actor(by)?, today)?;
    let store = open(cli, OpenMode::CreateIfMissing).await?;
    let w = apply_start(&store, &def, &id, org, dnr, on.unwrap_or(today), actor(by)?, today).await?;
    report(&w, &format!("instance {id} of {} v{} (definition {})", def.id, def.version, &def.hash.to_hex()[..16]));
    store.close()?;
    Ok(())
}

fn facts_from_file(path: &Path) -> Result<Vec<(String, String)>> {
    let src = read_text(path, engine::limits::FACTS_FILE_BYTES_MAX, "facts file")?;
    let table: toml::Table =
        toml::from_str(&src).map_err(|e| Refused(format!("{}: {}", path.display(), e.message().trim())))?;
    let mut out = Vec::new();
    for (k, v) in table {
        let values = match v {
            toml::Value::Array(a) => a,
            other => vec![other],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Datetime(d) => d.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => bail!(Refused(format!(
                    "{}: fact {k:?} must be a string, got a {}",
                    path.display(),
                    other.type_str()
                ))),
            };
            out.push((k.clone(), text));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub async fn record(
    cli: &Cli,
    instance: &str,
    step: &str,
    on: Date,
    facts: &[(String, String)],
    facts_file: Option<&Path>,
    deviation: Option<&str>,
    by: &By,
) -> Result<()> {
    let id = instance_id(instance)?;
    let mut all = match facts_file {
        Some(p) => facts_from_file(p)?,
        None => Vec::new(),
    };
    all.extend(facts.iter().cloned());
    let store = open(cli, OpenMode::MustExist).await?;
    let keys = Keys::for_cli(cli);
    let w = apply_record(&store, &keys, &id, step, on, all, deviation, actor(by)?, today(cli)).await?;
    report(&w, &format!("step {step} of {id}"));
    if let Some(late) = w.late() {
        println!("flagged late: {} day(s) after the deadline {}", late.days_late, late.deadline);
    }
    if w.deviation().is_some() {
        println!("flagged as a deviation; every report shows it");
    }
    store.close()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn correct(
    cli: &Cli,
    event: &str,
    reason: &str,
    date: Option<Date>,
    facts: &[(String, String)],
    on: Option<Date>,
    by: &By,
) -> Result<()> {
    option(engine::event::check_reason("--reason", reason))?;
    let store = open(cli, OpenMode::MustExist).await?;
    // A whole id needs no search: the correction itself finds its event.
    let event_id = match EventId::from_hex(event.trim()) {
        Ok(id) => id,
        Err(_) => match find_event(&store, event).await {
            Ok(e) => e.event.event_id,
            Err(e) => {
                store.close()?;
                return Err(e);
            }
        },
    };
    let today = today(cli);
    let keys = Keys::for_cli(cli);
    let w =
        apply_correct(&store, &keys, event_id, reason, date, facts.to_vec(), on.unwrap_or(today), actor(by)?, today)
            .await?;
    report(&w, &format!("correction of {} in {}", event_id.to_hex(), w.outcome.instance));
    store.close()?;
    Ok(())
}

/// An event id, or its start, as a user gives it: 8 to 32 hex digits, in
/// lower case; none for anything else. The command line and the web take
/// events so (the pages and the audit trail show ids shortened).
pub fn event_id_start(given: &str) -> Option<String> {
    let hex = given.trim().to_ascii_lowercase();
    ((8..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The event `given` names: its id (32 hex digits), the start of its id
/// (at least 8, as the web and the audit trail may show it shortened),
/// or its position in the log (`#17` as `log` shows it, or `17`; eight
/// digits or more without `#` are the start of an id). `correct` and
/// `prove` take events so.
pub async fn find_event(store: &impl engine::EventStore, given: &str) -> Result<RecordedEvent> {
    // (The web finds events by id in its live view: `web::ops::event_named`.)
    let g = given.trim();
    let (position, marked) = match g.strip_prefix('#') {
        Some(p) => (p, true),
        None => (g, false),
    };
    let digits = !position.is_empty() && position.bytes().all(|b| b.is_ascii_digit());
    if digits && (marked || position.len() < 8) {
        let at = position.parse::<u64>().ok().filter(|n| *n > 0);
        let found = match at {
            Some(n) => store.read_all(n, 1).await?.into_iter().next().filter(|e| e.event.position == n),
            None => None,
        };
        return found.ok_or_else(|| {
            Refused(format!("the log has no event at position {position} (see `styrlogg log`)")).into()
        });
    }
    let Some(hex) = event_id_start(g) else {
        bail!(Refused(format!(
            "{} is not an event: give its id (32 hex digits, or its first 8 or more) or its position in the log \
             (#17), as `styrlogg log` shows them",
            workflows::facts::quoted(given)
        )));
    };
    let mut found: Vec<RecordedEvent> = Vec::new();
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        found.extend(page.into_iter().filter(|e| e.event.event_id.to_hex().starts_with(&hex)).take(2));
        if found.len() > 1 || (hex.len() == 32 && !found.is_empty()) {
            break;
        }
    }
    match found.as_slice() {
        [_] => Ok(found.swap_remove(0)),
        [] => bail!(Refused(format!("no event id in the log starts with {hex} (see `styrlogg log`)"))),
        [a, b, ..] => bail!(Refused(format!(
            "event ids at positions {} and {} both start with {hex}: give more of the id, or the position",
            a.event.position, b.event.position
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn deadline(
    cli: &Cli,
    instance: &str,
    step: &str,
    extend_to: Option<Date>,
    waive: bool,
    reason: &str,
    on: Option<Date>,
    by: &By,
) -> Result<()> {
    let id = instance_id(instance)?;
    option(engine::event::check_reason("--reason", reason))?;
    let change = match (extend_to, waive) {
        (Some(to), false) => DeadlineChange::Extended { to },
        (None, true) => DeadlineChange::Waived,
        _ => bail!(Refused("give either --extend-to DATE or --waive".into())),
    };
    let store = open(cli, OpenMode::MustExist).await?;
    let today = today(cli);
    // Which deadline it changes, said with it: a step due once a year has
    // one a year, and the change is of the one pending.
    let pending =
        |inst: &Instance| inst.definition.step(step).and_then(|s| inst.pending_deadline(s)).map(|p| p.last_day);
    let before = load(&store, &Keys::new(None), &id).await.ok().as_ref().and_then(pending);
    let w = apply_deadline(&store, &id, step, change, reason, on.unwrap_or(today), actor(by)?, today).await?;
    let after = load(&store, &Keys::new(None), &id).await.ok().as_ref().and_then(pending);
    let what = match (w.outcome.deduplicated, before, change) {
        (false, Some(d), DeadlineChange::Waived) => format!("the deadline {d} of {step} of {id}, waived,"),
        (false, Some(d), DeadlineChange::Extended { to }) => {
            format!("the deadline {d} of {step} of {id}, extended to {to},")
        }
        _ => format!("deadline change for {step} of {id}"),
    };
    report(&w, &what);
    if !w.outcome.deduplicated && matches!(change, DeadlineChange::Waived) {
        match after {
            Some(next) => println!("the next deadline of {step} is {next}"),
            None => println!("{step} has no further deadline"),
        }
    }
    store.close()?;
    Ok(())
}

pub async fn status(cli: &Cli, instance: Option<&str>, format: Format) -> Result<()> {
    use std::io::Write;
    let today = today(cli);
    // One instance: read just its events. All: the checkpointed view, which
    // folds only what was recorded since the last command.
    let statuses: Vec<InstanceStatus> = match instance {
        Some(i) => {
            let store = open(cli, OpenMode::MustExist).await?;
            let s = InstanceStatus::of(&load(&store, &Keys::new(None), &instance_id(i)?).await?, today);
            store.close()?;
            vec![s]
        }
        None => {
            let view = crate::reports::status_view(cli).await?;
            view.instances.values().map(|v| InstanceStatus::of(&v.instance, today)).collect()
        }
    };
    let mut out = crate::output::stdout();
    match format {
        Format::Json => {
            for s in &statuses {
                writeln!(out, "{}", serde_json::to_string(s)?)?;
            }
        }
        Format::Text => {
            if statuses.is_empty() {
                writeln!(out, "no instances yet; start one with `styrlogg start`")?;
            }
            for s in &statuses {
                write!(out, "{}", status_text(s))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn status_text(s: &InstanceStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — {} — {} v{} (definition {}){}\nas of {}",
        s.instance,
        s.organisation,
        s.workflow,
        s.definition_version,
        &s.definition_hash[..16],
        s.case_number.as_ref().map(|c| format!(", Dnr {c}")).unwrap_or_default(),
        s.today
    );
    for step in &s.steps {
        let mark = match (&step.state, step.overdue) {
            (_, true) => "[!]",
            (StepState::Done, _) => "[x]",
            (StepState::Open, _) => "[ ]",
            (StepState::Waiting, _) => "[-]",
        };
        let mut line = format!("  {mark} {:<28} {}", step.id, step.title);
        for d in &step.done {
            let _ = write!(line, "\n        done {}", d.occurred_on);
            if let Some(y) = d.for_year {
                let _ = write!(line, " for {y}");
            }
            if let Some(n) = d.days_late {
                let _ = write!(line, ", LATE by {n} day(s)");
            }
            if let Some(dev) = &d.deviation {
                let _ = write!(line, ", DEVIATION: {dev}");
            }
            if d.corrections > 0 {
                let _ = write!(line, ", corrected {} time(s)", d.corrections);
            }
        }
        for y in &step.waived_years {
            let _ = write!(line, "\n        deadline for {y} waived");
        }
        if let Some(deadline) = step.deadline {
            if step.state != StepState::Done {
                let days = (deadline - s.today).get_days();
                let when = if step.overdue {
                    format!("OVERDUE: the last day was {deadline} ({} day(s) ago)", -days)
                } else {
                    format!("due {deadline} ({days} day(s) left)")
                };
                let _ = write!(line, "\n        {when}");
                if step.overdue {
                    if let Some(r) = &step.escalate_to {
                        let _ = write!(line, ", escalate to {r}");
                    }
                }
            }
        }
        let _ = writeln!(out, "{line}");
    }
    if s.notices_delivered > 0 || !s.notice_problems.is_empty() {
        let _ = writeln!(out, "Notices delivered: {}", s.notices_delivered);
    }
    for p in &s.notice_problems {
        let what = match p.state {
            "in_doubt" => "IN DOUBT (claimed, no outcome recorded; maybe sent, not resent)".to_string(),
            "given_up" if p.attempt < engine::limits::NOTICE_ATTEMPTS_MAX => "GAVE UP at once".to_string(),
            "given_up" => format!("GAVE UP after {} attempts", p.attempt),
            "superseded" => format!(
                "FAILED attempt {}, not retried: {}",
                p.attempt,
                match &p.superseded_by {
                    Some(by) => format!("superseded by {by}"),
                    None => "no longer due".to_string(),
                }
            ),
            _ => format!("FAILED attempt {}, will be retried", p.attempt),
        };
        let _ = writeln!(
            out,
            "  notice {} for {} (deadline {}) by {}: {what}{}",
            p.notice,
            p.step,
            p.deadline,
            p.channel,
            p.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let overdue: Vec<&str> = s.overdue().map(|x| x.id.as_str()).collect();
    let _ = writeln!(out, "Overdue: {}", if overdue.is_empty() { "none".to_string() } else { overdue.join(", ") });
    let upcoming: Vec<String> =
        s.upcoming().iter().take(3).map(|x| format!("{} {}", x.deadline.expect("filtered"), x.id)).collect();
    let _ = writeln!(
        out,
        "Next deadlines: {}\n",
        if upcoming.is_empty() { "none".to_string() } else { upcoming.join("; ") }
    );
    out
}
