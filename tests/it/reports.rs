//! Reports on a fixed history (a deviation, late steps, a correction, a
//! retroactive recording), rendered by the CLI in every format and compared
//! with committed snapshots; `--as-of` across a correction; and incremental
//! folding against folding from scratch on random histories.
//!
//! `STYRLOGG_BLESS=1 cargo nextest run reports` rewrites the snapshots.

use crate::cli::styrlogg;
use engine::{
    Actor, AppendRequest, CommandId, EmbeddedStore, EventStore, ExpectedVersion, InstanceId, ManualClock, OpenMode,
};
use jiff::civil::{date, Date};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use workflows::status::InstanceStatus;
use workflows::{builtin, Command, Definition, Instance};

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Writer {
    store: EmbeddedStore,
    clock: Arc<ManualClock>,
    n: u32,
}

impl Writer {
    async fn at(&mut self, recorded: &str, instance: &str, cmd: Command) -> engine::EventId {
        self.clock.set(format!("{recorded}T10:00:00Z").parse().unwrap());
        let id = InstanceId::new(instance).unwrap();
        let inst = Instance::fold(&self.store.read_instance(&id, 1).await.unwrap()).unwrap();
        let events = workflows::decide(&inst, cmd, date(2026, 11, 22)).unwrap_or_else(|r| panic!("{r}"));
        self.n += 1;
        let out = self
            .store
            .append(AppendRequest {
                instance: id,
                expected: ExpectedVersion::Exactly(inst.version),
                command_id: CommandId::new(format!("fixture-{}", self.n)).unwrap(),
                events,
            })
            .await
            .unwrap();
        self.store.read_all(out.first_position, 1).await.unwrap()[0].event.event_id
    }

    async fn start(&mut self, recorded: &str, instance: &str, workflow: &str, on: Date, role: &str) {
        self.clock.set(format!("{recorded}T09:00:00Z").parse().unwrap());
        let src = builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with(workflow)).unwrap().1;
        let def = Definition::parse(src).unwrap();
        let e = workflows::start(
            &def,
            "Härryda kommun",
            Some("KS 2012/123"),
            on,
            Actor::new("Eva Ek", role),
            date(2026, 11, 22),
        )
        .unwrap();
        self.n += 1;
        self.store
            .append(AppendRequest {
                instance: InstanceId::new(instance).unwrap(),
                expected: ExpectedVersion::NoStream,
                command_id: CommandId::new(format!("fixture-{}", self.n)).unwrap(),
                events: vec![e],
            })
            .await
            .unwrap();
    }
}

fn rec(step: &str, on: Date, role: &str, facts: &[(&str, &str)], deviation: Option<&str>) -> Command {
    Command::Record {
        step: step.into(),
        occurred_on: on,
        actor: Actor::new("Eva Ek", role),
        facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        deviation: deviation.map(String::from),
    }
}

/// Härryda kommun's path, partly invented for the test, with every flag.
async fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("store");
    let clock = Arc::new(ManualClock::new("2012-10-02T09:00:00Z".parse().unwrap()));
    let store = EmbeddedStore::open(&path, OpenMode::CreateIfMissing, clock.clone()).unwrap();
    let mut w = Writer { store, clock, n: 0 };
    let doc = |t: &str| format!("{t}|{SHA}");
    w.start("2012-10-02", "harryda-2012", "skl-styrsystem", date(2012, 10, 1), "sekreterare").await;
    w.at(
        "2012-10-02",
        "harryda-2012",
        rec(
            "intresseanmalan",
            date(2012, 10, 1),
            "registrator",
            &[("kontaktperson", "Kanslichefen|kontaktperson|official"), ("organisation", "Härryda kommun")],
            None,
        ),
    )
    .await;
    w.at(
        "2012-10-03",
        "harryda-2012",
        rec(
            "styrelsebeslut",
            date(2012, 9, 25),
            "sekreterare",
            &[
                ("organ", "Kommunstyrelsen"),
                ("protokoll", "Kommunstyrelsen|2012-09-25|§ 140"),
                ("diarienummer", "KS 2012/123"),
            ],
            Some("Kommunstyrelsen beslutade hösten 2012, efter intressesista dagen"),
        ),
    )
    .await;
    w.at("2012-10-05", "harryda-2012", rec("plats_bekraftad", date(2012, 10, 5), "skl", &[("besked", "plats")], None))
        .await;
    w.at(
        "2012-10-10",
        "harryda-2012",
        rec(
            "projektledare_utsedd",
            date(2012, 10, 8),
            "sekreterare",
            &[
                ("projektledare", "Kanslichefen|projektledare|official"),
                ("mandat", "Leda arbetet"),
                ("resurser", "Kansliets resurser"),
            ],
            None,
        ),
    )
    .await;
    w.at(
        "2012-10-10",
        "harryda-2012",
        rec(
            "styrgrupp_tillsatt",
            date(2012, 10, 8),
            "sekreterare",
            &[
                ("ledamot", "Ekonomiutskottets ordförande|ledamot|elected"),
                ("ledamot", "Kommundirektören|ledamot|official"),
            ],
            None,
        ),
    )
    .await;
    w.at(
        "2012-10-12",
        "harryda-2012",
        rec(
            "projektplan",
            date(2012, 10, 12),
            "projektledare",
            &[
                ("plan", &doc("Projektplan")),
                ("swot", &doc("SWOT")),
                ("nulagesanalys", &doc("Nuläge")),
                ("onskat_tillstand", &doc("Om tre år")),
            ],
            None,
        ),
    )
    .await;
    w.start("2012-11-01", "harryda-dialog-1", "medborgardialog", date(2012, 10, 30), "handlaggare").await;
    w.at(
        "2012-11-01",
        "harryda-dialog-1",
        rec("fraga_vackt", date(2012, 10, 30), "handlaggare", &[("fraga", "Framtidens skola i Mölnlycke")], None),
    )
    .await;
    w.at(
        "2012-11-05",
        "harryda-dialog-1",
        rec(
            "checklista",
            date(2012, 11, 5),
            "handlaggare",
            &[("fragan_paverkbar", "ja"), ("beslutsfattare_paverkbara", "ja")],
            None,
        ),
    )
    .await;
    w.at(
        "2012-11-08",
        "harryda-dialog-1",
        rec(
            "beslut_om_dialog",
            date(2012, 11, 8),
            "sekreterare",
            &[
                ("syfte", "Underlag för skolplanen"),
                ("trappsteg", "dialog"),
                ("malgrupper", "Elever och föräldrar"),
                ("metod", "Workshops"),
                ("beslutar", "Kommunstyrelsen i december"),
            ],
            None,
        ),
    )
    .await;
    // Recorded after the fact, in February.
    w.at(
        "2013-02-20",
        "harryda-dialog-1",
        rec(
            "dialog_genomford",
            date(2012, 11, 15),
            "handlaggare",
            &[("metod", "Tre workshops"), ("deltagare_antal", "84")],
            None,
        ),
    )
    .await;
    w.at(
        "2013-02-20",
        "harryda-dialog-1",
        rec(
            "resultat_sammanstallt",
            date(2012, 11, 30),
            "handlaggare",
            &[("sammanstallning", &doc("Sammanställning av workshops"))],
            None,
        ),
    )
    .await;
    let used = w
        .at(
            "2013-02-21",
            "harryda-dialog-1",
            rec(
                "resultat_anvant",
                date(2012, 12, 10),
                "sekreterare",
                &[
                    ("organ", "Kommunstyrelsen"),
                    ("protokoll", "Kommunstyrelsen|2012-12-10|§ 200"),
                    ("diarienummer", "KS 2012/311"),
                ],
                None,
            ),
        )
        .await;
    w.at(
        "2013-03-05",
        "harryda-dialog-1",
        Command::Correct {
            event: used,
            on: date(2013, 3, 5),
            actor: Actor::new("Eva Ek", "sekreterare"),
            reason: "Fel paragraf i protokollshänvisningen".into(),
            new_date: None,
            facts: vec![("protokoll".into(), "Kommunstyrelsen|2012-12-10|§ 201".into())],
        },
    )
    .await;
    w.at(
        "2013-03-06",
        "harryda-dialog-1",
        rec(
            "aterkoppling",
            date(2013, 3, 6),
            "handlaggare",
            &[("hur", "Brev till deltagarna och kommunens webbplats")],
            None,
        ),
    )
    .await;
    w.store.close().unwrap();
    path
}

fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("STYRLOGG_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {}; run with STYRLOGG_BLESS=1", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{name} differs from its snapshot at line {}:\n  expected: {:?}\n  actual:   {:?}\n(run with STYRLOGG_BLESS=1 if the change is intended)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

fn run_ok(store: &Path, args: &[&str]) -> String {
    let out = styrlogg(store, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let s = fixture(dir.path()).await;
    let org = "Härryda kommun";
    let today = ["--today", "2013-03-10"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("audit.txt", vec!["audit", "--org", org]),
        ("audit.csv", vec!["audit", "harryda-dialog-1", "--format", "csv"]),
        ("audit-en.md", vec!["audit", "harryda-dialog-1", "--format", "md", "--lang", "en"]),
        ("deadlines.txt", [&["deadlines"][..], &today].concat()),
        ("deadlines.md", [&["deadlines", "--format", "md"][..], &today].concat()),
        ("deadlines.json", [&["deadlines", "--format", "json"][..], &today].concat()),
        ("compliance.txt", [&["report", "compliance", "--instance", "harryda-2012"][..], &today].concat()),
        (
            "compliance.json",
            [&["report", "compliance", "--instance", "harryda-2012", "--format", "json"][..], &today].concat(),
        ),
        (
            "compliance.csv",
            [&["report", "compliance", "--instance", "harryda-2012", "--format", "csv"][..], &today].concat(),
        ),
        ("dialogues.md", vec!["report", "dialogues", "--org", org, "--format", "md"]),
        ("dialogues.json", vec!["report", "dialogues", "--format", "json"]),
        ("dialogues-case.md", vec!["report", "dialogues", "--template", "case", "--format", "md"]),
        ("annual-2012.md", vec!["report", "annual", "--org", org, "--year", "2012", "--format", "md"]),
        ("annual-2012.html", vec!["report", "annual", "--org", org, "--year", "2012", "--format", "html"]),
        ("annual-2012-en.txt", vec!["report", "annual", "--org", org, "--year", "2012", "--lang", "en"]),
        (
            "annual-2012-as-of-2013-01-31.md",
            vec!["report", "annual", "--org", org, "--year", "2012", "--as-of", "2013-01-31", "--format", "md"],
        ),
    ];
    for (name, args) in cases {
        snapshot(name, &run_ok(&s, &args));
    }
    // The feed carries a creation stamp; everything else is fixed.
    let ics = run_ok(&s, &[&["deadlines", "--format", "ics"][..], &today].concat());
    let stable: String = ics.lines().filter(|l| !l.starts_with("DTSTAMP:")).map(|l| format!("{l}\n")).collect();
    assert!(ics.contains("BEGIN:VCALENDAR") && ics.contains("DTSTART;VALUE=DATE:"), "{ics}");
    snapshot("deadlines.ics", &stable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_shows_what_was_known_then() {
    let dir = tempfile::tempdir().unwrap();
    let s = fixture(dir.path()).await;
    let annual = |as_of: Option<&str>| {
        let mut args = vec!["report", "annual", "--org", "Härryda kommun", "--year", "2012", "--format", "json"];
        if let Some(d) = as_of {
            args.extend(["--as-of", d]);
        }
        serde_json::from_str::<serde_json::Value>(&run_ok(&s, &args)).unwrap()
    };
    let end_of_year = annual(Some("2012-12-31"));
    assert_eq!(end_of_year["dialogues_held"], 0, "the November dialogue was not recorded until February");
    let before_fix = annual(Some("2013-03-01"));
    assert_eq!(before_fix["dialogues_held"], 1);
    let now = annual(None);
    let used = |v: &serde_json::Value| {
        v["items"].as_array().unwrap().iter().find(|i| i["step"] == "resultat_anvant").unwrap()["details"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(used(&before_fix).contains("§ 200"), "{}", used(&before_fix));
    assert!(used(&now).contains("§ 201"), "{}", used(&now));
    assert_eq!(
        now["items"].as_array().unwrap().iter().find(|i| i["step"] == "resultat_anvant").unwrap()["corrected"],
        true
    );
    assert!(
        end_of_year["head_position"].as_u64().unwrap() < before_fix["head_position"].as_u64().unwrap()
            && before_fix["head_position"].as_u64().unwrap() < now["head_position"].as_u64().unwrap()
    );
    // The reported head can be checked against the log.
    let head = run_ok(&s, &["head"]);
    assert!(head.contains(now["head_hash"].as_str().unwrap()), "{head}");
    // Unknown things are refused clearly.
    let out = styrlogg(&s, &["report", "annual", "--org", "Nacka kommun", "--year", "2012"]);
    assert_eq!(out.status.code(), Some(1));
    let out = styrlogg(&s, &["report", "compliance", "--instance", "harryda-2012", "--format", "ics"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A value of the right type for a fact spec.
fn value(ty: &workflows::definition::FactType, rng: &mut fastrand::Rng) -> String {
    use workflows::definition::FactType as T;
    match ty {
        T::Date => format!("2013-0{}-1{}", rng.u8(1..10), rng.u8(0..10)),
        T::Person => format!("P{}|roll|{}", rng.u8(..), if rng.bool() { "elected" } else { "official" }),
        T::Amount => rng.u32(..100_000).to_string(),
        T::CaseNumber => format!("KS {}", rng.u16(..)),
        T::Minutes => format!("KS|2013-01-0{}|§ {}", rng.u8(1..10), rng.u8(..)),
        T::Document => format!("Dokument|{SHA}"),
        T::Text => "text".into(),
        T::Choice(options) => options[rng.usize(..options.len())].clone(),
        T::Email => format!("P{}|p{}@kommun.se", rng.u8(..), rng.u8(..)),
        T::Phone => format!("08-{} {}", rng.u16(100..1000), rng.u16(1000..10000)),
    }
}

#[test]
fn folding_incrementally_equals_folding_from_scratch() {
    let mut rng = fastrand::Rng::with_seed(4);
    for (name, src) in builtin::DEFINITIONS {
        for round in 0..8 {
            let def = Definition::parse(src).unwrap();
            let role = def.roles[0].id.clone();
            let start =
                workflows::start(&def, "Org", None, date(2012, 12, 1), Actor::new("A", &role), date(2026, 1, 1))
                    .unwrap();
            let mut events = Vec::new();
            let mut prev = engine::Hash::default();
            let mut push = |e: engine::NewEvent, events: &mut Vec<engine::RecordedEvent>| {
                let seq = events.len() as u64 + 1;
                let command = CommandId::new(format!("r{seq}")).unwrap();
                let body = engine::EventBody {
                    event_id: engine::EventId::derive(&command, 0),
                    instance: InstanceId::new("i").unwrap(),
                    sequence: seq,
                    position: seq,
                    occurred_on: e.occurred_on,
                    recorded_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                    actor: e.actor,
                    command_id: command,
                    payload: e.payload,
                    prev_hash: prev,
                };
                let sealed = engine::codec::seal(body).unwrap().0;
                prev = sealed.hash;
                events.push(sealed);
            };
            push(start, &mut events);
            let mut incremental = Instance::fold(&events).unwrap();
            let mut accepted = 0;
            for _ in 0..60 {
                let step = &def.steps[rng.usize(..def.steps.len())];
                let on = date(2012, 12, 1).checked_add(jiff::Span::new().days(rng.i64(0..900))).unwrap();
                let actor = Actor::new("B", &step.recorded_by[rng.usize(..step.recorded_by.len())]);
                let cmd = match rng.u8(..10) {
                    0 if !incremental.occurrences.is_empty() => Command::Correct {
                        event: incremental.occurrences[rng.usize(..incremental.occurrences.len())].event_id,
                        on: date(2025, 1, 1),
                        actor,
                        reason: "rättelse".into(),
                        new_date: Some(on),
                        facts: vec![],
                    },
                    1 => Command::ChangeDeadline {
                        step: step.id.clone(),
                        on: date(2025, 1, 1),
                        actor: Actor::new("B", step.deviation_by.first().unwrap_or(&step.recorded_by[0])),
                        change: engine::DeadlineChange::Extended { to: on },
                        reason: "anstånd".into(),
                    },
                    _ => Command::Record {
                        step: step.id.clone(),
                        occurred_on: on,
                        actor,
                        facts: {
                            let mut facts = Vec::new();
                            for f in step.facts.iter() {
                                if f.required || rng.bool() {
                                    facts.push((f.name.clone(), value(&f.ty, &mut rng)));
                                }
                            }
                            facts
                        },
                        deviation: rng.bool().then(|| "avvikelse".to_string()),
                    },
                };
                let Ok(new) = workflows::decide(&incremental, cmd, date(2026, 1, 1)) else { continue };
                accepted += 1;
                for e in new {
                    push(e, &mut events);
                    incremental.apply(events.last().unwrap());
                }
                let scratch = Instance::fold(&events).unwrap();
                for today in [date(2013, 6, 1), date(2015, 1, 1)] {
                    assert_eq!(
                        InstanceStatus::of(&incremental, today),
                        InstanceStatus::of(&scratch, today),
                        "{name} round {round}"
                    );
                }
                assert_eq!(incremental.occurrences, scratch.occurrences);
            }
            assert!(accepted > 5, "{name} round {round}: the random history records something ({accepted})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_answer_like_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let s = fixture(dir.path()).await;
    let compliance =
        ["report", "compliance", "--instance", "harryda-2012", "--format", "json", "--today", "2013-03-10"];
    let first = run_ok(&s, &compliance);
    let checkpoint = s.join("projections/checkpoint.bin");
    assert!(checkpoint.exists(), "the first report leaves a checkpoint");
    let status = ["status", "--format", "json", "--today", "2013-03-10"];
    let status_first = run_ok(&s, &status);
    let status_checkpoint = s.join("projections/status.bin");
    assert!(status_checkpoint.exists(), "status leaves its own checkpoint");
    assert!(
        std::fs::metadata(&status_checkpoint).unwrap().len() < std::fs::metadata(&checkpoint).unwrap().len(),
        "the status checkpoint leaves the facts out"
    );
    let meeting = [
        "record",
        "harryda-2012",
        "natverkstraff",
        "--on",
        "2013-03-08",
        "--fact",
        "traff=Nätverksträff 4",
        "--fact",
        "deltagare=Kanslichefen|projektledare|official",
        "--by",
        "Kanslichefen",
        "--role",
        "projektledare",
    ];
    run_ok(&s, &meeting);
    let incremental = run_ok(&s, &compliance);
    assert_ne!(first, incremental, "the new step shows");
    let status_incremental = run_ok(&s, &status);
    assert_ne!(status_first, status_incremental, "the new step shows in status");
    let rebuilt = run_ok(&s, &["rebuild"]);
    assert!(rebuilt.contains("rebuilt from 17 events: 2 instances"), "{rebuilt}");
    assert_eq!(run_ok(&s, &compliance), incremental, "checkpoint plus new events equals a rebuild");
    assert_eq!(run_ok(&s, &status), status_incremental, "status checkpoint plus new events equals a rebuild");
    std::fs::remove_file(&status_checkpoint).unwrap();
    assert_eq!(run_ok(&s, &status), status_incremental, "status without a checkpoint equals status with one");

    // The status checkpoint has no facts: a report that shows facts never
    // starts from it.
    let full = std::fs::read(&checkpoint).unwrap();
    std::fs::copy(&status_checkpoint, &checkpoint).unwrap();
    let out = styrlogg(&s, &compliance);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), incremental);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring the projection checkpoint"));
    std::fs::write(&checkpoint, full).unwrap();

    // A damaged checkpoint, or one from another log, is ignored, not trusted.
    std::fs::write(&checkpoint, b"\x01garbage").unwrap();
    let out = styrlogg(&s, &compliance);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), incremental);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring the projection checkpoint"));
    let other = dir.path().join("other");
    run_ok(&other, &["demo"]);
    run_ok(&other, &["deadlines"]);
    std::fs::copy(other.join("projections/checkpoint.bin"), &checkpoint).unwrap();
    let out = styrlogg(&s, &compliance);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), incremental);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match this log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_folds_steps_without_facts_like_the_full_fold() {
    // A view for `status` alone folds recorded steps from borrowed views
    // that skip their facts; every other event, and every other view, is
    // decoded in full. Both give the same instances but for the facts.
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path()).await;
    let store = EmbeddedStore::open(&path, OpenMode::MustExist, Arc::new(engine::SystemClock)).unwrap();
    for as_of in [None, Some(date(2012, 10, 2)), Some(date(2012, 12, 31)), Some(date(2013, 3, 1))] {
        let mut full = projections::LogView::folded_only(as_of);
        styrlogg::fold_log(&store, &mut full).await.unwrap();
        let mut status = projections::LogView::status_only(as_of);
        assert!(status.takes_steps_without_facts() && !full.takes_steps_without_facts());
        styrlogg::fold_log(&store, &mut status).await.unwrap();
        assert_eq!((status.head_position, status.head_hash), (full.head_position, full.head_hash), "{as_of:?}");
        assert_eq!(without_facts(&status), without_facts(&full), "{as_of:?}");
        let steps = full.instances.values().map(|v| v.instance.occurrences.len()).sum::<usize>();
        assert!(steps > 0, "{as_of:?}: the fixture has recorded steps by then");
        let facts = |v: &projections::LogView| {
            v.instances.values().flat_map(|v| &v.instance.occurrences).map(|o| o.facts.len()).sum::<usize>()
        };
        assert!(facts(&full) > facts(&status), "{as_of:?}: the status view leaves the steps' facts out");
    }
    store.close().unwrap();
}

/// Every instance of a view as text, its occurrences without their facts.
fn without_facts(view: &projections::LogView) -> Vec<String> {
    view.instances
        .values()
        .map(|v| {
            let mut i = v.instance.clone();
            i.occurrences.iter_mut().for_each(|o| o.facts.clear());
            format!("{i:?}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_folds_a_log_of_many_pages_like_the_full_fold() {
    // Longer than two read-ahead pages, with every kind of event the
    // status fold decodes in full between the steps it folds from views
    // (corrections, deadline changes, missed deadlines, notices, notes,
    // the log's own events), and `as_of` cuts that fall inside pages.
    use engine::{DeadlineChange, NewEvent, Payload};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new("2013-01-07T08:00:00Z".parse().unwrap()));
    let store = EmbeddedStore::open(dir.path(), OpenMode::CreateIfMissing, clock.clone()).unwrap();
    let def = builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("protokoll")).unwrap().1;
    let def = Definition::parse(def).unwrap();
    let actor = Actor::new("Eva Sekreterare", "sekreterare");
    let day = date(2013, 1, 7);
    let append = |instance: String, command: String, events: Vec<NewEvent>| {
        let store = store.clone();
        async move {
            let req = AppendRequest {
                instance: InstanceId::new(instance).unwrap(),
                expected: ExpectedVersion::Any,
                command_id: CommandId::new(command).unwrap(),
                events,
            };
            store.append(req).await.unwrap();
        }
    };
    let instances = 24;
    for i in 0..instances {
        let start = workflows::start(&def, "Kommun", None, day, actor.clone(), day).unwrap();
        append(format!("i{i}"), format!("start-{i}"), vec![start]).await;
    }
    let event = |payload: Payload| NewEvent { occurred_on: day, actor: actor.clone(), payload };
    let mut rng = fastrand::Rng::with_seed(9);
    for round in 0..420 {
        clock.advance(jiff::SignedDuration::from_hours(1));
        for i in 0..instances {
            let mut step = styrlogg::sample_event("styrelsebeslut");
            if let Payload::StepRecorded { deviation, late, .. } = &mut step.payload {
                *deviation = rng.bool().then(|| "Beslutet fattades av utskottet".to_string());
                *late = rng.bool().then_some(engine::Lateness { deadline: day, days_late: rng.u32(1..30) });
            }
            let mut events = vec![step];
            let extra = match rng.u8(..12) {
                0 => Some(Payload::StepCorrected {
                    corrects: engine::EventId::derive(&CommandId::new(format!("r{}-{i}", round / 2)).unwrap(), 0),
                    reason: "Fel datum".into(),
                    occurred_on: Some(date(2013, 2, 1)),
                    facts: vec![],
                }),
                1 => Some(Payload::DeadlineChanged {
                    step: "styrelsebeslut".into(),
                    change: DeadlineChange::Extended { to: date(2013, 6, 30) },
                    reason: "Anstånd".into(),
                }),
                2 => Some(Payload::DeadlineMissed { step: "laga_kraft".into(), deadline: day }),
                3 => Some(Payload::NoticeClaimed {
                    key: format!("i{i}:laga_kraft:{round}"),
                    step: "laga_kraft".into(),
                    deadline: day,
                    notice: "reminder:7".into(),
                    channel: "email".into(),
                    recipients: vec!["registrator@kommun.se".into()],
                    attempt: 1,
                }),
                4 => Some(Payload::NoticeDelivered {
                    key: format!("i{i}:laga_kraft:{}", round.max(1) - 1),
                    channel: "email".into(),
                    attempt: 1,
                }),
                5 => Some(Payload::NoteAdded { text: "Anteckning".into() }),
                _ => None,
            };
            events.extend(extra.map(event));
            append(format!("i{i}"), format!("r{round}-{i}"), events).await;
        }
        if round % 50 == 0 {
            let rotated = Payload::SigningKeyRotated {
                key_name: "kommun.se/styrlogg".into(),
                public_key: engine::PublicKey([round as u8; 32]),
                reason: "Nyckelbyte".into(),
            };
            append(engine::SYSTEM_INSTANCE.into(), format!("key-{round}"), vec![event(rotated)]).await;
        }
    }
    let head = store.head().await.unwrap().position;
    assert!(head > 2 * 8 * engine::limits::READ_PAGE_EVENTS as u64, "{head} events: more than two pages");
    let cuts = [None, Some(date(2013, 1, 8)), Some(date(2013, 1, 15)), Some(date(2013, 1, 22))];
    let mut heads = Vec::new();
    for as_of in cuts {
        let mut full = projections::LogView::folded_only(as_of);
        styrlogg::fold_log(&store, &mut full).await.unwrap();
        let mut status = projections::LogView::status_only(as_of);
        styrlogg::fold_log(&store, &mut status).await.unwrap();
        assert_eq!((status.head_position, status.head_hash), (full.head_position, full.head_hash), "{as_of:?}");
        assert_eq!(without_facts(&status), without_facts(&full), "{as_of:?}");
        for (a, b) in status.instances.values().zip(full.instances.values()) {
            assert_eq!(InstanceStatus::of(&a.instance, day), InstanceStatus::of(&b.instance, day));
        }
        heads.push(full.head_position);
    }
    assert_eq!(heads[0], head);
    assert!(heads[1] < heads[2] && heads[2] < heads[3] && heads[3] < head, "the cuts fall inside the log: {heads:?}");
    store.close().unwrap();
}

/// A yearly deadline that reads the year from a fact needs that fact even
/// in `status`: the fold that leaves facts out keeps it for those steps,
/// and so does the status checkpoint, so `status` and the reports agree
/// on which year is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_keeps_the_year_a_yearly_recording_names() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new("2012-10-02T09:00:00Z".parse().unwrap()));
    let store = EmbeddedStore::open(&dir.path().join("s"), OpenMode::CreateIfMissing, clock.clone()).unwrap();
    let mut w = Writer { store, clock, n: 0 };
    let doc = |t: &str| format!("{t}|{SHA}");
    w.start("2012-10-02", "i", "skl-styrsystem", date(2012, 10, 1), "sekreterare").await;
    let org = [("kontaktperson", "K|kontaktperson|official"), ("organisation", "Härryda kommun")];
    w.at("2012-10-02", "i", rec("intresseanmalan", date(2012, 10, 1), "registrator", &org, None)).await;
    let board = [("organ", "KS"), ("protokoll", "KS|2012-10-02|§ 1"), ("diarienummer", "KS 2012/1")];
    w.at("2012-10-03", "i", rec("styrelsebeslut", date(2012, 10, 2), "sekreterare", &board, None)).await;
    // 2012's annual report skipped; 2013's recorded.
    let report = [("arsberattelse", doc("Årsberättelse 2013")), ("ar", "2013".to_string())];
    let report: Vec<(&str, &str)> = report.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.at("2014-03-20", "i", rec("uppfoljning_arsberattelse", date(2014, 3, 20), "projektledare", &report, None)).await;

    let next = |v: &projections::LogView| {
        let inst = &v.instances.values().next().unwrap().instance;
        inst.next_deadline(inst.definition.step("uppfoljning_arsberattelse").unwrap())
    };
    let mut full = projections::LogView::folded_only(None);
    styrlogg::fold_log(&w.store, &mut full).await.unwrap();
    let mut status = projections::LogView::status_only(None);
    styrlogg::fold_log(&w.store, &mut status).await.unwrap();
    assert_eq!(next(&full), Some(date(2013, 4, 30)), "2012's is still open");
    assert_eq!(next(&status), next(&full));
    let kind = projections::checkpoint::Kind::Status;
    let restored = projections::checkpoint::decode(&projections::checkpoint::encode(&status, kind), kind).unwrap();
    assert_eq!(next(&restored), next(&full));
    let facts = |v: &projections::LogView| {
        v.instances.values().flat_map(|v| &v.instance.occurrences).map(|o| o.facts.len()).sum::<usize>()
    };
    assert_eq!(facts(&status), 2, "only the annual report's facts are kept");
    assert_eq!(facts(&restored), 2);

    // 2012's, recorded late: the compliance report says which year each
    // recording counts for, and which deadline one was late for.
    let report = [("arsberattelse", doc("Årsberättelse 2012")), ("ar", "2012".to_string())];
    let report: Vec<(&str, &str)> = report.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.at("2014-05-05", "i", rec("uppfoljning_arsberattelse", date(2014, 5, 5), "projektledare", &report, None)).await;
    w.store.close().unwrap();
    let s = dir.path().join("s");
    let args = ["report", "compliance", "--instance", "i", "--today", "2014-06-01"];
    let c: serde_json::Value = serde_json::from_str(&run_ok(&s, &[&args[..], &["--format", "json"]].concat())).unwrap();
    let o = c["obligations"].as_array().unwrap().iter().find(|o| o["step"] == "uppfoljning_arsberattelse").unwrap();
    let evidence = o["evidence"].as_array().unwrap();
    let years: Vec<&serde_json::Value> = evidence.iter().map(|e| &e["for_year"]).collect();
    assert_eq!(years, [2012, 2013], "by the year they count for, not as recorded");
    assert_eq!(evidence[1]["late_for"], serde_json::Value::Null);
    assert_eq!(evidence[0]["late_for"], "2013-04-30");
    assert_eq!(evidence[0]["days_late"], 370);
    assert_eq!(o["verdict"], "met_late");
    assert_eq!(o["deadline"], "2015-04-30", "2014's is the one pending");
    let text = run_ok(&s, &args);
    let (y2012, y2013) = (
        text.find("2014-05-05, för 2012, 370 dagar efter tidsfristen 2013-04-30"),
        text.find("2014-03-20, för 2013, "),
    );
    assert!(y2012.is_some() && y2013.is_some() && y2012 < y2013, "{text}");
    // `status` says it too, on the command line and in the API.
    let status = run_ok(&s, &["status", "i", "--today", "2014-06-01"]);
    let (y2012, y2013) =
        (status.find("done 2014-05-05 for 2012, LATE by 370 day(s)"), status.find("done 2014-03-20 for 2013\n"));
    assert!(y2012.is_some() && y2013.is_some() && y2012 < y2013, "{status}");
    assert!(status.contains("done 2012-10-02, LATE by 32 day(s)\n"), "no year for other steps: {status}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&s, &["status", "i", "--today", "2014-06-01", "--format", "json"])).unwrap();
    let step = json["steps"].as_array().unwrap().iter().find(|s| s["id"] == "uppfoljning_arsberattelse").unwrap();
    let years: Vec<&serde_json::Value> = step["done"].as_array().unwrap().iter().map(|d| &d["for_year"]).collect();
    assert_eq!(years, [2012, 2013]);
    // Steps without a yearly deadline name no year.
    let intresse = c["obligations"][0]["evidence"][0].clone();
    assert_eq!(intresse["for_year"], serde_json::Value::Null, "{intresse}");
}
