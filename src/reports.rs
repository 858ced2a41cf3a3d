//! The report commands: fold the log as known on a date into a view, build
//! a report's model, and render it in the format asked for.

use crate::cli::{Cli, LangArg, ReportCommand, ReportFormat, ReportOut};
use crate::{open, personal, report_render, Refused};
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

/// A report's view and what goes with it.
struct Built {
    view: LogView,
    /// A signed checkpoint as of the view's head, when a signing key is here.
    checkpoint: Option<String>,
}

/// Folds the log as known at the end of `as_of` (or now) for a report:
/// personal facts opened where their keys are here (or, for a public
/// extract, left sealed and left out), erasures noted, and a signed
/// checkpoint as of the view's head. Views of the whole log without
/// events start from the projection checkpoint and update it.
async fn view(cli: &Cli, out: &ReportOut) -> Result<Built> {
    build(cli, out, false).await
}

async fn build(cli: &Cli, out: &ReportOut, need_events: bool) -> Result<Built> {
    let (mut view, store) = fold_open(cli, out.as_of, need_events).await?;
    let prepared = async {
        view.disclosure = personal::disclosure(&store, out.public).await?;
        let checkpoint = match crate::trust_cmd::signer(cli) {
            Ok(Some(s)) => Some(crate::trust_cmd::make_checkpoint(&store, &s, view.head_position).await?.1),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("no checkpoint in the report: {e:#}");
                None
            }
        };
        anyhow::Ok(checkpoint)
    }
    .await;
    store.close()?;
    let checkpoint = prepared?;
    if !out.public {
        personal::open_view(&personal::Keys::for_cli(cli), &mut view)?;
    }
    Ok(Built { view, checkpoint })
}

/// The whole log as it is now, folded from the projection checkpoint, for
/// status: no personal facts are opened (status shows none).
pub async fn status_view(cli: &Cli) -> Result<LogView> {
    fold(cli, None, false).await
}

async fn fold(cli: &Cli, as_of: Option<jiff::civil::Date>, need_events: bool) -> Result<LogView> {
    let (view, store) = fold_open(cli, as_of, need_events).await?;
    store.close()?;
    Ok(view)
}

/// Folds (the projection checkpoint holds sealed facts only: it is saved
/// before anything is opened) and returns the view with the store still open.
async fn fold_open(
    cli: &Cli,
    as_of: Option<jiff::civil::Date>,
    need_events: bool,
) -> Result<(LogView, engine::AnyStore)> {
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
    if checkpointed && (view.head_position > from || checkpoint_path(cli).is_some_and(|p| !p.exists())) {
        save_checkpoint(cli, &view);
    }
    Ok((view, store))
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

/// The JSON of a report: its model, and the checkpoint and public flag.
#[derive(Serialize)]
struct WithTrust<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a T,
    /// The signed checkpoint (C2SP tlog-checkpoint note) of the log as of
    /// the report's head.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a str>,
    /// A public extract: personal and confidential facts left out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    public: bool,
}

fn emit<T: Serialize>(out: &ReportOut, model: &T, doc: &Document, built: &Built) -> Result<()> {
    let l = lang(out);
    let mut doc = doc.clone();
    if out.public {
        doc.meta.push(
            l.t(
                "Offentlig version: personuppgifter och uppgifter under sekretess är utelämnade; där det gäller står [utelämnad].",
                "Public extract: personal data and confidential facts are left out; each place says [left out].",
            )
            .to_string(),
        );
    }
    if let Some(c) = &built.checkpoint {
        doc.heading(l.t("Kontrollpunkt", "Checkpoint"));
        doc.para(l.t(
            "Loggen som rapporten bygger på, signerad (C2SP tlog-checkpoint, RFC 9162 SHA-256 Merkle-rot). Kontrollera senare att loggen inte skrivits om: styrlogg verify --checkpoint FIL --key PUBLIK-NYCKEL.",
            "The log this report is built from, signed (C2SP tlog-checkpoint, RFC 9162 SHA-256 Merkle root). Check later that the log was not rewritten: styrlogg verify --checkpoint FILE --key PUBLIC-KEY.",
        ));
        doc.verbatim(c.clone());
    }
    let doc = &doc;
    let text = match out.format {
        ReportFormat::Text => report_render::text(doc, 160),
        ReportFormat::Md => report_render::markdown(doc),
        ReportFormat::Html => report_render::html(doc, l),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&WithTrust {
                report: model,
                checkpoint: built.checkpoint.as_deref(),
                public: out.public,
            })? + "\n"
        }
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
    let built = build(cli, out, true).await?;
    let v = &built.view;
    if let Some(i) = instance {
        if !v.instances.keys().any(|k| k.as_str() == i) {
            bail!(Refused(format!("no instance {i} in the log{}", as_of_note(out))));
        }
    }
    let model = audit::build(v, instance, org, lang(out));
    if model.entries.is_empty() {
        bail!(Refused(format!("nothing recorded for {}{}", model.scope, as_of_note(out))));
    }
    emit(out, &model, &audit::document(&model, v, lang(out)), &built)
}

fn as_of_note(out: &ReportOut) -> String {
    out.as_of.map(|d| format!(" as known on {d}")).unwrap_or_default()
}

pub async fn deadlines(cli: &Cli, org: Option<&str>, out: &ReportOut) -> Result<()> {
    let built = view(cli, out).await?;
    let v = &built.view;
    let model = deadlines::build(v, org, crate::flow::today(cli), lang(out));
    if out.format == ReportFormat::Ics {
        return write_out(out, &report_render::ics(&model, lang(out)));
    }
    emit(out, &model, &deadlines::document(&model, v, lang(out)), &built)
}

pub async fn report(cli: &Cli, cmd: &ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Compliance { instance, out } => {
            let built = view(cli, out).await?;
            let v = &built.view;
            let model = compliance::build(v, instance, crate::flow::today(cli), lang(out))
                .ok_or_else(|| Refused(format!("no instance {instance} in the log{}", as_of_note(out))))?;
            emit(out, &model, &compliance::document(&model, v, lang(out)), &built)
        }
        ReportCommand::Dialogues { org, template, out } => {
            let built = view(cli, out).await?;
            let v = &built.view;
            let model = dialogues::build(v, org.as_deref(), lang(out));
            let doc = match template.as_deref() {
                Some("case") => dialogues::case_template(&model, v, lang(out)),
                _ => dialogues::document(&model, v, lang(out)),
            };
            emit(out, &model, &doc, &built)
        }
        ReportCommand::Annual { org, year, out } => {
            let built = view(cli, out).await?;
            let v = &built.view;
            if v.select(Some(org)).next().is_none() {
                bail!(Refused(format!("no instance for organisation {org:?}{}", as_of_note(out))));
            }
            let model = annual::build(v, org, *year, lang(out));
            emit(out, &model, &annual::document(&model, v, lang(out)), &built)
        }
    }
}
