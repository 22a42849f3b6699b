//! Herald's APNs gateway: Apple's HTTP/2 provider API with token-based
//! authentication, as a [`herald::PushTransport`].
//!
//! [`ApnsGateway`] sends each notification as `POST /3/device/<token>`
//! over a small pool of long-lived HTTP/2 connections
//! ([`herald_http2::Pool`]), authenticated by an ES256 provider token
//! signed with the team's `.p8` key, and maps Apple's answers to the
//! pipeline's outcomes. Everything Apple documents and Herald relies on is
//! in `docs/reference/push-protocols.md`; the parts:
//!
//! * **The provider token** (`token.rs`): `{"alg":"ES256","kid":KEY_ID}`,
//!   `{"iss":TEAM_ID,"iat":now}`, cached; re-signed after
//!   [`REFRESH_AFTER`] (50 minutes) by the injected clock and on
//!   `403 ExpiredProviderToken`, never twice within
//!   [`MIN_RESIGN_INTERVAL`] (20 minutes). Never in `Debug` output.
//! * **The payload** ([`apns_payload`]): `aps` from the
//!   [`PushContent`](herald::PushContent), custom keys at the top level,
//!   at most [`MAX_PAYLOAD_BYTES`].
//! * **The headers** (`request.rs`): `authorization`, `apns-topic`,
//!   `apns-push-type` (`alert`/`background`), `apns-priority` (10/5),
//!   `apns-expiration` (the notification's `expires_at` in Unix seconds),
//!   `apns-collapse-id`, `apns-id` (the stable
//!   [`NotificationId`](herald::NotificationId)).
//! * **The answers** (`answer.rs`), <a id="answers"></a>per notification:
//!
//!   | APNs answer | Outcome |
//!   |---|---|
//!   | 200 | `Sent` |
//!   | 410 `Unregistered`, `ExpiredToken` | `InvalidToken { at: the body's ms timestamp }` |
//!   | 400 `BadDeviceToken` | `InvalidToken { at: None }`, or the mismatch rule below |
//!   | 429 `TooManyRequests`, `TooManyProviderTokenUpdates`; 500, 503 (`Shutdown`...); no answer (connection lost, timeout, no connection) | `Retry { after: Retry-After }` |
//!   | 403 `InvalidProviderToken`, `BadCertificate`, `BadCertificateEnvironment`, `Forbidden`, `MissingProviderToken` | `Retry`, and the delivery is refused: [`Refusal::Credentials`](herald::Refusal::Credentials) |
//!   | 403 `ExpiredProviderToken` | re-sign and resend once (else `Retry` after the 20-minute floor) |
//!   | anything else (400 `BadTopic`, 413 `PayloadTooLarge`...) | `Failed { reason: "APNs 400 BadTopic" }` |
//!
//! * **The batch rules** (`batch.rs`): a batch of at least
//!   [`MISMATCH_MIN_BATCH`] in which most answers are `BadDeviceToken` is a
//!   sandbox/production mismatch: the delivery is refused as
//!   [`Refusal::Misconfigured`](herald::Refusal::Misconfigured), those
//!   notifications get `Retry` (the pipeline fails them with the
//!   configuration problem), and no token is removed.
//!
//! # Example
//!
//! In production, `base_url` is [`PRODUCTION_URL`] or [`SANDBOX_URL`] and
//! the TLS settings are [`herald_http2::client_tls`]`(None)` (or
//! [`ApnsConfig::from_files`] does it all). Here a local mock APNs from
//! `herald-testkit` stands in for Apple:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use herald::{Outcome, PushTransport, SystemClock};
//! use herald_apns::{ApnsConfig, ApnsGateway};
//! use herald_testkit::mock_apns::{MockApns, MockApnsOptions, TestApnsKey};
//!
//! let key = TestApnsKey::generate(); // what Apple's AuthKey_<KEY_ID>.p8 holds
//! let apple = MockApns::start(MockApnsOptions::new(&key, "com.example.app", Arc::new(SystemClock)))
//!     .await
//!     .unwrap();
//! let config = ApnsConfig::new(
//!     key.private_pem.clone(),
//!     key.key_id.clone(),
//!     key.team_id.clone(),
//!     "com.example.app",
//!     apple.url(),
//!     herald_http2::client_tls_only(apple.ca_pem().as_bytes()).unwrap(),
//! );
//! let gateway = ApnsGateway::new(config, Arc::new(SystemClock)).unwrap();
//! # let mut note = herald_testkit::push_transport_conformance::notification(herald::Os::Ios, 1);
//! # note.expires_at = herald::Clock::now(&SystemClock).saturating_add_millis(60_000);
//! let delivery = gateway.send(&[note]).await;
//! assert_eq!(delivery.outcomes, [Outcome::Sent]);
//! assert_eq!(apple.accepted()[0].payload["aps"]["alert"]["title"], "Title ✓");
//! assert_eq!(gateway.stats().provider_tokens_signed, 1);
//! # });
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod answer;
mod batch;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod payload;
mod request;
mod stats;
mod token;

pub use batch::MISMATCH_MIN_BATCH;
pub use config::{ApnsConfig, PRODUCTION_URL, SANDBOX_URL};
pub use error::ApnsError;
pub use gateway::ApnsGateway;
pub use payload::{MAX_PAYLOAD_BYTES, PayloadError, apns_payload};
pub use request::MAX_COLLAPSE_ID_BYTES;
pub use stats::ApnsStats;
pub use token::{MIN_RESIGN_INTERVAL, REFRESH_AFTER};
