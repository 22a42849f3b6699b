//! `shared_dev_app` on the real `herald_cluster` schema: two nodes starting
//! together get the same pair. (The table is left as it is, as it may hold
//! a running cluster's app; the first-caller rule is tested on a schema of
//! its own in `src/dev_app.rs`.)

mod support;

use herald_postgres::shared_dev_app;
use support::database_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_callers_get_the_same_pair() {
    let Some(url) = database_url() else {
        return;
    };
    let (a, b) = tokio::join!(
        shared_dev_app(&url, "app-a", "key-a"),
        shared_dev_app(&url, "app-b", "key-b"),
    );
    let (a, b) = (a.expect("caller A"), b.expect("caller B"));
    assert_eq!(a, b, "one pair for the cluster");
    let again = shared_dev_app(&url, "app-c", "key-c").await.expect("again");
    assert_eq!(again, a, "kept: a later proposal is ignored");
}
