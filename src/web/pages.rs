//! The HTML pages, rendered on the server with maud: overview, an
//! instance's timeline, deadlines, the dialogue register, every report
//! (viewed in the page, or downloaded in each of its formats), login, and
//! the forms to start an instance and record a step. They work without
//! JavaScript; `live.js` only refreshes the overview when the log moves.
//!
//! Without a login a page shows only what is public: no facts, no actor
//! names, no free texts (a later issue marks personal data; until then
//! none is shown), and no report but the deadlines.

use super::api::{build_report, ReportQuery};
use super::auth::{cookie, set_cookie, Principal, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::ops::{self, WebError};
use super::{Ctx, Shared};
use crate::report_render;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use projections::{audit, Lang};
use std::net::SocketAddr;
use workflows::definition::{FactSpec, FactType, Step};
use workflows::status::{InstanceStatus, StepState};

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A value as one URL path segment or query value.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn instance_href(id: &str) -> String {
    format!("/instances/{}", enc(id))
}

/// An id usable in HTML for a form field.
fn field_id(field: &str) -> String {
    let clean: String = field.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("f-{clean}")
}

fn page(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response {
    let lang_code = if ctx.lang == Lang::En { "en" } else { "sv" };
    let (other_code, other_name) = if ctx.lang == Lang::En { ("sv", "Svenska") } else { ("en", "English") };
    let mut switch: Vec<(String, String)> = form_urlencoded::parse(ctx.query.as_bytes())
        .filter(|(k, _)| k != "lang")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    switch.push(("lang".into(), other_code.into()));
    let switch_href = format!(
        "{}?{}",
        ctx.path,
        form_urlencoded::Serializer::new(String::new()).extend_pairs(switch.iter()).finish()
    );
    let nav: [(&str, &str); 5] = [
        ("/", ctx.t("Översikt", "Overview")),
        ("/deadlines", ctx.t("Tidsfrister", "Deadlines")),
        ("/dialogues", ctx.t("Dialogregister", "Dialogue register")),
        ("/reports", ctx.t("Rapporter", "Reports")),
        ("/start", ctx.t("Starta instans", "Start an instance")),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang=(lang_code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – styrlogg" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                a.skip href="#main" { (ctx.t("Hoppa till innehållet", "Skip to content")) }
                header.site {
                    p.brand { a href="/" { "styrlogg" } }
                    nav aria-label=(ctx.t("Huvudmeny", "Main menu")) {
                        ul {
                            @for (href, label) in nav {
                                li {
                                    @if ctx.path == href {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.account {
                        @match &ctx.principal {
                            Some(p) => {
                                span { (ctx.t("Inloggad:", "Logged in:")) " " strong { (p.name) } }
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(p.csrf().unwrap_or_default());
                                    button type="submit" { (ctx.t("Logga ut", "Log out")) }
                                }
                            }
                            None => {
                                a href={ "/login?next=" (enc(&format!("{}{}", ctx.path, if ctx.query.is_empty() { String::new() } else { format!("?{}", ctx.query) }))) } {
                                    (ctx.t("Logga in", "Log in"))
                                }
                            }
                        }
                        a href=(switch_href) lang=(other_code) hreflang=(other_code) { (other_name) }
                    }
                }
                main id="main" tabindex="-1" { (body) }
                footer.site {
                    p { (ctx.t(
                        "styrlogg: händelselogg för medborgardialog i styrning. Varje händelse är hashkedjad och kan granskas.",
                        "styrlogg: event log for citizen dialogue in governance. Every event is hash-chained and can be audited."
                    )) }
                }
            }
        }
    };
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

fn login_redirect(ctx: &Ctx) -> Response {
    let next = if ctx.query.is_empty() { ctx.path.clone() } else { format!("{}?{}", ctx.path, ctx.query) };
    Redirect::to(&format!("/login?next={}", enc(&next))).into_response()
}

/// An error page (for errors that belong to no form).
fn error_page(ctx: &Ctx, e: &WebError) -> Response {
    let title = ctx.t("Det gick inte", "That did not work");
    let e = &e.in_lang(ctx.lang);
    page(
        ctx,
        e.status,
        title,
        html! {
            h1 { (title) }
            div.error-summary role="alert" {
                p { (e.message) }
                @if let Some(r) = &e.remedy { p { (r) } }
            }
            p { a href="/" { (ctx.t("Till översikten", "To the overview")) } }
        },
    )
}

/// An error axum answered with (`text`, in English, perhaps empty), as a
/// page in the reader's language.
pub fn framework_error(ctx: &Ctx, status: StatusCode, method: &axum::http::Method, text: &str) -> Response {
    let (code, sv, en) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Sidan finns inte.".to_string(), "There is no such page.".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            format!("Sidan tar inte emot {method}; följ en länk eller skicka ett formulär på sidan."),
            format!("This page does not take {method}; follow a link or send a form on the page."),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body-too-large",
            format!("Det som skickades är större än {} byte.", super::limits::REQUEST_BODY_BYTES_MAX),
            format!("What was sent is larger than {} bytes.", super::limits::REQUEST_BODY_BYTES_MAX),
        ),
        s if s.is_client_error() => (
            "invalid-input",
            "Adressen gick inte att läsa: kontrollera länken eller det som skrevs in i den.".to_string(),
            format!("The address could not be read ({text})."),
        ),
        s => (
            "http-error",
            format!("Något gick fel på servern ({s})."),
            format!("Something went wrong on the server ({s})."),
        ),
    };
    error_page(ctx, &WebError::new(status, code, en).sv(sv))
}

pub async fn not_found(ctx: Ctx) -> Response {
    error_page(&ctx, &WebError::not_found(ctx.t("Sidan finns inte.", "There is no such page.")))
}

fn state_label(ctx: &Ctx, state: &StepState, overdue: bool) -> (&'static str, String) {
    if overdue {
        return ("overdue", ctx.t("Försenat", "Overdue").to_string());
    }
    match state {
        StepState::Done => ("done", ctx.t("Klart", "Done").to_string()),
        StepState::Open => ("open", ctx.t("Kan registreras", "Can be recorded").to_string()),
        StepState::Waiting => ("waiting", ctx.t("Väntar på tidigare steg", "Waiting for earlier steps").to_string()),
    }
}

fn step_title(ctx: &Ctx, step: Option<&Step>, id: &str) -> String {
    step.map(|s| ctx.lang.title(&s.title)).unwrap_or_else(|| id.to_string())
}

/// The overview's table: every instance with its status and what is overdue.
fn overview_table(ctx: &Ctx, state: &super::AppState) -> (Markup, u64) {
    let today = state.today();
    type Row = (InstanceStatus, String, std::sync::Arc<workflows::Definition>);
    let (rows, head): (Vec<Row>, u64) = state.live.read(|v| {
        let rows = v
            .instances
            .values()
            .map(|i| {
                let s = InstanceStatus::of(&i.instance, today);
                (s, ctx.lang.title(&i.instance.definition.title), i.instance.definition.clone())
            })
            .collect();
        (rows, v.head_position)
    });
    let overdue_total: usize = rows.iter().map(|(s, _, _)| s.overdue().count()).sum();
    let markup = html! {
        p {
            (ctx.t("Per", "As of")) " " (today) ". "
            (rows.len()) " " (ctx.t("instanser", "instances")) ", "
            strong { (overdue_total) " " (ctx.t("försenade steg", "overdue steps")) } ". "
            (ctx.t("Loggens position:", "Log position:")) " " (head) "."
        }
        @if rows.is_empty() {
            p { (ctx.t("Inget är registrerat ännu.", "Nothing has been recorded yet.")) }
        } @else {
            table {
                caption { (ctx.t("Instanser och deras status", "Instances and their status")) }
                thead { tr {
                    th scope="col" { (ctx.t("Instans", "Instance")) }
                    th scope="col" { (ctx.t("Organisation", "Organisation")) }
                    th scope="col" { (ctx.t("Arbetsflöde", "Workflow")) }
                    th scope="col" { (ctx.t("Klart", "Done")) }
                    th scope="col" { (ctx.t("Försenat", "Overdue")) }
                    th scope="col" { (ctx.t("Nästa tidsfrist", "Next deadline")) }
                } }
                tbody {
                    @for (s, wf_title, def) in &rows {
                        @let done = s.steps.iter().filter(|x| x.state == StepState::Done).count();
                        @let overdue: Vec<_> = s.overdue().collect();
                        @let next = s.upcoming().into_iter().next();
                        tr {
                            th scope="row" { a href=(instance_href(&s.instance)) { (s.instance) } }
                            td { (s.organisation) }
                            td { (wf_title) }
                            td { (done) " / " (s.steps.len()) }
                            td {
                                @if overdue.is_empty() { (ctx.t("Inget", "None")) }
                                @else {
                                    ul.compact {
                                        @for o in &overdue {
                                            li.overdue { span.badge.overdue { (ctx.t("Försenat", "Overdue")) } " " (step_title(ctx, def.step(&o.id), &o.id)) " (" (ctx.t("sista dag", "last day")) " " (o.deadline.map(|d| d.to_string()).unwrap_or_default()) ")" }
                                        }
                                    }
                                }
                            }
                            td {
                                @if let Some(n) = next { (n.deadline.map(|d| d.to_string()).unwrap_or_default()) " " (step_title(ctx, def.step(&n.id), &n.id)) }
                                @else { "–" }
                            }
                        }
                    }
                }
            }
        }
    };
    (markup, head)
}

#[derive(serde::Deserialize, Default)]
pub struct OverviewQuery {
    pub partial: Option<String>,
}

/// `/`: every instance, its status and what is overdue; updates live.
pub async fn overview(ctx: Ctx, State(state): State<Shared>, Query(q): Query<OverviewQuery>) -> Response {
    let (table, head) = overview_table(&ctx, &state);
    if q.partial.is_some() {
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], table.into_string()).into_response();
    }
    let title = ctx.t("Översikt", "Overview");
    page(
        &ctx,
        StatusCode::OK,
        title,
        html! {
            h1 { (title) }
            @if ctx.principal.is_none() {
                p.note { (ctx.t(
                    "Du ser den öppna vyn: inga personuppgifter, inga namn och inga fritexter. Logga in för att se allt och för att registrera.",
                    "You see the public view: no personal data, no names and no free texts. Log in to see everything and to record."
                )) }
            }
            div id="live" data-live="/?partial=1" data-head=(head) { (table) }
            p id="live-status" role="status" aria-live="polite" {}
            script src="/static/live.js" defer {}
        },
    )
}

/// What a public timeline says of an event: its kind and step, nothing typed by a person.
fn public_what(ctx: &Ctx, kind: &str, step: &str) -> String {
    let label = match kind {
        "instance_started" => return ctx.t("Instansen startades", "Instance started").to_string(),
        "step_recorded" => return step.to_string(),
        "step_corrected" => ctx.t("Rättelse", "Correction"),
        "deadline_changed" => ctx.t("Tidsfristen ändrades", "Deadline changed"),
        "deadline_missed" => ctx.t("Tidsfristen missades", "Deadline missed"),
        "note_added" => return ctx.t("Anteckning", "Note").to_string(),
        _ => ctx.t("Påminnelse", "Notice"),
    };
    if step.is_empty() {
        label.to_string()
    } else {
        format!("{label}: {step}")
    }
}

/// `/instances/{id}`: status of every step and the audit trail.
pub async fn instance(ctx: Ctx, State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let today = state.today();
    let signed_in = ctx.principal.is_some();
    // Signed in: personal facts opened; public: the page shows no facts.
    let view = match signed_in {
        true => match state.opened_view(Some(&id)).await {
            Ok(v) => Some(v),
            Err(e) => return error_page(&ctx, &WebError::from_anyhow(&e, "instance")),
        },
        false => None,
    };
    let read = |v: &projections::LogView| {
        let inst = &v.instances.get(id.as_str())?.instance;
        let status = InstanceStatus::of(inst, today);
        let trail = audit::build(v, Some(&id), None, ctx.lang);
        let def = inst.definition.clone();
        Some((status, trail, def, inst.started_on, v.head_hash.to_hex()))
    };
    let found = match &view {
        Some(v) => read(v),
        None => state.live.read(read),
    };
    let Some((status, trail, def, started_on, _)) = found else {
        return error_page(&ctx, &WebError::not_found(format!("{} {id}", ctx.t("Ingen instans", "No instance"))));
    };
    let title = format!("{} – {}", status.instance, status.organisation);
    // The forms are offered only to those who may record for the instance's organisation.
    let may_write = ctx.principal.as_ref().is_some_and(|p| p.may_record_for(&status.organisation));
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { (ctx.t("Arbetsflöde", "Workflow")) } dd { (ctx.lang.title(&def.title)) " (" (def.id) " v" (def.version) ")" }
            dt { (ctx.t("Diarienummer", "Case number")) } dd { (status.case_number.clone().unwrap_or_else(|| "–".into())) }
            dt { (ctx.t("Startad", "Started")) } dd { (started_on) }
            dt { (ctx.t("Per", "As of")) } dd { (today) }
        }
        @if signed_in {
            p.actions {
                @if may_write { a.button href={ (instance_href(&id)) "/record" } { (ctx.t("Registrera ett steg", "Record a step")) } }
                " "
                a href={ "/reports/audit?instance=" (enc(&id)) } { (ctx.t("Granskningsspår som rapport", "Audit trail as a report")) }
                " "
                a href={ "/reports/compliance?instance=" (enc(&id)) } { (ctx.t("Efterlevnad", "Compliance")) }
            }
        }
        h2 { (ctx.t("Steg", "Steps")) }
        table {
            caption { (ctx.t("Stegen i arbetsflödet och deras status", "The workflow's steps and their status")) }
            thead { tr {
                th scope="col" { (ctx.t("Steg", "Step")) }
                th scope="col" { (ctx.t("Status", "Status")) }
                th scope="col" { (ctx.t("Utfört", "Done")) }
                th scope="col" { (ctx.t("Tidsfrist", "Deadline")) }
            } }
            tbody {
                @for s in &status.steps {
                    @let (class, label) = state_label(&ctx, &s.state, s.overdue);
                    tr {
                        th scope="row" { (step_title(&ctx, def.step(&s.id), &s.id)) br; span.id { (s.id) } }
                        td { span class={ "badge " (class) } { (label) } }
                        td {
                            @for d in &s.done {
                                div {
                                    (d.occurred_on)
                                    @if let Some(y) = d.for_year { " " (ctx.t("för", "for")) " " (y) }
                                    @if let Some(n) = d.days_late { " " span.badge.late { (ctx.t("Sent", "Late")) ": " (ctx.lang.days(n.into())) } }
                                    @if d.deviation.is_some() { " " span.badge.deviation { (ctx.t("Avvikelse", "Deviation")) } }
                                    @if d.corrections > 0 { " " span.badge.corrected { (ctx.t("Rättad", "Corrected")) " " (d.corrections) } }
                                }
                            }
                            @for y in &s.waived_years {
                                div { (y) ": " (ctx.t("tidsfristen efterskänkt", "deadline waived")) }
                            }
                        }
                        td {
                            @if let Some(d) = s.deadline { @if s.state != StepState::Done {
                                (d)
                                @if may_write {
                                    br;
                                    a href={ (instance_href(&id)) "/deadline?step=" (enc(&s.id)) } { (ctx.t("Förläng eller efterge", "Extend or waive")) }
                                }
                            } }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Tidslinje (granskningsspår)", "Timeline (audit trail)")) }
        p { (ctx.t(
            "Varje händelse i ordning: när det hände och när det registrerades. Avvikelser, förseningar och rättelser syns; inget skrivs över.",
            "Every event in order: when it happened and when it was recorded. Deviations, lateness and corrections show; nothing is overwritten."
        )) }
        ol.timeline {
            @for e in &trail.entries {
                @let step_name = e.step.as_deref().map(|s| step_title(&ctx, def.step(s), s)).unwrap_or_default();
                li id={ "e" (e.position) } {
                    p.when {
                        strong { "#" (e.position) } " · "
                        (ctx.t("hände", "happened")) " " (e.occurred_on) " · "
                        (ctx.t("registrerades", "recorded")) " " (e.recorded_at.get(..10).unwrap_or(&e.recorded_at))
                        @if e.recorded_days_after > 0 { " (" (ctx.lang.days(e.recorded_days_after)) " " (ctx.t("efteråt", "after")) ")" }
                    }
                    p.what {
                        @if signed_in { (e.what) } @else { (public_what(&ctx, &e.kind, &step_name)) }
                    }
                    @if signed_in {
                        p.who { (ctx.t("Av", "By")) " " (e.actor) " (" (e.role) ")" }
                    }
                    p.flags {
                        @if let Some(d) = &e.deviation {
                            span.badge.deviation { (ctx.t("Avvikelse", "Deviation")) }
                            @if signed_in { " " (d) }
                        }
                        @if let Some(n) = e.days_late {
                            " " span.badge.late { (ctx.t("Sent", "Late")) ": " (ctx.lang.days(n.into())) " " (ctx.t("efter tidsfristen", "after the deadline")) }
                        }
                        @if let Some(c) = &e.corrects {
                            " " span.badge.corrected { (ctx.t("Rättelse av", "Correction of")) } " " code { (c.get(..12).unwrap_or(c)) }
                        }
                        @if !e.corrected_by.is_empty() {
                            " " span.badge.corrected { (ctx.t("Rättad senare", "Corrected later")) }
                        }
                    }
                    @if signed_in && !e.facts.is_empty() {
                        dl.facts {
                            @for (k, v) in &e.facts { dt { (k) } dd { (v) } }
                        }
                    }
                    @if !e.case_numbers.is_empty() || !e.minutes.is_empty() {
                        p.refs {
                            @for c in &e.case_numbers { "Dnr " (c) " " }
                            @for m in &e.minutes { (m) " " }
                        }
                    }
                    p.hash { (ctx.t("Händelse", "Event")) " " code { (e.event_id) } ", hash " code { (e.hash.get(..16).unwrap_or(&e.hash)) "…" } }
                    @if may_write && e.kind == "step_recorded" {
                        p.actions { a href={ (instance_href(&id)) "/correct?event=" (e.event_id) } { (ctx.t("Rätta", "Correct")) " #" (e.position) } }
                    }
                }
            }
        }
    };
    page(&ctx, StatusCode::OK, &title, body)
}

// ---- forms ----

type FormFields = Vec<(String, String)>;

fn get<'a>(f: &'a FormFields, name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn form_fields(f: Result<Form<FormFields>, FormRejection>) -> Result<FormFields, WebError> {
    let Form(f) = f.map_err(form_rejection)?;
    if f.len() > super::limits::FORM_FIELDS_MAX {
        return Err(WebError::invalid_said(
            "form",
            workflows::said("formuläret har för många fält", "the form has too many fields"),
        ));
    }
    Ok(f)
}

/// A form body that could not be read, said in both languages (axum's
/// own text is English).
fn form_rejection(e: FormRejection) -> WebError {
    let sv = match &e {
        FormRejection::InvalidFormContentType(_) => {
            "formuläret ska skickas med Content-Type: application/x-www-form-urlencoded".to_string()
        }
        _ if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            format!("formuläret är större än {} byte", super::limits::REQUEST_BODY_BYTES_MAX)
        }
        _ => format!("formuläret gick inte att läsa: {}", e.body_text()),
    };
    WebError::new(e.status(), "invalid-input", e.body_text()).sv(sv)
}

/// The errors of a form: a summary at the top linking to each field, and
/// each message next to its field, in the page's language.
struct Errors(Vec<WebError>);

impl Errors {
    fn new(ctx: &Ctx, errors: impl IntoIterator<Item = WebError>) -> Errors {
        Errors(errors.into_iter().map(|e| e.in_lang(ctx.lang)).collect())
    }

    fn for_field(&self, field: &str) -> Option<&WebError> {
        self.0.iter().find(|e| e.field.as_deref() == Some(field))
    }

    fn summary(&self, ctx: &Ctx, shown: &[String]) -> Markup {
        self.summary_titled(shown, ctx.t("Det gick inte att spara", "Nothing was saved"))
    }

    fn summary_titled(&self, shown: &[String], title: &str) -> Markup {
        html! {
            @if !self.0.is_empty() {
                div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" id="error-summary" {
                    h2 id="error-summary-title" { (title) }
                    ul {
                        @for e in &self.0 {
                            li {
                                @match e.field.as_deref().filter(|f| shown.iter().any(|s| s == f)) {
                                    Some(f) => a href={ "#" (field_id(f)) } { (e.message) },
                                    None => (e.message),
                                }
                                @if let Some(r) = &e.remedy { ". " (r) }
                                " " span.rule { "(" (e.code) ")" }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The message under a field's label, and the attributes that tie it to the field.
    fn message(&self, field: &str) -> Markup {
        html! {
            @if let Some(e) = self.for_field(field) {
                p.field-error id={ (field_id(field)) "-error" } {
                    span.visually-hidden { "Fel: " }
                    (e.message)
                    @if let Some(r) = &e.remedy { ". " (r) }
                }
            }
        }
    }

    fn described_by(&self, field: &str, hint: bool) -> Option<String> {
        let mut ids = Vec::new();
        if hint {
            ids.push(format!("{}-hint", field_id(field)));
        }
        if self.for_field(field).is_some() {
            ids.push(format!("{}-error", field_id(field)));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    }

    fn invalid(&self, field: &str) -> Option<&'static str> {
        self.for_field(field).map(|_| "true")
    }
}

/// A text input with its label, hint and error.
fn text_input(
    errors: &Errors,
    field: &str,
    label: &str,
    hint: Option<&str>,
    value: &str,
    ty: &str,
    required: bool,
) -> Markup {
    text_input_completed(errors, field, label, hint, value, ty, required, None)
}

/// [`text_input`] with the browser's `autocomplete` token (`username`).
#[allow(clippy::too_many_arguments)]
fn text_input_completed(
    errors: &Errors,
    field: &str,
    label: &str,
    hint: Option<&str>,
    value: &str,
    ty: &str,
    required: bool,
    autocomplete: Option<&str>,
) -> Markup {
    html! {
        div class={ "field" @if errors.for_field(field).is_some() { " has-error" } } {
            label for=(field_id(field)) { (label) @if required { " " span.req { "*" } } }
            @if let Some(h) = hint { p.hint id={ (field_id(field)) "-hint" } { (h) } }
            (errors.message(field))
            input type=(ty) id=(field_id(field)) name=(field) value=(value)
                autocomplete=[autocomplete]
                aria-describedby=[errors.described_by(field, hint.is_some())]
                aria-invalid=[errors.invalid(field)]
                required[required];
        }
    }
}

fn role_select(ctx: &Ctx, errors: &Errors, p: &Principal, preferred: &[String], chosen: Option<&str>) -> Markup {
    let chosen = chosen
        .map(String::from)
        .or_else(|| p.roles.iter().find(|r| preferred.contains(r)).cloned())
        .or_else(|| p.roles.first().cloned())
        .unwrap_or_default();
    html! {
        div class={ "field" @if errors.for_field("role").is_some() { " has-error" } } {
            label for=(field_id("role")) { (ctx.t("Roll du registrerar i", "Role you record in")) }
            p.hint id={ (field_id("role")) "-hint" } {
                (ctx.t("Du registrerar som", "You record as")) " " strong { (p.name) } ". "
                @if !preferred.is_empty() { (ctx.t("Får registrera detta:", "May record this:")) " " (preferred.join(", ")) }
            }
            (errors.message("role"))
            select id=(field_id("role")) name="role" aria-describedby=[errors.described_by("role", true)] aria-invalid=[errors.invalid("role")] {
                @for r in &p.roles {
                    option value=(r) selected[*r == chosen] { (r) }
                }
            }
        }
    }
}

fn csrf_field(p: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf().unwrap_or_default()); }
}

/// Who posts a form, and its fields, once the session and the form's CSRF
/// token are checked; or the page that says why not.
fn posted(ctx: &Ctx, f: Result<Form<FormFields>, FormRejection>) -> Result<(Principal, FormFields), Response> {
    let Some(p) = ctx.principal.clone() else {
        return Err(error_page(ctx, &WebError::unauthorized()));
    };
    let f = form_fields(f).map_err(|e| error_page(ctx, &e))?;
    check_csrf(&p, &f).map_err(|e| error_page(ctx, &e))?;
    Ok((p, f))
}

fn check_csrf(p: &Principal, f: &FormFields) -> Result<(), WebError> {
    if p.csrf_ok(get(f, "csrf")) {
        Ok(())
    } else {
        Err(WebError::csrf())
    }
}

// ---- login ----

#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    pub next: Option<String>,
}

/// Only a path on this site (never `//host`): where to go after logging in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn login_page(
    ctx: &Ctx,
    status: StatusCode,
    next: &str,
    error: Option<&WebError>,
    login: &str,
    secure: bool,
) -> Response {
    let token = super::users::random_id();
    let title = ctx.t("Logga in", "Log in");
    let errors = Errors::new(ctx, error.cloned());
    let mut res = page(
        ctx,
        status,
        title,
        html! {
            h1 { (title) }
            (errors.summary_titled(&["login".to_string()], ctx.t("Det gick inte att logga in", "Could not log in")))
            form method="post" action="/login" novalidate {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                (text_input_completed(&errors, "login", ctx.t("Användarnamn", "User name"), None, login, "text", true, Some("username")))
                div.field {
                    label for="f-password" { (ctx.t("Lösenord", "Password")) " " span.req { "*" } }
                    input type="password" id="f-password" name="password" autocomplete="current-password" required;
                }
                button type="submit" { (title) }
            }
        },
    );
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, &token, secure, Some(3600)).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn login_form(ctx: Ctx, State(state): State<Shared>, Query(q): Query<LoginQuery>) -> Response {
    login_page(&ctx, StatusCode::OK, &safe_next(q.next.as_deref()), None, "", state.secure_cookies)
}

pub async fn login(
    ctx: Ctx,
    State(state): State<Shared>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    f: Result<Form<FormFields>, FormRejection>,
) -> Response {
    let f = match form_fields(f) {
        Ok(f) => f,
        Err(e) => return error_page(&ctx, &e),
    };
    let next = safe_next(get(&f, "next"));
    let login = get(&f, "login").unwrap_or_default().trim().to_string();
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE);
    let form_token = get(&f, "csrf");
    if !matches!((cookie_token, form_token), (Some(a), Some(b)) if super::users::same_secret(a, b)) {
        return login_page(&ctx, StatusCode::FORBIDDEN, &next, Some(&WebError::csrf()), &login, state.secure_cookies);
    }
    let password = get(&f, "password").unwrap_or_default();
    if password.len() > super::limits::PASSWORD_BYTES_MAX {
        let e = WebError::invalid_said("login", workflows::said("lösenordet är för långt", "the password is too long"));
        return login_page(&ctx, StatusCode::BAD_REQUEST, &next, Some(&e), &login, state.secure_cookies);
    }
    match state.auth.login(&login, password, from.ip()).await {
        Ok((id, _)) => {
            let mut res = Redirect::to(&next).into_response();
            let h = res.headers_mut();
            for c in [
                set_cookie(SESSION_COOKIE, &id, state.secure_cookies, None),
                set_cookie(LOGIN_CSRF_COOKIE, "", state.secure_cookies, Some(0)),
            ] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Err(refused) => {
            let mut e = super::api::login_error(refused);
            if e.code == "wrong-credentials" {
                e.message = ctx.t("Fel användarnamn eller lösenord.", "Wrong user name or password.").into();
            } else if e.code == "too-many-attempts" {
                let minutes = e.retry_after.unwrap_or(super::limits::LOGIN_WINDOW.as_secs()).div_ceil(60).max(1);
                e.message = match ctx.lang {
                    Lang::Sv => format!("För många misslyckade inloggningar. Försök igen om {minutes} minut(er)."),
                    Lang::En => format!("Too many failed logins. Try again in {minutes} minute(s)."),
                };
            }
            let e = e.field("login");
            let mut res = login_page(&ctx, e.status, &next, Some(&e), &login, state.secure_cookies);
            super::ops::retry_after(&mut res, &e);
            res
        }
    }
}

pub async fn logout(ctx: Ctx, State(state): State<Shared>, f: Result<Form<FormFields>, FormRejection>) -> Response {
    let Some(p) = &ctx.principal else { return Redirect::to("/").into_response() };
    let f = match form_fields(f) {
        Ok(f) => f,
        Err(e) => return error_page(&ctx, &e),
    };
    if let Err(e) = check_csrf(p, &f) {
        return error_page(&ctx, &e);
    }
    state.auth.logout(p);
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", state.secure_cookies, Some(0)).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

// ---- start ----

fn start_page(
    ctx: &Ctx,
    state: &super::AppState,
    p: &Principal,
    status: StatusCode,
    f: &FormFields,
    errors: Errors,
) -> Response {
    let title = ctx.t("Starta en instans", "Start an instance");
    let shown: Vec<String> =
        ["workflow", "instance", "organisation", "case_number", "on", "role"].iter().map(|s| s.to_string()).collect();
    let chosen_wf = get(f, "workflow").unwrap_or_default();
    let today = state.today().to_string();
    let body = html! {
        h1 { (title) }
        (errors.summary(ctx, &shown))
        form method="post" action="/start" novalidate {
            (csrf_field(p))
            div class={ "field" @if errors.for_field("workflow").is_some() { " has-error" } } {
                label for=(field_id("workflow")) { (ctx.t("Arbetsflöde", "Workflow")) " " span.req { "*" } }
                (errors.message("workflow"))
                select id=(field_id("workflow")) name="workflow" aria-describedby=[errors.described_by("workflow", false)] aria-invalid=[errors.invalid("workflow")] {
                    @for d in state.workflow_ids() {
                        option value=(d.id) selected[d.id == chosen_wf] { (ctx.lang.title(&d.title)) " (" (d.id) " v" (d.version) ")" }
                    }
                }
            }
            (text_input(&errors, "instance", ctx.t("Instansens id", "Instance id"),
                Some(ctx.t("Bokstäver, siffror och - _ . : /, t.ex. tyreso-2012", "Letters, digits and - _ . : /, e.g. tyreso-2012")),
                get(f, "instance").unwrap_or_default(), "text", true))
            @if p.orgs.is_empty() {
                (text_input(&errors, "organisation", ctx.t("Organisation", "Organisation"), None, get(f, "organisation").unwrap_or_default(), "text", true))
            } @else {
                div class={ "field" @if errors.for_field("organisation").is_some() { " has-error" } } {
                    label for=(field_id("organisation")) { (ctx.t("Organisation", "Organisation")) }
                    (errors.message("organisation"))
                    select id=(field_id("organisation")) name="organisation" {
                        @for o in &p.orgs { option value=(o) selected[Some(o.as_str()) == get(f, "organisation")] { (o) } }
                    }
                }
            }
            (text_input(&errors, "case_number", ctx.t("Diarienummer", "Case number"), Some(ctx.t("Frivilligt, t.ex. KS 2012/88", "Optional, e.g. KS 2012/88")), get(f, "case_number").unwrap_or_default(), "text", false))
            (text_input(&errors, "on", ctx.t("Startdatum", "Start date"), Some(ctx.t("ÅÅÅÅ-MM-DD", "YYYY-MM-DD")), get(f, "on").unwrap_or(&today), "date", true))
            (role_select(ctx, &errors, p, &[], get(f, "role")))
            button type="submit" { (ctx.t("Starta", "Start")) }
        }
    };
    page(ctx, status, title, body)
}

pub async fn start_form(ctx: Ctx, State(state): State<Shared>) -> Response {
    let Some(p) = ctx.principal.clone() else { return login_redirect(&ctx) };
    start_page(&ctx, &state, &p, StatusCode::OK, &Vec::new(), Errors(Vec::new()))
}

pub async fn start(ctx: Ctx, State(state): State<Shared>, f: Result<Form<FormFields>, FormRejection>) -> Response {
    let (p, f) = match posted(&ctx, f) {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let input = ops::StartInput {
        workflow: get(&f, "workflow").unwrap_or_default().into(),
        instance: get(&f, "instance").unwrap_or_default().into(),
        organisation: get(&f, "organisation").unwrap_or_default().into(),
        case_number: get(&f, "case_number").map(String::from),
        on: get(&f, "on").map(String::from),
        role: get(&f, "role").unwrap_or_default().into(),
    };
    match ops::start(&state, &p, &input).await {
        Ok(w) => Redirect::to(&instance_href(&w.instance)).into_response(),
        Err(e) => start_page(&ctx, &state, &p, e.status, &f, Errors::new(&ctx, [e])),
    }
}

// ---- record ----

#[derive(serde::Deserialize, Default)]
pub struct RecordQuery {
    pub step: Option<String>,
}

fn fact_hint(ctx: &Ctx, spec: &FactSpec) -> String {
    let mut s = match ctx.lang {
        Lang::Sv => workflows::facts::syntax_sv(&spec.ty),
        Lang::En => workflows::facts::syntax(&spec.ty),
    };
    if let Some(c) = s.get(..1) {
        s = c.to_uppercase() + &s[1..];
    }
    if matches!(spec.ty, FactType::Email | FactType::Phone) {
        s.push_str(ctx.t(" (en personuppgift: den krypteras)", " (personal data: it is encrypted)"));
    }
    if spec.many {
        s.push_str(ctx.t(". Ett värde per rad.", ". One value per line."));
    }
    s
}

fn fact_field(ctx: &Ctx, errors: &Errors, spec: &FactSpec, values: &[&str]) -> Markup {
    let field = format!("fact.{}", spec.name);
    let label = spec.title.as_ref().map(|t| ctx.lang.title(t)).unwrap_or_else(|| spec.name.clone());
    let hint = fact_hint(ctx, spec);
    let id = field_id(&field);
    html! {
        div class={ "field" @if errors.for_field(&field).is_some() { " has-error" } } {
            label for=(id) { (label) " " span.id { "(" (spec.name) ")" } @if spec.required { " " span.req { "*" } } }
            p.hint id={ (id) "-hint" } { (hint) }
            (errors.message(&field))
            @match (&spec.ty, spec.many) {
                (FactType::Choice(options), false) => {
                    select id=(id) name=(field) aria-describedby=[errors.described_by(&field, true)] aria-invalid=[errors.invalid(&field)] required[spec.required] {
                        option value="" { "–" }
                        @for o in options { option value=(o) selected[values.first() == Some(&o.as_str())] { (o) } }
                    }
                }
                (_, true) => {
                    textarea id=(id) name=(field) rows="3" aria-describedby=[errors.described_by(&field, true)] aria-invalid=[errors.invalid(&field)] required[spec.required] {
                        (values.join("\n"))
                    }
                }
                (FactType::Date, false) => {
                    input type="date" id=(id) name=(field) value=(values.first().copied().unwrap_or_default())
                        aria-describedby=[errors.described_by(&field, true)] aria-invalid=[errors.invalid(&field)] required[spec.required];
                }
                _ => {
                    input type="text" id=(id) name=(field) value=(values.first().copied().unwrap_or_default())
                        aria-describedby=[errors.described_by(&field, true)] aria-invalid=[errors.invalid(&field)] required[spec.required];
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record_page(
    ctx: &Ctx,
    state: &super::AppState,
    p: &Principal,
    id: &str,
    step: Option<&str>,
    status: StatusCode,
    f: &FormFields,
    errors: Errors,
) -> Response {
    let today = state.today();
    let found = state.live.read(|v| {
        v.instances.get(id).map(|i| {
            let inst = &i.instance;
            (inst.definition.clone(), inst.organisation.clone(), InstanceStatus::of(inst, today))
        })
    });
    let Some((def, org, status_now)) = found else {
        return error_page(ctx, &WebError::not_found(format!("{} {id}", ctx.t("Ingen instans", "No instance"))));
    };
    if let Err(e) = ops::may_record_for(p, &org) {
        return error_page(ctx, &e);
    }
    let chosen = step.and_then(|s| def.step(s));
    let title = match chosen {
        Some(s) => format!("{}: {}", ctx.t("Registrera", "Record"), ctx.lang.title(&s.title)),
        None => ctx.t("Registrera ett steg", "Record a step").to_string(),
    };
    let mut shown: Vec<String> = ["step", "on", "role", "deviation"].iter().map(|s| s.to_string()).collect();
    if let Some(s) = chosen {
        shown.extend(s.facts.iter().map(|f| format!("fact.{}", f.name)));
    }
    let body = html! {
        p.crumbs { a href=(instance_href(id)) { (id) " – " (org) } }
        h1 { (title) }
        (errors.summary(ctx, &shown))
        form method="get" action={ (instance_href(id)) "/record" } {
            div class={ "field" @if errors.for_field("step").is_some() { " has-error" } } {
                label for=(field_id("step")) { (ctx.t("Steg", "Step")) }
                (errors.message("step"))
                select id=(field_id("step")) name="step" aria-describedby=[errors.described_by("step", false)] aria-invalid=[errors.invalid("step")] {
                    @for s in &def.steps {
                        @let st = status_now.steps.iter().find(|y| y.id == s.id);
                        @let label = st.map(|x| state_label(ctx, &x.state, x.overdue).1).unwrap_or_default();
                        option value=(s.id) selected[Some(s.id.as_str()) == step] { (ctx.lang.title(&s.title)) " (" (s.id) ") – " (label) }
                    }
                }
            }
            button type="submit" { (ctx.t("Välj steg", "Choose step")) }
        }
        @if let Some(s) = chosen {
            form method="post" action={ (instance_href(id)) "/record" } novalidate {
                (csrf_field(p))
                input type="hidden" name="step" value=(s.id);
                (text_input(&errors, "on", ctx.t("Datum då det hände", "Date it happened"), Some(ctx.t("ÅÅÅÅ-MM-DD; får ligga bakåt i tiden", "YYYY-MM-DD; may be in the past")), get(f, "on").unwrap_or_default(), "date", true))
                (role_select(ctx, &errors, p, &s.recorded_by, get(f, "role")))
                @if !s.facts.is_empty() {
                    fieldset {
                        legend { (ctx.t("Uppgifter", "Facts")) }
                        @for spec in &s.facts {
                            @let name = format!("fact.{}", spec.name);
                            @let values: Vec<&str> = f.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
                            (fact_field(ctx, &errors, spec, &values))
                        }
                    }
                }
                div class={ "field" @if errors.for_field("deviation").is_some() { " has-error" } } {
                    label for=(field_id("deviation")) { (ctx.t("Avvikelse (frivilligt)", "Deviation (optional)")) }
                    p.hint id={ (field_id("deviation")) "-hint" } { (ctx.t(
                        "Om en regel i arbetsflödet inte är uppfylld men steget ändå togs: skriv varför. Det flaggas i alla rapporter.",
                        "If a rule of the workflow is not met but the step was taken anyway: say why. It is flagged in every report."
                    )) }
                    (errors.message("deviation"))
                    textarea id=(field_id("deviation")) name="deviation" rows="2" aria-describedby=[errors.described_by("deviation", true)] aria-invalid=[errors.invalid("deviation")] {
                        (get(f, "deviation").unwrap_or_default())
                    }
                }
                button type="submit" { (ctx.t("Registrera", "Record")) }
            }
        }
    };
    page(ctx, status, &title, body)
}

pub async fn record_form(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Response {
    let Some(p) = ctx.principal.clone() else { return login_redirect(&ctx) };
    let step = q.step.as_deref().filter(|s| !s.is_empty());
    record_page(&ctx, &state, &p, &id, step, StatusCode::OK, &Vec::new(), Errors(Vec::new()))
}

pub async fn record(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    f: Result<Form<FormFields>, FormRejection>,
) -> Response {
    let (p, f) = match posted(&ctx, f) {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let input = ops::RecordInput {
        step: get(&f, "step").unwrap_or_default().into(),
        on: get(&f, "on").unwrap_or_default().into(),
        facts: form_facts(&f),
        deviation: get(&f, "deviation").map(String::from),
        role: get(&f, "role").unwrap_or_default().into(),
    };
    match ops::record(&state, &p, &id, &input).await {
        Ok(w) => Redirect::to(&format!("{}#e{}", instance_href(&id), w.position)).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => error_page(&ctx, &e),
        Err(e) => {
            let step = input.step.clone();
            record_page(&ctx, &state, &p, &id, Some(&step), e.status, &f, Errors::new(&ctx, [e]))
        }
    }
}

// ---- corrections and deadline changes ----

#[derive(serde::Deserialize, Default)]
pub struct CorrectQuery {
    pub event: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct DeadlineQuery {
    pub step: Option<String>,
}

/// A free-text field (a textarea) with its label, hint and error.
fn text_area(errors: &Errors, field: &str, label: &str, hint: &str, value: &str, required: bool) -> Markup {
    html! {
        div class={ "field" @if errors.for_field(field).is_some() { " has-error" } } {
            label for=(field_id(field)) { (label) @if required { " " span.req { "*" } } }
            p.hint id={ (field_id(field)) "-hint" } { (hint) }
            (errors.message(field))
            textarea id=(field_id(field)) name=(field) rows="2" aria-describedby=[errors.described_by(field, true)]
                aria-invalid=[errors.invalid(field)] required[required] { (value) }
        }
    }
}

/// The facts a form sent, `fact.NAME` fields, one value per line.
fn form_facts(f: &FormFields) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    for (k, v) in f {
        if let Some(name) = k.strip_prefix("fact.") {
            for line in v.lines().map(str::trim).filter(|l| !l.is_empty()) {
                facts.push((name.to_string(), line.to_string()));
            }
        }
    }
    facts
}

/// What a correction or deadline form is about (its instance's definition
/// and organisation, and `T`), once found and the user may record for the
/// organisation; otherwise the page that says why. A post refused because
/// its target is none (an event that is no recorded step here, a step with
/// no pending deadline) is said as the refusal it is, not as a page that
/// is not there; a form asked for such a target is `missing`, not found.
fn form_target<T>(
    ctx: &Ctx,
    p: &Principal,
    found: Option<(std::sync::Arc<workflows::Definition>, String, T)>,
    errors: &Errors,
    missing: impl FnOnce() -> String,
) -> Result<(std::sync::Arc<workflows::Definition>, String, T), Response> {
    let Some((def, org, target)) = found else {
        return Err(match errors.0.first() {
            Some(e) => error_page(ctx, e),
            None => error_page(ctx, &WebError::not_found(missing())),
        });
    };
    ops::may_record_for(p, &org).map_err(|e| error_page(ctx, &e))?;
    Ok((def, org, target))
}

#[allow(clippy::too_many_arguments)]
fn correct_page(
    ctx: &Ctx,
    state: &super::AppState,
    p: &Principal,
    id: &str,
    event: &str,
    status: StatusCode,
    f: &FormFields,
    errors: Errors,
) -> Response {
    // The original as the instance's page shows it, from the live view (no
    // personal facts: the form offers each fact to replace, not its value).
    let found = state.live.read(|v| {
        let iv = v.instances.get(id)?;
        let trail = audit::build(v, Some(id), None, ctx.lang);
        let entry = trail.entries.into_iter().find(|e| e.event_id == event && e.kind == "step_recorded")?;
        Some((iv.instance.definition.clone(), iv.instance.organisation.clone(), entry))
    });
    let missing =
        || format!("{} {event} {} {id}", ctx.t("Inget registrerat steg", "No recorded step"), ctx.t("i", "in"));
    let (def, org, entry) = match form_target(ctx, p, found, &errors, missing) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let step = entry.step.as_deref().and_then(|s| def.step(s));
    let step_name = step_title(ctx, step, entry.step.as_deref().unwrap_or_default());
    let title = format!("{}: {step_name}", ctx.t("Rätta", "Correct"));
    let mut shown: Vec<String> = ["reason", "date", "role", "on", "event"].iter().map(|s| s.to_string()).collect();
    if let Some(s) = step {
        shown.extend(s.facts.iter().map(|f| format!("fact.{}", f.name)));
    }
    let recorders = step.map(|s| s.recorded_by.clone()).unwrap_or_default();
    let body = html! {
        p.crumbs { a href={ (instance_href(id)) "#e" (entry.position) } { (id) " – " (org) } }
        h1 { (title) }
        p { (ctx.t(
            "Rättelsen registreras som en ny händelse som pekar på originalet; originalet står kvar i loggen. Fyll bara i det som ska ändras.",
            "The correction is recorded as a new event pointing at the original; the original stays in the log. Fill in only what changes."
        )) }
        dl.facts {
            dt { (ctx.t("Händelse", "Event")) } dd { "#" (entry.position) " " code { (entry.event_id) } }
            dt { (ctx.t("Hände", "Happened")) } dd { (entry.occurred_on) }
        }
        (errors.summary(ctx, &shown))
        form method="post" action={ (instance_href(id)) "/correct" } novalidate {
            (csrf_field(p))
            input type="hidden" name="event" value=(event);
            (text_area(&errors, "reason", ctx.t("Varför rättas det", "Why it is corrected"), ctx.t("Står i granskningsspåret och i rapporterna.", "Shown in the audit trail and the reports."), get(f, "reason").unwrap_or_default(), true))
            (text_input(&errors, "date", ctx.t("Rätt datum (om datumet var fel)", "The right date (if the date was wrong)"), Some(ctx.t("ÅÅÅÅ-MM-DD", "YYYY-MM-DD")), get(f, "date").unwrap_or_default(), "date", false))
            @if let Some(s) = step { @if !s.facts.is_empty() {
                fieldset {
                    legend { (ctx.t("Uppgifter som ersätts (frivilligt)", "Facts to replace (optional)")) }
                    @for spec in &s.facts {
                        @let name = format!("fact.{}", spec.name);
                        @let values: Vec<&str> = f.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
                        @let optional = FactSpec { required: false, ..spec.clone() };
                        (fact_field(ctx, &errors, &optional, &values))
                    }
                }
            } }
            (role_select(ctx, &errors, p, &recorders, get(f, "role")))
            button type="submit" { (ctx.t("Registrera rättelsen", "Record the correction")) }
        }
    };
    page(ctx, status, &title, body)
}

pub async fn correct_form(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<CorrectQuery>,
) -> Response {
    let Some(p) = ctx.principal.clone() else { return login_redirect(&ctx) };
    // The short id the pages and reports show names the event too.
    let event = q.event.unwrap_or_default();
    let event = state.live.read(|v| ops::event_named(v, &event, Some(&id))).map_or(event, |e| e.to_hex());
    correct_page(&ctx, &state, &p, &id, event.trim(), StatusCode::OK, &Vec::new(), Errors(Vec::new()))
}

pub async fn correct(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    f: Result<Form<FormFields>, FormRejection>,
) -> Response {
    let (p, f) = match posted(&ctx, f) {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let event = get(&f, "event").unwrap_or_default().trim().to_string();
    // The event must be one of this instance's recorded steps: the page
    // shows it, and a form posted to one instance does not correct another.
    let Ok(event) = state.live.read(|v| ops::event_named(v, &event, Some(&id))).map(|e| e.to_hex()) else {
        return correct_page(&ctx, &state, &p, &id, &event, StatusCode::NOT_FOUND, &f, Errors(Vec::new()));
    };
    let input = ops::CorrectInput {
        event: event.clone(),
        reason: get(&f, "reason").unwrap_or_default().into(),
        date: get(&f, "date").map(String::from),
        facts: form_facts(&f),
        on: None,
        role: get(&f, "role").unwrap_or_default().into(),
    };
    match ops::correct(&state, &p, &input).await {
        Ok(w) => Redirect::to(&format!("{}#e{}", instance_href(&id), w.position)).into_response(),
        Err(e) => correct_page(&ctx, &state, &p, &id, &event, e.status, &f, Errors::new(&ctx, [e])),
    }
}

#[allow(clippy::too_many_arguments)]
fn deadline_page(
    ctx: &Ctx,
    state: &super::AppState,
    p: &Principal,
    id: &str,
    step: &str,
    status: StatusCode,
    f: &FormFields,
    errors: Errors,
) -> Response {
    let today = state.today();
    let found = state.live.read(|v| {
        let iv = v.instances.get(id)?;
        let st = InstanceStatus::of(&iv.instance, today);
        let pending = st.steps.iter().find(|s| s.id == step && s.state != StepState::Done)?.deadline?;
        Some((iv.instance.definition.clone(), iv.instance.organisation.clone(), pending))
    });
    let missing = || {
        let none = ctx.t("Ingen väntande tidsfrist för steget", "No pending deadline for step");
        format!("{none} {step:?} {} {id}", ctx.t("i", "in"))
    };
    let (def, org, pending) = match form_target(ctx, p, found, &errors, missing) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let s = def.step(step);
    let step_name = step_title(ctx, s, step);
    let title = format!("{}: {step_name}", ctx.t("Tidsfrist", "Deadline"));
    let shown: Vec<String> = ["extend_to", "waive", "reason", "role", "step"].iter().map(|s| s.to_string()).collect();
    // Who may change it, as the rule decides.
    let may: Vec<String> = s.map(|s| workflows::decide::deviation_roles(s).to_vec()).unwrap_or_default();
    let body = html! {
        p.crumbs { a href=(instance_href(id)) { (id) " – " (org) } }
        h1 { (title) }
        dl.facts {
            dt { (ctx.t("Sista dag nu", "Last day now")) } dd { (pending) }
        }
        p { (ctx.t(
            "Förläng till en senare dag, eller efterge tidsfristen. Ändringen registreras med sitt skäl; den tidigare tidsfristen står kvar i loggen.",
            "Extend to a later day, or waive the deadline. The change is recorded with its reason; the earlier deadline stays in the log."
        )) }
        (errors.summary(ctx, &shown))
        form method="post" action={ (instance_href(id)) "/deadline" } novalidate {
            (csrf_field(p))
            input type="hidden" name="step" value=(step);
            (text_input(&errors, "extend_to", ctx.t("Förläng till", "Extend to"), Some(ctx.t("ÅÅÅÅ-MM-DD, senare än den nuvarande sista dagen", "YYYY-MM-DD, later than the current last day")), get(f, "extend_to").unwrap_or_default(), "date", false))
            div class={ "field" @if errors.for_field("waive").is_some() { " has-error" } } {
                (errors.message("waive"))
                input type="checkbox" id=(field_id("waive")) name="waive" value="yes" checked[get(f, "waive").is_some()];
                " "
                label for=(field_id("waive")) { (ctx.t("Efterge tidsfristen i stället", "Waive the deadline instead")) }
            }
            (text_area(&errors, "reason", ctx.t("Skäl", "Reason"), ctx.t("Står i granskningsspåret och i rapporterna.", "Shown in the audit trail and the reports."), get(f, "reason").unwrap_or_default(), true))
            (role_select(ctx, &errors, p, &may, get(f, "role")))
            button type="submit" { (ctx.t("Registrera ändringen", "Record the change")) }
        }
    };
    page(ctx, status, &title, body)
}

pub async fn deadline_form(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<DeadlineQuery>,
) -> Response {
    let Some(p) = ctx.principal.clone() else { return login_redirect(&ctx) };
    let step = q.step.unwrap_or_default();
    deadline_page(&ctx, &state, &p, &id, step.trim(), StatusCode::OK, &Vec::new(), Errors(Vec::new()))
}

pub async fn deadline(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(id): Path<String>,
    f: Result<Form<FormFields>, FormRejection>,
) -> Response {
    let (p, f) = match posted(&ctx, f) {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let input = ops::DeadlineInput {
        step: get(&f, "step").unwrap_or_default().into(),
        extend_to: get(&f, "extend_to").map(String::from),
        waive: get(&f, "waive").is_some(),
        reason: get(&f, "reason").unwrap_or_default().into(),
        on: None,
        role: get(&f, "role").unwrap_or_default().into(),
    };
    match ops::deadline(&state, &p, &id, &input).await {
        Ok(w) => Redirect::to(&format!("{}#e{}", instance_href(&id), w.position)).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => error_page(&ctx, &e),
        Err(e) => {
            let step = input.step.clone();
            deadline_page(&ctx, &state, &p, &id, &step, e.status, &f, Errors::new(&ctx, [e]))
        }
    }
}

// ---- reports ----

fn report_title(ctx: &Ctx, kind: &str) -> String {
    match kind {
        "audit" => ctx.t("Granskningsspår", "Audit trail"),
        "deadlines" => ctx.t("Tidsfrister", "Deadlines"),
        "compliance" => ctx.t("Efterlevnad", "Compliance"),
        "dialogues" => ctx.t("Dialogregister", "Dialogue register"),
        "annual" => ctx.t("Årsredovisningens projektavsnitt", "Annual report section"),
        _ => kind,
    }
    .to_string()
}

/// Reports a visitor who is not logged in may see: those without personal data.
fn public_report(kind: &str) -> bool {
    kind == "deadlines"
}

/// The formats a report can be downloaded in.
fn formats(kind: &str) -> &'static [&'static str] {
    if kind == "deadlines" {
        &["html", "md", "csv", "json", "ics"]
    } else {
        &["html", "md", "csv", "json"]
    }
}

pub async fn reports_index(ctx: Ctx, State(state): State<Shared>) -> Response {
    if ctx.principal.is_none() {
        return login_redirect(&ctx);
    }
    let (instances, orgs) = state.live.read(|v| {
        let ids: Vec<String> = v.instances.keys().map(|k| k.to_string()).collect();
        let mut orgs: Vec<String> = v.instances.values().map(|i| i.instance.organisation.clone()).collect();
        orgs.sort();
        orgs.dedup();
        (ids, orgs)
    });
    let title = ctx.t("Rapporter", "Reports");
    let year = state.today().year().to_string();
    let org_select = |id: &str, required: bool| {
        html! {
            div.field {
                label for=(id) { (ctx.t("Organisation", "Organisation")) }
                select id=(id) name="org" {
                    @if !required { option value="" { (ctx.t("Alla", "All")) } }
                    @for o in &orgs { option value=(o) { (o) } }
                }
            }
        }
    };
    let instance_select = |id: &str, required: bool| {
        html! {
            div.field {
                label for=(id) { (ctx.t("Instans", "Instance")) }
                select id=(id) name="instance" {
                    @if !required { option value="" { (ctx.t("Alla", "All")) } }
                    @for i in &instances { option value=(i) { (i) } }
                }
            }
        }
    };
    let as_of = |id: &str| {
        html! {
            div.field {
                label for=(id) { (ctx.t("Som det var känt per (frivilligt)", "As known on (optional)")) }
                input type="date" id=(id) name="as_of";
            }
        }
    };
    let body = html! {
        h1 { (title) }
        p { (ctx.t(
            "Varje rapport byggs från loggen och anger vilken position och hash den byggdes från. Visa den här, eller ladda ner den som HTML, Markdown, CSV eller JSON (tidsfrister även som kalender, ICS).",
            "Every report is built from the log and names the position and hash it was built from. View it here, or download it as HTML, Markdown, CSV or JSON (deadlines also as a calendar, ICS)."
        )) }
        section aria-labelledby="r-audit" {
            h2 id="r-audit" { (report_title(&ctx, "audit")) }
            form method="get" action="/reports/audit" { (instance_select("audit-instance", false)) (as_of("audit-asof")) button type="submit" { (ctx.t("Visa", "Show")) } }
        }
        section aria-labelledby="r-deadlines" {
            h2 id="r-deadlines" { (report_title(&ctx, "deadlines")) }
            form method="get" action="/reports/deadlines" { (org_select("deadlines-org", false)) (as_of("deadlines-asof")) button type="submit" { (ctx.t("Visa", "Show")) } }
        }
        section aria-labelledby="r-compliance" {
            h2 id="r-compliance" { (report_title(&ctx, "compliance")) }
            form method="get" action="/reports/compliance" { (instance_select("compliance-instance", true)) (as_of("compliance-asof")) button type="submit" { (ctx.t("Visa", "Show")) } }
        }
        section aria-labelledby="r-dialogues" {
            h2 id="r-dialogues" { (report_title(&ctx, "dialogues")) }
            form method="get" action="/reports/dialogues" {
                (org_select("dialogues-org", false))
                div.field {
                    label for="dialogues-template" { (ctx.t("Form", "Form")) }
                    select id="dialogues-template" name="template" {
                        option value="" { (ctx.t("Register (tabell)", "Register (table)")) }
                        option value="case" { (ctx.t("Fallbeskrivning: Ingress, Bakgrund, Syfte, Process, Resultat", "Case: Ingress, Bakgrund, Syfte, Process, Resultat")) }
                    }
                }
                (as_of("dialogues-asof"))
                button type="submit" { (ctx.t("Visa", "Show")) }
            }
        }
        section aria-labelledby="r-annual" {
            h2 id="r-annual" { (report_title(&ctx, "annual")) }
            form method="get" action="/reports/annual" {
                (org_select("annual-org", true))
                div.field { label for="annual-year" { (ctx.t("År", "Year")) } input type="number" id="annual-year" name="year" value=(year) min="1900" max="2100"; }
                (as_of("annual-asof"))
                button type="submit" { (ctx.t("Visa", "Show")) }
            }
        }
    };
    page(&ctx, StatusCode::OK, title, body)
}

/// A download's file name: the report, then what it covers (instance or
/// organisation, year, the date it is as known on), so that several saved
/// side by side keep apart: `styrlogg-annual-harryda-kommun-2012.md`.
/// Letters are kept as ASCII (å ä ö as a a o), anything else is a dash.
fn download_name(kind: &str, q: &ReportQuery, ext: &str) -> String {
    let mut name = format!("styrlogg-{kind}");
    let parts = [&q.instance, &q.org, &q.year, &q.as_of];
    for part in parts.into_iter().flatten().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let mut word = String::new();
        for c in part.chars().flat_map(char::to_lowercase) {
            let c = match c {
                'å' | 'ä' | 'á' | 'à' => 'a',
                'ö' | 'ø' | 'ó' => 'o',
                'é' | 'è' => 'e',
                'ü' => 'u',
                c if c.is_ascii_alphanumeric() => c,
                _ => '-',
            };
            if !(c == '-' && (word.is_empty() || word.ends_with('-'))) {
                word.push(c);
            }
        }
        let word: String = word.chars().take(60).collect();
        let word = word.trim_end_matches('-');
        if !word.is_empty() {
            name.push('-');
            name.push_str(word);
        }
    }
    format!("{name}.{ext}")
}

fn download(kind: &str, q: &ReportQuery, format: &str, body: String) -> Response {
    let (ty, ext) = match format {
        "html" => ("text/html; charset=utf-8", "html"),
        "md" => ("text/markdown; charset=utf-8", "md"),
        "csv" => ("text/csv; charset=utf-8", "csv"),
        "json" => ("application/json", "json"),
        _ => ("text/calendar; charset=utf-8", "ics"),
    };
    let disposition = format!("attachment; filename=\"{}\"", download_name(kind, q, ext));
    (
        [
            (header::CONTENT_TYPE, ty.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            // The downloaded HTML carries its own inline style.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn report_page(ctx: Ctx, state: Shared, kind: &str, q: ReportQuery) -> Response {
    if ctx.principal.is_none() && !public_report(kind) {
        return login_redirect(&ctx);
    }
    let built = match build_report(&state, kind, &q, ctx.lang).await {
        Ok(b) => b,
        Err(e) => return error_page(&ctx, &e),
    };
    if let Some(format) = q.format.as_deref().filter(|f| !f.is_empty()) {
        let body = match format {
            "html" => report_render::html(&built.doc, ctx.lang),
            // Text from the log is escaped, so that no Markdown renderer
            // reads it as HTML.
            "md" => report_render::markdown(&built.doc),
            // No cell is a formula (`Document::main_table`); the byte order
            // mark makes Excel read the file as UTF-8 (å, ä, ö).
            "csv" => match report_render::csv(&built.doc) {
                Ok(c) => format!("\u{feff}{c}"),
                Err(e) => return error_page(&ctx, &WebError::from_anyhow(&e, "format")),
            },
            "json" => built.json,
            "ics" if built.ics.is_some() => built.ics.unwrap_or_default(),
            other => {
                let e = WebError::invalid(
                    "format",
                    format!("{} {other:?}: {}", ctx.t("inget format", "no format"), formats(kind).join(", ")),
                );
                return error_page(&ctx, &e);
            }
        };
        return download(kind, &q, format, body);
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(ctx.query.as_bytes())
        .filter(|(k, _)| k != "format" && k != "lang")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let link = |format: &str| {
        let mut p = params.clone();
        p.push(("format".into(), format.into()));
        p.push(("lang".into(), if ctx.lang == Lang::En { "en".into() } else { "sv".into() }));
        format!("/reports/{kind}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(p.iter()).finish())
    };
    let title = built.doc.title.clone();
    let body = html! {
        div.report { (PreEscaped(report_render::html_body(&built.doc))) }
        h2 { (ctx.t("Ladda ner", "Download")) }
        ul.downloads {
            @for f in formats(kind) {
                li { a href=(link(f)) download { (f.to_uppercase()) span.visually-hidden { " " (title) } } }
            }
        }
    };
    page(&ctx, StatusCode::OK, &title, body)
}

pub async fn report(
    ctx: Ctx,
    State(state): State<Shared>,
    Path(kind): Path<String>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(Query(q)) => report_page(ctx, state, &kind, q).await,
        Err(e) => error_page(
            &ctx,
            &WebError::new(StatusCode::BAD_REQUEST, "invalid-input", e.body_text())
                .sv(format!("adressens parametrar gick inte att läsa: {}", e.body_text())),
        ),
    }
}

pub async fn deadlines(
    ctx: Ctx,
    State(state): State<Shared>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    report(ctx, State(state), Path("deadlines".into()), q).await
}

pub async fn dialogues(
    ctx: Ctx,
    State(state): State<Shared>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    report(ctx, State(state), Path("dialogues".into()), q).await
}
