//! The in-process transport passes the PubSubTransport conformance suite.

herald_testkit::transport_conformance_tests!(async { herald::InProcessTransport::new() });

/// The buffer size is what `with_capacity` says: 4 buffered runs, then lag.
#[tokio::test]
async fn capacity_bounds_the_buffer() {
    use herald::{Lagged, PubSubTransport};
    let t = herald::InProcessTransport::with_capacity(4);
    let mut sub = t.subscribe("c", None).unwrap();
    for n in 0..10 {
        t.publish(&herald_testkit::transport_conformance::run_on("c", n, "p"))
            .unwrap();
    }
    assert_eq!(sub.try_recv().unwrap().unwrap_err(), Lagged(6));
    let rest: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| r.unwrap().message().as_u64().unwrap())
        .collect();
    assert_eq!(rest, vec![6, 7, 8, 9]);
    assert_eq!(t.subscriber_count("c"), 1);
    drop(sub);
    assert_eq!(t.subscriber_count("c"), 0);
}
