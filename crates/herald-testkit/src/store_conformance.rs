//! The [`Store`] conformance suite: each `pub async fn` here takes a fresh,
//! empty store and panics (with a message naming the rule) if the store
//! breaks its contract. [`store_conformance_tests!`](crate::store_conformance_tests)
//! runs every check as its own test.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use herald::{
    CancelOutcome, Claim, Completion, DeliveryCounts, DeliveryOptions, Envelope, MessageId, Next,
    PublishOptions, PublishPolicy, PushBroadcast, Record, RunState, Store, StoreError,
};
use herald_core::Tick;
use serde_json::json;

/// Every check's name, in the order [`store_conformance_tests!`](crate::store_conformance_tests) runs them.
pub const CHECKS: &[&str] = &[
    "insert_then_get_round_trips_everything",
    "get_of_unknown_id_is_none",
    "duplicate_insert_is_rejected_and_changes_nothing",
    "claim_takes_a_scheduled_run_exactly_once",
    "claim_needs_the_exact_due",
    "claim_skips_cancelled_and_finished",
    "claim_answers_in_order_for_a_batch",
    "complete_reschedules_publishes_or_fails",
    "complete_after_cancel_keeps_cancelled",
    "stale_completion_only_adds_counters",
    "cancel_outcomes",
    "pending_pages_unfinished_records_in_id_order",
    "release_expired_returns_runs_to_scheduled",
    "concurrent_claims_hand_a_run_to_one_caller",
];

/// Generates one `#[tokio::test]` per conformance check, each on a fresh
/// store made by the given expression (an `async` block evaluating to the
/// store).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            insert_then_get_round_trips_everything,
            get_of_unknown_id_is_none,
            duplicate_insert_is_rejected_and_changes_nothing,
            claim_takes_a_scheduled_run_exactly_once,
            claim_needs_the_exact_due,
            claim_skips_cancelled_and_finished,
            claim_answers_in_order_for_a_batch,
            complete_reschedules_publishes_or_fails,
            complete_after_cancel_keeps_cancelled,
            stale_completion_only_adds_counters,
            cancel_outcomes,
            pending_pages_unfinished_records_in_id_order,
            release_expired_returns_runs_to_scheduled,
            concurrent_claims_hand_a_run_to_one_caller,
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
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// An id whose order follows `n`.
pub fn id(n: u128) -> MessageId {
    MessageId::from_u128((0x0190_0000_0000_7000_8000_0000_0000_0000) + (n << 64) + n)
}

/// A fully populated envelope (every option set, unicode, nested JSON), so
/// a store that drops or mangles a field fails the round trip.
pub fn envelope(n: u128) -> Arc<Envelope> {
    let mut headers = BTreeMap::new();
    headers.insert("city".to_owned(), "Zürich ✓".to_owned());
    headers.insert("n".to_owned(), "20".to_owned());
    headers.insert("quote's".to_owned(), "a \"b\" \\ c".to_owned());
    Arc::new(Envelope {
        id: id(n),
        channel: format!("chan-{n}-ünï"),
        message: json!({"text": "héllo", "n": n as u64, "list": [1, 2.5, null, true], "deep": {"x": {"y": "z"}}}),
        publish: PublishOptions {
            publisher_id: Some("pub-1".to_owned()),
            headers,
            subtopic: Some("sub".to_owned()),
        },
        delivery: DeliveryOptions {
            publish_policy: PublishPolicy::Both,
            push_broadcast: Some(PushBroadcast::IOS | PushBroadcast::OSX),
            push_singlecast: vec!["dev-1".to_owned(), "dev-2".to_owned()],
            segment_query: Some("os = 'IOS'".to_owned()),
            publish_at: DateTime::from_timestamp_millis(1_900_000_000_123),
            repeat_every: None,
            repeat_expires_at: DateTime::from_timestamp_millis(1_900_000_999_000),
            repeat_cron: Some("0 30 9 * * Mon-Fri".to_owned()),
            time_zone: Some("Europe/Berlin".to_owned()),
        },
        accepted_at: t(1_899_999_999_000),
    })
}

/// A plain envelope for bulk checks.
pub fn small_envelope(n: u128) -> Arc<Envelope> {
    Arc::new(Envelope {
        id: id(n),
        channel: "default".to_owned(),
        message: json!(n as u64),
        publish: PublishOptions::default(),
        delivery: DeliveryOptions::default(),
        accepted_at: t(1_000),
    })
}

fn scheduled(n: u128, due: u64) -> Record {
    Record {
        envelope: small_envelope(n),
        state: RunState::Scheduled { due: t(due) },
        counts: DeliveryCounts::default(),
    }
}

async fn state_of<S: Store>(store: &S, n: u128) -> RunState {
    store
        .get(id(n))
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("record {n} vanished"))
        .state
}

fn one(runs: u64, pubsub: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs,
        pubsub,
        ..DeliveryCounts::default()
    }
}

/// `insert` then `get` returns an equal record, every field intact.
pub async fn insert_then_get_round_trips_everything<S: Store>(store: S) {
    let record = Record {
        envelope: envelope(1),
        state: RunState::Scheduled {
            due: t(1_900_000_000_123),
        },
        counts: DeliveryCounts {
            runs: 3,
            pubsub: 7,
            push_sent: 5,
            push_failed: 1,
            push_invalid_tokens: 2,
        },
    };
    store.insert(record.clone()).await.expect("insert");
    let got = store
        .get(id(1))
        .await
        .expect("get")
        .expect("stored record is found");
    assert_eq!(got, record, "a stored record must come back unchanged");

    let failed = Record {
        envelope: envelope(2),
        state: RunState::Failed {
            error: "gateway said no ✗".to_owned(),
        },
        counts: DeliveryCounts::default(),
    };
    store
        .insert(failed.clone())
        .await
        .expect("insert failed record");
    assert_eq!(store.get(id(2)).await.expect("get").as_ref(), Some(&failed));
}

/// `get` of an id never stored is `None`.
pub async fn get_of_unknown_id_is_none<S: Store>(store: S) {
    assert!(store.get(id(42)).await.expect("get").is_none());
    store.insert(scheduled(1, 10)).await.expect("insert");
    assert!(store.get(id(42)).await.expect("get").is_none());
}

/// A second `insert` of the same id is `Duplicate` and leaves the first.
pub async fn duplicate_insert_is_rejected_and_changes_nothing<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    let err = store
        .insert(scheduled(1, 99))
        .await
        .expect_err("duplicate insert must fail");
    assert!(
        matches!(err, StoreError::Duplicate(d) if d == id(1)),
        "got {err:?}"
    );
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// A scheduled run is claimed once: `Firing` with the lease, envelope
/// returned; a second claim gets `None`.
pub async fn claim_takes_a_scheduled_run_exactly_once<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    let got = store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(500),
        )
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].as_deref(),
        Some(&*small_envelope(1)),
        "claim returns the envelope"
    );
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(500)
        }
    );
    let again = store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(900),
        )
        .await
        .expect("claim");
    assert_eq!(again, vec![None], "a run must not be claimed twice");
}

/// A claim for a different due (a stale wheel entry) gets `None`.
pub async fn claim_needs_the_exact_due<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    let got = store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(11),
            }],
            t(500),
        )
        .await
        .expect("claim");
    assert_eq!(got, vec![None]);
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
}

/// Cancelled, published and unknown messages are not claimed.
pub async fn claim_skips_cancelled_and_finished<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    store.insert(scheduled(2, 10)).await.expect("insert");
    assert!(matches!(
        store.cancel(id(1)).await.expect("cancel"),
        CancelOutcome::Cancelled(_)
    ));
    let got = store
        .claim(
            vec![Claim {
                id: id(2),
                due: t(10),
            }],
            t(50),
        )
        .await
        .expect("claim");
    assert!(got[0].is_some());
    store
        .complete(vec![Completion {
            id: id(2),
            due: t(10),
            counts: one(1, 0),
            next: Next::Done,
        }])
        .await
        .expect("complete");
    let got = store
        .claim(
            vec![
                Claim {
                    id: id(1),
                    due: t(10),
                },
                Claim {
                    id: id(2),
                    due: t(10),
                },
                Claim {
                    id: id(3),
                    due: t(10),
                },
            ],
            t(50),
        )
        .await
        .expect("claim");
    assert_eq!(got, vec![None, None, None]);
    assert_eq!(state_of(&store, 1).await, RunState::Cancelled);
    assert_eq!(state_of(&store, 2).await, RunState::Published);
}

/// A batch claim answers position by position.
pub async fn claim_answers_in_order_for_a_batch<S: Store>(store: S) {
    for n in 1..=5 {
        store
            .insert(scheduled(n, 100 + n as u64))
            .await
            .expect("insert");
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
    ];
    let got = store.claim(claims, t(1_000)).await.expect("claim");
    let ids: Vec<Option<MessageId>> = got.iter().map(|e| e.as_ref().map(|e| e.id)).collect();
    assert_eq!(ids, vec![Some(id(3)), None, Some(id(5)), None, Some(id(2))]);
}

/// `complete` adds counters and moves `Firing` to `Scheduled { next }`,
/// `Published` or `Failed`.
pub async fn complete_reschedules_publishes_or_fails<S: Store>(store: S) {
    for n in 1..=3 {
        store.insert(scheduled(n, 10)).await.expect("insert");
    }
    let claims = (1..=3)
        .map(|n| Claim {
            id: id(n),
            due: t(10),
        })
        .collect();
    store.claim(claims, t(100)).await.expect("claim");
    store
        .complete(vec![
            Completion {
                id: id(1),
                due: t(10),
                counts: one(1, 4),
                next: Next::At(t(20)),
            },
            Completion {
                id: id(2),
                due: t(10),
                counts: one(1, 2),
                next: Next::Done,
            },
            Completion {
                id: id(3),
                due: t(10),
                counts: one(1, 0),
                next: Next::Failed("boom".into()),
            },
            Completion {
                id: id(77),
                due: t(10),
                counts: one(1, 0),
                next: Next::Done,
            },
        ])
        .await
        .expect("complete");
    let r1 = store.get(id(1)).await.expect("get").expect("1");
    assert_eq!(r1.state, RunState::Scheduled { due: t(20) });
    assert_eq!(r1.counts, one(1, 4));
    assert_eq!(state_of(&store, 2).await, RunState::Published);
    assert_eq!(
        state_of(&store, 3).await,
        RunState::Failed {
            error: "boom".into()
        }
    );
    assert!(
        store.get(id(77)).await.expect("get").is_none(),
        "completion of an unknown id creates nothing"
    );

    // The rescheduled run is claimable at its new due, and counters add up.
    let got = store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(20),
            }],
            t(200),
        )
        .await
        .expect("claim");
    assert!(got[0].is_some());
    store
        .complete(vec![Completion {
            id: id(1),
            due: t(20),
            counts: one(1, 4),
            next: Next::Done,
        }])
        .await
        .expect("complete");
    let r1 = store.get(id(1)).await.expect("get").expect("1");
    assert_eq!((r1.state, r1.counts), (RunState::Published, one(2, 8)));
}

/// A message cancelled while firing stays cancelled; counters still add.
pub async fn complete_after_cancel_keeps_cancelled<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(100),
        )
        .await
        .expect("claim");
    let out = store.cancel(id(1)).await.expect("cancel");
    assert!(
        matches!(&out, CancelOutcome::Cancelled(r) if r.state == RunState::Cancelled),
        "{out:?}"
    );
    store
        .complete(vec![Completion {
            id: id(1),
            due: t(10),
            counts: one(1, 3),
            next: Next::At(t(20)),
        }])
        .await
        .expect("complete");
    let r = store.get(id(1)).await.expect("get").expect("1");
    assert_eq!((r.state, r.counts), (RunState::Cancelled, one(1, 3)));
    assert!(store.pending(None, 10).await.expect("pending").is_empty());
}

/// A completion for a run that is no longer firing (lease expired and the
/// run was released) adds counters but does not change the state.
pub async fn stale_completion_only_adds_counters<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(100),
        )
        .await
        .expect("claim");
    assert_eq!(store.release_expired(t(101)).await.expect("release"), 1);
    store
        .complete(vec![Completion {
            id: id(1),
            due: t(10),
            counts: one(1, 1),
            next: Next::Done,
        }])
        .await
        .expect("complete");
    let r = store.get(id(1)).await.expect("get").expect("1");
    assert_eq!(
        r.state,
        RunState::Scheduled { due: t(10) },
        "the released run must be delivered again"
    );
    assert_eq!(r.counts, one(1, 1));
}

/// `cancel`: scheduled and firing become cancelled; finished ones report
/// `Finished`; unknown ids `NotFound`; a second cancel is `Finished`.
pub async fn cancel_outcomes<S: Store>(store: S) {
    store.insert(scheduled(1, 10)).await.expect("insert");
    store.insert(scheduled(2, 10)).await.expect("insert");
    store.insert(scheduled(3, 10)).await.expect("insert");
    store
        .claim(
            vec![
                Claim {
                    id: id(2),
                    due: t(10),
                },
                Claim {
                    id: id(3),
                    due: t(10),
                },
            ],
            t(100),
        )
        .await
        .expect("claim");
    store
        .complete(vec![Completion {
            id: id(3),
            due: t(10),
            counts: one(1, 0),
            next: Next::Done,
        }])
        .await
        .expect("complete");

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

/// `pending` pages through unfinished records by id.
pub async fn pending_pages_unfinished_records_in_id_order<S: Store>(store: S) {
    // Insert out of order; finish some.
    for n in (1..=25u128).rev() {
        store
            .insert(scheduled(n, 1_000 + n as u64))
            .await
            .expect("insert");
    }
    store.cancel(id(4)).await.expect("cancel");
    store
        .claim(
            vec![
                Claim {
                    id: id(7),
                    due: t(1_007),
                },
                Claim {
                    id: id(8),
                    due: t(1_008),
                },
            ],
            t(5_000),
        )
        .await
        .expect("claim");
    store
        .complete(vec![Completion {
            id: id(8),
            due: t(1_008),
            counts: one(1, 0),
            next: Next::Done,
        }])
        .await
        .expect("complete");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending(after, 10).await.expect("pending");
        assert!(page.len() <= 10, "limit respected");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.envelope.id);
        seen.extend(page.into_iter().map(|r| (r.envelope.id, r.state)));
    }
    let want: Vec<MessageId> = (1..=25).filter(|n| *n != 4 && *n != 8).map(id).collect();
    assert_eq!(
        seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        want,
        "unfinished, in id order, each once"
    );
    let firing = seen
        .iter()
        .find(|(i, _)| *i == id(7))
        .map(|(_, s)| s.clone());
    assert_eq!(
        firing,
        Some(RunState::Firing {
            due: t(1_007),
            lease_until: t(5_000)
        }),
        "firing records are pending too"
    );
}

/// `release_expired` returns claims whose lease ended before the bound.
pub async fn release_expired_returns_runs_to_scheduled<S: Store>(store: S) {
    for n in 1..=3 {
        store.insert(scheduled(n, 10)).await.expect("insert");
    }
    store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(100),
        )
        .await
        .expect("claim");
    store
        .claim(
            vec![Claim {
                id: id(2),
                due: t(10),
            }],
            t(300),
        )
        .await
        .expect("claim");
    assert_eq!(store.release_expired(t(200)).await.expect("release"), 1);
    assert_eq!(
        state_of(&store, 1).await,
        RunState::Scheduled { due: t(10) }
    );
    assert_eq!(
        state_of(&store, 2).await,
        RunState::Firing {
            due: t(10),
            lease_until: t(300)
        }
    );
    assert_eq!(
        state_of(&store, 3).await,
        RunState::Scheduled { due: t(10) }
    );
    // Released runs are claimable again.
    let got = store
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(400),
        )
        .await
        .expect("claim");
    assert!(got[0].is_some());
    assert_eq!(store.release_expired(Tick::MAX).await.expect("release"), 2);
}

/// Eight tasks race to claim the same 200 runs: each run goes to exactly
/// one of them.
pub async fn concurrent_claims_hand_a_run_to_one_caller<S: Store>(store: S) {
    let store = Arc::new(store);
    for n in 1..=200 {
        store.insert(scheduled(n, 10)).await.expect("insert");
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
            got.iter().flatten().map(|e| e.id).collect::<Vec<_>>()
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
