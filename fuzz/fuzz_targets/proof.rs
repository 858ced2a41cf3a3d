//! The trust crate's proof files: no panic; what parses round-trips and checks without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::proof(data));
