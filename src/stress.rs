//! `styrlogg stress` (hidden): concurrent durable appends of realistic
//! events, reporting latency and throughput; the crash test's child.

use crate::cli::{Cli, StressArgs};
use anyhow::{Context, Result};
use engine::{AppendRequest, CommandId, EventStore, ExpectedVersion, InstanceId, OpenMode};
use std::io::Write;
use std::time::{Duration, Instant};

pub async fn run(cli: &Cli, args: &StressArgs) -> Result<()> {
    anyhow::ensure!(args.writers >= 1 && args.batch >= 1, "--writers and --batch must be at least 1");
    let store = crate::open(cli, OpenMode::CreateIfMissing).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let store = store.clone();
        let prefix = args.prefix.clone();
        let (commands, batch, print) = (args.commands, args.batch, args.print_acks);
        tasks.push(tokio::spawn(async move {
            let instance = InstanceId::new(format!("{prefix}-w{w}"))?;
            let mut latencies = Vec::with_capacity(commands as usize);
            for i in 0..commands {
                let command = format!("{prefix}-w{w}-{i}");
                let req = AppendRequest {
                    instance: instance.clone(),
                    expected: ExpectedVersion::Any,
                    command_id: CommandId::new(command.clone())?,
                    events: vec![styrlogg::sample_event("beslut_om_deltagande"); batch],
                };
                let t = Instant::now();
                store.append(req).await?;
                latencies.push(t.elapsed());
                if print {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {command}")?;
                    out.flush()?;
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("writer task")??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let events = latencies.len() * args.batch;
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{} writers x {} commands x {} events: {} events in {:.3} s = {:.0} events/s; append latency p50 {:?} p99 {:?} max {:?}",
        args.writers,
        args.commands,
        args.batch,
        events,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    store.close()?;
    Ok(())
}
