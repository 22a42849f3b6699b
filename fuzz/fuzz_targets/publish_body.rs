//! Arbitrary bytes as a publish request body: decoding and validation must
//! never panic, and decoded options must round-trip (see
//! `herald::fuzzing::publish_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald::fuzzing::publish_body(data));
