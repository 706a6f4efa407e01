//! What real clients ask of PostgreSQL on connecting, answered as
//! PostgreSQL answers it, where datafusion-postgres answers otherwise.
//!
//! * `version()`: SQLAlchemy's dialect (Superset, pandas, Jupyter's `%sql`)
//!   reads the server's major and minor version from it, and asserts when
//!   it starts otherwise than `PostgreSQL 16.6`. chiso says it is chiso in
//!   the parentheses PostgreSQL keeps for the build.
//! * `regproc` columns compared with `0`: `pg_type.typreceive` and its kin
//!   name a function, and PostgreSQL compares them with an oid, `0` meaning
//!   none. The catalogue here holds the names as text (`-` for none), so
//!   ADBC's type query (`typreceive != 0 OR typsend != 0`) failed casting
//!   `boolrecv` to a number. Such a comparison is rewritten to compare with
//!   `'-'` before the statement is planned.
//! * `to_regtype(name)`: psycopg looks a type up by name with it (SQLAlchemy
//!   asks for `hstore` on connecting); it becomes the subquery of `pg_type`
//!   that finds the oid, or none.
//! * The functions SQLAlchemy's inspector calls in its column query, where
//!   chiso has nothing of the kind: `pg_get_serial_sequence` (no sequences:
//!   null), `pg_collation_is_visible` (true), and `json_build_object`.
//! * Scalar subqueries of a catalogue query that are not aggregated:
//!   PostgreSQL runs them when they return at most one row, DataFusion
//!   plans a correlated one only when aggregated (SQLAlchemy's column query
//!   has three). Each becomes `max(...)` of its expression, the same value
//!   when there is at most one row. One that reads only catalogue tables
//!   chiso leaves empty (`pg_attrdef`: no column has a default;
//!   `pg_sequence`: no sequences) is null, which it would be, and which
//!   DataFusion plans wherever it stands (inside a `CASE` it could not).
//! * Savepoints: psycopg (under SQLAlchemy) fetches type information inside
//!   a nested transaction. With nothing to undo on a read-only server,
//!   `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` are acknowledged
//!   ([`Savepoints`]).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chiso_engine::datafusion::arrow::array::StringArray;
use chiso_engine::datafusion::arrow::array::new_null_array;
use chiso_engine::datafusion::arrow::datatypes::DataType;
use chiso_engine::datafusion::common::{DFSchema, ParamValues, Result, ScalarValue, plan_err};
use chiso_engine::datafusion::logical_expr::{
    ColumnarValue, EmptyRelation, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility, create_udf,
};
use chiso_engine::datafusion::prelude::SessionContext;
use std::ops::ControlFlow;

use chiso_engine::datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr,
    Statement, TableFactor, Value, visit_expressions, visit_expressions_mut,
};
use chiso_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use chiso_engine::datafusion::sql::sqlparser::parser::Parser;
use chiso_engine::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;

/// The PostgreSQL release whose protocol and catalogue chiso speaks.
pub(crate) const POSTGRES_VERSION: &str = "16.6";

/// The `regproc` columns of `pg_type` (PostgreSQL 16).
const REGPROC_COLUMNS: [&str; 8] = [
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
];

/// `version()` as PostgreSQL words it, naming chiso as the build.
pub(crate) fn version() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (chiso {}) on {}-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Registers PostgreSQL's `version()` in place of DataFusion's, and the
/// functions of the clients' catalogue queries that DataFusion lacks.
pub(crate) fn register(context: &SessionContext) {
    let no_text = |args: &[ColumnarValue]| {
        Ok(match args.first() {
            Some(ColumnarValue::Array(array)) => {
                ColumnarValue::Array(new_null_array(&DataType::Utf8, array.len()))
            }
            _ => ColumnarValue::Scalar(ScalarValue::Utf8(None)),
        })
    };
    context.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(no_text),
    ));
    // chiso has no indexes: the definition of a column of one is none.
    context.register_udf(create_udf(
        "pg_get_indexdef",
        vec![DataType::Int64, DataType::Int64, DataType::Boolean],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(no_text),
    ));
    context.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    context.register_udf(ScalarUDF::new_from_impl(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    let text = version();
    let udf = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![
                text.clone(),
            ]))))
        }),
    );
    context.register_udf(udf);
}

/// `sql` as PostgreSQL would read it here: every `regproc_column = 0` or
/// `<> 0` (either side) compares with `'-'`, the text of "no function", and
/// every `to_regtype(name)` is the subquery of `pg_type` finding its oid;
/// `sql` itself when it has neither, or does not tokenize (the parser then
/// says why).
pub(crate) fn rewrite(sql: &str) -> Cow<'_, str> {
    match tokens_rewritten(sql) {
        Cow::Borrowed(sql) => subqueries_aggregated(sql),
        Cow::Owned(sql) => Cow::Owned(subqueries_aggregated(&sql).into_owned()),
    }
}

/// Aggregate functions: a subquery projecting one of them is aggregated.
const AGGREGATES: [&str; 10] = [
    "count",
    "max",
    "min",
    "sum",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "json_agg",
];

/// Every scalar subquery of a `pg_catalog` query whose one column is not
/// aggregated, aggregated with `max`.
fn subqueries_aggregated(sql: &str) -> Cow<'_, str> {
    let lowered = sql.to_ascii_lowercase();
    if !lowered.contains("pg_catalog") || !lowered.contains("(select") {
        return Cow::Borrowed(sql);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    let mut changed = false;
    for statement in &mut statements {
        let _ = visit_expressions_mut(statement, |expr| {
            if let Some(text) = vector_rewritten(expr)
                && let Ok(rewritten) = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&text)
                    .and_then(|mut parser| parser.parse_expr())
            {
                *expr = rewritten;
                changed = true;
                return ControlFlow::<()>::Continue(());
            }
            if let Expr::Subquery(query) = expr
                && reads_only_empty_tables(query)
                && let Ok(null) = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&null_keeping_parameters(query))
                    .and_then(|mut parser| parser.parse_expr())
            {
                *expr = null;
                changed = true;
                return ControlFlow::<()>::Continue(());
            }
            if let Expr::Subquery(query) = expr
                && let SetExpr::Select(select) = query.body.as_mut()
                && select.projection.len() == 1
                && matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty())
                && let SelectItem::UnnamedExpr(column)
                | SelectItem::ExprWithAlias { expr: column, .. } = &mut select.projection[0]
                && !is_aggregate(column)
                && let Ok(aggregated) = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&format!("max({column})"))
                    .and_then(|mut parser| parser.parse_expr())
            {
                *column = aggregated;
                changed = true;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if !changed {
        return Cow::Borrowed(sql);
    }
    let texts: Vec<String> = statements.iter().map(ToString::to_string).collect();
    Cow::Owned(texts.join("; "))
}

/// The catalogue's vector columns (PostgreSQL's `int2vector` and
/// `oidvector`), which chiso's `pg_index` and `pg_constraint` hold as text
/// (`1 2`). SQLAlchemy's inspector unnests them for its primary keys,
/// unique constraints and indexes.
const VECTOR_COLUMNS: [&str; 8] = [
    "indkey",
    "indclass",
    "indoption",
    "indcollation",
    "conkey",
    "confkey",
    "conpfeqop",
    "conexclop",
];

/// Catalogue columns PostgreSQL has and chiso's catalogue lacks, read as
/// NULL (the storage options of a table: chiso has none).
const MISSING_COLUMNS: [&str; 1] = ["reloptions"];

/// The rewrite of one expression over the catalogue's vectors, as SQL:
/// `unnest(vector)` unnests its numbers, `generate_subscripts(vector, 1)`
/// their positions, and `CAST(name AS regclass)` of a parameter or literal
/// (a table's name, which chiso does not resolve to an oid) is NULL,
/// keeping the parameter.
fn vector_rewritten(expr: &Expr) -> Option<String> {
    let is_vector = |expr: &Expr| -> bool {
        let name = match expr {
            Expr::Identifier(ident) => ident.value.to_ascii_lowercase(),
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(part) => part.value.to_ascii_lowercase(),
                None => return false,
            },
            _ => return false,
        };
        VECTOR_COLUMNS.contains(&name.as_str())
    };
    let numbers = |vector: &Expr| format!("string_to_array(CAST({vector} AS TEXT), ' ')");
    match expr {
        Expr::CompoundIdentifier(parts)
            if parts.last().is_some_and(|part| {
                MISSING_COLUMNS.contains(&part.value.to_ascii_lowercase().as_str())
            }) =>
        {
            Some("CAST(NULL AS TEXT)".to_owned())
        }
        Expr::Function(function) => {
            let name = function.name.to_string().to_ascii_lowercase();
            let name = name.trim_start_matches("pg_catalog.");
            let FunctionArguments::List(list) = &function.args else {
                return None;
            };
            let first = match list.args.first()? {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(first)) => first,
                _ => return None,
            };
            if !is_vector(first) {
                return None;
            }
            match name {
                "unnest" if list.args.len() == 1 => {
                    Some(format!("unnest(CAST({} AS BIGINT[]))", numbers(first)))
                }
                // The dimension stays named: its parameter is still sent.
                "generate_subscripts" => {
                    let dimension = match list.args.get(1) {
                        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(dimension))) => {
                            format!(" + 0 * CAST({dimension} AS BIGINT)")
                        }
                        _ => String::new(),
                    };
                    Some(format!(
                        "unnest(range(1, CAST(cardinality({}) AS BIGINT) + 1{dimension}))",
                        numbers(first)
                    ))
                }
                _ => None,
            }
        }
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } if data_type.to_string().eq_ignore_ascii_case("regclass")
            && matches!(inner.as_ref(), Expr::Value(_)) =>
        {
            Some(format!(
                "CAST(CASE WHEN false THEN length(CAST({inner} AS TEXT)) END AS BIGINT)"
            ))
        }
        _ => None,
    }
}

/// NULL, still naming the parameters of `query`: a client sends a value
/// for each parameter of the statement, and the server reads them by their
/// number, so none may go missing.
fn null_keeping_parameters(query: &Query) -> String {
    let mut parameters = Vec::new();
    let _ = visit_expressions(query, |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(name) = &value.value
        {
            parameters.push(format!("CAST({name} AS TEXT)"));
        }
        ControlFlow::<()>::Continue(())
    });
    if parameters.is_empty() {
        return "NULL".to_owned();
    }
    format!("CASE WHEN false THEN concat({}) END", parameters.join(", "))
}

/// Catalogue tables that have no rows in chiso.
const EMPTY_TABLES: [&str; 2] = ["pg_attrdef", "pg_sequence"];

/// Whether a query selects from empty catalogue tables only.
fn reads_only_empty_tables(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let relations: Vec<&TableFactor> = select
        .from
        .iter()
        .flat_map(|from| {
            std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        })
        .collect();
    !relations.is_empty()
        && relations.iter().all(|relation| {
            matches!(relation, TableFactor::Table { name, .. }
            if name.0.last().is_some_and(|part| {
                let part = part.to_string().to_ascii_lowercase();
                EMPTY_TABLES.contains(&part.as_str())
            }))
        })
}

fn is_aggregate(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(function)
        if AGGREGATES.contains(&function.name.to_string().to_ascii_lowercase().as_str()))
}

/// The token-level rewrites of [`rewrite`].
fn tokens_rewritten(sql: &str) -> Cow<'_, str> {
    let lowered = sql.to_ascii_lowercase();
    let regproc = REGPROC_COLUMNS
        .iter()
        .any(|column| lowered.contains(column));
    if !regproc && !lowered.contains("to_regtype") {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Cow::Borrowed(sql);
    };
    let mut tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|token| !matches!(token, Token::Whitespace(_)))
        .collect();
    let changed = regproc_compared_as_text(&mut tokens) | to_regtype_as_subquery(&mut tokens);
    if !changed {
        return Cow::Borrowed(sql);
    }
    let words: Vec<String> = tokens.iter().map(Token::to_string).collect();
    Cow::Owned(words.join(" "))
}

/// `typreceive != 0` → `typreceive <> '-'` (and the other regproc columns).
fn regproc_compared_as_text(tokens: &mut [Token]) -> bool {
    let mut changed = false;
    for at in 1..tokens.len().saturating_sub(1) {
        if !matches!(tokens[at], Token::Eq | Token::Neq) {
            continue;
        }
        for (column, zero) in [(at - 1, at + 1), (at + 1, at - 1)] {
            let is_column = matches!(&tokens[column], Token::Word(word)
                if REGPROC_COLUMNS.contains(&word.value.to_ascii_lowercase().as_str()));
            let is_zero = matches!(&tokens[zero], Token::Number(number, _) if number == "0");
            if is_column && is_zero {
                tokens[zero] = Token::SingleQuotedString("-".to_owned());
                changed = true;
            }
        }
    }
    changed
}

/// `to_regtype(x)` → `(SELECT oid FROM pg_catalog.pg_type WHERE typname = x
/// LIMIT 1)`, for `x` one token (a literal or a parameter).
fn to_regtype_as_subquery(tokens: &mut Vec<Token>) -> bool {
    let mut changed = false;
    let mut at = 0;
    while at + 3 < tokens.len() {
        let call = matches!(&tokens[at], Token::Word(word) if word.value.eq_ignore_ascii_case("to_regtype"))
            && tokens[at + 1] == Token::LParen
            && tokens[at + 3] == Token::RParen;
        if !call {
            at += 1;
            continue;
        }
        let name = tokens[at + 2].to_string();
        let subquery =
            format!("(SELECT oid FROM pg_catalog.pg_type WHERE typname = {name} LIMIT 1)");
        let Ok(replacement) = Tokenizer::new(&PostgreSqlDialect {}, &subquery).tokenize() else {
            return changed;
        };
        let replacement: Vec<Token> = replacement
            .into_iter()
            .filter(|token| !matches!(token, Token::Whitespace(_)))
            .collect();
        let length = replacement.len();
        tokens.splice(at..at + 4, replacement);
        at += length;
        changed = true;
    }
    changed
}

/// `json_build_object(key, value, …)`: a JSON object as text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return plan_err!("json_build_object takes keys and values in pairs");
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut objects = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let mut members = Vec::with_capacity(arrays.len() / 2);
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                members.push(format!(
                    "{}: {}",
                    json_text(&key.to_string()),
                    json_value(&value)
                ));
            }
            objects.push(format!("{{{}}}", members.join(", ")));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(objects))))
    }
}

/// A value as JSON: numbers and booleans as they are, null, text quoted.
fn json_value(value: &ScalarValue) -> String {
    if value.is_null() {
        return "null".to_owned();
    }
    match value.data_type() {
        DataType::Boolean => value.to_string(),
        data_type if data_type.is_numeric() => value.to_string(),
        _ => json_text(&value.to_string()),
    }
}

/// Text as a JSON string.
fn json_text(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Acknowledges savepoints: a read-only transaction has nothing to keep
/// or undo. Ahead of the transaction hook, whose `ROLLBACK` would end the
/// whole transaction on a `ROLLBACK TO SAVEPOINT`.
#[derive(Debug)]
pub(crate) struct Savepoints;

impl Savepoints {
    fn tag(statement: &Statement) -> Option<&'static str> {
        match statement {
            Statement::Savepoint { .. } => Some("SAVEPOINT"),
            Statement::ReleaseSavepoint { .. } => Some("RELEASE"),
            Statement::Rollback {
                savepoint: Some(_), ..
            } => Some("ROLLBACK"),
            _ => None,
        }
    }
}

#[async_trait]
impl QueryHook for Savepoints {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::tag(statement).map(|tag| Ok(Response::Execution(Tag::new(tag))))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::tag(statement)?;
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::empty()),
        })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::tag(statement).map(|tag| Ok(Response::Execution(Tag::new(tag))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regproc_columns_compare_with_no_function_as_text() {
        let adbc = "SELECT oid, typname FROM pg_catalog.pg_type \
                    WHERE (typreceive != 0 OR typsend <> 0) AND typtype != 'r' \
                    AND typreceive::TEXT != 'array_recv'";
        assert_eq!(
            rewrite(adbc),
            "SELECT oid , typname FROM pg_catalog . pg_type \
             WHERE ( typreceive <> '-' OR typsend <> '-' ) AND typtype <> 'r' \
             AND typreceive :: TEXT <> 'array_recv'"
        );
        assert_eq!(
            rewrite("SELECT 1 FROM pg_type t WHERE 0 = typinput AND t.typoutput = 0"),
            "SELECT 1 FROM pg_type t WHERE '-' = typinput AND t . typoutput = '-'"
        );
        assert_eq!(
            rewrite("SELECT typname FROM pg_type t WHERE t.oid = to_regtype($1)"),
            "SELECT typname FROM pg_type t WHERE t . oid = ( SELECT oid FROM pg_catalog . pg_type \
             WHERE typname = $1 LIMIT 1 )"
        );
        for untouched in [
            "SELECT * FROM kpi('2025-W28', 'ward') WHERE received != 0",
            "SELECT typsend FROM pg_type WHERE oid = 0",
            "SELECT 'typsend = 0'",
            "SELECT 'to_regtype'",
        ] {
            assert!(
                matches!(rewrite(untouched), Cow::Borrowed(_)),
                "{untouched}"
            );
        }
    }

    #[test]
    fn catalogue_subqueries_are_aggregated() {
        assert_eq!(
            rewrite(
                "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
                 FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) AS dflt, \
                 (SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) AS c, \
                 (SELECT count(*) FROM pg_catalog.pg_type) AS n FROM pg_catalog.pg_attribute a"
            ),
            "SELECT a.attname, NULL AS dflt, \
             (SELECT max(t.typcollation) FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) AS c, \
             (SELECT count(*) FROM pg_catalog.pg_type) AS n FROM pg_catalog.pg_attribute a"
        );
        let analyst =
            "SELECT ward_code, (SELECT max(received) FROM kpi('2025-W28', 'ward')) FROM wards";
        assert!(matches!(rewrite(analyst), Cow::Borrowed(_)));
    }

    #[test]
    fn catalogue_vectors_unnest_as_numbers_keeping_parameters() {
        let sql = "SELECT c.conname, unnest(pg_catalog.pg_index.indkey) AS attnum, \
                   generate_subscripts(pg_catalog.pg_index.indkey, $1::INTEGER) AS ord, \
                   pg_catalog.pg_class.reloptions \
                   FROM (SELECT 1) AS c WHERE c.classoid = CAST($2 AS REGCLASS)";
        let rewritten = rewrite(sql);
        assert!(
            rewritten.contains("unnest(CAST(string_to_array(CAST(pg_catalog.pg_index.indkey AS TEXT), ' ') AS BIGINT[]))"),
            "{rewritten}"
        );
        assert!(rewritten.contains("unnest(range(1, "), "{rewritten}");
        // Every parameter is still there, for the values the client sends.
        assert!(
            rewritten.contains("$1") && rewritten.contains("$2"),
            "{rewritten}"
        );
        assert!(
            !rewritten.to_ascii_lowercase().contains("regclass"),
            "{rewritten}"
        );
        assert!(!rewritten.contains("reloptions"), "{rewritten}");
    }

    #[test]
    fn json_objects_quote_text_and_keep_numbers() {
        assert_eq!(
            json_value(&ScalarValue::Utf8(Some("a \"b\"\n".into()))),
            r#""a \"b\"\u000a""#
        );
        assert_eq!(json_value(&ScalarValue::Int64(Some(4))), "4");
        assert_eq!(json_value(&ScalarValue::Boolean(Some(true))), "true");
        assert_eq!(json_value(&ScalarValue::Int64(None)), "null");
    }

    #[test]
    fn the_version_reads_as_postgresql() {
        assert!(version().starts_with("PostgreSQL 16.6 (chiso "));
    }
}
