//! CSV of order lines to the conformed Delta table (`staging.order_line`, plus `raw`), in rows per
//! second, beside DuckDB's CSV to Parquet `COPY` of the same file in the same run.
//!
//! `cargo bench -p tributary-ingest --bench ingest_order_lines [-- CUSTOMERS] [compression=CODEC]`
//! (default 20,000 customers: about 2.6 million order lines; our codec by default that of
//! `[storage] parquet_compression`). DuckDB comes from `tests/requirements.txt`, installed
//! into the virtual environment the tests use (made on first use); when it cannot run, the
//! benchmark says so and prints no ratio. Target: at least DuckDB's throughput.
//!
//! Both sides read the same file from the page cache. Ours parses, validates (types, ranges,
//! references to orders and products; customers, products and orders are ingested first, untimed),
//! de-duplicates by key and writes two Delta tables; DuckDB
//! parses and writes one Parquet file. Each is timed three times; the best run counts.

use std::path::Path;
use std::time::Instant;

use tributary_ingest::run::{self, Pipelines};
use tributary_ingest::sample_company::{SampleOptions, generate};
use tributary_warehouse::layout::DataDir;
use tributary_warehouse::store::{ParquetCompression, StorageOptions, Store};

#[path = "../../tests/python.rs"]
mod python_env;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let customers = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20_000u64);
    // `compression=snappy` (or zstd, uncompressed; lz4_raw by default): our tables written with
    // that codec (DuckDB writes Snappy, its default, either way).
    let compression: ParquetCompression = args
        .iter()
        .find_map(|a| a.strip_prefix("compression="))
        .map(|name| name.parse().expect("a codec of [storage]"))
        .unwrap_or_default();
    println!("our codec: {compression}");
    let work = tempfile::tempdir().expect("temporary directory");
    let exports = work.path().join("exports");
    let options = SampleOptions {
        customers,
        ..SampleOptions::default()
    };
    let manifest = generate(&options, &exports, |_| {}).expect("generation succeeds");
    let lines = manifest.rows("erp/sales_order_lines.csv").expect("order lines written");
    let csv = exports.join("erp/sales_order_lines.csv");
    let megabytes = std::fs::metadata(&csv).expect("file").len() as f64 / 1e6;
    println!("{customers} customers: {lines} order lines, {megabytes:.0} MB of CSV");

    let duckdb = duckdb_copy(&csv, work.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pipelines = Pipelines::new(Pipelines::sample_company()).expect("built-in pipelines");
    let mut best = f64::MAX;
    for attempt in 1..=3 {
        let data = work.path().join(format!("data{attempt}"));
        let store = Store::new(DataDir::new(&data)).with_options(StorageOptions {
            parquet_compression: compression,
        });
        // Customers, products and orders first (untimed): the order lines' references are checked
        // against orders and products, and the orders' against customers.
        for name in ["erp_customers", "erp_products", "erp_sales_orders"] {
            let (pipeline, targets) = pipelines.get(name).expect("pipeline");
            let file = pipeline.files.as_deref().expect("file pipeline");
            runtime
                .block_on(run::ingest_file(
                    &store,
                    pipeline,
                    targets,
                    &exports.join(file),
                    file,
                    "landing",
                    &|_, _| {},
                ))
                .expect("ingest");
        }
        let (pipeline, targets) = pipelines.get("erp_sales_order_lines").expect("pipeline");
        let started = Instant::now();
        let cpu_before = process_cpu_seconds();
        let report = runtime
            .block_on(run::ingest_file(
                &store,
                pipeline,
                targets,
                &csv,
                "erp/sales_order_lines.csv",
                "landing",
                &|_, _| {},
            ))
            .expect("ingest");
        let seconds = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        assert_eq!(report.rows_stored, lines, "every line stored: {report:?}");
        println!(
            "tributary run {attempt}: {seconds:.2} s, {:.0} rows/s{}",
            lines as f64 / seconds,
            cpu.map(|c| format!(" ({c:.2} s of CPU)")).unwrap_or_default()
        );
        best = best.min(seconds);
        std::fs::remove_dir_all(&data).ok();
    }
    let ours = lines as f64 / best;
    println!("tributary CSV -> Delta (raw + staging.order_line): best {ours:.0} rows/s");
    match duckdb {
        Some(seconds) => {
            let theirs = lines as f64 / seconds;
            println!("duckdb CSV -> Parquet COPY: best {theirs:.0} rows/s");
            println!(
                "ratio tributary/duckdb: {:.2} (target >= 1.00: {})",
                ours / theirs,
                if ours >= theirs { "met" } else { "MISSED" }
            );
        }
        None => println!("duckdb did not run (see above), no ratio"),
    }
}

/// CPU time of this process so far, all threads (Linux: `/proc/self/stat`, in clock ticks of
/// 10 ms). On a shared machine a change of a few percent shows here before it shows in wall time.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) closed by ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Best of three `COPY (FROM read_csv(...)) TO parquet` runs, timed inside Python.
fn duckdb_copy(csv: &Path, work: &Path) -> Option<f64> {
    let script = format!(
        r#"
import time, duckdb
best = float("inf")
for i in range(3):
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute("COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
    best = min(best, time.perf_counter() - t)
    print(f"duckdb run {{i + 1}}: {{time.perf_counter() - t:.2f}} s", flush=True)
print(best)
"#,
        csv = csv.display(),
        out = work.join("duckdb_order_lines.parquet").display()
    );
    let output = python_env::python().arg("-c").arg(script).output().ok()?;
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    let best = lines.pop()?.trim().parse().ok()?;
    for l in lines {
        println!("{l}");
    }
    Some(best)
}
