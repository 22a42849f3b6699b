//! The push-job part of the [`Store`] contract: each `pub async fn` takes a
//! fresh, empty store and panics (naming the rule) if the store breaks it.
//! [`push_job_conformance_tests!`](crate::push_job_conformance_tests) runs
//! each check as its own test.

use herald::{Checkpoint, DeliveryCounts, JobKey, Next, PushJob, PushRetry, RunState, Store};
use herald_core::Tick;

use crate::store_conformance::{claim1, complete1, id, insert_at, one};

/// Generates one `#[tokio::test]` per push-job check, each on a fresh
/// store made by the given expression (an `async` block evaluating to it).
///
/// `(optional $make)`: the expression evaluates to an `Option` of it, and
/// `None` ends each test at once, passing (for a store that needs a
/// service the environment may lack; the caller prints the one `SKIPPED:`
/// line).
#[macro_export]
macro_rules! push_job_conformance_tests {
    ($make:expr) => {
        $crate::push_job_conformance_tests!(@each $make;
            each_job_is_added_once_and_claimed_once_per_lease,
            an_expired_lease_is_claimed_anew_and_the_old_token_is_stale,
            checkpoints_keep_the_cursor_and_the_retries,
            checkpoints_add_counters_and_errors_to_the_record,
            a_finished_job_is_gone_with_its_retries,
        );
    };
    (optional $make:expr) => {
        $crate::push_job_conformance_tests!(@each_optional $make;
            each_job_is_added_once_and_claimed_once_per_lease,
            an_expired_lease_is_claimed_anew_and_the_old_token_is_stale,
            checkpoints_keep_the_cursor_and_the_retries,
            checkpoints_add_counters_and_errors_to_the_record,
            a_finished_job_is_gone_with_its_retries,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $make.await;
                $crate::push_job_conformance::$check(store).await;
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
                $crate::push_job_conformance::$check(store).await;
            }
        )*
    };
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn key(n: u128, run: u64) -> JobKey {
    JobKey {
        message: id(n),
        run: t(run),
    }
}

fn retry(device: &str, attempts: u32, due: u64) -> PushRetry {
    PushRetry {
        device_id: device.to_owned(),
        attempts,
        due: t(due),
    }
}

async fn claim_all<S: Store>(s: &S, before: u64, lease: u64) -> Vec<PushJob> {
    s.claim_push_jobs(t(before), t(lease), 100)
        .await
        .expect("claim_push_jobs")
}

async fn checkpoint<S: Store>(s: &S, cp: Checkpoint) -> bool {
    let got = s.checkpoint_push(vec![cp]).await.expect("checkpoint_push");
    assert_eq!(got.len(), 1, "one answer per checkpoint");
    got[0]
}

/// Adding a key twice records one job; claims hand each job out once per
/// lease, in key order, with `limit` respected.
pub async fn each_job_is_added_once_and_claimed_once_per_lease<S: Store>(s: S) {
    s.add_push_jobs(vec![key(2, 10), key(1, 20), key(1, 10)])
        .await
        .unwrap();
    s.add_push_jobs(vec![key(1, 10)]).await.unwrap();
    let first = s.claim_push_jobs(t(0), t(1_000), 2).await.unwrap();
    assert_eq!(
        first.iter().map(|j| j.key).collect::<Vec<_>>(),
        [key(1, 10), key(1, 20)],
        "key order, at most the limit"
    );
    assert!(
        first
            .iter()
            .all(|j| j.cursor.is_none() && !j.listed && j.handed == 0)
    );
    let rest = claim_all(&s, 0, 1_000).await;
    assert_eq!(rest.iter().map(|j| j.key).collect::<Vec<_>>(), [key(2, 10)]);
    assert!(
        claim_all(&s, 999, 2_000).await.is_empty(),
        "leases still hold"
    );
    let tokens: std::collections::HashSet<_> = first.iter().chain(&rest).map(|j| j.token).collect();
    assert_eq!(tokens.len(), 3, "every claim has its own token");
}

/// After its lease a job is claimed again with a new token, keeping what
/// was checkpointed; the old claim's checkpoints change nothing.
pub async fn an_expired_lease_is_claimed_anew_and_the_old_token_is_stale<S: Store>(s: S) {
    s.add_push_jobs(vec![key(1, 10)]).await.unwrap();
    let old = claim_all(&s, 0, 100).await.remove(0);
    let mut cp = Checkpoint::of(&old, t(100));
    cp.cursor = Some("device-7".into());
    cp.handed = 7;
    assert!(checkpoint(&s, cp).await);
    let new = claim_all(&s, 100, 200).await.remove(0);
    assert_ne!(new.token, old.token);
    assert_eq!(new.cursor.as_deref(), Some("device-7"));
    assert_eq!(new.handed, 7);
    let mut stale = Checkpoint::of(&old, t(300));
    stale.cursor = Some("device-9".into());
    stale.finished = true;
    assert!(
        !checkpoint(&s, stale).await,
        "a stale token changes nothing"
    );
    let again = claim_all(&s, 200, 300).await;
    assert_eq!(again.len(), 1, "the stale finish did not remove the job");
    assert_eq!(again[0].cursor.as_deref(), Some("device-7"));
    let unknown = PushJob {
        key: key(9, 9),
        ..again[0].clone()
    };
    assert!(
        !checkpoint(&s, Checkpoint::of(&unknown, t(1))).await,
        "unknown job"
    );
}

/// Retries are listed by due then device; a device's new retry replaces
/// its old one; resolved retries go.
pub async fn checkpoints_keep_the_cursor_and_the_retries<S: Store>(s: S) {
    s.add_push_jobs(vec![key(1, 10), key(2, 10)]).await.unwrap();
    let jobs = claim_all(&s, 0, 1_000).await;
    let mut cp = Checkpoint::of(&jobs[0], t(1_000));
    cp.cursor = Some("m".into());
    cp.listed = true;
    cp.handed = 3;
    cp.retries = vec![
        retry("b", 1, 50),
        retry("a", 2, 50),
        retry("c", 1, 40),
        retry("d", 1, 60),
    ];
    assert!(checkpoint(&s, cp).await);
    let mut other = Checkpoint::of(&jobs[1], t(1_000));
    other.retries = vec![retry("z", 1, 1)];
    assert!(checkpoint(&s, other).await);
    let listed = s.push_retries(key(1, 10), 10).await.unwrap();
    assert_eq!(
        listed,
        [
            retry("c", 1, 40),
            retry("a", 2, 50),
            retry("b", 1, 50),
            retry("d", 1, 60)
        ],
        "by due, then device; only this job's"
    );
    assert_eq!(
        s.push_retries(key(1, 10), 2).await.unwrap().len(),
        2,
        "limit"
    );
    let mut cp = Checkpoint::of(&jobs[0], t(1_000));
    cp.cursor = Some("m".into());
    cp.retries = vec![retry("c", 2, 70)];
    cp.resolved = vec!["a".into(), "nobody".into()];
    assert!(checkpoint(&s, cp).await);
    assert_eq!(
        s.push_retries(key(1, 10), 10).await.unwrap(),
        [retry("b", 1, 50), retry("d", 1, 60), retry("c", 2, 70)]
    );
    let reclaimed = claim_all(&s, 1_000, 2_000).await;
    let j = reclaimed.iter().find(|j| j.key == key(1, 10)).unwrap();
    assert_eq!(j.cursor.as_deref(), Some("m"));
    assert!(!j.listed, "the last checkpoint said not listed");
}

/// Counters, the error and `fail` reach the message's record, in any
/// state, like `amend`.
pub async fn checkpoints_add_counters_and_errors_to_the_record<S: Store>(s: S) {
    insert_at(&s, 1, 10).await;
    let c = claim1(&s, 1, 10, 100).await.expect("claimed");
    s.add_push_jobs(vec![key(1, 10)]).await.unwrap();
    assert!(complete1(&s, 1, c.token, one(1, 0), Next::Done).await);
    let job = claim_all(&s, 0, 1_000).await.remove(0);
    let counts = DeliveryCounts {
        push_sent: 2,
        push_queued: 5,
        ..DeliveryCounts::default()
    };
    let mut cp = Checkpoint::of(&job, t(1_000));
    cp.counts = counts;
    assert!(checkpoint(&s, cp.clone()).await);
    assert!(checkpoint(&s, cp).await);
    let r = s.get(id(1)).await.unwrap().unwrap();
    assert_eq!(r.counts.push_sent, 4);
    assert_eq!(r.counts.push_queued, 10);
    assert_eq!(r.counts.push_pending(), 6);
    let mut cp = Checkpoint::of(&job, t(1_000));
    cp.counts = DeliveryCounts {
        push_failed: 6,
        ..DeliveryCounts::default()
    };
    cp.error = Some("APNs refuses the credentials: InvalidProviderToken".into());
    cp.fail = true;
    cp.finished = true;
    assert!(checkpoint(&s, cp).await);
    let r = s.get(id(1)).await.unwrap().expect("kept");
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.counts.push_pending(), 0);
    assert_eq!(
        r.error.as_deref(),
        Some("APNs refuses the credentials: InvalidProviderToken")
    );
}

/// A finished job is never claimed again and its retries are gone.
pub async fn a_finished_job_is_gone_with_its_retries<S: Store>(s: S) {
    s.add_push_jobs(vec![key(1, 10)]).await.unwrap();
    let job = claim_all(&s, 0, 100).await.remove(0);
    let mut cp = Checkpoint::of(&job, t(100));
    cp.retries = vec![retry("a", 1, 5)];
    assert!(checkpoint(&s, cp).await);
    let mut cp = Checkpoint::of(&job, t(100));
    cp.finished = true;
    assert!(checkpoint(&s, cp).await);
    assert!(s.push_retries(key(1, 10), 10).await.unwrap().is_empty());
    assert!(claim_all(&s, u64::MAX, u64::MAX).await.is_empty());
    assert!(!checkpoint(&s, Checkpoint::of(&job, t(200))).await, "gone");
    s.add_push_jobs(vec![key(1, 10)]).await.unwrap();
    let again = claim_all(&s, 0, 100).await;
    assert_eq!(
        again.len(),
        1,
        "a key can be added again after its job ended"
    );
    assert!(s.push_retries(key(1, 10), 10).await.unwrap().is_empty());
}
