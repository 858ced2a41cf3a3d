//! Every limit the engine enforces, in one place. Each has a unit in its
//! name and is checked with a clear error where input enters the engine.

/// Longest workflow instance id, in bytes of UTF-8.
pub const INSTANCE_ID_BYTES_MAX: usize = 128;
/// Longest command id, in bytes of UTF-8.
pub const COMMAND_ID_BYTES_MAX: usize = 128;
/// Longest short name (actor name, role, step id, fact name, organisation), in bytes.
pub const NAME_BYTES_MAX: usize = 256;
/// Longest free text (a note, a title, a text fact), in bytes.
pub const TEXT_BYTES_MAX: usize = 16 * 1024;
/// Most facts on one event.
pub const FACTS_PER_EVENT_MAX: usize = 64;
/// Most events in one atomic append.
pub const EVENTS_PER_COMMIT_MAX: usize = 256;
/// Largest encoded event (envelope and payload), in bytes. Kept well below
/// the size at which sled would move a value out to a separate blob file, so
/// every event lives in sled's main data file that the write path syncs.
pub const EVENT_BYTES_MAX: usize = 64 * 1024;
/// Requests a store takes before it answers them: decided (embedded) or
/// queued (JetStream) in front of the single writer.
pub const WRITE_QUEUE_DEPTH: usize = 1024;
/// Most append requests folded into one group commit (one flush, one sync).
pub const GROUP_REQUESTS_MAX: usize = 512;
/// Most events written by one group commit.
pub const GROUP_EVENTS_MAX: usize = 8192;
/// Events buffered between a subscription's reader task and its consumer.
pub const SUBSCRIPTION_BUFFER_EVENTS: usize = 1024;
/// Events read from the store per page when catching up.
pub const READ_PAGE_EVENTS: usize = 512;
/// Most events in one import chunk handed to the writer.
pub const IMPORT_CHUNK_EVENTS: usize = 1024;
/// Largest workflow definition carried by an instance, in bytes of TOML.
pub const DEFINITION_BYTES_MAX: usize = 48 * 1024;
/// Most recipients of one notice on one channel.
pub const RECIPIENTS_PER_NOTICE_MAX: usize = 64;
/// Most attempts to send one notice on one channel.
pub const NOTICE_ATTEMPTS_MAX: u32 = 8;
/// Wait before the first retry of a failed notice; doubles per attempt.
pub const NOTICE_RETRY_FIRST_S: i64 = 60;
/// Longest wait between retries of a failed notice.
pub const NOTICE_RETRY_MAX_S: i64 = 6 * 3600;
/// Most rounds of one reminder pass (each reads what the last one wrote).
pub const REMINDER_PASS_ROUNDS_MAX: usize = 16;
/// Longest channel error kept in a `notice_failed` event, in characters.
pub const NOTICE_ERROR_CHARS_MAX: usize = 2000;
/// JetStream writer: most instances and command ids it remembers between
/// groups before it forgets them all and reads again from the server.
pub const JETSTREAM_KNOWN_INSTANCES_MAX: usize = 65_536;
pub const JETSTREAM_KNOWN_COMMANDS_MAX: usize = 262_144;
/// Largest segment file of the embedded log (segments start at 1 MiB and
/// double up to this; a segment is zero-filled when it is created).
pub const SEGMENT_BYTES_MAX: u64 = 64 << 20;
/// Most events in one frame of the embedded log: a commit of more is
/// written as several frames.
pub const FRAME_EVENTS_MAX: usize = 8192;
/// Largest frame body: one group commit writes frames of whole commands up
/// to this size (a single command of 256 events of 64 KiB fits).
pub const FRAME_BODY_BYTES_MAX: usize = 17 << 20;
/// Bytes read ahead when reading the embedded log in order.
pub const READ_AHEAD_BYTES: usize = 256 << 10;
/// Instance versions the embedded store's writer keeps in memory.
pub const WRITER_CACHED_INSTANCES_MAX: usize = 100_000;
/// Times a JetStream subscription restarts its consumer after a skip
/// before it reports the log as broken.
pub const JETSTREAM_READER_RESTARTS_MAX: u32 = 8;
/// Largest sealed (encrypted) fact value, in bytes of ciphertext: a text
/// fact at its limit plus the encoding and the AEAD tag.
pub const SEALED_BYTES_MAX: usize = TEXT_BYTES_MAX + 64;
/// Attempts of a JetStream read request that got no answer (waiting 0.2,
/// 0.4, 0.8 ... s in between).
pub const JETSTREAM_READ_ATTEMPTS: u32 = 4;
/// Longest line of an export that `import` reads, in bytes. An event is at
/// most [`EVENT_BYTES_MAX`] encoded; its JSON line is about twice that for
/// events styrlogg writes (hex hashes and sealed bytes, escaped quotes and
/// newlines), and at most about 16 times for any record that decodes (a
/// list of empty person facts), so every stored event exports to a line
/// that import reads. A longer line is refused before it is parsed.
pub const EXPORT_LINE_BYTES_MAX: usize = 2 << 20;
/// Most events one `import` reads (it checks the whole file before it
/// writes, so it holds them in memory).
pub const EXPORT_EVENTS_MAX: u64 = 2_000_000;
/// Largest export one `import` reads, in bytes.
pub const EXPORT_BYTES_MAX: u64 = 2 << 30;
/// Largest scenario file, in bytes of TOML.
pub const SCENARIO_BYTES_MAX: usize = 1 << 20;
/// Most problems a definition or scenario file is refused with; the last
/// one shown says how many more there were.
pub const PROBLEMS_SHOWN_MAX: usize = 100;
/// Most characters of a user's input repeated in an error message (the
/// rest is left out and its length given), so a 100 KB argument does not
/// come back as a 100 KB error line.
pub const SHOWN_INPUT_CHARS_MAX: usize = 64;
/// Largest `--facts FILE`, in bytes of TOML (an event holds at most
/// [`FACTS_PER_EVENT_MAX`] facts of at most [`TEXT_BYTES_MAX`] each).
pub const FACTS_FILE_BYTES_MAX: usize = 1 << 20;
/// Threads at most that decode one page of the embedded log side by side.
pub const DECODE_THREADS_MAX: usize = 4;
/// Pages smaller than this are decoded on the reading thread alone: below
/// it, starting threads costs more than it saves.
pub const DECODE_PARALLEL_MIN_EVENTS: usize = 1024;
/// Events the embedded store's index may lag behind the log (kept in
/// memory meanwhile); the writer waits for the indexer beyond this.
pub const INDEX_BEHIND_EVENTS_MAX: usize = 65_536;
/// Events the indexer waits for before it writes a batch to sled ...
pub const INDEX_BATCH_EVENTS: usize = 4096;
/// ... or this long after the first of them arrived.
pub const INDEX_BEHIND_LINGER: std::time::Duration = std::time::Duration::from_millis(10);
