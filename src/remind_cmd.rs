//! `styrlogg remind`: one pass, or the long-running service, over the
//! embedded store, with the channels the configuration allows.

use crate::cli::{ChannelArg, Cli};
use crate::{open, Refused};
use anyhow::{bail, Result};
use engine::{AnyStore, Clock, EmbeddedStore, OpenMode, SystemClock};
use std::sync::Arc;
use std::time::Duration;
use styrlogg::remind::{self, Channel, Config, EmailChannel, Holding, LogChannel, NatsChannel, Service};

/// The configuration: --config FILE (which must exist), else
/// ./styrlogg.toml when present, else defaults (log channel only).
pub fn config(cli: &Cli) -> Result<Config> {
    match &cli.config {
        Some(p) if !p.exists() => bail!(Refused(format!("--config {}: no such file", p.display()))),
        Some(p) => Config::load(p).map_err(|e| Refused(format!("{e:#}")).into()),
        None if std::path::Path::new("styrlogg.toml").exists() => {
            Config::load(std::path::Path::new("styrlogg.toml")).map_err(|e| Refused(format!("{e:#}")).into())
        }
        None => Ok(Config::default()),
    }
}

pub(crate) async fn channels(cli: &Cli, config: &Config, asked: &[ChannelArg]) -> Result<Vec<Arc<dyn Channel>>> {
    let asked: Vec<ChannelArg> = if asked.is_empty() {
        let mut v = vec![ChannelArg::Log];
        if config.smtp.is_some() {
            v.push(ChannelArg::Email);
        }
        if config.nats.is_some() {
            v.push(ChannelArg::Nats);
        }
        v
    } else {
        asked.to_vec()
    };
    let mut out: Vec<Arc<dyn Channel>> = Vec::new();
    for c in asked {
        match c {
            ChannelArg::Log => out.push(Arc::new(LogChannel)),
            ChannelArg::Email => {
                let Some(smtp) = &config.smtp else {
                    bail!(Refused("--channel email needs an [smtp] table in the configuration (see README)".into()))
                };
                if config.recipients.is_empty() {
                    bail!(Refused("--channel email needs [recipients] in the configuration: addresses per role".into()))
                }
                out.push(Arc::new(EmailChannel::new(smtp)?));
            }
            ChannelArg::Nats => {
                let nats = config.nats.clone().unwrap_or_default();
                let Some(url) = nats.url.clone().or_else(|| cli.nats.clone()) else {
                    bail!(Refused(
                        "--channel nats needs a server: [nats] url = ... in the configuration, or --nats".into()
                    ))
                };
                out.push(Arc::new(NatsChannel::connect(&url, &nats).await?));
            }
        }
    }
    out.dedup_by(|a, b| a.name() == b.name());
    Ok(out)
}

pub async fn run(cli: &Cli, watch: bool, dry_run: bool, asked: &[ChannelArg]) -> Result<()> {
    let config = config(cli)?;
    let channels = channels(cli, &config, asked).await?;
    let names: Vec<&str> = channels.iter().map(|c| c.name()).collect();
    eprintln!("reminders by {}, for the log {}", names.join(", "), crate::store_name(cli));
    let mut service = Service::new(config, channels);
    if dry_run {
        use std::io::Write;
        let store = open(cli, OpenMode::MustExist).await?;
        let now = SystemClock.now();
        let today = cli.today.unwrap_or_else(|| remind::swedish_today(now));
        let (lines, sends, missed) = service.preview(&store, today, now).await?;
        store.close()?;
        let mut out = crate::output::stdout();
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        writeln!(
            out,
            "dry run as of {today}: {sends} notice(s) would be sent and {missed} missed deadline(s) would be recorded; nothing was sent or recorded"
        )?;
        out.flush()?;
        return Ok(());
    }
    if watch {
        let shutdown = shutdown_signal()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Checks that the store opens before going quiet.
        match open(cli, OpenMode::MustExist).await? {
            AnyStore::Embedded(s) => {
                s.close()?;
                let data = cli.data.clone();
                let hold = Holding::Reopen {
                    open: Box::new(move || crate::open_path(&data, OpenMode::MustExist)),
                    close: |s: EmbeddedStore| Ok(s.close()?),
                    poll: Duration::from_secs(service.config.remind.poll_s.max(1)),
                };
                eprintln!(
                    "watching; the store is opened only while a pass runs, new events are picked up within {} s; Ctrl-C or SIGTERM stops",
                    service.config.remind.poll_s
                );
                remind::watch(&mut service, hold, clock, shutdown).await?;
            }
            store => {
                eprintln!("watching {}; Ctrl-C or SIGTERM stops", store.describe());
                remind::watch(&mut service, Holding::Keep(store), clock, shutdown).await?;
            }
        }
        eprintln!("reminder service stopped");
    } else {
        // Ctrl-C, SIGTERM or SIGHUP during the pass lets the send in
        // progress finish (within its channel's timeout) and record its
        // outcome, as the service does: a notice cut off mid-send would
        // stay in doubt and never be resent. The handlers are installed
        // once the store is open (a wait for it ends at the first Ctrl-C,
        // with nothing claimed); a second signal stops at once.
        let store = open(cli, OpenMode::MustExist).await?;
        let mut signals = Signals::install()?;
        let stop = service.stopper();
        let now = SystemClock.now();
        let today = cli.today.unwrap_or_else(|| remind::swedish_today(now));
        let (r, interrupted) = {
            let pass = service.pass(&store, today, now);
            tokio::pin!(pass);
            tokio::select! {
                r = &mut pass => (r, None),
                code = signals.next() => {
                    eprintln!(
                        "interrupted: finishing the notice being sent (at most its channel's timeout), and sending \
                         no more; interrupt again to stop at once"
                    );
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    tokio::select! {
                        r = &mut pass => (r, Some(code)),
                        again = signals.next() => {
                            eprintln!(
                                "stopped at once: a notice being sent may stay in doubt (`styrlogg status` shows it)"
                            );
                            std::process::exit(i32::from(again));
                        }
                    }
                }
            }
        };
        store.close()?;
        let r = r?;
        say_pass(&r);
        if let Some(code) = interrupted {
            eprintln!("stopped: what this run did not reach is sent by the next run");
            return Err(anyhow::Error::new(crate::output::Interrupted(code)));
        }
        if r.not_sent() > 0 {
            // Exit 3 so that cron and monitoring notice; the failed ones are
            // retried on a later run.
            bail!(
                "{} of {} notice(s) could not be sent in this run (see above and `styrlogg status`)",
                r.not_sent(),
                r.not_sent() + r.delivered
            );
        }
    }
    Ok(())
}

/// Prints what a one-shot pass did: one line on standard output, then a
/// line on standard error for each notice that needs a look.
fn say_pass(r: &remind::PassReport) {
    let mut line = format!("{} notice(s) sent, {} failed (retried on a later run)", r.delivered, r.failed);
    if r.refused > 0 {
        line.push_str(&format!(", {} refused for good (not retried)", r.refused));
    }
    if r.in_doubt_now > 0 {
        line.push_str(&format!(", {} in doubt (not resent)", r.in_doubt_now));
    }
    if !r.waiting.is_empty() {
        line.push_str(&format!(", {} waiting to be retried", r.waiting.len()));
    }
    line.push_str(&format!(", {} missed deadline(s) recorded", r.missed_recorded));
    if !r.stale_missed.is_empty() {
        line.push_str(&format!(", {} missed too long ago to escalate", r.stale_missed.len()));
    }
    println!("{line}");
    for d in &r.in_doubt {
        eprintln!("in doubt, not resent: {d} (its outcome was never recorded: it may or may not have gone out)");
    }
    for d in &r.waiting {
        eprintln!("failed before, waiting to be retried: {d}");
    }
    for d in &r.given_up {
        eprintln!("gave up (refused for good, or every attempt failed): {d}");
    }
    for d in &r.refused_recipients {
        eprintln!("recipient refused for good, the others got the notice: {d}");
    }
    for d in &r.unaddressed {
        eprintln!("warning: {d}");
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught from [`Signals::install`] on.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal, as the exit status a shell gives a process it
    /// stopped: 130, 143 or 129.
    async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.interrupt.recv() => 130,
            _ = self.terminate.recv() => 143,
            _ = self.hangup.recv() => 129,
        }
    }
}

/// Installs the handlers for Ctrl-C (SIGINT) and SIGTERM at once, so a
/// signal that arrives during the first pass is not lost, and returns a
/// future that resolves when either arrives.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
