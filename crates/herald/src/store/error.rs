//! `StoreError`.

use std::error::Error as StdError;

use crate::MessageId;

/// Why a store operation failed. Errors are the store's, never the caller's:
/// the engine reports them as [`Error::Store`](crate::Error::Store) and
/// acknowledges nothing that was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// [`Store::insert`](super::Store::insert) of an id that is already
    /// stored.
    #[error("message {0} is already stored")]
    Duplicate(MessageId),
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
    /// The operation did not happen, and may succeed if tried again: a lost
    /// connection, a busy or full disk, a serialization conflict.
    #[error("store unavailable: {0}")]
    Unavailable(Box<dyn StdError + Send + Sync>),
    /// Anything else the backend reports (a damaged record, a bug): trying
    /// again will not help.
    #[error(transparent)]
    Other(Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    /// Whether the same call may succeed later ([`Unavailable`](Self::Unavailable)).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// An [`Unavailable`](Self::Unavailable) error with this text.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::Unavailable(msg.into().into())
    }

    /// An [`Other`](Self::Other) error with this text.
    pub fn other(msg: impl Into<String>) -> Self {
        Self::Other(msg.into().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_are_worth_a_retry() {
        assert!(StoreError::unavailable("disk full").is_retryable());
        assert!(!StoreError::other("corrupt").is_retryable());
        assert!(!StoreError::Closed.is_retryable());
        assert!(!StoreError::Duplicate(MessageId::from_u128(1)).is_retryable());
        assert_eq!(
            StoreError::unavailable("disk full").to_string(),
            "store unavailable: disk full"
        );
    }
}
