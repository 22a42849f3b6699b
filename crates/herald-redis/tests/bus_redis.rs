//! `RedisBus` against a real Redis (`REDIS_URL`): the `ClusterBus`
//! conformance suite with two buses (two nodes' connections) on a fresh
//! channel per test, and the reconnections: a subscription whose
//! connection is killed is told (`Lagged`) and goes on; a send whose
//! connection is killed fails and the next one connects again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use herald::bus::{BusEvent, ClusterBus};
use herald_redis::{ConnectError, MAX_FRAME, RedisBus};
use tokio::sync::mpsc;

herald_testkit::bus_conformance_tests!(optional async {
    let url = redis_url()?;
    let channel = fresh_channel("conformance");
    Some((bus(&url, &channel).await, bus(&url, &channel).await))
});

const TIMEOUT: Duration = Duration::from_secs(20);

async fn next(rx: &mut mpsc::Receiver<BusEvent>) -> BusEvent {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("an event within 20 s")
        .expect("the subscription is live")
}

fn frame(s: &str) -> Arc<[u8]> {
    Arc::from(s.as_bytes())
}

/// A subscription whose connection is killed connects again, says
/// `Lagged { missed: 0 }`, then receives what is sent after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_is_told_then_receives_later_frames() {
    let Some(url) = redis_url() else { return };
    let mut admin = admin(&url).await;
    let user = User::create(&mut admin, &url, "sub-kill").await;
    let channel = fresh_channel("sub-kill");
    let sender = bus(&url, &channel).await;
    let node = bus(&user.url, &channel).await;
    let mut rx = node.subscribe().await.expect("subscribe");
    sender.send(vec![frame("before")]).await.expect("send");
    assert_eq!(next(&mut rx).await, BusEvent::Frame(frame("before")));

    assert_eq!(
        user.kill(&mut admin, "pubsub").await,
        1,
        "one pub/sub connection"
    );
    assert_eq!(
        next(&mut rx).await,
        BusEvent::Lagged { missed: 0 },
        "told once it is subscribed again"
    );
    // Subscribed again before the notice was queued: this arrives.
    sender.send(vec![frame("after")]).await.expect("send");
    assert_eq!(next(&mut rx).await, BusEvent::Frame(frame("after")));
    assert!(node.is_connected(), "sending and subscribed");
    assert!(rx.try_recv().is_err(), "nothing else");

    // The sending connection (a normal one) was not touched.
    node.send(vec![frame("own")])
        .await
        .expect("the node still sends");
    assert_eq!(next(&mut rx).await, BusEvent::Frame(frame("own")));
    user.delete(&mut admin).await;
}

/// A subscription that cannot connect again (its user is disabled) keeps
/// trying, with backoff, reports the bus as not connected meanwhile, and
/// once it can, says `Lagged` and receives later frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_keeps_trying_until_it_can_connect_again() {
    let Some(url) = redis_url() else { return };
    let mut admin = admin(&url).await;
    let user = User::create(&mut admin, &url, "sub-retry").await;
    let channel = fresh_channel("sub-retry");
    let sender = bus(&url, &channel).await;
    let node = bus(&user.url, &channel).await;
    let mut rx = node.subscribe().await.expect("subscribe");

    user.enable(&mut admin, false).await;
    assert_eq!(user.kill(&mut admin, "pubsub").await, 1);
    // Wait (bounded, on the server's own record) until two attempts to
    // connect again were refused: the first is immediate, the second
    // comes after a backoff.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while user.refused_logins(&mut admin).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second attempt to reconnect within {TIMEOUT:?}"
        );
        tokio::task::yield_now().await;
    }
    assert!(!node.is_connected(), "a subscription is down");
    assert!(rx.try_recv().is_err(), "nothing to say until it is back");
    sender.send(vec![frame("while down")]).await.expect("send");

    user.enable(&mut admin, true).await;
    assert_eq!(next(&mut rx).await, BusEvent::Lagged { missed: 0 });
    assert!(node.is_connected());
    sender.send(vec![frame("back")]).await.expect("send");
    assert_eq!(
        next(&mut rx).await,
        BusEvent::Frame(frame("back")),
        "\"while down\" is gone: that is what the notice said"
    );
    user.delete(&mut admin).await;
}

/// A send on a connection that was killed fails (the engine counts the
/// frames as lost), and the next send connects again and arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_a_killed_connection_fails_and_the_next_reconnects() {
    let Some(url) = redis_url() else { return };
    let mut admin = admin(&url).await;
    let user = User::create(&mut admin, &url, "pub-kill").await;
    let channel = fresh_channel("pub-kill");
    let node = bus(&user.url, &channel).await;
    let other = bus(&url, &channel).await;
    let mut rx = other.subscribe().await.expect("subscribe");
    node.send(vec![frame("1")]).await.expect("send");
    assert_eq!(next(&mut rx).await, BusEvent::Frame(frame("1")));
    assert!(node.is_connected());

    assert_eq!(
        user.kill(&mut admin, "normal").await,
        1,
        "one sending connection"
    );
    let err = node
        .send(vec![frame("lost")])
        .await
        .expect_err("the connection is gone");
    assert!(
        err.what().contains("publishing 1 frames on redis channel"),
        "the error says what failed: {err}"
    );
    assert!(!node.is_connected(), "known down, without I/O");

    node.send(vec![frame("2")]).await.expect("connects again");
    assert!(node.is_connected());
    assert_eq!(
        next(&mut rx).await,
        BusEvent::Frame(frame("2")),
        "\"lost\" never went out"
    );
    user.delete(&mut admin).await;
}

/// Closing: when the last handle on a bus is dropped, its subscriptions
/// end (`None`), whatever their connections do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bus_ends_its_subscriptions() {
    let Some(url) = redis_url() else { return };
    let node = bus(&url, &fresh_channel("drop")).await;
    let mut rx = node.subscribe().await.expect("subscribe");
    let clone = node.clone();
    drop(node);
    clone
        .send(vec![frame("x")])
        .await
        .expect("a clone still sends");
    assert_eq!(next(&mut rx).await, BusEvent::Frame(frame("x")));
    drop(clone);
    let end = tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("ends within 20 s");
    assert_eq!(end, None);
}

/// Frames over `MAX_FRAME` are refused before anything is sent, with the
/// sizes in the error; the bus carries a frame of exactly `MAX_FRAME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_max_frame_are_refused() {
    let Some(url) = redis_url() else { return };
    let node = bus(&url, &fresh_channel("max")).await;
    assert_eq!(node.max_frame(), MAX_FRAME);
    let mut rx = node.subscribe().await.expect("subscribe");
    let too_big: Arc<[u8]> = vec![0u8; MAX_FRAME + 1].into();
    let err = node
        .send(vec![frame("first"), too_big])
        .await
        .expect_err("too large");
    assert_eq!(
        err.what(),
        format!(
            "a frame of {} bytes is over the redis bus limit of {MAX_FRAME} bytes",
            MAX_FRAME + 1
        )
    );
    let exact: Arc<[u8]> = (0..MAX_FRAME)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    node.send(vec![exact.clone()])
        .await
        .expect("exactly MAX_FRAME");
    assert_eq!(
        next(&mut rx).await,
        BusEvent::Frame(exact),
        "\"first\" was not sent either"
    );
}

/// Bad channel names and URLs are refused with errors that say why.
#[tokio::test]
async fn bad_names_and_urls_are_refused() {
    let err = RedisBus::connect("redis://127.0.0.1:6379", "has space")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Channel { .. }), "{err}");
    let err = RedisBus::connect("http://127.0.0.1:6379", "herald:x")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Url(_)), "{err}");
    assert!(err.to_string().starts_with("invalid redis url: "), "{err}");
    let err = RedisBus::connect("rediss://127.0.0.1:6379", "herald:x")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Url(_)), "no TLS: {err}");
}

/// With a server: a server that refuses the credentials is a connect
/// error naming the cause.
#[tokio::test]
async fn refused_credentials_are_a_connect_error() {
    let Some(url) = redis_url() else { return };
    let rest = url.strip_prefix("redis://").expect("redis://");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let bad = format!("redis://no-such-user-{}:wrong@{host}", std::process::id());
    let err = RedisBus::connect(&bad, "herald:x").await.unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err}");
    assert!(
        err.to_string().starts_with("cannot connect to redis: "),
        "{err}"
    );
}
