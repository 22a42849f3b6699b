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
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use std::sync::Arc;
//! use herald::PushTransport;
//! use herald_apns::{ApnsConfig, ApnsGateway};
//!
//! let config = ApnsConfig::from_files(
//!     Path::new("AuthKey_ABC123DEFG.p8"),
//!     "ABC123DEFG",
//!     "DEF123GHIJ",
//!     "com.example.app",
//!     herald_apns::PRODUCTION_URL,
//!     None,
//! )?;
//! let gateway = ApnsGateway::new(config, Arc::new(herald::SystemClock))?;
//! # let batch: Vec<herald::Notification> = Vec::new();
//! let delivery = gateway.send(&batch).await;
//! assert_eq!(delivery.outcomes.len(), batch.len());
//! println!("{:?}", gateway.stats());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod answer;
mod batch;
mod config;
mod error;
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
