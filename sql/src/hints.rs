//! Query hints: `SELECT /*+ OPTIONS('allowed-lateness' = '1 min') */ ...`.
//!
//! An `OPTIONS` hint sets, for this query only, options that streams otherwise take from
//! their `WITH` clause; it applies to every stream the query reads. The parser keeps the
//! hint comment of each `SELECT` (the dialect enables comment hints); this module reads
//! `OPTIONS(...)` out of it with the same parser.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Query, SetExpr, Visit, Visitor};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use sluice_engine::time::{Millis, parse_duration};

use crate::dialect::SluiceDialect;
use crate::statement::parse_with_options;
use crate::{Result, SqlError};

/// The options a query's hints set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryHints {
    pub allowed_lateness: Option<Millis>,
}

/// The hints of every `SELECT` in `statement`.
pub fn query_hints(statement: &ast::Statement) -> Result<QueryHints> {
    let mut reader = HintReader {
        hints: QueryHints::default(),
    };
    match statement.visit(&mut reader) {
        ControlFlow::Continue(()) => Ok(reader.hints),
        ControlFlow::Break(error) => Err(error),
    }
}

struct HintReader {
    hints: QueryHints,
}

impl Visitor for HintReader {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<SqlError> {
        if let SetExpr::Select(select) = query.body.as_ref() {
            for hint in select
                .optimizer_hints
                .iter()
                .filter(|h| h.prefix.is_empty())
            {
                if let Err(error) = self.read(&hint.text) {
                    return ControlFlow::Break(error);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

impl HintReader {
    /// `OPTIONS('key' = 'value', ...) ...`
    fn read(&mut self, text: &str) -> Result<()> {
        let mut parser = Parser::new(&SluiceDialect).try_with_sql(text)?;
        while parser.peek_token().token != Token::EOF {
            let name = parser.parse_identifier()?;
            if !name.value.eq_ignore_ascii_case("OPTIONS") {
                return Err(SqlError::Unsupported(format!(
                    "the hint {} (sluice knows OPTIONS)",
                    name.value
                )));
            }
            for (key, value) in parse_with_options(&mut parser)? {
                match key.to_ascii_lowercase().as_str() {
                    "allowed-lateness" => {
                        let millis = parse_duration(&value).map_err(|e| {
                            SqlError::Invalid(format!("hint option 'allowed-lateness': {e}"))
                        })?;
                        self.hints.allowed_lateness = Some(millis);
                    }
                    _ => {
                        return Err(SqlError::Invalid(format!(
                            "unknown hint option '{key}' (hints may set 'allowed-lateness')"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
