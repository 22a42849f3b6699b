//! Message selectors: SQL-92 conditional expressions over message headers,
//! as in Backendless Messaging subscriptions and JMS.
//!
//! A subscriber passes a selector such as
//! `priority > 5 AND region IN ('eu', 'us')`; a published message is
//! delivered to it only when the selector is TRUE for the message's headers.
//! [`Selector::parse`] checks and compiles the text once;
//! [`Selector::matches`] then evaluates it per message without allocating.
//!
//! ```
//! use herald_core::selector::{Selector, Truth};
//!
//! let s = Selector::parse("foo > 10").unwrap();
//! let delivered: Vec<_> = ["5", "10", "20", "50"]
//!     .into_iter()
//!     .filter(|v| s.matches(&[("foo", *v)]))
//!     .collect();
//! assert_eq!(delivered, ["20", "50"]);
//! // No `foo` header at all: UNKNOWN, so not delivered either.
//! assert_eq!(s.evaluate(&[("bar", "1")]), Truth::Unknown);
//! assert!(!s.matches(&[("bar", "1")]));
//! ```
//!
//! # Syntax
//!
//! | form | example |
//! |---|---|
//! | comparison | `a = 1`, `a <> 'x'`, `a != 'x'`, `a < 1`, `a <= 1`, `a > 1`, `a >= 1` |
//! | logic | `NOT c`, `c AND d`, `c OR d`, `( c )` |
//! | set | `a IN ('x', 'y')`, `a NOT IN (1, 2)` |
//! | pattern | `a LIKE 'ab%_'`, `a NOT LIKE '50!%' ESCAPE '!'` |
//! | range | `a BETWEEN 1 AND 5`, `a NOT BETWEEN 'a' AND 'm'` |
//! | presence | `a IS NULL`, `a IS NOT NULL` |
//! | boolean | `TRUE`, `FALSE`, a bare header: `urgent AND a = 1` |
//!
//! Precedence, tightest first: comparisons and the other predicates, `NOT`,
//! `AND`, `OR`. So `NOT a = 1 OR b = 2 AND c = 3` is
//! `(NOT (a = 1)) OR ((b = 2) AND (c = 3))`. Keywords (`AND`, `OR`, `NOT`,
//! `IN`, `LIKE`, `ESCAPE`, `BETWEEN`, `IS`, `NULL`, `TRUE`, `FALSE`) are
//! case-insensitive. There is no arithmetic.
//!
//! **Header names** are case-sensitive. A bare name starts with a letter,
//! `_` or `$` and goes on with letters, ASCII digits, `_`, `$` and `.`; it
//! may also contain `-`, but only where a letter follows the `-`, so
//! `ios-alert-title` is one name while `a-1` is the name `a` followed by the
//! number `-1` (an error, since there is no arithmetic). "Letter" means a
//! Unicode alphabetic character. Any other name, including one spelled like
//! a keyword, is written in double quotes, with `""` for a quote inside:
//! `"weird name" = 1`, `"and" IS NULL`, `"a-1" > 0`.
//!
//! **Literals**: strings in single quotes with `''` for a quote inside
//! (`'it''s'`); numbers with an optional sign, fraction and exponent (`20`,
//! `-1.5`, `+.5`, `1.5e3`, `2E-4`), written without a space after the sign;
//! `TRUE` and `FALSE`. A number without fraction or exponent that fits an
//! `i64` is an integer, anything else a double; literals too large for a
//! double (`1e999`) are rejected.
//!
//! # Meaning
//!
//! Evaluation uses SQL's three-valued logic ([`Truth`]): a predicate on a
//! missing header is UNKNOWN (except `IS NULL`), `NOT UNKNOWN` is UNKNOWN,
//! `UNKNOWN AND FALSE` is FALSE, `UNKNOWN OR TRUE` is TRUE, and a message
//! matches only when the whole selector is TRUE. So `NOT (a = 'x')` does not
//! match a message without an `a` header.
//!
//! Header values are strings (publishers' numbers arrive as `"20"`); what a
//! comparison means depends on what the header is compared with:
//!
//! | compared with | the header value is | result when it isn't |
//! |---|---|---|
//! | a number literal | parsed as a number with the literal grammar above (no surrounding spaces; `"10.0"` and `"1e1"` equal `10`) and compared numerically | UNKNOWN (`"abc" > 10`) |
//! | a string literal | compared as a string: `=` / `<>` exactly, `<` `<=` `>` `>=` by byte order of the UTF-8 (which is Unicode code point order), case-sensitive | — |
//! | `TRUE` / `FALSE` | `"true"` / `"false"` in any case | UNKNOWN (`"yes" = TRUE`) |
//! | another header | compared numerically if both parse as numbers, else as strings | — |
//!
//! Numbers compare exactly: two integers as integers (so
//! `9007199254740993 > 9007199254740992` even though a double cannot tell
//! them apart), an integer and a double without rounding the integer.
//! Literals compare with literals the same way (`1 = 1.0` is TRUE);
//! comparing constants of different kinds (`1 = 'a'`) is a parse error, and
//! so is ordering booleans (`a < TRUE`) or using them with `BETWEEN`.
//!
//! * `a BETWEEN l AND h` is `a >= l AND a <= h`; `NOT BETWEEN` its negation.
//! * `a IN (v1, v2, ...)` is TRUE when `a = v` is TRUE for some `v`, UNKNOWN
//!   when none is TRUE but one is UNKNOWN (always the case when `a` is
//!   missing), else FALSE; `NOT IN` is its negation. List items are
//!   literals; each is compared with `a` as above.
//! * `a LIKE p` matches the string value of `a` against the whole of `p`,
//!   where `%` stands for any run of characters (including none) and `_` for
//!   exactly one character (Unicode scalar value). With `ESCAPE 'c'`, `c`
//!   followed by `%`, `_` or `c` stands for that character literally; `c`
//!   followed by anything else, or ending the pattern, is a parse error.
//!   UNKNOWN when `a` is missing. Matching never backtracks: it takes
//!   O(value length + pattern length) steps, except that a `%`-free run
//!   containing `_` whose span from its first to its last literal character
//!   is longer than 64 characters costs O(value length × span / 64) (a
//!   bit-parallel search, one machine word per 64 characters).
//! * `a IS NULL` is TRUE exactly when the message has no header `a`;
//!   `IS NOT NULL` when it has one (even an empty one).
//! * A bare header used as a condition is TRUE when its value is `"true"`
//!   (any case), FALSE when `"false"`, otherwise UNKNOWN.
//!
//! # Limits
//!
//! A selector may be at most [`Selector::MAX_LEN`] bytes long and nest
//! parentheses and `NOT`s at most [`Selector::MAX_DEPTH`] deep; longer or
//! deeper ones are rejected with a [`SelectorError`], as is anything else
//! malformed. No input makes parsing or evaluation panic. Parsing does not
//! recurse; evaluation, `Display` and the like recurse once or twice per
//! nesting level, so even the deepest selector needs only about 128 KiB of
//! stack in an optimised build (512 KiB unoptimised).

mod ast;
mod error;
mod eval;
mod headers;
mod lexer;
pub(crate) mod like;
mod number;
mod parser;
mod shift_and;
mod truth;

use std::fmt;
use std::str::FromStr;

pub use error::SelectorError;
pub use headers::Headers;
pub use truth::Truth;

/// A parsed message selector, ready to evaluate against messages.
///
/// Parse once with [`Selector::parse`] (or `str::parse`), then call
/// [`matches`](Selector::matches) per message: evaluation allocates nothing,
/// since number literals are parsed and `LIKE` patterns compiled up front.
/// The module documentation describes the syntax and semantics.
///
/// `Display` prints a canonical form (upper-case keywords, `<>` for
/// not-equal, parentheses only where needed, names quoted only where needed)
/// that parses back to an equal selector; [`source`](Selector::source) keeps
/// the text as given. Two selectors are equal when they parse to the same
/// expression, however they were spelled.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
///
/// use herald_core::selector::Selector;
///
/// let s: Selector = "(priority >= 5 or vip = true) and ios-alert-title like 'Sale%'"
///     .parse()
///     .unwrap();
/// assert_eq!(
///     s.to_string(),
///     "(priority >= 5 OR vip = TRUE) AND ios-alert-title LIKE 'Sale%'"
/// );
/// assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
///
/// let mut headers = HashMap::new();
/// headers.insert("priority".to_string(), "7".to_string());
/// headers.insert("ios-alert-title".to_string(), "Sale: 20% off".to_string());
/// assert!(s.matches(&headers));
/// headers.insert("priority".to_string(), "3".to_string());
/// assert!(!s.matches(&headers)); // vip missing: UNKNOWN OR FALSE
/// headers.insert("vip".to_string(), "TRUE".to_string());
/// assert!(s.matches(&headers));
/// ```
#[derive(Clone, Debug)]
pub struct Selector {
    source: Box<str>,
    expr: ast::Expr,
}

impl Selector {
    /// The longest selector accepted, in bytes (64 KiB).
    pub const MAX_LEN: usize = 64 * 1024;

    /// How deep parentheses and `NOT`s may nest (each `(` and each prefix
    /// `NOT` is one level).
    pub const MAX_DEPTH: usize = 256;

    /// Parses and checks a selector.
    ///
    /// # Errors
    ///
    /// A [`SelectorError`] (code 5012) saying what is wrong and where, for
    /// anything that is not a selector as described in the
    /// [module documentation](self), including the empty string and
    /// selectors over the [length](Self::MAX_LEN) or
    /// [nesting](Self::MAX_DEPTH) limits.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// assert!(Selector::parse("region IN ('eu', 'us') AND NOT muted").is_ok());
    ///
    /// let err = Selector::parse("a IN ()").unwrap_err();
    /// assert_eq!(err.column(), 7);
    /// assert_eq!(err.message(), "expected a literal after '(', found ')'");
    /// ```
    pub fn parse(src: &str) -> Result<Self, SelectorError> {
        let expr = parser::parse(src)?;
        Ok(Self {
            source: src.into(),
            expr,
        })
    }

    /// Whether a message with these headers is delivered: true only when the
    /// selector [evaluates](Self::evaluate) to [`Truth::True`].
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// let s = Selector::parse("NOT (a = 'x')").unwrap();
    /// assert!(s.matches(&[("a", "y")]));
    /// assert!(!s.matches(&[("a", "x")]));
    /// assert!(!s.matches(&[("b", "y")])); // a missing: NOT UNKNOWN
    /// ```
    #[must_use]
    pub fn matches<H: Headers + ?Sized>(&self, headers: &H) -> bool {
        self.evaluate(headers).is_true()
    }

    /// The three-valued result of the selector for a message with these
    /// headers.
    ///
    /// ```
    /// use herald_core::selector::{Selector, Truth};
    ///
    /// let s = Selector::parse("a > 10 OR b IS NULL").unwrap();
    /// assert_eq!(s.evaluate(&[("a", "11"), ("b", "")]), Truth::True);
    /// assert_eq!(s.evaluate(&[("a", "abc"), ("b", "")]), Truth::Unknown);
    /// assert_eq!(s.evaluate(&[("a", "9"), ("b", "")]), Truth::False);
    /// assert_eq!(s.evaluate(&[("a", "9")]), Truth::True);
    /// ```
    #[must_use]
    pub fn evaluate<H: Headers + ?Sized>(&self, headers: &H) -> Truth {
        self.expr.eval(headers)
    }

    /// The selector text exactly as it was parsed.
    ///
    /// ```
    /// use herald_core::selector::Selector;
    ///
    /// let s = Selector::parse("a != 1").unwrap();
    /// assert_eq!(s.source(), "a != 1");
    /// assert_eq!(s.to_string(), "a <> 1");
    /// ```
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The header names the selector reads, sorted, without repeats (for
    /// the fuzzing checks, which build header maps around them).
    pub(crate) fn header_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.expr.for_each_header(&mut |name| names.push(name));
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl PartialEq for Selector {
    /// Equal when they parse to the same expression (the source text may
    /// differ in case, spacing, redundant parentheses, `!=` versus `<>`...).
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl fmt::Display for Selector {
    /// The canonical form; it parses back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    /// Same as [`Selector::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
