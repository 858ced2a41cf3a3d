//! Crash safety: a child process appends (single events and batches, from
//! several concurrent writers) and prints each acknowledged command id; we
//! SIGKILL it at random moments, reopen the store, and check that every
//! acknowledged command is there exactly once, whole, and the chain
//! verifies. `STYRLOGG_CRASH_CYCLES` sets the number of cycles (default 200).

use engine::{ChainVerifier, EmbeddedStore, EventStore, OpenMode, StoreError, SystemClock};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event() {
    let cycles: u32 = std::env::var("STYRLOGG_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("STYRLOGG_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed),
    );
    let mut verifier = ChainVerifier::new();
    // Command id -> events seen for it, over the whole run.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut last_command: Option<String> = None;
    let (mut total_acked, mut killed_mid_write) = (0usize, 0u32);
    for cycle in 0..cycles {
        let batch = [1, 1, 3, 8][cycle as usize % 4];
        let writers = [1, 4, 16][cycle as usize % 3];
        let mut child = Command::new(env!("CARGO_BIN_EXE_styrlogg"))
            .arg("--data")
            .arg(&data)
            .args(["stress", "--print-acks", "--commands", "1000000"])
            .args(["--writers", &writers.to_string(), "--batch", &batch.to_string()])
            .args(["--prefix", &format!("c{cycle}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ack ") {
                    if tx.send(id.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        // Wait for the first acknowledgement, then kill at a random moment.
        let first = rx.recv_timeout(Duration::from_secs(60)).expect("child acknowledges an append");
        std::thread::sleep(Duration::from_millis(rng.u64(0..60)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acked: Vec<String> = std::iter::once(first).chain(rx.try_iter()).collect();
        total_acked += acked.len();

        let store = EmbeddedStore::open(&data, OpenMode::MustExist, Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopen after SIGKILL failed: {e}"));
        let mut next = verifier.position() + 1;
        let mut new_events = 0u64;
        // Commands this cycle's events belong to (checked below without
        // walking every command of the run, which grows with the run).
        let mut stored_now: Vec<String> = Vec::new();
        loop {
            let page = store.read_all(next, 1000).await.unwrap_or_else(|e: StoreError| panic!("cycle {cycle}: {e}"));
            let Some(last) = page.last() else { break };
            next = last.event.position + 1;
            for e in &page {
                verifier.check(e).unwrap_or_else(|b| panic!("cycle {cycle}: chain broken: {b}"));
                let id = e.event.command_id.to_string();
                if last_command.as_deref() != Some(id.as_str()) {
                    assert!(!seen.contains_key(&id), "cycle {cycle}: command {id} stored twice");
                    last_command = Some(id.clone());
                    stored_now.push(id.clone());
                }
                *seen.entry(id).or_default() += 1;
                new_events += 1;
            }
        }
        let head = store.head().await.unwrap();
        assert_eq!(head.position, verifier.position(), "cycle {cycle}: head matches the last event");
        for id in &acked {
            assert_eq!(
                seen.get(id).copied(),
                Some(batch as u64),
                "cycle {cycle}: acknowledged {id} stored whole, once"
            );
        }
        // Events stored beyond the acknowledged ones are whole commands too
        // (the kill can land between the sync and the acknowledgement).
        let prefix = format!("c{cycle}-");
        for id in &stored_now {
            assert!(id.starts_with(&prefix), "cycle {cycle}: {id} was stored by this cycle's writer");
            assert_eq!(seen.get(id).copied(), Some(batch as u64), "cycle {cycle}: {id} is whole");
        }
        if new_events as usize > acked.len() * batch {
            killed_mid_write += 1;
        }
        store.close().unwrap();
    }
    eprintln!(
        "{cycles} SIGKILL cycles: {total_acked} acknowledged commands all present exactly once; {} events; chain verified; {killed_mid_write} cycles had durable but unacknowledged commands",
        verifier.position()
    );
}
