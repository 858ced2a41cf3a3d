//! The report commands: fold the log as known on a date into a view, build
//! a report's model, and render it in the format asked for.

use crate::cli::{Cli, LangArg, ReportCommand, ReportFormat, ReportOut};
use crate::{open, personal, report_render, Refused};
use anyhow::{bail, Result};
use engine::{EventStore, OpenMode};
use projections::checkpoint::Kind;
use projections::{annual, audit, compliance, deadlines, dialogues, Document, Lang, LogView};
use serde::Serialize;
use std::io::Write;
use workflows::{said, Bilingual};

fn lang(out: &ReportOut) -> Lang {
    match out.lang {
        LangArg::Sv => Lang::Sv,
        LangArg::En => Lang::En,
    }
}

/// Where the folded state of this kind is cached: in the store's
/// directory; for a log on NATS, in --data when that directory exists (else
/// not cached).
fn checkpoint_path(cli: &Cli, kind: Kind) -> Option<std::path::PathBuf> {
    let suffix = match &cli.nats {
        None => String::new(),
        Some(_) if cli.data.is_dir() => format!("-nats-{}", cli.nats_stream),
        Some(_) => return None,
    };
    Some(cli.data.join("projections").join(kind.file_name(&suffix)))
}

/// The checkpointed view, if there is one and the log still has its head.
async fn load_checkpoint(cli: &Cli, store: &impl EventStore, kind: Kind) -> Option<LogView> {
    let bytes = std::fs::read(checkpoint_path(cli, kind)?).ok()?;
    let view = match projections::checkpoint::decode(&bytes, kind) {
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
fn save_checkpoint(cli: &Cli, view: &LogView, kind: Kind) {
    let Some(path) = checkpoint_path(cli, kind) else { return };
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&projections::checkpoint::encode(view, kind))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    if let Err(e) = write() {
        tracing::warn!("could not save the projection checkpoint at {}: {e}", path.display());
    }
}

/// A report's view and what goes with it.
pub struct Prepared {
    pub view: LogView,
    /// A signed checkpoint as of the view's head, and whether this is a
    /// public extract.
    pub extras: Extras,
}

/// What a report carries besides its model.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The signed checkpoint (C2SP tlog-checkpoint note) of the log as of the
    /// report's head, when a signing key is here.
    pub checkpoint: Option<String>,
    /// A public extract: personal and confidential facts left out.
    pub public: bool,
}

/// Folds the log as known at the end of `as_of` (or now) for a report:
/// personal facts opened where their keys are here (or, for a public
/// extract, left sealed and left out), erasures noted, and a signed
/// checkpoint as of the view's head. Views of the whole log without
/// events start from the projection checkpoint and update it.
async fn view(cli: &Cli, out: &ReportOut) -> Result<Prepared> {
    prepare(cli, out, false).await
}

async fn prepare(cli: &Cli, out: &ReportOut, need_events: bool) -> Result<Prepared> {
    let (mut view, store) = fold_open(cli, out.as_of, need_events, Kind::Full).await?;
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
    Ok(Prepared { view, extras: Extras { checkpoint, public: out.public } })
}

/// The whole log as it is now, folded from the status checkpoint, for
/// status: no facts are kept from the checkpoint and none are opened
/// (status shows none).
pub async fn status_view(cli: &Cli) -> Result<LogView> {
    let (view, store) = fold_open(cli, None, false, Kind::Status).await?;
    store.close()?;
    Ok(view)
}

/// Folds (the projection checkpoint holds sealed facts only: it is saved
/// before anything is opened) and returns the view with the store still open.
/// A view of the whole log without events starts from, and updates, the
/// checkpoint of `kind`.
async fn fold_open(
    cli: &Cli,
    as_of: Option<jiff::civil::Date>,
    need_events: bool,
    kind: Kind,
) -> Result<(LogView, engine::AnyStore)> {
    if let Some(day) = as_of.filter(|d| *d > crate::flow::real_today()) {
        // "As known on" a day that has not come would print that date on
        // a report of today's record.
        anyhow::bail!(crate::Refused(format!(
            "--as-of {day} is after today ({}): the record as known on a later day is not known yet; leave \
             --as-of out for the record as it is now",
            crate::flow::real_today()
        )));
    }
    let store = open(cli, OpenMode::MustExist).await?;
    let checkpointed = as_of.is_none() && !need_events;
    let mut view = match (checkpointed, need_events) {
        (true, _) => load_checkpoint(cli, &store, kind).await.unwrap_or_else(|| match kind {
            Kind::Full => LogView::folded_only(None),
            Kind::Status => LogView::status_only(None),
        }),
        (false, true) => LogView::new(as_of),
        (false, false) => LogView::folded_only(as_of),
    };
    let from = view.head_position;
    fold_into(&store, &mut view).await?;
    if checkpointed && (view.head_position > from || checkpoint_path(cli, kind).is_some_and(|p| !p.exists())) {
        save_checkpoint(cli, &view, kind);
    }
    Ok((view, store))
}

/// Folds the log after `view`'s head into it: an event the fold refuses is
/// a refusal (exit 2), a failed read an error.
async fn fold_into<S>(store: &S, view: &mut LogView) -> Result<()>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    styrlogg::fold_log(store, view).await.map_err(|e| match e {
        styrlogg::FoldLogError::Fold { .. } => anyhow::Error::new(Refused(e.to_string())),
        other => anyhow::Error::new(other).context("reading the log"),
    })
}

/// The whole log of an open store, folded from the start (no checkpoint).
pub async fn view_of<S>(store: &S) -> Result<LogView>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    view_as_of(store, None).await
}

/// The log of an open store as known at the end of `as_of` (or now),
/// folded from the start.
pub async fn view_as_of<S>(store: &S, as_of: Option<jiff::civil::Date>) -> Result<LogView>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    let mut view = LogView::new(as_of);
    fold_into(store, &mut view).await?;
    Ok(view)
}

/// Rebuilds every projection from the whole log and replaces the
/// checkpoints.
pub async fn rebuild(cli: &Cli) -> Result<()> {
    let started = std::time::Instant::now();
    for kind in [Kind::Full, Kind::Status] {
        if let Some(p) = checkpoint_path(cli, kind) {
            let _ = std::fs::remove_file(p);
        }
    }
    let (view, store) = fold_open(cli, None, false, Kind::Full).await?;
    store.close()?;
    save_checkpoint(cli, &view, Kind::Status);
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
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    public: bool,
}

/// Which report, with its scope: what the command line and the web ask for.
pub enum Spec<'a> {
    Audit { instance: Option<&'a str>, org: Option<&'a str> },
    Deadlines { org: Option<&'a str> },
    Compliance { instance: &'a str },
    Dialogues { org: Option<&'a str>, case: bool },
    Annual { org: &'a str, year: i16 },
}

/// A report built from a view: its document, its model as JSON, and for
/// deadlines the iCalendar feed.
pub struct Built {
    pub doc: Document,
    pub json: String,
    pub ics: Option<String>,
}

/// The document and JSON with what goes besides the model: a note on a
/// public extract, and the checkpoint.
fn built<T: Serialize>(model: &T, mut doc: Document, ics: Option<String>, x: &Extras, l: Lang) -> Result<Built> {
    if x.public {
        doc.meta.push(
            l.t(
                "Offentlig version: personuppgifter och uppgifter under sekretess är utelämnade; där det gäller står [utelämnad].",
                "Public extract: personal data and confidential facts are left out; each place says [left out].",
            )
            .to_string(),
        );
    }
    if let Some(c) = &x.checkpoint {
        doc.heading(l.t("Kontrollpunkt", "Checkpoint"));
        doc.para(l.t(
            "Loggen som rapporten bygger på, signerad (C2SP tlog-checkpoint, RFC 9162 SHA-256 Merkle-rot). Kontrollera senare att loggen inte skrivits om: styrlogg verify --checkpoint FIL --key PUBLIK-NYCKEL.",
            "The log this report is built from, signed (C2SP tlog-checkpoint, RFC 9162 SHA-256 Merkle root). Check later that the log was not rewritten: styrlogg verify --checkpoint FILE --key PUBLIC-KEY.",
        ));
        doc.verbatim(c.clone());
    }
    let json = WithTrust { report: model, checkpoint: x.checkpoint.as_deref(), public: x.public };
    Ok(Built { doc, json: serde_json::to_string_pretty(&json)? + "\n", ics })
}

/// A report whose scope names nothing in the log: a misspelt name would
/// otherwise give an empty report that looks like nothing to do. Said in
/// both languages (the web pages show the Swedish); the command line says
/// it in English, with where to look.
#[derive(Debug)]
pub struct NothingThere {
    pub said: Bilingual,
    /// What the command line adds: a command that lists what there is.
    pub cli_hint: &'static str,
}

impl std::fmt::Display for NothingThere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.said.en, self.cli_hint)
    }
}

impl std::error::Error for NothingThere {}

fn nothing_there(said: Bilingual, cli_hint: &'static str) -> anyhow::Error {
    NothingThere { said, cli_hint }.into()
}

/// Refuses an organisation that no instance belongs to.
fn known_org(v: &LogView, org: Option<&str>, note: &Bilingual) -> Result<()> {
    match org {
        Some(o) if v.select(Some(o)).next().is_none() => {
            // The names in the log, so a name spelt otherwise ("Harryda
            // kommun") is put right at once.
            // One name per organisation, however its instances spell it.
            let mut orgs: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
            for i in v.select(None) {
                let name = i.instance.organisation.as_str();
                orgs.entry(workflows::organisation_name(name).to_lowercase()).or_insert(name);
            }
            let orgs: std::collections::BTreeSet<&str> = orgs.into_values().collect();
            const SHOWN: usize = 12;
            let mut names: Vec<String> = orgs.iter().take(SHOWN).map(|n| format!("{n:?}")).collect();
            if orgs.len() > SHOWN {
                names.push(format!("… ({} in all)", orgs.len()));
            }
            let (known_sv, known_en) = match names.is_empty() {
                true => (String::new(), String::new()),
                false => {
                    let list = names.join(", ");
                    (format!("; organisationerna i loggen: {list}"), format!("; the organisations in the log: {list}"))
                }
            };
            Err(nothing_there(
                said(
                    format!("ingen instans för organisationen {o:?}{}{known_sv}", note.sv),
                    format!("no instance for organisation {o:?}{}{known_en}", note.en),
                ),
                "; `styrlogg status` lists the instances",
            ))
        }
        _ => Ok(()),
    }
}

fn no_instance(i: &str, note: &Bilingual) -> anyhow::Error {
    nothing_there(
        said(format!("ingen instans {i} i loggen{}", note.sv), format!("no instance {i} in the log{}", note.en)),
        "",
    )
}

fn as_of_note(as_of: Option<jiff::civil::Date>) -> Bilingual {
    match as_of {
        Some(d) => said(format!(" som det var känt per {d}"), format!(" as known on {d}")),
        None => said("", ""),
    }
}

/// Builds a report on a folded view (as known on `view.as_of`). A scope
/// that names nothing in the log is refused, as on the command line.
pub fn build(v: &LogView, spec: &Spec, today: jiff::civil::Date, l: Lang, x: &Extras) -> Result<Built> {
    let note = as_of_note(v.as_of);
    match *spec {
        Spec::Audit { instance, org } => {
            if let Some(i) = instance {
                if !v.instances.keys().any(|k| k.as_str() == i) {
                    return Err(no_instance(i, &note));
                }
            }
            let model = audit::build(v, instance, org, l);
            if model.entries.is_empty() {
                return Err(nothing_there(
                    said(
                        format!("inget registrerat för {}{}", model.scope, note.sv),
                        format!("nothing recorded for {}{}", model.scope, note.en),
                    ),
                    "",
                ));
            }
            let doc = audit::document(&model, v, l);
            built(&model, doc, None, x, l)
        }
        Spec::Deadlines { org } => {
            known_org(v, org, &note)?;
            let model = deadlines::build(v, org, today, l);
            let ics = report_render::ics(&model, l);
            built(&model, deadlines::document(&model, v, l), Some(ics), x, l)
        }
        Spec::Compliance { instance } => {
            let model = compliance::build(v, instance, today, l).ok_or_else(|| no_instance(instance, &note))?;
            built(&model, compliance::document(&model, v, l), None, x, l)
        }
        Spec::Dialogues { org, case } => {
            known_org(v, org, &note)?;
            let model = dialogues::build(v, org, l);
            let doc = match case {
                true => dialogues::case_template(&model, v, l),
                false => dialogues::document(&model, v, l),
            };
            built(&model, doc, None, x, l)
        }
        Spec::Annual { org, year } => {
            known_org(v, Some(org), &note)?;
            let model = annual::build(v, org, year, l);
            built(&model, annual::document(&model, v, l), None, x, l)
        }
    }
}

fn emit(out: &ReportOut, b: Built) -> Result<()> {
    let l = lang(out);
    let text = match out.format {
        ReportFormat::Text => report_render::text(&b.doc, 160),
        ReportFormat::Md => report_render::markdown(&b.doc),
        ReportFormat::Html => report_render::html(&b.doc, l),
        ReportFormat::Json => b.json,
        ReportFormat::Csv => report_render::csv(&b.doc)?,
        ReportFormat::Ics => match b.ics {
            Some(ics) => ics,
            None => bail!(Refused("--format ics is for `styrlogg deadlines` only".into())),
        },
    };
    write_out(out, &text)
}

fn write_out(out: &ReportOut, text: &str) -> Result<()> {
    crate::output::Output::write_whole(out.output.as_deref(), text)
}

pub async fn audit(cli: &Cli, instance: Option<&str>, org: Option<&str>, out: &ReportOut) -> Result<()> {
    let p = prepare(cli, out, true).await?;
    emit(out, build(&p.view, &Spec::Audit { instance, org }, crate::flow::today(cli), lang(out), &p.extras)?)
}

pub async fn deadlines(cli: &Cli, org: Option<&str>, out: &ReportOut) -> Result<()> {
    let p = view(cli, out).await?;
    emit(out, build(&p.view, &Spec::Deadlines { org }, crate::flow::today(cli), lang(out), &p.extras)?)
}

pub async fn report(cli: &Cli, cmd: &ReportCommand) -> Result<()> {
    let (spec, out) = match cmd {
        ReportCommand::Compliance { instance, out } => (Spec::Compliance { instance }, out),
        ReportCommand::Dialogues { org, template, out } => {
            (Spec::Dialogues { org: org.as_deref(), case: template.as_deref() == Some("case") }, out)
        }
        ReportCommand::Annual { org, year, out } => (Spec::Annual { org, year: *year }, out),
    };
    let p = view(cli, out).await?;
    emit(out, build(&p.view, &spec, crate::flow::today(cli), lang(out), &p.extras)?)
}
