//! The lexer: selector text to tokens, one at a time, each with its byte
//! span. Also the identifier rules that `Display` uses to decide whether a
//! header name needs quoting.

use super::error::SelectorError;
use super::number::{self, Number};

/// A keyword; matched case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    In,
    Like,
    Escape,
    Between,
    Is,
    Null,
    True,
    False,
}

impl Keyword {
    const ALL: [(Self, &'static str); 11] = [
        (Self::And, "AND"),
        (Self::Or, "OR"),
        (Self::Not, "NOT"),
        (Self::In, "IN"),
        (Self::Like, "LIKE"),
        (Self::Escape, "ESCAPE"),
        (Self::Between, "BETWEEN"),
        (Self::Is, "IS"),
        (Self::Null, "NULL"),
        (Self::True, "TRUE"),
        (Self::False, "FALSE"),
    ];

    /// The keyword spelled by `word` in any case.
    pub(crate) fn from_word(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(word))
            .map(|&(k, _)| k)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The canonical spelling (`!=` prints as `<>`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    /// Whether this operator orders its operands (as opposed to `=`, `<>`).
    pub(crate) const fn is_ordering(self) -> bool {
        !matches!(self, Self::Eq | Self::Ne)
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A header name, bare or double-quoted (quotes removed, `""` undone).
    Ident(String),
    /// A string literal (quotes removed, `''` undone).
    Str(String),
    /// A number literal, sign included.
    Num(Number),
    Keyword(Keyword),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Eof,
}

/// A token and where it is: `src[start..end]`.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Whether `c` may start a bare header name.
pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

/// Whether `c` may continue a bare header name (`-` is handled apart: it
/// continues one only when a letter follows).
fn is_ident_continue(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '.'
}

/// Byte length of the bare header name at the start of `s` (0 if none).
fn scan_ident(s: &str) -> usize {
    let mut chars = s.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if is_ident_start(c) => {}
        _ => return 0,
    }
    let mut end = s.len();
    while let Some((i, c)) = chars.next() {
        let glued = is_ident_continue(c)
            || (c == '-' && chars.peek().is_some_and(|&(_, n)| n.is_alphabetic()));
        if !glued {
            end = i;
            break;
        }
    }
    end
}

/// Whether `name` can be written bare, i.e. lexes back as exactly this
/// header name rather than needing double quotes.
pub(crate) fn is_bare_ident(name: &str) -> bool {
    !name.is_empty() && scan_ident(name) == name.len() && Keyword::from_word(name).is_none()
}

/// Reads a quoted run starting at `src[start]` (the opening `quote`), with a
/// doubled quote standing for one. Returns the unquoted text and the byte
/// offset just past the closing quote, or `None` if it never closes.
fn scan_quoted(src: &str, start: usize, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut rest = src[start + 1..].char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        if c == quote {
            if rest.peek().is_some_and(|&(_, n)| n == quote) {
                rest.next();
            } else {
                return Some((out, start + 1 + i + 1));
            }
        }
        out.push(c);
    }
    None
}

/// Produces tokens from selector text on demand.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) const fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn error(
        &self,
        at: usize,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> SelectorError {
        SelectorError::new(self.src, at, message)
    }

    /// The next token ([`Tok::Eof`] at the end, again and again).
    pub(crate) fn next_token(&mut self) -> Result<Token, SelectorError> {
        let rest = &self.src[self.pos..];
        let trimmed = rest.trim_start();
        let start = self.pos + (rest.len() - trimmed.len());
        let (tok, len) = self.lex_at(start, trimmed)?;
        self.pos = start + len;
        Ok(Token {
            tok,
            start,
            end: self.pos,
        })
    }

    /// The token at the start of `s` (which is `self.src[start..]`) and its
    /// byte length.
    fn lex_at(&self, start: usize, s: &str) -> Result<(Tok, usize), SelectorError> {
        let Some(c) = s.chars().next() else {
            return Ok((Tok::Eof, 0));
        };
        let two = s.get(..2).unwrap_or("");
        let simple = match (c, two) {
            (_, "<>") => Some((Tok::Op(CmpOp::Ne), 2)),
            (_, "!=") => Some((Tok::Op(CmpOp::Ne), 2)),
            (_, "<=") => Some((Tok::Op(CmpOp::Le), 2)),
            (_, ">=") => Some((Tok::Op(CmpOp::Ge), 2)),
            ('=', _) => Some((Tok::Op(CmpOp::Eq), 1)),
            ('<', _) => Some((Tok::Op(CmpOp::Lt), 1)),
            ('>', _) => Some((Tok::Op(CmpOp::Gt), 1)),
            ('(', _) => Some((Tok::LParen, 1)),
            (')', _) => Some((Tok::RParen, 1)),
            (',', _) => Some((Tok::Comma, 1)),
            _ => None,
        };
        if let Some(found) = simple {
            return Ok(found);
        }
        match c {
            '\'' => {
                let (text, end) = scan_quoted(self.src, start, '\'')
                    .ok_or_else(|| self.error(start, "unterminated string literal"))?;
                Ok((Tok::Str(text), end - start))
            }
            '"' => {
                let (name, end) = scan_quoted(self.src, start, '"')
                    .ok_or_else(|| self.error(start, "unterminated quoted header name"))?;
                if name.is_empty() {
                    return Err(self.error(start, "empty quoted header name"));
                }
                Ok((Tok::Ident(name), end - start))
            }
            '0'..='9' | '.' | '+' | '-' => self.lex_number(start, s),
            c if is_ident_start(c) => {
                let len = scan_ident(s);
                let word = &s[..len];
                let tok = match Keyword::from_word(word) {
                    Some(k) => Tok::Keyword(k),
                    None => Tok::Ident(word.to_owned()),
                };
                Ok((tok, len))
            }
            '!' => Err(self.error(start, "unexpected '!' (did you mean '<>'?)")),
            c => Err(self.error(start, format!("unexpected character {c:?}"))),
        }
    }

    fn lex_number(&self, start: usize, s: &str) -> Result<(Tok, usize), SelectorError> {
        let len = number::scan(s);
        if len == 0 {
            let c = s.chars().next().unwrap_or('?');
            let message = if matches!(c, '+' | '-') {
                format!("'{c}' must be directly followed by a number (arithmetic is not supported)")
            } else {
                format!("unexpected character {c:?}")
            };
            return Err(self.error(start, message));
        }
        if s[len..]
            .chars()
            .next()
            .is_some_and(|n| is_ident_continue(n) || n == '-' || n == '+')
        {
            // Show the whole run that looked like one number (`10abc`).
            let end = s
                .char_indices()
                .skip(1)
                .find(|&(_, c)| !(is_ident_continue(c) || matches!(c, '-' | '+')))
                .map_or(s.len(), |(i, _)| i);
            return Err(self.error(start, format!("invalid number '{}'", snippet(&s[..end]))));
        }
        let text = &s[..len];
        match number::parse(text) {
            Some(Number::Float(f)) if f.is_infinite() => {
                Err(self.error(start, format!("number {text} is out of range")))
            }
            Some(n) => Ok((Tok::Num(n), len)),
            None => Err(self.error(start, format!("invalid number '{text}'"))),
        }
    }
}

/// The first word-ish run of `s` (up to whitespace, at most 24 characters),
/// for messages.
pub(crate) fn snippet(s: &str) -> String {
    let word = s.split(char::is_whitespace).next().unwrap_or("");
    let mut out: String = word.chars().take(24).collect();
    if word.chars().nth(24).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token().expect("lexes");
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn dashes_glue_only_before_letters() {
        assert_eq!(
            toks("ios-alert-title"),
            [Tok::Ident("ios-alert-title".into())]
        );
        assert_eq!(
            toks("a-1"),
            [Tok::Ident("a".into()), Tok::Num(Number::Int(-1))]
        );
        assert!(is_bare_ident("a-b.c$_9"));
        assert!(!is_bare_ident("a-"));
        assert!(!is_bare_ident("a--b"));
        assert!(!is_bare_ident("a-9"));
        assert!(!is_bare_ident("and"));
        assert!(!is_bare_ident("9a"));
        assert!(!is_bare_ident("a b"));
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            toks("a<>'it''s'!=\"x \"\"y\"\"\"<=>=-.5e1"),
            [
                Tok::Ident("a".into()),
                Tok::Op(CmpOp::Ne),
                Tok::Str("it's".into()),
                Tok::Op(CmpOp::Ne),
                Tok::Ident("x \"y\"".into()),
                Tok::Op(CmpOp::Le),
                Tok::Op(CmpOp::Ge),
                Tok::Num(Number::Float(-5.0)),
            ]
        );
        assert_eq!(
            toks("not NoT"),
            [Tok::Keyword(Keyword::Not), Tok::Keyword(Keyword::Not)]
        );
    }

    #[test]
    fn errors() {
        for (src, at) in [
            ("'abc", 0),
            ("a = \"x", 4),
            ("1e", 0),
            ("12ab", 0),
            ("- 1", 0),
            ("#", 0),
            ("\"\"", 0),
            ("1e999", 0),
        ] {
            let err = Lexer::new(src).next_token().and_then(|_| {
                let mut l = Lexer::new(src);
                loop {
                    if l.next_token()?.tok == Tok::Eof {
                        return Ok(());
                    }
                }
            });
            let err = err.expect_err(src);
            assert_eq!(err.position(), at, "{src}: {err}");
        }
    }
}
