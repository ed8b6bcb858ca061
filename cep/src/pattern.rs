//! Row patterns and their syntax, as SQL:2016 writes them inside `PATTERN (...)`.
//!
//! ```text
//! pattern    := term ('|' term)*
//! term       := factor*                       (nothing: the empty pattern)
//! factor     := primary quantifier?
//! quantifier := ('*' | '+' | '?' | '{' n '}' | '{' n ',' '}' | '{' ',' m '}' | '{' n ',' m '}') '?'?
//! primary    := variable | '^' | '$' | '(' pattern ')' | '{-' pattern '-}'
//!             | PERMUTE '(' pattern (',' pattern)* ')'
//! ```
//!
//! A quantifier followed by `?` is reluctant. Variables are names, compared without regard to
//! case unless quoted (`"name"`).

use std::fmt;

use sluice_engine::limits::MAX_PATTERN_DEPTH;

use crate::{CepError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Matches no rows: `()`.
    Empty,
    /// One row that satisfies the variable's condition.
    Var(String),
    /// `^`: the start of the partition.
    Start,
    /// `$`: the end of the partition.
    End,
    Concat(Vec<Pattern>),
    /// Alternatives, preferred left to right.
    Alt(Vec<Pattern>),
    Repeat {
        inner: Box<Pattern>,
        min: u32,
        max: Option<u32>,
        /// Greedy repetitions prefer more iterations, reluctant ones fewer.
        greedy: bool,
    },
    /// `PERMUTE(a, b, ...)`: every order, preferred in the order of the listing.
    Permute(Vec<Pattern>),
    /// `{- p -}`: rows matched but left out of `ALL ROWS PER MATCH` output.
    Exclude(Box<Pattern>),
}

impl Pattern {
    /// The variables the pattern names, in order of first appearance.
    pub fn variables(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect_variables(&mut names);
        names
    }

    fn collect_variables(&self, names: &mut Vec<String>) {
        match self {
            Pattern::Var(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.clone());
                }
            }
            Pattern::Concat(items) | Pattern::Alt(items) | Pattern::Permute(items) => {
                items.iter().for_each(|item| item.collect_variables(names));
            }
            Pattern::Repeat { inner, .. } | Pattern::Exclude(inner) => {
                inner.collect_variables(names)
            }
            Pattern::Empty | Pattern::Start | Pattern::End => {}
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Pattern], separator: &str| {
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    f.write_str(separator)?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        };
        match self {
            Pattern::Empty => f.write_str("()"),
            // A name that would not read back as itself unquoted is quoted.
            Pattern::Var(name) => {
                let plain = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && name != "PERMUTE";
                match plain {
                    true => f.write_str(name),
                    false => write!(f, "\"{name}\""),
                }
            }
            Pattern::Start => f.write_str("^"),
            Pattern::End => f.write_str("$"),
            Pattern::Concat(items) => list(f, items, " "),
            Pattern::Alt(items) => {
                f.write_str("(")?;
                list(f, items, " | ")?;
                f.write_str(")")
            }
            Pattern::Permute(items) => {
                f.write_str("PERMUTE(")?;
                list(f, items, ", ")?;
                f.write_str(")")
            }
            Pattern::Exclude(inner) => write!(f, "{{- {inner} -}}"),
            Pattern::Repeat {
                inner,
                min,
                max,
                greedy,
            } => {
                match inner.as_ref() {
                    Pattern::Var(_) | Pattern::Alt(_) | Pattern::Permute(_) => {
                        write!(f, "{inner}")?
                    }
                    _ => write!(f, "({inner})")?,
                }
                match (min, max) {
                    (0, None) => f.write_str("*")?,
                    (1, None) => f.write_str("+")?,
                    (0, Some(1)) => f.write_str("?")?,
                    (n, None) => write!(f, "{{{n},}}")?,
                    (n, Some(m)) if n == m => write!(f, "{{{n}}}")?,
                    (n, Some(m)) => write!(f, "{{{n},{m}}}")?,
                }
                if !greedy {
                    f.write_str("?")?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Number(u32),
    Symbol(&'static str),
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>> {
    const SYMBOLS: [&str; 13] = [
        "{-", "-}", "(", ")", "|", "*", "+", "?", "{", "}", ",", "^", "$",
    ];
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let at = text.len() - rest.len();
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            out.push((at, Token::Symbol(symbol)));
            rest = &rest[symbol.len()..];
        } else if c == '"' {
            let end = rest[1..]
                .find('"')
                .ok_or_else(|| CepError::Syntax(format!("unterminated quoted name at {at}")))?;
            out.push((at, Token::Name(rest[1..=end].to_string())));
            rest = &rest[end + 2..];
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let number = rest[..end]
                .parse()
                .map_err(|_| CepError::Syntax(format!("number too large at {at}")))?;
            out.push((at, Token::Number(number)));
            rest = &rest[end..];
        } else if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            // Unquoted names fold to upper case, as the standard folds identifiers.
            out.push((at, Token::Name(rest[..end].to_ascii_uppercase())));
            rest = &rest[end..];
        } else {
            return Err(CepError::Syntax(format!("unexpected '{c}' at {at}")));
        }
    }
    Ok(out)
}

/// Parses the text inside `PATTERN ( ... )`.
pub fn parse_pattern(text: &str) -> Result<Pattern> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        position: 0,
        text_len: text.len(),
        depth: 0,
    };
    let pattern = parser.pattern()?;
    match parser.tokens.get(parser.position) {
        None => Ok(pattern),
        Some((at, token)) => Err(CepError::Syntax(format!(
            "unexpected {} at {at}",
            describe(token)
        ))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(name) => format!("'{name}'"),
        Token::Number(n) => format!("'{n}'"),
        Token::Symbol(s) => format!("'{s}'"),
    }
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    position: usize,
    text_len: usize,
    /// Groups open around the one being parsed.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(_, t)| t)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if self.peek() == Some(&Token::Symbol(symbol_ref(symbol))) {
            self.position += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, symbol: &str) -> Result<()> {
        if self.eat(symbol) {
            return Ok(());
        }
        Err(self.error(&format!("expected '{symbol}'")))
    }

    fn error(&self, expected: &str) -> CepError {
        match self.tokens.get(self.position) {
            Some((at, token)) => {
                CepError::Syntax(format!("{expected}, found {} at {at}", describe(token)))
            }
            None => CepError::Syntax(format!("{expected} at {}", self.text_len)),
        }
    }

    fn pattern(&mut self) -> Result<Pattern> {
        if self.depth >= MAX_PATTERN_DEPTH {
            return Err(CepError::Invalid(format!(
                "the pattern nests groups more than {MAX_PATTERN_DEPTH} deep"
            )));
        }
        self.depth += 1;
        let pattern = self.alternatives();
        self.depth -= 1;
        pattern
    }

    fn alternatives(&mut self) -> Result<Pattern> {
        let mut alternatives = vec![self.term()?];
        while self.eat("|") {
            alternatives.push(self.term()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Pattern::Alt(alternatives)
        })
    }

    fn term(&mut self) -> Result<Pattern> {
        let mut factors = Vec::new();
        while let Some(token) = self.peek() {
            let starts_factor = match token {
                Token::Name(_) => true,
                Token::Symbol(s) => matches!(*s, "(" | "{-" | "^" | "$"),
                Token::Number(_) => false,
            };
            if !starts_factor {
                break;
            }
            factors.push(self.factor()?);
        }
        Ok(match factors.len() {
            0 => Pattern::Empty,
            1 => factors.remove(0),
            _ => Pattern::Concat(factors),
        })
    }

    fn factor(&mut self) -> Result<Pattern> {
        let primary = self.primary()?;
        let bounds = if self.eat("*") {
            Some((0, None))
        } else if self.eat("+") {
            Some((1, None))
        } else if self.eat("?") {
            Some((0, Some(1)))
        } else if self.eat("{") {
            Some(self.bounds()?)
        } else {
            None
        };
        let Some((min, max)) = bounds else {
            return Ok(primary);
        };
        if max.is_some_and(|max| max < min) {
            return Err(CepError::Invalid(format!(
                "the quantifier {{{min},{}}} has its maximum below its minimum",
                max.unwrap_or_default()
            )));
        }
        if matches!(primary, Pattern::Start | Pattern::End) {
            return Err(CepError::Invalid(
                "an anchor (^ or $) cannot be quantified".into(),
            ));
        }
        let greedy = !self.eat("?");
        Ok(Pattern::Repeat {
            inner: Box::new(primary),
            min,
            max,
            greedy,
        })
    }

    /// After `{`: `n}`, `n,}`, `,m}` or `n,m}`.
    fn bounds(&mut self) -> Result<(u32, Option<u32>)> {
        let min = self.number();
        if self.eat("}") {
            return match min {
                Some(n) => Ok((n, Some(n))),
                None => Err(self.error("expected a number")),
            };
        }
        self.expect(",")?;
        let max = self.number();
        self.expect("}")?;
        Ok((min.unwrap_or(0), max))
    }

    fn number(&mut self) -> Option<u32> {
        if let Some(Token::Number(n)) = self.peek() {
            let n = *n;
            self.position += 1;
            return Some(n);
        }
        None
    }

    fn primary(&mut self) -> Result<Pattern> {
        match self.peek().cloned() {
            Some(Token::Name(name)) if name == "PERMUTE" && self.next_is("(") => {
                self.position += 2;
                let mut items = vec![self.pattern()?];
                while self.eat(",") {
                    items.push(self.pattern()?);
                }
                self.expect(")")?;
                Ok(Pattern::Permute(items))
            }
            Some(Token::Name(name)) => {
                self.position += 1;
                Ok(Pattern::Var(name))
            }
            Some(Token::Symbol("^")) => {
                self.position += 1;
                Ok(Pattern::Start)
            }
            Some(Token::Symbol("$")) => {
                self.position += 1;
                Ok(Pattern::End)
            }
            Some(Token::Symbol("(")) => {
                self.position += 1;
                let inner = self.pattern()?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(Token::Symbol("{-")) => {
                self.position += 1;
                let inner = self.pattern()?;
                self.expect("-}")?;
                Ok(Pattern::Exclude(Box::new(inner)))
            }
            _ => Err(self.error("expected a variable, '(', '{-', '^', '$' or PERMUTE")),
        }
    }

    fn next_is(&self, symbol: &str) -> bool {
        matches!(self.tokens.get(self.position + 1), Some((_, Token::Symbol(s))) if *s == symbol)
    }
}

/// The static spelling of a symbol token.
fn symbol_ref(symbol: &str) -> &'static str {
    const ALL: [&str; 13] = [
        "{-", "-}", "(", ")", "|", "*", "+", "?", "{", "}", ",", "^", "$",
    ];
    ALL.iter().find(|s| **s == symbol).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        match parse_pattern(text) {
            Ok(pattern) => pattern.to_string(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn parses_the_whole_syntax() {
        assert_eq!(round_trip("a B+ c"), "A B+ C");
        assert_eq!(
            round_trip("A (B C)+? | D{2,} E{,3}?"),
            "(A (B C)+? | D{2,} E{0,3}?)"
        );
        assert_eq!(round_trip("^ A{3} {- B* -} $"), "^ A{3} {- B* -} $");
        assert_eq!(round_trip("PERMUTE(A, B C)"), "PERMUTE(A, B C)");
        assert_eq!(round_trip("()"), "()");
        assert_eq!(round_trip("\"Up\" down \"X\""), "\"Up\" DOWN X");
    }

    #[test]
    fn reports_errors_with_positions() {
        assert_eq!(round_trip("A (B"), "PATTERN: expected ')' at 4");
        assert_eq!(
            round_trip("A {3,1}"),
            "PATTERN: the quantifier {3,1} has its maximum below its minimum"
        );
        assert_eq!(round_trip("A | * B"), "PATTERN: unexpected '*' at 4");
        assert_eq!(round_trip("A %"), "PATTERN: unexpected '%' at 2");
        let deepest = format!("{}A{}", "(".repeat(63), ")".repeat(63));
        assert_eq!(round_trip(&deepest), "A");
        let too_deep = format!("{}A{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(
            round_trip(&too_deep),
            "PATTERN: the pattern nests groups more than 64 deep"
        );
        assert_eq!(
            round_trip("^*"),
            "PATTERN: an anchor (^ or $) cannot be quantified"
        );
    }
}
