//! `MemoryRegistry` passes the registry and template conformance suites.

herald_testkit::registry_conformance_tests!(async { herald::MemoryRegistry::new() });
herald_testkit::template_conformance_tests!(async { herald::MemoryRegistry::new() });
