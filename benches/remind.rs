//! `cargo bench --bench remind`: the reminder service with 100 000
//! instances. Reports the first (catch-up) pass, the time to find and send
//! the next due reminder, and resident memory per instance held by the
//! scheduler; and, side by side, the baseline a simpler service would use:
//! fold every instance and ask each what is due, on every wake.
//!
//! `STYRLOGG_BENCH_INSTANCES` sets the number of instances.

use engine::{
    Actor, AppendRequest, Clock, CommandId, EventStore, ExpectedVersion, InstanceId, ManualClock, MemoryStore,
};
use jiff::civil::date;
use jiff::ToSpan;
use std::sync::Arc;
use std::time::Instant;
use styrlogg::remind::{swedish_midnight, swedish_today, Channel, Config, Message, Service};
use workflows::{builtin, decide, Command, Definition, Instance};

struct Count(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl Channel for Count {
    fn name(&self) -> &str {
        "count"
    }
    fn recipients(&self, _: &Config, _: &str, roles: &[String]) -> Vec<String> {
        roles.to_vec()
    }
    async fn send(&self, _: &Message) -> Result<(), String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::var("STYRLOGG_BENCH_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let src = builtin::DEFINITIONS.iter().find(|(k, _)| k.starts_with("protokoll-laga-kraft")).unwrap().1;
    let def = Definition::parse(src).unwrap();
    let start = swedish_midnight(date(2025, 1, 1));
    let clock = Arc::new(ManualClock::new(start));
    let store = MemoryStore::new(clock.clone());
    let t = Instant::now();
    // Each instance: a meeting on one of 365 days of 2025; its minutes are
    // due 14 days later, with reminders 7 and 2 days before.
    for i in 0..n {
        let id = InstanceId::new(format!("protokoll-{i:06}")).unwrap();
        let meeting = date(2025, 1, 1).checked_add((((i * 7919) % 365) as i64).days()).unwrap();
        let actor = Actor::new("Eva Sekreterare", "sekreterare");
        let started =
            workflows::start(&def, "Kommun", None, date(2025, 1, 1), actor.clone(), date(2025, 1, 1)).unwrap();
        store
            .append(AppendRequest {
                instance: id.clone(),
                expected: ExpectedVersion::NoStream,
                command_id: CommandId::new(format!("s{i}")).unwrap(),
                events: vec![started],
            })
            .await
            .unwrap();
        let folded = Instance::fold(&store.read_instance(&id, 1).await.unwrap()).unwrap();
        let facts = vec![
            ("protokoll".to_string(), format!("Kommunstyrelsen|{meeting}|§ {}", i % 200 + 1)),
            ("beslut".to_string(), "Beslut".to_string()),
        ];
        let cmd = Command::Record { step: "sammantrade".into(), occurred_on: meeting, actor, facts, deviation: None };
        let events = decide(&folded, cmd, meeting).unwrap();
        store
            .append(AppendRequest {
                instance: id,
                expected: ExpectedVersion::Exactly(1),
                command_id: CommandId::new(format!("m{i}")).unwrap(),
                events,
            })
            .await
            .unwrap();
    }
    println!("setup: {n} instances, {} events, in {:.1} s", 2 * n, t.elapsed().as_secs_f64());

    let count = Arc::new(Count(Default::default()));
    let mut service = Service::new(Config::default(), vec![count.clone() as Arc<dyn Channel>]);
    let rss_before = rss_bytes();
    let now = start;
    let t = Instant::now();
    let first = service.pass(&store, swedish_today(now), now).await.unwrap();
    let first_s = t.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    println!("first pass (fold {n} instances, attend each once, {} notices): {:.3} s", first.delivered, first_s);
    println!(
        "scheduler memory: {:.1} MiB resident for {n} instances = {} bytes per instance",
        (rss_after.saturating_sub(rss_before)) as f64 / (1 << 20) as f64,
        rss_after.saturating_sub(rss_before) / n as u64
    );

    // The next due reminders, ten wakes in a row.
    let mut find_ns = Vec::new();
    let mut send_per_notice_us = Vec::new();
    let mut wake_s = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let wake = service.scheduler.next_wake().expect("something is due later");
        find_ns.push(t.elapsed().as_nanos());
        clock.set(wake.max(clock.now()));
        let before = count.0.load(std::sync::atomic::Ordering::Relaxed);
        let t = Instant::now();
        service.pass(&store, swedish_today(wake), wake).await.unwrap();
        let took = t.elapsed();
        let sent = count.0.load(std::sync::atomic::Ordering::Relaxed) - before;
        if sent > 0 {
            send_per_notice_us.push(took.as_micros() as f64 / sent as f64);
        }
        wake_s.push(took.as_secs_f64());
    }
    let total_sent = count.0.load(std::sync::atomic::Ordering::Relaxed);

    // Baseline: on each wake, fold every instance from the log and ask it.
    let t = Instant::now();
    let mut all = std::collections::BTreeMap::<InstanceId, Vec<engine::RecordedEvent>>::new();
    let mut next = 1;
    loop {
        let page = store.read_all(next, 4096).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in page {
            all.entry(e.event.instance.clone()).or_default().push(e);
        }
    }
    let today = swedish_today(clock.now());
    let mut due = 0;
    for events in all.values() {
        due += workflows::reminders::due(&Instance::fold(events).unwrap(), today).len();
    }
    let baseline_s = t.elapsed().as_secs_f64();

    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let mut find: Vec<f64> = find_ns.iter().map(|n| *n as f64).collect();
    let find_med = median(&mut find);
    let send_med = median(&mut send_per_notice_us);
    let wake_med = median(&mut wake_s);
    println!("find the next due instant: median {find_med:.0} ns (front of an ordered queue)");
    println!(
        "send the next due reminders: median {send_med:.1} µs per notice (claim, send, outcome: two appends to the in-memory store); a whole wake {:.1} ms ({total_sent} notices over 10 wakes)",
        wake_med * 1e3
    );
    println!("baseline, on a wake fold all {n} instances from the log and ask each what is due: {baseline_s:.3} s ({due} due), before sending anything");
    println!("ratio baseline / scheduler per wake: {:.0}x", baseline_s / wake_med);
}
