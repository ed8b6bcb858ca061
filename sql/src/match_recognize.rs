//! `MATCH_RECOGNIZE`: row pattern recognition over a stream.
//!
//! ```sql
//! SELECT * FROM ticker MATCH_RECOGNIZE (
//!   PARTITION BY symbol ORDER BY rowtime
//!   MEASURES FIRST(A.rowtime) AS start_t, LAST(B.price) AS bottom, COUNT(B.*) AS falls
//!   ONE ROW PER MATCH
//!   AFTER MATCH SKIP PAST LAST ROW
//!   PATTERN (A B+ C) WITHIN INTERVAL '1' HOUR EMIT TIMEOUTS
//!   DEFINE B AS B.price < PREV(B.price), C AS C.price > PREV(C.price)
//! ) AS m
//! ```
//!
//! `sqlparser` and DataFusion know only part of this clause, so [`rewrite_match_recognize`]
//! takes `name MATCH_RECOGNIZE (...)` out of the statement text before parsing and puts the
//! table function call `__match_recognize('name', '...clause...')` in its place (the text
//! keeps its lines, so positions after it stay right). [`MatchClause::parse`] reads the
//! clause with the same parser's token API; [`plan`] answers the table function call with
//! a plan node that [`crate::lower`] turns into the `MatchRecognize` operator of
//! `sluice-cep`.
//!
//! `WITHIN ... EMIT TIMEOUTS` is sluice's: the partial matches that the bound cuts off are
//! emitted with op `timeout`.

pub mod plan;

use std::borrow::Cow;

use datafusion::sql::sqlparser::ast::{self, DateTimeField, OrderByExpr};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use sluice_cep::{Pattern, parse_pattern};
use sluice_engine::time::{Millis, parse_duration};

use crate::dialect::SluiceDialect;
use crate::location::offset_of;
use crate::names::identifier;
use crate::{Result, SqlError};

/// The table function a `MATCH_RECOGNIZE` clause becomes.
pub const MATCH_RECOGNIZE_FUNCTION: &str = "__match_recognize";

/// Replaces each `name MATCH_RECOGNIZE (...)` of `sql` by the table function call
/// `__match_recognize('name', '...')`.
pub fn rewrite_match_recognize(sql: &str) -> Result<Cow<'_, str>> {
    if !sql.to_ascii_uppercase().contains("MATCH_RECOGNIZE") {
        return Ok(Cow::Borrowed(sql));
    }
    let tokens = Tokenizer::new(&SluiceDialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    // Indices of the tokens that are not whitespace.
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i].token, Token::Whitespace(_)))
        .collect();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (position, &index) in solid.iter().enumerate() {
        let is_clause = matches!(&tokens[index].token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("MATCH_RECOGNIZE"));
        if !is_clause {
            continue;
        }
        let table = position
            .checked_sub(1)
            .map(|p| &tokens[solid[p]])
            .and_then(|t| match &t.token {
                Token::Word(w) => Some((identifier(&w.to_ident(t.span)), t)),
                _ => None,
            });
        let Some((table, table_token)) = table else {
            return Err(SqlError::Unsupported(
                "MATCH_RECOGNIZE over anything but a named stream or view".into(),
            ));
        };
        let open = solid.get(position + 1).map(|i| &tokens[*i]);
        if open.map(|t| &t.token) != Some(&Token::LParen) {
            return Err(SqlError::Syntax(
                "expected '(' after MATCH_RECOGNIZE".into(),
            ));
        }
        let mut depth = 0;
        let mut close = None;
        for &later in &solid[position + 1..] {
            match tokens[later].token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(later);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return Err(SqlError::Syntax("MATCH_RECOGNIZE ( is never closed".into()));
        };
        let start = offset_of(sql, table_token.span.start);
        let clause_start = open.map_or(start, |t| offset_of(sql, t.span.end));
        let clause_end = offset_of(sql, tokens[close].span.start);
        let end = offset_of(sql, tokens[close].span.end);
        out.push_str(&sql[copied..start]);
        out.push_str(&format!(
            "{MATCH_RECOGNIZE_FUNCTION}('{}', '{}')",
            table.replace('\'', "''"),
            sql[clause_start..clause_end].replace('\'', "''")
        ));
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Ok(Cow::Owned(out))
}

/// The text of a statement as its author wrote `MATCH_RECOGNIZE`: each
/// `__match_recognize('name', '...')` call [`rewrite_match_recognize`] made turned back into
/// `name MATCH_RECOGNIZE (...)`.
pub fn restore_match_recognize(sql: &str) -> String {
    let call = format!("{MATCH_RECOGNIZE_FUNCTION}(");
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(&call) {
        out.push_str(&rest[..at]);
        let after = &rest[at + call.len()..];
        let restored = quoted(after).and_then(|(name, tail)| {
            let tail = tail.trim_start().strip_prefix(',')?.trim_start();
            let (clause, tail) = quoted(tail)?;
            let tail = tail.trim_start().strip_prefix(')')?;
            Some((format!("{name} MATCH_RECOGNIZE ({clause})"), tail))
        });
        match restored {
            Some((text, tail)) => {
                out.push_str(&text);
                rest = tail;
            }
            None => {
                out.push_str(&call);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A single-quoted SQL string at the start of `text` (`''` inside is a quote), and the text
/// after it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('\'')?.char_indices().peekable();
    let mut value = String::new();
    while let Some((index, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
            continue;
        }
        if chars.peek().is_some_and(|(_, next)| *next == '\'') {
            chars.next();
            value.push('\'');
            continue;
        }
        return Some((value, &text[index + 2..]));
    }
    None
}

/// Where the search resumes after a match, by variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipTo {
    PastLastRow,
    NextRow,
    First(String),
    Last(String),
}

/// What `ALL ROWS PER MATCH` emits besides the rows of non-empty matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmptyMatches {
    /// `SHOW EMPTY MATCHES` (the default): a row for each empty match.
    Show,
    /// `OMIT EMPTY MATCHES`.
    Omit,
    /// `WITH UNMATCHED ROWS`: empty matches, and every row no match took.
    WithUnmatched,
}

/// A `MATCH_RECOGNIZE` clause as written.
#[derive(Debug, Clone)]
pub struct MatchClause {
    pub partition_by: Vec<ast::Expr>,
    pub order_by: Vec<OrderByExpr>,
    /// `[RUNNING | FINAL] expression AS name`: the expression, the name, and whether it is
    /// `FINAL` (in `ALL ROWS PER MATCH`, a measure is `RUNNING` unless it says otherwise).
    pub measures: Vec<(ast::Expr, String, bool)>,
    /// `ALL ROWS PER MATCH` and what it does with empty matches and unmatched rows; `None`
    /// for `ONE ROW PER MATCH`.
    pub all_rows: Option<EmptyMatches>,
    pub skip: SkipTo,
    pub pattern: Pattern,
    pub within: Option<Millis>,
    pub emit_timeouts: bool,
    /// `SUBSET name = (a, b, ...)`.
    pub subsets: Vec<(String, Vec<String>)>,
    /// `DEFINE name AS condition`.
    pub defines: Vec<(String, ast::Expr)>,
}

impl MatchClause {
    /// Reads the text between `MATCH_RECOGNIZE (` and `)`.
    pub fn parse(text: &str) -> Result<Self> {
        let tokens = Tokenizer::new(&SluiceDialect, text)
            .tokenize_with_location()
            .map_err(|e| SqlError::Syntax(e.to_string()))?;
        let mut parser =
            Parser::new(&SluiceDialect).with_tokens_with_locations(semantics_into_names(tokens));
        let mut clause = MatchClause {
            partition_by: Vec::new(),
            order_by: Vec::new(),
            measures: Vec::new(),
            all_rows: None,
            skip: SkipTo::PastLastRow,
            pattern: Pattern::Empty,
            within: None,
            emit_timeouts: false,
            subsets: Vec::new(),
            defines: Vec::new(),
        };
        if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
            clause.partition_by = parser.parse_comma_separated(Parser::parse_expr)?;
        }
        if parser.parse_keywords(&[Keyword::ORDER, Keyword::BY]) {
            clause.order_by = parser.parse_comma_separated(Parser::parse_order_by_expr)?;
        }
        if parser.parse_keyword(Keyword::MEASURES) {
            clause.measures = parser.parse_comma_separated(|p| {
                let is_final = !word(p, "RUNNING") && p.parse_keyword(Keyword::FINAL);
                let expr = p.parse_expr()?;
                p.expect_keyword(Keyword::AS)?;
                let alias = p.parse_identifier()?;
                Ok((expr, identifier(&alias), is_final))
            })?;
        }
        if parser.parse_keywords(&[Keyword::ONE, Keyword::ROW, Keyword::PER, Keyword::MATCH]) {
        } else if parser.parse_keywords(&[
            Keyword::ALL,
            Keyword::ROWS,
            Keyword::PER,
            Keyword::MATCH,
        ]) {
            clause.all_rows = Some(
                if parser.parse_keywords(&[Keyword::SHOW, Keyword::EMPTY, Keyword::MATCHES]) {
                    EmptyMatches::Show
                } else if parser.parse_keywords(&[Keyword::OMIT, Keyword::EMPTY, Keyword::MATCHES])
                {
                    EmptyMatches::Omit
                } else if parser.parse_keywords(&[Keyword::WITH, Keyword::UNMATCHED, Keyword::ROWS])
                {
                    EmptyMatches::WithUnmatched
                } else {
                    EmptyMatches::Show
                },
            );
        }
        if parser.parse_keywords(&[Keyword::AFTER, Keyword::MATCH, Keyword::SKIP]) {
            clause.skip = if parser.parse_keywords(&[Keyword::PAST, Keyword::LAST, Keyword::ROW]) {
                SkipTo::PastLastRow
            } else if parser.parse_keywords(&[Keyword::TO, Keyword::NEXT, Keyword::ROW]) {
                SkipTo::NextRow
            } else if parser.parse_keywords(&[Keyword::TO, Keyword::FIRST]) {
                SkipTo::First(variable(&parser.parse_identifier()?))
            } else if parser.parse_keyword(Keyword::TO) {
                // `TO LAST v`, or `TO v`, which means the same.
                let _ = parser.parse_keyword(Keyword::LAST);
                SkipTo::Last(variable(&parser.parse_identifier()?))
            } else {
                return parser
                    .expected(
                        "PAST LAST ROW, TO NEXT ROW, TO FIRST v or TO LAST v",
                        parser.peek_token(),
                    )
                    .map_err(Into::into);
            };
        }
        parser.expect_keyword(Keyword::PATTERN)?;
        let open = parser.expect_token(&Token::LParen)?;
        let mut depth = 1;
        let close = loop {
            let token = parser.next_token();
            match token.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        break token;
                    }
                }
                Token::EOF => {
                    return Err(SqlError::Syntax("PATTERN ( is never closed".into()));
                }
                _ => {}
            }
        };
        let pattern_text = &text[offset_of(text, open.span.end)..offset_of(text, close.span.start)];
        clause.pattern =
            parse_pattern(pattern_text).map_err(|e| SqlError::Invalid(e.to_string()))?;
        if parser.parse_keyword(Keyword::WITHIN) {
            let expr = parser.parse_expr()?;
            clause.within = Some(interval(&expr)?);
            if word(&mut parser, "EMIT") {
                if !word(&mut parser, "TIMEOUTS") {
                    return parser
                        .expected("TIMEOUTS after EMIT", parser.peek_token())
                        .map_err(Into::into);
                }
                clause.emit_timeouts = true;
            }
        }
        if word(&mut parser, "SUBSET") {
            clause.subsets = parser.parse_comma_separated(|p| {
                let name = variable(&p.parse_identifier()?);
                p.expect_token(&Token::Eq)?;
                p.expect_token(&Token::LParen)?;
                let members = p.parse_comma_separated(|p| Ok(variable(&p.parse_identifier()?)))?;
                p.expect_token(&Token::RParen)?;
                Ok((name, members))
            })?;
        }
        if parser.parse_keyword(Keyword::DEFINE) {
            clause.defines = parser.parse_comma_separated(|p| {
                let name = variable(&p.parse_identifier()?);
                p.expect_keyword(Keyword::AS)?;
                Ok((name, p.parse_expr()?))
            })?;
        }
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return parser
                .expected("the end of MATCH_RECOGNIZE", next)
                .map_err(Into::into);
        }
        Ok(clause)
    }
}

/// `RUNNING` or `FINAL` before `FIRST` or `LAST` joined to it as one function name
/// (`__final_last`), so that a navigation nested in another (`PREV(FINAL LAST(A.x), 2)`) says
/// its own semantics; the planner reads the names back (`plan::semantics_of`).
fn semantics_into_names(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let unquoted = |token: &Token, words: &[&str]| match token {
        Token::Word(w) if w.quote_style.is_none() => words
            .iter()
            .find(|word| w.value.eq_ignore_ascii_case(word))
            .map(|word| word.to_ascii_lowercase()),
        _ => None,
    };
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        let semantics = unquoted(&tokens[index].token, &["RUNNING", "FINAL"]);
        let next = tokens[index + 1..]
            .iter()
            .position(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|at| index + 1 + at);
        let after = |at: usize| {
            tokens[at + 1..]
                .iter()
                .find(|t| !matches!(t.token, Token::Whitespace(_)))
                .map(|t| &t.token)
        };
        // A call, not a column named `first` or `last`.
        let navigation = next
            .filter(|at| after(*at) == Some(&Token::LParen))
            .and_then(|at| unquoted(&tokens[at].token, &["FIRST", "LAST"]));
        match (semantics, next, navigation) {
            (Some(semantics), Some(at), Some(navigation)) => {
                let name = format!("__{semantics}_{navigation}");
                out.push(TokenWithSpan::new(
                    Token::make_word(&name, None),
                    tokens[index].span,
                ));
                index = at + 1;
            }
            _ => {
                out.push(tokens[index].clone());
                index += 1;
            }
        }
    }
    out
}

/// Consumes the unquoted word `text` if it comes next.
fn word(parser: &mut Parser, text: &str) -> bool {
    let next = parser.peek_token();
    let matches = matches!(&next.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text));
    if matches {
        parser.next_token();
    }
    matches
}

/// A pattern variable's name as `CLASSIFIER()` gives it: unquoted names folded to upper case,
/// as the standard folds identifiers (and Oracle and Trino answer), quoted ones as written.
pub fn variable(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_uppercase(),
    }
}

/// `INTERVAL '5' MINUTE` or `INTERVAL '5 minutes'` as milliseconds.
fn interval(expr: &ast::Expr) -> Result<Millis> {
    let invalid = || {
        SqlError::Invalid(format!(
            "WITHIN {expr}: expected an INTERVAL of days or less"
        ))
    };
    let ast::Expr::Interval(interval) = expr else {
        return Err(invalid());
    };
    let ast::Expr::Value(value) = interval.value.as_ref() else {
        return Err(invalid());
    };
    let ast::Value::SingleQuotedString(text) = &value.value else {
        return Err(invalid());
    };
    let unit = match &interval.leading_field {
        None => "",
        Some(DateTimeField::Second | DateTimeField::Seconds) => "s",
        Some(DateTimeField::Minute | DateTimeField::Minutes) => "min",
        Some(DateTimeField::Hour | DateTimeField::Hours) => "h",
        Some(DateTimeField::Day | DateTimeField::Days) => "d",
        Some(_) => return Err(invalid()),
    };
    let text = text.trim().trim_end_matches('s');
    let text = if unit.is_empty() {
        text.replace("minute", "min")
            .replace("hour", "h")
            .replace("second", "s")
            .replace("day", "d")
    } else {
        format!("{text} {unit}")
    };
    parse_duration(&text).map_err(|e| SqlError::Invalid(format!("WITHIN: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rewrite_can_be_undone() -> Result<()> {
        let sql =
            "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts PATTERN (A) DEFINE A AS v = 'x') AS m";
        let rewritten = rewrite_match_recognize(sql)?;
        assert_eq!(
            rewritten,
            "SELECT * FROM __match_recognize('t', 'ORDER BY ts PATTERN (A) DEFINE A AS v = ''x''') AS m"
        );
        assert_eq!(restore_match_recognize(&rewritten), sql);
        Ok(())
    }
}
