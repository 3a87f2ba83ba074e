//! Load on `tributary serve`: 64 concurrent clients for 60 seconds on dashboard-style requests
//! (semantic-layer measures by month, quarter, segment, region and channel; the top churn risks;
//! the sales forecast; a SQL query on a mart), each signed in with HTTP Basic credentials. Prints
//! requests per second, p50, p99 and errors. Target: at least 1,000 requests per second with p99
//! under 50 ms, with zero errors.
//!
//! `cargo bench -p tributary --bench serve_load [-- SECONDS CLIENTS CUSTOMERS]` (defaults 60, 64,
//! 5,000). The company is built once by `tributary demo --no-serve` into the target directory and
//! reused. The clients run in this process on the same two cores as the server, so the figures
//! are what one machine does serving and asking at once.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The requests a dashboard page makes: method, path, body.
const REQUESTS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/metrics",
        r#"{"measures": ["revenue", "gross_margin", "orders"], "dimensions": ["date"], "grain": "month"}"#,
    ),
    (
        "POST",
        "/api/v1/metrics",
        r#"{"measures": ["active_customers", "churn_rate"], "dimensions": ["date", "segment"], "grain": "quarter"}"#,
    ),
    (
        "POST",
        "/api/v1/metrics",
        r#"{"measures": ["revenue", "average_order_value"], "dimensions": ["region", "channel"], "from": "2026-01-01", "to": "2026-06-30"}"#,
    ),
    ("GET", "/api/v1/churn?limit=20", ""),
    ("GET", "/api/v1/forecasts/sales?level=total", ""),
    (
        "POST",
        "/api/v1/sql",
        r#"{"sql": "SELECT rfm_segment, count(*) AS customers, sum(monetary_value) AS value FROM marts.customer_rfm GROUP BY 1 ORDER BY 1"}"#,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(60);
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let customers: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let binary = env!("CARGO_BIN_EXE_tributary");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-load-{customers}"));
    let data = root.join("data");
    if !root.join("built").is_file() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        eprintln!("building a company of {customers} customers in {}", data.display());
        let built = Command::new(binary)
            .arg("--data-dir")
            .arg(&data)
            .args(["-q", "demo", "--no-serve", "--customers", &customers.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(built.success(), "tributary demo");
        std::fs::write(root.join("built"), "").unwrap();
    }
    let mut hashing = Command::new(binary)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(hashing.stdin.take().unwrap(), "load-test-pw").unwrap();
    let hash = String::from_utf8(hashing.wait_with_output().unwrap().stdout).unwrap();
    let config = root.join("load.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nschedules = []\n[[users]]\nname = \"dashboard\"\nrole = \"viewer\"\npassword_hash = \"{}\"\n",
            data.display().to_string(),
            hash.trim()
        ),
    )
    .unwrap();

    let mut server = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .args(["-q", "serve", "--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let http = loop {
        let line = lines.next().expect("the server says where it listens").unwrap();
        if let Some(rest) = line.strip_prefix("listening ") {
            let addr = rest.split_whitespace().find_map(|p| p.strip_prefix("http=")).unwrap();
            break format!("http://{addr}");
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (latencies, errors, elapsed) = runtime.block_on(load(&http, seconds, clients));
    let _ = server.kill();
    let _ = server.wait();

    let mut sorted = latencies;
    sorted.sort_unstable();
    let count = sorted.len();
    let at = |q: f64| {
        sorted
            .get(((count as f64 * q) as usize).min(count.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rps = count as f64 / elapsed.as_secs_f64();
    println!(
        "serve_load: {clients} clients for {:.1} s on {} dashboard requests: {count} answered, {errors} errors",
        elapsed.as_secs_f64(),
        REQUESTS.len()
    );
    println!(
        "  {rps:.0} requests/s (target >= 1000, ratio {:.2}), p50 {:.1} ms, p99 {:.1} ms (target < 50 ms, ratio {:.2}), max {:.1} ms",
        rps / 1000.0,
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0 / 50.0,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

/// Every client loops over the requests until time is up; latencies of good answers, and errors.
async fn load(http: &str, seconds: u64, clients: usize) -> (Vec<Duration>, u64, Duration) {
    let client = reqwest::Client::new();
    // Warm up: every request once, and the answers must be good.
    for (method, path, body) in REQUESTS {
        let response = send(&client, http, method, path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let http = http.to_string();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (method, path, body) = REQUESTS[i % REQUESTS.len()];
                i += 1;
                let sent = Instant::now();
                let response = send(&client, &http, method, path, body).await;
                let ok = response.status().is_success();
                let read = response.bytes().await.is_ok();
                if ok && read {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    (latencies, errors, started.elapsed())
}

async fn send(client: &reqwest::Client, http: &str, method: &str, path: &str, body: &str) -> reqwest::Response {
    let url = format!("{http}{path}");
    let request = if method == "POST" {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
    } else {
        client.get(url)
    };
    request
        .basic_auth("dashboard", Some("load-test-pw"))
        .send()
        .await
        .expect("the server answers")
}
