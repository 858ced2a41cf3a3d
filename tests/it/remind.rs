//! Reminders and escalations: a whole 2012-2014 network instance run in
//! simulated time (tokio's paused clock) with restarts and downtime, two
//! services at once, failing channels retried with backoff and shown in
//! status, claims in doubt, e-mail to a real SMTP listener on loopback, and
//! the `remind` command line.

use engine::{
    Actor, AppendRequest, Clock, CommandId, EventStore, ExpectedVersion, InstanceId, ManualClock, MemoryStore,
    NewEvent, Payload, TokioClock,
};
use jiff::civil::{date, Date};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use styrlogg::remind::{
    self, swedish_midnight, swedish_today, Channel, Config, Holding, Message, SendError, Sent, Service,
};
use workflows::status::InstanceStatus;
use workflows::{builtin, decide, Command, Definition, Instance};

const ID: &str = "tyreso-2012";

fn skl() -> Definition {
    let src = builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("skl-styrsystem")).unwrap().1;
    Definition::parse(src).unwrap()
}

/// A channel that records what it was asked to send and on which Swedish
/// day; it fails the first `fail_first` sends (all of them with u32::MAX),
/// or, `refusing`, refuses every send for good (as an SMTP 5xx).
struct Recorder {
    name: &'static str,
    clock: Arc<dyn Clock>,
    fail_first: u32,
    refuse: bool,
    calls: Mutex<u32>,
    sent: Mutex<Vec<(Date, Message)>>,
}

impl Recorder {
    fn new(name: &'static str, clock: Arc<dyn Clock>, fail_first: u32) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            clock,
            fail_first,
            refuse: false,
            calls: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn refusing(name: &'static str, clock: Arc<dyn Clock>) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            clock,
            fail_first: 0,
            refuse: true,
            calls: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    /// (step, notice, day sent), in the order sent.
    fn sent(&self) -> Vec<(String, String, Date)> {
        self.sent.lock().unwrap().iter().map(|(d, m)| (m.step.clone(), m.notice.clone(), *d)).collect()
    }
}

#[async_trait::async_trait]
impl Channel for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    fn recipients(&self, _: &Config, _: &str, roles: &[String]) -> Vec<String> {
        roles.to_vec()
    }
    async fn send(&self, msg: &Message) -> Result<(), String> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls <= self.fail_first {
            return Err(format!("simulated outage, call {calls}"));
        }
        self.sent.lock().unwrap().push((swedish_today(self.clock.now()), msg.clone()));
        Ok(())
    }
    async fn deliver(&self, msg: &Message) -> Result<Sent, SendError> {
        if self.refuse {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            return Err(SendError::Refused(format!("permanent error (550): no such mailbox, call {calls}")));
        }
        self.send(msg).await.map(|()| Sent::default()).map_err(SendError::Failed)
    }
}

async fn start(store: &impl EventStore, on: Date) {
    let e = workflows::start(&skl(), "Tyresö kommun", None, on, Actor::new("Anita Brynje", "registrator"), on).unwrap();
    let req = AppendRequest {
        instance: InstanceId::new(ID).unwrap(),
        expected: ExpectedVersion::NoStream,
        command_id: CommandId::new("start").unwrap(),
        events: vec![e],
    };
    store.append(req).await.unwrap();
}

async fn record(store: &impl EventStore, step: &str, on: Date, role: &str, facts: &[(&str, &str)]) {
    let id = InstanceId::new(ID).unwrap();
    let inst = Instance::fold(&store.read_instance(&id, 1).await.unwrap()).unwrap();
    let cmd = Command::Record {
        step: step.into(),
        occurred_on: on,
        actor: Actor::new("Eva Sekreterare", role),
        facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        deviation: None,
    };
    let events = decide(&inst, cmd, on).unwrap_or_else(|r| panic!("{step} on {on} rejected: {r}"));
    let req = AppendRequest {
        instance: id,
        expected: ExpectedVersion::Exactly(inst.version),
        command_id: CommandId::new(format!("record-{step}-{on}")).unwrap(),
        events,
    };
    store.append(req).await.unwrap();
}

async fn status(store: &impl EventStore, today: Date) -> InstanceStatus {
    let events = store.read_instance(&InstanceId::new(ID).unwrap(), 1).await.unwrap();
    InstanceStatus::of(&Instance::fold(&events).unwrap(), today)
}

/// Noon (Swedish time) on `d`, as a tokio instant under paused time.
fn noon(clock: &TokioClock, d: Date) -> tokio::time::Instant {
    let at = swedish_midnight(d).checked_add(SignedDuration::from_hours(12)).unwrap();
    let ahead = at.duration_since(clock.now());
    tokio::time::Instant::now() + std::time::Duration::from_micros(ahead.as_micros().max(0) as u64)
}

/// Runs a fresh service (a restart) from now until noon of `until`.
async fn run_until(store: &MemoryStore, clock: &TokioClock, channels: &[Arc<Recorder>], until: Date) {
    let channels: Vec<Arc<dyn Channel>> = channels.iter().map(|c| c.clone() as Arc<dyn Channel>).collect();
    let mut service = Service::new(Config::default(), channels);
    let stop = tokio::time::sleep_until(noon(clock, until));
    remind::watch(&mut service, Holding::Keep(store.clone()), Arc::new(*clock), stop).await.unwrap();
}

/// Counts events of each kind in the log.
async fn kinds(store: &impl EventStore) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for e in crate::support::all_events(store).await {
        *out.entry(e.event.payload.kind()).or_default() += 1;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_whole_network_in_simulated_time_with_restarts_and_downtime() {
    let clock = TokioClock::starting_at(swedish_midnight(date(2011, 12, 1)));
    let store = MemoryStore::new(Arc::new(clock));
    let rec = Recorder::new("test", Arc::new(clock), 0);
    let ch = [rec.clone()];
    start(&store, date(2011, 12, 1)).await;

    run_until(&store, &clock, &ch, date(2012, 1, 20)).await;
    record(
        &store,
        "intresseanmalan",
        date(2012, 1, 20),
        "registrator",
        &[("kontaktperson", "Anita Brynje|kontaktperson|official"), ("organisation", "Tyresö kommun")],
    )
    .await;
    // The board decision is missed; the service is then down for a month,
    // during which the decision is recorded late.
    run_until(&store, &clock, &ch, date(2012, 9, 10)).await;
    tokio::time::sleep_until(noon(&clock, date(2012, 9, 20))).await;
    record(
        &store,
        "styrelsebeslut",
        date(2012, 9, 20),
        "sekreterare",
        &[("organ", "Kommunstyrelsen"), ("protokoll", "Kommunstyrelsen|2012-09-20|§ 5"), ("diarienummer", "KS 2012/1")],
    )
    .await;
    tokio::time::sleep_until(noon(&clock, date(2012, 10, 10))).await;
    run_until(&store, &clock, &ch, date(2012, 11, 26)).await;
    record(
        &store,
        "uppfoljning_budget",
        date(2012, 11, 26),
        "sekreterare",
        &[("budgetdokument", "Mål och budget 2013|9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")],
    )
    .await;
    run_until(&store, &clock, &ch, date(2013, 6, 15)).await;
    run_until(&store, &clock, &ch, date(2015, 1, 10)).await;

    let d = date;
    let expected: Vec<(&str, &str, Date)> = vec![
        ("intresseanmalan", "reminder:30", d(2012, 1, 1)),
        ("styrelsebeslut", "reminder:30", d(2012, 8, 1)),
        ("styrelsebeslut", "reminder:7", d(2012, 8, 24)),
        ("styrelsebeslut", "reminder:1", d(2012, 8, 30)),
        ("styrelsebeslut", "missed", d(2012, 9, 1)),
        // Down from 10 September to 10 October: the 30-day reminder of the
        // plan (14 September) and its 7-day one (7 October) passed; only
        // the nearest is sent, once, when the service is back.
        ("projektplan", "reminder:7", d(2012, 10, 10)),
        ("projektplan", "reminder:1", d(2012, 10, 13)),
        ("projektplan", "missed", d(2012, 10, 15)),
        ("uppfoljning_budget", "reminder:30", d(2012, 10, 31)),
        ("uppfoljning_budget", "reminder:7", d(2012, 11, 23)),
        ("uppfoljning_arsberattelse", "reminder:30", d(2013, 3, 31)),
        ("uppfoljning_arsberattelse", "reminder:7", d(2013, 4, 23)),
        ("uppfoljning_arsberattelse", "missed", d(2013, 5, 1)),
        ("uppfoljning_budget", "reminder:30", d(2013, 10, 31)),
        ("uppfoljning_budget", "reminder:7", d(2013, 11, 23)),
        ("uppfoljning_budget", "missed", d(2013, 12, 1)),
        ("projektslut", "reminder:60", d(2014, 11, 1)),
        ("projektslut", "reminder:30", d(2014, 12, 1)),
        ("projektslut", "missed", d(2015, 1, 1)),
    ];
    let expected: Vec<(String, String, Date)> =
        expected.into_iter().map(|(s, n, d)| (s.to_string(), n.to_string(), d)).collect();
    assert_eq!(rec.sent(), expected, "every notice on its day, once, in order");

    let k = kinds(&store).await;
    assert_eq!(k.get("notice_claimed"), Some(&expected.len()));
    assert_eq!(k.get("notice_delivered"), Some(&expected.len()));
    assert_eq!(k.get("deadline_missed"), Some(&5));
    assert_eq!(k.get("notice_failed"), None);
    crate::support::verify(&store).await;

    // An escalation goes to the escalation role as well as the recorders.
    let sent = rec.sent.lock().unwrap();
    let missed = &sent.iter().find(|(_, m)| m.step == "projektplan" && m.notice == "missed").unwrap().1;
    assert_eq!(missed.to, vec!["projektledare", "styrgrupp"]);
    assert!(missed.subject.starts_with("Missad tidsfrist: Projektplan inlämnad skulle vara klart 2012-10-14"));
    let seven = &sent.iter().find(|(_, m)| m.step == "projektplan" && m.notice == "reminder:7").unwrap().1;
    assert!(seven.subject.contains("senast 2012-10-14 om 4 dagar (Tyresö kommun, tyreso-2012)"), "{}", seven.subject);
    assert!(seven.body.contains("Instans: tyreso-2012"), "{}", seven.body);
    assert!(seven.body.contains("Uppgifter som krävs: plan, swot, nulagesanalys, onskat_tillstand"), "{}", seven.body);
    assert!(seven.body.contains("dessförinnan behövs: projektledare_utsedd, styrgrupp_tillsatt"), "{}", seven.body);
    assert!(seven.body.contains("Se läget: styrlogg status tyreso-2012"), "{}", seven.body);
}

#[tokio::test(start_paused = true)]
async fn two_services_at_once_never_send_one_twice() {
    let clock = TokioClock::starting_at(swedish_midnight(date(2012, 7, 1)));
    let store = MemoryStore::new(Arc::new(clock));
    let rec = Recorder::new("test", Arc::new(clock), 0);
    start(&store, date(2012, 7, 1)).await;
    let run = |store: MemoryStore, rec: Arc<Recorder>| async move {
        let mut service = Service::new(Config::default(), vec![rec as Arc<dyn Channel>]);
        let stop = tokio::time::sleep_until(noon(&clock, date(2013, 1, 1)));
        remind::watch(&mut service, Holding::Keep(store), Arc::new(clock), stop).await.unwrap();
    };
    let a = tokio::spawn(run(store.clone(), rec.clone()));
    let b = tokio::spawn(run(store.clone(), rec.clone()));
    a.await.unwrap();
    b.await.unwrap();
    let sent = rec.sent();
    let mut keys: Vec<(String, String)> = sent.iter().map(|(s, n, _)| (s.clone(), n.clone())).collect();
    let before = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), before, "no notice sent twice: {sent:?}");
    // Interest registration missed 31 January: before the service started,
    // so it is recorded, and too old to escalate; then the board decision.
    assert_eq!(
        sent.iter().map(|(s, n, d)| (s.as_str(), n.as_str(), *d)).collect::<Vec<_>>(),
        vec![
            ("styrelsebeslut", "reminder:30", date(2012, 8, 1)),
            ("styrelsebeslut", "reminder:7", date(2012, 8, 24)),
            ("styrelsebeslut", "reminder:1", date(2012, 8, 30)),
            ("styrelsebeslut", "missed", date(2012, 9, 1)),
            ("projektplan", "reminder:30", date(2012, 9, 14)),
            ("projektplan", "reminder:7", date(2012, 10, 7)),
            ("projektplan", "reminder:1", date(2012, 10, 13)),
            ("projektplan", "missed", date(2012, 10, 15)),
            ("uppfoljning_budget", "reminder:30", date(2012, 10, 31)),
            ("uppfoljning_budget", "reminder:7", date(2012, 11, 23)),
            ("uppfoljning_budget", "missed", date(2012, 12, 1)),
        ]
    );
    let k = kinds(&store).await;
    assert_eq!(k.get("notice_delivered"), Some(&sent.len()));
    assert_eq!(k.get("notice_claimed"), Some(&sent.len()));
    assert_eq!(k.get("deadline_missed"), Some(&4), "interest, board, plan, budget: each recorded once");
}

/// One pass at `now` with the store's clock set to it.
async fn pass_at(
    service: &mut Service,
    store: &MemoryStore,
    clock: &ManualClock,
    now: Timestamp,
) -> remind::PassReport {
    clock.set(now);
    service.pass(store, swedish_today(now), now).await.unwrap()
}

/// A memory store at 08:00 on `day`, with the instance started on
/// 2012-07-01 and its interest recorded the day after: the board
/// decision's deadline (2012-08-31) is the next.
async fn interest_recorded(day: Date) -> (Timestamp, Arc<ManualClock>, MemoryStore) {
    let t0 = swedish_midnight(day).checked_add(SignedDuration::from_hours(8)).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let store = MemoryStore::new(clock.clone());
    start(&store, date(2012, 7, 1)).await;
    record(
        &store,
        "intresseanmalan",
        date(2012, 7, 2),
        "registrator",
        &[("kontaktperson", "Anita Brynje|kontaktperson|official"), ("organisation", "Tyresö kommun")],
    )
    .await;
    (t0, clock, store)
}

#[tokio::test]
async fn a_failing_channel_is_retried_with_backoff_never_blocks_others_and_shows_in_status() {
    let (t0, clock, store) = interest_recorded(date(2012, 8, 1)).await;
    let good = Recorder::new("good", clock.clone(), 0);
    let flaky = Recorder::new("flaky", clock.clone(), 2);
    let dead = Recorder::new("dead", clock.clone(), u32::MAX);
    let mut service =
        Service::new(Config::default(), vec![good.clone() as Arc<dyn Channel>, flaky.clone(), dead.clone()]);
    let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();

    let r = pass_at(&mut service, &store, &clock, at(0)).await;
    assert_eq!((r.delivered, r.failed), (1, 2), "the good channel delivers whatever the others do");
    assert_eq!(r.next_wake, Some(at(60)), "first retry after 60 s");
    let s = status(&store, date(2012, 8, 1)).await;
    assert_eq!(s.notices_delivered, 1);
    let states: Vec<(&str, &str, u32)> =
        s.notice_problems.iter().map(|p| (p.channel.as_str(), p.state, p.attempt)).collect();
    assert_eq!(states, vec![("dead", "failed", 1), ("flaky", "failed", 1)]);
    assert_eq!(s.notice_problems[0].error.as_deref(), Some("simulated outage, call 1"));

    let r = pass_at(&mut service, &store, &clock, at(59)).await;
    assert_eq!((r.delivered, r.failed), (0, 0), "nothing before the backoff has passed");
    let r = pass_at(&mut service, &store, &clock, at(60)).await;
    assert_eq!((r.delivered, r.failed), (0, 2), "second attempts fail");
    assert_eq!(r.next_wake, Some(at(60 + 120)), "the wait doubles");
    let r = pass_at(&mut service, &store, &clock, at(180)).await;
    assert_eq!((r.delivered, r.failed), (1, 1), "the flaky channel's third attempt gets through");
    assert_eq!(flaky.sent().len(), 1);
    assert_eq!(good.sent().len(), 1, "the good channel is not sent to again");

    // The dead channel keeps failing until it gives up; status says so.
    let mut t = 180;
    for _ in 0..20 {
        let r = pass_at(&mut service, &store, &clock, at(t)).await;
        match r.next_wake {
            Some(w) if w < swedish_midnight(date(2012, 8, 2)) => t = w.duration_since(t0).as_secs(),
            _ => break,
        }
    }
    let s = status(&store, date(2012, 8, 1)).await;
    assert_eq!(s.notices_delivered, 2);
    let states: Vec<(&str, &str, u32)> =
        s.notice_problems.iter().map(|p| (p.channel.as_str(), p.state, p.attempt)).collect();
    assert_eq!(states, vec![("dead", "given_up", engine::limits::NOTICE_ATTEMPTS_MAX)]);
    let r = pass_at(&mut service, &store, &clock, at(t + 100_000)).await;
    assert_eq!((r.delivered, r.failed), (0, 0), "no attempt after giving up");
}

#[tokio::test]
async fn a_claim_without_an_outcome_is_in_doubt_and_never_resent() {
    let (t0, clock, store) = interest_recorded(date(2012, 8, 1)).await;
    // A sender claimed the board decision's 30-day reminder and stopped
    // before recording what happened.
    let claim = Payload::NoticeClaimed {
        key: format!("{ID}:styrelsebeslut:2012-08-31:reminder:30"),
        step: "styrelsebeslut".into(),
        deadline: date(2012, 8, 31),
        notice: "reminder:30".into(),
        channel: "test".into(),
        recipients: vec!["sekreterare".into()],
        attempt: 1,
    };
    store
        .append(AppendRequest {
            instance: InstanceId::new(ID).unwrap(),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new("crashed-sender").unwrap(),
            events: vec![NewEvent {
                occurred_on: date(2012, 8, 1),
                actor: Actor::new(remind::SERVICE_ACTOR, remind::SERVICE_ROLE),
                payload: claim,
            }],
        })
        .await
        .unwrap();
    let rec = Recorder::new("test", clock.clone(), 0);
    let mut service = Service::new(Config::default(), vec![rec.clone() as Arc<dyn Channel>]);
    let r = pass_at(&mut service, &store, &clock, t0).await;
    assert_eq!(r.delivered, 0);
    assert_eq!(r.in_doubt, vec![format!("{ID}:styrelsebeslut:2012-08-31:reminder:30 by test")]);
    assert_eq!(r.in_doubt_now, 0, "in doubt since an earlier run");
    assert!(rec.sent().is_empty());
    let s = status(&store, date(2012, 8, 1)).await;
    assert_eq!(s.notice_problems.len(), 1);
    assert_eq!(s.notice_problems[0].state, "in_doubt");
}

#[test]
fn configuration_errors_are_specific() {
    let bad = [
        ("[smtp]\nhost = \"x\"\nfrom = \"not an address\"\n", "smtp.from"),
        ("[smtp]\nhost = \"x\"\nfrom = \"a@b.se\"\ntls = \"ssl\"\n", "smtp.tls is \"ssl\""),
        ("[recipients.\"Tyresö kommun\"]\nstyrgrupp = [\"nobody\"]\n", "is not an e-mail address"),
        ("[remind]\nescalate_within = 3\n", "unknown field `escalate_within`"),
    ];
    for (src, want) in bad {
        let err = Config::parse(src).unwrap_err();
        assert!(err.contains(want), "{src:?}: {err}");
    }
    let c = Config::parse(
        "[recipients.\"Tyresö kommun\"]\nstyrgrupp = [\"a@tyreso.se\"]\n[recipients.\"*\"]\nstyrgrupp = [\"skr@skr.se\"]\nprojektledare = [\"p@tyreso.se\"]\n",
    )
    .unwrap();
    assert_eq!(
        c.addresses("Tyresö kommun", &["styrgrupp".into(), "projektledare".into()]),
        vec!["a@tyreso.se", "skr@skr.se", "p@tyreso.se"]
    );
    assert_eq!(c.addresses("Härryda kommun", &["styrgrupp".into()]), vec!["skr@skr.se"]);
}

/// A received mail: recipients and the message.
type Mail = (Vec<String>, Vec<u8>);

/// A real SMTP server on a free loopback port that keeps what it receives.
#[derive(Clone, Default)]
struct Inbox {
    mails: Arc<Mutex<Vec<Mail>>>,
    current: (Vec<String>, Vec<u8>),
    /// Addresses refused with 550 at RCPT TO.
    refuse: Arc<Vec<String>>,
}

impl mailin_embedded::Handler for Inbox {
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        if self.refuse.iter().any(|r| to.contains(r.as_str())) {
            mailin_embedded::response::NO_MAILBOX
        } else {
            mailin_embedded::response::OK
        }
    }
    fn data_start(&mut self, _: &str, _: &str, _: bool, to: &[String]) -> mailin_embedded::Response {
        self.current = (to.to_vec(), Vec::new());
        mailin_embedded::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.1.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        self.mails.lock().unwrap().push(std::mem::take(&mut self.current));
        mailin_embedded::response::OK
    }
}

impl Inbox {
    /// Starts the server; it runs until the test process ends.
    fn start() -> (Inbox, u16) {
        Inbox::start_refusing(&[])
    }

    /// Starts a server that refuses `refuse` with 550 at RCPT TO.
    fn start_refusing(refuse: &[&str]) -> (Inbox, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Inbox { refuse: Arc::new(refuse.iter().map(|r| r.to_string()).collect()), ..Inbox::default() };
        let mut server = mailin_embedded::Server::new(inbox.clone());
        server.with_name("styrlogg.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        (inbox, port)
    }

    /// (recipients, subject, body text) of each mail received.
    fn received(&self) -> Vec<(Vec<String>, String, String)> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .map(|(to, raw)| {
                let m = mail_parser::MessageParser::default().parse(raw).expect("a parsable mail");
                (
                    to.clone(),
                    m.subject().unwrap_or_default().to_string(),
                    m.body_text(0).unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

fn config_file(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    config_file_timeout(dir, port, 5)
}

fn config_file_timeout(dir: &std::path::Path, port: u16, timeout_s: u64) -> std::path::PathBuf {
    let path = dir.join("styrlogg.toml");
    std::fs::write(
        &path,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"styrlogg <styrlogg@tyreso.se>\"\ntimeout_s = {timeout_s}\n\n\
             [recipients.\"Tyresö kommun\"]\nsekreterare = [\"eva.sekreterare@tyreso.se\"]\n\
             registrator = [\"registrator@tyreso.se\"]\nprojektledare = [\"projektledare@tyreso.se\"]\n"
        ),
    )
    .unwrap();
    path
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn email_reaches_a_real_smtp_listener_once() {
    use crate::cli::styrlogg;
    let (inbox, port) = Inbox::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    let cfg = cfg.to_str().unwrap();
    let o = styrlogg(
        &data,
        &[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            ID,
            "--org",
            "Tyresö kommun",
            "--on",
            "2012-01-10",
            "--by",
            "Anita Brynje",
            "--role",
            "registrator",
            "--today",
            "2012-01-10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 notice(s) sent"), "log and e-mail: {}", text(&o));
    let mails = inbox.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, subject, body) = &mails[0];
    assert_eq!(to, &["registrator@tyreso.se", "eva.sekreterare@tyreso.se", "projektledare@tyreso.se"]);
    assert_eq!(
        subject,
        "Påminnelse: Intresseanmälan till SKL senast 2012-01-31 om 6 dagar (Tyresö kommun, tyreso-2012)"
    );
    assert!(body.contains("Instans: tyreso-2012 (Tyresö kommun, skl-styrsystem-2012-2014 version "), "{body}");
    assert!(body.contains("Sista dag: 2012-01-31"), "{body}");
    assert!(body.contains("Se läget: styrlogg status tyreso-2012"), "{body}");

    // Again the same day, and again after a restart of nothing: nothing new.
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg]);
    assert!(text(&o).contains("0 notice(s) sent"), "{}", text(&o));
    assert_eq!(inbox.received().len(), 1);

    // The deadline passes: the escalation goes out once.
    let o = styrlogg(&data, &["remind", "--today", "2012-02-01", "--config", cfg]);
    assert!(text(&o).contains("1 missed deadline(s) recorded"), "{}", text(&o));
    let mails = inbox.received();
    assert_eq!(mails.len(), 2);
    assert!(mails[1].0.contains(&"projektledare@tyreso.se".to_string()), "{:?}", mails[1].0);
    assert!(mails[1].1.starts_with("Missad tidsfrist: Intresseanmälan till SKL"), "{}", mails[1].1);
    let o = styrlogg(&data, &["verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn an_unreachable_smtp_server_is_recorded_retried_and_shown_in_status() {
    use crate::cli::styrlogg;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    let cfg = cfg.to_str().unwrap();
    let o = styrlogg(
        &data,
        &[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            ID,
            "--org",
            "Tyresö kommun",
            "--on",
            "2012-01-10",
            "--by",
            "Anita Brynje",
            "--role",
            "registrator",
            "--today",
            "2012-01-10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg]);
    assert_eq!(o.status.code(), Some(3), "a notice that failed is an operating error: {}", text(&o));
    assert!(text(&o).contains("1 notice(s) sent, 1 failed"), "the log channel is not held up: {}", text(&o));
    assert!(text(&o).contains("1 of 2 notice(s) could not be sent in this run"), "{}", text(&o));
    let o = styrlogg(&data, &["status", ID, "--today", "2012-01-25"]);
    let out = text(&o);
    assert!(
        out.contains(
            "notice reminder:7 for intresseanmalan (deadline 2012-01-31) by email: FAILED attempt 1, will be retried"
        ),
        "{out}"
    );
    // Within the backoff nothing is attempted again, and nothing failed;
    // the dry run says so first, and counts nothing to send.
    let o = styrlogg(&data, &["remind", "--dry-run", "--today", "2012-01-25", "--config", cfg]);
    assert!(text(&o).contains("would wait to retry until"), "{}", text(&o));
    assert!(text(&o).contains("0 notice(s) would be sent"), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg]);
    assert!(text(&o).contains("0 notice(s) sent, 0 failed"), "{}", text(&o));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn remind_refuses_bad_configuration_and_missing_stores() {
    use crate::cli::styrlogg;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let o = styrlogg(&data, &["remind"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no store at"), "{}", text(&o));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[smtp]\nhost = \"x\"\nfrom = \"a@b.se\"\ntls = \"ssl\"\n").unwrap();
    let o = styrlogg(&data, &["remind", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("bad.toml: smtp.tls is \"ssl\""), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--channel", "email"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--channel email needs an [smtp] table"), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--watch", "--today", "2012-01-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn the_watch_service_lets_other_commands_use_the_store_and_stops_on_sigterm() {
    use crate::cli::styrlogg;
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let today = swedish_today(Timestamp::now());
    let days_ago = |n: i64| today.checked_sub(jiff::Span::new().days(n)).unwrap().to_string();
    let o = styrlogg(
        &data,
        &[
            "start",
            "protokoll-laga-kraft",
            "--instance",
            "ks-2026",
            "--org",
            "Tyresö kommun",
            "--on",
            &days_ago(30),
            "--by",
            "Eva Sekreterare",
            "--role",
            "sekreterare",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let cfg = dir.path().join("styrlogg.toml");
    std::fs::write(&cfg, "[remind]\npoll_s = 1\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .arg("--data")
        .arg(&data)
        .args(["remind", "--watch", "--config", cfg.to_str().unwrap()])
        .env_remove("STYRLOGG_TODAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // While it watches, a meeting ten days ago is recorded from another
    // process: its minutes are due within 14 days of it, the 7-day reminder
    // is due now, and the service sends it.
    let on = days_ago(10);
    let minutes = format!("protokoll=Kommunstyrelsen|{on}|§ 12");
    let o = styrlogg(
        &data,
        &[
            "record",
            "ks-2026",
            "sammantrade",
            "--on",
            &on,
            "--fact",
            &minutes,
            "--fact",
            "beslut=Budget 2027",
            "--by",
            "Eva Sekreterare",
            "--role",
            "sekreterare",
        ],
    );
    assert!(o.status.success(), "the store is free between passes: {}", text(&o));
    let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("a reminder after the meeting");
    assert!(line.starts_with("Påminnelse: "), "{line}");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "stops cleanly on SIGTERM: {status:?}");
    let o = styrlogg(&data, &["verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn organisation_tokens_are_plain_subject_tokens() {
    assert_eq!(remind::organisation_token("Härryda kommun"), "harryda-kommun");
    assert_eq!(remind::organisation_token("Landstinget i Jönköpings län"), "landstinget-i-jonkopings-lan");
    assert_eq!(remind::organisation_token("Älvsjö stadsdelsnämnd"), "alvsjo-stadsdelsnamnd");
    assert_eq!(remind::organisation_token("Region Skåne (RS) . * >"), "region-skane-rs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_on_nats_for_other_systems_and_the_watch_service_over_jetstream() {
    use crate::cli::styrlogg;
    use futures_util::StreamExt;
    let server = crate::nats::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    let cfg = dir.path().join("styrlogg.toml");
    std::fs::write(&cfg, "[nats]\nkeep_days = 30\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let nats = ["--nats", server.url.as_str(), "--config", &cfg];
    let run = |args: &[&str]| {
        let o = tokio::task::block_in_place(|| styrlogg(&data, &[&nats[..], args].concat()));
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    run(&[
        "start",
        "skl-styrsystem-2012-2014",
        "--instance",
        ID,
        "--org",
        "Tyresö kommun",
        "--on",
        "2012-01-10",
        "--by",
        "Anita Brynje",
        "--role",
        "registrator",
        "--today",
        "2012-01-10",
    ]);
    let out = run(&["remind", "--today", "2012-01-25"]);
    assert!(out.contains("2 notice(s) sent"), "log and nats: {out}");
    run(&["remind", "--today", "2012-01-25"]);

    // Another system reads the notices from their stream whenever it likes.
    let client = async_nats::connect(server.url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("STYRLOGG_NOTICES").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "styrlogg.notices.tyreso-kommun".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let m = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap();
    let notice: serde_json::Value = serde_json::from_slice(&m.message.payload).unwrap();
    assert_eq!(notice["key"], "tyreso-2012:intresseanmalan:2012-01-31:reminder:7");
    assert_eq!(notice["organisation"], "Tyresö kommun");
    assert_eq!(notice["deadline"], "2012-01-31");
    assert!(notice["subject"].as_str().unwrap().starts_with("Påminnelse: Intresseanmälan till SKL"));
    let info = stream.clone().info().await.unwrap().state.messages;
    assert_eq!(info, 1, "the second run sent nothing");

    // The watch service over JetStream wakes as soon as a step changes what
    // is due: here a meeting whose minutes are due within 14 days.
    let today = swedish_today(Timestamp::now());
    let days_ago = |n: i64| today.checked_sub(jiff::Span::new().days(n)).unwrap().to_string();
    run(&[
        "start",
        "protokoll-laga-kraft",
        "--instance",
        "ks-1",
        "--org",
        "Tyresö kommun",
        "--on",
        &days_ago(30),
        "--by",
        "Eva Sekreterare",
        "--role",
        "sekreterare",
    ]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .args(nats)
        .args(["remind", "--watch", "--channel", "log"])
        .env_remove("STYRLOGG_TODAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Whatever the first pass sends about the older instance comes first.
    std::thread::sleep(std::time::Duration::from_millis(500));
    while rx.try_recv().is_ok() {}
    let on = days_ago(10);
    let minutes = format!("protokoll=Kommunstyrelsen|{on}|§ 12");
    run(&[
        "record",
        "ks-1",
        "sammantrade",
        "--on",
        &on,
        "--fact",
        &minutes,
        "--fact",
        "beslut=Budget",
        "--by",
        "Eva Sekreterare",
        "--role",
        "sekreterare",
    ]);
    let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("a reminder right after the meeting");
    assert!(line.starts_with("Påminnelse: Protokollet justerat"), "{line}");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_dry_run_shows_what_a_pass_would_do_and_does_nothing() {
    use crate::cli::styrlogg;
    let (inbox, port) = Inbox::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    let cfg = cfg.to_str().unwrap();
    cli_start(&data, "tyreso-2012", "Tyresö kommun");
    cli_start(&data, "nacka-2012", "Nacka kommun");
    let export = || styrlogg(&data, &["export"]).stdout;
    let before = export();
    // A day to come is allowed: nothing is written.
    let o = styrlogg(&data, &["remind", "--dry-run", "--today", "2099-01-01", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing was sent or recorded"), "{}", text(&o));
    let o = styrlogg(&data, &["remind", "--dry-run", "--today", "2012-02-05", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let dry = text(&o);
    assert!(dry.contains("would record: nacka-2012 intresseanmalan: the deadline 2012-01-31 was missed"), "{dry}");
    assert!(dry.contains("no recipients by email for registrator, sekreterare, projektledare (Nacka kommun)"), "{dry}");
    assert!(dry.contains("would send by email: Missad tidsfrist: Intresseanmälan till SKL skulle vara klart 2012-01-31 (Tyresö kommun, tyreso-2012) [to: "), "{dry}");
    assert!(
        dry.contains("dry run as of 2012-02-05: 3 notice(s) would be sent and 2 missed deadline(s) would be recorded"),
        "{dry}"
    );
    assert_eq!(export(), before, "a dry run records nothing");
    assert!(inbox.received().is_empty(), "and sends nothing");
    // The pass itself does what the dry run said.
    let o = styrlogg(&data, &["remind", "--today", "2012-02-05", "--config", cfg]);
    assert!(text(&o).contains("3 notice(s) sent"), "{}", text(&o));
    assert!(text(&o).contains("2 missed deadline(s) recorded"), "{}", text(&o));
    assert_eq!(inbox.received().len(), 1, "Tyresö has e-mail recipients, Nacka none");
    // Once sent, nothing is left to do.
    let o = styrlogg(&data, &["remind", "--dry-run", "--today", "2012-02-05", "--config", cfg]);
    assert!(text(&o).contains("0 notice(s) would be sent and 0 missed deadline(s)"), "{}", text(&o));
}

/// Starts the 2012-2014 network instance `id` for `org` from the command
/// line, on 2012-01-10 (interest registration due 2012-01-31).
fn cli_start(data: &std::path::Path, id: &str, org: &str) {
    let o = crate::cli::styrlogg(
        data,
        &[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            id,
            "--org",
            org,
            "--on",
            "2012-01-10",
            "--by",
            "Anita Brynje",
            "--role",
            "registrator",
            "--today",
            "2012-01-10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs styrlogg as `crate::cli::styrlogg` does, but kills it and fails
/// the test if it has not finished within `limit`; returns its output and
/// how long it took.
fn styrlogg_within(
    data: &std::path::Path,
    args: &[&str],
    limit: std::time::Duration,
) -> (std::process::Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut child = crate::cli::command(data, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("styrlogg {args:?} did not finish within {limit:?}: {}", text(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Where a fake SMTP server stops answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Accepts the connection and never says anything.
    BeforeGreeting,
    /// Greets, reads EHLO, and never answers it.
    AfterEhlo,
    /// Answers everything up to the end of the message, then nothing.
    AfterMessage,
}

/// An SMTP server on a free loopback port that stops answering at `stall`
/// and keeps every connection open; it sends () on the receiver for each
/// connection it accepts. Its threads end with the test process.
fn stalling_smtp(stall: Stall) -> (u16, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = tx.send(());
            let Ok(talk) = conn.try_clone() else { continue };
            held.push(conn);
            std::thread::spawn(move || -> std::io::Result<()> {
                if stall == Stall::BeforeGreeting {
                    return Ok(());
                }
                let mut w = talk.try_clone()?;
                let mut r = BufReader::new(talk);
                w.write_all(b"220 stall.test ESMTP\r\n")?;
                let mut line = String::new();
                r.read_line(&mut line)?; // EHLO
                if stall == Stall::AfterEhlo {
                    return Ok(());
                }
                w.write_all(b"250-stall.test\r\n250 8BITMIME\r\n")?;
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    let command = line.to_ascii_uppercase();
                    if command.starts_with("DATA") {
                        w.write_all(b"354 go ahead\r\n")?;
                        loop {
                            line.clear();
                            if r.read_line(&mut line)? == 0 || line == ".\r\n" {
                                break;
                            }
                        }
                        return Ok(()); // the message is here; no answer
                    } else if command.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n")?;
                        return Ok(());
                    } else {
                        w.write_all(b"250 ok\r\n")?;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn a_silent_smtp_server_times_out_within_timeout_s_and_the_notice_is_retried_not_in_doubt() {
    use crate::cli::styrlogg;
    for stall in [Stall::BeforeGreeting, Stall::AfterEhlo] {
        let (port, accepted) = stalling_smtp(stall);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("store");
        let cfg = config_file_timeout(dir.path(), port, 1);
        let cfg = cfg.to_str().unwrap();
        cli_start(&data, ID, "Tyresö kommun");
        let (o, took) = styrlogg_within(
            &data,
            &["remind", "--today", "2012-01-25", "--config", cfg],
            std::time::Duration::from_secs(20),
        );
        assert!(took < std::time::Duration::from_secs(10), "{stall:?}: timeout_s = 1 took {took:?}");
        assert!(accepted.try_recv().is_ok(), "{stall:?}: the server was reached");
        assert_eq!(o.status.code(), Some(3), "{stall:?}: {}", text(&o));
        assert!(text(&o).contains("1 notice(s) sent, 1 failed"), "{stall:?}: {}", text(&o));
        assert!(text(&o).contains("within 1 s"), "{stall:?}: {}", text(&o));
        // The store is free again, and the notice is to be retried: it
        // certainly did not go out.
        let o = styrlogg(&data, &["status", ID, "--today", "2012-01-25"]);
        let out = text(&o);
        assert!(
            out.contains(
                "notice reminder:7 for intresseanmalan (deadline 2012-01-31) by email: FAILED attempt 1, will be retried"
            ),
            "{stall:?}: {out}"
        );
        assert!(!out.contains("IN DOUBT"), "{stall:?}: {out}");
    }
}

#[test]
fn a_server_silent_after_the_whole_message_leaves_the_notice_in_doubt() {
    let (port, accepted) = stalling_smtp(Stall::AfterMessage);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file_timeout(dir.path(), port, 1);
    let cfg = cfg.to_str().unwrap();
    cli_start(&data, ID, "Tyresö kommun");
    let args = ["remind", "--today", "2012-01-25", "--config", cfg];
    let (o, _) = styrlogg_within(&data, &args, std::time::Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("1 notice(s) sent, 0 failed (retried on a later run), 1 in doubt"), "{}", text(&o));
    assert!(text(&o).contains("it may have been delivered"), "{}", text(&o));
    let o = crate::cli::styrlogg(&data, &["status", ID, "--today", "2012-01-25"]);
    assert!(text(&o).contains("by email: IN DOUBT"), "{}", text(&o));
    // Never resent.
    accepted.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    let (o, _) = styrlogg_within(&data, &args, std::time::Duration::from_secs(20));
    assert!(text(&o).contains("0 notice(s) sent, 0 failed"), "{}", text(&o));
    assert!(text(&o).contains("in doubt, not resent"), "{}", text(&o));
    assert!(accepted.try_recv().is_err(), "no second connection");
}

#[test]
fn ctrl_c_during_a_send_of_one_run_finishes_it_and_the_notice_is_retried_not_in_doubt() {
    use crate::cli::styrlogg;
    for (signal, status) in [("-INT", 130), ("-TERM", 143)] {
        let (port, accepted) = stalling_smtp(Stall::BeforeGreeting);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("store");
        let cfg = config_file_timeout(dir.path(), port, 3);
        cli_start(&data, ID, "Tyresö kommun");
        let child = crate::cli::command(&data, &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        accepted.recv_timeout(std::time::Duration::from_secs(30)).expect("the run connected to the SMTP server");
        // The client waits for a greeting that never comes.
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(status), "{signal}: {}", text(&o));
        assert!(text(&o).contains("interrupted: finishing the notice being sent"), "{}", text(&o));
        assert!(text(&o).contains("notice(s) sent, 1 failed"), "what it did is said: {}", text(&o));
        assert!(!text(&o).contains("error:"), "an interruption is not an error: {}", text(&o));
        let o = styrlogg(&data, &["status", ID, "--today", "2012-01-25"]);
        let out = text(&o);
        assert!(out.contains("by email: FAILED attempt 1, will be retried"), "{signal}: {out}");
        assert!(!out.contains("IN DOUBT"), "{signal}: {out}");
    }
}

#[test]
fn an_smtp_server_nobody_listens_at_is_named_and_the_notice_retried() {
    use crate::cli::styrlogg;
    let port = crate::nats::free_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file_timeout(dir.path(), port, 3);
    cli_start(&data, ID, "Tyresö kommun");
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains(&format!("cannot reach the SMTP server 127.0.0.1:{port}")), "{}", text(&o));
    assert!(text(&o).contains("1 failed (retried on a later run), 0 missed"), "{}", text(&o));
    assert!(!text(&o).contains("waiting"), "failed in this run, not waiting as well: {}", text(&o));
    let out = text(&styrlogg(&data, &["status", ID, "--today", "2012-01-25"]));
    assert!(out.contains("by email: FAILED attempt 1, will be retried"), "{out}");
    // A run before the retry is due says it waits, rather than "0 failed"
    // alone.
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 notice(s) sent, 0 failed (retried on a later run), 1 waiting to be retried"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("failed before, waiting to be retried: tyreso-2012:intresseanmalan:2012-01-31:reminder:7 by email, retried from 20"), "{}", text(&o));
}

#[test]
fn sigterm_stops_the_watch_service_during_a_silent_smtp_server_within_timeout_s() {
    use crate::cli::styrlogg;
    let (port, accepted) = stalling_smtp(Stall::BeforeGreeting);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file_timeout(dir.path(), port, 3);
    let today = swedish_today(Timestamp::now());
    let days_ago = |n: i64| today.checked_sub(jiff::Span::new().days(n)).unwrap().to_string();
    let by = ["--by", "Eva Sekreterare", "--role", "sekreterare"];
    let o =
        styrlogg(
            &data,
            &[
                &[
                    "start",
                    "protokoll-laga-kraft",
                    "--instance",
                    "ks-1",
                    "--org",
                    "Tyresö kommun",
                    "--on",
                    &days_ago(30),
                ][..],
                &by,
            ]
            .concat(),
        );
    assert!(o.status.success(), "{}", text(&o));
    // A meeting ten days ago: the 7-day reminder of its minutes is due.
    let on = days_ago(10);
    let minutes = format!("protokoll=Kommunstyrelsen|{on}|§ 12");
    let record = ["record", "ks-1", "sammantrade", "--on", &on, "--fact", &minutes, "--fact", "beslut=Budget 2027"];
    let o = styrlogg(&data, &[&record[..], &by].concat());
    assert!(o.status.success(), "{}", text(&o));
    let mut child =
        crate::cli::command(&data, &["remind", "--watch", "--channel", "email", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let reached = accepted.recv_timeout(std::time::Duration::from_secs(30));
    // Let the client wait for the greeting that never comes.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let signalled = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if signalled.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    reached.expect("the service connected to the SMTP server");
    let status = status.expect("SIGTERM stops the service while a send hangs");
    assert!(status.success(), "stops cleanly: {status:?}");
    assert!(signalled.elapsed() < std::time::Duration::from_secs(10), "took {:?}", signalled.elapsed());
    // The send in progress was finished, and recorded as failed: retried
    // by the next service, not lost in doubt.
    let o = styrlogg(&data, &["status", "ks-1"]);
    let out = text(&o);
    assert!(out.contains("by email: FAILED attempt 1, will be retried"), "{out}");
    assert!(!out.contains("IN DOUBT"), "{out}");
}

#[test]
fn one_refused_recipient_does_not_keep_the_notice_from_the_others() {
    let (inbox, port) = Inbox::start_refusing(&["eva.sekreterare@tyreso.se"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    cli_start(&data, ID, "Tyresö kommun");
    let (o, _) = styrlogg_within(
        &data,
        &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()],
        std::time::Duration::from_secs(20),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 notice(s) sent, 0 failed"), "{}", text(&o));
    assert!(
        text(&o).contains("recipient refused for good, the others got the notice: ")
            && text(&o).contains("eva.sekreterare@tyreso.se: permanent error (550)"),
        "{}",
        text(&o)
    );
    let mails = inbox.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, ["registrator@tyreso.se", "projektledare@tyreso.se"]);
}

#[test]
fn every_recipient_refused_is_given_up_at_once() {
    let (inbox, port) =
        Inbox::start_refusing(&["eva.sekreterare@tyreso.se", "registrator@tyreso.se", "projektledare@tyreso.se"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    cli_start(&data, ID, "Tyresö kommun");
    let (o, _) = styrlogg_within(
        &data,
        &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("1 notice(s) sent, 0 failed (retried on a later run), 1 refused for good"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("gave up (refused for good, or every attempt failed): tyreso-2012:"), "{}", text(&o));
    assert!(inbox.received().is_empty());
}

#[tokio::test]
async fn a_refusal_for_good_is_given_up_at_once_and_never_retried() {
    let (t0, clock, store) = interest_recorded(date(2012, 8, 1)).await;
    let good = Recorder::new("good", clock.clone(), 0);
    let refusing = Recorder::refusing("refusing", clock.clone());
    let mut service = Service::new(Config::default(), vec![good.clone() as Arc<dyn Channel>, refusing.clone()]);
    let key = format!("{ID}:styrelsebeslut:2012-08-31:reminder:30");
    let r = pass_at(&mut service, &store, &clock, t0).await;
    assert_eq!((r.delivered, r.failed, r.refused), (1, 0, 1));
    assert_eq!(r.given_up, vec![format!("{key} by refusing")]);
    assert_eq!(r.not_sent(), 1);
    // An hour, then a day later: no second attempt, still given up.
    for later in [3600, 86_400] {
        let r = pass_at(&mut service, &store, &clock, t0.checked_add(SignedDuration::from_secs(later)).unwrap()).await;
        assert_eq!((r.delivered, r.failed, r.refused), (0, 0, 0));
        assert_eq!(refusing.calls(), 1, "never retried");
    }
    let mut fresh = Service::new(Config::default(), vec![refusing.clone() as Arc<dyn Channel>]);
    let r = pass_at(&mut fresh, &store, &clock, t0.checked_add(SignedDuration::from_hours(30)).unwrap()).await;
    assert_eq!(r.given_up, vec![format!("{key} by refusing")], "another service sees it given up");
    assert_eq!(refusing.calls(), 1);
    let inst = Instance::fold(&store.read_instance(&InstanceId::new(ID).unwrap(), 1).await.unwrap()).unwrap();
    let state = &inst.notices[&(key.clone(), "refusing".to_string())];
    assert_eq!(state.attempt, 1);
    assert!(workflows::reminders::given_up(state));
    assert_eq!(
        workflows::reminders::after_failure(&inst, &key, state, date(2012, 8, 2)),
        workflows::reminders::AfterFailure::GivenUp
    );
    let k = kinds(&store).await;
    assert_eq!(k.get("notice_failed"), Some(&1));
}

#[test]
fn missed_deadlines_too_old_to_escalate_are_counted_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    cli_start(&data, ID, "Tyresö kommun");
    let o = crate::cli::styrlogg(&data, &["remind", "--today", "2012-04-01"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 missed deadline(s) recorded, 1 missed too long ago to escalate"), "{}", text(&o));
    let o = crate::cli::styrlogg(&data, &["remind", "--today", "2012-04-01"]);
    assert!(text(&o).contains("0 missed deadline(s) recorded, 1 missed too long ago to escalate"), "{}", text(&o));
    // The board decision (31 August) is missed too: two deadlines.
    let o = crate::cli::styrlogg(&data, &["remind", "--today", "2012-10-02"]);
    assert!(text(&o).contains("1 missed deadline(s) recorded, 2 missed too long ago to escalate"), "{}", text(&o));
}

#[tokio::test]
async fn a_failure_superseded_by_a_nearer_reminder_is_not_retried() {
    use workflows::reminders::{after_failure, AfterFailure};
    let (t0, clock, store) = interest_recorded(date(2012, 8, 24)).await;
    let dead = Recorder::new("dead", clock.clone(), u32::MAX);
    let mut service = Service::new(Config::default(), vec![dead.clone() as Arc<dyn Channel>]);
    let seven = format!("{ID}:styrelsebeslut:2012-08-31:reminder:7");
    let one = format!("{ID}:styrelsebeslut:2012-08-31:reminder:1");
    let r = pass_at(&mut service, &store, &clock, t0).await;
    assert_eq!(r.failed, 1);
    let fold =
        || async { Instance::fold(&store.read_instance(&InstanceId::new(ID).unwrap(), 1).await.unwrap()).unwrap() };
    let inst = fold().await;
    let state = |inst: &Instance, key: &str| inst.notices[&(key.to_string(), "dead".to_string())].clone();
    assert_eq!(after_failure(&inst, &seven, &state(&inst, &seven), date(2012, 8, 24)), AfterFailure::Retried);

    // 30 August: the 1-day reminder replaces the 7-day one, which is never
    // tried again.
    let t1 = swedish_midnight(date(2012, 8, 30)).checked_add(SignedDuration::from_hours(8)).unwrap();
    let r = pass_at(&mut service, &store, &clock, t1).await;
    assert_eq!(r.failed, 1);
    let inst = fold().await;
    assert_eq!(state(&inst, &seven).attempt, 1, "the 7-day reminder is not retried");
    assert_eq!(
        after_failure(&inst, &seven, &state(&inst, &seven), date(2012, 8, 30)),
        AfterFailure::Superseded { by: Some("reminder:1".into()) }
    );
    assert_eq!(after_failure(&inst, &one, &state(&inst, &one), date(2012, 8, 30)), AfterFailure::Retried);
    // The step is recorded: nothing of it is due any more.
    record(
        &store,
        "styrelsebeslut",
        date(2012, 8, 30),
        "sekreterare",
        &[("organ", "Kommunstyrelsen"), ("protokoll", "Kommunstyrelsen|2012-08-30|§ 5"), ("diarienummer", "KS 2012/1")],
    )
    .await;
    let inst = fold().await;
    assert_eq!(
        after_failure(&inst, &one, &state(&inst, &one), date(2012, 8, 30)),
        AfterFailure::Superseded { by: None }
    );
}

/// Needs `workflows/src/status.rs` and `src/flow.rs` to use
/// `workflows::reminders::after_failure` (see the patch in the reminder
/// fixes' report).
#[test]
fn status_says_which_failed_notices_will_not_be_retried() {
    use crate::cli::styrlogg;
    // A port nobody listens on: every e-mail fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    let cfg = cfg.to_str().unwrap();
    cli_start(&data, ID, "Tyresö kommun");
    for day in ["2012-01-25", "2012-01-30"] {
        let o = styrlogg(&data, &["remind", "--today", day, "--config", cfg]);
        assert!(text(&o).contains("1 notice(s) sent, 1 failed"), "{day}: {}", text(&o));
    }
    let o = styrlogg(&data, &["status", ID, "--today", "2012-01-30"]);
    let out = text(&o);
    assert!(
        out.contains(
            "notice reminder:7 for intresseanmalan (deadline 2012-01-31) by email: FAILED attempt 1, not retried: superseded by reminder:1"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "notice reminder:1 for intresseanmalan (deadline 2012-01-31) by email: FAILED attempt 1, will be retried"
        ),
        "{out}"
    );

    // A refusal for good is given up at once.
    let (_inbox, port) =
        Inbox::start_refusing(&["eva.sekreterare@tyreso.se", "registrator@tyreso.se", "projektledare@tyreso.se"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    cli_start(&data, ID, "Tyresö kommun");
    let o = styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let o = styrlogg(&data, &["status", ID, "--today", "2012-01-25"]);
    assert!(text(&o).contains("by email: GAVE UP at once: refused for good: every recipient refused"), "{}", text(&o));
}

#[test]
fn an_organisation_nobody_is_configured_for_is_warned_about_once() {
    let (inbox, port) = Inbox::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    cli_start(&data, ID, "Tyresö kommun");
    cli_start(&data, "harryda-1", "Härryda kommun");
    cli_start(&data, "harryda-2", "Härryda kommun");
    let o = crate::cli::styrlogg(
        &data,
        &["remind", "--today", "2012-01-25", "--channel", "email", "--config", cfg.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 notice(s) sent, 0 failed"), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("no one is configured to receive it")).collect();
    assert_eq!(warnings.len(), 1, "once for the organisation, not per instance: {err}");
    assert!(
        warnings[0].contains("\"Härryda kommun\"")
            && warnings[0].contains("by email")
            && warnings[0].contains("registrator"),
        "{}",
        warnings[0]
    );
    assert_eq!(inbox.received().len(), 1, "Tyresö is configured and gets its reminder");
}

#[test]
fn warnings_carry_no_colour_codes_when_standard_error_is_not_a_terminal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let cfg = config_file(dir.path(), port);
    cli_start(&data, ID, "Tyresö kommun");
    let o = crate::cli::styrlogg(&data, &["remind", "--today", "2012-01-25", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("WARN"), "{err}");
    assert!(!err.contains('\u{1b}'), "no escape sequences in a pipe: {err:?}");
}
