//! The command line: every flag and subcommand, with their help texts.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// styrlogg records each step a municipality or region takes in SKR's
/// networks on citizen dialogue in governance as an immutable event in a
/// tamper-evident log, and reads it back for audit and reports.
#[derive(Debug, Parser)]
#[command(name = "styrlogg", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 success; 1 refused (invalid input, a --data that is not a store, a conflict, or a log that failed verification); 2 usage error; 3 operating error (disk, lock, corrupt store)."
)]
pub struct Cli {
    /// Directory of the embedded store.
    #[arg(
        long,
        global = true,
        env = "STYRLOGG_DATA",
        default_value = "./styrlogg-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List events, oldest first.
    Log {
        /// Only this workflow instance.
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
        /// Output format: readable text, or JSON Lines (one event per line).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Walk the whole hash chain; exit 0 when intact, 1 at the first break.
    Verify,
    /// Print the position and hash of the last event.
    Head,
    /// Write the whole log as JSON Lines to stdout (or a file).
    Export {
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Load an export into an empty store, keeping every hash.
    Import {
        /// A JSON Lines file written by `export`, or - for stdin.
        file: PathBuf,
    },
    /// Record the opening steps of Landstinget i Jönköpings län's path into
    /// SKL's 2012-2014 network (from the source documents), then show and
    /// verify them. Safe to run again: commands are idempotent.
    Demo,
    /// Append synthetic events as fast as possible and report latency and
    /// throughput (used by the crash test and for measurements).
    #[command(hide = true)]
    Stress(StressArgs),
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
