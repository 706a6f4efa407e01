//! Cursors and portals within the gate.
//!
//! A statement's place in the [`chiso_engine::QueryGate`] and its deadline
//! are held by whatever still produces its rows: the rows being sent, a
//! portal the extended protocol suspended (`Execute` with a row limit), or
//! a cursor (`DECLARE … CURSOR FOR`). The place is given back when the last
//! of them ends, is closed, or reaches the deadline, whichever comes first
//! ([`chiso_engine::stop_early`] drops an idle cursor's query at its
//! deadline).
//!
//! datafusion-postgres's own cursor hook plans a cursor's query outside any
//! gate and, like pgwire's portals, fetches by collecting the rows asked for
//! into a vector sized by the client (`FETCH 10000000000000000` aborted the
//! process). Here `FETCH n` streams at most `n` rows from the cursor, and
//! [`crate::queries`] sends a suspended portal's rows the same way.

use std::sync::Arc;

use async_trait::async_trait;
use chiso_engine::datafusion::common::{DFSchema, ParamValues};
use chiso_engine::datafusion::execution::context::SQLOptions;
use chiso_engine::datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use chiso_engine::datafusion::prelude::SessionContext;
use chiso_engine::datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, DeclareType, FetchDirection, Ident, Statement, Value,
};
use chiso_engine::{Admission, Stop, holding, stop_early};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::{MemPortalStore, PortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use futures::StreamExt;
use futures::future::{BoxFuture, Shared};

use crate::queries::{explained, stopped, user_error};

tokio::task_local! {
    /// The statement this task is running: what its rows and cursors hold.
    pub(crate) static RUNNING: Running;
}

/// A statement admitted by the gate, and its connection's cancel signal.
#[derive(Clone)]
pub(crate) struct Running {
    pub(crate) admission: Arc<Admission>,
    pub(crate) cancel: Shared<BoxFuture<'static, ()>>,
}

impl Running {
    /// Plans and starts `work` as this statement: within its deadline,
    /// stopped by a cancel request, with [`RUNNING`] set for the cursors
    /// it declares.
    pub(crate) async fn run<T>(
        &self,
        work: impl Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        let limits = self.admission.limits();
        let scoped = RUNNING.scope(self.clone(), self.admission.within(work));
        tokio::select! {
            finished = scoped => finished
                .map_err(|stop| stopped(&stop))?
                .map_err(|error| explained(error, &limits)),
            () = self.cancel.clone() => Err(stopped(&Stop::Cancelled)),
        }
    }

    /// A response whose rows, if it has any, are [`Running::bound`].
    pub(crate) fn bound_response(&self, response: Response) -> Response {
        match response {
            Response::Query(rows) => Response::Query(self.bound(rows)),
            other => other,
        }
    }

    /// `response`'s rows, stopped at the deadline or on a cancel, holding
    /// the statement's place until they end or are dropped.
    pub(crate) fn bound(&self, mut response: QueryResponse) -> QueryResponse {
        let rows = std::mem::replace(&mut response.data_rows, Box::pin(futures::stream::empty()));
        let limits = self.admission.limits();
        let held = holding(rows, Arc::clone(&self.admission));
        let stopped_rows = stop_early(
            Box::pin(held),
            self.admission.deadline(),
            limits.timeout,
            self.cancel.clone(),
        )
        .map(move |item| match item {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(error)) => Err(explained(error, &limits)),
            Err(stop) => Err(stopped(&stop)),
        });
        response.data_rows = Box::pin(stopped_rows);
        response
    }
}

/// `DECLARE`, `FETCH` and `CLOSE`, for the simple and extended protocols.
#[derive(Debug)]
pub(crate) struct Cursors;

impl Cursors {
    async fn run(
        statement: &Statement,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let store = client.portal_store();
        match statement {
            Statement::Declare { stmts } => Some(declare(store, stmts, context).await),
            Statement::Fetch {
                name, direction, ..
            } => Some(fetch(store, name, direction).await),
            Statement::Close { cursor } => {
                match cursor {
                    CloseCursor::All => store.clear_portals(),
                    CloseCursor::Specific { name } => store.rm_portal(&name.value),
                }
                Some(Ok(Response::Execution(Tag::new("CLOSE CURSOR"))))
            }
            _ => None,
        }
    }
}

#[async_trait]
impl QueryHook for Cursors {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::run(statement, context, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
                Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(DFSchema::empty()),
                })))
            }
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::run(statement, context, client).await
    }
}

/// Starts each cursor's query in the statement's session (its memory pool)
/// and gives it the statement's place and deadline.
async fn declare(
    store: &MemPortalStore<crate::queries::Statement>,
    declares: &[Declare],
    context: &SessionContext,
) -> PgWireResult<Response> {
    let running = RUNNING
        .try_with(Running::clone)
        .map_err(|_| user_error("XX000", "a cursor outside a statement".to_owned()))?;
    for declare in declares {
        if declare.declare_type != Some(DeclareType::Cursor) {
            return Err(user_error(
                "0A000",
                "only DECLARE … CURSOR FOR a query is supported".to_owned(),
            ));
        }
        let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
            return Err(user_error(
                "42601",
                "DECLARE needs a cursor name and FOR a query".to_owned(),
            ));
        };
        let query = query.to_string();
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = running
            .admission
            .within(context.sql_with_options(&query, read_only))
            .await
            .map_err(|stop| stopped(&stop))?
            .map_err(|e| user_error("42000", e.to_string()))?;
        let started = running
            .admission
            .within(df::encode_dataframe(frame, &Format::UnifiedText, None))
            .await
            .map_err(|stop| stopped(&stop))??;
        let statement = Arc::new(StoredStatement::new(
            name.value.clone(),
            (query, None),
            vec![],
        ));
        let portal = Portal::new_cursor(name.value.clone(), statement);
        portal.start(running.bound(started)).await;
        store.put_portal(Arc::new(portal));
    }
    Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
}

/// Streams up to the rows asked for from a cursor, never collecting them.
async fn fetch(
    store: &MemPortalStore<crate::queries::Statement>,
    name: &Ident,
    direction: &FetchDirection,
) -> PgWireResult<Response> {
    let forward_only = || user_error("55000", "chiso's cursors scan forward only".to_owned());
    let count: Option<u64> = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::Forward { limit: Some(value) } | FetchDirection::Count { limit: value } => {
            match &value.value {
                Value::Number(text, _) => Some(text.parse().map_err(|_| forward_only())?),
                _ => return Err(forward_only()),
            }
        }
        FetchDirection::ForwardAll | FetchDirection::All => None,
        _ => return Err(forward_only()),
    };
    let Some(portal) = store
        .get_portal(&name.value)
        .and_then(|entry| entry.value().cloned())
    else {
        return Err(user_error(
            "34000",
            format!("cursor \"{}\" does not exist", name.value),
        ));
    };
    // The portal is this connection's; its rows are being sent only when an
    // earlier FETCH's answer was itself suspended half-way.
    let state = portal.state();
    let guard = state.try_lock_owned().map_err(|_| {
        user_error(
            "55006",
            format!(
                "cursor \"{}\" is still sending an earlier FETCH",
                name.value
            ),
        )
    })?;
    let schema = match &*guard {
        PortalExecutionState::Initial => return Err(PgWireError::PortalNotStarted),
        PortalExecutionState::Suspended(response) => response.row_schema(),
        PortalExecutionState::Finished => Arc::new(Vec::new()),
    };
    let rows = futures::stream::unfold((guard, count), |(mut guard, left)| async move {
        if left == Some(0) {
            return None;
        }
        let PortalExecutionState::Suspended(response) = &mut *guard else {
            return None;
        };
        match response.data_rows().next().await {
            Some(row) => Some((row, (guard, left.map(|n| n - 1)))),
            None => {
                *guard = PortalExecutionState::Finished;
                None
            }
        }
    });
    let mut response = QueryResponse::new(schema, rows);
    response.command_tag = "FETCH".to_owned();
    Ok(Response::Query(response))
}
