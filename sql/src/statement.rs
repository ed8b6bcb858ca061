//! The statements sluice accepts, and how a script is split into them.
//!
//! Queries, views and inserts are parsed by `sqlparser` itself. The statements that are
//! Flink's rather than standard SQL (`CREATE TABLE ... (WATERMARK FOR ...)`, `CREATE STREAM`)
//! sluice's alerts (`CREATE ALERT`) and its catalog commands (`SHOW`, `DESCRIBE`, `DROP`)
//! are parsed here with the same
//! parser's token-level API, so positions and error messages stay consistent.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{IsOptional, Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::Result;
use crate::depth;
use crate::dialect::SluiceDialect;
use crate::location::LineStarts;

pub use crate::names::{identifier, object_name};

/// One statement of a script.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateStream(Box<CreateStream>),
    CreateAlert(Box<CreateAlert>),
    Drop(Drop),
    Show(Show),
    Describe(String),
    /// `SET 'key' = 'value'`: a session setting for the queries started after it.
    Set {
        key: String,
        value: String,
    },
    /// Anything `sqlparser` parses: SELECT, INSERT, CREATE VIEW, ...
    Sql(Box<ast::Statement>),
}

/// A statement with the text it was parsed from and where that text starts.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub statement: Statement,
    pub text: String,
    /// 1-based line of the statement's first token.
    pub line: u64,
}

/// `CREATE TABLE | STREAM name (...) [WITH (...)]`.
#[derive(Debug, Clone)]
pub struct CreateStream {
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDecl>,
    pub watermark: Option<Watermark>,
    pub primary_key: Vec<String>,
    pub options: Vec<(String, String)>,
}

/// `WATERMARK FOR column AS expression`.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// The event-time attribute.
    pub column: String,
    /// The watermark, computed from the column (e.g. `ts - INTERVAL '5' SECOND`).
    pub expression: ast::Expr,
}

/// `CREATE ALERT [IF NOT EXISTS] name ON source WHERE condition [WITH (...)]`.
#[derive(Debug, Clone)]
pub struct CreateAlert {
    pub name: String,
    pub if_not_exists: bool,
    /// The stream or view whose rows the condition is tested on.
    pub source: String,
    pub condition: ast::Expr,
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ColumnDecl {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    /// `name TYPE [NOT NULL]`: carried by the input.
    Physical {
        data_type: ast::DataType,
        not_null: bool,
    },
    /// `name AS expression`: computed as the row enters the stream.
    Computed(Box<ast::Expr>),
}

/// What `DROP` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Stream,
    Table,
    View,
    MaterializedView,
    Alert,
}

impl ObjectKind {
    /// The kind's name in messages: `stream`, `materialized view`, ...
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Stream => "stream",
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Alert => "alert",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Drop {
    pub kind: ObjectKind,
    pub name: String,
    pub if_exists: bool,
}

/// `SHOW TABLES | STREAMS | VIEWS | QUERIES | OPERATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Tables,
    Views,
    Queries,
    /// Every operator of every query, with its metrics.
    Operators,
    Alerts,
}

/// Scripts at least this long are parsed on every core, in pieces.
const PARALLEL_PARSE_BYTES: usize = 256 * 1024;

/// Splits `sql` into statements separated by `;`.
pub fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>> {
    let threads = crate::parallel::cores();
    if sql.len() >= PARALLEL_PARSE_BYTES
        && threads > 1
        && let Some(pieces) = pieces(sql, threads)
        && let Some(statements) = parse_pieces(sql, &pieces)
    {
        return Ok(statements);
    }
    parse_in_one_piece(sql)
}

/// `sql` cut at statement ends into about `count` pieces of similar size, as byte ranges;
/// `None` when the text has anything a plain scan could misread (block comments, escapes,
/// dollar quotes, `MATCH_RECOGNIZE`, which is rewritten first).
fn pieces(sql: &str, count: usize) -> Option<Vec<std::ops::Range<usize>>> {
    if sql.contains(['$', '\\'])
        || sql.contains("/*")
        || sql.to_ascii_uppercase().contains("MATCH_RECOGNIZE")
    {
        return None;
    }
    let target = sql.len().div_ceil(count);
    let bytes = sql.as_bytes();
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    let mut quote: Option<u8> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match quote {
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None => match byte {
                b'\'' | b'"' | b'`' => quote = Some(byte),
                b'-' if bytes.get(at + 1) == Some(&b'-') => {
                    at += bytes[at..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .unwrap_or(bytes.len() - at);
                    continue;
                }
                b';' if at + 1 - start >= target => {
                    pieces.push(start..at + 1);
                    start = at + 1;
                }
                _ => {}
            },
        }
        at += 1;
    }
    if quote.is_some() {
        return None;
    }
    pieces.push(start..sql.len());
    Some(pieces)
}

/// The statements of each piece of `sql`, parsed at once, with their lines in the whole
/// text; `None` when any piece fails to parse (the error is then found, with its place
/// in the whole text, by parsing it in one piece).
fn parse_pieces(sql: &str, pieces: &[std::ops::Range<usize>]) -> Option<Vec<ParsedStatement>> {
    let parsed =
        crate::parallel::on_each(pieces, |piece| parse_in_one_piece(&sql[piece.clone()]).ok())?;
    let mut statements = Vec::new();
    for (piece, parsed) in pieces.iter().zip(parsed) {
        let lines_before = sql[..piece.start].matches('\n').count() as u64;
        statements.extend(parsed?.into_iter().map(|mut statement| {
            statement.line += lines_before;
            statement
        }));
    }
    Some(statements)
}

/// Splits `sql` into statements separated by `;`, in one pass.
fn parse_in_one_piece(sql: &str) -> Result<Vec<ParsedStatement>> {
    let rewritten = crate::match_recognize::rewrite_match_recognize(sql)?;
    let sql = rewritten.as_ref();
    let dialect = SluiceDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(ParserError::from)?;
    depth::check_lengths(&tokens)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    let mut lines = LineStarts::new(sql);
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let first = parser.peek_token();
        if first.token == Token::EOF {
            return Ok(statements);
        }
        let statement = parse_statement(&mut parser)?;
        check_depth(&statement)?;
        let next = parser.peek_token();
        if next.token != Token::SemiColon && next.token != Token::EOF {
            return parser
                .expected("';' after the statement", next)
                .map_err(Into::into);
        }
        let start = lines.offset_of(first.span.start);
        let end = lines.offset_of(next.span.start);
        statements.push(ParsedStatement {
            statement,
            text: sql[start..end.max(start)].trim().to_string(),
            line: first.span.start.line,
        });
    }
}

/// Refuses `statement` if any of its parts nests too deeply (see [`crate::depth`]).
fn check_depth(statement: &Statement) -> Result<(), ParserError> {
    match statement {
        Statement::Sql(statement) => depth::check(statement.as_ref()),
        Statement::CreateAlert(alert) => depth::check(&alert.condition),
        Statement::CreateStream(create) => {
            let watermark = create.watermark.iter().map(|w| &w.expression);
            let computed = create.columns.iter().filter_map(|c| match &c.kind {
                ColumnKind::Computed(expression) => Some(expression.as_ref()),
                ColumnKind::Physical { .. } => None,
            });
            watermark.chain(computed).try_for_each(depth::check)
        }
        Statement::Drop(_)
        | Statement::Show(_)
        | Statement::Describe(_)
        | Statement::Set { .. } => Ok(()),
    }
}

fn parse_statement(parser: &mut Parser) -> Result<Statement, ParserError> {
    if parser.peek_keyword(Keyword::CREATE) && is_create_stream(parser) {
        return parse_create_stream(parser).map(|c| Statement::CreateStream(Box::new(c)));
    }
    if parser.peek_keyword(Keyword::CREATE) && is_create_alert(parser) {
        return parse_create_alert(parser).map(|c| Statement::CreateAlert(Box::new(c)));
    }
    if parser.parse_keyword(Keyword::DROP) {
        return parse_drop(parser).map(Statement::Drop);
    }
    if parser.parse_keyword(Keyword::SHOW) {
        return parse_show(parser).map(Statement::Show);
    }
    if parser.peek_keyword(Keyword::SET)
        && matches!(parser.peek_nth_token(1).token, Token::SingleQuotedString(_))
    {
        parser.expect_keyword(Keyword::SET)?;
        let key = parser.parse_literal_string()?;
        parser.expect_token(&Token::Eq)?;
        let value = parser.parse_literal_string()?;
        return Ok(Statement::Set { key, value });
    }
    if parser
        .parse_one_of_keywords(&[Keyword::DESCRIBE, Keyword::DESC])
        .is_some()
    {
        let name = parser.parse_object_name(false)?;
        return object_name(&name).map(Statement::Describe);
    }
    parser
        .parse_statement()
        .map(|s| Statement::Sql(Box::new(s)))
}

fn is_create_stream(parser: &Parser) -> bool {
    let second = parser.peek_nth_token(1);
    matches!(&second.token, Token::Word(w) if w.keyword == Keyword::TABLE || w.keyword == Keyword::STREAM)
}

fn is_create_alert(parser: &Parser) -> bool {
    let second = parser.peek_nth_token(1);
    matches!(&second.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ALERT"))
}

fn parse_create_alert(parser: &mut Parser) -> Result<CreateAlert, ParserError> {
    parser.expect_keyword(Keyword::CREATE)?;
    parser.next_token();
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&parser.parse_object_name(false)?)?;
    parser.expect_keyword(Keyword::ON)?;
    let source = object_name(&parser.parse_object_name(false)?)?;
    parser.expect_keyword(Keyword::WHERE)?;
    let condition = parser.parse_expr()?;
    let options = if parser.parse_keyword(Keyword::WITH) {
        parse_with_options(parser)?
    } else {
        Vec::new()
    };
    Ok(CreateAlert {
        name,
        if_not_exists,
        source,
        condition,
        options,
    })
}

fn parse_create_stream(parser: &mut Parser) -> Result<CreateStream, ParserError> {
    parser.expect_keyword(Keyword::CREATE)?;
    if parser
        .parse_one_of_keywords(&[Keyword::TABLE, Keyword::STREAM])
        .is_none()
    {
        return parser.expected("TABLE or STREAM", parser.peek_token());
    }
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&parser.parse_object_name(false)?)?;
    let mut create = CreateStream {
        name,
        if_not_exists,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: Vec::new(),
    };
    parser.expect_token(&Token::LParen)?;
    loop {
        parse_table_element(parser, &mut create)?;
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    if parser.parse_keyword(Keyword::WITH) {
        create.options = parse_with_options(parser)?;
    }
    Ok(create)
}

fn parse_table_element(parser: &mut Parser, create: &mut CreateStream) -> Result<(), ParserError> {
    if parse_word(parser, "WATERMARK") {
        if create.watermark.is_some() {
            return parser.expected("a single WATERMARK", parser.peek_token());
        }
        parser.expect_keyword(Keyword::FOR)?;
        let column = identifier(&parser.parse_identifier()?);
        parser.expect_keyword(Keyword::AS)?;
        create.watermark = Some(Watermark {
            column,
            expression: parser.parse_expr()?,
        });
        return Ok(());
    }
    if parser.parse_keyword(Keyword::CONSTRAINT) {
        parser.parse_identifier()?;
        parser.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
        return parse_primary_key(parser, create);
    }
    if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
        return parse_primary_key(parser, create);
    }
    let name = identifier(&parser.parse_identifier()?);
    if parser.parse_keyword(Keyword::AS) {
        let expression = parser.parse_expr()?;
        create.columns.push(ColumnDecl {
            name,
            kind: ColumnKind::Computed(Box::new(expression)),
        });
        return Ok(());
    }
    let data_type = parser.parse_data_type()?;
    let mut not_null = false;
    loop {
        if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            not_null = true;
        } else if parser.parse_keyword(Keyword::NULL) {
            not_null = false;
        } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            expect_not_enforced(parser)?;
            set_primary_key(parser, create, vec![name.clone()])?;
        } else if parser.parse_keyword(Keyword::COMMENT) {
            parser.parse_literal_string()?;
        } else {
            break;
        }
    }
    create.columns.push(ColumnDecl {
        name,
        kind: ColumnKind::Physical {
            data_type,
            not_null,
        },
    });
    Ok(())
}

fn parse_primary_key(parser: &mut Parser, create: &mut CreateStream) -> Result<(), ParserError> {
    let columns = parser.parse_parenthesized_column_list(IsOptional::Mandatory, false)?;
    expect_not_enforced(parser)?;
    set_primary_key(parser, create, columns.iter().map(identifier).collect())
}

fn set_primary_key(
    parser: &Parser,
    create: &mut CreateStream,
    columns: Vec<String>,
) -> Result<(), ParserError> {
    if !create.primary_key.is_empty() {
        return parser.expected("a single PRIMARY KEY", parser.peek_token());
    }
    create.primary_key = columns;
    Ok(())
}

/// Flink's `NOT ENFORCED`: the key is trusted, not checked.
fn expect_not_enforced(parser: &mut Parser) -> Result<(), ParserError> {
    if parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
        return Ok(());
    }
    parser.expected(
        "NOT ENFORCED after PRIMARY KEY (sluice does not check key uniqueness)",
        parser.peek_token(),
    )
}

/// `( 'key' = 'value' [, ...] )`
pub(crate) fn parse_with_options(
    parser: &mut Parser,
) -> Result<Vec<(String, String)>, ParserError> {
    parser.expect_token(&Token::LParen)?;
    let mut options = Vec::new();
    loop {
        let key = parser.parse_literal_string()?;
        parser.expect_token(&Token::Eq)?;
        let value = parser.parse_literal_string()?;
        options.push((key, value));
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    Ok(options)
}

fn parse_drop(parser: &mut Parser) -> Result<Drop, ParserError> {
    if parse_word(parser, "MATERIALIZED") {
        parser.expect_keyword(Keyword::VIEW)?;
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = object_name(&parser.parse_object_name(false)?)?;
        return Ok(Drop {
            kind: ObjectKind::MaterializedView,
            name,
            if_exists,
        });
    }
    let kind = match parser.parse_one_of_keywords(&[Keyword::TABLE, Keyword::STREAM, Keyword::VIEW])
    {
        Some(Keyword::TABLE) => ObjectKind::Table,
        Some(Keyword::STREAM) => ObjectKind::Stream,
        Some(_) => ObjectKind::View,
        None if parse_word(parser, "ALERT") => ObjectKind::Alert,
        None => {
            return parser.expected(
                "TABLE, STREAM, VIEW, MATERIALIZED VIEW or ALERT after DROP",
                parser.peek_token(),
            );
        }
    };
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = object_name(&parser.parse_object_name(false)?)?;
    Ok(Drop {
        kind,
        name,
        if_exists,
    })
}

fn parse_show(parser: &mut Parser) -> Result<Show, ParserError> {
    if parser.parse_keyword(Keyword::TABLES) || parse_word(parser, "STREAMS") {
        Ok(Show::Tables)
    } else if parser.parse_keyword(Keyword::VIEWS) {
        Ok(Show::Views)
    } else if parser.parse_keyword(Keyword::QUERIES) {
        Ok(Show::Queries)
    } else if parse_word(parser, "OPERATORS") {
        Ok(Show::Operators)
    } else if parse_word(parser, "ALERTS") {
        Ok(Show::Alerts)
    } else {
        parser.expected(
            "TABLES, STREAMS, VIEWS, QUERIES, OPERATORS or ALERTS after SHOW",
            parser.peek_token(),
        )
    }
}

/// Consumes the next token if it is the word `word` (a word sqlparser has no keyword for).
fn parse_word(parser: &mut Parser, word: &str) -> bool {
    let matches = matches!(&parser.peek_token().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    if matches {
        parser.next_token();
    }
    matches
}

#[cfg(test)]
mod tests {
    use sluice_engine::limits::{MAX_STATEMENT_TOKENS, with_planning_stack};

    use super::*;

    fn conditions(count: usize) -> String {
        let chain = (0..count)
            .map(|i| format!("x = {i}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!("SELECT x FROM t WHERE {chain}")
    }

    /// The error parsing `sql` gives, parsed on a planning stack.
    fn parse_error(sql: &str) -> String {
        match with_planning_stack(|| parse_statements(sql).map(|_| ())) {
            Ok(Err(error)) => error.to_string(),
            Ok(Ok(())) => panic!("{} bytes of SQL parsed", sql.len()),
            Err(error) => panic!("no thread to parse on: {error}"),
        }
    }

    #[test]
    fn statements_up_to_the_limit_parse() {
        // The query, 997 nested ANDs, the comparison at the bottom and its column: 1 000 deep.
        assert!(parse_statements(&conditions(998)).is_ok());
    }

    #[test]
    fn the_longest_statement_is_refused_without_exhausting_the_stack() {
        // As deep as a statement of the most tokens can be: `1+1+...`, half its tokens deep.
        let sum = vec!["1"; MAX_STATEMENT_TOKENS / 2].join("+");
        let error = parse_error(&format!("SELECT {sum}"));
        assert!(error.contains("nested too deeply"), "{error}");
        assert_eq!(
            parse_error(&format!("SELECT 1; SELECT {sum}+1+1")),
            "syntax error: the statement at line 1 is longer than 1000000 tokens"
        );
    }

    #[test]
    fn deeper_statements_are_refused_with_the_limit() {
        let error = parse_error(&conditions(999));
        assert!(
            error.contains("the statement is nested too deeply: more than 1000 expressions"),
            "{error}"
        );
    }

    #[test]
    fn splits_a_script_and_keeps_each_statement_text() -> Result<()> {
        let script = "CREATE STREAM bid (ts TIMESTAMP(3), price DOUBLE,\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND);\n\nSELECT price FROM bid;";
        let statements = parse_statements(script)?;
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1].text, "SELECT price FROM bid");
        assert_eq!(statements[1].line, 4);
        let Statement::CreateStream(create) = &statements[0].statement else {
            panic!("expected CREATE STREAM");
        };
        assert_eq!(create.name, "bid");
        assert_eq!(create.columns.len(), 2);
        assert_eq!(
            create
                .watermark
                .as_ref()
                .map(|w| (w.column.as_str(), w.expression.to_string())),
            Some(("ts", "ts - INTERVAL '5' SECOND".to_string()))
        );
        Ok(())
    }

    #[test]
    fn statements_on_one_line_keep_their_texts() -> Result<()> {
        let script = "CREATE ALERT é ON s WHERE note = 'ü;ß' ; DROP ALERT é;SHOW ALERTS;\n  \
                      CREATE ALERT x ON s WHERE note = '→' ; DROP ALERT x";
        let texts: Vec<(String, u64)> = parse_statements(script)?
            .into_iter()
            .map(|parsed| (parsed.text, parsed.line))
            .collect();
        let expected = [
            ("CREATE ALERT é ON s WHERE note = 'ü;ß'", 1),
            ("DROP ALERT é", 1),
            ("SHOW ALERTS", 1),
            ("CREATE ALERT x ON s WHERE note = '→'", 2),
            ("DROP ALERT x", 2),
        ];
        let expected: Vec<(String, u64)> = expected
            .iter()
            .map(|&(text, line)| (text.to_string(), line))
            .collect();
        assert_eq!(texts, expected);
        Ok(())
    }

    #[test]
    fn a_long_script_parses_in_pieces_as_in_one() -> Result<()> {
        let mut script = String::from("-- alerts; many of them\n");
        for n in 0..6_000 {
            script.push_str(&format!(
                "CREATE ALERT a{n} ON s WHERE note = 'a;b''c' -- why; not\n  AND x > {n};\n"
            ));
        }
        assert!(script.len() >= PARALLEL_PARSE_BYTES);
        let pieces = pieces(&script, 2).unwrap_or_default();
        assert_eq!(pieces.len(), 2);
        let parallel = parse_pieces(&script, &pieces).unwrap_or_default();
        let serial = parse_in_one_piece(&script)?;
        assert_eq!(parallel.len(), 6_000);
        for (a, b) in parallel.iter().zip(&serial) {
            assert_eq!((a.line, &a.text), (b.line, &b.text));
        }
        // A syntax error is reported where it is in the whole text.
        script.push_str("CREATE ALERT bad ON s WHERE;");
        let error = parse_statements(&script).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("syntax error: Expected: an expression, found: ; at Line: 12002, Column: 28")
        );
        Ok(())
    }

    #[test]
    fn primary_key_needs_not_enforced() {
        let error = parse_statements("CREATE TABLE t (id INT, PRIMARY KEY (id))")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "syntax error: Expected: NOT ENFORCED after PRIMARY KEY (sluice does not check key uniqueness), found: ) at Line: 1, Column: 41"
            )
        );
    }
}
