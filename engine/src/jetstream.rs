//! The distributed backend: the log kept in a NATS JetStream stream, so
//! several engine processes on several machines share one log and the
//! server cluster replicates it (no home-made replication).
//!
//! Layout: one stream for the deployment (default `STYRLOGG`) capturing
//! `<prefix>.>` (default `styrlogg.log.>`); one subject per workflow
//! instance, `<prefix>.<instance>` (characters outside `A-Z a-z 0-9 _ -`
//! escaped as `~XX`); one message per committed append, holding all its
//! events, so a batch is all or nothing. A message's body is
//! `[1u8][u32 LE length, record]...`, each record exactly the bytes the
//! embedded store keeps (see [`crate::codec`]); its headers name the
//! command (`Nats-Msg-Id`), the instance and the positions it holds.
//!
//! The hash chain is the stream's order. A writer stages events on the
//! head it last read (positions, sequences, `prev_hash`, hashes) and
//! publishes with `Nats-Expected-Last-Sequence` set to that head's stream
//! sequence and `Nats-Expected-Last-Subject-Sequence` to the instance's
//! last message, so the server refuses a message that would not extend
//! exactly that chain and that instance. When several processes write at
//! once, the one whose message lands first extends the chain; the others
//! are refused, read the new head, stage again (new positions and hashes,
//! never acknowledged before) and retry, or report a conflict when the
//! instance itself moved past their expected version. Within one process a
//! single writer task pipelines the messages of a group (each expecting the
//! one before it) and waits for the acknowledgements together.
//!
//! Idempotency: `Nats-Msg-Id` is the command id, so within the stream's
//! duplicate window the server itself drops a repeated command and names
//! the message that holds it. After the window, a repeat is still
//! recognised because the writer reads the instance's own messages (which
//! it needs for the instance's version anyway) and finds the command id
//! there. What the window alone protects: the same command id used for a
//! *different* instance is refused only within the window. The command
//! ids styrlogg derives include the instance, so they never collide.

use crate::clock::Clock;
use crate::codec;
use crate::commit::{take_group, Checked, Index, Stage, Staged, Stager};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::limits;
use crate::store::{AppendError, AppendOutcome, AppendRequest, EventStore, Head, StoreError};
use crate::subscription::Subscription;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

const BATCH_FORMAT: u8 = 1;
const HEADER_INSTANCE: &str = "Styrlogg-Instance";
const HEADER_POSITIONS: &str = "Styrlogg-Positions";

/// Where and how to keep the log on NATS.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// Server URL(s), comma-separated: `nats://host:4222`.
    pub url: String,
    /// The stream's name.
    pub stream: String,
    /// Subjects are `<prefix>.<instance>`.
    pub subject_prefix: String,
    /// Copies the cluster keeps of each message (1 on a single server; 3
    /// in production).
    pub replicas: usize,
    /// Bound on connecting and on every request to the server.
    pub timeout: Duration,
    /// The server drops a repeated command id within this window.
    pub duplicate_window: Duration,
    /// After each append, every event is also published as JSON (the
    /// export format) on `<events_prefix>.<instance>`, for other systems;
    /// at most once, after the log has stored it. `None`: not published.
    pub events_prefix: Option<String>,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            url: "nats://127.0.0.1:4222".into(),
            stream: "STYRLOGG".into(),
            subject_prefix: "styrlogg.log".into(),
            replicas: 1,
            timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(2 * 60),
            events_prefix: Some("styrlogg.events".into()),
        }
    }
}

/// The subject token for an instance: characters outside `A-Za-z0-9_-`
/// are escaped as `~XX` (hex of each UTF-8 byte), so every instance id maps
/// to exactly one token and no token holds `.`, `*`, `>` or spaces.
pub fn subject_token(instance: &str) -> String {
    let mut out = String::with_capacity(instance.len());
    for b in instance.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// Runs a read request again when the server did not answer (a leader
/// being elected after a server restart, say): a bounded number of times,
/// waiting longer each time; other errors are returned at once.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(StoreError::Unavailable(why)) if attempt < limits::JETSTREAM_READ_ATTEMPTS => {
                tracing::warn!(attempt, %why, "no answer from the NATS server; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// The event log in a JetStream stream. Clones share one connection and
/// one writer task.
#[derive(Clone)]
pub struct JetStreamStore {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    stream: stream::Stream,
    opts: JetStreamOptions,
    requests: mpsc::Sender<Request>,
    /// The page reader's position, so paging through the log streams from
    /// one consumer instead of searching for each page.
    cursor: Mutex<Option<Cursor>>,
}

enum Request {
    Append(AppendRequest, oneshot::Sender<Result<AppendOutcome, AppendError>>),
    Import(Vec<RecordedEvent>, oneshot::Sender<Result<Head, AppendError>>),
}

impl Request {
    fn events(&self) -> usize {
        match self {
            Request::Append(r, _) => r.events.len(),
            Request::Import(e, _) => e.len(),
        }
    }
}

impl JetStreamStore {
    /// Connects, checks that JetStream is enabled, and creates the stream,
    /// or checks that an existing one has the settings this log needs.
    pub async fn open(
        opts: JetStreamOptions,
        mode: crate::OpenMode,
        clock: Arc<dyn Clock>,
    ) -> Result<JetStreamStore, StoreError> {
        let servers = opts
            .url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Unavailable(format!("{:?} is not a NATS server URL: {e}", opts.url)))?;
        let client = tokio::time::timeout(
            opts.timeout,
            async_nats::ConnectOptions::new()
                .connection_timeout(opts.timeout)
                .request_timeout(Some(opts.timeout))
                .name("styrlogg")
                .connect(servers),
        )
        .await
        .map_err(|_| StoreError::Unavailable(format!("no answer from NATS at {} within {:?}", opts.url, opts.timeout)))?
        .map_err(|e| unavailable(&format!("cannot connect to NATS at {}", opts.url), e))?;
        let js = jetstream::ContextBuilder::new().timeout(opts.timeout).build(client);
        js.query_account().await.map_err(|e| {
            let text = e.to_string();
            if text.contains("not enabled") || text.contains("unavailable") || text.contains("no responders") {
                StoreError::Unavailable(format!(
                    "the NATS server at {} has JetStream disabled ({text}); start it with -js or a jetstream {{}} block",
                    opts.url
                ))
            } else {
                unavailable(&format!("asking NATS at {} about JetStream", opts.url), text)
            }
        })?;
        let wanted = stream_config(&opts);
        let stream = match js.get_stream(&opts.stream).await {
            Ok(s) => s,
            Err(e) if mode == crate::OpenMode::MustExist => {
                return Err(StoreError::NotFound {
                    path: format!("{} stream {}", opts.url, opts.stream),
                    hint: format!("record or import something first ({e})"),
                })
            }
            Err(_) => js.get_or_create_stream(wanted.clone()).await.map_err(|e| {
                // Another stream already takes these subjects: a name to
                // change, not a server that is down.
                if e.to_string().contains("subjects overlap") {
                    StoreError::NotAStore {
                        path: format!("{} stream {}", opts.url, opts.stream),
                        why: format!(
                            "its subjects {} overlap another stream's on this server (stream names are compared in lower case); use another --nats-stream",
                            wanted.subjects.join(", ")
                        ),
                    }
                } else {
                    unavailable(&format!("cannot create stream {} on {}", opts.stream, opts.url), e)
                }
            })?,
        };
        let actual = &stream.cached_info().config;
        let problems = config_differences(&wanted, actual);
        if !problems.is_empty() {
            return Err(StoreError::NotAStore {
                path: format!("{} stream {}", opts.url, opts.stream),
                why: format!(
                    "it was created with other settings: {}. Use another stream name (--nats-stream), or change the stream with the nats CLI",
                    problems.join("; ")
                ),
            });
        }
        let (requests, rx) = mpsc::channel(limits::WRITE_QUEUE_DEPTH);
        let inner = Arc::new(Inner { js, stream, opts, requests, cursor: Mutex::new(None) });
        let writer = Writer { store: Arc::downgrade(&inner), clock, known: Known::default() };
        tokio::spawn(writer.run(rx));
        Ok(JetStreamStore { inner })
    }

    fn subject(&self, instance: &InstanceId) -> String {
        format!("{}.{}", self.inner.opts.subject_prefix, subject_token(instance.as_str()))
    }

    /// The stream's configuration as the server has it.
    pub fn options(&self) -> &JetStreamOptions {
        &self.inner.opts
    }

    /// Nothing to flush: every acknowledged append is already stored by the
    /// server. Drops this handle.
    pub fn close(self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        retrying(|| async {
            let info = self.inner.stream.get_info().await.map_err(|e| unavailable("reading the stream's state", e))?;
            Ok(info.state.last_sequence)
        })
        .await
    }

    /// The events in the message at stream sequence `seq`.
    async fn message(&self, seq: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let m = retrying(|| async {
            self.inner.stream.get_raw_message(seq).await.map_err(|e| match e.kind() {
                stream::LastRawMessageErrorKind::NoMessageFound => StoreError::Corrupt {
                    position: 0,
                    reason: format!("stream message {seq} is missing (deleted or purged)"),
                },
                _ => unavailable(&format!("reading stream message {seq}"), e),
            })
        })
        .await?;
        decode_batch(seq, &m.payload)
    }

    /// Stream sequence and last event of the log's end.
    async fn server_head(&self) -> Result<(u64, Head, Option<jiff::Timestamp>), StoreError> {
        let last = self.last_sequence().await?;
        if last == 0 {
            return Ok((0, Head::default(), None));
        }
        let events = self.message(last).await?;
        let e = events.last().expect("decode_batch never returns an empty batch");
        Ok((last, Head { position: e.event.position, hash: e.hash }, Some(e.event.recorded_at)))
    }

    /// Every message of one instance after stream sequence `after`.
    async fn instance_messages(
        &self,
        instance: &InstanceId,
        after: u64,
    ) -> Result<Vec<(u64, Vec<RecordedEvent>)>, StoreError> {
        let subject = self.subject(instance);
        let last = match self.inner.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(&format!("reading instance {instance}"), e)),
        };
        if last <= after {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut messages = self.consume(subject, after + 1).await?;
        while let Some((seq, events)) = self.next_message(&mut messages).await? {
            for e in &events {
                if e.event.instance != *instance {
                    return Err(StoreError::Corrupt {
                        position: e.event.position,
                        reason: format!("an event of instance {} is on the subject of {instance}", e.event.instance),
                    });
                }
            }
            out.push((seq, events));
            if seq >= last {
                break;
            }
        }
        Ok(out)
    }

    async fn consume(&self, filter: String, from_seq: u64) -> Result<consumer::pull::Ordered, StoreError> {
        retrying(|| async {
            let config = consumer::pull::OrderedConfig {
                filter_subject: filter.clone(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: from_seq.max(1) },
                ..Default::default()
            };
            let c = self.inner.stream.create_consumer(config).await.map_err(|e| unavailable("creating a reader", e))?;
            c.messages().await.map_err(|e| unavailable("starting a reader", e))
        })
        .await
    }

    async fn next_message(
        &self,
        messages: &mut consumer::pull::Ordered,
    ) -> Result<Option<(u64, Vec<RecordedEvent>)>, StoreError> {
        let next = tokio::time::timeout(self.inner.opts.timeout * 2, messages.next())
            .await
            .map_err(|_| StoreError::Unavailable("no message from NATS in time while reading".into()))?;
        match next {
            None => Ok(None),
            Some(Err(e)) => Err(unavailable("reading the stream", e)),
            Some(Ok(m)) => {
                let seq = m.info().map_err(|e| unavailable("reading message metadata", e))?.stream_sequence;
                Ok(Some((seq, decode_batch(seq, &m.message.payload)?)))
            }
        }
    }

    /// The stream sequence of the message holding `position`, by binary
    /// search over the stream (positions grow with sequences).
    async fn locate(&self, position: u64, last_seq: u64) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (1u64, last_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let events = self.message(mid).await?;
            let last = events.last().expect("non-empty").event.position;
            if last < position {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Publishes stored events as JSON for other systems (best effort: a
    /// failure is logged, the append already stands).
    async fn announce(&self, events: &[RecordedEvent]) {
        let Some(prefix) = &self.inner.opts.events_prefix else { return };
        for e in events {
            let subject = format!("{prefix}.{}", subject_token(e.event.instance.as_str()));
            let json = match serde_json::to_vec(e) {
                Ok(j) => j,
                Err(err) => {
                    tracing::warn!(%err, "an event did not serialize to JSON");
                    continue;
                }
            };
            if let Err(err) = self.inner.js.client().publish(subject, json.into()).await {
                tracing::warn!(%err, position = e.event.position, "could not announce an event");
            }
        }
    }

    /// Up to `max` events from `from`, read message by message from the
    /// stream leader: slower than a consumer, and authoritative.
    async fn read_from_leader(
        &self,
        from: u64,
        max: usize,
        last_seq: u64,
        head_position: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        let mut seq = self.locate(from, last_seq).await?;
        let mut next = from;
        while out.len() < max && next <= head_position && seq <= last_seq {
            for e in self.message(seq).await? {
                if e.event.position < next {
                    continue;
                }
                if e.event.position != next {
                    return Err(StoreError::Corrupt {
                        position: next,
                        reason: format!("event missing; the next stored position is {}", e.event.position),
                    });
                }
                next += 1;
                out.push(e);
                if out.len() == max {
                    break;
                }
            }
            seq += 1;
        }
        Ok(out)
    }

    async fn send(&self, r: Request) -> Result<(), StoreError> {
        self.inner.requests.send(r).await.map_err(|_| StoreError::Closed)
    }

    fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

fn stream_config(opts: &JetStreamOptions) -> stream::Config {
    stream::Config {
        name: opts.stream.clone(),
        description: Some("styrlogg event log: one subject per workflow instance, one message per append".into()),
        subjects: vec![format!("{}.>", opts.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: opts.replicas,
        duplicate_window: opts.duplicate_window,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_message_size: (limits::EVENT_BYTES_MAX * limits::EVENTS_PER_COMMIT_MAX / 4) as i32,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// What in `actual` would break the log's promises.
fn config_differences(wanted: &stream::Config, actual: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    if actual.subjects != wanted.subjects {
        out.push(format!("subjects {:?}, not {:?}", actual.subjects, wanted.subjects));
    }
    if actual.storage != wanted.storage {
        out.push(format!("storage {:?}, not file", actual.storage));
    }
    if actual.retention != wanted.retention {
        out.push(format!("retention {:?}, not limits", actual.retention));
    }
    if actual.max_messages > 0 || actual.max_bytes > 0 || actual.max_messages_per_subject > 0 {
        out.push("message or byte limits are set, so old events could be discarded".into());
    }
    if !actual.max_age.is_zero() {
        out.push(format!("max_age {:?} would expire events", actual.max_age));
    }
    if !actual.deny_delete || !actual.deny_purge {
        out.push("deleting or purging messages is allowed".into());
    }
    if actual.allow_rollup {
        out.push("rollups are allowed".into());
    }
    if actual.num_replicas != wanted.num_replicas {
        out.push(format!("{} replica(s), not {}", actual.num_replicas, wanted.num_replicas));
    }
    out
}

fn encode_batch(records: &[(RecordedEvent, Vec<u8>)]) -> Bytes {
    let len: usize = records.iter().map(|(_, b)| b.len() + 4).sum();
    let mut out = BytesMut::with_capacity(1 + len);
    out.put_u8(BATCH_FORMAT);
    for (_, bytes) in records {
        out.put_u32_le(bytes.len() as u32);
        out.put_slice(bytes);
    }
    out.freeze()
}

/// Decodes a stored message; every record is checked like a sled record,
/// and a batch must be one command's contiguous events.
fn decode_batch(seq: u64, payload: &[u8]) -> Result<Vec<RecordedEvent>, StoreError> {
    let corrupt =
        |reason: String| StoreError::Corrupt { position: 0, reason: format!("stream message {seq}: {reason}") };
    let (&format, mut rest) = payload.split_first().ok_or_else(|| corrupt("empty".into()))?;
    if format != BATCH_FORMAT {
        return Err(corrupt(format!("unknown batch format {format}")));
    }
    let mut out: Vec<RecordedEvent> = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 || out.len() >= limits::EVENTS_PER_COMMIT_MAX {
            return Err(corrupt("malformed batch".into()));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        rest = &rest[4..];
        if len > rest.len() || len > limits::EVENT_BYTES_MAX + 64 {
            return Err(corrupt("a record runs past the message".into()));
        }
        let e = codec::decode(&rest[..len])
            .map_err(|err| StoreError::Corrupt { position: 0, reason: format!("stream message {seq}: {err}") })?;
        if let Some(prev) = out.last() {
            let b = &e.event;
            if b.position != prev.event.position + 1
                || b.instance != prev.event.instance
                || b.command_id != prev.event.command_id
                || b.prev_hash != prev.hash
            {
                return Err(StoreError::Corrupt {
                    position: b.position,
                    reason: format!("stream message {seq} does not hold one command's contiguous events"),
                });
            }
        }
        out.push(e);
        rest = &rest[len..];
    }
    if out.is_empty() {
        return Err(corrupt("no events".into()));
    }
    Ok(out)
}

/// A page reader left where the last page ended.
struct Cursor {
    next_position: u64,
    messages: consumer::pull::Ordered,
    /// Events of the last message not yet handed out.
    buffered: std::collections::VecDeque<RecordedEvent>,
}

#[async_trait::async_trait]
impl EventStore for JetStreamStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Append(req, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError> {
        crate::commit::check_import_chunk(&events)?;
        let (tx, rx) = oneshot::channel();
        self.send(Request::Import(events, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        let mut expected = 1;
        for (_, events) in self.instance_messages(instance, 0).await? {
            for e in events {
                if e.event.sequence != expected {
                    return Err(StoreError::Corrupt {
                        position: e.event.position,
                        reason: format!(
                            "instance {instance} jumps from sequence {} to {}",
                            expected - 1,
                            e.event.sequence
                        ),
                    });
                }
                expected += 1;
                if e.event.sequence >= from_sequence {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from_position.max(1);
        let (last_seq, head, _) = self.server_head().await?;
        if from > head.position || max == 0 {
            return Ok(Vec::new());
        }
        let mut cursor = self.inner.cursor.lock().await;
        if cursor.as_ref().is_none_or(|c| c.next_position != from) {
            let seq = self.locate(from, last_seq).await?;
            let messages = self.consume(format!("{}.>", self.inner.opts.subject_prefix), seq).await?;
            *cursor = Some(Cursor { next_position: from, messages, buffered: Default::default() });
        }
        let c = cursor.as_mut().expect("set above");
        let mut out = Vec::with_capacity(max.min(limits::READ_PAGE_EVENTS));
        while out.len() < max && c.next_position <= head.position {
            if c.buffered.is_empty() {
                match self.next_message(&mut c.messages).await {
                    Ok(Some((_, events))) => c.buffered.extend(events),
                    Ok(None) => break,
                    Err(e) => {
                        *cursor = None;
                        return Err(e);
                    }
                }
            }
            while let Some(e) = c.buffered.pop_front() {
                if e.event.position < c.next_position {
                    continue;
                }
                if e.event.position != c.next_position {
                    // A consumer on a replica that is catching up (after a
                    // server restart) can skip messages; the stream leader
                    // decides. What it also lacks is missing.
                    let expected = c.next_position;
                    *cursor = None;
                    tracing::warn!(
                        expected,
                        got = e.event.position,
                        "a reader skipped; reading from the stream leader"
                    );
                    let rest = self.read_from_leader(expected, max - out.len(), last_seq, head.position).await?;
                    out.extend(rest);
                    return Ok(out);
                }
                c.next_position += 1;
                out.push(e);
                if out.len() == max {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.server_head().await?.1)
    }

    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let mut found: Option<AppendOutcome> = None;
        for (_, events) in self.instance_messages(instance, 0).await? {
            if events[0].event.command_id == *command_id {
                found = Some(outcome_of(&events));
            }
        }
        Ok(found)
    }

    fn subscribe(&self, from_position: u64) -> Subscription {
        let (tx, rx) = mpsc::channel(limits::SUBSCRIPTION_BUFFER_EVENTS);
        let weak = self.weak();
        tokio::spawn(async move {
            let mut next = from_position.max(1);
            // A consumer that skips (on a replica catching up) is replaced by
            // one starting where the stream leader says `next` is.
            let mut restarts = 0u32;
            'consumer: loop {
                let Some(store) = weak.upgrade().map(|inner| JetStreamStore { inner }) else { return };
                let start = async {
                    let (last_seq, head, _) = store.server_head().await?;
                    let seq = if next > head.position { last_seq + 1 } else { store.locate(next, last_seq).await? };
                    store.consume(format!("{}.>", store.inner.opts.subject_prefix), seq).await
                };
                let mut messages = match start.await {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                drop(store);
                loop {
                    let m = tokio::select! {
                        m = messages.next() => m,
                        _ = tx.closed() => return,
                    };
                    if weak.strong_count() == 0 {
                        return;
                    }
                    let batch = match m {
                        None => return,
                        Some(Err(e)) => Err(unavailable("following the stream", e)),
                        Some(Ok(m)) => match m.info() {
                            Ok(info) => decode_batch(info.stream_sequence, &m.message.payload),
                            Err(e) => Err(unavailable("reading message metadata", e)),
                        },
                    };
                    let events = match batch {
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        Ok(events) => events,
                    };
                    for e in events {
                        if e.event.position < next {
                            continue;
                        }
                        if e.event.position != next {
                            restarts += 1;
                            if restarts > limits::JETSTREAM_READER_RESTARTS_MAX {
                                let _ = tx
                                    .send(Err(StoreError::Corrupt {
                                        position: next,
                                        reason: format!("the stream skips to position {}", e.event.position),
                                    }))
                                    .await;
                                return;
                            }
                            tracing::warn!(
                                expected = next,
                                got = e.event.position,
                                "a subscription skipped; restarting it"
                            );
                            continue 'consumer;
                        }
                        next += 1;
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Subscription::from_channel(rx)
    }
}

fn outcome_of(events: &[RecordedEvent]) -> AppendOutcome {
    let (first, last) = (&events[0], &events[events.len() - 1]);
    AppendOutcome {
        instance: first.event.instance.clone(),
        first_sequence: first.event.sequence,
        last_sequence: last.event.sequence,
        first_position: first.event.position,
        last_position: last.event.position,
        last_hash: last.hash,
        deduplicated: false,
    }
}

/// What the writer knows of the log, checked against the server on every
/// publish: a stale view only costs a refused publish and a re-read.
#[derive(Default)]
struct Known {
    /// Per instance: its version and the stream sequence of its last
    /// message (0: none).
    instances: HashMap<InstanceId, (u64, u64)>,
    commands: HashMap<CommandId, AppendOutcome>,
    /// Stream sequence, head and last `recorded_at` of the log's end.
    head: Option<(u64, Head, Option<jiff::Timestamp>)>,
}

impl Known {
    fn learn(&mut self, seq: u64, events: &[RecordedEvent]) {
        let o = outcome_of(events);
        self.instances.insert(o.instance.clone(), (o.last_sequence, seq));
        self.commands.insert(events[0].event.command_id.clone(), o);
    }
}

impl Index for Known {
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        Ok(self.instances.get(id).map_or(0, |k| k.0))
    }
    fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        Ok(self.commands.get(id).cloned())
    }
}

/// The single writer task of a process.
struct Writer {
    store: Weak<Inner>,
    clock: Arc<dyn Clock>,
    known: Known,
}

/// One request of a group, as it moves through staging and publishing.
enum Slot {
    Append { req: AppendRequest, tx: Option<oneshot::Sender<Result<AppendOutcome, AppendError>>> },
    Import { events: Vec<RecordedEvent>, tx: Option<oneshot::Sender<Result<Head, AppendError>>> },
}

/// Most times a group is re-staged after other writers moved the head.
const RESTAGE_ATTEMPTS_MAX: u32 = 64;

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.recv().await {
            let group = take_group(first, Request::events, || rx.try_recv().ok());
            let Some(inner) = self.store.upgrade() else { return };
            let store = JetStreamStore { inner };
            let mut slots: Vec<Slot> = group
                .into_iter()
                .map(|r| match r {
                    Request::Append(req, tx) => Slot::Append { req, tx: Some(tx) },
                    Request::Import(events, tx) => Slot::Import { events, tx: Some(tx) },
                })
                .collect();
            self.commit_group(&store, &mut slots).await;
            if self.known.instances.len() > limits::JETSTREAM_KNOWN_INSTANCES_MAX
                || self.known.commands.len() > limits::JETSTREAM_KNOWN_COMMANDS_MAX
            {
                self.known = Known::default();
            }
        }
    }

    /// Reads what the server has of an instance since the writer last looked.
    async fn refresh(&mut self, store: &JetStreamStore, id: &InstanceId) -> Result<(), StoreError> {
        let after = self.known.instances.get(id).map_or(0, |k| k.1);
        for (seq, events) in store.instance_messages(id, after).await? {
            self.known.learn(seq, &events);
        }
        self.known.instances.entry(id.clone()).or_insert((0, 0));
        Ok(())
    }

    async fn commit_group(&mut self, store: &JetStreamStore, slots: &mut [Slot]) {
        for attempt in 0..RESTAGE_ATTEMPTS_MAX {
            match self.try_group(store, slots).await {
                Ok(true) => return,
                Ok(false) => {
                    // Another writer moved the head: back off a little,
                    // more each time, then stage the rest again.
                    let jitter = (self.clock.now().as_microsecond() as u64 % 1000) * u64::from(attempt.min(10));
                    tokio::time::sleep(Duration::from_micros(jitter)).await;
                }
                Err(e) => {
                    // What reached the server is unknown: read it again next time.
                    self.known.head = None;
                    fail_all(slots, e);
                    return;
                }
            }
        }
        fail_all(slots, StoreError::Unavailable("the log kept moving under this writer; try again".into()));
    }

    /// Stages every unanswered slot on the server's head and publishes them
    /// pipelined. Ok(true) when all are answered; Ok(false) when another
    /// writer got in first and the rest must be staged again.
    async fn try_group(&mut self, store: &JetStreamStore, slots: &mut [Slot]) -> Result<bool, StoreError> {
        let (mut last_seq, head, recorded_at) = match self.known.head {
            Some(h) => h,
            None => {
                let h = store.server_head().await?;
                self.known.head = Some(h);
                h
            }
        };
        let mut ids: Vec<InstanceId> = Vec::new();
        for s in slots.iter() {
            match s {
                Slot::Append { req, tx: Some(_) } => ids.push(req.instance.clone()),
                Slot::Import { events, tx: Some(_) } => ids.extend(events.iter().map(|e| e.event.instance.clone())),
                _ => {}
            }
        }
        ids.sort();
        ids.dedup();
        for id in &ids {
            if !self.known.instances.contains_key(id) {
                self.refresh(store, id).await?;
            }
        }
        let mut stager = Stager::new(head, recorded_at);
        let now = self.clock.now();
        // Stage and publish in order, each message expecting the one before.
        let mut inflight = Vec::new();
        let mut subject_seqs: HashMap<InstanceId, u64> = HashMap::new();
        // Each message after the first also names the message it follows:
        // if an earlier one of ours was refused because another writer got
        // in, the other writer's message now holds the sequence ours
        // expected, and only the id tells them apart.
        let mut previous: Option<CommandId> = None;
        for (i, s) in slots.iter_mut().enumerate() {
            let idx = &self.known;
            let staged: Vec<Staged> = match s {
                Slot::Append { req, tx } if tx.is_some() => {
                    match Checked::new(req.clone()).and_then(|r| stager.stage_append(idx, r, now)) {
                        Ok(Stage::Duplicate(o)) => {
                            let _ = tx.take().expect("checked").send(Ok(o));
                            continue;
                        }
                        Ok(Stage::New(staged)) => vec![staged],
                        Err(e) => {
                            let _ = tx.take().expect("checked").send(Err(e));
                            continue;
                        }
                    }
                }
                Slot::Import { events, tx } if tx.is_some() => match stager.stage_import(idx, events.clone()) {
                    Ok(staged) => staged,
                    Err(e) => {
                        let _ = tx.take().expect("checked").send(Err(e));
                        continue;
                    }
                },
                _ => continue,
            };
            for st in staged {
                let instance = st.outcome.instance.clone();
                let subject_seq = *subject_seqs
                    .entry(instance.clone())
                    .or_insert_with(|| self.known.instances.get(&instance).map_or(0, |k| k.1));
                let command = st.records[0].0.event.command_id.clone();
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(HEADER_INSTANCE, instance.as_str());
                headers.insert(
                    HEADER_POSITIONS,
                    format!("{}-{}", st.outcome.first_position, st.outcome.last_position).as_str(),
                );
                let mut publish = jetstream::message::PublishMessage::build()
                    .payload(encode_batch(&st.records))
                    .headers(headers)
                    .message_id(command.as_str())
                    .expected_last_sequence(last_seq)
                    .expected_last_subject_sequence(subject_seq);
                if let Some(p) = &previous {
                    publish = publish.expected_last_message_id(p.as_str());
                }
                previous = Some(command.clone());
                let ack = store.inner.js.send_publish(store.subject(&instance), publish).await;
                let ack = match ack {
                    Ok(f) => f,
                    Err(e) => return Err(unavailable("publishing to the stream", e)),
                };
                last_seq += 1;
                subject_seqs.insert(instance, last_seq);
                inflight.push((i, ack, st));
            }
        }
        // Acknowledgements, in order. A refused message refuses every later one.
        let mut import_heads: HashMap<usize, Head> = HashMap::new();
        let mut moved = false;
        let mut failed: HashMap<usize, ()> = HashMap::new();
        for (i, ack, st) in inflight {
            if moved || failed.contains_key(&i) {
                continue;
            }
            match ack.await {
                Ok(ack) if !ack.duplicate => {
                    let o = st.outcome.clone();
                    let events: Vec<RecordedEvent> = st.records.iter().map(|(e, _)| e.clone()).collect();
                    self.known.learn(ack.sequence, &events);
                    store.announce(&events).await;
                    let last = &events[events.len() - 1];
                    self.known.head = Some((
                        ack.sequence,
                        Head { position: last.event.position, hash: last.hash },
                        Some(last.event.recorded_at),
                    ));
                    match &mut slots[i] {
                        Slot::Append { tx, .. } => {
                            let _ = tx.take().expect("unanswered").send(Ok(o));
                        }
                        Slot::Import { .. } => {
                            import_heads.insert(i, Head { position: o.last_position, hash: o.last_hash });
                        }
                    }
                }
                Ok(ack) => {
                    // The server already holds this command id.
                    let events = store.message(ack.sequence).await?;
                    let o = outcome_of(&events);
                    let same = o.instance == st.outcome.instance
                        && o.last_sequence - o.first_sequence == st.outcome.last_sequence - st.outcome.first_sequence;
                    match &mut slots[i] {
                        Slot::Append { req, tx } => {
                            let answer = if same {
                                Ok(AppendOutcome { deduplicated: true, ..o })
                            } else {
                                Err(AppendError::CommandIdReused {
                                    command_id: req.command_id.clone(),
                                    what: format!(
                                        "{} event(s) on instance {}",
                                        o.last_sequence - o.first_sequence + 1,
                                        o.instance
                                    ),
                                })
                            };
                            let _ = tx.take().expect("unanswered").send(answer);
                        }
                        Slot::Import { tx, .. } => {
                            let _ = tx.take().expect("unanswered").send(Err(AppendError::Invalid(format!(
                                "imported command {} is already in the stream",
                                st.records[0].0.event.command_id
                            ))));
                            failed.insert(i, ());
                        }
                    }
                    // Everything published after it expected one more message.
                    moved = true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                    ) =>
                {
                    moved = true
                }
                Err(e) => return Err(unavailable("waiting for the stream to store an append", e)),
            }
        }
        if moved {
            // Someone else wrote: read the head and these instances again.
            self.known.head = None;
            for id in &ids {
                self.refresh(store, id).await?;
            }
        }
        // Imports are answered when all their commands are stored.
        for (i, s) in slots.iter_mut().enumerate() {
            if let Slot::Import { tx, .. } = s {
                if tx.is_some() && !moved {
                    if let Some(h) = import_heads.get(&i) {
                        let _ = tx.take().expect("checked").send(Ok(*h));
                    }
                }
            }
        }
        Ok(!moved
            || slots.iter().all(|s| match s {
                Slot::Append { tx, .. } => tx.is_none(),
                Slot::Import { tx, .. } => tx.is_none(),
            }))
    }
}

fn fail_all(slots: &mut [Slot], e: StoreError) {
    for s in slots {
        match s {
            Slot::Append { tx, .. } => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Err(e.clone().into()));
                }
            }
            Slot::Import { tx, .. } => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Err(e.clone().into()));
                }
            }
        }
    }
}
