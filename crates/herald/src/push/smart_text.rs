//! `SmartText`: template text with `{var}` and `{var|default}` placeholders.

use std::fmt;

use herald_core::selector::Headers;

/// Template text with placeholders, parsed once and rendered per device.
///
/// * `{name}` is replaced by the value of `name`, or by the empty string
///   when there is none;
/// * `{name|default}` by the value, or else by `default`;
/// * `{{` and `}}` write a literal `{` and `}`; a `}` that closes nothing
///   is written as it is.
///
/// Names are trimmed; a name cannot be empty or contain `{`, a default
/// cannot contain `{` or `}`.
///
/// Values come from any [`Headers`] (a map, a slice of pairs, a device's
/// registration, or a chain of them as [`Lookup`]).
///
/// # Examples
///
/// ```
/// use herald::SmartText;
///
/// let text = SmartText::parse("Hallo {firstName|Freund}, {{literal}} {missing}!")?;
/// assert_eq!(text.render(&[("firstName", "Ada")]), "Hallo Ada, {literal} !");
/// assert_eq!(text.render(&()), "Hallo Freund, {literal} !");
///
/// // In a segment query every value becomes a quoted string literal:
/// let query = SmartText::parse("lang = {lang|en} AND city = {city}")?;
/// assert_eq!(query.render_quoted(&[("city", "O'Brien' OR 1=1")]),
///            "lang = 'en' AND city = 'O''Brien'' OR 1=1'");
///
/// assert_eq!(SmartText::parse("Hi {name").unwrap_err().to_string(),
///            "'{' at byte 3 is not closed (write '{{' for a literal brace)");
/// # Ok::<(), herald::SmartTextError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartText {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var {
        name: String,
        default: Option<String>,
    },
}

/// Why template text does not parse, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartTextError {
    at: usize,
    what: &'static str,
}

impl SmartTextError {
    /// The byte offset of the placeholder that is wrong.
    pub fn position(&self) -> usize {
        self.at
    }
}

impl fmt::Display for SmartTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{{' at byte {} {}", self.at, self.what)
    }
}

impl std::error::Error for SmartTextError {}

impl SmartText {
    /// Parses `src`.
    ///
    /// # Errors
    ///
    /// A `{` that is not closed, or a placeholder with an empty name or a
    /// brace inside it.
    pub fn parse(src: &str) -> Result<Self, SmartTextError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let brace = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if after.as_bytes().first() == Some(&brace) {
                // `{{` or `}}`: a literal brace.
                text.push(char::from(brace));
                offset += i + 2;
                rest = &after[1..];
                continue;
            }
            if brace == b'}' {
                text.push('}');
                offset += i + 1;
                rest = after;
                continue;
            }
            let at = offset + i;
            let err = |what| Err(SmartTextError { at, what });
            let Some(end) = after.find(['{', '}']) else {
                return err("is not closed (write '{{' for a literal brace)");
            };
            if after.as_bytes()[end] == b'{' {
                return err("holds another '{' before its '}'");
            }
            let inner = &after[..end];
            let (name, default) = match inner.split_once('|') {
                Some((name, default)) => (name.trim(), Some(default.to_owned())),
                None => (inner.trim(), None),
            };
            if name.is_empty() {
                return err("starts a placeholder with no name");
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Var {
                name: name.to_owned(),
                default,
            });
            offset += i + 1 + end + 1;
            rest = &after[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { parts })
    }

    /// Whether the text has no placeholder.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The placeholders' names, in order (with repeats).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text with each placeholder replaced by its value from `values`,
    /// else its default, else nothing.
    pub fn render<H: Headers + ?Sized>(&self, values: &H) -> String {
        self.render_with(values, |out, v| out.push_str(v))
    }

    /// Like [`render`](Self::render), but each placeholder's value (or
    /// default, or the empty string) is written as a single-quoted string
    /// literal with `'` doubled: the form a segment query needs, so that a
    /// value can never be read as selector syntax.
    pub fn render_quoted<H: Headers + ?Sized>(&self, values: &H) -> String {
        self.render_with(values, |out, v| {
            out.push('\'');
            for c in v.chars() {
                if c == '\'' {
                    out.push('\'');
                }
                out.push(c);
            }
            out.push('\'');
        })
    }

    fn render_with<H: Headers + ?Sized>(
        &self,
        values: &H,
        put: impl Fn(&mut String, &str),
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { name, default } => {
                    let v = values.header(name).or(default.as_deref()).unwrap_or("");
                    put(&mut out, v);
                }
            }
        }
        out
    }
}

/// Two sources of values, the first one first: a template's send values,
/// then the device's registration.
///
/// ```
/// use herald::{Lookup, SmartText};
///
/// let text = SmartText::parse("{a} {b} {c|-}")?;
/// let send = [("a", "1")];
/// let device = [("a", "x"), ("b", "2")];
/// assert_eq!(text.render(&Lookup(&send, &device)), "1 2 -");
/// # Ok::<(), herald::SmartTextError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a, A: ?Sized, B: ?Sized>(pub &'a A, pub &'a B);

impl<A: Headers + ?Sized, B: Headers + ?Sized> Headers for Lookup<'_, A, B> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name).or_else(|| self.1.header(name))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn braces_and_placeholders() {
        let r = |src: &str| {
            SmartText::parse(src)
                .unwrap()
                .render(&[("x", "X"), ("y", "")])
        };
        assert_eq!(r("plain"), "plain");
        assert_eq!(r(""), "");
        assert_eq!(r("{x}{x}"), "XX");
        assert_eq!(r("{ x }"), "X");
        assert_eq!(r("{y|d}"), "", "an empty value is a value");
        assert_eq!(r("{z|d e f}"), "d e f");
        assert_eq!(r("{z|}"), "");
        assert_eq!(r("{z}"), "");
        assert_eq!(r("{x|a|b}"), "X");
        assert_eq!(r("{z|a|b}"), "a|b");
        assert_eq!(r("{{x}}"), "{x}");
        assert_eq!(r("{{{x}}}"), "{X}");
        assert_eq!(r("a } b"), "a } b");
        assert_eq!(r("é{x}ü"), "éXü");
    }

    #[test]
    fn errors_point_at_the_brace() {
        let e = |src: &str| SmartText::parse(src).unwrap_err();
        assert_eq!(e("ab{").position(), 2);
        assert_eq!(
            e("{}").to_string(),
            "'{' at byte 0 starts a placeholder with no name"
        );
        assert_eq!(e("{ |d}").position(), 0);
        assert_eq!(
            e("x{a{b}}").to_string(),
            "'{' at byte 1 holds another '{' before its '}'"
        );
        assert_eq!(e("{{}}{").position(), 4);
        assert_eq!(e("ü{x}{").position(), 5);
    }

    #[test]
    fn quoted_values_are_literals() {
        let q = SmartText::parse("a = {v}").unwrap();
        assert_eq!(q.render_quoted(&[("v", "'")]), "a = ''''");
        assert_eq!(q.render_quoted(&()), "a = ''");
        assert!(SmartText::parse("n").unwrap().is_constant());
        assert_eq!(q.placeholders().collect::<Vec<_>>(), ["v"]);
    }

    proptest! {
        /// Any value, quoted into a query, is read back by the selector
        /// parser as exactly that string, never as syntax.
        #[test]
        fn a_quoted_value_is_one_string_literal(v in any::<String>()) {
            let q = SmartText::parse("a = {v}").unwrap();
            let src = q.render_quoted(&[("v", v.as_str())]);
            let sel = herald_core::selector::Selector::parse(&src).unwrap();
            prop_assert!(sel.matches(&[("a", v.as_str())]));
        }

        /// Text without braces renders to itself, and doubling every brace
        /// of any text escapes it.
        #[test]
        fn escaped_text_renders_to_itself(s in any::<String>()) {
            let escaped = s.replace('{', "{{").replace('}', "}}");
            let t = SmartText::parse(&escaped).unwrap();
            prop_assert!(t.is_constant());
            prop_assert_eq!(t.render(&()), s);
        }

        /// Parsing never panics, and an error points inside the text.
        #[test]
        fn parse_is_total(s in "[{}|a-c ]{0,24}") {
            match SmartText::parse(&s) {
                Ok(t) => { let _ = t.render(&[("a", "1")]); }
                Err(e) => prop_assert!(e.position() < s.len()),
            }
        }
    }
}
