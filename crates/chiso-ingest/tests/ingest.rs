//! Ingestion against real stores on disk: idempotency, the dirty manifest,
//! every input format, malformed files, concurrency, and a reader nobody on
//! the team wrote.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chiso_test_support::TempDir;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chiso_gen::{City, Format, Params, dirty, write, xlsx};
use chiso_ingest::{IngestError, IngestOptions, IngestReport, Ingester, Layout, SourceFormat};
use chiso_store::{Store, Table};
use chrono::NaiveDate;

fn city() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| {
        chiso_gen::generate(&Params {
            scale: 0.003,
            ..Params::default()
        })
        .unwrap()
    })
}

fn city_file(dir: &TempDir, format: Format) -> PathBuf {
    let path = dir.path(&format!("city.{}", format.extension()));
    write::write_city(city(), format, &path).unwrap();
    path
}

async fn ingest(ingester: &mut Ingester, path: &Path) -> IngestReport {
    ingester
        .ingest_file(path, &IngestOptions::default())
        .await
        .unwrap()
}

async fn count(store: &Store, sql: &str) -> i64 {
    let batches = store.query(sql).await.unwrap();
    let column = chiso_store::column_as::<arrow::array::Int64Array>(
        &batches[0],
        "n",
        &arrow::datatypes::DataType::Int64,
    )
    .unwrap();
    column.value(0)
}

async fn reopen(dir: &TempDir) -> Store {
    Store::open(&dir.path("store")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingesting_a_file_changes_nothing() {
    let dir = TempDir::new("ingest-reingest");
    let file = city_file(&dir, Format::Csv);
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let first = ingest(&mut ingester, &file).await;
    let events = city().events.len() as u64;
    assert_eq!(
        (first.accepted, first.duplicate, first.rejected),
        (events, 0, 0)
    );
    assert_eq!(first.events_version, Some(1));

    let second = ingest(&mut ingester, &file).await;
    assert_eq!(
        (second.accepted, second.duplicate, second.conflict),
        (0, events, 0)
    );
    assert_eq!(second.events_version, None, "no commit for nothing new");

    // A fresh process sees the same: the index is rebuilt from the store.
    let mut fresh = Ingester::open(&dir.path("store")).await.unwrap();
    let third = ingest(&mut fresh, &file).await;
    assert_eq!(third.duplicate, events);
    let store = reopen(&dir).await;
    assert_eq!(store.version(Table::Events), 1);
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM events").await,
        events as i64
    );
    assert_eq!(count(&store, "SELECT count(*) AS n FROM ingests").await, 3);
    assert_eq!(
        count(&store, "SELECT count(*) AS n FROM quarantine").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_carries_the_same_events() {
    let dir = TempDir::new("ingest-formats");
    let csv = city_file(&dir, Format::Csv);
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let first = ingest(&mut ingester, &csv).await;
    assert_eq!(first.format, SourceFormat::Csv);

    let gz = dir.path("city.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&std::fs::read(&csv).unwrap()).unwrap();
    encoder.finish().unwrap();
    for (path, format) in [
        (city_file(&dir, Format::Ndjson), SourceFormat::Ndjson),
        (city_file(&dir, Format::Parquet), SourceFormat::Parquet),
        (gz, SourceFormat::Csv),
    ] {
        let report = ingest(&mut ingester, &path).await;
        assert_eq!(report.format, format, "{}", path.display());
        assert_eq!(
            report.duplicate, first.accepted,
            "{format:?}: the same events, spelled otherwise"
        );
        assert_eq!(
            report.accepted + report.conflict + report.rejected,
            0,
            "{format:?}"
        );
    }

    // The Parquet file alone fills an empty store the same way.
    let mut other = Ingester::open(&dir.path("other")).await.unwrap();
    let parquet = ingest(&mut other, &dir.path("city.parquet")).await;
    assert_eq!(parquet.accepted, first.accepted);
}

/// The scan reads `event_type` as a dictionary and the partition as string
/// views (for speed, chiso-store's snapshot table); what a query sees of
/// them must not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_read_with_their_dictionary_and_partition_types_agree_with_the_log() {
    use arrow::datatypes::DataType;
    let dir = TempDir::new("ingest-types");
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    ingest(&mut ingester, &city_file(&dir, Format::Csv)).await;
    let store = reopen(&dir).await;

    let batches = store
        .query("SELECT event_type, occurred_month FROM events LIMIT 1")
        .await
        .unwrap();
    let schema = batches[0].schema();
    assert_eq!(
        schema.field(0).data_type(),
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    );
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8View);

    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    for event in &city().events {
        let utc = chrono::DateTime::from_timestamp(event.at, 0).unwrap();
        let key = (
            chiso_store::local_month(utc),
            chiso_core::event::ContractEnum::as_str(event.kind).to_owned(),
        );
        *expected.entry(key).or_default() += 1;
    }
    let batches = store
        .query(
            "SELECT occurred_month, CAST(event_type AS VARCHAR) AS event_type, count(*) AS n \
             FROM events WHERE event_type IN ('received', 'resolved') OR occurred_month = '2025-07' \
             GROUP BY 1, 2",
        )
        .await
        .unwrap();
    let mut counted: BTreeMap<(String, String), i64> = BTreeMap::new();
    for batch in &batches {
        let text = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8).unwrap();
        let (months, types) = (text(0), text(1));
        let (months, types) = (
            arrow::array::AsArray::as_string::<i32>(&months),
            arrow::array::AsArray::as_string::<i32>(&types),
        );
        let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batch.column(2));
        for row in 0..batch.num_rows() {
            counted.insert(
                (months.value(row).to_owned(), types.value(row).to_owned()),
                n.value(row),
            );
        }
    }
    expected
        .retain(|(month, kind), _| kind == "received" || kind == "resolved" || month == "2025-07");
    assert!(expected.len() > 10, "{expected:?}");
    assert_eq!(counted, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_list_imported_twice_is_stored_once() {
    let dir = TempDir::new("ingest-list");
    let list = dir.path("list.xlsx");
    let again = dir.path("list-reexport.xlsx");
    let month = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
    let dossiers = xlsx::write_dossier_list(city(), "31135", month, false, &list).unwrap();
    xlsx::write_dossier_list(city(), "31135", month, true, &again).unwrap();
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let first = ingest(&mut ingester, &list).await;
    assert_eq!(first.layout, Layout::DossierList);
    assert_eq!(first.rows_read, dossiers as u64);
    assert!(
        first.events_read > first.rows_read,
        "each row yields several events"
    );
    assert_eq!(
        (first.rejected, first.conflict),
        (0, 0),
        "{:?}",
        first.examples
    );
    assert_eq!(first.accepted, first.events_read);
    let second = ingest(&mut ingester, &again).await;
    assert_eq!((second.accepted, second.duplicate), (0, first.accepted));

    let store = reopen(&dir).await;
    let received = count(
        &store,
        "SELECT count(*) AS n FROM events WHERE event_type = 'received'",
    )
    .await;
    assert_eq!(
        received, dossiers as i64,
        "one reception per listed dossier"
    );
    let ids = count(
        &store,
        "SELECT count(*) AS n FROM events WHERE event_id LIKE '%#received'",
    )
    .await;
    assert_eq!(
        ids, dossiers as i64,
        "deterministic ids <dossier_id>#<event_type>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_list_in_csv_with_english_or_vietnamese_headers() {
    let dir = TempDir::new("ingest-list-csv");
    let english = dir.write(
        "list-en.csv",
        "dossier_id,ward_code,procedure_code,channel,received_at,due_at,resolved_at,e_result,rating\n\
         D-1,31120,1.001193,Online,14/07/2025 08:03,15/07/2025 17:00,15/07/2025 10:00,Có,Rất hài lòng\n\
         D-2,31120,1.001193,direct,2025-07-14 09:00,,,,\n"
            .as_bytes(),
    );
    let vietnamese = dir.write(
        "list-vi.csv",
        "\u{feff}STT;Mã hồ sơ;Mã đơn vị;Mã thủ tục;Kênh nộp (Trực tiếp / Trực tuyến / Bưu chính);Ngày tiếp nhận;Ngày trả kết quả\r\n\
         1;D-3;31135;2.000815;Trực tiếp;14/07/2025 08:03:00;14/07/2025 16:00\r\n"
            .as_bytes(),
    );
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let en = ingest(&mut ingester, &english).await;
    // D-1: received, resolved, rated (at the result date); D-2: received.
    assert_eq!(en.layout, Layout::DossierList);
    assert_eq!(
        (en.rows_read, en.accepted, en.rejected),
        (2, 4, 0),
        "{:?}",
        en.examples
    );
    let vi = ingest(&mut ingester, &vietnamese).await;
    assert_eq!(
        (vi.rows_read, vi.accepted, vi.rejected),
        (1, 2, 0),
        "{:?}",
        vi.examples
    );

    let missing = dir.write(
        "list-bad.csv",
        "Mã hồ sơ;Mã đơn vị;Ngày tiếp nhận\nD-4;31135;14/07/2025\n".as_bytes(),
    );
    let error = ingester
        .ingest_file(&missing, &IngestOptions::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("Mã thủ tục") && text.contains("Kênh nộp"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dirty_manifest_is_caught_exactly() {
    let dir = TempDir::new("ingest-dirty");
    let plan = dirty::plan(city(), Format::Csv);
    let main = dir.path("dirty.csv");
    let late = dir.path("dirty-late.csv");
    write::write_rows(city(), plan.rows(city()), Format::Csv, &main).unwrap();
    write::write_rows(city(), plan.companion_rows(city()), Format::Csv, &late).unwrap();
    let manifest = &plan.manifest;

    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let report = ingest(&mut ingester, &main).await;
    let expected = |kind: dirty::Expected| {
        manifest
            .faults
            .iter()
            .filter(|f| f.expected == kind)
            .count() as u64
    };
    assert_eq!(report.rows_read, manifest.rows);
    assert_eq!(
        report.accepted, manifest.clean_rows,
        "every clean row is accepted"
    );
    assert_eq!(report.duplicate, expected(dirty::Expected::Duplicate));
    assert_eq!(
        report.rejected + report.conflict,
        expected(dirty::Expected::Rejected)
    );
    assert!(report.orphans > 0, "withheld receptions leave orphans");

    // Each injected fault sits in the quarantine at its line, with its reason.
    let store = reopen(&dir).await;
    let batches = store
        .query("SELECT line, reason FROM quarantine")
        .await
        .unwrap();
    let mut quarantined = BTreeMap::new();
    for batch in &batches {
        let lines = chiso_store::column_as::<arrow::array::Int64Array>(
            batch,
            "line",
            &arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        let reasons = chiso_store::column_as::<arrow::array::StringArray>(
            batch,
            "reason",
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        for i in 0..batch.num_rows() {
            quarantined.insert(lines.value(i) as u64, reasons.value(i).to_owned());
        }
    }
    let wanted: BTreeMap<u64, String> = manifest
        .faults
        .iter()
        .filter(|f| f.expected == dirty::Expected::Rejected)
        .map(|f| (f.line.unwrap(), f.reason.unwrap().to_owned()))
        .collect();
    assert_eq!(quarantined, wanted);

    // The companion file completes the orphaned dossiers.
    let completion = ingest(&mut ingester, &late).await;
    assert_eq!(completion.accepted, manifest.companion_rows);
    let store = reopen(&dir).await;
    let stored = count(&store, "SELECT count(*) AS n FROM events").await;
    assert_eq!(
        stored as usize,
        city().events.len(),
        "the clean city, exactly once"
    );
    let orphans = count(
        &store,
        "SELECT count(*) AS n FROM events e WHERE NOT EXISTS \
         (SELECT 1 FROM events r WHERE r.dossier_id = e.dossier_id AND r.event_type = 'received')",
    )
    .await;
    assert_eq!(orphans, 0);
}

async fn refused(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.write(name, bytes);
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let before = ingester.store().version(Table::Events);
    let error = ingester
        .ingest_file(&path, &IngestOptions::default())
        .await
        .unwrap_err();
    let store = reopen(dir).await;
    assert_eq!(
        store.version(Table::Events),
        before,
        "{name}: the store changed"
    );
    let text = error.to_string();
    assert!(
        text.contains(name),
        "{name}: the error does not name the file: {text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_files_are_refused_with_the_reason() {
    let dir = TempDir::new("ingest-refused");
    let csv = std::fs::read(city_file(&dir, Format::Csv)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&csv).unwrap();
    let gz = gz.finish().unwrap();
    let truncated = refused(&dir, "truncated.csv.gz", &gz[..gz.len() / 2]).await;
    assert!(
        truncated.contains("ends abruptly") && truncated.contains("nothing from this file"),
        "{truncated}"
    );

    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(
        refused(&dir, "garbage.bin", &garbage)
            .await
            .contains("not a text table")
    );
    // "Mã hồ sơ" in Windows-1258: 'ã' is 0xE3, 'ồ' is 'ô' (0xF4) + combining grave (0xCC).
    let legacy = b"M\xe3 h\xf4\xcc s\xa1,Ng\xe0y\n1,2\n";
    assert!(
        refused(&dir, "legacy.csv", legacy)
            .await
            .contains("not UTF-8")
    );
    assert!(refused(&dir, "empty.csv", b"").await.contains("empty"));
    assert!(
        refused(&dir, "array.json", b"[{\"event_id\": \"x\"}]")
            .await
            .contains("NDJSON")
    );
    let headers = refused(&dir, "headers.csv", b"a,b,c\n1,2,3\n").await;
    assert!(headers.contains("neither an event log"), "{headers}");
    let partial = refused(
        &dir,
        "partial.csv",
        b"event_id,dossier_id,occurred_at\nx,y,2025-07-14T08:00:00Z\n",
    )
    .await;
    assert!(partial.contains("event_type"), "{partial}");
    let sheet = dir.path("sheet.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    book.add_worksheet()
        .write_string(0, 0, "Danh sách")
        .unwrap();
    book.save(&sheet).unwrap();
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let error = ingester
        .ingest_file(&sheet, &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, IngestError::Unreadable { .. }) && error.to_string().contains("Mã hồ sơ"),
        "{error}"
    );
    let missing = ingester
        .ingest_file(&dir.path("nope.csv"), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("cannot open"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_rows_are_quarantined_or_read_never_a_panic() {
    let dir = TempDir::new("ingest-awkward");
    let header = "event_id,dossier_id,event_type,occurred_at,ward_code,procedure_code,department_code,channel,full_online,due_at,fee_required,e_result,paid_online,rating";
    let mut text = format!("\u{feff}{header}\r\n");
    text.push_str("a1,D1,received,2025-07-14 08:03:00,31120,1.001193,,online,,,,,,\r\n"); // no offset: local
    text.push_str("a2,D1,resolved,2025-07-14T01:30:00Z,,,,,,,,yes,,\r\n");
    text.push_str("a3,D1,rated,2099-01-01T00:00:00+07:00,,,,,,,,,,satisfied\r\n"); // future
    text.push_str("a4,D1,paid\r\n"); // too few fields
    text.push_str(&format!(
        "a5,D1,digitized,2025-07-14T09:00:00+07:00,{},,,,,,,,,\r\n",
        "x".repeat(100 << 20)
    )); // 100 MB line
    text.push_str("a6,D2,digitized,2025-07-15T09:00:00+07:00,,,,,,,,,,\r\n"); // orphan
    let path = dir.write("awkward.csv", text.as_bytes());
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let report = ingest(&mut ingester, &path).await;
    assert_eq!(report.rows_read, 6);
    assert_eq!(report.accepted, 4, "{:?}", report.examples); // a1, a2, a5 (the long unused field is ignored), a6
    assert_eq!(report.rejected, 2);
    assert_eq!(report.orphans, 1);
    let reasons: HashSet<_> = report.quarantined_by_reason.keys().cloned().collect();
    assert_eq!(
        reasons,
        HashSet::from(["future_timestamp".to_owned(), "malformed_row".to_owned()])
    );
    let store = reopen(&dir).await;
    let local = count(
        &store,
        "SELECT count(*) AS n FROM events WHERE event_id = 'a1' AND occurred_at = TIMESTAMP '2025-07-14T01:03:00Z'",
    )
    .await;
    assert_eq!(local, 1, "a timestamp without offset is local time");

    let semicolons = dir.write(
        "semicolons.csv",
        format!(
            "{}\na7;D1;digitized;2025-07-14T10:00:00+07:00;;;;;;;;;;\n",
            header.replace(',', ";")
        )
        .as_bytes(),
    );
    assert_eq!(
        ingest(&mut ingester, &semicolons).await.accepted,
        1,
        "the delimiter is recognised"
    );
    let bad_json = dir.write("bad.ndjson", b"{\"event_id\":\"b1\"\n{\"event_id\":\"b2\",\"dossier_id\":\"D1\",\"event_type\":\"returned\",\"occurred_at\":\"2025-07-15T10:00:00+07:00\"}\n");
    let json = ingest(&mut ingester, &bad_json).await;
    assert_eq!((json.rows_read, json.accepted, json.rejected), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_both_land_completely() {
    let dir = TempDir::new("ingest-concurrent");
    let csv = city_file(&dir, Format::Csv);
    let list = dir.path("list.xlsx");
    xlsx::write_dossier_list(
        city(),
        "31120",
        NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        false,
        &list,
    )
    .unwrap();
    Store::open_or_create(&dir.path("store")).await.unwrap();
    let root = dir.path("store");
    let (a, b) = tokio::join!(
        async {
            let mut ingester = Ingester::open(&root).await.unwrap();
            ingest(&mut ingester, &csv).await
        },
        async {
            let mut ingester = Ingester::open(&root).await.unwrap();
            ingest(&mut ingester, &list).await
        }
    );
    let store = reopen(&dir).await;
    let stored = count(&store, "SELECT count(*) AS n FROM events").await;
    assert_eq!(stored as u64, a.accepted + b.accepted);
    assert_eq!(a.accepted as usize, city().events.len());
    assert!(b.accepted > 0);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM ingests").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_take_the_same_path_as_files() {
    let dir = TempDir::new("ingest-bytes");
    let csv = std::fs::read(city_file(&dir, Format::Csv)).unwrap();
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let options = IngestOptions::default();
    let body = ingester
        .ingest_bytes(Path::new("request body"), csv.into(), &options)
        .await
        .unwrap();
    assert_eq!(body.accepted as usize, city().events.len());
    let parquet = std::fs::read(city_file(&dir, Format::Parquet)).unwrap();
    let again = ingester
        .ingest_bytes(Path::new("request body"), parquet.into(), &options)
        .await
        .unwrap();
    assert_eq!(again.duplicate as usize, city().events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_readable_without_chiso() {
    let dir = TempDir::new("ingest-external");
    let csv = city_file(&dir, Format::Csv);
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let report = ingest(&mut ingester, &csv).await;
    let Some(python) = chiso_test_support::python_with(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "py-deltalake",
        &["deltalake", "pyarrow"],
    ) else {
        return;
    };
    let script = r#"
import os, sys, deltalake, pyarrow.compute as pc
root = sys.argv[1]
events = deltalake.DeltaTable(root + "/events")
table = events.to_pyarrow_table()
received = table.filter(pc.equal(table["event_type"], "received"))
months = sorted(set(p["occurred_month"] for p in events.partitions()))
ingests = deltalake.DeltaTable(root + "/ingests").to_pyarrow_table()
print(table.num_rows, received.num_rows, str(table.schema.field("occurred_at").type).replace(" ", ""), months[0], months[-1], ingests.num_rows, flush=True)
# deltalake 1.6 with pyarrow 26 aborts now and then while the interpreter
# shuts down ("terminate called without an active exception"), whoever
# wrote the table, after everything was read: leave before the teardown.
os._exit(0)
"#;
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir.path("store"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    let received = city()
        .events
        .iter()
        .filter(|e| e.kind == chiso_core::event::EventType::Received)
        .count();
    assert_eq!(fields[0], report.accepted.to_string());
    assert_eq!(fields[1], received.to_string());
    assert_eq!(fields[2], "timestamp[us,tz=UTC]", "{stdout}");
    assert_eq!(
        (fields[3], fields[4], fields[5]),
        ("2025-01", "2025-12", "1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_readers_working_and_vacuum_cleans_up() {
    let dir = TempDir::new("ingest-compact");
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    for seed in 1..=3 {
        let other = chiso_gen::generate(&Params {
            seed,
            scale: 0.001,
            ..Params::default()
        })
        .unwrap();
        let path = dir.path(&format!("city-{seed}.csv"));
        write::write_city(&other, Format::Csv, &path).unwrap();
        ingest(&mut ingester, &path).await;
    }
    let before = reopen(&dir).await;
    let total = count(&before, "SELECT count(*) AS n FROM events").await;
    let files_before = before.info(1).await.unwrap().tables[0].files;

    let mut store = reopen(&dir).await;
    let reports = store.compact().await.unwrap();
    let events = reports.iter().find(|r| r.table == "events").unwrap();
    assert!(events.files_removed > events.files_added, "{reports:?}");
    // A reader that opened the old version still reads it, and so does a new one.
    assert_eq!(
        count(&before, "SELECT count(*) AS n FROM events").await,
        total
    );
    let after = reopen(&dir).await;
    assert_eq!(
        count(&after, "SELECT count(*) AS n FROM events").await,
        total
    );
    assert!(after.info(1).await.unwrap().tables[0].files < files_before);
    // The folder now holds both the old files and the compacted ones; a
    // filter on the partition column chooses among the committed ones only.
    let month = "SELECT count(*) AS n FROM events WHERE occurred_month = '2025-07'";
    let by_instant = "SELECT count(*) AS n FROM events \
        WHERE occurred_at >= TIMESTAMP '2025-07-01T00:00:00+07:00' \
        AND occurred_at < TIMESTAMP '2025-08-01T00:00:00+07:00'";
    let in_july = count(&before, by_instant).await;
    assert!(in_july > 0 && in_july < total);
    for store in [&before, &after] {
        assert_eq!(count(store, month).await, in_july);
        assert_eq!(count(store, by_instant).await, in_july);
    }
    // Columns in the order of the table's schema, whatever the scan reads first.
    let columns: Vec<String> = after.query("SELECT * FROM events LIMIT 1").await.unwrap()[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expected: Vec<String> = chiso_store::events_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(columns, expected);

    let dry = store.vacuum(std::time::Duration::ZERO, true).await.unwrap();
    assert!(!dry.files_deleted.is_empty());
    let done = store
        .vacuum(std::time::Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(done.files_deleted.len(), dry.files_deleted.len());
    assert_eq!(
        count(&reopen(&dir).await, "SELECT count(*) AS n FROM events").await,
        total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_with_other_files_is_not_made_a_store() {
    let dir = TempDir::new("ingest-not-empty");
    dir.write("notes.txt", b"mine");
    let error = Ingester::open(dir.root()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not empty and is not a chiso store"),
        "{error}"
    );
    assert!(!dir.path("events").exists());
}

/// The Parquet writer holds a row group in memory until it closes, one per
/// month a file touches: the store's row groups are small enough that an
/// ingest does not hold everything it wrote until the commit. Columns with a
/// value per row are written plainly, the few-valued ones with a dictionary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_month_is_written_in_several_row_groups() {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    const EVENTS: usize = 140_000;
    let dir = TempDir::new("ingest-row-groups");
    let mut csv = String::from(
        "event_id,dossier_id,event_type,occurred_at,ward_code,procedure_code,department_code,channel,full_online,due_at,fee_required,e_result,paid_online,rating\n",
    );
    for i in 0..EVENTS {
        csv.push_str(&format!(
            "e{i},D{i},received,2025-07-07T08:00:00+07:00,31120,2.000815,STP,online,,2025-07-09T17:00:00+07:00,,,,\n"
        ));
    }
    let path = dir.write("one-month.csv", csv.as_bytes());
    let store = dir.path("store");
    let mut ingester = Ingester::open(&store).await.unwrap();
    let report = ingest(&mut ingester, &path).await;
    assert_eq!(report.accepted, EVENTS as u64, "{report}");

    let month = store.join("events").join("occurred_month=2025-07");
    let mut groups = Vec::new();
    for entry in std::fs::read_dir(&month).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "parquet") {
            let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
            for group in reader.metadata().row_groups() {
                groups.push(group.num_rows());
                let dictionary = |column: &str| {
                    let chunk = group
                        .columns()
                        .iter()
                        .find(|c| c.column_path().string() == column)
                        .unwrap_or_else(|| panic!("no column {column}"));
                    chunk.dictionary_page_offset().is_some()
                };
                assert!(!dictionary("event_id"), "{}", file.display());
                assert!(!dictionary("content_hash"), "{}", file.display());
                assert!(dictionary("event_type"), "{}", file.display());
            }
        }
    }
    assert_eq!(groups.iter().sum::<i64>(), EVENTS as i64);
    assert!(groups.len() >= 2, "row groups: {groups:?}");
    assert!(
        groups.iter().all(|&rows| rows <= 128 * 1024),
        "row groups: {groups:?}"
    );
}

/// Events are stored grouped by type within each row group, so that the
/// page index lets a filter on `event_type` skip the other types' pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_are_grouped_by_type() {
    use arrow::array::AsArray;
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = TempDir::new("ingest-clustered");
    let path = city_file(&dir, Format::Csv);
    let store = dir.path("store");
    let mut ingester = Ingester::open(&store).await.unwrap();
    let report = ingest(&mut ingester, &path).await;
    assert!(report.accepted > 1000, "{report}");

    let mut files = Vec::new();
    for month in std::fs::read_dir(store.join("events")).unwrap() {
        let month = month.unwrap().path();
        if month.is_dir() && !month.ends_with("_delta_log") {
            for file in std::fs::read_dir(&month).unwrap() {
                files.push(file.unwrap().path());
            }
        }
    }
    assert!(!files.is_empty());
    let mut rows = 0;
    for file in files {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        let groups = builder.metadata().num_row_groups();
        for group in 0..groups {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
                    .unwrap();
            let mask = ProjectionMask::columns(builder.parquet_schema(), ["event_type"]);
            let reader = builder
                .with_row_groups(vec![group])
                .with_projection(mask)
                .build()
                .unwrap();
            let mut types: Vec<String> = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let column =
                    arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
                        .unwrap();
                types.extend(
                    column
                        .as_string::<i32>()
                        .iter()
                        .map(|t| t.unwrap().to_owned()),
                );
            }
            rows += types.len();
            let mut runs: Vec<&str> = types.iter().map(String::as_str).collect();
            runs.dedup();
            let distinct: HashSet<&str> = runs.iter().copied().collect();
            // The city is smaller than one written chunk: one run per type.
            assert_eq!(runs.len(), distinct.len(), "{}: {runs:?}", file.display());
            assert!(runs.is_sorted(), "{}: {runs:?}", file.display());
        }
    }
    assert_eq!(rows as u64, report.accepted);
}

/// One NDJSON event; `ward` only on `received`.
fn event_line(id: &str, dossier: &str, kind: &str, ward: Option<&str>) -> String {
    let received = match ward {
        Some(ward) => format!(
            ",\"ward_code\":\"{ward}\",\"procedure_code\":\"2.000815\",\"channel\":\"online\",\
             \"due_at\":\"2025-10-03T17:00:00+07:00\""
        ),
        None => String::new(),
    };
    format!(
        "{{\"event_id\":\"{id}\",\"dossier_id\":\"{dossier}\",\"event_type\":\"{kind}\",\
         \"occurred_at\":\"2025-10-01T09:00:00+07:00\"{received}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_uploader_adds_only_to_its_own_wards_dossiers() {
    const OWN: &str = "31135";
    const OTHER: &str = "31120";
    let dir = TempDir::new("ingest-ward-gate");
    let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
    let stored = [
        event_line("s1", "OWN-1", "received", Some(OWN)),
        event_line("s2", "OTHER-1", "received", Some(OTHER)),
    ]
    .concat();
    let options = IngestOptions {
        format: Some(SourceFormat::Ndjson),
        ..IngestOptions::default()
    };
    ingester
        .ingest_bytes(Path::new("admin.ndjson"), stored.into(), &options)
        .await
        .unwrap();

    let upload = [
        event_line("u1", "OWN-1", "digitized", None), // stored dossier of its ward
        event_line("u2", "OWN-2", "received", Some(OWN)), // a new dossier of its ward
        event_line("u3", "LATE-1", "digitized", None), // its `received` comes later
        event_line("u4", "LATE-1", "received", Some(OWN)),
        event_line("x1", "OTHER-1", "digitized", None), // another ward's dossier
        event_line("x2", "OTHER-2", "received", Some(OTHER)), // another ward's code
        event_line("x3", "OTHER-1", "received", Some(OWN)), // claiming another's dossier
        event_line("x4", "NOWHERE-1", "digitized", None), // never received anywhere
        event_line("x5", "OTHER-2", "digitized", None), // of a refused `received`
    ]
    .concat();
    let ward_options = IngestOptions {
        wards: Some(vec![OWN.to_owned()]),
        ..options.clone()
    };
    let report = ingester
        .ingest_bytes(Path::new("ward.ndjson"), upload.into(), &ward_options)
        .await
        .unwrap();
    assert_eq!((report.accepted, report.rejected), (4, 5), "{report:?}");
    assert_eq!(
        report.quarantined_by_reason,
        BTreeMap::from([("ward_not_permitted".to_owned(), 5)])
    );
    let store = ingester.store();
    let ids = |sql: &'static str| async move {
        let batches = store.query(sql).await.unwrap();
        let mut ids: Vec<String> = batches
            .iter()
            .flat_map(|batch| {
                let column =
                    arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
                        .unwrap();
                arrow::array::AsArray::as_string::<i32>(&column)
                    .iter()
                    .map(|id| id.unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids("SELECT event_id FROM events WHERE event_id NOT LIKE 's%'").await,
        ["u1", "u2", "u3", "u4"]
    );
    assert_eq!(
        ids("SELECT event_id FROM quarantine WHERE reason = 'ward_not_permitted'").await,
        ["x1", "x2", "x3", "x4", "x5"]
    );
    // Nothing of the refused rows is lost: an administrator sends them again.
    let again = ingester
        .ingest_bytes(
            Path::new("admin-again.ndjson"),
            event_line("x1", "OTHER-1", "digitized", None).into(),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(again.accepted, 1);
}

/// Every stored event's contract columns, in order, as text.
async fn stored_events(store: &Store) -> Vec<String> {
    let batches = store
        .query(
            "SELECT concat_ws('|', event_id, dossier_id, event_type, CAST(occurred_at AS VARCHAR), \
             ward_code, procedure_code, channel, CAST(full_online AS VARCHAR), \
             CAST(due_at AS VARCHAR), CAST(fee_required AS VARCHAR), CAST(e_result AS VARCHAR), \
             CAST(paid_online AS VARCHAR), rating) AS line FROM events ORDER BY event_id",
        )
        .await
        .unwrap();
    let mut lines = Vec::new();
    for batch in &batches {
        let column =
            arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let column = column
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        lines.extend(
            column
                .iter()
                .map(|line| line.unwrap_or_default().to_owned()),
        );
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decomposed_vietnamese_text_stores_as_composed_text() {
    use unicode_normalization::UnicodeNormalization;
    let list = "Mã hồ sơ;Mã đơn vị;Tên đơn vị;Mã thủ tục;Kênh nộp;Toàn trình;Ngày tiếp nhận;\
                Ngày hẹn trả;Có phí;Ngày có kết quả;Kết quả điện tử;Thanh toán trực tuyến;Đánh giá\n\
                HS-Hòa-1;31135;Phường Ninh Kiều;2.000815;Trực tuyến;Có;14/07/2025 08:03;\
                16/07/2025 17:00;Không;15/07/2025 10:00;Có;Không;Rất hài lòng\n\
                HS-2;31135;Phường Ninh Kiều;2.000815;Trực tiếp;Không;14/07/2025 09:00;\
                16/07/2025 17:00;Có;15/07/2025 11:00;Không;Có;Không hài lòng\n\
                HS-3;31120;Phường Cái Khế;1.001193;Bưu chính;không;14/07/2025 10:00;;\
                KHÔNG;;;;\n";
    let log = "{\"event_id\":\"e-1\",\"dossier_id\":\"HS-3\",\"event_type\":\"resolved\",\
               \"occurred_at\":\"2025-07-16T10:00:00+07:00\",\"e_result\":\"Không\"}\n";
    let composed: String = list.nfc().collect();
    assert_eq!(composed, list, "the source text of the test is composed");
    let decomposed: String = list.nfd().collect();
    assert_ne!(
        decomposed, list,
        "the test's decomposed list differs byte for byte"
    );

    let mut stored = Vec::new();
    for (name, list, log) in [
        ("nfc", list.to_owned(), log.to_owned()),
        ("nfd", decomposed, log.nfd().collect::<String>()),
    ] {
        let dir = TempDir::new(&format!("ingest-{name}"));
        let list_file = dir.write(&format!("list-{name}.csv"), list.as_bytes());
        let log_file = dir.write(&format!("log-{name}.ndjson"), log.as_bytes());
        let mut ingester = Ingester::open(&dir.path("store")).await.unwrap();
        for file in [&list_file, &log_file] {
            let report = ingest(&mut ingester, file).await;
            assert_eq!(
                (report.rejected, report.orphans),
                (0, 0),
                "{name}: {:?}",
                report.examples
            );
        }
        stored.push(stored_events(&reopen(&dir).await).await);
    }
    let (nfc, nfd) = (&stored[0], &stored[1]);
    // HS-Hòa-1 and HS-2: received, resolved, paid, rated; HS-3: received,
    // and resolved by the log.
    assert_eq!(nfc.len(), 10, "{nfc:#?}");
    assert_eq!(
        nfd, nfc,
        "the decomposed files store what the composed ones do"
    );
    assert!(
        nfc.iter()
            .any(|line| line.starts_with("HS-Hòa-1#received|HS-Hòa-1|received")),
        "ids are stored composed: {nfc:#?}"
    );
}
