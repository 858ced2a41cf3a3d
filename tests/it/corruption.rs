//! Damage to the embedded store's files: a flipped bit anywhere in the log's
//! segment files, a truncated or deleted segment, and a damaged index. The
//! log is the record: every byte of it is covered by a hash or must be
//! zero, so damage there is always found, by opening the store or by
//! `verify`, with the position; the store then refuses to serve. The index
//! is derived: damage there is found when it matters, never gives a wrong
//! answer, and `rebuild --index` repairs it.

use crate::support::*;
use engine::{
    Actor, AppendRequest, ChainVerifier, CommandId, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, OpenMode,
    Payload, RecordedEvent,
};
use std::path::{Path, PathBuf};

fn note(i: usize, bytes: usize) -> NewEvent {
    NewEvent {
        occurred_on: jiff::civil::date(2012, 8, 14),
        actor: Actor::new("Åsa Öberg", "registrator"),
        payload: Payload::NoteAdded { text: format!("{i}: ") + &"ä".repeat(bytes / 2) },
    }
}

/// A store of two segments: many small appends and a few large ones.
async fn pristine(dir: &Path) -> Vec<RecordedEvent> {
    let store = EmbeddedStore::open(dir, OpenMode::CreateIfMissing, clock()).unwrap();
    for i in 0..60 {
        store.append(req(&format!("i{}", i % 4), ExpectedVersion::Any, &format!("s{i}"), 1 + i % 3)).await.unwrap();
    }
    for i in 0..9 {
        store
            .append(AppendRequest {
                instance: instance("big"),
                expected: ExpectedVersion::Any,
                command_id: CommandId::new(format!("b{i}")).unwrap(),
                events: (0..8).map(|k| note(i * 8 + k, 15_000)).collect(),
            })
            .await
            .unwrap();
    }
    for i in 0..10 {
        store.append(req("tail", ExpectedVersion::Any, &format!("t{i}"), 1)).await.unwrap();
    }
    let events = all_events(&store).await;
    store.close().unwrap();
    events
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn segments(store: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(store.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Edits the first frame of the first segment (header and body, right
/// after the 64-byte segment header) and writes it back under a
/// recomputed frame hash, as someone editing the files on purpose would.
fn rewrite_first_frame(store: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&segments(store)[0]).unwrap();
    let mut header = [0u8; 16];
    f.read_exact_at(&mut header, 64).unwrap();
    let body = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let mut frame = vec![0u8; 16 + body];
    f.read_exact_at(&mut frame, 64).unwrap();
    edit(&mut frame);
    let rehashed = blake3::Hasher::new_derive_key("styrlogg frame v1").update(&frame).finalize();
    f.write_all_at(&frame, 64).unwrap();
    f.write_all_at(rehashed.as_bytes(), 64 + frame.len() as u64).unwrap();
    f.sync_all().unwrap();
}

fn flip(path: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

/// Overwrites `path` with zeros from `offset` to its end.
fn zero_from(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0u8; (len - offset) as usize], offset).unwrap();
}

/// What opening and verifying a store says.
#[derive(Debug)]
enum Verdict {
    Refused(String),
    Intact(Vec<RecordedEvent>),
}

async fn check(dir: &Path) -> Verdict {
    let store = match EmbeddedStore::open(dir, OpenMode::MustExist, clock()) {
        Ok(s) => s,
        Err(e) => return Verdict::Refused(format!("open: {e}")),
    };
    let verdict = async {
        let mut events = Vec::new();
        let mut next = 1;
        let mut chain = ChainVerifier::new();
        loop {
            let page = store.read_all(next, 500).await.map_err(|e| format!("read: {e}"))?;
            let Some(last) = page.last() else { break };
            next = last.event.position + 1;
            for e in &page {
                chain.check(e).map_err(|b| format!("chain: {b}"))?;
            }
            events.extend(page);
        }
        store.check_files().map_err(|e| format!("files: {e}"))?;
        Ok::<_, String>(events)
    }
    .await;
    let _ = store.close();
    match verdict {
        Ok(events) => Verdict::Intact(events),
        Err(e) => Verdict::Refused(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_anywhere_in_the_log_files_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let original = pristine(&base).await;
    assert!(matches!(check(&base).await, Verdict::Intact(ref e) if *e == original));
    let segs = segments(&base);
    assert_eq!(segs.len(), 2, "the workload spans two segments");
    let mut rng = fastrand::Rng::with_seed(0xb17);
    let mut places: Vec<(usize, u64)> = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let size = std::fs::metadata(s).unwrap().len();
        // The header, byte by byte; then the first 8 KiB densely (frame
        // headers, records, hashes); then anywhere, including the zeros.
        for o in 0..64 {
            places.push((i, o));
        }
        for _ in 0..60 {
            places.push((i, 64 + rng.u64(..8192)));
        }
        for _ in 0..60 {
            places.push((i, rng.u64(..size)));
        }
    }
    // Right after the last frame of the last segment, where a torn write
    // would be: a flipped bit there is still damage, not a torn write.
    let last = segs.last().unwrap();
    let data_end = {
        let bytes = std::fs::read(last).unwrap();
        bytes.iter().rposition(|b| *b != 0).unwrap() as u64 + 1
    };
    for d in 0..16 {
        places.push((segs.len() - 1, data_end + d));
    }
    let mut found = 0;
    for (n, (seg, offset)) in places.iter().enumerate() {
        let dir = tmp.path().join(format!("f{n}"));
        copy_dir(&base, &dir);
        let path = segments(&dir)[*seg].clone();
        flip(&path, *offset, rng.u8(..8));
        match check(&dir).await {
            Verdict::Refused(why) => {
                assert!(why.contains("corrupt") || why.contains("position"), "{}@{offset}: {why}", path.display());
                found += 1;
            }
            Verdict::Intact(_) => panic!("a flipped bit in {} at offset {offset} went unnoticed", path.display()),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{found} of {} single-bit flips in the log files found", places.len());
}

/// Ordinary reads trust the frame hash for the records in it; `verify`
/// checks each record's own hash. A record rewritten with its frame hash
/// recomputed (what someone editing the files on purpose would do) is
/// read as it now stands, and `verify` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_rewritten_under_a_recomputed_frame_hash_is_found_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let original = pristine(&dir).await;
    rewrite_first_frame(&dir, |frame| {
        // The last byte of the first record's stored chain hash.
        let first_len = u32::from_le_bytes(frame[16..20].try_into().unwrap()) as usize;
        frame[20 + first_len - 1] ^= 1;
    });

    let store = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    let read = store.read_all(1, 1).await.unwrap();
    assert_eq!(read[0].event, original[0].event, "the body is read as stored");
    assert_ne!(read[0].hash, original[0].hash, "with the stored hash as it now stands");
    let files = store.check_files().expect_err("verify finds the rewritten record");
    assert!(files.to_string().contains("position 1"), "{files}");
    assert!(files.to_string().contains("does not match"), "{files}");
    store.close().unwrap();
    match check(&dir).await {
        Verdict::Refused(why) => assert!(why.contains("chain"), "the chain walk finds it too: {why}"),
        Verdict::Intact(_) => panic!("a rewritten record went unnoticed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_missing_segments_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    pristine(&base).await;
    let segs = segments(&base);
    for (i, s) in segs.iter().enumerate() {
        let size = std::fs::metadata(s).unwrap().len();
        for cut in [0, 10, 64, 5000, size / 2, size - 1] {
            let dir = tmp.path().join(format!("t{i}-{cut}"));
            copy_dir(&base, &dir);
            let f = std::fs::OpenOptions::new().write(true).open(&segments(&dir)[i]).unwrap();
            f.set_len(cut).unwrap();
            match check(&dir).await {
                Verdict::Refused(why) => assert!(why.contains("truncated") || why.contains("corrupt"), "{why}"),
                Verdict::Intact(_) => panic!("segment {i} cut to {cut} bytes went unnoticed"),
            }
        }
    }
    // The last segment deleted: the index knew its events. The error
    // names the first position lost, where the log's files now end.
    let dir = tmp.path().join("deleted");
    copy_dir(&base, &dir);
    let last = segments(&dir).last().unwrap().clone();
    let last_first = frames_of(&last)[0].2;
    std::fs::remove_file(&last).unwrap();
    match check(&dir).await {
        Verdict::Refused(why) => {
            assert!(why.contains("log data was lost"), "{why}");
            assert!(why.contains(&format!("corrupt at position {last_first}:")), "{why}");
            assert!(why.contains(&format!("the log's files end at position {}", last_first - 1)), "{why}");
        }
        Verdict::Intact(_) => panic!("a deleted segment went unnoticed"),
    }
    // The end of the log zeroed, the frame holding the index's head with
    // it: the walk from that frame finds nothing, and the error still
    // says where the log's files end (the first zeroed frame's bytes are
    // cut in the middle, so its header alone does not count).
    let dir = tmp.path().join("zeroed");
    copy_dir(&base, &dir);
    let last = segments(&dir).last().unwrap().clone();
    let (start, _, first) = frames_of(&last)[1];
    zero_from(&last, start + 20);
    match check(&dir).await {
        Verdict::Refused(why) => {
            assert!(why.contains(&format!("corrupt at position {first}:")), "{why}");
            assert!(why.contains(&format!("the log ends at position {}", first - 1)), "{why}");
        }
        Verdict::Intact(_) => panic!("a zeroed end went unnoticed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_never_gives_a_wrong_answer_and_is_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let original = pristine(&base).await;
    let mut index_files: Vec<PathBuf> = Vec::new();
    for e in std::fs::read_dir(base.join("index")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && std::fs::metadata(&p).unwrap().len() > 0 {
            index_files.push(p);
        }
    }
    let mut rng = fastrand::Rng::with_seed(0x1d);
    let (mut refused, mut harmless) = (0, 0);
    for n in 0..60 {
        let dir = tmp.path().join(format!("x{n}"));
        copy_dir(&base, &dir);
        let f = &index_files[n % index_files.len()];
        let target = dir.join("index").join(f.file_name().unwrap());
        let size = std::fs::metadata(&target).unwrap().len();
        flip(&target, rng.u64(..size), rng.u8(..8));
        match check(&dir).await {
            Verdict::Refused(_) => refused += 1,
            Verdict::Intact(events) => {
                assert_eq!(events, original, "a flip in the index never changes what is read");
                harmless += 1;
            }
        }
        // Whatever happened, rebuilding the index from the log repairs it.
        EmbeddedStore::rebuild_index(&dir).unwrap();
        match check(&dir).await {
            Verdict::Intact(events) => assert_eq!(events, original),
            Verdict::Refused(why) => panic!("after rebuild --index: {why}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The index deleted outright: built again from the log on open.
    let dir = tmp.path().join("no-index");
    copy_dir(&base, &dir);
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    assert!(matches!(check(&dir).await, Verdict::Intact(ref e) if *e == original));
    eprintln!(
        "index flips: {refused} found, {harmless} in unused space and harmless; each repaired by rebuild --index"
    );
}

#[test]
fn the_command_line_names_the_damage_and_the_remedy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let o = crate::cli::styrlogg(&data, &["demo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A record in the middle: found by verify with its position.
    let seg = segments(&data)[0].clone();
    flip(&seg, 64 + 16 + 4 + 40, 3);
    let o = crate::cli::styrlogg(&data, &["verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("FAILED") && out.contains("position 1"), "{out}");
    // Found, it is marked, and every later command says so first, also one
    // answered from a checkpoint that reads nothing of the damage.
    for args in [&["status"][..], &["deadlines"], &["report", "dialogues"]] {
        let o = crate::cli::styrlogg(&data, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("warning: the log of ") && err.contains("found damaged at position 1"),
            "{args:?}: {err}"
        );
    }
    // The same damage at the end of the log: the store is not served.
    let data2 = tmp.path().join("store2");
    let o = crate::cli::styrlogg(&data2, &["demo"]);
    assert!(o.status.success());
    let seg = segments(&data2)[0].clone();
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() as u64;
    flip(&seg, end - 40, 0);
    let o = crate::cli::styrlogg(&data2, &["status"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("corrupt at position") && err.contains("Restore from an export"), "{err}");
    // verify says so as it says damage it finds by walking: FAILED, exit 1.
    let o = crate::cli::styrlogg(&data2, &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("FAILED: the log is corrupt at position"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("export --salvage"), "verify points at what can be taken out: {err}");
    // A stray file in the log's directory is no damage: it is named, with
    // the remedy, and nothing is touched; moved out, the store opens.
    let data3 = tmp.path().join("store3");
    assert!(crate::cli::styrlogg(&data3, &["demo"]).status.success());
    let stray = data3.join("log").join("notes.txt");
    std::fs::write(&stray, "x").unwrap();
    let o = crate::cli::styrlogg(&data3, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("notes.txt is in the log's directory but is no segment file") && !err.contains("corrupt"),
        "{err}"
    );
    std::fs::remove_file(&stray).unwrap();
    let o = crate::cli::styrlogg(&data3, &["verify"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_ends_before_its_record_is_refused_by_both_read_paths() {
    // Under a recomputed frame hash, a step's lateness tag is turned from
    // Some to None: the record keeps its length, and the body now ends 5
    // bytes early. `read_all` decodes it in full and `read_records` reads
    // its view; both must refuse it, not read it as a step on time.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = EmbeddedStore::open(&dir, OpenMode::CreateIfMissing, clock()).unwrap();
    let mut step = styrlogg::sample_event("styrelsebeslut");
    if let Payload::StepRecorded { late, .. } = &mut step.payload {
        *late = Some(engine::Lateness { deadline: jiff::civil::date(2013, 1, 7), days_late: 3 });
    }
    store.append(AppendRequest { events: vec![step], ..req("i", ExpectedVersion::NoStream, "c", 0) }).await.unwrap();
    assert!(store.read_records(1, 10).await.unwrap().get(0).step.unwrap().late.is_some());
    // Later frames, so that opening (which checks in full the frames the
    // index has not seen) leaves the first to the reads.
    for i in 0..3 {
        store.append(req("i", ExpectedVersion::Any, &format!("later-{i}"), 1)).await.unwrap();
    }
    store.close().unwrap();

    rewrite_first_frame(&dir, |frame| {
        assert_eq!(u32::from_le_bytes(frame[4..8].try_into().unwrap()), 1, "the first frame holds the step alone");
        // The record ends with the lateness (tag 1, year 2 bytes, month,
        // day, days late), the previous hash and the record's own hash.
        let tag = frame.len() - 64 - 6;
        assert_eq!(frame[tag], 1, "the lateness tag is where the encoding puts it");
        frame[tag] = 0;
    });

    let store = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    let full = store.read_all(1, 10).await.expect_err("a full decode refuses it");
    let view = store.read_records(1, 10).await.err().expect("the view refuses it");
    for e in [full, view] {
        assert!(matches!(e, engine::StoreError::Corrupt { position: 1, .. }), "{e}");
        assert!(e.to_string().contains("trailing"), "{e}");
    }
    store.close().unwrap();
}

/// Where each frame of a segment lies: (start offset, end offset, first
/// position), read from the frame headers as the format defines them.
fn frames_of(segment: &Path) -> Vec<(u64, u64, u64)> {
    let bytes = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut at = 64usize;
    while at + 16 <= bytes.len() {
        let body = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let first = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        if body == 0 && first == 0 {
            break;
        }
        let end = at + 16 + body + 32;
        out.push((at as u64, end as u64, first));
        at = end;
    }
    out
}

fn salvaged(dir: &Path) -> (Vec<RecordedEvent>, engine::embedded::Salvaged) {
    let mut events = Vec::new();
    let found = engine::embedded::salvage(dir, |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap();
    (events, found)
}

fn files_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = crate::cli::walk(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    out.sort();
    out
}

/// `export --salvage` reads a damaged log's files without opening the
/// store: whatever the damage, it hands over exactly the events before the
/// first frame that does not check out (frames hold whole commands, so the
/// result imports), says where it stopped, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_hands_over_exactly_the_events_before_the_damage_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let original = pristine(&base).await;
    let (all, found) = salvaged(&base);
    assert_eq!(all, original, "an intact log is handed over whole");
    assert_eq!(found.stopped, None);
    assert_eq!(found.head.position, original.len() as u64);
    assert_eq!(found.head.hash, original.last().unwrap().hash);
    assert_eq!(found.closed_at.map(|h| h.position), Some(original.len() as u64), "the clean close's head");

    let segs = segments(&base);
    let second_first = frames_of(&segs[1])[0].2;
    let mut rng = fastrand::Rng::with_seed(0x5a1);
    // (segment, offset, the first position that must not be handed over)
    let mut cases: Vec<(usize, u64, u64)> = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let frames = frames_of(s);
        let seg_first = frames[0].2;
        for o in [0, 17, 40, 63] {
            cases.push((i, o, seg_first));
        }
        for _ in 0..25 {
            let (start, end, first) = frames[rng.usize(..frames.len())];
            cases.push((i, rng.u64(start..end), first));
        }
        // The zeros after the last frame: every event of the segment is
        // handed over, then the walk stops.
        let (_, end, _) = *frames.last().unwrap();
        let after = if i + 1 < segs.len() { second_first } else { original.len() as u64 + 1 };
        let size = std::fs::metadata(s).unwrap().len();
        cases.push((i, end + rng.u64(0..(size - end).min(4096)), after));
    }
    for (n, (seg, offset, stop)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("s{n}"));
        copy_dir(&base, &dir);
        flip(&segments(&dir)[seg], offset, rng.u8(..8));
        let before = files_of(&dir);
        let (events, found) = salvaged(&dir);
        let at = format!("segment {seg} offset {offset}");
        assert_eq!(events.len() as u64, stop - 1, "{at}: {:?}", found.stopped);
        assert_eq!(events[..], original[..events.len()], "{at}: the events before the damage, as written");
        let (position, why) = found.stopped.clone().unwrap_or_else(|| panic!("{at}: the damage went unnoticed"));
        assert_eq!(position, stop, "{at}: {why}");
        assert!(!why.is_empty());
        assert_eq!(files_of(&dir), before, "{at}: salvage wrote to the store");
        if !events.is_empty() {
            let text: String = events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
            let read = engine::export::read_export(text.as_bytes()).expect("what salvage hands over imports");
            assert_eq!(read.len(), events.len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A truncated segment is read as far as its frames are whole; a
    // missing one ends the walk where it would have begun.
    let dir = tmp.path().join("cut");
    copy_dir(&base, &dir);
    let (start, _, first) = frames_of(&segments(&dir)[1])[3];
    std::fs::OpenOptions::new().write(true).open(&segments(&dir)[1]).unwrap().set_len(start + 20).unwrap();
    let (events, found) = salvaged(&dir);
    assert_eq!(events.len() as u64, first - 1);
    assert!(found.stopped.unwrap().1.contains("truncated"));
    let dir = tmp.path().join("gone");
    copy_dir(&base, &dir);
    std::fs::remove_file(&segments(&dir)[0]).unwrap();
    let (events, found) = salvaged(&dir);
    assert!(events.is_empty());
    assert!(found.stopped.unwrap().1.contains("starts at position"));

    // The end of the log gone without a trace (its frames zeroed, or the
    // last segment deleted): every byte left checks out, and the head the
    // last clean close recorded says what is missing.
    let dir = tmp.path().join("zeroed");
    copy_dir(&base, &dir);
    let last = segments(&dir).last().unwrap().clone();
    let (start, _, first) = frames_of(&last)[2];
    zero_from(&last, start);
    let (events, found) = salvaged(&dir);
    assert_eq!(events.len() as u64, first - 1);
    let (position, why) = found.stopped.unwrap();
    assert_eq!(position, first);
    assert!(why.contains("the end of the log is missing"), "{why}");
    assert_eq!(found.closed_at.unwrap().position, original.len() as u64);
    let dir = tmp.path().join("last-gone");
    copy_dir(&base, &dir);
    std::fs::remove_file(segments(&dir).last().unwrap()).unwrap();
    let (events, found) = salvaged(&dir);
    assert_eq!(events.len() as u64, second_first - 1);
    assert_eq!(found.stopped.unwrap().0, second_first);
    // A segment that is no regular file is named, not waited on.
    let dir = tmp.path().join("fifo");
    copy_dir(&base, &dir);
    let last = segments(&dir).last().unwrap().clone();
    std::fs::remove_file(&last).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&last).status().unwrap().success());
    let (events, found) = salvaged(&dir);
    assert_eq!(events.len() as u64, second_first - 1);
    assert!(found.stopped.unwrap().1.contains("not a regular file"));

    // Not while a process has the store open.
    let store = EmbeddedStore::open(&base, OpenMode::MustExist, clock()).unwrap();
    let e = engine::embedded::salvage(&base, |_| Ok(())).unwrap_err();
    assert!(matches!(e, engine::StoreError::Locked { .. }), "{e}");
    store.close().unwrap();
}

/// From the command line: an export that meets damage leaves no file and
/// keeps an earlier one, and points at `--salvage`; the salvaged file
/// holds the events before the damage, says so (exit 1), and imports into
/// a store that verifies; an intact log salvages to the same bytes as its
/// export.
#[test]
fn export_salvage_from_the_command_line() {
    use crate::cli::styrlogg;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    assert!(styrlogg(&data, &["demo"]).status.success());
    let file = tmp.path().join("export.jsonl");
    let salvage = tmp.path().join("salvage.jsonl");
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let (f, s) = (file.to_str().unwrap(), salvage.to_str().unwrap());
    assert!(styrlogg(&data, &["export", "-o", f]).status.success());
    let o = styrlogg(&data, &["export", "--salvage", "-o", s]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("wrote all 31 events"), "{}", out(&o));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&salvage).unwrap(), "an intact log salvages whole");

    // Damage in the fourth frame (the demo writes one frame a command).
    let seg = segments(&data)[0].clone();
    let (start, end, fourth) = frames_of(&seg)[3];
    flip(&seg, (start + end) / 2, 2);
    let earlier = std::fs::read(&file).unwrap();
    let o = styrlogg(&data, &["export", "-o", f]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(out(&o).contains("export --salvage") && out(&o).contains(&format!("position {fourth}")), "{}", out(&o));
    assert_eq!(std::fs::read(&file).unwrap(), earlier, "the earlier export is kept");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let o = styrlogg(&data, &["export", "--salvage", "-o", s]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let said = out(&o);
    assert!(said.contains(&format!("wrote events 1 to {} ", fourth - 1)), "{said}");
    assert!(
        said.contains(&format!("stopped at position {fourth}")) && said.contains("do not match its hash"),
        "{said}"
    );
    assert!(said.contains(&format!("at least {} events are not in it", 31 - fourth + 1)), "{said}");
    assert!(said.contains(&format!("Import {s} into a new directory")), "{said}");
    // To standard output, the same events, and the advice for a pipe.
    let o = styrlogg(&data, &["export", "--salvage"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("`styrlogg --data NEW import -` reads them from a pipe"), "{}", out(&o));
    assert_eq!(o.stdout, std::fs::read(&salvage).unwrap());
    // Named as a file that is a pipe: the same, it cannot be imported later.
    let o = styrlogg(&data, &["export", "--salvage", "-o", "/dev/stdout"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("`styrlogg --data NEW import -` reads them from a pipe"), "{}", out(&o));
    assert_eq!(o.stdout, std::fs::read(&salvage).unwrap());
    let lines = std::fs::read_to_string(&salvage).unwrap();
    assert_eq!(lines.lines().count() as u64, fourth - 1);
    assert!(earlier.starts_with(lines.as_bytes()), "the salvaged lines are the export's first lines");

    let restored = tmp.path().join("restored");
    let o = styrlogg(&restored, &["import", s]);
    assert!(o.status.success(), "{}", out(&o));
    let o = styrlogg(&restored, &["verify"]);
    assert!(o.status.success(), "{}", out(&o));

    // Nothing to salvage: no file.
    let empty_log = tmp.path().join("first");
    copy_dir(&data, &empty_log);
    flip(&segments(&empty_log)[0], 64 + 20, 1);
    let none = tmp.path().join("none.jsonl");
    let o = styrlogg(&empty_log, &["export", "--salvage", "-o", none.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("nothing could be salvaged") && !none.exists(), "{}", out(&o));

    // A JetStream log has replicas, not files to salvage: a usage error.
    for args in [
        &["export", "--salvage", "--nats", "nats://127.0.0.1:4222"][..],
        &["--nats", "nats://127.0.0.1:4222", "export", "--salvage"],
    ] {
        let o = styrlogg(&data, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(out(&o).contains("'--salvage' cannot be used with '--nats <URL>'"), "{}", out(&o));
    }
}

/// Damage a read finds in the log's frames stops writing, in this process
/// and in every later one (the `DAMAGED` mark), so no event is written
/// after damage that a restore would have to leave behind; reads of what
/// is intact go on. A `rebuild --index` that reads the whole log whole
/// again lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_found_damaged_takes_no_more_writes_until_it_is_whole_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    pristine(&dir).await;
    let seg = segments(&dir)[0].clone();
    let (start, end, first) = frames_of(&seg)[0];
    let at = (start + end) / 2;
    flip(&seg, at, 3);
    let open = || EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    let store = open();
    // An open checks the end of the log: the damage is not known yet.
    store.append(req("tail", ExpectedVersion::Any, "before", 1)).await.unwrap();
    let head = store.head().await.unwrap();
    let found = store.read_all(1, 10).await.unwrap_err();
    assert!(matches!(found, engine::StoreError::Corrupt { position, .. } if position == first), "{found}");
    let refused = store.append(req("tail", ExpectedVersion::Any, "after", 1)).await.unwrap_err();
    assert!(refused.to_string().contains("nothing more is written to a damaged log"), "{refused}");
    assert!(refused.to_string().contains(&format!("corrupt at position {first}")), "{refused}");
    assert_eq!(store.head().await.unwrap(), head, "nothing was written");
    assert!(!store.read_instance(&instance("i1"), 1).await.unwrap().is_empty(), "the intact part is read");
    store.close().unwrap();

    let store = open();
    let refused = store.append(req("tail", ExpectedVersion::Any, "later", 1)).await.unwrap_err();
    assert!(refused.to_string().contains("nothing more is written to a damaged log"), "{refused}");
    store.close().unwrap();
    assert!(EmbeddedStore::rebuild_index(&dir).is_err(), "the log is still damaged");
    assert!(dir.join("DAMAGED").exists());

    // The damage undone, as restoring the file would: `verify`'s check
    // of every byte finds the log whole and lifts the mark, and so does a
    // rebuild; writes go on.
    flip(&seg, at, 3);
    let store = open();
    assert!(store.check_files().unwrap().mark_lifted);
    store.close().unwrap();
    assert!(!dir.join("DAMAGED").exists());
    let store = open();
    store.append(req("tail", ExpectedVersion::Any, "whole", 1)).await.unwrap();
    assert_eq!(store.head().await.unwrap().position, head.position + 1);
    assert!(!store.check_files().unwrap().mark_lifted, "no mark, none lifted");
    store.close().unwrap();
    std::fs::write(dir.join("DAMAGED"), format!("{first}\nfound earlier\n")).unwrap();
    EmbeddedStore::rebuild_index(&dir).unwrap();
    assert!(!dir.join("DAMAGED").exists());

    // Anything by the mark's name is the mark: what it holds, if it can
    // be read at all, only words the refusal.
    let mark = dir.join("DAMAGED");
    for (n, make) in ["bytes", "empty", "directory", "dangling link"].into_iter().enumerate() {
        match make {
            "bytes" => std::fs::write(&mark, b"garbage\0\xff").unwrap(),
            "empty" => std::fs::write(&mark, b"").unwrap(),
            "directory" => std::fs::create_dir(&mark).unwrap(),
            _ => std::os::unix::fs::symlink(dir.join("nowhere"), &mark).unwrap(),
        }
        let store = open();
        let refused = store.append(req("tail", ExpectedVersion::Any, &format!("m{n}"), 1)).await.unwrap_err();
        assert!(refused.to_string().contains("nothing more is written to a damaged log"), "{make}: {refused}");
        store.close().unwrap();
        if make == "directory" {
            std::fs::remove_dir(&mark).unwrap();
        } else {
            std::fs::remove_file(&mark).unwrap();
        }
    }
}

/// The end of the log lost (its last segment deleted, or its end zeroed
/// part way into a frame): a failed open keeps the `CLEAN` mark, so
/// salvage still says what is missing, and `rebuild --index` refuses to
/// build an index that would cut the log there, by the last clean close or
/// by what the old index knew, and changes nothing in the log: it does not
/// take the cut frame for a write a crash cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_lost_its_end_is_not_cut_by_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let original = pristine(&base).await;
    let total = original.len() as u64;
    let log_files = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        files_of(dir).into_iter().filter(|(p, _)| !p.starts_with(dir.join("index"))).collect()
    };
    for (case, clean) in
        [("deleted", true), ("deleted, no clean close", false), ("zeroed", true), ("zeroed, no clean close", false)]
    {
        let dir = tmp.path().join(case.replace([' ', ','], "-"));
        copy_dir(&base, &dir);
        if !clean {
            std::fs::remove_file(dir.join("CLEAN")).unwrap();
        }
        let last = segments(&dir).last().unwrap().clone();
        let frames = frames_of(&last);
        let lost_from = if case.starts_with("deleted") {
            std::fs::remove_file(&last).unwrap();
            frames[0].2
        } else {
            // From the middle of the second frame on.
            let (start, end, first) = frames[1];
            let len = std::fs::metadata(&last).unwrap().len();
            let cut = (start + end) / 2;
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
            f.write_all_at(&vec![0u8; (len - cut) as usize], cut).unwrap();
            first
        };
        let before = log_files(&dir);
        let opened = EmbeddedStore::open(&dir, OpenMode::MustExist, clock());
        assert!(opened.is_err(), "{case}: an open refuses a log that lost its end");
        assert_eq!(dir.join("CLEAN").exists(), clean, "{case}: a failed open keeps the mark");
        let found = engine::embedded::salvage(&dir, |_| Ok(())).unwrap();
        assert_eq!(found.head.position, lost_from - 1, "{case}");
        // With no clean close and whole frames left, only the index knows.
        let told = clean || case.starts_with("zeroed");
        assert_eq!(found.stopped.is_some(), told, "{case}: salvage says the end is missing when it can know");

        let refused = EmbeddedStore::rebuild_index(&dir).unwrap_err().to_string();
        assert!(refused.contains("would cut the log") && refused.contains(&format!("{total}")), "{case}: {refused}");
        assert!(refused.contains(&format!("corrupt at position {lost_from}:")), "{case}: {refused}");
        assert!(log_files(&dir) == before, "{case}: nothing in the log changed");
        assert!(EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).is_err(), "{case}: still refused");
        if case == "zeroed" {
            // The index deleted too: the open that builds it again knows
            // the end from the clean close, and does not zero the cut frame
            // as a write a crash cut short.
            std::fs::remove_dir_all(dir.join("index")).unwrap();
            let refused = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).err().expect("refused");
            assert!(refused.to_string().contains(&format!("corrupt at position {lost_from}")), "{refused}");
            assert!(log_files(&dir) == before, "nothing in the log changed");
        }
    }
}

/// The `CLEAN` mark vouches for the end of the log until something is
/// written: a store open only for reading keeps it (a process stopped
/// before it closes leaves it right), the first write removes it, and a
/// log that does not end where the mark says, by position or by hash, is
/// refused even with no segments and no index left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_mark_holds_until_a_write_and_is_checked_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let original = pristine(&base).await;
    let head = original.last().unwrap().hash.to_hex();
    let clean = std::fs::read_to_string(base.join("CLEAN")).unwrap();
    assert_eq!(clean, format!("{} {head}\n", original.len()));

    let dir = tmp.path().join("reading");
    copy_dir(&base, &dir);
    let store = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 10);
    assert_eq!(std::fs::read_to_string(dir.join("CLEAN")).unwrap(), clean, "kept while only reading");
    store.append(req("tail", ExpectedVersion::Any, "new", 1)).await.unwrap();
    assert!(!dir.join("CLEAN").exists(), "the first write removes it");
    store.close().unwrap();
    assert!(dir.join("CLEAN").exists(), "a close writes it again");

    // Every segment gone, and the index with them.
    let dir = tmp.path().join("no-segments");
    copy_dir(&base, &dir);
    for s in segments(&dir) {
        std::fs::remove_file(s).unwrap();
    }
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    let refused = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).err().expect("refused").to_string();
    assert!(refused.contains("no segments but the store was closed at position"), "{refused}");
    assert_eq!(std::fs::read_to_string(dir.join("CLEAN")).unwrap(), clean);

    // A mark of the same length from another log.
    let dir = tmp.path().join("other-hash");
    copy_dir(&base, &dir);
    std::fs::write(dir.join("CLEAN"), format!("{} {}\n", original.len(), "ab".repeat(32))).unwrap();
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    let refused = EmbeddedStore::rebuild_index(&dir).unwrap_err().to_string();
    assert!(refused.contains("not the log that was closed"), "{refused}");
    let refused = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).err().expect("refused").to_string();
    assert!(refused.contains("not the one closed"), "{refused}");
}

/// An index that points a read at the wrong place is not damage to the
/// log: the frame found there sets no `DAMAGED` mark, the error names
/// `rebuild --index`, and the rebuild repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_that_points_wrong_sets_no_damage_mark() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct FrameLoc {
        segment: u64,
        offset: u64,
        events: u32,
        body_bytes: u32,
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = EmbeddedStore::open(&dir, OpenMode::CreateIfMissing, clock()).unwrap();
    for i in 0..12 {
        store.append(req(&format!("i{}", i % 3), ExpectedVersion::Any, &format!("s{i}"), 1)).await.unwrap();
    }
    let original = all_events(&store).await;
    store.close().unwrap();
    // The frame of position 5 (command s4, instance i1), one byte longer
    // in the index than in the log.
    let db = sled::open(dir.join("index")).unwrap();
    let mut key = vec![b'F'];
    key.extend_from_slice(&5u64.to_be_bytes());
    let mut loc: FrameLoc = postcard::from_bytes(&db.get(&key).unwrap().expect("an entry per frame")).unwrap();
    loc.body_bytes += 1;
    db.insert(key, postcard::to_allocvec(&loc).unwrap()).unwrap();
    db.flush().unwrap();
    drop(db);

    let store = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    let refused = store.read_instance(&instance("i1"), 1).await.unwrap_err().to_string();
    assert!(refused.contains("rebuild --index"), "{refused}");
    store.append(req("i0", ExpectedVersion::Any, "after", 1)).await.unwrap();
    store.close().unwrap();
    assert!(!dir.join("DAMAGED").exists(), "no mark for the index's mistake");
    let rebuilt = EmbeddedStore::rebuild_index(&dir).unwrap();
    assert_eq!(rebuilt.head.position, 13);
    let kept = rebuilt.kept.expect("the old index is kept aside");
    assert!(kept.file_name().unwrap().to_str().unwrap().starts_with("index.old-20"), "{}", kept.display());
    assert!(kept.join("db").is_file(), "sled's files, moved whole");
    let store = EmbeddedStore::open(&dir, OpenMode::MustExist, clock()).unwrap();
    assert_eq!(all_events(&store).await[..original.len()], original[..]);
    store.close().unwrap();
    // A second rebuild keeps both (within one second, under two names).
    let again = EmbeddedStore::rebuild_index(&dir).unwrap().kept.unwrap();
    assert!(again != kept && kept.exists() && again.exists(), "{} {}", kept.display(), again.display());
}
