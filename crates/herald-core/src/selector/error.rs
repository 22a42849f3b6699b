//! [`SelectorError`]: why a selector was rejected, and where.

use std::borrow::Cow;

/// A selector that could not be parsed.
///
/// Carries the Backendless error code for an invalid selector
/// ([`SelectorError::CODE`], 5012), where the problem is (a byte offset into
/// the source and a 1-based column counted in characters) and a message for
/// a person. Its `Display` reads
/// `invalid selector at column 7: expected a value after '>'`.
///
/// # Example
///
/// ```
/// use herald_core::selector::{Selector, SelectorError};
///
/// let err = Selector::parse("foo > ").unwrap_err();
/// assert_eq!(err.code(), SelectorError::CODE);
/// assert_eq!(err.position(), 6); // byte offset: the end of the input
/// assert_eq!(err.column(), 7); // 1-based, in characters
/// assert_eq!(err.message(), "expected a value after '>'");
/// assert_eq!(
///     err.to_string(),
///     "invalid selector at column 7: expected a value after '>'"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at column {column}: {message}")]
pub struct SelectorError {
    position: usize,
    column: usize,
    message: Cow<'static, str>,
}

impl SelectorError {
    /// The Backendless error code for an invalid selector.
    ///
    /// ```
    /// assert_eq!(herald_core::selector::SelectorError::CODE, 5012);
    /// ```
    pub const CODE: u32 = 5012;

    /// Builds an error at byte offset `position` of `src`; `position` is
    /// clamped to `src` and moved back to a character boundary.
    pub(crate) fn new(src: &str, position: usize, message: impl Into<Cow<'static, str>>) -> Self {
        let mut position = position.min(src.len());
        while !src.is_char_boundary(position) {
            position -= 1;
        }
        Self {
            position,
            column: src[..position].chars().count() + 1,
            message: message.into(),
        }
    }

    /// The error code, always [`SelectorError::CODE`] (5012), for API
    /// responses that report Backendless codes.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// assert_eq!(Selector::parse("").unwrap_err().code(), 5012);
    /// ```
    #[must_use]
    pub const fn code(&self) -> u32 {
        Self::CODE
    }

    /// Byte offset into the source where the problem was found (the start of
    /// the offending token, or the length of the source when the selector
    /// ended too early). Always a character boundary.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// let src = "a = 1 b";
    /// let err = Selector::parse(src).unwrap_err();
    /// assert_eq!(&src[err.position()..], "b");
    /// ```
    #[must_use]
    pub const fn position(&self) -> usize {
        self.position
    }

    /// The same place as [`position`](Self::position), as a 1-based column
    /// counted in characters (Unicode scalar values), for people.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// let err = Selector::parse("é = 1 b").unwrap_err();
    /// assert_eq!(err.position(), 7); // 'é' is two bytes
    /// assert_eq!(err.column(), 7); // ...but one column
    /// ```
    #[must_use]
    pub const fn column(&self) -> usize {
        self.column
    }

    /// What is wrong, without the position.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// let err = Selector::parse("a = 'open").unwrap_err();
    /// assert_eq!(err.message(), "unterminated string literal");
    /// assert_eq!(err.column(), 5);
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}
