//! Arbitrary text and selector-token soups through `Selector::parse`, then
//! evaluation, `Display` round trip and negation checks (see
//! `herald_core::fuzzing::selector`).
#![no_main]

use herald_core::fuzzing::selector_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    selector_bytes(data);
});
