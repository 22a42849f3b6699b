//! The `Store` conformance suite and the push-job conformance suite
//! (`herald-testkit`), every check on a `PgStore` in a fresh schema that is
//! dropped afterwards. Without `DATABASE_URL`: one `SKIPPED:` line.

mod support;

use support::Scratch;

herald_testkit::store_conformance_tests!(optional async { Scratch::new("store").await });

mod push_jobs {
    use super::Scratch;

    herald_testkit::push_job_conformance_tests!(optional async { Scratch::new("push").await });
}
