//! The in-process cluster bus passes the `ClusterBus` conformance suite
//! (with a small queue, so the fell-behind check really loses frames), and
//! its interruption is announced.

use std::sync::Arc;

use herald::bus::{BusEvent, ClusterBus, InProcessBus};

herald_testkit::bus_conformance_tests!(async {
    let bus = InProcessBus::new(256);
    (bus.clone(), bus)
});

/// The default queue (4096) passes too.
mod default_queue {
    herald_testkit::bus_conformance_tests!(async {
        let bus = herald::bus::InProcessBus::default();
        (bus.clone(), bus)
    });
}

#[tokio::test]
async fn an_interruption_is_announced_before_the_next_frame() {
    let bus = InProcessBus::new(8);
    let mut rx = bus.subscribe().await.unwrap();
    bus.send(vec![Arc::from(&b"1"[..])]).await.unwrap();
    bus.interrupt();
    bus.send(vec![Arc::from(&b"2"[..])]).await.unwrap();
    assert_eq!(rx.recv().await, Some(BusEvent::Frame(Arc::from(&b"1"[..]))));
    assert_eq!(rx.recv().await, Some(BusEvent::Lagged { missed: 0 }));
    assert_eq!(rx.recv().await, Some(BusEvent::Frame(Arc::from(&b"2"[..]))));
    assert_eq!(bus.subscriptions(), 1);
    drop(rx);
    assert_eq!(bus.subscriptions(), 0);
}
