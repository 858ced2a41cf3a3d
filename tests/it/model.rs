//! Property test: random appends (with stale and correct expected
//! versions, repeated and reused command ids, batches) give the same
//! results on every backend as on a simple model of the log.

use crate::support::*;
use engine::{AppendError, AppendOutcome, EventStore, ExpectedVersion};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    NoStream,
    Current,
    Stale,
}

#[derive(Debug, Clone)]
struct Op {
    instance: u8,
    expect: Expect,
    command: u8,
    events: usize,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..3,
        prop_oneof![Just(Expect::Any), Just(Expect::NoStream), Just(Expect::Current), Just(Expect::Stale)],
        0u8..16,
        1usize..4,
    )
        .prop_map(|(instance, expect, command, events)| Op { instance, expect, command, events })
}

#[derive(Debug, PartialEq)]
enum Result_ {
    Written(AppendOutcome),
    Duplicate(AppendOutcome),
    Conflict(u64),
    Reused,
}

#[derive(Default)]
struct Model {
    versions: HashMap<u8, u64>,
    commands: HashMap<u8, (u8, usize, AppendOutcome)>,
    /// (instance, command, sequence) per position.
    log: Vec<(u8, u8, u64)>,
}

impl Model {
    fn apply(&mut self, op: &Op, store_hash: impl FnOnce() -> engine::Hash) -> Result_ {
        if let Some((inst, n, outcome)) = self.commands.get(&op.command) {
            return if *inst == op.instance && *n == op.events {
                Result_::Duplicate(AppendOutcome { deduplicated: true, ..outcome.clone() })
            } else {
                Result_::Reused
            };
        }
        let version = self.versions.get(&op.instance).copied().unwrap_or(0);
        let ok = match op.expect {
            Expect::Any | Expect::Current => true,
            Expect::NoStream => version == 0,
            Expect::Stale => false,
        };
        if !ok {
            return Result_::Conflict(version);
        }
        let first_position = self.log.len() as u64 + 1;
        for i in 0..op.events as u64 {
            self.log.push((op.instance, op.command, version + 1 + i));
        }
        let outcome = AppendOutcome {
            instance: instance(&format!("i{}", op.instance)),
            first_sequence: version + 1,
            last_sequence: version + op.events as u64,
            first_position,
            last_position: self.log.len() as u64,
            last_hash: store_hash(),
            deduplicated: false,
        };
        self.versions.insert(op.instance, outcome.last_sequence);
        self.commands.insert(op.command, (op.instance, op.events, outcome.clone()));
        Result_::Written(outcome)
    }
}

async fn check(store: impl EventStore, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for op in &ops {
        let version = model.versions.get(&op.instance).copied().unwrap_or(0);
        let expected = match op.expect {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::Current => ExpectedVersion::Exactly(version),
            Expect::Stale => ExpectedVersion::Exactly(version + 1),
        };
        let got =
            store.append(req(&format!("i{}", op.instance), expected, &format!("c{}", op.command), op.events)).await;
        let got = match got {
            Ok(o) if o.deduplicated => Result_::Duplicate(o),
            Ok(o) => Result_::Written(o),
            Err(AppendError::Conflict { actual, .. }) => Result_::Conflict(actual),
            Err(AppendError::CommandIdReused { .. }) => Result_::Reused,
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other}"))),
        };
        let hash = match &got {
            Result_::Written(o) => o.last_hash,
            _ => engine::Hash::default(),
        };
        let want = model.apply(op, || hash);
        prop_assert_eq!(got, want, "op {:?}", op);
    }
    let events = all_events(&store).await;
    let actual: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| (e.event.instance.to_string(), e.event.command_id.to_string(), e.event.sequence))
        .collect();
    let expected: Vec<(String, String, u64)> =
        model.log.iter().map(|(i, c, s)| (format!("i{i}"), format!("c{c}"), *s)).collect();
    prop_assert_eq!(actual, expected);
    verify(&store).await;
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let store = Memory::new().open();
        runtime().block_on(check(store, ops))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn sled_store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut backend = Sled::new();
        let rt = runtime();
        let store = rt.block_on(async { backend.open() });
        rt.block_on(check(store.clone(), ops))?;
        store.close().unwrap();
    }
}
