//! # chiso-engine: the figures of docs/kpis.md, from the store, by SQL
//!
//! The engine opens a store as a DataFusion session in the business time zone
//! and registers everything an analyst (or a dashboard) queries:
//!
//! * the stored tables `events`, `quarantine`, `ingests`;
//! * reference tables: `wards`, `calendar`, `channels`, `departments`,
//!   `procedures`, the indicator catalogues `indicators_portal` and
//!   `indicators_2022`, and `external_indicators`;
//! * the derived tables `dossier_facts` and `dossier_history` (see
//!   [`derived`]) and the view `dossiers`: the derived dossier of docs/events.md as
//!   of now;
//! * table functions: `kpi('2025-W28', 'ward')`, `kpi_index('2025-07',
//!   'portal')`, `kpi_index_detail(…)`, `kpi_series('week', 'ward', '2025-01-01',
//!   '2025-12-31')` and `kpi_change('2025-W28', 'ward')`;
//! * functions: `percent`, `local_date`, `working_days_between`,
//!   `add_working_days` (see [`udf`]).
//!
//! The definitions are the SQL files of `queries/`, compiled in; this crate
//! parameterises them (period instants, grouping) and never restates their
//! logic. A period's evaluation instant `T = min(end, now)` uses the engine's
//! clock, which tests and reproducible reports can fix.
//!
//! Architecture invariant: this crate knows DataFusion and the store, not
//! HTTP, terminals or file formats of reports; what it returns is Arrow.

pub mod call;
mod capped;
pub mod catalogue;
pub mod derived;
mod functions;
pub mod limits;
pub mod memo;
pub mod period;
pub mod queries;
pub mod reference;
pub mod scope;
mod sql_guard;
pub mod udf;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use chiso_core::calendar::WorkCalendar;
use chiso_core::wards::WardRegistry;
use chiso_exec::datafusion::catalog::MemTable;
use chiso_exec::datafusion::error::DataFusionError;
use chiso_exec::datafusion::prelude::{DataFrame, SessionContext};
use chiso_store::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};

pub use call::{Call, MOST_DUE_SOON_DAYS};
pub use chiso_core::wards::{UnknownWard, WardCode};
pub use chiso_exec::datafusion;
pub use derived::Derivation;
pub use limits::{
    Admission, BoundedStream, QueryGate, QueryLimits, Stop, bounded_session, holding, stop_early,
};
pub use period::{Grain, MAX_SERIES_PERIODS, Period, PeriodError, parse_date};
pub use scope::Scope;
pub use sql_guard::{check_parsed, check_read_only};

use queries::{date_literal, instant_literal, render};

/// Why the engine could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request names something that is not a thing: the caller's to fix.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The SQL could not be planned (a syntax error, an unknown column or
    /// table, a type mismatch): the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// The query failed while it ran.
    #[error("{0}")]
    Query(String),
    /// A statement that would change something or reach outside the store.
    #[error("{0}")]
    Refused(String),
    #[error("{}: {message}", .path.display())]
    Reference { path: PathBuf, message: String },
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Every place for analysts' queries is taken.
    #[error("{0} queries are already running; try again shortly")]
    Busy(usize),
    /// A query needed more memory than a query may use.
    #[error(
        "the query needs more memory than the {limit} a query may use; \
         narrow it (a shorter period, fewer columns, a LIMIT) ({detail})"
    )]
    Memory { limit: String, detail: String },
    /// A query ran out of a resource outside an analyst's bounds.
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Stopped(#[from] Stop),
}

/// What a request asked for that is not a thing; typed from the edge (a URL,
/// a flag, a table function's arguments) to the answer (a 400, SQLSTATE 22023).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Period(#[from] PeriodError),
    #[error(transparent)]
    Ward(#[from] UnknownWard),
    #[error("unknown grouping `{0}`; use ward, department, procedure, channel or city")]
    Grouping(String),
    #[error("unknown index layout `{0}`; use portal or 2022")]
    Layout(String),
    /// A table function called with arguments it cannot take.
    #[error("{function}: {reason}; for example {usage}")]
    Arguments {
        function: &'static str,
        reason: String,
        usage: &'static str,
    },
}

impl From<PeriodError> for EngineError {
    fn from(error: PeriodError) -> Self {
        Self::Request(error.into())
    }
}

impl From<UnknownWard> for EngineError {
    fn from(error: UnknownWard) -> Self {
        Self::Request(error.into())
    }
}

impl From<DataFusionError> for EngineError {
    /// Told apart by kind, never by message: a request error a table
    /// function raised comes back as itself, whatever DataFusion wrapped
    /// it in.
    fn from(error: DataFusionError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(inner) = cause {
            if let Some(request) = inner.downcast_ref::<RequestError>() {
                return Self::Request(request.clone());
            }
            cause = inner.source();
        }
        let text = error.to_string();
        match error.find_root() {
            DataFusionError::Plan(_)
            | DataFusionError::SQL(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Self::Invalid(text),
            DataFusionError::ResourcesExhausted(_) => Self::Exhausted(text),
            _ => Self::Query(text),
        }
    }
}

impl EngineError {
    fn query(error: DataFusionError) -> Self {
        error.into()
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |cause| Self::Io {
            path: path.to_owned(),
            cause,
        }
    }

    /// Whether the caller can fix it by asking differently (a 400, not a 500).
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Self::Request(_) | Self::Invalid(_) | Self::Refused(_) | Self::Memory { .. }
        )
    }
}

/// How KPI results are grouped (docs/kpis.md, "Grouping").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    Ward,
    Department,
    Procedure,
    Channel,
    City,
}

impl Grouping {
    pub const ALL: [Grouping; 5] = [
        Self::Ward,
        Self::Department,
        Self::Procedure,
        Self::Channel,
        Self::City,
    ];

    pub fn parse(text: &str) -> Result<Self, RequestError> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "ward" | "wards" => Self::Ward,
            "department" | "departments" => Self::Department,
            "procedure" | "procedures" => Self::Procedure,
            "channel" | "channels" => Self::Channel,
            "city" | "none" | "" => Self::City,
            _ => return Err(RequestError::Grouping(text.chars().take(32).collect())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ward => "ward",
            Self::Department => "department",
            Self::Procedure => "procedure",
            Self::Channel => "channel",
            Self::City => "city",
        }
    }

    /// The result's key and name columns (none for the whole city).
    pub fn key_columns(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Ward => Some(("ward_code", "ward_name")),
            Self::Department => Some(("department_code", "department_name")),
            Self::Procedure => Some(("procedure_code", "procedure_name")),
            Self::Channel => Some(("channel", "channel_name")),
            Self::City => None,
        }
    }

    /// The parameters of kpi.sql for this grouping.
    fn parameters(self) -> [(&'static str, String); 3] {
        let groups = match self {
            Self::Ward => "(SELECT ward_code AS group_key, ward_name AS group_name FROM wards)",
            Self::Department => {
                "(SELECT department_code AS group_key, department_name AS group_name FROM departments)"
            }
            Self::Procedure => {
                "(SELECT procedure_code AS group_key, procedure_name AS group_name FROM procedures)"
            }
            Self::Channel => {
                "(SELECT channel AS group_key, channel_name AS group_name FROM channels)"
            }
            Self::City => "(SELECT 'city' AS group_key, 'Thành phố Cần Thơ' AS group_name)",
        };
        let (key, columns) = match self.key_columns() {
            Some((code, name)) => (
                code.to_owned(),
                format!("group_key AS {code}, group_name AS {name},"),
            ),
            None => ("'city'".to_owned(), String::new()),
        };
        [
            ("group_key", key),
            ("groups", groups.to_owned()),
            ("group_columns", columns),
        ]
    }
}

/// The two shipped layouts of the composite index (docs/kpis.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The portal's six groups today.
    Portal,
    /// The five groups of the 2022 decision.
    Decision2022,
}

impl Layout {
    pub fn parse(text: &str) -> Result<Self, RequestError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "portal" | "" => Ok(Self::Portal),
            "2022" => Ok(Self::Decision2022),
            _ => Err(RequestError::Layout(text.chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portal => "portal",
            Self::Decision2022 => "2022",
        }
    }

    /// The catalogue table registered for this layout.
    pub fn table(self) -> &'static str {
        match self {
            Self::Portal => "indicators_portal",
            Self::Decision2022 => "indicators_2022",
        }
    }
}

/// How an engine is opened.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The clock for `T = min(end, now)` and the relative periods; `None`
    /// reads the system clock at each query.
    pub now: Option<DateTime<Utc>>,
    /// External indicator values for the composite index (docs/kpis.md).
    pub external_indicators: Option<PathBuf>,
    /// A holiday calendar replacing the built-in one.
    pub calendar: Option<PathBuf>,
    /// Events per chunk when deriving the dossier tables, in place of
    /// [`derived::EVENTS_PER_CHUNK`] (a smaller chunk needs less memory).
    pub derivation_chunk_events: Option<u64>,
    /// Derive the dossier tables from every event even when this version
    /// was derived already (`chiso store rederive`).
    pub derive_afresh: bool,
}

/// A store opened for querying.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    context: SessionContext,
    planner: Arc<Planner>,
    functions: Arc<functions::Functions>,
    derivation: Derivation,
    change: Option<derived::Change>,
}

/// Turns a period and a grouping into the SQL of `queries/`.
#[derive(Debug)]
pub(crate) struct Planner {
    now: Option<DateTime<Utc>>,
}

impl Planner {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    /// The periods of a query as SQL: their relation and its bounds.
    fn periods_sql(&self, periods: &[Period]) -> Result<PeriodsSql, EngineError> {
        let now = self.now();
        let at_t: Vec<(Period, DateTime<Utc>)> = periods
            .iter()
            .map(|period| (*period, period.evaluation_instant(now)))
            .collect();
        Self::periods_at_sql(&at_t)
    }

    /// Periods each read at the instant given with it, as SQL.
    fn periods_at_sql(periods: &[(Period, DateTime<Utc>)]) -> Result<PeriodsSql, EngineError> {
        let rows: Vec<(String, String, DateTime<Utc>, DateTime<Utc>)> = periods
            .iter()
            .map(|(period, t)| {
                (
                    date_literal(period.start),
                    date_literal(period.end),
                    period.start_at(),
                    *t,
                )
            })
            .collect();
        let first_start_at = rows.iter().map(|row| row.2).min();
        let first_t = rows.iter().map(|row| row.3).min();
        let last_t = rows.iter().map(|row| row.3).max();
        let (Some(first_start_at), Some(first_t), Some(last_t)) = (first_start_at, first_t, last_t)
        else {
            return Err(EngineError::Query("a query over no period".into()));
        };
        let values: Vec<String> = rows
            .iter()
            .map(|(start, end, start_at, t)| {
                format!(
                    "({start}, {end}, {}, {})",
                    instant_literal(*start_at),
                    instant_literal(*t)
                )
            })
            .collect();
        Ok(PeriodsSql {
            relation: periods_relation(&values.join(", ")),
            first_start_at: instant_literal(first_start_at),
            first_t: instant_literal(first_t),
            last_t: instant_literal(last_t),
        })
    }

    pub(crate) fn kpi_sql(
        &self,
        period: &Period,
        grouping: Grouping,
    ) -> Result<String, EngineError> {
        self.scoped_kpi_sql(std::slice::from_ref(period), grouping, None)
    }

    /// kpi.sql over `periods` in one pass, counting only the dossiers of
    /// `ward` (all when `None`).
    pub(crate) fn scoped_kpi_sql(
        &self,
        periods: &[Period],
        grouping: Grouping,
        ward: Option<&str>,
    ) -> Result<String, EngineError> {
        let periods = self.periods_sql(periods)?;
        let mut parameters = vec![
            ("dossiers", periods.dossiers()?),
            ("periods", periods.relation),
        ];
        parameters.extend(grouping.parameters());
        let scope = match ward {
            Some(code) => format!("ward_code = {}", queries::string_literal(code)),
            None => "true".to_owned(),
        };
        parameters.push(("scope", scope));
        render(queries::KPI, &parameters)
    }
    pub(crate) fn index_detail_sql(
        &self,
        period: &Period,
        layout: Layout,
    ) -> Result<String, EngineError> {
        render(
            queries::INDEX,
            &[
                ("ward_kpi", self.kpi_sql(period, Grouping::Ward)?),
                ("indicators", layout.table().to_owned()),
            ],
        )
    }

    pub(crate) fn index_sql(&self, period: &Period, layout: Layout) -> Result<String, EngineError> {
        render(
            queries::INDEX_SUMMARY,
            &[("index", self.index_detail_sql(period, layout)?)],
        )
    }

    /// dossiers_at(period): the dossiers alive in `period` as of its T, with
    /// T itself as `evaluated_at` (what "overdue at the end of the period"
    /// is measured against).
    pub(crate) fn dossiers_at_sql(&self, period: &Period) -> Result<String, EngineError> {
        let dossiers = self.periods_sql(std::slice::from_ref(period))?.dossiers()?;
        Ok(format!(
            "SELECT d.* EXCLUDE ({PERIOD_COLUMNS}), d.period_t AS evaluated_at FROM ({dossiers}) d"
        ))
    }

    /// due_soon.sql: the dossiers in progress at `at` due by office close
    /// of the `days`-th working day after its day, of `ward` (all when
    /// `None`).
    pub(crate) fn due_soon_sql(
        &self,
        at: DateTime<Utc>,
        days: u32,
        ward: Option<&str>,
    ) -> Result<String, EngineError> {
        let day = Period::day(chiso_core::time::local_date(at));
        let dossiers = Self::periods_at_sql(&[(day, at)])?.dossiers()?;
        let scope = match ward {
            Some(code) => format!("d.ward_code = {}", queries::string_literal(code)),
            None => "true".to_owned(),
        };
        render(
            queries::DUE_SOON,
            &[
                ("dossiers", dossiers),
                ("at", instant_literal(at)),
                ("days", days.to_string()),
                ("scope", scope),
            ],
        )
    }

    /// The `dossiers` view: every dossier as of now.
    fn dossiers_view_sql(&self) -> Result<String, EngineError> {
        let now = match self.now {
            Some(now) => instant_literal(now),
            None => "arrow_cast(now(), 'Timestamp(Microsecond, Some(\"UTC\"))')".to_owned(),
        };
        let epoch = instant_literal(DateTime::<Utc>::UNIX_EPOCH);
        let dossiers = PeriodsSql {
            relation: periods_relation(&format!(
                "(DATE '1970-01-01', DATE '9999-12-31', {epoch}, {now})"
            )),
            first_start_at: epoch.clone(),
            first_t: now.clone(),
            last_t: now,
        }
        .dossiers()?;
        Ok(format!(
            "SELECT * EXCLUDE ({PERIOD_COLUMNS}) FROM ({dossiers})"
        ))
    }
}

/// The columns dossiers.sql adds to each dossier: the period it is read for.
const PERIOD_COLUMNS: &str = "period_start, period_end, period_start_at, period_t";

/// The periods of a query, as the parameters of dossiers.sql and kpi.sql.
struct PeriodsSql {
    /// One row per period: period_start, period_end, period_start_at, period_t.
    relation: String,
    first_start_at: String,
    first_t: String,
    last_t: String,
}

impl PeriodsSql {
    /// dossiers.sql over these periods.
    fn dossiers(&self) -> Result<String, EngineError> {
        render(
            queries::DOSSIERS,
            &[
                ("periods", self.relation.clone()),
                ("first_start_at", self.first_start_at.clone()),
                ("first_t", self.first_t.clone()),
                ("last_t", self.last_t.clone()),
                ("history_at", queries::HISTORY_AT.to_owned()),
            ],
        )
    }
}

/// The relation of periods from its `VALUES` rows.
fn periods_relation(values: &str) -> String {
    format!(
        "(SELECT * FROM (VALUES {values}) \
         AS periods(period_start, period_end, period_start_at, period_t))"
    )
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.root())
            .field("now", &self.planner.now)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the store at `root`, deriving the dossier tables of its events
    /// version if no process has yet.
    pub async fn open(root: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let store = Store::open(root).await?;
        Self::from_store(store, options).await
    }

    pub async fn from_store(store: Store, options: EngineOptions) -> Result<Self, EngineError> {
        let calendar = match &options.calendar {
            Some(path) => WorkCalendar::from_path(path).map_err(|e| EngineError::Reference {
                path: path.clone(),
                message: e.to_string(),
            })?,
            None => WorkCalendar::builtin(),
        };
        let wards = WardRegistry::builtin();
        let context = store.session().await?;
        for function in udf::all(Arc::new(calendar.clone())) {
            context.register_udf(function);
        }
        for function in udf::aggregates() {
            context.register_udaf(function);
        }
        let catalogue = reference::catalogue(&store)?;
        let indicators_portal =
            reference::indicators("queries/indicators-portal.csv", queries::INDICATORS_PORTAL)?;
        let indicators_2022 =
            reference::indicators("queries/indicators-2022.csv", queries::INDICATORS_2022)?;
        let external = match &options.external_indicators {
            Some(path) => {
                let mut ids = indicator_ids(&indicators_portal);
                ids.extend(indicator_ids(&indicators_2022));
                ids.sort();
                ids.dedup();
                reference::external_indicators(path, wards, &ids)?
            }
            None => reference::no_external_indicators()?,
        };
        let tables = [
            ("wards", reference::wards(wards)?),
            ("calendar", reference::calendar(&calendar)?),
            ("channels", reference::channels()?),
            ("procedures", catalogue.procedures),
            ("departments", catalogue.departments),
            ("indicators_portal", indicators_portal),
            ("indicators_2022", indicators_2022),
            ("external_indicators", external),
        ];
        for (name, batch) in tables {
            register_batch(&context, name, batch)?;
        }
        let (derivation, change) = derived::register(
            &store,
            &context,
            options.derivation_chunk_events,
            options.derive_afresh,
        )
        .await?;
        let planner = Arc::new(Planner { now: options.now });
        let view = context
            .sql(&planner.dossiers_view_sql()?)
            .await
            .map_err(|e| EngineError::Query(format!("queries/dossiers.sql: {e}")))?
            .into_view();
        context
            .register_table("dossiers", view)
            .map_err(EngineError::query)?;
        let functions = functions::register(&context, &planner);
        Ok(Self {
            store,
            context,
            planner,
            functions,
            derivation,
            change,
        })
    }

    /// The DataFusion session, with every table, view and function.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The version of the events table this engine reads.
    pub fn events_version(&self) -> i64 {
        self.store.version(chiso_store::Table::Events)
    }

    /// Whether opening had to derive the dossier tables (the first query of a
    /// new events version), in full or as an update.
    pub fn built_derived_tables(&self) -> bool {
        self.derivation != Derivation::Reused
    }

    /// Takes over what `earlier`, an engine of an earlier version of the
    /// same store, remembered of periods whose figures cannot differ here:
    /// every one when the events are the same version (only the quarantine
    /// or the ingest log moved on), else those before what this version's
    /// update changed (see [`derived::Change`]). After a live ingest, only
    /// the periods its events reach are computed again.
    pub fn carry_over(&self, earlier: &Engine) {
        if self.planner.now != earlier.planner.now {
            return;
        }
        if self.events_version() == earlier.events_version() {
            self.functions.carry_over(&earlier.functions, None);
        } else if let Some(change) = self.change
            && change.since == earlier.events_version()
        {
            self.functions
                .carry_over(&earlier.functions, change.unchanged_until);
        }
    }

    /// How opening came by the dossier tables.
    pub fn derivation(&self) -> Derivation {
        self.derivation
    }

    /// The engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.planner.now()
    }

    /// Reads a period, resolving `last-week` and friends with the engine's clock.
    pub fn period(&self, text: &str) -> Result<Period, EngineError> {
        Ok(Period::parse(text, self.now())?)
    }

    /// The figures a call asks for: the one way the server, the CLI and
    /// the reports reach them, and what the SQL table functions spell.
    /// Calls over ended periods are computed once per engine.
    pub async fn figures(&self, call: &Call) -> Result<DataFrame, EngineError> {
        let state = self.context.state();
        let table = self.functions.table(call, &state)?;
        Ok(self.context.read_table(table)?)
    }

    /// Each ward of the registry with its latest event up to now (null
    /// without one): `queries/last_event_by_ward.sql`.
    pub async fn last_event_by_ward(&self) -> Result<DataFrame, EngineError> {
        let sql = render(
            queries::LAST_EVENT_BY_WARD,
            &[("t", instant_literal(self.now()))],
        )?;
        Ok(self.context.sql(&sql).await?)
    }

    /// The SQL behind [`Engine::figures`], for analysts who ask to see it.
    pub fn figures_sql(&self, call: &Call) -> Result<String, EngineError> {
        self.functions.sql(call)
    }

    /// An analyst's query: read-only, refused with a clear message otherwise.
    pub async fn sql(&self, query: &str) -> Result<DataFrame, EngineError> {
        Self::read_only_frame(&self.context, query).await
    }

    /// Plans `query` in `context` if it only reads: the guard names what it
    /// refuses, and DataFusion's own options refuse the rest.
    pub(crate) async fn read_only_frame(
        context: &SessionContext,
        query: &str,
    ) -> Result<DataFrame, EngineError> {
        check_read_only(query)?;
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        context
            .sql_with_options(query, options)
            .await
            .map_err(EngineError::query)
    }

    async fn frame(&self, sql: &str) -> Result<DataFrame, EngineError> {
        self.context.sql(sql).await.map_err(EngineError::query)
    }

    /// The first day with data and the last, in local dates (None when empty).
    pub async fn data_range(&self) -> Result<Option<(NaiveDate, NaiveDate)>, EngineError> {
        let batches = self
            .frame("SELECT min(local_date(received_at)), max(local_date(last_event_at)) FROM dossier_facts")
            .await?
            .collect()
            .await
            .map_err(EngineError::query)?;
        let date = |column: usize| -> Option<NaiveDate> {
            let array = batches.first()?.column(column);
            let dates = array.as_any().downcast_ref::<arrow::array::Date32Array>()?;
            arrow::array::Array::is_valid(dates, 0)
                .then(|| dates.value_as_date(0))
                .flatten()
        };
        Ok(date(0).zip(date(1)))
    }
}

fn indicator_ids(batch: &RecordBatch) -> Vec<String> {
    batch
        .column_by_name("indicator_id")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
        .map(|ids| ids.iter().flatten().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn register_batch(
    context: &SessionContext,
    name: &str,
    batch: RecordBatch,
) -> Result<(), EngineError> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(EngineError::query)?;
    context
        .register_table(name, Arc::new(table))
        .map_err(EngineError::query)?;
    Ok(())
}
