//! The `styrlogg` binary: parses the command line, opens the store, runs one
//! command, and maps failures to exit codes. The only code that knows the
//! terminal and output formats.

mod cli;
mod demo;
mod flow;
mod load;
mod output;
mod personal;
mod remind_cmd;
mod render;
mod report_render;
mod reports;
mod stress;
mod trust_cmd;
mod user_cmd;
mod web;

use anyhow::{bail, Context, Result};
use cli::{Cli, Command, Format};
use engine::{
    import_chunks, AnyStore, AppendError, ChainVerifier, EmbeddedStore, EventStore, InstanceId, JetStreamOptions,
    JetStreamStore, OpenMode, RecordedEvent, StoreError, SystemClock,
};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// A refusal the user can fix: exit 1 rather than 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn main() -> ExitCode {
    // `println!` and `eprintln!` panic when their reader went away
    // (`styrlogg workflows list | head -1`); that ends the command quietly,
    // as a write through `output::stdout` does (status 141).
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let said = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if said.starts_with("failed printing to std") && said.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info)
    }));
    let matches = match <Cli as clap::CommandFactory>::command().try_get_matches() {
        Ok(matches) => matches,
        // `--help` and `--version` as every other output: 141 once the
        // reader went away.
        Err(e) if !e.use_stderr() => match e.print() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
            // Printed once: `e.exit()` would print it again.
            _ => std::process::exit(e.exit_code()),
        },
        Err(e) => e.exit(),
    };
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    cli.data_given = !matches!(matches.value_source("data"), None | Some(clap::parser::ValueSource::DefaultValue));
    let from_env = |arg: &str| matches.value_source(arg) == Some(clap::parser::ValueSource::EnvVariable);
    (cli.data_from_env, cli.today_from_env, cli.workflows_from_env) =
        (from_env("data"), from_env("today"), from_env("workflows"));
    init_tracing(cli.verbose);
    output::protect(output::Protected {
        store: cli.nats.is_none().then(|| cli.data.clone()),
        keys: personal::key_dir(&cli, &cli.data),
        signing_key: trust_cmd::signing_key_path(&cli).ok(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("styrlogg: error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // Standard output's reader went away (`log | head`): nothing to say.
        Err(err) if output::ReaderGone::caused(&err) => ExitCode::from(141),
        // Interrupted, and what was under way is finished and said.
        Err(err) if err.chain().any(|c| c.is::<output::Interrupted>()) => {
            let code = err.chain().find_map(|c| c.downcast_ref::<output::Interrupted>()).map_or(130, |i| i.0);
            ExitCode::from(code)
        }
        Err(err) => {
            // Not `eprintln!`: a closed stderr must not turn an error's
            // status into a panic's.
            let _ = writeln!(std::io::stderr(), "styrlogg: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// One line on standard output. A reader that went away (`verify | head
/// -1`) is not an error: the exit status still tells the verdict.
fn say(line: &str) -> Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Refused>() || cause.is::<workflows::Rejection>() || cause.is::<reports::NothingThere>() {
            return 1;
        }
        if let Some(e) = cause.downcast_ref::<AppendError>() {
            return if matches!(e, AppendError::Store(_)) { 3 } else { 1 };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            // A wrong --data is the user's to fix; everything else is the system's.
            return if matches!(
                e,
                StoreError::NotFound { .. } | StoreError::NotAStore { .. } | StoreError::ReadOnly { .. }
            ) {
                1
            } else {
                3
            };
        }
    }
    3
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a terminal: a log file or a cron mail gets plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The stream and subjects --nats-stream names: the default stream
/// `STYRLOGG` keeps `styrlogg.log.<instance>` and announces on
/// `styrlogg.events.<instance>`; a stream `NAME` keeps
/// `styrlogg.<name>.log.<instance>` and announces on
/// `styrlogg.<name>.events.<instance>`, so several logs share a server.
pub(crate) fn nats_options(cli: &Cli, url: &str) -> JetStreamOptions {
    let base = if cli.nats_stream == "STYRLOGG" {
        "styrlogg".to_string()
    } else {
        format!("styrlogg.{}", cli.nats_stream.to_lowercase())
    };
    JetStreamOptions {
        url: url.to_string(),
        stream: cli.nats_stream.clone(),
        subject_prefix: format!("{base}.log"),
        events_prefix: Some(format!("{base}.events")),
        replicas: usize::from(cli.nats_replicas),
        ..Default::default()
    }
}

/// Opens the log the command line names: JetStream with --nats, else the
/// embedded store in --data.
/// The store as messages name it: the data directory, or the stream and
/// server with --nats.
pub(crate) fn store_name(cli: &Cli) -> String {
    match &cli.nats {
        Some(url) => format!("the JetStream stream {} at {url}", cli.nats_stream),
        None => cli.data.display().to_string(),
    }
}

pub(crate) async fn open(cli: &Cli, mode: OpenMode) -> Result<AnyStore> {
    match &cli.nats {
        Some(url) => {
            let opts = nats_options(cli, url);
            Ok(AnyStore::JetStream(JetStreamStore::open(opts, mode, Arc::new(SystemClock)).await?))
        }
        None => {
            let new = mode == OpenMode::CreateIfMissing && !cli.data.join("STORE").exists();
            let store = open_path(&cli.data, mode)?;
            if new {
                // A misspelt --data makes a store of its own: said, so the
                // record does not go on in the wrong place unnoticed.
                eprintln!("made a new store at {}", cli.data.display());
            }
            if let Some((position, reason)) = store.damage() {
                // Reports may be answered from a projection checkpoint made
                // before the damage, and read nothing that meets it: said
                // here, so no command's answer looks like a sound log's.
                eprintln!(
                    "warning: the log of {} was found damaged at position {position} ({reason}); it takes no \
                     more writes, and what is shown may rest on damaged events. `styrlogg verify` finds where; \
                     README, \"Checking the record\", says what to do",
                    cli.data.display()
                );
            }
            Ok(AnyStore::Embedded(store))
        }
    }
}

/// Opens the embedded store. sled lets one process at a time hold it; when
/// another holds it briefly (a reminder pass, another command), wait for it
/// for up to [`store_lock_wait`] before giving up with a clear error.
pub(crate) fn open_path(data: &std::path::Path, mode: OpenMode) -> Result<EmbeddedStore> {
    import_finished(data)?;
    let started = std::time::Instant::now();
    let wait = store_lock_wait();
    let mut told = false;
    loop {
        match EmbeddedStore::open(data, mode, Arc::new(SystemClock)) {
            Err(StoreError::Locked { .. }) if started.elapsed() < wait => {
                if !told && started.elapsed() > std::time::Duration::from_secs(1) {
                    eprintln!("waiting for another process to let go of {} ...", data.display());
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other.map_err(anyhow::Error::from),
        }
    }
}

/// How long a command waits for another process to let go of the store:
/// 10 seconds, or `STYRLOGG_LOCK_WAIT_MS` milliseconds (at most 10 minutes;
/// tests use it to find a held store quickly).
fn store_lock_wait() -> std::time::Duration {
    const DEFAULT_MS: u64 = 10_000;
    const MAX_MS: u64 = 600_000;
    let ms = std::env::var("STYRLOGG_LOCK_WAIT_MS").ok().and_then(|v| v.trim().parse::<u64>().ok());
    std::time::Duration::from_millis(ms.unwrap_or(DEFAULT_MS).min(MAX_MS))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(day) = cli.today.filter(|_| cli.command.writes_as_of_today()) {
        let real = flow::real_today();
        if day > real {
            bail!(Refused(format!(
                "--today {day}{} is after today ({real}): a command that records takes today as at most the real \
                 date, so nothing is recorded as of a day that has not come; status and reports take any --today",
                if cli.today_from_env { " (from STYRLOGG_TODAY)" } else { "" }
            )));
        }
    }
    if let Some(dir) = &cli.workflows {
        if !dir.is_dir() {
            bail!(Refused(format!(
                "--workflows {}{}: {}; give the directory of your own definitions (*.toml)",
                dir.display(),
                if cli.workflows_from_env { " (from STYRLOGG_WORKFLOWS)" } else { "" },
                if dir.exists() { "not a directory" } else { "no such directory" }
            )));
        }
    }
    match &cli.command {
        Command::Log { instance, format } => {
            let store = open(&cli, OpenMode::MustExist).await?;
            let mut out = output::stdout();
            // The text listing opens personal facts whose keys are here and
            // not erased; JSON is the log as stored (the export format).
            let keys = personal::Keys::for_cli(&cli);
            let erased: std::collections::BTreeSet<engine::PersonId> =
                personal::disclosure(&store, false).await?.erasures.into_keys().collect();
            let mut emit = |e: &RecordedEvent| -> Result<()> {
                match format {
                    Format::Text => {
                        let mut e = e.clone();
                        personal::open_record(&keys, &erased, &mut e)?;
                        write!(out, "{}", render::text(&e))?
                    }
                    Format::Json => writeln!(out, "{}", render::json(e))?,
                }
                Ok(())
            };
            match instance {
                Some(id) => {
                    let id = InstanceId::new(id.clone()).map_err(|e| Refused(e.to_string()))?;
                    let events = store.read_instance(&id, 1).await?;
                    if events.is_empty() {
                        bail!(Refused(format!("no events for instance {id}")));
                    }
                    for e in &events {
                        emit(e)?;
                    }
                }
                None => for_each_event(&store, |e| emit(e)).await?,
            }
            out.flush()?;
            store.close()?;
        }
        Command::Verify { checkpoint, key } => {
            // The checkpoint file and the keys first: a bad one fails before the chain walk prints OK.
            let checkpoint = checkpoint.as_deref().map(|f| trust_cmd::read_checkpoint_to_verify(f, key)).transpose()?;
            // Damage that keeps the store from opening is verify's finding
            // too: the same FAILED line and exit 1 as damage found by the walk.
            let store = match open(&cli, OpenMode::MustExist).await {
                Ok(s) => s,
                Err(e) => match e.chain().find_map(|c| c.downcast_ref::<StoreError>()) {
                    Some(e @ StoreError::Corrupt { .. }) => {
                        let p = finding(e);
                        say(&format!("FAILED: {p}"))?;
                        bail!(Refused(format!(
                            "verification failed: {p}; restore from an export or a replica{}",
                            salvage_advice(&cli)
                        )));
                    }
                    _ => return Err(e),
                },
            };
            let mut verdict = verify(&store).await?;
            if let (Ok(ok), AnyStore::Embedded(s)) = (&verdict, &store) {
                // Every byte of the log's files, and the index against the log.
                verdict = match s.check_files() {
                    Ok(r) => Ok(format!(
                        "{ok}\nOK: {} segment file(s), {} frames, {} MiB checked byte by byte; the index matches the log{}",
                        r.segments,
                        r.frames,
                        r.bytes >> 20,
                        if r.mark_lifted {
                            "\nOK: the DAMAGED mark an earlier read left is removed: the store takes writes again"
                        } else {
                            ""
                        }
                    )),
                    Err(e) => Err(finding(&e)),
                };
            }
            match verdict {
                Ok(ok) => say(&ok)?,
                Err(p) => {
                    store.close()?;
                    say(&format!("FAILED: {p}"))?;
                    let advice = if p.contains("rebuild --index") {
                        String::new()
                    } else {
                        format!("; restore from an export or a replica{}", salvage_advice(&cli))
                    };
                    bail!(Refused(format!("verification failed: {p}{advice}")));
                }
            }
            if let Some(cp) = &checkpoint {
                let result = trust_cmd::verify_checkpoint(&cli, &store, cp).await;
                store.close()?;
                say(&result?)?;
            } else {
                store.close()?;
            }
        }
        Command::Checkpoint { output } => trust_cmd::checkpoint(&cli, output.as_deref()).await?,
        Command::Prove { event, checkpoint, from, output } => {
            trust_cmd::prove(&cli, event.as_deref(), checkpoint.as_deref(), from.as_deref(), output.as_deref()).await?
        }
        Command::CheckProof { proof, checkpoint, old_checkpoint, key } => {
            trust_cmd::check_proof(proof, checkpoint, old_checkpoint.as_deref(), key)?
        }
        Command::Key(cmd) => trust_cmd::key(&cli, cmd).await?,
        Command::Erase { person, org, reason, decision, dry_run, by } => {
            personal::erase(&cli, person, org.as_deref(), reason, decision, *dry_run, by).await?
        }
        Command::Persons { org } => personal::persons(&cli, org.as_deref()).await?,
        Command::Head => {
            let store = open(&cli, OpenMode::MustExist).await?;
            let head = store.head().await?;
            let mut out = output::stdout();
            writeln!(out, "position {} hash {}", head.position, head.hash)?;
            out.flush()?;
            store.close()?;
        }
        Command::Export { output, salvage: false } => {
            let store = open(&cli, OpenMode::MustExist).await.map_err(salvage_hint(&cli))?;
            let mut sink = output::Output::create(output.as_deref())?;
            let mut n = 0u64;
            for_each_event(&store, |e| {
                n += 1;
                writeln!(sink, "{}", render::json(e)).map_err(Into::into)
            })
            .await
            .map_err(salvage_hint(&cli))?;
            sink.finish()?;
            tracing::info!(events = n, "exported");
            store.close()?;
        }
        Command::Export { output, salvage: true } => {
            if cli.nats.is_none() {
                import_finished(&cli.data)?;
            }
            return export_salvaged(&cli, output.as_deref());
        }
        Command::Import { file } => import(&cli, file).await?,
        Command::Demo => demo::run(&cli).await?,
        Command::Load { files } => load::run(&cli, files).await?,
        Command::Workflows(cmd) => flow::workflows(&cli, cmd)?,
        Command::Audit { instance, org, out } => reports::audit(&cli, instance.as_deref(), org.as_deref(), out).await?,
        Command::Deadlines { org, out } => reports::deadlines(&cli, org.as_deref(), out).await?,
        Command::Report(cmd) => reports::report(&cli, cmd).await?,
        Command::Rebuild { index } => {
            if *index {
                if cli.nats.is_some() {
                    bail!(Refused("--index is for the embedded store; a JetStream log has no local index".into()));
                }
                import_finished(&cli.data)?;
                let rebuilt = engine::EmbeddedStore::rebuild_index(&cli.data)?;
                let head = rebuilt.head;
                println!(
                    "rebuilt the index of {} from its log: head position {} hash {}",
                    cli.data.display(),
                    head.position,
                    head.hash
                );
                if let Some(old) = &rebuilt.kept {
                    println!("the old index is kept as {}; nothing reads it, and it may be removed", old.display());
                }
                // Those of earlier rebuilds are still there too: said, so
                // they do not pile up unnoticed.
                let mut earlier: Vec<std::path::PathBuf> = std::fs::read_dir(&cli.data)
                    .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                earlier.retain(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("index.old-"))
                        && p.file_name() != rebuilt.kept.as_ref().and_then(|k| k.file_name())
                });
                earlier.sort();
                if !earlier.is_empty() {
                    let names: Vec<String> = earlier.iter().map(|p| p.display().to_string()).collect();
                    println!(
                        "{} older index(es) kept by earlier rebuilds, which nothing reads either: {}",
                        earlier.len(),
                        names.join(", ")
                    );
                }
            }
            reports::rebuild(&cli).await?
        }
        Command::Remind { watch, dry_run, channels } => remind_cmd::run(&cli, *watch, *dry_run, channels).await?,
        Command::Start { workflow, instance, org, dnr, on, by } => {
            flow::start(&cli, workflow, instance, org, dnr.as_deref(), *on, by).await?
        }
        Command::Record { instance, step, on, facts, facts_file, deviation, by } => {
            flow::record(&cli, instance, step, *on, facts, facts_file.as_deref(), deviation.as_deref(), by).await?
        }
        Command::Correct { event, reason, date, facts, on, by } => {
            flow::correct(&cli, event, reason, *date, facts, *on, by).await?
        }
        Command::Deadline { instance, step, extend_to, waive, reason, on, by } => {
            flow::deadline(&cli, instance, step, *extend_to, *waive, reason, *on, by).await?
        }
        Command::Status { instance, format } => flow::status(&cli, instance.as_deref(), *format).await?,
        Command::Stress(args) => stress::run(&cli, args).await?,
        Command::Serve(args) => web::serve(&cli, args).await?,
        Command::User(cmd) => user_cmd::run(&cli, cmd)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What `verify` found, as its `FAILED` line says it: damage without the
/// advice to run `verify` that other commands give.
fn finding(e: &StoreError) -> String {
    match e {
        StoreError::Corrupt { position, reason } => format!("the log is corrupt at position {position}: {reason}"),
        other => other.to_string(),
    }
}

/// Walks the whole chain: `Ok("OK: ...")` when it is intact, `Err(what)`
/// at the first break.
pub(crate) async fn verify(store: &impl EventStore) -> Result<std::result::Result<String, String>> {
    let head = store.head().await?;
    let mut verifier = ChainVerifier::new();
    let mut broken = None;
    let walked = for_each_event(store, |e| {
        verifier.check(e).map_err(|b| {
            broken = Some(b.to_string());
            anyhow::anyhow!("chain broken")
        })
    })
    .await;
    let problem = match (broken, walked) {
        (Some(b), _) => Some(b),
        (None, Err(e)) => Some(match e.chain().find_map(|c| c.downcast_ref::<StoreError>()) {
            Some(s) => finding(s),
            None => format!("{e:#}"),
        }),
        (None, Ok(())) if verifier.position() != head.position => {
            Some(format!("the log ends at position {} but its head says {}", verifier.position(), head.position))
        }
        (None, Ok(())) if verifier.head() != head.hash => {
            Some("the last event's hash differs from the recorded head".into())
        }
        _ => None,
    };
    if let Some(p) = problem {
        return Ok(Err(p));
    }
    // The log's own records (signing keys, erasures) are kept as an
    // instance of their own: counted apart, so the count is that of the
    // workflow instances, as `rebuild` and `status` give it.
    let own = verifier.saw(&engine::InstanceId::system());
    let report = verifier.finish();
    let instances = report.instances - u64::from(own);
    Ok(Ok(format!(
        "OK: {} events in {instances} instance{}{}, chain intact; head position {} hash {}",
        report.events,
        if instances == 1 { "" } else { "s" },
        if own { " and the log's own records" } else { "" },
        head.position,
        report.head_hash
    )))
}

/// Calls `f` on every event in position order, a page at a time.
/// What `verify` adds when it finds the log damaged: the intact part of
/// an embedded log can be taken out.
fn salvage_advice(cli: &Cli) -> String {
    if cli.nats.is_some() {
        return String::new();
    }
    "; `styrlogg export --salvage --output FILE` writes every event before the damage".into()
}

/// Points an export that met damage in the log at `export --salvage`
/// (embedded store only; a JetStream log has replicas instead).
fn salvage_hint(cli: &Cli) -> impl Fn(anyhow::Error) -> anyhow::Error + '_ {
    move |e| {
        let damaged = e.chain().any(|c| matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Corrupt { .. })));
        if damaged && cli.nats.is_none() {
            e.context("cannot export the whole log; `styrlogg export --salvage --output FILE` writes every event before the damage")
        } else {
            e
        }
    }
}

/// `export --salvage`: every event of the embedded store's files up to
/// the first damage, read without opening the store
/// ([`engine::embedded::salvage`]). Exit 1 when it stopped early.
fn export_salvaged(cli: &Cli, output: Option<&std::path::Path>) -> Result<ExitCode> {
    if cli.nats.is_some() {
        // Given before the subcommand, `--nats` escapes clap's conflict check.
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ArgumentConflict, "the argument '--salvage' cannot be used with '--nats <URL>': a JetStream log is restored from its replicas")
            .exit();
    }
    let mut sink = output::Output::create(output)?;
    let name = sink.name();
    let mut gone = false;
    let found = engine::embedded::salvage(&cli.data, |e| {
        let written = writeln!(sink, "{}", render::json(e));
        gone = written.as_ref().is_err_and(|e| e.get_ref().is_some_and(|e| e.is::<output::ReaderGone>()));
        written
    });
    if gone {
        return Err(output::ReaderGone.into());
    }
    let found = found?;
    if found.head.position == 0 {
        // Nothing to import: no file is left behind.
        let (position, why) = found.stopped.unwrap_or((1, "the log holds no events".into()));
        bail!(Refused(format!("nothing could be salvaged from {}: position {position}: {why}", cli.data.display())));
    }
    sink.finish()?;
    let head = found.head;
    let Some((position, why)) = found.stopped else {
        eprintln!(
            "styrlogg: wrote all {} events to {name}: every byte of the log's files checked out (head {})",
            head.position, head.hash
        );
        return Ok(ExitCode::SUCCESS);
    };
    let closed = match found.closed_at {
        Some(c) if c.position > head.position => format!(
            "; when the store was last closed its log reached position {}, so at least {} events are not in it",
            c.position,
            c.position - head.position
        ),
        _ => String::new(),
    };
    // A file to import later; or a stream (standard output, /dev/stdout, a
    // named pipe) that is gone once read.
    let import = match output.filter(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file())) {
        Some(file) => format!("Import {} into a new directory (`styrlogg --data NEW import FILE`)", file.display()),
        None => "Import them into a new directory (`styrlogg --data NEW import -` reads them from a pipe)".into(),
    };
    eprintln!(
        "styrlogg: wrote events 1 to {} to {name} (head {}), and stopped at position {position}: {why}{closed}.\n\
         {import}; what follows the damage must come from an earlier export or a replica.",
        head.position, head.hash
    );
    Ok(ExitCode::from(1))
}

async fn for_each_event(store: &impl EventStore, mut f: impl FnMut(&RecordedEvent) -> Result<()>) -> Result<()> {
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        next = last.event.position + 1;
        for e in &page {
            f(e)?;
        }
    }
}

/// Reads and checks the whole file before writing anything
/// ([`engine::export::read_export`]), so a bad line leaves the store as it
/// was.
async fn import(cli: &Cli, file: &std::path::Path) -> Result<()> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = flow::open_input(file, "export")?;
        Box::new(std::io::BufReader::new(f))
    };
    let events = engine::export::read_export(reader).map_err(|e| {
        let text = format!("{}: {e}", file.display());
        if e.is_io() {
            anyhow::anyhow!(text)
        } else {
            Refused(text).into()
        }
    })?;
    let store = open(cli, OpenMode::CreateIfMissing).await?;
    let head = store.head().await?;
    if head.position != 0 {
        bail!(Refused(format!(
            "import loads into an empty store; {} already holds {} events",
            store_name(cli),
            head.position
        )));
    }
    let total = events.len();
    let keys = personal::Keys::for_cli(cli);
    // Only for a note at the end: a key store that cannot be read stops
    // nothing here, and says so.
    let keys_missing = personal::keys_missing_for(&keys, &events).unwrap_or_else(|e| {
        eprintln!("note: cannot look in the key store for the persons in this log: {e:#}");
        0
    });
    // Until the last event is in, the store is marked: an import cut off
    // (Ctrl-C, a full disk, a crash) leaves a log that is a true prefix of
    // the export, whole and verifiable, and nothing may take it for the
    // whole. `open` refuses a marked store.
    let mark = cli.nats.is_none().then(|| cli.data.join(IMPORTING_MARK));
    if let Some(mark) = &mark {
        let said = format!("{total} events from {}, begun {}", file.display(), jiff::Timestamp::now());
        write_synced(mark, &said).with_context(|| format!("cannot write {}", mark.display()))?;
    }
    let mut done = 0;
    let mut told = std::time::Instant::now();
    for chunk in import_chunks(events) {
        done += chunk.len();
        store.import(chunk).await?;
        if total > 10_000 && (told.elapsed() >= std::time::Duration::from_secs(1) || done == total) {
            eprintln!("imported {done}/{total} events");
            told = std::time::Instant::now();
        }
    }
    let head = store.head().await?;
    store.close()?;
    if let Some(mark) = &mark {
        std::fs::remove_file(mark).with_context(|| format!("cannot remove {}", mark.display()))?;
        std::fs::File::open(&cli.data).and_then(|d| d.sync_all()).context("syncing the store's directory")?;
    }
    println!("imported {total} events; head position {} hash {}", head.position, head.hash);
    if keys_missing > 0 {
        let here = keys.dir().map_or_else(|| "none is given (--keys DIR)".to_string(), |d| d.display().to_string());
        eprintln!(
            "note: {keys_missing} person(s) in this log have sealed personal data and no key in the key store \
             here ({here}): bring the key store they were sealed with (copy it there, or give --keys DIR); until \
             then their facts read as \"key missing\""
        );
    }
    Ok(())
}

/// The mark of an import under way in an embedded store's directory.
const IMPORTING_MARK: &str = "IMPORTING";

/// Refuses the store at `data` while it holds an import that did not
/// finish: its log is a true prefix of the export, and nothing may take it
/// for the whole (no report, no reminder, no salvage, no rebuild).
fn import_finished(data: &std::path::Path) -> Result<()> {
    let mark = data.join(IMPORTING_MARK);
    if !mark.exists() {
        return Ok(());
    }
    let said = std::fs::read_to_string(&mark).unwrap_or_default();
    bail!(Refused(format!(
        "{} holds an import that did not finish ({}): its log is only the first part of the export, and it is \
         not used. Remove the directory and import the export again",
        data.display(),
        said.trim()
    )))
}

/// Writes `text` to a new file at `path`, durably (the file and its
/// directory synced): the store's marks (`IMPORTING`, `DEMO`).
pub(crate) fn write_synced(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
