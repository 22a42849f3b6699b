//! Test support for Herald.
