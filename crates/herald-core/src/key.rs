//! [`Key`]: a generational handle to a scheduled entry.

use std::fmt;

/// A handle to an entry in a [`Scheduler`](crate::Scheduler), returned by
/// [`insert_at`](crate::Scheduler::insert_at) and handed back with the value
/// when the entry expires.
///
/// Keys are *generational*: a key names one slot of the scheduler's slab and
/// the generation that slot had when the entry was inserted. Once the entry is
/// cancelled or has expired, the slot's generation moves on, so the old key is
/// rejected ([`cancel`](crate::Scheduler::cancel) returns `None`,
/// [`reschedule`](crate::Scheduler::reschedule) returns `false`) and can never
/// reach a newer entry that reuses the slot. A key stays valid across
/// [`reschedule`](crate::Scheduler::reschedule).
///
/// Generations are 32-bit and each slot advances by two per use, so a stale key
/// could only alias after the same slot has been reused 2³¹ times while the
/// stale key was kept (the same trade-off as `slotmap`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Key {
    /// The slab slot this key names. Stable for the entry's lifetime; useful
    /// as a dense index into side tables.
    #[inline]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot generation this key was issued for (always odd).
    #[inline]
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{})", self.index, self.generation)
    }
}
