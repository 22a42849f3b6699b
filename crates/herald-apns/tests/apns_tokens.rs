//! The provider token: reused, re-signed after 50 minutes, re-signed on
//! `ExpiredProviderToken` but never twice within 20 minutes, as the mock
//! (which verifies every token like APNs) sees it.

mod support;

use std::time::Duration;

use herald::{Outcome, PushTransport};
use support::{MIN, Setup, notes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_many_sends() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    for round in 0..5 {
        let d = gateway.send(&notes(round * 100..round * 100 + 100)).await;
        assert_eq!(d.outcomes, vec![Outcome::Sent; 100]);
        s.advance(9 * MIN);
    }
    assert_eq!(s.mock.accepted_count(), 500);
    assert_eq!(
        s.mock.provider_tokens(),
        1,
        "one token for 45 minutes of sends"
    );
    assert_eq!(gateway.stats().provider_tokens_signed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_signed_after_fifty_minutes() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    assert_eq!(
        gateway.send(&notes(0..10)).await.outcomes,
        vec![Outcome::Sent; 10]
    );
    s.advance(49 * MIN);
    assert_eq!(
        gateway.send(&notes(0..10)).await.outcomes,
        vec![Outcome::Sent; 10]
    );
    assert_eq!(s.mock.provider_tokens(), 1);
    s.advance(2 * MIN);
    assert_eq!(
        gateway.send(&notes(0..10)).await.outcomes,
        vec![Outcome::Sent; 10]
    );
    assert_eq!(s.mock.provider_tokens(), 2, "a new token after 51 minutes");
    assert_eq!(gateway.stats().provider_tokens_signed, 2);
    assert!(s.mock.refusals().is_empty(), "{:?}", s.mock.refusals());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_provider_token_re_signs_once_and_respects_the_floor() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    assert_eq!(
        gateway.send(&notes(0..5)).await.outcomes,
        vec![Outcome::Sent; 5]
    );
    // APNs's clock runs an hour ahead: the 0-minute-old token is expired
    // there, but a new one may not be signed within 20 minutes.
    s.mock_clock.advance(Duration::from_millis(61 * MIN));
    let d = gateway.send(&notes(0..5)).await;
    assert_eq!(d.refused, None);
    assert_eq!(
        d.outcomes,
        vec![
            Outcome::Retry {
                after: Some(Duration::from_millis(20 * MIN))
            };
            5
        ]
    );
    assert_eq!(gateway.stats().provider_tokens_signed, 1);
    assert_eq!(s.mock.refusals()["403 ExpiredProviderToken"], 5);

    // 20 minutes later by the gateway's clock: one new token for the whole
    // batch, each notification resent once with it.
    s.gateway_clock.advance(Duration::from_millis(20 * MIN));
    let d = gateway.send(&notes(0..50)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 50]);
    let stats = gateway.stats();
    assert_eq!(
        stats.provider_tokens_signed, 2,
        "one signing for all the refusals"
    );
    // Each refused notification was resent once (one that started after
    // the new token was signed went with it at once).
    let refused = s.mock.refusals()["403 ExpiredProviderToken"] - 5;
    assert!(refused >= 1);
    assert_eq!(stats.token_resends, refused);
    assert_eq!(stats.requests, 5 + 5 + 50 + refused);
    assert_eq!(s.mock.provider_tokens(), 2);
    assert_eq!(
        s.mock.refusals().get("429 TooManyProviderTokenUpdates"),
        None
    );

    // The new token expired again within 20 minutes (APNs's clock jumps
    // again): retry after what is left of the floor, no third token.
    s.mock_clock.advance(Duration::from_millis(61 * MIN));
    s.gateway_clock.advance(Duration::from_millis(5 * MIN));
    let d = gateway.send(&notes(0..3)).await;
    assert_eq!(
        d.outcomes,
        vec![
            Outcome::Retry {
                after: Some(Duration::from_millis(15 * MIN))
            };
            3
        ]
    );
    assert_eq!(gateway.stats().provider_tokens_signed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_new_token_within_twenty_minutes_is_refused_by_apns() {
    // Two servers share one key: the second one's token is a new token
    // within 20 minutes of the first's.
    let s = Setup::start().await;
    let first = s.gateway();
    let second = s.gateway();
    assert_eq!(
        first.send(&notes(0..2)).await.outcomes,
        vec![Outcome::Sent; 2]
    );
    let d = second.send(&notes(0..2)).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 2]);
    assert_eq!(d.refused, None);
    assert_eq!(s.mock.refusals()["429 TooManyProviderTokenUpdates"], 2);
    assert_eq!(s.mock.provider_tokens(), 1);
    s.advance(20 * MIN);
    assert_eq!(
        second.send(&notes(0..2)).await.outcomes,
        vec![Outcome::Sent; 2]
    );
    assert_eq!(s.mock.provider_tokens(), 2);
}
