//! Arbitrary bytes as a push template and as smart text (see
//! `herald::fuzzing::push_template`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald::fuzzing::push_template(data));
