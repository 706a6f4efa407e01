//! The KPI engine against real stores on disk:
//!
//! * `tests/kpi/*.slt`: small hand-built event sets, ingested through the real
//!   ingester, with every expected figure worked out by hand in the file;
//! * the generated city, whose figures chiso-gen derives independently (a
//!   plain-Rust reading of docs/events.md and docs/kpis.md), must come out identical.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chiso_test_support::TempDir;
use std::path::Path;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chiso_engine::{Call, Engine, EngineOptions, Grain, Grouping, Layout, Period};
use chiso_gen::summary::Tally;
use chiso_gen::{Format, Params};
use chiso_ingest::{IngestOptions, Ingester};
use chrono::{DateTime, NaiveDate, Utc};

fn instant(text: &str) -> DateTime<Utc> {
    chiso_core::time::parse_timestamp(text).unwrap()
}

/// Cells as the .slt files write them: NULL, true/false, numbers as Arrow
/// prints them, text as it is; columns joined by ` | `.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

/// One .slt file: `now`, `events` blocks (CSV ingested as one file each),
/// `query [rowsort]` blocks with `----` and the expected rows, and
/// `statement error <text>` blocks. `chunk_events` sets the derivation's
/// events per chunk (`None`: the default, one chunk for these files).
///
/// With `CHISO_SLT_REWRITE=1`, the rows each query returns replace the
/// expected ones in the file (as DataFusion's `--complete`): review the
/// diff, it is what the engine now says.
async fn run_slt(path: &Path, chunk_events: Option<u64>) {
    let rewrite = chunk_events.is_none() && std::env::var_os("CHISO_SLT_REWRITE").is_some();
    // (first line of the expected rows, how many, the rows the query gave)
    let mut answers: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let stem = path.file_stem().unwrap().to_string_lossy().to_string();
    let name = match chunk_events {
        Some(n) => format!("{stem}-chunks-of-{n}"),
        None => stem.clone(),
    };
    let text = std::fs::read_to_string(path).unwrap();
    let dir = TempDir::new(&format!("engine-slt-{name}"));
    let store = dir.path("store");
    // Every file starts from an empty store (the ingester creates it).
    Ingester::open(&store).await.unwrap();
    let mut now = instant("2030-01-01T00:00:00+07:00");
    let mut engine: Option<Engine> = None;
    let mut lines = text.lines().enumerate().peekable();
    let mut files = 0;
    let mut failures = Vec::new();
    while let Some((number, line)) = lines.next() {
        let line = line.trim_end();
        let location = match chunk_events {
            Some(n) => format!(
                "{}:{} (derived in chunks of {n} events)",
                path.display(),
                number + 1
            ),
            None => format!("{}:{}", path.display(), number + 1),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let block = |lines: &mut std::iter::Peekable<std::iter::Enumerate<std::str::Lines>>| {
            let mut block = Vec::new();
            while let Some((_, l)) = lines.peek() {
                if l.trim().is_empty() {
                    break;
                }
                block.push(lines.next().unwrap().1.to_owned());
            }
            block
        };
        if let Some(at) = line.strip_prefix("now ") {
            now = instant(at.trim());
            engine = None;
        } else if line == "events" {
            let csv = block(&mut lines).join("\n") + "\n";
            files += 1;
            let mut ingester = Ingester::open(&store).await.unwrap();
            let options = IngestOptions {
                now: Some(instant("2030-01-01T00:00:00+07:00")),
                ..IngestOptions::default()
            };
            let report = ingester
                .ingest_bytes(
                    Path::new(&format!("{stem}-{files}.csv")),
                    csv.into_bytes().into(),
                    &options,
                )
                .await
                .unwrap();
            assert_eq!(report.rejected, 0, "{location}: rows rejected: {report}");
            engine = None;
        } else if let Some(expected_error) = line.strip_prefix("statement error") {
            let sql = block(&mut lines).join("\n");
            let engine = open(&mut engine, &store, now, chunk_events).await;
            let error = match engine.sql(&sql).await {
                Ok(frame) => frame.collect().await.err().map(|e| e.to_string()),
                Err(error) => Some(error.to_string()),
            };
            match error {
                Some(error) if error.contains(expected_error.trim()) => {}
                other => failures.push(format!(
                    "{location}: expected an error with `{}`, got {other:?}",
                    expected_error.trim()
                )),
            }
        } else if line.starts_with("query") {
            let rowsort = line.contains("rowsort");
            let mut sql = Vec::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "----" {
                    break;
                }
                sql.push(l);
            }
            let sql = sql.join("\n");
            let first_row = lines.peek().map_or(text.lines().count(), |(n, _)| *n);
            let expected: Vec<String> = block(&mut lines)
                .iter()
                .map(|l| l.trim().to_owned())
                .collect();
            let engine = open(&mut engine, &store, now, chunk_events).await;
            let mut actual = match engine.sql(&sql).await {
                Ok(frame) => rows(&frame.collect().await.unwrap()),
                Err(error) => vec![format!("ERROR: {error}")],
            };
            answers.push((first_row, expected.len(), actual.clone()));
            let mut expected = expected;
            if rowsort {
                actual.sort();
                expected.sort();
            }
            if actual != expected {
                failures.push(format!(
                    "{location}: {sql}\nexpected:\n  {}\nactual:\n  {}",
                    expected.join("\n  "),
                    actual.join("\n  ")
                ));
            }
        } else {
            panic!("{location}: unknown directive `{line}`");
        }
    }
    if rewrite {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for (first, count, actual) in answers.into_iter().rev() {
            lines.splice(first..first + count, actual);
        }
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

async fn open<'a>(
    engine: &'a mut Option<Engine>,
    store: &Path,
    now: DateTime<Utc>,
    chunk_events: Option<u64>,
) -> &'a Engine {
    if engine.is_none() {
        let options = EngineOptions {
            now: Some(now),
            derivation_chunk_events: chunk_events,
            ..EngineOptions::default()
        };
        *engine = Some(Engine::open(store, options).await.unwrap());
    }
    engine.as_ref().unwrap()
}

/// Each file runs twice: as it is, and with the derivation in chunks of
/// one event (more chunks than dossiers, so most chunks are empty and each
/// dossier's events must still meet in one chunk).
async fn kpi_file(stem: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/kpi/{stem}.slt"));
    run_slt(&file, None).await;
    run_slt(&file, Some(1)).await;
}

/// One test per file of `tests/kpi/`.
macro_rules! kpi_files {
    ($($stem:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $stem() {
                kpi_file(&stringify!($stem)[4..]).await;
            }
        )*
        const KPI_FILES: &[&str] = &[$(stringify!($stem)),*];
    };
}

kpi_files!(
    slt_01_period_edges,
    slt_02_completion,
    slt_03_supplements,
    slt_04_intake,
    slt_05_index_and_sql,
    slt_06_due_soon,
);

#[test]
fn every_kpi_file_has_its_test() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kpi");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .map(|p| format!("slt_{}", p.file_stem().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert_eq!(
        files, KPI_FILES,
        "add the new .slt file to kpi_files! above"
    );
}

/// Every column a figure of the engine returns is defined in docs/kpis.md,
/// the page users check the figures against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_is_defined_in_docs_kpis_md() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/kpis.md");
    let docs = std::fs::read_to_string(&docs).unwrap();
    let dir = TempDir::new("engine-docs");
    let store = dir.path("store");
    Ingester::open(&store).await.unwrap();
    let engine = Engine::open(&store, EngineOptions::default())
        .await
        .unwrap();
    let period = engine.period("2025-W28").unwrap();
    let mut calls = Vec::new();
    for by in Grouping::ALL {
        calls.push(Call::Kpi {
            period,
            by,
            ward: None,
        });
        calls.push(Call::Change {
            period,
            by,
            ward: None,
        });
    }
    for layout in [Layout::Portal, Layout::Decision2022] {
        calls.push(Call::Index { period, layout });
        calls.push(Call::IndexDetail { period, layout });
    }
    calls.push(Call::DueSoon {
        at: period.start_at(),
        days: 2,
        ward: None,
    });
    let mut undefined = Vec::new();
    for call in &calls {
        let frame = engine.figures(call).await.unwrap();
        for field in frame.schema().fields() {
            let name = field.name();
            if !docs.contains(&format!("`{name}`")) && !undefined.contains(name) {
                undefined.push(name.clone());
            }
        }
    }
    assert!(
        undefined.is_empty(),
        "columns the engine returns that docs/kpis.md does not define: {undefined:?}"
    );
}

/// The counts of one KPI row, in the order of [`tally_counts`].
const COUNTS: [&str; 23] = [
    "received",
    "online",
    "direct",
    "postal",
    "full_online",
    "digitized",
    "fee_required",
    "paid_online",
    "resolved",
    "resolved_on_time",
    "resolved_early",
    "resolved_late",
    "late_apologized",
    "e_result",
    "stopped",
    "withdrawn",
    "in_progress",
    "in_progress_overdue",
    "awaiting_supplement",
    "rated",
    "satisfied",
    "progress_total",
    "progress_on_time",
];

fn tally_counts(t: &Tally) -> Vec<i64> {
    [
        t.received,
        t.online,
        t.direct,
        t.postal,
        t.full_online,
        t.digitized,
        t.fee_required,
        t.paid_online,
        t.resolved,
        t.resolved_on_time,
        t.resolved_early,
        t.resolved_late,
        t.late_apologized,
        t.e_result,
        t.stopped,
        t.withdrawn,
        t.in_progress,
        t.in_progress_overdue,
        t.awaiting_supplement,
        t.rated,
        t.satisfied,
        t.progress_universe,
        t.progress_good,
    ]
    .iter()
    .map(|&n| n as i64)
    .collect()
}

fn row_counts(batches: &[RecordBatch]) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(
                COUNTS
                    .iter()
                    .map(|name| {
                        let column = batch.column_by_name(name).unwrap();
                        column
                            .as_any()
                            .downcast_ref::<Int64Array>()
                            .unwrap()
                            .value(row)
                    })
                    .collect(),
            );
        }
    }
    out
}

fn differences(what: &str, expected: &[i64], actual: &[i64]) -> Vec<String> {
    COUNTS
        .iter()
        .zip(expected.iter().zip(actual))
        .filter(|(_, (e, a))| e != a)
        .map(|(name, (e, a))| format!("{what} {name}: independent {e}, chiso {a}"))
        .collect()
}

async fn kpi(engine: &Engine, period: &Period, grouping: Grouping) -> Vec<RecordBatch> {
    let call = Call::Kpi {
        period: *period,
        by: grouping,
        ward: None,
    };
    engine
        .figures(&call)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

async fn series(
    engine: &Engine,
    grain: Grain,
    from: &str,
    to: &str,
    grouping: Grouping,
) -> Vec<RecordBatch> {
    let call = Call::Series {
        grain,
        from: date(from),
        to: date(to),
        by: grouping,
        ward: None,
    };
    engine
        .figures(&call)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// The generated city's months and wards, as chiso-gen's independent
/// derivation counts them, against chiso's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_city_matches_the_independent_derivation() {
    let scale: f64 = std::env::var("CHISO_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1);
    let city = chiso_gen::generate(&Params {
        scale,
        ..Params::default()
    })
    .unwrap();
    let dir = TempDir::new("engine-city");
    let file = dir.path("city.parquet");
    chiso_gen::write::write_city(&city, Format::Parquet, &file).unwrap();
    let store = dir.path("store");
    let mut ingester = Ingester::open(&store).await.unwrap();
    let report = ingester
        .ingest_file(&file, &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(report.rejected, 0);
    // Chunks of a third of the events: the derivation a big city gets.
    let options = EngineOptions {
        now: Some(instant("2026-06-01T00:00:00+07:00")),
        derivation_chunk_events: Some(report.accepted.div_ceil(3)),
        ..EngineOptions::default()
    };
    let engine = Engine::open(&store, options.clone()).await.unwrap();
    assert!(engine.built_derived_tables());
    let derived = std::fs::read_dir(store.join("derived"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let chunks = std::fs::read_dir(derived.path().join("dossier_facts"))
        .unwrap()
        .count();
    assert_eq!(chunks, 3, "the dossier tables derived in three chunks");

    let mut problems = Vec::new();
    for (month, tally) in &city.stats.months {
        let period = Period::month_of(*month);
        let actual = row_counts(&kpi(&engine, &period, Grouping::City).await);
        assert_eq!(actual.len(), 1, "one row for the city");
        problems.extend(differences(
            &period.to_string(),
            &tally_counts(tally),
            &actual[0],
        ));
    }
    let year = engine.period("2025").unwrap();
    let batches = kpi(&engine, &year, Grouping::Ward).await;
    let actual = row_counts(&batches);
    let codes: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let codes = arrow::compute::cast(
                b.column_by_name("ward_code").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let codes = codes.as_any().downcast_ref::<StringArray>().unwrap();
            (0..codes.len())
                .map(|i| codes.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(actual.len(), 103, "every ward listed");
    for (code, counts) in codes.iter().zip(&actual) {
        let position = city.wards.position(code).unwrap();
        problems.extend(differences(
            code,
            &tally_counts(&city.stats.wards[position]),
            counts,
        ));
    }
    let whole = kpi(&engine, &year, Grouping::City).await;
    problems.extend(differences(
        "2025",
        &tally_counts(&city.stats.total),
        &row_counts(&whole)[0],
    ));

    // A series computes the periods no one asked for yet in one pass over
    // the dossiers (kpi.sql over many periods): an engine with nothing
    // remembered computes every month at once, one that already has two
    // weeks computes the other eleven of the quarter together.
    let fresh = Engine::open(&store, options).await.unwrap();
    let months = series(
        &fresh,
        Grain::Month,
        "2025-01-01",
        "2025-12-31",
        Grouping::City,
    )
    .await;
    let months = row_counts(&months);
    assert_eq!(months.len(), 12, "one row per month");
    for ((month, tally), counts) in city.stats.months.iter().zip(&months) {
        problems.extend(differences(
            &format!("{month} in the series"),
            &tally_counts(tally),
            counts,
        ));
    }
    let weeks = Period::series(Grain::Week, date("2025-07-01"), date("2025-09-30")).unwrap();
    for week in [&weeks[2], &weeks[5]] {
        kpi(&fresh, week, Grouping::Ward).await;
    }
    let in_one_pass = series(
        &fresh,
        Grain::Week,
        "2025-07-01",
        "2025-09-30",
        Grouping::Ward,
    )
    .await;
    let mut one_by_one = Vec::new();
    for week in &weeks {
        one_by_one.extend(rows(&kpi(&engine, week, Grouping::Ward).await));
    }
    assert_eq!(one_by_one.len(), 103 * weeks.len());
    assert_eq!(rows(&in_one_pass), one_by_one, "a series is its periods");
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The text of every value of the columns named `name`.
fn texts(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        if let Some(column) = batch.column_by_name(name) {
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
            let column = column.as_any().downcast_ref::<StringArray>().unwrap();
            out.extend(column.iter().flatten().map(str::to_owned));
        }
    }
    out
}

/// A ward's scope holds on every query an analyst can write: joins,
/// subqueries, unions, CTEs, `information_schema`, each table function,
/// and the bounded path of the console, `/api/sql` and the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_scope_holds_on_every_query() {
    use chiso_engine::{QueryGate, QueryLimits, Scope};
    use futures::TryStreamExt;
    let city = chiso_test_support::SampleCity::open("engine-scope").await;
    let code = chiso_core::wards::WardRegistry::builtin()
        .code("31135")
        .unwrap();
    let ward = city.engine.scoped(&Scope::wards([code])).await.unwrap();
    let all = |sql: &'static str| {
        let engine = city.engine.clone();
        async move { engine.sql(sql).await.unwrap().collect().await.unwrap() }
    };
    let own_dossiers: std::collections::HashSet<String> = texts(
        &all("SELECT dossier_id FROM dossier_facts WHERE ward_code = '31135'").await,
        "dossier_id",
    )
    .into_iter()
    .collect();
    assert!(own_dossiers.len() > 100, "the ward has dossiers");

    let queries = [
        "SELECT * FROM events",
        "SELECT DISTINCT ward_code FROM events",
        "SELECT * FROM dossier_facts",
        "SELECT dossier_id, ward_code FROM dossiers",
        "SELECT h.dossier_id FROM dossier_history h",
        "SELECT e.dossier_id, f.ward_code FROM events e JOIN dossier_facts f USING (dossier_id)",
        "SELECT e.dossier_id FROM events e LEFT JOIN dossiers d ON e.dossier_id = d.dossier_id",
        "SELECT * FROM (SELECT dossier_id, ward_code FROM dossier_facts) t",
        "SELECT dossier_id FROM events WHERE dossier_id IN (SELECT dossier_id FROM dossiers WHERE outcome = 'resolved')",
        "SELECT ward_code FROM dossier_facts UNION ALL SELECT ward_code FROM dossiers",
        "WITH received AS (SELECT * FROM events WHERE event_type = 'received') \
         SELECT dossier_id, ward_code FROM received",
        "SELECT * FROM wards",
        "SELECT * FROM kpi('2025-W40', 'ward')",
        "SELECT * FROM kpi('2025-09', 'procedure', '31135')",
        "SELECT * FROM kpi_series('month', 'ward', '2025-01-01', '2025-12-31')",
        "SELECT * FROM kpi_change('2025-W40', 'ward')",
        "SELECT * FROM kpi_index('2025-07', 'portal')",
        "SELECT * FROM kpi_index_detail('2025-07', '2022')",
        "SELECT dossier_id, ward_code FROM dossiers_at('2025-W40')",
    ];
    let gate = QueryGate::new(QueryLimits::default());
    for sql in queries {
        let direct = ward.sql(sql).await.unwrap().collect().await.unwrap();
        let bounded: Vec<RecordBatch> = ward
            .bounded_sql(sql, gate.admit().unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for batches in [direct, bounded] {
            let wards = texts(&batches, "ward_code");
            assert!(
                wards.iter().all(|w| w == "31135"),
                "{sql}: other wards' rows {:?}",
                wards
                    .iter()
                    .filter(|w| *w != "31135")
                    .take(3)
                    .collect::<Vec<_>>()
            );
            let dossiers = texts(&batches, "dossier_id");
            assert!(
                dossiers.iter().all(|d| own_dossiers.contains(d)),
                "{sql}: another ward's dossier"
            );
            assert!(
                batches.iter().map(RecordBatch::num_rows).sum::<usize>() > 0,
                "{sql}: the ward's own rows are there"
            );
        }
    }
    // Counts as a ward user asks them.
    let count = |batches: Vec<RecordBatch>| -> i64 {
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    let distinct = ward
        .sql("SELECT count(DISTINCT ward_code) FROM events")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(count(distinct), 1);
    let mine = ward
        .sql("SELECT received FROM kpi('2025-W40', 'city')")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let theirs =
        all("SELECT received FROM kpi('2025-W40', 'ward') WHERE ward_code = '31135'").await;
    assert_eq!(count(mine), count(theirs), "the ward's city is the ward");
    // The index is the whole city's: the ward's own rank and score among
    // all 103, as the portal publishes them.
    let own = rows(
        &ward
            .sql("SELECT ward_code, rank, score_100 FROM kpi_index('2025-07', 'portal')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let published = rows(
        &all("SELECT ward_code, rank, score_100 FROM kpi_index('2025-07', 'portal') WHERE ward_code = '31135'")
            .await,
    );
    assert_eq!(own, published);
    // The operational tables are not there at all, not even by name.
    for sql in ["SELECT * FROM quarantine", "SELECT * FROM ingests"] {
        assert!(ward.sql(sql).await.is_err(), "{sql} is refused");
    }
    let tables = texts(
        &ward
            .sql("SELECT table_name FROM information_schema.tables")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
        "table_name",
    );
    assert!(tables.contains(&"events".to_owned()));
    assert!(!tables.contains(&"quarantine".to_owned()), "{tables:?}");
    // A city-wide reader sees every ward but not the operational tables;
    // the whole engine is unchanged.
    let leader = city.engine.scoped(&Scope::city()).await.unwrap();
    let wards = leader
        .sql("SELECT count(DISTINCT ward_code) FROM dossier_facts")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(count(wards) > 90);
    assert!(leader.sql("SELECT * FROM quarantine").await.is_err());
    assert!(city.engine.sql("SELECT * FROM quarantine").await.is_ok());
}

/// A small deterministic generator for the update property test.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The same event with its instant one second later: a conflict.
fn conflicting(line: &str) -> String {
    let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
    let at = instant(event["occurred_at"].as_str().unwrap()) + chrono::Duration::seconds(1);
    event["occurred_at"] = serde_json::Value::String(at.to_rfc3339());
    event.to_string()
}

/// Rows of a derived table or a figure, comparable across derivations: the
/// dossier keys, which number rows, left out.
async fn comparable(engine: &Engine, sql: &str) -> Vec<String> {
    let frame = engine.sql(sql).await.unwrap();
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| name != "dossier_key")
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let batches = frame
        .select_columns(&columns)
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = rows(&batches);
    rows.sort();
    rows
}

/// Issue 31: ingests update the derived tables for the dossiers they touch,
/// and the result is what a full derivation of the same events gives.
///
/// Most of the city arrives first; the rest arrives in batches of random
/// size in random order, with events held back from the first batch (a
/// `received` among them makes its dossier's other events orphans until
/// it comes; an early milestone moves its history backwards), events sent
/// again and conflicting copies. After every batch the engine opens by an
/// update; after the last, its tables and figures are compared with a full
/// derivation of a copy of the store. `chunks` derives the first version
/// in that many chunks, so the update's base is a chunked one.
async fn updates_match_a_full_derivation(seed: u64, chunks: u64) {
    let city = chiso_gen::generate(&Params {
        seed,
        scale: 0.0005,
        ..Params::default()
    })
    .unwrap();
    let dir = TempDir::new(&format!("engine-updates-{seed}-{chunks}"));
    let file = dir.path("city.ndjson");
    chiso_gen::write::write_city(&city, Format::Ndjson, &file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut rng = SplitMix(seed);

    let first_count = lines.len() * 85 / 100;
    let (mut first, mut rest) = (Vec::new(), lines[first_count..].to_vec());
    for line in &lines[..first_count] {
        if rng.below(100) < 3 {
            rest.push(*line);
        } else {
            first.push(*line);
        }
    }
    rng.shuffle(&mut rest);
    let mut batches: Vec<Vec<String>> = vec![first.iter().map(|l| l.to_string()).collect()];
    let mut sent: Vec<&str> = first.clone();
    while !rest.is_empty() {
        let size = (1 + rng.below(rest.len().min(400))).min(rest.len());
        let part: Vec<&str> = rest.drain(..size).collect();
        let mut batch: Vec<String> = part.iter().map(|l| l.to_string()).collect();
        for _ in 0..3 {
            batch.push(sent[rng.below(sent.len())].to_owned());
        }
        batch.push(conflicting(sent[rng.below(sent.len())]));
        rng.shuffle(&mut batch);
        sent.extend(part);
        batches.push(batch);
    }
    assert!(
        batches.len() >= 3,
        "the rest of the city comes in several batches"
    );

    let store = dir.path("store");
    let mut ingester = Ingester::open(&store).await.unwrap();
    let now = instant("2026-01-15T00:00:00+07:00");
    let mut conflicts = 0;
    let mut updates = 0;
    // Each engine takes over what the one before remembered of periods its
    // update cannot have changed; the figures it then gives are compared
    // with a full derivation's below.
    let series = "SELECT * FROM kpi_series('month', 'city', '2025-01-01', '2025-12-31')";
    let mut previous: Option<Engine> = None;
    for (n, batch) in batches.iter().enumerate() {
        let path = dir.write(&format!("batch-{n}.ndjson"), batch.join("\n").as_bytes());
        let report = ingester
            .ingest_file(&path, &IngestOptions::default())
            .await
            .unwrap();
        conflicts += report.conflict;
        let options = EngineOptions {
            now: Some(now),
            derivation_chunk_events: (n == 0).then(|| (report.accepted / chunks).max(1)),
            ..EngineOptions::default()
        };
        let engine = Engine::open(&store, options).await.unwrap();
        match engine.derivation() {
            chiso_engine::Derivation::Updated { dossiers } => {
                assert!(dossiers > 0);
                updates += 1;
            }
            other => assert_eq!(n, 0, "batch {n} derived {other:?}, not as an update"),
        }
        if let Some(previous) = &previous {
            engine.carry_over(previous);
        }
        assert!(!comparable(&engine, series).await.is_empty());
        previous = Some(engine);
    }
    assert!(conflicts > 0, "conflicting copies were sent");
    assert_eq!(updates, batches.len() - 1);

    // The same events, derived in full in a copy of the store.
    let copy = dir.path("copy");
    copy_folder(&store, &copy, &["derived"]);
    let options = EngineOptions {
        now: Some(now),
        ..EngineOptions::default()
    };
    let updated = previous.unwrap();
    let full = Engine::open(&copy, options).await.unwrap();
    assert_eq!(full.derivation(), chiso_engine::Derivation::Full);
    let queries = [
        "SELECT * FROM dossier_facts",
        "SELECT * FROM dossier_history",
        "SELECT * FROM dossiers",
        "SELECT * FROM kpi('2025', 'ward')",
        "SELECT * FROM kpi('2025-11', 'procedure')",
        series,
        "SELECT * FROM kpi_series('month', 'ward', '2025-01-01', '2025-12-31')",
        "SELECT * FROM kpi_index('2025-11', 'portal')",
    ];
    for sql in queries {
        let (expected, actual) = (
            comparable(&full, sql).await,
            comparable(&updated, sql).await,
        );
        assert!(!expected.is_empty(), "{sql} has rows");
        assert_eq!(expected, actual, "{sql} (seed {seed}, {chunks} chunks)");
    }
}

fn copy_folder(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_match_a_full_derivation_in_one_chunk() {
    for seed in [1, 2] {
        updates_match_a_full_derivation(seed, 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_match_a_full_derivation_of_a_chunked_base() {
    for seed in [4, 5] {
        updates_match_a_full_derivation(seed, 3).await;
    }
}

/// An update reads a touched dossier's events from its first event on, and
/// no earlier: each ingest below adds one event to a dossier whose other
/// events lie months before it, one known to the derived facts (A, of
/// January) and one an orphan until its `received` came (B, of February),
/// and the update must give what a full derivation of the same events does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_reads_each_touched_dossier_from_its_first_event() {
    const HEADER: &str = "event_id,dossier_id,event_type,occurred_at,ward_code,procedure_code,\
        department_code,channel,full_online,due_at,fee_required,e_result,paid_online,rating";
    let batches: [&[&str]; 3] = [
        &[
            "a1,A,received,2025-01-10T08:00:00+07:00,31120,2.000815,STP,direct,,2025-01-15T17:00:00+07:00,,,,",
            "a2,A,resolved,2025-01-12T10:00:00+07:00,,,,,,,,true,,",
            "b1,B,supplement_requested,2025-02-03T08:00:00+07:00,,,,,,,,,,",
            "b2,B,resolved,2025-02-05T10:00:00+07:00,,,,,,,,true,,",
            "c1,C,received,2025-03-02T08:00:00+07:00,31120,2.000815,STP,online,,2025-03-09T17:00:00+07:00,,,,",
        ],
        // B's reception, sent after its other events and dated after them.
        &[
            "b0,B,received,2025-02-10T08:00:00+07:00,31120,2.000815,STP,direct,,2025-02-20T17:00:00+07:00,,,,",
        ],
        // A's rating, three months after its other events.
        &["a3,A,rated,2025-04-01T08:00:00+07:00,,,,,,,,,,satisfied"],
    ];
    let dir = TempDir::new("engine-first-event");
    let store = dir.path("store");
    let mut ingester = Ingester::open(&store).await.unwrap();
    let options = EngineOptions {
        now: Some(instant("2025-06-01T00:00:00+07:00")),
        ..EngineOptions::default()
    };
    for (n, batch) in batches.iter().enumerate() {
        let csv = format!("{HEADER}\n{}\n", batch.join("\n"));
        let path = dir.write(&format!("batch-{n}.csv"), csv.as_bytes());
        let report = ingester
            .ingest_file(&path, &IngestOptions::default())
            .await
            .unwrap();
        assert_eq!(report.rejected, 0, "batch {n}");
        let updated = Engine::open(&store, options.clone()).await.unwrap();
        if n > 0 {
            assert!(matches!(
                updated.derivation(),
                chiso_engine::Derivation::Updated { .. }
            ));
        }
        let copy = dir.path(&format!("copy-{n}"));
        copy_folder(&store, &copy, &["derived"]);
        let full = Engine::open(&copy, options.clone()).await.unwrap();
        for sql in [
            "SELECT * FROM dossier_facts",
            "SELECT * FROM dossier_history",
            "SELECT * FROM kpi('2025', 'ward')",
        ] {
            assert_eq!(
                comparable(&full, sql).await,
                comparable(&updated, sql).await,
                "{sql} after batch {n}"
            );
        }
    }
}
