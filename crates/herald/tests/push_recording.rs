//! `RecordingTransport` passes the push transport conformance suite, and
//! does what its script says.

use herald::{Os, Outcome, PushTransport, RecordingTransport, Refusal};
use herald_testkit::push_transport_conformance::notification;

herald_testkit::push_transport_conformance_tests!(
    async { RecordingTransport::new("test") },
    Os::Ios
);

#[tokio::test]
async fn scripts_run_per_token_then_the_default() {
    let gw = RecordingTransport::new("fcm");
    let n = notification(Os::Android, 1);
    gw.script(
        &n.device_token,
        [
            Outcome::Retry { after: None },
            Outcome::Failed { reason: "x".into() },
        ],
    );
    gw.set_default(Outcome::InvalidToken { at: None });
    let one = std::slice::from_ref(&n);
    assert_eq!(
        gw.send(one).await.outcomes,
        [Outcome::Retry { after: None }]
    );
    assert_eq!(
        gw.send(one).await.outcomes,
        [Outcome::Failed { reason: "x".into() }]
    );
    assert_eq!(
        gw.send(one).await.outcomes,
        [Outcome::InvalidToken { at: None }]
    );
    assert_eq!(gw.attempts(&n.device_token), 3);
    assert_eq!(gw.sent().len(), 3);
}

#[tokio::test]
async fn a_refusing_gateway_attempts_nothing() {
    let gw = RecordingTransport::new("apns");
    gw.refuse(Some(Refusal::Credentials {
        reason: "InvalidProviderToken".into(),
    }));
    let b = [notification(Os::Ios, 1), notification(Os::Ios, 2)];
    let d = gw.send(&b).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 2]);
    assert!(matches!(d.refused, Some(Refusal::Credentials { .. })));
    assert!(gw.sent().is_empty());
    gw.refuse(None);
    assert_eq!(gw.send(&b).await.outcomes, vec![Outcome::Sent; 2]);
}

#[tokio::test]
async fn held_sends_count_in_flight_until_released() {
    let gw = RecordingTransport::new("apns");
    gw.hold(true);
    let b = [notification(Os::Ios, 1)];
    let (g1, g2) = (gw.clone(), gw.clone());
    let b1 = b.clone();
    let b2 = b.clone();
    let t1 = tokio::spawn(async move { g1.send(&b1).await });
    let t2 = tokio::spawn(async move { g2.send(&b2).await });
    while gw.in_flight() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(gw.sent().is_empty(), "held: nothing attempted yet");
    gw.hold(false);
    assert_eq!(t1.await.unwrap().outcomes, [Outcome::Sent]);
    assert_eq!(t2.await.unwrap().outcomes, [Outcome::Sent]);
    assert_eq!(gw.max_in_flight(), 2);
    assert_eq!(gw.in_flight(), 0);
}
