//! The parts of the `styrlogg` binary that tests drive directly: the
//! reminder service and its channels.

pub mod remind;
