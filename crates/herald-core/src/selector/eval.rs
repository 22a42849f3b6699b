//! Evaluation: an [`Expr`] against a message's headers, in SQL three-valued
//! logic, without allocating.

use std::cmp::Ordering;

use super::ast::{Expr, Literal, Operand};
use super::headers::Headers;
use super::lexer::CmpOp;
use super::number;
use super::truth::Truth;

/// An operand's value for one message.
#[derive(Clone, Copy)]
enum Value<'a> {
    /// The header is not there.
    Missing,
    /// A header's value: just text, interpreted by what it is compared with.
    Text(&'a str),
    /// A constant from the selector.
    Lit(&'a Literal),
}

fn resolve<'a, H: Headers + ?Sized>(operand: &'a Operand, headers: &'a H) -> Value<'a> {
    match operand {
        Operand::Header(name) => headers.header(name).map_or(Value::Missing, Value::Text),
        Operand::Lit(lit) => Value::Lit(lit),
    }
}

/// `"true"` / `"false"` in any case.
fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A header's text against a constant, `None` when they cannot be compared.
fn text_vs_literal(text: &str, lit: &Literal) -> Option<Ordering> {
    match lit {
        Literal::Num(n) => number::parse(text)?.compare(*n),
        Literal::Str(s) => Some(text.cmp(s)),
        Literal::Bool(b) => parse_bool(text).map(|v| v.cmp(b)),
    }
}

/// Orders two values; `None` is UNKNOWN.
fn compare(left: Value<'_>, right: Value<'_>) -> Option<Ordering> {
    match (left, right) {
        (Value::Missing, _) | (_, Value::Missing) => None,
        (Value::Text(a), Value::Text(b)) => match (number::parse(a), number::parse(b)) {
            (Some(x), Some(y)) => x.compare(y),
            _ => Some(a.cmp(b)),
        },
        (Value::Text(t), Value::Lit(lit)) => text_vs_literal(t, lit),
        (Value::Lit(lit), Value::Text(t)) => text_vs_literal(t, lit).map(Ordering::reverse),
        (Value::Lit(a), Value::Lit(b)) => match (a, b) {
            (Literal::Num(x), Literal::Num(y)) => x.compare(*y),
            (Literal::Str(x), Literal::Str(y)) => Some(x.cmp(y)),
            (Literal::Bool(x), Literal::Bool(y)) => Some(x.cmp(y)),
            // Rejected by the parser.
            _ => None,
        },
    }
}

fn apply(op: CmpOp, order: Option<Ordering>) -> Truth {
    let Some(order) = order else {
        return Truth::Unknown;
    };
    Truth::from(match op {
        CmpOp::Eq => order.is_eq(),
        CmpOp::Ne => order.is_ne(),
        CmpOp::Lt => order.is_lt(),
        CmpOp::Le => order.is_le(),
        CmpOp::Gt => order.is_gt(),
        CmpOp::Ge => order.is_ge(),
    })
}

fn negate_if(negated: bool, t: Truth) -> Truth {
    if negated { !t } else { t }
}

impl Expr {
    /// The truth of `self` for a message with `headers`. Recursion is as
    /// deep as the parser's nesting limit allows, no deeper.
    pub(crate) fn eval<H: Headers + ?Sized>(&self, headers: &H) -> Truth {
        match self {
            Self::Or(children) => {
                let mut result = Truth::False;
                for child in children {
                    match child.eval(headers) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                result
            }
            Self::And(children) => {
                let mut result = Truth::True;
                for child in children {
                    match child.eval(headers) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                result
            }
            Self::Not(inner) => !inner.eval(headers),
            Self::Cmp(left, op, right) => apply(
                *op,
                compare(resolve(left, headers), resolve(right, headers)),
            ),
            Self::Between {
                subject,
                negated,
                low,
                high,
            } => {
                let s = resolve(subject, headers);
                let above = apply(CmpOp::Ge, compare(s, resolve(low, headers)));
                let below = apply(CmpOp::Le, compare(s, resolve(high, headers)));
                negate_if(*negated, above.and(below))
            }
            Self::In {
                subject,
                negated,
                list,
            } => {
                let s = resolve(subject, headers);
                let mut result = Truth::False;
                for lit in list {
                    match apply(CmpOp::Eq, compare(s, Value::Lit(lit))) {
                        Truth::True => {
                            result = Truth::True;
                            break;
                        }
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                negate_if(*negated, result)
            }
            Self::Like {
                subject,
                negated,
                pattern,
            } => {
                let text = match resolve(subject, headers) {
                    Value::Text(t) => t,
                    Value::Lit(Literal::Str(s)) => s,
                    // Missing, or a non-string constant (rejected by the
                    // parser).
                    _ => return Truth::Unknown,
                };
                negate_if(*negated, Truth::from(pattern.matches(text)))
            }
            Self::IsNull { subject, negated } => {
                let missing = matches!(resolve(subject, headers), Value::Missing);
                negate_if(*negated, Truth::from(missing))
            }
            Self::Bool(operand) => match resolve(operand, headers) {
                Value::Text(t) => Truth::from(parse_bool(t)),
                Value::Lit(Literal::Bool(b)) => Truth::from(*b),
                _ => Truth::Unknown,
            },
        }
    }
}
