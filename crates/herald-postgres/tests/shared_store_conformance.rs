//! The shared-store conformance suite (`herald-testkit`): reservations and
//! hints, every check on a `PgStore` in a fresh schema that is dropped
//! afterwards. Without `DATABASE_URL`: one `SKIPPED:` line.

mod support;

use support::Scratch;

herald_testkit::shared_store_conformance_tests!(optional async { Scratch::new("shared").await });
