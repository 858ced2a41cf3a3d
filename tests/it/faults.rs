//! I/O faults: every storage operation of a workload (appends single and
//! batched, one filling a segment so a new one is made, concurrent appends,
//! reads, close) is made to fail in turn. The store never acknowledges what
//! was not stored, never panics, says what failed, and reopens cleanly to
//! a log that holds every acknowledged command exactly once.

use crate::support::*;
use engine::embedded::FaultPlan;
use engine::{
    Actor, AppendRequest, ChainVerifier, CommandId, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, OpenMode,
    Payload,
};
use std::collections::HashMap;
use std::sync::Arc;

/// An event with a 15 KiB note, so a few appends fill the first segment.
fn big(i: usize) -> NewEvent {
    NewEvent {
        occurred_on: jiff::civil::date(2012, 8, 14),
        actor: Actor::new("Lena Sandqvist", "sekreterare"),
        payload: Payload::NoteAdded { text: format!("{i} ") + &"å".repeat(7_500) },
    }
}

/// The workload; returns the commands it saw acknowledged (with their
/// event counts) and the errors it was given.
async fn workload(dir: &std::path::Path, faults: Option<Arc<FaultPlan>>) -> (HashMap<String, u64>, Vec<String>) {
    let mut acked = HashMap::new();
    let mut errors = Vec::new();
    let store = match EmbeddedStore::open_with_faults(dir, OpenMode::CreateIfMissing, clock(), faults) {
        Ok(s) => s,
        Err(e) => return (acked, vec![e.to_string()]),
    };
    let mut requests: Vec<AppendRequest> = Vec::new();
    for i in 0..6 {
        requests.push(req(&format!("i{}", i % 2), ExpectedVersion::Any, &format!("small-{i}"), 1 + i % 3));
    }
    for i in 0..9 {
        requests.push(AppendRequest {
            instance: instance("big"),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new(format!("big-{i}")).unwrap(),
            events: (0..8).map(|k| big(i * 8 + k)).collect(),
        });
    }
    for r in requests {
        let (cmd, n) = (r.command_id.to_string(), r.events.len() as u64);
        match store.append(r).await {
            Ok(_) => {
                acked.insert(cmd, n);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // Concurrent appends sharing group commits.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = format!("conc-{w}");
            (cmd.clone(), s.append(req(&format!("w{w}"), ExpectedVersion::Any, &cmd, 2)).await)
        }));
    }
    for t in tasks {
        match t.await.expect("no task panics") {
            (cmd, Ok(_)) => {
                acked.insert(cmd, 2);
            }
            (_, Err(e)) => errors.push(e.to_string()),
        }
    }
    // Reads fail cleanly too.
    if let Err(e) = store.read_all(1, 1000).await {
        errors.push(e.to_string());
    }
    if let Err(e) = store.read_instance(&instance("big"), 1).await {
        errors.push(e.to_string());
    }
    if let Err(e) = store.command_outcome(&instance("i0"), &CommandId::new("small-0").unwrap()).await {
        errors.push(e.to_string());
    }
    if let Err(e) = store.close() {
        errors.push(e.to_string());
    }
    (acked, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_storage_operation_failing_in_turn_loses_nothing_acknowledged() {
    let plan = FaultPlan::counting();
    let dir = tempfile::tempdir().unwrap();
    let (all, errors) = workload(&dir.path().join("s"), Some(plan.clone())).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(all.len(), 19);
    let operations = plan.operations();
    assert!(operations > 40, "the workload exercises the store ({operations} operations)");
    let mut failed_appends = 0;
    for n in 1..=operations {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let plan = FaultPlan::fail_at(n);
        let (acked, errors) = workload(&path, Some(plan.clone())).await;
        // Concurrent appends group differently from run to run, so a run
        // may do a few operations fewer than the counting one.
        if plan.operations() >= n {
            assert!(
                errors.iter().any(|e| e.contains("injected fault")),
                "operation {n}: the failure is reported and says what failed: {errors:?}"
            );
        }
        assert!(!errors.iter().any(|e| e.contains("panicked")), "operation {n}: {errors:?}");
        failed_appends += all.len() - acked.len();
        // Reopened without faults: clean, and every acknowledged command is
        // there once and whole; what is there beyond that is whole too.
        let store = match EmbeddedStore::open(&path, OpenMode::MustExist, clock()) {
            Ok(s) => s,
            Err(engine::StoreError::NotFound { .. }) if acked.is_empty() => continue,
            Err(e) => panic!("operation {n}: reopening after the failure: {e}"),
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut chain = ChainVerifier::new();
        for e in all_events(&store).await {
            chain.check(&e).unwrap_or_else(|b| panic!("operation {n}: {b}"));
            *seen.entry(e.event.command_id.to_string()).or_default() += 1;
        }
        for (cmd, count) in &acked {
            assert_eq!(seen.get(cmd), Some(count), "operation {n}: acknowledged {cmd} is there, whole, once");
        }
        for (cmd, count) in &seen {
            assert_eq!(all.get(cmd), Some(count), "operation {n}: {cmd} is whole");
        }
        store.check_files().unwrap_or_else(|e| panic!("operation {n}: {e}"));
        // And it takes appends again.
        store.append(req("after", ExpectedVersion::Any, "after-reopen", 1)).await.unwrap();
        store.close().unwrap();
    }
    assert!(failed_appends > 0, "some failures did refuse appends");
    eprintln!("{operations} storage operations failed in turn; {failed_appends} appends refused in all; nothing acknowledged was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_its_reason_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let plan = FaultPlan::counting();
    let store = EmbeddedStore::open_with_faults(&path, OpenMode::CreateIfMissing, clock(), Some(plan.clone())).unwrap();
    for i in 0..5 {
        store.append(req(&format!("i{}", i % 2), ExpectedVersion::Any, &format!("before-{i}"), 2)).await.unwrap();
    }
    plan.fill_disk();
    // A small append (room in the segment) and a batch that needs a new
    // segment: both refused, each saying the disk is full.
    let small = store.append(req("i0", ExpectedVersion::Any, "when-full-1", 1)).await.unwrap_err().to_string();
    assert!(small.contains("No space left on device"), "{small}");
    let batch = AppendRequest {
        instance: instance("big"),
        expected: ExpectedVersion::Any,
        command_id: CommandId::new("when-full-2").unwrap(),
        events: (0..80).map(big).collect(),
    };
    let batch = store.append(batch).await.unwrap_err().to_string();
    assert!(batch.contains("No space left on device"), "{batch}");
    // What was acknowledged can still be read while the disk is full.
    let events = all_events(&store).await;
    assert_eq!(events.len(), 10);
    if let Err(e) = store.close() {
        assert!(e.to_string().contains("No space left on device"), "{e}");
    }
    // Space freed, reopened: everything acknowledged, nothing refused, and
    // appends again.
    let store = EmbeddedStore::open(&path, OpenMode::MustExist, clock()).unwrap();
    let mut chain = ChainVerifier::new();
    let events = all_events(&store).await;
    for e in &events {
        chain.check(e).unwrap();
    }
    let commands: Vec<String> = events.iter().map(|e| e.event.command_id.to_string()).collect();
    for i in 0..5 {
        assert_eq!(commands.iter().filter(|c| **c == format!("before-{i}")).count(), 2);
    }
    assert!(!commands.iter().any(|c| c.starts_with("when-full")), "the refused appends are not there: {commands:?}");
    store.check_files().unwrap();
    store.append(req("after", ExpectedVersion::Any, "after-space-freed", 1)).await.unwrap();
    store.close().unwrap();
}
