//! Workflow definitions and their enforcement: every built-in definition
//! validates, a broken file gets every error with its line, and given
//! events / when a command / then events or a rejection, for every rule.

use engine::{
    codec, Actor, CommandId, DeadlineChange, EventBody, EventId, Hash, InstanceId, NewEvent, Payload, RecordedEvent,
};
use jiff::civil::{date, Date};
use workflows::{builtin, decide, Command, Definition, Instance, Rejection, Rule};

fn source(name: &str) -> &'static str {
    builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with(name)).unwrap_or_else(|| panic!("no built-in {name}")).1
}

const TODAY: Date = date(2026, 11, 22);

/// An instance built from events, one command at a time.
struct Given {
    events: Vec<RecordedEvent>,
}

impl Given {
    fn start(def: &str, role: &str) -> Given {
        let def = Definition::parse(source(def)).unwrap();
        let e = workflows::start(
            &def,
            "Landstinget i Jönköpings län",
            Some("LJ2012/896"),
            date(2012, 1, 2),
            Actor::new("A", role),
            TODAY,
        )
        .unwrap();
        let mut g = Given { events: Vec::new() };
        g.push(e);
        g
    }

    fn push(&mut self, e: NewEvent) {
        let seq = self.events.len() as u64 + 1;
        let command = CommandId::new(format!("c{seq}")).unwrap();
        let body = EventBody {
            event_id: EventId::derive(&command, 0),
            instance: InstanceId::new("test").unwrap(),
            sequence: seq,
            position: seq,
            occurred_on: e.occurred_on,
            recorded_at: "2026-11-22T08:00:00Z".parse().unwrap(),
            actor: e.actor,
            command_id: command,
            payload: e.payload,
            prev_hash: self.events.last().map_or(Hash::default(), |p| p.hash),
        };
        self.events.push(codec::seal(body).unwrap().0);
    }

    fn instance(&self) -> Instance {
        Instance::fold(&self.events).unwrap()
    }

    fn when(&self, cmd: Command) -> Result<Vec<NewEvent>, Rejection> {
        decide(&self.instance(), cmd, TODAY)
    }

    /// Records a step that must be accepted.
    fn and(mut self, step: &str, on: Date, role: &str, facts: &[(&str, &str)]) -> Given {
        let events = self.when(record(step, on, role, facts)).unwrap_or_else(|r| panic!("{step}: {r}"));
        for e in events {
            self.push(e);
        }
        self
    }

    fn last_id(&self) -> EventId {
        self.events.last().unwrap().event.event_id
    }
}

fn record(step: &str, on: Date, role: &str, facts: &[(&str, &str)]) -> Command {
    Command::Record {
        step: step.into(),
        occurred_on: on,
        actor: Actor::new("Lena Sandqvist", role),
        facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        deviation: None,
    }
}

fn with_deviation(cmd: Command, why: &str) -> Command {
    match cmd {
        Command::Record { step, occurred_on, actor, facts, .. } => {
            Command::Record { step, occurred_on, actor, facts, deviation: Some(why.into()) }
        }
        other => other,
    }
}

#[track_caller]
fn rejected(result: Result<Vec<NewEvent>, Rejection>, rule: Rule, needle: &str) -> Rejection {
    match result {
        Ok(events) => panic!("expected {rule:?}, got events {events:?}"),
        Err(r) => {
            assert_eq!(r.rule, rule, "{r}");
            assert!(r.to_string().contains(needle), "{r} mentions {needle:?}");
            // Said in Swedish too (the web pages' default), not the English again.
            let (message, remedy) = r.said(true);
            for (sv, en) in [(message, &r.message), (remedy, &r.remedy)] {
                assert!(!sv.trim().is_empty() && sv != en, "{r}: Swedish {sv:?}");
            }
            r
        }
    }
}

fn step_payload(events: &[NewEvent]) -> &Payload {
    assert_eq!(events.len(), 1);
    &events[0].payload
}

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn doc(title: &str) -> String {
    format!("{title}|{SHA}")
}

/// The SKL network up to a decided board, project leader and steering group.
fn skl_ready_for_plan() -> Given {
    Given::start("skl-styrsystem", "registrator")
        .and(
            "intresseanmalan",
            date(2012, 1, 20),
            "registrator",
            &[("kontaktperson", "Anita Brynje|kontaktperson|official"), ("organisation", "Tyresö kommun")],
        )
        .and(
            "styrelsebeslut",
            date(2012, 8, 21),
            "sekreterare",
            &[
                ("organ", "Landstingsstyrelsen"),
                ("protokoll", "Landstingsstyrelsen|2012-08-21|§ 1"),
                ("diarienummer", "LJ2012/896"),
            ],
        )
        .and(
            "projektledare_utsedd",
            date(2012, 8, 22),
            "sekreterare",
            &[("projektledare", "P L|projektledare|official"), ("mandat", "m"), ("resurser", "halvtid")],
        )
        .and(
            "styrgrupp_tillsatt",
            date(2012, 8, 22),
            "sekreterare",
            &[
                ("ledamot", "Tommy Bernevång Forsberg|ordförande|elected"),
                ("ledamot", "Anna Chef|landstingsdirektör|official"),
            ],
        )
}

#[test]
fn every_builtin_definition_validates() {
    assert_eq!(builtin::DEFINITIONS.len(), 5);
    for (name, src) in builtin::DEFINITIONS {
        let def = Definition::parse(src).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        assert!(!def.steps.is_empty() && !def.roles.is_empty(), "{name}");
        let on_disk =
            std::fs::read_to_string(format!("{}/workflows/definitions/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(&on_disk, src, "{name}: the binary carries the file as it is");
    }
}

#[test]
fn every_wrong_key_or_type_of_a_definition_is_told() {
    let src = r#"id = "trasig"
version = 1
title = { sv = "Trasig", en = "Broken" }

[[roles]]
id = "sekreterare"
title = { sv = "S", en = "S" }
colour = "red"

[[steps]]
id = "a"
title = { sv = "A", en = "A" }
kind = "decision"
recorded_by = "sekreterare"

[[steps]]
id = "b"
title = { sv = "B", en = "B" }
kind = "plan"
recorded_bye = ["sekreterare"]
"#;
    let problems = Definition::parse(src).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(|p| p.render("trasig.toml", src)).collect();
    assert_eq!(rendered.len(), 3, "{rendered:#?}");
    for (at, what) in [
        ("trasig.toml:8:", "unknown field `colour`"),
        ("trasig.toml:14:", "invalid type: string \"sekreterare\", expected a sequence"),
        ("trasig.toml:20:", "unknown field `recorded_bye`"),
    ] {
        assert!(rendered.iter().any(|r| r.starts_with(at) && r.contains(what)), "{at} {what}: {rendered:#?}");
    }
}

#[test]
fn a_broken_definition_gets_every_error_with_its_line() {
    let src = r#"id = "trasig"
version = 1
title = { sv = "Trasig", en = "Broken" }

[[roles]]
id = "sekreterare"
title = { sv = "S", en = "S" }

[[steps]]
id = "a"
title = { sv = "A", en = "A" }
kind = "decision"
after = ["c"]
recorded_by = ["sekreterare"]

[[steps]]
id = "b"
title = { sv = "B", en = "B" }
kind = "plan"
after = ["nosuch"]
recorded_by = ["ordforande"]
facts = [{ name = "swot", type = "pdf" }]
deadline = { after_step = "ghost", days = 14 }

[[steps]]
id = "c"
title = { sv = "C", en = "C" }
kind = "wedding"
after = ["a"]
recorded_by = ["sekreterare"]
"#;
    let problems = Definition::parse(src).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(|p| p.render("trasig.toml", src)).collect();
    let expect = [
        ("trasig.toml:29:", "the steps form a cycle, so none of them could ever be recorded: a -> c -> a"),
        ("trasig.toml:20:", "\"nosuch\", which is not a step"),
        ("trasig.toml:21:", "\"ordforande\" is not a role of this workflow, so nobody can hold it"),
        ("trasig.toml:22:", "type \"pdf\", which does not exist"),
        ("trasig.toml:23:", "counts from \"ghost\", which is not a step"),
        ("trasig.toml:28:", "kind \"wedding\" is not in the vocabulary"),
    ];
    for (place, what) in expect {
        assert!(
            rendered.iter().any(|r| r.starts_with(place) && r.contains(what)),
            "missing {place} {what} in:\n{}",
            rendered.join("\n")
        );
    }
    assert_eq!(problems.len(), expect.len(), "{}", rendered.join("\n"));

    let syntax = "id = \"x\"\nversion = \n";
    let p = Definition::parse(syntax).unwrap_err();
    assert_eq!(p.len(), 1);
    assert!(p[0].render("x.toml", syntax).starts_with("x.toml:2:"), "{}", p[0].render("x.toml", syntax));
}

#[test]
fn the_plan_needs_its_swot_and_its_predecessors() {
    let plan = |facts: &[(&str, &str)]| record("projektplan", date(2012, 10, 1), "projektledare", facts);
    let full = [
        ("plan", doc("Projektplan")),
        ("swot", doc("SWOT")),
        ("nulagesanalys", doc("Nuläge")),
        ("onskat_tillstand", doc("Om tre år")),
    ];
    let full: Vec<(&str, &str)> = full.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let early = Given::start("skl-styrsystem", "registrator");
    rejected(early.when(plan(&full)), Rule::MissingPrerequisite, "comes after projektledare_utsedd");

    let g = skl_ready_for_plan();
    let without_swot: Vec<(&str, &str)> = full.iter().filter(|(k, _)| *k != "swot").cloned().collect();
    let r = rejected(g.when(plan(&without_swot)), Rule::MissingFact, "\"swot\"");
    assert!(r.remedy.contains("Give the fact swot: TITLE|SHA256"), "{}", r.remedy);
    assert!(!r.message.contains(';'), "one fact missing, one named: {}", r.message);
    // Every missing fact is named in one refusal, about the first of them.
    let only_plan: Vec<(&str, &str)> = full.iter().filter(|(k, _)| *k == "plan").cloned().collect();
    let r = rejected(g.when(plan(&only_plan)), Rule::MissingFact, "\"swot\"");
    for fact in ["swot", "nulagesanalys", "onskat_tillstand"] {
        assert!(r.message.contains(&format!("{fact:?}")), "{fact} in {}", r.message);
        assert!(r.remedy.contains(&format!("Give the fact {fact}:")), "{fact} in {}", r.remedy);
        assert!(
            r.sv.0.contains(&format!("{fact:?}")) && r.sv.1.contains(&format!("Ange uppgiften {fact}:")),
            "{:?}",
            r.sv
        );
    }
    assert_eq!(r.fact.as_deref(), Some("swot"));
    assert!(r.message.find("\"swot\"") < r.message.find("\"onskat_tillstand\""), "in the definition's order");
    // A problem found before the facts is what the refusal is about.
    let r = rejected(early.when(plan(&only_plan)), Rule::MissingPrerequisite, "comes after projektledare_utsedd");
    assert!(!r.message.contains("swot"), "{}", r.message);
    rejected(g.when(plan(&[("plan", "Projektplan|not-a-hash"), ("swot", "x")])), Rule::IllTypedFact, "TITLE|SHA256");
    rejected(g.when(plan(&[("budget", "1")])), Rule::UnknownFact, "no fact \"budget\"");
    let mut twice = full.clone();
    twice.push(("swot", full[1].1));
    rejected(g.when(plan(&twice)), Rule::RepeatedFact, "given twice");
    rejected(
        g.when(record("projektplan", date(2012, 10, 1), "registrator", &full)),
        Rule::RoleNotAllowed,
        "recorded by: projektledare",
    );
    rejected(g.when(record("projektplan", date(2027, 1, 1), "projektledare", &full)), Rule::FutureDate, "after today");
    rejected(
        g.when(record("projektplanen", date(2012, 10, 1), "projektledare", &full)),
        Rule::UnknownStep,
        "Use one of",
    );

    let accepted = g.when(plan(&full)).unwrap();
    assert!(matches!(step_payload(&accepted), Payload::StepRecorded { late: None, deviation: None, .. }));
    let g = g.and("projektplan", date(2012, 10, 1), "projektledare", &full);
    rejected(g.when(plan(&full)), Rule::NotRepeatable, "correct");
}

#[test]
fn a_steering_group_needs_an_elected_member() {
    let g = Given::start("skl-styrsystem", "registrator")
        .and(
            "intresseanmalan",
            date(2012, 1, 20),
            "registrator",
            &[("kontaktperson", "A B|kontakt|official"), ("organisation", "X")],
        )
        .and(
            "styrelsebeslut",
            date(2012, 8, 21),
            "sekreterare",
            &[("organ", "LS"), ("protokoll", "LS|2012-08-21|§ 1"), ("diarienummer", "LJ2012/896")],
        );
    let officials_only = record(
        "styrgrupp_tillsatt",
        date(2012, 8, 22),
        "sekreterare",
        &[("ledamot", "A|direktör|official"), ("ledamot", "B|chef|official")],
    );
    rejected(g.when(officials_only.clone()), Rule::MissingPersonKind, "an elected member");
    rejected(
        g.when(record("styrgrupp_tillsatt", date(2012, 8, 22), "sekreterare", &[("ledamot", "A|direktör|boss")])),
        Rule::IllTypedFact,
        "elected",
    );
    // A value the log could not take is refused as the fact's, before it reaches the log.
    let long_name = format!("{}|direktör|elected", "A".repeat(engine::limits::NAME_BYTES_MAX + 1));
    let r = rejected(
        g.when(record("styrgrupp_tillsatt", date(2012, 8, 22), "sekreterare", &[("ledamot", long_name.as_str())])),
        Rule::IllTypedFact,
        "person name",
    );
    assert_eq!(r.fact.as_deref(), Some("ledamot"), "{r}");
    // A deviation must say why, in text a report can show as it is.
    let too_long = "x".repeat(engine::limits::TEXT_BYTES_MAX + 1);
    for (why, en, sv) in [
        ("  ", "the deviation is empty", "avvikelsens motivering är tom"),
        ("Se\u{7}bilaga", "control character U+0007", "styrtecknet U+0007"),
        ("Se \u{202E}bilaga", "bidirectional control U+202E", "ändrar textens riktning"),
        (too_long.as_str(), "bytes long", "byte lång"),
    ] {
        let r = rejected(g.when(with_deviation(officials_only.clone(), why)), Rule::InvalidText, en);
        assert!(r.said(true).0.contains(sv), "{:?}", r.said(true));
    }
    // A justified deviation records it, flagged.
    let events = g.when(with_deviation(officials_only, "Politiska ledamöter utses i september")).unwrap();
    assert!(
        matches!(step_payload(&events), Payload::StepRecorded { deviation: Some(d), .. } if d.contains("september"))
    );
}

#[test]
fn dialogue_gate_and_dates_follow_what_happened() {
    let g = Given::start("medborgardialog", "handlaggare")
        .and("fraga_vackt", date(2013, 2, 1), "handlaggare", &[("fraga", "Framtidens vuxenpsykiatri")])
        .and(
            "checklista",
            date(2013, 2, 10),
            "handlaggare",
            &[("fragan_paverkbar", "nej"), ("beslutsfattare_paverkbara", "ja")],
        );
    let decide_dialogue = record(
        "beslut_om_dialog",
        date(2013, 2, 20),
        "sekreterare",
        &[("syfte", "s"), ("trappsteg", "dialog"), ("malgrupper", "m"), ("metod", "m"), ("beslutar", "nämnden i maj")],
    );
    rejected(g.when(decide_dialogue.clone()), Rule::ConditionNotMet, "checklista.fragan_paverkbar = \"ja\"");
    rejected(
        g.when(with_deviation(decide_dialogue.clone(), "x")),
        Rule::DeviationNotAllowed,
        "recorded by: ordforande",
    );
    // The checklist is corrected: the question was open to influence after all.
    let mut g = g;
    let checklist = g.last_id();
    let fix = Command::Correct {
        event: checklist,
        on: date(2013, 2, 15),
        actor: Actor::new("H", "handlaggare"),
        reason: "Nämnden har inte beslutat ännu".into(),
        new_date: None,
        facts: vec![("fragan_paverkbar".into(), "ja".into())],
    };
    for e in g.when(fix).unwrap() {
        g.push(e);
    }
    let g = g.and(
        "beslut_om_dialog",
        date(2013, 2, 20),
        "sekreterare",
        &[("syfte", "s"), ("trappsteg", "dialog"), ("malgrupper", "m"), ("metod", "m"), ("beslutar", "nämnden i maj")],
    );
    // Recorded after the fact: the dialogue was held in March, typed in now.
    let g = g
        .and(
            "dialog_genomford",
            date(2013, 3, 12),
            "handlaggare",
            &[("metod", "rundabordssamtal"), ("deltagare_antal", "45")],
        )
        .and(
            "resultat_sammanstallt",
            date(2013, 3, 20),
            "handlaggare",
            &[("sammanstallning", &doc("Sammanställning"))],
        );
    let used = |on: Date| {
        record(
            "resultat_anvant",
            on,
            "sekreterare",
            &[
                ("organ", "Regionstyrelsen"),
                ("protokoll", "Regionstyrelsen|2013-03-01|§ 12"),
                ("diarienummer", "RS 2013/1"),
            ],
        )
    };
    rejected(g.when(used(date(2013, 3, 1))), Rule::BeforePrerequisite, "before dialog_genomford happened (2013-03-12)");
    assert!(g.when(used(date(2013, 5, 2))).is_ok());
}

#[test]
fn late_steps_are_accepted_and_flagged_and_deadlines_can_change() {
    let g = Given::start("skl-styrsystem", "registrator").and(
        "intresseanmalan",
        date(2012, 1, 20),
        "registrator",
        &[("kontaktperson", "A B|kontakt|official"), ("organisation", "X")],
    );
    let board = |on: Date| {
        record(
            "styrelsebeslut",
            on,
            "sekreterare",
            &[("organ", "KS"), ("protokoll", "KS|2012-10-02|§ 5"), ("diarienummer", "KS 2012/9")],
        )
    };
    let events = g.when(board(date(2012, 10, 2))).unwrap();
    match step_payload(&events) {
        Payload::StepRecorded { late: Some(l), .. } => {
            assert_eq!(l.deadline, date(2012, 8, 31));
            assert_eq!(l.days_late, 32);
        }
        other => panic!("expected a late flag, got {other:?}"),
    }
    let change = |change| Command::ChangeDeadline {
        step: "styrelsebeslut".into(),
        on: date(2012, 8, 30),
        actor: Actor::new("S", "sekreterare"),
        change,
        reason: "Sammanträdet flyttat".into(),
    };
    let mut extended = Given { events: g.events.clone() };
    for e in extended.when(change(DeadlineChange::Extended { to: date(2012, 10, 31) })).unwrap() {
        extended.push(e);
    }
    assert!(matches!(
        step_payload(&extended.when(board(date(2012, 10, 2))).unwrap()),
        Payload::StepRecorded { late: None, .. }
    ));
    let mut waived = Given { events: g.events.clone() };
    for e in waived.when(change(DeadlineChange::Waived)).unwrap() {
        waived.push(e);
    }
    assert_eq!(waived.instance().next_deadline(waived.instance().definition.step("styrelsebeslut").unwrap()), None);
    rejected(waived.when(change(DeadlineChange::Waived)), Rule::NoDeadline, "no pending deadline");
    // An "extension" to the last day or earlier is none; after an extension,
    // the next one must go past it.
    rejected(
        g.when(change(DeadlineChange::Extended { to: date(2012, 8, 1) })),
        Rule::NotAnExtension,
        "not later than the last day",
    );
    rejected(
        extended.when(change(DeadlineChange::Extended { to: date(2012, 10, 31) })),
        Rule::NotAnExtension,
        "2012-10-31 is not later",
    );
    let by_registrar = Command::ChangeDeadline {
        step: "styrelsebeslut".into(),
        on: date(2012, 8, 30),
        actor: Actor::new("R", "registrator"),
        change: DeadlineChange::Waived,
        reason: "x".into(),
    };
    rejected(g.when(by_registrar), Rule::RoleNotAllowed, "changed by: sekreterare");
}

#[test]
fn corrections_point_at_the_original_which_stays() {
    let g = Given::start("skl-styrsystem", "registrator").and(
        "intresseanmalan",
        date(2012, 1, 20),
        "registrator",
        &[("kontaktperson", "A B|kontakt|official"), ("organisation", "Tyresö")],
    );
    let original = g.last_id();
    let correct = |event, role: &str| Command::Correct {
        event,
        on: date(2012, 2, 1),
        actor: Actor::new("R", role),
        reason: "Fel namn".into(),
        new_date: Some(date(2012, 1, 19)),
        facts: vec![("organisation".into(), "Tyresö kommun".into())],
    };
    rejected(g.when(correct(EventId([9; 16]), "registrator")), Rule::UnknownEvent, "no recorded step");
    rejected(g.when(correct(original, "skl")), Rule::RoleNotAllowed, "may not correct");
    let mut g = g;
    for e in g.when(correct(original, "registrator")).unwrap() {
        g.push(e);
    }
    let inst = g.instance();
    let occ = inst.occurrences_of("intresseanmalan").next().unwrap();
    assert_eq!(occ.occurred_on, date(2012, 1, 19));
    assert_eq!(occ.corrections, 1);
    assert!(occ
        .facts
        .iter()
        .any(|f| f.name == "organisation" && f.value == engine::FactValue::Text("Tyresö kommun".into())));
    assert_eq!(g.events.len(), 3, "the original stays in the log");
}

#[test]
fn a_date_correction_keeps_the_order_and_judges_lateness_again() {
    let g = Given::start("protokoll-laga-kraft", "sekreterare").and(
        "sammantrade",
        date(2012, 6, 1),
        "sekreterare",
        &[("protokoll", "KS|2012-06-01|§ 1"), ("beslut", "b")],
    );
    let meeting = g.last_id();
    let g = g.and(
        "justerat",
        date(2012, 6, 20),
        "sekreterare",
        &[("ordforande", "O|ordförande|elected"), ("justerare", "J|justerare|elected")],
    );
    let signed = g.last_id();
    let late = g.instance().occurrences_of("justerat").next().unwrap().late.expect("14 days from 1 June is 15 June");
    assert_eq!((late.deadline, late.days_late), (date(2012, 6, 15), 5));
    let correct = |event, new_date| Command::Correct {
        event,
        on: date(2012, 7, 1),
        actor: Actor::new("S", "sekreterare"),
        reason: "Fel datum".into(),
        new_date: Some(new_date),
        facts: vec![],
    };
    let empty = Command::Correct {
        event: signed,
        on: date(2012, 7, 1),
        actor: Actor::new("S", "sekreterare"),
        reason: "Inget".into(),
        new_date: Some(date(2012, 6, 20)),
        facts: vec![],
    };
    rejected(g.when(empty), Rule::EmptyCorrection, "changes nothing");
    // Before its own prerequisite, or after a step that comes after it.
    rejected(g.when(correct(signed, date(2012, 5, 30))), Rule::BeforePrerequisite, "is before sammantrade happened");
    rejected(
        g.when(correct(meeting, date(2012, 6, 21))),
        Rule::BeforePrerequisite,
        "justerat comes after sammantrade and was recorded as happening on 2012-06-20",
    );
    // The signing moved to the last day: on time.
    let mut on_time = Given { events: g.events.clone() };
    for e in on_time.when(correct(signed, date(2012, 6, 15))).unwrap() {
        on_time.push(e);
    }
    assert_eq!(on_time.instance().occurrences_of("justerat").next().unwrap().late, None);
    // The meeting moved earlier: the signing's deadline, counted from it,
    // moves too, and the signing is later than before.
    let mut earlier = Given { events: g.events.clone() };
    for e in earlier.when(correct(meeting, date(2012, 5, 25))).unwrap() {
        earlier.push(e);
    }
    let late = earlier.instance().occurrences_of("justerat").next().unwrap().late.expect("still late");
    assert_eq!((late.deadline, late.days_late), (date(2012, 6, 8), 12));
}

#[test]
fn minutes_chain_counts_statutory_deadlines() {
    let g = Given::start("protokoll-laga-kraft", "sekreterare").and(
        "sammantrade",
        date(2012, 6, 9),
        "sekreterare",
        &[("protokoll", "Planeringsdelegationen|2012-06-09|§ 100"), ("beslut", "att godkänna")],
    );
    let inst = g.instance();
    // 14 days from 9 June is Midsummer Day, 23 June: the last day moves to Monday 25 June.
    assert_eq!(inst.next_deadline(inst.definition.step("justerat").unwrap()), Some(date(2012, 6, 25)));
    let g = g
        .and(
            "justerat",
            date(2012, 6, 25),
            "sekreterare",
            &[("ordforande", "O|ordförande|elected"), ("justerare", "J|justerare|elected")],
        )
        .and("anslag", date(2012, 6, 26), "sekreterare", &[]);
    // Three weeks from 26 June is Tuesday 17 July; final from 18 July.
    rejected(
        g.when(record("laga_kraft", date(2012, 7, 17), "sekreterare", &[])),
        Rule::WindowOpen,
        "open until 2012-07-17",
    );
    assert!(g.when(record("laga_kraft", date(2012, 7, 18), "sekreterare", &[])).is_ok());
    let appealed = Given { events: g.events.clone() }.and(
        "overklagat",
        date(2012, 7, 10),
        "registrator",
        &[("klagande", "En kommunmedlem")],
    );
    rejected(
        appealed.when(record("laga_kraft", date(2012, 7, 18), "sekreterare", &[])),
        Rule::BlockedBy,
        "once overklagat has",
    );
    // Minutes dated after today: the meeting has not been held.
    rejected(
        Given::start("protokoll-laga-kraft", "sekreterare").when(record(
            "sammantrade",
            date(2012, 6, 9),
            "sekreterare",
            &[("protokoll", "KS|2099-05-30|§ 1"), ("beslut", "b")],
        )),
        Rule::FutureDate,
        "the minutes in \"protokoll\" are dated 2099-05-30",
    );
    // The other way round: an appeal dated before a recorded final decision
    // contradicts it, unless given with a deviation.
    let fin = g.and("laga_kraft", date(2012, 7, 18), "sekreterare", &[]);
    let late_appeal = record("overklagat", date(2012, 7, 10), "registrator", &[("klagande", "En kommunmedlem")]);
    rejected(fin.when(late_appeal.clone()), Rule::BlockedBy, "laga_kraft is recorded as happening on 2012-07-18");
    assert!(fin.when(with_deviation(late_appeal, "Överklagandet kom in i tid men registrerades sent")).is_ok());
    assert!(fin
        .when(record("overklagat", date(2012, 7, 20), "registrator", &[("klagande", "En kommunmedlem")]))
        .is_ok());
}

#[test]
fn an_instance_keeps_the_definition_it_started_with() {
    let mut changed = source("protokoll-laga-kraft").replace("version = 1", "version = 2");
    changed = changed.replace("days = 14, next_weekday = true", "days = 30, next_weekday = true");
    let def = Definition::parse(&changed).unwrap();
    let e = workflows::start(&def, "Härryda kommun", None, date(2012, 6, 1), Actor::new("S", "sekreterare"), TODAY)
        .unwrap();
    let mut g = Given { events: Vec::new() };
    g.push(e);
    let g =
        g.and("sammantrade", date(2012, 6, 9), "sekreterare", &[("protokoll", "KS|2012-06-09|§ 1"), ("beslut", "b")]);
    let inst = g.instance();
    assert_eq!(inst.definition.version, 2);
    assert_eq!(inst.definition.hash, def.hash);
    assert_ne!(def.hash, Definition::parse(source("protokoll-laga-kraft")).unwrap().hash);
    assert_eq!(inst.next_deadline(inst.definition.step("justerat").unwrap()), Some(date(2012, 7, 9)));
}

#[test]
fn yearly_follow_ups_are_due_each_year() {
    let g = skl_ready_for_plan();
    let inst = g.instance();
    let budget = inst.definition.step("uppfoljning_budget").unwrap();
    assert_eq!(inst.next_deadline(budget), Some(date(2012, 11, 30)));
    let g =
        g.and("uppfoljning_budget", date(2012, 11, 20), "projektledare", &[("budgetdokument", &doc("Budget 2013"))]);
    assert_eq!(g.instance().next_deadline(budget), Some(date(2013, 11, 30)));
    // Waiving is of one year's deadline: 2014's is pending next, not none
    // for good, and the next recording is 2014's.
    let waive = Command::ChangeDeadline {
        step: "uppfoljning_budget".into(),
        on: date(2013, 10, 1),
        actor: Actor::new("P", "projektledare"),
        change: DeadlineChange::Waived,
        reason: "Budgeten 2014 följs upp i årsberättelsen".into(),
    };
    let mut w = Given { events: g.events.clone() };
    for e in w.when(waive).unwrap() {
        w.push(e);
    }
    assert_eq!(w.instance().next_deadline(budget), Some(date(2014, 11, 30)));
    assert_eq!(w.instance().years_waived(budget), vec![2013]);
    let status = workflows::status::InstanceStatus::of(&w.instance(), date(2014, 12, 5));
    let s = status.steps.iter().find(|s| s.id == "uppfoljning_budget").unwrap();
    assert!(s.overdue && s.deadline == Some(date(2014, 11, 30)), "2014's is overdue in December 2014: {s:?}");
    let w =
        w.and("uppfoljning_budget", date(2014, 11, 20), "projektledare", &[("budgetdokument", &doc("Budget 2015"))]);
    assert_eq!(w.instance().years_answered(budget), vec![2012, 2014], "the next recording answers 2014");
    assert_eq!(w.instance().next_deadline(budget), None, "the rule's years are done");
    let report = inst.definition.step("uppfoljning_arsberattelse").unwrap();
    assert_eq!(inst.next_deadline(report), Some(date(2013, 4, 30)), "the annual report for 2012 is due in April 2013");
}

/// A yearly deadline that reads the year from a fact: a recording counts
/// for the year it names, so a year skipped stays open (and overdue) after
/// a later year is recorded, and a late recording is judged against its
/// own year's deadline. A year the deadline does not cover is refused.
#[test]
fn a_yearly_follow_up_counts_for_the_year_it_names() {
    let step = "uppfoljning_arsberattelse";
    let next = |g: &Given| {
        let inst = g.instance();
        let s = inst.definition.step(step).unwrap().clone();
        inst.next_deadline(&s)
    };
    let late = |g: &Given| match &g.events.last().unwrap().event.payload {
        Payload::StepRecorded { late, .. } => *late,
        other => panic!("{other:?}"),
    };
    let with_year = |g: Given, on: Date, year: &str| {
        let d = doc(&format!("Årsberättelse {year}"));
        g.and(step, on, "projektledare", &[("arsberattelse", &d), ("ar", year)])
    };

    // 2012's report is skipped; 2013's is recorded in March 2014, on time.
    let g = with_year(skl_ready_for_plan(), date(2014, 3, 20), "2013");
    assert_eq!(late(&g), None, "2013's was due 2014-04-30");
    assert_eq!(next(&g), Some(date(2013, 4, 30)), "2012's stays open, and overdue");
    let inst = g.instance();
    let due = workflows::reminders::due(&inst, date(2014, 3, 21));
    assert!(due.iter().any(|n| n.deadline == date(2013, 4, 30)), "it is still escalated: {due:?}");

    // 2012's, recorded late: judged against 2013-04-30; 2014's is next.
    let g = with_year(g, date(2014, 5, 5), "2012");
    assert_eq!(late(&g), Some(engine::Lateness { deadline: date(2013, 4, 30), days_late: 370 }));
    assert_eq!(next(&g), Some(date(2015, 4, 30)));

    // A year the deadline does not cover is refused, next to the fact.
    for bad in ["2011", "2015", "tjugotretton", "2013-14", " 2013 ", "+2013", "02013", "2013.0"] {
        let r = rejected(
            g.when(record(step, date(2014, 5, 6), "projektledare", &[("arsberattelse", &doc("x")), ("ar", bad)])),
            Rule::YearOutOfRange,
            "2012 to 2014",
        );
        assert_eq!(r.fact.as_deref(), Some("ar"));
    }

    // (A deadline without a year fact, the budget's, meets the years in
    // order: `yearly_follow_ups_are_due_each_year`.)

    // Correcting the year re-judges the recording: 2013's on time becomes
    // 2012's, late, and 2013's is open again.
    let g = with_year(skl_ready_for_plan(), date(2014, 3, 20), "2013");
    let fix = Command::Correct {
        event: g.last_id(),
        on: date(2014, 3, 21),
        actor: Actor::new("P", "projektledare"),
        reason: "Fel år".into(),
        new_date: None,
        facts: vec![("ar".into(), "2012".into())],
    };
    let mut g = g;
    for e in g.when(fix).unwrap() {
        g.push(e);
    }
    let inst = g.instance();
    assert_eq!(inst.occurrences_of(step).next().unwrap().late.map(|l| l.deadline), Some(date(2013, 4, 30)));
    assert_eq!(next(&g), Some(date(2014, 4, 30)), "2013's is open again, due 2014-04-30");
}

/// A year has one recording, and an operating year's follow-up comes once
/// the year is over: a second recording for a year, or one dated within
/// the year it is for, is refused unless recorded with a deviation, and a
/// correction may not make either so.
#[test]
fn a_year_is_recorded_once_and_once_it_is_over() {
    let step = "uppfoljning_arsberattelse";
    let rec = |on: Date, year: &str| {
        record(step, on, "projektledare", &[("arsberattelse", &doc(&format!("Årsberättelse {year}"))), ("ar", year)])
    };
    let g = skl_ready_for_plan().and(
        step,
        date(2014, 3, 20),
        "projektledare",
        &[("arsberattelse", &doc("Årsberättelse 2013")), ("ar", "2013")],
    );
    let first = g.last_id();

    // 2013 again: refused, naming the recording there is.
    let r =
        rejected(g.when(rec(date(2014, 4, 2), "2013")), Rule::YearAlreadyRecorded, "already recorded on 2014-03-20");
    assert!(r.remedy.contains(&format!("correct event {first} instead")), "{r}");
    assert_eq!(r.fact.as_deref(), Some("ar"));
    // A supplement is possible, with a reason.
    assert!(g.when(with_deviation(rec(date(2014, 4, 2), "2013"), "Kompletterande årsberättelse")).is_ok());

    // 2014's, dated in 2014: the year is not over.
    let r = rejected(g.when(rec(date(2014, 12, 30), "2014")), Rule::YearNotOver, "before 2014 is over");
    assert!(r.remedy.contains("in 2015 or later"), "{r}");
    assert!(g.when(with_deviation(rec(date(2014, 12, 30), "2014"), "Tidig rapport")).is_ok());
    assert!(g.when(rec(date(2015, 1, 2), "2014")).is_ok());

    // What each recording counts for: the year it names.
    let g = g.and(
        step,
        date(2014, 5, 5),
        "projektledare",
        &[("arsberattelse", &doc("Årsberättelse 2012")), ("ar", "2012")],
    );
    let inst = g.instance();
    assert_eq!(inst.years_answered(inst.definition.step(step).unwrap()), vec![2013, 2012]);

    // A correction follows the same rules, and has no deviation to give.
    let correct = |event, new_date: Option<Date>, year: Option<&str>| Command::Correct {
        event,
        on: date(2015, 6, 1),
        actor: Actor::new("P", "projektledare"),
        reason: "Fel uppgift".into(),
        new_date,
        facts: year.map(|y| vec![("ar".to_string(), y.to_string())]).unwrap_or_default(),
    };
    let second = g.last_id();
    rejected(g.when(correct(second, None, Some("2013"))), Rule::YearAlreadyRecorded, "2013 was already recorded");
    rejected(g.when(correct(first, Some(date(2013, 12, 1)), None)), Rule::YearNotOver, "before 2013 is over");
    assert!(g.when(correct(first, Some(date(2014, 1, 15)), None)).is_ok(), "a date within the rules");
    rejected(g.when(correct(second, None, Some("2014"))), Rule::YearNotOver, "dated 2014-05-05, before 2014 is over");
    assert!(g.when(correct(second, Some(date(2015, 2, 1)), Some("2014"))).is_ok(), "a year nobody has, once over");

    // A supplement for 2013, recorded with a deviation: its deviation
    // covers sharing 2013, not moving to another year that has one.
    let mut g = g;
    for e in g.when(with_deviation(rec(date(2014, 4, 2), "2013"), "Kompletterande årsberättelse")).unwrap() {
        g.push(e);
    }
    let supplement = g.last_id();
    rejected(g.when(correct(supplement, None, Some("2012"))), Rule::YearAlreadyRecorded, "2012 was already recorded");
    assert!(g.when(correct(supplement, Some(date(2014, 4, 10)), None)).is_ok(), "its year stays");
    // The first 2013 recording, restating its year with a new document:
    // not refused for the supplement that shares the year.
    let restate = Command::Correct {
        event: first,
        on: date(2015, 6, 1),
        actor: Actor::new("P", "projektledare"),
        reason: "Rätt dokument".into(),
        new_date: None,
        facts: vec![("ar".into(), "2013".into()), ("arsberattelse".into(), doc("Årsberättelse 2013, rättad"))],
    };
    assert!(g.when(restate).is_ok());
    // The year it already has, and nothing else: a correction that
    // changes nothing.
    rejected(g.when(correct(first, None, Some("2013"))), Rule::EmptyCorrection, "the facts given are those it has");

    // An early report (a deviation) moved to a later year once that year
    // is over, then back into that year: its deviation was for the year
    // it was recorded for, so the second step is refused.
    let mut g = g;
    for e in g.when(with_deviation(rec(date(2014, 12, 1), "2014"), "Tidig rapport")).unwrap() {
        g.push(e);
    }
    let early = g.last_id();
    assert!(g.when(correct(early, Some(date(2014, 12, 5)), None)).is_ok(), "later within its year: covered");
    rejected(g.when(correct(early, Some(date(2014, 6, 1)), None)), Rule::YearNotOver, "before 2014 is over");
}

/// A correction that gives a fact of several values one value twice over,
/// where two different ones were recorded, changes the record.
#[test]
fn a_correction_counts_each_value_of_a_fact_of_several() {
    let (anita, karin) = ("Anita Brynje|kontaktperson|official", "Karin Hassler|kontaktperson|official");
    let g = Given::start("skl-styrsystem", "registrator").and(
        "intresseanmalan",
        date(2012, 1, 20),
        "registrator",
        &[("kontaktperson", anita), ("kontaktperson", karin), ("organisation", "Tyresö kommun")],
    );
    let correct = |values: &[&str]| Command::Correct {
        event: g.last_id(),
        on: date(2012, 2, 1),
        actor: Actor::new("R", "registrator"),
        reason: "Kontaktpersoner".into(),
        new_date: None,
        facts: values.iter().map(|v| ("kontaktperson".to_string(), v.to_string())).collect(),
    };
    assert!(g.when(correct(&[anita, anita])).is_ok());
    rejected(g.when(correct(&[karin, anita])), Rule::EmptyCorrection, "the facts given are those it has");
}

#[test]
fn a_year_fact_must_be_a_text_fact_of_its_step() {
    let src = source("skl-styrsystem");
    assert!(src.contains(r#"year_fact = "ar""#));
    for wrong in ["arsberattelse", "nosuch"] {
        let changed = src.replace(r#"year_fact = "ar""#, &format!("year_fact = {wrong:?}"));
        let problems = Definition::parse(&changed).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.render("skl.toml", &changed)).collect();
        assert!(
            text.iter().any(|t| t.contains(&format!("year_fact {wrong:?} must be a text fact of this step"))),
            "{text:?}"
        );
    }
}

/// A choice is taken whatever its case, and kept as the definition spells
/// it; anything else is refused with the options.
#[test]
fn a_choice_is_taken_in_any_case_and_kept_as_defined() {
    let def = Definition::parse(source("medborgardialog")).unwrap();
    let spec = def.steps.iter().flat_map(|s| s.facts.iter()).find(|f| f.name == "trappsteg").unwrap();
    for typed in ["konsultation", "Konsultation", "KONSULTATION"] {
        assert_eq!(
            workflows::facts::parse(spec, typed).unwrap(),
            engine::FactValue::Choice("konsultation".into()),
            "{typed}"
        );
    }
    let e = workflows::facts::parse(spec, "konsult").unwrap_err();
    assert!(e.en.contains("one of: information, konsultation"), "{e:?}");
}
