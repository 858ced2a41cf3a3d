//! codec::decode on stored-record bytes: no panic; a record that decodes re-encodes to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| styrlogg_fuzz::decode(data));
