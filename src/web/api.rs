//! The HTTP JSON API under /api: the same operations as the pages and the
//! command line. Every request but the OpenAPI document and the login
//! needs a principal (a session cookie, or `Authorization: Bearer`); a
//! write with a session cookie also needs the session's CSRF token in
//! `X-CSRF-Token`. Every error is JSON: `{"code", "message", ...}`.

use super::auth::{set_cookie, LoginRefused, Principal, SESSION_COOKIE};
use super::ops::{self, WebError};
use super::{AppState, Shared};
use crate::reports::{self, Spec};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::{audit, Lang};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use workflows::said;
use workflows::status::InstanceStatus;

/// The principal of a read, or 401.
fn reader(state: &AppState, headers: &HeaderMap) -> Result<Principal, WebError> {
    state.auth.principal(headers).ok_or_else(WebError::unauthorized)
}

/// The principal of a write, or 401; a session must also send its CSRF token.
fn writer(state: &AppState, headers: &HeaderMap) -> Result<Principal, WebError> {
    let p = reader(state, headers)?;
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !p.csrf_ok(given) {
        return Err(WebError::csrf());
    }
    Ok(p)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, WebError> {
    match b {
        Ok(Json(t)) => Ok(t),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with Content-Type: application/json",
        )),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {} bytes", super::limits::REQUEST_BODY_BYTES_MAX),
        )),
        Err(e) => Err(WebError::new(StatusCode::BAD_REQUEST, "invalid-input", e.body_text())),
    }
}

fn written(r: ops::WriteResult) -> Response {
    let status = if r.deduplicated { StatusCode::OK } else { StatusCode::CREATED };
    (status, Json(r)).into_response()
}

pub async fn not_found() -> WebError {
    WebError::not_found("no such API endpoint; see /api/openapi.json")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub login: String,
    pub password: String,
}

#[derive(Serialize)]
struct Me<'a> {
    login: &'a str,
    name: &'a str,
    roles: &'a [String],
    orgs: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
}

fn me_of(p: &Principal) -> Me<'_> {
    Me { login: &p.login, name: &p.name, roles: &p.roles, orgs: &p.orgs, csrf_token: p.csrf() }
}

pub fn login_error(e: LoginRefused) -> WebError {
    match e {
        LoginRefused::Wrong => WebError::new(StatusCode::UNAUTHORIZED, "wrong-credentials", "wrong login or password"),
        LoginRefused::TooManyAttempts { retry_after } => {
            // Whole seconds, rounded up: never earlier than the lockout ends.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let mut e = WebError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                format!("too many failed logins; try again in {} minute(s)", seconds.div_ceil(60).max(1)),
            );
            e.retry_after = Some(seconds.max(1));
            e
        }
        LoginRefused::TooManySessions => WebError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-sessions",
            "the server holds as many sessions as it may; try again later",
        )
        .sv("servern har så många inloggningar som den får ha; försök igen senare"),
    }
}

/// `POST /api/session`: log in; answers the CSRF token for later writes.
pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    b: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, WebError> {
    let b = body(b)?;
    if b.password.len() > super::limits::PASSWORD_BYTES_MAX {
        return Err(WebError::invalid("password", "the password is too long"));
    }
    let (id, p) = state.auth.login(b.login.trim(), &b.password, from.ip()).await.map_err(login_error)?;
    let cookie = set_cookie(SESSION_COOKIE, &id, state.secure_cookies, None);
    Ok(([(header::SET_COOKIE, cookie)], Json(me_of(&p))).into_response())
}

/// `DELETE /api/session`: log out.
pub async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    let p = writer(&state, &headers)?;
    state.auth.logout(&p);
    let cookie = set_cookie(SESSION_COOKIE, "", state.secure_cookies, Some(0));
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

pub async fn me(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    let p = reader(&state, &headers)?;
    Ok(Json(me_of(&p)).into_response())
}

#[derive(Serialize)]
struct HeadOut {
    position: u64,
    hash: String,
}

pub async fn head(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    reader(&state, &headers)?;
    let (position, hash) = state.live.read(|v| (v.head_position, v.head_hash.to_hex()));
    Ok(Json(HeadOut { position, hash }).into_response())
}

#[derive(Serialize)]
struct TitleOut<'a> {
    sv: &'a str,
    en: &'a str,
}

fn title(t: &workflows::definition::Title) -> TitleOut<'_> {
    TitleOut { sv: &t.sv, en: &t.en }
}

#[derive(Serialize)]
struct FactOut<'a> {
    name: &'a str,
    title: Option<TitleOut<'a>>,
    #[serde(rename = "type")]
    ty: &'static str,
    /// How a value is written.
    syntax: String,
    required: bool,
    many: bool,
    options: Vec<&'a str>,
}

#[derive(Serialize)]
struct StepOut<'a> {
    id: &'a str,
    title: TitleOut<'a>,
    kind: &'static str,
    after: &'a [String],
    repeat: bool,
    recorded_by: &'a [String],
    deviation_by: &'a [String],
    facts: Vec<FactOut<'a>>,
}

#[derive(Serialize)]
struct WorkflowOut<'a> {
    id: &'a str,
    version: u32,
    title: TitleOut<'a>,
    hash: String,
    roles: Vec<(&'a str, TitleOut<'a>)>,
    steps: Vec<StepOut<'a>>,
}

/// `GET /api/workflows`: every definition, with its roles, steps and facts.
pub async fn workflows(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    reader(&state, &headers)?;
    let defs = state.workflow_ids();
    let out: Vec<WorkflowOut> = defs
        .iter()
        .map(|d| WorkflowOut {
            id: &d.id,
            version: d.version,
            title: title(&d.title),
            hash: d.hash.to_hex(),
            roles: d.roles.iter().map(|r| (r.id.as_str(), title(&r.title))).collect(),
            steps: d
                .steps
                .iter()
                .map(|s| StepOut {
                    id: &s.id,
                    title: title(&s.title),
                    kind: s.kind.name(),
                    after: &s.after,
                    repeat: s.repeat,
                    recorded_by: &s.recorded_by,
                    deviation_by: &s.deviation_by,
                    facts: s
                        .facts
                        .iter()
                        .map(|f| FactOut {
                            name: &f.name,
                            title: f.title.as_ref().map(title),
                            ty: f.ty.name(),
                            syntax: workflows::facts::syntax(&f.ty),
                            required: f.required,
                            many: f.many,
                            options: match &f.ty {
                                workflows::definition::FactType::Choice(o) => o.iter().map(String::as_str).collect(),
                                _ => Vec::new(),
                            },
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(out).into_response())
}

/// `GET /api/instances`: every instance's status today.
pub async fn instances(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    reader(&state, &headers)?;
    let today = state.today();
    let out: Vec<InstanceStatus> =
        state.live.read(|v| v.instances.values().map(|i| InstanceStatus::of(&i.instance, today)).collect());
    Ok(Json(out).into_response())
}

#[derive(Serialize)]
struct InstanceOut {
    status: InstanceStatus,
    timeline: audit::AuditTrail,
}

/// `GET /api/instances/{id}`: status and the audit trail.
pub async fn instance(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    reader(&state, &headers)?;
    // The timeline's texts: `?lang=`, else the cookie or Accept-Language,
    // else Swedish, as the reports and the command line's audit trail.
    let lang = super::lang_of(&headers, uri.query());
    let today = state.today();
    let out = state.live.read(|v| {
        let i = v.instances.get(id.as_str())?;
        Some(InstanceOut {
            status: InstanceStatus::of(&i.instance, today),
            timeline: audit::build(v, Some(&id), None, lang),
        })
    });
    match out {
        Some(o) => Ok(Json(o).into_response()),
        None => Err(WebError::not_found(format!("no instance {id}"))),
    }
}

/// `POST /api/instances`: start an instance.
pub async fn start(
    State(state): State<Shared>,
    headers: HeaderMap,
    b: Result<Json<ops::StartInput>, JsonRejection>,
) -> Result<Response, WebError> {
    let p = writer(&state, &headers)?;
    let input = body(b)?;
    Ok(written(ops::start(&state, &p, &input).await?))
}

/// `POST /api/instances/{id}/steps`: record a step.
pub async fn record(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ops::RecordInput>, JsonRejection>,
) -> Result<Response, WebError> {
    let p = writer(&state, &headers)?;
    let input = body(b)?;
    Ok(written(ops::record(&state, &p, &id, &input).await?))
}

/// `POST /api/instances/{id}/deadlines`: extend or waive a deadline.
pub async fn deadline(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ops::DeadlineInput>, JsonRejection>,
) -> Result<Response, WebError> {
    let p = writer(&state, &headers)?;
    let input = body(b)?;
    Ok(written(ops::deadline(&state, &p, &id, &input).await?))
}

/// `POST /api/corrections`: correct an earlier step.
pub async fn correct(
    State(state): State<Shared>,
    headers: HeaderMap,
    b: Result<Json<ops::CorrectInput>, JsonRejection>,
) -> Result<Response, WebError> {
    let p = writer(&state, &headers)?;
    let input = body(b)?;
    Ok(written(ops::correct(&state, &p, &input).await?))
}

/// A report's scope and options, as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub instance: Option<String>,
    pub org: Option<String>,
    pub year: Option<String>,
    pub as_of: Option<String>,
    pub template: Option<String>,
    pub format: Option<String>,
    pub lang: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The report kinds, in the order they are offered.
pub const REPORT_KINDS: &[&str] = &["audit", "deadlines", "compliance", "dialogues", "annual"];

/// Which report a request asks for.
pub fn spec<'a>(kind: &str, q: &'a ReportQuery) -> Result<Spec<'a>, WebError> {
    Ok(match kind {
        "audit" => Spec::Audit { instance: nonempty(&q.instance), org: nonempty(&q.org) },
        "deadlines" => Spec::Deadlines { org: nonempty(&q.org) },
        "compliance" => Spec::Compliance {
            instance: nonempty(&q.instance).ok_or_else(|| {
                WebError::invalid_said(
                    "instance",
                    said(
                        "efterlevnadsrapporten gäller en instans: välj en instans",
                        "the compliance report is for one instance: give instance",
                    ),
                )
            })?,
        },
        "dialogues" => Spec::Dialogues {
            org: nonempty(&q.org),
            case: match nonempty(&q.template) {
                None => false,
                Some("case") => true,
                Some(t) => {
                    return Err(WebError::invalid_said(
                        "template",
                        said(
                            format!("ingen mall {t:?}; den som finns är: case"),
                            format!("no template {t:?}; the one there is: case"),
                        ),
                    ))
                }
            },
        },
        "annual" => {
            let org = nonempty(&q.org).ok_or_else(|| {
                WebError::invalid_said(
                    "org",
                    said(
                        "årsredovisningens projektavsnitt gäller en organisation: välj en organisation",
                        "the annual report is for one organisation: give org",
                    ),
                )
            })?;
            let year = nonempty(&q.year)
                .ok_or_else(|| {
                    WebError::invalid_said(
                        "year",
                        said("ange året för årsredovisningen", "give the year of the annual report"),
                    )
                })?
                .parse::<i16>()
                .ok()
                .filter(|y| workflows::calendar::YEARS.contains(y))
                .ok_or_else(|| {
                    WebError::invalid_said(
                        "year",
                        said("året är ett tal från 1900 till 2100", "the year is a number from 1900 to 2100"),
                    )
                })?;
            Spec::Annual { org, year }
        }
        other => {
            let kinds = REPORT_KINDS.join(", ");
            return Err(WebError::not_found(format!("no report {other:?}; the reports are: {kinds}"))
                .sv(format!("ingen rapport {other:?}; rapporterna är: {kinds}")));
        }
    })
}

/// Builds a report: on the live view, or folded from the log as known on `as_of`.
pub async fn build_report(
    state: &AppState,
    kind: &str,
    q: &ReportQuery,
    lang: Lang,
) -> Result<reports::Built, WebError> {
    let spec = spec(kind, q)?;
    let as_of = match nonempty(&q.as_of) {
        None => None,
        Some(d) => Some(workflows::facts::parse_date_said(d).map_err(|e| WebError::invalid_said("as_of", e))?),
    };
    let today = state.today();
    let mut v = match as_of {
        None => state.live.read(|v| v.clone()),
        Some(d) => reports::view_as_of(&state.store, Some(d)).await.map_err(|e| WebError::from_anyhow(&e, "as_of"))?,
    };
    state.open(&mut v).await.map_err(|e| WebError::from_anyhow(&e, "as_of"))?;
    let built = reports::build(&v, &spec, today, lang, &reports::Extras::default());
    built.map_err(|e| match e.downcast_ref::<reports::NothingThere>() {
        Some(n) => WebError::not_found(n.said.en.clone()).sv(n.said.sv.clone()),
        None => WebError::from_anyhow(&e, "as_of"),
    })
}

/// `GET /api/reports/{kind}`: the report's model as JSON.
pub async fn report(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    reader(&state, &headers)?;
    let Query(q) = q.map_err(|e| WebError::new(StatusCode::BAD_REQUEST, "invalid-input", e.body_text()))?;
    let lang = super::lang_of(&headers, None);
    let lang = match nonempty(&q.lang) {
        Some("en") => Lang::En,
        Some("sv") => Lang::Sv,
        _ => lang,
    };
    let b = build_report(&state, &kind, &q, lang).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], b.json).into_response())
}
