//! Arbitrary configuration input (a TOML file's text, or command-line
//! arguments and environment variables) through the server's config layer:
//! a configuration or an error, never a panic (see
//! `herald_server::fuzzing::server_config` for the input layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_server::fuzzing::server_config(data));
