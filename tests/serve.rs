//! `tributary serve` with real clients on 127.0.0.1: reqwest over HTTP, tokio-postgres and the psql
//! program over the PostgreSQL wire protocol, Python's psycopg and SQLAlchemy, replays of what
//! Metabase and Grafana send when they connect and browse, schemathesis against the OpenAPI
//! document; the security rules on both protocols; a resource bomb; scheduled and failing jobs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{run, texts, tributary};

/// Passwords of the test users, one per role.
const USERS: [(&str, &str, &str); 3] = [
    ("vera", "viewer", "vera-viewer-pw"),
    ("anna", "analyst", "anna-analyst-pw"),
    ("adam", "admin", "adam-admin-pw"),
];

/// A small company with marts, churn scores and forecasts, built once for every test here, and a
/// configuration with one user per role.
fn company() -> &'static (tempfile::TempDir, PathBuf) {
    static COMPANY: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    COMPANY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        run(
            tributary()
                .arg("--data-dir")
                .arg(&data)
                .args(["demo", "--customers", "400", "--years", "2", "--no-serve"]),
            true,
        );
        let mut config = format!("data_dir = {:?}\nschedules = []\n", data.display().to_string());
        config.push_str("[limits]\nquery_timeout_secs = 5\nmax_result_rows = 200000\n");
        config.push_str("[jobs]\nretries = 1\nretry_backoff_secs = 0.2\n");
        for (name, role, password) in USERS {
            let hash = hash_password(password);
            config.push_str(&format!(
                "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        let file = dir.path().join("tributary.toml");
        std::fs::write(&file, config).unwrap();
        (dir, file)
    })
}

fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = tributary()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running server, stopped (SIGTERM, then waited for) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// The PostgreSQL port.
    pub pg: u16,
    /// What it printed before it listened.
    pub printed: Vec<String>,
}

impl Server {
    /// `tributary [global args] <command args>` on free ports, once it says where it listens.
    /// The child is waited for when the server is dropped.
    #[allow(clippy::zombie_processes)]
    pub fn start(global: &[&str], command: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = tributary();
        cmd.args(global)
            .args(command)
            .args(["--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, output) = mpsc::channel();
        std::thread::spawn(move || {
            // Drain to the end, so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut seen = Vec::new();
        loop {
            let line = output
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the server did not say where it listens:\n{}", seen.join("\n")));
            if let Some(rest) = line.strip_prefix("listening ") {
                let mut http = String::new();
                let mut pg = 0;
                for part in rest.split_whitespace() {
                    if let Some(addr) = part.strip_prefix("http=") {
                        http = format!("http://{addr}");
                    }
                    if let Some(addr) = part.strip_prefix("pg=") {
                        pg = addr.rsplit(':').next().unwrap().parse().unwrap();
                    }
                }
                return Server {
                    child,
                    http,
                    pg,
                    printed: seen,
                };
            }
            seen.push(line);
        }
    }

    /// The test company's server.
    pub fn company(env: &[(&str, &str)]) -> Self {
        let (_, config) = company();
        Server::start(&["--config", config.to_str().unwrap()], &["serve"], env)
    }

    /// A PostgreSQL connection string for `user`.
    pub fn pg_url(&self, user: &str, password: &str) -> String {
        format!("postgresql://{user}:{password}@127.0.0.1:{}/tributary", self.pg)
    }
}

impl Drop for Server {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn password(user: &str) -> &'static str {
    USERS.iter().find(|(n, _, _)| *n == user).unwrap().2
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// POST a query as `user`, with an Accept header; status and body.
async fn post_sql(server: &Server, user: Option<(&str, &str)>, accept: &str, sql: &str) -> (u16, bytes::Bytes) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/api/v1/sql", server.http))
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string());
    if let Some((name, password)) = user {
        request = request.basic_auth(name, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap())
}

async fn get_json(server: &Server, user: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.http))
        .basic_auth(user, Some(password(user)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[test]
fn http_answers_sql_in_every_format_and_serves_the_apis() {
    let server = Server::company(&[]);
    let admin = Some(("adam", password("adam")));
    runtime().block_on(async {
        let sql = "SELECT rfm_segment, count(*) AS customers FROM marts.customer_rfm GROUP BY 1 ORDER BY 1";
        let (status, body) = post_sql(&server, admin, "application/json", sql).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let body = json(&body);
        assert_eq!(body["schema"][0]["name"], "rfm_segment");
        let rows = body["rows"].as_array().unwrap();
        assert!(rows.len() >= 3, "{body}");
        let total: i64 = rows.iter().map(|r| r["customers"].as_i64().unwrap()).sum();
        assert_eq!(body["row_count"].as_u64().unwrap() as usize, rows.len());

        let (_, ndjson) = post_sql(&server, admin, "application/x-ndjson", sql).await;
        let lines: Vec<Value> = String::from_utf8(ndjson.to_vec()).unwrap().lines().map(|l| json(l.as_bytes())).collect();
        assert_eq!(lines.len(), rows.len());
        assert_eq!(&lines[0], &rows[0]);

        let (_, csv) = post_sql(&server, admin, "text/csv", sql).await;
        let csv = String::from_utf8(csv.to_vec()).unwrap();
        assert_eq!(csv.lines().next(), Some("rfm_segment,customers"));
        assert_eq!(csv.lines().count(), rows.len() + 1);

        let (_, arrow) = post_sql(&server, admin, "application/vnd.apache.arrow.stream", sql).await;
        let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.to_vec()), None).unwrap();
        let arrow_rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(arrow_rows, rows.len());

        let (_, parquet) = post_sql(&server, admin, "application/vnd.apache.parquet", sql).await;
        let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
            .unwrap()
            .build()
            .unwrap();
        let counts: i64 = reader
            .map(|b| {
                let b = b.unwrap();
                let c = b.column(1).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
                c.iter().map(|v| v.unwrap()).sum::<i64>()
            })
            .sum();
        assert_eq!(counts, total, "Parquet carries the same numbers as JSON");

        // A large result streams through in every format; over the row cap it says so.
        // Narrow rows, so that the 5 s timeout is never what a debug build on a busy machine meets
        // first (wide ones did while the browser tests ran beside).
        let many = "SELECT l.order_id, l.sku, l.net_amount, copy.n FROM core.order_line l CROSS JOIN (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS copy(n)";
        let (status, big) = post_sql(&server, admin, "application/x-ndjson", &format!("{many} LIMIT 150000")).await;
        assert_eq!(status, 200);
        assert_eq!(big.iter().filter(|b| **b == b'\n').count(), 150_000);
        let (status, capped) = post_sql(&server, admin, "application/json", &format!("{many} LIMIT 250000")).await;
        // The cap is met after the first rows went out: the JSON document ends with the error.
        let capped = json(&capped);
        assert!(status == 200 || status == 400, "{status}");
        assert_eq!(capped["error"]["code"], "too_many_rows", "{}", capped["error"]);

        let (status, body) = post_sql(&server, admin, "application/xml", sql).await;
        assert_eq!(status, 406);
        assert_eq!(error_code(&json(&body)), "not_acceptable");
        let (status, body) = post_sql(&server, admin, "application/json", "SELEC 1").await;
        assert_eq!(status, 400);
        assert_eq!(error_code(&json(&body)), "sql_error");

        // The catalog, a table's columns, the profile, churn risks, forecasts, the semantic layer.
        let (status, tables) = get_json(&server, "vera", "/api/v1/tables").await;
        assert_eq!(status, 200);
        let names: Vec<&str> = tables["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
        assert!(names.contains(&"marts.customer_7p") && names.contains(&"ml.churn_score"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("core.") || n.starts_with("system.")), "a viewer sees marts and ml only: {names:?}");
        let (status, table) = get_json(&server, "anna", "/api/v1/tables/core.customer").await;
        assert_eq!(status, 200, "{table}");
        assert!(table["columns"].as_array().unwrap().iter().any(|c| c["name"] == "email"));
        let (status, _) = get_json(&server, "vera", "/api/v1/tables/core.customer").await;
        assert_eq!(status, 403);
        let (status, missing) = get_json(&server, "adam", "/api/v1/tables/marts.nothing").await;
        assert_eq!((status, error_code(&missing)), (404, "not_found"));

        let (_, best) = post_sql(&server, admin, "application/json", "SELECT customer_key FROM marts.customer_7p ORDER BY net_sales DESC NULLS LAST LIMIT 1").await;
        let key = json(&best)["rows"][0]["customer_key"].as_i64().unwrap();
        let (status, profile) = get_json(&server, "anna", &format!("/api/v1/customers/{key}/profile")).await;
        assert_eq!(status, 200, "{profile}");
        for p in ["profiling", "persistency", "profitability", "performance", "prospecting", "product", "promotion"] {
            assert!(profile[p].is_object(), "profile has {p}: {profile}");
        }
        let (status, _) = get_json(&server, "anna", "/api/v1/customers/no-such-customer/profile").await;
        assert_eq!(status, 404);

        let (status, churn) = get_json(&server, "vera", "/api/v1/churn?limit=5").await;
        assert_eq!(status, 200, "{churn}");
        let risks = churn["customers"].as_array().unwrap();
        assert_eq!(risks.len(), 5);
        assert!(risks[0]["churn_score"].as_f64().unwrap() >= risks[4]["churn_score"].as_f64().unwrap());
        assert!(risks[0]["reason_1"].is_string());

        let (status, sales) = get_json(&server, "vera", "/api/v1/forecasts/sales?level=total").await;
        assert_eq!(status, 200, "{sales}");
        let months = sales["forecast"].as_array().unwrap();
        assert_eq!(months.len(), 6, "six months of the total: {sales}");
        assert!(months.iter().all(|m| m["lower_95"].as_f64() <= m["forecast"].as_f64() && m["forecast"].as_f64() <= m["upper_95"].as_f64()));
        let (status, _) = get_json(&server, "vera", "/api/v1/forecasts/demand?limit=10").await;
        assert_eq!(status, 200);
        let (status, _) = get_json(&server, "vera", "/api/v1/forecasts/weather").await;
        assert_eq!(status, 404);

        let metrics = reqwest::Client::new()
            .post(format!("{}/api/v1/metrics", server.http))
            .basic_auth("vera", Some(password("vera")))
            .header("content-type", "application/json")
            .body(r#"{"measures": ["revenue", "orders"], "dimensions": ["date", "region"], "grain": "year"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        let metrics: Value = serde_json::from_str(&metrics.text().await.unwrap()).unwrap();
        assert_eq!(metrics["sources"][0], "marts.sales_daily", "{metrics}");
        // The semantic layer and a SQL query over the facts agree.
        let from_metrics: f64 = metrics["rows"].as_array().unwrap().iter().map(|r| r["revenue"].as_f64().unwrap_or(0.0)).sum();
        let (_, by_sql) = post_sql(&server, admin, "application/json", "SELECT sum(revenue) AS revenue FROM marts.sales_daily").await;
        let by_sql = json(&by_sql)["rows"][0]["revenue"].as_f64().unwrap();
        assert!((from_metrics - by_sql).abs() < 0.01 * by_sql.abs().max(1.0), "{from_metrics} vs {by_sql}");

        // Health, readiness, Prometheus, OpenAPI.
        let client = reqwest::Client::new();
        assert_eq!(client.get(format!("{}/healthz", server.http)).send().await.unwrap().status().as_u16(), 200);
        let mut ready = false;
        for _ in 0..100 {
            if client.get(format!("{}/readyz", server.http)).send().await.unwrap().status().as_u16() == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "ready once the catalog is loaded");
        let prometheus = client.get(format!("{}/metrics", server.http)).send().await.unwrap().text().await.unwrap();
        assert!(prometheus.contains("tributary_http_requests_total{route=\"/api/v1/sql\",status=\"200\"}"), "{prometheus}");
        let openapi: Value = serde_json::from_str(&client.get(format!("{}/openapi.json", server.http)).send().await.unwrap().text().await.unwrap()).unwrap();
        assert!(openapi["paths"]["/api/v1/sql"]["post"].is_object());

        // Every query was logged, with who ran it and how it ended.
        let mut logged = Value::Null;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (status, body) = post_sql(&server, admin, "application/json", "SELECT user_name, outcome, count(*) AS n FROM system.query_log WHERE protocol = 'http' GROUP BY 1, 2 ORDER BY 1, 2").await;
            if status == 200 {
                logged = json(&body);
                let outcomes: Vec<&str> = logged["rows"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
                if outcomes.contains(&"too_many_rows") && outcomes.contains(&"sql_error") {
                    break;
                }
            }
        }
        let rows = logged["rows"].as_array().unwrap_or_else(|| panic!("system.query_log: {logged}"));
        assert!(rows.iter().any(|r| r["user_name"] == "adam" && r["outcome"] == "ok"), "{logged}");
        assert!(rows.iter().any(|r| r["outcome"] == "too_many_rows"), "{logged}");
    });
}

#[test]
fn security_is_the_same_on_both_protocols_and_the_server_keeps_serving() {
    let server = Server::company(&[]);
    runtime().block_on(async {
        let admin = Some(("adam", password("adam")));
        let analyst = Some(("anna", password("anna")));
        let viewer = Some(("vera", password("vera")));
        // What is tried, by whom, the SQL, and the status and code expected.
        type Escape<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a str, u16, &'a str);
        let escapes: [Escape; 11] = [
            (
                "read a file as a table",
                admin,
                "SELECT * FROM '/etc/passwd'",
                400,
                "sql_error",
            ),
            (
                "read a file as an external table",
                admin,
                "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
                403,
                "read_only",
            ),
            (
                "read a URL",
                admin,
                "CREATE EXTERNAL TABLE u STORED AS PARQUET LOCATION 'http://example.com/x.parquet'",
                403,
                "read_only",
            ),
            (
                "a file-reading function",
                admin,
                "SELECT * FROM read_csv('/etc/passwd')",
                400,
                "sql_error",
            ),
            ("DDL", admin, "DROP TABLE core.customer", 403, "read_only"),
            (
                "DML",
                admin,
                "INSERT INTO core.customer SELECT * FROM core.customer",
                403,
                "read_only",
            ),
            (
                "COPY",
                admin,
                "COPY (SELECT * FROM core.customer) TO '/tmp/stolen.csv'",
                403,
                "read_only",
            ),
            (
                "a viewer reads core",
                viewer,
                "SELECT * FROM core.customer",
                403,
                "forbidden",
            ),
            (
                "an analyst reads raw",
                analyst,
                "SELECT * FROM raw.sales_order_lines LIMIT 1",
                403,
                "forbidden",
            ),
            (
                "an analyst reads an old version of system",
                analyst,
                "SELECT * FROM as_of('system.ingest_log', 0)",
                400,
                "sql_error",
            ),
            (
                "change engine settings",
                admin,
                "SET datafusion.execution.batch_size = 1",
                403,
                "read_only",
            ),
        ];
        for (what, user, sql, status, code) in escapes {
            let (got, body) = post_sql(&server, user, "application/json", sql).await;
            let body = json(&body);
            assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
            // ... and the server keeps serving.
            let (ok, _) = post_sql(
                &server,
                viewer,
                "application/json",
                "SELECT count(*) FROM marts.customer_7p",
            )
            .await;
            assert_eq!(ok, 200, "serving after: {what}");
        }
        assert!(!Path::new("/tmp/stolen.csv").exists());
        for (user, status) in [
            (None, 401),
            (Some(("adam", "wrong")), 401),
            (Some(("nobody", "x")), 401),
        ] {
            let (got, body) = post_sql(&server, user, "application/json", "SELECT 1").await;
            assert_eq!((got, error_code(&json(&body))), (status, "unauthorized"));
        }
        // Personal data: masked for analysts, whole for admins.
        let sql = "SELECT email, phone FROM core.customer WHERE email IS NOT NULL ORDER BY customer_key LIMIT 20";
        let (_, masked) = post_sql(&server, analyst, "application/json", sql).await;
        let masked = json(&masked);
        for row in masked["rows"].as_array().unwrap() {
            let email = row["email"].as_str().unwrap();
            assert!(email.starts_with("***@"), "masked email: {email}");
            if let Some(phone) = row["phone"].as_str() {
                assert!(phone.starts_with("***") && phone.len() <= 5, "masked phone: {phone}");
            }
        }
        let (_, whole) = post_sql(&server, admin, "application/json", sql).await;
        let whole = json(&whole);
        assert!(!whole["rows"][0]["email"].as_str().unwrap().starts_with("***"));
        assert_eq!(
            whole["rows"][0]["email"].as_str().unwrap().split('@').nth(1),
            masked["rows"][0]["email"].as_str().unwrap().split('@').nth(1),
            "the mask keeps the domain"
        );
        // Ingest and jobs are the admin's.
        let client = reqwest::Client::new();
        let push = client
            .post(format!("{}/api/v1/ingest/crm_accounts", server.http))
            .basic_auth("anna", Some(password("anna")))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(push.status().as_u16(), 403);
        let jobs = client
            .get(format!("{}/api/v1/jobs", server.http))
            .basic_auth("vera", Some(password("vera")))
            .send()
            .await
            .unwrap();
        assert_eq!(jobs.status().as_u16(), 403);

        // The same over the PostgreSQL wire protocol.
        let (pg, connection) = tokio_postgres::connect(&server.pg_url("anna", password("anna")), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // PostgreSQL's grammar has no CREATE EXTERNAL TABLE: refused as a syntax error.
        for (sql, states) in [
            ("DROP TABLE core.customer", ["25006", "25006"]),
            ("COPY (SELECT 1) TO '/tmp/stolen.csv'", ["25006", "25006"]),
            (
                "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
                ["25006", "42601"],
            ),
            ("SELECT * FROM raw.sales_order_lines LIMIT 1", ["42501", "42501"]),
            ("SELECT * FROM system.query_log", ["42501", "42501"]),
        ] {
            let err = pg.simple_query(sql).await.unwrap_err();
            let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err:?}"));
            assert!(
                states.contains(&db.code().code()),
                "{sql}: {} {}",
                db.code().code(),
                db.message()
            );
            let err = pg.query(sql, &[]).await.unwrap_err();
            assert!(
                err.as_db_error().is_some(),
                "extended protocol refuses {sql} too: {err:?}"
            );
        }
        let emails = pg
            .query("SELECT email FROM core.customer WHERE email IS NOT NULL LIMIT 5", &[])
            .await
            .unwrap();
        assert!(emails.iter().all(|r| r.get::<_, String>(0).starts_with("***@")));
        assert_eq!(
            pg.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0),
            1,
            "still serving"
        );
        for url in [
            server.pg_url("anna", "wrong"),
            server.pg_url("nobody", "x"),
            format!("postgresql://anna@127.0.0.1:{}/tributary", server.pg),
        ] {
            let err = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .err()
                .unwrap_or_else(|| panic!("{url} signs in"));
            let text = format!("{err:?}");
            assert!(text.contains("assword"), "{url}: {text}");
        }
    });
}

/// A Java runtime and pgjdbc: `JAVA` and `PGJDBC_JAR`, or Debian's (installed by
/// `tests/jdbc/install-pgjdbc` when missing).
fn pgjdbc() -> (PathBuf, PathBuf) {
    let java = std::env::var_os("JAVA").map_or_else(|| PathBuf::from("java"), PathBuf::from);
    if let Some(jar) = std::env::var_os("PGJDBC_JAR") {
        return (java, PathBuf::from(jar));
    }
    let debian = PathBuf::from("/usr/share/java/postgresql.jar");
    let has_java = Command::new(&java)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !debian.exists() || !has_java {
        crate::install(
            "tests/jdbc/install-pgjdbc",
            "install Debian's libpostgresql-jdbc-java or set PGJDBC_JAR",
        );
    }
    (java, debian)
}

#[test]
fn postgres_clients_connect_query_and_browse() {
    let server = Server::company(&[]);
    runtime().block_on(async {
        let (pg, connection) = tokio_postgres::connect(&server.pg_url("adam", password("adam")), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        // Simple protocol, text results.
        let rows = pg.simple_query("SELECT count(*) AS n FROM marts.customer_7p").await.unwrap();
        let n: i64 = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
                _ => None,
            })
            .unwrap();
        assert!(n > 300, "{n}");
        // Extended protocol: a prepared statement with parameters, binary results.
        let statement = pg
            .prepare("SELECT customer_key, CAST(net_sales AS DOUBLE) AS net_sales, name, orders FROM marts.customer_7p WHERE orders >= $1 AND region = $2 ORDER BY net_sales DESC LIMIT 5")
            .await
            .unwrap();
        let regions = pg.query("SELECT DISTINCT region FROM marts.customer_7p WHERE region IS NOT NULL ORDER BY 1", &[]).await.unwrap();
        let region: String = regions[0].get(0);
        let rows = pg.query(&statement, &[&3i64, &region]).await.unwrap();
        assert!(!rows.is_empty() && rows.len() <= 5);
        let sales: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(1)).collect();
        assert!(sales.windows(2).all(|w| w[0] >= w[1]), "{sales:?}");
        assert!(rows.iter().all(|r| r.get::<_, i64>(3) >= 3));
        let _: i64 = rows[0].get(0);
        let _: String = rows[0].get(2);
        // Dates and timestamps in binary.
        let row = pg.query_one("SELECT DATE '2026-01-31' AS d, CAST('2026-01-31 12:00:00' AS TIMESTAMP) AS t", &[]).await.unwrap();
        assert_eq!(row.get::<_, chrono::NaiveDate>(0).to_string(), "2026-01-31");
        assert_eq!(row.get::<_, chrono::NaiveDateTime>(1).to_string(), "2026-01-31 12:00:00");
        // Session statements BI tools send.
        pg.batch_execute("SET application_name = 'test'; SET extra_float_digits = 3; BEGIN; SELECT 1; COMMIT")
            .await
            .unwrap();
        let version: String = pg.query_one("SELECT version()", &[]).await.unwrap().get(0);
        assert!(version.starts_with("PostgreSQL 16"), "{version}");

        // Cancel: a long query stops when the client asks.
        let cancel = pg.cancel_token();
        let long = tokio::spawn(async move {
            let started = Instant::now();
            let result = pg
                .simple_query("SELECT count(*) FROM core.order_line a, core.order_line b WHERE a.quantity + b.quantity < 0")
                .await;
            (result, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let (result, took) = long.await.unwrap();
        let err = result.unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db.code().code(), "57014", "{}", db.message());
        assert!(!db.message().contains("longer than"), "cancelled by the client, not the timeout: {}", db.message());
        eprintln!("cancelled after {took:?}");
    });

    // psql: \dt, \d, a query.
    let psql = |args: &[&str]| {
        let out = std::process::Command::new("psql")
            .arg(format!("postgresql://anna@127.0.0.1:{}/tributary", server.pg))
            .args(["-X", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .env("PGPASSWORD", password("anna"))
            .output()
            .expect("psql runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "psql {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let tables = psql(&["-c", "\\dt marts.*"]);
    assert!(
        tables.contains("customer_7p") && tables.contains("customer_rfm"),
        "{tables}"
    );
    let columns = psql(&["-c", "\\d marts.customer_rfm"]);
    assert!(
        columns.contains("rfm_segment") && columns.contains("monetary_value"),
        "{columns}"
    );
    let count = psql(&["-tA", "-c", "SELECT count(*) FROM core.customer"]);
    assert!(count.trim().parse::<u64>().unwrap() > 300, "{count}");

    // Python: psycopg and SQLAlchemy (as Superset uses it).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/pg_clients.py");
    let out = run(
        crate::python()
            .arg(&script)
            .arg(server.pg_url("anna", password("anna"))),
        true,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("psycopg ok") && text.contains("sqlalchemy ok"), "{text}");

    // Java: pgjdbc, the driver Metabase connects with, syncing the schema as Metabase does.
    let (java, jar) = pgjdbc();
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/jdbc/MetabaseSync.java");
    let out = run(
        Command::new(java)
            .arg("-cp")
            .arg(&jar)
            .arg(&program)
            .arg(format!("jdbc:postgresql://127.0.0.1:{}/tributary", server.pg))
            .args(["anna", password("anna")]),
        true,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jdbc ok"), "{text}");

    // Replays of what Metabase and Grafana send when they connect and browse.
    runtime().block_on(async {
        let (pg, connection) = tokio_postgres::connect(&server.pg_url("anna", password("anna")), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for tool in ["metabase", "grafana", "superset"] {
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/bi_replay/{tool}.sql"));
            let text = std::fs::read_to_string(&file).unwrap();
            let statements: Vec<&str> = text
                .split(";\n")
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.lines().all(|l| l.starts_with("--")))
                .collect();
            assert!(statements.len() >= 5, "{tool}: {}", statements.len());
            for sql in statements {
                let answered = pg.simple_query(sql).await;
                assert!(
                    answered.is_ok(),
                    "{tool} sends:\n{sql}\n{:?}",
                    answered.err().map(|e| e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or(e.to_string()))
                );
            }
        }
    });
}

#[test]
fn a_resource_bomb_is_stopped_and_others_are_served() {
    let server = Server::company(&[("TRIBUTARY_LIMITS__MEMORY_MB", "256")]);
    runtime().block_on(async {
        let admin = Some(("adam", password("adam")));
        let bomb = "SELECT count(*) FROM core.order_line a, core.order_line b, core.order_line c \
                    WHERE a.quantity + b.quantity + c.quantity < 0";
        let started = Instant::now();
        let (bombed, others) = tokio::join!(post_sql(&server, admin, "application/json", bomb), async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let started = Instant::now();
            let answer = post_sql(
                &server,
                Some(("vera", password("vera"))),
                "application/json",
                "SELECT count(*) AS n FROM marts.customer_7p",
            )
            .await;
            (answer, started.elapsed())
        });
        let (status, body) = bombed;
        let body = json(&body);
        let code = error_code(&body);
        assert!(matches!(code, "timeout" | "out_of_memory"), "{status} {body}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stopped by the 5 s timeout: {:?}",
            started.elapsed()
        );
        let ((status, _), took) = others;
        assert_eq!(status, 200, "another query is served while the bomb runs");
        eprintln!("a dashboard query beside the bomb took {took:?}");
        let (status, _) = post_sql(&server, admin, "application/json", "SELECT 1").await;
        assert_eq!(status, 200, "serving after the bomb");
    });
}

/// Rows of `system.job_run` for `job`, through the CLI.
fn job_runs(job: &str) -> Vec<Value> {
    let (_, config) = company();
    let out = run(
        tributary().arg("--config").arg(config).args([
            "sql",
            "--format",
            "json",
            &format!("SELECT status, message, CAST(started_at AS VARCHAR) AS started_at FROM system.job_run WHERE job = '{job}' ORDER BY started_at"),
        ]),
        true,
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
}

#[test]
fn jobs_run_on_schedule_retry_failures_and_run_once_at_a_time() {
    // The sales forecast every 3 seconds. A scheduled model job writes once per run date, and the
    // demo forecast today already, so these runs are recorded as skipped.
    let before = job_runs("sales_forecast").len();
    let started = chrono::Utc::now();
    let server = Server::company(&[(
        "TRIBUTARY_SCHEDULES",
        r#"[{job = "sales_forecast", cron = "*/3 * * * * *"}]"#,
    )]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while job_runs("sales_forecast").len() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the scheduled sales forecast ran twice within two minutes"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let runs = job_runs("sales_forecast");
    let last = runs.last().unwrap();
    assert!(
        matches!(last["status"].as_str(), Some("skipped" | "succeeded")),
        "{runs:?}"
    );
    let text = last["started_at"].as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc())
        })
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    assert!(at >= started, "run at {at}, after the server started at {started}");
    drop(server);

    let server = Server::company(&[("TRIBUTARY_CHURN__HORIZON_DAYS", "5000")]);
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let trigger = |job: &'static str| {
            let request = client
                .post(format!("{}/api/v1/jobs/{job}/run", server.http))
                .basic_auth("adam", Some(password("adam")));
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    serde_json::from_str::<Value>(&response.text().await.unwrap()).unwrap(),
                )
            }
        };
        // A job that cannot succeed (a churn horizon longer than the history) is retried once
        // and every attempt is recorded.
        let failures_before = job_runs("churn").iter().filter(|r| r["status"] == "failed").count();
        let (status, body) = trigger("churn").await;
        assert_eq!((status, error_code(&body)), (500, "job_failed"), "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("after 2 attempt"),
            "{body}"
        );
        let failures = job_runs("churn").iter().filter(|r| r["status"] == "failed").count();
        assert_eq!(failures - failures_before, 2, "both attempts are in system.job_run");

        // Two triggers at once give one run.
        let runs_before = job_runs("lifetime").len();
        let ((a, _), (b, second)) = tokio::join!(trigger("lifetime"), trigger("lifetime"));
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{second}");
        assert_eq!(job_runs("lifetime").len(), runs_before + 1);

        let (status, jobs) = get_json(&server, "adam", "/api/v1/jobs").await;
        assert_eq!(status, 200);
        assert_eq!(
            texts(&jobs["jobs"], "name"),
            ["refresh", "churn", "lifetime", "sales_forecast", "demand_forecast"]
        );
    });
}

#[test]
fn schemathesis_finds_no_server_error() {
    let server = Server::company(&[]);
    // Schemathesis keeps a cache in its working directory: a scratch one, not the repository.
    let scratch = tempfile::tempdir().unwrap();
    let out = crate::python()
        .current_dir(scratch.path())
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
            "run",
        ])
        .arg(format!("{}/openapi.json", server.http))
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--exclude-path-regex",
            "/jobs/.*/run",
        ])
        .args(["--auth", &format!("adam:{}", password("adam"))])
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis:\n{text}");
}

#[test]
fn postgres_speaks_tls_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server = Server::company(&[
        ("TRIBUTARY_PG__TLS_CERT", cert.to_str().unwrap()),
        ("TRIBUTARY_PG__TLS_KEY", key.to_str().unwrap()),
    ]);
    let out = std::process::Command::new("psql")
        .arg(format!(
            "postgresql://anna@127.0.0.1:{}/tributary?sslmode=require",
            server.pg
        ))
        .args([
            "-X",
            "-At",
            "-c",
            "SELECT count(*) FROM marts.customer_7p",
            "-c",
            "\\conninfo",
        ])
        .env("PGPASSWORD", password("anna"))
        .output()
        .expect("psql runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("SSL connection"), "{text}");
}

#[test]
fn every_notebook_runs_against_the_server() {
    let server = Server::company(&[]);
    let (dir, _) = company();
    let notebooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let out = run(
        crate::python()
            .arg(notebooks.join("run.py"))
            .env("TRIBUTARY_PG_URL", server.pg_url("anna", password("anna")))
            .env("TRIBUTARY_DATA_DIR", dir.path().join("data")),
        true,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for book in ["01_7p_profile", "02_churn_model", "03_forecasts", "04_delta_tables"] {
        assert!(text.contains(&format!("{book}.ipynb: ran")), "{book}: {text}");
    }
}
