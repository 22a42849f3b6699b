//! A cancel that arrives while the driver is handing a run to the transport
//! (outside the wheel lock) waits for that hand-off, then decides: a
//! delivered one-off message is 5040, a repeating one is cancelled and runs
//! no more. Nothing is delivered after `cancel` answers `cancelled`.

mod common;

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex};

use common::*;
use herald::{
    DeliveredMessage, InProcessTransport, Membership, PubSubTransport, PublishStatus, Subscriber,
    TransportError,
};
use herald_core::selector::Selector;
use serde_json::json;

/// Blocks the first `publish` after `arm` until `open` (a real thread
/// block, as a slow fan-out would be).
#[derive(Debug, Clone)]
struct BlockingTransport {
    inner: InProcessTransport,
    gate: Arc<(Mutex<GateState>, Condvar)>,
    entered: Arc<Mutex<Option<std_mpsc::Sender<()>>>>,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    open: bool,
}

impl BlockingTransport {
    fn new() -> (Self, std_mpsc::Receiver<()>) {
        let (tx, rx) = std_mpsc::channel();
        let t = Self {
            inner: InProcessTransport::new(),
            gate: Arc::default(),
            entered: Arc::new(Mutex::new(Some(tx))),
        };
        (t, rx)
    }
    fn arm(&self) {
        self.gate.0.lock().unwrap().armed = true;
    }
    fn open(&self) {
        let (m, cv) = &*self.gate;
        m.lock().unwrap().open = true;
        cv.notify_all();
    }
}

impl PubSubTransport for BlockingTransport {
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError> {
        let (m, cv) = &*self.gate;
        let mut st = m.lock().unwrap();
        if st.armed {
            st.armed = false;
            if let Some(tx) = self.entered.lock().unwrap().as_ref() {
                let _ = tx.send(());
            }
            while !st.open {
                st = cv.wait(st).unwrap();
            }
        }
        drop(st);
        self.inner.publish(message)
    }
    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
        subscriber: Subscriber,
    ) -> Result<Membership, TransportError> {
        self.inner.subscribe(channel, selector, subscriber)
    }
    fn delete_channel(&self, channel: &str) -> bool {
        self.inner.delete_channel(channel)
    }
    fn lag_all(&self, missed: u64) -> u64 {
        self.inner.lag_all(missed)
    }
    fn channels(&self) -> Vec<String> {
        self.inner.channels()
    }
    fn subscriptions(&self) -> usize {
        self.inner.subscriptions()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_one_off_being_delivered_waits_then_is_5040() {
    let clock = clock();
    let (transport, entered) = BlockingTransport::new();
    let engine = builder(&clock).transport(transport.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let s = publish_with(&engine, "c", json!("x"), at(T0 + 10))
        .await
        .unwrap();
    engine.settle().await;
    transport.arm();
    clock.advance(std::time::Duration::from_millis(10));
    tokio::task::spawn_blocking(move || entered.recv().unwrap())
        .await
        .unwrap();

    let canceller = {
        let (engine, id) = (engine.clone(), s.message_id.clone());
        tokio::spawn(async move { engine.cancel(&id).await })
    };
    let_others_run().await;
    assert!(
        !canceller.is_finished(),
        "cancel waits while the run is being delivered"
    );
    transport.open();
    let err = canceller
        .await
        .unwrap()
        .expect_err("a delivered one-off cannot be cancelled");
    assert_eq!(err.code(), 5040);
    engine.settle().await;
    assert_eq!(drain_messages(&mut sub), [json!("x")]);
    assert_status(&engine, &s.message_id, PublishStatus::Published, 1).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_repeating_message_being_delivered_stops_the_rest() {
    let clock = clock();
    let (transport, entered) = BlockingTransport::new();
    let engine = builder(&clock).transport(transport.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let s = publish_with(&engine, "c", json!("r"), every(1, Some(T0 + 1_000), None))
        .await
        .unwrap();
    engine.settle().await;
    transport.arm();
    clock.advance(std::time::Duration::from_millis(1_000));
    tokio::task::spawn_blocking(move || entered.recv().unwrap())
        .await
        .unwrap();

    let canceller = {
        let (engine, id) = (engine.clone(), s.message_id.clone());
        tokio::spawn(async move { engine.cancel(&id).await })
    };
    let_others_run().await;
    assert!(
        !canceller.is_finished(),
        "cancel waits while the run is being delivered"
    );
    transport.open();
    let status = canceller
        .await
        .unwrap()
        .expect("a repeating message is cancellable");
    assert_eq!(status.status, PublishStatus::Cancelled);
    engine.settle().await;
    assert_eq!(
        drain_messages(&mut sub),
        [json!("r")],
        "the run in flight was delivered before the cancel"
    );
    for _ in 0..5 {
        step(&engine, &clock, 1_000).await;
    }
    assert!(sub.try_recv().is_none(), "no run after cancel");
    assert_status(&engine, &s.message_id, PublishStatus::Cancelled, 1).await;
    engine.shutdown().await;
}
