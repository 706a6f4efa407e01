//! Read-only SQL: the one check every entry point (the CLI, HTTP, the
//! Postgres wire) runs before planning an analyst's query.
//!
//! Only queries (`SELECT`, `WITH`, `VALUES`), `EXPLAIN` of a query, `SHOW`
//! and `DESCRIBE` pass. DDL, DML, `COPY`, `SET`, transactions and anything
//! else are refused by name. Reading files outside the store is impossible
//! anyway: the session registers no file-reading table functions and does
//! not resolve paths as table names.

use chiso_exec::datafusion::sql::parser::{DFParser, Statement};
use chiso_exec::datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement as SqlStatement};

use crate::EngineError;

/// Refuses anything but read-only statements, naming what was refused.
pub fn check_read_only(sql: &str) -> Result<(), EngineError> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| EngineError::Query(format!("SQL error: {e}")))?;
    if statements.is_empty() {
        return Err(EngineError::Query("the query is empty".into()));
    }
    if statements.len() > 1 {
        return Err(EngineError::Refused(
            "one statement at a time, please: the query holds several (separated by `;`)".into(),
        ));
    }
    match refusal(&statements[0]) {
        Some(kind) => Err(refused(&kind)),
        None => Ok(()),
    }
}

/// The same check for a statement parsed elsewhere (the Postgres wire
/// parses with its own dialect and rewrites).
pub fn check_parsed(statement: &SqlStatement) -> Result<(), EngineError> {
    match sql_refusal(statement) {
        Some(kind) => Err(refused(&kind)),
        None => Ok(()),
    }
}

fn refused(kind: &str) -> EngineError {
    EngineError::Refused(format!(
        "chiso's SQL is read-only: `{kind}` statements are refused; \
         use SELECT (or WITH, EXPLAIN, SHOW, DESCRIBE)"
    ))
}

/// What is refused in `statement`, by name; `None` when it only reads.
fn refusal(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Statement(inner) => sql_refusal(inner),
        // EXPLAIN [ANALYZE] runs what it explains: judge that.
        Statement::Explain(explain) => refusal(&explain.statement),
        Statement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".to_owned()),
        Statement::CopyTo(_) => Some("COPY".to_owned()),
        other => Some(leading_keywords(&other.to_string())),
    }
}

fn sql_refusal(statement: &SqlStatement) -> Option<String> {
    match statement {
        SqlStatement::Query(query) => query_refusal(query),
        SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ExplainTable { .. } => None,
        // EXPLAIN ANALYZE runs what it explains: judge that.
        SqlStatement::Explain { statement, .. } => sql_refusal(statement),
        other => Some(kind_of(other)),
    }
}

/// What a query would write: `SELECT … INTO` creates a table, and a
/// query's body or `WITH` may hold DML.
fn query_refusal(query: &Query) -> Option<String> {
    query
        .with
        .iter()
        .flat_map(|with| &with.cte_tables)
        .find_map(|cte| query_refusal(&cte.query))
        .or_else(|| body_refusal(&query.body))
}

fn body_refusal(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::Select(select) => select.into.as_ref().map(|_| "SELECT INTO".to_owned()),
        SetExpr::Query(query) => query_refusal(query),
        SetExpr::SetOperation { left, right, .. } => {
            body_refusal(left).or_else(|| body_refusal(right))
        }
        SetExpr::Insert(statement)
        | SetExpr::Update(statement)
        | SetExpr::Delete(statement)
        | SetExpr::Merge(statement) => Some(kind_of(statement)),
        SetExpr::Values(_) | SetExpr::Table(_) => None,
    }
}

/// The statement's leading keywords, as a user would name it.
fn kind_of(statement: &SqlStatement) -> String {
    leading_keywords(&statement.to_string())
}

/// `DROP TABLE`, `INSERT INTO`, `UPDATE`: the words that name a statement.
fn leading_keywords(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let take = match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(first)
            if ["CREATE", "DROP", "ALTER", "INSERT", "DELETE", "TRUNCATE"]
                .contains(&first.as_str()) =>
        {
            2
        }
        _ => 1,
    };
    words
        .into_iter()
        .take(take)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::check_read_only;

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "with a as (select 1) select * from a",
            "EXPLAIN SELECT * FROM events",
            "SHOW TABLES",
            "VALUES (1), (2)",
            "SELECT * FROM kpi('2025-W28', 'ward');",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for (sql, named) in [
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            (
                "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("DROP TABLE events", "DROP TABLE"),
            ("INSERT INTO events VALUES (1)", "INSERT INTO"),
            ("DELETE FROM events", "DELETE FROM"),
            ("UPDATE events SET ward_code = '1'", "UPDATE"),
            ("COPY events TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            (
                "EXPLAIN ANALYZE INSERT INTO events VALUES (1)",
                "INSERT INTO",
            ),
            ("EXPLAIN COPY events TO '/tmp/x.csv'", "COPY"),
            ("SELECT 1; DROP TABLE events", "one statement"),
            ("SELECT * INTO t FROM wards", "SELECT INTO"),
            ("SELECT 1 UNION (SELECT * INTO t FROM wards)", "SELECT INTO"),
            (
                "WITH w AS (SELECT * INTO t FROM wards) SELECT * FROM w",
                "SELECT INTO",
            ),
        ] {
            let error = check_read_only(sql).unwrap_err().to_string();
            assert!(error.contains(named), "{sql}: {error}");
        }
    }
}
