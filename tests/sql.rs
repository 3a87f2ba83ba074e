//! `tributary sql`: one query through the same function the servers use, in three formats, with
//! the limits of `[limits]` applied and each breach reported as itself.

use std::path::Path;
use std::sync::OnceLock;

use crate::{run, stderr, stdout, tributary};

/// A sample company ingested once for all the SQL tests (they only read).
fn warehouse() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        run(
            tributary().args(["--data-dir", data, "generate", "--customers", "60", "--years", "1"]),
            true,
        );
        run(tributary().args(["--data-dir", data, "ingest"]), true);
        dir
    })
    .path()
}

fn sql(args: &[&str], env: &[(&str, &str)], ok: bool) -> std::process::Output {
    let mut command = tributary();
    command
        .args(["--data-dir", warehouse().to_str().unwrap(), "sql"])
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    run(&mut command, ok)
}

#[test]
fn a_query_prints_as_a_table_csv_or_json() {
    let query = "SELECT channel, count(*) AS orders FROM staging.sales_order GROUP BY channel ORDER BY channel";
    let csv = stdout(&sql(&[query, "--format", "csv"], &[], true));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("channel,orders"));
    let counted: u64 = lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let total = stdout(&sql(
        &["SELECT count(*) AS n FROM staging.sales_order", "--format", "csv"],
        &[],
        true,
    ));
    assert_eq!(total.lines().nth(1).unwrap().parse::<u64>().unwrap(), counted);

    let json: serde_json::Value = serde_json::from_str(&stdout(&sql(&[query, "--format", "json"], &[], true))).unwrap();
    let rows = json.as_array().unwrap();
    assert!(rows.len() >= 2, "{json}");
    assert!(
        rows[0]["channel"].is_string() && rows[0]["orders"].is_number(),
        "{json}"
    );

    let table = stdout(&sql(&[query], &[], true));
    assert!(table.starts_with("+--") && table.contains("| channel"), "{table}");
    // Every layer is a schema, even before anything is written to it.
    let schemas = stdout(&sql(
        &[
            "SELECT DISTINCT table_schema FROM information_schema.tables ORDER BY 1",
            "--format",
            "csv",
        ],
        &[],
        true,
    ));
    for layer in ["raw", "staging", "system"] {
        assert!(schemas.lines().any(|l| l == layer), "{schemas}");
    }
}

#[test]
fn statements_are_read_from_standard_input_without_a_query() {
    use std::io::Write;
    let mut child = tributary()
        .args(["--data-dir", warehouse().to_str().unwrap(), "sql", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1 AS one;\nSELECT nope FROM nowhere;\nSELECT 2\n  AS two;\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(stdout(&output), "one\n1\ntwo\n2\n");
    assert!(
        stderr(&output).contains("error: ") && stderr(&output).contains("nowhere"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn each_limit_breach_is_a_clear_error() {
    let err = stderr(&sql(
        &["SELECT * FROM staging.order_line"],
        &[("TRIBUTARY_LIMITS__MAX_RESULT_ROWS", "10")],
        false,
    ));
    assert!(err.contains("more than 10 rows (limits.max_result_rows)"), "{err}");

    let slow = "SELECT count(*) FROM staging.inventory_snapshot a JOIN staging.inventory_snapshot b ON a.sku = b.sku";
    let err = stderr(&sql(&[slow], &[("TRIBUTARY_LIMITS__QUERY_TIMEOUT_SECS", "1")], false));
    assert!(err.contains("longer than 1 s (limits.query_timeout_secs)"), "{err}");

    let err = stderr(&sql(&["SELEC 1"], &[], false));
    assert!(err.contains("SELEC"), "{err}");
}

#[test]
fn a_sort_several_times_larger_than_memory_completes_by_spilling() {
    // About 400,000 inventory rows, 36 MB as spilled (and over 200 MB as Arrow batches in memory),
    // sorted with a 12 MiB pool.
    let explain = stdout(&sql(
        &[
            "EXPLAIN ANALYZE SELECT sku, location, snapshot_date, on_hand, _file, _batch_id \
             FROM staging.inventory_snapshot ORDER BY on_hand, sku, location, snapshot_date",
            "--format",
            "csv",
        ],
        &[("TRIBUTARY_LIMITS__MEMORY_MB", "12")],
        true,
    ));
    let spills: Vec<u64> = explain
        .split("spill_count=")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect();
    assert!(spills.iter().any(|n| *n > 0), "no operator spilled:\n{explain}");
    // Metrics print as "405.7 K"; read the sort's output rows back into a number.
    let sorted_rows: f64 = explain
        .lines()
        .filter(|l| l.contains("SortExec"))
        .filter_map(|l| {
            let text = l.split("output_rows=").nth(1)?;
            let number: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let scale = match text[number.len()..].trim_start().chars().next() {
                Some('K') => 1e3,
                Some('M') => 1e6,
                _ => 1.0,
            };
            Some(number.parse::<f64>().ok()? * scale)
        })
        .sum();
    assert!(sorted_rows > 400_000.0, "{sorted_rows}: {explain}");
    let err = stderr(&sql(
        // A hash join's build side cannot spill: with 1 MiB this one cannot run at all.
        &[
            "SELECT count(*) FROM staging.inventory_snapshot a JOIN staging.inventory_snapshot b \
           ON a.sku = b.sku AND a.location = b.location AND a.snapshot_date = b.snapshot_date",
        ],
        &[("TRIBUTARY_LIMITS__MEMORY_MB", "1")],
        false,
    ));
    assert!(err.contains("limits.memory_mb"), "{err}");
}

#[test]
fn datafusion_options_come_from_its_environment_variables_and_the_warehouse_settings_win() {
    let setting = |name: &str, env: &[(&str, &str)]| {
        let query = format!("SELECT value FROM information_schema.df_settings WHERE name = '{name}'");
        let csv = stdout(&sql(&[&query, "--format", "csv"], env, true));
        csv.lines().nth(1).unwrap_or_default().to_string()
    };
    let tuned = [
        ("DATAFUSION_EXECUTION_BATCH_SIZE", "4321"),
        ("DATAFUSION_EXECUTION_PARQUET_SCHEMA_FORCE_VIEW_TYPES", "true"),
    ];
    assert_eq!(setting("datafusion.execution.batch_size", &[]), "8192");
    assert_eq!(setting("datafusion.execution.batch_size", &tuned), "4321");
    // Two partitions per core unless the operator says otherwise.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    assert_eq!(
        setting("datafusion.execution.target_partitions", &[]),
        (2 * cores).to_string()
    );
    assert_eq!(
        setting(
            "datafusion.execution.target_partitions",
            &[("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "3")]
        ),
        "3"
    );
    // Text stays plain Utf8 for the memory pool's sake, whatever the environment says.
    assert_eq!(
        setting("datafusion.execution.parquet.schema_force_view_types", &tuned),
        "false"
    );
    // A value DataFusion cannot read is reported and left out, not a failed query.
    let out = sql(
        &["SELECT 1 AS one", "--format", "csv"],
        &[("DATAFUSION_EXECUTION_BATCH_SIZE", "many")],
        true,
    );
    assert_eq!(stdout(&out).lines().nth(1), Some("1"));
    assert!(stderr(&out).contains("DATAFUSION_"), "{}", stderr(&out));
}
