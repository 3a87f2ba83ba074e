//! `tributary ingest` on real files into real Delta tables: counts reconciled with the exports,
//! re-runs that add nothing, a kill -9 in the middle, and bad inputs that end in quarantine or a
//! clear error naming file, row and field.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use serde_json::Value;
use tributary_warehouse::layout::DataDir;
use tributary_warehouse::store::Store;

use crate::{run, stderr, stdout, tributary};

/// Run SQL over every table of a data directory; every value as text (NULL as "NULL").
pub fn sql(data_dir: &Path, query: &str) -> Vec<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::new(DataDir::new(data_dir));
        let ctx = store.session_all().await.unwrap();
        let batches = ctx
            .sql(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let mut rows = Vec::new();
        for batch in batches {
            let columns: Vec<StringArray> = batch
                .columns()
                .iter()
                .map(|c| {
                    let text = cast(c, &DataType::Utf8).unwrap();
                    text.as_any().downcast_ref::<StringArray>().unwrap().clone()
                })
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(
                    columns
                        .iter()
                        .map(|c| {
                            if c.is_null(i) {
                                "NULL".to_string()
                            } else {
                                c.value(i).to_string()
                            }
                        })
                        .collect(),
                );
            }
        }
        rows
    })
}

fn count(data_dir: &Path, table: &str) -> u64 {
    sql(data_dir, &format!("SELECT count(*) FROM {table}"))[0][0]
        .parse()
        .unwrap()
}

fn ingest_json(data_dir: &Path, extra: &[&str], ok: bool) -> (Value, String) {
    let output = run(
        tributary()
            .args(["--data-dir", data_dir.to_str().unwrap(), "ingest", "--format", "json"])
            .args(extra),
        ok,
    );
    (
        serde_json::from_str(&stdout(&output)).expect("JSON report"),
        stderr(&output),
    )
}

fn generate(data_dir: &Path, customers: &str) {
    run(
        tributary().args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "generate",
            "--customers",
            customers,
            "--years",
            "1",
        ]),
        true,
    );
}

/// Number of commits in a table's Delta log.
fn versions(data_dir: &Path, layer: &str, table: &str) -> usize {
    std::fs::read_dir(data_dir.join("tables").join(layer).join(table).join("_delta_log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
        .count()
}

#[test]
fn every_sample_export_is_ingested_and_reconciled_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    generate(data, "200");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("landing/manifest.json")).unwrap()).unwrap();
    let (report, _) = ingest_json(data, &[], true);
    let batches = report["batches"].as_array().unwrap();
    assert_eq!(report["unmatched"].as_array().unwrap().len(), 0, "{report}");

    // Every export (the truth files aside) went through exactly one pipeline, all rows stored.
    let mut exports = 0;
    for file in manifest["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        if path.starts_with("_truth/") {
            continue;
        }
        exports += 1;
        let batch = batches
            .iter()
            .find(|b| b["file"] == path)
            .unwrap_or_else(|| panic!("{path} was not ingested: {report}"));
        assert_eq!(batch["status"], "committed", "{batch}");
        assert_eq!(
            batch["rows_read"], file["rows"],
            "{path}: rows read against the manifest"
        );
        assert_eq!(batch["rows_quarantined"], 0, "{path}: {batch}");
        assert_eq!(batch["rows_duplicate"], 0, "{path}: {batch}");
        assert_eq!(batch["rows_stored"], file["rows"], "{path}");
        let raw_table = format!("raw.{}", batch["pipeline"].as_str().unwrap());
        assert_eq!(Some(count(data, &raw_table)), file["rows"].as_u64(), "{raw_table}");
    }
    assert_eq!(exports, 17);
    assert_eq!(batches.len(), 17);

    // Staging tables hold what the batches say they stored, per entity.
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for b in batches {
        for t in b["targets"].as_array().unwrap() {
            *stored.entry(t["entity"].as_str().unwrap().to_string()).or_default() += t["inserted"].as_u64().unwrap();
        }
    }
    assert_eq!(stored.len(), 14, "{stored:?}");
    for (entity, rows) in &stored {
        assert_eq!(count(data, &format!("staging.{entity}")), *rows, "staging.{entity}");
    }
    // Both systems' customers are in one staging table, told apart by source_system.
    let by_system = sql(
        data,
        "SELECT source_system, count(*) FROM staging.customer GROUP BY source_system ORDER BY 1",
    );
    assert_eq!(by_system[0][0], "crm");
    assert_eq!(by_system[1][0], "erp");
    // Values are typed and mapped: dates parsed from DD.MM.YYYY, discounts as fractions,
    // money as exact decimals.
    let types = sql(
        data,
        "SELECT arrow_typeof(created_at), arrow_typeof(is_active) FROM staging.customer LIMIT 1",
    );
    assert_eq!(types[0], ["Timestamp(µs, \"UTC\")", "Boolean"]);
    let lines = sql(
        data,
        "SELECT arrow_typeof(net_amount), max(discount) <= 1, min(discount) >= 0, \
         sum(CASE WHEN abs(net_amount - quantity * unit_price * (1 - discount)) > 0.02 THEN 1 ELSE 0 END) \
         FROM staging.order_line GROUP BY 1",
    );
    assert_eq!(
        lines[0],
        ["Decimal128(18, 2)", "true", "true", "0"],
        "net = qty x price x (1 - discount)"
    );
    // Lineage on every row.
    let lineage = sql(
        data,
        "SELECT count(*) FROM staging.sales_order WHERE _source = 'landing' AND _file = 'erp/sales_orders.csv' \
         AND _row >= 2 AND _batch_id LIKE 'erp_sales_orders-%'",
    );
    assert_eq!(lineage[0][0], count(data, "staging.sales_order").to_string());
    assert_eq!(count(data, "system.ingest_log"), 17);

    // A second run reads nothing and writes no table version.
    let before: Vec<usize> = ["raw/erp_sales_order_lines", "staging/order_line", "staging/customer"]
        .iter()
        .map(|t| {
            let (layer, table) = t.split_once('/').unwrap();
            versions(data, layer, table)
        })
        .collect();
    let (again, _) = ingest_json(data, &[], true);
    for b in again["batches"].as_array().unwrap() {
        assert_eq!(b["status"], "already_ingested", "{b}");
    }
    let after: Vec<usize> = ["raw/erp_sales_order_lines", "staging/order_line", "staging/customer"]
        .iter()
        .map(|t| {
            let (layer, table) = t.split_once('/').unwrap();
            versions(data, layer, table)
        })
        .collect();
    assert_eq!(before, after);
    // The same bytes under another name are the same batch.
    std::fs::copy(
        data.join("landing/erp/inventory_snapshots.csv.gz"),
        data.join("landing/erp/inventory_snapshots_copy.csv.gz"),
    )
    .unwrap();
    let (copy, _) = ingest_json(data, &[], true);
    let copied = copy["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["file"] == "erp/inventory_snapshots_copy.csv.gz")
        .unwrap();
    assert_eq!(copied["status"], "already_ingested");
}

#[test]
fn overlapping_exports_add_only_new_and_changed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    generate(data, "60");
    ingest_json(data, &[], true);
    let orders = std::fs::read_to_string(data.join("landing/erp/sales_orders.csv")).unwrap();
    let total = count(data, "staging.sales_order");
    // A later export: the first 50 orders again, one of them with a new status, and one new order.
    let mut lines: Vec<String> = orders.lines().take(51).map(str::to_string).collect();
    let changed: Vec<&str> = lines[3].split(',').collect();
    let changed_id = changed[0].to_string();
    let mut fields: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
    fields[5] = "cancelled".into();
    lines[3] = fields.join(",");
    let mut new_order: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    new_order[0] = "SO-999999999".into();
    lines.push(new_order.join(","));
    let later = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(later.path().join("erp")).unwrap();
    std::fs::write(later.path().join("erp/sales_orders.csv"), lines.join("\n") + "\n").unwrap();

    let (report, _) = ingest_json(data, &["--from", later.path().to_str().unwrap()], true);
    let batch = &report["batches"][0];
    assert_eq!(batch["rows_read"], 51);
    assert_eq!(batch["rows_duplicate"], 49);
    assert_eq!(batch["rows_stored"], 2);
    assert_eq!(batch["targets"][0]["inserted"], 1);
    assert_eq!(batch["targets"][0]["updated"], 1);
    assert_eq!(count(data, "staging.sales_order"), total + 1);
    let status = sql(
        data,
        &format!("SELECT status, _file FROM staging.sales_order WHERE order_id = '{changed_id}'"),
    );
    assert_eq!(status.len(), 1, "one row per key after the update");
    assert_eq!(status[0][0], "cancelled");
}

#[test]
fn a_kill_in_the_middle_then_a_rerun_equals_one_clean_run() {
    let killed = tempfile::tempdir().unwrap();
    let clean = tempfile::tempdir().unwrap();
    generate(killed.path(), "600");
    generate(clean.path(), "600");
    run(
        tributary().args([
            "--data-dir",
            clean.path().to_str().unwrap(),
            "ingest",
            "--format",
            "json",
        ]),
        true,
    );

    // Kill at a point where some tables are committed and others are not.
    let mut child = tributary()
        .args([
            "--data-dir",
            killed.path().to_str().unwrap(),
            "ingest",
            "--format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = killed.path().join("tables/staging/sales_order/_delta_log");
    let started = Instant::now();
    while !marker.exists() && started.elapsed() < Duration::from_secs(120) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "ingest did not reach staging.sales_order");
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let log_after_kill = if killed.path().join("tables/system/ingest_log").exists() {
        count(killed.path(), "system.ingest_log")
    } else {
        0
    };
    assert!(log_after_kill < 17, "the kill came after the end");
    run(
        tributary().args([
            "--data-dir",
            killed.path().to_str().unwrap(),
            "ingest",
            "--format",
            "json",
        ]),
        true,
    );

    let fingerprint = |dir: &Path| {
        let store = Store::new(DataDir::new(dir));
        store
            .tables()
            .into_iter()
            .map(|(layer, table)| {
                let name = format!("{layer}.{table}");
                let summary = match layer.name() {
                    "staging" => {
                        sql(dir, &format!("SELECT count(*), sum(_row_hash % 1000003) FROM {name}"))[0].join("/")
                    }
                    "system" => sql(dir, &format!("SELECT count(DISTINCT batch_id) FROM {name}"))[0].join("/"),
                    "raw" => sql(dir, &format!("SELECT count(*), count(DISTINCT _row) FROM {name}"))[0].join("/"),
                    _ => sql(dir, &format!("SELECT count(*) FROM {name}"))[0].join("/"),
                };
                (name, summary)
            })
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(fingerprint(killed.path()), fingerprint(clean.path()));
}

/// A pipeline for the bad-input tests: orders in a small CSV layout of our own.
const ORDERS_CONFIG: &str = r#"
[ingest]
sample_pipelines = false

[[pipelines]]
name = "orders"
files = "orders*"
[[pipelines.targets]]
entity = "sales_order"
columns.order_id = "order_no"
columns.customer_id = "customer_no"
columns.order_date = { from = "order_date", format = "%d.%m.%Y" }
columns.net_total = { from = "net_total", min = 0 }
columns.channel = { from = "channel", allowed = ["web", "store"] }
"#;

#[test]
fn bad_inputs_end_in_quarantine_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let config = data.join("orders.toml");
    std::fs::write(&config, ORDERS_CONFIG).unwrap();
    let landing = data.join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let header = "order_no,customer_no,order_date,net_total,channel\n";

    // One file with every kind of bad row, and two good rows.
    let mut bad = Vec::new();
    bad.extend_from_slice(header.as_bytes());
    bad.extend_from_slice(b"A1,C1,01.02.2024,10.50,web\n"); // row 2: good
    bad.extend_from_slice(b"A2,C1,2024-02-30,10.00,web\n"); // row 3: date in the wrong format
    bad.extend_from_slice(b"A3,C1,01.02.2024,ten,web\n"); // row 4: not a number
    bad.extend_from_slice(b"A4,C\xff\xfe,01.02.2024,1.00,web\n"); // row 5: invalid UTF-8
    bad.extend_from_slice(format!("A5,C1,01.02.2024,1.00,{}\n", "x".repeat(10 << 20)).as_bytes()); // row 6: 10 MB
    bad.extend_from_slice(b"A6,C1,01.02.2024\n"); // row 7: too few fields
    bad.extend_from_slice(b"A1,C1,01.02.2024,99.00,web\n"); // row 8: key A1 again, other values
    bad.extend_from_slice(b"A1,C1,01.02.2024,10.50,web\n"); // row 9: exact repeat of row 2
    bad.extend_from_slice(b"A7,C2,03.02.2024,-5,web\n"); // row 10: below the minimum
    bad.extend_from_slice(b"A8,C2,03.02.2024,5,fax\n"); // row 11: not an allowed value
    bad.extend_from_slice(b"A9,,03.02.2024,5,store\n"); // row 12: required customer missing
    bad.extend_from_slice(b"B1,C3,04.02.2024,7.25,store\n"); // row 13: good
    std::fs::write(landing.join("orders_mixed.csv"), &bad).unwrap();
    // Whole files that cannot be read.
    std::fs::write(
        landing.join("orders_semicolons.csv"),
        "order_no;customer_no;order_date;net_total;channel\nZ1;C1;01.02.2024;1;web\n",
    )
    .unwrap();
    std::fs::write(
        landing.join("orders_no_customer.csv"),
        "order_no,order_date,net_total,channel\nZ2,01.02.2024,1,web\n",
    )
    .unwrap();
    std::fs::write(landing.join("orders_empty.csv"), "").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, header.as_bytes()).unwrap();
    for i in 0..20_000 {
        std::io::Write::write_all(&mut gz, format!("G{i},C1,01.02.2024,1.00,web\n").as_bytes()).unwrap();
    }
    let gz = gz.finish().unwrap();
    std::fs::write(landing.join("orders_truncated.csv.gz"), &gz[..gz.len() / 2]).unwrap();

    let output = run(
        tributary().args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "ingest",
            "--format",
            "json",
        ]),
        false,
    );
    let err = stderr(&output);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();

    // The mixed file: read = stored + quarantined + duplicates.
    let mixed = report["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["file"] == "orders_mixed.csv")
        .unwrap();
    assert_eq!(mixed["rows_read"], 12, "{mixed}");
    assert_eq!(mixed["rows_stored"], 2, "{mixed}");
    assert_eq!(mixed["rows_duplicate"], 1, "{mixed}");
    assert_eq!(mixed["rows_quarantined"], 9, "{mixed}");
    assert_eq!(count(data, "staging.sales_order"), 2);
    let quarantined = sql(
        data,
        "SELECT row_number, coalesce(field, ''), reason, file, pipeline FROM system.quarantine ORDER BY row_number",
    );
    let expect = [
        (3, "order_date", "is not a date in the format `%d.%m.%Y`"),
        (4, "net_total", "`ten` is not a decimal number"),
        (5, "customer_no", "invalid UTF-8"),
        (6, "channel", "over the 1048576 byte limit"),
        (7, "", "has 3 fields, the header has 5"),
        (
            8,
            "order_id",
            "duplicate key order_id = `A1` with other values than row 2",
        ),
        (10, "net_total", "below the minimum 0"),
        (11, "channel", "`fax` is not one of web, store"),
        (12, "customer_no", "required and empty"),
    ];
    assert_eq!(quarantined.len(), expect.len(), "{quarantined:?}");
    for (row, (n, field, reason)) in quarantined.iter().zip(expect) {
        assert_eq!(row[0], n.to_string(), "{row:?}");
        assert_eq!(row[1], field, "{row:?}");
        assert!(row[2].contains(reason), "row {n}: {:?} should say {reason:?}", row[2]);
        assert_eq!(row[3], "orders_mixed.csv");
        assert_eq!(row[4], "orders");
    }
    // The raw row is kept, shortened when huge.
    let raw = sql(data, "SELECT raw_row FROM system.quarantine WHERE row_number = 4");
    assert!(raw[0][0].contains("\"net_total\":\"ten\""), "{raw:?}");
    let huge = sql(
        data,
        "SELECT length(raw_row) FROM system.quarantine WHERE row_number = 6",
    );
    assert!(huge[0][0].parse::<u64>().unwrap() <= 5000, "{huge:?}");

    // Unreadable files: a clear error naming file (and row and field where there is one), the
    // file moved aside with its reason, nothing stored from them.
    for (file, says) in [
        (
            "orders_semicolons.csv",
            "row 1: field `order_no` is missing; the header has one column",
        ),
        ("orders_no_customer.csv", "row 1: field `customer_no` is missing"),
        ("orders_empty.csv", "the file is empty"),
        ("orders_truncated.csv.gz", "cannot read past row"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("no error names {file}:\n{err}"));
        assert!(line.contains(says), "{file}: {line}");
        assert!(!landing.join(file).exists(), "{file} stays in landing");
        let reason = std::fs::read_to_string(landing.join("_rejected").join(format!("{file}.reason.txt"))).unwrap();
        assert!(reason.contains(says), "{reason}");
    }
    assert!(err.contains("4 file(s) could not be read"), "{err}");
    let rejected = sql(data, "SELECT count(*) FROM system.ingest_log WHERE status = 'rejected'");
    assert_eq!(rejected[0][0], "4");
    assert_eq!(
        sql(
            data,
            "SELECT count(*) FROM staging.sales_order WHERE order_id LIKE 'G%' OR order_id LIKE 'Z%'"
        )[0][0],
        "0"
    );
}

#[test]
fn a_file_lands_as_a_plain_raw_table_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let file = data.join("subscriptions.csv");
    std::fs::write(
        &file,
        "Customer Email,Plan,Seats,Started,Zip\na@x.com,pro,5,2024-01-31,01067\nb@y.org,basic,1,,80331\n",
    )
    .unwrap();
    let output = run(
        tributary().args([
            "--data-dir",
            data.to_str().unwrap(),
            "ingest",
            "--from",
            file.to_str().unwrap(),
            "--table",
            "raw.subscriptions",
        ]),
        true,
    );
    assert!(stdout(&output).contains("subscriptions"), "{}", stdout(&output));
    let rows = sql(
        data,
        "SELECT customer_email, plan, seats, _row FROM raw.subscriptions ORDER BY _row",
    );
    assert_eq!(rows, [["a@x.com", "pro", "5", "2"], ["b@y.org", "basic", "1", "3"]]);
    // Types come from the values: whole numbers, dates; codes with leading zeros stay text.
    let types = sql(
        data,
        "SELECT arrow_typeof(seats), arrow_typeof(started), arrow_typeof(zip), CAST(started AS VARCHAR) \
         FROM raw.subscriptions ORDER BY _row LIMIT 1",
    );
    assert_eq!(types, [["Int64", "Date32", "Utf8View", "2024-01-31"]]);
}

#[test]
fn duckdb_and_polars_read_the_tables_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    generate(data, "50");
    ingest_json(data, &[], true);
    let ours = count(data, "staging.order_line");
    let partitioned = count(data, "staging.sales_order");
    // polars reads the Delta table through delta-rs's Python package (log and all); DuckDB reads
    // the Parquet files, including the month partitions' hive-style folders.
    let script = format!(
        r#"
import duckdb, polars as pl
lines = pl.read_delta("{lines}")
orders = pl.read_delta("{orders}")
net = lines.select(pl.col("net_amount").cast(pl.Float64).sum()).item()
duck = duckdb.sql("SELECT count(*), sum(net_amount)::DOUBLE FROM read_parquet('{lines}/*.parquet')").fetchall()[0]
duck_orders = duckdb.sql("SELECT count(*), count(DISTINCT _month) FROM read_parquet('{orders}/*/*.parquet', hive_partitioning = true)").fetchall()[0]
print(lines.height, orders.height, duck[0], duck_orders[0], duck_orders[1], abs(net - duck[1]) < 0.01)
"#,
        lines = data.join("tables/staging/order_line").display(),
        orders = data.join("tables/staging/sales_order").display(),
    );
    let output = crate::python().arg("-c").arg(&script).output().unwrap();
    assert!(
        output.status.success(),
        "python3 with duckdb and polars (pip install -r tests/requirements.txt): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = printed.split_whitespace().collect();
    let months = sql(data, "SELECT count(DISTINCT _month) FROM staging.sales_order")[0][0].clone();
    assert_eq!(
        fields,
        [
            ours.to_string().as_str(),
            partitioned.to_string().as_str(),
            ours.to_string().as_str(),
            partitioned.to_string().as_str(),
            months.as_str(),
            "True"
        ]
    );
}

#[test]
fn watch_picks_up_new_files_and_optimize_and_vacuum_keep_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let config = data.join("orders.toml");
    std::fs::write(&config, ORDERS_CONFIG).unwrap();
    let landing = data.join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let mut watcher = tributary()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "ingest",
            "--watch",
        ])
        .env("TRIBUTARY_INGEST__WATCH_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Writers drop a file under a hidden name and rename it, so a scan never sees half a file.
    let drop_file = |name: &str, body: &str| {
        let hidden = landing.join(format!(".{name}"));
        std::fs::write(&hidden, body).unwrap();
        std::fs::rename(&hidden, landing.join(name)).unwrap();
    };
    let wait_for = |rows: u64| {
        let started = Instant::now();
        loop {
            let log = data.join("tables/staging/sales_order/_delta_log");
            if log.exists() && count(data, "staging.sales_order") == rows {
                return;
            }
            assert!(
                // Generous: each pass also rebuilds core and the marts, in a debug build, while the
                // other tests share the two cores.
                started.elapsed() < Duration::from_secs(240),
                "the watcher did not ingest {rows} rows"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let header = "order_no,customer_no,order_date,net_total,channel\n";
    drop_file(
        "orders_1.csv",
        &format!("{header}A1,C1,01.02.2024,1.00,web\nA2,C1,02.02.2024,2.00,web\n"),
    );
    wait_for(2);
    drop_file(
        "orders_2.csv",
        &format!("{header}A3,C2,03.02.2024,3.00,store\nA4,C2,04.02.2024,4.00,web\n"),
    );
    wait_for(4);
    watcher.kill().unwrap();
    watcher.wait().unwrap();

    let args = |command: &[&str]| {
        let mut c = tributary();
        c.args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        c.args(command);
        c
    };
    let optimized = stdout(&run(&mut args(&["optimize", "staging.sales_order"]), true));
    assert!(
        optimized.contains("staging.sales_order: 2 files compacted into 1"),
        "{optimized}"
    );
    assert_eq!(count(data, "staging.sales_order"), 4);
    let vacuumed = stdout(&run(
        &mut args(&["vacuum", "--retain-hours", "0", "staging.sales_order"]),
        true,
    ));
    assert!(
        vacuumed.contains("staging.sales_order: 2 unreferenced files deleted"),
        "{vacuumed}"
    );
    assert_eq!(count(data, "staging.sales_order"), 4);
    let err = stderr(&run(&mut args(&["optimize", "sales_order"]), false));
    assert!(err.contains("name a table as layer.name"), "{err}");
}
