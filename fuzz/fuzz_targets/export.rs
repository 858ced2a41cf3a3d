//! The import reader (engine::export): no panic; what it accepts a store imports whole and exports again unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::export(data));
