//! `tributary generate` and `tributary demo` through the binary.

use std::path::Path;
use std::process::Stdio;

use crate::{data_rows, run, stderr, stdout, tributary};

#[test]
fn generate_writes_into_the_landing_directory_by_default() {
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        tributary().arg("--data-dir").arg(data.path()).args([
            "generate",
            "--customers",
            "300",
            "--years",
            "1",
            "--seed",
            "3",
        ]),
        true,
    ));
    let landing = data.path().join("landing");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(landing.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["options"]["customers"], 300);
    assert_eq!(manifest["options"]["seed"], 3);
    let lines = data_rows(&landing.join("erp/sales_order_lines.csv"));
    assert!(lines > 1_000, "{lines} order lines");
    assert!(
        out.contains("300 customers, 1 year (2025-10-01 to 2026-09-30), seed 3"),
        "{out}"
    );
    assert!(
        out.contains("erp/sales_order_lines.csv"),
        "the summary lists the files: {out}"
    );
    assert!(
        out.contains(&landing.canonicalize().unwrap().display().to_string()),
        "the summary says where: {out}"
    );
}

#[test]
fn generate_refuses_bad_options_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = stderr(&run(
        tributary()
            .args(["generate", "--end-date", "30.09.2026", "--out"])
            .arg(dir.path().join("x")),
        false,
    ));
    assert!(err.contains("30.09.2026") && err.contains("YYYY-MM-DD"), "{err}");
    let err = stderr(&run(tributary().args(["generate", "--customers", "many"]), false));
    assert!(err.contains("--customers"), "{err}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn demo_builds_the_sample_company_says_what_to_open_and_serves_it() {
    let data = tempfile::tempdir().unwrap();
    let server = crate::serve::Server::start(
        &["--data-dir", data.path().to_str().unwrap()],
        &["demo", "--customers", "500"],
        &[],
    );
    let out = server.printed.join("\n");
    let landing = data.path().join("landing");
    for file in [
        "crm/accounts.csv",
        "crm/activities.ndjson",
        "erp/customers.csv",
        "erp/products.txt",
        "erp/sales_order_lines.csv",
        "erp/inventory_snapshots.csv.gz",
    ] {
        assert!(landing.join(file).is_file(), "demo wrote {file}");
    }
    assert_eq!(data_rows(&landing.join("_truth/customer_lifecycle.csv")), 500);
    assert!(out.contains("Generated a sample company: 500 customers"), "{out}");
    assert!(out.contains("Next:"), "{out}");
    assert!(out.contains("manifest.json"), "{out}");
    // It trains and forecasts after building the warehouse.
    for table in [
        "ml.churn_score",
        "ml.customer_lifetime",
        "ml.sales_forecast",
        "ml.demand_forecast",
    ] {
        assert!(out.contains(table), "demo writes {table}:\n{out}");
    }
    // It ends by serving, with one user per role, and prints their credentials.
    let credentials = |role: &str| {
        out.lines()
            .find_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                (words.len() >= 3 && words[0] == role && words[1] == "password").then(|| words[2].to_string())
            })
            .unwrap_or_else(|| panic!("demo prints the {role}'s password:\n{out}"))
    };
    let admin = credentials("admin");
    let viewer = credentials("viewer");
    credentials("analyst");
    assert!(
        data.path().join("demo.toml").is_file(),
        "demo keeps its users' configuration"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let me = |user: &'static str, password: String| {
            client
                .get(format!("{}/api/v1/me", server.http))
                .basic_auth(user, Some(password))
                .send()
        };
        let admin_me = me("admin", admin).await.unwrap().text().await.unwrap();
        assert!(admin_me.contains("\"role\":\"admin\""), "{admin_me}");
        let viewer_me = me("viewer", viewer).await.unwrap().text().await.unwrap();
        assert!(viewer_me.contains("\"role\":\"viewer\""), "{viewer_me}");
        let anonymous = client.get(format!("{}/api/v1/me", server.http)).send().await.unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "the demo's server asks for credentials"
        );
    });
}

/// Peak resident memory of a child process, in KiB, from the kernel's accounting of that one child.
/// The child is reaped with `wait4` rather than `Child::wait`, because only `wait4` reports that one
/// child's usage (`getrusage` would mix in every other test's children).
#[allow(unsafe_code, clippy::zombie_processes)]
fn peak_rss_kib(args: &[&str], data: &Path) -> i64 {
    let child = tributary()
        .current_dir(data)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 on the generator");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "generate exited with {status}"
    );
    usage.ru_maxrss
}

#[test]
fn generator_memory_does_not_grow_with_customers() {
    // From about 2,000 customers on, the fixed structures (write buffers, the catalogue, the
    // inventory tally) are all in use; anything kept per customer would show beyond that.
    let data = tempfile::tempdir().unwrap();
    let small = peak_rss_kib(&["generate", "--customers", "2000", "--out", "small"], data.path());
    let large = peak_rss_kib(&["generate", "--customers", "20000", "--out", "large"], data.path());
    let small_lines = data_rows(&data.path().join("small/erp/sales_order_lines.csv"));
    let large_lines = data_rows(&data.path().join("large/erp/sales_order_lines.csv"));
    assert!(
        large_lines > 8 * small_lines,
        "ten times the customers: {small_lines} vs {large_lines} order lines"
    );
    eprintln!("peak RSS: {small} KiB for 2,000 customers, {large} KiB for 20,000 customers");
    assert!(
        (large as f64) < small as f64 * 1.1 + 1024.0,
        "peak memory grew from {small} KiB to {large} KiB with ten times the customers"
    );
}

#[test]
fn a_write_failure_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the generator needs the `crm` directory.
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/crm"), "not a directory").unwrap();
    let err = stderr(&run(
        tributary()
            .args(["generate", "--customers", "10", "--out"])
            .arg(dir.path().join("out")),
        false,
    ));
    assert!(err.contains(&dir.path().join("out/crm").display().to_string()), "{err}");
}
