//! `StoreStats`: what a store reports about itself (see
//! [`Store::stats`](super::Store::stats)).

/// A store's state and counters, as [`Store::stats`](super::Store::stats)
/// reports them: cheap to read (no I/O), for health checks and metrics.
///
/// Build one from [`StoreStats::default`] and set the fields a store
/// knows; the rest stay at their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Why the store cannot write right now (a full or failing disk, a lost
    /// connection); `None` while it can. Writes then fail with
    /// [`StoreError::Unavailable`](super::StoreError::Unavailable) and the
    /// store is working on coming back by itself.
    pub unavailable: Option<String>,
    /// Damaged messages the store has set aside (quarantined): they are
    /// never delivered, and a status read of one is an error.
    pub quarantined: u64,
    /// Finished messages purged by the store's retention since it was
    /// opened (a status read of one answers `unknown`).
    pub purged: u64,
}

impl StoreStats {
    /// Whether the store can write (`unavailable` is `None`).
    pub fn is_writable(&self) -> bool {
        self.unavailable.is_none()
    }
}
