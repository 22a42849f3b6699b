//! The sans-IO core of Herald.
//!
//! This crate holds the parts of Herald that are pure computation: no tokio,
//! no clock, no I/O. Callers pass the current time in as a [`Tick`]
//! (milliseconds since a fixed epoch) and ask what is due.
//!
//! * [`Scheduler`]: a hierarchical timing wheel (Varghese & Lauck) holding
//!   every pending delivery, with 1 ms resolution, FIFO order for equal
//!   deadlines, generational [`Key`]s and an overflow tier for far deadlines.
//! * [`Recurrence`]: "every N ms" and cron rules with an expiry, computing the
//!   next occurrence strictly after an instant.
//! * [`selector`]: SQL-92 message selectors (`priority > 5 AND region IN
//!   ('eu', 'us')`) parsed once and evaluated per message in three-valued
//!   logic, without allocating.
//!
//! # Example
//!
//! ```
//! use herald_core::{Scheduler, Tick};
//!
//! let mut s = Scheduler::new();
//! let a = s.insert_at(Tick::from_millis(30), "a");
//! let b = s.insert_at(Tick::from_millis(10), "b");
//! s.insert_at(Tick::from_millis(10), "c"); // same ms as "b": fires after it
//! assert_eq!(s.cancel(a), Some("a"));
//! assert_eq!(s.next_deadline(), Some(Tick::from_millis(10)));
//!
//! let mut fired = Vec::new();
//! s.poll_expired(Tick::from_millis(50), &mut fired, usize::MAX);
//! let values: Vec<_> = fired.iter().map(|(_, v)| *v).collect();
//! assert_eq!(values, ["b", "c"]);
//! assert_eq!(fired[0].0, b);
//! assert!(s.is_empty());
//! ```
#![doc(test(attr(deny(warnings))))]

#[doc(hidden)]
pub mod fuzzing;
mod key;
mod recurrence;
mod scheduler;
pub mod selector;
mod slab;
mod tick;
mod wheel;

pub use key::Key;
pub use recurrence::{Recurrence, RecurrenceError, Resume};
pub use scheduler::Scheduler;
pub use tick::Tick;
