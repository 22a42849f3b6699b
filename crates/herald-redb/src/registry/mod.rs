//! The device registry and the template store on the same redb file:
//! [`RedbStore`](crate::RedbStore) implements
//! [`DeviceRegistry`](herald::DeviceRegistry) and
//! [`TemplateStore`](herald::TemplateStore).
//!
//! | file | concept |
//! |---|---|
//! | `api.rs` | the two traits: writes to the writer thread, reads to read transactions |
//! | `bytes.rs` | varints and strings, read without panicking |
//! | `device.rs` | the device record (`devices` value) |
//! | `template.rs` | the template record (`templates` value) |
//! | `read.rs` | the reads: a device, a channel's page, templates |
//! | `check.rs` | the registry's part of `check_records` |
//!
//! The writes themselves are `crate::writer`'s `registry_op.rs` (the
//! requests) and `registry_exec.rs` (what they do to the tables).

mod api;
pub(crate) mod bytes;
pub(crate) mod check;
pub(crate) mod device;
mod read;
pub(crate) mod template;

pub(crate) use read::open_if_there;
