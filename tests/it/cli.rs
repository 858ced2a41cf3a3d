//! The `styrlogg` command line: good paths, and a clear one-line error with
//! the right exit code on bad input, with nothing stored touched.

use std::path::Path;
use std::process::{Command, Output};

/// The binary on store `data` with `args`, untouched by the environment's
/// STYRLOGG_* settings and log filter.
pub fn command(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_styrlogg"));
    c.arg("--data").arg(data).args(args);
    for var in ["RUST_LOG", "STYRLOGG_DATA", "STYRLOGG_CONFIG", "STYRLOGG_TODAY"] {
        c.env_remove(var);
    }
    c
}

pub fn styrlogg(data: &Path, args: &[&str]) -> Output {
    command(data, args).output().expect("the styrlogg binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert!(err.contains(needle), "stderr {err:?} mentions {needle:?}");
}

/// An import cut off halfway leaves a log that is a true prefix of the
/// export, whole and verifiable: the store is marked until the last event
/// is in, and every command refuses it until it is imported again.
#[test]
fn an_import_cut_off_is_never_taken_for_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let o = styrlogg(&source, &["stress", "--writers", "4", "--commands", "10000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = dir.path().join("export.jsonl");
    assert!(styrlogg(&source, &["export", "-o", file.to_str().unwrap()]).status.success());
    let target = dir.path().join("target");
    let mut child = command(&target, &["import", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mark = target.join("IMPORTING");
    let started = std::time::Instant::now();
    while !mark.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the import of 40 000 events ended before its mark was seen");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "no mark within 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "interrupted: {status:?}");
    let refused: [&[&str]; 5] = [
        &["verify"],
        &["status"],
        &["import", file.to_str().unwrap()],
        &["export", "--salvage"],
        &["rebuild", "--index"],
    ];
    for args in refused {
        assert_fails(&styrlogg(&target, args), 1, "holds an import that did not finish (40000 events from");
    }
    // Removed and imported again: the whole export.
    std::fs::remove_dir_all(&target).unwrap();
    let o = styrlogg(&target, &["import", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("imported 40000 events"), "{}", stdout(&o));
    assert!(!mark.exists());
    assert!(styrlogg(&target, &["verify"]).status.success());
}

#[test]
fn demo_export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let demo = styrlogg(&a, &["demo"]);
    assert!(demo.status.success(), "{}", stderr(&demo));
    assert!(stdout(&demo).contains("Dnr LJ2012/896"));
    assert!(stdout(&demo).contains("DEVIATION: Protokollet är daterat 2011-06-26"), "{}", stdout(&demo));
    assert!(stdout(&demo).contains("OK: 31 events in 7 instances"), "{}", stdout(&demo));
    // Running it again records nothing new.
    let head = stdout(&styrlogg(&a, &["head"]));
    let again = styrlogg(&a, &["demo"]);
    assert!(stdout(&again).contains("Nothing new was written"), "{}", stdout(&again));
    assert_eq!(stdout(&styrlogg(&a, &["head"])), head);
    assert!(head.starts_with("position 31 hash "), "{head}");
    // Never into a store in use: its own records would gain the demo's.
    let in_use = dir.path().join("in-use");
    let start = ["start", "medborgardialog", "--instance", "park-2026", "--org", "Tyresö kommun", "--on", "2026-01-15"];
    assert!(styrlogg(&in_use, &[&start[..], &["--by", "Anna Ek", "--role", "handlaggare"]].concat()).status.success());
    let before = stdout(&styrlogg(&in_use, &["export"]));
    assert_fails(&styrlogg(&in_use, &["demo"]), 1, "is not a store an earlier demo made");
    let mut by_env = Command::new(env!("CARGO_BIN_EXE_styrlogg"));
    by_env.arg("demo").env("STYRLOGG_DATA", &in_use).env_remove("STYRLOGG_TODAY").env_remove("STYRLOGG_CONFIG");
    assert_fails(&by_env.output().unwrap(), 1, "(this one came from STYRLOGG_DATA)");
    assert_eq!(stdout(&styrlogg(&in_use, &["export"])), before, "the store in use is untouched");
    // Nor into a key store in use: the demo's people would get keys there.
    let keys = dir.path().join("keys-in-use");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("a-key"), "").unwrap();
    let new = dir.path().join("new-demo");
    assert_fails(&styrlogg(&new, &["--keys", keys.to_str().unwrap(), "demo"]), 1, "holds a key store");
    assert!(!new.exists(), "nothing was made");
    record_selection(&a);
    // Rebuilding the index says where the old one went.
    let rebuilt = styrlogg(&a, &["rebuild", "--index"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    let old = a.join("index.old-");
    assert!(stdout(&rebuilt).contains(&format!("the old index is kept as {}", old.display())), "{}", stdout(&rebuilt));
    assert!(!stdout(&rebuilt).contains("older index"), "{}", stdout(&rebuilt));
    // Again: the first one kept is named, so they do not pile up unnoticed.
    let again = styrlogg(&a, &["rebuild", "--index"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("1 older index(es) kept by earlier rebuilds"), "{}", stdout(&again));

    let export = styrlogg(&a, &["export"]);
    assert!(export.status.success());
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    assert_eq!(stdout(&export).lines().count(), 32);

    let b = dir.path().join("b");
    let import = styrlogg(&b, &["import", file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", stderr(&import));
    // The demo's people have sealed facts, and b has no key store: said.
    assert!(
        stderr(&import).contains("person(s) in this log have sealed personal data and no key"),
        "{}",
        stderr(&import)
    );
    let with_keys = dir.path().join("c");
    let keys = format!("{}", dir.path().join("a.keys").display());
    let import = styrlogg(&with_keys, &["--keys", &keys, "import", file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(!stderr(&import).contains("no key"), "the key store they were sealed with: {}", stderr(&import));
    let verify = styrlogg(&b, &["verify"]);
    assert!(verify.status.success());
    assert!(stdout(&verify).starts_with("OK: 32 events in 7 instances"), "{}", stdout(&verify));
    let export2 = styrlogg(&b, &["export"]);
    assert_eq!(export.stdout, export2.stdout, "a second export is byte-identical");

    let json = styrlogg(&b, &["log", "--format", "json", "--instance", "ljl-2012-styrsystem"]);
    let ljl: String = stdout(&export)
        .lines()
        .filter(|l| l.contains("\"instance\":\"ljl-2012-styrsystem\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(stdout(&json), ljl);
    let text = styrlogg(&b, &["log"]);
    assert!(stdout(&text).contains(
        "medverkande: Tommy Bernevång Forsberg, ordförande i Allmänpolitiska utskottet, justerar (förtroendevald)"
    ));

    // Importing again into a store that has events is refused, and changes nothing.
    assert_fails(&styrlogg(&b, &["import", file.to_str().unwrap()]), 1, "import loads into an empty store");
    assert_eq!(styrlogg(&b, &["export"]).stdout, export.stdout);
}

/// A third event, so chains have a middle.
fn record_selection(store: &Path) {
    let out = styrlogg(
        store,
        &[
            "record",
            "ljl-2012-styrsystem",
            "plats_bekraftad",
            "--on",
            "2012-03-01",
            "--fact",
            "besked=plats",
            "--by",
            "Test Testsson",
            "--role",
            "skl",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_input_gets_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert_fails(&styrlogg(&missing, &["log"]), 1, "no store at");
    assert!(!missing.exists(), "reading never creates a store");
    assert_fails(&styrlogg(dir.path(), &["log", "--bogus"]), 2, "unexpected argument '--bogus'");
    assert_fails(&styrlogg(dir.path(), &["log", "--format", "xml"]), 2, "invalid value 'xml'");

    let not_store = dir.path().join("papers");
    std::fs::create_dir(&not_store).unwrap();
    std::fs::write(not_store.join("protokoll.txt"), "§ 100").unwrap();
    assert_fails(&styrlogg(&not_store, &["verify"]), 1, "is not a styrlogg store");
    let file = not_store.join("protokoll.txt");
    assert_fails(&styrlogg(&file, &["log"]), 1, "it is a file");
    // A marker of another layout is quoted; one that is anything else
    // (a megabyte of it) is quoted short, by every command that reads it.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for (marker, quoted) in [
        ("styrlogg store layout 9\n".to_string(), "its marker says \"styrlogg store layout 9\", not this layout"),
        ("x".repeat(1 << 20), &format!("its marker says \"{}\" ..., not this layout", "x".repeat(60))),
    ] {
        std::fs::write(other.join("STORE"), &marker).unwrap();
        for args in [&["status"][..], &["rebuild", "--index"], &["export", "--salvage"]] {
            let out = styrlogg(&other, args);
            assert_fails(&out, 1, quoted);
            assert!(stderr(&out).len() < 400, "{args:?}: {}", stderr(&out));
        }
        assert_eq!(std::fs::read_to_string(other.join("STORE")).unwrap(), marker, "nothing touched");
    }

    let store = dir.path().join("store");
    assert!(styrlogg(&store, &["demo"]).status.success());
    // This layout's marker with an editor's line end is still this layout's.
    let marker = std::fs::read_to_string(store.join("STORE")).unwrap();
    std::fs::write(store.join("STORE"), marker.replace('\n', "\r\n")).unwrap();
    let o = styrlogg(&store, &["head"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(store.join("STORE"), &marker).unwrap();
    record_selection(&store);
    let before = styrlogg(&store, &["export"]).stdout;
    assert_fails(&styrlogg(&store, &["log", "--instance", "no such"]), 1, "contains ' '");

    // A corrupted import line is named, and the target store stays empty.
    let lines: Vec<String> = String::from_utf8(before.clone()).unwrap().lines().map(String::from).collect();
    let target = dir.path().join("target");
    let occurred = |l: &str| l.split("\"occurred_on\":\"").nth(1).unwrap()[..10].to_string();
    let cases = [
        ("not json", format!("{}\nnot json\n", lines[0]), "line 2: not an exported event"),
        ("bad date", lines[0].replace(&occurred(&lines[0]), "2011-02-30"), "line 1: not an exported event"),
        (
            "tampered",
            format!("{}\n{}\n", lines[0], lines[1].replacen("Rekonstruktion", "Efterhandskonstruktion", 1)),
            "line 2: position 2: event does not match its hash",
        ),
        ("reordered", format!("{}\n{}\n", lines[1], lines[0]), "line 1: position 1"),
        ("gap", format!("{}\n{}\n", lines[0], lines[2]), "line 2: position 2"),
        // A field this version does not know would be dropped, not kept:
        // refused, wherever it is.
        (
            "unknown field",
            format!(
                "{}\n{}\n",
                lines[0],
                lines[1].replacen("{\"format_version\"", "{\"signed_by\":\"x\",\"format_version\"", 1)
            ),
            "line 2: not an exported event: unknown field `signed_by`",
        ),
        (
            "unknown nested field",
            lines[0].replacen("\"role\":", "\"title\":\"x\",\"role\":", 1),
            "line 1: not an exported event: unknown field `title`",
        ),
    ];
    for (what, content, needle) in cases {
        let f = dir.path().join(format!("{what}.jsonl"));
        std::fs::write(&f, content).unwrap();
        assert_fails(&styrlogg(&target, &["import", f.to_str().unwrap()]), 1, needle);
        assert!(!target.exists(), "{what}: a refused import creates nothing");
    }
    // A file that is not there, or a directory, is the user's to fix (1), for every command that reads one.
    let missing = dir.path().join("no-such-file.toml");
    let folder = dir.path().join("a-folder.toml");
    std::fs::create_dir(&folder).unwrap();
    for (path, says) in [(&missing, "no-such-file.toml: no such file"), (&folder, "a-folder.toml: it is a directory")] {
        let m = path.to_str().unwrap();
        for args in [
            &["import", m][..],
            &["load", m][..],
            &["workflows", "check", m][..],
            &["record", "x", "y", "--on", "2012-01-01", "--facts", m, "--by", "A", "--role", "registrator"][..],
        ] {
            // `workflows check` takes a directory for the definitions in it.
            let says = if path == &folder && args[0] == "workflows" { "holds no workflow definitions" } else { says };
            assert_fails(&styrlogg(&target, args), 1, says);
        }
    }
    assert!(!target.exists(), "nothing was made");
    assert_eq!(styrlogg(&store, &["export"]).stdout, before, "the source store is untouched");
}

#[test]
fn help_describes_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let help = styrlogg(dir.path(), &["--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    for cmd in ["log", "verify", "head", "export", "import", "demo", "--data", "STYRLOGG_DATA", "Exit status"] {
        assert!(text.contains(cmd), "--help mentions {cmd}");
    }
    assert!(!text.contains("stress"), "internal commands stay hidden");
    assert_eq!(text.matches("Usage:").count(), 1, "--help is printed once: {text}");
    let sub = stdout(&styrlogg(dir.path(), &["status", "--help"]));
    assert_eq!(sub.matches("Usage:").count(), 1, "a command's --help is printed once: {sub}");
    let version = styrlogg(dir.path(), &["--version"]);
    assert!(version.status.success());
    assert_eq!(stdout(&version), format!("styrlogg {}\n", env!("CARGO_PKG_VERSION")), "--version is one line");
}

#[test]
fn start_record_status_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let by = ["--by", "Anita Brynje", "--role", "registrator"];
    let run = |args: &[&str]| styrlogg(&s, args);
    let start = [
        "start",
        "skl-styrsystem-2012-2014",
        "--instance",
        "tyreso-2012",
        "--org",
        "Tyresö kommun",
        "--on",
        "2012-01-15",
    ];
    let out = run(&[&start[..], &by[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let retry = run(&[&start[..], &by[..]].concat());
    assert!(stdout(&retry).contains("already recorded"), "an identical retry is recognised: {}", stdout(&retry));
    let other =
        ["start", "masterclass-2015-2017", "--instance", "tyreso-2012", "--org", "Tyresö kommun", "--on", "2015-10-22"];
    assert_fails(&run(&[&other[..], &by[..]].concat()), 1, "instance tyreso-2012 already exists");
    for odd in ["../x", "a/", "/a", "a//b", "a/./b"] {
        let start =
            ["start", "masterclass-2015-2017", "--instance", odd, "--org", "Tyresö kommun", "--on", "2015-10-22"];
        assert_fails(&run(&[&start[..], &by[..]].concat()), 1, "may not start or end with /, hold //, or have a part");
    }

    let facts = dir.path().join("facts.toml");
    std::fs::write(&facts, "kontaktperson = [\"Anita Brynje|kontaktperson|official\", \"Karin Hassler|kontaktperson|official\"]\norganisation = \"Tyresö kommun\"\n").unwrap();
    let out = run(&[
        &["record", "tyreso-2012", "intresseanmalan", "--on", "2012-01-20", "--facts", facts.to_str().unwrap()][..],
        &by[..],
    ]
    .concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("step intresseanmalan of tyreso-2012 recorded at position 2"), "{}", stdout(&out));

    let before = run(&["export"]).stdout;
    let plan = ["record", "tyreso-2012", "projektplan", "--on", "2012-10-01", "--by", "P L", "--role", "projektledare"];
    assert_fails(&run(&plan), 1, "rejected by rule missing-prerequisite at step projektplan");
    assert_fails(
        &run(&[&["record", "tyreso-2012", "styrelsebeslut", "--on", "2012-02-30"][..], &by[..]].concat()),
        2,
        "not a real date",
    );
    assert_fails(
        &run(&[&["record", "nacka-2012", "styrelsebeslut", "--on", "2012-02-03"][..], &by[..]].concat()),
        1,
        "no instance nacka-2012",
    );
    assert_fails(
        &run(&[
            "record",
            "tyreso-2012",
            "styrelsebeslut",
            "--on",
            "2012-09-03",
            "--fact",
            "organ=KS",
            "--by",
            "X",
            "--role",
            "registrator",
        ]),
        1,
        "missing-fact",
    );
    assert_fails(
        &run(&["start", "no-such-flow", "--instance", "x", "--org", "y", "--by", "a", "--role", "b"]),
        1,
        "no workflow \"no-such-flow\"",
    );
    assert_eq!(run(&["export"]).stdout, before, "rejections write nothing");

    // A late board decision is accepted and flagged.
    let board = [
        "record",
        "tyreso-2012",
        "styrelsebeslut",
        "--on",
        "2012-09-03",
        "--fact",
        "organ=Kommunstyrelsen",
        "--fact",
        "protokoll=Kommunstyrelsen|2012-09-03|§ 7",
        "--fact",
        "diarienummer=KS 2012/88",
        "--by",
        "S",
        "--role",
        "sekreterare",
    ];
    let out = run(&board);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("flagged late: 3 day(s) after the deadline 2012-08-31"), "{}", stdout(&out));
    let again = run(&board);
    assert!(stdout(&again).contains("already recorded"), "an identical retry is recognised: {}", stdout(&again));

    let status = run(&["status", "tyreso-2012", "--today", "2012-10-20"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains("[x] intresseanmalan"), "{text}");
    assert!(text.contains("LATE by 3 day(s)"), "{text}");
    assert!(text.contains("[!] projektplan"), "{text}");
    assert!(text.contains("escalate to styrgrupp"), "{text}");
    assert!(text.contains("OVERDUE: the last day was 2012-10-14 (6 day(s) ago)"), "{text}");
    assert!(text.contains("Next deadlines: 2012-11-30 uppfoljning_budget"), "{text}");

    let json = run(&["status", "--format", "json", "--today", "2012-10-20"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["instance"], "tyreso-2012");
    let plan = v["steps"].as_array().unwrap().iter().find(|s| s["id"] == "projektplan").unwrap();
    assert_eq!(plan["overdue"], true);
    assert_eq!(plan["deadline"], "2012-10-14");

    // Corrections: the date moved inside the deadline makes the step on
    // time; a correction of nothing, or one that breaks the order, is
    // refused; the same correction given again after another one is no
    // retry and is written.
    let log = stdout(&run(&["log", "--instance", "tyreso-2012"]));
    let board_event = log
        .split("step styrelsebeslut")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(1))
        .map(|id| id.trim_end_matches(','))
        .unwrap_or_else(|| panic!("the board decision's event id in {log}"))
        .to_string();
    let correct = |extra: &[&str]| {
        let args: Vec<&str> = ["correct", board_event.as_str(), "--reason", "Fel datum", "--today", "2012-10-20"]
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .chain(["--by", "S", "--role", "sekreterare"])
            .collect();
        run(&args)
    };
    let before = run(&["export"]).stdout;
    assert_fails(&correct(&[]), 1, "rejected by rule empty-correction");
    assert_fails(&correct(&["--date", "2012-01-10"]), 1, "is before intresseanmalan happened (2012-01-20)");
    assert_eq!(run(&["export"]).stdout, before, "refused corrections write nothing");
    let on_time = correct(&["--date", "2012-08-30"]);
    assert!(on_time.status.success(), "{}", stderr(&on_time));
    let text = stdout(&run(&["status", "tyreso-2012", "--today", "2012-10-20"]));
    assert!(text.contains("done 2012-08-30, corrected 1 time(s)"), "no longer late: {text}");
    let compliance =
        run(&["report", "compliance", "--instance", "tyreso-2012", "--format", "json", "--today", "2012-10-20"]);
    let v: serde_json::Value = serde_json::from_slice(&compliance.stdout).unwrap();
    assert!(!v.to_string().contains("\"days_late\":3"), "{v}");
    let late_again = correct(&["--date", "2012-09-03"]);
    assert!(late_again.status.success(), "{}", stderr(&late_again));
    assert!(stdout(&run(&["status", "tyreso-2012", "--today", "2012-10-20"])).contains("LATE by 3 day(s)"));
    let back = correct(&["--date", "2012-08-30"]);
    assert!(back.status.success(), "{}", stderr(&back));
    assert!(!stdout(&back).contains("already recorded"), "given anew, not a retry: {}", stdout(&back));
    assert!(stdout(&run(&["status", "tyreso-2012", "--today", "2012-10-20"])).contains("done 2012-08-30, corrected 3"));
    let retry = correct(&["--date", "2012-08-30"]);
    assert!(stdout(&retry).contains("already recorded"), "a retry right after is one: {}", stdout(&retry));
    // The event may be named by the start of its id, or by its position.
    let by = |event: &str| {
        let args = ["correct", event, "--reason", "Fel datum", "--date", "2012-08-30", "--today", "2012-10-20"];
        run(&[&args[..], &["--by", "S", "--role", "sekreterare"]].concat())
    };
    let short = by(&board_event[..8]);
    assert!(stdout(&short).contains(&format!("correction of {board_event}")), "{}", stderr(&short));
    assert!(stdout(&short).contains("already recorded"), "the same command: {}", stdout(&short));
    let position = log
        .lines()
        .find(|l| l.contains("step styrelsebeslut"))
        .and_then(|l| l.strip_prefix('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the board decision's position in {log}"));
    for p in [position.to_string(), format!("#{position}")] {
        let o = by(&p);
        assert!(stdout(&o).contains(&format!("correction of {board_event}")), "{p}: {}", stderr(&o));
    }
    let before = run(&["export"]).stdout;
    assert_fails(&by("9999"), 1, "the log has no event at position 9999");
    assert_fails(&by("1b13"), 1, "give its id (32 hex digits, or its first 8 or more) or its position");
    assert_fails(&by("00000000"), 1, "no event id in the log starts with 00000000");
    // A correction is not corrected itself: the message names the original.
    let head: u64 = stdout(&run(&["head"])).split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_fails(&by(&format!("#{head}")), 1, &format!("is itself a correction, of event {board_event}"));
    assert_eq!(run(&["export"]).stdout, before, "refused corrections write nothing");
}

#[test]
fn a_correction_that_undoes_a_condition_shows_in_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let ok = |args: &[&str], role: &str| {
        let o = styrlogg(&s, &[args, &["--by", "H", "--role", role, "--today", "2024-03-01"][..]].concat());
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(
        &["start", "medborgardialog", "--instance", "d", "--org", "Härryda kommun", "--on", "2024-01-02"],
        "handlaggare",
    );
    ok(&["record", "d", "fraga_vackt", "--on", "2024-01-03", "--fact", "fraga=Ny skola?"], "handlaggare");
    ok(
        &[
            "record",
            "d",
            "checklista",
            "--on",
            "2024-01-04",
            "--fact",
            "fragan_paverkbar=ja",
            "--fact",
            "beslutsfattare_paverkbara=ja",
        ],
        "handlaggare",
    );
    let facts = ["syfte=s", "trappsteg=dialog", "malgrupper=m", "metod=m", "beslutar=KS i juni"];
    let mut args = vec!["record", "d", "beslut_om_dialog", "--on", "2024-01-10"];
    for f in &facts {
        args.extend(["--fact", f]);
    }
    ok(&args, "sekreterare");
    let verdict = || {
        let o = styrlogg(&s, &["report", "compliance", "--instance", "d", "--format", "json", "--today", "2024-03-01"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ob = v["obligations"].as_array().unwrap().iter().find(|o| o["step"] == "beslut_om_dialog").unwrap().clone();
        ob
    };
    assert_eq!(verdict()["verdict"], "met");
    let log = stdout(&styrlogg(&s, &["log", "--instance", "d"]));
    let checklist = log.split("step checklista").nth(1).and_then(|r| r.split_whitespace().nth(1)).unwrap();
    let checklist = checklist.trim_end_matches(',').to_string();
    ok(&["correct", &checklist, "--reason", "Fel ifyllt", "--fact", "beslutsfattare_paverkbara=nej"], "handlaggare");
    let ob = verdict();
    assert_eq!(ob["verdict"], "met_condition_not_met", "{ob}");
    assert!(
        ob["evidence"][0]["condition_not_met"].as_str().unwrap().contains("checklista.beslutsfattare_paverkbara"),
        "{ob}"
    );
    let text = stdout(&styrlogg(&s, &["report", "compliance", "--instance", "d", "--today", "2024-03-01"]));
    assert!(
        text.contains("done, but its condition is not met") || text.contains("villkoret är inte uppfyllt"),
        "{text}"
    );
}

#[test]
fn a_refused_command_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    assert!(styrlogg(&s, &["demo"]).status.success());
    let clean = s.join("CLEAN");
    let files = || {
        let mut v: Vec<(String, Vec<u8>)> = walk(&s)
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .filter(|(p, _)| !p.contains("/index"))
            .collect();
        v.sort();
        v
    };
    assert!(clean.exists(), "a clean close leaves its mark");
    let before = files();
    // Refused by a workflow rule, by the store (a non-empty store to import
    // into), and a correction of an event that is not there.
    assert_fails(
        &styrlogg(
            &s,
            &["record", "tyreso-2012", "styrelsebeslut", "--on", "2012-09-03", "--by", "X", "--role", "registrator"],
        ),
        1,
        "rejected",
    );
    let export = dir.path().join("e.jsonl");
    std::fs::write(&export, styrlogg(&s, &["export"]).stdout).unwrap();
    assert_fails(&styrlogg(&s, &["import", export.to_str().unwrap()]), 1, "empty");
    assert_fails(
        &styrlogg(
            &s,
            &[
                "correct",
                "0123456789abcdef0123456789abcdef",
                "--reason",
                "x",
                "--fact",
                "a=b",
                "--by",
                "X",
                "--role",
                "registrator",
            ],
        ),
        1,
        "0123456789abcdef0123456789abcdef",
    );
    assert_eq!(files(), before, "the log's files, CLEAN included, are untouched");
}

#[test]
fn verify_with_its_reader_gone_still_exits_with_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    assert!(styrlogg(&s, &["demo"]).status.success());
    // `| head -0`: the reader is gone before the first line. (Other commands
    // end with 141 then: `a_reader_that_goes_away_ends_output_quietly`.)
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = command(&s, &["verify"]).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// Every file under `dir`, depth first.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_extended_deadline_keeps_its_calendar_uid() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let by = ["--by", "S", "--role", "sekreterare", "--today", "2024-03-20"];
    let run = |args: &[&str]| {
        let o = styrlogg(&s, &[args, &by[..]].concat());
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    run(&["start", "protokoll-laga-kraft", "--instance", "p", "--org", "Härryda kommun", "--on", "2024-03-15"]);
    run(&[
        "record",
        "p",
        "sammantrade",
        "--on",
        "2024-03-15",
        "--fact",
        "protokoll=KS|2024-03-15|§ 1",
        "--fact",
        "beslut=b",
    ]);
    let field = |ics: &str, name: &str| {
        ics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {ics}")).to_string()
    };
    let before = stdout(&styrlogg(&s, &["deadlines", "--format", "ics", "--today", "2024-03-20"]));
    let said = run(&["deadline", "p", "justerat", "--extend-to", "2024-04-12", "--reason", "Ordföranden sjuk"]);
    assert!(
        said.starts_with("the deadline 2024-04-02 of justerat of p, extended to 2024-04-12, recorded at"),
        "{said}"
    );
    let after = stdout(&styrlogg(&s, &["deadlines", "--format", "ics", "--today", "2024-03-20"]));
    assert_eq!(field(&before, "UID:"), field(&after, "UID:"));
    assert_ne!(field(&before, "DTSTART"), field(&after, "DTSTART"));
    assert!(field(&after, "DTSTART").ends_with("20240412"), "{after}");
    let said = run(&["deadline", "p", "justerat", "--waive", "--reason", "Protokollet justeras inte"]);
    assert!(said.starts_with("the deadline 2024-04-12 of justerat of p, waived, recorded at"), "{said}");
    assert!(said.contains("justerat has no further deadline"), "{said}");
}

#[test]
fn organisation_names_are_kept_in_one_form() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    // "ö" typed as "o" + a combining diaeresis, with stray spaces.
    let decomposed = "  Tyreso\u{308}   kommun ";
    let start = |instance: &str, org: &str| {
        styrlogg(
            &s,
            &[
                "start",
                "skl-styrsystem-2012-2014",
                "--instance",
                instance,
                "--org",
                org,
                "--on",
                "2012-01-15",
                "--by",
                "A",
                "--role",
                "registrator",
            ],
        )
    };
    assert!(start("a", decomposed).status.success());
    assert!(start("b", "Tyresö kommun").status.success());
    let status = stdout(&styrlogg(&s, &["status", "--format", "json", "--today", "2012-02-01"]));
    let orgs: Vec<String> = status
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["organisation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orgs, ["Tyresö kommun", "Tyresö kommun"], "{status}");
    // A name no instance has is refused alike by every report scoped to one.
    for args in [
        &["report", "annual", "--org", "Nacka kommun", "--year", "2012"][..],
        &["report", "dialogues", "--org", "Nacka kommun"],
        &["deadlines", "--org", "Nacka kommun"],
        &["audit", "--org", "Nacka kommun"],
    ] {
        assert_fails(&styrlogg(&s, args), 1, "Nacka kommun");
    }
    assert_fails(&styrlogg(&s, &["deadlines", "--org", "Nacka"]), 1, "`styrlogg status` lists the instances");
    for org in ["Tyresö kommun", decomposed, "TYRESÖ KOMMUN"] {
        let annual = styrlogg(&s, &["report", "annual", "--org", org, "--year", "2012", "--format", "json"]);
        assert!(annual.status.success(), "{org:?}: {}", stderr(&annual));
        let audit = stdout(&styrlogg(&s, &["audit", "--org", org]));
        assert!(audit.contains("a/1") && audit.contains("b/1"), "{org:?}: both instances in {audit}");
    }
}

#[test]
fn workflows_check_lists_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let defs = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/definitions");
    let mut files: Vec<String> =
        std::fs::read_dir(&defs).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    files.sort();
    let args: Vec<&str> =
        std::iter::once("workflows").chain(std::iter::once("check")).chain(files.iter().map(String::as_str)).collect();
    let ok = styrlogg(dir.path(), &args);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).matches(": ok: ").count(), 5);

    let bad = dir.path().join("bad.toml");
    let src = std::fs::read_to_string(defs.join("medborgardialog.toml"))
        .unwrap()
        .replace("after = [\"checklista\"]", "after = [\"checklistan\"]")
        .replace(
            "recorded_by = [\"handlaggare\"]\nfacts = [{ name = \"hur\"",
            "recorded_by = [\"kommunikator\"]\nfacts = [{ name = \"hur\"",
        );
    std::fs::write(&bad, &src).unwrap();
    let out = styrlogg(dir.path(), &["workflows", "check", bad.to_str().unwrap()]);
    assert_fails(&out, 1, "1 of 1 definition file(s) have problems");
    let err = stderr(&out);
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(err.contains(&format!("bad.toml:{}:", line_of("after = [\"checklistan\"]"))), "{err}");
    assert!(err.contains(&format!("bad.toml:{}:", line_of("\"kommunikator\""))), "{err}");
    assert!(err.contains("requires a fact of \"checklista\" but does not come after it"), "{err}");
    // A directory is checked file by file: the bad one among the good.
    let together = dir.path().join("together");
    std::fs::create_dir(&together).unwrap();
    std::fs::copy(&bad, together.join("bad.toml")).unwrap();
    std::fs::copy(defs.join("medborgardialog.toml"), together.join("good.toml")).unwrap();
    let out = styrlogg(dir.path(), &["workflows", "check", together.to_str().unwrap()]);
    assert_fails(&out, 1, "1 of 2 definition file(s) have problems");
    assert!(stdout(&out).contains("good.toml: ok: medborgardialog"), "{}", stdout(&out));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_fails(
        &styrlogg(dir.path(), &["workflows", "check", empty.to_str().unwrap()]),
        1,
        "holds no workflow definitions",
    );
}

/// `--output` writes through a symbolic link to its target, into a FIFO or
/// device as it is, keeps the permissions of a file it replaces, and
/// refuses a file inside the store's own directory.
#[test]
fn output_files_follow_links_keep_permissions_and_stay_out_of_the_store() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    assert!(styrlogg(&data, &["demo"]).status.success());
    let export = styrlogg(&data, &["export"]).stdout;

    let target = tmp.path().join("target.jsonl");
    let link = tmp.path().join("link.jsonl");
    std::os::unix::fs::symlink("target.jsonl", &link).unwrap();
    let o = styrlogg(&data, &["export", "-o", link.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read(&target).unwrap(), export, "its target gets the export");

    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = styrlogg(&data, &["deadlines", "-o", target.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600, "still private");

    let fifo = tmp.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = styrlogg(&data, &["export", "-o", fifo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), export, "a FIFO is written to, not replaced");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    let o = styrlogg(&data, &["export", "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "a device is written to");

    let segment = std::fs::read_dir(data.join("log")).unwrap().next().unwrap().unwrap().path();
    let before = std::fs::read(&segment).unwrap();
    for args in [&["export", "--salvage", "-o"][..], &["export", "-o"][..]] {
        let o = styrlogg(&data, &[args, &[segment.to_str().unwrap()]].concat());
        assert_fails(&o, 1, "inside the store's directory");
    }
    assert_eq!(std::fs::read(&segment).unwrap(), before);
    assert!(styrlogg(&data, &["verify"]).status.success());

    // Nor into the key store, where a person's key could be replaced,
    // nor over the signing key, wherever it is.
    let keys = tmp.path().join("store.keys");
    let person = std::fs::read_dir(keys.join("persons")).unwrap().next().unwrap().unwrap().path();
    let key_before = std::fs::read(&person).unwrap();
    for target in [person.clone(), keys.join("report.md")] {
        let o = styrlogg(&data, &["deadlines", "-o", target.to_str().unwrap()]);
        assert_fails(&o, 1, "inside the key store");
    }
    assert_eq!(std::fs::read(&person).unwrap(), key_before);
    assert!(!keys.join("report.md").exists());
    let signing = tmp.path().join("elsewhere.key");
    let given = ["--signing-key", signing.to_str().unwrap()];
    std::fs::write(&signing, b"a signing key, whatever its content").unwrap();
    let signing_before = std::fs::read(&signing).unwrap();
    let o = styrlogg(&data, &[&given[..], &["export", "-o", signing.to_str().unwrap()]].concat());
    assert_fails(&o, 1, "the log's signing key");
    assert_eq!(std::fs::read(&signing).unwrap(), signing_before);
}

/// A reader that goes away (`styrlogg log | head -1`) ends a command
/// quietly with status 141, as a process stopped by SIGPIPE: no error
/// message, and no exit 3 as if the system had failed. The pipe's reading
/// end is closed before the command starts, so its first write fails.
#[test]
fn a_reader_that_goes_away_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(styrlogg(&store, &["demo"]).status.success());
    for args in [
        &["log"][..],
        &["log", "--format", "json"],
        &["export"],
        &["export", "--salvage"],
        &["status"],
        &["report", "dialogues", "--org", "Härryda kommun"],
        &["audit", "--org", "Härryda kommun"],
        // Commands that print with `println!`.
        &["head"],
        &["workflows", "list"],
        &["persons"],
        &["rebuild"],
        // What clap prints.
        &["--help"],
        &["-V"],
        &["help", "log"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = command(&store, args).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    // Into a file, the same commands write everything.
    let o = styrlogg(&store, &["export"]);
    assert!(o.status.success() && !o.stdout.is_empty(), "{}", stderr(&o));
    // `-o /dev/stdout` on a pipe (a link to a pipe no path leads to) is
    // written to as it is.
    let piped = styrlogg(&store, &["export", "-o", "/dev/stdout"]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(piped.stdout, o.stdout);
    // A closed stderr does not turn an error into a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = command(&dir.path().join("missing"), &["status"]).stderr(writer).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the error's own status");
}

/// SIGINT or SIGTERM while an `--output` file is being written removes its
/// temporary file and leaves an earlier file of that name as it was.
#[test]
fn a_signal_leaves_no_partial_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let made = styrlogg(&store, &["stress", "--writers", "8", "--commands", "300", "--batch", "20"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("log.jsonl");
    for (args, signal, code) in
        [(&["export"][..], "-INT", 130), (&["export", "--salvage"], "-TERM", 143), (&["export"], "-HUP", 129)]
    {
        std::fs::write(&target, "earlier\n").unwrap();
        let args = [args, &["-o", target.to_str().unwrap()]].concat();
        let mut child = command(&store, &args).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // Wait for the temporary file to appear, then stop the command.
        let partial = || {
            std::fs::read_dir(&out_dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".partial"))
        };
        let started = std::time::Instant::now();
        while !partial() {
            assert!(child.try_wait().unwrap().is_none(), "{args:?} ended before it could be stopped");
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "no temporary file appeared");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let pid = child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("stopped by a signal"), "{}", stderr(&out));
        assert!(!partial(), "{args:?}: the temporary file was removed");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "earlier\n", "{args:?}");
    }
}

/// An instance the log already holds keeps its id, even one a new
/// instance may no longer have (written before the rule, or imported):
/// starting it again is refused as an existing instance, not for its id.
#[tokio::test]
async fn an_instance_in_the_log_keeps_an_id_new_ones_may_not_have() {
    use engine::{Actor, AppendRequest, CommandId, EmbeddedStore, EventStore, ExpectedVersion, InstanceId, OpenMode};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let src = workflows::builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("medborgardialog")).unwrap().1;
    let def = workflows::Definition::parse(src).unwrap();
    let day = jiff::civil::date(2026, 1, 15);
    let store = EmbeddedStore::open(&data, OpenMode::CreateIfMissing, crate::support::clock()).unwrap();
    let start = workflows::start(&def, "Tyresö kommun", None, day, Actor::new("Anna Ek", "handlaggare"), day).unwrap();
    store
        .append(AppendRequest {
            instance: InstanceId::new("gammal/").unwrap(),
            expected: ExpectedVersion::NoStream,
            command_id: CommandId::new("imported-start").unwrap(),
            events: vec![start],
        })
        .await
        .unwrap();
    store.close().unwrap();
    let again = ["start", "medborgardialog", "--instance", "gammal/", "--org", "Tyresö kommun", "--on", "2026-01-15"];
    let o = styrlogg(&data, &[&again[..], &["--by", "Anna Ek", "--role", "handlaggare"]].concat());
    assert_fails(&o, 1, "instance gammal/ already exists");
    let o = styrlogg(&data, &["status", "gammal/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let new = ["start", "medborgardialog", "--instance", "ny/", "--org", "Tyresö kommun", "--on", "2026-01-15"];
    let o = styrlogg(&data, &[&new[..], &["--by", "Anna Ek", "--role", "handlaggare"]].concat());
    assert_fails(&o, 1, "may not start or end with /");
}
