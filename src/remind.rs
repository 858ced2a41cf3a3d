//! The reminder service: sends every reminder before a deadline and every
//! escalation after a missed one, exactly once, and records each in the log.
//!
//! Bookkeeping lives in the log, never in memory: before sending a notice
//! on a channel the service appends a `notice_claimed` event under a
//! command id derived from (instance, step, deadline, notice, channel,
//! attempt). The store's command-id idempotency makes exactly one sender the
//! owner of each attempt, across restarts and across services running at
//! once; the owner sends, then records `notice_delivered` or
//! `notice_failed`. A failed attempt is retried with backoff, up to
//! [`engine::limits::NOTICE_ATTEMPTS_MAX`] attempts; one refused for good
//! (an SMTP 5xx) is given up at once. A claim with no outcome (the sender
//! stopped between claim and outcome, or the server took the whole message
//! and never answered) is "in doubt": it is shown in `status` and by
//! `remind`, and never resent automatically, so nothing goes out twice. A
//! missed deadline is recorded once as `deadline_missed`.
//!
//! The [`Scheduler`] keeps every instance folded in memory with the instant
//! it next needs attention, in an ordered queue: finding what is due costs
//! a look at the front of the queue, not a scan of every instance. It
//! follows the log by position, so events from any writer (a step recorded,
//! a deadline extended or waived, another service's claims) reschedule
//! their instance.

use anyhow::{Context, Result};
use engine::limits::{NOTICE_RETRY_FIRST_S, NOTICE_RETRY_MAX_S, READ_PAGE_EVENTS, REMINDER_PASS_ROUNDS_MAX};
use engine::{
    Actor, AppendRequest, Clock, CommandId, EventStore, ExpectedVersion, InstanceId, NewEvent, Payload, RecordedEvent,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workflows::instance::NoticeStatus;
use workflows::reminders::{self, Due, Notice};
use workflows::Instance;

/// The actor every event of the service is recorded under.
pub const SERVICE_ACTOR: &str = "styrlogg påminnelsetjänst";
/// The role the service records in.
pub const SERVICE_ROLE: &str = "system";

/// Where notices go and how: the `[remind]`, `[smtp]` and `[recipients]`
/// tables of `styrlogg.toml`. Unknown keys are refused, so a misspelt
/// setting is an error rather than silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub remind: RemindConfig,
    pub smtp: Option<SmtpConfig>,
    /// Notices on NATS for other systems (the `nats` channel).
    pub nats: Option<NatsConfig>,
    /// Addresses per organisation and role: `[recipients."Härryda kommun"]
    /// styrgrupp = ["a@b.se"]`; the organisation `"*"` applies to all.
    #[serde(default)]
    pub recipients: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindConfig {
    /// A deadline missed longer ago than this is recorded as missed but not
    /// escalated: the first run over an old history does not flood anyone.
    #[serde(default = "escalate_within_days")]
    pub escalate_within_days: u32,
    /// `remind --watch` on the embedded store: seconds between looks for
    /// events recorded by other processes.
    #[serde(default = "poll_s")]
    pub poll_s: u64,
}

impl Default for RemindConfig {
    fn default() -> Self {
        RemindConfig { escalate_within_days: escalate_within_days(), poll_s: poll_s() }
    }
}

fn poll_s() -> u64 {
    30
}

fn escalate_within_days() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated; default: the --nats of the log.
    pub url: Option<String>,
    /// The stream that keeps the notices for consumers.
    #[serde(default = "notices_stream")]
    pub stream: String,
    /// How long the stream keeps a notice.
    #[serde(default = "notices_keep_days")]
    pub keep_days: u32,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig { url: None, stream: notices_stream(), keep_days: notices_keep_days() }
    }
}

fn notices_stream() -> String {
    "STYRLOGG_NOTICES".into()
}
fn notices_keep_days() -> u32 {
    400
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    pub from: String,
    /// `none` (a local relay on a trusted network), `starttls` or `tls`.
    #[serde(default = "tls_none")]
    pub tls: String,
    pub username: Option<String>,
    /// The name of an environment variable that holds the password
    /// (default `STYRLOGG_SMTP_PASSWORD`); never the password itself.
    pub password_env: Option<String>,
    #[serde(default = "smtp_timeout")]
    pub timeout_s: u64,
}

fn smtp_port() -> u16 {
    25
}
fn tls_none() -> String {
    "none".into()
}
fn smtp_timeout() -> u64 {
    30
}

impl Config {
    /// Parses and checks a configuration: every address must be an e-mail
    /// address, `smtp.tls` one of the three choices.
    pub fn parse(src: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(src).map_err(|e| e.to_string())?;
        if let Some(s) = &c.smtp {
            if !matches!(s.tls.as_str(), "none" | "starttls" | "tls") {
                return Err(format!("smtp.tls is {:?}; use none, starttls or tls", s.tls));
            }
            s.from.parse::<lettre::message::Mailbox>().map_err(|e| format!("smtp.from {:?}: {e}", s.from))?;
        }
        for (org, roles) in &c.recipients {
            for (role, addrs) in roles {
                if addrs.len() > engine::limits::RECIPIENTS_PER_NOTICE_MAX {
                    return Err(format!(
                        "recipients.{org:?}.{role}: {} addresses; the limit is {}",
                        addrs.len(),
                        engine::limits::RECIPIENTS_PER_NOTICE_MAX
                    ));
                }
                for a in addrs {
                    a.parse::<lettre::Address>()
                        .map_err(|e| format!("recipients.{org:?}.{role}: {a:?} is not an e-mail address: {e}"))?;
                }
            }
        }
        Ok(c)
    }

    /// Reads `path`; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let src = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Config::parse(&src).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Addresses for `roles` of `organisation`, from its own table and `"*"`.
    pub fn addresses(&self, organisation: &str, roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for table in [self.recipients.get(organisation), self.recipients.get("*")].into_iter().flatten() {
            for r in roles {
                for a in table.get(r).into_iter().flatten() {
                    if !out.contains(a) && out.len() < engine::limits::RECIPIENTS_PER_NOTICE_MAX {
                        out.push(a.clone());
                    }
                }
            }
        }
        out
    }
}

/// One notice as it goes out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    /// The same for every channel and every sender: instance, step,
    /// deadline and notice.
    pub key: String,
    pub instance: String,
    pub organisation: String,
    pub step: String,
    pub deadline: Date,
    /// `reminder:N` or `missed`.
    pub notice: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// How a send that did not go out ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Not sent (the server could not be reached, did not answer in time
    /// before the message was handed over, or answered 4xx): recorded as
    /// failed and retried with backoff.
    Failed(String),
    /// Refused for good (an SMTP 5xx reply to the sender, to every
    /// recipient, or to the message): recorded as failed and given up at
    /// once, never retried.
    Refused(String),
    /// The message was handed over but the server's answer never came: it
    /// may have gone out. No outcome is recorded, so the notice stays in
    /// doubt and is never resent.
    InDoubt(String),
}

impl From<String> for SendError {
    fn from(e: String) -> Self {
        SendError::Failed(e)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Failed(e) | SendError::Refused(e) | SendError::InDoubt(e) => f.write_str(e),
        }
    }
}

/// What a send that went out achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Recipients the receiving server refused for good, each with its
    /// reply (`address: permanent error (550): ...`); every other recipient
    /// got the notice.
    pub refused: Vec<String>,
}

/// A way to send notices.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// The name recorded in the log (`log`, `email`, `nats`).
    fn name(&self) -> &str;
    /// Who gets a notice meant for `roles` of `organisation`; empty skips
    /// this channel for the notice (and the service warns, once per
    /// organisation, that nobody is configured to receive it).
    fn recipients(&self, config: &Config, organisation: &str, roles: &[String]) -> Vec<String>;
    /// Sends, within a bounded time; an error is recorded and the notice
    /// retried later.
    async fn send(&self, msg: &Message) -> Result<(), String>;
    /// Sends, within a bounded time, and tells what happened precisely:
    /// see [`SendError`] for what each failure leads to. By default as
    /// [`Channel::send`], every error to be retried; the service calls
    /// this.
    async fn deliver(&self, msg: &Message) -> Result<Sent, SendError> {
        self.send(msg).await.map(|()| Sent::default()).map_err(SendError::Failed)
    }
}

/// Notices as lines on standard output, addressed to roles.
pub struct LogChannel;

#[async_trait::async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &str {
        "log"
    }
    fn recipients(&self, _: &Config, _: &str, roles: &[String]) -> Vec<String> {
        roles.to_vec()
    }
    async fn send(&self, msg: &Message) -> Result<(), String> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{} [till: {}]", msg.subject, msg.to.join(", ")).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())
    }
}

/// Notices by e-mail over SMTP (lettre), to the addresses configured for
/// each role.
///
/// The conversation with the server is driven step by step, so that the
/// whole of it obeys `smtp.timeout_s` (lettre's own timeout bounds only
/// the TCP connect, not a server that accepts and then never answers) and
/// so that a failure is known to have happened before or after the
/// message was handed over:
///
/// - no answer in time before the end of the message (connecting, the
///   greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA), a 4xx, or a broken
///   connection: not sent, [`SendError::Failed`], retried;
/// - a 5xx to MAIL, to the message, or to every recipient:
///   [`SendError::Refused`], given up at once; a 5xx to some recipients
///   only: the others get the notice and the refused ones are reported in
///   [`Sent::refused`];
/// - no answer (or a broken connection) after the whole message was
///   handed over: it may have gone out, [`SendError::InDoubt`].
///
/// A 5xx while opening the session (greeting, EHLO, AUTH) concerns the
/// server or the credentials rather than the notice, so it is retried.
pub struct EmailChannel {
    host: String,
    port: u16,
    tls: lettre::transport::smtp::client::Tls,
    credentials: Option<lettre::transport::smtp::authentication::Credentials>,
    hello: lettre::transport::smtp::extension::ClientId,
    timeout: Duration,
    from: lettre::message::Mailbox,
}

impl EmailChannel {
    pub fn new(c: &SmtpConfig) -> Result<EmailChannel> {
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        let tls = match c.tls.as_str() {
            "starttls" => Tls::Required(TlsParameters::new(c.host.clone())?),
            "tls" => Tls::Wrapper(TlsParameters::new(c.host.clone())?),
            _ => Tls::None,
        };
        let credentials = match &c.username {
            Some(user) => {
                let var = c.password_env.as_deref().unwrap_or("STYRLOGG_SMTP_PASSWORD");
                let password = std::env::var(var).with_context(|| format!("smtp.username is set but ${var} is not"))?;
                Some(lettre::transport::smtp::authentication::Credentials::new(user.clone(), password))
            }
            None => None,
        };
        Ok(EmailChannel {
            host: c.host.clone(),
            port: c.port,
            tls,
            credentials,
            hello: lettre::transport::smtp::extension::ClientId::default(),
            timeout: Duration::from_secs(c.timeout_s.max(1)),
            from: c.from.parse().context("smtp.from")?,
        })
    }

    /// Connects, reads the greeting, says EHLO, upgrades to TLS and
    /// authenticates, as configured.
    async fn open(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, lettre::transport::smtp::Error> {
        use lettre::transport::smtp::authentication::DEFAULT_MECHANISMS;
        use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
        let wrapper = match &self.tls {
            Tls::Wrapper(p) => Some(p.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        if let Tls::Required(p) = &self.tls {
            conn.starttls(p.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// MAIL, RCPT for each recipient, DATA and the message, all before
    /// `deadline`.
    async fn transact(
        &self,
        conn: &mut lettre::transport::smtp::client::AsyncSmtpConnection,
        email: &lettre::Message,
        deadline: tokio::time::Instant,
    ) -> Result<Sent, SendError> {
        use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
        use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
        let timeout_s = self.timeout.as_secs();
        let not_sent = |what: &str| {
            SendError::Failed(format!(
                "no answer from the SMTP server {}:{} to {what} within {timeout_s} s; not sent",
                self.host, self.port
            ))
        };
        let refused_or_failed = |what: &str, e: lettre::transport::smtp::Error| {
            if e.is_permanent() {
                SendError::Refused(format!("{what}: {e}"))
            } else {
                SendError::Failed(format!("{what}: {e}"))
            }
        };
        let envelope = email.envelope();
        let body = email.formatted();
        let mut options = Vec::new();
        if envelope.from().into_iter().chain(envelope.to()).any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(SendError::Refused(
                    "the SMTP server does not take addresses with non-ASCII characters (no SMTPUTF8)".into(),
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(SendError::Refused("the SMTP server does not take 8-bit messages (no 8BITMIME)".into()));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        match tokio::time::timeout_at(deadline, conn.command(Mail::new(envelope.from().cloned(), options))).await {
            Err(_) => return Err(not_sent("MAIL FROM")),
            Ok(Err(e)) => return Err(refused_or_failed("MAIL FROM", e)),
            Ok(Ok(_)) => {}
        }
        let mut refused = Vec::new();
        for to in envelope.to() {
            match tokio::time::timeout_at(deadline, conn.command(Rcpt::new(to.clone(), vec![]))).await {
                Err(_) => return Err(not_sent(&format!("RCPT TO {to}"))),
                Ok(Err(e)) if e.is_permanent() => refused.push(format!("{to}: {e}")),
                // A 4xx for one recipient: nobody gets it now, everybody on
                // the retry.
                Ok(Err(e)) => return Err(SendError::Failed(format!("RCPT TO {to}: {e}"))),
                Ok(Ok(_)) => {}
            }
        }
        if refused.len() == envelope.to().len() {
            return Err(SendError::Refused(format!("every recipient refused: {}", refused.join("; "))));
        }
        match tokio::time::timeout_at(deadline, conn.command(Data)).await {
            Err(_) => return Err(not_sent("DATA")),
            Ok(Err(e)) => return Err(refused_or_failed("DATA", e)),
            Ok(Ok(_)) => {}
        }
        // From here the server may have the whole message: without its
        // answer, nobody can tell whether it went out.
        match tokio::time::timeout_at(deadline, conn.message(&body)).await {
            Err(_) => Err(SendError::InDoubt(format!(
                "the message was handed to the SMTP server {}:{} but it did not answer within {timeout_s} s; it may have been delivered",
                self.host, self.port
            ))),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => Err(refused_or_failed("the message", e)),
            Ok(Err(e)) => Err(SendError::InDoubt(format!(
                "the connection to the SMTP server failed while the message was handed over ({e}); it may have been delivered"
            ))),
            Ok(Ok(_)) => Ok(Sent { refused }),
        }
    }
}

#[async_trait::async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &str {
        "email"
    }
    fn recipients(&self, config: &Config, organisation: &str, roles: &[String]) -> Vec<String> {
        config.addresses(organisation, roles)
    }
    async fn send(&self, msg: &Message) -> Result<(), String> {
        self.deliver(msg).await.map(|_| ()).map_err(|e| e.to_string())
    }
    async fn deliver(&self, msg: &Message) -> Result<Sent, SendError> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(&msg.subject)
            .message_id(Some(format!("<{}@styrlogg>", blake3::hash(msg.key.as_bytes()).to_hex())));
        for to in &msg.to {
            b = b.to(to.parse().map_err(|e| SendError::Refused(format!("{to}: {e}")))?);
        }
        let email = b
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(msg.body.clone())
            .map_err(|e| SendError::Refused(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut conn = match tokio::time::timeout_at(deadline, self.open()).await {
            Err(_) => {
                return Err(SendError::Failed(format!(
                    "no answer from the SMTP server {}:{} within {} s (connecting, greeting, EHLO, STARTTLS or AUTH); not sent",
                    self.host,
                    self.port,
                    self.timeout.as_secs()
                )))
            }
            Ok(Err(e)) => {
                return Err(SendError::Failed(format!(
                    "cannot reach the SMTP server {}:{}: {e}; not sent",
                    self.host, self.port
                )))
            }
            Ok(Ok(conn)) => conn,
        };
        let outcome = self.transact(&mut conn, &email, deadline).await;
        // Say goodbye if there is time left; the answer changes nothing.
        if !matches!(outcome, Err(SendError::InDoubt(_))) && !conn.has_broken() {
            let _ = tokio::time::timeout_at(deadline, conn.quit()).await;
        }
        outcome
    }
}

/// The subject token of an organisation: lower case ASCII, Swedish
/// letters without their marks, every other run of characters one `-`.
/// "Härryda kommun" is `harryda-kommun`.
pub fn organisation_token(organisation: &str) -> String {
    let mut out = String::new();
    for c in organisation.to_lowercase().chars() {
        let c = match c {
            'å' | 'ä' | 'à' | 'á' | 'â' => 'a',
            'ö' | 'ø' | 'ó' | 'ô' => 'o',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'ü' | 'ú' => 'u',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    if t.is_empty() {
        "-".into()
    } else {
        t.to_string()
    }
}

/// Notices as JSON on `styrlogg.notices.<organisation>`, kept in a
/// JetStream stream so other systems can consume them when they like. A
/// notice counts as sent once the stream has stored it; the notice key is
/// the message id, so a retry within the server's duplicate window is
/// stored once.
pub struct NatsChannel {
    js: async_nats::jetstream::Context,
}

/// The subject prefix of notices.
pub const NOTICES_PREFIX: &str = "styrlogg.notices";

impl NatsChannel {
    pub async fn connect(url: &str, c: &NatsConfig) -> Result<NatsChannel> {
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{url:?} is not a NATS server URL"))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("styrlogg reminders")
            .connect(servers)
            .await
            .with_context(|| format!("cannot connect to NATS at {url} for notices"))?;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: c.stream.clone(),
            description: Some("styrlogg reminders and escalations, per organisation".into()),
            subjects: vec![format!("{NOTICES_PREFIX}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            max_age: Duration::from_secs(u64::from(c.keep_days) * 86_400),
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create or find the notices stream {} on {url}", c.stream))?;
        Ok(NatsChannel { js })
    }
}

#[async_trait::async_trait]
impl Channel for NatsChannel {
    fn name(&self) -> &str {
        "nats"
    }
    fn recipients(&self, _: &Config, _: &str, roles: &[String]) -> Vec<String> {
        roles.to_vec()
    }
    async fn send(&self, msg: &Message) -> Result<(), String> {
        let subject = format!("{NOTICES_PREFIX}.{}", organisation_token(&msg.organisation));
        let json = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        let publish = async_nats::jetstream::message::PublishMessage::build().payload(json.into()).message_id(&msg.key);
        let ack = self.js.send_publish(subject, publish).await.map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// What passes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub delivered: u32,
    /// Sends that failed and are retried later.
    pub failed: u32,
    /// Sends refused for good (an SMTP 5xx) in this pass: given up at once.
    pub refused: u32,
    /// Sends in this pass whose outcome is unknown (the message was handed
    /// over and no answer came): left in doubt, never resent.
    pub in_doubt_now: u32,
    /// Notices claimed without an outcome (`KEY by CHANNEL`), from this
    /// pass or an earlier one: never resent automatically.
    pub in_doubt: Vec<String>,
    /// Notices given up (`KEY by CHANNEL`): every attempt failed, or the
    /// receiving end refused them for good.
    pub given_up: Vec<String>,
    /// Notices that failed in an earlier pass and wait for their next
    /// attempt (`KEY by CHANNEL, retried from TIME`).
    pub waiting: Vec<String>,
    /// Notices claimed in this pass (`KEY by CHANNEL`): one that fails
    /// here is counted failed, not waiting too.
    tried: BTreeSet<String>,
    /// Recipients refused for good while the others got the notice
    /// (`KEY by CHANNEL: ADDRESS: REPLY`).
    pub refused_recipients: Vec<String>,
    /// Notices due that no one is configured to receive on a channel, one
    /// line naming the organisation, channel and roles for each
    /// organisation and channel once in the life of the service.
    pub unaddressed: Vec<String>,
    pub missed_recorded: u32,
    /// Missed deadlines too old to escalate (recorded, not sent): one
    /// `INSTANCE:STEP:DEADLINE` each.
    pub stale_missed: BTreeSet<String>,
    /// When something next becomes due (a reminder day, a retry).
    pub next_wake: Option<Timestamp>,
}

impl PassReport {
    /// Sends in this pass that did not deliver: failed, refused or in doubt.
    pub fn not_sent(&self) -> u32 {
        self.failed + self.refused + self.in_doubt_now
    }
}

fn push_once(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The instant a Swedish civil day starts.
pub fn swedish_midnight(d: Date) -> Timestamp {
    d.to_zoned(stockholm()).map(|z| z.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The Swedish date of an instant.
pub fn swedish_today(now: Timestamp) -> Date {
    now.to_zoned(stockholm()).date()
}

fn stockholm() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/Stockholm").unwrap_or(jiff::tz::TimeZone::UTC)
}

/// Wait after a failed attempt: doubles per attempt, capped.
pub fn backoff(attempt: u32) -> SignedDuration {
    let s = NOTICE_RETRY_FIRST_S.saturating_mul(1i64 << attempt.saturating_sub(1).min(20)).min(NOTICE_RETRY_MAX_S);
    SignedDuration::from_secs(s)
}

/// What a pass does next with one notice on one channel, by what the log
/// says of it: the one decision `attend` acts on and `preview` shows.
#[derive(Clone, Copy)]
enum Move {
    /// Claim and send it, as this attempt.
    Send { attempt: u32 },
    /// Delivered already.
    Done,
    /// Claimed with no outcome recorded: never resent.
    InDoubt,
    /// Refused for good, or every attempt failed.
    GivenUp,
    /// Failed; the next attempt waits for its backoff.
    WaitUntil(Timestamp),
}

/// Whether the log records this missed deadline already.
fn missed_recorded(inst: &Instance, due: &Due) -> bool {
    inst.missed.iter().any(|(s, d)| *s == due.step && *d == due.deadline)
}

fn next_move(inst: &Instance, key: &str, channel: &str, now: Timestamp) -> Move {
    let Some(s) = inst.notices.get(&(key.to_string(), channel.to_string())) else {
        return Move::Send { attempt: 1 };
    };
    match &s.status {
        NoticeStatus::Delivered => Move::Done,
        NoticeStatus::Claimed => Move::InDoubt,
        NoticeStatus::Failed(_) if reminders::given_up(s) => Move::GivenUp,
        NoticeStatus::Failed(_) => {
            let retry_at = s.at.checked_add(backoff(s.attempt)).unwrap_or(s.at);
            if now < retry_at {
                Move::WaitUntil(retry_at)
            } else {
                Move::Send { attempt: s.attempt + 1 }
            }
        }
    }
}

/// The notice's subject and body, in Swedish: instance, step, deadline,
/// what is missing, and where to look. The subject names the organisation
/// and the instance, so one organisation's notices for several instances
/// are told apart in a list of subjects (the log channel's lines).
pub fn text(inst: &Instance, due: &Due, today: Date) -> (String, String) {
    let step = inst.definition.step(&due.step).expect("due notices name defined steps");
    let title = &step.title.sv;
    let (deadline, whose) = (due.deadline, format!("({}, {})", inst.organisation, inst.id));
    let subject = match due.notice {
        Notice::Reminder { .. } => match (deadline - today).get_days() {
            0 => format!("Påminnelse: {title} senast i dag {deadline} {whose}"),
            1 => format!("Påminnelse: {title} senast i morgon {deadline} {whose}"),
            days => format!("Påminnelse: {title} senast {deadline} om {days} dagar {whose}"),
        },
        Notice::Missed => format!("Missad tidsfrist: {title} skulle vara klart {deadline} {whose}"),
    };
    let mut body = format!(
        "{subject}\n\nInstans: {} ({}, {} version {})\nSteg: {title} ({})\nSista dag: {}\n",
        inst.id, inst.organisation, inst.definition.id, inst.definition.version, step.id, due.deadline
    );
    if let Some(c) = &inst.case_number {
        body.push_str(&format!("Diarienummer: {c}\n"));
    }
    body.push_str("Saknas: steget är inte registrerat");
    if !due.missing_before.is_empty() {
        body.push_str(&format!("; dessförinnan behövs: {}", due.missing_before.join(", ")));
    }
    let required: Vec<&str> = step.facts.iter().filter(|f| f.required).map(|f| f.name.as_str()).collect();
    if !required.is_empty() {
        body.push_str(&format!("\nUppgifter som krävs: {}", required.join(", ")));
    }
    body.push_str(&format!("\nRegistreras av: {}\n", step.recorded_by.join(", ")));
    if due.notice == Notice::Missed {
        body.push_str("Tidsfristen har passerat. Registrera steget (det markeras som försenat), eller förläng eller efterge tidsfristen med `styrlogg deadline`.\n");
    }
    body.push_str(&format!("\nSe läget: styrlogg status {}\n", inst.id));
    (subject, body)
}

/// Every instance, folded, with when each next needs attention.
#[derive(Default)]
pub struct Scheduler {
    instances: HashMap<InstanceId, Instance>,
    /// (when, instance): the front is the next instance to look at.
    queue: BTreeSet<(Timestamp, InstanceId)>,
    wake: HashMap<InstanceId, Timestamp>,
    /// The last log position folded.
    position: u64,
}

impl Scheduler {
    pub fn new() -> Self {
        Scheduler::default()
    }

    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// The last log position folded.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The first instant something may be due.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.queue.first().map(|(t, _)| *t)
    }

    fn schedule(&mut self, id: &InstanceId, at: Option<Timestamp>) {
        if let Some(old) = self.wake.remove(id) {
            self.queue.remove(&(old, id.clone()));
        }
        if let Some(at) = at {
            self.wake.insert(id.clone(), at);
            self.queue.insert((at, id.clone()));
        }
    }

    /// Folds one event (the next position) and makes its instance due for
    /// a look at once.
    pub fn apply(&mut self, e: &RecordedEvent) -> Result<()> {
        let id = &e.event.instance;
        if id.is_system() {
            // The log's own events (signing keys, erasures): no deadlines.
            self.position = e.event.position;
            return Ok(());
        }
        match self.instances.get_mut(id) {
            Some(inst) => inst.apply(e),
            None => {
                let inst = Instance::fold(std::slice::from_ref(e))
                    .with_context(|| format!("folding instance {id} at position {}", e.event.position))?;
                self.instances.insert(id.clone(), inst);
            }
        }
        self.position = e.event.position;
        self.schedule(id, Some(Timestamp::MIN));
        Ok(())
    }

    /// Folds every event after the last one folded.
    pub async fn sync(&mut self, store: &impl EventStore) -> Result<u64> {
        let mut n = 0;
        loop {
            let page = store.read_all(self.position + 1, READ_PAGE_EVENTS).await?;
            if page.is_empty() {
                return Ok(n);
            }
            for e in &page {
                self.apply(e)?;
                n += 1;
            }
        }
    }

    /// Takes every instance due at or before `now` off the queue.
    fn take_due(&mut self, now: Timestamp) -> Vec<InstanceId> {
        let mut out = Vec::new();
        while let Some((t, id)) = self.queue.first().cloned() {
            if t > now {
                break;
            }
            self.queue.remove(&(t, id.clone()));
            self.wake.remove(&id);
            out.push(id);
        }
        out
    }
}

/// The reminder service. It holds no store: each pass is given one, so a
/// service over the embedded store can let go of it between passes.
pub struct Service {
    pub config: Config,
    pub channels: Vec<Arc<dyn Channel>>,
    pub scheduler: Scheduler,
    /// Set to stop a pass after the send in progress (see [`Service::stopper`]).
    stop: Arc<AtomicBool>,
    /// (organisation, channel) already warned about having no recipients.
    warned: Mutex<BTreeSet<(String, String)>>,
}

/// A command id for a notice or a missed deadline: the same for every
/// sender, short whatever the instance id's length.
fn notice_command(parts: &[&str]) -> CommandId {
    let mut h = blake3::Hasher::new_derive_key("styrlogg notice command v1");
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    CommandId::new(format!("notice-{}", &h.finalize().to_hex()[..40])).expect("a valid command id")
}

impl Service {
    pub fn new(config: Config, channels: Vec<Arc<dyn Channel>>) -> Self {
        Service {
            config,
            channels,
            scheduler: Scheduler::new(),
            stop: Arc::new(AtomicBool::new(false)),
            warned: Mutex::new(BTreeSet::new()),
        }
    }

    /// A flag that, once set, makes a pass stop after the send in progress
    /// (each send is bounded by its channel's timeout) and record its
    /// outcome, so a shutdown never waits for more than one send and
    /// leaves nothing in doubt that did not need to be.
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Appends one event of the service; false when another sender (or an
    /// earlier run) already did.
    async fn append(
        store: &impl EventStore,
        inst: &InstanceId,
        command: CommandId,
        on: Date,
        payload: Payload,
    ) -> Result<bool> {
        let out = store
            .append(AppendRequest {
                instance: inst.clone(),
                expected: ExpectedVersion::Any,
                command_id: command,
                events: vec![NewEvent { occurred_on: on, actor: Actor::new(SERVICE_ACTOR, SERVICE_ROLE), payload }],
            })
            .await?;
        Ok(!out.deduplicated)
    }

    /// Sends everything due on `today` (at instant `now`) and not yet sent,
    /// and records it. Repeats until the log holds no change it has not
    /// looked at (its own claims and outcomes come back through the log).
    pub async fn pass(&mut self, store: &impl EventStore, today: Date, now: Timestamp) -> Result<PassReport> {
        let mut report = PassReport::default();
        // Instances whose next look falls at or before `now` (a pass for a
        // day earlier than the clock, as with `remind --today`): looked at
        // again in this pass only if the log changes them, not in every
        // round.
        let mut later: HashMap<InstanceId, Option<Timestamp>> = HashMap::new();
        for _ in 0..REMINDER_PASS_ROUNDS_MAX {
            if self.stopping() {
                break;
            }
            self.scheduler.sync(store).await?;
            let ready = self.scheduler.take_due(now);
            if ready.is_empty() {
                break;
            }
            for id in ready {
                if self.stopping() {
                    // Not looked at: due at once in the next pass.
                    later.insert(id, Some(Timestamp::MIN));
                    continue;
                }
                let wake = self.attend(store, &id, today, now, &mut report).await?;
                match wake {
                    Some(w) if w <= now => {
                        later.insert(id, wake);
                    }
                    _ => {
                        later.remove(&id);
                        self.scheduler.schedule(&id, wake);
                    }
                }
            }
        }
        for (id, wake) in later {
            if !self.scheduler.wake.contains_key(&id) {
                self.scheduler.schedule(&id, wake);
            }
        }
        report.next_wake = self.scheduler.next_wake();
        Ok(report)
    }

    /// What a pass on `today` would do, without sending or recording
    /// anything: a line per missed deadline it would record and per notice
    /// it would send (or retry), with its channel, recipients and subject;
    /// and the number of each. Notices already delivered, given up, or
    /// missed too long ago to escalate are left out, as the pass leaves them.
    pub async fn preview(
        &mut self,
        store: &impl EventStore,
        today: Date,
        now: Timestamp,
    ) -> Result<(Vec<String>, usize, usize)> {
        self.scheduler.sync(store).await?;
        let mut instances: Vec<&Instance> = self.scheduler.instances.values().collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let (mut lines, mut sends, mut missed) = (Vec::new(), 0, 0);
        for inst in instances {
            for due in reminders::due(inst, today) {
                let key = due.key(inst);
                if due.notice == Notice::Missed {
                    if !missed_recorded(inst, &due) {
                        missed += 1;
                        lines.push(format!(
                            "would record: {} {}: the deadline {} was missed",
                            inst.id, due.step, due.deadline
                        ));
                    }
                    if self.too_late_to_escalate(&due, today) {
                        continue;
                    }
                }
                let (subject, _) = text(inst, &due, today);
                for ch in &self.channels {
                    // In the order `attend` asks: recipients, then the notice's state.
                    let to = ch.recipients(&self.config, &inst.organisation, &due.roles);
                    if to.is_empty() {
                        lines.push(format!(
                            "no recipients by {} for {} ({}): {subject}",
                            ch.name(),
                            due.roles.join(", "),
                            inst.organisation
                        ));
                        continue;
                    }
                    let next = next_move(inst, &key, ch.name(), now);
                    let what = match next {
                        Move::Send { attempt: 1 } => "would send".to_string(),
                        Move::Send { attempt } => format!("would send again (attempt {attempt})"),
                        Move::Done => continue,
                        Move::GivenUp => "given up, would not send".to_string(),
                        Move::InDoubt => "in doubt, would not resend".to_string(),
                        Move::WaitUntil(at) => format!("would wait to retry until {at}"),
                    };
                    sends += usize::from(matches!(next, Move::Send { .. }));
                    lines.push(format!("{what} by {}: {subject} [to: {}]", ch.name(), to.join(", ")));
                }
            }
        }
        Ok((lines, sends, missed))
    }

    /// A missed deadline longer ago than the configuration escalates.
    fn too_late_to_escalate(&self, due: &Due, today: Date) -> bool {
        (today - due.deadline).get_days() > self.config.remind.escalate_within_days as i32
    }

    /// Sends what is due for one instance; returns when it next needs a look.
    async fn attend(
        &self,
        store: &impl EventStore,
        id: &InstanceId,
        today: Date,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<Option<Timestamp>> {
        let inst = self.scheduler.instances.get(id).expect("scheduled instances are folded");
        let mut wake = reminders::next_due_day(inst, today).map(swedish_midnight);
        let mut consider = |t: Timestamp| {
            if wake.is_none_or(|w| t < w) {
                wake = Some(t);
            }
        };
        for due in reminders::due(inst, today) {
            let key = due.key(inst);
            if due.notice == Notice::Missed {
                if !missed_recorded(inst, &due)
                    && Self::append(
                        store,
                        &inst.id,
                        notice_command(&["missed", &key]),
                        today,
                        Payload::DeadlineMissed { step: due.step.clone(), deadline: due.deadline },
                    )
                    .await?
                {
                    report.missed_recorded += 1;
                }
                if self.too_late_to_escalate(&due, today) {
                    // Counted once per deadline, however often the pass
                    // looks at the instance.
                    report.stale_missed.insert(format!("{}:{}:{}", inst.id, due.step, due.deadline));
                    continue;
                }
            }
            let (subject, body) = text(inst, &due, today);
            for ch in &self.channels {
                let to = ch.recipients(&self.config, &inst.organisation, &due.roles);
                if to.is_empty() {
                    self.warn_unaddressed(&inst.organisation, ch.name(), &due.roles, report);
                    continue;
                }
                let attempt = match next_move(inst, &key, ch.name(), now) {
                    Move::Send { attempt } => attempt,
                    Move::Done => continue,
                    Move::InDoubt => {
                        push_once(&mut report.in_doubt, format!("{key} by {}", ch.name()));
                        continue;
                    }
                    Move::GivenUp => {
                        push_once(&mut report.given_up, format!("{key} by {}", ch.name()));
                        continue;
                    }
                    Move::WaitUntil(retry_at) => {
                        consider(retry_at);
                        if report.tried.contains(&format!("{key} by {}", ch.name())) {
                            continue;
                        }
                        let at = Timestamp::from_second(retry_at.as_second()).unwrap_or(retry_at);
                        push_once(&mut report.waiting, format!("{key} by {}, retried from {at}", ch.name()));
                        continue;
                    }
                };
                if self.stopping() {
                    // Shutting down: claim nothing more; the next start
                    // looks at this instance first.
                    return Ok(Some(Timestamp::MIN));
                }
                let channel = ch.name().to_string();
                let command = notice_command(&[&key, &channel, &attempt.to_string()]);
                let claim = Payload::NoticeClaimed {
                    key: key.clone(),
                    step: due.step.clone(),
                    deadline: due.deadline,
                    notice: due.notice.code(),
                    channel: channel.clone(),
                    recipients: to.clone(),
                    attempt,
                };
                if !Self::append(store, &inst.id, command.clone(), today, claim).await? {
                    continue; // another sender owns this attempt
                }
                report.tried.insert(format!("{key} by {channel}"));
                let msg = Message {
                    key: key.clone(),
                    instance: inst.id.to_string(),
                    organisation: inst.organisation.clone(),
                    step: due.step.clone(),
                    deadline: due.deadline,
                    notice: due.notice.code(),
                    to,
                    subject: subject.clone(),
                    body: body.clone(),
                };
                let clean = |error: &str| -> String {
                    error.chars().filter(|c| !c.is_control()).take(engine::limits::NOTICE_ERROR_CHARS_MAX).collect()
                };
                let payload = match ch.deliver(&msg).await {
                    Ok(sent) => {
                        report.delivered += 1;
                        tracing::info!(channel = ch.name(), %key, attempt, "notice sent");
                        for r in sent.refused {
                            report.refused_recipients.push(format!("{key} by {}: {r}", ch.name()));
                        }
                        Payload::NoticeDelivered { key: key.clone(), channel, attempt }
                    }
                    Err(SendError::Failed(error)) => {
                        report.failed += 1;
                        tracing::warn!(channel = ch.name(), %key, attempt, %error, "notice not sent; will retry");
                        Payload::NoticeFailed { key: key.clone(), channel, attempt, error: clean(&error) }
                    }
                    Err(SendError::Refused(error)) => {
                        report.refused += 1;
                        tracing::warn!(channel = ch.name(), %key, attempt, %error, "notice refused for good; not retried");
                        push_once(&mut report.given_up, format!("{key} by {}", ch.name()));
                        let error = clean(&format!("{}{error}", reminders::REFUSED_FOR_GOOD));
                        Payload::NoticeFailed { key: key.clone(), channel, attempt, error }
                    }
                    Err(SendError::InDoubt(error)) => {
                        // No outcome: the claim stays in doubt and is never
                        // resent.
                        report.in_doubt_now += 1;
                        tracing::warn!(channel = ch.name(), %key, attempt, %error, "notice in doubt; not resent (see status)");
                        push_once(&mut report.in_doubt, format!("{key} by {}", ch.name()));
                        continue;
                    }
                };
                let outcome_command = notice_command(&[&key, ch.name(), &attempt.to_string(), "outcome"]);
                Self::append(store, &inst.id, outcome_command, today, payload).await?;
            }
        }
        Ok(wake)
    }

    /// Reports, once per organisation and channel in the life of the
    /// service, that a notice is due and nobody is configured to receive
    /// it on `channel`.
    fn warn_unaddressed(&self, organisation: &str, channel: &str, roles: &[String], report: &mut PassReport) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if !warned.insert((organisation.to_string(), channel.to_string())) {
            return;
        }
        report.unaddressed.push(format!(
            "a notice for {organisation:?} is due and no one is configured to receive it by {channel} (roles {}; add them under [recipients.{organisation:?}]); not sent",
            roles.join(", ")
        ));
    }
}

/// How the service holds its store between passes.
pub enum Holding<S> {
    /// Keep it open and wake as soon as an event is committed (a store
    /// shared with other processes, such as JetStream, or one this process
    /// owns).
    Keep(S),
    /// Open it for each pass and close it after, so that other processes can
    /// use an embedded store in between; look for new events every `poll`.
    Reopen { open: Box<dyn Fn() -> Result<S> + Send + Sync>, close: fn(S) -> Result<()>, poll: Duration },
}

/// Runs passes until `shutdown` resolves: after each pass it sleeps until
/// the next notice is due (a day starting, a retry) or the log changes.
/// Time comes only from `clock`; tokio's timer does the sleeping, so under
/// tokio's paused time the same loop runs simulated years.
pub async fn watch<S: EventStore>(
    service: &mut Service,
    hold: Holding<S>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let stop = service.stopper();
    stop.store(false, Ordering::SeqCst);
    let mut sub = match &hold {
        Holding::Keep(store) => Some(store.subscribe(store.head().await?.position + 1)),
        Holding::Reopen { .. } => None,
    };
    loop {
        let now = clock.now();
        let pass = async {
            match &hold {
                Holding::Keep(store) => service.pass(store, swedish_today(now), now).await,
                Holding::Reopen { open, close, .. } => {
                    let store = open()?;
                    let report = service.pass(&store, swedish_today(now), now).await;
                    close(store)?;
                    report
                }
            }
        };
        tokio::pin!(pass);
        // A shutdown during a pass lets the send in progress finish (each
        // send is bounded by its channel's timeout) and record its outcome,
        // and claims nothing more.
        let report = tokio::select! {
            r = &mut pass => r?,
            _ = &mut shutdown => {
                tracing::info!("reminder service stopping after the notice being sent");
                stop.store(true, Ordering::SeqCst);
                pass.await?;
                tracing::info!("reminder service stopping");
                return Ok(());
            }
        };
        if report.delivered + report.failed + report.refused + report.missed_recorded > 0 {
            tracing::info!(
                delivered = report.delivered,
                failed = report.failed,
                refused = report.refused,
                missed = report.missed_recorded,
                "reminder pass"
            );
        }
        for d in &report.in_doubt {
            tracing::warn!(notice = %d, "claimed but no outcome recorded; not resent (see status)");
        }
        for d in &report.refused_recipients {
            tracing::warn!("recipient refused for good, the others got the notice: {d}");
        }
        for d in &report.unaddressed {
            tracing::warn!("{d}");
        }
        // Sleep until the next wake, and at the latest until the next
        // Swedish midnight (or the next poll), so no day is ever skipped.
        let until = |t: Timestamp| {
            Duration::from_micros(t.duration_since(now).as_micros().clamp(0, i128::from(u64::MAX)) as u64)
        };
        let tomorrow = swedish_today(now).tomorrow().unwrap_or(swedish_today(now));
        let mut sleep_for = until(swedish_midnight(tomorrow));
        if let Some(w) = report.next_wake {
            sleep_for = sleep_for.min(until(w));
        }
        if let Holding::Reopen { poll, .. } = &hold {
            sleep_for = sleep_for.min(*poll);
        }
        let sleep_for = sleep_for.max(Duration::from_millis(1));
        tracing::debug!(?sleep_for, "reminder service sleeping");
        let next_event = async {
            match &mut sub {
                Some(sub) => sub.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("reminder service stopping");
                return Ok(());
            }
            _ = tokio::time::sleep(sleep_for) => {}
            e = next_event => match e {
                None => return Ok(()),
                Some(Err(err)) => return Err(err.into()),
                // The next pass reads what changed from the log; skip what
                // else is already queued.
                Some(Ok(_)) => if let Some(sub) = &mut sub {
                    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, sub.next()).await {}
                },
            },
        }
    }
}
