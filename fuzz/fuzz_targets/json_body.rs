//! Every route's JSON request decoding, and the problem it maps a refusal to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey_fuzz::json_body(data));
