//! Arbitrary bytes as an APNs and an FCM answer (status, `Retry-After`,
//! body) and as a service-account key (see `herald_apns::fuzzing::answer`
//! and `herald_fcm::fuzzing::answer`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_apns::fuzzing::answer(data);
    herald_fcm::fuzzing::answer(data);
});
