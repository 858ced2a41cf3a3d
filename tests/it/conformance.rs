//! The storage conformance suite: every backend must pass every case.
//! A new backend adds one line to `backends!` below.

use crate::support::*;
use engine::{AppendError, EventStore, ExpectedVersion, Head, Payload};
use std::collections::HashSet;

pub async fn ordering(mut b: impl Backend) {
    let s = b.open();
    for i in 0..5 {
        s.append(req("a", ExpectedVersion::Any, &format!("a{i}"), 1)).await.unwrap();
        s.append(req("b", ExpectedVersion::Any, &format!("b{i}"), 2)).await.unwrap();
    }
    let all = all_events(&s).await;
    assert_eq!(all.len(), 15);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.event.position, i as u64 + 1, "positions contiguous from 1");
    }
    let a = s.read_instance(&instance("a"), 1).await.unwrap();
    assert_eq!(a.iter().map(|e| e.event.sequence).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(a.iter().all(|e| e.event.instance.as_str() == "a"));
    let b_tail = s.read_instance(&instance("b"), 8).await.unwrap();
    assert_eq!(b_tail.iter().map(|e| e.event.sequence).collect::<Vec<_>>(), vec![8, 9, 10]);
    let page = s.read_all(4, 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.event.position).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(s.read_all(16, 10).await.unwrap().is_empty());
    assert!(s.read_instance(&instance("nobody"), 1).await.unwrap().is_empty());
    assert_eq!(verify(&s).await, 15);
    b.close(s);
}

pub async fn atomic_batches(mut b: impl Backend) {
    let s = b.open();
    let out = s.append(req("a", ExpectedVersion::NoStream, "batch", 3)).await.unwrap();
    assert_eq!((out.first_sequence, out.last_sequence), (1, 3));
    assert_eq!((out.first_position, out.last_position), (1, 3));
    assert!(!out.deduplicated);
    let ids: HashSet<_> = all_events(&s).await.iter().map(|e| e.event.event_id).collect();
    assert_eq!(ids.len(), 3, "each event has its own id");

    // One bad event in a batch: nothing of the batch is written.
    let head = s.head().await.unwrap();
    let mut bad = req("a", ExpectedVersion::Exactly(3), "bad-batch", 3);
    bad.events[1].payload = Payload::NoteAdded { text: "bell \u{7}".into() };
    let err = s.append(bad).await.unwrap_err();
    assert!(matches!(err, AppendError::Invalid(ref m) if m.contains("event 2") && m.contains("U+0007")), "{err}");
    let too_many = req("a", ExpectedVersion::Any, "too-many", engine::limits::EVENTS_PER_COMMIT_MAX + 1);
    assert!(matches!(s.append(too_many).await.unwrap_err(), AppendError::Invalid(_)));
    assert!(matches!(s.append(req("a", ExpectedVersion::Any, "empty", 0)).await.unwrap_err(), AppendError::Invalid(_)));
    assert_eq!(s.head().await.unwrap(), head, "rejected appends write nothing");
    // The rejected command ids stay free for a corrected retry.
    s.append(req("a", ExpectedVersion::Exactly(3), "bad-batch", 3)).await.unwrap();
    assert_eq!(verify(&s).await, 6);
    b.close(s);
}

pub async fn conflicts(mut b: impl Backend) {
    let s = b.open();
    s.append(req("a", ExpectedVersion::NoStream, "first", 2)).await.unwrap();
    let head = s.head().await.unwrap();
    match s.append(req("a", ExpectedVersion::NoStream, "again", 1)).await.unwrap_err() {
        AppendError::Conflict { actual, .. } => assert_eq!(actual, 2),
        other => panic!("expected a conflict, got {other}"),
    }
    match s.append(req("a", ExpectedVersion::Exactly(1), "stale", 1)).await.unwrap_err() {
        AppendError::Conflict { expected, actual, .. } => {
            assert_eq!(expected, ExpectedVersion::Exactly(1));
            assert_eq!(actual, 2);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(s.head().await.unwrap(), head, "conflicts write nothing");

    // Racing writers on one expected version: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.append(req("a", ExpectedVersion::Exactly(2), &format!("race{i}"), 1)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(AppendError::Conflict { actual: 3, .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(verify(&s).await, 3);
    b.close(s);
}

pub async fn idempotency(mut b: impl Backend) {
    let s = b.open();
    let first = s.append(req("a", ExpectedVersion::NoStream, "cmd-1", 2)).await.unwrap();
    let head = s.head().await.unwrap();
    // A retry, even with an expected version that no longer holds, returns the original.
    let again = s.append(req("a", ExpectedVersion::NoStream, "cmd-1", 2)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again, engine::AppendOutcome { deduplicated: true, ..first.clone() });
    assert_eq!(s.head().await.unwrap(), head, "a retry writes nothing");
    // The same id for something else is refused.
    let err = s.append(req("b", ExpectedVersion::Any, "cmd-1", 2)).await.unwrap_err();
    assert!(matches!(err, AppendError::CommandIdReused { .. }), "{err}");

    // The same command sent by many tasks at once is written once.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.append(req("c", ExpectedVersion::Any, "cmd-2", 3)).await.unwrap() }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| !o.deduplicated).count(), 1);
    assert!(outcomes.iter().all(|o| o.first_position == outcomes[0].first_position));
    assert_eq!(verify(&s).await, 5);
    b.close(s);
}

/// Under concurrent writers, every answer (new, duplicate or conflict)
/// describes what a read made right after it finds: nothing is answered
/// before it is stored and visible.
pub async fn answers_are_readable_at_once(mut b: impl Backend) {
    let s = b.open();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let inst = format!("w{w}");
            let mut version = 0u64;
            for i in 0..20 {
                let cmd = format!("w{w}-{i}");
                let out = s.append(req(&inst, ExpectedVersion::Exactly(version), &cmd, 1 + i % 3)).await.unwrap();
                assert!(!out.deduplicated);
                assert_eq!(out.first_sequence, version + 1);
                let read = s.read_instance(&instance(&inst), out.first_sequence).await.unwrap();
                assert_eq!(
                    read.len() as u64,
                    out.last_sequence - out.first_sequence + 1,
                    "{cmd} is readable once answered"
                );
                assert_eq!(read[0].event.position, out.first_position);
                assert_eq!(read.last().unwrap().hash, out.last_hash);
                assert!(s.head().await.unwrap().position >= out.last_position);
                // Sent again at once: the same outcome, as a duplicate.
                let again = s.append(req(&inst, ExpectedVersion::Exactly(version), &cmd, 1 + i % 3)).await.unwrap();
                assert_eq!(again, engine::AppendOutcome { deduplicated: true, ..out.clone() });
                // A stale expectation is refused with the version just written.
                let stale = s.append(req(&inst, ExpectedVersion::Exactly(version), &format!("{cmd}-x"), 1)).await;
                match stale {
                    Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, out.last_sequence),
                    other => panic!("expected a conflict, got {other:?}"),
                }
                version = out.last_sequence;
            }
            version
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // Per writer: seven commands of 1 event, seven of 2, six of 3.
    assert_eq!(total, 16 * (7 + 7 * 2 + 6 * 3));
    assert_eq!(verify(&s).await, total);
    b.close(s);
}

pub async fn subscription(mut b: impl Backend) {
    let s = b.open();
    for i in 0..5 {
        s.append(req("a", ExpectedVersion::Any, &format!("before{i}"), 1)).await.unwrap();
    }
    let mut sub = s.subscribe(1);
    let mut late = s.subscribe(4);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                s.append(req("b", ExpectedVersion::Any, &format!("after{i}"), 2)).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 45 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next())
            .await
            .expect("subscription delivers within 20 s")
            .expect("subscription open")
            .unwrap();
        seen.push(e.event.position);
    }
    assert_eq!(seen, (1..=45).collect::<Vec<_>>(), "catch-up then live, in order, no gaps or repeats");
    let first_late = late.next().await.unwrap().unwrap();
    assert_eq!(first_late.event.position, 4);
    writer.await.unwrap();
    b.close(s);
}

pub async fn reopen(mut b: impl Backend) {
    let s = b.open();
    for i in 0..10 {
        s.append(req(&format!("i{}", i % 3), ExpectedVersion::Any, &format!("r{i}"), 1 + i % 2)).await.unwrap();
    }
    let before = all_events(&s).await;
    let head = s.head().await.unwrap();
    b.close(s);
    let s = b.open();
    assert_eq!(s.head().await.unwrap(), head);
    assert_eq!(all_events(&s).await, before);
    // Versions and command ids survive the reopen.
    let again = s.append(req("i0", ExpectedVersion::Any, "r0", 1)).await.unwrap();
    assert!(again.deduplicated);
    let v = s.read_instance(&instance("i0"), 1).await.unwrap().len() as u64;
    s.append(req("i0", ExpectedVersion::Exactly(v), "after-reopen", 1)).await.unwrap();
    verify(&s).await;
    b.close(s);
}

pub async fn import_keeps_hashes(mut b: impl Backend) {
    let s = b.open();
    for i in 0..30 {
        s.append(req(&format!("i{}", i % 4), ExpectedVersion::Any, &format!("x{i}"), 1 + i % 3)).await.unwrap();
    }
    let events = all_events(&s).await;
    let target = b.fresh();
    let mut tampered = events.clone();
    tampered[7].event.occurred_on = jiff::civil::date(2012, 8, 15);
    let err = target.import(tampered).await.unwrap_err();
    assert!(matches!(err, AppendError::Invalid(ref m) if m.contains("position 8")), "{err}");
    assert_eq!(target.head().await.unwrap(), Head::default(), "a refused import writes nothing");
    for chunk in engine::import_chunks(events.clone()) {
        target.import(chunk).await.unwrap();
    }
    assert_eq!(all_events(&target).await, events);
    assert_eq!(target.head().await.unwrap(), s.head().await.unwrap());
    // Command ids came along: a retry of an imported command is recognised.
    assert!(target.append(req("i0", ExpectedVersion::Any, "x0", 1)).await.unwrap().deduplicated);
    verify(&target).await;
    b.close(s);
}

pub async fn recorded_at_from_clock(mut b: impl Backend, clock: std::sync::Arc<engine::ManualClock>) {
    let s = b.open();
    s.append(req("a", ExpectedVersion::Any, "t1", 1)).await.unwrap();
    clock.advance(jiff::SignedDuration::from_hours(-24));
    s.append(req("a", ExpectedVersion::Any, "t2", 1)).await.unwrap();
    clock.advance(jiff::SignedDuration::from_hours(48));
    s.append(req("a", ExpectedVersion::Any, "t3", 1)).await.unwrap();
    let at: Vec<_> = all_events(&s).await.iter().map(|e| e.event.recorded_at.to_string()).collect();
    assert_eq!(
        at,
        vec!["2012-08-14T09:00:00Z", "2012-08-14T09:00:00Z", "2012-08-15T09:00:00Z"],
        "recorded_at comes from the clock and never goes back along the log"
    );
    b.close(s);
}

/// The public fields of an event's view, to compare.
pub fn view_fields(e: &engine::EventRef<'_>) -> String {
    format!(
        "{} {} {} {} {} {} {} {:?}",
        e.event_id, e.instance, e.sequence, e.position, e.occurred_on, e.recorded_at, e.hash, e.step
    )
}

/// How many kinds of fact value the recorded steps among `events` carry.
pub fn fact_kinds_in_steps(events: &[engine::RecordedEvent]) -> usize {
    let kinds: HashSet<_> = events
        .iter()
        .filter_map(|e| match &e.event.payload {
            Payload::StepRecorded { facts, .. } => Some(facts),
            _ => None,
        })
        .flatten()
        .map(|f| std::mem::discriminant(&f.value))
        .collect();
    kinds.len()
}

pub async fn record_pages(mut b: impl Backend) {
    let s = b.open();
    let mut events = crate::corpus::samples();
    let samples = events.len();
    let tail = events.split_off(5);
    s.append(req("a", ExpectedVersion::NoStream, "first", 3)).await.unwrap();
    let mut r = req("b", ExpectedVersion::NoStream, "samples", 0);
    r.events = events;
    s.append(r).await.unwrap();
    let mut r = req("b", ExpectedVersion::Any, "more-samples", 0);
    r.events = tail;
    s.append(r).await.unwrap();
    s.append(req("a", ExpectedVersion::Any, "last", 2)).await.unwrap();
    let all = all_events(&s).await;
    assert_eq!(all.len(), 3 + samples + 2);
    for (from, max) in [(1, 1000), (1, 1), (4, 3), (6, 100), (all.len() as u64, 5)] {
        let page = s.read_records(from, max).await.unwrap();
        let events = s.read_all(from, max).await.unwrap();
        assert_eq!(page.len(), events.len(), "from {from}, at most {max}");
        assert_eq!(page.last_position(), events.last().map(|e| e.event.position));
        for (view, e) in page.iter().zip(&events) {
            assert_eq!(view_fields(&view), view_fields(&engine::EventRef::of(e)));
            assert_eq!(view.to_event().unwrap(), *e);
            let is_step = matches!(e.event.payload, Payload::StepRecorded { .. });
            assert_eq!(view.step.is_some(), is_step, "position {}", e.event.position);
        }
    }
    assert_eq!(fact_kinds_in_steps(&all), 9, "the samples record steps with every kind of fact");
    assert!(s.read_records(all.len() as u64 + 1, 10).await.unwrap().is_empty());
    b.close(s);
}

macro_rules! backends {
    ($($name:ident => $make:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ordering() { super::ordering($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn atomic_batches() { super::atomic_batches($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn conflicts() { super::conflicts($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency() { super::idempotency($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn subscription() { super::subscription($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn answers_are_readable_at_once() { super::answers_are_readable_at_once($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reopen() { super::reopen($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn import_keeps_hashes() { super::import_keeps_hashes($make).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn record_pages() { super::record_pages($make).await }
        }
    )*};
}

backends! {
    memory => Memory::new(),
    sled => Sled::new(),
    jetstream => Nats::new(),
}

#[tokio::test]
async fn memory_recorded_at_from_clock() {
    let m = Memory::new();
    let clock = m.clock();
    recorded_at_from_clock(m, clock).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_recorded_at_from_clock() {
    let n = Nats::new();
    let clock = n.clock();
    recorded_at_from_clock(n, clock).await
}

#[tokio::test]
async fn sled_recorded_at_from_clock() {
    let s = Sled::new();
    let clock = s.clock();
    recorded_at_from_clock(s, clock).await
}
