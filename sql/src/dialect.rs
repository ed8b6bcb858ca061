//! sluice's SQL dialect: `sqlparser`'s generic dialect plus Flink's table arguments.
//!
//! Flink's window table functions take a table as an argument:
//! `TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))`. The generic
//! dialect has no expression for `TABLE bid`, so this dialect parses it, in expression
//! position, as the call `TABLE(bid)` (and `TABLE bid PARTITION BY item` as
//! `TABLE(bid, item)`); [`crate::window_tvf`] turns the whole call into a
//! table function DataFusion can plan. Everything else is the generic dialect's.

use std::any::TypeId;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName,
};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The name of the call that stands for a `TABLE name` argument.
pub const TABLE_ARGUMENT: &str = "TABLE";

#[derive(Debug, Default, Clone, Copy)]
pub struct SluiceDialect;

/// Forwards the generic dialect's feature switches.
macro_rules! generic_features {
    ($($feature:ident),* $(,)?) => {
        $(fn $feature(&self) -> bool {
            GenericDialect.$feature()
        })*
    };
}

impl Dialect for SluiceDialect {
    /// The parser's checks for "the generic dialect" hold for this one too.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    /// `FOR SYSTEM_TIME AS OF` (temporal joins).
    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let is_table_argument = parser.peek_keyword(Keyword::TABLE)
            && matches!(parser.peek_nth_token(1).token, Token::Word(_));
        if !is_table_argument {
            return None;
        }
        parser.next_token();
        Some(parse_table_argument(parser))
    }

    generic_features!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

/// `TABLE name [PARTITION BY column, ...]` (after `TABLE`) as the call
/// `TABLE(name, column, ...)`.
fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let table = parser.parse_identifier()?;
    let mut args = vec![table];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if parser.consume_token(&Token::LParen) {
            args.extend(parser.parse_comma_separated(|p| p.parse_identifier())?);
            parser.expect_token(&Token::RParen)?;
        } else {
            // `PARTITION BY a, b, DESCRIPTOR(ts)`: the list ends before a call.
            args.push(parser.parse_identifier()?);
            while parser.peek_token().token == Token::Comma
                && matches!(parser.peek_nth_token(1).token, Token::Word(_))
                && parser.peek_nth_token(2).token != Token::LParen
            {
                parser.next_token();
                args.push(parser.parse_identifier()?);
            }
        }
    }
    Ok(Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(TABLE_ARGUMENT)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|ident| FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}
