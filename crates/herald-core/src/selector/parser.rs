//! The parser: the lexer's tokens to an [`Expr`]. Conditions nest through an
//! explicit stack rather than recursion, under a depth limit that also
//! bounds the recursion of everything that walks the tree afterwards
//! (evaluation, `Display`, `Drop`...).
//!
//! ```text
//! selector  := or
//! or        := and (OR and)*
//! and       := not (AND not)*
//! not       := NOT not | predicate
//! predicate := '(' or ')'
//!            | operand op operand
//!            | operand [NOT] BETWEEN operand AND operand
//!            | operand [NOT] IN '(' literal (',' literal)* ')'
//!            | operand [NOT] LIKE string [ESCAPE string]
//!            | operand IS [NOT] NULL
//!            | header | TRUE | FALSE
//! operand   := header | literal
//! literal   := string | number | TRUE | FALSE
//! ```

use std::borrow::Cow;
use std::mem;

use super::Selector;
use super::ast::{Expr, Literal, Operand};
use super::error::SelectorError;
use super::lexer::{Keyword, Lexer, Tok, Token};
use super::like::{Pattern, PatternError};

const MAX_DEPTH: usize = Selector::MAX_DEPTH;
const MAX_LEN: usize = Selector::MAX_LEN;

/// Parses a whole selector.
pub(crate) fn parse(src: &str) -> Result<Expr, SelectorError> {
    if src.len() > MAX_LEN {
        return Err(SelectorError::new(
            src,
            0,
            format!(
                "selector is {} bytes long; the limit is {MAX_LEN}",
                src.len()
            ),
        ));
    }
    let mut p = Parser::new(src)?;
    if p.peek.tok == Tok::Eof {
        return Err(SelectorError::new(src, 0, "empty selector"));
    }
    let expr = p.expression()?;
    match p.peek.tok {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.error_at(p.peek.start, "unmatched ')'")),
        _ => Err(p.expected("AND, OR or the end of the selector")),
    }
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The next token, not yet consumed.
    peek: Token,
    /// Span of the last consumed token, for "after 'x'" in messages.
    last: Option<(usize, usize)>,
    /// Open parentheses and `NOT`s around the current position.
    depth: usize,
}

/// A parenthesised group being parsed (or the whole selector): the
/// disjuncts finished so far and the conjuncts of the current one.
#[derive(Default)]
struct Group {
    ors: Vec<Expr>,
    ands: Vec<Expr>,
    /// `NOT`s written just before the `(` that opened the group.
    nots: usize,
    /// Byte offset of that `(`.
    open_at: usize,
}

impl Group {
    /// Ends the current run of `AND`s: it becomes one disjunct.
    fn end_conjunction(&mut self) {
        let conjunction = match <[Expr; 1]>::try_from(mem::take(&mut self.ands)) {
            Ok([only]) => only,
            Err(ands) => Expr::And(ands),
        };
        push_flat(&mut self.ors, conjunction, true);
    }

    /// The group as one expression (after [`end_conjunction`]).
    ///
    /// [`end_conjunction`]: Self::end_conjunction
    fn finish(self) -> Expr {
        match <[Expr; 1]>::try_from(self.ors) {
            Ok([only]) => only,
            Err(ors) => Expr::Or(ors),
        }
    }
}

/// `expr` under `nots` prefix `NOT`s.
fn negate(mut expr: Expr, nots: usize) -> Expr {
    for _ in 0..nots {
        expr = Expr::Not(Box::new(expr));
    }
    expr
}

/// Adds `expr` to the children of an n-ary node of the same kind, splicing
/// in its children if it is one itself.
fn push_flat(children: &mut Vec<Expr>, expr: Expr, or: bool) {
    match expr {
        Expr::Or(inner) if or => children.extend(inner),
        Expr::And(inner) if !or => children.extend(inner),
        other => children.push(other),
    }
}

/// The source text of a token for messages: quoted, shortened.
fn quote(text: &str) -> String {
    let mut out: String = text.chars().take(24).collect();
    if text.chars().nth(24).is_some() {
        out.push('…');
    }
    if text.starts_with(['\'', '"']) {
        out
    } else {
        format!("'{out}'")
    }
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, SelectorError> {
        let mut lexer = Lexer::new(src);
        let peek = lexer.next_token()?;
        Ok(Self {
            src,
            lexer,
            peek,
            last: None,
            depth: 0,
        })
    }

    /// Consumes the next token.
    fn bump(&mut self) -> Result<Token, SelectorError> {
        let next = self.lexer.next_token()?;
        let token = mem::replace(&mut self.peek, next);
        self.last = Some((token.start, token.end));
        Ok(token)
    }

    fn at(&self, keyword: Keyword) -> bool {
        self.peek.tok == Tok::Keyword(keyword)
    }

    /// Consumes the next token if it is `keyword`.
    fn eat(&mut self, keyword: Keyword) -> Result<bool, SelectorError> {
        let found = self.at(keyword);
        if found {
            self.bump()?;
        }
        Ok(found)
    }

    fn error_at(&self, at: usize, message: impl Into<Cow<'static, str>>) -> SelectorError {
        SelectorError::new(self.src, at, message)
    }

    /// "expected X after 'y', found 'z'" at the next token.
    fn expected(&self, what: &str) -> SelectorError {
        let mut message = format!("expected {what}");
        if let Some((start, end)) = self.last {
            message.push_str(" after ");
            message.push_str(&quote(&self.src[start..end]));
        }
        if self.peek.tok != Tok::Eof {
            message.push_str(", found ");
            message.push_str(&quote(&self.src[self.peek.start..self.peek.end]));
        }
        self.error_at(self.peek.start, message)
    }

    /// Enters one level of nesting (a `(` or a `NOT` at `at`).
    fn enter(&mut self, at: usize) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                at,
                format!("nested more than {MAX_DEPTH} levels deep (parentheses and NOT)"),
            ));
        }
        Ok(())
    }

    /// The whole `or` rule, parsed without recursion: an explicit stack of
    /// [`Group`]s stands for the open parentheses, so nesting costs heap,
    /// not stack (and is bounded by [`MAX_DEPTH`] anyway).
    fn expression(&mut self) -> Result<Expr, SelectorError> {
        let mut open: Vec<Group> = Vec::new();
        let mut current = Group::default();
        loop {
            // One operand of AND: NOT* followed by '(' or a predicate.
            let mut nots = 0;
            while self.at(Keyword::Not) {
                let not = self.bump()?;
                self.enter(not.start)?;
                nots += 1;
            }
            if self.peek.tok == Tok::LParen {
                let paren = self.bump()?;
                self.enter(paren.start)?;
                let outer = mem::replace(
                    &mut current,
                    Group {
                        nots,
                        open_at: paren.start,
                        ..Group::default()
                    },
                );
                open.push(outer);
                continue;
            }
            let mut term = negate(self.predicate()?, nots);
            self.depth -= nots;
            // Then AND / OR, or the end of one or more groups.
            loop {
                push_flat(&mut current.ands, term, false);
                if self.eat(Keyword::And)? {
                    break;
                }
                current.end_conjunction();
                if self.eat(Keyword::Or)? {
                    break;
                }
                let Some(outer) = open.pop() else {
                    return Ok(current.finish());
                };
                self.close_paren(current.open_at)?;
                self.depth -= 1 + current.nots;
                let nots = current.nots;
                term = negate(mem::replace(&mut current, outer).finish(), nots);
            }
        }
    }

    /// Consumes the `)` matching the `(` at byte `open_at`.
    fn close_paren(&mut self, open_at: usize) -> Result<(), SelectorError> {
        if self.peek.tok == Tok::RParen {
            self.bump()?;
            return Ok(());
        }
        let column = self.src[..open_at].chars().count() + 1;
        let message = if self.peek.tok == Tok::Eof {
            format!("missing ')' to close the '(' at column {column}")
        } else {
            format!(
                "expected ')' to close the '(' at column {column}, found {}",
                quote(&self.src[self.peek.start..self.peek.end])
            )
        };
        Err(self.error_at(self.peek.start, message))
    }

    /// A predicate: an operand and what follows it.
    fn predicate(&mut self) -> Result<Expr, SelectorError> {
        let Some((subject, start)) = self.operand()? else {
            return Err(self.expected("a condition"));
        };
        self.after_operand(subject, start)
    }

    /// A header or literal, if the next token is one, with its position.
    fn operand(&mut self) -> Result<Option<(Operand, usize)>, SelectorError> {
        let is_operand = matches!(
            self.peek.tok,
            Tok::Ident(_)
                | Tok::Str(_)
                | Tok::Num(_)
                | Tok::Keyword(Keyword::True | Keyword::False)
        );
        if !is_operand {
            return Ok(None);
        }
        let token = self.bump()?;
        let operand = match token.tok {
            Tok::Ident(name) => Operand::Header(name),
            Tok::Str(s) => Operand::Lit(Literal::Str(s)),
            Tok::Num(n) => Operand::Lit(Literal::Num(n)),
            Tok::Keyword(Keyword::True) => Operand::Lit(Literal::Bool(true)),
            _ => Operand::Lit(Literal::Bool(false)),
        };
        Ok(Some((operand, token.start)))
    }

    /// An operand where a value is required.
    fn value(&mut self) -> Result<(Operand, usize), SelectorError> {
        self.operand()?.ok_or_else(|| self.expected("a value"))
    }

    /// A literal where an `IN` list item is required.
    fn literal(&mut self) -> Result<(Literal, usize), SelectorError> {
        match self.operand()? {
            Some((Operand::Lit(lit), at)) => Ok((lit, at)),
            Some((Operand::Header(_), at)) => {
                Err(self.error_at(at, "IN lists hold literals only; quote strings with '...'"))
            }
            None => Err(self.expected("a literal")),
        }
    }

    /// Rejects comparing two constants of different kinds (`1 = 'a'`).
    fn check_kinds(&self, a: &Operand, b: &Operand, at: usize) -> Result<(), SelectorError> {
        if let (Operand::Lit(x), Operand::Lit(y)) = (a, b)
            && mem::discriminant(x) != mem::discriminant(y)
        {
            return Err(self.error_at(at, format!("cannot compare {} with {}", x.kind(), y.kind())));
        }
        Ok(())
    }

    /// Everything that may follow an operand at the start of a predicate.
    fn after_operand(&mut self, subject: Operand, start: usize) -> Result<Expr, SelectorError> {
        match self.peek.tok {
            Tok::Op(op) => {
                self.bump()?;
                let (right, right_at) = self.value()?;
                self.check_kinds(&subject, &right, start)?;
                let boolean = |o: &Operand| matches!(o, Operand::Lit(Literal::Bool(_)));
                if op.is_ordering() && (boolean(&subject) || boolean(&right)) {
                    let at = if boolean(&subject) { start } else { right_at };
                    return Err(
                        self.error_at(at, "TRUE and FALSE can only be compared with = or <>")
                    );
                }
                Ok(Expr::Cmp(subject, op, right))
            }
            Tok::Keyword(Keyword::Not) => {
                self.bump()?;
                match self.peek.tok {
                    Tok::Keyword(Keyword::Between | Keyword::In | Keyword::Like) => {
                        self.negatable(subject, start, true)
                    }
                    _ => Err(self.expected("BETWEEN, IN or LIKE")),
                }
            }
            Tok::Keyword(Keyword::Between | Keyword::In | Keyword::Like) => {
                self.negatable(subject, start, false)
            }
            Tok::Keyword(Keyword::Is) => {
                self.bump()?;
                let negated = self.eat(Keyword::Not)?;
                if !self.eat(Keyword::Null)? {
                    return Err(self.expected(if negated { "NULL" } else { "NULL or NOT NULL" }));
                }
                Ok(Expr::IsNull { subject, negated })
            }
            _ => match subject {
                Operand::Header(_) | Operand::Lit(Literal::Bool(_)) => {
                    let value_follows = matches!(
                        self.peek.tok,
                        Tok::Ident(_)
                            | Tok::Str(_)
                            | Tok::Num(_)
                            | Tok::Keyword(Keyword::True | Keyword::False)
                    );
                    if value_follows {
                        return Err(self.expected("an operator"));
                    }
                    Ok(Expr::Bool(subject))
                }
                Operand::Lit(_) => Err(self.expected("an operator")),
            },
        }
    }

    /// `BETWEEN`, `IN` or `LIKE` (the next token), after an optional `NOT`.
    fn negatable(
        &mut self,
        subject: Operand,
        start: usize,
        negated: bool,
    ) -> Result<Expr, SelectorError> {
        let keyword = self.bump()?;
        match keyword.tok {
            Tok::Keyword(Keyword::Between) => {
                let (low, low_at) = self.value()?;
                if !self.eat(Keyword::And)? {
                    return Err(self.expected("AND"));
                }
                let (high, high_at) = self.value()?;
                for (o, at) in [(&subject, start), (&low, low_at), (&high, high_at)] {
                    if matches!(o, Operand::Lit(Literal::Bool(_))) {
                        return Err(self.error_at(at, "BETWEEN cannot be used with TRUE or FALSE"));
                    }
                }
                self.check_kinds(&subject, &low, start)?;
                self.check_kinds(&subject, &high, start)?;
                Ok(Expr::Between {
                    subject,
                    negated,
                    low,
                    high,
                })
            }
            Tok::Keyword(Keyword::In) => {
                if self.peek.tok != Tok::LParen {
                    return Err(self.expected("'('"));
                }
                self.bump()?;
                let mut list = Vec::new();
                loop {
                    let (lit, at) = self.literal()?;
                    self.check_kinds(&subject, &Operand::Lit(lit.clone()), at)?;
                    list.push(lit);
                    match self.peek.tok {
                        Tok::Comma => {
                            self.bump()?;
                        }
                        Tok::RParen => {
                            self.bump()?;
                            break;
                        }
                        _ => return Err(self.expected("',' or ')'")),
                    }
                }
                Ok(Expr::In {
                    subject,
                    negated,
                    list,
                })
            }
            _ => self.like(subject, start, negated),
        }
    }

    /// The rest of `LIKE` (already consumed): the pattern and an optional
    /// `ESCAPE`.
    fn like(
        &mut self,
        subject: Operand,
        start: usize,
        negated: bool,
    ) -> Result<Expr, SelectorError> {
        if let Operand::Lit(lit @ (Literal::Num(_) | Literal::Bool(_))) = &subject {
            return Err(self.error_at(
                start,
                format!(
                    "LIKE needs a header or a string on its left, not {}",
                    lit.kind()
                ),
            ));
        }
        let pattern_token = match self.peek.tok {
            Tok::Str(_) => self.bump()?,
            _ => return Err(self.expected("a string pattern")),
        };
        let pattern_at = pattern_token.start;
        let Tok::Str(source) = pattern_token.tok else {
            return Err(self.error_at(pattern_at, "expected a string pattern"));
        };
        let mut escape = None;
        if self.eat(Keyword::Escape)? {
            let Tok::Str(e) = &self.peek.tok else {
                return Err(self.expected("a one-character string"));
            };
            let mut chars = e.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => escape = Some(c),
                _ => {
                    return Err(self.error_at(
                        self.peek.start,
                        "the ESCAPE string must be exactly one character",
                    ));
                }
            }
            self.bump()?;
        }
        let pattern = Pattern::new(source, escape).map_err(|e| {
            let message = match e {
                PatternError::DanglingEscape => {
                    "the LIKE pattern ends with its escape character".to_owned()
                }
                PatternError::BadEscape(c) => format!(
                    "in the LIKE pattern, the escape character must be followed by '%', '_' or itself, not {c:?}"
                ),
            };
            self.error_at(pattern_at, message)
        })?;
        Ok(Expr::Like {
            subject,
            negated,
            pattern,
        })
    }
}
