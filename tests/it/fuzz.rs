//! A bounded fuzz run inside the normal tests: proptest feeds every parser
//! of hostile input random bytes and mutations of the real inputs (the
//! codec corpus, the built-in definitions and scenarios, an export of the
//! demo, signed checkpoints and proofs), a few thousand cases in all, and
//! checks the same properties as the cargo-fuzz targets (`fuzz/src/lib.rs`,
//! included here): no panic, and the round trips. A hang is caught by the
//! test harness's timeout (`.config/nextest.toml`). The inputs the
//! fuzzers found are kept below as plain tests.

use crate::cli::styrlogg;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "../../fuzz/src/lib.rs"]
mod props;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{dir} holds *.{ext} files");
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The committed corpus records without their hash (the property appends
/// the right one, so mutations reach the body decoder).
fn record_bodies() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| files("tests/corpus/v1", "bin").into_iter().map(|r| r[..r.len() - 32].to_vec()).collect())
}

fn definitions() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| files("workflows/definitions", "toml"))
}

fn scenarios() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| files("workflows/scenarios", "toml"))
}

/// `styrlogg export` of the demo, made once by the real binary.
fn demo_export() -> &'static str {
    static EXPORT: OnceLock<String> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        assert!(styrlogg(&store, &["demo"]).status.success());
        let out = styrlogg(&store, &["export"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    })
}

/// Go's sumdb/note example key, as in the trust crate's tests.
fn signer() -> trust::Signer {
    trust::Signer::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap()
}

/// A signed checkpoint, its verifier key and the signer key.
fn notes() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let s = signer();
        let c = trust::Checkpoint {
            origin: "PeterNeumann".into(),
            size: 31,
            root: [3; 32],
            extensions: vec!["styrlogg-time 2026-11-22T15:29:39Z".into(), format!("styrlogg-head {}", "ab".repeat(32))],
        };
        vec![
            s.sign(&c.to_text()).unwrap().into_bytes(),
            c.to_text().into_bytes(),
            s.verifier().to_vkey().into_bytes(),
            s.to_skey().as_bytes().to_vec(),
        ]
    })
}

/// An inclusion proof of a demo event and a consistency proof, as
/// `styrlogg prove` writes them.
fn proofs() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let events: Vec<engine::RecordedEvent> =
            demo_export().lines().map(|l| engine::export::parse_line(l).unwrap()).collect();
        let leaves: Vec<_> = events.iter().map(trust::event_leaf).collect();
        let n = leaves.len() as u64;
        let inclusion = trust::InclusionProof {
            origin: "PeterNeumann".into(),
            tree_size: n,
            leaf_index: 11,
            event: events[11].clone(),
            hashes: trust::merkle::proof_in_memory(&trust::merkle::inclusion_ranges(11, n), &leaves),
        };
        let consistency = trust::ConsistencyProof {
            origin: "PeterNeumann".into(),
            old_size: 7,
            new_size: n,
            hashes: trust::merkle::proof_in_memory(&trust::merkle::consistency_ranges(7, n), &leaves),
        };
        vec![inclusion.to_text().into_bytes(), consistency.to_text().into_bytes()]
    })
}

/// What a user might type or paste: control characters, bidi overrides,
/// Swedish letters, line ends, TOML punctuation, dates that do not exist.
const TOKENS: &[&str] = &[
    "\0",
    "\u{1b}[31m",
    "\u{202e}",
    "\r\n",
    "\n",
    "\t",
    "åäöÅÄÖéü",
    "\"",
    "'",
    "\\",
    "=",
    "|",
    "[[steps]]\n",
    "[[command]]\n",
    "[[roles]]\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "2013-02-29",
    "2012-13-01",
    "2012-04-31",
    "-9999-01-01",
    "18446744073709551616",
    "-1",
    "0",
    "§ 100",
    "\u{feff}",
    "\u{85}",
    "\"\"\"",
];

#[derive(Debug, Clone)]
enum Edit {
    Set(u32, u8),
    Insert(u32, u8),
    Token(u32, u8),
    Delete(u32, u16),
    /// Copies a span elsewhere (a repeated line, a repeated key).
    Copy(u32, u16, u32),
    Truncate(u32),
    /// A byte below 0x80 written as postcard could also read it: with a
    /// redundant continuation byte (`0x01` as `0x81 0x00`).
    Overlong(u32),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u32>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<u32>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<u32>(), any::<u8>()).prop_map(|(p, t)| Edit::Token(p, t)),
        (any::<u32>(), 1u16..200).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<u32>(), 1u16..400, any::<u32>()).prop_map(|(p, n, to)| Edit::Copy(p, n, to)),
        any::<u32>().prop_map(Edit::Truncate),
        any::<u32>().prop_map(Edit::Overlong),
    ]
}

fn mutate(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    let at = |p: u32, len: usize| p as usize % (len + 1);
    for e in edits {
        let len = data.len();
        match *e {
            Edit::Set(p, b) if len > 0 => data[p as usize % len] = b,
            Edit::Set(..) => {}
            Edit::Insert(p, b) => data.insert(at(p, len), b),
            Edit::Token(p, t) => {
                let i = at(p, len);
                data.splice(i..i, TOKENS[t as usize % TOKENS.len()].bytes());
            }
            Edit::Delete(p, n) => {
                let i = at(p, len);
                data.drain(i..(i + n as usize).min(len));
            }
            Edit::Copy(p, n, to) => {
                let i = at(p, len);
                let span: Vec<u8> = data[i..(i + n as usize).min(len)].to_vec();
                let j = at(to, len);
                data.splice(j..j, span);
            }
            Edit::Truncate(p) => data.truncate(at(p, len)),
            Edit::Overlong(p) if len > 0 => {
                let i = p as usize % len;
                if data[i] < 0x80 {
                    data[i] |= 0x80;
                    data.insert(i + 1, 0);
                }
            }
            Edit::Overlong(_) => {}
        }
    }
    data
}

/// A seed from `seeds`, edited.
fn mutated(seeds: fn() -> &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    (any::<prop::sample::Index>(), prop::collection::vec(edit(), 0..6))
        .prop_map(move |(i, edits)| mutate(i.get(seeds()).clone(), &edits))
}

/// Mutated text as a parser of text sees it: valid UTF-8 (what does not
/// decode becomes U+FFFD), so mutations reach the parser.
fn mutated_text(seeds: fn() -> &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    mutated(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned().into_bytes())
}

fn export_seed() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let text = demo_export();
        let lines: Vec<&str> = text.lines().collect();
        vec![text.as_bytes().to_vec(), lines[..4].join("\n").into_bytes(), lines[0].as_bytes().to_vec()]
    })
}

/// Whole lines of the demo export, dropped, repeated or swapped: what the
/// checks after the hashes see once the property chains them anew.
fn shuffled_export() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4).prop_map(|ops| {
        let mut lines: Vec<&str> = demo_export().lines().collect();
        for (op, a, b) in ops {
            let (i, j) = (a.index(lines.len()), b.index(lines.len()));
            match op {
                0 => drop(lines.remove(i)),
                1 => lines.insert(j, lines[i]),
                _ => lines.swap(i, j),
            }
            if lines.is_empty() {
                break;
            }
        }
        lines.join("\n").into_bytes()
    })
}

/// What a user types as a fact value: templates of every type, edited.
fn fact_input() -> impl Strategy<Value = Vec<u8>> {
    const TEMPLATES: &[&str] = &[
        "2012-08-14",
        "Anna Berg|ordförande|elected",
        "Åsa Öberg|sekreterare|tjänsteperson",
        "8 000,50 kr",
        "LJ2012/896",
        "Planeringsdelegationen|2012-08-14|§ 100",
        "Projektplan|abababababababababababababababababababababababababababababababab",
        "fri text\nmed två rader",
        "konsultera",
        "Anita Brynje|anita.brynje@tyreso.se",
        "Anita Brynje|08-578 291 00",
        "+46 8 123 456 78",
    ];
    (any::<u8>(), any::<prop::sample::Index>(), prop::collection::vec(edit(), 0..4)).prop_map(|(ty, t, edits)| {
        let raw = mutate(t.get(TEMPLATES).as_bytes().to_vec(), &edits);
        let mut out = vec![ty];
        out.extend(String::from_utf8_lossy(&raw).as_bytes());
        out
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decode(data in prop_oneof![3 => mutated(record_bodies), 1 => bytes()]) {
        props::decode(&data);
    }

    #[test]
    fn facts(data in prop_oneof![4 => fact_input(), 1 => bytes()]) {
        props::facts(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn definition(data in prop_oneof![4 => mutated_text(definitions), 1 => bytes()]) {
        props::definition(&data);
    }

    #[test]
    fn scenario(data in prop_oneof![4 => mutated_text(scenarios), 1 => bytes()]) {
        props::scenario(&data);
    }

    #[test]
    fn note(data in prop_oneof![4 => mutated_text(notes), 1 => bytes()]) {
        props::note(&data);
    }

    #[test]
    fn proof(data in prop_oneof![4 => mutated_text(proofs), 1 => bytes()]) {
        props::proof(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn export(data in prop_oneof![2 => mutated(export_seed), 2 => shuffled_export(), 1 => bytes()]) {
        props::export(&data);
    }
}

#[test]
fn the_seeds_pass_their_own_properties() {
    // The unmutated inputs are accepted, so the mutations start from inputs
    // that reach every check.
    for body in record_bodies() {
        let mut record = body.clone();
        record.extend_from_slice(&engine::codec::hash_encoded(body).0);
        engine::codec::decode(&record).unwrap();
        props::decode(body);
    }
    for d in definitions() {
        workflows::Definition::parse(std::str::from_utf8(d).unwrap()).unwrap();
        props::definition(d);
    }
    for s in scenarios() {
        workflows::Scenario::parse(std::str::from_utf8(s).unwrap()).unwrap();
        props::scenario(s);
    }
    assert_eq!(engine::export::read_export(demo_export().as_bytes()).unwrap().len(), 31);
    props::export(demo_export().as_bytes());
    let note = std::str::from_utf8(&notes()[0]).unwrap();
    trust::note::open(note, &[signer().verifier()]).unwrap();
    props::note(&notes()[0]);
    for p in proofs() {
        assert!(trust::proof::kind_of(std::str::from_utf8(p).unwrap()).is_some());
        props::proof(p);
    }
}
