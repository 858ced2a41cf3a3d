//! Workflow definitions as data: the TOML format, its two-phase parsing
//! (raw, then validated and resolved), the Swedish calendar their deadlines
//! are counted on, and the pure decisions that enforce them on an
//! instance's events; and scenario files, recorded histories as data.
//!
//! Nothing here does IO or reads a clock: callers pass the source text and
//! today's date.

pub mod builtin;
pub mod calendar;
pub mod decide;
pub mod definition;
pub mod facts;
pub mod instance;
pub mod reminders;
pub mod scenario;
pub mod status;

pub use decide::{decide, start, Command, Rejection, Rule};
pub use definition::{Definition, Problem, StepKind};
pub use instance::Instance;
pub use scenario::Scenario;
