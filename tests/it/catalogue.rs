//! The catalogue of bad input a user can type or meet: impossible dates,
//! unknown steps and roles, oversized facts, control characters, very long
//! names, Swedish characters (which must come back exactly as given), a
//! store directory that is read-only, a full disk, and two processes
//! opening the same store. Each gets one clear line naming what is wrong,
//! a non-zero exit, and leaves what is stored exactly as it was.

use crate::cli::styrlogg;
use std::path::Path;
use std::process::{Command, Output};

const BY: [&str; 4] = ["--by", "Åsa Öberg", "--role", "registrator"];

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A store holding one started instance.
fn started(dir: &Path) -> std::path::PathBuf {
    let s = dir.join("store");
    let out = styrlogg(
        &s,
        &[
            &["start", "skl-styrsystem-2012-2014", "--instance", "harryda-2012", "--org", "Härryda kommun"][..],
            &["--on", "2012-09-20"][..],
            &BY[..],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let facts = ["--fact", "kontaktperson=Åsa Öberg|kontaktperson|official", "--fact", "organisation=Härryda kommun"];
    let out = styrlogg(
        &s,
        &[&["record", "harryda-2012", "intresseanmalan", "--on", "2012-09-21"][..], &facts[..], &BY[..]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    s
}

fn record(store: &Path, step: &str, on: &str, facts: &[&str], by: &[&str]) -> Output {
    let mut args = vec!["record", "harryda-2012", step, "--on", on];
    for f in facts {
        args.extend(["--fact", f]);
    }
    args.extend(by);
    styrlogg(store, &args)
}

#[test]
fn every_bad_input_gets_a_specific_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path());
    let before = styrlogg(&s, &["export"]).stdout;
    let long = "Ö".repeat(50_000);
    let huge_text = format!("behandling={}", "å".repeat(9_000));
    let organ_long = format!("organ={long}");
    let broken_defs = dir.path().join("defs");
    std::fs::create_dir(&broken_defs).unwrap();
    let builtin = workflows::builtin::DEFINITIONS.iter().find(|(n, _)| n.starts_with("protokoll")).unwrap().1;
    let broken = builtin.replacen("type = \"minutes\"", "type = \"protokoll\"", 1);
    assert_ne!(broken, builtin);
    std::fs::write(broken_defs.join("protokoll.toml"), broken).unwrap();
    let broken_defs = broken_defs.to_str().unwrap();
    let start_protokoll = [
        &["--workflows", broken_defs, "start", "protokoll-laga-kraft", "--instance", "ks-2026-1"][..],
        &["--org", "Härryda kommun", "--on", "2012-09-20"],
        &BY,
    ]
    .concat();
    let many: Vec<String> = (0..70).map(|i| format!("medverkande=Person {i}|sekreterare|official")).collect();
    let mut many_facts: Vec<&str> = many.iter().map(String::as_str).collect();
    many_facts.extend(["organ=Kommunstyrelsen", "behandling=Beredning"]);
    let board = ["organ=Kommunfullmäktige", "protokoll=Kommunfullmäktige|2012-10-25|§ 123", "diarienummer=KS 2012/449"];
    let with = |extra: &str| -> Vec<String> {
        let name = extra.split('=').next().unwrap();
        let mut v: Vec<String> = board.iter().filter(|f| !f.starts_with(name)).map(|f| f.to_string()).collect();
        v.push(extra.to_string());
        v
    };
    let bad_minutes = with("protokoll=Kommunfullmäktige|2012-10-32|§ 123");
    let unknown_fact = with("kaka=ja");
    let long_fact = with(&organ_long);
    let (bad_minutes, unknown_fact, long_fact) = (refs(&bad_minutes), refs(&unknown_fact), refs(&long_fact));
    let by_bell = ["--by", "Åsa\u{7}Öberg", "--role", "registrator"];
    let by_bidi = ["--by", "Åsa \u{202E}grebÖ", "--role", "registrator"];
    let by_long = ["--by", long.as_str(), "--role", "registrator"];
    let by_king = ["--by", "Åsa Öberg", "--role", "kung"];

    // (what, output, exit code, what the one line must say)
    let cases: Vec<(&str, Output, i32, &str)> = vec![
        ("30 February", record(&s, "styrelsebeslut", "2012-02-30", &board, &BY), 2, "not a real date"),
        ("29 February in a common year", record(&s, "styrelsebeslut", "2013-02-29", &board, &BY), 2, "not a real date"),
        ("month 13", record(&s, "styrelsebeslut", "2012-13-01", &board, &BY), 2, "not a real date"),
        ("a date in the wrong form", record(&s, "styrelsebeslut", "25/10/2012", &board, &BY), 2, "not a real date"),
        ("a date without dashes", record(&s, "styrelsebeslut", "20121025", &board, &BY), 2, "write YYYY-MM-DD"),
        ("a date with a time", record(&s, "styrelsebeslut", "2012-10-25T10:00", &board, &BY), 2, "write YYYY-MM-DD"),
        ("year 0", record(&s, "styrelsebeslut", "0000-10-25", &board, &BY), 2, "the year must be 1900 to 2100"),
        (
            "30 February, said how",
            record(&s, "styrelsebeslut", "2012-02-30", &board, &BY),
            2,
            "the day must be 01 to 29",
        ),
        (
            "--today after the real date, for a command that records",
            record(&s, "styrelsebeslut", "2099-10-25", &board, &[&BY[..], &["--today", "2099-10-25"]].concat()),
            1,
            "--today 2099-10-25 is after today",
        ),
        (
            "--workflows that is no directory",
            styrlogg(&s, &["--workflows", "/no/such/dir", "status"]),
            1,
            "--workflows /no/such/dir: no such directory",
        ),
        (
            "a definition in --workflows that does not parse, for a start",
            styrlogg(&s, &start_protokoll),
            1,
            "has errors, and no workflow is started or shown while a file of --workflows does not",
        ),
        (
            "a definition in --workflows that does not parse, for serve (a server would start instances)",
            // Bounded: a server that started would otherwise run on.
            Command::new("timeout")
                .args(["60", env!("CARGO_BIN_EXE_styrlogg"), "--data"])
                .arg(&s)
                .args(["--workflows", broken_defs, "serve", "--addr", "127.0.0.1:0"])
                .env_remove("STYRLOGG_TODAY")
                .output()
                .unwrap(),
            1,
            "has errors, and no workflow is started or shown while a file of --workflows does not",
        ),
        (
            "--as-of a day that has not come",
            styrlogg(&s, &["report", "annual", "--org", "Härryda kommun", "--year", "2012", "--as-of", "2099-01-01"]),
            1,
            "--as-of 2099-01-01 is after today",
        ),
        (
            "an organisation spelt otherwise than in the log",
            styrlogg(&s, &["report", "annual", "--org", "Harryda kommun", "--year", "2012"]),
            1,
            "no instance for organisation \"Harryda kommun\"; the organisations in the log: \"Härryda kommun\"",
        ),
        (
            "a minutes date that does not exist",
            record(&s, "styrelsebeslut", "2012-10-25", &bad_minutes, &BY),
            1,
            "protokoll",
        ),
        ("--today that does not exist", styrlogg(&s, &["status", "--today", "2012-04-31"]), 2, "not a real date"),
        (
            "--as-of that does not exist",
            styrlogg(&s, &["report", "annual", "--org", "Härryda kommun", "--year", "2013", "--as-of", "2014-00-10"]),
            2,
            "not a real date",
        ),
        ("an unknown step", record(&s, "kaffepaus", "2012-10-25", &board, &BY), 1, "has no step \"kaffepaus\""),
        ("an unknown role", record(&s, "styrelsebeslut", "2012-10-25", &board, &by_king), 1, "role \"kung\""),
        ("an unknown instance", styrlogg(&s, &["status", "nacka-2012"]), 1, "no instance nacka-2012"),
        ("an unknown fact", record(&s, "styrelsebeslut", "2012-10-25", &unknown_fact, &BY), 1, "no fact \"kaka\""),
        (
            "a text fact over the limit",
            record(&s, "beredning", "2012-10-25", &["organ=Kommunstyrelsen", &huge_text], &BY),
            1,
            "the limit is 16384",
        ),
        (
            "more facts than an event holds",
            record(&s, "beredning", "2012-10-25", &many_facts, &BY),
            1,
            "72 facts; the limit is 64",
        ),
        ("a control character in a name", record(&s, "styrelsebeslut", "2012-10-25", &board, &by_bell), 1, "U+0007"),
        ("a bidirectional control", record(&s, "styrelsebeslut", "2012-10-25", &board, &by_bidi), 1, "U+202E"),
        ("a 100 KB name", record(&s, "styrelsebeslut", "2012-10-25", &board, &by_long), 1, "the limit is 256"),
        (
            "an empty name, said by its option",
            record(&s, "styrelsebeslut", "2012-10-25", &board, &["--by", " ", "--role", "registrator"]),
            1,
            "--by: must not be empty",
        ),
        (
            "a deadline change that is neither an extension nor a waiver",
            styrlogg(
                &s,
                &["deadline", "harryda-2012", "styrelsebeslut", "--reason", "x", "--by", "A", "--role", "registrator"],
            ),
            2,
            "<--extend-to <DATE>|--waive>",
        ),
        (
            "an empty reason, said by its option",
            styrlogg(
                &s,
                &[
                    "deadline",
                    "harryda-2012",
                    "styrelsebeslut",
                    "--waive",
                    "--reason",
                    "",
                    "--by",
                    "A",
                    "--role",
                    "registrator",
                ],
            ),
            1,
            "--reason: must not be empty",
        ),
        ("a 100 KB fact", record(&s, "styrelsebeslut", "2012-10-25", &long_fact, &BY), 1, "the limit is"),
        ("a 100 KB step name", record(&s, &long, "2012-10-25", &board, &BY), 1, "has no step"),
        (
            "a 100 KB instance id",
            styrlogg(&s, &["status", &format!("x{}", "y".repeat(100_000))]),
            1,
            "the limit is 128",
        ),
    ];
    for (what, out, code, needle) in cases {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{what}: exit code; stderr {err:?}");
        assert!(err.contains(needle), "{what}: {err:?} says {needle:?}");
        assert!(err.starts_with("styrlogg: error:") || err.starts_with("error:"), "{what}: {err:?}");
        assert!(err.len() < 2_000, "{what}: the message does not repeat a huge input ({} bytes)", err.len());
        assert!(!err.contains("panicked"), "{what}: {err}");
        eprintln!("{what}: {}", err.trim());
    }
    assert_eq!(styrlogg(&s, &["export"]).stdout, before, "nothing refused was stored");
}

#[test]
fn swedish_characters_come_back_exactly_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path());
    // Composed and decomposed forms are different bytes; both are kept as
    // given, never normalised one into the other.
    let composed = "Kommunfullmäktige i Härryda, Åsa Öberg (ÅÄÖ åäö é ü ß)";
    let decomposed = "Kommunfullma\u{308}ktige, A\u{30a}sa O\u{308}berg";
    let organ = format!("organ={composed} / {decomposed}");
    let facts = [organ.as_str(), "protokoll=Kommunfullmäktige|2012-10-25|§ 123", "diarienummer=KS 2012/449"];
    let out = record(&s, "styrelsebeslut", "2012-10-25", &facts, &["--by", "Örjan Åkerlund", "--role", "sekreterare"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let export = styrlogg(&s, &["export"]);
    let lines = String::from_utf8(export.stdout.clone()).expect("the export is UTF-8");
    let event: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    let text = event.to_string();
    assert!(text.contains(&format!("{composed} / {decomposed}")), "{text}");
    assert!(text.contains("Örjan Åkerlund"));
    assert!(text.contains("Härryda kommun") || lines.contains("Härryda kommun"));

    // Through export and import into a new store: the same bytes, the same hashes.
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let copy = dir.path().join("copy");
    let import = styrlogg(&copy, &["import", file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert_eq!(styrlogg(&copy, &["export"]).stdout, export.stdout);
    assert!(styrlogg(&copy, &["verify"]).status.success());

    // And in the reports.
    let audit = styrlogg(&s, &["audit", "harryda-2012", "--format", "json"]);
    assert!(audit.status.success(), "{}", stderr(&audit));
    let audit = String::from_utf8(audit.stdout).unwrap();
    assert!(audit.contains(decomposed) && audit.contains(composed), "{audit}");
}

/// Runs the binary as an unprivileged user when the tests run as root
/// (root may write anywhere, so only another user meets a read-only store).
/// `bin` is a copy of the binary that user can reach (the checkout may be
/// in root's home, which others may not enter).
fn styrlogg_unprivileged(bin: &Path, data: &Path, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin);
    cmd.arg("--data").arg(data).args(args).env_remove("STYRLOGG_DATA").env_remove("RUST_LOG");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // (std drops root's supplementary groups along with the uid.)
        cmd.uid(65534).gid(65534);
    }
    cmd.output().unwrap()
}

fn chmod_tree(path: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(path) {
        let is_dir = entry.is_dir();
        let mode = match (is_dir, writable) {
            (true, true) => 0o777,
            (true, false) => 0o555,
            (false, true) => 0o666,
            (false, false) => 0o444,
        };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn walk(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

#[test]
fn a_read_only_store_is_refused_with_its_reason_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = started(dir.path());
    let before = styrlogg(&s, &["export"]).stdout;
    let bin = dir.path().join("styrlogg");
    std::fs::copy(env!("CARGO_BIN_EXE_styrlogg"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    chmod_tree(&s, false);
    let board = ["organ=Kommunfullmäktige", "protokoll=Kommunfullmäktige|2012-10-25|§ 123", "diarienummer=KS 2012/449"];
    let mut args = vec!["record", "harryda-2012", "styrelsebeslut", "--on", "2012-10-25"];
    for f in &board {
        args.extend(["--fact", f]);
    }
    args.extend(BY);
    for (what, args) in [("record", args.as_slice()), ("status", &["status"][..]), ("verify", &["verify"][..])] {
        let out = styrlogg_unprivileged(&bin, &s, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("cannot be written (its directory: Permission denied"), "{what}: {err}");
        assert!(err.contains("copy the store to a writable place"), "{what}: {err}");
    }
    // A new store where nothing may be written.
    let out = styrlogg_unprivileged(&bin, &s.join("new"), &["demo"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Choose a --data directory this user may write to"), "{}", stderr(&out));
    chmod_tree(&s, true);
    assert_eq!(styrlogg(&s, &["export"]).stdout, before, "the store is as it was");
    assert!(!s.join("new").exists());
}

#[test]
fn output_to_a_full_disk_is_an_error_not_a_short_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path());
    // /dev/full answers every write with ENOSPC, as a full disk does.
    for args in [&["export"][..], &["audit", "harryda-2012"][..], &["status"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_styrlogg"))
            .arg("--data")
            .arg(&s)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?}: a failed write is not success");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_store_held_by_another_process_is_waited_for_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path());
    let held = engine::EmbeddedStore::open(&s, engine::OpenMode::MustExist, std::sync::Arc::new(engine::SystemClock))
        .expect("this process opens the store");
    let out = Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .arg("--data")
        .arg(&s)
        .arg("status")
        .env("STYRLOGG_LOCK_WAIT_MS", "300")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is in use by another process"), "{}", stderr(&out));
    held.close().unwrap();
    // Let go of, the store opens again at once.
    let out = styrlogg(&s, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
