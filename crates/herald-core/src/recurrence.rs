//! Placeholder: being written.
#![allow(missing_docs, unreachable_pub, dead_code)]
/// Placeholder.
#[derive(Debug)]
pub struct Recurrence;
/// Placeholder.
#[derive(Debug)]
pub struct RecurrenceError;
/// Placeholder.
#[derive(Debug)]
pub struct Resume;
