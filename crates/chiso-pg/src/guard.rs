//! The read-only rule on the wire: the engine's guard, plus the few
//! statements Postgres clients send on their own that change nothing.
//!
//! Clients open transactions (`BEGIN` before every query in psycopg's
//! default mode), set client settings (`SET application_name`,
//! `extra_float_digits`, `statement_timeout`) and use cursors; those are
//! answered per connection by datafusion-postgres's hooks and touch no data.
//! Everything else must pass [`chiso_engine::check_parsed`], so `SET
//! datafusion.…`, DDL, DML and `COPY` are refused with the same message as
//! on every other entry point.

use async_trait::async_trait;
use chiso_engine::datafusion::common::ParamValues;
use chiso_engine::datafusion::execution::context::SQLOptions;
use chiso_engine::datafusion::logical_expr::LogicalPlan;
use chiso_engine::datafusion::prelude::SessionContext;
use chiso_engine::datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Client settings a `SET` may change (per connection, never the data).
const CLIENT_SETTINGS: [&str; 9] = [
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
    "client_encoding",
    "client_min_messages",
];

/// Refuses what the engine's guard refuses, first among the hooks.
#[derive(Debug)]
pub(crate) struct ReadOnly;

impl ReadOnly {
    fn check(statement: &Statement) -> Option<PgWireError> {
        let allowed = match statement {
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::ShowVariable { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. } => true,
            Statement::Set(set) => return Self::check_set(set),
            Statement::Declare { stmts } => {
                return stmts
                    .iter()
                    .filter_map(|declare| declare.for_query.as_deref())
                    .find_map(|query| {
                        refusal(chiso_engine::check_parsed(&Statement::Query(Box::new(
                            query.clone(),
                        ))))
                    });
            }
            _ => false,
        };
        if allowed {
            None
        } else {
            refusal(chiso_engine::check_parsed(statement))
        }
    }

    fn check_set(set: &Set) -> Option<PgWireError> {
        match set {
            Set::SingleAssignment { variable, .. } => {
                let name = variable.to_string().to_ascii_lowercase();
                if CLIENT_SETTINGS.contains(&name.as_str()) {
                    None
                } else {
                    Some(read_only_error(format!(
                        "chiso's SQL is read-only: `SET {name}` is refused; a client may set only {}",
                        CLIENT_SETTINGS.join(", ")
                    )))
                }
            }
            Set::SetTimeZone { .. }
            | Set::SetNames { .. }
            | Set::SetNamesDefault { .. }
            | Set::SetTransaction { .. } => None,
            other => Some(read_only_error(format!(
                "chiso's SQL is read-only: `{other}` is refused"
            ))),
        }
    }
}

fn refusal(checked: Result<(), chiso_engine::EngineError>) -> Option<PgWireError> {
    checked
        .err()
        .map(|error| read_only_error(error.to_string()))
}

/// SQLSTATE 25006, read_only_sql_transaction: what PostgreSQL answers a
/// write in a read-only transaction.
fn read_only_error(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        "25006".to_owned(),
        message,
    )))
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::check(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The plan too, as the CLI and HTTP check it: whatever the parser
        // let through, a plan that would write or change a setting is not run.
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        Self::check(statement)
            .or_else(|| {
                // Client chatter (transactions, settings, cursors) is
                // answered by the hooks after this one, with plans of its own.
                let query = matches!(statement, Statement::Query(_));
                query
                    .then(|| read_only.verify_plan(logical_plan))?
                    .err()
                    .map(|e| read_only_error(format!("chiso's SQL is read-only: {e}")))
            })
            .map(Err)
    }
}

#[cfg(test)]
mod tests {
    use super::ReadOnly;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn verdict(sql: &str) -> Option<String> {
        let statements = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        statements
            .iter()
            .find_map(ReadOnly::check)
            .map(|e| e.to_string())
    }

    #[test]
    fn clients_chatter_passes_and_writes_are_refused_by_name() {
        for sql in [
            "SELECT * FROM kpi('2025-W28', 'ward')",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SET application_name = 'DBeaver'",
            "SET extra_float_digits = 3",
            "SET statement_timeout = '5s'",
            "SET TIME ZONE 'Asia/Ho_Chi_Minh'",
            "SHOW transaction_isolation",
            "SAVEPOINT _pg3_1",
            "RELEASE SAVEPOINT _pg3_1",
            "ROLLBACK TO SAVEPOINT _pg3_1",
            "DECLARE c CURSOR FOR SELECT * FROM wards",
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind IN ('r','p','v','m','') \
             AND pg_catalog.pg_table_is_visible(c.oid)",
        ] {
            assert_eq!(verdict(sql), None, "{sql}");
        }
        for (sql, named) in [
            ("DROP TABLE events", "DROP TABLE"),
            ("CREATE TABLE x (a int)", "CREATE TABLE"),
            ("INSERT INTO wards VALUES ('1')", "INSERT INTO"),
            ("DELETE FROM events", "DELETE FROM"),
            ("UPDATE events SET ward_code = '1'", "UPDATE"),
            ("COPY events TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET datafusion"),
            ("EXPLAIN ANALYZE DELETE FROM events", "DELETE FROM"),
        ] {
            let refused = verdict(sql).unwrap_or_else(|| panic!("{sql} passed"));
            assert!(
                refused.contains("read-only") && refused.contains(named),
                "{sql}: {refused}"
            );
        }
    }
}
