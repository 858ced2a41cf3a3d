//! `styrlogg serve`: the web interface (server-rendered pages) and the HTTP
//! JSON API, on axum. It holds the store while it runs, keeps the present
//! log folded in memory ([`live`]), and writes only through `flow.rs`, so
//! the workflow's rules decide every write exactly as on the command line.
//!
//! Architecture invariant: the web code never decides a workflow rule and
//! never takes the actor from a request's input: the actor's name is the
//! logged-in user's (or token's), the role one they hold.

// A `WebError` carries the rule's message, field and remedy; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod limits;
pub mod live;
pub mod ops;
pub mod pages;
pub mod users;

use crate::cli::{Cli, ServeArgs};
use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::{AnyStore, OpenMode};
use jiff::civil::Date;
use projections::Lang;
use std::sync::Arc;
use workflows::Definition;

/// Everything a request handler may use.
pub struct AppState {
    pub store: AnyStore,
    pub live: live::Live,
    /// The key store of personal data: facts are opened per request for
    /// signed-in users, never kept open in the live view, so an erasure
    /// takes effect at once.
    pub keys: crate::personal::Keys,
    pub auth: auth::Auth,
    /// Built-in definitions, then those of --workflows DIR (a later one
    /// with the same id wins, as on the command line).
    pub definitions: Vec<Definition>,
    today: Option<Date>,
    pub secure_cookies: bool,
    pub live_streams: Arc<tokio::sync::Semaphore>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// The live view (or one instance of it) with erasures noted and
    /// personal facts opened where their keys are here: for signed-in users.
    pub async fn opened_view(&self, only: Option<&str>) -> anyhow::Result<projections::LogView> {
        let mut v = self.live.read(|v| match only {
            None => v.clone(),
            Some(id) => {
                let mut one = projections::LogView::new(v.as_of);
                one.head_position = v.head_position;
                one.head_hash = v.head_hash;
                one.events_kept = v.events_kept;
                one.facts_needed = v.facts_needed;
                one.instances =
                    v.instances.iter().filter(|(k, _)| k.as_str() == id).map(|(k, i)| (k.clone(), i.clone())).collect();
                one
            }
        });
        self.open(&mut v).await?;
        Ok(v)
    }

    /// Notes erasures in a view and opens its personal facts.
    pub async fn open(&self, v: &mut projections::LogView) -> anyhow::Result<()> {
        v.disclosure = crate::personal::disclosure(&self.store, false).await?;
        crate::personal::open_view(&self.keys, v)
    }

    /// Today in Swedish time, or --today.
    pub fn today(&self) -> Date {
        self.today.unwrap_or_else(crate::flow::real_today)
    }

    pub fn definition(&self, id: &str) -> Option<Definition> {
        self.definitions.iter().rev().find(|d| d.id == id).cloned()
    }

    /// Workflow ids in the order they are offered.
    pub fn workflow_ids(&self) -> Vec<&Definition> {
        let mut out: Vec<&Definition> = Vec::new();
        for d in self.definitions.iter().rev() {
            if !out.iter().any(|o| o.id == d.id) {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// What every page needs: the language, who asks (if anyone), and the path
/// asked for.
pub struct Ctx {
    pub lang: Lang,
    pub principal: Option<auth::Principal>,
    pub path: String,
    pub query: String,
}

impl Ctx {
    pub fn t<'a>(&self, sv: &'a str, en: &'a str) -> &'a str {
        self.lang.t(sv, en)
    }
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            lang: lang_of(&parts.headers, parts.uri.query()),
            principal: state.auth.principal(&parts.headers),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
        })
    }
}

/// `?lang=`, else the `lang` cookie, else Accept-Language; Swedish by default.
pub fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    lang_asked(headers, query).unwrap_or(Lang::Sv)
}

/// The language a request asks for: `?lang=`, else the `lang` cookie, else
/// the first of sv and en in Accept-Language.
fn lang_asked(headers: &HeaderMap, query: Option<&str>) -> Option<Lang> {
    let from = |s: &str| match s.trim().get(..2).map(|p| p.to_ascii_lowercase()).as_deref() {
        Some("en") => Some(Lang::En),
        Some("sv") => Some(Lang::Sv),
        _ => None,
    };
    if let Some(l) = query_lang(query) {
        return Some(l);
    }
    if let Some(l) = auth::cookie(headers, "lang").and_then(from) {
        return Some(l);
    }
    if let Some(accept) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) {
        // The first of sv and en in the client's order of preference.
        let mut tags: Vec<(f32, &str)> = accept
            .split(',')
            .map(|part| {
                let mut it = part.split(';');
                let tag = it.next().unwrap_or("").trim();
                let q = it.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
                (q, tag)
            })
            .collect();
        tags.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        return tags.iter().find_map(|(_, t)| from(t));
    }
    None
}

fn query_lang(query: Option<&str>) -> Option<Lang> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "lang").and_then(|(_, v)| match v.as_ref() {
        "en" => Some(Lang::En),
        "sv" => Some(Lang::Sv),
        _ => None,
    })
}

/// Security headers on every response that has not set its own, and the
/// language cookie when `?lang=` chose one.
async fn headers_mw(req: Request<Body>, next: Next) -> Response {
    let chosen = query_lang(req.uri().query());
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::CACHE_CONTROL, "no-store");
    if let Some(l) = chosen {
        let v = format!("lang={}; Path=/; SameSite=Strict; Max-Age=31536000", if l == Lang::En { "en" } else { "sv" });
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

/// A page's error that axum made rather than a handler (an address whose
/// path or parameters it cannot read, a method the page does not take) is
/// shown as the pages show errors: an HTML page in the reader's language,
/// not a line of English plain text or an empty body.
async fn page_errors_mw(State(state): State<Shared>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") || path == "/events" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    // What the error page needs, kept aside; who asks is looked up only
    // if there is an error to show.
    let (headers, uri, method) = (req.headers().clone(), req.uri().clone(), req.method().clone());
    let res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html || !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let status = res.status();
    let allow = res.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(res.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let ctx = Ctx {
        lang: lang_of(&headers, uri.query()),
        principal: state.auth.principal(&headers),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
    };
    let mut res = pages::framework_error(&ctx, status, &method, &text);
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// Under /api every error is JSON with a `code`, including the ones axum's
/// extractors produce (a body too large, malformed JSON, a wrong method);
/// a 401 says how to authenticate (`WWW-Authenticate: Bearer`, RFC 6750).
/// Its message is in English unless the request asks for Swedish (as the
/// pages know it: `?lang=sv`, the `lang` cookie, Accept-Language), and the
/// error is said in Swedish.
async fn api_errors_mw(req: Request<Body>, next: Next) -> Response {
    let swedish = lang_asked(req.headers(), req.uri().query()) == Some(Lang::Sv);
    let mut res = next.run(req).await;
    if let Some(e) = res.extensions().get::<ops::WebError>().filter(|e| swedish && e.sv.is_some()) {
        res = e.in_lang(Lang::Sv).into_response();
    }
    let mut res = api_error_json(res).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        res.headers_mut().entry(header::WWW_AUTHENTICATE).or_insert(HeaderValue::from_static("Bearer"));
    }
    res
}

/// An error response as JSON with a `code`, unless it is JSON already.
async fn api_error_json(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return res;
    }
    // A 405 keeps the methods the path allows.
    let allow = res.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(res.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "invalid-input",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        _ => "http-error",
    };
    let message = if text.trim().is_empty() { status.to_string() } else { text.trim().to_string() };
    // A JSON body that does not parse is a client's mistake: 400, not 422.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    let mut res = ops::WebError::new(status, code, message).into_response();
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

pub const STYLE_CSS: &str = include_str!("static/style.css");
pub const LIVE_JS: &str = include_str!("static/live.js");
pub const OPENAPI_JSON: &str = include_str!("static/openapi.json");

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE_CSS)
}

async fn live_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], LIVE_JS)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// Server-sent events: `head` with the log's last position, at once and
/// whenever it moves. Ends when the server stops.
async fn events(State(state): State<Shared>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let Ok(permit) = state.live_streams.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live-update streams; reload the page by hand")
            .into_response();
    };
    let heads = state.live.heads();
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (heads, shutdown, permit, true),
        |(mut heads, mut shutdown, permit, first)| async move {
            if !first {
                tokio::select! {
                    changed = heads.changed() => changed.ok()?,
                    _ = shutdown.wait_for(|s| *s) => return None,
                }
            }
            let position = *heads.borrow_and_update();
            let event = Event::default().event("head").data(position.to_string());
            Some((Ok::<_, std::convert::Infallible>(event), (heads, shutdown, permit, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/session", post(api::login).delete(api::logout))
        .route("/me", get(api::me))
        .route("/head", get(api::head))
        .route("/workflows", get(api::workflows))
        .route("/instances", get(api::instances).post(api::start))
        .route("/instances/{id}", get(api::instance))
        .route("/instances/{id}/steps", post(api::record))
        .route("/instances/{id}/deadlines", post(api::deadline))
        .route("/corrections", post(api::correct))
        .route("/reports/{kind}", get(api::report))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(api_errors_mw));
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/start", get(pages::start_form).post(pages::start))
        .route("/instances/{id}", get(pages::instance))
        .route("/instances/{id}/record", get(pages::record_form).post(pages::record))
        .route("/instances/{id}/correct", get(pages::correct_form).post(pages::correct))
        .route("/instances/{id}/deadline", get(pages::deadline_form).post(pages::deadline))
        .route("/deadlines", get(pages::deadlines))
        .route("/dialogues", get(pages::dialogues))
        .route("/reports", get(pages::reports_index))
        .route("/reports/{kind}", get(pages::report))
        .route("/events", get(events))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(live_js))
        .nest("/api", api)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), page_errors_mw))
        .layer(axum::middleware::from_fn(headers_mw))
        .layer(DefaultBodyLimit::max(limits::REQUEST_BODY_BYTES_MAX))
        .with_state(state)
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(cli: &Cli, args: &ServeArgs) -> Result<()> {
    if args.remind && cli.today.is_some() {
        anyhow::bail!(crate::Refused(
            "--remind follows the clock and cannot run with --today; run `styrlogg remind --today DATE` for a day"
                .into()
        ));
    }
    let users = users::Users::load(&cli.users).map_err(|e| crate::Refused(format!("{e:#}")))?;
    let definitions = crate::flow::definitions_to_start(cli)?;
    let store = crate::open(cli, OpenMode::CreateIfMissing).await?;
    let live = live::Live::start(store.clone()).await.context("folding the log")?;
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let auth = auth::Auth::new(&cli.users, users);
    if !auth.has_users() {
        eprintln!(
            "no users in {}: the web interface is read-only; add one with `styrlogg user add LOGIN --role ROLE`",
            cli.users.display()
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(AppState {
        store: store.clone(),
        live,
        keys: crate::personal::Keys::for_cli(cli),
        auth,
        definitions,
        today: cli.today,
        secure_cookies: args.secure_cookies,
        live_streams: Arc::new(tokio::sync::Semaphore::new(limits::LIVE_STREAMS_MAX)),
        shutdown: stop_rx.clone(),
    });
    let reminders = if args.remind {
        let config = crate::remind_cmd::config(cli)?;
        let channels = crate::remind_cmd::channels(cli, &config, &[]).await?;
        let mut service = styrlogg::remind::Service::new(config, channels);
        let store = store.clone();
        let mut stop = stop_rx.clone();
        eprintln!("reminder service running in this process");
        Some(tokio::spawn(async move {
            let clock: Arc<dyn engine::Clock> = Arc::new(engine::SystemClock);
            let until = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) =
                styrlogg::remind::watch(&mut service, styrlogg::remind::Holding::Keep(store), clock, until).await
            {
                tracing::error!("the reminder service stopped: {e:#}");
                eprintln!("styrlogg: the reminder service stopped: {e:#}");
            }
        }))
    } else {
        None
    };
    let signal = crate::remind_cmd::shutdown_signal()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "styrlogg serving http://{addr}/ from {}; Ctrl-C or SIGTERM stops", store.describe())?;
        out.flush()?;
    }
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            signal.await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving")?;
    if let Some(r) = reminders {
        let _ = r.await;
    }
    eprintln!("styrlogg: server stopped");
    store.close()?;
    Ok(())
}
