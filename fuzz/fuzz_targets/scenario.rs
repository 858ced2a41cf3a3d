//! Scenario::parse on scenario TOML: no panic; every problem and command has its place in the file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::scenario(data));
