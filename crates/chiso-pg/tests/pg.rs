//! Real Postgres clients against a real server on loopback: `psql` (Debian's
//! postgresql-client) and Python's psycopg in a venv, on the built-in sample
//! city. Without psql the psql part says it skipped, unless
//! CHISO_REQUIRE_PSQL is set (CI sets it).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chiso_engine::{Engine, QueryGate, QueryLimits};
use chiso_pg::{Hash, PgServer, Users};
use chiso_test_support::SampleCity;

const USER: &str = "analyst";
/// A ward's officer of Phường Ninh Kiều (31135), and a leader.
const WARD_USER: &str = "ninhkieu";
const LEADER: &str = "lanhdao";
const PASSWORD: &str = "mật-khẩu đúng 2025";

struct Server {
    port: u16,
    engine: Engine,
    _city: SampleCity,
}

/// A copy of the sample city, a users file, and the Postgres side over them.
async fn start(limits: QueryLimits) -> Server {
    let city = SampleCity::open("pg").await;
    let engine = city.engine.clone();
    let mut users = Users::default();
    let ward = chiso_core::wards::WardRegistry::builtin()
        .code("31135")
        .expect("a ward");
    for (name, role, wards) in [
        (USER, chiso_users::Role::Admin, vec![]),
        (WARD_USER, chiso_users::Role::Ward, vec![ward]),
        (LEADER, chiso_users::Role::Leader, vec![]),
    ] {
        users.set(name, role, wards).expect("user");
        users
            .set_password(name, Hash::new(PASSWORD).expect("hash"))
            .expect("password");
    }
    let users_file = city.dir.path("pg-users");
    users.save(&users_file).expect("save users");
    let users = Users::load(&users_file).expect("load users");
    let source = {
        let engine = engine.clone();
        move || ("v1".to_owned(), engine.clone())
    };
    let server =
        PgServer::new(Arc::new(source), users, QueryGate::new(limits), None).expect("server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(server.serve(listener, None, std::future::pending()));
    Server {
        port,
        engine,
        _city: city,
    }
}

fn psql_available() -> bool {
    chiso_test_support::tool_available(
        "psql",
        "--version",
        "CHISO_REQUIRE_PSQL",
        "postgresql-client",
    )
}

impl Server {
    /// `psql -c COMMAND`, unaligned, tuples only, as the test's user with
    /// `password`.
    async fn psql_as(&self, password: &str, command: &str) -> Output {
        self.psql_user(USER, password, command).await
    }

    /// The same as `user`.
    async fn psql_user(&self, user: &str, password: &str, command: &str) -> Output {
        let port = self.port.to_string();
        let command = command.to_owned();
        let password = password.to_owned();
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || {
            Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", &user, "-d", "chiso"])
                .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", &command])
                .env("PGPASSWORD", password)
                .env("PGCONNECT_TIMEOUT", "10")
                .output()
                .expect("psql runs")
        })
        .await
        .expect("psql task")
    }

    /// A psql script from standard input: one statement at a time, going
    /// on after errors.
    async fn psql_script(&self, script: &str) -> Output {
        let port = self.port.to_string();
        let script = script.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", USER, "-d", "chiso"])
                .args(["-X", "-A", "-t", "-f", "-"])
                .env("PGPASSWORD", PASSWORD)
                .env("PGCONNECT_TIMEOUT", "10")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("psql runs");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())
                .expect("script");
            child.wait_with_output().expect("psql ends")
        })
        .await
        .expect("psql task")
    }

    async fn psql(&self, command: &str) -> String {
        let output = self.psql_as(PASSWORD, command).await;
        assert!(
            output.status.success(),
            "psql -c {command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    async fn psql_error(&self, command: &str) -> String {
        let output = self.psql_as(PASSWORD, command).await;
        assert!(!output.status.success(), "psql -c {command:?} passed");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// The engine's own answer, as psql prints it: `a|b` lines.
    async fn expected(&self, sql: &str) -> String {
        let batches = self
            .engine
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("rows");
        let mut out = String::new();
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| {
                    arrow::util::display::ArrayFormatter::try_new(
                        c.as_ref(),
                        &arrow::util::display::FormatOptions::default(),
                    )
                    .expect("formatter")
                })
                .collect();
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
        }
        out
    }
}

/// `a|b` lines equal cell by cell, numbers by value (`100` is `100.0`).
fn assert_same_rows(got: &str, expected: &str, what: &str) {
    let cells = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|line| line.split('|').map(str::to_owned).collect())
            .collect()
    };
    let (got_cells, expected_cells) = (cells(got), cells(expected));
    let same = got_cells.len() == expected_cells.len()
        && got_cells.iter().zip(&expected_cells).all(|(a, b)| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x == y
                        || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(p), Ok(q)) if p == q)
                })
        });
    assert!(same, "{what}: got\n{got}\nexpected\n{expected}");
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// A query that would run for many minutes, in small steps.
const ENDLESS: &str =
    "SELECT count(*) FROM generate_series(1, 100000000000) t WHERE t.value % 7 = 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_psycopg_connect_query_and_are_held_to_the_rules() {
    let limits = QueryLimits {
        timeout: Duration::from_secs(4),
        memory: 64 << 20,
        concurrent: 4,
    };
    let server = start(limits).await;

    if psql_available() {
        // The right password signs in; the wrong one and unknown users do not.
        assert_eq!(
            server.psql("SELECT count(*) FROM wards").await.trim(),
            "103"
        );
        let wrong = server.psql_as("wrong password", "SELECT 1").await;
        assert!(!wrong.status.success());
        let said = String::from_utf8_lossy(&wrong.stderr).to_lowercase();
        assert!(said.contains("password"), "{said}");

        // A ward's officer sees their ward's rows only, whatever they ask,
        // by the simple and the extended protocol (psql's \bind); a
        // leader does not write SQL.
        let as_ward = |sql: &'static str| server.psql_user(WARD_USER, PASSWORD, sql);
        for sql in [
            "SELECT count(DISTINCT ward_code) FROM events",
            "SELECT count(DISTINCT ward_code) FROM kpi('2025-W40', 'ward')",
            "SELECT count(DISTINCT f.ward_code) FROM events e JOIN dossier_facts f USING (dossier_id)",
        ] {
            let out = as_ward(sql).await;
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{sql}");
        }
        let quarantine = as_ward("SELECT count(*) FROM quarantine").await;
        assert!(
            !quarantine.status.success(),
            "the quarantine is not a ward's"
        );
        let leader = server.psql_user(LEADER, PASSWORD, "SELECT 1").await;
        let said = String::from_utf8_lossy(&leader.stderr);
        assert!(
            !leader.status.success() && said.contains("SQL is for"),
            "{said}"
        );

        // The catalogue as psql lists it.
        let tables = server.psql("\\dt").await;
        for table in [
            "events",
            "quarantine",
            "ingests",
            "wards",
            "calendar",
            "dossier_facts",
        ] {
            assert!(
                tables.lines().any(|l| l.split('|').nth(1) == Some(table)),
                "\\dt lacks {table}:\n{tables}"
            );
        }
        let described = server.psql("\\d events").await;
        for column in ["event_id", "dossier_id", "ward_code", "occurred_at"] {
            assert!(
                described.contains(column),
                "\\d events lacks {column}:\n{described}"
            );
        }

        // The KPI functions give what the engine gives.
        for sql in [
            "SELECT ward_code, ward_name, received, on_time_rate FROM kpi('2025-W40', 'ward') ORDER BY ward_code LIMIT 5",
            "SELECT ward_code, score_100, band FROM kpi_index('2025-09', 'portal') ORDER BY rank, ward_code LIMIT 5",
            "SELECT channel, received FROM kpi('2025-Q3', 'channel') ORDER BY channel",
            // A dictionary (event_type) and a string view (occurred_month)
            // as the stored events are read.
            "SELECT occurred_month, event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 12",
        ] {
            assert_same_rows(&server.psql(sql).await, &server.expected(sql).await, sql);
        }
        assert!(
            server
                .psql("SELECT ward_name FROM wards WHERE ward_code = '31135'")
                .await
                .contains("Phường Ninh Kiều")
        );

        // Read-only, by name, on this entry point too.
        for (sql, named) in [
            ("DROP TABLE events", "DROP TABLE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            ("INSERT INTO wards VALUES ('1')", "INSERT INTO"),
            ("DELETE FROM events", "DELETE FROM"),
            ("COPY events TO '/tmp/chiso-copy.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET datafusion"),
        ] {
            let refused = server.psql_error(sql).await;
            assert!(
                refused.contains("read-only") && refused.contains(named),
                "{sql}: {refused}"
            );
        }
        // DataFusion's own DDL is not even Postgres: it does not parse.
        server
            .psql_error("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'")
            .await;
        // Client settings are a client's own business.
        server.psql("SET application_name = 'chiso-test'").await;

        // A query that would run for minutes stops at the limit, and its
        // work stops with it.
        let started = Instant::now();
        let timed_out = server.psql_error(ENDLESS).await;
        assert!(timed_out.contains("statement timeout"), "{timed_out}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = cpu_seconds();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let busy = cpu_seconds() - before;
        assert!(
            busy < 0.6,
            "the stopped query kept {busy:.2} CPU seconds busy in 2 s"
        );

        // More memory than a query may have: a clear error, and the server
        // goes on serving.
        let too_big = server
            .psql_error(
                "SELECT cardinality(array_agg(t.value)) FROM generate_series(1, 30000000) t",
            )
            .await;
        assert!(too_big.contains("more memory than the 64 MB"), "{too_big}");
        assert_eq!(
            server.psql("SELECT count(*) FROM wards").await.trim(),
            "103"
        );

        // A cursor holds its statement's place in the gate while it lives,
        // and gives it back at its deadline even if nobody fetches.
        let script = "DECLARE a CURSOR FOR SELECT * FROM wards;\n\
                      DECLARE b CURSOR FOR SELECT * FROM wards;\n\
                      DECLARE c CURSOR FOR SELECT * FROM wards;\n\
                      DECLARE d CURSOR FOR SELECT * FROM wards;\n\
                      SELECT 'fifth';\n\
                      FETCH 2 FROM a;\n\
                      \\! sleep 5\n\
                      SELECT 'after the deadline';\n\
                      FETCH 1 FROM b;\n";
        let run = server.psql_script(script).await;
        let (out, err) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert!(err.contains("4 queries are already running"), "{err}");
        assert_eq!(
            out.lines()
                .filter(|l| l.len() > 5 && l.contains('|'))
                .count(),
            2,
            "{out}"
        );
        assert!(out.contains("after the deadline"), "{out}\n{err}");
        assert!(err.contains("statement timeout"), "{err}");
        // Ten quadrillion rows asked for: the ones there are.
        let all = server
            .psql(
                "DECLARE w CURSOR FOR SELECT ward_code FROM wards; FETCH 10000000000000000 FROM w",
            )
            .await;
        let codes = all
            .lines()
            .filter(|l| l.len() == 5 && l.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(codes.count(), 103, "{all}");
    }

    psycopg(&server).await;
    sqlalchemy_pandas_and_adbc(&server).await;
}

/// What Superset, pandas and Polars do first (issue 32): SQLAlchemy's
/// dialect reads the server version, its inspector lists tables, views and
/// columns, pandas reads a query; ADBC's PostgreSQL driver reads its type
/// table and fetches Arrow. (The inspector's keys and indexes are not
/// answered yet: issue 32.)
const BI_SCRIPT: &str = r#"
import json, sys
from urllib.parse import quote
import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import sqlalchemy as sa

port, user, password = sys.argv[1:4]
query = "SELECT ward_code, received, on_time_rate FROM kpi('2025-W40', 'ward') ORDER BY ward_code LIMIT 3"
out = {}
engine = sa.create_engine(f"postgresql+psycopg://{user}:{quote(password)}@127.0.0.1:{port}/chiso")
with engine.connect() as c:
    out["version"] = list(c.dialect.server_version_info)
    inspector = sa.inspect(c)
    out["tables"] = sorted(inspector.get_table_names())
    out["views"] = inspector.get_view_names()
    out["columns"] = [column["name"] for column in inspector.get_columns("wards")]
    # What Superset's dataset editor and DBeaver's navigator also ask: chiso
    # has no keys or indexes, and says so rather than failing.
    out["keys"] = [
        inspector.get_pk_constraint("events")["constrained_columns"],
        inspector.get_foreign_keys("events"),
        inspector.get_indexes("events"),
        inspector.get_unique_constraints("events"),
        inspector.get_check_constraints("events"),
    ]
    out["pandas"] = pd.read_sql(sa.text(query), c).values.tolist()
with adbc.connect(f"postgresql://{user}:{quote(password)}@127.0.0.1:{port}/chiso") as conn:
    with conn.cursor() as cur:
        # Rows by the query protocol: chiso does not serve COPY TO STDOUT.
        cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
        cur.execute(query)
        out["adbc"] = [list(row.values()) for row in cur.fetch_arrow_table().to_pylist()]
print(json.dumps(out, default=str))
"#;

async fn sqlalchemy_pandas_and_adbc(server: &Server) {
    let python = tokio::task::spawn_blocking(|| {
        chiso_test_support::python_with(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "py-bi",
            &[
                "sqlalchemy>=2",
                "psycopg[binary]",
                "pandas",
                "adbc-driver-postgresql",
                "pyarrow",
            ],
        )
    })
    .await
    .expect("venv");
    let Some(python) = python else {
        return;
    };
    let port = server.port.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg("-c")
            .arg(BI_SCRIPT)
            .args([port.as_str(), USER, PASSWORD])
            .output()
            .expect("python runs")
    })
    .await
    .expect("python task");
    assert!(
        output.status.success(),
        "SQLAlchemy, pandas and ADBC: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(out["version"], serde_json::json!([16, 6]), "{out}");
    let tables = out["tables"].as_array().expect("tables");
    for table in ["events", "dossier_facts", "dossier_history", "wards"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {out}");
    }
    assert_eq!(out["views"], serde_json::json!(["dossiers"]), "{out}");
    let columns = out["columns"].as_array().expect("columns");
    assert!(columns.iter().any(|c| c == "ward_code"), "{out}");
    assert!(columns.iter().any(|c| c == "ward_name"), "{out}");
    assert_eq!(
        out["keys"],
        serde_json::json!([[], [], [], [], []]),
        "{out}"
    );
    let expected = server
        .expected(
            "SELECT ward_code, received, on_time_rate FROM kpi('2025-W40', 'ward') \
             ORDER BY ward_code LIMIT 3",
        )
        .await;
    for client in ["pandas", "adbc"] {
        let rows: Vec<String> = out[client]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_same_rows(&(rows.join("\n") + "\n"), &expected, client);
    }
}

/// Connects, queries with parameters (the extended protocol), checks the
/// refusals, and cancels a long query from another thread.
const PSYCOPG_SCRIPT: &str = r#"
import json, sys, threading, time
import psycopg

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
dsn = f"host=127.0.0.1 port={port} dbname=chiso user={user} connect_timeout=10"
out = {}

try:
    psycopg.connect(dsn + " password=wrong")
    out["wrong_password"] = "connected"
except psycopg.OperationalError as e:
    out["wrong_password"] = str(e)

with psycopg.connect(dsn, password=password) as conn:
    rows = conn.execute(
        "SELECT ward_name FROM wards WHERE ward_code = %s", ("31135",)
    ).fetchall()
    out["ward"] = rows[0][0]
    out["kpi"] = conn.execute(
        "SELECT ward_code, received, on_time_rate FROM kpi('2025-W40', 'ward') ORDER BY ward_code LIMIT 3"
    ).fetchall()
    conn.rollback()
    try:
        conn.execute("DELETE FROM events")
        out["delete"] = "ran"
    except psycopg.Error as e:
        out["delete"] = f"{e.sqlstate} {e}"
    conn.rollback()

with psycopg.connect(dsn, password=password, autocommit=True) as conn:
    threading.Timer(1.0, conn.cancel).start()
    started = time.time()
    try:
        conn.execute(sys.argv[4]).fetchall()
        out["cancel"] = "finished"
    except psycopg.errors.QueryCanceled as e:
        out["cancel"] = str(e)
    out["cancel_seconds"] = time.time() - started
    out["after_cancel"] = conn.execute("SELECT 1 + 1").fetchone()[0]

print(json.dumps(out, default=str))
"#;

async fn psycopg(server: &Server) {
    let python = tokio::task::spawn_blocking(|| {
        chiso_test_support::python_with(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "py-psycopg",
            &["psycopg[binary]"],
        )
    })
    .await
    .expect("venv");
    let Some(python) = python else {
        return;
    };
    // A ward's officer, by the extended protocol (a parameter): the
    // statement is planned in their scope and runs there.
    let port = server.port.to_string();
    let ward_python = python.clone();
    let ward_port = port.clone();
    let ward = tokio::task::spawn_blocking(move || {
        Command::new(ward_python)
            .arg("-c")
            .arg(
                "import sys, psycopg\n\
                 c = psycopg.connect(host='127.0.0.1', port=sys.argv[1], user=sys.argv[2], \
                 password=sys.argv[3], dbname='chiso')\n\
                 r = c.execute('SELECT count(DISTINCT ward_code), min(ward_code) FROM dossier_facts \
                 WHERE received_at > %s', ('2020-01-01',)).fetchone()\n\
                 print(r[0], r[1])",
            )
            .args([ward_port.as_str(), WARD_USER, PASSWORD])
            .output()
            .expect("python runs")
    })
    .await
    .expect("python task");
    assert!(
        ward.status.success(),
        "{}",
        String::from_utf8_lossy(&ward.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ward.stdout).trim(), "1 31135");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg("-c")
            .arg(PSYCOPG_SCRIPT)
            .args([port.as_str(), USER, PASSWORD, ENDLESS])
            .output()
            .expect("python runs")
    })
    .await
    .expect("python task");
    assert!(
        output.status.success(),
        "psycopg script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert!(
        out["wrong_password"]
            .as_str()
            .is_some_and(|s| s.to_lowercase().contains("password")),
        "{out}"
    );
    assert_eq!(out["ward"], "Phường Ninh Kiều");
    let expected = server
        .expected("SELECT ward_code, received, on_time_rate FROM kpi('2025-W40', 'ward') ORDER BY ward_code LIMIT 3")
        .await;
    let got: Vec<String> = out["kpi"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    assert_same_rows(&(got.join("\n") + "\n"), &expected, "psycopg kpi");
    assert!(
        out["delete"]
            .as_str()
            .is_some_and(|s| s.starts_with("25006") && s.contains("read-only")),
        "{out}"
    );
    assert!(
        out["cancel"]
            .as_str()
            .is_some_and(|s| s.contains("user request")),
        "{out}"
    );
    assert!(
        out["cancel_seconds"].as_f64().is_some_and(|s| s < 3.5),
        "{out}"
    );
    assert_eq!(out["after_cancel"], 2);
}
