//! Arbitrary bytes as a stored envelope (what a durable store reads back)
//! and as a cluster-bus frame (what another node sends):
//! decoding must never panic, and what decodes must encode back to an
//! envelope that decodes the same (see `herald::fuzzing::stored_envelope`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald::fuzzing::stored_envelope(data));
