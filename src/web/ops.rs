//! The writes the web interface offers, shared by the forms and the JSON
//! API: each checks who asks (a role they hold, an organisation they may
//! record for), then calls the one write path in `flow.rs`, where the
//! workflow's own rules decide. Errors become a [`WebError`]: an HTTP
//! status, a stable code, a message, and the field it is about.

use super::auth::Principal;
use super::AppState;
use crate::flow::{self, Written};
use crate::Refused;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::{Actor, AppendError, DeadlineChange, EventId, EventStore, InstanceId, StoreError};
use jiff::civil::Date;
use projections::Lang;
use serde::{Deserialize, Serialize};
use workflows::{said, Bilingual, Rejection, Rule};

/// Why a request was not done; nothing was written.
#[derive(Debug, Clone, Serialize)]
pub struct WebError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable: `unauthorized`, `csrf-failed`, `role-not-held`,
    /// `org-not-allowed`, `not-found`, `invalid-input`, `conflict`, a
    /// workflow rule's code (`missing-fact`, `role-not-allowed`, ...), and so on.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The input it is about: `on`, `role`, `step`, `fact.NAME`, `deviation`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What would satisfy the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// Seconds until it may be tried again: sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The message and the remedy in Swedish, where they are said in
    /// Swedish: the pages show them by default ([`WebError::in_lang`]);
    /// the API answers in English.
    #[serde(skip)]
    pub sv: Option<(String, Option<String>)>,
}

impl WebError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> WebError {
        WebError {
            status,
            code: code.into(),
            message: message.into(),
            step: None,
            field: None,
            remedy: None,
            retry_after: None,
            sv: None,
        }
    }

    /// An error said in both languages.
    pub fn said(status: StatusCode, code: &str, message: Bilingual) -> WebError {
        WebError::new(status, code, message.en).sv(message.sv)
    }

    /// The Swedish message, where the English one is already given.
    pub fn sv(mut self, message: impl Into<String>) -> WebError {
        self.sv = Some((message.into(), None));
        self
    }

    /// The error as a page in `lang` shows it: in Swedish where it is
    /// said in Swedish.
    pub fn in_lang(&self, lang: Lang) -> WebError {
        let mut e = self.clone();
        if let (Lang::Sv, Some((message, remedy))) = (lang, e.sv.take()) {
            e.message = message;
            e.remedy = remedy.or(e.remedy);
        }
        e
    }

    pub fn field(mut self, field: &str) -> WebError {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized() -> WebError {
        WebError::new(StatusCode::UNAUTHORIZED, "unauthorized", "log in, or send Authorization: Bearer TOKEN")
            .sv("logga in för att göra detta")
    }

    pub fn csrf() -> WebError {
        WebError::said(
            StatusCode::FORBIDDEN,
            "csrf-failed",
            said(
                "formulärets säkerhetskod saknas eller är för gammal; ladda om sidan och försök igen",
                "the form's security token is missing or stale; reload the page and try again",
            ),
        )
    }

    pub fn not_found(what: impl Into<String>) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, "not-found", what)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, "invalid-input", message).field(field)
    }

    /// [`WebError::invalid`], said in both languages.
    pub fn invalid_said(field: &str, message: Bilingual) -> WebError {
        WebError::said(StatusCode::BAD_REQUEST, "invalid-input", message).field(field)
    }

    /// A workflow's rejection: 403 when the role may not do it, else 422.
    /// `text_field` names the free-text input of the command (`deviation`
    /// or `reason`).
    pub fn rejection(r: &Rejection, text_field: &str) -> WebError {
        let field = match r.rule {
            _ if r.fact.is_some() => format!("fact.{}", r.fact.as_deref().unwrap_or_default()),
            Rule::RoleNotAllowed | Rule::DeviationNotAllowed => "role".into(),
            Rule::FutureDate | Rule::BeforePrerequisite | Rule::WindowOpen => "on".into(),
            Rule::InvalidText => text_field.into(),
            Rule::UnknownEvent => "event".into(),
            _ => "step".into(),
        };
        let status = match r.rule {
            Rule::RoleNotAllowed | Rule::DeviationNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        WebError {
            status,
            code: r.rule.code().into(),
            message: r.message.clone(),
            step: r.step.clone(),
            field: Some(field),
            remedy: Some(r.remedy.clone()),
            retry_after: None,
            sv: Some((r.sv.0.clone(), Some(r.sv.1.clone()))),
        }
    }

    /// Any failure of the write path.
    pub fn from_anyhow(err: &anyhow::Error, text_field: &str) -> WebError {
        for cause in err.chain() {
            if let Some(r) = cause.downcast_ref::<Rejection>() {
                return WebError::rejection(r, text_field);
            }
            if let Some(e) = cause.downcast_ref::<AppendError>() {
                return match e {
                    AppendError::Conflict { instance, actual, .. } => {
                        let sv = format!(
                            "instansen {instance} ändrades av en annan skrivning under tiden (den är nu i version {actual}); ingenting av begäran sparades. Läs in den igen och försök på nytt"
                        );
                        WebError::new(StatusCode::CONFLICT, "conflict", e.to_string()).sv(sv)
                    }
                    AppendError::CommandIdReused { command_id, .. } => {
                        let sv = format!(
                            "kommando-id:t {command_id} har redan använts för ett annat kommando; ett nytt försök måste upprepa samma kommando"
                        );
                        WebError::new(StatusCode::CONFLICT, "conflict", e.to_string()).sv(sv)
                    }
                    AppendError::Invalid(m) => WebError::new(StatusCode::BAD_REQUEST, "invalid-input", m.clone()),
                    AppendError::Store(s) => store_error(s),
                };
            }
            if let Some(e) = cause.downcast_ref::<StoreError>() {
                return store_error(e);
            }
            if let Some(Refused(m)) = cause.downcast_ref::<Refused>() {
                return WebError::new(StatusCode::BAD_REQUEST, "refused", m.clone());
            }
        }
        tracing::error!("request failed: {err:#}");
        WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", format!("{err:#}"))
    }
}

/// A failure of the store: in full in the server's log, and to the client
/// without the server's paths or its commands.
fn store_error(e: &StoreError) -> WebError {
    tracing::error!("store error: {e}");
    let text = match e {
        StoreError::Corrupt { position, .. } => said(
            format!(
                "loggen är skadad vid position {position}, så inget mer skrivs i den; ingenting av begäran sparades. Mer finns i serverns logg"
            ),
            format!(
                "the log is damaged at position {position}, so nothing more is written to it; nothing of this request was stored. The server's log says more"
            ),
        ),
        StoreError::Poisoned(_) => said(
            "lagret tar inte emot skrivningar sedan en tidigare skrivning misslyckades; ingenting av begäran sparades. Servern måste startas om",
            "the store refuses writes since an earlier write failed; nothing of this request was stored. The server must be restarted",
        ),
        StoreError::Unavailable(_) => said(
            "loggens server går inte att nå; ingenting av begäran sparades. Försök igen senare",
            "the log's server is unavailable; nothing of this request was stored. Try again later",
        ),
        StoreError::Closed => said(
            "servern håller på att stängas; ingenting av begäran sparades. Försök igen senare",
            "the server is shutting down; nothing of this request was stored. Try again later",
        ),
        _ => said(
            "lagret kunde inte göra detta (ett lagringsfel); ingenting av begäran sparades. Mer finns i serverns logg",
            "the store could not do this (a storage error); nothing of this request was stored. The server's log says more",
        ),
    };
    WebError::said(StatusCode::SERVICE_UNAVAILABLE, "store-error", text)
}

impl IntoResponse for WebError {
    /// The JSON error, in English; the API's middleware may say it in
    /// Swedish instead, from the error it finds in the response.
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(&self)).into_response();
        retry_after(&mut res, &self);
        res.extensions_mut().insert(self);
        res
    }
}

/// `Retry-After` on a response, when the error says when to try again.
pub fn retry_after(res: &mut Response, e: &WebError) {
    if let Some(s) = e.retry_after {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
    }
}

/// What a write did, as the API answers it.
#[derive(Debug, Serialize)]
pub struct WriteResult {
    pub instance: String,
    pub event_id: String,
    pub position: u64,
    pub sequence: u64,
    /// True when the same command had been applied before: nothing new was written.
    pub deduplicated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<engine::Lateness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<String>,
}

impl From<&Written> for WriteResult {
    fn from(w: &Written) -> Self {
        WriteResult {
            instance: w.outcome.instance.to_string(),
            event_id: w.event.event.event_id.to_hex(),
            position: w.outcome.first_position,
            sequence: w.outcome.first_sequence,
            deduplicated: w.outcome.deduplicated,
            late: w.late().copied(),
            deviation: w.deviation().map(String::from),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    pub workflow: String,
    pub instance: String,
    pub organisation: String,
    #[serde(default)]
    pub case_number: Option<String>,
    /// The date it started; default today.
    #[serde(default)]
    pub on: Option<String>,
    pub role: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    pub step: String,
    pub on: String,
    /// `[["name", "value"], ...]`, as `--fact name=value` takes them.
    #[serde(default)]
    pub facts: Vec<(String, String)>,
    #[serde(default)]
    pub deviation: Option<String>,
    pub role: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectInput {
    pub event: String,
    pub reason: String,
    /// The date it really happened, if that was wrong.
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub facts: Vec<(String, String)>,
    #[serde(default)]
    pub on: Option<String>,
    pub role: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineInput {
    pub step: String,
    #[serde(default)]
    pub extend_to: Option<String>,
    #[serde(default)]
    pub waive: bool,
    pub reason: String,
    #[serde(default)]
    pub on: Option<String>,
    pub role: String,
}

/// A free text as it is kept: a browser sends a textarea's line breaks as
/// CRLF (HTML's form encoding), the log keeps them as LF, and a CR of its
/// own is a control character the log refuses.
fn lines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

fn date(field: &str, s: &str) -> Result<Date, WebError> {
    workflows::facts::parse_date_said(s.trim()).map_err(|e| WebError::invalid_said(field, e))
}

fn opt_date(field: &str, s: &Option<String>, default: Date) -> Result<Date, WebError> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => date(field, s),
    }
}

/// The actor: the principal's own name, in a role it holds.
fn actor(p: &Principal, role: &str) -> Result<Actor, WebError> {
    let role = role.trim();
    if role.is_empty() {
        return Err(WebError::invalid_said(
            "role",
            said("välj rollen du registrerar i", "choose the role you record in"),
        ));
    }
    if !p.holds(role) {
        return Err(WebError::said(
            StatusCode::FORBIDDEN,
            "role-not-held",
            said(
                format!("{} har inte rollen {role:?}; användarens roller är: {}", p.login, p.roles.join(", ")),
                format!("{} does not hold the role {role:?}; their roles are: {}", p.login, p.roles.join(", ")),
            ),
        )
        .field("role"));
    }
    Ok(Actor::new(p.name.clone(), role))
}

pub fn may_record_for(p: &Principal, org: &str) -> Result<(), WebError> {
    if p.may_record_for(org) {
        return Ok(());
    }
    Err(WebError::said(
        StatusCode::FORBIDDEN,
        "org-not-allowed",
        said(
            format!("{} får bara registrera för: {}", p.login, p.orgs.join(", ")),
            format!("{} may record only for: {}", p.login, p.orgs.join(", ")),
        ),
    )
    .field("organisation"))
}

fn instance_id(s: &str) -> Result<InstanceId, WebError> {
    let s = s.trim();
    InstanceId::new(s).map_err(|e| WebError::invalid_said("instance", workflows::refusal("instansens id", true, &e)))
}

/// The organisation of an existing instance, or 404.
fn organisation_of(state: &AppState, id: &InstanceId) -> Result<String, WebError> {
    state
        .live
        .read(|v| v.instances.get(id).map(|i| i.instance.organisation.clone()))
        .ok_or_else(|| WebError::not_found(format!("no instance {id}")).sv(format!("ingen instans {id}")))
}

async fn done(state: &AppState, w: Written) -> WriteResult {
    state.live.caught_up(w.outcome.last_position).await;
    WriteResult::from(&w)
}

pub async fn start(state: &AppState, p: &Principal, input: &StartInput) -> Result<WriteResult, WebError> {
    let def = state.definition(input.workflow.trim()).ok_or_else(|| {
        WebError::invalid_said(
            "workflow",
            said(format!("inget arbetsflöde {:?}", input.workflow), format!("no workflow {:?}", input.workflow)),
        )
    })?;
    let id = instance_id(&input.instance)?;
    // Refused by the flow too; here next to its field, in both languages.
    if let Some(why) = flow::unfit_here(&state.store, &id).await.map_err(|e| WebError::from_anyhow(&e, "instance"))? {
        return Err(WebError::invalid_said("instance", why));
    }
    let org = input.organisation.trim();
    if org.is_empty() {
        return Err(WebError::invalid_said(
            "organisation",
            said("ange organisationen som deltar", "name the organisation taking part"),
        ));
    }
    name_field("organisation", "organisationens namn", org)?;
    let dnr = input.case_number.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(d) = dnr {
        name_field("case_number", "diarienumret", d)?;
    }
    may_record_for(p, org)?;
    let actor = actor(p, &input.role)?;
    let today = state.today();
    let on = opt_date("on", &input.on, today)?;
    // `apply_start` recognises the same start given again (a retry: answered
    // as written, `deduplicated`) and refuses another start under an id
    // that exists; so the instance's existence is asked only once it refused.
    let w = match flow::apply_start(&state.store, &def, &id, org, dnr, on, actor, today).await {
        Ok(w) => w,
        Err(e) if e.downcast_ref::<Refused>().is_some() && exists(state, &id).await => {
            return Err(WebError::said(
                StatusCode::CONFLICT,
                "instance-exists",
                said(
                    format!("instansen {id} finns redan; välj ett annat id"),
                    format!("instance {id} already exists; choose another id"),
                ),
            )
            .field("instance"))
        }
        Err(e) => return Err(WebError::from_anyhow(&e, "reason")),
    };
    Ok(done(state, w).await)
}

/// A name of one line (an organisation, a case number) as the log takes
/// it, or why not, next to its field.
fn name_field(field: &str, what_sv: &str, s: &str) -> Result<(), WebError> {
    engine::event::check_text(field, s, engine::limits::NAME_BYTES_MAX, false)
        .map_err(|e| WebError::invalid_said(field, workflows::refusal(what_sv, true, &e)))
}

/// Whether the log holds events of instance `id` (a workflow instance, not
/// the log's own).
async fn exists(state: &AppState, id: &InstanceId) -> bool {
    if id.is_system() {
        return false;
    }
    state.live.read(|v| v.instances.contains_key(id))
        || state.store.read_instance(id, 1).await.is_ok_and(|events| !events.is_empty())
}

pub async fn record(state: &AppState, p: &Principal, id: &str, input: &RecordInput) -> Result<WriteResult, WebError> {
    let id = instance_id(id)?;
    let org = organisation_of(state, &id)?;
    may_record_for(p, &org)?;
    let actor = actor(p, &input.role)?;
    let on = date("on", &input.on)?;
    let facts: Vec<(String, String)> = input
        .facts
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let deviation = input.deviation.as_deref().filter(|d| !d.trim().is_empty()).map(lines);
    let w = flow::apply_record(
        &state.store,
        &state.keys,
        &id,
        input.step.trim(),
        on,
        facts,
        deviation.as_deref(),
        actor,
        state.today(),
    )
    .await
    .map_err(|e| WebError::from_anyhow(&e, "deviation"))?;
    Ok(done(state, w).await)
}

/// The event a user names: its whole id (32 hex digits) or its first 8 or
/// more hex digits, as the pages, the reports and the command line show
/// it; within `instance` when one is given.
pub fn event_named(v: &projections::LogView, text: &str, instance: Option<&str>) -> Result<EventId, WebError> {
    let Some(hex) = flow::event_id_start(text) else {
        return Err(WebError::invalid_said(
            "event",
            said(
                "det är inget händelse-id: 32 hexsiffror, eller de 8 eller fler första av dem",
                "not an event id: 32 hex digits, or the first 8 or more of them",
            ),
        ));
    };
    let mut found = v
        .instances
        .values()
        .filter(|iv| instance.is_none_or(|i| iv.instance.id.as_str() == i))
        .flat_map(|iv| iv.events.iter())
        .map(|e| e.event.event_id)
        .filter(|id| id.to_hex().starts_with(&hex));
    match (found.next(), found.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(WebError::not_found(format!("no event {hex} in the log"))),
        (Some(_), Some(_)) => Err(WebError::invalid_said(
            "event",
            said(
                format!("flera händelser har ett id som börjar med {hex}: ange fler siffror"),
                format!("more than one event id starts with {hex}: give more of its digits"),
            ),
        )),
    }
}

pub async fn correct(state: &AppState, p: &Principal, input: &CorrectInput) -> Result<WriteResult, WebError> {
    let event = state.live.read(|v| event_named(v, &input.event, None))?;
    let org = state
        .live
        .read(|v| v.event(&event).map(|e| v.instances[&e.event.instance].instance.organisation.clone()))
        .ok_or_else(|| WebError::not_found(format!("no event {event} in the log")))?;
    may_record_for(p, &org)?;
    let actor = actor(p, &input.role)?;
    let today = state.today();
    let on = opt_date("on", &input.on, today)?;
    let new_date = match input.date.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(date("date", d)?),
    };
    let facts = input.facts.iter().filter(|(_, v)| !v.trim().is_empty()).cloned().collect();
    let w =
        flow::apply_correct(&state.store, &state.keys, event, &lines(&input.reason), new_date, facts, on, actor, today)
            .await
            .map_err(|e| WebError::from_anyhow(&e, "reason"))?;
    Ok(done(state, w).await)
}

pub async fn deadline(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: &DeadlineInput,
) -> Result<WriteResult, WebError> {
    let id = instance_id(id)?;
    let org = organisation_of(state, &id)?;
    may_record_for(p, &org)?;
    let actor = actor(p, &input.role)?;
    let change = match (input.extend_to.as_deref().map(str::trim).filter(|s| !s.is_empty()), input.waive) {
        (Some(to), false) => DeadlineChange::Extended { to: date("extend_to", to)? },
        (None, true) => DeadlineChange::Waived,
        (Some(_), true) => {
            return Err(WebError::invalid_said(
                "extend_to",
                said(
                    "förläng till en dag eller efterge tidsfristen, inte båda",
                    "extend to a day or waive the deadline, not both (extend_to or waive: true)",
                ),
            ))
        }
        (None, false) => {
            return Err(WebError::invalid_said(
                "extend_to",
                said(
                    "ange dagen tidsfristen förlängs till, eller efterge den",
                    "give the day the deadline is extended to, or waive it (extend_to or waive: true)",
                ),
            ))
        }
    };
    let today = state.today();
    let on = opt_date("on", &input.on, today)?;
    let w = flow::apply_deadline(&state.store, &id, input.step.trim(), change, &lines(&input.reason), on, actor, today)
        .await
        .map_err(|e| WebError::from_anyhow(&e, "reason"))?;
    Ok(done(state, w).await)
}
