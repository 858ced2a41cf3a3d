//! The trust commands: the signing key (`key`), signed checkpoints
//! (`checkpoint`), consistency with a checkpoint (`verify --checkpoint`),
//! inclusion and consistency proofs (`prove`) and checking them without
//! the log (`check-proof`). The Merkle tree and the formats are in the
//! `trust` crate; this module reads the log and the files.

use crate::cli::{By, Cli, KeyCommand};
use crate::{open, personal, Refused};
use anyhow::{bail, Context, Result};
use engine::{
    Actor, AnyStore, AppendRequest, ChainVerifier, CommandId, EventStore, ExpectedVersion, InstanceId, NewEvent,
    OpenMode, Payload, PublicKey,
};
use std::path::{Path, PathBuf};
use trust::merkle::{self, TreeBuilder};
use trust::note::{self, Checkpoint, Signer, Verifier};
use trust::proof::{self, ConsistencyProof, InclusionProof};

/// Where the signing key file is.
pub fn signing_key_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.signing_key {
        return Ok(p.clone());
    }
    match personal::key_dir(cli, &cli.data) {
        Some(d) => Ok(d.join("signing.key")),
        None => bail!(Refused("with --nats, say where the signing key is: --signing-key FILE or --keys DIR".into())),
    }
}

/// The signing key, if its file exists.
pub fn signer(cli: &Cli) -> Result<Option<Signer>> {
    let path = signing_key_path(cli)?;
    if !path.exists() {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!("{} can be read by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777);
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path).with_context(|| format!("cannot read the signing key {}", path.display()))?,
    );
    let s = Signer::parse(&text).map_err(|e| Refused(format!("{}: {e}", path.display())))?;
    Ok(Some(s))
}

fn need_signer(cli: &Cli) -> Result<Signer> {
    match signer(cli)? {
        Some(s) => Ok(s),
        None => bail!(Refused(format!(
            "no signing key at {}: make one with `styrlogg key generate --name NAME` (or give --signing-key FILE)",
            signing_key_path(cli)?.display()
        ))),
    }
}

/// The signing keys recorded in the log: (position, recorded at, name, key).
async fn recorded_keys(store: &impl EventStore) -> Result<Vec<(u64, String, Verifier)>> {
    let mut out = Vec::new();
    for e in personal::system_events(store).await? {
        if let Payload::SigningKeyRotated { key_name, public_key, .. } = &e.event.payload {
            let v = Verifier::new(key_name, public_key.0).map_err(|err| {
                Refused(format!("position {}: the recorded signing key is not usable: {err}", e.event.position))
            })?;
            out.push((e.event.position, e.event.recorded_at.to_string(), v));
        }
    }
    Ok(out)
}

/// When the log recorded `v` and later another key: the position of the
/// key that replaced it (where `v` was retired), and that key.
fn retired_at<'a>(keys: &'a [(u64, String, Verifier)], v: &Verifier) -> Option<(u64, &'a Verifier)> {
    let i = keys.iter().rposition(|(_, _, k)| k == v)?;
    keys.get(i + 1).map(|(pos, _, k)| (*pos, k))
}

/// Where `key rotate` keeps a replaced key, or stages a new one: next to
/// the key file, its name with `suffix` appended (`signing.key.retired-ID`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "signing.key".into());
    name.push(suffix);
    path.with_file_name(name)
}

/// A key as the OK lines name it: `NAME+ID`.
fn key_label(v: &Verifier) -> String {
    format!("{}+{}", v.name, hex::encode(v.key_id))
}

fn push_unique(keys: &mut Vec<Verifier>, v: Verifier) {
    if !keys.contains(&v) {
        keys.push(v);
    }
}

/// Streams the log's first `upto` events into `b`, checking the chain as
/// it goes: a checkpoint is never made over a broken chain.
async fn feed_tree(store: &impl EventStore, mut b: TreeBuilder, upto: u64) -> Result<(TreeBuilder, engine::Hash)> {
    let mut chain = ChainVerifier::new();
    let mut next = 1;
    while next <= upto {
        let page = store.read_all(next, engine::limits::READ_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.event.position + 1;
        for e in page.iter().filter(|e| e.event.position <= upto) {
            chain.check(e).map_err(|b| Refused(format!("the log fails verification: {b}")))?;
            b.push_input(&e.hash.0);
        }
    }
    if b.size() != upto {
        bail!(Refused(format!("the log holds {} events, fewer than {upto}", b.size())));
    }
    Ok((b, chain.head()))
}

/// A signed checkpoint of the log's first `size` events.
pub async fn make_checkpoint(store: &impl EventStore, signer: &Signer, size: u64) -> Result<(Checkpoint, String)> {
    let (b, head) = feed_tree(store, TreeBuilder::new(vec![], &[]), size).await?;
    let c = Checkpoint {
        origin: signer.name().to_string(),
        size,
        root: b.root(),
        extensions: vec![
            format!(
                "styrlogg-time {}",
                jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or(jiff::Timestamp::now())
            ),
            format!("styrlogg-head {head}"),
        ],
    };
    let note = signer.sign(&c.to_text()).map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    Ok((c, note))
}

/// Warns, or refuses, when the key file is not the key the log says is
/// current.
async fn check_current_key(store: &impl EventStore, signer: &Signer) -> Result<()> {
    let keys = recorded_keys(store).await?;
    let mine = signer.verifier();
    match keys.last() {
        None => eprintln!(
            "note: the signing key {} is not recorded in the log yet; record it with `styrlogg key record --reason ... --by ... --role ...`",
            mine.to_vkey()
        ),
        Some((pos, _, v)) if *v != mine => match retired_at(&keys, &mine) {
            Some((at, _)) => bail!(Refused(format!(
                "the signing key file holds {}, which the log retired at position {at}: use the log's current key {}{}",
                mine.to_vkey(),
                v.to_vkey(),
                if at == *pos { String::new() } else { format!(" (recorded at position {pos})") }
            ))),
            None => bail!(Refused(format!(
                "the signing key file holds {}, but the log's current key (position {pos}) is {}: use that key, or record this one with `styrlogg key record`",
                mine.to_vkey(),
                v.to_vkey()
            ))),
        },
        Some(_) => {}
    }
    Ok(())
}

fn write_output(output: Option<&Path>, text: &str) -> Result<()> {
    crate::output::Output::write_whole(output, text)
}

/// `styrlogg checkpoint`
pub async fn checkpoint(cli: &Cli, output: Option<&Path>) -> Result<()> {
    let signer = match signer(cli)? {
        Some(s) => s,
        None => {
            // A key the log recorded is lost: a new one from `key generate`
            // would be refused as not the log's current key.
            // (No store, or one that does not open: the missing key is
            // what to say first.)
            if let Ok(store) = open(cli, OpenMode::MustExist).await {
                let keys = recorded_keys(&store).await;
                store.close()?;
                if let Some((at, _, last)) = keys?.last() {
                    bail!(Refused(format!(
                        "no signing key at {}, and the log recorded {} at position {at} as its key: restore that \
                         key's file from its backup (or give it with --signing-key FILE), or replace the lost key \
                         with `styrlogg key rotate`, which records a new one",
                        signing_key_path(cli)?.display(),
                        last.to_vkey()
                    )));
                }
            }
            // None recorded: make one (or it has just been made).
            need_signer(cli)?
        }
    };
    let store = open(cli, OpenMode::MustExist).await?;
    check_current_key(&store, &signer).await?;
    let head = store.head().await?;
    let (_, note) = make_checkpoint(&store, &signer, head.position).await?;
    store.close()?;
    write_output(output, &note)
}

fn read_file(path: &Path, what: &str) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Refused(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.len() > note::NOTE_BYTES_MAX.max(proof::PROOF_BYTES_MAX) as u64 {
        bail!(Refused(format!("{} is {} bytes; too large for {what}", path.display(), meta.len())));
    }
    std::fs::read_to_string(path).map_err(|e| Refused(format!("cannot read {what} {}: {e}", path.display())).into())
}

/// The `--key` values: each a public key (NAME+ID+KEY) or a file holding
/// one or more, one per line (blank lines and `#` comments skipped). The
/// same key given twice counts once.
pub fn parse_keys(args: &[String]) -> Result<Vec<Verifier>> {
    let mut keys = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_file() {
            let text = read_file(path, "the key file")?;
            let mut any = false;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let v = Verifier::parse(line)
                    .map_err(|e| Refused(format!("--key {} line {}: {e}", path.display(), i + 1)))?;
                push_unique(&mut keys, v);
                any = true;
            }
            if !any {
                bail!(Refused(format!("--key {}: the file holds no key (one NAME+ID+KEY per line)", path.display())));
            }
        } else {
            let v = Verifier::parse(arg).map_err(|e| {
                if arg.contains('+') {
                    Refused(format!("--key {arg}: {e}"))
                } else {
                    Refused(format!(
                        "--key {arg}: no such file, and not a public key (expected NAME+ID+KEY, as `styrlogg key public` prints)"
                    ))
                }
            })?;
            push_unique(&mut keys, v);
        }
    }
    Ok(keys)
}

/// Opens a checkpoint (the text of `path`) with the given keys: its
/// checkpoint, and which of the keys signed it (as `NAME+ID`).
fn open_checkpoint_text(path: &Path, text: &str, keys: &[Verifier]) -> Result<(Checkpoint, String)> {
    let opened = note::open(text, keys).map_err(|e| Refused(format!("{}: {e}", path.display())))?;
    let c = Checkpoint::parse(&opened.text).map_err(|e| Refused(format!("{}: {e}", path.display())))?;
    // The note names a key only by name and id; say which of ours signed.
    let by: Vec<String> =
        keys.iter().filter(|k| note::open(text, std::slice::from_ref(k)).is_ok()).map(key_label).collect();
    Ok((c, by.join(", ")))
}

/// Opens a checkpoint file with the given keys: its checkpoint, and who
/// signed it.
fn open_checkpoint(path: &Path, keys: &[Verifier]) -> Result<(Checkpoint, String)> {
    let text = read_file(path, "the checkpoint")?;
    open_checkpoint_text(path, &text, keys)
}

/// The keys a checkpoint of this log may be signed with: those recorded in
/// the log and the local one, each once.
async fn known_keys(cli: &Cli, store: &impl EventStore) -> Result<Vec<Verifier>> {
    let mut keys = Vec::new();
    for (_, _, v) in recorded_keys(store).await? {
        push_unique(&mut keys, v);
    }
    if let Some(s) = signer(cli)? {
        push_unique(&mut keys, s.verifier());
    }
    if keys.is_empty() {
        bail!(Refused(
            "no key to check the checkpoint's signature with: give --key NAME+ID+KEY (none is recorded in the log and there is no local signing key)".into()
        ));
    }
    Ok(keys)
}

/// The checkpoint of `verify --checkpoint`, read, and checked as far as
/// it can be without the log, before the chain walk.
pub struct CheckpointToVerify {
    path: PathBuf,
    text: String,
    /// The `--key` keys; none: the keys the log records, and the local one.
    keys: Vec<Verifier>,
}

/// Reads the checkpoint file and parses the `--key` values: a missing
/// file, a file that is no checkpoint, a bad key, or (with `--key`) a
/// signature by none of the keys fails here, before the chain walk prints
/// anything.
pub fn read_checkpoint_to_verify(path: &Path, keys: &[String]) -> Result<CheckpointToVerify> {
    let keys = parse_keys(keys)?;
    let text = read_file(path, "the checkpoint")?;
    if keys.is_empty() {
        let body = note::text_of(&text).map_err(|e| Refused(format!("{}: {e}", path.display())))?;
        Checkpoint::parse(&body).map_err(|e| Refused(format!("{}: {e}", path.display())))?;
    } else {
        open_checkpoint_text(path, &text, &keys)?;
    }
    Ok(CheckpointToVerify { path: path.to_path_buf(), text, keys })
}

/// The checks of `verify --checkpoint`, after the chain walk: the log's
/// first `size` events hash to the checkpoint's root, and the consistency
/// proof from it to the log as it is now holds.
pub async fn verify_checkpoint(cli: &Cli, store: &impl EventStore, cp: &CheckpointToVerify) -> Result<String> {
    let keys = if cp.keys.is_empty() { known_keys(cli, store).await? } else { cp.keys.clone() };
    let (c, by) = open_checkpoint_text(&cp.path, &cp.text, &keys)?;
    let head = store.head().await?;
    if c.size > head.position {
        bail!(Refused(format!(
            "FAILED: the checkpoint covers {} events but the log holds only {}: the log was cut short, or it is another log",
            c.size, head.position
        )));
    }
    let ranges = merkle::consistency_ranges(c.size, head.position);
    let (b, _) = feed_tree(store, TreeBuilder::new(ranges, &[c.size]), head.position).await?;
    let old = b.root_at(c.size).expect("asked for");
    if old != c.root {
        bail!(Refused(format!(
            "FAILED: the log's first {} events do not hash to the checkpoint's root: the log was rewritten after the checkpoint was signed",
            c.size
        )));
    }
    let proof = b.range_hashes().expect("every range reached");
    merkle::verify_consistency(c.size, head.position, &proof, &c.root, &b.root())
        .map_err(|e| Refused(format!("FAILED: consistency proof: {e}")))?;
    Ok(format!(
        "OK: the log ({} events, root {}) extends the checkpoint of {} events signed by {}{} (consistency proof of {} hash{})",
        head.position,
        hex::encode(b.root()),
        c.size,
        by,
        c.extension("styrlogg-time").map(|t| format!(" at {t}")).unwrap_or_default(),
        proof.len(),
        if proof.len() == 1 { "" } else { "es" }
    ))
}

/// `styrlogg prove`
pub async fn prove(
    cli: &Cli,
    event: Option<&str>,
    checkpoint: Option<&Path>,
    from: Option<&Path>,
    output: Option<&Path>,
) -> Result<()> {
    let store = open(cli, OpenMode::MustExist).await?;
    let head = store.head().await?;
    let (size, origin) = match checkpoint {
        Some(p) => {
            let keys = known_keys(cli, &store).await?;
            let (c, _) = open_checkpoint(p, &keys)?;
            if c.size > head.position {
                bail!(Refused(format!("the checkpoint covers {} events; this log holds {}", c.size, head.position)));
            }
            (Some(c), None)
        }
        None => (None, Some(need_signer(cli)?.name().to_string())),
    };
    let tree_size = size.as_ref().map_or(head.position, |c| c.size);
    let origin = size.as_ref().map(|c| c.origin.clone()).or(origin).expect("one of them");
    let text = match (event, from) {
        (Some(which), _) => {
            let e = crate::flow::find_event(&store, which).await?;
            if e.event.position > tree_size {
                bail!(Refused(format!(
                    "event {} is at position {}, after the checkpoint's {tree_size} events: prove it against a later checkpoint",
                    e.event.event_id, e.event.position
                )));
            }
            let index = e.event.position - 1;
            let ranges = merkle::inclusion_ranges(index, tree_size);
            let (b, _) = feed_tree(&store, TreeBuilder::new(ranges, &[]), tree_size).await?;
            if let Some(c) = &size {
                if b.root() != c.root {
                    bail!(Refused(format!("FAILED: this log's first {} events do not hash to the checkpoint's root: the log was rewritten", c.size)));
                }
            }
            let p = InclusionProof {
                origin,
                tree_size,
                leaf_index: index,
                event: e,
                hashes: b.range_hashes().expect("reached"),
            };
            p.to_text()
        }
        (None, Some(old_path)) => {
            let keys = known_keys(cli, &store).await?;
            let (old, _) = open_checkpoint(old_path, &keys)?;
            if old.size > tree_size {
                bail!(Refused(format!("the older checkpoint covers {} events, more than {tree_size}", old.size)));
            }
            let ranges = merkle::consistency_ranges(old.size, tree_size);
            let (b, _) = feed_tree(&store, TreeBuilder::new(ranges, &[old.size]), tree_size).await?;
            if b.root_at(old.size) != Some(old.root) {
                bail!(Refused(format!("FAILED: this log's first {} events do not hash to the older checkpoint's root: the log was rewritten", old.size)));
            }
            if let Some(c) = &size {
                if b.root() != c.root {
                    bail!(Refused(format!(
                        "FAILED: this log's first {} events do not hash to the checkpoint's root",
                        c.size
                    )));
                }
            }
            ConsistencyProof {
                origin,
                old_size: old.size,
                new_size: tree_size,
                hashes: b.range_hashes().expect("reached"),
            }
            .to_text()
        }
        (None, None) => bail!(Refused("give an EVENT, or --from OLD_CHECKPOINT".into())),
    };
    store.close()?;
    if checkpoint.is_none() {
        eprintln!(
            "the proof is for the log's {tree_size} events as they are now: check it against a checkpoint of that size (`styrlogg checkpoint` prints one now)"
        );
    }
    write_output(output, &text)
}

/// `styrlogg check-proof`: needs no log. Each checkpoint must be signed by
/// one of `keys` (several: a consistency proof across a key rotation).
pub fn check_proof(proof_path: &Path, checkpoint: &Path, old: Option<&Path>, keys: &[String]) -> Result<()> {
    let keys = parse_keys(keys)?;
    if keys.is_empty() {
        bail!(Refused("give the log's public key with --key NAME+ID+KEY (or a file of keys)".into()));
    }
    let (c, by) = open_checkpoint(checkpoint, &keys)?;
    let text = read_file(proof_path, "the proof")?;
    let fail = |e: proof::ProofFileError| Refused(format!("{}: {e}", proof_path.display()));
    match proof::kind_of(&text) {
        Some("inclusion") => {
            if let Some(old) = old {
                // Checking nothing against it would read as if it had been.
                bail!(Refused(format!(
                    "{} is an inclusion proof, checked against --checkpoint alone; --old-checkpoint {} is for a consistency proof (`styrlogg prove --from`)",
                    proof_path.display(),
                    old.display()
                )));
            }
            let p = InclusionProof::parse(&text).map_err(fail)?;
            p.check(&c).map_err(fail)?;
            let b = &p.event.event;
            let what = match &b.payload {
                Payload::StepRecorded { step, .. } => format!("step {step}"),
                other => other.kind().to_string(),
            };
            println!(
                "OK: event {} (position {}, instance {}, {what}, happened {}) is in log {} of {} events signed by {}{}",
                b.event_id,
                b.position,
                b.instance,
                b.occurred_on,
                c.origin,
                c.size,
                by,
                c.extension("styrlogg-time").map(|t| format!(" at {t}")).unwrap_or_default()
            );
        }
        Some(_) => {
            let p = ConsistencyProof::parse(&text).map_err(fail)?;
            let Some(old) = old else {
                bail!(Refused(
                    "this is a consistency proof: give the older checkpoint with --old-checkpoint FILE".into()
                ));
            };
            let (o, old_by) = open_checkpoint(old, &keys)?;
            p.check(&o, &c).map_err(fail)?;
            let signed = if old_by == by {
                format!("both signed by {by}")
            } else {
                format!("the older signed by {old_by}, the newer by {by}")
            };
            println!(
                "OK: log {} of {} events extends its checkpoint of {} events ({signed})",
                c.origin, c.size, o.size
            );
        }
        None => bail!(Refused(format!(
            "{}: not a styrlogg proof (the first line must be \"styrlogg inclusion proof v1\" or \"styrlogg consistency proof v1\")",
            proof_path.display()
        ))),
    }
    Ok(())
}

async fn record_key(
    cli: &Cli,
    store: &AnyStore,
    signer: &Signer,
    reason: &str,
    by: &By,
) -> Result<engine::AppendOutcome> {
    let v = signer.verifier();
    let outcome = store
        .append(AppendRequest {
            instance: InstanceId::system(),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new(format!("signing-key-{}", &hex::encode(v.public_key())[..32])).expect("valid"),
            events: vec![NewEvent {
                occurred_on: crate::flow::today(cli),
                actor: Actor::new(by.by.trim(), by.role.trim()),
                payload: Payload::SigningKeyRotated {
                    key_name: signer.name().to_string(),
                    public_key: PublicKey(v.public_key()),
                    reason: reason.to_string(),
                },
            }],
        })
        .await?;
    Ok(outcome)
}

/// `key record`: refuses a key the log recorded and later replaced.
async fn record(cli: &Cli, store: &AnyStore, s: &Signer, reason: &str, by: &By) -> Result<()> {
    let v = s.verifier();
    let keys = recorded_keys(store).await?;
    if let Some((at, current)) = retired_at(&keys, &v) {
        bail!(Refused(format!(
            "the key {} was retired at position {at}, where the log recorded {}: a retired key is not recorded again; use the current key, or make a new one with `styrlogg key rotate`",
            v.to_vkey(),
            current.to_vkey()
        )));
    }
    if let Some((_, _, current)) = keys.last().filter(|(_, _, k)| k.name != v.name) {
        bail!(Refused(format!(
            "this key is named {:?}, and the log's checkpoints are of {:?} (the name of the key it recorded last): \
             a proof from a checkpoint of one name to a checkpoint of the other cannot be checked. Make the key \
             with the log's name (`styrlogg key generate --name {}`); to rename the log on purpose, parting its \
             checkpoints in two, use `styrlogg key rotate --name NAME`",
            v.name, current.name, current.name
        )));
    }
    let o = record_key(cli, store, s, reason, by).await?;
    if o.deduplicated {
        println!("the key {} was already recorded at position {}", v.to_vkey(), o.last_position);
    } else {
        println!("recorded the signing key {} at position {}", v.to_vkey(), o.last_position);
    }
    Ok(())
}

/// `key rotate`: a new key, recorded, in place of the old one (kept as
/// `signing.key.retired-ID`), or of a lost one when the log has recorded a
/// key before.
async fn rotate(cli: &Cli, store: &AnyStore, path: &Path, name: Option<&str>, reason: &str, by: &By) -> Result<()> {
    let old = signer(cli)?;
    let new_name = match &old {
        Some(o) => name.unwrap_or(o.name()).to_string(),
        None => {
            let Some((_, _, last)) = recorded_keys(store).await?.pop() else {
                bail!(Refused(format!(
                    "no signing key at {} and none recorded in the log, so nothing to rotate: make one with `styrlogg key generate --name NAME`",
                    path.display()
                )));
            };
            name.map_or(last.name, str::to_string)
        }
    };
    let new = Signer::generate(&new_name).map_err(|e| Refused(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        trust::seal::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let staged = sibling(path, ".new");
    let _ = std::fs::remove_file(&staged);
    trust::seal::write_private_file(&staged, format!("{}\n", &*new.to_skey()).as_bytes(), false)
        .with_context(|| format!("cannot write {}", staged.display()))?;
    let o = match record_key(cli, store, &new, reason, by).await {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let kept = match &old {
        Some(old) => {
            let retired = sibling(path, &format!(".retired-{}", hex::encode(old.verifier().key_id)));
            std::fs::rename(path, &retired)
                .with_context(|| format!("cannot move the old key to {}", retired.display()))?;
            format!(
                "the old one is kept at {} (checkpoints it signed stay checkable with its public key, which the log holds)",
                retired.display()
            )
        }
        None => "there was no old key file to keep (checkpoints the lost key signed stay checkable with its public key, which the log holds)".to_string(),
    };
    std::fs::rename(&staged, path).with_context(|| format!("cannot put the new key at {}", path.display()))?;
    println!(
        "rotated: the new key {} is recorded at position {} and in {}; {kept}",
        new.verifier().to_vkey(),
        o.last_position,
        path.display()
    );
    Ok(())
}

/// `styrlogg key ...`
pub async fn key(cli: &Cli, cmd: &KeyCommand) -> Result<()> {
    let path = signing_key_path(cli)?;
    match cmd {
        KeyCommand::Generate { name } => {
            if path.exists() {
                bail!(Refused(format!(
                    "there is already a signing key at {}; `styrlogg key rotate` replaces it",
                    path.display()
                )));
            }
            let s = Signer::generate(name).map_err(|e| Refused(e.to_string()))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                trust::seal::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            trust::seal::write_private_file(&path, format!("{}\n", &*s.to_skey()).as_bytes(), false)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote the signing key to {} (mode 0600); back it up, keep it secret", path.display());
            eprintln!("record it in the log: styrlogg key record --reason \"...\" --by NAME --role ROLE");
            eprintln!("publish the public key below; third parties check checkpoints with it:");
            println!("{}", s.verifier().to_vkey());
        }
        KeyCommand::Public => println!("{}", need_signer(cli)?.verifier().to_vkey()),
        KeyCommand::Record { reason, by } => {
            crate::flow::known_role(cli, &by.role)?;
            let s = need_signer(cli)?;
            let store = open(cli, OpenMode::MustExist).await?;
            let result = record(cli, &store, &s, reason, by).await;
            store.close()?;
            result?
        }
        KeyCommand::Rotate { name, reason, by } => {
            crate::flow::known_role(cli, &by.role)?;
            let store = open(cli, OpenMode::MustExist).await?;
            let result = rotate(cli, &store, &path, name.as_deref(), reason, by).await;
            store.close()?;
            result?
        }
        KeyCommand::List => {
            let store = open(cli, OpenMode::MustExist).await?;
            let keys = recorded_keys(&store).await?;
            store.close()?;
            if keys.is_empty() {
                println!("no signing key is recorded in the log");
            }
            for (pos, at, v) in keys {
                println!("position {pos}, recorded {at}: {}", v.to_vkey());
            }
        }
    }
    Ok(())
}
