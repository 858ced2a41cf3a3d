//! Projection checkpoints: the folded state of every instance at a log
//! position, so reports start from there instead of replaying the whole
//! log. A checkpoint is a cache: it names the position and hash it was
//! built at, the caller checks that the log still has that hash there, and
//! anything wrong with it means rebuilding from the log, never a wrong
//! answer. Events are not kept (the audit trail reads them from the log).
//!
//! Two kinds are kept apart. The full checkpoint holds every occurrence
//! with its facts, for the reports that show facts. The status checkpoint
//! leaves the facts out: `status` shows none, and decoding them was most of
//! what `status` of every instance cost on a long log.

use crate::view::{InstanceView, LogView};
use engine::{DeadlineChange, Hash, InstanceId};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use workflows::instance::{NoticeState, Occurrence};
use workflows::{Definition, Instance};

/// Bumped whenever the layout below changes, or what a fold derives does
/// (6: a waived yearly deadline is passed over, so the deadline a later
/// change applies to is another); an old checkpoint is rebuilt.
const CHECKPOINT_FORMAT: u8 = 6;

/// What a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every occurrence with its facts.
    Full,
    /// Every occurrence without its facts: for `status` only.
    Status,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Full => 0,
            Kind::Status => 1,
        }
    }

    /// Its file name (with a suffix for one log among several).
    pub fn file_name(self, suffix: &str) -> String {
        match self {
            Kind::Full => format!("checkpoint{suffix}.bin"),
            Kind::Status => format!("status{suffix}.bin"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    id: InstanceId,
    definition: Hash,
    organisation: String,
    title: String,
    case_number: Option<String>,
    #[serde(with = "engine::event::date_format")]
    started_on: Date,
    version: u64,
    occurrences: Vec<Occurrence>,
    deadline_changes: Vec<(String, DeadlineChange, u64)>,
    notices: Vec<((String, String), NoticeState)>,
    missed: Vec<(String, engine::event::SerdeDate)>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    head_position: u64,
    head_hash: Hash,
    /// Each distinct definition's source once, by hash.
    definitions: Vec<(Hash, String)>,
    instances: Vec<Snapshot>,
}

/// The checkpoint of a view that was folded without `as_of`.
pub fn encode(view: &LogView, kind: Kind) -> Vec<u8> {
    assert!(view.as_of.is_none(), "only views of the whole log are checkpointed");
    let mut definitions: BTreeMap<Hash, String> = BTreeMap::new();
    let instances = view
        .instances
        .values()
        .map(|v| {
            let i = &v.instance;
            definitions.entry(i.definition.hash).or_insert_with(|| i.definition.source.clone());
            Snapshot {
                id: i.id.clone(),
                definition: i.definition.hash,
                organisation: i.organisation.clone(),
                title: i.title.clone(),
                case_number: i.case_number.clone(),
                started_on: i.started_on,
                version: i.version,
                occurrences: match kind {
                    Kind::Full => i.occurrences.clone(),
                    Kind::Status => i
                        .occurrences
                        .iter()
                        .map(|o| Occurrence {
                            event_id: o.event_id,
                            position: o.position,
                            step: o.step.clone(),
                            occurred_on: o.occurred_on,
                            // Only what `status` reads: the year a yearly
                            // deadline's recording is for.
                            facts: if i.definition.year_fact_steps.iter().any(|s| *s == o.step) {
                                o.facts.clone()
                            } else {
                                Vec::new()
                            },
                            deviation: o.deviation.clone(),
                            late: o.late,
                            corrections: o.corrections,
                            recorded_at: o.recorded_at,
                            corrected_at: o.corrected_at,
                        })
                        .collect(),
                },
                deadline_changes: i.deadline_changes.iter().map(|(s, c, n)| (s.clone(), *c, *n as u64)).collect(),
                notices: i.notices.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                missed: i.missed.iter().map(|(s, d)| (s.clone(), engine::event::SerdeDate(*d))).collect(),
            }
        })
        .collect();
    let cp = Checkpoint {
        head_position: view.head_position,
        head_hash: view.head_hash,
        definitions: definitions.into_iter().collect(),
        instances,
    };
    let mut out = vec![CHECKPOINT_FORMAT, kind.tag()];
    postcard::to_io(&cp, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Restores a view (without events) from a checkpoint of this kind. A
/// status checkpoint's view has no facts: it answers `status` only.
pub fn decode(bytes: &[u8], kind: Kind) -> Result<LogView, String> {
    match bytes {
        [CHECKPOINT_FORMAT, tag, ..] if *tag == kind.tag() => {}
        [CHECKPOINT_FORMAT, tag, ..] => return Err(format!("checkpoint of kind {tag}, expected {}", kind.tag())),
        [v, ..] => return Err(format!("checkpoint format {v}, this build writes {CHECKPOINT_FORMAT}")),
        [] => return Err("empty checkpoint".into()),
    }
    let cp: Checkpoint = postcard::from_bytes(&bytes[2..]).map_err(|e| format!("checkpoint does not decode: {e}"))?;
    let mut definitions = BTreeMap::new();
    for (hash, source) in cp.definitions {
        let def = Definition::parse_shared(&source)
            .map_err(|p| format!("a checkpointed definition does not validate: {p:?}"))?;
        if def.hash != hash {
            return Err("a checkpointed definition does not match its hash".into());
        }
        definitions.insert(hash, def);
    }
    let mut view = LogView::new(None);
    view.head_position = cp.head_position;
    view.head_hash = cp.head_hash;
    for s in cp.instances {
        let definition =
            definitions.get(&s.definition).ok_or("a checkpointed instance names an unknown definition")?.clone();
        let instance = Instance {
            id: s.id.clone(),
            definition,
            organisation: s.organisation,
            title: s.title,
            case_number: s.case_number,
            started_on: s.started_on,
            version: s.version,
            occurrences: s.occurrences,
            deadline_changes: s.deadline_changes.into_iter().map(|(a, c, n)| (a, c, n as usize)).collect(),
            notices: s.notices.into_iter().collect(),
            missed: s.missed.into_iter().map(|(a, d)| (a, d.0)).collect(),
        };
        view.instances.insert(s.id, InstanceView { instance, events: Vec::new() });
    }
    view.events_kept = false;
    view.facts_needed = kind == Kind::Full;
    Ok(view)
}
