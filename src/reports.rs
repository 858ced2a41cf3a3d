//! The report commands: fold the log as known on a date into a view, build
//! a report's model, and render it in the format asked for.

use crate::cli::{Cli, LangArg, ReportCommand, ReportFormat, ReportOut};
use crate::{open, report_render, Refused};
use anyhow::{bail, Context, Result};
use engine::{EventStore, OpenMode};
use projections::{annual, audit, compliance, deadlines, dialogues, Document, Lang, LogView};
use serde::Serialize;
use std::io::Write;

fn lang(out: &ReportOut) -> Lang {
    match out.lang {
        LangArg::Sv => Lang::Sv,
        LangArg::En => Lang::En,
    }
}

/// Where the folded state is cached: in the store's directory; for a log on
/// NATS, in --data when that directory exists (else not cached).
fn checkpoint_path(cli: &Cli) -> Option<std::path::PathBuf> {
    match &cli.nats {
        None => Some(cli.data.join("projections").join("checkpoint.bin")),
        Some(_) if cli.data.is_dir() => {
            Some(cli.data.join("projections").join(format!("checkpoint-nats-{}.bin", cli.nats_stream)))
        }
        Some(_) => None,
    }
}

/// The checkpointed view, if there is one and the log still has its head.
async fn load_checkpoint(cli: &Cli, store: &impl EventStore) -> Option<LogView> {
    let bytes = std::fs::read(checkpoint_path(cli)?).ok()?;
    let view = match projections::checkpoint::decode(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("ignoring the projection checkpoint: {e}; rebuilding from the log");
            return None;
        }
    };
    if view.head_position > 0 {
        let at = store.read_all(view.head_position, 1).await.ok()?;
        if at.first().map(|e| e.hash) != Some(view.head_hash) {
            tracing::warn!("the projection checkpoint does not match this log; rebuilding from the log");
            return None;
        }
    }
    Some(view)
}

/// Writes the checkpoint atomically (temporary file, sync, rename). A
/// failure only costs speed next time, so it is a warning.
fn save_checkpoint(cli: &Cli, view: &LogView) {
    let Some(path) = checkpoint_path(cli) else { return };
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&projections::checkpoint::encode(view))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    if let Err(e) = write() {
        tracing::warn!("could not save the projection checkpoint at {}: {e}", path.display());
    }
}

/// Folds the log as known at the end of `as_of` (or now). Views of the
/// whole log without events start from the checkpoint and update it.
pub async fn view(cli: &Cli, as_of: Option<jiff::civil::Date>) -> Result<LogView> {
    fold(cli, as_of, false).await
}

async fn fold(cli: &Cli, as_of: Option<jiff::civil::Date>, need_events: bool) -> Result<LogView> {
    let store = open(cli, OpenMode::MustExist).await?;
    let checkpointed = as_of.is_none() && !need_events;
    let mut view = match (checkpointed, need_events) {
        (true, _) => load_checkpoint(cli, &store).await.unwrap_or_else(|| LogView::folded_only(None)),
        (false, true) => LogView::new(as_of),
        (false, false) => LogView::folded_only(as_of),
    };
    let from = view.head_position;
    let mut next = view.head_position + 1;
    'read: loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in &page {
            if !view.feed(e).map_err(|err| Refused(format!("position {}: {err}", e.event.position)))? {
                break 'read;
            }
        }
    }
    store.close()?;
    if checkpointed && (view.head_position > from || checkpoint_path(cli).is_some_and(|p| !p.exists())) {
        save_checkpoint(cli, &view);
    }
    Ok(view)
}

/// The whole log of an open store, folded from the start (no checkpoint).
pub async fn view_of(store: &impl EventStore) -> Result<LogView> {
    let mut view = LogView::new(None);
    let mut next = 1;
    loop {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in &page {
            view.feed(e).map_err(|err| Refused(format!("position {}: {err}", e.event.position)))?;
        }
    }
    Ok(view)
}

/// Rebuilds every projection from the whole log and replaces the checkpoint.
pub async fn rebuild(cli: &Cli) -> Result<()> {
    let started = std::time::Instant::now();
    if let Some(p) = checkpoint_path(cli) {
        let _ = std::fs::remove_file(p);
    }
    let view = fold(cli, None, false).await?;
    println!(
        "rebuilt from {} events: {} instances, head position {} hash {} ({:.2} s)",
        view.head_position,
        view.instances.len(),
        view.head_position,
        view.head_hash,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn emit<T: Serialize>(out: &ReportOut, model: &T, doc: &Document) -> Result<()> {
    let l = lang(out);
    let text = match out.format {
        ReportFormat::Text => report_render::text(doc, 160),
        ReportFormat::Md => report_render::markdown(doc),
        ReportFormat::Html => report_render::html(doc, l),
        ReportFormat::Json => serde_json::to_string_pretty(model)? + "\n",
        ReportFormat::Csv => report_render::csv(doc)?,
        ReportFormat::Ics => bail!(Refused("--format ics is for `styrlogg deadlines` only".into())),
    };
    write_out(out, &text)
}

fn write_out(out: &ReportOut, text: &str) -> Result<()> {
    match &out.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?,
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            o.flush()?;
        }
    }
    Ok(())
}

pub async fn audit(cli: &Cli, instance: Option<&str>, org: Option<&str>, out: &ReportOut) -> Result<()> {
    let v = fold(cli, out.as_of, true).await?;
    if let Some(i) = instance {
        if !v.instances.keys().any(|k| k.as_str() == i) {
            bail!(Refused(format!("no instance {i} in the log{}", as_of_note(out))));
        }
    }
    let model = audit::build(&v, instance, org, lang(out));
    if model.entries.is_empty() {
        bail!(Refused(format!("nothing recorded for {}{}", model.scope, as_of_note(out))));
    }
    emit(out, &model, &audit::document(&model, &v, lang(out)))
}

fn as_of_note(out: &ReportOut) -> String {
    out.as_of.map(|d| format!(" as known on {d}")).unwrap_or_default()
}

pub async fn deadlines(cli: &Cli, org: Option<&str>, out: &ReportOut) -> Result<()> {
    let v = view(cli, out.as_of).await?;
    let model = deadlines::build(&v, org, crate::flow::today(cli), lang(out));
    if out.format == ReportFormat::Ics {
        return write_out(out, &report_render::ics(&model, lang(out)));
    }
    emit(out, &model, &deadlines::document(&model, &v, lang(out)))
}

pub async fn report(cli: &Cli, cmd: &ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Compliance { instance, out } => {
            let v = view(cli, out.as_of).await?;
            let model = compliance::build(&v, instance, crate::flow::today(cli), lang(out))
                .ok_or_else(|| Refused(format!("no instance {instance} in the log{}", as_of_note(out))))?;
            emit(out, &model, &compliance::document(&model, &v, lang(out)))
        }
        ReportCommand::Dialogues { org, template, out } => {
            let v = view(cli, out.as_of).await?;
            let model = dialogues::build(&v, org.as_deref(), lang(out));
            let doc = match template.as_deref() {
                Some("case") => dialogues::case_template(&model, &v, lang(out)),
                _ => dialogues::document(&model, &v, lang(out)),
            };
            emit(out, &model, &doc)
        }
        ReportCommand::Annual { org, year, out } => {
            let v = view(cli, out.as_of).await?;
            if v.select(Some(org)).next().is_none() {
                bail!(Refused(format!("no instance for organisation {org:?}{}", as_of_note(out))));
            }
            let model = annual::build(&v, org, *year, lang(out));
            emit(out, &model, &annual::document(&model, &v, lang(out)))
        }
    }
}
