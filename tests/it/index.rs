//! The embedded store's index, written behind the commit: while sled lags
//! the log, every read and every decision of the writer is answered from
//! the in-memory overlay, and the hand-over from overlay to sled loses
//! nothing, also with readers racing it.

use crate::support::*;
use engine::embedded::FaultPlan;
use engine::{CommandId, EmbeddedStore, EventStore, ExpectedVersion, OpenMode};
use std::sync::Arc;

/// A new store whose index can be held back.
fn open_with_plan(dir: &std::path::Path) -> (EmbeddedStore, Arc<FaultPlan>) {
    let plan = FaultPlan::counting();
    let store = EmbeddedStore::open_with_faults(dir, OpenMode::CreateIfMissing, clock(), Some(plan.clone())).unwrap();
    (store, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_index_lags_the_overlay_answers_every_read_and_decision() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_with_plan(dir.path());
    store.append(req("a", ExpectedVersion::Exactly(0), "a-0", 2)).await.unwrap();
    store.check_files().unwrap();
    assert_eq!(store.index_backlog(), 0, "check_files waits for the index");
    plan.hold_index(true);
    let mut outcomes = Vec::new();
    for i in 1..=20 {
        let inst = if i % 2 == 0 { "a" } else { "b" };
        outcomes.push(store.append(req(inst, ExpectedVersion::Any, &format!("{inst}-{i}"), 1 + i % 3)).await.unwrap());
    }
    let head = store.head().await.unwrap();
    assert_eq!(store.index_backlog(), head.position - 2, "sled holds only what came before the hold");

    // Reads: by instance, in order, and by command.
    let a = store.read_instance(&instance("a"), 1).await.unwrap();
    let seqs: Vec<u64> = a.iter().map(|e| e.event.sequence).collect();
    assert_eq!(seqs, (1..=a.len() as u64).collect::<Vec<_>>());
    assert_eq!(a.len(), 2 + (1..=20).filter(|i| i % 2 == 0).map(|i| 1 + i % 3).sum::<usize>());
    let tail = store.read_instance(&instance("b"), 3).await.unwrap();
    assert_eq!(tail.first().map(|e| e.event.sequence), Some(3));
    let all = all_events(&store).await;
    assert_eq!(all.len() as u64, head.position);
    let o = store.command_outcome(&instance("b"), &CommandId::new("b-7").unwrap()).await.unwrap();
    assert_eq!(o.as_ref(), Some(&outcomes[6]));

    // Decisions: a repeated command is recognised, versions are exact.
    let again = store.append(req("b", ExpectedVersion::Any, "b-7", 2)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.last_position, outcomes[6].last_position);
    let b_version = store.read_instance(&instance("b"), 1).await.unwrap().len() as u64;
    let stale = store.append(req("b", ExpectedVersion::Exactly(b_version - 1), "b-stale", 1)).await;
    assert!(stale.is_err(), "a stale expected version is refused from the overlay");
    store.append(req("b", ExpectedVersion::Exactly(b_version), "b-next", 1)).await.unwrap();
    assert!(store.index_backlog() > 0, "all of this was answered with sled behind");

    // Released: sled catches up, and says exactly what the overlay said.
    plan.hold_index(false);
    let report = store.check_files().unwrap();
    assert_eq!(store.index_backlog(), 0);
    assert_eq!(report.events, store.head().await.unwrap().position);
    assert_eq!(store.read_instance(&instance("a"), 1).await.unwrap(), a);
    let o = store.command_outcome(&instance("b"), &CommandId::new("b-7").unwrap()).await.unwrap();
    assert_eq!(o.as_ref(), Some(&outcomes[6]));
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_writes_the_lagging_index_and_a_reopen_finds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_with_plan(dir.path());
    plan.hold_index(true);
    for i in 0..50 {
        store.append(req(&format!("i{}", i % 5), ExpectedVersion::Any, &format!("c{i}"), 2)).await.unwrap();
    }
    assert_eq!(store.index_backlog(), 100);
    store.close().unwrap();
    let store = EmbeddedStore::open(dir.path(), OpenMode::MustExist, clock()).unwrap();
    assert_eq!(store.check_files().unwrap().events, 100);
    assert_eq!(store.read_instance(&instance("i3"), 1).await.unwrap().len(), 20);
    let again = store.append(req("i3", ExpectedVersion::Any, "c3", 2)).await.unwrap();
    assert!(again.deduplicated);
    store.close().unwrap();
}

/// Writers append as fast as they can while readers read by instance, by
/// command and in order: every read sees a whole, contiguous history, no
/// shorter than what was acknowledged before it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_the_hand_over_from_overlay_to_sled_see_whole_histories() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), OpenMode::CreateIfMissing, clock()).unwrap();
    const WRITERS: usize = 8;
    const COMMANDS: u64 = 300;
    let acked: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..WRITERS).map(|_| std::sync::atomic::AtomicU64::new(0)).collect());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, acked) = (store.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..COMMANDS {
                let r = req(&format!("w{w}"), ExpectedVersion::Exactly(n), &format!("w{w}-{n}"), 1);
                store.append(r).await.unwrap();
                acked[w].store(n + 1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2usize {
        let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let (mut reads, mut lagging) = (0u64, 0u64);
            let mut w = r;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                w = (w + 1) % WRITERS;
                let known = acked[w].load(std::sync::atomic::Ordering::SeqCst);
                lagging += u64::from(store.index_backlog() > 0);
                let events = store.read_instance(&instance(&format!("w{w}")), 1).await.unwrap();
                assert!(events.len() as u64 >= known, "w{w}: {} events read, {known} acknowledged", events.len());
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(e.event.sequence, i as u64 + 1);
                    assert_eq!(e.event.command_id.as_str(), format!("w{w}-{i}"));
                }
                if known > 0 {
                    let cmd = CommandId::new(format!("w{w}-{}", known - 1)).unwrap();
                    let o = store.command_outcome(&instance(&format!("w{w}")), &cmd).await.unwrap();
                    assert_eq!(o.map(|o| o.last_sequence), Some(known), "w{w}: its last acknowledged command");
                }
                let head = store.head().await.unwrap().position;
                let from = head.saturating_sub(40).max(1);
                let page = store.read_all(from, 1000).await.unwrap();
                assert!(
                    page.len() as u64 + from > head,
                    "read_all from {from} reaches the head {head} it was asked at"
                );
                for (i, e) in page.iter().enumerate() {
                    assert_eq!(e.event.position, from + i as u64);
                }
                reads += 1;
                // The store's reads never wait: leave the workers to the writers now and then.
                tokio::task::yield_now().await;
            }
            (reads, lagging)
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut reads, mut lagging) = (0, 0);
    for r in readers {
        let (n, l) = r.await.unwrap();
        reads += n;
        lagging += l;
    }
    assert!(reads > 0);
    assert!(lagging > 0, "some reads ran while sled lagged the log ({reads} reads)");
    assert_eq!(store.check_files().unwrap().events, WRITERS as u64 * COMMANDS);
    store.close().unwrap();
}

/// After an open, the first lookup of a command id reads where every
/// stored command starts (by its id's hash) from the index's run entries
/// into memory: a repeat of a command from before the open is recognised,
/// through the log at that position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_before_an_open_are_recognised_once_the_ids_are_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), OpenMode::CreateIfMissing, clock()).unwrap();
    let mut before = Vec::new();
    for i in 0..200 {
        before
            .push(store.append(req(&format!("i{}", i % 7), ExpectedVersion::Any, &format!("c{i}"), 1)).await.unwrap());
    }
    store.close().unwrap();
    let store = EmbeddedStore::open(dir.path(), OpenMode::MustExist, clock()).unwrap();
    assert!(!store.knows_every_command_id(), "nothing is read before the first append");
    store.append(req("new", ExpectedVersion::Any, "first-after-open", 1)).await.unwrap();
    let started = std::time::Instant::now();
    while !store.knows_every_command_id() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the ids are read");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let head = store.head().await.unwrap();
    for (i, o) in before.iter().enumerate() {
        let again = store.append(req(&format!("i{}", i % 7), ExpectedVersion::Any, &format!("c{i}"), 1)).await.unwrap();
        assert!(again.deduplicated, "c{i} is recognised");
        assert_eq!(again.last_position, o.last_position);
    }
    let again = store.append(req("new", ExpectedVersion::Any, "first-after-open", 1)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(store.head().await.unwrap(), head, "nothing was appended twice");
    store.append(req("new", ExpectedVersion::Any, "second-after-open", 1)).await.unwrap();
    store.close().unwrap();
}

/// The index keeps one entry per run of an instance's commands in an
/// indexer batch, not one per command: the 1 000 commands of four
/// instances written while the indexer is held, so that it takes them in
/// one batch, are four keys; every read and duplicate check still finds
/// each command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_s_commands_share_run_entries_and_each_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_with_plan(dir.path());
    plan.hold_index(true);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                store
                    .append(req(&format!("run{w}"), ExpectedVersion::Any, &format!("run{w}-{i}"), 1 + i % 3))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    plan.hold_index(false);
    store.check_files().unwrap();
    store.close().unwrap();
    let db = sled::open(dir.path().join("index")).unwrap();
    let runs = db.scan_prefix(b"S").count();
    assert_eq!(runs, 4, "run entries for 1 000 commands of 4 instances");
    drop(db);
    let store = EmbeddedStore::open(dir.path(), OpenMode::MustExist, clock()).unwrap();
    for w in 0..4 {
        let events = store.read_instance(&instance(&format!("run{w}")), 1).await.unwrap();
        assert_eq!(events.len(), (0..250).map(|i| 1 + i % 3).sum::<usize>());
        assert!(events.iter().enumerate().all(|(i, e)| e.event.sequence == i as u64 + 1));
        for i in [0, 137, 249] {
            let again = store
                .append(req(&format!("run{w}"), ExpectedVersion::Any, &format!("run{w}-{i}"), 1 + i % 3))
                .await
                .unwrap();
            assert!(again.deduplicated, "run{w}-{i} is recognised");
            let first = &events.iter().find(|e| e.event.command_id.as_str() == format!("run{w}-{i}")).unwrap().event;
            assert_eq!((again.first_sequence, again.first_position), (first.sequence, first.position));
        }
    }
    store.check_files().unwrap();
    store.close().unwrap();
}

/// An index of the older layout (an entry per command and per command id)
/// is built again from the log on open: it is derived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_the_older_layout_is_built_again_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), OpenMode::CreateIfMissing, clock()).unwrap();
    for i in 0..50 {
        store.append(req(&format!("old{}", i % 3), ExpectedVersion::Any, &format!("old-{i}"), 1)).await.unwrap();
    }
    let head = store.head().await.unwrap();
    store.close().unwrap();
    let db = sled::open(dir.path().join("index")).unwrap();
    db.insert(b"M", &b"styrlogg index 1"[..]).unwrap();
    db.insert(b"Cold-7", &b"an entry of the older layout"[..]).unwrap();
    db.flush().unwrap();
    drop(db);
    let store = EmbeddedStore::open(dir.path(), OpenMode::MustExist, clock()).unwrap();
    assert_eq!(store.check_files().unwrap().events, head.position, "nothing of the older layout is left");
    let again = store.append(req("old1", ExpectedVersion::Any, "old-7", 1)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(store.head().await.unwrap(), head);
    store.close().unwrap();
}
