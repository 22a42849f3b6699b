//! What a `PgStore` keeps: messages (every state, counters, errors),
//! idempotency keys, push jobs and their retries, devices and templates
//! survive dropping the store and connecting again to the same schema;
//! connecting again applies no migration.

mod support;

use herald::{
    Checkpoint, Claim, Completion, DeliveryCounts, DeviceRegistry, IdempotencyKey, JobKey, Next,
    PushRetry, RunState, Start, Store, TemplateStore,
};
use herald_core::Tick;
use herald_testkit::registry_conformance::device;
use herald_testkit::store_conformance::{envelope, id, small_envelope};
use support::{CloseNow, Scratch};

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reconnect() {
    let Some(s) = Scratch::new("restart").await else {
        return;
    };
    assert_eq!(
        s.store.migrations_applied(),
        [1, 2, 3, 4],
        "a fresh schema is migrated"
    );

    // Messages: scheduled, firing, published with counters, failed.
    s.insert(envelope(1), Start::At(t(5_000))).await.unwrap();
    for n in 2..=4 {
        s.insert(small_envelope(n), Start::At(t(100)))
            .await
            .unwrap();
    }
    let claimed = s
        .claim(
            (2..=4)
                .map(|n| Claim {
                    id: id(n),
                    due: t(100),
                })
                .collect(),
            t(9_000),
        )
        .await
        .unwrap();
    let tokens: Vec<_> = claimed.iter().map(|c| c.as_ref().unwrap().token).collect();
    let counts = DeliveryCounts::from_array([1, 2, 3, 4, 5, 6, 70]);
    let done = s
        .complete(vec![
            Completion {
                id: id(3),
                token: tokens[1],
                counts,
                next: Next::Done,
            },
            Completion {
                id: id(4),
                token: tokens[2],
                counts: DeliveryCounts::default(),
                next: Next::Failed("gone ✗".into()),
            },
        ])
        .await
        .unwrap();
    assert_eq!(done, [true, true]);
    let key = IdempotencyKey {
        key: "k-1".into(),
        fingerprint: u128::MAX - 1,
        expires_at: t(90_000),
    };
    s.insert_idempotent(small_envelope(5), Start::At(t(700)), key.clone())
        .await
        .unwrap();

    // Push jobs with a cursor and retries; devices; templates.
    s.add_push_jobs(vec![JobKey {
        message: id(3),
        run: t(100),
    }])
    .await
    .unwrap();
    let job = s
        .claim_push_jobs(t(0), t(1_000), 10)
        .await
        .unwrap()
        .remove(0);
    let mut cp = Checkpoint::of(&job, t(1_000));
    cp.cursor = Some("dev-m".into());
    cp.handed = 12;
    cp.retries = vec![PushRetry {
        device_id: "dev-a".into(),
        attempts: 2,
        due: t(400),
    }];
    assert_eq!(s.checkpoint_push(vec![cp]).await.unwrap(), [true]);
    let phone = device("phone-1", &["a", "b"], 77);
    s.register(phone.clone()).await.unwrap();
    let template = herald::PushTemplate::from_json(&serde_json::json!({
        "name": "welcome",
        "message": "Hallo {name|Freund}",
        "title": "Hi ✓",
        "headers": {"ios-badge": "1"},
        "audience": {"os": ["IOS"], "channel": "news"}
    }))
    .unwrap();
    s.put_template(template.clone()).await.unwrap();

    let before: Vec<_> = futures_records(&s.store).await;
    s.store.close_now();
    assert!(
        matches!(s.get(id(1)).await, Err(herald::StoreError::Closed)),
        "a closed store says so"
    );
    assert!(matches!(
        s.insert(small_envelope(9), Start::At(t(1))).await,
        Err(herald::StoreError::Closed)
    ));

    let again = s.reconnect().await;
    assert!(
        again.migrations_applied().is_empty(),
        "applying twice changes nothing"
    );
    assert_eq!(futures_records(&again).await, before, "records survive");
    let r = again.get(id(2)).await.unwrap().unwrap();
    assert_eq!(
        r.state,
        RunState::Firing {
            due: t(100),
            lease_until: t(9_000),
            token: tokens[0]
        }
    );
    let r3 = again.get(id(3)).await.unwrap().unwrap();
    assert_eq!((r3.state, r3.counts), (RunState::Published, counts));
    assert_eq!(
        again.get(id(4)).await.unwrap().unwrap().error.as_deref(),
        Some("gone ✗")
    );
    let k = again
        .idempotency_key("k-1")
        .await
        .unwrap()
        .expect("key kept");
    assert_eq!(
        (k.id, k.fingerprint, k.expires_at),
        (id(5), u128::MAX - 1, t(90_000))
    );
    let pending = again.pending(None, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id).collect::<Vec<_>>(),
        [id(1), id(5)]
    );

    // The firing run completes under its token after the restart.
    let applied = again
        .complete(vec![Completion {
            id: id(2),
            token: tokens[0],
            counts: DeliveryCounts::default(),
            next: Next::Done,
        }])
        .await
        .unwrap();
    assert_eq!(applied, [true], "a claim survives a restart");

    // The push job, reclaimed after its lease, resumes at its cursor.
    let resumed = again.claim_push_jobs(t(1_000), t(2_000), 10).await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        (resumed[0].cursor.as_deref(), resumed[0].handed),
        (Some("dev-m"), 12)
    );
    assert!(resumed[0].token > job.token, "a new claim, a later token");
    let retries = again.push_retries(job.key, 10).await.unwrap();
    assert_eq!(
        retries,
        [PushRetry {
            device_id: "dev-a".into(),
            attempts: 2,
            due: t(400)
        }]
    );

    assert_eq!(
        again.device("phone-1").await.unwrap().as_deref(),
        Some(&phone)
    );
    let page = again.channel_devices("b", None, 10).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|d| d.device_id.as_str())
            .collect::<Vec<_>>(),
        ["phone-1"]
    );
    assert_eq!(
        again.template("welcome").await.unwrap().as_deref(),
        Some(&template)
    );
    again.close_now();
}

/// Every record, in id order.
async fn futures_records(store: &herald_postgres::PgStore) -> Vec<herald::Record> {
    let mut out = Vec::new();
    for n in 1..=5 {
        out.push(store.get(id(n)).await.unwrap().expect("stored"));
    }
    out
}
