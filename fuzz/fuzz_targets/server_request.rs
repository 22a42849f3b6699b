//! Arbitrary (method, path suffix, content type, body) through the server's
//! router in-process, on an in-memory engine: no panic, never a 5xx, and
//! every error body is `{"code", "message"}` JSON (see
//! `herald_server::fuzzing::server_request` for the input layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_server::fuzzing::server_request(data));
