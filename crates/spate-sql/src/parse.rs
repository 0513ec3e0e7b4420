//! Flink SQL's statements on top of `sqlparser`: the text is tokenised once (tokens keep their
//! line and column, so every error points into the user's text) and Spate parses Flink's
//! statements itself — `CREATE TABLE` with `WATERMARK FOR`, computed and metadata columns and
//! `PRIMARY KEY ... NOT ENFORCED`; `CREATE MATERIALIZED VIEW`; `SHOW JOBS`; `STOP JOB` — with
//! the `Parser`'s primitives, leaving queries and expressions to `sqlparser`. The dialect adds
//! window table functions' arguments: `TABLE t [PARTITION BY ...]` and `DESCRIPTOR(col)`.

use sqlparser::ast::{
    self, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query,
};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::errors::SqlError;
use crate::types::{DataType, Field};

/// The name window TVFs see a `TABLE t` argument under: a call `__TABLE__(t, partition keys...)`.
pub const TABLE_ARG: &str = "__TABLE__";

/// Flink's dialect of SQL, as far as the tokenizer and expression parser need to know.
#[derive(Debug, Default)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '$'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn supports_timestamp_versioning(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_window_function_null_treatment_arg(&self) -> bool {
        false
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // `TABLE bid [PARTITION BY a, b]` as a window function's first argument.
        let first = parser.peek_token();
        let second = parser.peek_nth_token(1);
        let is_table = matches!(&first.token, Token::Word(w) if w.keyword == Keyword::TABLE)
            && matches!(&second.token, Token::Word(_));
        if !is_table {
            return None;
        }
        parser.next_token();
        Some((|| {
            let name = parser.parse_object_name(false)?;
            let mut args = vec![Expr::CompoundIdentifier(
                name.0
                    .iter()
                    .filter_map(|p| p.as_ident().cloned())
                    .collect(),
            )];
            // `PARTITION BY key` or `PARTITION BY (a, b)`.
            if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
                match parser.parse_expr()? {
                    Expr::Tuple(keys) => args.extend(keys),
                    Expr::Nested(key) => args.push(*key),
                    key => args.push(key),
                }
            }
            Ok(call(TABLE_ARG, args))
        })())
    }
}

/// A function call expression `name(args)`.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None::<DuplicateTreatment>,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// A column of `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Name and type (a computed column's type is the expression's, known at planning).
    pub field: Field,
    /// Physical, computed or metadata.
    pub kind: ColumnKind,
}

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// The record's key or value.
    Physical,
    /// `name AS expr`
    Computed(Box<Expr>),
    /// `name type METADATA [FROM 'key'] [VIRTUAL]`: `timestamp`, `partition`, `offset`,
    /// `headers`, `topic`...
    Metadata {
        /// The metadata key (the column's name when no FROM).
        key: String,
        /// VIRTUAL: read only, not written.
        is_virtual: bool,
    },
}

/// `CREATE TABLE name (...) WITH (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The table's name.
    pub name: String,
    /// IF NOT EXISTS.
    pub if_not_exists: bool,
    /// The columns in order.
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR column AS expr`.
    pub watermark: Option<(String, Expr)>,
    /// `PRIMARY KEY (...) NOT ENFORCED`.
    pub primary_key: Vec<String>,
    /// The WITH options, in order.
    pub options: Vec<(String, String)>,
}

/// What `DROP` drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    /// `DROP TABLE`
    Table,
    /// `DROP [MATERIALIZED] VIEW`
    View,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE TABLE` with columns.
    CreateTable(Box<CreateTable>),
    /// `CREATE TABLE name [WITH (...)] AS query`: a table and the job that fills it.
    CreateTableAs {
        /// The new table.
        name: String,
        /// Its options (the topic defaults to the name).
        options: Vec<(String, String)>,
        /// The query.
        query: Box<Query>,
    },
    /// `CREATE [TEMPORARY] VIEW name AS query`: a named query, planned where it is used.
    CreateLogicalView {
        /// The view.
        name: String,
        /// IF NOT EXISTS.
        if_not_exists: bool,
        /// The query.
        query: Box<Query>,
    },
    /// `CREATE MATERIALIZED VIEW name AS query`
    CreateView {
        /// The view.
        name: String,
        /// The query.
        query: Box<Query>,
    },
    /// `INSERT INTO table query`
    Insert {
        /// The table written.
        table: String,
        /// The query.
        query: Box<Query>,
    },
    /// A query: its results stream to the caller.
    Query(Box<Query>),
    /// `EXPLAIN statement`
    Explain(Box<Statement>),
    /// `SHOW TABLES`
    ShowTables,
    /// `SHOW JOBS`
    ShowJobs,
    /// `SHOW VIEWS` (and `SHOW MATERIALIZED VIEWS`)
    ShowViews,
    /// `DESCRIBE name`
    Describe(String),
    /// `DROP TABLE|VIEW [IF EXISTS] name`
    Drop {
        /// Table or view.
        kind: DropKind,
        /// The name.
        name: String,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// `STOP JOB 'id'`
    StopJob(String),
    /// `SET 'key' = 'value'` (a property of the statements after it), or `SET` to list them.
    Set(Option<(String, String)>),
    /// `RESET 'key'` or `RESET`.
    Reset(Option<String>),
}

/// A parsed statement with its own text (trimmed, without the `;`).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The statement.
    pub statement: Statement,
    /// Its text.
    pub text: String,
}

/// Parses `sql` (one or more statements separated by `;`).
pub fn parse(sql: &str) -> Result<Vec<Parsed>, SqlError> {
    let dialect = FlinkDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax {
            message: e.message.clone(),
            line: e.location.line,
            column: e.location.column,
        })?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |t: &TokenWithSpan, end: bool| -> usize {
        let loc = if end { t.span.end } else { t.span.start };
        let line = (loc.line.max(1) - 1) as usize;
        let start = line_starts.get(line).copied().unwrap_or(sql.len());
        let col = (loc.column.max(1) - 1) as usize;
        // Columns count characters.
        sql[start..]
            .char_indices()
            .nth(col)
            .map_or(sql.len(), |(i, _)| start + i)
    };
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens.clone());
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        let first = parser.index();
        let statement = statement(&mut parser).map_err(syntax)?;
        let last = parser.index();
        let next = parser.peek_token();
        if next.token != Token::EOF && next.token != Token::SemiColon {
            return Err(syntax(parser_error(
                format!("Expected: end of statement, found: {next}"),
                &next,
            )));
        }
        // The statement's text: from its first token to the end of its last.
        let start = tokens[first..]
            .iter()
            .find(|t| !matches!(t.token, Token::Whitespace(_)));
        let end = last.checked_sub(1).and_then(|l| tokens.get(l));
        let text = match (start, end) {
            (Some(a), Some(b)) => sql[offset(a, false)..offset(b, true)].trim().to_string(),
            _ => String::new(),
        };
        out.push(Parsed { statement, text });
    }
    if out.is_empty() {
        return Err(SqlError::Syntax {
            message: "Expected: a statement, found: end of input".into(),
            line: 1,
            column: 1,
        });
    }
    Ok(out)
}

fn parser_error(message: String, at: &TokenWithSpan) -> ParserError {
    ParserError::ParserError(format!(
        "{message} at Line: {}, Column: {}",
        at.span.start.line, at.span.start.column
    ))
}

/// sqlparser's error text (`... at Line: 1, Column: 67`) as a [`SqlError::Syntax`].
fn syntax(e: ParserError) -> SqlError {
    let text = match e {
        ParserError::TokenizerError(t) | ParserError::ParserError(t) => t,
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
    };
    let (message, line, column) = match text.rfind(" at Line: ") {
        Some(i) => {
            let position = &text[i + " at Line: ".len()..];
            let mut parts = position.split(", Column: ");
            let line = parts
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(1);
            let column = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            (text[..i].to_string(), line, column)
        }
        None => (text, 1, 1),
    };
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(&message)
        .to_string();
    SqlError::Syntax {
        message,
        line,
        column,
    }
}

fn word(parser: &Parser, n: usize, text: &str) -> bool {
    matches!(&parser.peek_nth_token(n).token, Token::Word(w) if w.value.eq_ignore_ascii_case(text))
}

fn statement(p: &mut Parser) -> Result<Statement, ParserError> {
    if p.parse_keyword(Keyword::EXPLAIN) {
        // EXPLAIN [PLAN FOR] statement
        let _ = p.parse_keywords(&[Keyword::PLAN, Keyword::FOR]);
        return Ok(Statement::Explain(Box::new(statement(p)?)));
    }
    if p.parse_keyword(Keyword::CREATE) {
        let _ = p.parse_keyword(Keyword::TEMPORARY);
        if p.parse_keyword(Keyword::VIEW) {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = name(p)?;
            p.expect_keyword(Keyword::AS)?;
            let query = p.parse_query()?;
            return Ok(Statement::CreateLogicalView {
                name,
                if_not_exists,
                query,
            });
        }
        if p.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
            let name = name(p)?;
            p.expect_keyword(Keyword::AS)?;
            let query = p.parse_query()?;
            return Ok(Statement::CreateView { name, query });
        }
        p.expect_keyword(Keyword::TABLE)?;
        return create_table(p);
    }
    if p.parse_keyword(Keyword::INSERT) {
        if !p.parse_keyword(Keyword::INTO) {
            p.expect_keyword(Keyword::OVERWRITE)?;
            return Err(parser_error(
                "INSERT OVERWRITE is for batch tables; use INSERT INTO".into(),
                &p.peek_token(),
            ));
        }
        let table = name(p)?;
        let query = p.parse_query()?;
        return Ok(Statement::Insert { table, query });
    }
    if word(p, 0, "SHOW") {
        p.next_token();
        if word(p, 0, "TABLES") {
            p.next_token();
            return Ok(Statement::ShowTables);
        }
        if word(p, 0, "JOBS") {
            p.next_token();
            return Ok(Statement::ShowJobs);
        }
        let _ = p.parse_keyword(Keyword::MATERIALIZED);
        if word(p, 0, "VIEWS") {
            p.next_token();
            return Ok(Statement::ShowViews);
        }
        return p.expected("TABLES, JOBS or VIEWS", p.peek_token());
    }
    if p.parse_keyword(Keyword::DESCRIBE) || p.parse_keyword(Keyword::DESC) {
        return Ok(Statement::Describe(name(p)?));
    }
    if p.parse_keyword(Keyword::DROP) {
        let _ = p.parse_keyword(Keyword::TEMPORARY);
        let kind = if p.parse_keyword(Keyword::TABLE) {
            DropKind::Table
        } else {
            let _ = p.parse_keyword(Keyword::MATERIALIZED);
            p.expect_keyword(Keyword::VIEW)?;
            DropKind::View
        };
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = name(p)?;
        return Ok(Statement::Drop {
            kind,
            name,
            if_exists,
        });
    }
    if p.parse_keyword(Keyword::SET) {
        if matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
            return Ok(Statement::Set(None));
        }
        let key = property_text(p)?;
        p.expect_token(&Token::Eq)?;
        let value = property_text(p)?;
        return Ok(Statement::Set(Some((key, value))));
    }
    if word(p, 0, "RESET") {
        p.next_token();
        if matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
            return Ok(Statement::Reset(None));
        }
        return Ok(Statement::Reset(Some(property_text(p)?)));
    }
    if word(p, 0, "STOP") && word(p, 1, "JOB") {
        p.next_token();
        p.next_token();
        let id = match p.next_token().token {
            Token::SingleQuotedString(s) => s,
            Token::Word(w) => w.value,
            _ => {
                p.prev_token();
                return p.expected("a job id", p.peek_token());
            }
        };
        return Ok(Statement::StopJob(id));
    }
    match &p.peek_token().token {
        Token::Word(w) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES) => {
            Ok(Statement::Query(p.parse_query()?))
        }
        Token::LParen => Ok(Statement::Query(p.parse_query()?)),
        _ => p.expected(
            "a statement (SELECT, INSERT INTO, CREATE TABLE, CREATE MATERIALIZED VIEW, SHOW, DESCRIBE, DROP, STOP JOB, EXPLAIN)",
            p.peek_token(),
        ),
    }
}

/// A property key or value: quoted, or bare words and dots (`table.exec.state.ttl`).
fn property_text(p: &mut Parser) -> Result<String, ParserError> {
    match p.next_token().token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s),
        Token::Number(n, _) => Ok(n),
        Token::Word(w) => {
            let mut text = w.value;
            while p.consume_token(&Token::Period) {
                match p.next_token().token {
                    Token::Word(w) => {
                        text.push('.');
                        text.push_str(&w.value);
                    }
                    _ => {
                        p.prev_token();
                        return p.expected("a property name", p.peek_token());
                    }
                }
            }
            Ok(text)
        }
        _ => {
            p.prev_token();
            p.expected("a property in quotes", p.peek_token())
        }
    }
}

/// An object name as one string (`db.t` stays dotted; quotes removed).
fn name(p: &mut Parser) -> Result<String, ParserError> {
    let name = p.parse_object_name(false)?;
    Ok(name
        .0
        .iter()
        .map(|part| {
            part.as_ident()
                .map_or(part.to_string(), |i| i.value.clone())
        })
        .collect::<Vec<_>>()
        .join("."))
}

fn create_table(p: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let table = name(p)?;
    let mut create = CreateTable {
        name: table,
        if_not_exists,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: Vec::new(),
    };
    if p.consume_token(&Token::LParen) {
        loop {
            if word(p, 0, "WATERMARK") {
                p.next_token();
                p.expect_keyword(Keyword::FOR)?;
                let column = p.parse_identifier()?.value;
                p.expect_keyword(Keyword::AS)?;
                create.watermark = Some((column, p.parse_expr()?));
            } else if p.parse_keyword(Keyword::PRIMARY) {
                p.expect_keyword(Keyword::KEY)?;
                create.primary_key = primary_key(p)?;
            } else if p.parse_keyword(Keyword::CONSTRAINT) {
                let _ = p.parse_identifier()?;
                p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
                create.primary_key = primary_key(p)?;
            } else {
                create.columns.push(column(p, &mut create.primary_key)?);
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen)?;
            break;
        }
    }
    let _ = p.parse_keyword(Keyword::COMMENT) && p.parse_literal_string().is_ok();
    if p.parse_keyword(Keyword::WITH) {
        create.options = options(p)?;
    }
    if p.parse_keyword(Keyword::AS) {
        if !create.columns.is_empty() {
            return Err(parser_error(
                "CREATE TABLE ... AS SELECT takes its columns from the query; remove the column list".into(),
                &p.peek_token(),
            ));
        }
        let query = p.parse_query()?;
        return Ok(Statement::CreateTableAs {
            name: create.name,
            options: create.options,
            query,
        });
    }
    if create.columns.is_empty() {
        return p.expected("a column list or AS SELECT", p.peek_token());
    }
    Ok(Statement::CreateTable(Box::new(create)))
}

fn primary_key(p: &mut Parser) -> Result<Vec<String>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let columns = p.parse_comma_separated(|p| Ok(p.parse_identifier()?.value))?;
    p.expect_token(&Token::RParen)?;
    not_enforced(p)?;
    Ok(columns)
}

fn not_enforced(p: &mut Parser) -> Result<(), ParserError> {
    if p.parse_keyword(Keyword::NOT) {
        if !word(p, 0, "ENFORCED") {
            return p.expected("ENFORCED", p.peek_token());
        }
        p.next_token();
        Ok(())
    } else if word(p, 0, "ENFORCED") {
        Err(parser_error(
            "Flink does not enforce primary keys: write PRIMARY KEY (...) NOT ENFORCED".into(),
            &p.peek_token(),
        ))
    } else {
        Err(parser_error(
            "Expected: NOT ENFORCED after PRIMARY KEY".into(),
            &p.peek_token(),
        ))
    }
}

fn column(p: &mut Parser, primary_key: &mut Vec<String>) -> Result<ColumnDef, ParserError> {
    let name = p.parse_identifier()?.value;
    if p.parse_keyword(Keyword::AS) {
        let expr = p.parse_expr()?;
        let _ = p.parse_keyword(Keyword::COMMENT) && p.parse_literal_string().is_ok();
        return Ok(ColumnDef {
            field: Field::new(name, DataType::Null),
            kind: ColumnKind::Computed(Box::new(expr)),
        });
    }
    let data_type = data_type(p)?;
    let mut kind = ColumnKind::Physical;
    if word(p, 0, "METADATA") {
        p.next_token();
        let key = if p.parse_keyword(Keyword::FROM) {
            p.parse_literal_string()?
        } else {
            name.clone()
        };
        let is_virtual = p.parse_keyword(Keyword::VIRTUAL);
        kind = ColumnKind::Metadata { key, is_virtual };
    }
    if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
        // Accepted: every column reads NULL when a record lacks it.
    }
    if p.parse_keyword(Keyword::PRIMARY) {
        p.expect_keyword(Keyword::KEY)?;
        not_enforced(p)?;
        *primary_key = vec![name.clone()];
    }
    let _ = p.parse_keyword(Keyword::COMMENT) && p.parse_literal_string().is_ok();
    Ok(ColumnDef {
        field: Field::new(name, data_type),
        kind,
    })
}

/// `WITH ('key' = 'value', ...)`
fn options(p: &mut Parser) -> Result<Vec<(String, String)>, ParserError> {
    p.expect_token(&Token::LParen)?;
    if p.consume_token(&Token::RParen) {
        return Ok(Vec::new());
    }
    let options = p.parse_comma_separated(|p| {
        let key = match p.next_token().token {
            Token::SingleQuotedString(s) => s,
            Token::Word(w) => w.value,
            _ => {
                p.prev_token();
                return p.expected("an option name in quotes", p.peek_token());
            }
        };
        p.expect_token(&Token::Eq)?;
        let value = match p.next_token().token {
            Token::SingleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w) => w.value,
            _ => {
                p.prev_token();
                return p.expected("an option value in quotes", p.peek_token());
            }
        };
        Ok((key, value))
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(options)
}

/// A Flink type: `INT`, `VARCHAR(10)`, `DECIMAL(10, 2)`, `TIMESTAMP(3)`, `TIMESTAMP_LTZ(3)`,
/// `TIMESTAMP(3) WITH LOCAL TIME ZONE`, `ROW<a INT, b STRING>`, `ARRAY<INT>`, `MAP<STRING, INT>`.
pub fn data_type(p: &mut Parser) -> Result<DataType, ParserError> {
    let at = p.peek_token();
    let Token::Word(w) = p.next_token().token else {
        return p.expected("a data type", at);
    };
    let args = |p: &mut Parser| -> Result<Vec<u64>, ParserError> {
        if !p.consume_token(&Token::LParen) {
            return Ok(Vec::new());
        }
        let values = p.parse_comma_separated(Parser::parse_literal_uint)?;
        p.expect_token(&Token::RParen)?;
        Ok(values)
    };
    let precision = |v: &[u64], default: u8| v.first().map_or(default, |p| (*p).min(9) as u8);
    let upper = w.value.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::TinyInt,
        "SMALLINT" => DataType::SmallInt,
        "INT" | "INTEGER" => DataType::Int,
        "BIGINT" => DataType::BigInt,
        "FLOAT" | "REAL" => DataType::Float,
        "DOUBLE" => {
            let _ = p.parse_keyword(Keyword::PRECISION);
            DataType::Double
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let v = args(p)?;
            DataType::Decimal(
                precision(&v, 10),
                v.get(1).map_or(0, |s| (*s).min(38) as u8),
            )
        }
        "STRING" | "TEXT" => DataType::String,
        "VARCHAR" | "CHAR" | "CHARACTER" => {
            let _ = p.parse_keyword(Keyword::VARYING);
            args(p)?;
            DataType::String
        }
        "BYTES" | "VARBINARY" | "BINARY" => {
            args(p)?;
            DataType::Bytes
        }
        "DATE" => DataType::Date,
        "TIMESTAMP" => {
            let v = args(p)?;
            let precision = precision(&v, 6);
            if p.parse_keyword(Keyword::WITH) {
                p.expect_keyword(Keyword::LOCAL)?;
                p.expect_keywords(&[Keyword::TIME, Keyword::ZONE])?;
                DataType::TimestampLtz(precision)
            } else {
                if p.parse_keyword(Keyword::WITHOUT) {
                    p.expect_keywords(&[Keyword::TIME, Keyword::ZONE])?;
                }
                DataType::Timestamp(precision)
            }
        }
        "TIMESTAMP_LTZ" => {
            let v = args(p)?;
            DataType::TimestampLtz(precision(&v, 6))
        }
        "ROW" => {
            let fields = if p.consume_token(&Token::Lt) {
                let fields = p.parse_comma_separated(|p| {
                    let name = p.parse_identifier()?.value;
                    Ok(Field::new(name, data_type(p)?))
                })?;
                expect_gt(p)?;
                fields
            } else {
                p.expect_token(&Token::LParen)?;
                let fields = p.parse_comma_separated(|p| {
                    let name = p.parse_identifier()?.value;
                    Ok(Field::new(name, data_type(p)?))
                })?;
                p.expect_token(&Token::RParen)?;
                fields
            };
            DataType::Row(fields)
        }
        "ARRAY" => {
            p.expect_token(&Token::Lt)?;
            let item = data_type(p)?;
            expect_gt(p)?;
            DataType::Array(Box::new(item))
        }
        "MAP" => {
            p.expect_token(&Token::Lt)?;
            let key = data_type(p)?;
            p.expect_token(&Token::Comma)?;
            let value = data_type(p)?;
            expect_gt(p)?;
            DataType::Map(Box::new(key), Box::new(value))
        }
        _ => {
            return Err(parser_error(
                format!(
                    "Expected: a data type (BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, STRING, BYTES, DATE, TIMESTAMP, TIMESTAMP_LTZ, ROW, ARRAY, MAP), found: {}",
                    w.value
                ),
                &at,
            ));
        }
    })
}

/// `>` closing a type; the tokenizer reads `>>` of nested types as one token.
fn expect_gt(p: &mut Parser) -> Result<(), ParserError> {
    match p.peek_token().token {
        Token::Gt => {
            p.next_token();
            Ok(())
        }
        Token::ShiftRight => Err(parser_error(
            "write nested types' closing brackets apart: '> >'".into(),
            &p.peek_token(),
        )),
        _ => p.expected(">", p.peek_token()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut parsed = parse(sql).expect("parses");
        assert_eq!(parsed.len(), 1);
        parsed.remove(0).statement
    }

    #[test]
    fn create_table_with_flink_clauses() {
        let Statement::CreateTable(t) = one(
            "CREATE TABLE bids (\n  auction BIGINT,\n  price DOUBLE,\n  ts TIMESTAMP(3),\n  ptime AS PROCTIME(),\n  off BIGINT METADATA FROM 'offset' VIRTUAL,\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,\n  PRIMARY KEY (auction) NOT ENFORCED\n) WITH ('topic' = 'bids', 'value.format' = 'json')",
        ) else {
            panic!("not a CREATE TABLE");
        };
        assert_eq!(t.name, "bids");
        assert_eq!(t.columns.len(), 5);
        assert_eq!(t.columns[2].field.data_type, DataType::Timestamp(3));
        assert!(matches!(t.columns[3].kind, ColumnKind::Computed(_)));
        assert_eq!(
            t.columns[4].kind,
            ColumnKind::Metadata {
                key: "offset".into(),
                is_virtual: true
            }
        );
        let (column, expr) = t.watermark.expect("watermark");
        assert_eq!(column, "ts");
        assert_eq!(expr.to_string(), "ts - INTERVAL '5' SECOND");
        assert_eq!(t.primary_key, vec!["auction"]);
        assert_eq!(t.options[1], ("value.format".into(), "json".into()));
    }

    #[test]
    fn window_table_functions_parse() {
        let Statement::Query(q) = one(
            "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end",
        ) else {
            panic!("not a query");
        };
        assert!(q.to_string().contains("__TABLE__(bid)"), "{q}");
        let Statement::Query(q) = one(
            "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))",
        ) else {
            panic!("not a query");
        };
        assert!(q.to_string().contains("__TABLE__(bid, bidder)"), "{q}");
    }

    #[test]
    fn statements_keep_their_text() {
        let parsed =
            parse("SHOW TABLES;\n  INSERT INTO s SELECT * FROM t WHERE a > 1 ;  STOP JOB 'j1'")
                .expect("parses");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1].text, "INSERT INTO s SELECT * FROM t WHERE a > 1");
        assert_eq!(parsed[2].statement, Statement::StopJob("j1".into()));
        assert_eq!(parsed[2].text, "STOP JOB 'j1'");
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        let e = parse("SELECT a,\nFROM t").expect_err("bad");
        let SqlError::Syntax { line, message, .. } = e else {
            panic!("not a syntax error: {e}");
        };
        assert_eq!(line, 2, "{message}");
        assert!(message.contains("found: FROM"), "{message}");
        let e = parse("CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ()").expect_err("bad");
        assert!(e.to_string().contains("NOT ENFORCED"), "{e}");
        let e = parse("SELECT 1 garbage more").expect_err("bad");
        assert!(e.to_string().contains("end of statement"), "{e}");
        let e = parse("CREATE TABLE t (a FOO)").expect_err("bad");
        assert!(
            e.to_string().contains("found: FOO") && e.to_string().contains("column 19"),
            "{e}"
        );
    }

    #[test]
    fn temporal_join_parses() {
        let Statement::Query(q) =
            one("SELECT * FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.c = r.c")
        else {
            panic!("not a query");
        };
        assert!(q.to_string().contains("FOR SYSTEM_TIME AS OF o.ts"), "{q}");
    }
}
