//! The `herald` engine with its defaults (`MemoryStore`, `InProcessTransport`,
//! `SystemClock`) on a current-thread tokio runtime, one operation at a time.
//!
//! * `publish/immediate`: an immediate publish to a channel with one
//!   subscription, which is drained with `try_recv` outside the timing.
//! * `publish/scheduled`: a publish with `publishAt` in the next hour (into
//!   the store and the wheel; nothing fires during the bench).
//! * `fanout/<N>`: one immediate publish to a channel with N subscriptions
//!   (the transport appends to every buffer inside the call); each
//!   subscription is drained and checked with `try_recv` outside the timing.
//! * `subscription/recv`: `recv().await` of a buffered run; the runs are
//!   published 1024 at a time outside the timing.
//!
//! Each timed batch gets a fresh engine (built and torn down untimed), so the
//! store and the wheel hold at most one batch.
//!
//! ```text
//! cargo bench -p herald-benches --bench engine
//! cargo bench -p herald-benches --bench engine -- fanout/100000
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald::{DeliveryOptions, Engine, InboxLimits, PublishOptions, Subscription};
use serde_json::Value;
use tokio::runtime::Runtime;

/// Operations per engine: later ones get a fresh engine.
const BATCH: u64 = 100_000;
/// Runs buffered per subscription: more than a batch.
const CAPACITY: usize = 1 << 17;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A started engine (its driver has loaded the store).
async fn engine() -> Engine {
    let engine = Engine::builder()
        .subscription_limits(InboxLimits::messages(CAPACITY))
        .build();
    engine.settle().await;
    engine
}

async fn publish_now(engine: &Engine, channel: &str, body: u64) -> u64 {
    engine
        .publish(
            channel,
            Value::from(body).into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .expect("publish")
        .deliveries
        .pubsub
}

fn drain_one(sub: &mut Subscription) {
    match sub.try_recv() {
        Some(Ok(m)) => {
            black_box(m);
        }
        other => panic!("expected one run, got {other:?}"),
    }
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("immediate", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(BATCH);
                    let engine = engine().await;
                    let mut sub = engine.subscribe("bench", None).expect("subscribe");
                    let t = Instant::now();
                    for i in 0..k {
                        black_box(publish_now(&engine, "bench", i).await);
                    }
                    total += t.elapsed();
                    for _ in 0..k {
                        drain_one(&mut sub);
                    }
                    engine.shutdown().await;
                    left -= k;
                }
                total
            })
        });
    });

    g.bench_function("scheduled", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(BATCH);
                    let engine = engine().await;
                    let now = engine.clock().now().as_millis() as i64;
                    // Deadlines spread over the next hour, 1 ms apart-ish.
                    let at: Vec<_> = (0..k as i64)
                        .map(|i| {
                            chrono::DateTime::from_timestamp_millis(
                                now + 60_000 + (i * 7_919) % 3_600_000,
                            )
                        })
                        .collect();
                    let t = Instant::now();
                    for (i, &publish_at) in at.iter().enumerate() {
                        let delivery = DeliveryOptions {
                            publish_at,
                            ..DeliveryOptions::default()
                        };
                        black_box(
                            engine
                                .publish(
                                    "bench",
                                    Value::from(i as u64).into(),
                                    PublishOptions::default(),
                                    delivery,
                                )
                                .await
                                .expect("publish"),
                        );
                    }
                    total += t.elapsed();
                    assert_eq!(engine.scheduled_len(), k as usize);
                    engine.shutdown().await;
                    left -= k;
                }
                total
            })
        });
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("fanout");
    for n in [1_000_usize, 10_000, 100_000] {
        g.throughput(Throughput::Elements(n as u64))
            .measurement_time(Duration::from_secs(3))
            .sample_size(if n >= 100_000 { 10 } else { 30 });
        let (engine, mut subs) = rt.block_on(async {
            let engine = engine().await;
            let subs: Vec<Subscription> = (0..n)
                .map(|_| engine.subscribe("fanout", None).expect("subscribe"))
                .collect();
            (engine, subs)
        });
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let t = Instant::now();
                        let delivered = publish_now(&engine, "fanout", i).await;
                        total += t.elapsed();
                        assert_eq!(delivered, n as u64);
                        subs.iter_mut().for_each(drain_one);
                    }
                    total
                })
            });
        });
        rt.block_on(engine.shutdown());
    }
    g.finish();
}

fn subscription(c: &mut Criterion) {
    const CHUNK: u64 = 1024;
    let rt = runtime();
    let mut g = c.benchmark_group("subscription");
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(3));
    let (engine, mut sub) = rt.block_on(async {
        let engine = engine().await;
        let sub = engine.subscribe("recv", None).expect("subscribe");
        (engine, sub)
    });
    g.bench_function("recv", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(CHUNK);
                    for i in 0..k {
                        publish_now(&engine, "recv", i).await;
                    }
                    let t = Instant::now();
                    for _ in 0..k {
                        black_box(sub.recv().await.expect("open").expect("no lag"));
                    }
                    total += t.elapsed();
                    left -= k;
                }
                total
            })
        });
    });
    g.finish();
    rt.block_on(engine.shutdown());
}

criterion_group!(benches, publish, fanout, subscription);
criterion_main!(benches);
