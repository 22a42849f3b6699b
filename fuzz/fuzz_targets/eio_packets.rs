//! Arbitrary text through the direct WebSocket path's Engine.IO /
//! socket.io packet parser: a packet or an error, never a panic; events
//! survive the server's encoder (see `herald_server::fuzzing::eio_packets`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_server::fuzzing::eio_packets(data));
