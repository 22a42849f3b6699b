//! The `DeviceRegistry` and `TemplateStore` conformance suites
//! (`herald-testkit`), every check on a `PgStore` in a fresh schema that is
//! dropped afterwards. Without `DATABASE_URL`: one `SKIPPED:` line.

mod support;

use support::Scratch;

herald_testkit::registry_conformance_tests!(optional async { Scratch::new("registry").await });
herald_testkit::template_conformance_tests!(optional async { Scratch::new("templates").await });
