//! `chiso kpi`, `chiso index` and `chiso sql`: the engine's figures in a
//! terminal or a file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::{Args, ValueEnum};
use futures::StreamExt;

use chiso_core::format::{vi_decimal, vi_integer};
use chiso_engine::datafusion::prelude::DataFrame;
use chiso_engine::{Call, Derivation, Engine, EngineOptions, Grouping, Layout, Period, QueryGate};
use chiso_report::encode::{Encoder, JsonLayout, ResultFormat};

/// The store a query command reads; without one, the built-in sample city.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store directory; without it (and without CHISO_STORE), the built-in
    /// sample city, created on first use.
    #[arg(long, env = "CHISO_STORE")]
    pub store: Option<PathBuf>,
}

/// The bounds of an analyst's query, the same on every entry point.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// How long an ad-hoc query may run, in seconds; past it the query is stopped.
    #[arg(long, default_value_t = 60)]
    query_timeout_seconds: u64,
    /// The memory one ad-hoc query may use, in megabytes (sorts and
    /// aggregations spill to disk first).
    #[arg(long, default_value_t = 2048)]
    query_memory_mb: usize,
    /// Ad-hoc queries running at once; more are refused until one ends.
    #[arg(long, default_value_t = 4)]
    max_queries: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> chiso_engine::QueryLimits {
        chiso_engine::QueryLimits {
            timeout: std::time::Duration::from_secs(self.query_timeout_seconds.max(1)),
            memory: self.query_memory_mb.max(16).saturating_mul(1024 * 1024),
            concurrent: self.max_queries.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal, Vietnamese number format.
    Table,
    /// CSV with a header row, the column names of docs/kpis.md.
    Csv,
    /// A JSON array of objects, the column names of docs/kpis.md.
    Json,
    /// Apache Parquet (needs --out).
    Parquet,
    /// An Arrow IPC stream (needs --out).
    Arrow,
    /// An Excel workbook with typed cells (needs --out).
    Xlsx,
}

impl OutputFormat {
    /// The file format, for every choice but the terminal's table.
    fn file_format(self) -> Option<ResultFormat> {
        match self {
            Self::Table => None,
            Self::Csv => Some(ResultFormat::Csv),
            Self::Json => Some(ResultFormat::Json),
            Self::Parquet => Some(ResultFormat::Parquet),
            Self::Arrow => Some(ResultFormat::Arrow),
            Self::Xlsx => Some(ResultFormat::Xlsx),
        }
    }
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// How to print the result.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Write to this file instead of the terminal.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

const PERIOD_HELP: &str = "2025-W28 (ISO week), 2025-07, 2025-Q3, 2025, 2025-07-14, \
2025-07-01..2025-07-15 (inclusive), this-week, last-week, this-month, last-month";

#[derive(Debug, Args)]
#[command(
    about = "The KPIs of docs/kpis.md for a period, per ward, department, procedure, channel or the city",
    after_help = "Examples:\n  chiso kpi --period 2025-W28 --by ward\n  chiso kpi --period last-month --format csv --out month.csv\n  chiso kpi --period 2025-07-01..2025-07-15 --by channel --format json"
)]
pub struct KpiArgs {
    #[command(flatten)]
    store: StoreArg,
    #[arg(long, short, help = format!("The period: {PERIOD_HELP}"))]
    period: String,
    /// Group by ward, department, procedure, channel or city.
    #[arg(long, default_value = "city")]
    by: String,
    /// Add each rate's change against the previous period and the rank.
    #[arg(long)]
    change: bool,
    /// Print the SQL that computes the figures instead of running it.
    #[arg(long)]
    show_sql: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(
    about = "The composite index of Decision 766 per ward: points, score, band and rank",
    after_help = "Indicators that cannot be computed from dossiers are external: give their values with \
--external FILE (CSV: ward_code, period_start, period_end, indicator_id, ratio). An indicator without a \
value is not assessed, and assessed_points says how much of the 100 points the score covers.\n\n\
Examples:\n  chiso index --period 2025-07\n  chiso index --period 2025-Q3 --layout 2022 --external ratings.csv"
)]
pub struct IndexArgs {
    #[command(flatten)]
    store: StoreArg,
    #[arg(long, short, help = format!("The period: {PERIOD_HELP}"))]
    period: String,
    /// The indicator catalogue: portal (six groups) or 2022 (five groups).
    #[arg(long, default_value = "portal")]
    layout: String,
    /// External indicator values (CSV).
    #[arg(long)]
    external: Option<PathBuf>,
    /// One row per ward and indicator instead of one per ward.
    #[arg(long)]
    detail: bool,
    /// Print the SQL that computes the index instead of running it.
    #[arg(long)]
    show_sql: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(
    about = "Ad-hoc SQL over the store (read-only); without a query, an interactive prompt",
    after_help = "Tables: events, quarantine, ingests, dossiers, dossier_facts, dossier_history, wards, calendar, \
channels, departments, procedures, indicators_portal, indicators_2022. Table functions: kpi(period, by), \
kpi_change(period, by), kpi_series(grain, by, from, to), kpi_index(period, layout), kpi_index_detail(period, layout), \
dossiers_at(period), due_soon(at, days, ward).\n\n\
Examples:\n  chiso sql \"SELECT ward_name, on_time_rate FROM kpi('2025-W28', 'ward') ORDER BY on_time_rate LIMIT 5\"\n  chiso sql --format csv --out overdue.csv \"SELECT * FROM dossiers WHERE finished_at IS NULL\"\n  chiso sql"
)]
pub struct SqlArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The query; `-` reads it from standard input. Without one, a prompt opens.
    query: Option<String>,
    /// Print each query's time to standard error.
    #[arg(long)]
    timing: bool,
    /// See the store as the officers of this ward see it (repeat for
    /// several wards): what `chiso serve --users` shows a ward user.
    #[arg(long = "as-ward", value_name = "CODE")]
    as_wards: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// The store to read: the one given, or the built-in sample city (created
/// on first use); `true` when it is the sample.
pub async fn store_or_sample(store: &Option<PathBuf>) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(store) = store {
        return Ok((store.clone(), false));
    }
    let sample = chiso_ingest::sample::default_location();
    if chiso_ingest::sample::ensure_store(&sample).await? {
        eprintln!(
            "chiso: created the built-in sample city in {}",
            sample.display()
        );
    }
    eprintln!(
        "chiso: showing the built-in sample city (103 wards, 2025, 1 % of the real volume); \
         --store DIR shows your own data"
    );
    Ok((sample, true))
}

async fn open(store: &Option<PathBuf>, external: Option<PathBuf>) -> anyhow::Result<Engine> {
    let (store, _) = store_or_sample(store).await?;
    let store = store.as_path();
    let options = EngineOptions {
        external_indicators: external,
        ..EngineOptions::default()
    };
    let started = Instant::now();
    let engine = Engine::open(store, options)
        .await
        .with_context(|| format!("cannot open the store {}", store.display()))?;
    let version = engine.store().version(chiso_store::Table::Events);
    let seconds = started.elapsed().as_secs_f64();
    match engine.derivation() {
        Derivation::Reused => {}
        Derivation::Full => eprintln!(
            "chiso: derived the dossiers of events version {version} in {seconds:.1} s \
             (once per ingest)"
        ),
        Derivation::Updated { dossiers } => eprintln!(
            "chiso: derived again the {dossiers} dossiers that events version {version} \
             touched, in {seconds:.1} s"
        ),
    }
    Ok(engine)
}

pub async fn kpi(args: KpiArgs) -> anyhow::Result<()> {
    let engine = open(&args.store.store, None).await?;
    let period = engine.period(&args.period)?;
    let grouping = Grouping::parse(&args.by)?;
    let call = if args.change {
        Call::Change {
            period,
            by: grouping,
            ward: None,
        }
    } else {
        Call::Kpi {
            period,
            by: grouping,
            ward: None,
        }
    };
    if args.show_sql {
        println!("{}", engine.figures_sql(&call)?);
        return Ok(());
    }
    let frame = engine.figures(&call).await?;
    let mut headline: Vec<(&str, &str)> = match grouping.key_columns() {
        Some((_, name)) => vec![(name, group_header(grouping))],
        None => vec![],
    };
    headline.extend(KPI_HEADLINE);
    if args.change {
        headline.extend([
            ("on_time_rate_change", "± Đúng hạn"),
            ("progress_rank", "Hạng"),
        ]);
    }
    let title = title("Chỉ số", &period);
    let (schema, stream) = rows(frame).await?;
    write(schema, stream, &args.output, Some(&title), Some(&headline)).await
}

/// `Chỉ số 2025-07 (01/07/2025 → 31/07/2025)`: the period with its local dates.
fn title(what: &str, period: &Period) -> String {
    format!(
        "{what} {period} ({} → {})",
        period.start.format("%d/%m/%Y"),
        period.last_day().format("%d/%m/%Y")
    )
}

fn group_header(grouping: Grouping) -> &'static str {
    match grouping {
        Grouping::Ward => "Phường/xã",
        Grouping::Department => "Cơ quan",
        Grouping::Procedure => "Thủ tục",
        Grouping::Channel => "Kênh",
        Grouping::City => "",
    }
}

/// The columns a terminal shows; CSV, JSON and Parquet have them all.
const KPI_HEADLINE: [(&str, &str); 10] = [
    ("received", "Tiếp nhận"),
    ("online_rate", "Trực tuyến %"),
    ("resolved", "Giải quyết"),
    ("on_time_rate", "Đúng hạn %"),
    ("digitization_rate", "Số hóa %"),
    ("e_result_rate", "KQ điện tử %"),
    ("online_payment_rate", "TT trực tuyến %"),
    ("satisfaction_rate", "Hài lòng %"),
    ("in_progress_overdue", "Quá hạn"),
    ("progress_ratio", "Tiến độ 766 %"),
];

pub async fn index(args: IndexArgs) -> anyhow::Result<()> {
    let engine = open(&args.store.store, args.external.clone()).await?;
    let period = engine.period(&args.period)?;
    let layout = Layout::parse(&args.layout)?;
    let call = if args.detail {
        Call::IndexDetail { period, layout }
    } else {
        Call::Index { period, layout }
    };
    if args.show_sql {
        println!("{}", engine.figures_sql(&call)?);
        return Ok(());
    }
    let title = title("Bộ chỉ số 766,", &period);
    let frame = engine.figures(&call).await?;
    if args.detail {
        let columns = [
            ("ward_name", "Phường/xã"),
            ("indicator_id", "Chỉ tiêu"),
            ("max_points", "Tối đa"),
            ("ratio", "Tỷ lệ %"),
            ("points", "Điểm"),
        ];
        let (schema, stream) = rows(frame).await?;
        return write(schema, stream, &args.output, Some(&title), Some(&columns)).await;
    }
    let columns = [
        ("rank", "Hạng"),
        ("ward_name", "Phường/xã"),
        ("score", "Điểm"),
        ("assessed_points", "Đã chấm"),
        ("score_100", "Điểm /100"),
        ("band_vi", "Xếp loại"),
    ];
    let (schema, stream) = rows(frame).await?;
    write(schema, stream, &args.output, Some(&title), Some(&columns)).await
}

pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let mut engine = open(&args.store.store, None).await?;
    if !args.as_wards.is_empty() {
        let wards = args
            .as_wards
            .iter()
            .map(|code| chiso_core::wards::WardRegistry::builtin().code(code))
            .collect::<Result<Vec<_>, _>>()?;
        engine = engine.scoped(&chiso_engine::Scope::wards(wards)).await?;
    }
    let analyst = Analyst {
        engine,
        gate: QueryGate::new(args.limits.limits()),
    };
    match args.query.as_deref() {
        Some("-") => {
            let mut query = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut query)?;
            analyst.run(&query, &args.output).await
        }
        Some(query) => {
            let started = Instant::now();
            analyst.run(query, &args.output).await?;
            if args.timing {
                eprintln!("time: {:.3} s", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        None => prompt(&analyst, args.timing).await,
    }
}

/// An engine and the bounds of the analyst's queries on it.
struct Analyst {
    engine: Engine,
    gate: QueryGate,
}

impl Analyst {
    async fn run(&self, query: &str, output: &OutputArgs) -> anyhow::Result<()> {
        let stream = self.engine.bounded_sql(query, self.gate.admit()?).await?;
        let schema = stream.schema();
        write(
            schema,
            stream.map(|batch| batch.map_err(anyhow::Error::from)),
            output,
            None,
            None,
        )
        .await
    }
}

/// A planned frame as a schema and a stream of batches.
async fn rows(
    frame: DataFrame,
) -> anyhow::Result<(
    SchemaRef,
    impl futures::Stream<Item = anyhow::Result<RecordBatch>> + Unpin,
)> {
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let stream = frame.execute_stream().await?;
    Ok((
        schema,
        stream.map(|batch| batch.map_err(anyhow::Error::from)),
    ))
}

/// Rows a terminal shows at most; files get everything.
const DISPLAY_ROWS: usize = 200;

/// Writes a result in the chosen format, streaming batch by batch.
async fn write(
    schema: SchemaRef,
    mut stream: impl futures::Stream<Item = anyhow::Result<RecordBatch>> + Unpin,
    output: &OutputArgs,
    title: Option<&str>,
    columns: Option<&[(&str, &str)]>,
) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match &output.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if let Some(format) = output.format.file_format() {
        if format.is_binary() && output.out.is_none() {
            bail!("--format {} needs --out FILE", format.extension());
        }
        let started = Instant::now();
        let mut encoder = Encoder::new(format, &schema, JsonLayout::Rows)?;
        while let Some(batch) = stream.next().await {
            sink.write_all(&encoder.batch(&batch?)?)?;
        }
        sink.write_all(&encoder.finish(&schema, started.elapsed(), false)?)?;
        sink.flush()?;
        return Ok(());
    }
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut total = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        total += batch.num_rows();
        if rows < DISPLAY_ROWS {
            let keep = batch.num_rows().min(DISPLAY_ROWS - rows);
            rows += keep;
            batches.push(batch.slice(0, keep));
        }
    }
    if let Some(title) = title {
        writeln!(sink, "{title}")?;
    }
    writeln!(sink, "{}", table(&schema, &batches, columns)?)?;
    if total > rows {
        writeln!(
            sink,
            "… {} more rows (use --format csv --out FILE for all)",
            total - rows
        )?;
    } else if title.is_none() {
        writeln!(sink, "({total} row{})", if total == 1 { "" } else { "s" })?;
    }
    sink.flush()?;
    Ok(())
}

/// An aligned table; with `columns`, those columns under those headers and
/// numbers in the Vietnamese format, otherwise every column as it is.
fn table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: Option<&[(&str, &str)]>,
) -> anyhow::Result<String> {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
    let chosen: Vec<(usize, String)> = match columns {
        Some(columns) => columns
            .iter()
            .filter_map(|(name, header)| {
                schema
                    .index_of(name)
                    .ok()
                    .map(|i| (i, (*header).to_owned()))
            })
            .collect(),
        None => schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.name().clone()))
            .collect(),
    };
    table.set_header(chosen.iter().map(|(_, h)| h.clone()));
    for (position, (index, _)) in chosen.iter().enumerate() {
        if schema.field(*index).data_type().is_numeric()
            && let Some(column) = table.column_mut(position)
        {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let options = FormatOptions::default().with_null("–");
    for batch in batches {
        let cells: Vec<Box<dyn Fn(usize) -> String>> = chosen
            .iter()
            .map(|(index, _)| cell_formatter(batch.column(*index), columns.is_some(), &options))
            .collect::<anyhow::Result<_>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(cells.iter().map(|cell| cell(row)));
        }
    }
    Ok(table.to_string())
}

fn cell_formatter(
    array: &ArrayRef,
    vietnamese: bool,
    options: &FormatOptions<'static>,
) -> anyhow::Result<Box<dyn Fn(usize) -> String>> {
    let array = array.clone();
    if vietnamese {
        match array.data_type() {
            DataType::Int64 => {
                return Ok(Box::new(move |row| {
                    let values = array.as_any().downcast_ref::<Int64Array>();
                    match values {
                        Some(v) if v.is_valid(row) => vi_integer(v.value(row)),
                        _ => "–".to_owned(),
                    }
                }));
            }
            DataType::Float64 => {
                return Ok(Box::new(move |row| {
                    let values = array.as_any().downcast_ref::<Float64Array>();
                    match values {
                        Some(v) if v.is_valid(row) => vi_decimal(v.value(row), 2),
                        _ => "–".to_owned(),
                    }
                }));
            }
            _ => {}
        }
    }
    let options = options.clone();
    ArrayFormatter::try_new(array.as_ref(), &options)?;
    // A formatter borrows its array; it is cheap to make, so make one per cell.
    Ok(Box::new(move |row| {
        ArrayFormatter::try_new(array.as_ref(), &options)
            .map(|f| f.value(row).to_string())
            .unwrap_or_default()
    }))
}

/// The interactive prompt: `;` ends a query, `\d` lists tables, `\d NAME`
/// describes one, `\q` quits; history is kept in `~/.chiso_history`.
async fn prompt(analyst: &Analyst, timing: bool) -> anyhow::Result<()> {
    let engine = &analyst.engine;
    let interactive = std::io::stdin().is_terminal();
    let history_path =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".chiso_history"));
    let mut history = history_path.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    if interactive {
        eprintln!(
            "chiso sql — store {} (events version {}). End a query with `;`. \\d lists tables, \\d NAME describes one, \\q quits.",
            engine.store().root().display(),
            engine.store().version(chiso_store::Table::Events)
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut buffer = String::new();
    let output = OutputArgs {
        format: OutputFormat::Table,
        out: None,
    };
    loop {
        if interactive {
            eprint!(
                "{}",
                if buffer.is_empty() {
                    "chiso> "
                } else {
                    "  ...> "
                }
            );
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let command = trimmed.trim_end_matches(';');
            match command.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["\\q"] | ["\\quit"] => break,
                ["\\d"] => {
                    report(analyst.run("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name", &output).await);
                }
                ["\\d", name] => {
                    let sql = format!(
                        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                        name.replace('\'', "''")
                    );
                    report(analyst.run(&sql, &output).await);
                }
                _ => eprintln!("unknown command {command}: \\d, \\d NAME, \\q"),
            }
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let query = std::mem::take(&mut buffer);
            if let Some(file) = history.as_mut() {
                let _ = writeln!(file, "{}", query.trim().replace('\n', " "));
            }
            let started = Instant::now();
            let result = analyst.run(&query, &output).await;
            report(result);
            if interactive || timing {
                eprintln!("time: {:.3} s", started.elapsed().as_secs_f64());
            }
        }
    }
    if !buffer.trim().is_empty() {
        report(analyst.run(&buffer, &output).await);
    }
    Ok(())
}

fn report(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("error: {error:#}");
    }
}
