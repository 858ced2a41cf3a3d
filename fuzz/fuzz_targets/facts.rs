//! workflows::facts: typed facts as users type them; what parses has its type and round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::facts(data));
