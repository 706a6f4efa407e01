//! `chiso serve` against a hostile client: each attack of the hardening
//! issue, sent to the real server (HTTP on loopback, the Postgres wire
//! through psql), and the process still alive and answering afterwards.
//!
//! psql parts are skipped without psql unless CHISO_REQUIRE_PSQL is set;
//! the TLS part needs openssl and curl (CI has both).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The API token of the test's administrator (`chiso user token`).
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn token() -> &'static str {
    TOKEN.get().map(String::as_str).unwrap_or_default()
}

/// A ward's officer of Phường Ninh Kiều (31135), and their API token.
const WARD_USER: &str = "ninhkieu";
static WARD_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
const USER: &str = "analyst";
const PASSWORD: &str = "mật khẩu thử";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn found(tool: &str, variable: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os(variable).is_none(),
            "{variable} is set but {tool} is not installed"
        );
        eprintln!("{tool} is not installed: skipping its part");
    }
    found
}

/// A running `chiso serve`, killed when dropped.
struct Served {
    child: Child,
    http: u16,
    pg: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(home: &Path, users: &Path, extra: &[&str]) -> Self {
        let (http, pg) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
            .args(["serve", "--addr", &format!("127.0.0.1:{http}")])
            .args(["--pg-addr", &format!("127.0.0.1:{pg}")])
            .arg("--pg-users")
            .arg(users)
            .args(["--query-memory-mb", "64"])
            .args(["--max-body-mb", "1"])
            .args(extra)
            .env("XDG_DATA_HOME", home)
            .env_remove("CHISO_STORE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let ready = line.contains("in a browser");
            log.push(line);
            if ready {
                break;
            }
        }
        assert!(
            log.iter().any(|l| l.contains("in a browser")),
            "chiso serve did not start:\n{}",
            log.join("\n")
        );
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, http, pg }
    }

    fn alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server process ended"
        );
        let answer = self.request("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// One raw request (`Connection: close` added), the whole answer.
    fn request(&self, head: &str) -> String {
        self.request_with_body(head, b"")
    }

    fn request_with_body(&self, head: &str, body: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn get(&self, target: &str) -> String {
        self.request(&format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            token()
        ))
    }

    fn psql(&self, sql: &str, extra: &[&str]) -> Output {
        self.psql_as(USER, sql, extra)
    }

    fn psql_as(&self, user: &str, sql: &str, extra: &[&str]) -> Output {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg.to_string(), "-U", user])
            .args(["-d", "chiso", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(extra)
            .args(["-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap()
    }
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A users file with the test's administrator, whose token the HTTP
/// requests carry, and a ward's officer.
fn users_file(dir: &Path) -> PathBuf {
    let users = dir.join("users");
    let chiso = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
            .arg("user")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{stdin}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "chiso user {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let file = users.to_str().unwrap();
    for (name, role) in [
        (USER, &["--role", "admin"][..]),
        (WARD_USER, &["--role", "ward", "--ward", "31135"][..]),
    ] {
        let mut args = vec!["add", "--users", file, name, "--password-stdin"];
        args.extend(role);
        chiso(&args, PASSWORD);
    }
    let _ = TOKEN.set(chiso(&["token", "--users", file, USER], ""));
    let _ = WARD_TOKEN.set(chiso(&["token", "--users", file, WARD_USER], ""));
    users
}

#[test]
fn a_hostile_client_gets_clear_refusals_and_the_server_stays_up() {
    let dir = std::env::temp_dir().join(format!("chiso-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let users = users_file(&dir);
    let mut server = Served::start(&dir, &users, &[]);

    // Years far outside the calendar: a 400 that says so, not a dropped
    // connection (a panic in date arithmetic).
    for target in [
        "/?period=-262143-Q1",
        "/api/kpi?period=-262143-Q1&by=ward",
        "/api/trend?grain=day&from=-262143-01-01&to=%2B262142-12-31",
        "/api/kpi?period=%2B262142-W01",
        "/api/due-soon?at=%2B262142-12-30T00:00:00Z&days=60",
        "/api/due-soon?days=4294967296",
        "/api/sql?q=SELECT+*+FROM+due_soon('%2B262142-12-30T00:00:00Z',+60)",
    ] {
        let answer = server.get(target);
        assert_eq!(status(&answer), 400, "{target}: {answer}");
        server.alive();
    }
    // A series of 73 000 days is refused before it is built.
    let started = Instant::now();
    let answer = server.get("/api/trend?grain=day&from=1900-01-01&to=2100-12-31");
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains("more than 400 periods"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = server
        .get("/api/sql?q=SELECT+count(*)+FROM+kpi_series('day','city','1900-01-01','2100-12-31')");
    assert_eq!(status(&answer), 400, "{answer}");

    // Functions that allocate count against the query's 64 MB.
    let sql = "SELECT cardinality(range(1,500000000))";
    let answer = server.request_with_body(
        &format!(
            "POST /api/sql HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            token(),
            sql.len()
        ),
        sql.as_bytes(),
    );
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains("64 MB"), "{answer}");
    let answer = server.get("/api/sql?q=SELECT+length(repeat('x',2000000000))");
    assert_eq!(status(&answer), 400, "{answer}");
    server.alive();
    // The calendar's functions far past the years it knows, or asked to
    // walk billions of working days: null, not a crash or a hang.
    for arguments in [
        "to_timestamp_micros(8210266700000000000),+366",
        "to_timestamp_micros(1760000000000000),+4000000000",
    ] {
        for function in ["working_day_close", "add_working_days"] {
            let answer = server.get(&format!(
                "/api/sql?format=csv&q=SELECT+{function}({arguments})+IS+NULL+AS+n"
            ));
            assert_eq!(status(&answer), 200, "{function}({arguments}): {answer}");
            // The body comes in chunks: its one row reads true.
            assert!(
                answer.contains("n\ntrue\n") && !answer.contains("false"),
                "{function}({arguments}): {answer}"
            );
            server.alive();
        }
    }

    // CSV cells that a spreadsheet would run are written as text.
    let answer = server.get(
        "/api/sql?format=csv&q=SELECT+'%3DHYPERLINK(%22http://x%22,%22x%22)'+AS+dossier_id,+-3+AS+change",
    );
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"x\"\")\",-3"),
        "{answer}"
    );

    // Another site's name or page is refused (DNS rebinding, CSRF).
    let answer =
        server.request("GET /api/sql?q=SELECT+1 HTTP/1.1\r\nHost: attacker.example\r\n\r\n");
    assert_eq!(status(&answer), 421, "{answer}");
    let answer = server.request(
        "GET /api/sql?q=SELECT+1 HTTP/1.1\r\nHost: localhost\r\nOrigin: http://attacker.example\r\n\r\n",
    );
    assert_eq!(status(&answer), 403, "{answer}");

    // Every answer carries the browser-safety headers; /health no paths.
    let answer = server.get("/health");
    assert_eq!(header(&answer, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&answer, "x-frame-options"), Some("DENY"));
    let policy = header(&answer, "content-security-policy").unwrap_or_default();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"));
    assert!(header(&answer, "referrer-policy").is_some());
    assert!(!answer.contains(&dir.display().to_string()), "{answer}");
    assert!(!answer.contains("\"store\""), "{answer}");

    // Without the token, the answer comes before the body is read.
    let mut stream = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /api/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n\
              Content-Length: 900000000\r\n\r\nevent_id",
        )
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert_eq!(status(&answer), 401, "{answer}");
    drop(stream);

    // A gzip body that decompresses past --max-body-mb is refused.
    let bomb = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder
            .write_all(
                b"event_id,dossier_id,event_type,occurred_at,ward_code,procedure_code,channel\n",
            )
            .unwrap();
        encoder.write_all(&vec![b'0'; 8 << 20]).unwrap();
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20);
    let answer = server.request_with_body(
        &format!(
            "POST /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            token(),
            bomb.len()
        ),
        &bomb,
    );
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains("decompresses to more than"), "{answer}");
    server.alive();

    // Without a token, with a forged one, or out of a ward user's scope:
    // refused with the reason, and the server goes on.
    let ward_token = WARD_TOKEN.get().map(String::as_str).unwrap_or_default();
    for (target, auth, expected) in [
        ("/api/kpi?period=2025-W40", String::new(), 401),
        (
            "/api/kpi?period=2025-W40",
            "Authorization: Bearer chiso_forged\r\n".to_owned(),
            401,
        ),
        ("/?period=2025-W40", String::new(), 303),
        (
            "/api/kpi?period=2025-W40&ward=31120",
            format!("Authorization: Bearer {ward_token}\r\n"),
            403,
        ),
        (
            "/ward/31120?period=2025-W40",
            format!("Authorization: Bearer {ward_token}\r\n"),
            403,
        ),
    ] {
        let answer = server.request(&format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n"
        ));
        assert_eq!(status(&answer), expected, "{target}: {answer}");
        server.alive();
    }
    let ward_sql = |sql: &str| {
        server.request_with_body(
            &format!(
                "POST /api/sql?format=csv HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ward_token}\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                sql.len()
            ),
            sql.as_bytes(),
        )
    };
    let distinct = ward_sql(
        "SELECT count(DISTINCT f.ward_code) AS n FROM events e JOIN dossier_facts f USING (dossier_id)",
    );
    assert!(distinct.contains("n\n1\n"), "{distinct}");
    assert_eq!(status(&ward_sql("SELECT * FROM quarantine")), 400);
    // A ward's officer sending another ward's dossier: stored nowhere but
    // the quarantine.
    let other_ward = "{\"event_id\":\"hostile-1\",\"dossier_id\":\"HOSTILE-1\",\
        \"event_type\":\"received\",\"occurred_at\":\"2025-10-01T09:00:00+07:00\",\
        \"ward_code\":\"31120\",\"procedure_code\":\"2.000815\",\"channel\":\"online\",\
        \"due_at\":\"2025-10-03T17:00:00+07:00\"}\n";
    let upload = server.request_with_body(
        &format!(
            "POST /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ward_token}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            other_ward.len()
        ),
        other_ward.as_bytes(),
    );
    assert_eq!(status(&upload), 200, "{upload}");
    assert!(
        upload.contains("\"accepted\":0") && upload.contains("\"ward_not_permitted\":1"),
        "{upload}"
    );
    server.alive();

    if found("psql", "CHISO_REQUIRE_PSQL") {
        // A cursor asked for ten quadrillion rows sends the one it has.
        let fetched = server.psql(
            "BEGIN; DECLARE c CURSOR FOR SELECT 1 AS one; FETCH 10000000000000000 FROM c; COMMIT",
            &[],
        );
        assert!(fetched.status.success(), "{fetched:?}");
        assert!(String::from_utf8_lossy(&fetched.stdout).contains('1'));
        server.alive();
        let all = server.psql(
            "BEGIN; DECLARE w CURSOR FOR SELECT ward_code FROM wards; FETCH ALL FROM w; CLOSE w; COMMIT",
            &[],
        );
        assert!(all.status.success(), "{all:?}");
        assert_eq!(
            String::from_utf8_lossy(&all.stdout)
                .lines()
                .filter(|l| l.len() == 5 && l.bytes().all(|b| b.is_ascii_digit()))
                .count(),
            103,
            "{}",
            String::from_utf8_lossy(&all.stdout)
        );

        // SELECT INTO is a write: refused, and no table appears.
        let into = server.psql("SELECT * INTO t FROM wards", &[]);
        assert!(!into.status.success());
        assert!(
            String::from_utf8_lossy(&into.stderr).contains("read-only"),
            "{into:?}"
        );
        let read_back = server.psql("SELECT count(*) FROM t", &[]);
        assert!(!read_back.status.success(), "{read_back:?}");

        // The same memory bound on the wire.
        let range = server.psql("SELECT cardinality(range(1,500000000))", &[]);
        assert!(!range.status.success());
        assert!(
            String::from_utf8_lossy(&range.stderr).contains("64 MB"),
            "{range:?}"
        );

        // A ward's officer on the wire: their ward, no quarantine.
        let ward = server.psql_as(
            WARD_USER,
            "SELECT count(DISTINCT ward_code) FROM events",
            &[],
        );
        assert!(ward.status.success(), "{ward:?}");
        assert_eq!(String::from_utf8_lossy(&ward.stdout).trim(), "1");
        let quarantine = server.psql_as(WARD_USER, "SELECT count(*) FROM quarantine", &[]);
        assert!(!quarantine.status.success(), "{quarantine:?}");
        server.alive();

        // Wrong passwords: refused, then throttled for that address.
        let mut throttled = false;
        for _ in 0..8 {
            let wrong = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &server.pg.to_string(),
                    "-U",
                    "nobody",
                ])
                .args(["-d", "chiso", "-X", "-c", "SELECT 1"])
                .env("PGPASSWORD", "wrong")
                .output()
                .unwrap();
            assert!(!wrong.status.success());
            throttled |= String::from_utf8_lossy(&wrong.stderr).contains("too many failed");
        }
        assert!(throttled, "eight failures in a row were never throttled");
        server.alive();

        // Both are in the audit log, which `chiso store audit` lists (the
        // server commits it once a second).
        let store = dir.join("chiso/sample-city");
        let listed = |args: &[&str]| {
            let output = Command::new(env!("CARGO_BIN_EXE_chiso"))
                .args(["store", "audit", "--store"])
                .arg(&store)
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let (failed, statement) = loop {
            let failed = listed(&["--action", "sign_in", "--outcome", "failed"]);
            let statement = listed(&["--user", WARD_USER, "--action", "sql"]);
            let logged =
                failed.contains("nobody") && statement.contains("count(DISTINCT ward_code)");
            if logged || Instant::now() > deadline {
                break (failed, statement);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            failed.contains("nobody") && failed.contains("postgres"),
            "{failed}"
        );
        assert!(
            statement.contains("count(DISTINCT ward_code)"),
            "{statement}"
        );
    }
    drop(server);

    // Open to other machines without --users: refused before it listens.
    let exposed = Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args(["serve", "--addr", &format!("0.0.0.0:{}", free_port())])
        .env("XDG_DATA_HOME", &dir)
        .env_remove("CHISO_STORE")
        .output()
        .unwrap();
    assert!(!exposed.status.success());
    assert!(
        String::from_utf8_lossy(&exposed.stderr).contains("--users"),
        "{}",
        String::from_utf8_lossy(&exposed.stderr)
    );

    // TLS on both ports with a certificate of our own.
    if found("openssl", "CHISO_REQUIRE_PSQL") && found("curl", "CHISO_REQUIRE_PSQL") {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let server = Served::start(
            &dir,
            &users,
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        let health = Command::new("curl")
            .args(["-sS", "--cacert", cert.to_str().unwrap()])
            .arg(format!("https://localhost:{}/health", server.http))
            .output()
            .unwrap();
        assert!(health.status.success(), "{health:?}");
        assert!(String::from_utf8_lossy(&health.stdout).contains("\"ok\""));
        if found("psql", "CHISO_REQUIRE_PSQL") {
            let secure = Command::new("psql")
                .arg(format!(
                    "host=127.0.0.1 port={} user={USER} dbname=chiso sslmode=require",
                    server.pg
                ))
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-c",
                    "SELECT ssl FROM (VALUES (1)) v(ssl)",
                ])
                .env("PGPASSWORD", PASSWORD)
                .output()
                .unwrap();
            assert!(secure.status.success(), "{secure:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
