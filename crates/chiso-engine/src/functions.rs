//! The KPI results as SQL table functions, so that an analyst reaches every
//! figure of the product from any SQL client:
//!
//! ```sql
//! SELECT * FROM kpi('2025-W28', 'ward');
//! SELECT * FROM kpi_series('week', 'ward', '2025-01-01', '2025-12-31');
//! SELECT * FROM kpi_change('2025-W28', 'ward');   -- against the week before
//! SELECT * FROM kpi_index('2025-07', 'portal');
//! SELECT * FROM kpi_index_detail('2025-07', '2022');
//! ```
//!
//! Each function only reads its text arguments into a typed [`Call`], the
//! same value the server, the CLI and the reports hand to
//! [`crate::Engine::figures`]; from there one path renders the SQL of
//! `queries/`. The result's schema is learnt by planning the first call of
//! each kind (kpi by ward, kpi_index with a layout, …) and kept, and the
//! query itself is planned when DataFusion scans the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use chiso_exec::datafusion::catalog::MemTable;
use chiso_exec::datafusion::physical_plan::collect;

use crate::memo::Memo;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chiso_exec::datafusion::catalog::{
    Session, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use chiso_exec::datafusion::common::{DataFusionError, Result, ScalarValue};
use chiso_exec::datafusion::execution::context::SessionState;
use chiso_exec::datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableType};
use chiso_exec::datafusion::physical_plan::ExecutionPlan;
use chiso_exec::datafusion::prelude::SessionContext;
use chrono::{DateTime, NaiveDate, Utc};

use chiso_core::wards::{WardCode, WardRegistry};

use crate::call::{Call, TABLE_FUNCTIONS};
use crate::period::Period;
use crate::queries::{self, render};
use crate::{EngineError, Grouping, Layout, Planner, RequestError};

/// The kind of a call, which decides its result's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Kpi(Grouping),
    Change(Grouping),
    Index(Layout),
    IndexDetail(Layout),
    /// The derived dossiers alive in a period, as of its T.
    Dossiers,
}

impl Kind {
    fn of(call: &Call) -> Self {
        match call {
            Call::Kpi { by, .. } | Call::Series { by, .. } => Self::Kpi(*by),
            Call::Change { by, .. } => Self::Change(*by),
            Call::Index { layout, .. } => Self::Index(*layout),
            Call::IndexDetail { layout, .. } => Self::IndexDetail(*layout),
            Call::DossiersAt { .. } => Self::Dossiers,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Functions {
    planner: Arc<Planner>,
    /// The result schema of each kind of call, planned when it is first
    /// called rather than when the engine opens: planning all fifteen kinds
    /// took most of a command's start-up, and most commands call one kind
    /// or none.
    schemas: Mutex<HashMap<Kind, SchemaRef>>,
    /// Results of calls over periods that have ended: with the events of
    /// one version and a period whose T is its end, a call's rows can no
    /// longer change, so every panel, page and pack asking for them shares
    /// one computation.
    results: Memo<Arc<Vec<RecordBatch>>>,
}

/// Calls remembered at most; past it the memory starts again empty.
const REMEMBERED_CALLS: usize = 512;
/// Bytes of remembered rows at most; past it the same.
const REMEMBERED_BYTES: usize = 256 << 20;
/// A result longer than this is used once and not kept (a year's dossiers).
const REMEMBERED_ROWS: usize = 300_000;

impl Functions {
    /// The schema of a kind of call's result, planned the first time.
    fn schema(&self, kind: Kind, state: &SessionState) -> Result<SchemaRef> {
        let known = self
            .schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kind)
            .cloned();
        if let Some(schema) = known {
            return Ok(schema);
        }
        let probe = Period::week_of(NaiveDate::from_ymd_opt(2025, 7, 14).unwrap_or_default());
        let sql = sql_for(&self.planner, kind, &[probe], None)
            .map_err(engine_error)?
            .whole();
        // DataFusion asks for a table function's provider synchronously.
        // Planning awaits only the session's in-memory catalogue, never I/O
        // or the runtime, so driving it to completion here blocks no one.
        let plan = futures::executor::block_on(state.create_logical_plan(&sql))
            .map_err(|e| DataFusionError::Internal(format!("planning the SQL of {kind:?}: {e}")))?;
        let schema = Arc::clone(plan.schema().inner());
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, Arc::clone(&schema));
        Ok(schema)
    }

    /// The table of a call's rows, planned when it is scanned.
    pub(crate) fn table(
        self: &Arc<Self>,
        call: &Call,
        state: &SessionState,
    ) -> Result<Arc<dyn TableProvider>> {
        let kind = Kind::of(call);
        let periods = call.periods().map_err(request_error)?;
        let schema = self.schema(kind, state)?;
        let sql = sql_for(&self.planner, kind, &periods, call.ward()).map_err(engine_error)?;
        let now = self.planner.now();
        let ended = periods.iter().all(|p| p.end_at() <= now);
        Ok(Arc::new(SqlTable {
            sql,
            schema,
            remembered_by: ended.then(|| Arc::clone(self)),
        }))
    }

    /// Takes over the remembered results of `earlier`, the functions of an
    /// earlier version of the store, for periods whose T is at or before
    /// `unchanged_until` (every period when `None`): see
    /// [`crate::derived::Change`].
    pub(crate) fn carry_over(&self, earlier: &Functions, unchanged_until: Option<DateTime<Utc>>) {
        let limit = unchanged_until.map(|instant| instant.timestamp_micros());
        self.results.carry_over(&earlier.results, |key| {
            let t = key.split_once('|').and_then(|(t, _)| t.parse::<i64>().ok());
            match (t, limit) {
                (Some(t), Some(limit)) => t <= limit,
                (Some(_), None) => true,
                (None, _) => false,
            }
        });
    }

    /// The SQL of a call, as one query.
    pub(crate) fn sql(&self, call: &Call) -> std::result::Result<String, EngineError> {
        let periods = call.periods()?;
        Ok(sql_for(&self.planner, Kind::of(call), &periods, call.ward())?.whole())
    }
}

/// Registers the table functions; the returned memory serves typed calls too.
pub(crate) fn register(context: &SessionContext, planner: &Arc<Planner>) -> Arc<Functions> {
    let functions = Arc::new(Functions {
        planner: Arc::clone(planner),
        schemas: Mutex::new(HashMap::new()),
        results: Memo::with_limits(REMEMBERED_CALLS, REMEMBERED_BYTES),
    });
    for name in TABLE_FUNCTIONS {
        context.register_udtf(
            name,
            Arc::new(Function {
                name,
                functions: Arc::clone(&functions),
            }),
        );
    }
    functions
}

/// The SQL of a call: one query per period, and the row order of the result.
struct CallSql {
    periods: Vec<String>,
    /// Each period's evaluation instant T, in microseconds: what its rows
    /// depend on ([`Functions::carry_over`]); `None` for rows that may not
    /// be carried to another version (dossier keys, which number rows).
    instants: Vec<Option<i64>>,
    order: String,
}

impl CallSql {
    /// The memo key of a period's rows: its T, then its SQL.
    fn key(&self, index: usize) -> String {
        match self.instants[index] {
            Some(t) => format!("{t}|{}", self.period(index)),
            None => format!("-|{}", self.period(index)),
        }
    }

    /// One period's rows, in the call's order.
    fn period(&self, index: usize) -> String {
        format!(
            "SELECT * FROM ({}) ORDER BY {}",
            self.periods[index], self.order
        )
    }

    /// Every period's rows in one query (a series is their union).
    fn whole(&self) -> String {
        // A subquery's ORDER BY does not survive its parent: order the whole.
        let parts: Vec<String> = self
            .periods
            .iter()
            .map(|sql| format!("SELECT * FROM ({sql})"))
            .collect();
        format!(
            "SELECT * FROM ({}) ORDER BY {}",
            parts.join("\nUNION ALL\n"),
            self.order
        )
    }
}

fn sql_for(
    planner: &Planner,
    kind: Kind,
    periods: &[Period],
    ward: Option<&WardCode>,
) -> std::result::Result<CallSql, EngineError> {
    let ward = ward.map(WardCode::as_str);
    let one = |period: &Period| -> std::result::Result<String, EngineError> {
        match kind {
            Kind::Kpi(grouping) => planner.scoped_kpi_sql(period, grouping, ward),
            Kind::Change(grouping) => change_sql(planner, period, grouping, ward),
            Kind::Index(layout) => planner.index_sql(period, layout),
            Kind::IndexDetail(layout) => planner.index_detail_sql(period, layout),
            Kind::Dossiers => planner.dossiers_at_sql(period),
        }
    };
    // Every order of a series starts with period_start, so the periods' rows
    // one after another, in series order, are the whole result in order
    // (`dossiers_at` takes one period).
    let order = match kind {
        Kind::Kpi(grouping) | Kind::Change(grouping) => match grouping.key_columns() {
            Some((key, _)) => format!("period_start, {key}"),
            None => "period_start".to_owned(),
        },
        Kind::Index(_) => "period_start, score_100 DESC NULLS LAST, ward_code".to_owned(),
        Kind::IndexDetail(_) => "period_start, ward_code, indicator_id".to_owned(),
        Kind::Dossiers => "received_at, dossier_id".to_owned(),
    };
    let instant = |period: &Period| {
        let t = period.evaluation_instant(planner.now()).timestamp_micros();
        (kind != Kind::Dossiers).then_some(t)
    };
    Ok(CallSql {
        periods: periods.iter().map(one).collect::<Result<_, _>>()?,
        instants: periods.iter().map(instant).collect(),
        order,
    })
}

/// kpi_change.sql: a period against the one before it.
fn change_sql(
    planner: &Planner,
    period: &Period,
    grouping: Grouping,
    ward: Option<&str>,
) -> std::result::Result<String, EngineError> {
    let key = match grouping.key_columns() {
        Some((code, _)) => format!("c.{code} IS NOT DISTINCT FROM p.{code}"),
        None => "true".to_owned(),
    };
    render(
        queries::KPI_CHANGE,
        &[
            ("current", planner.scoped_kpi_sql(period, grouping, ward)?),
            (
                "previous",
                planner.scoped_kpi_sql(&period.previous(), grouping, ward)?,
            ),
            ("same_group", key),
        ],
    )
}

#[derive(Debug)]
struct Function {
    name: &'static str,
    functions: Arc<Functions>,
}

/// A table function's arguments: each a text literal, or `None`.
pub(crate) fn text_arguments(args: &[Expr]) -> Vec<Option<String>> {
    args.iter()
        .map(|arg| match arg {
            Expr::Literal(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::LargeUtf8(Some(text))
                | ScalarValue::Utf8View(Some(text)),
                _,
            ) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// An engine error raised while DataFusion plans: a request error travels
/// as itself, so that the edge answers by its kind.
fn engine_error(error: EngineError) -> DataFusionError {
    match error {
        EngineError::Request(request) => request_error(request),
        other => DataFusionError::Plan(other.to_string()),
    }
}

fn request_error(error: RequestError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

impl TableFunctionImpl for Function {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = Call::from_arguments(
            self.name,
            &text_arguments(args.exprs()),
            self.functions.planner.now(),
            WardRegistry::builtin(),
        )
        .map_err(request_error)?;
        self.functions.table(&call, session_state(args.session())?)
    }
}

/// A table whose rows are the result of a call's SQL, planned at scan time;
/// computed once and remembered, period by period, when its periods have
/// ended.
struct SqlTable {
    sql: CallSql,
    schema: SchemaRef,
    remembered_by: Option<Arc<Functions>>,
}

impl std::fmt::Debug for SqlTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTable")
            .field("periods", &self.sql.periods.len())
            .finish_non_exhaustive()
    }
}

impl SqlTable {
    /// The rows of every period, each computed once by whoever asks first.
    /// Periods are computed one after another: a year of weeks then needs
    /// the memory of one week, and each week's rows are shared with every
    /// other call that asks for that week.
    async fn remembered_rows(
        &self,
        functions: &Functions,
        state: &SessionState,
    ) -> Result<Vec<RecordBatch>> {
        let mut rows = Vec::new();
        for index in 0..self.sql.periods.len() {
            let sql = self.sql.period(index);
            let key = self.sql.key(index);
            let batches = functions
                .results
                .get_or_try(key.clone(), || async {
                    let plan = state.create_logical_plan(&sql).await?;
                    let physical = state.create_physical_plan(&plan).await?;
                    let batches = collect(physical, state.task_ctx()).await?;
                    Ok::<_, DataFusionError>(Arc::new(batches))
                })
                .await?;
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > REMEMBERED_ROWS {
                functions.results.forget(&key);
            }
            rows.extend(batches.iter().cloned());
        }
        Ok(rows)
    }
}

#[async_trait]
impl TableProvider for SqlTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session_state(state)?;
        if let Some(functions) = &self.remembered_by {
            let batches = self.remembered_rows(functions, state).await?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| Arc::clone(&self.schema));
            let table = MemTable::try_new(schema, vec![batches])?;
            return table.scan(state, projection, &[], limit).await;
        }
        let plan = state.create_logical_plan(&self.sql.whole()).await?;
        let mut plan = LogicalPlanBuilder::from(plan);
        if let Some(projection) = projection {
            plan = plan.select(projection.iter().copied())?;
        }
        if let Some(limit) = limit {
            plan = plan.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&plan.build()?).await
    }
}

fn session_state(session: &dyn Session) -> Result<&SessionState> {
    session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| {
            DataFusionError::Internal("chiso table functions need a SessionState".into())
        })
}
