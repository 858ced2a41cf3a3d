//! The trust crate's signed notes, checkpoints and key texts: no panic; what parses round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::note(data));
