//! The `chiso` binary as a user runs it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

fn chiso(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chiso-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn gen_help_explains_every_option() {
    let out = chiso(&["gen", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for option in [
        "--seed",
        "--scale",
        "--from",
        "--to",
        "--format",
        "--out",
        "--dirty",
        "--manifest",
        "--dossier-list",
        "--ward",
        "--month",
        "--procedures",
    ] {
        assert!(help.contains(option), "{option} is not explained");
    }
    assert!(help.contains("Examples"));
}

#[test]
fn gen_writes_the_files_and_summarises_the_city() {
    let dir = temp("gen");
    let events = dir.join("nested/city.ndjson");
    let list = dir.join("list.xlsx");
    let out = chiso(&[
        "gen",
        "--scale",
        "0.002",
        "--dirty",
        "--out",
        events.to_str().unwrap(),
        "--dossier-list",
        list.to_str().unwrap(),
        "--month",
        "2025-07",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "dossiers received",
        "on-time rate",
        "channels",
        "2025-07",
        "manifest",
        "re",
    ] {
        assert!(
            stdout.contains(expected),
            "summary lacks {expected}:\n{stdout}"
        );
    }
    assert!(events.exists(), "the format follows the extension");
    assert!(
        std::fs::read_to_string(&events)
            .unwrap()
            .starts_with("{\"event_id\"")
    );
    assert!(dir.join("nested/city.ndjson.manifest.json").exists());
    assert!(dir.join("nested/city-late.ndjson").exists());
    assert!(list.exists() && dir.join("list-reexport.xlsx").exists());
    // The names of the procedures travel with the log: ingesting it gives
    // a new store its catalogue.
    assert!(dir.join("nested/procedures.csv").exists());
    let store = dir.join("store");
    let ingested = chiso(&[
        "ingest",
        "--store",
        store.to_str().unwrap(),
        events.to_str().unwrap(),
    ]);
    assert!(
        text(&ingested.stdout).contains("procedures named from"),
        "{}",
        text(&ingested.stdout)
    );
    let named = chiso(&[
        "sql",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM procedures WHERE procedure_name IS NOT NULL",
    ]);
    let count = text(&named.stdout);
    assert!(
        count.lines().nth(1).and_then(|n| n.parse::<u32>().ok()) > Some(10),
        "{count}{}",
        text(&named.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_get_clear_errors() {
    let cases: [(&[&str], &str); 5] = [
        (&["gen", "--scale", "11"], "--scale 11 is outside"),
        (
            &["gen", "--from", "2025-07-01", "--to", "2025-06-01"],
            "is after --to",
        ),
        (
            &["gen", "--from", "1/7/2025"],
            "is not a date like 2025-07-14",
        ),
        (&["gen", "--format", "xml"], "is not csv, ndjson or parquet"),
        (
            &["gen", "--scale", "0.001", "--out", "/proc/chiso/x.csv"],
            "cannot",
        ),
    ];
    for (args, message) in cases {
        let out = chiso(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = temp("pipe");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args([
            "gen",
            "--scale",
            "0.001",
            "--out",
            dir.join("e.csv").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success() && !stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- ingestion

fn events_in_store(store: &std::path::Path) -> u64 {
    let out = chiso(&[
        "store",
        "info",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["tables"][0]["rows"].as_u64().unwrap()
}

fn generate(dir: &std::path::Path, name: &str, scale: &str, extra: &[&str]) -> PathBuf {
    let file = dir.join(name);
    let mut args = vec!["gen", "--scale", scale, "--out", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    assert!(chiso(&args).status.success());
    file
}

#[test]
fn a_killed_ingest_leaves_nothing_or_the_whole_file() {
    let dir = temp("crash");
    let file = generate(&dir, "city.csv", "0.02", &[]);
    let store = dir.join("store");
    let args = [
        "ingest",
        "--store",
        store.to_str().unwrap(),
        file.to_str().unwrap(),
    ];
    let complete = {
        // The size of the whole file, from a separate store.
        let reference = dir.join("reference");
        let out = chiso(&[
            "ingest",
            "--json",
            "--store",
            reference.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        events_in_store(&reference)
    };
    let mut outcomes = Vec::new();
    for delay_ms in [30, 150, 400, 900, 1600, 2600] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        if store.join("chiso-store.json").exists() {
            let rows = events_in_store(&store);
            assert!(
                rows == 0 || rows == complete,
                "after a kill at {delay_ms} ms: {rows} of {complete} events"
            );
            outcomes.push(rows);
        }
    }
    let out = chiso(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        events_in_store(&store),
        complete,
        "re-running completes the ingest"
    );
    let out = chiso(&args);
    assert!(text(&out.stdout).contains("nothing new"));
    assert_eq!(events_in_store(&store), complete);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_processes_ingesting_at_once_both_land() {
    let dir = temp("parallel");
    let a = generate(&dir, "a.csv", "0.01", &["--seed", "1"]);
    let b = generate(&dir, "b.ndjson", "0.01", &["--seed", "2"]);
    let store = dir.join("store");
    let spawn = |file: &PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_chiso"))
            .args([
                "ingest",
                "--json",
                "--store",
                store.to_str().unwrap(),
                file.to_str().unwrap(),
            ])
            .output()
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| spawn(&a).unwrap());
        let tb = s.spawn(|| spawn(&b).unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let accepted = |out: &Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        reports[0]["accepted"].as_u64().unwrap()
    };
    let total = accepted(&ra) + accepted(&rb);
    assert!(total > 0);
    assert_eq!(events_in_store(&store), total);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first query derives every dossier; after another ingest only the
/// dossiers it touched are derived again; `chiso store rederive` derives
/// everything afresh, to the same rows.
#[test]
fn an_ingest_updates_the_derived_tables_and_rederive_rebuilds_them() {
    let dir = temp("rederive");
    let first = generate(&dir, "first.csv", "0.001", &["--seed", "1"]);
    let second = generate(&dir, "second.csv", "0.0002", &["--seed", "2"]);
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let ingest = |file: &PathBuf| {
        let out = chiso(&["ingest", "--store", store, file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let dossiers = || {
        let sql = "SELECT count(*) AS n, count(DISTINCT dossier_key) AS keys FROM dossier_facts";
        let out = chiso(&["sql", "--store", store, "--format", "csv", sql]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    ingest(&first);
    let (_, derived) = dossiers();
    assert!(
        derived.contains("derived the dossiers of events version 1"),
        "{derived}"
    );
    ingest(&second);
    let (updated, derived) = dossiers();
    assert!(derived.contains("derived again the"), "{derived}");
    assert!(derived.contains("events version 2 touched"), "{derived}");
    let out = chiso(&["store", "rederive", "--store", store]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("derived the dossiers of events version 2 afresh"));
    let (rederived, derived) = dossiers();
    assert!(!derived.contains("derived"), "{derived}");
    assert_eq!(updated, rederived, "an update and a full derivation agree");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ingest_exit_status_and_json() {
    let dir = temp("exit");
    let dirty = generate(&dir, "dirty.csv", "0.002", &["--dirty"]);
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let out = chiso(&[
        "ingest",
        "--json",
        "--store",
        store,
        dirty.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "rejected rows are not a failure");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reports[0]["rejected"].as_u64().unwrap() > 0);
    let strict = chiso(&[
        "ingest",
        "--strict",
        "--store",
        store,
        dirty.to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(3));
    let missing = chiso(&["ingest", "--store", store, "/nonexistent.csv"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent.csv"));
    let quarantine = chiso(&[
        "store",
        "quarantine",
        "--store",
        store,
        "--reason",
        "unknown_ward",
    ]);
    assert!(
        text(&quarantine.stdout).contains("99999"),
        "{}",
        text(&quarantine.stdout)
    );
    let csv = dir.join("q.csv");
    let export = chiso(&[
        "store",
        "quarantine",
        "--store",
        store,
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let exported = std::fs::read_to_string(&csv).unwrap();
    assert!(exported.lines().count() > 5 && exported.contains("unknown_ward"));
    let not_a_store = chiso(&["store", "info", "--store", dir.to_str().unwrap()]);
    assert!(text(&not_a_store.stderr).contains("is not a chiso store"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn datafusion_settings_can_be_overridden_from_the_environment() {
    let dir = temp("settings");
    let events = generate(&dir, "city.csv", "0.002", &[]);
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    assert!(
        chiso(&["ingest", "--store", store, events.to_str().unwrap()])
            .status
            .success()
    );
    let setting = "SELECT value FROM information_schema.df_settings \
                   WHERE name = 'datafusion.execution.batch_size'";
    let sql = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_chiso"))
            .args(["sql", "--store", store, "--format", "csv", setting])
            .env("DATAFUSION_EXECUTION_BATCH_SIZE", value)
            .output()
            .unwrap()
    };
    let tuned = sql("1234");
    assert!(tuned.status.success(), "{}", text(&tuned.stderr));
    assert_eq!(text(&tuned.stdout).lines().nth(1), Some("1234"));
    let bad = sql("many");
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("DATAFUSION_EXECUTION_BATCH_SIZE"),
        "{}",
        text(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `chiso` with the built-in sample city in a folder of its own.
fn chiso_sample(data_home: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args(args)
        .env("XDG_DATA_HOME", data_home)
        .env_remove("CHISO_STORE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every count and rate of docs/kpis.md, in the order of the spec.
const KPI_COLUMNS: [&str; 36] = [
    "received",
    "online",
    "direct",
    "postal",
    "online_rate",
    "full_online",
    "full_online_rate",
    "digitized",
    "digitization_rate",
    "fee_required",
    "paid_online",
    "online_payment_rate",
    "resolved",
    "resolved_on_time",
    "resolved_early",
    "resolved_late",
    "on_time_rate",
    "late_apologized",
    "apology_rate",
    "e_result",
    "e_result_rate",
    "stopped",
    "withdrawn",
    "avg_processing_days",
    "p90_processing_days",
    "in_progress",
    "in_progress_overdue",
    "awaiting_supplement",
    "rated",
    "satisfied",
    "satisfaction_rate",
    "progress_total",
    "progress_on_time",
    "progress_ratio",
    "progress_points",
    "period_start",
];

#[test]
fn kpi_index_and_sql_on_the_built_in_sample_city() {
    let home = temp("sample");
    // CSV by ward: the spec's columns, the key first, all 103 wards.
    let out = chiso_sample(
        &home,
        &[
            "kpi", "--period", "2025-07", "--by", "ward", "--format", "csv",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sample city"));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..4],
        ["period_start", "period_end", "ward_code", "ward_name"]
    );
    for column in KPI_COLUMNS {
        assert!(header.contains(&column), "no column {column}");
    }
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 103);
    let received = header.iter().position(|c| *c == "received").unwrap();
    let by_ward: u64 = rows
        .iter()
        .map(|r| r[received].parse::<u64>().unwrap())
        .sum();
    assert!(
        rows.iter()
            .all(|r| r[0] == "2025-07-01" && r[1] == "2025-08-01")
    );

    // The city as JSON agrees with the sum of the wards.
    let out = chiso_sample(
        &home,
        &["kpi", "--period", "2025-07", "--format", "json"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let city: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(city[0]["received"].as_u64(), Some(by_ward));
    assert!(by_ward > 1000, "July of the sample city has dossiers");

    // The terminal table: Vietnamese headers and number format.
    let out = chiso_sample(
        &home,
        &["kpi", "--period", "2025-07", "--by", "channel"],
        "",
    );
    let table = text(&out.stdout);
    assert!(
        table.contains("Kênh") && table.contains("Trực tuyến"),
        "{table}"
    );
    let out = chiso_sample(&home, &["kpi", "--period", "2025-07"], "");
    let table = text(&out.stdout);
    assert!(table.contains("Tiếp nhận"), "{table}");
    assert!(
        table.contains(&chiso_core::format::vi_integer(by_ward as i64)),
        "{table}"
    );

    // The index: one row per ward with a band and a rank.
    let out = chiso_sample(
        &home,
        &["index", "--period", "2025-07", "--format", "json"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wards = index.as_array().unwrap();
    assert_eq!(wards.len(), 103);
    assert_eq!(wards[0]["rank"].as_u64(), Some(1));
    // At most the five dossier-based indicators (42 points) are assessed
    // without external values; score_100 is the score over what was assessed.
    for ward in wards {
        let assessed = ward["assessed_points"].as_f64().unwrap();
        assert!(assessed > 0.0 && assessed <= 42.0, "{ward}");
        let score = ward["score"].as_f64().unwrap();
        let score_100 = ward["score_100"].as_f64().unwrap();
        assert!(
            (score / assessed * 100.0 - score_100).abs() < 0.02,
            "{ward}"
        );
        assert!(
            ward["band"].is_string() && ward["band_vi"].is_string(),
            "{ward}"
        );
    }
    assert!(
        wards
            .iter()
            .any(|w| w["assessed_points"].as_f64() == Some(42.0))
    );

    // Ad-hoc SQL, one query and the prompt; refusals are errors.
    let out = chiso_sample(
        &home,
        &["sql", "--format", "csv", "SELECT count(*) AS n FROM wards"],
        "",
    );
    assert_eq!(text(&out.stdout), "n\n103\n");
    let out = chiso_sample(&home, &["sql", "DROP TABLE events"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    let out = chiso_sample(
        &home,
        &["sql"],
        "\\d\nSELECT ward_name\n  FROM wards WHERE ward_code = '31135';\n\\d calendar\n",
    );
    let shown = text(&out.stdout);
    for expected in [
        "dossiers",
        "quarantine",
        "Phường Ninh Kiều",
        "is_working_day",
    ] {
        assert!(
            shown.contains(expected),
            "prompt output lacks {expected}:\n{shown}"
        );
    }

    // Parquet needs a file, and writes one.
    let file = home.join("july.parquet");
    let out = chiso_sample(
        &home,
        &[
            "kpi",
            "--period",
            "2025-07",
            "--by",
            "ward",
            "--format",
            "parquet",
            "--out",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(&std::fs::read(&file).unwrap()[..4], b"PAR1");

    // A store learns its procedure names from a catalogue file.
    let store = home.join("store");
    let events = generate(&home, "small.csv", "0.001", &[]);
    assert!(
        chiso(&[
            "ingest",
            "--store",
            store.to_str().unwrap(),
            events.to_str().unwrap()
        ])
        .status
        .success()
    );
    let catalogue = home.join("procedures.csv");
    let bad = home.join("bad.csv");
    std::fs::write(&bad, "code,name\n1,x\n").unwrap();
    let out = chiso(&[
        "store",
        "procedures",
        "--store",
        store.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("procedure_code"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        chiso(&[
            "gen",
            "--scale",
            "0.001",
            "--out",
            home.join("x.csv").to_str().unwrap(),
            "--procedures",
            catalogue.to_str().unwrap()
        ])
        .status
        .success()
    );
    let out = chiso(&[
        "store",
        "procedures",
        "--store",
        store.to_str().unwrap(),
        catalogue.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chiso(&[
        "kpi",
        "--store",
        store.to_str().unwrap(),
        "--period",
        "2025",
        "--by",
        "department",
        "--format",
        "csv",
    ]);
    assert!(
        text(&out.stdout).contains("Sở Tư pháp"),
        "{}",
        text(&out.stdout)
    );

    // A period that is not one gets the accepted forms.
    let out = chiso_sample(&home, &["kpi", "--period", "July"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("2025-W28"),
        "{}",
        text(&out.stderr)
    );

    // The example alert rules, tried on a Monday morning: what each
    // webhook would receive, nothing sent.
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dashboards/alerts.example.toml"
    );
    let at = "2025-10-06T07:30:00+07:00";
    let out = chiso_sample(
        &home,
        &["alerts", "test", "--alerts", rules, "--at", at],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("── on-time → http://127.0.0.1:9000/city (city)"),
        "{shown}"
    );
    assert!(text(&out.stderr).contains("nothing was sent"));
    // Each ward with a dossier due soon: a message of its own for the relay.
    let any_due = temp("alerts").join("alerts.toml");
    std::fs::create_dir_all(any_due.parent().unwrap()).unwrap();
    std::fs::write(
        &any_due,
        "[[rule]]\nid = \"due-soon\"\nkind = \"due_soon\"\nabove = 0\nat = \"07:30\"\n\
         every_ward = [\"http://127.0.0.1:9000/ward\"]\ncity = [\"http://127.0.0.1:9000/city\"]\n",
    )
    .unwrap();
    let any_due = any_due.to_str().unwrap();
    let out = chiso_sample(
        &home,
        &["alerts", "test", "--alerts", any_due, "--at", at, "--json"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let messages: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Every ward's message for the relay, and the city's, by rule.
    let to_wards: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["recipient"] == "http://127.0.0.1:9000/ward")
        .collect();
    assert!(!to_wards.is_empty(), "{messages:?}");
    for message in to_wards {
        let body = &message["body"];
        assert_eq!(body["rule"], "due-soon");
        let name = body["ward_name"].as_str().unwrap();
        assert!(body["text"].as_str().unwrap().starts_with(name), "{body}");
    }
    assert!(
        messages
            .iter()
            .any(|m| m["recipient"] == "http://127.0.0.1:9000/city"
                && m["body"]["rule"] == "due-soon")
    );
    let bad = temp("bad-alerts").join("alerts.toml");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, "[[rule]]\nid = \"x\"\nkind = \"late\"\nat = \"7h\"\n").unwrap();
    let out = chiso_sample(
        &home,
        &["alerts", "test", "--alerts", bad.to_str().unwrap()],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown kind `late`"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn report_writes_packs_and_refuses_what_is_not_one() {
    let home = temp("report");
    std::fs::create_dir_all(&home).unwrap();
    let out_file = home.join("review.xlsx");
    let out = chiso_sample(
        &home,
        &[
            "report",
            "weekly",
            "--week",
            "2025-W40",
            "--format",
            "xlsx",
            "--out",
            out_file.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wrote"), "{}", text(&out.stderr));
    assert!(std::fs::read(&out_file).unwrap().starts_with(b"PK"));
    for (args, expected) in [
        (
            vec!["report", "weekly", "--week", "2025-W40", "--ward", "99999"],
            "no ward has the code `99999`",
        ),
        (
            vec!["report", "weekly", "--week", "2025-07"],
            "give it as 2025-W40",
        ),
        (
            vec!["report", "monthly", "--month", "2025-07", "--lang", "fr"],
            "unknown language",
        ),
    ] {
        let out = chiso_sample(&home, &args, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // Postgres users: added with a hashed password, listed, refused when weak.
    let users = home.join("pg-users");
    let users = users.to_str().unwrap();
    let add = chiso_sample(
        &home,
        &[
            "pg-user",
            "add",
            "--users",
            users,
            "analyst",
            "--password-stdin",
        ],
        "một mật khẩu dài\n",
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let file = std::fs::read_to_string(users).unwrap();
    assert!(
        file.contains("analyst role=analyst password=SCRAM-SHA-256$4096:")
            && !file.contains("mật khẩu"),
        "{file}"
    );
    // A ward user, and a token printed once and stored as its hash only.
    let ward = chiso_sample(
        &home,
        &[
            "user",
            "add",
            "--users",
            users,
            "lan",
            "--role",
            "ward",
            "--ward",
            "31135",
            "--password-stdin",
        ],
        "mật khẩu của phường\n",
    );
    assert!(ward.status.success(), "{}", text(&ward.stderr));
    let no_ward = chiso_sample(
        &home,
        &[
            "user",
            "add",
            "--users",
            users,
            "x",
            "--role",
            "ward",
            "--no-password",
        ],
        "",
    );
    assert!(
        text(&no_ward.stderr).contains("--ward CODE"),
        "{}",
        text(&no_ward.stderr)
    );
    let token = chiso_sample(&home, &["user", "token", "--users", users, "lan"], "");
    let token = text(&token.stdout).trim().to_owned();
    assert!(token.starts_with("chiso_") && token.len() == 70, "{token}");
    let file = std::fs::read_to_string(users).unwrap();
    assert!(file.contains("lan role=ward wards=31135") && file.contains("token=sha256:"));
    assert!(!file.contains(&token));
    let list = chiso_sample(&home, &["user", "list", "--users", users], "");
    assert_eq!(
        text(&list.stdout).trim(),
        "analyst\tanalyst\t-\tpassword\t0 tokens\nlan\tward\t31135\tpassword\t1 token"
    );
    let weak = chiso_sample(
        &home,
        &["pg-user", "add", "--users", users, "bi", "--password-stdin"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(text(&weak.stderr).contains("at least 8"));
    let _ = std::fs::remove_dir_all(&home);
}

/// The README's first command on a fresh machine: `chiso serve` creates the
/// built-in sample city, serves its pages, and logs nothing alarming on the
/// way (delta-rs once logged an error for every table it created).
#[test]
fn serve_starts_on_a_new_sample_city_without_errors() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;

    let data_home = temp("serve-first-start");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("XDG_DATA_HOME", &data_home)
        .env_remove("CHISO_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let serving = line.contains("in a browser");
        log.push(line);
        if serving {
            break;
        }
    }
    let log = log.join("\n");
    let page = std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut stream| {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        let _ = stream.read_to_string(&mut page);
        page
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data_home);

    assert!(log.contains("created the built-in sample city"), "{log}");
    assert!(log.contains("in a browser"), "{log}");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
    // Written to a pipe (a file, journald), the log is plain text.
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log:?}");
    let page = page.unwrap();
    let head: String = page.chars().take(300).collect();
    assert!(page.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        page.contains("103"),
        "the overview names the city's 103 wards"
    );
}
mod architecture;
mod hostile;
