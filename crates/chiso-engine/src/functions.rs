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

use arrow::array::{Date32Array, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::eq;
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
    /// The dossiers due within `days` working days, at an instant.
    DueSoon {
        days: u32,
    },
}

impl Kind {
    fn of(call: &Call) -> Self {
        match call {
            Call::Kpi { by, .. } | Call::Series { by, .. } => Self::Kpi(*by),
            Call::Change { by, .. } => Self::Change(*by),
            Call::Index { layout, .. } => Self::Index(*layout),
            Call::IndexDetail { layout, .. } => Self::IndexDetail(*layout),
            Call::DossiersAt { .. } => Self::Dossiers,
            Call::DueSoon { days, .. } => Self::DueSoon { days: *days },
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
        let sql = CallSql::new(&self.planner, kind, vec![probe], None)
            .whole()
            .map_err(engine_error)?;
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
        let sql = CallSql::new(&self.planner, kind, periods, call.ward()).at(call);
        let now = self.planner.now();
        // A due-soon list is read at an instant of its own, not its day's T.
        let ended =
            sql.periods.iter().all(|p| p.end_at() <= now) && !matches!(kind, Kind::DueSoon { .. });
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
        CallSql::new(&self.planner, Kind::of(call), periods, call.ward())
            .at(call)
            .whole()
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

/// The SQL of a call over its periods, and the row order of the result.
struct CallSql {
    planner: Arc<Planner>,
    kind: Kind,
    periods: Vec<Period>,
    ward: Option<String>,
    order: String,
    /// The instant a `due_soon` call reads the dossiers at (its period's T
    /// when `None`).
    at: Option<DateTime<Utc>>,
}

impl CallSql {
    fn new(
        planner: &Arc<Planner>,
        kind: Kind,
        periods: Vec<Period>,
        ward: Option<&WardCode>,
    ) -> Self {
        // Every order starts with period_start, so the periods' rows one
        // after another, in series order, are the whole result in order
        // (`dossiers_at` takes one period).
        let order = match kind {
            Kind::Kpi(grouping) | Kind::Change(grouping) => match grouping.key_columns() {
                Some((key, _)) => format!("period_start, {key}"),
                None => "period_start".to_owned(),
            },
            Kind::Index(_) => "period_start, score_100 DESC NULLS LAST, ward_code".to_owned(),
            Kind::IndexDetail(_) => "period_start, ward_code, indicator_id".to_owned(),
            Kind::Dossiers => "received_at, dossier_id".to_owned(),
            Kind::DueSoon { .. } => "effective_due_at, dossier_id".to_owned(),
        };
        Self {
            planner: Arc::clone(planner),
            kind,
            periods,
            ward: ward.map(|code| code.as_str().to_owned()),
            order,
            at: None,
        }
    }

    /// The call's own instant, for `due_soon`.
    fn at(mut self, call: &Call) -> Self {
        if let Call::DueSoon { at, .. } = call {
            self.at = Some(*at);
        }
        self
    }

    /// The memo key of a period's rows: its evaluation instant T in
    /// microseconds, what its rows depend on ([`Functions::carry_over`]),
    /// then what was asked; `-` for rows that may not be carried to another
    /// version (dossier keys, which number rows).
    fn key(&self, index: usize) -> String {
        let period = &self.periods[index];
        let what = format!("{:?}|{:?}|{period}", self.kind, self.ward);
        if self.kind == Kind::Dossiers {
            return format!("-|{what}");
        }
        let t = period.evaluation_instant(self.planner.now());
        format!("{}|{what}", t.timestamp_micros())
    }

    /// The rows of `periods` in the call's order, in one query: the KPIs of
    /// a series scan the dossiers once for all its periods (kpi.sql); the
    /// other kinds take one period each.
    fn sql(&self, periods: &[Period]) -> Result<String, EngineError> {
        let ward = self.ward.as_deref();
        let planner = &self.planner;
        let one = |period: &Period| -> Result<String, EngineError> {
            match self.kind {
                Kind::Kpi(grouping) => {
                    planner.scoped_kpi_sql(std::slice::from_ref(period), grouping, ward)
                }
                Kind::Change(grouping) => change_sql(planner, period, grouping, ward),
                Kind::Index(layout) => planner.index_sql(period, layout),
                Kind::IndexDetail(layout) => planner.index_detail_sql(period, layout),
                Kind::Dossiers => planner.dossiers_at_sql(period),
                Kind::DueSoon { days } => {
                    let at = self
                        .at
                        .unwrap_or_else(|| period.evaluation_instant(planner.now()));
                    planner.due_soon_sql(at, days, ward)
                }
            }
        };
        let rows = match self.kind {
            Kind::Kpi(grouping) => planner.scoped_kpi_sql(periods, grouping, ward)?,
            _ => {
                let parts: Vec<String> = periods
                    .iter()
                    .map(|period| Ok(format!("SELECT * FROM ({})", one(period)?)))
                    .collect::<Result<_, EngineError>>()?;
                parts.join("\nUNION ALL\n")
            }
        };
        // A subquery's ORDER BY does not survive its parent: order the whole.
        Ok(format!("SELECT * FROM ({rows}) ORDER BY {}", self.order))
    }

    /// Every period's rows in one query.
    fn whole(&self) -> Result<String, EngineError> {
        self.sql(&self.periods)
    }
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
            (
                "current",
                planner.scoped_kpi_sql(std::slice::from_ref(period), grouping, ward)?,
            ),
            (
                "previous",
                planner.scoped_kpi_sql(&[period.previous()], grouping, ward)?,
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

/// A table function's arguments: each a text literal (an integer literal
/// as its digits, `due_soon(…, 2)`), or `None`.
pub(crate) fn text_arguments(args: &[Expr]) -> Vec<Option<String>> {
    args.iter()
        .map(|arg| match arg {
            Expr::Literal(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::LargeUtf8(Some(text))
                | ScalarValue::Utf8View(Some(text)),
                _,
            ) => Some(text.clone()),
            Expr::Literal(ScalarValue::Int64(Some(number)), _) => Some(number.to_string()),
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
    /// The rows of every period, each computed once by whoever asks first
    /// and remembered: a series asked again after one more week computes
    /// that week alone, and the periods no one computed yet in one pass.
    async fn remembered_rows(
        &self,
        functions: &Functions,
        state: &SessionState,
    ) -> Result<Vec<RecordBatch>> {
        let keys: Vec<String> = (0..self.sql.periods.len())
            .map(|index| self.sql.key(index))
            .collect();
        let mut found: Vec<Option<Arc<Vec<RecordBatch>>>> =
            keys.iter().map(|key| functions.results.get(key)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if missing.len() > 1 && matches!(self.sql.kind, Kind::Kpi(_)) {
            let periods: Vec<Period> = missing.iter().map(|&i| self.sql.periods[i]).collect();
            let sql = self.sql.sql(&periods).map_err(engine_error)?;
            let batches = run(state, &sql).await?;
            for &index in &missing {
                let rows = Arc::new(rows_of_period(&batches, &self.sql.periods[index])?);
                let rows = functions
                    .results
                    .get_or_try(keys[index].clone(), || async {
                        Ok::<_, DataFusionError>(rows)
                    })
                    .await?;
                found[index] = Some(rows);
            }
        } else {
            for &index in &missing {
                let period = std::slice::from_ref(&self.sql.periods[index]);
                let sql = self.sql.sql(period).map_err(engine_error)?;
                let rows = functions
                    .results
                    .get_or_try(keys[index].clone(), || async {
                        Ok::<_, DataFusionError>(Arc::new(run(state, &sql).await?))
                    })
                    .await?;
                found[index] = Some(rows);
            }
        }
        let mut rows = Vec::new();
        for (key, batches) in keys.iter().zip(found.into_iter().flatten()) {
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > REMEMBERED_ROWS {
                functions.results.forget(key);
            }
            rows.extend(batches.iter().cloned());
        }
        Ok(rows)
    }
}

/// The rows of a query.
async fn run(state: &SessionState, sql: &str) -> Result<Vec<RecordBatch>> {
    let plan = state.create_logical_plan(sql).await?;
    let physical = state.create_physical_plan(&plan).await?;
    collect(physical, state.task_ctx()).await
}

/// The rows of one period in a result over several (kpi.sql's period_start).
fn rows_of_period(batches: &[RecordBatch], period: &Period) -> Result<Vec<RecordBatch>> {
    let days = (period.start - DateTime::UNIX_EPOCH.date_naive()).num_days();
    let days = i32::try_from(days)
        .map_err(|_| DataFusionError::Internal(format!("{period} is out of range")))?;
    let wanted = Date32Array::new_scalar(days);
    let mut rows = Vec::new();
    for batch in batches {
        let column = batch.column_by_name("period_start").ok_or_else(|| {
            DataFusionError::Internal("a series result without period_start".into())
        })?;
        let selected = filter_record_batch(batch, &eq(column, &wanted)?)?;
        if selected.num_rows() > 0 {
            rows.push(selected);
        }
    }
    Ok(rows)
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
        let plan = state
            .create_logical_plan(&self.sql.whole().map_err(engine_error)?)
            .await?;
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
