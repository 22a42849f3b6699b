//! Arbitrary client bytes through the server's WebSocket frame decoder, fed
//! in chunks like a socket delivers them: messages or an error, never a
//! panic, an overrun or a stall (see `herald_server::fuzzing::ws_frames`
//! for the input layout and the invariants checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_server::fuzzing::ws_frames(data));
