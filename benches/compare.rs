//! `cargo bench --bench compare`: the engine against the physical floor and
//! against the design many users would pick instead, side by side in one
//! run on one machine, on one event shape (a recorded step with a minutes
//! reference and a case number, ~190 bytes encoded). Prints one table:
//! each figure, and the ratios engine/floor and engine/peer (SQLite).
//!
//! Scale with `STYRLOGG_BENCH_APPENDS` (sequential appends per row, default
//! 2000), `STYRLOGG_BENCH_WRITER_APPENDS` (appends per concurrent writer,
//! default 1500: 96 000 events, so the rows measure a sustained load, past
//! what the index may lag behind), `STYRLOGG_BENCH_REPLAY_EVENTS` (default 1 000 000) and
//! `STYRLOGG_BENCH_INSTANCES` (default 100 000). The 64 writers and
//! SQLite's batches of 64 run in turn, `STYRLOGG_BENCH_ROUNDS` times
//! (default 5), and are compared round by round. Everything runs in
//! temporary directories under `target/`, on the same disk
//! (`STYRLOGG_BENCH_KEEP=1` keeps them; `STYRLOGG_BENCH_REPLAY_STORE=DIR`
//! replays a kept log instead of building one).

#[path = "../tests/it/nats.rs"]
mod nats;

use engine::{
    Actor, AppendRequest, CommandId, EmbeddedStore, EventStore, ExpectedVersion, InstanceId, JetStreamOptions,
    JetStreamStore, MemoryStore, OpenMode, SystemClock,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts the bytes freed while counting is on, so the memory a value holds
/// is measured exactly, as what dropping it frees, rather than through the
/// allocator's pages. Off, it costs every free one shared load, so the
/// timed rows are not slowed by a counter the threads would contend for.
struct Counting;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static FREED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if COUNTING.load(std::sync::atomic::Ordering::Relaxed) {
            FREED_BYTES.fetch_add(layout.size() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // Nothing is reallocated while a value is dropped.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The heap bytes dropping `value` frees.
fn freed_by_dropping<T>(value: T) -> u64 {
    use std::sync::atomic::Ordering::SeqCst;
    FREED_BYTES.store(0, SeqCst);
    COUNTING.store(true, SeqCst);
    drop(value);
    COUNTING.store(false, SeqCst);
    FREED_BYTES.load(SeqCst)
}

const WRITERS: usize = 64;
const BATCH: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// The bytes the engine stores for the sample event.
async fn sample_record() -> Vec<u8> {
    let m = MemoryStore::new(Arc::new(SystemClock));
    m.append(request("x", "x", 1)).await.unwrap();
    engine::codec::reseal(&m.read_all(1, 1).await.unwrap()[0]).unwrap()
}

fn request(instance: &str, command: &str, n: usize) -> AppendRequest {
    AppendRequest {
        instance: InstanceId::new(instance).unwrap(),
        expected: ExpectedVersion::Any,
        command_id: CommandId::new(command).unwrap(),
        events: vec![styrlogg::sample_event("styrelsebeslut"); n],
    }
}

/// One measured row: events per second and, for sequential appends, the
/// median latency of one durable commit.
#[derive(Clone, Copy)]
struct Figure {
    events_per_s: f64,
    p50_us: Option<f64>,
}

fn figure(events: usize, took: Duration, mut latencies: Vec<Duration>) -> Figure {
    latencies.sort();
    Figure {
        events_per_s: events as f64 / took.as_secs_f64(),
        p50_us: latencies.get(latencies.len() / 2).map(|d| d.as_secs_f64() * 1e6),
    }
}

fn timed<F: FnMut()>(n: usize, mut f: F) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        lat.push(t.elapsed());
    }
    (start.elapsed(), lat)
}

fn floor(dir: &Path, record: &[u8], commits: usize, batch: usize) -> Figure {
    let path = dir.join(format!("floor-{batch}.bin"));
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).unwrap();
    let buf: Vec<u8> = record.repeat(batch);
    let (took, lat) = timed(commits, || {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    });
    figure(commits * batch, took, lat)
}

/// The floor for the engine's design: overwriting a file already filled
/// with zeros and synced, so a commit's fdatasync never changes its size.
fn floor_prezeroed(dir: &Path, record: &[u8], commits: usize, batch: usize) -> Figure {
    use std::os::unix::fs::FileExt;
    let path = dir.join(format!("floor-zeroed-{batch}.bin"));
    let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    let buf: Vec<u8> = record.repeat(batch);
    let total = (buf.len() * commits) as u64;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < total {
        let n = (total - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at).unwrap();
        at += n as u64;
    }
    f.sync_all().unwrap();
    let mut offset = 0u64;
    let (took, lat) = timed(commits, || {
        f.write_all_at(&buf, offset).unwrap();
        offset += buf.len() as u64;
        f.sync_data().unwrap();
    });
    figure(commits * batch, took, lat)
}

fn raw_sled(dir: &Path, record: &[u8], commits: usize, batch: usize) -> Figure {
    let path = dir.join(format!("sled-{batch}"));
    let db = sled::open(&path).unwrap();
    let data = std::fs::OpenOptions::new().write(true).open(path.join("db")).unwrap();
    let mut key = 0u64;
    let (took, lat) = timed(commits, || {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            key += 1;
            b.insert(&key.to_be_bytes()[..], record);
        }
        db.apply_batch(b).unwrap();
        db.flush().unwrap();
        data.sync_data().unwrap();
    });
    figure(commits * batch, took, lat)
}

fn sqlite(dir: &Path, record: &[u8], commits: usize, batch: usize, tag: &str) -> Figure {
    let mut c = rusqlite::Connection::open(dir.join(format!("sqlite-{batch}{tag}.db"))).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, instance TEXT NOT NULL, sequence INTEGER NOT NULL, \
         record BLOB NOT NULL, UNIQUE (instance, sequence))",
    )
    .unwrap();
    let mut seq = 0i64;
    let (took, lat) = timed(commits, || {
        let tx = c.transaction().unwrap();
        {
            let mut ins =
                tx.prepare_cached("INSERT INTO events (instance, sequence, record) VALUES (?1, ?2, ?3)").unwrap();
            for _ in 0..batch {
                seq += 1;
                ins.execute(rusqlite::params!["ljl-2012", seq, record]).unwrap();
            }
        }
        tx.commit().unwrap();
    });
    figure(commits * batch, took, lat)
}

async fn engine_sequential(store: &impl EventStore, commits: usize, batch: usize, tag: &str) -> Figure {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(commits);
    for i in 0..commits {
        let t = Instant::now();
        store.append(request(&format!("{tag}-seq"), &format!("{tag}-seq-{i}"), batch)).await.unwrap();
        lat.push(t.elapsed());
    }
    figure(commits * batch, start.elapsed(), lat)
}

async fn engine_writers<S: EventStore + Clone + 'static>(store: &S, per_writer: usize, tag: &str) -> Figure {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = store.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                s.append(request(&format!("{tag}-w{w}"), &format!("{tag}-w{w}-{i}"), 1)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    figure(WRITERS * per_writer, start.elapsed(), Vec::new())
}

/// Waits until the store's index holds everything in its log: the indexer
/// writes behind the commit, and a timed row must not share the disk and
/// the cores with what an earlier row left it to do.
async fn settle(store: &EmbeddedStore) {
    while store.index_backlog() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A log of `events` events in instances of 100 (one append each).
async fn build_log(store: &EmbeddedStore, events: usize) {
    let def = workflows::builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("protokoll")).unwrap().1;
    let def = workflows::Definition::parse(def).unwrap();
    let actor = Actor::new("Eva Sekreterare", "sekreterare");
    let day = jiff::civil::date(2025, 3, 1);
    let instances = events.div_ceil(100);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, def, actor) = (store.clone(), def.clone(), actor.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..instances).step_by(8) {
                let mut evs = vec![workflows::start(&def, "Kommun", None, day, actor.clone(), day).unwrap()];
                evs.extend(std::iter::repeat_n(styrlogg::sample_event("styrelsebeslut"), 99));
                let req = AppendRequest {
                    instance: InstanceId::new(format!("i{i:07}")).unwrap(),
                    expected: ExpectedVersion::NoStream,
                    command_id: CommandId::new(format!("c{i}")).unwrap(),
                    events: evs,
                };
                store.append(req).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Reads the whole log and folds it into the status projection, as
/// `status` does when it has no checkpoint.
async fn replay<S: EventStore + Clone + 'static>(store: &S) -> (usize, Duration, projections::LogView) {
    let start = Instant::now();
    let mut view = projections::LogView::status_only(None);
    styrlogg::fold_log(store, &mut view).await.unwrap();
    (view.head_position as usize, start.elapsed(), view)
}

fn status_run(data: &Path, instance: Option<&str>) -> Duration {
    let t = Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .arg("--data")
        .arg(data)
        .arg("status")
        .args(instance)
        .args(["--format", "json"])
        .env_remove("STYRLOGG_NATS")
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    took
}

struct Table {
    rows: Vec<String>,
}

impl Table {
    fn row(&mut self, name: &str, f: Figure, floor: Option<Figure>, peer: Option<Figure>) {
        let ratio = |other: Option<Figure>| {
            other.map(|o| format!("{:.2}", f.events_per_s / o.events_per_s)).unwrap_or_else(|| "".into())
        };
        let line = format!(
            "| {name:<58} | {:>12.0} | {:>10} | {:>9} | {:>9} |",
            f.events_per_s,
            f.p50_us.map(|p| format!("{p:.0}")).unwrap_or_default(),
            ratio(floor),
            ratio(peer),
        );
        println!("{line}");
        self.rows.push(line);
    }

    fn note(&mut self, line: String) {
        println!("{line}");
        self.rows.push(line);
    }
}

fn main() {
    let commits = env("STYRLOGG_BENCH_APPENDS", 2000);
    let per_writer = env("STYRLOGG_BENCH_WRITER_APPENDS", 1500);
    let replay_events = env("STYRLOGG_BENCH_REPLAY_EVENTS", 1_000_000);
    let instances = env("STYRLOGG_BENCH_INSTANCES", 100_000);
    // Odd, so that a median is one round's figure.
    let rounds = env("STYRLOGG_BENCH_ROUNDS", 5) | 1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&root).unwrap();
    let tmp = tempfile::tempdir_in(&root).unwrap();
    // STYRLOGG_BENCH_KEEP=1 keeps the stores for a closer look (profiling).
    let kept;
    let dir = if std::env::var_os("STYRLOGG_BENCH_KEEP").is_some() {
        kept = tmp.keep();
        eprintln!("keeping the stores in {}", kept.display());
        kept.as_path()
    } else {
        tmp.path()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let record = rt.block_on(sample_record());
    println!(
        "styrlogg compare: {} byte records; {commits} sequential commits per row; {WRITERS} writers of \
         {per_writer} appends each, and SQLite's batches of {BATCH}, in turn {rounds} times",
        record.len()
    );
    let mut t = Table { rows: Vec::new() };
    let only = std::env::var("STYRLOGG_BENCH_ONLY").unwrap_or_default();
    // (target, measured, met)
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    t.note(format!(
        "| {:<58} | {:>12} | {:>10} | {:>9} | {:>9} |",
        "durable appends", "events/s", "p50 µs", "÷ floor", "÷ SQLite"
    ));
    t.note(format!("|{:-<60}|{:-<14}|{:-<12}|{:-<11}|{:-<11}|", "", "", "", "", ""));

    if only.is_empty() || only == "appends" {
        let floor1 = floor(dir, &record, commits, 1);
        let floor64 = floor(dir, &record, commits / 4, BATCH);
        let zeroed1 = floor_prezeroed(dir, &record, commits, 1);
        let zeroed64 = floor_prezeroed(dir, &record, commits / 4, BATCH);
        let sqlite1 = sqlite(dir, &record, commits, 1, "");
        t.row("plain file, write + fdatasync per commit (floor)", floor1, Some(floor1), Some(sqlite1));
        t.row("pre-zeroed file, overwrite + fdatasync per commit", zeroed1, Some(floor1), Some(sqlite1));
        t.row(
            "raw sled, insert + flush + fdatasync per commit",
            raw_sled(dir, &record, commits, 1),
            Some(floor1),
            Some(sqlite1),
        );
        t.row("SQLite WAL synchronous=FULL, a transaction per commit (peer)", sqlite1, Some(floor1), Some(sqlite1));
        let (engine1, enginebatch, paired) = rt.block_on(async {
            let store =
                EmbeddedStore::open(&dir.join("engine"), OpenMode::CreateIfMissing, Arc::new(SystemClock)).unwrap();
            let one = engine_sequential(&store, commits, 1, "a").await;
            let batch = engine_sequential(&store, commits / 4, BATCH, "b").await;
            // The 64 writers and SQLite's batches in turn, round after
            // round, each round's order the other way round from the last:
            // the shared disk's speed drifts from minute to minute, and a
            // ratio means something only between figures taken together.
            // Each timed part starts once the engine's index has caught up
            // with its log, so neither side pays for the other's writing.
            let mut paired = Vec::with_capacity(rounds);
            for r in 0..rounds {
                let tag = format!("c{r}");
                let peer_round = |r: usize| sqlite(dir, &record, commits / 4, BATCH, &format!("-{r}"));
                let (peer, many) = if r % 2 == 0 {
                    settle(&store).await;
                    let peer = peer_round(r);
                    (peer, engine_writers(&store, per_writer, &tag).await)
                } else {
                    let many = engine_writers(&store, per_writer, &tag).await;
                    settle(&store).await;
                    (peer_round(r), many)
                };
                eprintln!(
                    "round {}: 64 writers {:.0} events/s, SQLite's batches {:.0}: {:.2}x",
                    r + 1,
                    many.events_per_s,
                    peer.events_per_s,
                    many.events_per_s / peer.events_per_s
                );
                paired.push((many, peer));
            }
            store.close().unwrap();
            (one, batch, paired)
        });
        let median = |mut v: Vec<Figure>| {
            v.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
            v[v.len() / 2]
        };
        let engine64 = median(paired.iter().map(|p| p.0).collect());
        let sqlite64 = median(paired.iter().map(|p| p.1).collect());
        let mut ratios: Vec<f64> = paired.iter().map(|(e, s)| e.events_per_s / s.events_per_s).collect();
        ratios.sort_by(f64::total_cmp);
        let ratio64 = ratios[ratios.len() / 2];
        t.row("engine, embedded store: one append after another", engine1, Some(floor1), Some(sqlite1));
        t.note(format!("|{:-<60}|{:-<14}|{:-<12}|{:-<11}|{:-<11}|", "", "", "", "", ""));
        t.row("plain file, 64 records + one fdatasync (floor)", floor64, Some(floor64), Some(sqlite64));
        t.row("pre-zeroed file, 64 records + one fdatasync", zeroed64, Some(floor64), Some(sqlite64));
        t.row(
            "raw sled, a batch of 64 + flush + fdatasync",
            raw_sled(dir, &record, commits / 4, BATCH),
            Some(floor64),
            Some(sqlite64),
        );
        t.row("SQLite, 64 inserts per transaction (peer), median", sqlite64, Some(floor64), Some(sqlite64));
        t.row("engine, embedded store: atomic appends of 64 events", enginebatch, Some(floor64), Some(sqlite64));
        t.row("engine, embedded: 64 concurrent writers, median", engine64, Some(floor64), Some(sqlite64));
        let p50 = |f: Figure| f.p50_us.unwrap_or(f64::NAN);
        targets.push((
            "single durable append: p50 within 2x of the fdatasync floor".into(),
            format!(
                "{:.0} µs = {:.2}x the plain file's {:.0} µs, {:.2}x the pre-zeroed file's {:.0} µs",
                p50(engine1),
                p50(engine1) / p50(floor1),
                p50(floor1),
                p50(engine1) / p50(zeroed1),
                p50(zeroed1)
            ),
            p50(engine1) <= 2.0 * p50(floor1),
        ));
        targets.push((
            "64 writers: at least 100 000 durable events/s".into(),
            format!(
                "{:.0} events/s, the median of {rounds} rounds ({}, in round order)",
                engine64.events_per_s,
                paired.iter().map(|p| format!("{:.0}", p.0.events_per_s)).collect::<Vec<_>>().join(", ")
            ),
            engine64.events_per_s >= 100_000.0,
        ));
        targets.push((
            "64 writers: at least the SQLite peer's batched figure".into(),
            format!(
                "{:.2}x, the median of {rounds} rounds' ratios ({}, from low to high; the medians: {:.0} events/s, SQLite's {:.0})",
                ratio64,
                ratios.iter().map(|r| format!("{r:.2}x")).collect::<Vec<_>>().join(", "),
                engine64.events_per_s,
                sqlite64.events_per_s
            ),
            ratio64 >= 1.0,
        ));

        // JetStream against a local server that fsyncs every message.
        let server = nats::NatsServer::start_durable();
        let (js1, js64) = rt.block_on(async {
            let opts = JetStreamOptions { url: server.url.clone(), ..Default::default() };
            let store = JetStreamStore::open(opts, OpenMode::CreateIfMissing, Arc::new(SystemClock)).await.unwrap();
            let one = engine_sequential(&store, commits / 2, 1, "j").await;
            let many = engine_writers(&store, per_writer, "k").await;
            (one, many)
        });
        drop(server);
        t.note(format!("|{:-<60}|{:-<14}|{:-<12}|{:-<11}|{:-<11}|", "", "", "", "", ""));
        t.row(
            "engine, JetStream (local server, sync_interval: always): one after another",
            js1,
            Some(floor1),
            Some(sqlite1),
        );
        t.row("engine, JetStream: 64 concurrent writers", js64, Some(floor64), Some(sqlite64));
    }

    if only.is_empty() || only == "replay" {
        // Replay and start-up with a long log.
        // STYRLOGG_BENCH_REPLAY_STORE=DIR replays a log kept from an earlier
        // run (`STYRLOGG_BENCH_KEEP=1`) instead of building one: for profiling.
        let reuse = std::env::var_os("STYRLOGG_BENCH_REPLAY_STORE").map(std::path::PathBuf::from);
        let data = reuse.clone().unwrap_or_else(|| dir.join("replay"));
        let (replayed, replay_took) = rt.block_on(async {
            let store = EmbeddedStore::open(&data, OpenMode::CreateIfMissing, Arc::new(SystemClock)).unwrap();
            if reuse.is_none() {
                let t0 = Instant::now();
                build_log(&store, replay_events).await;
                eprintln!("built a log of {replay_events} events in {:.1} s", t0.elapsed().as_secs_f64());
            }
            let (n, took, view) = replay(&store).await;
            drop(view);
            store.close().unwrap();
            (n, took)
        });
        let middle = format!("i{:07}", replay_events.div_ceil(100) / 2);
        let one = status_run(&data, Some(&middle));
        let cold = status_run(&data, None);
        // The median of three: one run can land on a burst of other work.
        let mut warms: Vec<Duration> = (0..3).map(|_| status_run(&data, None)).collect();
        warms.sort();
        let warm = warms[1];
        t.note(String::new());
        t.note(format!(
            "replay: read {replayed} events and fold them into the status projection: {:.0} events/s ({:.2} s)",
            replayed as f64 / replay_took.as_secs_f64(),
            replay_took.as_secs_f64()
        ));
        t.note(format!(
        "start to the answer of `status INSTANCE` with {replayed} events in the store: {:.3} s (a new process: open, read the instance, print)",
        one.as_secs_f64()
    ));
        let rate = replayed as f64 / replay_took.as_secs_f64();
        targets.push((
            "replay: at least 1 000 000 events/s into the status projection".into(),
            format!("{rate:.0} events/s"),
            rate >= 1_000_000.0,
        ));
        targets.push((
            format!("start to first `status` answer with {replayed} events: under 1 s"),
            format!(
                "one instance {:.3} s; all {} instances {:.2} s (checkpoint built: {:.2} s)",
                one.as_secs_f64(),
                replayed.div_ceil(100),
                warm.as_secs_f64(),
                cold.as_secs_f64()
            ),
            one.as_secs_f64() < 1.0 && warm.as_secs_f64() < 1.0,
        ));
        t.note(format!(
        "start to the answer of `status` for all {} instances: {:.2} s with the status checkpoint, median of 3 ({:.2} s on the first run, which builds it)",
        replayed.div_ceil(100),
        warm.as_secs_f64(),
        cold.as_secs_f64()
    ));
    }
    if only.is_empty() || only == "memory" {
        // Memory: idle instances in the status projection.
        let per_instance = rt.block_on(async {
            let store =
                EmbeddedStore::open(&dir.join("idle"), OpenMode::CreateIfMissing, Arc::new(SystemClock)).unwrap();
            let def = workflows::builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("protokoll")).unwrap().1;
            let def = workflows::Definition::parse(def).unwrap();
            let day = jiff::civil::date(2025, 3, 1);
            let mut tasks = Vec::new();
            for w in 0..WRITERS {
                let (store, def) = (store.clone(), def.clone());
                tasks.push(tokio::spawn(async move {
                    for i in (w..instances).step_by(WRITERS) {
                        let e =
                            workflows::start(&def, "Kommun", None, day, Actor::new("Eva", "sekreterare"), day).unwrap();
                        let req = AppendRequest {
                            instance: InstanceId::new(format!("idle-{i:07}")).unwrap(),
                            expected: ExpectedVersion::NoStream,
                            command_id: CommandId::new(format!("idle-{i}")).unwrap(),
                            events: vec![e],
                        };
                        store.append(req).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let (n, _, view) = replay(&store).await;
            assert_eq!(view.instances.len(), n);
            store.close().unwrap();
            // The projection's own bytes: what is freed when it is dropped.
            freed_by_dropping(view) as f64 / n as f64
        });
        targets.push((
            "at most 2 KiB resident per idle instance".into(),
            format!("{per_instance:.0} bytes"),
            per_instance <= 2048.0,
        ));
        t.note(format!(
        "memory: {per_instance:.0} bytes per idle instance with {instances} instances in the status projection (heap bytes it holds, counted by the allocator)"
    ));
    }
    if !targets.is_empty() {
        println!("\ntargets:");
        for (target, measured, met) in &targets {
            println!("  [{}] {target}: {measured}", if *met { "met" } else { "MISSED" });
        }
    }
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("\nmachine: {} cores, {host}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
}
