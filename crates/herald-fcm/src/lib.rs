//! Herald's FCM gateway: [`FcmGateway`], a
//! [`PushTransport`](herald::PushTransport) that sends through Firebase
//! Cloud Messaging's HTTP v1 API, authorized by the OAuth2 service-account
//! flow.
//!
//! * **The key.** [`ServiceAccount`] reads Google's JSON key (`project_id`,
//!   `client_email`, `private_key`, `private_key_id`, `token_uri`) when the
//!   gateway is configured; a bad file is an error naming the file and the
//!   field, never showing the key.
//! * **Access tokens.** An RS256 JWT assertion (`kid` the key id, `iss` the
//!   account, `scope` [`FCM_SCOPE`], `aud` the `token_uri`, an hour long by
//!   the injected clock) is posted as a form to `token_uri` over HTTP/2.
//!   The access token it returns serves every send until 60 s before it
//!   expires (by the injected clock); concurrent sends share one refresh;
//!   a 401 from FCM renews it once. A token endpoint that refuses the key
//!   makes the gateway refuse: [`Refusal::Credentials`](herald::Refusal)
//!   with Google's `error_description`.
//! * **The message.** `{"message": {"token", "notification"?, "data"?,
//!   "android": {"ttl", "collapse_key"?, "priority": "high",
//!   "notification"?}}}` from the notification's content as the contract
//!   says; `ttl` is the time left when sending. Expired, over 4096 bytes
//!   (the message without its target) or with a data key FCM reserves:
//!   [`Outcome::Failed`](herald::Outcome) without a request.
//! * **A batch.** FCM v1 takes one message per request, so every
//!   notification of a batch goes at once, as concurrent HTTP/2 streams
//!   over a few long-lived connections ([`herald_http2::Pool`]).
//! * **Answers**, by the `google.firebase.fcm.v1.FcmError` `errorCode`, the
//!   status only when there is none:
//!
//!   | errorCode | outcome | the gateway |
//!   |---|---|---|
//!   | `UNREGISTERED`, `SENDER_ID_MISMATCH` | `InvalidToken` | |
//!   | `QUOTA_EXCEEDED` (or a bare 429) | `Retry { after: Retry-After }` | `Refusal::Quota` (paused) |
//!   | `UNAVAILABLE`, `INTERNAL` (or a bare 500/502/503/504) | `Retry { after: Retry-After }` | |
//!   | `THIRD_PARTY_AUTH_ERROR` (or a bare 403) | `Retry` | `Refusal::Credentials` |
//!   | `INVALID_ARGUMENT` | `Failed` with the field violations | |
//!   | a bare 401 | sent again once with a renewed token; a second 401: `Retry` | `Refusal::Credentials` |
//!   | no answer (cannot connect, an untrusted certificate, timeout, lost) | `Retry` | |
//!
//! # Example
//!
//! Against the local mock of `herald-testkit` (the same code talks to
//! Google with `base_url` `https://fcm.googleapis.com` and a real key):
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! use std::sync::Arc;
//! use herald::{ManualClock, Os, Outcome, PushTransport};
//! use herald_fcm::{FcmConfig, FcmGateway, ServiceAccount};
//! use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, TEST_PRIVATE_KEY_PEM};
//!
//! let clock = Arc::new(ManualClock::new(herald_core::Tick::from_millis(1_700_000_000_000)));
//! let mock = MockFcm::start(MockFcmOptions::new(clock.clone())).await.unwrap();
//! let config = FcmConfig {
//!     service_account: ServiceAccount::from_json(
//!         &mock.service_account_json(TEST_PRIVATE_KEY_PEM),
//!         None,
//!     )
//!     .unwrap(),
//!     base_url: mock.url(),
//!     tls: herald_http2::client_tls_only(mock.ca_pem().as_bytes()).unwrap(),
//!     pool: herald_http2::PoolOptions::default(),
//! };
//! let fcm = FcmGateway::new(config, clock).unwrap();
//! let mut note = herald_testkit::push_transport_conformance::notification(Os::Android, 1);
//! note.expires_at = herald_core::Tick::from_millis(1_700_000_060_000);
//! let delivery = fcm.send(std::slice::from_ref(&note)).await;
//! assert_eq!(delivery.outcomes, [Outcome::Sent]);
//! assert_eq!(mock.accepted()[0].message["android"]["ttl"], "60s");
//! assert_eq!(fcm.stats().access_tokens_fetched, 1);
//! # }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod answer;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod message;
mod oauth;
mod service_account;

pub use config::{FCM_URL, FcmConfig};
pub use error::FcmError;
pub use gateway::{FcmGateway, FcmStats};
pub use message::{MAX_MESSAGE_BYTES, MAX_TTL_SECS, is_reserved_data_key};
pub use oauth::FCM_SCOPE;
pub use service_account::{GOOGLE_TOKEN_URI, ServiceAccount};
