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
//! Each call renders the SQL of `queries/` for its arguments; the result's
//! schema is learnt by planning the first call of each kind (kpi by ward,
//! kpi_index with a layout, …) and kept, and the query itself is planned
//! when DataFusion scans the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use chiso_store::datafusion::catalog::MemTable;
use chiso_store::datafusion::physical_plan::collect;
use tokio::sync::OnceCell;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chiso_store::datafusion::catalog::{
    Session, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use chiso_store::datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use chiso_store::datafusion::execution::context::SessionState;
use chiso_store::datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableType};
use chiso_store::datafusion::physical_plan::ExecutionPlan;
use chiso_store::datafusion::prelude::SessionContext;
use chrono::NaiveDate;

use chiso_core::wards::WardRegistry;

use crate::period::{Grain, Period};
use crate::queries::{self, render};
use crate::{EngineError, Grouping, Layout, Planner};

/// What a table function computes, with its arguments resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Kpi(Grouping),
    Change(Grouping),
    Index(Layout),
    IndexDetail(Layout),
    /// The derived dossiers alive in a period, as of its T.
    Dossiers,
}

/// A call with its arguments read.
struct Resolved {
    call: Call,
    periods: Vec<Period>,
    ward: Option<String>,
}

#[derive(Debug)]
struct Functions {
    planner: Arc<Planner>,
    /// The result schema of each kind of call, planned when it is first
    /// called rather than when the engine opens: planning all fifteen kinds
    /// took most of a command's start-up, and most commands call one kind
    /// or none.
    schemas: Mutex<HashMap<Call, SchemaRef>>,
    /// Results of calls over periods that have ended: with the events of
    /// one version and a period whose T is its end, a call's rows can no
    /// longer change, so every panel, page and pack asking for them shares
    /// one computation.
    results: Mutex<HashMap<String, RememberedRows>>,
}

/// The rows of one call, computed by the first who asks.
type RememberedRows = Arc<OnceCell<Arc<Vec<RecordBatch>>>>;

/// Calls remembered at most; past it the memory starts again empty.
const REMEMBERED_CALLS: usize = 512;
/// A result longer than this is used once and not kept (a year's dossiers).
const REMEMBERED_ROWS: usize = 300_000;

impl Functions {
    /// The schema of a kind of call's result, planned the first time.
    fn schema(&self, call: Call, state: &SessionState) -> Result<SchemaRef> {
        let known = self
            .schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&call)
            .cloned();
        if let Some(schema) = known {
            return Ok(schema);
        }
        let probe =
            Period::parse("2025-W28", self.planner.now()).map_err(|e| engine_error(e.into()))?;
        let sql = sql_for(&self.planner, call, &[probe], None)
            .map_err(engine_error)?
            .whole();
        // DataFusion asks for a table function's provider synchronously.
        // Planning awaits only the session's in-memory catalogue, never I/O
        // or the runtime, so driving it to completion here blocks no one.
        let plan = futures::executor::block_on(state.create_logical_plan(&sql))
            .map_err(|e| DataFusionError::Internal(format!("planning the SQL of {call:?}: {e}")))?;
        let schema = Arc::clone(plan.schema().inner());
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call, Arc::clone(&schema));
        Ok(schema)
    }

    /// The cell of a call's result, shared by whoever asks for it.
    fn forget(&self, sql: &str) {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sql);
    }

    fn result_cell(&self, sql: &str) -> RememberedRows {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if results.len() >= REMEMBERED_CALLS && !results.contains_key(sql) {
            results.clear();
        }
        Arc::clone(results.entry(sql.to_owned()).or_default())
    }
}

/// Registers the table functions.
pub(crate) fn register(context: &SessionContext, planner: &Arc<Planner>) {
    let functions = Arc::new(Functions {
        planner: Arc::clone(planner),
        schemas: Mutex::new(HashMap::new()),
        results: Mutex::new(HashMap::new()),
    });
    for name in [
        "kpi",
        "kpi_series",
        "kpi_change",
        "kpi_index",
        "kpi_index_detail",
        "dossiers_at",
    ] {
        context.register_udtf(
            name,
            Arc::new(Function {
                name,
                functions: Arc::clone(&functions),
            }),
        );
    }
}

/// The SQL of a call: one query per period, and the row order of the result.
struct CallSql {
    periods: Vec<String>,
    order: String,
}

impl CallSql {
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
    call: Call,
    periods: &[Period],
    ward: Option<&str>,
) -> Result<CallSql, EngineError> {
    let one = |period: &Period| -> Result<String, EngineError> {
        match call {
            Call::Kpi(grouping) => planner.scoped_kpi_sql(period, grouping, ward),
            Call::Change(grouping) => change_sql(planner, period, grouping, ward),
            Call::Index(layout) => planner.index_sql(period, layout),
            Call::IndexDetail(layout) => planner.index_detail_sql(period, layout),
            Call::Dossiers => planner.dossiers_at_sql(period),
        }
    };
    // Every order of a series starts with period_start, so the periods' rows
    // one after another, in series order, are the whole result in order
    // (`dossiers_at` takes one period).
    let order = match call {
        Call::Kpi(grouping) | Call::Change(grouping) => match grouping.key_columns() {
            Some((key, _)) => format!("period_start, {key}"),
            None => "period_start".to_owned(),
        },
        Call::Index(_) => "period_start, score_100 DESC NULLS LAST, ward_code".to_owned(),
        Call::IndexDetail(_) => "period_start, ward_code, indicator_id".to_owned(),
        Call::Dossiers => "received_at, dossier_id".to_owned(),
    };
    Ok(CallSql {
        periods: periods.iter().map(one).collect::<Result<_, _>>()?,
        order,
    })
}

/// kpi_change.sql: a period against the one before it.
fn change_sql(
    planner: &Planner,
    period: &Period,
    grouping: Grouping,
    ward: Option<&str>,
) -> Result<String, EngineError> {
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

fn text_argument(name: &str, args: &[Expr], index: usize, default: Option<&str>) -> Result<String> {
    match args.get(index) {
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::LargeUtf8(Some(text))
            | ScalarValue::Utf8View(Some(text)),
            _,
        )) => Ok(text.clone()),
        Some(other) => plan_err!(
            "{name}: argument {} must be a text literal, not {other}",
            index + 1
        ),
        None => match default {
            Some(value) => Ok(value.to_owned()),
            None => plan_err!("{name}: argument {} is missing", index + 1),
        },
    }
}

fn engine_error(error: EngineError) -> DataFusionError {
    DataFusionError::Plan(error.to_string())
}

impl Function {
    fn usage(&self) -> &'static str {
        match self.name {
            "kpi" => "kpi('2025-W28', 'ward') or kpi('2025-W28', 'procedure', '31135')",
            "kpi_change" => {
                "kpi_change('2025-W28', 'ward') or kpi_change('2025-W28', 'procedure', '31135')"
            }
            "kpi_series" => {
                "kpi_series('week', 'ward', '2025-01-01', '2025-12-31') or with a ward code last"
            }
            "kpi_index" => "kpi_index('2025-07', 'portal')",
            "dossiers_at" => "dossiers_at('2025-W28')",
            _ => "kpi_index_detail('2025-07', 'portal')",
        }
    }

    fn resolve(&self, args: &[Expr]) -> Result<Resolved> {
        let now = self.functions.planner.now();
        let name = self.name;
        let max_args = match name {
            "kpi_series" => 5,
            "kpi" | "kpi_change" => 3,
            "dossiers_at" => 1,
            _ => 2,
        };
        if args.len() > max_args || args.is_empty() {
            return plan_err!(
                "{name} takes {max_args} arguments at most, for example {}",
                self.usage()
            );
        }
        let period = |index: usize| -> Result<Period> {
            Period::parse(&text_argument(name, args, index, None)?, now)
                .map_err(|e| engine_error(e.into()))
        };
        let grouping = |index: usize| -> Result<Grouping> {
            Grouping::parse(&text_argument(name, args, index, Some("city"))?).map_err(engine_error)
        };
        let layout = |index: usize| -> Result<Layout> {
            Layout::parse(&text_argument(name, args, index, Some("portal"))?).map_err(engine_error)
        };
        // The optional last argument of kpi, kpi_change and kpi_series: count
        // only one ward's dossiers (for a ward's procedures, say).
        let ward = |index: usize| -> Result<Option<String>> {
            if args.len() <= index {
                return Ok(None);
            }
            let code = text_argument(name, args, index, None)?;
            let code = code.trim().to_owned();
            if !WardRegistry::builtin().contains(&code) {
                return plan_err!("{name}: `{code}` is not the code of a ward of the city");
            }
            Ok(Some(code))
        };
        let one = |call: Call, ward: Option<String>| -> Result<Resolved> {
            Ok(Resolved {
                call,
                periods: vec![period(0)?],
                ward,
            })
        };
        match name {
            "kpi" => one(Call::Kpi(grouping(1)?), ward(2)?),
            "kpi_change" => one(Call::Change(grouping(1)?), ward(2)?),
            "kpi_index" => one(Call::Index(layout(1)?), None),
            "kpi_index_detail" => one(Call::IndexDetail(layout(1)?), None),
            "dossiers_at" => one(Call::Dossiers, None),
            _ => {
                let grain_text = text_argument(name, args, 0, None)?;
                let grain = Grain::parse(&grain_text).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{name}: `{grain_text}` is not day, week, month, quarter or year"
                    ))
                })?;
                let date = |index: usize| -> Result<NaiveDate> {
                    let text = text_argument(name, args, index, None)?;
                    crate::parse_date(&text)
                        .map_err(|e| DataFusionError::Plan(format!("{name}: {e}")))
                };
                let (from, to) = (date(2)?, date(3)?);
                let periods = Period::series(grain, from, to)
                    .map_err(|e| DataFusionError::Plan(format!("{name}: {e}")))?;
                if periods.is_empty() {
                    return plan_err!("{name}: from {from} to {to} holds no period");
                }
                Ok(Resolved {
                    call: Call::Kpi(grouping(1)?),
                    periods,
                    ward: ward(4)?,
                })
            }
        }
    }
}

impl TableFunctionImpl for Function {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let Resolved {
            call,
            periods,
            ward,
        } = self.resolve(args.exprs())?;
        let state = session_state(args.session())?;
        let schema = self.functions.schema(call, state)?;
        let sql = sql_for(&self.functions.planner, call, &periods, ward.as_deref())
            .map_err(engine_error)?;
        let now = self.functions.planner.now();
        let ended = periods.iter().all(|p| p.end_at() <= now);
        Ok(Arc::new(SqlTable {
            sql,
            schema,
            remembered_by: ended.then(|| Arc::clone(&self.functions)),
        }))
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
            let cell = functions.result_cell(&sql);
            let batches = cell
                .get_or_try_init(|| async {
                    let plan = state.create_logical_plan(&sql).await?;
                    let physical = state.create_physical_plan(&plan).await?;
                    let batches = collect(physical, state.task_ctx()).await?;
                    Ok::<_, DataFusionError>(Arc::new(batches))
                })
                .await?;
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > REMEMBERED_ROWS {
                functions.forget(&sql);
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
