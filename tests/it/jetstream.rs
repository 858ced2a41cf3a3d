//! The JetStream backend against real nats-server processes: writers in
//! separate connections racing on one instance, command ids and the
//! server's duplicate window, clear errors for an unreachable server, a
//! server without JetStream and a stream with other settings, export and
//! import between the backends, JSON announcements, and a 3-node cluster
//! losing a node while a writer appends.

use crate::cli::styrlogg as styrlogg_with;
use crate::nats::{NatsCluster, NatsServer};
use crate::support::*;
use engine::{
    AppendError, EventStore, ExpectedVersion, JetStreamOptions, JetStreamStore, OpenMode, StoreError, SystemClock,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

async fn connect(opts: JetStreamOptions) -> JetStreamStore {
    JetStreamStore::open(opts, OpenMode::CreateIfMissing, clock()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_connections_racing_on_one_instance_exactly_one_wins() {
    let n = Nats::new();
    let a = connect(n.options("RACE")).await;
    let b = connect(n.options("RACE")).await;
    a.append(req("inst", ExpectedVersion::NoStream, "start", 1)).await.unwrap();
    for round in 0..20u64 {
        let v = round + 1;
        let (ra, rb) = tokio::join!(
            a.append(req("inst", ExpectedVersion::Exactly(v), &format!("a{round}"), 1)),
            b.append(req("inst", ExpectedVersion::Exactly(v), &format!("b{round}"), 1)),
        );
        let won = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {ra:?} {rb:?}");
        let lost = if ra.is_err() { ra } else { rb };
        assert!(matches!(lost, Err(AppendError::Conflict { actual, .. }) if actual == v + 1), "round {round}");
    }
    // Different instances from both connections at once: all land, one chain.
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for k in 0..25 {
                s.append(req(&format!("w{i}-{}", k % 3), ExpectedVersion::Any, &format!("w{i}-{k}"), 1 + k % 2))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = verify(&a).await;
    assert_eq!(events, 21 + 2 * (13 + 2 * 12));
    assert_eq!(a.head().await.unwrap(), b.head().await.unwrap());
}

#[test]
fn two_imports_at_once_into_an_empty_stream_one_wins_and_the_chain_holds() {
    // Each import is published as many messages at once. When the smaller
    // one gets in first, the larger one's first messages are refused; its
    // later ones, which expected the sequences the winner's messages now
    // hold, must be refused too, not stored after the winner's.
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    assert!(styrlogg_with(&big, &["demo"]).status.success());
    let by = ["--by", "A", "--role", "registrator", "--today", "2012-02-01"];
    let start = ["start", "skl-styrsystem-2012-2014", "--instance", "t", "--org", "T", "--on", "2012-01-15"];
    assert!(styrlogg_with(&small, &[&start[..], &by[..]].concat()).status.success());
    let interest = [
        "record",
        "t",
        "intresseanmalan",
        "--on",
        "2012-01-20",
        "--fact",
        "kontaktperson=A B|k|official",
        "--fact",
        "organisation=T",
    ];
    let o = styrlogg_with(&small, &[&interest[..], &by[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let export = |store: &std::path::Path, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, styrlogg_with(store, &["export"]).stdout).unwrap();
        file
    };
    let (big, small) = (export(&big, "big.jsonl"), export(&small, "small.jsonl"));
    for round in 0..6 {
        let stream = format!("IMP{round}");
        let nats = ["--nats", server.url.as_str(), "--nats-stream", stream.as_str()];
        let spawn = |file: &std::path::Path| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"));
            cmd.args(nats).arg("import").arg(file).env_remove("STYRLOGG_DATA");
            cmd.env("STYRLOGG_KEYS", dir.path().join("keys"));
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        };
        let (a, b) = (spawn(&big), spawn(&small));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let text = |o: &std::process::Output| {
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
        };
        assert_eq!(
            [&a, &b].iter().filter(|o| o.status.success()).count(),
            1,
            "round {round}: {} | {}",
            text(&a),
            text(&b)
        );
        let v = styrlogg_with(&dir.path().join("unused"), &[&nats[..], &["verify"]].concat());
        assert!(v.status.success(), "round {round}: the chain holds: {}", text(&v));
        let winner = if a.status.success() { 31 } else { 2 };
        assert!(text(&v).contains(&format!("OK: {winner} events")), "round {round}: only the winner's: {}", text(&v));
    }
}

#[test]
fn two_identical_loads_at_once_both_succeed() {
    // A command the other process stored between the retry check and the
    // decision is recognised as the same command, not refused by the rule
    // its own event now breaks (a step that happens once).
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/scenarios");
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(&scenarios).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for round in 0..4 {
        let stream = format!("LOAD{round}");
        let spawn = || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"));
            cmd.args(["--nats", server.url.as_str(), "--nats-stream", stream.as_str(), "load"]).args(&files);
            cmd.env_remove("STYRLOGG_DATA").env("STYRLOGG_KEYS", dir.path().join("keys"));
            cmd.env("STYRLOGG_TODAY", "2015-10-22");
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            assert!(o.status.success(), "round {round}: {}", String::from_utf8_lossy(&o.stderr));
        }
        let v = styrlogg_with(
            &dir.path().join("unused"),
            &["--nats", server.url.as_str(), "--nats-stream", stream.as_str(), "verify"],
        );
        assert!(String::from_utf8_lossy(&v.stdout).contains("OK: 31 events"), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_ids_inside_and_after_the_duplicate_window() {
    let n = Nats::new();
    let opts = JetStreamOptions { duplicate_window: Duration::from_secs(1), ..n.options("DUP") };
    let a = connect(opts.clone()).await;
    let first = a.append(req("x", ExpectedVersion::Any, "cmd", 2)).await.unwrap();
    // Another connection, which has never seen the command: within the
    // window the server itself names the message that holds it.
    let b = connect(opts.clone()).await;
    let err = b.append(req("y", ExpectedVersion::Any, "cmd", 2)).await.unwrap_err();
    assert!(matches!(err, AppendError::CommandIdReused { .. }), "{err}");
    let again = b.append(req("x", ExpectedVersion::Any, "cmd", 2)).await.unwrap();
    assert_eq!(again, engine::AppendOutcome { deduplicated: true, ..first.clone() });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // After the window a retry on the same instance is still recognised
    // (the writer reads the instance's own messages) ...
    let c = connect(opts.clone()).await;
    let again = c.append(req("x", ExpectedVersion::Any, "cmd", 2)).await.unwrap();
    assert_eq!(again, engine::AppendOutcome { deduplicated: true, ..first });
    assert_eq!(
        c.command_outcome(&instance("x"), &engine::CommandId::new("cmd").unwrap())
            .await
            .unwrap()
            .map(|o| o.first_position),
        Some(1)
    );
    // ... while a reuse on another instance is no longer seen: the decision
    // documented in ARCHITECTURE.md (styrlogg's command ids name their instance).
    let d = connect(opts).await;
    assert!(!d.append(req("z", ExpectedVersion::Any, "cmd", 1)).await.unwrap().deduplicated);
    assert_eq!(verify(&d).await, 3);
}

#[test]
fn clear_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    // Nobody listens on this port.
    let port = crate::nats::free_port();
    let o = styrlogg_with(&data, &["--nats", &format!("nats://127.0.0.1:{port}"), "head"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("cannot connect to NATS at nats://127.0.0.1:{port}")), "{err}");

    let plain = NatsServer::start_without_jetstream();
    let o = styrlogg_with(&data, &["--nats", &plain.url, "head"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("has JetStream disabled"), "{err}");

    // A stream of that name made by someone else, with an expiry.
    let server = NatsServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url.as_str()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "STYRLOGG".into(),
            subjects: vec!["styrlogg.log.>".into()],
            max_age: Duration::from_secs(86_400),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let o = styrlogg_with(&data, &["--nats", &server.url, "head"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stream STYRLOGG is not a styrlogg store: it was created with other settings"), "{err}");
    assert!(err.contains("would expire events"), "{err}");
    assert!(err.contains("deleting or purging messages is allowed"), "{err}");

    // Reading from a stream that does not exist creates nothing.
    let o = styrlogg_with(&data, &["--nats", &server.url, "--nats-stream", "OTHER", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no store at"), "{}", String::from_utf8_lossy(&o.stderr));

    // A stream whose subjects another stream takes: a name to change.
    let start =
        ["start", "protokoll-laga-kraft", "--instance", "x", "--org", "T", "--by", "S", "--role", "sekreterare"];
    let o = styrlogg_with(&data, &[&["--nats", &server.url, "--nats-stream", "log"][..], &start[..]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("overlap another stream's on this server") && err.contains("--nats-stream"), "{err}");

    // A URL that is no NATS URL is a usage error, found before connecting.
    for bad in ["http://127.0.0.1:4222", "nats://127.0.0.1:99999", "foo bar"] {
        let o = styrlogg_with(&data, &["--nats", bad, "head"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn export_and_import_between_backends_keep_every_hash() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sled = dir.path().join("sled");
    let o = styrlogg_with(&sled, &["demo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let export = dir.path().join("a.jsonl");
    let o = styrlogg_with(&sled, &["export", "-o", export.to_str().unwrap()]);
    assert!(o.status.success());
    let nats = ["--nats", server.url.as_str()];
    let o = styrlogg_with(&sled, &[&nats[..], &["import", export.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = styrlogg_with(&sled, &[&nats[..], &["verify"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let back = dir.path().join("b.jsonl");
    let o = styrlogg_with(&sled, &[&nats[..], &["export", "-o", back.to_str().unwrap()]].concat());
    assert!(o.status.success());
    assert_eq!(std::fs::read(&export).unwrap(), std::fs::read(&back).unwrap(), "byte-identical round trip");
    // Reports read the same from either backend.
    let a = styrlogg_with(&sled, &["report", "compliance", "--instance", "harryda-2012", "--today", "2015-01-01"]);
    let b = styrlogg_with(
        &sled,
        &[&nats[..], &["report", "compliance", "--instance", "harryda-2012", "--today", "2015-01-01"]].concat(),
    );
    assert!(a.status.success() && b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(a.stdout, b.stdout);
    // And back into a fresh embedded store.
    let again = dir.path().join("again");
    let o = styrlogg_with(&again, &["import", back.to_str().unwrap()]);
    assert!(o.status.success());
    let o = styrlogg_with(&again, &["verify"]);
    assert!(o.status.success());
    // Importing into a stream that holds events is refused.
    let o = styrlogg_with(&sled, &[&nats[..], &["import", export.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("import loads into an empty store; the JetStream stream STYRLOGG at nats://"), "{err}");
    // demo has a store of its own, never the stream.
    let o = styrlogg_with(&sled, &[&nats[..], &["demo"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("demo runs on an embedded store of its own"));
}

#[test]
fn two_processes_record_one_step_at_once_one_wins_the_other_writes_nothing() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    let nats = ["--nats", server.url.as_str()];
    let o = styrlogg_with(
        &data,
        &[
            &nats[..],
            &[
                "start",
                "protokoll-laga-kraft",
                "--instance",
                "ks-1",
                "--org",
                "Tyresö kommun",
                "--on",
                "2026-01-10",
                "--by",
                "Eva",
                "--role",
                "sekreterare",
                "--today",
                "2026-01-20",
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for round in 0..3 {
        let spawn = |who: &str| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"));
            cmd.args(nats).args([
                "record",
                "ks-1",
                "sammantrade",
                "--on",
                "2026-01-12",
                "--fact",
                &format!("protokoll=Kommunstyrelsen|2026-01-12|§ {round}"),
                "--fact",
                &format!("beslut=Beslut av {who}"),
                "--by",
                who,
                "--role",
                "sekreterare",
                "--today",
                "2026-01-20",
            ]);
            cmd.env_remove("STYRLOGG_DATA").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        };
        let (a, b) = (spawn("Anna"), spawn("Bertil"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        if round == 0 {
            let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
            assert_eq!(ok, 1, "{}\n{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
            let loser = if a.status.success() { &b } else { &a };
            assert_eq!(loser.status.code(), Some(1));
            let err = String::from_utf8_lossy(&loser.stderr);
            assert!(err.contains("sammantrade") && err.contains("rejected"), "{err}");
        } else {
            assert!(!a.status.success() && !b.status.success(), "the step is already recorded");
        }
    }
    let o = styrlogg_with(&data, &[&nats[..], &["log", "--instance", "ks-1", "--format", "json"]].concat());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2, "the start and one meeting");
    let o = styrlogg_with(&data, &[&nats[..], &["verify"]].concat());
    assert!(o.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_event_is_announced_as_json() {
    let n = Nats::new();
    let client = async_nats::connect(n.server.url.as_str()).await.unwrap();
    let mut sub = client.subscribe("styrlogg.events.>").await.unwrap();
    client.flush().await.unwrap();
    let s = connect(n.options("ANN")).await;
    s.append(req("ljl/2012", ExpectedVersion::Any, "one", 2)).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
        assert_eq!(m.subject.as_str(), "styrlogg.events.ljl~2F2012");
        let e: engine::RecordedEvent = serde_json::from_slice(&m.payload).unwrap();
        seen.push(e.event.position);
    }
    assert_eq!(seen, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_a_node_while_a_writer_appends() {
    let mut cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await.unwrap();
    let opts =
        JetStreamOptions { url: cluster.urls(), replicas: 3, timeout: Duration::from_secs(3), ..Default::default() };
    // The cluster elects a meta leader before a replicated stream can be made.
    let mut store = None;
    for _ in 0..60 {
        match JetStreamStore::open(opts.clone(), OpenMode::CreateIfMissing, Arc::new(SystemClock)).await {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let store = store.expect("the cluster accepts a stream with 3 replicas");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked: Vec<(String, u64)> = Vec::new();
            let mut failures = 0u32;
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let cmd = format!("w{w}-{k}");
                let n = 1 + (k % 3) as usize;
                // A failed append is retried with the same command id until
                // it is acknowledged: nothing is counted twice.
                loop {
                    match s.append(req(&format!("inst-{w}"), ExpectedVersion::Any, &cmd, n)).await {
                        Ok(_) => break,
                        Err(AppendError::Store(StoreError::Unavailable(_))) => {
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{cmd}: {e}"),
                    }
                }
                acked.push((cmd, n as u64));
                k += 1;
            }
            (acked, failures)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| cluster.nodes[1].kill());
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| cluster.nodes[1].restart());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut failures = 0;
    for w in writers {
        let (a, f) = w.await.unwrap();
        failures += f;
        for (cmd, n) in a {
            assert!(acked.insert(cmd, n).is_none());
        }
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    for e in all_events(&store).await {
        *seen.entry(e.event.command_id.to_string()).or_default() += 1;
    }
    for (cmd, n) in &acked {
        assert_eq!(seen.get(cmd), Some(n), "acknowledged {cmd} is stored whole, exactly once");
    }
    let total = verify(&store).await;
    assert!(acked.len() > 50, "the writers kept appending ({} commands, {failures} retried failures)", acked.len());
    eprintln!("cluster: {} acknowledged commands, {total} events, {failures} failed attempts retried", acked.len());
}
