//! The command line: every flag and subcommand, with their help texts.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// styrlogg records each step a municipality or region takes in SKR's
/// networks on citizen dialogue in governance as an immutable event in a
/// tamper-evident log, and reads it back for audit and reports.
#[derive(Debug, Parser)]
#[command(name = "styrlogg", version, about, long_about = None, propagate_version = true)]
#[command(next_help_heading = "Global options")]
#[command(
    after_help = "Exit status: 0 success; 1 refused (invalid input, a --data that is not a store, a conflict, or a log that failed verification); 2 usage error; 3 operating error (disk, lock, corrupt store)."
)]
pub struct Cli {
    /// Directory of the embedded store.
    #[arg(long, global = true, env = "STYRLOGG_DATA", default_value = "./styrlogg-data", value_name = "DIR")]
    pub data: PathBuf,

    /// Keep the log on NATS JetStream at this server (comma-separate several) instead of --data.
    #[arg(long, global = true, env = "STYRLOGG_NATS", value_name = "URL", value_parser = parse_nats_urls)]
    pub nats: Option<String>,

    /// The JetStream stream holding the log (letters, digits, - and _).
    #[arg(long, global = true, env = "STYRLOGG_NATS_STREAM", default_value = "STYRLOGG", value_name = "NAME",
          value_parser = parse_stream_name)]
    pub nats_stream: String,

    /// Copies of each message the NATS cluster keeps when it creates the stream (3 in production).
    #[arg(long, global = true, env = "STYRLOGG_NATS_REPLICAS", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,

    /// Directory of your own workflow definitions (*.toml), used besides the built-in ones.
    #[arg(long, global = true, env = "STYRLOGG_WORKFLOWS", value_name = "DIR")]
    pub workflows: Option<PathBuf>,

    /// Take this date as today (simulations, catching up); default: today in Swedish time.
    #[arg(long, global = true, env = "STYRLOGG_TODAY", value_name = "DATE", value_parser = parse_date)]
    pub today: Option<jiff::civil::Date>,

    /// The configuration file: reminder channels and recipients ([remind], [smtp], [recipients]).
    /// Default: ./styrlogg.toml when it exists.
    #[arg(long, global = true, env = "STYRLOGG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The key store for personal data (one key per person; outside the log). Default: DIR.keys next to
    /// the embedded store's --data DIR; with --nats it must be given to record or read personal data.
    #[arg(long, global = true, env = "STYRLOGG_KEYS", value_name = "DIR")]
    pub keys: Option<PathBuf>,

    /// The organisation's checkpoint-signing key (ed25519, C2SP signed-note). Default: signing.key in the
    /// key store directory (--keys).
    #[arg(long, global = true, env = "STYRLOGG_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The users file of the web interface: logins with their roles and argon2 password hashes, and
    /// API tokens (`styrlogg user` writes it). Default: ./styrlogg-users.toml.
    #[arg(long, global = true, env = "STYRLOGG_USERS", default_value = "./styrlogg-users.toml", value_name = "FILE")]
    pub users: PathBuf,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,

    /// Whether --data (or STYRLOGG_DATA) was given rather than defaulted.
    #[arg(skip)]
    pub data_given: bool,

    /// Whether --data, --today and --workflows came from the environment
    /// (STYRLOGG_DATA, STYRLOGG_TODAY, STYRLOGG_WORKFLOWS), for messages.
    #[arg(skip)]
    pub data_from_env: bool,
    #[arg(skip)]
    pub today_from_env: bool,
    #[arg(skip)]
    pub workflows_from_env: bool,
}

/// Server URLs for --nats, comma-separated: `[nats|tls|ws|wss://]host[:port]`.
pub fn parse_nats_urls(s: &str) -> Result<String, String> {
    for part in s.split(',').map(str::trim) {
        let rest = match part.split_once("://") {
            Some((scheme, rest)) if ["nats", "tls", "ws", "wss"].contains(&scheme) => rest,
            Some((scheme, _)) => {
                return Err(format!("{part:?}: {scheme}:// is not a NATS scheme (nats, tls, ws, wss)"))
            }
            None => part,
        };
        let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h).trim_end_matches('/');
        let (host, port) = match hostport.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
                None => ("", None),
            },
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{part:?} is not a NATS server URL: give nats://HOST:PORT"));
        }
        if let Some(p) = port {
            if !matches!(p.parse::<u16>(), Ok(1..)) {
                return Err(format!("{part:?}: {p:?} is not a port (1-65535)"));
            }
        }
    }
    Ok(s.to_string())
}

pub fn parse_stream_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a stream name: use 1-64 letters, digits, - and _"))
    }
}

pub fn parse_date(s: &str) -> Result<jiff::civil::Date, String> {
    workflows::facts::parse_date(s)
}

/// `KEY=VALUE`
pub fn parse_fact(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Who records: every write names a person and the role they act in.
#[derive(Debug, clap::Args)]
pub struct By {
    /// Your name, as it will stand in the record.
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// The role you record in; the workflow says which roles may record what.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Validate definition files; every problem is shown with its line and column.
    Check {
        /// TOML definition files, or directories of them (every *.toml inside).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the built-in definitions and those in --workflows DIR.
    List,
    /// Print a definition's source.
    Show {
        /// A workflow id (`workflows list`), or a path to a .toml file.
        workflow: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with workflow definitions.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Start an instance of a workflow for an organisation.
    Start {
        /// A built-in workflow id, one in --workflows DIR, or a path to a .toml file.
        workflow: String,
        /// The new instance's id (letters, digits, - _ . : /).
        #[arg(long, value_name = "ID")]
        instance: String,
        /// The organisation taking part.
        #[arg(long, value_name = "NAME")]
        org: String,
        /// The case number (diarienummer) the matter is registered under.
        #[arg(long, value_name = "NUMBER")]
        dnr: Option<String>,
        /// The date it started; default today.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: Option<jiff::civil::Date>,
        #[command(flatten)]
        by: By,
    },
    /// Record that a step happened.
    Record {
        /// The instance's id (as given to `start --instance`).
        instance: String,
        /// The step's id in the instance's workflow (`workflows show WORKFLOW`, or `status INSTANCE`).
        step: String,
        /// The date it happened (may be in the past).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: jiff::civil::Date,
        /// A fact of the step, KEY=VALUE; repeat for more. `workflows show` lists them.
        #[arg(long = "fact", value_name = "KEY=VALUE", value_parser = parse_fact)]
        facts: Vec<(String, String)>,
        /// A TOML file of facts: key = "value" or key = ["value", ...].
        #[arg(long = "facts", value_name = "FILE")]
        facts_file: Option<PathBuf>,
        /// Record it although a rule of the workflow is not met, and say why.
        #[arg(long, value_name = "WHY")]
        deviation: Option<String>,
        #[command(flatten)]
        by: By,
    },
    /// Correct an earlier step; the original stays in the log.
    Correct {
        /// The step's event to correct: its id (32 hex digits, or its first 8 or more), or its position in
        /// the log (#17), as `log` shows them.
        event: String,
        /// Why it is corrected.
        #[arg(long)]
        reason: String,
        /// The date it really happened, if that was wrong.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        date: Option<jiff::civil::Date>,
        /// A fact to replace, KEY=VALUE; repeat for more.
        #[arg(long = "fact", value_name = "KEY=VALUE", value_parser = parse_fact)]
        facts: Vec<(String, String)>,
        /// The date of the correction; default today.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: Option<jiff::civil::Date>,
        #[command(flatten)]
        by: By,
    },
    /// Extend or waive a step's pending deadline: give --extend-to DATE or --waive.
    #[command(group(clap::ArgGroup::new("change").required(true).args(["extend_to", "waive"])))]
    Deadline {
        /// The instance's id.
        instance: String,
        /// The step whose pending deadline changes.
        step: String,
        /// The new last day (later than the pending one).
        #[arg(long, value_name = "DATE", value_parser = parse_date, conflicts_with = "waive")]
        extend_to: Option<jiff::civil::Date>,
        /// The deadline no longer applies.
        #[arg(long)]
        waive: bool,
        /// Why the deadline changes (a decision, a moved meeting).
        #[arg(long)]
        reason: String,
        /// The date of the change; default today.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: Option<jiff::civil::Date>,
        #[command(flatten)]
        by: By,
    },
    /// Done, open, waiting and overdue steps, and the next deadlines.
    Status {
        /// One instance; default all.
        instance: Option<String>,
        /// text, or json: one JSON object per instance, one per line (JSON Lines).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The audit trail of an instance or an organisation: every event, flags, corrections, hashes.
    Audit {
        /// One instance; or use --org, or neither for the whole log.
        instance: Option<String>,
        /// Only this organisation's instances; default all.
        #[arg(long, value_name = "ORG", conflicts_with = "instance")]
        org: Option<String>,
        #[command(flatten)]
        out: ReportOut,
    },
    /// Coming and missed deadlines, soonest first; --format ics for calendars.
    Deadlines {
        /// Only this organisation's instances; default all.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[command(flatten)]
        out: ReportOut,
    },
    /// Reports: compliance, dialogue register, annual report section.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Send the reminders and escalations that are due and not yet sent, once each, and record them.
    ///
    /// Without --watch: one pass as of today (or --today), then exit. With --watch: keep running,
    /// sleeping until the next notice is due or the log changes; stop cleanly on Ctrl-C or SIGTERM.
    /// Every notice sent and every missed deadline is an event in the log, so restarts and several
    /// services at once never send one twice.
    Remind {
        /// Keep running as a service.
        #[arg(long, conflicts_with = "today")]
        watch: bool,
        /// Show what a pass would send and record, and send and record nothing (any --today, also a
        /// day to come).
        #[arg(long, conflicts_with = "watch")]
        dry_run: bool,
        /// Channels to send on; repeat for more. Default: log, email when [smtp] is configured, nats when [nats] is.
        #[arg(long = "channel", value_enum, value_name = "CHANNEL")]
        channels: Vec<ChannelArg>,
    },
    /// Rebuild every projection from the whole log and replace the checkpoint.
    Rebuild {
        /// Also rebuild the embedded store's index from its log files (the remedy `verify` names for a
        /// damaged index); the old index is kept aside as index.old-DATE.
        #[arg(long)]
        index: bool,
    },
    /// List events, oldest first.
    Log {
        /// Only this workflow instance.
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
        /// Output format: readable text, or JSON Lines (one event per line).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Walk the whole hash chain; exit 0 when intact, 1 at the first break. With --checkpoint, also prove
    /// that the log is an extension of that signed checkpoint (RFC 9162 consistency proof).
    Verify {
        /// A checkpoint written by `styrlogg checkpoint` (or carried by a report).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// A public key the checkpoint may be signed with (NAME+ID+KEY as `styrlogg key public` prints
        /// it, or a file of such keys, one per line). Repeatable: the checkpoint must be signed by one of
        /// them. Default: the keys recorded in the log, and the local signing key.
        #[arg(long, value_name = "PUBKEY", requires = "checkpoint")]
        key: Vec<String>,
    },
    /// Print a signed checkpoint of the log: origin, tree size, Merkle root (RFC 9162, SHA-256) and date,
    /// signed with the organisation's key (C2SP tlog-checkpoint / signed-note).
    Checkpoint {
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print an inclusion proof for one event, which a third party checks with `styrlogg check-proof`
    /// against a published checkpoint, without the rest of the log.
    Prove {
        /// An event id (32 hex digits, see `styrlogg log`) or a log position.
        #[arg(required_unless_present = "from")]
        event: Option<String>,
        /// Prove against this published checkpoint (its tree size); default: the log as it is now,
        /// with a new checkpoint printed first.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Instead of an event: prove that --checkpoint (default: now) extends this older checkpoint.
        #[arg(long, value_name = "FILE", conflicts_with = "event")]
        from: Option<PathBuf>,
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a proof from `styrlogg prove` against a signed checkpoint and a public key. Needs no log.
    CheckProof {
        /// The proof file.
        proof: PathBuf,
        /// The checkpoint the proof was made for.
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// For a consistency proof (and only for one; an inclusion proof refuses it): the older checkpoint.
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<PathBuf>,
        /// The log's public key (NAME+ID+KEY as `styrlogg key public` prints it, or a file of such keys,
        /// one per line). Repeatable: each checkpoint must be signed by one of the keys, so a consistency
        /// proof across a key rotation is checked with the old key and the new one.
        #[arg(long, value_name = "PUBKEY", required = true)]
        key: Vec<String>,
    },
    /// The organisation's checkpoint-signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove a person's personal data (gallring): destroy their key and record the decision.
    ///
    /// Only facts the definitions mark as personal (personal = true, e-mail, phone) are sealed with a
    /// person's key and can be removed; facts kept as public records (arkivlagen) stay, and an erasure
    /// that would remove nothing is refused with the reason. The log is not rewritten: verify still passes.
    Erase {
        /// A person id (32 hex digits, see `styrlogg persons`) or a name.
        person: String,
        /// The organisation, when a name is not unique.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Why the data is removed.
        #[arg(long)]
        reason: String,
        /// The decision that allows it (a gallringsbeslut, a case number).
        #[arg(long, value_name = "DECISION")]
        decision: String,
        /// Say who would be erased and which facts would go and stay; erase and record nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        by: By,
    },
    /// The persons whose personal data is sealed in the log, from the key store, and those erased.
    Persons {
        /// Only this organisation's instances; default all.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// Print the position and hash of the last event.
    Head,
    /// Write the whole log as JSON Lines to stdout (or a file).
    Export {
        /// Write here instead of stdout. The file appears only once it is complete; an earlier file of
        /// that name is replaced then, and kept if the export fails.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// For a damaged log (`verify` FAILED): read the log's files directly, without opening the store
        /// or changing anything in it, and write every event up to the first damage. Exit 1 when it
        /// stopped early, saying where and why. Embedded store only.
        #[arg(long, conflicts_with = "nats")]
        salvage: bool,
    },
    /// Load an export into an empty store, keeping every hash.
    Import {
        /// A JSON Lines file written by `export`, or - for stdin.
        file: PathBuf,
    },
    /// Apply scenario files: recorded histories as data, through the same rules as start/record/correct/deadline.
    ///
    /// Every file is parsed and checked first; a problem is named with its file and line, and nothing is
    /// written. Then the commands are applied in order, each one its own atomic append, with its
    /// recorded_on date (default: its on date) as today for the rules. Loading stops at the first refused
    /// command and keeps the commands applied before it. Loading a file again writes nothing new:
    /// commands already in the log are recognised and skipped. Prints one summary line per file.
    Load {
        /// Scenario files (TOML); see workflows/scenarios/ for examples.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Load the five source histories and show what styrlogg makes of them: status, deviations, deadlines,
    /// compliance, dialogue register, annual report, verification.
    ///
    /// The built-in scenarios (workflows/scenarios/) are loaded with the same code as `load`. Without
    /// --data (or STYRLOGG_DATA) the store is a fresh temporary directory, removed afterwards; with --data
    /// DIR it is kept, and running again writes nothing new. Reports are made as of --today (default 2015-10-22, the date of
    /// the newest source document).
    Demo,
    /// Serve the web interface and the HTTP JSON API (see README: Web interface).
    ///
    /// Pages for the overview, each instance's timeline, deadlines, the dialogue register and every report,
    /// forms to start an instance and record a step; the same operations as JSON under /api. Writes need a
    /// login (users and API tokens from --users FILE). The embedded store is held while the server runs:
    /// other commands on the same --data wait up to 10 s and then say it is in use; use --nats to share.
    Serve(ServeArgs),
    /// Manage the web interface's users and API tokens in --users FILE.
    #[command(subcommand)]
    User(UserCommand),
    /// Append synthetic events as fast as possible and report latency and
    /// throughput (used by the crash test and for measurements).
    #[command(hide = true)]
    Stress(StressArgs),
}

/// Output choices shared by every report.
#[derive(Debug, clap::Args)]
pub struct ReportOut {
    /// text for the terminal, md, html (one printable file), json, csv (the main table), ics (deadlines only).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Report language.
    #[arg(long, value_enum, default_value_t = LangArg::Sv)]
    pub lang: LangArg,
    /// Build from what had been recorded by the end of this date (Swedish time).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub as_of: Option<jiff::civil::Date>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A public extract: leave out personal and confidential (sekretess) facts, saying where.
    #[arg(long)]
    pub public: bool,
}

impl Command {
    /// Whether the command records events dated by --today (or serves a
    /// web interface that does): such a --today may not lie ahead.
    pub fn writes_as_of_today(&self) -> bool {
        matches!(
            self,
            Command::Start { .. }
                | Command::Record { .. }
                | Command::Correct { .. }
                | Command::Deadline { .. }
                | Command::Remind { dry_run: false, .. }
                | Command::Erase { dry_run: false, .. }
                | Command::Load { .. }
                | Command::Key(KeyCommand::Record { .. } | KeyCommand::Rotate { .. })
                | Command::Serve(_)
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a new signing key file (mode 0600); refuses to replace one. Prints the public key.
    Generate {
        /// The key's name, which is also the log's name in checkpoints: e.g. tyreso.se/styrlogg.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Print the public key to publish (NAME+ID+KEY): what third parties check checkpoints with.
    Public,
    /// Record the current signing key's public key in the log (after `key generate`). Refuses a key the
    /// log recorded and later replaced (retired).
    Record {
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        by: By,
    },
    /// Make a new signing key, record it in the log, and put it in place of the old one (kept as
    /// signing.key.retired-ID). Also replaces a lost key file, when the log has recorded a key.
    Rotate {
        /// The new key's name; default: the old one's (a lost one's: the last key the log recorded).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        by: By,
    },
    /// The signing keys recorded in the log, oldest first.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Md,
    Html,
    Json,
    Csv,
    Ics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    /// Lines on standard output, addressed to roles.
    Log,
    /// E-mail over SMTP to the addresses in [recipients] (needs [smtp]).
    Email,
    /// JSON on the NATS subject styrlogg.notices.<organisation> (needs [nats] or --nats).
    Nats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    Sv,
    En,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Each obligation of an instance's workflow: met, met late, met with deviation, overdue; with evidence.
    Compliance {
        #[arg(long, value_name = "ID")]
        instance: String,
        #[command(flatten)]
        out: ReportOut,
    },
    /// Every citizen dialogue: question, ladder step, dates, results, the decisions that used them.
    Dialogues {
        /// Only this organisation's instances; default all.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// `case`: each dialogue in the dialogue guide's template (Ingress, Bakgrund, Syfte, Process, Resultat).
        #[arg(long, value_name = "TEMPLATE", value_parser = ["case"])]
        template: Option<String>,
        #[command(flatten)]
        out: ReportOut,
    },
    /// The project section of the annual report for an organisation and a year.
    Annual {
        /// The organisation (as given to `start --org`; case and Unicode form do not matter).
        #[arg(long, value_name = "ORG")]
        org: String,
        /// The year the annual report covers.
        #[arg(long, value_name = "YEAR", value_parser = clap::value_parser!(i16).range(1900..=2100))]
        year: i16,
        #[command(flatten)]
        out: ReportOut,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Concurrent writers, each on its own instance.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Commands per writer.
    #[arg(long, default_value_t = 1000)]
    pub commands: u64,
    /// Events per command (one atomic batch).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Prefix of command ids and instances, so runs on one store never collide.
    #[arg(long, default_value = "stress")]
    pub prefix: String,
    /// Print `ack COMMAND_ID` on stdout as each append is acknowledged.
    #[arg(long)]
    pub print_acks: bool,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
    /// Mark session cookies Secure: set this when the server is reached over HTTPS (a TLS-terminating proxy).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Also run the reminder service in this process (as `remind --watch`, with the channels the
    /// configuration allows), on the store the server holds. It follows the clock, so not with --today.
    #[arg(long)]
    pub remind: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user who logs in with a password, read from standard input (a prompt on a terminal), never
    /// from the command line.
    Add {
        /// The login name (letters, digits, . _ -).
        login: String,
        /// The name recorded as the actor of every event the user records; default the login.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// A role the user may act in (as the workflows name them: sekreterare, projektledare, ...); repeat
        /// for more.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// An organisation the user may record for; repeat for more. Default: any.
        #[arg(long = "org", value_name = "ORG")]
        orgs: Vec<String>,
        /// Replace the user if it exists (a new password, roles and organisations).
        #[arg(long)]
        replace: bool,
    },
    /// Create an API token for a machine; the token is printed once and only its hash is kept.
    Token {
        /// The token's name, recorded as the actor of every event written with it.
        name: String,
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        #[arg(long = "org", value_name = "ORG")]
        orgs: Vec<String>,
        /// Replace a token of that name (the old one stops working).
        #[arg(long)]
        replace: bool,
    },
    /// Remove a user or a token.
    Remove { login: String },
    /// List users and tokens with their roles (never their hashes).
    List,
}
