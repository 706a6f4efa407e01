//! The server's routes, without a socket (`oneshot`), on the built-in sample
//! city: every page, chart and API answer; bad requests get a clear 4xx;
//! posted events are counted exactly once, also while others read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use calamine::DataType as _;
use chiso_dashboard::Dashboards;
use chiso_engine::EngineOptions;
use chiso_server::{AppState, ServerConfig, app};
use tower::ServiceExt;

#[path = "support/webdriver.rs"]
mod webdriver;

const TOKEN: &str = "test-token-123";
/// The limit of an ad-hoc query in these tests.
const QUERY_TIMEOUT: Duration = Duration::from_secs(8);

/// The threads that run the query that must stop.
const ENDLESS_THREADS: &str = "endless-query";

/// CPU seconds used by this process's threads named `name` (user + system).
fn cpu_seconds(name: &str) -> f64 {
    let mut ticks = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // The fields after the command name, which is in parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        ticks +=
            fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    }
    ticks / 100.0
}

struct Answer {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// The values of the column headed `header` in the sheet of a page's XLSX
/// whose name starts with `sheet` (the title, the period, then the header).
fn sheet_column(xlsx: Vec<u8>, sheet: &str, header: &str) -> Vec<String> {
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).expect("an XLSX file");
    let name = calamine::Reader::sheet_names(&workbook)
        .into_iter()
        .find(|n| n.starts_with(sheet))
        .unwrap_or_else(|| panic!("no sheet {sheet}"));
    let range = calamine::Reader::worksheet_range(&mut workbook, &name).expect("sheet");
    let headers = range.rows().nth(2).expect("a header row");
    let column = headers
        .iter()
        .position(|c| c.get_string() == Some(header))
        .unwrap_or_else(|| panic!("no column {header}"));
    range
        .rows()
        .skip(3)
        .map(|r| r[column].to_string())
        .collect()
}

async fn get(app: &Router, uri: &str) -> Answer {
    call(app, Method::GET, uri, &[], "").await
}

/// A fresh copy of the sample city, and the server over it.
async fn server(name: &str, token: Option<&str>) -> (Router, Arc<AppState>, PathBuf) {
    server_with_timeout(name, token, QUERY_TIMEOUT).await
}

/// The same, ad-hoc queries allowed `timeout` (a long download on a busy
/// machine needs more than the short limit the timeout test uses).
async fn server_with_timeout(
    name: &str,
    token: Option<&str>,
    timeout: Duration,
) -> (Router, Arc<AppState>, PathBuf) {
    server_with(name, token, timeout, None).await
}

/// The same, with sign-in on for `users`.
async fn server_with(
    name: &str,
    token: Option<&str>,
    timeout: Duration,
    users: Option<chiso_users::Users>,
) -> (Router, Arc<AppState>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("chiso-server-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("city");
    chiso_ingest::sample::ensure_store(&store)
        .await
        .expect("sample city");
    let now = chiso_test_support::sample_now();
    let config = ServerConfig {
        store: store.clone(),
        dashboards: Dashboards::builtin().expect("dashboards"),
        ingest_token: token.map(str::to_owned),
        body_limit: 1024 * 1024,
        engine: EngineOptions {
            now: Some(now),
            ..Default::default()
        },
        poll_every: Duration::from_secs(3600),
        data_label: None,
        prepare_pages: false,
        archive: Some(dir.join("reports")),
        schedule_weekly: false,
        allowed_hosts: Vec::new(),
        users,
        tls: false,
        alerts: None,
        query_limits: chiso_engine::QueryLimits {
            timeout,
            memory: 64 << 20,
            concurrent: 4,
        },
    };
    let state = AppState::open(&config).await.expect("state");
    (app(Arc::clone(&state)), state, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_charts_answer_in_both_languages() {
    let (app, _state, dir) = server("pages", None).await;

    let pages = [
        ("/?period=2025-W40", "Tổng quan thành phố"),
        ("/ranking?period=2025-W40", "Xếp hạng xã, phường"),
        (
            "/ranking?period=2025-W40&kind=xa&province=H%E1%BA%ADu%20Giang",
            "Xếp hạng",
        ),
        ("/ward/31135?period=2025-W40", "Phường Ninh Kiều"),
        ("/flags?period=2025-W40", "Cảnh báo"),
        ("/quality", "Chất lượng dữ liệu"),
        ("/?period=2025-09", "Tháng 09/2025"),
    ];
    for (uri, expected) in pages {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text());
        assert!(answer.content_type.starts_with("text/html"), "{uri}");
        let html = answer.text();
        assert!(html.contains(expected), "{uri} lacks {expected}");
        assert!(
            !html.contains("class=\"failed\""),
            "{uri} has a failed panel"
        );
    }
    let english = get(&app, "/?period=2025-W40&lang=en").await.text();
    assert!(english.contains("City overview") && english.contains("Resolved on time"));
    // Every ward of the city is in the ranking, Vietnamese names intact.
    let ranking = get(&app, "/ranking?period=2025-W40").await.text();
    assert_eq!(ranking.matches("href=\"/ward/").count(), 103);
    assert!(ranking.contains("Phường Cái Khế"));
    // The default period is the last week with data (the clock is 31/12/2025).
    let default = get(&app, "/").await.text();
    assert!(default.contains("Tuần 52/2025"), "{default}");

    let svg = get(&app, "/chart/overview/trend.svg?period=2025-W40").await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.content_type, "image/svg+xml");
    assert!(svg.text().contains("Đúng hạn"));
    let png = get(
        &app,
        "/chart/ranking/scores.png?period=2025-W40&w=800&h=1200",
    )
    .await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(&png.body[1..4], b"PNG");
    let ward_chart = get(&app, "/chart/ward/trend.png?period=2025-W40&ward=31135").await;
    assert_eq!(ward_chart.status, StatusCode::OK);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gives_the_engines_figures() {
    let (app, _state, dir) = server("api", None).await;
    // The API gives the engine's figures.
    let kpi = get(&app, "/api/kpi?period=2025-W40&by=ward").await;
    assert_eq!(kpi.status, StatusCode::OK, "{}", kpi.text());
    let rows = kpi.json()["rows"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 103);
    let city = get(&app, "/api/kpi?period=2025-W40").await.json();
    let received: i64 = rows
        .iter()
        .map(|r| r["received"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(city["rows"][0]["received"].as_i64(), Some(received));
    assert!(received > 0);
    let headline = get(&app, "/api/panels/overview/headline?period=2025-W40")
        .await
        .json();
    assert_eq!(headline["rows"][0]["received"].as_i64(), Some(received));
    let index = get(&app, "/api/index?period=2025-W40&layout=2022")
        .await
        .json();
    assert_eq!(index["rows"].as_array().map(Vec::len), Some(103));
    let trend = get(&app, "/api/trend?period=2025-W40&by=ward&ward=31135")
        .await
        .json();
    assert_eq!(trend["rows"].as_array().map(Vec::len), Some(13));
    let ward = get(&app, "/api/wards/31135?period=2025-W40").await.json();
    assert_eq!(ward["ward"]["ward_name"], "Phường Ninh Kiều");
    assert!(ward["panels"]["procedures"].is_array());
    // Due soon: the API at the week's T lists what the ward page shows.
    let at = "2025-10-06T00:00:00%2B07:00";
    let due = get(&app, &format!("/api/due-soon?ward=31135&at={at}")).await;
    assert_eq!(due.status, StatusCode::OK, "{}", due.text());
    let due = due.json();
    assert_eq!(due["at"], "2025-10-05T17:00:00Z");
    assert_eq!(due["days"], 2);
    let ids = |rows: &serde_json::Value| -> Vec<String> {
        rows.as_array()
            .expect("rows")
            .iter()
            .map(|row| row["dossier_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let listed = ids(&due["rows"]);
    assert!(!listed.is_empty(), "{due}");
    for row in due["rows"].as_array().unwrap() {
        assert!(row["working_hours_left"].as_f64().unwrap() >= 0.0, "{row}");
        assert!(row["effective_due_at"].as_str().unwrap() >= "2025-10-05T17:00:00Z");
    }
    let panel = get(&app, "/api/panels/ward/due_soon?period=2025-W40&ward=31135")
        .await
        .json();
    assert_eq!(ids(&panel["rows"]), listed);
    // The panel's downloads hold the same list: CSV, and the page's XLSX.
    let csv = get(
        &app,
        "/api/panels/ward/due_soon?period=2025-W40&ward=31135&format=csv",
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
    let in_csv: Vec<String> = csv
        .text()
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(in_csv, listed);
    let xlsx = get(&app, "/export/ward.xlsx?period=2025-W40&ward=31135").await;
    assert_eq!(xlsx.status, StatusCode::OK, "{}", xlsx.text());
    assert_eq!(
        sheet_column(xlsx.body, "Hồ sơ sắp đến hạn", "Mã hồ sơ"),
        listed
    );
    // Every ward's list holds this ward's, and more.
    let everywhere = get(&app, &format!("/api/due-soon?at={at}")).await.json();
    let rows = everywhere["rows"].as_array().unwrap();
    let of_ward: Vec<serde_json::Value> = rows
        .iter()
        .filter(|row| row["ward_code"] == "31135")
        .cloned()
        .collect();
    assert_eq!(ids(&serde_json::Value::Array(of_ward)), listed);
    assert!(rows.len() > listed.len());
    for (path, status, says) in [
        ("/api/due-soon?days=61", StatusCode::BAD_REQUEST, "0 to 60"),
        (
            "/api/due-soon?at=soon",
            StatusCode::BAD_REQUEST,
            "not a timestamp",
        ),
        ("/api/due-soon?ward=99999", StatusCode::NOT_FOUND, "99999"),
    ] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert!(answer.text().contains(says), "{path}: {}", answer.text());
    }
    assert_eq!(get(&app, "/api/pages").await.status, StatusCode::OK);
    let health = get(&app, "/health").await.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(get(&app, "/static/font.ttf").await.status, StatusCode::OK);

    let bad_requests = [
        (
            "/?period=2025-W99",
            StatusCode::BAD_REQUEST,
            "is not a period",
        ),
        (
            "/?perod=2025-W28",
            StatusCode::BAD_REQUEST,
            "not understood",
        ),
        ("/?lang=fr", StatusCode::BAD_REQUEST, "use vi or en"),
        (
            "/ranking?kind=town",
            StatusCode::BAD_REQUEST,
            "phuong or xa",
        ),
        (
            "/ranking?province=Hanoi",
            StatusCode::BAD_REQUEST,
            "former province",
        ),
        ("/ward/99999", StatusCode::NOT_FOUND, "99999"),
        ("/nowhere", StatusCode::NOT_FOUND, "/nowhere"),
        (
            "/api/kpi?by=planet",
            StatusCode::BAD_REQUEST,
            "unknown grouping",
        ),
        (
            "/api/kpi?period=soon",
            StatusCode::BAD_REQUEST,
            "is not a period",
        ),
        ("/api/kpi?ward=1", StatusCode::NOT_FOUND, "no ward"),
        ("/api/index?layout=2099", StatusCode::BAD_REQUEST, "layout"),
        (
            "/api/trend?from=2025-13-01",
            StatusCode::BAD_REQUEST,
            "not a date",
        ),
        (
            "/api/trend?from=2025-06-01&to=2025-01-01",
            StatusCode::BAD_REQUEST,
            "after",
        ),
        (
            "/api/trend?grain=day&from=2020-01-01&to=2025-12-31",
            StatusCode::BAD_REQUEST,
            "more than 400 periods",
        ),
        (
            "/api/trend?grain=day&from=-262143-01-01&to=%2B262142-12-31",
            StatusCode::BAD_REQUEST,
            "not a date",
        ),
        (
            "/api/kpi?period=-262143-Q1&by=ward",
            StatusCode::BAD_REQUEST,
            "1900-2100",
        ),
        ("/?period=2101-W01", StatusCode::BAD_REQUEST, "1900-2100"),
        ("/api/wards/abc", StatusCode::NOT_FOUND, "abc"),
        ("/api/nowhere", StatusCode::NOT_FOUND, "no API"),
        ("/api/panels/overview/nope", StatusCode::NOT_FOUND, "nope"),
        (
            "/chart/overview/trend.gif",
            StatusCode::BAD_REQUEST,
            ".svg or .png",
        ),
        (
            "/chart/overview/headline.svg",
            StatusCode::NOT_FOUND,
            "no chart",
        ),
        (
            "/chart/ward/trend.svg",
            StatusCode::BAD_REQUEST,
            "ward=CODE",
        ),
        (
            "/chart/overview/trend.png?w=0",
            StatusCode::BAD_REQUEST,
            "outside",
        ),
        (
            "/chart/overview/trend.png?w=big",
            StatusCode::BAD_REQUEST,
            "not understood",
        ),
        ("/static/nothing.js", StatusCode::NOT_FOUND, "nothing.js"),
    ];
    for (uri, status, message) in bad_requests {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, status, "{uri}: {}", answer.text());
        assert!(answer.text().contains(message), "{uri}: {}", answer.text());
        if uri.starts_with("/api") || uri.starts_with("/chart") {
            assert!(answer.content_type.starts_with("application/json"), "{uri}");
        } else if !uri.starts_with("/static") {
            assert!(answer.content_type.starts_with("text/html"), "{uri}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_downloads_its_rows() {
    let (app, _state, dir) = server("downloads", None).await;
    let ranking = get(&app, "/ranking?period=2025-W40").await.text();
    // Every panel offers its rows as CSV, whole and with the page's choices.
    assert!(ranking.contains("/api/panels/ranking/wards?period=2025-W40&amp;format=csv"));
    let ward_page = get(&app, "/ward/31135?period=2025-W40").await.text();
    assert!(ward_page.contains("/chart/ward/trend.png?period=2025-W40&amp;ward=31135"));
    let download = get(&app, "/api/panels/ranking/wards?period=2025-W40&format=csv").await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.text());
    assert!(download.content_type.starts_with("text/csv"));
    assert_eq!(download.text().lines().count(), 104);
    let procedures = get(
        &app,
        "/api/panels/ward/procedures?period=2025-09&ward=31135&format=csv",
    )
    .await;
    assert!(
        procedures
            .text()
            .starts_with("period_start,period_end,procedure_code")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_sql_answers_in_every_format() {
    let (app, _state, dir) = server("sql-formats", None).await;
    // Ad-hoc SQL: every format carries the same 103 rows.
    let ward_sql =
        "SELECT ward_code, ward_name, received FROM kpi('2025-W40', 'ward') ORDER BY ward_code";
    let sql = |uri: &'static str, headers: &'static [(&'static str, &'static str)], body: &str| {
        let (app, body) = (app.clone(), body.to_owned());
        async move { call(&app, Method::POST, uri, headers, &body).await }
    };
    let json = sql("/api/sql", &[], ward_sql).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text());
    let value = json.json();
    assert_eq!(value["row_count"].as_u64(), Some(103));
    assert_eq!(value["rows"][1]["ward_name"], "Phường Ninh Kiều");
    assert_eq!(value["columns"][0]["name"], "ward_code");
    let csv = sql("/api/sql?format=csv", &[], ward_sql).await;
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(csv.text().lines().count(), 104);
    assert!(csv.text().starts_with("ward_code,ward_name,received\n"));
    let arrow = sql(
        "/api/sql",
        &[("accept", "application/vnd.apache.arrow.stream")],
        ward_sql,
    )
    .await;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None)
        .expect("an Arrow IPC stream");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 103);
    let parquet = sql("/api/sql?format=parquet", &[], ward_sql).await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet.body),
    )
    .expect("a Parquet file")
    .build()
    .expect("reader");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 103);
    let one = sql(
        "/api/sql",
        &[("content-type", "application/json")],
        r#"{"query": "SELECT 1 AS one"}"#,
    )
    .await;
    assert_eq!(one.json()["rows"][0]["one"].as_i64(), Some(1));
    let empty = sql(
        "/api/sql?format=csv",
        &[],
        "SELECT ward_code FROM wards WHERE false",
    )
    .await;
    assert_eq!(empty.text(), "ward_code\n");
    let refusals = [
        ("DROP TABLE events", "`DROP TABLE`"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "`COPY`"),
        ("CREATE TABLE x AS SELECT 1", "`CREATE TABLE`"),
        ("INSERT INTO wards VALUES ('1')", "`INSERT INTO`"),
        ("DELETE FROM events", "`DELETE FROM`"),
        ("UPDATE events SET ward_code = '1'", "`UPDATE`"),
        ("SET datafusion.execution.batch_size = 1", "`SET`"),
        (
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            "`CREATE EXTERNAL TABLE`",
        ),
        ("SELECT * FROM '/etc/passwd'", "/etc/passwd"),
        ("SELEC 1", "Line"),
        ("SELECT nope FROM wards", "nope"),
        ("", "empty"),
    ];
    for (query, message) in refusals {
        let answer = sql("/api/sql", &[], query).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.text()
        );
        assert!(
            answer.text().contains(message),
            "{query}: {}",
            answer.text()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_sql_is_bounded_and_its_mistakes_get_a_clear_4xx() {
    let (app, _state, dir) = server("sql-bounds", None).await;
    let ward_sql =
        "SELECT ward_code, ward_name, received FROM kpi('2025-W40', 'ward') ORDER BY ward_code";
    let sql = |uri: &'static str, headers: &'static [(&'static str, &'static str)], body: &str| {
        let (app, body) = (app.clone(), body.to_owned());
        async move { call(&app, Method::POST, uri, headers, &body).await }
    };
    // A query that would run for minutes is stopped at the limit, and its
    // work stops with it.
    // The query runs on a runtime of its own, so that its threads' CPU time
    // is its own and not the other tests'.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(ENDLESS_THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();
    let endless = {
        let app = app.clone();
        runtime
            .spawn(async move {
                call(
                    &app,
                    Method::POST,
                    "/api/sql",
                    &[],
                    "SELECT count(*) FROM generate_series(1, 100000000000) t WHERE t.value % 7 = 3",
                )
                .await
            })
            .await
            .expect("the query's task")
    };
    assert_eq!(
        endless.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        endless.text()
    );
    assert!(endless.text().contains("stopped"));
    assert!(
        started.elapsed() < QUERY_TIMEOUT + Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // It did work while it ran (on these threads), and stopped working.
    let worked = cpu_seconds(ENDLESS_THREADS);
    assert!(worked > 1.0, "the query used only {worked:.2} CPU seconds");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(ENDLESS_THREADS);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = cpu_seconds(ENDLESS_THREADS) - before;
    assert!(
        busy < 0.2,
        "the stopped query kept {busy:.2} CPU seconds busy in 2 s"
    );
    runtime.shutdown_background();
    // More memory than a query may have: a clear error; others go on.
    let too_big = sql(
        "/api/sql",
        &[],
        "SELECT cardinality(array_agg(t.value)) FROM generate_series(1, 30000000) t",
    )
    .await;
    assert_eq!(
        too_big.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_big.text()
    );
    assert!(
        too_big.text().contains("more memory than the 64 MB"),
        "{}",
        too_big.text()
    );
    assert_eq!(
        sql("/api/sql", &[], ward_sql).await.json()["row_count"],
        103
    );
    // What a screen shows: the first rows, and whether there were more.
    let shown = get(&app, "/api/sql?limit=10&q=SELECT%20*%20FROM%20calendar").await;
    let shown = shown.json();
    assert_eq!(shown["row_count"], 10);
    assert_eq!(shown["truncated"], true);
    let whole = get(&app, "/api/sql?format=csv&q=SELECT%20*%20FROM%20calendar").await;
    assert!(whole.content_type.starts_with("text/csv"));
    assert_eq!(
        whole.text().lines().count(),
        1 + 3 * 365 + 1,
        "2024 is a leap year"
    );
    assert_eq!(
        get(&app, "/api/sql?limit=500&q=SELECT%201").await.json()["truncated"],
        false
    );
    let parse = sql("/api/sql", &[], "SELECT * FRO wards").await.json();
    assert!(
        parse["line"].is_u64() && parse["column"].is_u64(),
        "{parse}"
    );
    assert_eq!(
        sql("/api/sql?format=xml", &[], "SELECT 1").await.status,
        StatusCode::BAD_REQUEST
    );

    let off = call(
        &app,
        Method::POST,
        "/api/events",
        &[("content-type", "text/csv")],
        "x",
    )
    .await;
    assert_eq!(off.status, StatusCode::FORBIDDEN);
    let _ = std::fs::remove_dir_all(dir);
}

/// `count` new dossiers received in Phường Ninh Kiều on 1 October 2025
/// (week 40), as NDJSON.
fn received_events(batch: usize, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "{{\"event_id\":\"test-{batch}-{i}\",\"dossier_id\":\"TEST-{batch}-{i}\",\"event_type\":\"received\",\
\"occurred_at\":\"2025-10-01T09:00:00+07:00\",\"ward_code\":\"31135\",\"procedure_code\":\"2.000815\",\
\"channel\":\"online\",\"due_at\":\"2025-10-03T17:00:00+07:00\"}}\n"
            )
        })
        .collect()
}

async fn received_in_week_40(app: &Router) -> i64 {
    let answer = get(app, "/api/kpi?period=2025-W40&by=ward&ward=31135").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json()["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["ward_code"] == "31135"))
        .and_then(|r| r["received"].as_i64())
        .expect("Ninh Kiều's row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_events_are_counted_exactly_once_while_others_read() {
    let (app, _state, dir) = server("ingest", Some(TOKEN)).await;
    let ndjson = [("content-type", "application/x-ndjson")];
    let bearer = format!("Bearer {TOKEN}");
    let auth = |extra: &[(&'static str, &'static str)]| {
        let mut headers: Vec<(&str, String)> = vec![("authorization", bearer.clone())];
        headers.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        headers
    };
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let app = app.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call(&app, Method::POST, "/api/events", &headers, &body).await
        }
    };

    let before = received_in_week_40(&app).await;
    let wrong = call(
        &app,
        Method::POST,
        "/api/events",
        &[("authorization", "Bearer nope"), ndjson[0]],
        "{}",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let no_type = post(auth(&[]), received_events(0, 1)).await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let too_big = post(auth(&ndjson), "x".repeat(2 * 1024 * 1024)).await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.text()
    );

    // Readers keep reading while batches are posted.
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let uris = [
                    "/?period=2025-W40",
                    "/api/kpi?period=2025-W40&by=ward",
                    "/chart/overview/trend.svg?period=2025-W40",
                    "/ranking?period=2025-W40",
                ];
                for round in 0..6 {
                    let uri = uris[(i + round) % uris.len()];
                    let answer = get(&app, uri).await;
                    assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text());
                }
            })
        })
        .collect();
    let (batches, per_batch) = (4, 5);
    let writers: Vec<_> = (1..=batches)
        .map(|batch| tokio::spawn(post(auth(&ndjson), received_events(batch, per_batch))))
        .collect();
    for writer in writers {
        let answer = writer.await.expect("writer");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json()["accepted"].as_u64(), Some(per_batch as u64));
    }
    for reader in readers {
        reader.await.expect("reader");
    }
    let after = received_in_week_40(&app).await;
    assert_eq!(after, before + (batches * per_batch) as i64);

    // The same batch again: all duplicates, the figures unchanged.
    let again = post(auth(&ndjson), received_events(1, per_batch)).await;
    assert_eq!(again.json()["duplicate"].as_u64(), Some(per_batch as u64));
    assert_eq!(received_in_week_40(&app).await, after);

    // A CSV body goes through the same validation: a bad ward is quarantined.
    let csv = "event_id,dossier_id,event_type,occurred_at,ward_code,procedure_code,channel\n\
               csv-1,CSV-1,received,2025-10-01T10:00:00+07:00,99999,2.000815,direct\n";
    let csv_answer = post(auth(&[("content-type", "text/csv")]), csv.to_owned()).await;
    assert_eq!(csv_answer.status, StatusCode::OK, "{}", csv_answer.text());
    assert_eq!(csv_answer.json()["rejected"].as_u64(), Some(1));
    let quality = get(&app, "/quality").await.text();
    assert!(
        quality.contains("http-post-"),
        "the ingest is listed on the data-quality page"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_console_lists_the_catalogue_runs_queries_and_downloads_them() {
    let (app, _state, dir) = server_with_timeout("console", None, Duration::from_secs(300)).await;
    let catalogue = chiso_engine::catalogue::Catalogue::builtin().expect("catalogue");
    let page = get(&app, "/sql").await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.text();
    for table in ["events", "dossiers", "wards", "calendar", "quarantine"] {
        assert!(
            page.contains(&format!("<code>{table}</code>")),
            "no {table}"
        );
    }
    assert!(
        page.contains("<code>effective_due_at</code>"),
        "columns are listed"
    );
    assert!(page.contains("kpi_series(grain, by, from, to [, ward])"));
    // Every worked example is offered, runs, and is in docs/sql.md.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sql.md"))
        .expect("docs/sql.md");
    for example in &catalogue.examples {
        let link = serde_urlencoded::to_string([("q", example.sql.trim())]).expect("query");
        assert!(page.contains(&link.replace('&', "&amp;")), "{}", example.id);
        let answer = call(&app, Method::POST, "/api/sql", &[], &example.sql).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {}",
            example.id,
            answer.text()
        );
        assert!(
            docs.contains(example.sql.trim()),
            "docs/sql.md lacks the example {}",
            example.id
        );
    }
    for table in &catalogue.tables {
        assert!(
            docs.contains(&format!("`{}`", table.name)),
            "docs/sql.md lacks {}",
            table.name
        );
    }
    for function in &catalogue.functions {
        assert!(
            docs.contains(&function.signature),
            "docs/sql.md lacks {}",
            function.signature
        );
    }

    // A query: its rows with the time, and its downloads.
    let sql = "SELECT ward_code, ward_name, received, on_time_rate FROM kpi('2025-W40', 'ward') ORDER BY ward_code";
    let query = serde_urlencoded::to_string([("q", sql)]).expect("query");
    let shown = get(&app, &format!("/sql?{query}")).await.text();
    assert!(shown.contains("103 dòng"), "{shown}");
    assert!(shown.contains("Phường Ninh Kiều"));
    assert!(shown.contains(" ms</span>"));
    let english = get(&app, &format!("/sql?{query}&lang=en")).await.text();
    assert!(english.contains("103 rows"));
    let refused = get(&app, "/sql?q=DROP%20TABLE%20events").await.text();
    assert!(
        refused.contains("sql-error") && refused.contains("read-only"),
        "{refused}"
    );
    let many = get(
        &app,
        "/sql?q=SELECT%20*%20FROM%20calendar%20CROSS%20JOIN%20channels",
    )
    .await
    .text();
    assert!(
        many.contains("Hiển thị 1000 dòng đầu"),
        "a long result shows its first rows"
    );

    // The XLSX download has real numbers, rates as percentages.
    let xlsx = get(&app, &format!("/api/sql?format=xlsx&{query}")).await;
    assert_eq!(xlsx.status, StatusCode::OK, "{}", xlsx.text());
    assert!(xlsx.content_type.contains("spreadsheetml"));
    let expected = call(&app, Method::POST, "/api/sql", &[], sql).await.json();
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.body)).expect("an XLSX file");
    let range = calamine::Reader::worksheet_range(&mut workbook, "chiso").expect("the sheet");
    let rows: Vec<_> = range.rows().collect();
    assert_eq!(rows.len(), 104);
    assert_eq!(rows[0][3].to_string(), "on_time_rate");
    for (row, want) in rows[1..]
        .iter()
        .zip(expected["rows"].as_array().expect("rows"))
    {
        assert_eq!(
            row[0].to_string(),
            want["ward_code"].as_str().expect("code")
        );
        assert_eq!(
            row[1].to_string(),
            want["ward_name"].as_str().expect("name")
        );
        assert_eq!(
            row[2].as_f64(),
            want["received"].as_f64(),
            "received is a number"
        );
        let rate = want["on_time_rate"].as_f64().map(|r| r / 100.0);
        match (row[3].as_f64(), rate) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-12),
            (got, want) => assert_eq!(got, want, "{row:?}"),
        }
    }
    // A download of millions of rows streams: memory does not grow with it.
    let request = Request::builder()
        .uri("/api/sql?format=csv&q=SELECT%20value%2C%20value%20*%202%20AS%20twice%20FROM%20generate_series(1%2C%2010000000)")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let resident_before = resident_bytes();
    let mut grown = 0u64;
    let mut received = 0u64;
    let mut lines = 0u64;
    let mut body = response.into_body().into_data_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.expect("chunk");
        received += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        grown = grown.max(resident_bytes().saturating_sub(resident_before));
    }
    assert_eq!(lines, 10_000_001);
    assert!(received > 150_000_000, "{received}");
    assert!(
        grown < 100_000_000,
        "memory grew by {grown} bytes while {received} streamed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_download_as_documents_and_the_archive_lists_its_packs() {
    let (app, state, dir) = server("documents", None).await;
    let ranking = get(&app, "/ranking?period=2025-W40&kind=xa").await.text();
    for link in [
        "/export/ranking.pdf?period=2025-W40&amp;kind=xa",
        "/export/ranking.xlsx?period=2025-W40&amp;kind=xa",
        "/export/ranking.csv?period=2025-W40&amp;kind=xa",
        "/pack/city.pdf?period=2025-W40&amp;kind=xa",
    ] {
        assert!(ranking.contains(link), "the ranking page lacks {link}");
    }
    let pdf = get(&app, "/export/ranking.pdf?period=2025-W40&kind=xa").await;
    assert_eq!(pdf.status, StatusCode::OK, "{}", pdf.text());
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.body.starts_with(b"%PDF"));
    // The spreadsheet holds the page's rows with its filter: communes only.
    let xlsx = get(&app, "/export/ranking.xlsx?period=2025-W40&kind=xa").await;
    assert_eq!(xlsx.status, StatusCode::OK, "{}", xlsx.text());
    let names = sheet_column(xlsx.body, "Bảng xếp hạng", "Xã, phường");
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("Xã ")),
        "{names:?}"
    );
    let csv = get(&app, "/export/ranking.csv?period=2025-W40&kind=xa").await;
    assert_eq!(csv.status, StatusCode::SEE_OTHER);
    let ward = get(&app, "/export/ward.pdf?period=2025-09&ward=31135&lang=en").await;
    assert_eq!(ward.status, StatusCode::OK, "{}", ward.text());
    for (uri, status, message) in [
        (
            "/pack/ward.pdf?period=2025-W40",
            StatusCode::BAD_REQUEST,
            "ward=CODE",
        ),
        (
            "/pack/ward.pdf?period=2025-W40&ward=99999",
            StatusCode::NOT_FOUND,
            "99999",
        ),
        (
            "/pack/nope.pdf?period=2025-W40",
            StatusCode::NOT_FOUND,
            "city, ward",
        ),
        (
            "/pack/city.docx?period=2025-W40",
            StatusCode::BAD_REQUEST,
            ".pdf",
        ),
        (
            "/export/ward.pdf?period=2025-W40",
            StatusCode::BAD_REQUEST,
            "ward=CODE",
        ),
        ("/reports/2025-W52/..%2Fcity", StatusCode::NOT_FOUND, "no"),
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, status, "{uri}: {}", answer.text());
        assert!(answer.text().contains(message), "{uri}: {}", answer.text());
    }
    let pack = get(&app, "/pack/ward.xlsx?period=2025-09&ward=31135").await;
    assert_eq!(pack.status, StatusCode::OK, "{}", pack.text());

    // The archive: what the schedule wrote, listed and downloadable.
    let engine = state.current_engine().1;
    let mut city_only = Dashboards::builtin().expect("dashboards");
    city_only.packs.retain(|p| !p.per_ward);
    let archive = chiso_report::archive::Archive::new(dir.join("reports"));
    let week = chiso_report::archive::week_ended(engine.now());
    archive
        .write_period(&engine, &city_only, week)
        .await
        .expect("packs written");
    let listing = get(&app, "/reports").await.text();
    assert!(
        listing.contains("/reports/2025-W52/chiso-city-2025-W52.pdf"),
        "{listing}"
    );
    let file = get(&app, "/reports/2025-W52/chiso-city-2025-W52.xlsx").await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.content_type.contains("spreadsheetml"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// This process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The browser to drive: `CHISO_CHROMIUM`, or `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHISO_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on `url` with `extra` arguments: (stdout, stderr).
fn run_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    extra: &[String],
) -> (String, String) {
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--window-size=1366,2200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`run_chromium`] on a blocking thread.
async fn in_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    argument: String,
) -> (String, String) {
    let (browser, profile, url) = (browser.to_owned(), profile.to_owned(), url.to_owned());
    tokio::task::spawn_blocking(move || run_chromium(&browser, &profile, &url, &[argument]))
        .await
        .expect("chromium task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_headless_chromium_without_console_errors() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CHISO_REQUIRE_BROWSER").is_none(),
            "CHISO_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium)"
        );
        eprintln!(
            "skipped: no chromium on the PATH (apt-get install chromium, or set CHISO_CHROMIUM)"
        );
        return;
    };
    let (app, _state, dir) = server("browser", None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("browser-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let pages = [
        ("overview", "/?period=2025-W40", "Giải quyết đúng hạn"),
        (
            "overview-en",
            "/?period=2025-W40&lang=en",
            "Resolved on time",
        ),
        ("ranking", "/ranking?period=2025-W40", "Phường Cái Khế"),
        ("ward", "/ward/31135?period=2025-09", "Phường Ninh Kiều"),
        ("flags", "/flags?period=2025-W40", "Cảnh báo"),
        ("quality", "/quality", "Chất lượng dữ liệu"),
        ("reports", "/reports", "Chưa có báo cáo nào"),
        (
            "sql-console",
            "/sql?q=SELECT%20ward_name%2C%20on_time_rate%20FROM%20kpi('2025-W40'%2C%20'ward')%20ORDER%20BY%20ward_code",
            "Phường Ninh Kiều",
        ),
        ("not-found", "/ward/00000", "Không tìm thấy"),
    ];
    for (name, path, expected) in pages {
        let url = format!("http://{addr}{path}");
        let profile = dir.join(format!("profile-{name}"));
        let (dom, log) = in_chromium(&browser, &profile, &url, "--dump-dom".to_owned()).await;
        assert!(
            dom.contains(expected),
            "{name}: the rendered page lacks `{expected}`"
        );
        let problems: Vec<&str> = log
            .lines()
            .filter(|line| {
                (line.contains("CONSOLE") && (line.contains("Error") || line.contains("Uncaught")))
                    // The error page itself answers 404, as it should.
                    || (line.contains("Failed to load resource") && name != "not-found")
            })
            .collect();
        assert!(
            problems.is_empty(),
            "{name}: console errors:\n{}",
            problems.join("\n")
        );
        let shot = shots.join(format!("{name}.png"));
        let argument = format!("--screenshot={}", shot.display());
        let profile = dir.join(format!("profile-{name}-shot"));
        in_chromium(&browser, &profile, &url, argument).await;
        assert!(
            shot.is_file(),
            "{name}: no screenshot at {}",
            shot.display()
        );
    }
    server.abort();
    eprintln!("screenshots in {}", shots.display());
    let _ = std::fs::remove_dir_all(dir);
}

/// A ward's officer signs in through the login page in Chromium (a wrong
/// password first), lands on the page they asked for, sees who they are
/// and a way out, is refused another ward's page, and signs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_officer_signs_in_and_out_through_the_login_page_in_chromium() {
    use chiso_users::{Hash, Role, Users};
    let (Some(chromium), Some(driver)) = (chromium(), webdriver::chromedriver()) else {
        assert!(
            std::env::var_os("CHISO_REQUIRE_BROWSER").is_none(),
            "CHISO_REQUIRE_BROWSER is set but chromium or chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: no chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let folder = std::env::temp_dir().join(format!("chiso-browser-users-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("dir");
    let mut users = Users::load_or_new(&folder.join("users")).expect("users");
    let ninh_kieu = chiso_core::wards::WardRegistry::builtin()
        .code("31135")
        .expect("ward");
    users
        .set("ninhkieu", Role::Ward, vec![ninh_kieu])
        .expect("user");
    users
        .set_password("ninhkieu", Hash::new("mat-khau-phuong").expect("hash"))
        .expect("password");
    let (app, _state, dir) = server_with("browser-sign-in", None, QUERY_TIMEOUT, Some(users)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let profile = dir.join("profile-sign-in");
    tokio::task::spawn_blocking(move || {
        let browser = webdriver::Browser::start(&driver, &chromium, &profile);
        let wanted = format!("http://{addr}/ward/31135?period=2025-W40");
        browser.open(&wanted);
        assert!(browser.url().contains("/login?next="), "{}", browser.url());
        assert!(browser.source().contains("Đăng nhập"));
        browser.type_into("input[name=name]", "ninhkieu");
        browser.type_into("input[name=password]", "sai");
        browser.click("button[type=submit]");
        // A click may return before the next page has loaded: wait for it.
        let wait_for = |what: &str, ready: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !ready() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "waited in vain for {what}: {}",
                    browser.source()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        wait_for("the refusal", &|| {
            browser
                .source()
                .contains("Tên đăng nhập hoặc mật khẩu không đúng")
        });
        browser.type_into("input[name=name]", "ninhkieu");
        browser.type_into("input[name=password]", "mat-khau-phuong");
        browser.click("button[type=submit]");
        wait_for("the page asked for", &|| browser.url() == wanted);
        assert!(browser.source().contains("Phường Ninh Kiều"));
        let session = browser
            .cookies()
            .into_iter()
            .find(|c| c["name"] == "chiso_session")
            .expect("a session cookie");
        assert_eq!(session["httpOnly"], true, "{session}");
        assert_eq!(session["sameSite"], "Lax", "{session}");
        // The header's account box comes from a script.
        wait_for("the sign-out button", &|| {
            browser.source().contains("Đăng xuất")
        });
        assert!(browser.source().contains("ninhkieu · phường/xã 31135"));
        // The page lists the dossiers due soon that the API gives for the
        // week's T.
        let page = browser.source();
        assert!(page.contains("Hồ sơ sắp đến hạn trong 2 ngày làm việc tới"));
        browser.open(&format!(
            "http://{addr}/api/due-soon?ward=31135&at=2025-10-06T00:00:00%2B07:00"
        ));
        let answer = browser.source();
        let json = &answer[answer.find('{').expect("JSON")..=answer.rfind('}').expect("JSON")];
        let due: serde_json::Value = serde_json::from_str(json).expect("the API's JSON");
        let rows = due["rows"].as_array().expect("rows");
        assert!(!rows.is_empty(), "{due}");
        for row in rows.iter().take(20) {
            let id = row["dossier_id"].as_str().expect("an id");
            assert!(page.contains(id), "the ward page lacks {id}, due soon");
        }

        browser.open(&format!("http://{addr}/ward/31120?period=2025-W40"));
        let refused = browser.source();
        assert!(refused.contains("Không có quyền xem"), "{refused}");
        assert!(!refused.contains("Phường Cái Khế"));

        browser.open(&wanted);
        wait_for("the sign-out button", &|| {
            browser.source().contains("Đăng xuất")
        });
        browser.click("form.account button");
        wait_for("the login page", &|| browser.url().ends_with("/login"));
        browser.open(&wanted);
        assert!(
            browser.url().contains("/login?next="),
            "signed out, yet {}",
            browser.url()
        );
    })
    .await
    .expect("the browser steps");
    server.abort();
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(folder);
}

/// The Set-Cookie value of `name` in an answer.
fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// With `--users`, every route wants a signed-in reader, each role does
/// what it may and each ward user sees their ward only, on pages, the API,
/// downloads and SQL; the login page signs in and out with a cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_roles_and_ward_scope_hold_on_every_route() {
    use chiso_users::{Hash, Role, Users};
    let dir = std::env::temp_dir().join(format!("chiso-server-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("users");
    let mut users = Users::load_or_new(&path).expect("users");
    let ninh_kieu = chiso_core::wards::WardRegistry::builtin()
        .code("31135")
        .expect("ward");
    let mut tokens = std::collections::HashMap::new();
    for (name, role, wards) in [
        ("quantri", Role::Admin, vec![]),
        ("ninhkieu", Role::Ward, vec![ninh_kieu]),
        ("lanhdao", Role::Leader, vec![]),
        ("phantich", Role::Analyst, vec![]),
    ] {
        users.set(name, role, wards).expect("user");
        tokens.insert(name, users.new_token(name).expect("token"));
    }
    users
        .set_password("ninhkieu", Hash::new("mật khẩu phường").expect("hash"))
        .expect("password");
    let (app, state, store_dir) = server_with("users", None, QUERY_TIMEOUT, Some(users)).await;
    let bearer = |name: &str| format!("Bearer {}", tokens[name]);
    let as_user = |name: &'static str, method: Method, uri: &'static str, body: &'static str| {
        let (app, auth) = (app.clone(), bearer(name));
        async move {
            call(
                &app,
                method,
                uri,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "text/plain"),
                ],
                body,
            )
            .await
        }
    };

    // Nobody signed in: 401 for programs, the login page for people.
    let api = get(&app, "/api/kpi?period=2025-W40").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.headers.contains_key(header::WWW_AUTHENTICATE));
    let page = get(&app, "/ward/31135?period=2025-W40").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers[header::LOCATION],
        "/login?next=%2Fward%2F31135%3Fperiod%3D2025-W40"
    );
    let wrong_token = call(
        &app,
        Method::GET,
        "/api/kpi",
        &[("authorization", "Bearer chiso_00")],
        "",
    )
    .await;
    assert_eq!(wrong_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);

    // A ward's officer sees their ward, on every route.
    let kpi = as_user(
        "ninhkieu",
        Method::GET,
        "/api/kpi?period=2025-W40&by=ward",
        "",
    )
    .await;
    assert_eq!(kpi.status, StatusCode::OK, "{}", kpi.text());
    let rows = kpi.json()["rows"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["ward_code"], "31135");
    let other = as_user(
        "ninhkieu",
        Method::GET,
        "/api/kpi?period=2025-W40&ward=31120",
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let other_page = as_user("ninhkieu", Method::GET, "/ward/31120?period=2025-W40", "").await;
    assert_eq!(other_page.status, StatusCode::FORBIDDEN);
    let own_page = as_user("ninhkieu", Method::GET, "/ward/31135?period=2025-W40", "").await;
    assert_eq!(own_page.status, StatusCode::OK);
    let sql = as_user(
        "ninhkieu",
        Method::POST,
        "/api/sql?format=csv",
        "SELECT count(DISTINCT ward_code) AS n FROM events",
    )
    .await;
    assert_eq!(sql.text(), "n\n1\n");
    let quarantine = as_user(
        "ninhkieu",
        Method::POST,
        "/api/sql",
        "SELECT * FROM quarantine",
    )
    .await;
    assert_eq!(quarantine.status, StatusCode::BAD_REQUEST);
    // Due soon: without a ward, their own ward's dossiers only; another
    // ward's list is refused; the alerts sent are not theirs to read.
    let due = as_user(
        "ninhkieu",
        Method::GET,
        "/api/due-soon?at=2025-10-06T00:00:00%2B07:00",
        "",
    )
    .await;
    assert_eq!(due.status, StatusCode::OK, "{}", due.text());
    let due = due.json();
    let rows = due["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{due}");
    assert!(rows.iter().all(|row| row["ward_code"] == "31135"), "{due}");
    let other_due = as_user("ninhkieu", Method::GET, "/api/due-soon?ward=31120", "").await;
    assert_eq!(other_due.status, StatusCode::FORBIDDEN);
    let soon_in_sql = as_user(
        "ninhkieu",
        Method::POST,
        "/api/sql?format=csv",
        "SELECT count(DISTINCT ward_code) AS n FROM due_soon('2025-10-06T00:00:00+07:00', 2)",
    )
    .await;
    assert_eq!(soon_in_sql.text(), "n\n1\n");
    let alerts = as_user("ninhkieu", Method::POST, "/api/sql", "SELECT * FROM alerts").await;
    assert_eq!(alerts.status, StatusCode::BAD_REQUEST);
    let download = as_user(
        "ninhkieu",
        Method::GET,
        "/api/panels/ranking/wards?period=2025-W40&format=csv",
        "",
    )
    .await;
    assert_eq!(download.text().lines().count(), 2, "{}", download.text());
    // The archive lists a ward's officer their ward's packs, and serves no
    // other ward's.
    let week = store_dir.join("reports/2025-W40");
    std::fs::create_dir_all(&week).expect("archive");
    for name in [
        "chiso-city-2025-W40.pdf",
        "chiso-ward-31120-2025-W40.pdf",
        "chiso-ward-31135-2025-W40.pdf",
    ] {
        std::fs::write(week.join(name), b"%PDF").expect("pack");
    }
    let archive = as_user("ninhkieu", Method::GET, "/reports", "")
        .await
        .text();
    assert!(
        archive.contains("chiso-ward-31135-2025-W40.pdf"),
        "{archive}"
    );
    assert!(!archive.contains("chiso-ward-31120") && !archive.contains("chiso-city"));
    let theirs = as_user(
        "ninhkieu",
        Method::GET,
        "/reports/2025-W40/chiso-ward-31120-2025-W40.pdf",
        "",
    )
    .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let own = as_user(
        "ninhkieu",
        Method::GET,
        "/reports/2025-W40/chiso-ward-31135-2025-W40.pdf",
        "",
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    let leader = as_user("lanhdao", Method::GET, "/reports", "").await.text();
    assert!(leader.contains("chiso-city-2025-W40.pdf") && leader.contains("chiso-ward-31120"));
    // A ward's officer sends events of their ward; rows of another ward go
    // to the quarantine. A leader sends none.
    let upload = format!(
        "{}{}",
        received_events(7, 1),
        received_events(8, 1).replace("31135", "31120")
    );
    let sent = call(
        &app,
        Method::POST,
        "/api/events",
        &[
            ("authorization", bearer("ninhkieu").as_str()),
            ("content-type", "application/x-ndjson"),
        ],
        &upload,
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text());
    let report = sent.json();
    assert_eq!(
        (&report["accepted"], &report["rejected"]),
        (&1.into(), &1.into())
    );
    assert_eq!(report["quarantined_by_reason"]["ward_not_permitted"], 1);
    let events = as_user("lanhdao", Method::POST, "/api/events", "").await;
    assert_eq!(events.status, StatusCode::FORBIDDEN);

    // A leader reads every ward, and writes no SQL.
    let all = as_user(
        "lanhdao",
        Method::GET,
        "/api/kpi?period=2025-W40&by=ward",
        "",
    )
    .await;
    assert_eq!(all.json()["rows"].as_array().expect("rows").len(), 103);
    for (method, uri) in [(Method::POST, "/api/sql"), (Method::GET, "/sql")] {
        let refused = as_user("lanhdao", method, uri, "SELECT 1").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri}");
    }
    // An analyst writes SQL over every ward, not over the quarantine; an
    // administrator reads it.
    let wards = as_user(
        "phantich",
        Method::POST,
        "/api/sql?format=csv",
        "SELECT count(DISTINCT ward_code) AS n FROM dossier_facts",
    )
    .await;
    assert!(
        wards
            .text()
            .lines()
            .nth(1)
            .and_then(|n| n.parse::<u32>().ok())
            > Some(90)
    );
    let quarantine = as_user(
        "phantich",
        Method::POST,
        "/api/sql",
        "SELECT * FROM quarantine",
    )
    .await;
    assert_eq!(quarantine.status, StatusCode::BAD_REQUEST);
    let quarantine = as_user(
        "quantri",
        Method::POST,
        "/api/sql",
        "SELECT count(*) FROM quarantine",
    )
    .await;
    assert_eq!(quarantine.status, StatusCode::OK, "{}", quarantine.text());

    // The login page: a CSRF cookie and field, a session cookie, logout.
    let form = get(&app, "/login?next=/ward/31135").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains("Đăng nhập"));
    let csrf_cookie = set_cookie(&form, "chiso_csrf").expect("a CSRF cookie");
    let csrf = csrf_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("value");
    let cookie = format!("chiso_csrf={csrf}");
    let post = |body: String, cookie: String| {
        let app = app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/login",
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("cookie", cookie.as_str()),
                ],
                &body,
            )
            .await
        }
    };
    let forged = post(
        "name=ninhkieu&password=x&csrf=other&next=/".to_owned(),
        cookie.clone(),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = post(
        format!("name=ninhkieu&password=sai&csrf={csrf}&next=/"),
        cookie.clone(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let signed_in = post(
        format!(
            "name=ninhkieu&password=m%E1%BA%ADt+kh%E1%BA%A9u+ph%C6%B0%E1%BB%9Dng&csrf={csrf}&next=%2Fward%2F31135"
        ),
        cookie.clone(),
    )
    .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    assert_eq!(signed_in.headers[header::LOCATION], "/ward/31135");
    let session = set_cookie(&signed_in, "chiso_session").expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let session = session.split(';').next().expect("pair").to_owned();
    let with_session = |uri: &'static str| {
        let (app, session) = (app.clone(), session.clone());
        async move { call(&app, Method::GET, uri, &[("cookie", session.as_str())], "").await }
    };
    assert_eq!(
        with_session("/ward/31135?period=2025-W40").await.status,
        StatusCode::OK
    );
    assert_eq!(
        with_session("/ward/31120?period=2025-W40").await.status,
        StatusCode::FORBIDDEN
    );
    let out = call(
        &app,
        Method::POST,
        "/logout",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", format!("{session}; {cookie}").as_str()),
        ],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        with_session("/ward/31135").await.status,
        StatusCode::SEE_OTHER
    );
    // Failed sign-ins are throttled per address: past five within a
    // minute, even the right password waits.
    for _ in 0..chiso_users::MAX_FAILURES {
        post(
            format!("name=ninhkieu&password=sai&csrf={csrf}&next=/"),
            cookie.clone(),
        )
        .await;
    }
    let throttled = post(
        format!("name=ninhkieu&password=m%E1%BA%ADt+kh%E1%BA%A9u+ph%C6%B0%E1%BB%9Dng&csrf={csrf}"),
        cookie.clone(),
    )
    .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text()
    );

    // The audit log: every request above, read back by an administrator
    // through SQL, and by nobody else. Of the six wrong passwords, the
    // sixth was refused unheard, as was the right one after it.
    state.audit().expect("an audit log").flush().await;
    let audit = |sql: &'static str| as_user("quantri", Method::POST, "/api/sql?format=csv", sql);
    let sign_ins = audit(
        "SELECT outcome, count(*) AS n FROM audit WHERE user_name = 'ninhkieu' \
         AND action = 'sign_in' GROUP BY outcome ORDER BY outcome",
    )
    .await;
    assert_eq!(
        sign_ins.text(),
        format!(
            "outcome,n\nfailed,{}\nok,1\nrefused,2\n",
            chiso_users::MAX_FAILURES
        )
    );
    for (sql, expected) in [
        // The other ward's page, by token and by session.
        (
            "SELECT count(*) AS n FROM audit WHERE user_name = 'ninhkieu' AND role = 'ward' \
             AND action = 'page' AND outcome = 'refused' AND status = 403 \
             AND target = '/ward/31120?period=2025-W40'",
            "2",
        ),
        // The SQL text sent as a body.
        (
            "SELECT count(*) AS n FROM audit WHERE user_name = 'ninhkieu' AND action = 'sql' \
             AND outcome = 'ok' AND target = 'SELECT count(DISTINCT ward_code) AS n FROM events'",
            "1",
        ),
        // A refused query, with the reason.
        (
            "SELECT count(*) AS n FROM audit WHERE user_name = 'lanhdao' AND action = 'sql' \
             AND outcome = 'refused' AND detail LIKE '%SQL%'",
            "2",
        ),
        // The ingest, by its id, with its counts.
        (
            "SELECT count(*) AS n FROM audit a JOIN ingests i ON a.target = i.ingest_id \
             WHERE a.action = 'ingest' AND a.user_name = 'ninhkieu' \
             AND a.detail LIKE '%1 accepted%1 rejected'",
            "1",
        ),
        // A wrong token, and nobody at all.
        (
            "SELECT count(*) AS n FROM audit WHERE user_name IS NULL AND outcome = 'failed' \
             AND status = 401 AND target = '/api/kpi'",
            "1",
        ),
        (
            "SELECT count(*) AS n FROM audit WHERE user_name IS NULL AND outcome = 'refused' \
             AND target IN ('/api/kpi?period=2025-W40', '/ward/31135?period=2025-W40')",
            "2",
        ),
        // Health checks and static files are not recorded.
        (
            "SELECT count(*) AS n FROM audit WHERE target LIKE '/health%' OR target LIKE '/static/%'",
            "0",
        ),
    ] {
        let answer = audit(sql).await;
        assert_eq!(answer.text(), format!("n\n{expected}\n"), "{sql}");
    }
    for name in ["phantich", "ninhkieu"] {
        let refused = as_user(name, Method::POST, "/api/sql", "SELECT count(*) FROM audit").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{name}");
    }
    let _ = std::fs::remove_dir_all(&store_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A webhook receiver on loopback: answers 500 to the first message, then
/// 200, and keeps what it was sent (path and JSON body).
async fn webhook_receiver() -> (
    String,
    Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
    tokio::task::JoinHandle<()>,
) {
    use axum::extract::State;
    type Received = Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;
    let received: Received = Arc::default();
    async fn receive(
        State(received): State<Received>,
        uri: axum::http::Uri,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let mut received = received.lock().expect("the received messages");
        let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        received.push((uri.path().to_owned(), value));
        if received.len() == 1 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
    let app = Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), received, task)
}

/// Alerts reach a webhook once per rule, recipient and day, across a
/// restart, after a retry when the receiver first fails; a ward's message
/// lists its own dossiers due soon, and the `alerts` table tells it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_sent_once_a_day_retried_and_recorded() {
    use chiso_engine::Engine;
    use chiso_server::alerts::Alerts;
    let (_app, _state, dir) = server("alerts", None).await;
    let store = dir.join("city");
    let (base, received, receiver) = webhook_receiver().await;
    let rules = dir.join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            "base_url = \"https://review.example.vn\"\n\
             [[rule]]\nid = \"due-soon\"\nkind = \"due_soon\"\nabove = 0\ndays = 2\nat = \"07:30\"\n\
             wards = {{ \"31135\" = [\"{base}/ninh-kieu\"] }}\ncity = [\"{base}/city\"]\n"
        ),
    )
    .expect("rules");
    let engine_at = |at: &'static str| {
        let store = store.clone();
        async move {
            let now = chiso_core::time::parse_timestamp(at).expect("instant");
            Engine::open(
                &store,
                EngineOptions {
                    now: Some(now),
                    ..Default::default()
                },
            )
            .await
            .expect("engine")
        }
    };
    let calendar = chiso_core::calendar::WorkCalendar::builtin;

    // Monday 2025-10-06, before the rule's time: nothing.
    let alerts = Alerts::load(&rules, calendar()).expect("rules");
    let early = engine_at("2025-10-06T07:00:00+07:00").await;
    assert_eq!(alerts.check(&early, &store).await.expect("checked"), 0);
    assert!(received.lock().expect("the received messages").is_empty());

    // At 08:00: the ward's message (refused once, then taken) and the city's.
    let morning = engine_at("2025-10-06T08:00:00+07:00").await;
    assert_eq!(alerts.check(&morning, &store).await.expect("checked"), 2);
    let messages = received.lock().expect("the received messages").clone();
    assert_eq!(
        messages.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        ["/ninh-kieu", "/ninh-kieu", "/city"]
    );
    let ward = &messages[1].1;
    assert_eq!(ward["ward_code"], "31135");
    assert_eq!(ward["rule"], "due-soon");
    let text = ward["text"].as_str().expect("text");
    assert!(text.starts_with("Phường Ninh Kiều: "), "{text}");
    assert!(
        text.contains("https://review.example.vn/ward/31135"),
        "{text}"
    );
    // Its dossiers are the ward's own, as due_soon lists them.
    let due = morning
        .sql("SELECT dossier_id FROM due_soon('2025-10-06T08:00:00+07:00', 2, '31135') ORDER BY effective_due_at, dossier_id")
        .await
        .expect("due soon")
        .collect()
        .await
        .expect("rows");
    let due = chiso_dashboard::Table::from_batches(&due, usize::MAX).expect("table");
    let listed: Vec<String> = ward["dossiers"]
        .as_array()
        .expect("dossiers")
        .iter()
        .map(|d| d["dossier_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = due
        .rows
        .iter()
        .take(listed.len())
        .map(|r| r[0].raw_text())
        .collect();
    assert!(!listed.is_empty());
    assert_eq!(listed, expected);
    assert_eq!(ward["value"].as_f64(), Some(due.rows.len() as f64));
    let city = &messages[2].1;
    assert!(city["ward_code"].is_null());
    assert!(city["wards"].as_array().expect("wards").len() > 1, "{city}");

    // A restart the same morning sends nothing again.
    let restarted = Alerts::load(&rules, calendar()).expect("rules");
    let later = engine_at("2025-10-06T09:00:00+07:00").await;
    assert_eq!(restarted.check(&later, &store).await.expect("checked"), 0);
    assert_eq!(received.lock().expect("the received messages").len(), 3);

    // The table says what went where.
    let rows = chiso_store::Store::open(&store)
        .await
        .expect("store")
        .query("SELECT day, rule, coalesce(ward_code, 'city') AS ward, status, attempts FROM alerts ORDER BY ward")
        .await
        .expect("alerts table");
    let rows = chiso_dashboard::Table::from_batches(&rows, usize::MAX).expect("table");
    let rows: Vec<String> = rows
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.raw_text()).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        rows,
        [
            "2025-10-06 due-soon 31135 sent 2",
            "2025-10-06 due-soon city sent 1"
        ]
    );
    receiver.abort();
    let _ = std::fs::remove_dir_all(dir);
}
