//! The real histories of the five source documents, as scenario files:
//! replayed through the binary (`styrlogg load`, the reports, `demo`) and
//! through the library (every deviation is one the rules demand), with the
//! key facts of each report asserted; and the scenario format's own
//! behaviour: errors with their lines, nothing written on a parse error,
//! stopping at a refused command, idempotent reloading, corrections and
//! deadline changes.

use crate::cli::styrlogg;
use engine::{codec, CommandId, EventBody, EventId, Hash, InstanceId, RecordedEvent};
use jiff::civil::date;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use workflows::scenario::{Target, What};
use workflows::{builtin, Command, Definition, Instance, Rule, Scenario};

const TODAY: &str = "2015-10-22";

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/scenarios");
    builtin::SCENARIOS.iter().map(|(name, _)| dir.join(name)).collect()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(&o));
    out(&o)
}

fn json(store: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(styrlogg(store, args))).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A store with every built-in scenario loaded through `styrlogg load`.
fn loaded(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let files = scenario_files();
    let mut args = vec!["load"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let text = ok(styrlogg(&store, &args));
    assert_eq!(text.lines().count(), 5, "one summary line per file: {text}");
    assert!(
        text.contains(
            "000-jonkoping-landsting.toml: 4 command(s): 4 applied, 0 already present; 2 deviation(s), 0 late step(s)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "004-harryda.toml: 15 command(s): 15 applied, 0 already present; 12 deviation(s), 1 late step(s)"
        ),
        "{text}"
    );
    store
}

fn obligation<'a>(c: &'a Value, step: &str) -> &'a Value {
    c["obligations"].as_array().unwrap().iter().find(|o| o["step"] == step).unwrap_or_else(|| panic!("no {step}"))
}

#[track_caller]
fn verdict(c: &Value, step: &str, expected: &str) {
    assert_eq!(obligation(c, step)["verdict"], expected, "{step}: {}", obligation(c, step));
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

#[test]
fn the_built_in_scenarios_are_the_files_in_workflows_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/scenarios");
    let mut on_disk: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    on_disk.sort();
    let mut embedded: Vec<String> = builtin::SCENARIOS.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    for (name, text) in builtin::SCENARIOS {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), *text, "{name} is embedded as it is on disk");
        let s = Scenario::parse(text).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        assert!(s.source.starts_with(&name[..3]), "{name} names its source document: {}", s.source);
    }
}

#[test]
fn jonkoping_the_2011_minutes_and_the_conditions_that_follow() {
    let dir = tempfile::tempdir().unwrap();
    let s = loaded(dir.path());
    let c =
        json(&s, &["report", "compliance", "--instance", "ljl-2012-styrsystem", "--format", "json", "--today", TODAY]);
    assert_eq!(c["organisation"], "Landstinget i Jönköpings län");
    verdict(&c, "intresseanmalan", "met_with_deviation");
    verdict(&c, "beredning", "met_with_deviation");
    let prepared = obligation(&c, "beredning")["evidence"].as_array().unwrap();
    assert_eq!(prepared.len(), 2, "§ 30 and § 100");
    assert_eq!(prepared[0]["occurred_on"], "2011-06-26", "the minutes' date is kept as it stands");
    assert_eq!(texts(&prepared[0]["minutes"]), ["Planeringsgruppen Allmänpolitiska utskottet 2011-06-26 § 30"]);
    assert!(prepared[0]["deviation"].as_str().unwrap().contains("daterat 2011-06-26"));
    assert_eq!(prepared[1]["occurred_on"], "2012-08-14");
    assert_eq!(texts(&prepared[1]["minutes"]), ["Planeringsdelegationen 2012-08-14 § 100"]);
    assert_eq!(texts(&prepared[1]["case_numbers"]), ["LJ2012/896"]);
    assert!(prepared[1]["deviation"].is_null());
    // The board's decision of 21 August is not in the sources: not met, and overdue after August.
    verdict(&c, "styrelsebeslut", "overdue");
    assert_eq!(obligation(&c, "styrelsebeslut")["deadline"], "2012-08-31");
    // "Före 15 oktober" is the 14th.
    verdict(&c, "projektplan", "overdue");
    assert_eq!(obligation(&c, "projektplan")["deadline"], "2012-10-14");
    verdict(&c, "uppfoljning_budget", "overdue");
    assert_eq!(obligation(&c, "uppfoljning_budget")["deadline"], "2012-11-30");
    assert_eq!(obligation(&c, "uppfoljning_arsberattelse")["deadline"], "2013-04-30");
    verdict(&c, "plats_bekraftad", "not_met");

    // As it stood the day after the board's deadline.
    let status = json(&s, &["status", "ljl-2012-styrsystem", "--format", "json", "--today", "2012-09-01"]);
    let step = |id: &str| status["steps"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(step("styrelsebeslut")["overdue"], true);
    assert_eq!(step("projektplan")["overdue"], false);
    assert_eq!(step("projektplan")["deadline"], "2012-10-14");
    assert_eq!(status["case_number"], "LJ2012/896");
    let due = json(&s, &["deadlines", "--format", "json", "--today", "2012-10-01"]);
    let plan = due["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["instance"] == "ljl-2012-styrsystem" && e["step"] == "projektplan")
        .unwrap();
    assert_eq!(plan["last_day"], "2012-10-14");
    assert_eq!(plan["days_left"], 13);
    assert_eq!(plan["moved_to_weekday"], false, "SKL's dates are programme dates");

    // The audit trail carries the people and paragraphs as the minutes state them.
    let audit = json(&s, &["audit", "ljl-2012-styrsystem", "--format", "json"]);
    let text = audit.to_string();
    for needle in [
        "Tommy Bernevång Forsberg",
        "Lena Bohman Hjelmstedt",
        "Anneli Andersson",
        "Håkan Jansson",
        "Lena Sandqvist",
        "Siw Kullbergh",
        "§ 100",
        "LJ2012/896",
    ] {
        assert!(text.contains(needle), "the audit trail names {needle}");
    }
}

#[test]
fn harryda_joins_late_and_its_three_sector_dialogues_feed_board_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = loaded(dir.path());
    let c = json(&s, &["report", "compliance", "--instance", "harryda-2012", "--format", "json", "--today", TODAY]);
    // No interest registration in the source, and the deadline passed long before autumn 2012.
    verdict(&c, "intresseanmalan", "overdue");
    assert_eq!(obligation(&c, "intresseanmalan")["deadline"], "2012-01-31");
    verdict(&c, "styrelsebeslut", "met_with_deviation");
    let board = &obligation(&c, "styrelsebeslut")["evidence"][0];
    assert_eq!(board["days_late"], 1, "the board decided in autumn 2012, after the end of August");
    assert!(board["deviation"].as_str().unwrap().contains("efter intresseanmälans sista dag (2012-01-31)"));
    verdict(&c, "styrgrupp_tillsatt", "met");
    verdict(&c, "projektledare_utsedd", "met_with_deviation");
    verdict(&c, "projektplan", "met_with_deviation");
    verdict(&c, "natverkstraff", "not_met");
    verdict(&c, "uppfoljning_budget", "overdue");
    verdict(&c, "projektslut", "overdue");

    let register = json(&s, &["report", "dialogues", "--org", "Härryda kommun", "--format", "json"]);
    let dialogues = register["dialogues"].as_array().unwrap();
    let sectors: Vec<&str> = dialogues.iter().map(|d| d["sector"].as_str().unwrap()).collect();
    assert_eq!(
        sectors,
        ["Sektorn för utbildning och kultur", "Sektorn för samhällsbyggnad", "Sektorn för socialtjänst"]
    );
    for d in dialogues {
        assert_eq!(d["instance"], "harryda-styrning");
        assert_eq!(
            texts(&d["decisions"]),
            ["Resultatet underlag för beslut i kommunstyrelsen"],
            "one board decision per sector's dialogue: {d}"
        );
        assert!(d["deviations"][0].as_str().unwrap().contains(&d["sector"].as_str().unwrap().to_lowercase()));
    }

    let y2012 = json(&s, &["report", "annual", "--org", "Härryda kommun", "--year", "2012", "--format", "json"]);
    let steps: Vec<&str> = y2012["items"].as_array().unwrap().iter().map(|i| i["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["styrelsebeslut", "styrgrupp_tillsatt", "projektledare_utsedd", "projektplan"]);
    assert_eq!(y2012["due_next_year"][0]["last_day"], "2013-04-30");
    let y2013 = json(&s, &["report", "annual", "--org", "Härryda kommun", "--year", "2013", "--format", "json"]);
    assert_eq!(y2013["items"].as_array().unwrap().len(), 0, "the source dates nothing in 2013");
    let y2014 = json(&s, &["report", "annual", "--org", "Härryda kommun", "--year", "2014", "--format", "json"]);
    assert_eq!(y2014["dialogues_held"], 3);
    assert_eq!(y2014["decisions_informed"], 3);
}

#[test]
fn region_skane_two_tracks_and_thirteen_proposals_in_three_groups() {
    let dir = tempfile::tempdir().unwrap();
    let s = loaded(dir.path());
    let register = json(&s, &["report", "dialogues", "--org", "Region Skåne", "--format", "json"]);
    let dialogues = register["dialogues"].as_array().unwrap();
    let questions: Vec<&str> = dialogues.iter().map(|d| d["question"].as_str().unwrap()).collect();
    assert_eq!(questions, ["Framtidens psykiatri för vuxna", "En regional utvecklingsstrategi för Skåne"]);
    for d in dialogues {
        let evaluation = d["evaluation"].as_str().unwrap();
        assert!(evaluation.contains("tretton (13) förslag"), "{evaluation}");
        for group in [
            "1) Medborgardialogens roll i den politiska styrningen",
            "2) Kommunikation och återkoppling",
            "3) Samarbete eller samhandling (flest förslag)",
        ] {
            assert!(evaluation.contains(group), "{group}");
        }
        assert_eq!(d["dates"].as_array().unwrap().len(), 1);
        assert!(d["decisions"].as_array().unwrap().is_empty(), "the source names no decision");
    }
    assert!(dialogues[0]["deviations"][0].as_str().unwrap().starts_with("Retroaktivt spår"));
    assert!(dialogues[1]["deviations"][0].as_str().unwrap().starts_with("Proaktivt spår"));
}

#[test]
fn tyreso_and_alvsjo_record_what_their_documents_show_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let s = loaded(dir.path());
    let c = json(&s, &["report", "compliance", "--instance", "tyreso-2012", "--format", "json", "--today", TODAY]);
    verdict(&c, "intresseanmalan", "met");
    verdict(&c, "styrelsebeslut", "overdue");
    let log = ok(styrlogg(&s, &["log", "--instance", "tyreso-2012"]));
    assert!(log.contains("kontaktperson: Anita Brynje, kontaktperson (övrig)"), "{log}");
    assert!(log.contains("kontaktperson: Karin Hassler, kontaktperson (övrig)"), "{log}");
    assert!(!log.contains("070-"), "no phone numbers: {log}");
    // The one e-mail address the source shows is personal data: sealed in the
    // log, opened with the key store.
    assert!(log.contains("epost: Karin Hassler|karin.hassler@tyreso.se"), "{log}");
    let raw = ok(styrlogg(&s, &["log", "--instance", "tyreso-2012", "--format", "json"]));
    assert!(!raw.contains("@tyreso.se") && !raw.contains("Anita"), "sealed in the log: {raw}");

    // Älvsjö: the administration's proposal, not (yet) the committee's decision.
    let c = json(
        &s,
        &["report", "compliance", "--instance", "alvsjo-2015-masterclass", "--format", "json", "--today", TODAY],
    );
    verdict(&c, "beredning", "met");
    verdict(&c, "ansokan_beslutad", "not_met");
    verdict(&c, "styrgrupp_tillsatt", "not_met");
    verdict(&c, "avgift", "not_yet_due");
    assert_eq!(obligation(&c, "avgift")["deadline"], "2016-12-31");
    assert_eq!(obligation(&c, "projektslut")["deadline"], "2017-12-31");
    let log = ok(styrlogg(&s, &["log", "--instance", "alvsjo-2015-masterclass"]));
    for needle in [
        "kostnad: 16000,00 kr",
        "Per Kjellander, stadsdelsdirektör (tjänsteperson)",
        "8 000 kronor per år (ej för 2015)",
        "presidium",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    let y = json(&s, &["report", "annual", "--org", "Älvsjö stadsdelsnämnd", "--year", "2015", "--format", "json"]);
    assert_eq!(y["fees_ore"], 0, "a proposed cost is not a paid fee");
}

#[test]
fn every_flag_is_one_the_rules_demand_and_loading_again_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = loaded(dir.path());
    let audit = json(&s, &["audit", "--format", "json"]);
    let entries = audit["entries"].as_array().unwrap();
    let deviations = entries.iter().filter(|e| !e["deviation"].is_null()).count();
    let late: Vec<&Value> = entries.iter().filter(|e| !e["days_late"].is_null()).collect();
    assert_eq!(deviations, 18);
    assert_eq!(late.len(), 1);
    assert_eq!(
        (late[0]["instance"].as_str(), late[0]["step"].as_str()),
        (Some("harryda-2012"), Some("styrelsebeslut"))
    );
    assert!(ok(styrlogg(&s, &["verify"])).starts_with("OK: 31 events in 7 instances"));

    let head = ok(styrlogg(&s, &["head"]));
    let export = styrlogg(&s, &["export"]).stdout;
    let files = scenario_files();
    let mut args = vec!["load"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let again = ok(styrlogg(&s, &args));
    assert!(again.contains("15 command(s): 0 applied, 15 already present"), "{again}");
    assert_eq!(again.matches(" 0 applied").count(), 5, "{again}");
    assert_eq!(ok(styrlogg(&s, &["head"])), head);
    assert_eq!(styrlogg(&s, &["export"]).stdout, export, "nothing new written");
}

/// Replays a scenario through the pure decisions, one instance at a time;
/// for each step recorded with a deviation, decides it again without one
/// and returns the rule that refuses it: (instance, step, on, rule).
fn rules_behind_deviations(text: &str) -> Vec<(String, String, String, Option<Rule>)> {
    let scenario = Scenario::parse(text).unwrap();
    let mut logs: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    let mut found = Vec::new();
    let push = |log: &mut Vec<RecordedEvent>, e: engine::NewEvent| {
        let seq = log.len() as u64 + 1;
        let command = CommandId::new(format!("s{seq}")).unwrap();
        let body = EventBody {
            event_id: EventId::derive(&command, 0),
            instance: InstanceId::new("scenario").unwrap(),
            sequence: seq,
            position: seq,
            occurred_on: e.occurred_on,
            recorded_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            actor: e.actor,
            command_id: command,
            payload: e.payload,
            prev_hash: log.last().map_or(Hash::default(), |p| p.hash),
        };
        log.push(codec::seal(body).unwrap().0);
    };
    for c in &scenario.commands {
        let actor = engine::Actor::new(&c.by, &c.role);
        match &c.what {
            What::Start { workflow, instance, org, dnr } => {
                let src = builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with(workflow.as_str())).unwrap().1;
                let def = Definition::parse(src).unwrap();
                let e = workflows::start(&def, org, dnr.as_deref(), c.on, actor, c.recorded_on).unwrap();
                push(logs.entry(instance.clone()).or_default(), e);
            }
            What::Record { instance, step, facts, deviation, .. } => {
                let log = logs.get_mut(instance).unwrap();
                let inst = Instance::fold(log).unwrap();
                let cmd = |deviation: Option<String>| Command::Record {
                    step: step.clone(),
                    occurred_on: c.on,
                    actor: actor.clone(),
                    facts: facts.clone(),
                    deviation,
                };
                if deviation.is_some() {
                    let rule = workflows::decide(&inst, cmd(None), c.recorded_on).err().map(|r| r.rule);
                    found.push((instance.clone(), step.clone(), c.on.to_string(), rule));
                }
                for e in workflows::decide(&inst, cmd(deviation.clone()), c.recorded_on).unwrap() {
                    push(log, e);
                }
            }
            What::Correct { .. } | What::Deadline { .. } => unreachable!("the real histories have none"),
        }
    }
    found
}

#[test]
fn the_rules_catch_what_the_sources_get_wrong_or_leave_out() {
    let all: Vec<(String, String, String, Option<Rule>)> =
        builtin::SCENARIOS.iter().flat_map(|(_, text)| rules_behind_deviations(text)).collect();
    assert_eq!(all.len(), 18);
    for (instance, step, on, rule) in &all {
        assert!(
            rule.is_some_and(|r| r.deviation_may_override()),
            "{instance} {step} {on}: a deviation nothing demands"
        );
    }
    let rule_of = |instance: &str, step: &str| {
        all.iter().find(|(i, s, ..)| i == instance && s == step).and_then(|x| x.3).unwrap()
    };
    // The 2011 date of the minutes comes before the spring 2012 application.
    assert_eq!(rule_of("ljl-2012-styrsystem", "beredning"), Rule::BeforePrerequisite);
    assert_eq!(rule_of("ljl-2012-styrsystem", "intresseanmalan"), Rule::MissingFact);
    // Härryda's board joined with no interest registration on record.
    assert_eq!(rule_of("harryda-2012", "styrelsebeslut"), Rule::MissingPrerequisite);
    assert_eq!(rule_of("harryda-2012", "projektplan"), Rule::MissingFact);
    assert_eq!(rule_of("harryda-styrning", "dialog"), Rule::MissingPrerequisite);
    assert_eq!(rule_of("skane-psykiatri", "dialog_genomford"), Rule::MissingPrerequisite);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "title = \"Test\"\nsource = \"test\"\nby = \"Eva Ek\"\n";

#[test]
fn a_malformed_scenario_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let good = write(
        dir.path(),
        "good.toml",
        &format!(
            "{HEADER}\n[[command]]\nstart = \"skl-styrsystem-2012-2014\"\ninstance = \"t\"\norg = \"Tyresö kommun\"\non = 2012-01-20\nrole = \"registrator\"\n"
        ),
    );
    let bad = write(
        dir.path(),
        "bad.toml",
        &format!(
            "{HEADER}\n[[command]]\nrecord = \"intresseanmalan\"\ninstance = \"t\"\non = \"2012-02-30\"\nrole = \"registrator\"\n\n[[command]]\nrecord = \"styrelsebeslut\"\ninstance = \"t\"\non = 2012-08-20\nrecorded_on = 2012-08-01\n\n[[command]]\nstart = \"x\"\nrecord = \"y\"\n"
        ),
    );
    let o = styrlogg(&store, &["load", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    let line =
        |needle: &str| std::fs::read_to_string(&bad).unwrap().lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(e.contains(&format!("bad.toml:{}:", line("2012-02-30"))) && e.contains("not a real date"), "{e}");
    assert!(e.contains(&format!("bad.toml:{}:", line("styrelsebeslut"))) && e.contains("needs role"), "{e}");
    assert!(e.contains(&format!("bad.toml:{}:", line("recorded_on"))) && e.contains("before it happened"), "{e}");
    assert!(
        e.contains(&format!("bad.toml:{}:", line("record = \"y\""))) && e.contains("not both start and record"),
        "{e}"
    );
    assert!(e.contains("bad.toml: 4 problem(s); nothing was loaded"), "{e}");
    assert!(!store.exists(), "a parse error in any file writes nothing, not even the good file");

    // TOML that does not parse, and a key that does not exist.
    let broken =
        write(dir.path(), "broken.toml", &format!("{HEADER}\n[[command]]\nrecord = \"x\"\nfact = [\"a=b\"]\n"));
    let e = err(&styrlogg(&store, &["load", broken.to_str().unwrap()]));
    assert!(e.contains("broken.toml:7:") && e.contains("unknown field `fact`"), "{e}");
    // Keys and types are checked in every command, not only up to the first that is wrong.
    let several = write(
        dir.path(),
        "several.toml",
        &format!(
            "{HEADER}\n[[command]]\nrecord = \"x\"\nfact = [\"a=b\"]\n\n[[command]]\nrecord = \"y\"\nwaive = \"yes\"\n\n[[command]]\nrecord = 7\n"
        ),
    );
    let e = err(&styrlogg(&store, &["load", several.to_str().unwrap()]));
    let line =
        |needle: &str| std::fs::read_to_string(&several).unwrap().lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(e.contains(&format!("several.toml:{}:", line("fact ="))) && e.contains("unknown field `fact`"), "{e}");
    assert!(e.contains(&format!("several.toml:{}:", line("waive"))) && e.contains("expected a boolean"), "{e}");
    assert!(e.contains(&format!("several.toml:{}:", line("record = 7"))) && e.contains("expected a string"), "{e}");
    assert!(e.contains("several.toml: 3 problem(s); nothing was loaded"), "{e}");
    let header = write(dir.path(), "header.toml", "title = 1\nsource = \"s\"\n\n[[command]]\nrecord = 7\n");
    let e = err(&styrlogg(&store, &["load", header.to_str().unwrap()]));
    assert!(e.contains("header.toml:1:") && e.contains("header.toml:5:") && e.contains("2 problem(s)"), "{e}");
    let broken = write(dir.path(), "broken2.toml", "title = \"x\nsource = 1\n");
    let o = styrlogg(&store, &["load", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("broken2.toml:1:"), "{}", err(&o));
    assert!(!store.exists());

    // Recorded on a day still to come is refused before anything is written.
    let future = write(
        dir.path(),
        "future.toml",
        &format!("{HEADER}\n[[command]]\nstart = \"skl-styrsystem-2012-2014\"\ninstance = \"t\"\norg = \"O\"\non = 2012-01-20\nrecorded_on = 2012-10-01\nrole = \"registrator\"\n"),
    );
    let o = styrlogg(&store, &["load", future.to_str().unwrap(), "--today", "2012-09-01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("future.toml:6: command 1 (start skl-styrsystem-2012-2014 as t): recorded_on 2012-10-01 is after today (2012-09-01)"), "{}", err(&o));
    assert!(!store.exists());

    // An instance nothing starts, or a step its workflow does not have, is
    // found before anything is written, in the log as in the files.
    let start = "[[command]]\nstart = \"skl-styrsystem-2012-2014\"\ninstance = \"t\"\norg = \"Tyresö kommun\"\non = 2012-01-20\nrole = \"registrator\"\n";
    let record = |instance: &str, step: &str| {
        format!(
            "[[command]]\nrecord = \"{step}\"\ninstance = \"{instance}\"\non = 2012-01-20\nrole = \"registrator\"\n"
        )
    };
    let unstarted = write(dir.path(), "u.toml", &format!("{HEADER}\n{start}\n{}", record("t2", "intresseanmalan")));
    let o = styrlogg(&store, &["load", unstarted.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("u.toml:13: command 2 (record intresseanmalan in t2): no instance t2: no command before it starts it, and the log has none; nothing was loaded"), "{}", err(&o));
    assert!(!store.exists(), "nothing was written, and no store made");
    let unknown = write(dir.path(), "k.toml", &format!("{HEADER}\n{start}\n{}", record("t", "kaffepaus")));
    let o = styrlogg(&store, &["load", unknown.to_str().unwrap()]);
    assert!(err(&o).contains("workflow skl-styrsystem-2012-2014 has no step \"kaffepaus\""), "{}", err(&o));
    assert!(!store.exists());
    let started = write(dir.path(), "s.toml", &format!("{HEADER}\n{start}"));
    ok(styrlogg(&store, &["load", started.to_str().unwrap()]));
    let later = write(
        dir.path(),
        "l.toml",
        &format!("{HEADER}\n{}\n{}", record("t", "intresseanmalan"), record("t", "kaffepaus")),
    );
    let o = styrlogg(&store, &["load", later.to_str().unwrap()]);
    assert!(
        err(&o).contains("l.toml:12: command 2 (record kaffepaus in t): workflow skl-styrsystem-2012-2014 has no step"),
        "{}",
        err(&o)
    );
    assert!(
        ok(styrlogg(&store, &["head"])).starts_with("position 1 "),
        "the instance in the log is checked too; nothing written"
    );
}

#[test]
fn loading_stops_at_a_refused_command_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let start = "[[command]]\nstart = \"skl-styrsystem-2012-2014\"\ninstance = \"t\"\norg = \"Tyresö kommun\"\non = 2012-01-20\nrole = \"registrator\"\n";
    let interest = "[[command]]\nrecord = \"intresseanmalan\"\ninstance = \"t\"\non = 2012-01-20\nrole = \"registrator\"\nfacts = { organisation = \"Tyresö kommun\", kontaktperson = [\"Anita Brynje|kontaktperson|other\", \"Karin Hassler|kontaktperson|other\"] }\n";
    let plan = "[[command]]\nrecord = \"projektplan\"\ninstance = \"t\"\non = 2012-10-01\nrole = \"projektledare\"\n";
    let file = write(dir.path(), "s.toml", &format!("{HEADER}\n{start}\n{interest}\n{plan}"));
    let o = styrlogg(&store, &["load", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    let line = std::fs::read_to_string(&file).unwrap().lines().position(|l| l.contains("projektplan")).unwrap() + 1;
    assert!(
        e.contains(&format!("s.toml:{line}: command 3 (record projektplan in t) refused: rejected by rule missing-prerequisite at step projektplan")),
        "{e}"
    );
    assert!(e.contains("the 2 command(s) before it are loaded and stay"), "{e}");
    // The store is new (a misspelt --data would make one too): said first.
    assert_eq!(e.lines().next(), Some(format!("made a new store at {}", store.display()).as_str()), "{e}");
    assert_eq!(e.lines().count(), 2, "the notice, and the error in one line: {e}");
    assert!(ok(styrlogg(&store, &["head"])).starts_with("position 2 "));

    // Fixed with a deviation, the file loads; what was there is recognised.
    let fixed = format!("{plan}deviation = \"Planen lämnades innan styrelsen hade beslutat\"\n");
    let file = write(dir.path(), "s.toml", &format!("{HEADER}\n{start}\n{interest}\n{fixed}"));
    let text = ok(styrlogg(&store, &["load", file.to_str().unwrap()]));
    assert!(text.contains("3 command(s): 1 applied, 2 already present; 1 deviation(s), 0 late step(s)"), "{text}");
}

#[test]
fn corrections_and_deadline_changes_in_a_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let text = format!(
        r#"{HEADER}
[[command]]
start = "skl-styrsystem-2012-2014"
instance = "t"
org = "Tyresö kommun"
on = 2012-01-20
role = "registrator"

[[command]]
record = "intresseanmalan"
instance = "t"
on = 2012-01-20
recorded_on = 2012-01-23
role = "registrator"
facts = ["organisation=Tyresö kommun", "kontaktperson=Anita Brynje|kontaktperson|other"]

[[command]]
record = "styrelsebeslut"
label = "board"
instance = "t"
on = 2012-09-04
role = "sekreterare"
facts = ["organ=Kommunstyrelsen", "protokoll=Kommunstyrelsen|2012-09-04|§ 7", "diarienummer=KS 2012/88"]
note = "Sent: fristen var 2012-08-31."

[[command]]
correct = "board"
on = 2012-09-10
role = "sekreterare"
reason = "Fel paragraf"
facts = ["protokoll=Kommunstyrelsen|2012-09-04|§ 8"]

[[command]]
deadline = "projektplan"
instance = "t"
extend_to = 2012-11-15
reason = "Anstånd från SKL"
on = 2012-09-10
role = "projektledare"

[[command]]
deadline = "uppfoljning_budget"
instance = "t"
waive = true
reason = "Budgeten för 2013 var redan antagen"
on = 2012-09-10
role = "projektledare"
"#
    );
    let file = write(dir.path(), "s.toml", &text);
    let first = ok(styrlogg(&store, &["load", file.to_str().unwrap()]));
    assert!(first.contains("6 command(s): 6 applied, 0 already present; 0 deviation(s), 1 late step(s)"), "{first}");
    let again = ok(styrlogg(&store, &["load", file.to_str().unwrap()]));
    assert!(again.contains("6 command(s): 0 applied, 6 already present; 0 deviation(s), 1 late step(s)"), "{again}");

    let audit = json(&store, &["audit", "t", "--format", "json"]);
    let entries = audit["entries"].as_array().unwrap();
    let board = entries.iter().find(|e| e["step"] == "styrelsebeslut" && e["corrects"].is_null()).unwrap();
    let fix = entries.iter().find(|e| !e["corrects"].is_null()).unwrap();
    assert_eq!(fix["corrects"], board["event_id"], "the correction points at the labelled step");
    assert_eq!(board["days_late"], 4);
    let status = json(&store, &["status", "t", "--format", "json", "--today", "2012-10-20"]);
    let step = |id: &str| status["steps"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(step("projektplan")["deadline"], "2012-11-15", "extended");
    // The 2012 deadline waived, and only that one: 2013's is pending.
    assert_eq!(step("uppfoljning_budget")["deadline"], "2013-11-30", "the next year's");
    assert_eq!(step("uppfoljning_budget")["waived_years"], serde_json::json!([2012]));
    let shown = ok(styrlogg(&store, &["status", "t", "--today", "2012-10-20"]));
    assert!(shown.contains("deadline for 2012 waived"), "{shown}");
    let log = ok(styrlogg(&store, &["log", "--instance", "t"]));
    assert!(log.contains("protokoll: Kommunstyrelsen 2012-09-04 § 8"), "{log}");

    // Parsing alone: labels point backwards, dates default to `on`.
    let s = Scenario::parse(&text).unwrap();
    assert_eq!(s.commands[1].recorded_on, date(2012, 1, 23));
    assert_eq!(s.commands[2].recorded_on, date(2012, 9, 4));
    assert!(matches!(&s.commands[3].what, What::Correct { target: Target::Label { command: 2, .. }, .. }));
    let backwards = text.replace("correct = \"board\"", "correct = \"bored\"");
    let problems = Scenario::parse(&backwards).unwrap_err();
    assert!(problems[0].message.contains("neither the label of an earlier record"), "{problems:?}");
}

#[test]
fn demo_loads_everything_shows_the_flags_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // With --data the store is kept.
    let text = ok(styrlogg(&dir.path().join("kept"), &["demo"]));
    assert!(text.contains("kept; running the demo again writes nothing new"), "{text}");
    for needle in [
        "Deviations and late steps (18), each with its reason",
        "- ljl-2012-styrsystem beredning (happened 2011-06-26): DEVIATION: Protokollet är daterat 2011-06-26",
        "- harryda-2012 styrelsebeslut (happened 2012-09-01): LATE 1 day(s) after the deadline 2012-08-31; DEVIATION: Kommunstyrelsen beslutade under hösten 2012",
        "Reports are made as of 2015-10-22",
        "Efterlevnad: Härryda kommun (harryda-2012)",
        "Dialogregister",
        "Årsberättelse 2012: medborgardialog i styrningen",
        "2016-12-31  436 dagar kvar  alvsjo-2015-masterclass",
        "OK: 31 events in 7 instances, chain intact",
    ] {
        assert!(text.contains(needle), "the demo shows {needle:?}:\n{text}");
    }

    let temp = std::process::Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .args(["demo", "--today", "2013-01-01"])
        .env_remove("STYRLOGG_DATA")
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let text = ok(temp);
    assert!(text.contains("Reports are made as of 2013-01-01 (--today)"), "{text}");
    let store = text.lines().find_map(|l| l.strip_prefix("Store: ")).unwrap().split(" (temporary").next().unwrap();
    assert!(store.starts_with(dir.path().to_str().unwrap()), "{store}");
    assert!(!Path::new(store).exists(), "the temporary store is removed");
    assert!(text.contains("Removed the temporary store"));
}

/// The dialogue register links a decision only to the dialogues held on or
/// before its day: a decision cannot have used a dialogue held after it.
#[test]
fn a_decision_is_linked_only_to_the_dialogues_held_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let doc = |t: &str| format!("{t}|{}", "ab".repeat(32));
    let cmd = |what: &str, on: &str, role: &str, facts: &[(&str, String)]| {
        let facts: Vec<String> = facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let facts: Vec<String> = facts.iter().map(|f| format!("{f:?}")).collect();
        format!(
            "[[command]]\nrecord = \"{what}\"\ninstance = \"h\"\non = {on}\nrole = \"{role}\"\nfacts = [{}]\n\n",
            facts.join(", ")
        )
    };
    let mut text = format!(
        "{HEADER}\n[[command]]\nstart = \"harryda-medborgardialog\"\ninstance = \"h\"\norg = \"Härryda kommun\"\non = 2013-01-10\nrole = \"sekreterare\"\n\n"
    );
    text += &cmd("principer", "2013-01-10", "sekreterare", &[("principer", doc("Principer"))]);
    text += &cmd("checklista", "2013-01-20", "kanslichef", &[("checklista", doc("Checklista"))]);
    let sector = [("sektor", "Samhällsbyggnad".to_string())];
    let pss = [&sector[..], &[("fraga", "Torget".into()), ("paverkbar", "ja".into())]].concat();
    text += &cmd("checklista_pss", "2013-02-01", "kanslichef", &pss);
    let dialog = [&sector[..], &[("fraga", "Torget".into())]].concat();
    text += &cmd("dialog", "2013-03-01", "kanslichef", &dialog);
    let decision = [
        &sector[..],
        &[("protokoll", "Kommunstyrelsen|2013-04-02|§ 40".into()), ("diarienummer", "KS 2013/40".into())],
    ]
    .concat();
    text += &cmd("underlag_ks", "2013-04-02", "sekreterare", &decision);
    text += &cmd("dialog", "2013-05-22", "kanslichef", &dialog);
    let file = write(dir.path(), "s.toml", &text);
    ok(styrlogg(&store, &["load", file.to_str().unwrap()]));
    let register = json(&store, &["report", "dialogues", "--format", "json"]);
    let dialogues = register["dialogues"].as_array().unwrap();
    let on = |day: &str| dialogues.iter().find(|d| d["dates"][0] == day).unwrap_or_else(|| panic!("{register}"));
    let decisions = |day: &str| on(day)["decisions"].as_array().unwrap().clone();
    assert_eq!(decisions("2013-03-01").len(), 1, "held before the decision: {register}");
    assert!(decisions("2013-03-01")[0].as_str().unwrap().contains("2013-04-02"), "{register}");
    assert!(decisions("2013-05-22").is_empty(), "held after the decision: {register}");
}
