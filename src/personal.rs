//! Personal data at the edge: which facts are sealed, with whose key,
//! before an append; opening them again for reports; `erase` and
//! `persons`. Decisions never see any of this: `workflows::decide` gets
//! plaintext, and what it returns is sealed here before it is appended.
//!
//! A person is who a personal fact is about: for a person fact, the name
//! within the instance's organisation (matched without regard to case and
//! spacing); for an e-mail, phone or other personal fact with `of = "F"`,
//! the person of the n-th value of person fact F of the same step; for
//! any other personal fact, nobody named (a key of its own).

use crate::cli::{By, Cli};
use crate::{open, Refused};
use anyhow::{bail, Result};
use engine::{
    Actor, AppendRequest, CommandId, EventStore, ExpectedVersion, Fact, FactValue, InstanceId, NewEvent, OpenMode,
    Payload, PersonId, RecordedEvent,
};
use projections::{Disclosure, LogView};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trust::KeyStore;
use workflows::definition::{FactSpec, FactType};
use workflows::Instance;

/// The key store of a command, opened when first needed.
pub struct Keys {
    dir: Option<PathBuf>,
    store: Mutex<Option<KeyStore>>,
}

/// Where the key store is: --keys, or `DIR.keys` next to the embedded
/// store's directory; none for JetStream without --keys.
pub fn key_dir(cli: &Cli, data: &Path) -> Option<PathBuf> {
    if let Some(k) = &cli.keys {
        return Some(k.clone());
    }
    if cli.nats.is_some() {
        return None;
    }
    let abs = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
    let name = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "styrlogg-data".into());
    Some(abs.with_file_name(format!("{name}.keys")))
}

impl Keys {
    pub fn for_cli(cli: &Cli) -> Keys {
        Keys::new(key_dir(cli, &cli.data))
    }

    pub fn new(dir: Option<PathBuf>) -> Keys {
        Keys { dir, store: Mutex::new(None) }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Runs `f` on the key store; `create` makes it if missing. None when
    /// there is no key store (and `create` is false).
    pub fn with<T>(&self, create: bool, f: impl FnOnce(&mut KeyStore) -> Result<T>) -> Result<Option<T>> {
        let mut guard = self.store.lock().expect("not poisoned");
        if guard.is_none() {
            let Some(dir) = &self.dir else {
                if create {
                    bail!(Refused(
                        "this records personal data, which needs a key store outside the log: give --keys DIR (STYRLOGG_KEYS)".into()
                    ));
                }
                return Ok(None);
            };
            if !create && !dir.join("persons").is_dir() {
                return Ok(None);
            }
            *guard = Some(KeyStore::open(dir, create)?);
        }
        f(guard.as_mut().expect("opened")).map(Some)
    }
}

/// The person of each sealed fact an event holds.
fn sealed_in(e: &engine::RecordedEvent) -> impl Iterator<Item = PersonId> + '_ {
    let facts = match &e.event.payload {
        Payload::StepRecorded { facts, .. } | Payload::StepCorrected { facts, .. } => facts.as_slice(),
        _ => &[],
    };
    facts.iter().filter_map(|f| match &f.value {
        FactValue::Sealed { person, .. } => Some(*person),
        _ => None,
    })
}

/// The persons whose facts `events` hold sealed, not erased in them, for
/// whom the key store has no key: after an import, their facts read as
/// "key missing" until the key store they were sealed with is brought.
pub fn keys_missing_for(keys: &Keys, events: &[engine::RecordedEvent]) -> Result<usize> {
    let mut sealed = std::collections::BTreeSet::new();
    let mut erased = std::collections::BTreeSet::new();
    for e in events {
        sealed.extend(sealed_in(e));
        if let Payload::PersonErased { person, .. } = &e.event.payload {
            erased.insert(*person);
        }
    }
    let mut missing = 0;
    for person in sealed.difference(&erased) {
        if keys.with(false, |ks| Ok(ks.get(person).is_some()))? != Some(true) {
            missing += 1;
        }
    }
    Ok(missing)
}

/// The fact specs of the step an event's facts belong to.
fn step_of<'a>(inst: &'a Instance, payload: &'a Payload) -> Option<&'a str> {
    match payload {
        Payload::StepRecorded { step, .. } => Some(step),
        Payload::StepCorrected { corrects, .. } => {
            inst.occurrences.iter().find(|o| o.event_id == *corrects).map(|o| o.step.as_str())
        }
        _ => None,
    }
}

fn specs<'a>(inst: &'a Instance, step: Option<&str>) -> &'a [FactSpec] {
    step.and_then(|s| inst.definition.step(s)).map(|s| s.facts.as_slice()).unwrap_or(&[])
}

fn is_personal(specs: &[FactSpec], name: &str) -> bool {
    specs.iter().any(|s| s.name == name && s.personal)
}

/// Whether a command would record personal data (its command id is then
/// keyed with the key store's secret).
pub fn touches_personal(inst: &Instance, cmd: &workflows::Command) -> bool {
    let (step, facts) = match cmd {
        workflows::Command::Record { step, facts, .. } => (Some(step.as_str()), facts),
        workflows::Command::Correct { event, facts, .. } => {
            (inst.occurrences.iter().find(|o| o.event_id == *event).map(|o| o.step.as_str()), facts)
        }
        _ => return false,
    };
    let specs = specs(inst, step);
    facts.iter().any(|(k, _)| is_personal(specs, k))
}

/// A command id keyed with the key store's secret.
pub fn keyed_command_id(keys: &Keys, instance: &InstanceId, what: &str) -> Result<CommandId> {
    let secret = keys.with(true, |ks| Ok(ks.command_secret()?))?.expect("created");
    let mut h = blake3::Hasher::new_keyed(&secret);
    h.update(b"styrlogg cli command v1\0");
    h.update(instance.as_str().as_bytes());
    h.update(b"\0");
    h.update(what.as_bytes());
    Ok(CommandId::new(format!("cli-p-{}", &h.finalize().to_hex()[..32])).expect("valid id"))
}

/// Seals every personal fact of `events` (decided on `inst`) with its
/// person's key, making keys as needed. Returns how many were sealed.
pub fn seal(keys: &Keys, inst: &Instance, events: &mut [NewEvent]) -> Result<usize> {
    let mut sealed = 0;
    for e in events.iter_mut() {
        let step = step_of(inst, &e.payload).map(String::from);
        let specs = specs(inst, step.as_deref());
        // The corrected occurrence's persons, for facts whose person is not
        // in the correction itself.
        let corrected_facts: Vec<Fact> = match &e.payload {
            Payload::StepCorrected { corrects, .. } => {
                inst.occurrences.iter().find(|o| o.event_id == *corrects).map(|o| o.facts.clone()).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let facts = match &mut e.payload {
            Payload::StepRecorded { facts, .. } | Payload::StepCorrected { facts, .. } => facts,
            _ => continue,
        };
        if !facts.iter().any(|f| is_personal(specs, &f.name)) {
            continue;
        }
        let plain = facts.clone();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for f in facts.iter_mut() {
            let n = seen.entry(f.name.to_string()).or_default();
            let index = *n;
            *n += 1;
            let Some(spec) = specs.iter().find(|s| s.name == f.name && s.personal) else { continue };
            let name: Option<String> = match (&f.value, &spec.of) {
                (FactValue::Person { name, .. }, _) => Some(name.to_string()),
                (v, _) if workflows::facts::named_person(v).is_some() => {
                    workflows::facts::named_person(v).map(String::from)
                }
                (_, Some(of)) => {
                    let nth = |list: &[Fact]| {
                        list.iter().filter(|g| g.name == *of).nth(index).and_then(|g| match &g.value {
                            FactValue::Person { name, .. } => Some(name.to_string()),
                            _ => None,
                        })
                    };
                    nth(&plain).or_else(|| nth(&corrected_facts))
                }
                _ => None,
            };
            debug_assert!(spec.ty != FactType::Person || name.is_some());
            let value = keys
                .with(true, |ks| {
                    let key = ks.key_for(&inst.organisation, name.as_deref())?;
                    Ok(key.seal(&f.name, &f.value)?)
                })?
                .expect("created");
            f.value = value;
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// Opens what can be opened: facts whose person has a key here and was not
/// erased. Others stay sealed (reports say why).
pub fn open_facts(ks: &KeyStore, erased: &BTreeSet<PersonId>, facts: &mut [Fact]) {
    for f in facts.iter_mut() {
        if let FactValue::Sealed { person, .. } = &f.value {
            if erased.contains(person) {
                if ks.get(person).is_some() {
                    tracing::warn!(
                        "person {person} is recorded as erased but their key is still in the key store; run `styrlogg erase {person}` again to destroy it"
                    );
                }
                continue;
            }
            match ks.open_value(&f.name, &f.value) {
                Ok(v) => f.value = v,
                Err(trust::SealError::NoKey(_)) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

fn facts_mut(p: &mut Payload) -> Option<&mut Vec<Fact>> {
    match p {
        Payload::StepRecorded { facts, .. } | Payload::StepCorrected { facts, .. } => Some(facts),
        _ => None,
    }
}

/// Opens the sealed facts of events (to decide on them).
pub fn open_events(keys: &Keys, events: &mut [RecordedEvent]) -> Result<()> {
    let sealed = events
        .iter()
        .any(|e| matches!(&e.event.payload, Payload::StepRecorded { facts, .. } | Payload::StepCorrected { facts, .. } if facts.iter().any(|f| matches!(f.value, FactValue::Sealed { .. }))));
    if !sealed {
        return Ok(());
    }
    keys.with(false, |ks| {
        for e in events.iter_mut() {
            if let Some(facts) = facts_mut(&mut e.event.payload) {
                open_facts(ks, &BTreeSet::new(), facts);
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Opens the sealed facts of one event, for showing it.
pub fn open_record(keys: &Keys, erased: &BTreeSet<PersonId>, e: &mut RecordedEvent) -> Result<()> {
    if let Some(facts) = facts_mut(&mut e.event.payload) {
        if facts.iter().any(|f| matches!(f.value, FactValue::Sealed { .. })) {
            keys.with(false, |ks| {
                open_facts(ks, erased, facts);
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Opens every sealed fact of a view that may be opened: the state folded
/// from the log stays sealed (and so does the projection checkpoint on
/// disk); only this copy in memory holds plaintext.
pub fn open_view(keys: &Keys, view: &mut LogView) -> Result<()> {
    let erased: BTreeSet<PersonId> = view.disclosure.erasures.keys().copied().collect();
    keys.with(false, |ks| {
        for v in view.instances.values_mut() {
            for o in &mut v.instance.occurrences {
                open_facts(ks, &erased, &mut o.facts);
            }
            for e in &mut v.events {
                if let Some(facts) = facts_mut(&mut e.event.payload) {
                    open_facts(ks, &erased, facts);
                }
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// The log's own events (signing keys, erasures).
pub async fn system_events(store: &impl EventStore) -> Result<Vec<RecordedEvent>> {
    Ok(store.read_instance(&InstanceId::system(), 1).await?)
}

/// What reports may show: the erasures recorded, and whether it is a
/// public extract.
pub async fn disclosure(store: &impl EventStore, public: bool) -> Result<Disclosure> {
    let mut d = Disclosure { public, ..Disclosure::default() };
    d.note_erasures(&system_events(store).await?);
    Ok(d)
}

/// Where a person's data is in the log: sealed facts (instance, step,
/// fact), and plaintext person facts with the same name in the same
/// organisation, which are kept as public records.
#[derive(Default)]
struct Traces {
    sealed: Vec<String>,
    kept: Vec<String>,
}

async fn traces(store: &impl EventStore, person: Option<&PersonId>, org: &str, name: Option<&str>) -> Result<Traces> {
    let mut t = Traces::default();
    let mut orgs: BTreeMap<InstanceId, String> = BTreeMap::new();
    let mut steps: BTreeMap<engine::EventId, String> = BTreeMap::new();
    let norm = name.map(trust::seal::normalise_name);
    let org_n = trust::seal::normalise_name(org);
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in &page {
            let b = &e.event;
            let (step, facts) = match &b.payload {
                Payload::InstanceStarted { organisation, .. } => {
                    orgs.insert(b.instance.clone(), organisation.clone());
                    continue;
                }
                Payload::StepRecorded { step, facts, .. } => {
                    steps.insert(b.event_id, step.to_string());
                    (step.to_string(), facts)
                }
                Payload::StepCorrected { corrects, facts, .. } => {
                    (steps.get(corrects).cloned().unwrap_or_default(), facts)
                }
                _ => continue,
            };
            for f in facts {
                let at = format!("{} {} {} (position {})", b.instance, step, f.name, b.position);
                match &f.value {
                    FactValue::Sealed { person: p, .. } if Some(p) == person => t.sealed.push(at),
                    FactValue::Person { name: n, .. }
                        if norm.as_deref() == Some(&trust::seal::normalise_name(n))
                            && orgs.get(&b.instance).map(|o| trust::seal::normalise_name(o)) == Some(org_n.clone()) =>
                    {
                        t.kept.push(at)
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(t)
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > SHOWN {
        s.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    s
}

/// `styrlogg erase PERSON`: records the erasure, then destroys the key.
pub async fn erase(
    cli: &Cli,
    who: &str,
    org: Option<&str>,
    reason: &str,
    decision: &str,
    dry_run: bool,
    by: &By,
) -> Result<()> {
    crate::flow::option(engine::event::check_reason("--reason", reason))?;
    crate::flow::option(engine::event::check_name("--decision", decision))?;
    crate::flow::known_role(cli, &by.role)?;
    let keys = Keys::for_cli(cli);
    let store = open(cli, OpenMode::MustExist).await?;
    let erased_before = disclosure(&store, false).await?.erasures;
    let by_id = PersonId::from_hex(who).ok();
    let found: Vec<trust::PersonKey> = keys
        .with(false, |ks| {
            Ok(ks
                .all()
                .filter(|k| match &by_id {
                    Some(id) => k.person == *id,
                    None => {
                        k.name.as_deref().map(trust::seal::normalise_name) == Some(trust::seal::normalise_name(who))
                            && org.is_none_or(|o| {
                                trust::seal::normalise_name(o) == trust::seal::normalise_name(&k.organisation)
                            })
                    }
                })
                .cloned()
                .collect())
        })?
        .unwrap_or_default();
    let key = match found.as_slice() {
        [k] => k.clone(),
        [] => {
            if let Some(e) = by_id.and_then(|id| erased_before.get(&id)) {
                println!("person {who} was already erased on {} (decision {}); nothing more to do", e.on, e.decision);
                store.close()?;
                return Ok(());
            }
            // Named only in public records, or not at all?
            let kept = match (by_id, org) {
                (None, Some(o)) => traces(&store, None, o, Some(who)).await?.kept,
                (None, None) => {
                    let mut all = Vec::new();
                    let orgs: BTreeSet<String> = crate::reports::view_of(&store)
                        .await?
                        .instances
                        .values()
                        .map(|v| v.instance.organisation.clone())
                        .collect();
                    for o in orgs {
                        all.extend(traces(&store, None, &o, Some(who)).await?.kept);
                    }
                    all
                }
                _ => Vec::new(),
            };
            store.close()?;
            if !kept.is_empty() {
                bail!(Refused(format!(
                    "{who} appears only in facts kept as public records, which are not erased (arkivlagen): {}; only facts a definition marks personal (personal = true, email, phone) can be removed",
                    list(&kept)
                )));
            }
            bail!(Refused(format!(
                "unknown person {who:?}: no key for them in the key store{}; `styrlogg persons` lists who has one, and the erasures by person id (an erased person's name went with their key, so it is not found by name)",
                keys.dir().map(|d| format!(" {}", d.display())).unwrap_or_default()
            )));
        }
        many => {
            store.close()?;
            bail!(Refused(format!(
                "{who:?} names {} persons: {}; give --org or the person id",
                many.len(),
                many.iter().map(|k| format!("{} ({})", k.person, k.organisation)).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let t = traces(&store, Some(&key.person), &key.organisation, key.name.as_deref()).await?;
    if dry_run {
        store.close()?;
        let who_text = key.name.as_deref().unwrap_or("(no name)");
        println!(
            "would erase person {} ({who_text}, {}): {} sealed fact(s) would be removed{}",
            key.person,
            key.organisation,
            t.sealed.len(),
            if t.sealed.is_empty() { String::new() } else { format!(": {}", list(&t.sealed)) }
        );
        if !t.kept.is_empty() {
            println!(
                "would stay as public records (arkivlagen): {} fact(s) naming {who_text}: {}",
                t.kept.len(),
                list(&t.kept)
            );
        }
        println!("dry run: nothing was erased or recorded");
        return Ok(());
    }
    let command_id = CommandId::new(format!("erase-{}", key.person.to_hex())).expect("valid id");
    let event = NewEvent {
        occurred_on: crate::flow::today(cli),
        actor: Actor::new(by.by.trim(), by.role.trim()),
        payload: Payload::PersonErased {
            person: key.person,
            reason: reason.to_string(),
            decision: decision.to_string(),
            facts: t.sealed.len() as u32,
        },
    };
    // Record first, then destroy: a crash in between leaves the erasure
    // recorded (reports already treat the data as removed) and running
    // erase again destroys the key.
    let outcome = store
        .append(AppendRequest {
            instance: InstanceId::system(),
            expected: ExpectedVersion::Any,
            command_id,
            events: vec![event],
        })
        .await?;
    keys.with(false, |ks| Ok(ks.destroy(&key.person)?))?;
    store.close()?;
    let who_text = key.name.clone().unwrap_or_else(|| "(no name)".into());
    println!(
        "erased person {} ({who_text}, {}): {} sealed fact(s) removed; the key is destroyed; recorded at position {}{}",
        key.person,
        key.organisation,
        t.sealed.len(),
        outcome.last_position,
        if outcome.deduplicated { " (already recorded)" } else { "" }
    );
    if !t.kept.is_empty() {
        println!(
            "kept as public records (arkivlagen), not removed: {} fact(s) naming {who_text}: {}",
            t.kept.len(),
            list(&t.kept)
        );
    }
    Ok(())
}

/// `styrlogg persons`: who has a key, and who was erased.
pub async fn persons(cli: &Cli, org: Option<&str>) -> Result<()> {
    let keys = Keys::for_cli(cli);
    let store = open(cli, OpenMode::MustExist).await?;
    let erased = disclosure(&store, false).await?.erasures;
    let mut counts: BTreeMap<PersonId, usize> = BTreeMap::new();
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in &page {
            for person in sealed_in(e) {
                *counts.entry(person).or_default() += 1;
            }
        }
    }
    store.close()?;
    let listed = keys
        .with(false, |ks| {
            let mut n = 0;
            for k in ks.all().filter(|k| org.is_none_or(|o| workflows::same_organisation(&k.organisation, o))) {
                n += 1;
                println!(
                    "{}  {:<28} {:<32} {} sealed fact(s)",
                    k.person,
                    k.name.as_deref().unwrap_or("(no name)"),
                    k.organisation,
                    counts.get(&k.person).copied().unwrap_or(0)
                );
            }
            Ok(n)
        })?
        .unwrap_or(0);
    if listed == 0 {
        println!("no persons in the key store{}", keys.dir().map(|d| format!(" {}", d.display())).unwrap_or_default());
    }
    for (id, e) in &erased {
        println!(
            "{id}  erased {} (decision {}): {} sealed fact(s) removed",
            e.on,
            e.decision,
            counts.get(id).copied().unwrap_or(0)
        );
    }
    let missing: Vec<_> = counts
        .keys()
        .filter(|id| {
            !erased.contains_key(id) && keys.with(false, |ks| Ok(ks.get(id).is_some())).ok().flatten() != Some(true)
        })
        .collect();
    if !missing.is_empty() {
        println!(
            "{} person(s) have sealed facts but no key here and no erasure recorded: this is not the key store they were sealed with",
            missing.len()
        );
    }
    Ok(())
}
