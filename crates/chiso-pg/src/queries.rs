//! Statements from Postgres clients, simple and extended protocol alike:
//! admitted by the gate, run by datafusion-postgres on a bounded session of
//! the store version being served, their rows stopped at the deadline or on
//! a cancel request.

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
use chiso_engine::{Admission, Engine, EngineError, QueryGate, QueryLimits, Stop};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{Sink, StreamExt};

use crate::cancel::Cancels;
use crate::{EngineSource, PgError, guard, text_rows};

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
        let parsing = DfSessionService::new_with_hooks(Arc::new(context.clone()), hooks.to_vec());
        Ok(Self { context, parsing })
    }

    /// A service for one statement: its own memory pool of `memory` bytes.
    fn bounded(&self, memory: usize, hooks: &[Arc<dyn QueryHook>]) -> DfSessionService {
        let session = chiso_engine::bounded_session(self.context.state(), memory);
        DfSessionService::new_with_hooks(Arc::new(session), hooks.to_vec())
    }
}

/// The catalogue of the store version being served, made once per version.
struct Catalogues {
    source: Arc<dyn EngineSource>,
    hooks: Vec<Arc<dyn QueryHook>>,
    current: Mutex<Option<(String, Arc<Catalogue>)>>,
}

impl Catalogues {
    fn current(&self) -> PgWireResult<Arc<Catalogue>> {
        let (key, engine) = self.source.current();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_for, catalogue)) = current.as_ref()
            && *built_for == key
        {
            return Ok(Arc::clone(catalogue));
        }
        let catalogue = Arc::new(
            Catalogue::new(&engine, &self.hooks).map_err(|e| user_error("XX000", e.to_string()))?,
        );
        *current = Some((key, Arc::clone(&catalogue)));
        Ok(catalogue)
    }
}

/// The query handler of every connection.
pub(crate) struct Queries {
    catalogues: Arc<Catalogues>,
    parser: Arc<CurrentParser>,
    gate: QueryGate,
    cancels: Arc<Cancels>,
}

impl Queries {
    pub(crate) fn new(
        source: Arc<dyn EngineSource>,
        gate: QueryGate,
        cancels: Arc<Cancels>,
    ) -> Self {
        // The guard first: a hook that answers ends the search; the rows
        // of whatever query is left last.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(guard::ReadOnly),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
            Arc::new(text_rows::TextRows),
        ];
        let catalogues = Arc::new(Catalogues {
            source,
            hooks,
            current: Mutex::new(None),
        });
        Self {
            parser: Arc::new(CurrentParser {
                catalogues: Arc::clone(&catalogues),
            }),
            catalogues,
            gate,
            cancels,
        }
    }

    /// A place for a statement of `client`, with its deadline; the client's
    /// `statement_timeout` may shorten it.
    fn admit<C: ClientInfo>(&self, client: &C) -> PgWireResult<Admission> {
        let mut admission = self.gate.admit().map_err(|e| engine_error(&e))?;
        if let Some(asked) = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            admission.shorten(Duration::from_millis(asked));
        }
        Ok(admission)
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
        let catalogue = self.catalogues.current()?;
        let admission = self.admit(client)?;
        let service = catalogue.bounded(admission.limits().memory, self.hooks());
        let cancel = self.cancels.watch(client).boxed().shared();
        let responses = admission
            .within(SimpleQueryHandler::do_query(&service, client, query))
            .await
            .map_err(|stop| stopped(&stop))?
            .map_err(|e| explained(e, &admission.limits()))?;
        Ok(bound(responses, admission, cancel))
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
        let catalogue = self.catalogues.current()?;
        let admission = self.admit(client)?;
        let service = catalogue.bounded(admission.limits().memory, self.hooks());
        let cancel = self.cancels.watch(client).boxed().shared();
        let response = admission
            .within(ExtendedQueryHandler::do_query(
                &service, client, portal, max_rows,
            ))
            .await
            .map_err(|stop| stopped(&stop))?
            .map_err(|e| explained(e, &admission.limits()))?;
        Ok(bound(vec![response], admission, cancel)
            .pop()
            .unwrap_or(Response::EmptyQuery))
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
        let catalogue = self.catalogues.current()?;
        catalogue
            .parsing
            .query_parser()
            .parse_sql(client, sql, types)
            .await
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.catalogues
            .current()?
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
            .current()?
            .parsing
            .query_parser()
            .get_result_schema(statement, column_format)
    }
}

/// The rows of each answer, stopped at the deadline or on a cancel; the
/// place in the gate is held until the last of them ends.
fn bound(
    responses: Vec<Response>,
    admission: Admission,
    cancel: Shared<BoxFuture<'static, ()>>,
) -> Vec<Response> {
    let admission = Arc::new(admission);
    responses
        .into_iter()
        .map(|response| match response {
            Response::Query(mut answer) => {
                let rows =
                    std::mem::replace(&mut answer.data_rows, Box::pin(futures::stream::empty()));
                let held = Arc::clone(&admission);
                let limits = held.limits();
                let stopped_rows =
                    chiso_engine::stop_early(rows, held.deadline(), limits.timeout, cancel.clone())
                        .map(move |item| {
                            let _place = &held;
                            match item {
                                Ok(Ok(row)) => Ok(row),
                                Ok(Err(error)) => Err(explained(error, &limits)),
                                Err(stop) => Err(stopped(&stop)),
                            }
                        });
                answer.data_rows = Box::pin(stopped_rows);
                Response::Query(answer)
            }
            other => other,
        })
        .collect()
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// SQLSTATE 57014, query_canceled, as PostgreSQL says it for both reasons.
fn stopped(stop: &Stop) -> PgWireError {
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
        other => user_error("XX000", other.to_string()),
    }
}

/// An execution error, with a memory limit reached named as such.
fn explained(error: PgWireError, limits: &QueryLimits) -> PgWireError {
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
