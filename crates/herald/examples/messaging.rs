//! Herald's engine on the real clock: immediate, delayed, repeating, cron and
//! cancelled messages, two subscribers (one with a selector), statuses at the
//! end. Runs for about 8 seconds.
//!
//! ```sh
//! cargo run --release -p herald --example messaging
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use herald::{DeliveryOptions, Engine, Error, PublishOptions, PublishRequest, Subscription};
use serde_json::json;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

async fn print_all(name: &'static str, mut sub: Subscription) -> u64 {
    let mut n = 0;
    while let Some(item) = sub.recv().await {
        match item {
            Ok(m) => {
                n += 1;
                let due = m
                    .publish_at()
                    .map_or(m.timestamp_millis() as i64, |t| t.timestamp_millis());
                println!(
                    "{name:>8} got {:<28} id {}  headers {:?}  fired {:+} ms vs publishAt",
                    m.message().to_string(),
                    &m.message_id().to_string()[..13],
                    m.headers(),
                    m.timestamp_millis() as i64 - due,
                );
            }
            Err(lagged) => println!("{name:>8} {lagged}"),
        }
    }
    n
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let engine = Engine::builder().build();
    let all = tokio::spawn(print_all("all", engine.subscribe("news", None)?));
    let urgent = tokio::spawn(print_all(
        "urgent",
        engine.subscribe("news", Some("priority >= 5 AND region IN ('EU', 'UK')"))?,
    ));

    let t0 = now_ms();
    let headers = |p: u32, r: &str| PublishOptions {
        publisher_id: Some("example".into()),
        headers: [
            ("priority".to_string(), p.to_string()),
            ("region".to_string(), r.to_string()),
        ]
        .into(),
        subtopic: None,
    };

    // Now, to both subscribers (priority 7 in the EU matches the selector).
    let s = engine
        .publish(
            "news",
            json!("breaking: now").into(),
            headers(7, "EU"),
            DeliveryOptions::default(),
        )
        .await?;
    println!("publish now        -> {} {}", s.status, s.message_id);

    // In 1.5 s; only "all" (priority 1).
    let delayed = DeliveryOptions {
        publish_at: at(t0 + 1_500),
        ..Default::default()
    };
    let s = engine
        .publish(
            "news",
            json!("delayed 1.5 s").into(),
            headers(1, "EU"),
            delayed,
        )
        .await?;
    println!("publish +1.5 s     -> {} {}", s.status, s.message_id);

    // Every second until +4 s: five runs under one id.
    let repeat = DeliveryOptions {
        publish_at: at(t0 + 1_000),
        repeat_every: Some(TimeDelta::seconds(1)),
        repeat_expires_at: at(t0 + 5_000),
        ..Default::default()
    };
    let repeating = engine
        .publish(
            "news",
            json!("every second").into(),
            headers(9, "UK"),
            repeat,
        )
        .await?;
    println!(
        "publish repeating  -> {} {}",
        repeating.status, repeating.message_id
    );

    // The Backendless wire form works too: cron every 2 s, in Berlin time.
    let body = json!({"message": "cron */2", "repeatCron": "*/2 * * * * *", "timeZone": "Europe/Berlin",
                      "repeatExpiresAt": t0 + 7_000, "headers": {"priority": 2}});
    let cron = engine
        .publish_request("news", PublishRequest::from_json(&body)?)
        .await?;
    println!("publish cron       -> {} {}", cron.status, cron.message_id);

    // Scheduled for +3 s, cancelled before.
    let doomed = DeliveryOptions {
        publish_at: at(t0 + 3_000),
        ..Default::default()
    };
    let doomed = engine
        .publish("news", json!("never seen").into(), headers(9, "EU"), doomed)
        .await?;
    let s = engine.cancel(&doomed.message_id).await?;
    println!("cancel             -> {}", s.status);
    let again = engine.cancel(&doomed.message_id).await.unwrap_err();
    println!("cancel again       -> error {}: {}", again.code(), again);

    // A bad request is refused with its Backendless code, and nothing is stored.
    let bad = DeliveryOptions {
        publish_at: at(t0 - 86_400_000),
        ..Default::default()
    };
    let err = engine
        .publish("news", json!("late").into(), PublishOptions::default(), bad)
        .await
        .unwrap_err();
    println!("publish a day ago  -> error {}: {}", err.code(), err);

    tokio::time::sleep(Duration::from_millis(7_500)).await;
    for (what, id) in [
        ("repeating", &repeating.message_id),
        ("cron", &cron.message_id),
        ("cancelled", &doomed.message_id),
    ] {
        let s = engine.message_status(id).await?;
        println!(
            "status {what:<10} -> {} (runs {}, pub/sub deliveries {})",
            s.status, s.deliveries.runs, s.deliveries.pubsub
        );
    }
    engine.shutdown().await;
    let (all, urgent) = (all.await.unwrap_or(0), urgent.await.unwrap_or(0));
    println!("subscriber 'all' received {all}, 'urgent' received {urgent}");
    Ok(())
}
