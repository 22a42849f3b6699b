//! [`Headers`]: where a selector reads header values from.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

/// A message's headers, looked up by exact (case-sensitive) name.
///
/// Implemented for the usual containers of name/value pairs:
///
/// * `HashMap<K, V, S>` (any hasher) and `BTreeMap<K, V>` whose keys borrow
///   as `str` (`String`, `&str`, `Box<str>`...) and whose values are
///   `AsRef<str>`;
/// * slices, arrays and `Vec`s of `(K, V)` pairs with `K, V: AsRef<str>`
///   (`(&str, &str)`, `(String, String)`...): a linear scan where the
///   *first* pair with the name wins;
/// * `()`, a message without headers;
/// * references to any of these.
///
/// Implement it for your own message type to evaluate selectors without
/// copying headers into a map.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
///
/// use herald_core::selector::{Headers, Selector};
///
/// struct Message {
///     priority: Option<String>,
/// }
///
/// impl Headers for Message {
///     fn header(&self, name: &str) -> Option<&str> {
///         match name {
///             "priority" => self.priority.as_deref(),
///             _ => None,
///         }
///     }
/// }
///
/// let s = Selector::parse("priority >= 5").unwrap();
/// assert!(s.matches(&Message { priority: Some("7".into()) }));
/// assert!(!s.matches(&Message { priority: None }));
///
/// let map = HashMap::from([("priority".to_string(), "9".to_string())]);
/// assert!(s.matches(&map));
/// assert!(s.matches(&[("priority", "5")]));
/// ```
pub trait Headers {
    /// The value of the header called `name`, or `None` if the message has
    /// no such header.
    ///
    /// ```
    /// use herald_core::selector::Headers;
    ///
    /// let h = [("a", "1"), ("a", "2")];
    /// assert_eq!(h.header("a"), Some("1")); // first wins
    /// assert_eq!(h.header("A"), None); // names are case-sensitive
    /// ```
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K, V, S> Headers for HashMap<K, V, S>
where
    K: Borrow<str> + Eq + Hash,
    V: AsRef<str>,
    S: BuildHasher,
{
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).map(AsRef::as_ref)
    }
}

impl<K, V> Headers for BTreeMap<K, V>
where
    K: Borrow<str> + Ord,
    V: AsRef<str>,
{
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).map(AsRef::as_ref)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl Headers for () {
    /// No headers at all.
    ///
    /// ```
    /// use herald_core::selector::{Selector, Truth};
    ///
    /// assert_eq!(Selector::parse("a IS NULL").unwrap().evaluate(&()), Truth::True);
    /// assert_eq!(Selector::parse("a = 1").unwrap().evaluate(&()), Truth::Unknown);
    /// ```
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

impl<T: Headers + ?Sized> Headers for &T {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}
