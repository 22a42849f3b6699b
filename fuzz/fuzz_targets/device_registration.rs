//! Arbitrary bytes as a device registration body (see
//! `herald::fuzzing::device_registration`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald::fuzzing::device_registration(data));
