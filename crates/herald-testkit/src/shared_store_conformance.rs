//! The conformance suite for *shared* stores (several engines on one
//! store, as nodes on one PostgreSQL): [`Store::is_shared`],
//! [`Store::reserve_due`] and [`Store::due_hints`], on top of everything
//! [`store_conformance`](crate::store_conformance) checks. Each `pub async
//! fn` takes a fresh, empty shared store and panics (naming the rule) if
//! the store breaks its contract;
//! [`shared_store_conformance_tests!`](crate::shared_store_conformance_tests)
//! runs every check as its own test.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use herald::{Completion, DueHints, DueRun, MessageId, Next, Start, Store};
use herald_core::Tick;

use crate::store_conformance::{claim1, complete1, id, insert_at, one, small_envelope};

/// Generates one `#[tokio::test]` per shared-store check, each on a fresh
/// store made by the given expression (an `async` block evaluating to the
/// store).
///
/// `(optional $make)`: the expression evaluates to an `Option` of it, and
/// `None` ends each test at once, passing (for a store that needs a
/// service the environment may lack; the caller prints the one `SKIPPED:`
/// line).
#[macro_export]
macro_rules! shared_store_conformance_tests {
    (optional $make:expr) => {
        $crate::shared_store_conformance_tests!(@each_optional $make;
            the_store_says_it_is_shared,
            reserve_takes_unreserved_runs_due_before_earliest_first,
            a_reservation_holds_until_max_of_due_and_now_plus_hold,
            a_reserved_run_is_claimed_once_when_due,
            only_scheduled_runs_are_reserved,
            a_rescheduled_run_is_reservable_again,
            concurrent_reservers_get_disjoint_runs,
            hints_name_runs_scheduled_by_any_user,
        );
    };
    ($make:expr) => {
        $crate::shared_store_conformance_tests!(@each $make;
            the_store_says_it_is_shared,
            reserve_takes_unreserved_runs_due_before_earliest_first,
            a_reservation_holds_until_max_of_due_and_now_plus_hold,
            a_reserved_run_is_claimed_once_when_due,
            only_scheduled_runs_are_reserved,
            a_rescheduled_run_is_reservable_again,
            concurrent_reservers_get_disjoint_runs,
            hints_name_runs_scheduled_by_any_user,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $make.await;
                $crate::shared_store_conformance::$check(store).await;
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
                $crate::shared_store_conformance::$check(store).await;
            }
        )*
    };
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

async fn reserve<S: Store>(
    store: &S,
    now: u64,
    before: u64,
    hold: u64,
    limit: usize,
) -> Vec<DueRun> {
    store
        .reserve_due(t(now), t(before), hold, limit)
        .await
        .expect("reserve_due")
}

fn runs(pairs: &[(u128, u64)]) -> Vec<DueRun> {
    pairs
        .iter()
        .map(|&(n, due)| DueRun {
            id: id(n),
            due: t(due),
        })
        .collect()
}

/// How long a hint may take to arrive (a store may deliver them through
/// its database; this bounds a broken store, it is not waited for).
const HINT_TIMEOUT: Duration = Duration::from_secs(20);

async fn next_hint(hints: &mut DueHints, what: &str) -> Tick {
    tokio::time::timeout(HINT_TIMEOUT, hints.recv())
        .await
        .unwrap_or_else(|_| panic!("no hint within {HINT_TIMEOUT:?} after {what}"))
}

/// A shared store says so: engines on it do not take back other nodes'
/// claims at start-up.
pub async fn the_store_says_it_is_shared<S: Store>(store: S) {
    assert!(store.is_shared(), "a shared store must say is_shared()");
}

/// `reserve_due` returns scheduled runs due before `before`, earliest
/// first, at most `limit`, and never one already reserved.
pub async fn reserve_takes_unreserved_runs_due_before_earliest_first<S: Store>(store: S) {
    for (n, due) in [(1, 100), (2, 50), (3, 300), (4, 70), (5, 1_000)] {
        insert_at(&store, n, due).await;
    }
    assert_eq!(
        reserve(&store, 0, 301, 10_000, 3).await,
        runs(&[(2, 50), (4, 70), (1, 100)]),
        "the three earliest runs due before 301"
    );
    assert_eq!(
        reserve(&store, 0, 301, 10_000, 3).await,
        runs(&[(3, 300)]),
        "the reserved ones are not handed out again; the one due at 1000 is beyond `before`"
    );
    assert_eq!(reserve(&store, 0, 301, 10_000, 3).await, vec![]);
    assert_eq!(
        reserve(&store, 0, 1_001, 10_000, 3).await,
        runs(&[(5, 1_000)]),
        "a later `before` reaches it"
    );
    for n in 1..=5 {
        assert!(
            matches!(
                store.get(id(n)).await.expect("get").expect("record").state,
                herald::RunState::Scheduled { .. }
            ),
            "a reservation leaves run {n} scheduled"
        );
    }
}

/// A reservation made at `now` for a run due at `due` holds until
/// `max(due, now) + hold`; then another caller may reserve the run.
pub async fn a_reservation_holds_until_max_of_due_and_now_plus_hold<S: Store>(store: S) {
    insert_at(&store, 1, 100).await;
    insert_at(&store, 2, 10).await;
    // At 50: run 1 is held until 100 + 30, run 2 (overdue) until 50 + 30.
    assert_eq!(
        reserve(&store, 50, 200, 30, 10).await,
        runs(&[(2, 10), (1, 100)])
    );
    assert_eq!(reserve(&store, 79, 200, 30, 10).await, vec![], "both held");
    assert_eq!(
        reserve(&store, 80, 200, 30, 10).await,
        runs(&[(2, 10)]),
        "run 2's reservation ended at 80"
    );
    // Run 2 is now held until 80 + 30.
    assert_eq!(reserve(&store, 109, 200, 30, 10).await, vec![]);
    assert_eq!(
        reserve(&store, 110, 200, 30, 10).await,
        runs(&[(2, 10)]),
        "run 2's second reservation ended at 110"
    );
    assert_eq!(reserve(&store, 129, 200, 30, 10).await, vec![]);
    assert_eq!(
        reserve(&store, 130, 200, 30, 10).await,
        runs(&[(1, 100)]),
        "run 1's reservation ended at 130"
    );
}

/// A reservation is advice: the run is claimed by `claim` at its due time,
/// exactly once, and a claimed run is not reserved.
pub async fn a_reserved_run_is_claimed_once_when_due<S: Store>(store: S) {
    insert_at(&store, 1, 100).await;
    assert_eq!(reserve(&store, 0, 200, 10, 10).await, runs(&[(1, 100)]));
    let claimed = claim1(&store, 1, 100, 10_000)
        .await
        .expect("claimed at due");
    assert_eq!(claimed.envelope.id, id(1));
    assert!(
        claim1(&store, 1, 100, 10_000).await.is_none(),
        "claimed once"
    );
    assert_eq!(
        reserve(&store, 500, 1_000, 10, 10).await,
        vec![],
        "a firing run is not reserved, even after the reservation ended"
    );
}

/// Only `Scheduled` runs are reserved: not a claimed start, not a
/// cancelled, published or firing message.
pub async fn only_scheduled_runs_are_reserved<S: Store>(store: S) {
    store
        .insert(
            small_envelope(1),
            Start::Claimed {
                due: t(10),
                lease_until: t(10_000),
            },
        )
        .await
        .expect("claimed insert");
    insert_at(&store, 2, 20).await;
    store.cancel(id(2)).await.expect("cancel");
    insert_at(&store, 3, 30).await;
    let c = claim1(&store, 3, 30, 10_000).await.expect("claim 3");
    assert!(complete1(&store, 3, c.token, one(1, 0), Next::Done).await);
    insert_at(&store, 4, 40).await;
    claim1(&store, 4, 40, 10_000).await.expect("claim 4");
    insert_at(&store, 5, 50).await;
    assert_eq!(
        reserve(&store, 0, 1_000, 10, 10).await,
        runs(&[(5, 50)]),
        "only the scheduled run"
    );
}

/// A completion that schedules the next run makes that run reservable,
/// whatever reservation the previous run had.
pub async fn a_rescheduled_run_is_reservable_again<S: Store>(store: S) {
    insert_at(&store, 1, 100).await;
    assert_eq!(
        reserve(&store, 0, 1_000, 100_000, 10).await,
        runs(&[(1, 100)])
    );
    let c = claim1(&store, 1, 100, 10_000).await.expect("claim");
    let applied = store
        .complete(vec![Completion {
            id: id(1),
            token: c.token,
            counts: one(1, 0),
            next: Next::At(t(200)),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, vec![true]);
    assert_eq!(
        reserve(&store, 150, 1_000, 100_000, 10).await,
        runs(&[(1, 200)]),
        "the next run is a new run: the old reservation does not hold it"
    );
}

/// Callers reserving at the same time never get the same run, and
/// together they get every run.
pub async fn concurrent_reservers_get_disjoint_runs<S: Store>(store: S) {
    const N: u128 = 300;
    for n in 0..N {
        insert_at(&store, n, 1_000 + (n as u64 % 17)).await;
    }
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let page = reserve(&*store, 0, 2_000, 60_000, 7).await;
                if page.is_empty() {
                    return got;
                }
                got.extend(page.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut seen: HashSet<MessageId> = HashSet::new();
    for task in tasks {
        for got in task.await.expect("reserver") {
            assert!(seen.insert(got), "run {got} reserved twice");
        }
    }
    assert_eq!(seen.len(), N as usize, "every run reserved by someone");
}

/// `due_hints` gives each subscriber the due times of runs scheduled by
/// inserts, by completions that schedule a next run, and by released
/// claims.
pub async fn hints_name_runs_scheduled_by_any_user<S: Store>(store: S) {
    let mut a = store.due_hints().expect("a shared store gives hints");
    let mut b = store.due_hints().expect("one subscription per engine");
    insert_at(&store, 1, 500).await;
    assert_eq!(next_hint(&mut a, "an insert").await, t(500));
    assert_eq!(next_hint(&mut b, "an insert").await, t(500));

    let c = claim1(&store, 1, 500, 10_000).await.expect("claim");
    assert!(complete1(&store, 1, c.token, one(1, 0), Next::At(t(900))).await);
    assert_eq!(
        next_hint(&mut a, "a completion with a next run").await,
        t(900)
    );

    insert_at(&store, 2, 50).await;
    claim1(&store, 2, 50, 60).await.expect("claim 2");
    assert_eq!(next_hint(&mut a, "an insert").await, t(50));
    let released = store.release_expired(t(1_000)).await.expect("release");
    assert_eq!(released, runs(&[(2, 50)]));
    assert_eq!(next_hint(&mut a, "a released claim").await, t(50));
}
