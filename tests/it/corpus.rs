//! The format promise: every encoding in `tests/corpus/` decodes forever,
//! to the same JSON, and re-encodes to the same bytes. New encodings are
//! added with `STYRLOGG_BLESS_CORPUS=1 cargo nextest run corpus`; committed
//! files are never changed.

use crate::support::*;
use engine::{
    codec, Actor, AppendRequest, CommandId, EventStore, ExpectedVersion, Fact, FactValue, MemoryStore, NewEvent,
    Payload, PersonKind,
};
use jiff::civil::date;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Events that between them use every payload and fact variant.
pub fn samples() -> Vec<NewEvent> {
    let actor = Actor::new("Åsa Öberg", "registrator");
    let on = date(2012, 8, 21);
    let facts = vec![
        Fact { name: "beslutsdatum".into(), value: FactValue::Date(date(2012, 8, 21)) },
        Fact {
            name: "beslut".into(),
            value: FactValue::Text("Landstingsstyrelsen godkänner deltagande\nunder tre år".into()),
        },
        Fact { name: "avgift".into(), value: FactValue::AmountSek { ore: 800_000 } },
        Fact {
            name: "ordförande".into(),
            value: FactValue::Person {
                name: "Tommy Bernevång Forsberg".into(),
                role: "ordförande".into(),
                kind: PersonKind::ElectedMember,
            },
        },
        Fact {
            name: "projektledare".into(),
            value: FactValue::Person {
                name: "Kanslichef".into(),
                role: "projektledare".into(),
                kind: PersonKind::Official,
            },
        },
        Fact {
            name: "övrig".into(),
            value: FactValue::Person { name: "N N".into(), role: "justerare".into(), kind: PersonKind::Other },
        },
        Fact { name: "diarienummer".into(), value: FactValue::CaseNumber("LJ2012/896".into()) },
        Fact {
            name: "protokoll".into(),
            value: FactValue::MinutesRef {
                body: "Planeringsdelegationen".into(),
                date: date(2012, 8, 14),
                paragraph: "§ 100".into(),
            },
        },
        Fact {
            name: "projektplan".into(),
            value: FactValue::Document { title: "Projektplan med SWOT".into(), sha256: "ab".repeat(32).into() },
        },
        Fact { name: "trappsteg".into(), value: FactValue::Choice("dialog".into()) },
    ];
    vec![
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::InstanceStarted {
                workflow: "skl-styrsystem-2012-2014".into(),
                definition_hash: engine::Hash([7; 32]),
                definition: "id = \"skl-styrsystem-2012-2014\"\nversion = 1\n".into(),
                organisation: "Landstinget i Jönköpings län".into(),
                title: "Utveckling av styrsystem med medborgardialog".into(),
                case_number: Some("LJ2012/896".into()),
            },
        },
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::StepRecorded {
                step: "beslut".into(),
                facts: facts.clone(),
                deviation: None,
                late: Some(engine::Lateness { deadline: date(2012, 8, 20), days_late: 1 }),
            },
        },
        NewEvent {
            occurred_on: date(2011, 6, 26),
            actor: actor.clone(),
            payload: Payload::StepRecorded {
                step: "skrivelse".into(),
                facts: vec![],
                deviation: Some("Protokollet är daterat 2011-06-26".into()),
                late: None,
            },
        },
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::StepCorrected {
                corrects: engine::EventId::derive(&CommandId::new("v1-a").unwrap(), 1),
                reason: "Fel datum i protokollet".into(),
                occurred_on: Some(date(2012, 8, 22)),
                facts: facts[..2].to_vec(),
            },
        },
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::DeadlineChanged {
                step: "projektplan".into(),
                change: engine::DeadlineChange::Extended { to: date(2012, 11, 30) },
                reason: "SKL medgav anstånd".into(),
            },
        },
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::DeadlineChanged {
                step: "natverkstraff".into(),
                change: engine::DeadlineChange::Waived,
                reason: "Träffen ställdes in".into(),
            },
        },
        NewEvent {
            occurred_on: on,
            actor: actor.clone(),
            payload: Payload::NoteAdded { text: "Åäö ÅÄÖ é ü\ttab".into() },
        },
        NewEvent {
            occurred_on: date(2012, 10, 15),
            actor: actor.clone(),
            payload: Payload::DeadlineMissed { step: "projektplan".into(), deadline: date(2012, 10, 14) },
        },
        NewEvent {
            occurred_on: date(2012, 10, 7),
            actor: actor.clone(),
            payload: Payload::NoticeClaimed {
                key: "v1-b:projektplan:2012-10-14:reminder:7".into(),
                step: "projektplan".into(),
                deadline: date(2012, 10, 14),
                notice: "reminder:7".into(),
                channel: "email".into(),
                recipients: vec!["projektledare@rjl.se".into(), "styrgrupp@rjl.se".into()],
                attempt: 2,
            },
        },
        NewEvent {
            occurred_on: date(2012, 10, 7),
            actor: actor.clone(),
            payload: Payload::NoticeDelivered {
                key: "v1-b:projektplan:2012-10-14:reminder:7".into(),
                channel: "email".into(),
                attempt: 2,
            },
        },
        NewEvent {
            occurred_on: date(2012, 10, 7),
            actor: actor.clone(),
            payload: Payload::NoticeFailed {
                key: "v1-b:projektplan:2012-10-14:reminder:7".into(),
                channel: "nats".into(),
                attempt: 1,
                error: "connection refused".into(),
            },
        },
        // Added with the trust layer: a sealed personal fact, a signing
        // key, an erasure.
        NewEvent {
            occurred_on: date(2012, 1, 20),
            actor: actor.clone(),
            payload: Payload::StepRecorded {
                step: "intresseanmalan".into(),
                facts: vec![
                    Fact {
                        name: "kontaktperson".into(),
                        value: FactValue::Sealed {
                            person: engine::PersonId([0x11; 16]),
                            nonce: engine::SealNonce([0x22; 24]),
                            ciphertext: engine::Bytes((0u8..40).collect()),
                        },
                    },
                    Fact { name: "organisation".into(), value: FactValue::Text("Tyresö kommun".into()) },
                ],
                deviation: None,
                late: None,
            },
        },
        NewEvent {
            occurred_on: date(2026, 1, 5),
            actor: actor.clone(),
            payload: Payload::SigningKeyRotated {
                key_name: "tyreso.se/styrlogg".into(),
                public_key: engine::PublicKey([0x33; 32]),
                reason: "Årligt nyckelbyte".into(),
            },
        },
        NewEvent {
            occurred_on: date(2026, 1, 6),
            actor,
            payload: Payload::PersonErased {
                person: engine::PersonId([0x11; 16]),
                reason: "Gallring efter två år".into(),
                decision: "KS 2014/12 § 4".into(),
                facts: 3,
            },
        },
    ]
}

async fn generate() -> Vec<(Vec<u8>, String)> {
    let store = MemoryStore::new(clock());
    let mut evs = samples();
    let last = evs.split_off(2);
    store
        .append(AppendRequest {
            instance: instance("v1-a"),
            expected: ExpectedVersion::NoStream,
            command_id: CommandId::new("v1-a").unwrap(),
            events: evs,
        })
        .await
        .unwrap();
    store
        .append(AppendRequest {
            instance: instance("v1-b"),
            expected: ExpectedVersion::NoStream,
            command_id: CommandId::new("v1-b").unwrap(),
            events: last,
        })
        .await
        .unwrap();
    all_events(&store)
        .await
        .into_iter()
        .map(|e| (codec::reseal(&e).unwrap(), serde_json::to_string_pretty(&e).unwrap() + "\n"))
        .collect()
}

#[tokio::test]
async fn every_committed_encoding_still_decodes() {
    let dir = corpus_dir();
    if std::env::var_os("STYRLOGG_BLESS_CORPUS").is_some() {
        let v = dir.join(format!("v{}", codec::FORMAT_VERSION));
        std::fs::create_dir_all(&v).unwrap();
        for (i, (bin, json)) in generate().await.into_iter().enumerate() {
            let name = v.join(format!("{:03}", i + 1));
            if !name.with_extension("bin").exists() {
                std::fs::write(name.with_extension("bin"), bin).unwrap();
                std::fs::write(name.with_extension("json"), json).unwrap();
            }
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|v| std::fs::read_dir(v.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the corpus is committed under tests/corpus");
    let mut kinds = std::collections::BTreeSet::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let e = codec::decode(&bytes).unwrap_or_else(|err| panic!("{}: {err}", f.display()));
        let json = std::fs::read_to_string(f.with_extension("json")).unwrap();
        assert_eq!(serde_json::to_string_pretty(&e).unwrap() + "\n", json, "{} decodes to its JSON", f.display());
        assert_eq!(codec::reseal(&e).unwrap(), bytes, "{} re-encodes to the same bytes", f.display());
        kinds.insert(e.event.payload.kind());
    }
    assert_eq!(kinds.len(), 11, "the corpus covers every payload variant: {kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_encodings_read_as_views_in_the_embedded_store() {
    // The views the embedded store decodes for `status` read the stored
    // types through mirrors of them: every committed encoding, imported as
    // it is, reads as the same fields through both.
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir().join("v1")).unwrap().map(|f| f.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "bin"));
    files.sort();
    let events: Vec<_> = files.iter().map(|f| codec::decode(&std::fs::read(f).unwrap()).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = engine::EmbeddedStore::open(dir.path(), engine::OpenMode::CreateIfMissing, clock()).unwrap();
    store.import(events.clone()).await.unwrap();
    let page = store.read_records(1, 1000).await.unwrap();
    assert_eq!(page.len(), events.len());
    for (view, e) in page.iter().zip(&events) {
        assert_eq!(crate::conformance::view_fields(&view), crate::conformance::view_fields(&engine::EventRef::of(e)));
        assert_eq!(view.to_event().unwrap(), *e);
        assert_eq!(view.step.is_some(), matches!(e.event.payload, Payload::StepRecorded { .. }));
    }
    assert_eq!(crate::conformance::fact_kinds_in_steps(&events), 9, "the corpus records steps with every kind of fact");
    store.close().unwrap();
}

#[tokio::test]
async fn this_build_encodes_the_corpus_identically() {
    // Encoding is deterministic: the events the corpus was made from encode
    // to the committed bytes today.
    let v1 = corpus_dir().join("v1");
    for (i, (bin, _)) in generate().await.into_iter().enumerate() {
        let committed = std::fs::read(v1.join(format!("{:03}.bin", i + 1))).unwrap();
        assert_eq!(bin, committed, "sample {} encodes as committed", i + 1);
    }
}

#[test]
fn hostile_bytes_are_refused_not_panicked_on() {
    let good = std::fs::read(corpus_dir().join("v1/002.bin")).unwrap();
    assert!(matches!(codec::decode(&[]), Err(codec::DecodeError::TooShort(0))));
    let mut v9 = good.clone();
    v9[0] = 9;
    assert!(matches!(codec::decode(&v9), Err(codec::DecodeError::UnknownVersion(9))));
    for cut in [1, 10, good.len() / 2, good.len() - 33, good.len() - 1] {
        assert!(codec::decode(&good[..cut]).is_err(), "truncated at {cut}");
    }
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut flipped = good.clone();
            flipped[i] ^= 1 << bit;
            assert!(codec::decode(&flipped).is_err(), "a flip of bit {bit} of byte {i} is detected");
        }
    }
}
