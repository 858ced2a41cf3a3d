//! Trust: Merkle proofs over random logs (and their failure on tampered
//! ones), checkpoints proven consistent after appends and a rewritten log
//! caught, inclusion proofs checked by a third party with only the proof,
//! the checkpoint and the public key, erasure of personal data that leaves
//! no trace in reports, exports or the store's files while verify passes,
//! and the errors on bad input.

use crate::cli::styrlogg;
use crate::support::*;
use engine::{codec, EventStore, MemoryStore, RecordedEvent};
use proptest::prelude::*;
use std::path::Path;
use std::process::Output;
use trust::merkle::{self, TreeBuilder};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), out(&o), err(&o));
    out(&o)
}

#[track_caller]
fn refused(o: Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {}", out(&o), err(&o));
    let e = err(&o);
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e:?}");
    assert!(e.contains(needle), "stderr {e:?} mentions {needle:?}");
}

async fn random_log(n: usize, seed: u64) -> Vec<RecordedEvent> {
    let store = MemoryStore::new(clock());
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut i = 0;
    while i < n {
        let batch = rng.usize(1..=3).min(n - i);
        let inst = format!("i{}", rng.u8(..4));
        store.append(req(&inst, engine::ExpectedVersion::Any, &format!("c{i}"), batch)).await.unwrap();
        i += batch;
    }
    all_events(&store).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every event of a random log has an inclusion proof that verifies
    /// against the root; a tampered event, or a tampered proof, does not.
    #[test]
    fn inclusion_proofs_hold_for_every_event_and_fail_when_tampered(n in 1usize..90, seed in any::<u64>(), flip in any::<u8>()) {
        let events = runtime().block_on(random_log(n, seed));
        let leaves: Vec<_> = events.iter().map(trust::event_leaf).collect();
        let root = merkle::mth(&leaves);
        for (i, e) in events.iter().enumerate() {
            let size = events.len() as u64;
            let ranges = merkle::inclusion_ranges(i as u64, size);
            let mut b = TreeBuilder::new(ranges, &[]);
            for e in &events { b.push_input(&e.hash.0); }
            prop_assert_eq!(b.root(), root);
            let proof = b.range_hashes().unwrap();
            prop_assert!(merkle::verify_inclusion(i as u64, size, &leaves[i], &proof, &root).is_ok());
            // The event's content changed: its hash no longer matches, and a
            // recomputed hash is another leaf.
            let mut tampered = e.clone();
            tampered.event.occurred_on = tampered.event.occurred_on.tomorrow().unwrap();
            prop_assert!(codec::reseal(&tampered).is_err());
            let (resealed, _) = codec::seal(tampered.event.clone()).unwrap();
            prop_assert!(merkle::verify_inclusion(i as u64, size, &trust::event_leaf(&resealed), &proof, &root).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let k = flip as usize % bad.len();
                bad[k][flip as usize % 32] ^= 1;
                prop_assert!(merkle::verify_inclusion(i as u64, size, &leaves[i], &bad, &root).is_err());
            }
            // At another index the same proof fails.
            if size > 1 {
                let j = (i as u64 + 1) % size;
                prop_assert!(merkle::verify_inclusion(j, size, &leaves[i], &proof, &root).is_err());
            }
        }
    }

    /// A tree of any earlier size is proven consistent with a later one; a
    /// log whose early events were rewritten is not.
    #[test]
    fn consistency_proofs_hold_and_catch_rewrites(n in 2usize..90, seed in any::<u64>(), cut in any::<u16>(), at in any::<u16>()) {
        let events = runtime().block_on(random_log(n, seed));
        let leaves: Vec<_> = events.iter().map(trust::event_leaf).collect();
        let m = 1 + cut as u64 % (n as u64 - 1);
        let ranges = merkle::consistency_ranges(m, n as u64);
        let mut b = TreeBuilder::new(ranges.clone(), &[m]);
        leaves.iter().for_each(|l| b.push(*l));
        let old = b.root_at(m).unwrap();
        let proof = b.range_hashes().unwrap();
        prop_assert!(merkle::verify_consistency(m, n as u64, &proof, &old, &b.root()).is_ok());
        let mut rewritten = leaves.clone();
        rewritten[at as usize % m as usize] = merkle::leaf_hash(b"rewritten");
        let proof2 = merkle::proof_in_memory(&ranges, &rewritten);
        prop_assert!(merkle::verify_consistency(m, n as u64, &proof2, &old, &merkle::mth(&rewritten)).is_err());
    }
}

const REG: [&str; 4] = ["--by", "Eva Ek", "--role", "registrator"];

fn with_by<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(&REG);
    v
}

/// A store with a signing key recorded and one instance with contact
/// persons (personal) and a steering group (public record).
fn setup(data: &Path) -> String {
    let vkey = ok(styrlogg(data, &["key", "generate", "--name", "tyreso.se/styrlogg"]));
    ok(styrlogg(
        data,
        &with_by(&[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            "tyreso-2012",
            "--org",
            "Tyresö kommun",
            "--on",
            "2012-01-15",
            "--today",
            "2012-01-20",
        ]),
    ));
    ok(styrlogg(data, &with_by(&["key", "record", "--reason", "Kommunens nyckel för kontrollpunkter"])));
    ok(styrlogg(
        data,
        &with_by(&[
            "record",
            "tyreso-2012",
            "intresseanmalan",
            "--on",
            "2012-01-20",
            "--today",
            "2012-01-20",
            "--fact",
            "kontaktperson=Anita Brynje|kontaktperson|official",
            "--fact",
            "kontaktperson=Karin Hassler|kontaktperson|official",
            "--fact",
            "epost=Anita Brynje|anita.brynje@tyreso.se",
            "--fact",
            "telefon=Anita Brynje|08-578 291 00",
            "--fact",
            "organisation=Tyresö kommun",
        ]),
    ));
    vkey.trim().to_string()
}

fn more(data: &Path) {
    ok(styrlogg(
        data,
        &[
            "record",
            "tyreso-2012",
            "styrelsebeslut",
            "--on",
            "2012-08-20",
            "--today",
            "2012-08-21",
            "--fact",
            "organ=Kommunstyrelsen",
            "--fact",
            "protokoll=Kommunstyrelsen|2012-08-20|§ 100",
            "--fact",
            "diarienummer=KS 2012/88",
            "--by",
            "Eva Ek",
            "--role",
            "sekreterare",
        ],
    ));
    ok(styrlogg(
        data,
        &[
            "record",
            "tyreso-2012",
            "styrgrupp_tillsatt",
            "--on",
            "2012-09-01",
            "--today",
            "2012-09-02",
            "--fact",
            "ledamot=Bo Ek|ordförande|elected",
            "--fact",
            "ledamot=Kim Berg|kommundirektör|official",
            "--by",
            "Eva Ek",
            "--role",
            "sekreterare",
        ],
    ));
}

/// Every file under `dir`, and whether any holds `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn checkpoint_before_appends_is_proven_consistent_after_and_a_rewrite_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let vkey = setup(&data);
    let cp1 = dir.path().join("cp1");
    ok(styrlogg(&data, &["checkpoint", "-o", cp1.to_str().unwrap()]));
    let text = std::fs::read_to_string(&cp1).unwrap();
    assert!(text.starts_with("tyreso.se/styrlogg\n3\n"), "{text}");
    assert!(text.contains("\n\n\u{2014} tyreso.se/styrlogg "), "{text}");
    more(&data);
    let v = ok(styrlogg(&data, &["verify", "--checkpoint", cp1.to_str().unwrap(), "--key", &vkey]));
    assert!(v.contains("OK: the log (5 events"), "{v}");
    assert!(v.contains("extends the checkpoint of 3 events"), "{v}");
    // Without --key: the key recorded in the log.
    ok(styrlogg(&data, &["verify", "--checkpoint", cp1.to_str().unwrap()]));

    // A consistency proof a third party checks with two checkpoints.
    let cp2 = dir.path().join("cp2");
    ok(styrlogg(&data, &["checkpoint", "-o", cp2.to_str().unwrap()]));
    let cproof = dir.path().join("consistency");
    ok(styrlogg(
        &data,
        &[
            "prove",
            "--from",
            cp1.to_str().unwrap(),
            "--checkpoint",
            cp2.to_str().unwrap(),
            "-o",
            cproof.to_str().unwrap(),
        ],
    ));
    let nowhere = dir.path().join("no-store");
    let c = ok(styrlogg(
        &nowhere,
        &[
            "check-proof",
            cproof.to_str().unwrap(),
            "--checkpoint",
            cp2.to_str().unwrap(),
            "--old-checkpoint",
            cp1.to_str().unwrap(),
            "--key",
            &vkey,
        ],
    ));
    assert!(c.contains("extends its checkpoint of 3 events"), "{c}");
    assert!(!nowhere.exists(), "check-proof needs no store");

    // Rewrite event 2 (the key record) and re-chain everything after it, as
    // someone rewriting the log would: the chain is intact again, but the
    // checkpoint catches it.
    let export = ok(styrlogg(&data, &["export"]));
    let mut events: Vec<RecordedEvent> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    events[2].event.occurred_on = events[2].event.occurred_on.yesterday().unwrap();
    let mut prev = events[1].hash;
    for e in events.iter_mut().skip(2) {
        e.event.prev_hash = prev;
        let (sealed, _) = codec::seal(e.event.clone()).unwrap();
        *e = sealed;
        prev = e.hash;
    }
    let forged = dir.path().join("forged.jsonl");
    std::fs::write(&forged, events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect::<String>())
        .unwrap();
    let rewritten = dir.path().join("rewritten");
    ok(styrlogg(&rewritten, &["import", forged.to_str().unwrap()]));
    ok(styrlogg(&rewritten, &["verify"]));
    let caught = styrlogg(&rewritten, &["verify", "--checkpoint", cp1.to_str().unwrap(), "--key", &vkey]);
    refused(caught, "the log was rewritten after the checkpoint was signed");
}

#[test]
fn a_third_party_checks_an_inclusion_proof_with_only_proof_checkpoint_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let vkey = setup(&data);
    more(&data);
    let cp = dir.path().join("cp");
    ok(styrlogg(&data, &["checkpoint", "-o", cp.to_str().unwrap()]));
    let log = ok(styrlogg(&data, &["log", "--format", "json"]));
    let decision: RecordedEvent =
        serde_json::from_str(log.lines().find(|l| l.contains("\"step\":\"styrelsebeslut\"")).unwrap()).unwrap();
    let proof = dir.path().join("proof");
    ok(styrlogg(
        &data,
        &[
            "prove",
            &decision.event.event_id.to_hex(),
            "--checkpoint",
            cp.to_str().unwrap(),
            "-o",
            proof.to_str().unwrap(),
        ],
    ));
    let nowhere = dir.path().join("elsewhere");
    // A third party with the proof, the checkpoint and the key, and no store.
    let check_proof = |proof: &std::path::Path, cp: &std::path::Path, key: &str| {
        styrlogg(
            &nowhere,
            &["check-proof", proof.to_str().unwrap(), "--checkpoint", cp.to_str().unwrap(), "--key", key],
        )
    };
    let checked = ok(check_proof(&proof, &cp, &vkey));
    assert!(checked.contains("step styrelsebeslut"), "{checked}");
    // An --old-checkpoint an inclusion proof cannot use is refused, not
    // passed over as if it had been checked.
    let (p, c) = (proof.to_str().unwrap(), cp.to_str().unwrap());
    let o = styrlogg(&nowhere, &["check-proof", p, "--checkpoint", c, "--old-checkpoint", c, "--key", &vkey]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is an inclusion proof") && err.contains("--old-checkpoint"), "{err}");
    assert!(o.stdout.is_empty(), "no OK line");
    // By position too, and every position of the log.
    for p in 1..=5 {
        let f = dir.path().join(format!("proof{p}"));
        ok(styrlogg(
            &data,
            &["prove", &p.to_string(), "--checkpoint", cp.to_str().unwrap(), "-o", f.to_str().unwrap()],
        ));
        ok(check_proof(&f, &cp, &vkey));
    }

    // Bad input: one line, exit 1.
    let other = dir.path().join("other");
    let other_key = ok(styrlogg(&other, &["key", "generate", "--name", "tyreso.se/styrlogg"]));
    refused(check_proof(&proof, &cp, other_key.trim()), "the note is not signed by");
    refused(check_proof(&proof, &cp, "nonsense"), "--key nonsense: no such file, and not a public key");
    let text = std::fs::read_to_string(&proof).unwrap();
    let bad = dir.path().join("bad-proof");
    std::fs::write(&bad, text.replacen("hash ", "hash !!", 1)).unwrap();
    refused(check_proof(&bad, &cp, &vkey), "not base64");
    std::fs::write(&bad, "hello\n").unwrap();
    refused(check_proof(&bad, &cp, &vkey), "not a styrlogg proof");
    // A proof whose event was changed.
    let changed = text.replace("Kommunstyrelsen", "Kommunfullmäktige");
    std::fs::write(&bad, changed).unwrap();
    refused(check_proof(&bad, &cp, &vkey), "does not match its own hash");
    // A tampered checkpoint.
    let cp_text = std::fs::read_to_string(&cp).unwrap();
    let bad_cp = dir.path().join("bad-cp");
    std::fs::write(&bad_cp, cp_text.replacen("\n5\n", "\n4\n", 1)).unwrap();
    refused(check_proof(&proof, &bad_cp, &vkey), "does not verify");
    std::fs::write(&bad_cp, "not a checkpoint").unwrap();
    refused(check_proof(&proof, &bad_cp, &vkey), "not a signed note");
    refused(styrlogg(&data, &["verify", "--checkpoint", bad_cp.to_str().unwrap()]), "not a signed note");
    refused(styrlogg(&data, &["prove", "99"]), "no event at position 99");
    refused(styrlogg(&data, &["prove", "abc"]), "is not an event: give its id (32 hex digits, or its first 8 or more)");
    // A checkpoint by another key than the log's current one is not made.
    let stray = dir.path().join("stray.key");
    ok(styrlogg(&other, &["--signing-key", stray.to_str().unwrap(), "key", "generate", "--name", "x.se/log"]));
    refused(styrlogg(&data, &["--signing-key", stray.to_str().unwrap(), "checkpoint"]), "the log's current key");
    refused(styrlogg(&data, &["key", "generate", "--name", "tyreso.se/styrlogg"]), "there is already a signing key");
}

#[test]
fn rotating_the_key_is_recorded_and_old_checkpoints_stay_checkable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let old_vkey = setup(&data);
    let cp1 = dir.path().join("cp1");
    ok(styrlogg(&data, &["checkpoint", "-o", cp1.to_str().unwrap()]));
    let rotated = ok(styrlogg(&data, &with_by(&["key", "rotate", "--reason", "Årligt nyckelbyte"])));
    assert!(rotated.contains("rotated: the new key"), "{rotated}");
    // verify counts the workflow instances, as rebuild does, and names the
    // log's own records (the keys) apart.
    let verified = ok(styrlogg(&data, &["verify"]));
    assert!(verified.starts_with("OK: 4 events in 1 instance and the log's own records, chain intact"), "{verified}");
    let rebuilt = ok(styrlogg(&data, &["rebuild"]));
    assert!(rebuilt.contains(": 1 instances,") || rebuilt.contains(": 1 instance,"), "{rebuilt}");
    let new_vkey = ok(styrlogg(&data, &["key", "public"])).trim().to_string();
    assert_ne!(new_vkey, old_vkey);
    // The old key is kept next to the new one, as the README says.
    let old_id = name_id(&old_vkey).rsplit('+').next().unwrap().to_string();
    let retired = data.with_extension("keys").join(format!("signing.key.retired-{old_id}"));
    assert!(retired.is_file(), "{} is missing: {rotated}", retired.display());
    assert!(rotated.contains(&retired.display().to_string()), "{rotated}");
    assert!(std::fs::read_dir(data.with_extension("keys")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("signing.retired")));
    let list = ok(styrlogg(&data, &["key", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&old_vkey) && list.contains(&new_vkey), "{list}");
    let cp2 = dir.path().join("cp2");
    ok(styrlogg(&data, &["checkpoint", "-o", cp2.to_str().unwrap()]));
    // Both checkpoints check against the keys recorded in the log.
    ok(styrlogg(&data, &["verify", "--checkpoint", cp1.to_str().unwrap()]));
    ok(styrlogg(&data, &["verify", "--checkpoint", cp2.to_str().unwrap()]));
    refused(styrlogg(&data, &["verify", "--checkpoint", cp1.to_str().unwrap(), "--key", &new_vkey]), "not signed by");
}

#[test]
fn erasing_a_person_leaves_no_trace_while_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let keys = dir.path().join("log.keys");
    let vkey = setup(&data);
    more(&data);
    let cp = dir.path().join("cp");
    ok(styrlogg(&data, &["checkpoint", "-o", cp.to_str().unwrap()]));

    // Sealed in the log: the store's files never hold the plaintext.
    let secrets: [&[u8]; 4] = [b"Anita Brynje", b"anita.brynje@tyreso.se", b"08-578 291 00", b"Karin Hassler"];
    for s in secrets {
        assert_eq!(files_containing(&data, s), Vec::<String>::new(), "{}", String::from_utf8_lossy(s));
    }
    let export = ok(styrlogg(&data, &["export"]));
    assert!(!export.contains("Anita") && !export.contains("anita.brynje"), "the export holds ciphertext only");
    // Reports open it with the key store.
    let audit = ok(styrlogg(&data, &["audit", "tyreso-2012"]));
    assert!(audit.contains("Anita Brynje, kontaktperson (tjänsteperson)"), "{audit}");
    assert!(audit.contains("Anita Brynje|anita.brynje@tyreso.se"), "{audit}");
    assert!(audit.contains("Bo Ek, ordförande (förtroendevald)"), "{audit}");
    // A public extract leaves personal data out and says so; public records stay.
    let public = ok(styrlogg(&data, &["audit", "tyreso-2012", "--public"]));
    assert!(!public.contains("Anita") && !public.contains("Karin"), "{public}");
    assert!(public.contains("[utelämnad: personuppgift]"), "{public}");
    assert!(public.contains("Offentlig version"), "{public}");
    assert!(public.contains("Bo Ek, ordförande"), "{public}");
    let persons = ok(styrlogg(&data, &["persons"]));
    let anita = persons.lines().find(|l| l.contains("Anita Brynje")).expect("listed");
    assert!(anita.contains("3 sealed fact(s)"), "{persons}");
    let anita_id = anita.split_whitespace().next().unwrap().to_string();

    // Public records are kept: refused, with the reason.
    refused(
        styrlogg(&data, &with_by(&["erase", "Bo Ek", "--reason", "Begäran", "--decision", "KS 2015/1"])),
        "public records, which are not erased (arkivlagen)",
    );
    refused(
        styrlogg(&data, &with_by(&["erase", "Nomen Nescio", "--reason", "Begäran", "--decision", "KS 2015/1"])),
        "unknown person",
    );
    // An erasure is a decision of someone in a role the workflows know.
    refused(
        styrlogg(
            &data,
            &["erase", "Anita Brynje", "--reason", "x", "--decision", "y", "--by", "Eva", "--role", "nosuchrole"],
        ),
        "role \"nosuchrole\" is not a role of any workflow definition",
    );
    refused(
        styrlogg(&data, &["key", "record", "--reason", "x", "--by", "Eva", "--role", "anything-goes"]),
        "role \"anything-goes\" is not a role of any workflow definition",
    );

    // A dry run says what would go, and changes nothing.
    let head = ok(styrlogg(&data, &["head"]));
    let keys_before = files_containing(&keys, b"Anita");
    let preview = ok(styrlogg(
        &data,
        &with_by(&["erase", "Anita Brynje", "--reason", "Gallring", "--decision", "KS 2014/12 § 4", "--dry-run"]),
    ));
    assert!(
        preview.contains("would erase person ") && preview.contains("3 sealed fact(s) would be removed: "),
        "{preview}"
    );
    assert!(preview.contains("dry run: nothing was erased or recorded"), "{preview}");
    assert_eq!(ok(styrlogg(&data, &["head"])), head, "nothing recorded");
    assert_eq!(files_containing(&keys, b"Anita"), keys_before, "the key is still there");
    assert!(!keys_before.is_empty());

    let erased = ok(styrlogg(
        &data,
        &with_by(&["erase", "Anita Brynje", "--reason", "Gallring efter två år", "--decision", "KS 2014/12 § 4"]),
    ));
    assert!(erased.contains("3 sealed fact(s) removed"), "{erased}");

    // Every trace gone: store files, key store, export, every report.
    for s in [b"Anita".as_slice(), b"anita.brynje", b"578 291"] {
        assert_eq!(files_containing(&data, s), Vec::<String>::new(), "{}", String::from_utf8_lossy(s));
        assert_eq!(files_containing(&keys, s), Vec::<String>::new(), "{}", String::from_utf8_lossy(s));
    }
    let export = ok(styrlogg(&data, &["export"]));
    assert!(!export.contains("Anita") && !export.contains("anita"), "export");
    for args in [
        vec!["audit", "tyreso-2012"],
        vec!["audit", "tyreso-2012", "--format", "json"],
        vec!["report", "annual", "--org", "Tyresö kommun", "--year", "2012"],
        vec!["report", "compliance", "--instance", "tyreso-2012", "--format", "html"],
        vec!["report", "dialogues", "--format", "md"],
        vec!["deadlines", "--format", "csv"],
        vec!["log"],
        vec!["log", "--format", "json"],
    ] {
        let r = ok(styrlogg(&data, &args));
        assert!(!r.contains("Anita") && !r.contains("anita") && !r.contains("578 291"), "{args:?}: {r}");
    }
    let audit = ok(styrlogg(&data, &["audit", "tyreso-2012"]));
    assert!(audit.contains("[gallrad 20"), "reports say it was removed and when: {audit}");
    assert!(audit.contains("beslut KS 2014/12 § 4"), "{audit}");
    assert!(audit.contains("Karin Hassler"), "other persons stay: {audit}");
    let annual = ok(styrlogg(&data, &["report", "annual", "--org", "Tyresö kommun", "--year", "2012", "--lang", "en"]));
    assert!(annual.contains("[removed 20"), "{annual}");

    // The record was not rewritten.
    ok(styrlogg(&data, &["verify"]));
    ok(styrlogg(&data, &["verify", "--checkpoint", cp.to_str().unwrap(), "--key", &vkey]));
    // Erasing again: by id it is already done; the name no longer leads anywhere.
    let again = ok(styrlogg(
        &data,
        &with_by(&["erase", &anita_id, "--reason", "Gallring efter två år", "--decision", "KS 2014/12 § 4"]),
    ));
    assert!(again.contains("already erased"), "{again}");
    refused(
        styrlogg(&data, &with_by(&["erase", "Anita Brynje", "--reason", "Gallring", "--decision", "KS 2014/12 § 4"])),
        "unknown person",
    );
    let persons = ok(styrlogg(&data, &["persons"]));
    assert!(persons.contains(&format!("{anita_id}  erased")), "{persons}");
}

#[test]
fn personal_data_needs_a_key_store_and_reports_without_it_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    setup(&data);
    // Another key store (another machine): the data is there, its keys are not.
    let elsewhere = dir.path().join("elsewhere-keys");
    let audit = ok(styrlogg(&data, &["--keys", elsewhere.to_str().unwrap(), "audit", "tyreso-2012"]));
    assert!(audit.contains("[personuppgift: nyckeln saknas här]"), "{audit}");
    assert!(!audit.contains("Anita"), "{audit}");
}

#[test]
fn the_demo_seals_the_contact_persons_and_reports_carry_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    ok(styrlogg(&data, &["demo"]));
    assert_eq!(files_containing(&data, b"karin.hassler@tyreso.se"), Vec::<String>::new());
    ok(styrlogg(&data, &["key", "generate", "--name", "tyreso.se/styrlogg"]));
    let report =
        ok(styrlogg(&data, &["report", "annual", "--org", "Tyresö kommun", "--year", "2012", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let note = json["checkpoint"].as_str().expect("a checkpoint in the JSON");
    assert!(note.starts_with("tyreso.se/styrlogg\n"), "{note}");
    assert!(report.contains("karin.hassler@tyreso.se"), "the key store opens it: {report}");
    let md = ok(styrlogg(
        &data,
        &["report", "annual", "--org", "Tyresö kommun", "--year", "2012", "--format", "md", "--public"],
    ));
    assert!(md.contains("## Kontrollpunkt") && md.contains("```\ntyreso.se/styrlogg\n"), "{md}");
    assert!(!md.contains("karin.hassler") && !md.contains("Anita"), "{md}");
    // The checkpoint a report carries verifies the log later.
    let cp = dir.path().join("cp");
    std::fs::write(&cp, note).unwrap();
    ok(styrlogg(&data, &["verify", "--checkpoint", cp.to_str().unwrap()]));
}

#[test]
fn checkpoints_proofs_and_erasure_work_over_jetstream_too() {
    let server = crate::nats::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused");
    let keys = dir.path().join("keys");
    let nats = |args: &[&str]| {
        let mut v = vec!["--nats", server.url.as_str(), "--keys", keys.to_str().unwrap()];
        v.extend_from_slice(args);
        styrlogg(&unused, &v)
    };
    let vkey = ok(nats(&["key", "generate", "--name", "tyreso.se/styrlogg"])).trim().to_string();
    ok(nats(&with_by(&[
        "start",
        "skl-styrsystem-2012-2014",
        "--instance",
        "tyreso-2012",
        "--org",
        "Tyresö kommun",
        "--on",
        "2012-01-15",
        "--today",
        "2012-01-20",
    ])));
    ok(nats(&with_by(&["key", "record", "--reason", "Kommunens nyckel"])));
    let cp = dir.path().join("cp");
    ok(nats(&["checkpoint", "-o", cp.to_str().unwrap()]));
    // Personal data over JetStream needs a key store: without --keys it is refused.
    let facts = [
        "record",
        "tyreso-2012",
        "intresseanmalan",
        "--on",
        "2012-01-20",
        "--today",
        "2012-01-20",
        "--fact",
        "kontaktperson=Anita Brynje|kontaktperson|official",
        "--fact",
        "epost=Anita Brynje|anita.brynje@tyreso.se",
        "--fact",
        "organisation=Tyresö kommun",
    ];
    let mut no_keys = vec!["--nats", server.url.as_str()];
    no_keys.extend(with_by(&facts));
    refused(styrlogg(&unused, &no_keys), "give --keys DIR");
    ok(nats(&with_by(&facts)));
    assert!(ok(nats(&["audit", "tyreso-2012"])).contains("anita.brynje@tyreso.se"));
    assert!(!ok(nats(&["export"])).contains("anita"));
    let v = ok(nats(&["verify", "--checkpoint", cp.to_str().unwrap(), "--key", &vkey]));
    assert!(v.contains("extends the checkpoint of 2 events"), "{v}");
    let proof = dir.path().join("proof");
    let cp2 = dir.path().join("cp2");
    ok(nats(&["checkpoint", "-o", cp2.to_str().unwrap()]));
    ok(nats(&["prove", "3", "--checkpoint", cp2.to_str().unwrap(), "-o", proof.to_str().unwrap()]));
    ok(styrlogg(
        &unused,
        &["check-proof", proof.to_str().unwrap(), "--checkpoint", cp2.to_str().unwrap(), "--key", &vkey],
    ));
    ok(nats(&with_by(&["erase", "Anita Brynje", "--reason", "Gallring", "--decision", "KS 2014/12 § 4"])));
    let audit = ok(nats(&["audit", "tyreso-2012"]));
    assert!(!audit.contains("Anita") && audit.contains("[gallrad"), "{audit}");
    assert!(files_containing(&keys, b"Anita").is_empty());
    assert!(files_containing(&server.dir, b"Anita").is_empty(), "the server's files hold ciphertext only");
    ok(nats(&["verify", "--checkpoint", cp.to_str().unwrap(), "--key", &vkey]));
    assert!(!unused.exists());
}

const SYNPUNKTER: &str = r#"
id = "synpunkter"
version = 1
title = { sv = "Synpunkter från en dialog", en = "Comments from a dialogue" }

[[roles]]
id = "sekreterare"
title = { sv = "Sekreterare", en = "Secretary" }

[[steps]]
id = "synpunkt"
title = { sv = "Synpunkt mottagen", en = "Comment received" }
kind = "results_compiled"
repeat = true
recorded_by = ["sekreterare"]
facts = [
  { name = "sammanfattning", type = "text" },
  { name = "halsouppgift", type = "text", confidential = true, required = false },
  { name = "medborgare", type = "text", personal = true },
  { name = "diarienummer", type = "case_number", confidential = true, required = false },
]
"#;

#[test]
fn confidential_facts_stay_in_the_log_and_out_of_public_extracts() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(defs.join("synpunkter.toml"), SYNPUNKTER).unwrap();
    let data = dir.path().join("log");
    let w = defs.to_str().unwrap();
    let sek = ["--by", "Eva Ek", "--role", "sekreterare", "--workflows", w];
    let mut start =
        vec!["start", "synpunkter", "--instance", "dialog-1", "--org", "Härryda kommun", "--on", "2013-03-01"];
    start.extend_from_slice(&sek);
    ok(styrlogg(&data, &start));
    let mut rec = vec![
        "record",
        "dialog-1",
        "synpunkt",
        "--on",
        "2013-03-02",
        "--fact",
        "sammanfattning=Fler bänkar i parken",
        "--fact",
        "halsouppgift=Rullstolsburen",
        "--fact",
        "medborgare=Signe Medborgare, Landvetter",
        "--fact",
        "diarienummer=SN 2013/7",
    ];
    rec.extend_from_slice(&sek);
    ok(styrlogg(&data, &rec));
    // Confidential is a public record under secrecy: in the log as it is.
    assert!(!files_containing(&data, b"Rullstolsburen").is_empty());
    assert!(files_containing(&data, b"Signe Medborgare").is_empty(), "personal data is sealed");
    let full = ok(styrlogg(&data, &["audit", "dialog-1", "--format", "json"]));
    assert!(full.contains("Rullstolsburen") && full.contains("Signe Medborgare") && full.contains("SN 2013/7"));
    for format in ["json", "md", "html", "csv", "text"] {
        let public = ok(styrlogg(&data, &["audit", "dialog-1", "--public", "--format", format]));
        assert!(
            !public.contains("Rullstolsburen") && !public.contains("Signe") && !public.contains("SN 2013/7"),
            "{format}: {public}"
        );
        assert!(
            public.contains("utelämnad: sekretess") && public.contains("utelämnad: personuppgift"),
            "{format}: {public}"
        );
        assert!(public.contains("Fler bänkar i parken"), "{format}");
    }
    let annual = ok(styrlogg(
        &data,
        &[
            "report",
            "annual",
            "--org",
            "Härryda kommun",
            "--year",
            "2013",
            "--public",
            "--format",
            "json",
            "--lang",
            "en",
        ],
    ));
    assert!(!annual.contains("Rullstolsburen") && annual.contains("[left out: confidential]"), "{annual}");
    assert!(annual.contains("\"public\": true"), "{annual}");
    // A personal fact of nobody named gets a key of its own, erasable by id.
    let persons = ok(styrlogg(&data, &["persons"]));
    let id = persons
        .lines()
        .find(|l| l.contains("(no name)"))
        .expect("listed")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Confidential facts are public records: nothing to erase there.
    refused(
        styrlogg(&data, &with_by(&["erase", "Rullstolsburen", "--reason", "x", "--decision", "y"])),
        "unknown person",
    );
    ok(styrlogg(
        &data,
        &with_by(&["erase", &id, "--reason", "Begäran enligt GDPR art. 17", "--decision", "SN 2013/9"]),
    ));
    let after = ok(styrlogg(&data, &["audit", "dialog-1"]));
    assert!(!after.contains("Signe") && after.contains("Rullstolsburen") && after.contains("[gallrad"), "{after}");
}

#[test]
fn definitions_say_what_is_wrong_with_personal_facts() {
    let bad = SYNPUNKTER.replace(
        r#"{ name = "medborgare", type = "text", personal = true },"#,
        r#"{ name = "medborgare", type = "text", personal = true, of = "sammanfattning" },
  { name = "epost", type = "email", of = "ingen" },"#,
    );
    let problems = workflows::Definition::parse(&bad).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
    assert!(text.iter().any(|m| m.contains("belongs to \"sammanfattning\", which is not a person fact")), "{text:?}");
    assert!(text.iter().any(|m| m.contains("belongs to \"ingen\"")), "{text:?}");
    let def = workflows::Definition::parse(SYNPUNKTER).unwrap();
    let specs = &def.step("synpunkt").unwrap().facts;
    assert!(specs.iter().any(|f| f.name == "halsouppgift" && f.confidential && !f.personal));
    assert!(specs.iter().any(|f| f.name == "medborgare" && f.personal));
    // E-mail and phone are always personal.
    let src = SYNPUNKTER.replace(
        r#"{ name = "sammanfattning", type = "text" },"#,
        r#"{ name = "sammanfattning", type = "text" },
  { name = "tel", type = "phone", required = false },"#,
    );
    let def = workflows::Definition::parse(&src).unwrap();
    assert!(def.step("synpunkt").unwrap().facts.iter().any(|f| f.name == "tel" && f.personal));
}

/// `NAME+ID` of a `NAME+ID+KEY` verifier key: how the OK lines name a key.
fn name_id(vkey: &str) -> String {
    vkey.trim().splitn(3, '+').take(2).collect::<Vec<_>>().join("+")
}

#[test]
fn a_consistency_proof_across_a_key_rotation_checks_with_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let old_vkey = setup(&data);
    let cp1 = dir.path().join("cp1");
    ok(styrlogg(&data, &["checkpoint", "-o", cp1.to_str().unwrap()]));
    ok(styrlogg(&data, &with_by(&["key", "rotate", "--reason", "Årligt nyckelbyte"])));
    let new_vkey = ok(styrlogg(&data, &["key", "public"])).trim().to_string();
    more(&data);
    let cp2 = dir.path().join("cp2");
    ok(styrlogg(&data, &["checkpoint", "-o", cp2.to_str().unwrap()]));
    let cproof = dir.path().join("c.proof");
    let (p, c1, c2) = (cproof.to_str().unwrap(), cp1.to_str().unwrap(), cp2.to_str().unwrap());
    ok(styrlogg(&data, &["prove", "--from", c1, "--checkpoint", c2, "-o", p]));

    let nowhere = dir.path().join("no-store");
    let check = |keys: &[&str]| {
        let mut args = vec!["check-proof", p, "--old-checkpoint", c1, "--checkpoint", c2];
        for k in keys {
            args.extend_from_slice(&["--key", k]);
        }
        styrlogg(&nowhere, &args)
    };
    // The new key alone does not check the old checkpoint.
    refused(check(&[&new_vkey]), "not signed by");
    // Both keys: each checkpoint is signed by one of them, and the OK line says by which.
    let both = ok(check(&[&new_vkey, &old_vkey]));
    assert!(both.contains("extends its checkpoint of 3 events"), "{both}");
    assert!(both.contains(&format!("older signed by {}", name_id(&old_vkey))), "{both}");
    assert!(both.contains(&format!("newer by {}", name_id(&new_vkey))), "{both}");
    // A file holding both keys, one per line.
    let keyfile = dir.path().join("keys.pub");
    std::fs::write(&keyfile, format!("{old_vkey}\n{new_vkey}\n")).unwrap();
    let from_file = ok(check(&[keyfile.to_str().unwrap()]));
    assert_eq!(from_file, both);
    // The same key twice is the same key.
    ok(check(&[keyfile.to_str().unwrap(), &old_vkey]));
    // A bad line in the file says which.
    std::fs::write(&keyfile, format!("{old_vkey}\nnonsense\n")).unwrap();
    refused(check(&[keyfile.to_str().unwrap()]), "line 2");
    // verify --checkpoint takes several keys too, and names the signer.
    let v = ok(styrlogg(&data, &["verify", "--checkpoint", c1, "--key", &new_vkey, "--key", &old_vkey]));
    assert!(v.contains(&format!("signed by {}", name_id(&old_vkey))), "{v}");
    std::fs::write(&keyfile, format!("{old_vkey}\n\n{new_vkey}\n")).unwrap();
    ok(styrlogg(&data, &["verify", "--checkpoint", c2, "--key", keyfile.to_str().unwrap()]));
    refused(styrlogg(&data, &["verify", "--checkpoint", c1, "--key", &new_vkey]), "not signed by");
}

#[test]
fn a_lost_key_is_replaced_with_key_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let old_vkey = setup(&data);
    let cp1 = dir.path().join("cp1");
    ok(styrlogg(&data, &["checkpoint", "-o", cp1.to_str().unwrap()]));
    let key_file = data.with_extension("keys").join("signing.key");
    std::fs::remove_file(&key_file).unwrap();
    // `checkpoint` says what to do about it: not `key generate`, whose key
    // the log would not take as its own.
    let lost = styrlogg(&data, &["checkpoint"]);
    let e = err(&lost);
    refused(lost, &format!("the log recorded {old_vkey} at position 2 as its key"));
    assert!(e.contains("key rotate") && !e.contains("key generate"), "{e}");
    let rotated = ok(styrlogg(&data, &with_by(&["key", "rotate", "--reason", "Nyckeln förlorad"])));
    assert!(rotated.contains("no old key file"), "{rotated}");
    let new_vkey = ok(styrlogg(&data, &["key", "public"])).trim().to_string();
    assert_ne!(new_vkey, old_vkey);
    assert!(new_vkey.starts_with("tyreso.se/styrlogg+"), "the last recorded key's name: {new_vkey}");
    let list = ok(styrlogg(&data, &["key", "list"]));
    assert!(list.lines().last().unwrap().ends_with(&new_vkey), "{list}");
    ok(styrlogg(&data, &["checkpoint"]));
    ok(styrlogg(&data, &["verify", "--checkpoint", cp1.to_str().unwrap()]));
    // --name names the new key.
    std::fs::remove_file(&key_file).unwrap();
    ok(styrlogg(&data, &with_by(&["key", "rotate", "--name", "tyreso.se/logg", "--reason", "Förlorad igen"])));
    assert!(ok(styrlogg(&data, &["key", "public"])).starts_with("tyreso.se/logg+"));
    // No key file and no key recorded: nothing to rotate.
    let fresh = dir.path().join("fresh");
    ok(styrlogg(
        &fresh,
        &with_by(&[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            "x",
            "--org",
            "Tyresö kommun",
            "--on",
            "2012-01-15",
        ]),
    ));
    refused(styrlogg(&fresh, &with_by(&["key", "rotate", "--reason", "x"])), "key generate");
}

#[test]
fn a_retired_key_is_neither_recorded_again_nor_used_for_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let old_vkey = setup(&data);
    ok(styrlogg(&data, &with_by(&["key", "rotate", "--reason", "Årligt nyckelbyte"])));
    let id = name_id(&old_vkey).rsplit('+').next().unwrap().to_string();
    let retired = std::fs::read_dir(data.with_extension("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&format!("retired-{id}")))
        .expect("the old key is kept");
    let r = retired.to_str().unwrap();
    // The rotation is event 4 (start, key record, a step, rotation).
    let o = styrlogg(&data, &["--signing-key", r, "checkpoint"]);
    let e = err(&o);
    refused(o, "retired at position 4");
    assert!(!e.contains("key record"), "{e}");
    refused(
        styrlogg(&data, &with_by(&["--signing-key", r, "key", "record", "--reason", "Igen"])),
        "retired at position 4",
    );
    let list = ok(styrlogg(&data, &["key", "list"]));
    assert_eq!(list.lines().count(), 2, "nothing recorded: {list}");
    // The current key is recorded already: that is fine.
    let again = ok(styrlogg(&data, &with_by(&["key", "record", "--reason", "Igen"])));
    assert!(again.contains("already recorded"), "{again}");
    // A key of another name would part the checkpoints in two: refused.
    let other = dir.path().join("other.key");
    let o = &["--signing-key", other.to_str().unwrap()];
    ok(styrlogg(&data, &[&o[..], &["key", "generate", "--name", "other.se/x"]].concat()));
    let refusal = styrlogg(&data, &with_by(&[&o[..], &["key", "record", "--reason", "Annat namn"]].concat()));
    let e = err(&refusal);
    refused(refusal, "this key is named \"other.se/x\"");
    assert!(e.contains("key rotate --name"), "{e}");
    let list = ok(styrlogg(&data, &["key", "list"]));
    assert_eq!(list.lines().count(), 2, "nothing recorded: {list}");
}

#[test]
fn verify_checkpoint_fails_on_a_bad_file_or_key_before_walking_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let vkey = setup(&data);
    let cp = dir.path().join("cp");
    ok(styrlogg(&data, &["checkpoint", "-o", cp.to_str().unwrap()]));
    let missing = dir.path().join("missing.cp");
    let cases: [(&[&str], &str); 4] = [
        (&["verify", "--checkpoint", missing.to_str().unwrap()], "cannot read the checkpoint"),
        (&["verify", "--checkpoint", missing.to_str().unwrap(), "--key", &vkey], "cannot read the checkpoint"),
        (&["verify", "--checkpoint", cp.to_str().unwrap(), "--key", "nonsense"], "--key"),
        (&["verify", "--checkpoint", cp.to_str().unwrap(), "--key", &vkey, "--key", "a+b+c"], "not base64"),
    ];
    for (args, needle) in cases {
        let o = styrlogg(&data, args);
        assert_eq!(out(&o), "", "{args:?}: nothing is printed before the error");
        refused(o, needle);
    }
    let garbled = dir.path().join("garbled.cp");
    std::fs::write(&garbled, "tyreso.se/styrlogg\nthree\nroot\n\n\u{2014} tyreso.se/styrlogg AAAA\n").unwrap();
    let o = styrlogg(&data, &["verify", "--checkpoint", garbled.to_str().unwrap()]);
    assert_eq!(out(&o), "", "nothing is printed before the error");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

#[test]
fn not_signed_by_names_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let vkey = setup(&data);
    // A checkpoint of another log, by another key.
    let other = dir.path().join("other");
    ok(styrlogg(&other, &["key", "generate", "--name", "x.se/log"]));
    ok(styrlogg(
        &other,
        &with_by(&[
            "start",
            "skl-styrsystem-2012-2014",
            "--instance",
            "x",
            "--org",
            "Tyresö kommun",
            "--on",
            "2012-01-15",
        ]),
    ));
    let cp = dir.path().join("other.cp");
    ok(styrlogg(&other, &["checkpoint", "-o", cp.to_str().unwrap()]));
    // The recorded key and the local key are the same key: named once.
    let o = styrlogg(&data, &["verify", "--checkpoint", cp.to_str().unwrap()]);
    let e = err(&o);
    refused(o, "not signed by");
    assert_eq!(e.matches(&vkey).count(), 1, "{e}");
    let o = styrlogg(&data, &["verify", "--checkpoint", cp.to_str().unwrap(), "--key", &vkey, "--key", &vkey]);
    let e = err(&o);
    refused(o, "not signed by");
    assert_eq!(e.matches(&vkey).count(), 1, "{e}");
}
