//! How long and how deeply nested a statement is. Planning walks expressions within
//! expressions (a chain of `AND`s or `+`s is as deep as it is long) and queries within
//! queries recursively, so a statement deeper than [`MAX_EXPRESSION_DEPTH`] is refused as it
//! is parsed; the walk stops as soon as it passes the limit, so checking never goes deeper
//! itself. A statement is also at most [`MAX_STATEMENT_TOKENS`] tokens, checked before it is
//! parsed: that bounds the depth of what the parser builds, and so the stack its tree needs
//! when it is dropped.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, Visit, Visitor};
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use sluice_engine::limits::{MAX_EXPRESSION_DEPTH, MAX_STATEMENT_TOKENS};

/// Refuses a text whose `tokens` hold a statement of more than [`MAX_STATEMENT_TOKENS`].
pub fn check_lengths(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let mut length = 0;
    let mut start = None;
    for token in tokens {
        match token.token {
            Token::SemiColon => {
                length = 0;
                start = None;
            }
            Token::Whitespace(_) => {}
            _ => {
                length += 1;
                let start = *start.get_or_insert(token.span.start);
                if length > MAX_STATEMENT_TOKENS {
                    return Err(ParserError::ParserError(format!(
                        "the statement at line {} is longer than {MAX_STATEMENT_TOKENS} tokens",
                        start.line
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Refuses a statement part (an `ast::Statement`, an expression) that nests deeper than
/// [`MAX_EXPRESSION_DEPTH`].
pub fn check(part: &impl Visit) -> Result<(), ParserError> {
    match part.visit(&mut Depth(0)) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(ParserError::ParserError(format!(
            "the statement is nested too deeply: more than {MAX_EXPRESSION_DEPTH} expressions or \
             queries within one another (a chain of {MAX_EXPRESSION_DEPTH} ANDs, ORs or \
             operators counts as that deep); split it, e.g. into an IN list or views"
        ))),
    }
}

/// The expressions and queries open around the node being visited.
struct Depth(usize);

impl Depth {
    fn enter(&mut self) -> ControlFlow<()> {
        self.0 += 1;
        if self.0 > MAX_EXPRESSION_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<()> {
        self.0 -= 1;
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.leave()
    }

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.leave()
    }
}
