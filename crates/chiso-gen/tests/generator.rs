#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The generator's contract with the rest of chiso: determinism, the shape of
//! the city (`sample-data.md`), and files that satisfy `docs/events.md`.

use chiso_test_support::TempDir;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow::array::{Array, RecordBatchReader};
use chiso_core::contract::{Contract, FieldSource, RejectReason, parse_event};
use chiso_core::event::{EventType, columns, event_schema};
use chiso_core::time::parse_timestamp;
use chiso_core::wards::WardRegistry;
use chiso_gen::dirty::{self, Expected};
use chiso_gen::summary::rate;
use chiso_gen::{City, Format, Params, write, xlsx};
use chrono::{Datelike, NaiveDate, Weekday};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn params(scale: f64) -> Params {
    Params {
        scale,
        ..Params::default()
    }
}

/// The scale-0.1 city, built once for all calibration tests.
fn city_tenth() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| chiso_gen::generate(&params(0.1)).unwrap())
}

fn small_city() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| chiso_gen::generate(&params(0.01)).unwrap())
}

fn assert_within(label: &str, value: Option<f64>, lo: f64, hi: f64) {
    let value = value.unwrap_or_else(|| panic!("{label}: no value"));
    assert!(
        (lo..=hi).contains(&value),
        "{label} = {value}, expected {lo} … {hi}"
    );
}

// ---------------------------------------------------------------- determinism

#[test]
fn the_same_seed_gives_identical_files_and_another_seed_does_not() {
    let dir = TempDir::new("gen-determinism");
    let again = chiso_gen::generate(&params(0.01)).unwrap();
    let other = chiso_gen::generate(&Params {
        seed: 1,
        ..params(0.01)
    })
    .unwrap();
    for format in Format::ALL {
        let a = dir.path(&format!("a.{}", format.extension()));
        let b = dir.path(&format!("b.{}", format.extension()));
        let c = dir.path(&format!("c.{}", format.extension()));
        write::write_city(small_city(), format, &a).unwrap();
        write::write_city(&again, format, &b).unwrap();
        write::write_city(&other, format, &c).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert!(a == b, "{format:?}: same seed, different bytes");
        assert!(a != c, "{format:?}: another seed, same bytes");
    }
    let a = dir.path("a.xlsx");
    let b = dir.path("b.xlsx");
    xlsx::write_dossier_list(small_city(), "31135", date(2025, 7, 1), false, &a).unwrap();
    xlsx::write_dossier_list(&again, "31135", date(2025, 7, 1), false, &b).unwrap();
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "xlsx differs"
    );
}

// ---------------------------------------------------------------- calibration

#[test]
fn volume_and_events_per_dossier() {
    let t = &city_tenth().stats.total;
    assert!(
        (142_500..=157_500).contains(&t.received),
        "dossiers: {}",
        t.received
    );
    let per_dossier = city_tenth().stats.events as f64 / t.received as f64;
    assert!(
        (6.5..=10.0).contains(&per_dossier),
        "events per dossier: {per_dossier}"
    );
}

#[test]
fn city_rates_match_the_published_figures() {
    let t = &city_tenth().stats.total;
    // 98.25 % resolved on time at the City Centre, 2024.
    assert_within("on-time rate", t.on_time_rate(), 97.0, 99.5);
    // 62 % online in 2024, 69.7 % in July 2025.
    assert_within("online share", t.online_rate(), 58.0, 70.0);
    assert_within(
        "full-process online",
        rate(t.full_online, t.received),
        12.0,
        20.0,
    );
    assert_within("digitization", rate(t.digitized, t.received), 75.0, 90.0);
    assert_within(
        "electronic results",
        rate(t.e_result, t.resolved),
        85.0,
        95.0,
    );
    assert_within(
        "online payment",
        rate(t.paid_online, t.fee_required),
        55.0,
        80.0,
    );
    assert_within("satisfaction", rate(t.satisfied, t.rated), 97.0, 100.0);
    assert!(t.dissatisfied > 0, "a few dissatisfied ratings");
    assert_within("supplements", rate(t.supplemented, t.received), 5.0, 15.0);
    assert!(
        t.supplemented_twice > 0,
        "a few dossiers with two supplement rounds"
    );
    assert_within("stopped", rate(t.stopped, t.received), 1.0, 2.0);
    assert_within("withdrawn", rate(t.withdrawn, t.received), 1.0, 2.0);
    assert_within(
        "late with apology",
        rate(t.late_apologized, t.resolved_late),
        60.0,
        95.0,
    );
    assert!(
        t.in_progress > 0 && t.in_progress_overdue > 0,
        "a backlog at the end"
    );
}

#[test]
fn weekdays_peak_on_monday_and_sundays_are_quiet() {
    let stats = &city_tenth().stats;
    let calendar = chiso_core::calendar::WorkCalendar::builtin();
    let mut sums: HashMap<Weekday, (u64, u64)> = HashMap::new();
    for (i, &count) in stats.received_by_day.iter().enumerate() {
        let day = stats.day(i);
        if calendar.special_day(day).is_some() {
            continue;
        }
        let entry = sums.entry(day.weekday()).or_default();
        entry.0 += count;
        entry.1 += 1;
    }
    let mean = |d: Weekday| sums[&d].0 as f64 / sums[&d].1 as f64;
    for other in [Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri] {
        assert!(
            mean(Weekday::Mon) > mean(other),
            "Monday is not above {other}"
        );
    }
    assert!(
        mean(Weekday::Sun) < 0.03 * mean(Weekday::Mon),
        "Sundays are busy"
    );
    assert!(
        mean(Weekday::Sat) < 0.15 * mean(Weekday::Mon),
        "Saturdays are busy"
    );
}

#[test]
fn tet_empties_the_desks() {
    let stats = &city_tenth().stats;
    let week = |monday: NaiveDate| -> u64 {
        (0..7)
            .map(|d| {
                let i = (monday - stats.day(0)).num_days() + d;
                stats.received_by_day[i as usize]
            })
            .sum()
    };
    let tet_week = week(date(2025, 1, 27));
    let march: f64 = [3, 10, 17, 24]
        .iter()
        .map(|d| week(date(2025, 3, *d)) as f64)
        .sum::<f64>()
        / 4.0;
    assert!(
        (tet_week as f64) < 0.1 * march,
        "Tết week {tet_week} vs March {march}"
    );
    let after = week(date(2025, 2, 3));
    assert!(
        (after as f64) < 0.9 * march && after > tet_week,
        "the week after Tết recovers slowly"
    );
}

#[test]
fn the_merger_of_july_2025_is_a_step() {
    let stats = &city_tenth().stats;
    let june = stats.month(2025, 6).unwrap();
    let july = stats.month(2025, 7).unwrap();
    let online_june = june.online_rate().unwrap();
    let online_july = july.online_rate().unwrap();
    assert!(
        online_july >= online_june + 6.0,
        "online {online_june} → {online_july}"
    );
    // Whole city, July 2025: 77.98 % on time, 1.58 % late, 21.73 % within time.
    let share = |n| rate(n, july.progress_universe);
    assert_within(
        "July on time",
        share(july.progress_finished_good),
        73.0,
        83.0,
    );
    assert_within("July late", share(july.progress_finished_late), 0.5, 3.5);
    assert_within(
        "July within time",
        share(july.progress_pending_good),
        15.0,
        27.0,
    );
    assert!(july.received > june.received, "communes take on more work");
    assert!(
        share(july.progress_pending_good).unwrap()
            > 1.5 * rate(june.progress_pending_good, june.progress_universe).unwrap(),
        "a backlog in the first weeks"
    );
}

#[test]
fn every_ward_appears_and_wards_differ() {
    let city = city_tenth();
    let wards = &city.stats.wards;
    assert_eq!(wards.len(), 103);
    assert!(
        wards.iter().all(|w| w.received > 0),
        "a ward without dossiers"
    );
    let mut on_time: Vec<f64> = wards.iter().filter_map(|w| w.on_time_rate()).collect();
    on_time.sort_by(f64::total_cmp);
    assert!(
        on_time[on_time.len() / 2] >= 97.0,
        "median ward on time: {}",
        on_time[on_time.len() / 2]
    );
    assert!(
        on_time.iter().filter(|r| **r < 96.0).count() >= 2,
        "no struggling wards: {on_time:?}"
    );
    // Tân Lộc is one of the understaffed wards the spec names.
    let tan_loc = city.wards.position("31213").unwrap();
    assert!(wards[tan_loc].on_time_rate().unwrap() < 96.0);
    let mut online: Vec<f64> = wards.iter().filter_map(|w| w.online_rate()).collect();
    online.sort_by(f64::total_cmp);
    assert!(
        online[0] >= 25.0
            && *online.last().unwrap() <= 99.5
            && online.last().unwrap() - online[0] > 30.0
    );
    // 140–350 dossiers a week for a typical commune, at scale 1.
    let weeks = 52.0;
    let mut weekly: Vec<f64> = wards
        .iter()
        .map(|w| w.received as f64 * 10.0 / weeks)
        .collect();
    weekly.sort_by(f64::total_cmp);
    let median = weekly[weekly.len() / 2];
    assert!(
        (140.0..=350.0).contains(&median),
        "median ward: {median} a week"
    );
    assert!(
        *weekly.last().unwrap() > 3.0 * weekly[0],
        "urban wards are several times busier"
    );
}

// ---------------------------------------------------------------- the contract

struct CsvRow<'a> {
    headers: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
}

impl FieldSource for CsvRow<'_> {
    fn field(&self, column: &str) -> Option<&str> {
        let i = self.headers.iter().position(|h| h == column)?;
        self.record.get(i).filter(|v| !v.is_empty())
    }
}

/// An NDJSON object as text fields (booleans as `true`/`false`).
struct JsonRow(Vec<(String, String)>);

impl JsonRow {
    fn new(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(
            map.into_iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k, text)
                })
                .collect(),
        )
    }
}

impl FieldSource for JsonRow {
    fn field(&self, column: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == column)
            .map(|(_, v)| v.as_str())
    }
}

fn contract(wards: &WardRegistry) -> Contract<'_> {
    Contract {
        wards,
        now: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
    }
}

/// Parses a CSV or NDJSON event log with the contract, row by row.
fn parse_text_file(
    path: &Path,
    format: Format,
) -> Vec<Result<chiso_core::event::Event, RejectReason>> {
    let wards = WardRegistry::builtin();
    let contract = contract(wards);
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::from_path(path).unwrap();
            let headers = reader.headers().unwrap().clone();
            assert_eq!(headers.iter().collect::<Vec<_>>(), columns::ALL);
            reader
                .records()
                .map(|r| {
                    let record = r.unwrap();
                    parse_event(
                        &CsvRow {
                            headers: &headers,
                            record: &record,
                        },
                        &contract,
                    )
                    .map_err(|e| e.reason)
                })
                .collect()
        }
        Format::Ndjson => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(line).unwrap();
                parse_event(&JsonRow::new(map), &contract).map_err(|e| e.reason)
            })
            .collect(),
        Format::Parquet => unreachable!("not a text format"),
    }
}

#[test]
fn every_written_event_satisfies_the_contract() {
    let city = small_city();
    let dir = TempDir::new("gen-contract");
    for format in [Format::Csv, Format::Ndjson] {
        let path = dir.path(&format!("events.{}", format.extension()));
        write::write_city(city, format, &path).unwrap();
        let events: Vec<_> = parse_text_file(&path, format)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|reason| panic!("{format:?}: a generated row was rejected: {reason}"));
        assert_eq!(events.len(), city.events.len());
        let ids: HashSet<_> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");

        let mut received: HashMap<&str, &chiso_core::event::Event> = HashMap::new();
        for e in events
            .iter()
            .filter(|e| e.event_type == EventType::Received)
        {
            assert!(
                received.insert(&e.dossier_id, e).is_none(),
                "two received events"
            );
            if let Some(due) = e.due_at {
                assert!(due > e.occurred_at, "due before reception");
            }
        }
        assert!(
            events
                .windows(2)
                .all(|w| w[0].occurred_at <= w[1].occurred_at),
            "log order"
        );
        for e in &events {
            let opened = received
                .get(e.dossier_id.as_str())
                .expect("every dossier is received");
            assert!(
                e.occurred_at >= opened.occurred_at,
                "{} precedes its reception",
                e.event_id
            );
            assert!(e.occurred_at < parse_timestamp("2026-01-01T00:00:00+07:00").unwrap());
        }
    }
}

#[test]
fn parquet_has_the_contract_schema_and_every_row() {
    let city = small_city();
    let dir = TempDir::new("gen-parquet");
    let path = dir.path("events.parquet");
    write::write_city(city, Format::Parquet, &path).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(reader.schema(), event_schema());
    let mut rows = 0;
    let mut received_with_due = 0;
    for batch in reader {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        received_with_due += batch.column(9).len() - batch.column(9).null_count();
    }
    assert_eq!(rows, city.events.len());
    let expected = city
        .events
        .iter()
        .filter(|e| e.kind == EventType::Received)
        .count();
    assert!(received_with_due > expected * 9 / 10 && received_with_due <= expected);
}

// ---------------------------------------------------------------- dirty mode

#[test]
fn the_dirty_manifest_lists_exactly_the_faults() {
    let city = small_city();
    let dir = TempDir::new("gen-dirty");
    for format in [Format::Csv, Format::Ndjson] {
        let plan = dirty::plan(city, format);
        let path = dir.path(&format!("dirty.{}", format.extension()));
        let companion = dir.path(&format!("late.{}", format.extension()));
        let rows = write::write_rows(city, plan.rows(city), format, &path).unwrap();
        write::write_rows(city, plan.companion_rows(city), format, &companion).unwrap();
        let manifest = &plan.manifest;
        assert_eq!(rows, manifest.rows);

        // Ingest the way `docs/events.md` says: validate, then idempotency by id.
        let mut seen: HashMap<String, chiso_core::event::Event> = HashMap::new();
        let mut outcome = Vec::new();
        for parsed in parse_text_file(&path, format) {
            outcome.push(match parsed {
                Err(reason) => (Expected::Rejected, Some(reason)),
                Ok(event) => match seen.get(&event.event_id) {
                    Some(stored) if *stored == event => (Expected::Duplicate, None),
                    Some(_) => (Expected::Rejected, Some(RejectReason::Conflict)),
                    None => {
                        seen.insert(event.event_id.clone(), event);
                        (Expected::Duplicate, Some(RejectReason::MalformedRow)) // marker: accepted
                    }
                },
            });
        }
        let faults: HashMap<u64, &dirty::Fault> =
            manifest.faults.iter().map(|f| (f.record, f)).collect();
        let kinds: HashSet<_> = manifest.faults.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 10, "{format:?}: every fault kind is injected");
        for (i, got) in outcome.iter().enumerate() {
            let record = i as u64 + 1;
            match faults.get(&record) {
                Some(fault) => {
                    let want = (
                        fault.expected,
                        fault.reason.map(|r| RejectReason::from_code(r).unwrap()),
                    );
                    assert_eq!(*got, want, "{format:?} record {record}: {:?}", fault.kind);
                    assert_eq!(fault.line, format.line_of_record(record));
                }
                None => assert_eq!(
                    *got,
                    (Expected::Duplicate, Some(RejectReason::MalformedRow)),
                    "{format:?} record {record} is clean but was not accepted"
                ),
            }
        }
        let accepted = outcome.len() - manifest.faults.len();
        assert_eq!(accepted as u64, manifest.clean_rows);

        // The withheld receptions arrive in the companion file and complete
        // exactly the orphaned dossiers.
        let late: Vec<_> = parse_text_file(&companion, format)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(late.len() as u64, manifest.companion_rows);
        let completed: HashSet<_> = late.iter().map(|e| e.dossier_id.clone()).collect();
        let orphans: HashSet<_> = manifest.orphan_dossiers.iter().cloned().collect();
        assert_eq!(completed, orphans);
        assert!(late.iter().all(|e| e.event_type == EventType::Received));
        let received_in_main: HashSet<_> = seen
            .values()
            .filter(|e| e.event_type == EventType::Received)
            .map(|e| e.dossier_id.clone())
            .collect();
        assert!(orphans.is_disjoint(&received_in_main));
        assert_eq!(
            accepted + late.len(),
            city.events.len(),
            "every clean event arrives once"
        );
    }
}

#[test]
fn dirty_parquet_carries_only_representable_faults() {
    let city = small_city();
    let dir = TempDir::new("gen-dirty-parquet");
    let plan = dirty::plan(city, Format::Parquet);
    let path = dir.path("dirty.parquet");
    assert_eq!(
        write::write_rows(city, plan.rows(city), Format::Parquet, &path).unwrap(),
        plan.manifest.rows
    );
    assert!(plan.manifest.faults.iter().all(|f| f.line.is_none()));
    assert!(!plan.manifest.faults.iter().any(|f| matches!(
        f.kind,
        dirty::FaultKind::BadTimestamp | dirty::FaultKind::BadBoolean
    )));
}

// ---------------------------------------------------------------- spreadsheet

#[test]
fn the_dossier_list_reads_back_with_vietnamese_headers() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let city = small_city();
    let dir = TempDir::new("gen-xlsx");
    let path = dir.path("list.xlsx");
    let count = xlsx::write_dossier_list(city, "31135", date(2025, 7, 1), false, &path).unwrap();
    let expected: Vec<String> = city
        .dossiers
        .iter()
        .filter(|d| {
            city.wards.as_slice()[usize::from(d.ward)].code == "31135"
                && chiso_core::time::local_date(
                    chrono::DateTime::from_timestamp(d.received_at, 0).unwrap(),
                )
                .month()
                    == 7
        })
        .map(|d| city.dossier_id(d))
        .collect();
    assert_eq!(count, expected.len());
    assert!(count > 0);

    let mut workbook: Xlsx<_> = open_workbook(&path).unwrap();
    let sheet = workbook.worksheet_range("Danh sách hồ sơ").unwrap();
    let rows: Vec<_> = sheet.rows().collect();
    let header_row = xlsx::HEADER_ROW as usize;
    let headers: Vec<String> = rows[header_row].iter().map(|c| c.to_string()).collect();
    assert_eq!(headers, xlsx::HEADERS);
    assert!(rows[0][0].to_string().contains("PHƯỜNG NINH KIỀU"));
    let data = &rows[header_row + 1..];
    assert_eq!(data.len(), count);
    let ids: Vec<String> = data.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(ids, expected);
    let received_col = xlsx::HEADERS
        .iter()
        .position(|h| *h == "Ngày tiếp nhận")
        .unwrap();
    assert!(
        data.iter()
            .all(|r| matches!(r[received_col], Data::DateTime(_)))
    );
    let channel_col = xlsx::HEADERS.iter().position(|h| *h == "Kênh nộp").unwrap();
    assert!(data.iter().all(|r| {
        ["Trực tiếp", "Trực tuyến", "Bưu chính"].contains(&r[channel_col].to_string().as_str())
    }));

    let unknown =
        xlsx::write_dossier_list(city, "99999", date(2025, 7, 1), false, &dir.path("x.xlsx"));
    assert!(unknown.unwrap_err().to_string().contains("99999"));
}

// ---------------------------------------------------------------- the committed sample

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_committed_sample_is_what_the_generator_produces() {
    let sample = repository().join("sample-data");
    let city = chiso_gen::generate(&chiso_gen::sample_params()).unwrap();
    let dir = TempDir::new("gen-sample");
    let events = dir.path("events.parquet");
    write::write_city(&city, Format::Parquet, &events).unwrap();
    assert!(
        std::fs::read(&events).unwrap() == std::fs::read(sample.join("events.parquet")).unwrap(),
        "sample-data/events.parquet is stale: regenerate it with the command in sample-data/README.md"
    );
    let list = dir.path("list.xlsx");
    xlsx::write_dossier_list(&city, "31135", date(2025, 7, 1), false, &list).unwrap();
    assert!(
        std::fs::read(&list).unwrap()
            == std::fs::read(sample.join("dossier-list-31135-2025-07.xlsx")).unwrap(),
        "the committed dossier list is stale"
    );
    let mut procedures = Vec::new();
    chiso_gen::catalogue::write_csv(&mut procedures).unwrap();
    assert!(
        procedures == std::fs::read(sample.join("procedures.csv")).unwrap(),
        "procedures.csv is stale"
    );
}
