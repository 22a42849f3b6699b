//! The parsed form of a selector and its canonical `Display`.

use std::fmt::{self, Display, Write as _};

use super::lexer::{CmpOp, is_bare_ident};
use super::like::Pattern;
use super::number::Number;

/// A constant written in the selector.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Num(Number),
    Str(String),
    Bool(bool),
}

impl Literal {
    /// The kind of value, for type errors ("a number", "a string"...).
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Self::Num(_) => "a number",
            Self::Str(_) => "a string",
            Self::Bool(_) => "a boolean",
        }
    }
}

/// Something that has a value when evaluated: a header or a constant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    /// A header, by exact (case-sensitive) name.
    Header(String),
    Lit(Literal),
}

/// A condition. `And` / `Or` are n-ary (at least two children, never a
/// child of their own kind), so long chains do not nest.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Self>),
    And(Vec<Self>),
    Not(Box<Self>),
    Cmp(Operand, CmpOp, Operand),
    Between {
        subject: Operand,
        negated: bool,
        low: Operand,
        high: Operand,
    },
    In {
        subject: Operand,
        negated: bool,
        list: Vec<Literal>,
    },
    Like {
        subject: Operand,
        negated: bool,
        pattern: Pattern,
    },
    IsNull {
        subject: Operand,
        negated: bool,
    },
    /// A bare header (true when its value is "true", any case) or `TRUE` /
    /// `FALSE` used as a condition.
    Bool(Operand),
}

impl Operand {
    fn header(&self) -> Option<&str> {
        match self {
            Self::Header(name) => Some(name),
            Self::Lit(_) => None,
        }
    }
}

impl Expr {
    /// Calls `f` with every header name the expression reads.
    pub(crate) fn for_each_header<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        let operands: [Option<&Operand>; 3] = match self {
            Self::Or(children) | Self::And(children) => {
                for child in children {
                    child.for_each_header(f);
                }
                return;
            }
            Self::Not(inner) => return inner.for_each_header(f),
            Self::Cmp(left, _, right) => [Some(left), Some(right), None],
            Self::Between {
                subject, low, high, ..
            } => [Some(subject), Some(low), Some(high)],
            Self::In { subject, .. }
            | Self::Like { subject, .. }
            | Self::IsNull { subject, .. }
            | Self::Bool(subject) => [Some(subject), None, None],
        };
        for name in operands.into_iter().flatten().filter_map(Operand::header) {
            f(name);
        }
    }
}

/// Writes `s` as a single-quoted string literal, doubling quotes.
pub(crate) fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            f.write_str("''")?;
        }
        f.write_str(part)?;
    }
    f.write_char('\'')
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => n.fmt(f),
            Self::Str(s) => write_string(f, s),
            Self::Bool(true) => f.write_str("TRUE"),
            Self::Bool(false) => f.write_str("FALSE"),
        }
    }
}

impl fmt::Display for Operand {
    /// Header names print bare when they lex back as themselves, otherwise
    /// in double quotes with `""` for a quote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) if is_bare_ident(name) => f.write_str(name),
            Self::Header(name) => {
                f.write_char('"')?;
                for (i, part) in name.split('"').enumerate() {
                    if i > 0 {
                        f.write_str("\"\"")?;
                    }
                    f.write_str(part)?;
                }
                f.write_char('"')
            }
            Self::Lit(lit) => lit.fmt(f),
        }
    }
}

fn not(negated: bool) -> &'static str {
    if negated { "NOT " } else { "" }
}

impl Expr {
    /// Writes `self`, in parentheses when it is an `AND` / `OR` and
    /// `parenthesize_and` (or it is an `OR`).
    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, parenthesize_and: bool) -> fmt::Result {
        let wrap =
            matches!(self, Self::Or(_)) || (parenthesize_and && matches!(self, Self::And(_)));
        // Plain writes, not `write!`: keeps each level of recursion cheap.
        if wrap {
            f.write_char('(')?;
            self.fmt(f)?;
            f.write_char(')')
        } else {
            self.fmt(f)
        }
    }
}

impl fmt::Display for Expr {
    /// The canonical form: upper-case keywords, single spaces, `<>` for
    /// not-equal, parentheses only where precedence needs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Or(children) | Self::And(children) => {
                let (sep, wrap_and) = match self {
                    Self::Or(_) => (" OR ", false),
                    _ => (" AND ", true),
                };
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    child.fmt_child(f, wrap_and)?;
                }
                Ok(())
            }
            Self::Not(inner) => {
                f.write_str("NOT ")?;
                inner.fmt_child(f, true)
            }
            Self::Cmp(left, op, right) => write!(f, "{left} {} {right}", op.as_str()),
            Self::Between {
                subject,
                negated,
                low,
                high,
            } => write!(f, "{subject} {}BETWEEN {low} AND {high}", not(*negated)),
            Self::In {
                subject,
                negated,
                list,
            } => {
                write!(f, "{subject} {}IN (", not(*negated))?;
                for (i, lit) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    lit.fmt(f)?;
                }
                f.write_char(')')
            }
            Self::Like {
                subject,
                negated,
                pattern,
            } => write!(f, "{subject} {}LIKE {pattern}", not(*negated)),
            Self::IsNull { subject, negated } => {
                write!(f, "{subject} IS {}NULL", not(*negated))
            }
            Self::Bool(operand) => operand.fmt(f),
        }
    }
}
