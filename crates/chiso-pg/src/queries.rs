//! Statements from Postgres clients, simple and extended protocol alike:
//! admitted by the gate, run by datafusion-postgres on a bounded session of
//! the store version being served, their rows stopped at the deadline or on
//! a cancel request.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chiso_engine::datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
};
use chiso_engine::datafusion::execution::session_state::SessionStateBuilder;
use chiso_engine::datafusion::logical_expr::LogicalPlan;
use chiso_engine::datafusion::prelude::SessionContext;
use chiso_engine::datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use chiso_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use chiso_engine::datafusion::sql::sqlparser::parser::Parser as SqlParser;
use chiso_engine::{Engine, EngineError, QueryGate, QueryLimits, Scope, Stop};
use chiso_users::Users;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_partial_query_response,
};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::extendedquery::Execute;
use datafusion_postgres::pgwire::messages::response::EmptyQueryResponse;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::future::FutureExt;
use futures::{Sink, SinkExt};

use crate::audit::Audit;
use crate::cancel::Cancels;
use crate::cursors::{self, Running};
use crate::{EngineSource, PgError, compat, guard, text_rows};

/// A statement as the extended protocol keeps it: its text, and its parsed
/// form with its plan (datafusion-postgres's portal type).
pub(crate) type Statement = (String, Option<(SqlStatement, LogicalPlan)>);

/// The Postgres view of one store version: the engine's tables and
/// functions plus `pg_catalog`, in a catalogue of its own so that the
/// engine's session (the CLI's, the pages') never sees them.
struct Catalogue {
    context: SessionContext,
    /// Parses and describes statements (no rows, no memory to bound).
    parsing: DfSessionService,
}

impl Catalogue {
    fn new(engine: &Engine, hooks: &[Arc<dyn QueryHook>]) -> Result<Self, PgError> {
        let failed = |e: &dyn std::fmt::Display| PgError::Catalog(e.to_string());
        let state = engine.context().state();
        let name = state.config().options().catalog.default_catalog.clone();
        let engine_catalog = state
            .catalog_list()
            .catalog(&name)
            .ok_or_else(|| PgError::Catalog(format!("the engine has no catalog `{name}`")))?;
        let own = MemoryCatalogProvider::new();
        for schema in engine_catalog.schema_names() {
            if let Some(provider) = engine_catalog.schema(&schema) {
                own.register_schema(&schema, provider)
                    .map_err(|e| failed(&e))?;
            }
        }
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(name.clone(), Arc::new(own));
        let context = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state)
                .with_catalog_list(Arc::new(catalogs))
                .build(),
        );
        setup_pg_catalog(&context, &name, EmptyContextProvider).map_err(|e| failed(&e))?;
        compat::register(&context);
        let parsing = DfSessionService::new_with_hooks(Arc::new(context.clone()), hooks.to_vec());
        Ok(Self { context, parsing })
    }

    /// A service for one statement: its own memory pool of `memory` bytes.
    fn bounded(&self, memory: usize, hooks: &[Arc<dyn QueryHook>]) -> DfSessionService {
        let session = chiso_engine::bounded_session(self.context.state(), memory);
        DfSessionService::new_with_hooks(Arc::new(session), hooks.to_vec())
    }
}

/// The catalogues of the store version being served, one per scope of the
/// users signed in, each made once per version: a user's statements are
/// parsed, planned and run in the catalogue of their scope
/// (`Engine::scoped`), so no statement of theirs reaches another ward's
/// rows.
struct Catalogues {
    source: Arc<dyn EngineSource>,
    hooks: Vec<Arc<dyn QueryHook>>,
    users: Arc<Users>,
    current: Mutex<(String, HashMap<Scope, Arc<Catalogue>>)>,
}

impl Catalogues {
    /// The catalogue of the signed-in user of `client`. A leader's role
    /// reads pages and reports, not SQL: refused (42501).
    async fn for_client<C: ClientInfo>(&self, client: &C) -> PgWireResult<Arc<Catalogue>> {
        let name = client.metadata().get("user").cloned().unwrap_or_default();
        let user = self
            .users
            .get(&name)
            .ok_or_else(|| user_error("28000", format!("`{name}` is not a user of chiso")))?;
        if !user.role.writes_sql() {
            return Err(user_error(
                "42501",
                format!(
                    "{name} is a {}: SQL is for analysts, ward users and administrators",
                    user.role.as_str()
                ),
            ));
        }
        self.current(&user.scope()).await
    }

    async fn current(&self, scope: &Scope) -> PgWireResult<Arc<Catalogue>> {
        let (key, engine) = self.source.current();
        {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.0 == key
                && let Some(catalogue) = current.1.get(scope)
            {
                return Ok(Arc::clone(catalogue));
            }
        }
        let failed = |e: &dyn std::fmt::Display| user_error("XX000", e.to_string());
        let scoped = engine.scoped(scope).await.map_err(|e| failed(&e))?;
        let catalogue = Arc::new(Catalogue::new(&scoped, &self.hooks).map_err(|e| failed(&e))?);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != key {
            *current = (key, HashMap::new());
        }
        current.1.insert(scope.clone(), Arc::clone(&catalogue));
        Ok(catalogue)
    }

    /// Any catalogue made: what describes a statement already planned
    /// (its parameter types and columns come from its plan alone).
    fn any(&self) -> PgWireResult<Arc<Catalogue>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .1
            .values()
            .next()
            .cloned()
            .ok_or_else(|| user_error("XX000", "no statement was prepared".to_owned()))
    }
}

/// The query handler of every connection.
pub(crate) struct Queries {
    catalogues: Arc<Catalogues>,
    parser: Arc<CurrentParser>,
    gate: QueryGate,
    cancels: Arc<Cancels>,
    audit: Audit,
}

impl Queries {
    pub(crate) fn new(
        source: Arc<dyn EngineSource>,
        users: Arc<Users>,
        gate: QueryGate,
        cancels: Arc<Cancels>,
        audit: Audit,
    ) -> Self {
        // The guard first: a hook that answers ends the search; the rows
        // of whatever query is left last.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(guard::ReadOnly),
            Arc::new(cursors::Cursors),
            Arc::new(SetShowHook),
            Arc::new(compat::Savepoints),
            Arc::new(TransactionStatementHook),
            Arc::new(text_rows::TextRows),
        ];
        let catalogues = Arc::new(Catalogues {
            source,
            hooks,
            users,
            current: Mutex::new((String::new(), HashMap::new())),
        });
        Self {
            parser: Arc::new(CurrentParser {
                catalogues: Arc::clone(&catalogues),
            }),
            catalogues,
            gate,
            cancels,
            audit,
        }
    }

    /// A place for a statement of `client`, with its deadline (the
    /// client's `statement_timeout` may shorten it) and the connection's
    /// cancel signal.
    fn start<C: ClientInfo>(&self, client: &C) -> PgWireResult<Running> {
        let mut admission = self.gate.admit().map_err(|e| engine_error(&e))?;
        if let Some(asked) = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            admission.shorten(Duration::from_millis(asked));
        }
        Ok(Running {
            admission: Arc::new(admission),
            cancel: self.cancels.watch(client).boxed().shared(),
        })
    }

    fn hooks(&self) -> &[Arc<dyn QueryHook>] {
        &self.catalogues.hooks
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self.simple_query(client, query).await;
        self.audit
            .record(client, "sql", query, result.as_ref().map(|_| ()));
        result
    }
}

impl Queries {
    async fn simple_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let catalogue = self.catalogues.for_client(client).await?;
        let query = &*compat::rewrite(query);
        if !any_takes_a_place(query) {
            let service = catalogue.bounded(self.gate.limits().memory, self.hooks());
            return SimpleQueryHandler::do_query(&service, client, query).await;
        }
        let running = self.start(client)?;
        let service = catalogue.bounded(running.admission.limits().memory, self.hooks());
        let responses = running
            .run(SimpleQueryHandler::do_query(&service, client, query))
            .await?;
        Ok(responses
            .into_iter()
            .map(|response| running.bound_response(response))
            .collect())
    }

    async fn portal_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let catalogue = self.catalogues.for_client(client).await?;
        let parsed = portal.statement.statement.1.as_ref();
        if parsed.is_some_and(|(statement, _)| !takes_a_place(statement)) {
            let service = catalogue.bounded(self.gate.limits().memory, self.hooks());
            return ExtendedQueryHandler::do_query(&service, client, portal, max_rows).await;
        }
        let running = self.start(client)?;
        let service = catalogue.bounded(running.admission.limits().memory, self.hooks());
        let response = running
            .run(ExtendedQueryHandler::do_query(
                &service, client, portal, max_rows,
            ))
            .await?;
        Ok(running.bound_response(response))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Statement;
    type QueryParser = CurrentParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self.portal_query(client, portal, max_rows).await;
        self.audit.record(
            client,
            "sql",
            &portal.statement.statement.0,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// pgwire's `Execute`, except that a portal's rows are sent as they
    /// come: pgwire collects the rows asked for into a vector sized by the
    /// client's row limit first (four billion rows asked for aborted the
    /// process), and all of them for a limit of 0.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut transaction = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = message.max_rows as usize;
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let started = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        let rows_to_send = if started {
            match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), max_rows).await? {
                Response::Query(results) => {
                    portal.start(results).await;
                    true
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                    false
                }
                Response::Execution(tag) => {
                    send_execution_response(client, tag).await?;
                    false
                }
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_in_transaction_state();
                    false
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_idle_state();
                    client.portal_store().rm_portal(DEFAULT_NAME);
                    false
                }
                Response::Error(error) => {
                    client
                        .send(PgWireBackendMessage::ErrorResponse((*error).into()))
                        .await?;
                    transaction = transaction.to_error_state();
                    false
                }
                Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                    return Err(user_error(
                        "0A000",
                        "COPY is not supported by chiso".to_owned(),
                    ));
                }
            }
        } else {
            true
        };
        if rows_to_send {
            let state = portal.state();
            let mut state = state.lock().await;
            match &mut *state {
                PortalExecutionState::Suspended(results) => {
                    let suspended = send_partial_query_response(client, results, max_rows).await?;
                    if !suspended {
                        *state = PortalExecutionState::Finished;
                    }
                }
                PortalExecutionState::Finished => {
                    client
                        .send(PgWireBackendMessage::CommandComplete(
                            Tag::new("SELECT").with_rows(0).into(),
                        ))
                        .await?;
                }
                PortalExecutionState::Initial => return Err(PgWireError::PortalNotStarted),
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction);
        Ok(())
    }
}

/// Whether a statement needs a place in the gate of its own. Fetching from
/// or closing a cursor continues a statement that holds one already;
/// transactions and client settings touch no data. With one place, a
/// cursor could otherwise never be fetched.
fn takes_a_place(statement: &SqlStatement) -> bool {
    !matches!(
        statement,
        SqlStatement::Fetch { .. }
            | SqlStatement::Close { .. }
            | SqlStatement::StartTransaction { .. }
            | SqlStatement::Commit { .. }
            | SqlStatement::Rollback { .. }
            | SqlStatement::Set(_)
            | SqlStatement::ShowVariable { .. }
            | SqlStatement::Discard { .. }
    )
}

/// Whether any statement of a simple query needs a place. Most queries
/// are answered by their first word, without parsing (the compatibility
/// parser costs half a millisecond to make); the few that might not need
/// one are parsed to be sure, and what does not parse takes a place.
fn any_takes_a_place(query: &str) -> bool {
    const FREE_FIRST_WORDS: [&str; 12] = [
        "fetch", "close", "begin", "start", "commit", "end", "rollback", "abort", "set", "show",
        "discard", "reset",
    ];
    let first = query
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !FREE_FIRST_WORDS.contains(&first.as_str()) {
        return true;
    }
    match SqlParser::parse_sql(&PostgreSqlDialect {}, query) {
        Ok(statements) => statements.is_empty() || statements.iter().any(takes_a_place),
        Err(_) => true,
    }
}

/// Parses and describes with the catalogue of the version being served.
pub(crate) struct CurrentParser {
    catalogues: Arc<Catalogues>,
}

#[async_trait]
impl QueryParser for CurrentParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let catalogue = self.catalogues.for_client(client).await?;
        catalogue
            .parsing
            .query_parser()
            .parse_sql(client, &compat::rewrite(sql), types)
            .await
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.catalogues
            .any()?
            .parsing
            .query_parser()
            .get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.catalogues
            .any()?
            .parsing
            .query_parser()
            .get_result_schema(statement, column_format)
    }
}

pub(crate) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// SQLSTATE 57014, query_canceled, as PostgreSQL says it for both reasons.
pub(crate) fn stopped(stop: &Stop) -> PgWireError {
    let message = match stop {
        Stop::Timeout(limit) => format!(
            "canceling statement due to statement timeout ({} s)",
            limit.as_secs_f64().round()
        ),
        Stop::Cancelled => "canceling statement due to user request".to_owned(),
    };
    user_error("57014", message)
}

fn engine_error(error: &EngineError) -> PgWireError {
    match error {
        // 53000 insufficient_resources, 53200 out_of_memory
        EngineError::Busy(_) => user_error("53000", error.to_string()),
        EngineError::Memory { .. } => user_error("53200", error.to_string()),
        EngineError::Stopped(stop) => stopped(stop),
        // 22023 invalid_parameter_value: an unknown period, grouping, ward.
        EngineError::Request(_) => user_error("22023", error.to_string()),
        // 42000 syntax_error_or_access_rule_violation: SQL that cannot be planned.
        EngineError::Invalid(_) => user_error("42000", error.to_string()),
        EngineError::Refused(_) => user_error("25006", error.to_string()),
        other => user_error("XX000", other.to_string()),
    }
}

/// An execution error, with a memory limit reached named as such.
pub(crate) fn explained(error: PgWireError, limits: &QueryLimits) -> PgWireError {
    let text = error.to_string();
    if text.contains("Resources exhausted") {
        engine_error(&EngineError::Memory {
            limit: limits.memory_text(),
            detail: text,
        })
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::any_takes_a_place;

    #[test]
    fn only_cursor_transaction_and_setting_statements_go_without_a_place() {
        for free in [
            "FETCH 10 FROM c",
            "  fetch all from c;",
            "CLOSE c",
            "BEGIN",
            "COMMIT; FETCH 1 FROM c",
            "SET application_name = 'x'",
            "SHOW search_path",
        ] {
            assert!(!any_takes_a_place(free), "{free}");
        }
        for placed in [
            "SELECT 1",
            "FETCH 1 FROM c; SELECT count(*) FROM events",
            "BEGIN; SELECT 1",
            "DECLARE c CURSOR FOR SELECT 1",
            "SHOW TABLES",
            "fetch nonsense ((",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert!(any_takes_a_place(placed), "{placed}");
        }
    }
}
