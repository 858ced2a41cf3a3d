//! The reminder service: one pass sends every reminder and escalation that
//! is due and not yet sent; the watch loop sleeps until the next one is due
//! or the log changes.
//!
//! Exactly-once bookkeeping in the log: before sending a notice on a
//! channel the service appends a `notice_claimed` event under a command id
//! derived from (instance, step, deadline, notice, channel, attempt). The
//! store's command-id idempotency makes exactly one sender the owner of
//! each attempt, across restarts and across services running at once; the
//! owner sends, then records `notice_delivered` or `notice_failed`. A
//! failed attempt is retried with backoff, up to a limit. A claim with no
//! outcome (the sender stopped between claim and outcome) is "in doubt":
//! it is shown, never resent automatically, so nothing goes out twice.

use anyhow::{Context, Result};
use engine::limits::{NOTICE_ATTEMPTS_MAX, NOTICE_RETRY_FIRST_S, NOTICE_RETRY_MAX_S};
use engine::{
    Actor, AppendRequest, Clock, CommandId, EventStore, ExpectedVersion, InstanceId, NewEvent, Payload, RecordedEvent,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use workflows::instance::NoticeStatus;
use workflows::reminders::{self, Due, Notice};
use workflows::Instance;

/// Where notices go and how: `styrlogg.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub smtp: Option<SmtpConfig>,
    /// Addresses per organisation and role: `[recipients."Härryda kommun"]
    /// styrgrupp = ["a@b.se"]`; the organisation `"*"` applies to all.
    #[serde(default)]
    pub recipients: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    pub from: String,
    /// `none` (a local relay), `starttls` or `tls`.
    #[serde(default = "tls_none")]
    pub tls: String,
    pub username: Option<String>,
    /// The name of an environment variable that holds the password.
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
                for a in addrs {
                    a.parse::<lettre::Address>()
                        .map_err(|e| format!("recipients.{org:?}.{role}: {a:?} is not an e-mail address: {e}"))?;
                }
            }
        }
        Ok(c)
    }

    /// Addresses for `roles` of `organisation`, from its own table and `"*"`.
    pub fn addresses(&self, organisation: &str, roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for table in [self.recipients.get(organisation), self.recipients.get("*")].into_iter().flatten() {
            for r in roles {
                for a in table.get(r).into_iter().flatten() {
                    if !out.contains(a) {
                        out.push(a.clone());
                    }
                }
            }
        }
        out
    }
}

/// One notice as it goes out.
#[derive(Debug, Clone)]
pub struct Message {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// A way to send notices.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    /// Who gets a notice meant for `roles` of `organisation`; empty skips.
    fn recipients(&self, config: &Config, organisation: &str, roles: &[String]) -> Vec<String>;
    async fn send(&self, msg: &Message) -> Result<(), String>;
}

/// Notices as lines on standard output (and in the log of events).
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
        println!("{} [till: {}]", msg.subject, msg.to.join(", "));
        Ok(())
    }
}

/// Notices by e-mail over SMTP (lettre).
pub struct EmailChannel {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl EmailChannel {
    pub fn new(c: &SmtpConfig) -> Result<EmailChannel> {
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let builder = match c.tls.as_str() {
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
        };
        let mut builder = builder.port(c.port).timeout(Some(Duration::from_secs(c.timeout_s)));
        if let Some(user) = &c.username {
            let var = c.password_env.as_deref().unwrap_or("STYRLOGG_SMTP_PASSWORD");
            let password = std::env::var(var).with_context(|| format!("smtp.username is set but ${var} is not"))?;
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(user.clone(), password));
        }
        Ok(EmailChannel { transport: builder.build(), from: c.from.parse().context("smtp.from")? })
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
        use lettre::AsyncTransport;
        let mut b = lettre::Message::builder().from(self.from.clone()).subject(&msg.subject);
        for to in &msg.to {
            b = b.to(to.parse().map_err(|e| format!("{to}: {e}"))?);
        }
        let email = b
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(msg.body.clone())
            .map_err(|e| e.to_string())?;
        self.transport.send(email).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub delivered: u32,
    pub failed: u32,
    /// Claims without an outcome, never resent.
    pub in_doubt: u32,
    pub missed_recorded: u32,
    /// When something next becomes due (a day starting, a retry).
    pub next_wake: Option<Timestamp>,
}

/// The reminder service over any event store.
pub struct Service<S: EventStore> {
    pub store: S,
    pub config: Config,
    pub channels: Vec<Arc<dyn Channel>>,
}

fn swedish_midnight(d: Date) -> Timestamp {
    d.to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm").unwrap_or(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| Timestamp::UNIX_EPOCH)
}

/// The Swedish date of an instant.
pub fn swedish_today(now: Timestamp) -> Date {
    now.in_tz("Europe/Stockholm").map(|z| z.date()).unwrap_or_else(|_| now.to_zoned(jiff::tz::TimeZone::UTC).date())
}

fn backoff(attempt: u32) -> SignedDuration {
    let s = NOTICE_RETRY_FIRST_S.saturating_mul(1i64 << attempt.saturating_sub(1).min(20)).min(NOTICE_RETRY_MAX_S);
    SignedDuration::from_secs(s)
}

fn text(inst: &Instance, due: &Due) -> (String, String) {
    let step = inst.definition.step(&due.step).expect("due notices name defined steps");
    let title = &step.title.sv;
    let subject = match due.notice {
        Notice::Reminder { days_before: 0 } => {
            format!("Påminnelse: {title} senast i dag {} ({})", due.deadline, inst.organisation)
        }
        Notice::Reminder { days_before } => {
            format!("Påminnelse: {title} senast {} om {days_before} dagar ({})", due.deadline, inst.organisation)
        }
        Notice::Missed => {
            format!("Missad tidsfrist: {title} skulle vara klart {} ({})", due.deadline, inst.organisation)
        }
    };
    let mut body = format!(
        "{subject}\n\nInstans: {} ({} version {})\nSteg: {title} ({})\nSista dag: {}\n",
        inst.id, inst.definition.id, inst.definition.version, step.id, due.deadline
    );
    body.push_str("Saknas: steget är inte registrerat");
    if !due.missing_before.is_empty() {
        body.push_str(&format!("; dessförinnan behövs: {}", due.missing_before.join(", ")));
    }
    let required: Vec<&str> = step.facts.iter().filter(|f| f.required).map(|f| f.name.as_str()).collect();
    if !required.is_empty() {
        body.push_str(&format!("\nUppgifter som krävs: {}", required.join(", ")));
    }
    body.push_str(&format!(
        "\nRegistreras av: {}\n\nSe läget: styrlogg status {}\n",
        step.recorded_by.join(", "),
        inst.id
    ));
    (subject, body)
}

impl<S: EventStore> Service<S> {
    async fn append(&self, inst: &InstanceId, command: String, on: Date, payload: Payload) -> Result<bool> {
        let out = self
            .store
            .append(AppendRequest {
                instance: inst.clone(),
                expected: ExpectedVersion::Any,
                command_id: CommandId::new(command)?,
                events: vec![NewEvent {
                    occurred_on: on, actor: Actor::new("styrlogg", "påminnelsetjänst"), payload
                }],
            })
            .await?;
        Ok(!out.deduplicated)
    }

    /// Every instance as it stands now.
    async fn instances(&self) -> Result<Vec<Instance>> {
        let mut by_id: BTreeMap<InstanceId, Vec<RecordedEvent>> = BTreeMap::new();
        let mut next = 1;
        loop {
            let page = self.store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
            let Some(last) = page.last() else { break };
            next = last.event.position + 1;
            for e in page {
                by_id.entry(e.event.instance.clone()).or_default().push(e);
            }
        }
        by_id.values().map(|events| Instance::fold(events).map_err(Into::into)).collect()
    }

    /// Sends what is due on `today` (at instant `now`) and not yet sent.
    pub async fn pass(&self, today: Date, now: Timestamp) -> Result<PassReport> {
        let mut report = PassReport::default();
        let mut wake: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| {
            if wake.is_none_or(|w| t < w) {
                wake = Some(t);
            }
        };
        for inst in self.instances().await? {
            if let Some(d) = reminders::next_due_day(&inst, today) {
                consider(swedish_midnight(d));
            }
            for due in reminders::due(&inst, today) {
                let key = due.key(&inst);
                if due.notice == Notice::Missed
                    && !inst.missed.iter().any(|(s, d)| *s == due.step && *d == due.deadline)
                    && self
                        .append(
                            &inst.id,
                            format!("missed:{key}"),
                            today,
                            Payload::DeadlineMissed { step: due.step.clone(), deadline: due.deadline },
                        )
                        .await?
                {
                    report.missed_recorded += 1;
                }
                let (subject, body) = text(&inst, &due);
                for ch in &self.channels {
                    let to = ch.recipients(&self.config, &inst.organisation, &due.roles);
                    if to.is_empty() {
                        continue;
                    }
                    let attempt = match inst.notices.get(&(key.clone(), ch.name().to_string())) {
                        None => 1,
                        Some(s) => match &s.status {
                            NoticeStatus::Delivered => continue,
                            NoticeStatus::Claimed => {
                                report.in_doubt += 1;
                                continue;
                            }
                            NoticeStatus::Failed(_) if s.attempt >= NOTICE_ATTEMPTS_MAX => continue,
                            NoticeStatus::Failed(_) => {
                                let retry_at = s.at.checked_add(backoff(s.attempt)).unwrap_or(s.at);
                                if now < retry_at {
                                    consider(retry_at);
                                    continue;
                                }
                                s.attempt + 1
                            }
                        },
                    };
                    let claim = Payload::NoticeClaimed {
                        key: key.clone(),
                        step: due.step.clone(),
                        deadline: due.deadline,
                        notice: due.notice.code(),
                        channel: ch.name().to_string(),
                        recipients: to.clone(),
                        attempt,
                    };
                    let id = format!("notice:{key}:{}:{attempt}", ch.name());
                    if !self.append(&inst.id, id.clone(), today, claim).await? {
                        continue; // another sender owns this attempt
                    }
                    let outcome = ch.send(&Message { to, subject: subject.clone(), body: body.clone() }).await;
                    let channel = ch.name().to_string();
                    let payload = match &outcome {
                        Ok(()) => {
                            report.delivered += 1;
                            Payload::NoticeDelivered { key: key.clone(), channel, attempt }
                        }
                        Err(error) => {
                            report.failed += 1;
                            tracing::warn!(channel = ch.name(), %key, attempt, %error, "notice not sent; will retry");
                            consider(now.checked_add(backoff(attempt)).unwrap_or(now));
                            Payload::NoticeFailed {
                                key: key.clone(),
                                channel,
                                attempt,
                                error: error.chars().take(2000).collect(),
                            }
                        }
                    };
                    self.append(&inst.id, format!("{id}:outcome"), today, payload).await?;
                }
            }
        }
        report.next_wake = wake;
        Ok(report)
    }
}

/// Runs passes until `shutdown` resolves: after each pass it sleeps until
/// the next notice is due, a retry is due, or the log changes.
pub async fn watch<S: EventStore + Clone + 'static>(
    service: &Service<S>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let mut sub = service.store.subscribe(service.store.head().await?.position + 1);
    loop {
        let now = clock.now();
        let report = service.pass(swedish_today(now), now).await?;
        tracing::info!(?report, "reminder pass");
        let sleep_for = report
            .next_wake
            .map(|w| {
                Duration::from_micros(w.duration_since(now).as_micros().clamp(0, i128::from(u32::MAX) * 1000) as u64)
            })
            .unwrap_or(Duration::from_secs(24 * 3600));
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("reminder service stopping");
                return Ok(());
            }
            _ = tokio::time::sleep(sleep_for) => {}
            e = sub.next() => {
                if e.is_none() {
                    return Ok(());
                }
                // Drain what else arrived, then pass again.
                while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {}
            }
        }
    }
}
