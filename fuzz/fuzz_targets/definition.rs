//! Definition::parse on workflow-definition TOML: no panic; what parses can start an instance.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::definition(data));
