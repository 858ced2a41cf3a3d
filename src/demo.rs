//! `styrlogg demo`: loads the five built-in scenarios (the real histories
//! of the source documents) with the same loader as `styrlogg load`, then
//! shows what the reports make of them: each instance's status, the
//! deviations and late steps, the next deadlines, a compliance checklist,
//! the dialogue register, an annual report section, and the chain check.
//! Every report comes from the builders in `projections/` and the text
//! renderer; this module only chooses what to show.

use crate::cli::Cli;
use crate::{load, open_path, report_render, reports};
use anyhow::{Context, Result};
use engine::{EventStore, OpenMode};
use jiff::civil::{date, Date};
use projections::{annual, audit, compliance, deadlines, dialogues, Lang};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `writeln!` into the demo's output buffer (writing to a String cannot fail).
macro_rules! outln {
    ($o:expr, $($arg:tt)*) => {{
        let _ = writeln!($o, $($arg)*);
    }};
}
use workflows::builtin;
use workflows::status::{InstanceStatus, StepState};

/// Reports are made as of the date of the newest source document (the
/// Älvsjö proposal), unless --today says otherwise.
const STORY_TODAY: Date = date(2015, 10, 22);
/// The participant whose compliance checklist is shown.
const COMPLIANCE_INSTANCE: &str = "harryda-2012";
/// The annual report shown: Härryda's joining year, the one its source
/// dates (it dates nothing in 2013).
const ANNUAL_ORG: &str = "Härryda kommun";
const ANNUAL_YEAR: i16 = 2012;
/// Text reports are laid out for this many columns.
const WIDTH: usize = 160;
/// The file in a `--data` directory the demo made: only such a store, or a
/// new directory, takes the demo's histories.
const DEMO_MARK: &str = "DEMO";

pub async fn run(cli: &Cli) -> Result<()> {
    if cli.nats.is_some() {
        anyhow::bail!(crate::Refused(
            "demo runs on an embedded store of its own (--data DIR keeps it); to put the scenarios on JetStream: styrlogg --nats URL --keys DIR load workflows/scenarios/*.toml".into()
        ));
    }
    let started = std::time::Instant::now();
    let (dir, temporary) = match cli.data_given {
        true => (cli.data.clone(), false),
        false => (temporary_dir(), true),
    };
    if !fresh(&dir) && !dir.join(DEMO_MARK).is_file() {
        anyhow::bail!(crate::Refused(format!(
            "{} is not a store an earlier demo made ({}): the demo adds its histories only to a new directory or \
             to its own store, never to one in use, where they could not be taken out again; give --data a new \
             directory{} (a store a demo kept before the mark existed: put an empty file named {DEMO_MARK} in it)",
            dir.display(),
            if dir.is_dir() { "it has no demo mark" } else { "it is no directory" },
            if cli.data_from_env { " (this one came from STYRLOGG_DATA)" } else { "" }
        )));
    }
    let keys_dir = crate::personal::key_dir(cli, &dir);
    // The demo's people get keys too: never in a key store in use.
    if let (Some(given), true) = (&cli.keys, fresh(&dir)) {
        if !fresh(given) {
            anyhow::bail!(crate::Refused(format!(
                "--keys {} holds a key store, and the demo would add its people's keys to it; run the demo \
                 without --keys (STYRLOGG_KEYS), or with a new directory",
                given.display()
            )));
        }
    }
    let guard = temporary.then(|| Removal(dir.clone(), if cli.keys.is_none() { keys_dir } else { None }));
    let mut out = String::new();
    let result = show(cli, &dir, temporary, &mut out).await;
    drop(guard);
    if temporary {
        let _ = writeln!(out, "\nRemoved the temporary store {}.", dir.display());
    }
    if result.is_ok() {
        let _ = writeln!(out, "Done in {:.2} s.", started.elapsed().as_secs_f64());
    }
    // A closed pipe (`styrlogg demo | head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    result
}

/// Whether `dir` is new: absent, or an empty directory.
fn fresh(dir: &Path) -> bool {
    !dir.exists() || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Removes the temporary store when the demo ends, however it ends.
struct Removal(PathBuf, Option<PathBuf>);

impl Drop for Removal {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("styrlogg: could not remove the temporary store {}: {e}", self.0.display());
        }
        if let Some(keys) = self.1.as_ref().filter(|k| k.exists()) {
            if let Err(e) = std::fs::remove_dir_all(keys) {
                eprintln!("styrlogg: could not remove the temporary key store {}: {e}", keys.display());
            }
        }
    }
}

/// A directory under the system's temporary directory that does not exist yet.
fn temporary_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("styrlogg-demo-{}-{nanos}", std::process::id()))
}

fn heading(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n{title}\n{}", "=".repeat(title.chars().count()));
}

async fn show(cli: &Cli, dir: &Path, temporary: bool, o: &mut String) -> Result<()> {
    let today = cli.today.unwrap_or(STORY_TODAY);
    outln!(o, "styrlogg demo: the five source documents, recorded as histories");
    if temporary {
        outln!(o, "Store: {} (temporary, removed at the end; keep one with --data DIR)", dir.display());
    } else {
        outln!(o, "Store: {} (kept; running the demo again writes nothing new)", dir.display());
    }
    outln!(
        o,
        "Reports are made as of {today}{}.",
        if cli.today.is_some() { " (--today)" } else { ", the date of the newest source document (--today overrides)" }
    );

    let mut files = Vec::new();
    for (name, source) in builtin::SCENARIOS {
        files.push(load::check(cli, crate::flow::real_today(), name, source)?);
    }
    let made_here = fresh(dir);
    let store = engine::AnyStore::Embedded(open_path(dir, OpenMode::CreateIfMissing)?);
    if made_here && !temporary {
        // Before anything is written: a store without it is never written
        // to by a later demo.
        let mark = dir.join(DEMO_MARK);
        crate::write_synced(&mark, "made by styrlogg demo: the built-in scenarios, for trying styrlogg out\n")
            .with_context(|| format!("cannot mark {} as the demo's store", dir.display()))?;
    }
    let keys = crate::personal::Keys::new(crate::personal::key_dir(cli, dir));
    let head_before = store.head().await?.position;
    heading(o, "Loading the built-in scenarios (workflows/scenarios/), one atomic append per command");
    for file in &files {
        let summary = load::apply(&store, &keys, file).await?;
        outln!(o, "{}: {}\n    {summary}", file.name, file.scenario.title);
    }
    let head = store.head().await?.position;
    if head == head_before {
        outln!(o, "Nothing new was written: every command was already in the log (head position {head}).");
    } else {
        outln!(o, "The log now holds {head} events.");
    }

    heading(o, "Assumed where the sources are silent (each file's header and notes say more)");
    for file in &files {
        for a in &file.scenario.assumptions {
            outln!(o, "- [{}] {a}", &file.name[..3]);
        }
    }

    let mut view = reports::view_of(&store).await.context("folding the log")?;
    view.disclosure = crate::personal::disclosure(&store, false).await?;
    crate::personal::open_view(&keys, &mut view)?;

    heading(o, &format!("Status of each instance as of {today}"));
    for v in view.instances.values() {
        let s = InstanceStatus::of(&v.instance, today);
        outln!(
            o,
            "{}: {}, {} v{}{}",
            s.instance,
            s.organisation,
            s.workflow,
            s.definition_version,
            s.case_number.as_ref().map(|c| format!(", Dnr {c}")).unwrap_or_default()
        );
        let done: Vec<String> = s
            .steps
            .iter()
            .filter(|x| !x.done.is_empty())
            .map(|x| match x.done.len() {
                1 => x.id.clone(),
                n => format!("{} ×{n}", x.id),
            })
            .collect();
        let overdue: Vec<String> = s
            .overdue()
            .map(|x| format!("{} (last day {})", x.id, x.deadline.expect("overdue steps have a deadline")))
            .collect();
        let open: Vec<&str> =
            s.steps.iter().filter(|x| x.state == StepState::Open && !x.overdue).map(|x| x.id.as_str()).collect();
        let waiting = s.steps.iter().filter(|x| x.state == StepState::Waiting && !x.overdue).count();
        outln!(o, "    done: {}", if done.is_empty() { "nothing".into() } else { done.join(", ") });
        if !overdue.is_empty() {
            outln!(o, "    OVERDUE: {}", overdue.join(", "));
        }
        outln!(
            o,
            "    open: {}; {waiting} step(s) waiting for earlier ones",
            if open.is_empty() { "none".into() } else { open.join(", ") }
        );
    }

    let trail = audit::build(&view, None, None, Lang::Sv);
    let flagged: Vec<&audit::AuditEntry> =
        trail.entries.iter().filter(|e| e.deviation.is_some() || e.days_late.is_some()).collect();
    heading(o, &format!("Deviations and late steps ({}), each with its reason", flagged.len()));
    for e in flagged {
        let mut why = Vec::new();
        if let Some(n) = e.days_late {
            let deadline = view.instances.values().find(|v| v.instance.id.as_str() == e.instance).and_then(|v| {
                v.instance
                    .occurrences
                    .iter()
                    .find(|o| o.event_id.to_hex() == e.event_id)
                    .and_then(|o| o.late.map(|l| l.deadline))
            });
            why.push(format!(
                "LATE {n} day(s){}",
                deadline.map(|d| format!(" after the deadline {d}")).unwrap_or_default()
            ));
        }
        if let Some(d) = &e.deviation {
            why.push(format!("DEVIATION: {d}"));
        }
        outln!(
            o,
            "- {} {} (happened {}): {}",
            e.instance,
            e.step.as_deref().unwrap_or("-"),
            e.occurred_on,
            why.join("; ")
        );
    }

    let mut due = deadlines::build(&view, None, today, Lang::Sv);
    let missed = due.entries.iter().filter(|e| e.overdue).count();
    due.entries.retain(|e| !e.overdue);
    heading(o, &format!("Next deadlines from {today} ({missed} missed ones are in the status above)"));
    o.push_str(&report_render::text(&deadlines::document(&due, &view, Lang::Sv), WIDTH));

    heading(o, &format!("Compliance checklist: {COMPLIANCE_INSTANCE}"));
    let checklist = compliance::build(&view, COMPLIANCE_INSTANCE, today, Lang::Sv)
        .with_context(|| format!("the scenarios start {COMPLIANCE_INSTANCE}"))?;
    o.push_str(&report_render::text(&compliance::document(&checklist, &view, Lang::Sv), WIDTH));

    heading(o, "Dialogue register");
    let register = dialogues::build(&view, None, Lang::Sv);
    o.push_str(&report_render::text(&dialogues::document(&register, &view, Lang::Sv), WIDTH));

    heading(
        o,
        &format!("Annual report {ANNUAL_YEAR}: {ANNUAL_ORG} (the year it joined; its source dates nothing in 2013)"),
    );
    let year = annual::build(&view, ANNUAL_ORG, ANNUAL_YEAR, Lang::Sv);
    o.push_str(&report_render::text(&annual::document(&year, &view, Lang::Sv), WIDTH));

    heading(o, "Verify: the whole hash chain");
    let verdict = crate::verify(&store).await?;
    store.close()?;
    match verdict {
        Ok(ok) => outln!(o, "{ok}"),
        Err(p) => anyhow::bail!(crate::Refused(format!("verification failed: {p}"))),
    }
    Ok(())
}
