//! The [`Store`] conformance suite: each `pub async fn` here takes a fresh,
//! empty store and panics (with a message naming the rule) if the store
//! breaks its contract. [`store_conformance_tests!`](crate::store_conformance_tests)
//! runs every check as its own test.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use herald::{
    Amendment, Body, CancelOutcome, Claim, Claimed, Completion, DeliveryCounts, DeliveryOptions,
    DeliveryPlan, DueRun, Envelope, FencingToken, IdempotencyKey, Inserted, KeyRecord, Lease,
    MessageId, Next, PublishOptions, PublishPolicy, PublishStatus, PushBroadcast, Record, RunState,
    Start, Store, StoreError,
};
use herald_core::Tick;

/// Generates one `#[tokio::test]` per conformance check, each on a fresh
/// store made by the given expression (an `async` block evaluating to the
/// store).
///
/// `(optional $make)`: the expression evaluates to an `Option` of it, and
/// `None` ends each test at once, passing (for a store that needs a
/// service the environment may lack; the caller prints the one `SKIPPED:`
/// line).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            insert_then_get_round_trips_everything,
            get_of_unknown_id_is_none,
            duplicate_insert_is_rejected_and_changes_nothing,
            a_claimed_insert_is_firing_under_its_token,
            claim_takes_a_scheduled_run_exactly_once,
            claim_needs_the_exact_due,
            claim_skips_cancelled_and_finished,
            claim_answers_in_order_for_a_batch,
            every_claim_gets_a_fresh_token,
            complete_reschedules_publishes_or_fails,
            complete_with_a_stale_token_changes_nothing,
            complete_after_cancel_keeps_cancelled_and_adds_counters,
            renew_extends_only_current_leases,
            cancel_outcomes,
            amend_adds_counters_in_any_state_and_fails_published,
            pending_pages_scheduled_runs_in_id_order,
            release_expired_returns_runs_to_scheduled,
            concurrent_claims_hand_a_run_to_one_caller,
            an_idempotency_key_is_recorded_with_its_message,
            a_claimed_insert_with_a_key_answers_published,
            an_expired_key_is_recorded_anew,
            a_duplicate_id_records_no_key,
            racing_inserts_with_one_key_store_one_message,
        );
    };
    (optional $make:expr) => {
        $crate::store_conformance_tests!(@each_optional $make;
            insert_then_get_round_trips_everything,
            get_of_unknown_id_is_none,
            duplicate_insert_is_rejected_and_changes_nothing,
            a_claimed_insert_is_firing_under_its_token,
            claim_takes_a_scheduled_run_exactly_once,
            claim_needs_the_exact_due,
            claim_skips_cancelled_and_finished,
            claim_answers_in_order_for_a_batch,
            every_claim_gets_a_fresh_token,
            complete_reschedules_publishes_or_fails,
            complete_with_a_stale_token_changes_nothing,
            complete_after_cancel_keeps_cancelled_and_adds_counters,
            renew_extends_only_current_leases,
            cancel_outcomes,
            amend_adds_counters_in_any_state_and_fails_published,
            pending_pages_scheduled_runs_in_id_order,
            release_expired_returns_runs_to_scheduled,
            concurrent_claims_hand_a_run_to_one_caller,
            an_idempotency_key_is_recorded_with_its_message,
            a_claimed_insert_with_a_key_answers_published,
            an_expired_key_is_recorded_anew,
            a_duplicate_id_records_no_key,
            racing_inserts_with_one_key_store_one_message,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $make.await;
                $crate::store_conformance::$check(store).await;
            }
        )*
    };
    (@each_optional $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(store) = $make.await else {
                    return;
                };
                $crate::store_conformance::$check(store).await;
            }
        )*
    };
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// An id whose order follows `n`.
pub fn id(n: u128) -> MessageId {
    MessageId::from_u128((0x0190_0000_0000_7000_8000_0000_0000_0000) + (n << 64) + n)
}

/// A fully populated envelope (every option set, unicode, nested JSON kept
/// as its exact bytes), so a store that drops or mangles a field fails the
/// round trip.
pub fn envelope(n: u128) -> Arc<Envelope> {
    let mut headers = BTreeMap::new();
    headers.insert("city".to_owned(), "Zürich ✓".to_owned());
    headers.insert("n".to_owned(), "20".to_owned());
    headers.insert("quote's".to_owned(), "a \"b\" \\ c".to_owned());
    let plan = DeliveryPlan::new(DeliveryOptions {
        publish_policy: PublishPolicy::Both,
        push_broadcast: Some(PushBroadcast::IOS | PushBroadcast::OSX),
        push_singlecast: vec!["dev-1".to_owned(), "dev-2".to_owned()],
        segment_query: Some("os = 'IOS'".to_owned()),
        publish_at: DateTime::from_timestamp_millis(1_900_000_000_123),
        repeat_every: None,
        repeat_expires_at: DateTime::from_timestamp_millis(1_900_000_999_000),
        repeat_cron: Some("0 30 9 * * Mon-Fri".to_owned()),
        time_zone: Some("Europe/Berlin".to_owned()),
        push_time_to_live: Some(3_600),
        push_collapse_key: Some("score-42".to_owned()),
        push_throttle_per_minute: Some(600),
    })
    .expect("a valid plan");
    Arc::new(Envelope {
        template: Some(Arc::new(herald::TemplateSend {
            name: "welcome ✓".to_owned(),
            message: "Hallo {firstName|Freund}".to_owned(),
            title: "{{t}}".to_owned(),
            subtitle: String::new(),
            headers: BTreeMap::from([("ios-badge".to_owned(), "{n|1}".to_owned())]),
            values: BTreeMap::from([("n".to_owned(), "7".to_owned())]),
        })),
        id: id(n),
        channel: format!("chan-{n}-ünï"),
        accepted_at: t(1_899_999_999_000),
        publish: PublishOptions {
            publisher_id: Some("pub-1".to_owned()),
            headers,
            subtopic: Some("sub".to_owned()),
        },
        plan: Arc::new(plan),
        body: Body::from_json(&format!(
            r#"{{"text": "héllo", "n": {n}, "list": [1, 2.5, null, true], "deep": {{"x": {{"y": "z"}}}}}}"#
        ))
        .expect("valid JSON"),
    })
}

/// A plain envelope for bulk checks.
pub fn small_envelope(n: u128) -> Arc<Envelope> {
    Arc::new(Envelope {
        template: None,
        id: id(n),
        channel: "default".to_owned(),
        accepted_at: t(1_000),
        publish: PublishOptions::default(),
        plan: Arc::new(DeliveryPlan::default()),
        body: Body::from(serde_json::Value::from(n as u64)),
    })
}

/// Inserts `small_envelope(n)` scheduled at `due`.
pub(crate) async fn insert_at<S: Store>(store: &S, n: u128, due: u64) {
    let token = store
        .insert(small_envelope(n), Start::At(t(due)))
        .await
        .expect("insert");
    assert_eq!(token, None, "a scheduled insert has no claim");
}

/// Claims message `n`'s run at `due` with a lease until `lease`.
pub(crate) async fn claim1<S: Store>(store: &S, n: u128, due: u64, lease: u64) -> Option<Claimed> {
    let mut got = store
        .claim(
            vec![Claim {
                id: id(n),
                due: t(due),
            }],
            t(lease),
        )
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "one answer per claim");
    got.pop().expect("one answer")
}

/// Completes message `n`'s claim `token`; whether it applied.
pub(crate) async fn complete1<S: Store>(
    store: &S,
    n: u128,
    token: FencingToken,
    counts: DeliveryCounts,
    next: Next,
) -> bool {
    let got = store
        .complete(vec![Completion {
            id: id(n),
            token,
            counts,
            next,
        }])
        .await
        .expect("complete");
    assert_eq!(got.len(), 1, "one answer per completion");
    got[0]
}

async fn record_of<S: Store>(store: &S, n: u128) -> Record {
    store
        .get(id(n))
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("record {n} vanished"))
}

async fn state_of<S: Store>(store: &S, n: u128) -> RunState {
    record_of(store, n).await.state
}

pub(crate) fn one(runs: u64, pubsub: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs,
        pubsub,
        ..DeliveryCounts::default()
    }
}

fn every_counter() -> DeliveryCounts {
    DeliveryCounts::from_array([1, 2, 3, 4, 5, 6, 700])
}

/// `insert` then `get` returns the message unchanged: every envelope field
/// (the body's exact bytes), scheduled at its due, no counters, no error.
pub async fn insert_then_get_round_trips_everything<S: Store>(store: S) {
    let e = envelope(1);
    let token = store
        .insert(e.clone(), Start::At(t(1_900_000_000_123)))
        .await
        .expect("insert");
    assert_eq!(token, None);
    let got = store
        .get(id(1))
        .await
        .expect("get")
        .expect("stored record is found");
    assert_eq!(
        got,
        Record {
            envelope: e.clone(),
            state: RunState::Scheduled {
                due: t(1_900_000_000_123)
            },
            counts: DeliveryCounts::default(),
            error: None,
        },
        "a stored record must come back unchanged"
    );
    assert_eq!(got.envelope.body.get(), e.body.get(), "the body's bytes");
    assert!(got.envelope.plan.segment().is_some(), "the plan is parsed");
    assert!(got.envelope.plan.is_repeating());
}

/// `get` of an id never stored is `None`.
pub async fn get_of_unknown_id_is_none<S: Store>(store: S) {
    assert!(store.get(id(42)).await.expect("get").is_none());
    insert_at(&store, 1, 10).await;
    assert!(store.get(id(42)).await.expect("get").is_none());
}

/// A second `insert` of the same id is `Duplicate` and leaves the first.
pub async fn duplicate_insert_is_rejected_and_changes_nothing<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    for start in [
        Start::At(t(99)),
        Start::Claimed {
            due: t(5),
            lease_until: t(50),
        },
    ] {
        let err = store
            .insert(small_envelope(1), start)
            .await
            .expect_err("duplicate insert must fail");
        assert!(
            matches!(err, StoreError::Duplicate(d) if d == id(1)),
            "got {err:?}"
        );
        assert!(!err.is_retryable(), "a duplicate stays a duplicate");
    }
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// A claimed insert (an immediate publish) is `Firing` under the token it
/// returns, and completes like any claim.
pub async fn a_claimed_insert_is_firing_under_its_token<S: Store>(store: S) {
    let token = store
        .insert(
            small_envelope(1),
            Start::Claimed {
                due: t(10),
                lease_until: t(60),
            },
        )
        .await
        .expect("insert")
        .expect("a claimed insert returns its token");
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(60),
            token
        }
    );
    assert!(store.pending(None, 10).await.expect("pending").is_empty());
    assert!(complete1(&store, 1, token, one(1, 2), Next::Done).await);
    let r = record_of(&store, 1).await;
    assert_eq!((r.state, r.counts), (RunState::Published, one(1, 2)));
}

/// A scheduled run is claimed once: `Firing` with the lease and a token,
/// envelope returned; a second claim gets `None`.
pub async fn claim_takes_a_scheduled_run_exactly_once<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    let c = claim1(&store, 1, 10, 500).await.expect("claimed");
    assert_eq!(c.envelope, small_envelope(1), "claim returns the envelope");
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(500),
            token: c.token
        }
    );
    assert!(
        claim1(&store, 1, 10, 900).await.is_none(),
        "a run must not be claimed twice"
    );
}

/// A claim for a different due (a stale wheel entry) gets `None`.
pub async fn claim_needs_the_exact_due<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    assert!(claim1(&store, 1, 11, 500).await.is_none());
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// Cancelled, published and unknown messages are not claimed.
pub async fn claim_skips_cancelled_and_finished<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    insert_at(&store, 2, 10).await;
    assert!(matches!(
        store.cancel(id(1)).await.expect("cancel"),
        CancelOutcome::Cancelled(_)
    ));
    let c = claim1(&store, 2, 10, 50).await.expect("claimed");
    assert!(complete1(&store, 2, c.token, one(1, 0), Next::Done).await);
    let got = store
        .claim(
            (1..=3)
                .map(|n| Claim {
                    id: id(n),
                    due: t(10),
                })
                .collect(),
            t(50),
        )
        .await
        .expect("claim");
    assert_eq!(got, vec![None, None, None]);
    assert_eq!(state_of(&store, 1).await, RunState::Cancelled);
    assert_eq!(state_of(&store, 2).await, RunState::Published);
}

/// A batch claim answers position by position; an id twice in one batch is
/// claimed once.
pub async fn claim_answers_in_order_for_a_batch<S: Store>(store: S) {
    for n in 1..=5 {
        insert_at(&store, n, 100 + n as u64).await;
    }
    let claims = vec![
        Claim {
            id: id(3),
            due: t(103),
        },
        Claim {
            id: id(1),
            due: t(999),
        },
        Claim {
            id: id(5),
            due: t(105),
        },
        Claim {
            id: id(9),
            due: t(109),
        },
        Claim {
            id: id(2),
            due: t(102),
        },
        Claim {
            id: id(3),
            due: t(103),
        },
    ];
    let got = store.claim(claims, t(1_000)).await.expect("claim");
    let ids: Vec<Option<MessageId>> = got
        .iter()
        .map(|c| c.as_ref().map(|c| c.envelope.id))
        .collect();
    assert_eq!(
        ids,
        vec![Some(id(3)), None, Some(id(5)), None, Some(id(2)), None]
    );
}

/// Every claim gets a token never given for that message before: after a
/// release the next claim's token differs, and tokens of different claims
/// differ.
pub async fn every_claim_gets_a_fresh_token<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    insert_at(&store, 2, 10).await;
    let mut seen = Vec::new();
    for round in 0..3u64 {
        let a = claim1(&store, 1, 10, 100 + round).await.expect("claimed");
        let b = claim1(&store, 2, 10, 100 + round).await.expect("claimed");
        assert_ne!(a.token, b.token);
        seen.extend([a.token, b.token]);
        let released = store.release_expired(Tick::MAX).await.expect("release");
        assert_eq!(released.len(), 2);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no token given twice: {seen:?}");
}

/// `complete` with the current token adds counters and moves `Firing` to
/// `Scheduled { next }`, `Published` or `Failed` (with its error).
pub async fn complete_reschedules_publishes_or_fails<S: Store>(store: S) {
    for n in 1..=3 {
        insert_at(&store, n, 10).await;
    }
    let claimed = store
        .claim(
            (1..=3)
                .map(|n| Claim {
                    id: id(n),
                    due: t(10),
                })
                .collect(),
            t(100),
        )
        .await
        .expect("claim");
    let tokens: Vec<FencingToken> = claimed
        .iter()
        .map(|c| c.as_ref().expect("claimed").token)
        .collect();
    let applied = store
        .complete(vec![
            Completion {
                id: id(1),
                token: tokens[0],
                counts: one(1, 4),
                next: Next::At(t(20)),
            },
            Completion {
                id: id(2),
                token: tokens[1],
                counts: every_counter(),
                next: Next::Done,
            },
            Completion {
                id: id(3),
                token: tokens[2],
                counts: one(1, 0),
                next: Next::Failed("boom ✗".into()),
            },
            Completion {
                id: id(77),
                token: tokens[0],
                counts: one(1, 0),
                next: Next::Done,
            },
        ])
        .await
        .expect("complete");
    assert_eq!(applied, vec![true, true, true, false]);
    let r1 = record_of(&store, 1).await;
    assert_eq!(r1.state, RunState::Scheduled { due: t(20) });
    assert_eq!(r1.counts, one(1, 4));
    let r2 = record_of(&store, 2).await;
    assert_eq!(
        (r2.state, r2.counts),
        (RunState::Published, every_counter())
    );
    let r3 = record_of(&store, 3).await;
    assert_eq!(r3.state, RunState::Failed);
    assert_eq!(r3.error.as_deref(), Some("boom ✗"));
    assert_eq!(r3.status().error_message.as_deref(), Some("boom ✗"));
    assert!(
        store.get(id(77)).await.expect("get").is_none(),
        "completion of an unknown id creates nothing"
    );
    assert!(
        !complete1(&store, 2, tokens[1], one(1, 0), Next::Done).await,
        "a completion applies once"
    );

    // The rescheduled run is claimable at its new due, and counters add up.
    let c = claim1(&store, 1, 20, 200).await.expect("claimed");
    assert!(complete1(&store, 1, c.token, one(1, 4), Next::Done).await);
    let r1 = record_of(&store, 1).await;
    assert_eq!((r1.state, r1.counts), (RunState::Published, one(2, 8)));
}

/// A completion under a released claim's token changes nothing: the run
/// stays scheduled to be delivered again, and the next claim's completion
/// is the one that counts.
pub async fn complete_with_a_stale_token_changes_nothing<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    let old = claim1(&store, 1, 10, 100).await.expect("claimed");
    let released = store.release_expired(t(101)).await.expect("release");
    assert_eq!(
        released,
        vec![DueRun {
            id: id(1),
            due: t(10)
        }]
    );
    assert!(!complete1(&store, 1, old.token, one(1, 1), Next::Done).await);
    let r = record_of(&store, 1).await;
    assert_eq!(
        (r.state, r.counts),
        (
            RunState::Scheduled { due: t(10) },
            DeliveryCounts::default()
        ),
        "the released run must be delivered again, uncounted"
    );
    let new = claim1(&store, 1, 10, 300).await.expect("claimed again");
    assert!(!complete1(&store, 1, old.token, one(1, 1), Next::Done).await);
    assert!(matches!(state_of(&store, 1).await, RunState::Firing { .. }));
    assert!(complete1(&store, 1, new.token, one(1, 1), Next::Done).await);
    assert_eq!(state_of(&store, 1).await, RunState::Published);
}

/// A message cancelled while firing stays cancelled; the interrupted run's
/// completion still adds its counters (once).
pub async fn complete_after_cancel_keeps_cancelled_and_adds_counters<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    let c = claim1(&store, 1, 10, 100).await.expect("claimed");
    let out = store.cancel(id(1)).await.expect("cancel");
    assert!(
        matches!(&out, CancelOutcome::Cancelled(r) if r.state == RunState::Cancelled),
        "{out:?}"
    );
    assert!(complete1(&store, 1, c.token, one(1, 3), Next::At(t(20))).await);
    assert!(
        !complete1(&store, 1, c.token, one(1, 3), Next::At(t(20))).await,
        "once"
    );
    let r = record_of(&store, 1).await;
    assert_eq!((r.state, r.counts), (RunState::Cancelled, one(1, 3)));
    assert!(store.pending(None, 10).await.expect("pending").is_empty());
    assert!(
        store
            .release_expired(Tick::MAX)
            .await
            .expect("release")
            .is_empty()
    );
}

/// `renew` extends a lease under its current token only.
pub async fn renew_extends_only_current_leases<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    insert_at(&store, 2, 10).await;
    let a = claim1(&store, 1, 10, 100).await.expect("claimed");
    let b = claim1(&store, 2, 10, 100).await.expect("claimed");
    let got = store
        .renew(
            vec![
                Lease {
                    id: id(1),
                    token: a.token,
                },
                Lease {
                    id: id(2),
                    token: a.token,
                },
                Lease {
                    id: id(3),
                    token: a.token,
                },
            ],
            t(500),
        )
        .await
        .expect("renew");
    assert_eq!(got, vec![true, false, false]);
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(500),
            token: a.token
        }
    );
    let released = store.release_expired(t(200)).await.expect("release");
    assert_eq!(
        released,
        vec![DueRun {
            id: id(2),
            due: t(10)
        }],
        "only the unrenewed lease"
    );
    let got = store
        .renew(
            vec![Lease {
                id: id(2),
                token: b.token,
            }],
            t(900),
        )
        .await
        .expect("renew");
    assert_eq!(got, vec![false], "a released claim cannot be renewed");
    assert_eq!(
        state_of(&store, 2).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// `cancel`: scheduled and firing become cancelled; finished ones report
/// `Finished`; unknown ids `NotFound`; a second cancel is `Finished`.
pub async fn cancel_outcomes<S: Store>(store: S) {
    for n in 1..=3 {
        insert_at(&store, n, 10).await;
    }
    claim1(&store, 2, 10, 100).await.expect("claimed");
    let c3 = claim1(&store, 3, 10, 100).await.expect("claimed");
    assert!(complete1(&store, 3, c3.token, one(1, 0), Next::Done).await);

    let c1 = store.cancel(id(1)).await.expect("cancel");
    assert!(
        matches!(&c1, CancelOutcome::Cancelled(r) if r.state == RunState::Cancelled && r.envelope.id == id(1)),
        "{c1:?}"
    );
    let c2 = store.cancel(id(2)).await.expect("cancel");
    assert!(
        matches!(&c2, CancelOutcome::Cancelled(_)),
        "firing is cancellable: {c2:?}"
    );
    let c3 = store.cancel(id(3)).await.expect("cancel");
    assert!(
        matches!(&c3, CancelOutcome::Finished(r) if r.state == RunState::Published),
        "{c3:?}"
    );
    let again = store.cancel(id(1)).await.expect("cancel");
    assert!(
        matches!(&again, CancelOutcome::Finished(r) if r.state == RunState::Cancelled),
        "{again:?}"
    );
    assert_eq!(
        store.cancel(id(99)).await.expect("cancel"),
        CancelOutcome::NotFound
    );
}

/// `amend` adds counters in any state, sets the error text, and with
/// `fail` moves `Published` (only) to `Failed`.
pub async fn amend_adds_counters_in_any_state_and_fails_published<S: Store>(store: S) {
    for n in 1..=4 {
        insert_at(&store, n, 10).await;
    }
    for n in [2, 3] {
        let c = claim1(&store, n, 10, 100).await.expect("claimed");
        assert!(complete1(&store, n, c.token, one(1, 1), Next::Done).await);
    }
    store.cancel(id(4)).await.expect("cancel");
    let push = DeliveryCounts {
        push_sent: 5,
        push_failed: 2,
        push_queued: 9,
        ..DeliveryCounts::default()
    };
    store
        .amend(vec![
            Amendment {
                id: id(1),
                counts: push,
                error: None,
                fail: true,
            },
            Amendment {
                id: id(2),
                counts: push,
                error: Some("no APNs gateway for 2 devices".into()),
                fail: false,
            },
            Amendment {
                id: id(3),
                counts: push,
                error: Some("APNs refused the credentials: InvalidProviderToken".into()),
                fail: true,
            },
            Amendment {
                id: id(4),
                counts: push,
                error: None,
                fail: true,
            },
            Amendment {
                id: id(99),
                counts: push,
                error: None,
                fail: true,
            },
        ])
        .await
        .expect("amend");
    let r1 = record_of(&store, 1).await;
    assert_eq!(
        (r1.state, r1.counts, r1.error),
        (RunState::Scheduled { due: t(10) }, push, None),
        "an unfinished message only counts"
    );
    let r2 = record_of(&store, 2).await;
    assert_eq!(r2.state, RunState::Published);
    assert_eq!(r2.counts.push_pending(), 2);
    assert_eq!(r2.counts.pubsub, 1, "added to what was there");
    assert_eq!(r2.error.as_deref(), Some("no APNs gateway for 2 devices"));
    let r3 = record_of(&store, 3).await;
    assert_eq!(r3.state, RunState::Failed);
    assert_eq!(
        r3.status().error_message.as_deref(),
        Some("APNs refused the credentials: InvalidProviderToken")
    );
    assert_eq!(
        state_of(&store, 4).await,
        RunState::Cancelled,
        "only Published fails"
    );
    assert!(store.get(id(99)).await.expect("get").is_none());
}

/// `pending` pages through scheduled runs by id: `(id, due)`, not claimed
/// or finished ones.
pub async fn pending_pages_scheduled_runs_in_id_order<S: Store>(store: S) {
    // Insert out of order; finish or claim some.
    for n in (1..=25u128).rev() {
        insert_at(&store, n, 1_000 + n as u64).await;
    }
    store.cancel(id(4)).await.expect("cancel");
    claim1(&store, 7, 1_007, 5_000).await.expect("claimed");
    let c8 = claim1(&store, 8, 1_008, 5_000).await.expect("claimed");
    assert!(complete1(&store, 8, c8.token, one(1, 0), Next::Done).await);
    let c9 = claim1(&store, 9, 1_009, 5_000).await.expect("claimed");
    assert!(complete1(&store, 9, c9.token, one(1, 0), Next::At(t(9_999))).await);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending(after, 10).await.expect("pending");
        assert!(page.len() <= 10, "limit respected");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id);
        seen.extend(page);
    }
    let want: Vec<DueRun> = (1..=25u128)
        .filter(|n| ![4, 7, 8].contains(n))
        .map(|n| DueRun {
            id: id(n),
            due: t(if n == 9 { 9_999 } else { 1_000 + n as u64 }),
        })
        .collect();
    assert_eq!(
        seen, want,
        "scheduled runs, in id order, each once, at their due"
    );
}

/// `release_expired` returns the runs whose lease ended before the bound
/// to `Scheduled`, and says which.
pub async fn release_expired_returns_runs_to_scheduled<S: Store>(store: S) {
    for n in 1..=3 {
        insert_at(&store, n, 10).await;
    }
    claim1(&store, 1, 10, 100).await.expect("claimed");
    let two = claim1(&store, 2, 10, 300).await.expect("claimed");
    assert!(
        store
            .release_expired(t(100))
            .await
            .expect("release")
            .is_empty(),
        "strictly before"
    );
    let released = store.release_expired(t(200)).await.expect("release");
    assert_eq!(
        released,
        vec![DueRun {
            id: id(1),
            due: t(10)
        }]
    );
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
    assert_eq!(
        state_of(&store, 2).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(300),
            token: two.token
        }
    );
    assert_eq!(
        state_of(&store, 3).await,
        RunState::Scheduled { due: t(10) }
    );
    // Released runs are claimable again.
    claim1(&store, 1, 10, 400).await.expect("claimable again");
    let mut all = store.release_expired(Tick::MAX).await.expect("release");
    all.sort_by_key(|r| r.id);
    assert_eq!(all.len(), 2);
    assert_eq!(store.pending(None, 10).await.expect("pending").len(), 3);
}

/// Eight tasks race to claim the same 200 runs: each run goes to exactly
/// one of them.
pub async fn concurrent_claims_hand_a_run_to_one_caller<S: Store>(store: S) {
    let store = Arc::new(store);
    for n in 1..=200 {
        insert_at(&*store, n, 10).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let claims = (1..=200)
                .map(|n| Claim {
                    id: id(n),
                    due: t(10),
                })
                .collect();
            let got = store.claim(claims, t(100)).await.expect("claim");
            got.iter()
                .flatten()
                .map(|c| c.envelope.id)
                .collect::<Vec<_>>()
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort();
    let want: Vec<MessageId> = (1..=200).map(id).collect();
    assert_eq!(
        all, want,
        "every run claimed exactly once across racing callers"
    );
}

/// `small_envelope(n)`, accepted at `at` (ms).
fn accepted_at(n: u128, at: u64) -> Arc<Envelope> {
    let mut e = (*small_envelope(n)).clone();
    e.accepted_at = t(at);
    Arc::new(e)
}

fn key(name: &str, fingerprint: u128, expires_at: u64) -> IdempotencyKey {
    IdempotencyKey {
        key: name.to_owned(),
        fingerprint,
        expires_at: t(expires_at),
    }
}

/// `insert_idempotent` stores the message and records its key; the same
/// key again (whatever the fingerprint) stores nothing and answers the
/// first record; another key is independent; `idempotency_key` reads it.
pub async fn an_idempotency_key_is_recorded_with_its_message<S: Store>(store: S) {
    let first = store
        .insert_idempotent(
            accepted_at(1, 1_000),
            Start::At(t(5_000)),
            key("k", 7, 2_000),
        )
        .await
        .expect("insert");
    assert_eq!(first, Inserted::New(None), "stored, scheduled: no token");
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(5_000) }
    );
    let recorded = KeyRecord {
        id: id(1),
        fingerprint: 7,
        status: PublishStatus::Scheduled,
        expires_at: t(2_000),
    };
    for (n, fingerprint) in [(2, 7), (3, 8)] {
        let again = store
            .insert_idempotent(
                accepted_at(n, 1_999),
                Start::Claimed {
                    due: t(1_999),
                    lease_until: t(9_000),
                },
                key("k", fingerprint, 99_000),
            )
            .await
            .expect("insert");
        assert_eq!(again, Inserted::Existing(recorded.clone()));
        assert!(
            store.get(id(n)).await.expect("get").is_none(),
            "a held key stores nothing"
        );
    }
    assert_eq!(
        store.idempotency_key("k").await.expect("read"),
        Some(recorded)
    );
    assert_eq!(store.idempotency_key("K").await.expect("read"), None);
    let other = store
        .insert_idempotent(
            accepted_at(4, 1_000),
            Start::At(t(5_000)),
            key("K", 7, 2_000),
        )
        .await
        .expect("insert");
    assert_eq!(
        other,
        Inserted::New(None),
        "keys are case-sensitive and independent"
    );
    assert_eq!(store.pending(None, 10).await.expect("pending").len(), 2);
}

/// A claimed start with a key returns its token, is recorded as
/// `Published`, and completes like any claim.
pub async fn a_claimed_insert_with_a_key_answers_published<S: Store>(store: S) {
    let got = store
        .insert_idempotent(
            accepted_at(1, 1_000),
            Start::Claimed {
                due: t(1_000),
                lease_until: t(9_000),
            },
            key("now", 1, 50_000),
        )
        .await
        .expect("insert");
    let Inserted::New(Some(token)) = got else {
        panic!("a claimed start returns its token: {got:?}")
    };
    assert!(complete1(&store, 1, token, one(1, 1), Next::Done).await);
    let again = store
        .insert_idempotent(
            accepted_at(2, 2_000),
            Start::At(t(3_000)),
            key("now", 1, 60_000),
        )
        .await
        .expect("insert");
    assert_eq!(
        again,
        Inserted::Existing(KeyRecord {
            id: id(1),
            fingerprint: 1,
            status: PublishStatus::Published,
            expires_at: t(50_000),
        })
    );
}

/// A key that expired by the new message's accept time is recorded anew,
/// for the new message.
pub async fn an_expired_key_is_recorded_anew<S: Store>(store: S) {
    store
        .insert_idempotent(
            accepted_at(1, 1_000),
            Start::At(t(5_000)),
            key("k", 1, 2_000),
        )
        .await
        .expect("insert");
    let late = store
        .insert_idempotent(
            accepted_at(2, 2_000),
            Start::At(t(5_000)),
            key("k", 2, 3_000),
        )
        .await
        .expect("insert");
    assert_eq!(late, Inserted::New(None), "expired at 2000: a new publish");
    let again = store
        .insert_idempotent(
            accepted_at(3, 2_500),
            Start::At(t(5_000)),
            key("k", 3, 4_000),
        )
        .await
        .expect("insert");
    assert!(
        matches!(&again, Inserted::Existing(r) if r.id == id(2) && r.fingerprint == 2),
        "{again:?}"
    );
    assert!(store.get(id(1)).await.expect("get").is_some());
    assert!(store.get(id(3)).await.expect("get").is_none());
}

/// An insert whose id is stored already is a duplicate and records no key.
pub async fn a_duplicate_id_records_no_key<S: Store>(store: S) {
    insert_at(&store, 1, 10).await;
    let err = store
        .insert_idempotent(accepted_at(1, 1_000), Start::At(t(99)), key("k", 1, 9_000))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::Duplicate(d) if d == id(1)),
        "{err:?}"
    );
    assert_eq!(store.idempotency_key("k").await.expect("read"), None);
    let next = store
        .insert_idempotent(accepted_at(2, 1_000), Start::At(t(99)), key("k", 1, 9_000))
        .await
        .expect("insert");
    assert_eq!(next, Inserted::New(None));
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// Eight tasks insert different messages with one key at once: exactly one
/// is stored, and every other answer names it.
pub async fn racing_inserts_with_one_key_store_one_message<S: Store>(store: S) {
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for n in 1..=8u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_idempotent(
                    accepted_at(n, 1_000),
                    Start::At(t(5_000)),
                    key("race", 9, 9_000),
                )
                .await
                .expect("insert")
        }));
    }
    let mut stored = Vec::new();
    let mut named = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Inserted::New(_) => stored.push(()),
            Inserted::Existing(r) => named.push(r.id),
        }
    }
    assert_eq!(stored.len(), 1, "one message stored");
    let winner = store
        .idempotency_key("race")
        .await
        .expect("read")
        .expect("recorded")
        .id;
    assert!(named.iter().all(|&n| n == winner), "{named:?} vs {winner}");
    assert_eq!(store.pending(None, 100).await.expect("pending").len(), 1);
}
