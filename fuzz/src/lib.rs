//! The properties the fuzzers check, one function per parser of hostile
//! input: each takes arbitrary bytes, must return without panicking, and
//! asserts what must hold for whatever the parser accepts. The cargo-fuzz
//! targets in `fuzz_targets/` call these, and so does the bounded run in
//! the normal tests (`tests/it/fuzz.rs` includes this file), so both check
//! the same things.

use engine::export::{parse_line, read_export};
use engine::{codec, import_chunks, Actor, EventStore, ManualClock, MemoryStore};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use workflows::definition::{FactSpec, FactType};
use workflows::{facts, Definition, Scenario};

/// Runs a future that never waits (the memory store's calls) to its end.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

/// `codec::decode` on the bytes as given, and on the bytes with their
/// correct hash appended (so that the body decoder is reached): a record
/// that decodes re-encodes to exactly its bytes, and its JSON (the export
/// format) reads back as the same event.
pub fn decode(data: &[u8]) {
    decoded_round_trips(data);
    if !data.is_empty() {
        let mut record = data.to_vec();
        record.extend_from_slice(&codec::hash_encoded(data).0);
        decoded_round_trips(&record);
    }
}

fn decoded_round_trips(record: &[u8]) {
    let Ok(e) = codec::decode(record) else {
        return;
    };
    let again = codec::reseal(&e).expect("a decoded event re-encodes and matches its hash");
    assert_eq!(again, record, "a decoded record re-encodes to the same bytes");
    let line = serde_json::to_string(&e).expect("events serialise to JSON");
    let back = parse_line(&line).unwrap_or_else(|err| panic!("the export line of a stored event reads back: {err}"));
    assert_eq!(back, e, "an event survives export as JSON");
}

/// The import reader on the bytes as a whole file, on the events of its
/// lines chained anew (so that hashes match and the checks after them are
/// reached), and `parse_line` on a single line: whatever `read_export`
/// accepts, a store imports whole, chunk after chunk, and exports again as
/// the same events.
pub fn export(data: &[u8]) {
    import_accepted(data);
    if let Some(rechained) = rechain(data) {
        import_accepted(rechained.as_bytes());
    }
    if let Ok(line) = std::str::from_utf8(data) {
        if let Ok(e) = parse_line(line) {
            let again = serde_json::to_string(&e).expect("events serialise to JSON");
            assert_eq!(parse_line(&again).expect("written by serde_json"), e, "a parsed line round-trips");
        }
    }
}

fn import_accepted(file: &[u8]) {
    let Ok(events) = read_export(file) else {
        return;
    };
    let text: String = events.iter().map(|e| serde_json::to_string(e).expect("serialises") + "\n").collect();
    let again = read_export(text.as_bytes()).expect("an accepted export, written again, is accepted");
    assert_eq!(again, events, "an export reads back as the same events");
    let store = MemoryStore::new(Arc::new(ManualClock::new(jiff::Timestamp::UNIX_EPOCH)));
    for chunk in import_chunks(events.clone()) {
        now(store.import(chunk)).unwrap_or_else(|e| panic!("a store refused an export read_export accepted: {e}"));
    }
    let stored = now(store.read_all(1, events.len() + 1)).expect("reads");
    assert_eq!(stored, events, "the store holds what was imported");
}

/// The events of every line that parses, with `prev_hash` and `hash` made
/// to chain, as one export text; `None` when no line parses.
fn rechain(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut prev = engine::Hash::default();
    let mut out = String::new();
    for line in text.lines() {
        let Ok(mut e) = parse_line(line) else {
            continue;
        };
        e.event.prev_hash = prev;
        e.format_version = codec::FORMAT_VERSION;
        let Ok(bytes) = codec::encode_body(e.format_version, &e.event) else {
            continue;
        };
        e.hash = codec::hash_encoded(&bytes);
        prev = e.hash;
        out.push_str(&serde_json::to_string(&e).expect("serialises"));
        out.push('\n');
    }
    (!out.is_empty()).then_some(out)
}

/// A refusal names at least one problem, each at a place in the file.
fn problems_have_places(problems: &[workflows::Problem], source: &str) {
    assert!(!problems.is_empty(), "a refusal names at least one problem");
    for p in problems {
        let (line, col) = p.line_col(source);
        assert!(line >= 1 && col >= 1);
        let _ = p.render("fuzz.toml", source);
    }
}

/// `Definition::parse`: every problem renders with a place in the file;
/// a definition that parses parses again to the same, and can start an
/// instance (its text, title and names are what the log takes).
pub fn definition(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Definition::parse(source) {
        Err(problems) => problems_have_places(&problems, source),
        Ok(def) => {
            assert_eq!(Definition::parse(source).as_ref(), Ok(&def), "parsing is a pure function of the text");
            let day = jiff::civil::date(2012, 8, 14);
            let role = def.roles[0].id.clone();
            let event = workflows::start(&def, "Tyresö kommun", None, day, Actor::new("Eva Ek", role), day)
                .expect("a parsed definition can start an instance");
            event.validate().unwrap_or_else(|e| panic!("the log takes a parsed definition: {e}"));
            // What a user types for a step's facts can be recorded: names
            // and choice options are names the log takes, typed trimmed.
            let typable = |s: &str| {
                !s.is_empty()
                    && s.trim() == s
                    && engine::event::check_text("", s, engine::limits::NAME_BYTES_MAX, false).is_ok()
            };
            for step in &def.steps {
                for f in &step.facts {
                    assert!(typable(&f.name) && !f.name.contains('='), "fact name {:?} can be typed", f.name);
                    if let FactType::Choice(options) = &f.ty {
                        assert!(options.iter().all(|o| typable(o)), "options {options:?} can be typed");
                    }
                }
            }
        }
    }
}

/// `Scenario::parse`: every problem renders with a place in the file; a
/// scenario that parses parses again to the same, and every command has
/// a line in the file.
pub fn scenario(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse(source) {
        Err(problems) => problems_have_places(&problems, source),
        Ok(s) => {
            assert_eq!(Scenario::parse(source).as_ref(), Ok(&s), "parsing is a pure function of the text");
            let lines = source.lines().count().max(1);
            for c in &s.commands {
                assert!(c.line >= 1 && c.line <= lines, "command {} is on line {} of {lines}", c.index, c.line);
                let _ = c.what.describe();
            }
        }
    }
}

/// Every fact type, as a definition declares it.
pub fn fact_specs() -> Vec<FactSpec> {
    let types = [
        FactType::Date,
        FactType::Person,
        FactType::Amount,
        FactType::CaseNumber,
        FactType::Minutes,
        FactType::Document,
        FactType::Text,
        FactType::Choice(vec!["informera".into(), "konsultera".into(), "delta".into(), "samarbeta".into()]),
        FactType::Email,
        FactType::Phone,
    ];
    types
        .into_iter()
        .map(|ty| FactSpec {
            name: format!("f_{}", ty.name()),
            title: None,
            ty,
            required: true,
            many: false,
            need_kinds: Vec::new(),
            personal: false,
            confidential: false,
            of: None,
        })
        .collect()
}

/// `workflows::facts`: the first byte picks a fact type, the rest is what
/// the user typed. A value that parses has the type asked for, and the
/// codec and JSON carry it unchanged.
pub fn facts(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = facts::parse_date(raw);
    let specs = fact_specs();
    let spec = &specs[usize::from(pick) % specs.len()];
    let Ok(value) = facts::parse(spec, raw) else {
        return;
    };
    assert!(facts::has_type(spec, &value), "{value:?} has the type {}", spec.ty.name());
    let _ = facts::as_text(&value);
    let _ = facts::named_person(&value);
    let json = serde_json::to_string(&value).expect("serialises");
    assert_eq!(serde_json::from_str::<engine::FactValue>(&json).expect("reads back"), value);
}

/// The trust crate's text parsers: signed notes, checkpoints, verifier and
/// signer keys. What parses writes back to text that parses to the same.
pub fn note(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = trust::Signer::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .expect("Go's example key");
    let _ = trust::note::open(text, &[signer.verifier()]);
    if let Ok(body) = trust::note::text_of(text) {
        checkpoint_round_trips(&body);
    }
    checkpoint_round_trips(text);
    if let Ok(v) = trust::Verifier::parse(text) {
        assert_eq!(trust::Verifier::parse(&v.to_vkey()).expect("written by to_vkey"), v);
    }
    if let Ok(s) = trust::Signer::parse(text) {
        let again = trust::Signer::parse(&s.to_skey()).expect("written by to_skey");
        assert_eq!(again.verifier(), s.verifier());
    }
}

fn checkpoint_round_trips(text: &str) {
    if let Ok(c) = trust::Checkpoint::parse(text) {
        assert_eq!(trust::Checkpoint::parse(&c.to_text()).expect("written by to_text"), c);
    }
}

/// Inclusion and consistency proof files: what parses writes back to text
/// that parses to the same, and checking it against a checkpoint of its
/// own origin and sizes never panics.
pub fn proof(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = trust::proof::kind_of(text);
    let checkpoint = |origin: &str, size: u64| trust::Checkpoint {
        origin: origin.to_string(),
        size,
        root: [7; 32],
        extensions: Vec::new(),
    };
    if let Ok(p) = trust::InclusionProof::parse(text) {
        assert_eq!(trust::InclusionProof::parse(&p.to_text()).expect("written by to_text"), p);
        let _ = p.check(&checkpoint(&p.origin, p.tree_size));
    }
    if let Ok(p) = trust::ConsistencyProof::parse(text) {
        assert_eq!(trust::ConsistencyProof::parse(&p.to_text()).expect("written by to_text"), p);
        let _ = p.check(&checkpoint(&p.origin, p.old_size), &checkpoint(&p.origin, p.new_size));
    }
}
