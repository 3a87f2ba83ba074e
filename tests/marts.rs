//! The 7P marts on the sample company, through the CLI: ingest ends by building `core` and
//! `marts`, a refresh with nothing new rebuilds nothing, `profile` prints one customer's seven P's,
//! the marts reconcile with the facts, and DuckDB running the same mart SQL on our `core` Parquet
//! files gets the same answers. (The marts' exact values are pinned on a hand-worked company by
//! the warehouse crate's sqllogictest files.)

use std::path::Path;

use crate::ingest::sql;
use crate::{python, run, stderr, stdout, tributary};

fn company(customers: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    run(
        tributary().args(["--data-dir", &d, "generate", "--customers", customers, "--years", "2"]),
        true,
    );
    let ingested = stdout(&run(tributary().args(["--data-dir", &d, "ingest"]), true));
    for table in [
        "core.order_line",
        "marts.customer_rfm",
        "marts.product_association",
        "marts.customer_7p",
    ] {
        assert!(ingested.contains(table), "ingest refreshes {table}:\n{ingested}");
    }
    (dir, d)
}

#[test]
fn ingest_builds_the_marts_they_reconcile_and_profile_prints_seven_ps() {
    let (dir, d) = company("400");
    let data = dir.path();

    // Nothing new: nothing rebuilt.
    let again = stdout(&run(tributary().args(["--data-dir", &d, "refresh"]), true));
    assert!(again.contains("up to date"), "{again}");

    // Every fact line found its customer and product; the marts add up to the facts.
    let unresolved = sql(
        data,
        "SELECT COUNT(*) - COUNT(customer_key), COUNT(*) - COUNT(product_key) FROM core.order_line",
    );
    assert_eq!(unresolved, vec![vec!["0".to_string(), "0".to_string()]]);
    let sums = sql(
        data,
        "SELECT (SELECT SUM(net_amount) FROM core.order_line WHERE status <> 'cancelled') AS facts, \
                (SELECT SUM(net_sales) FROM marts.customer_profitability) AS profitability, \
                (SELECT SUM(net_sales) FROM marts.sales_performance) AS performance, \
                (SELECT SUM(net_sales) FROM marts.customer_7p) AS seven_p",
    );
    let first = &sums[0][0];
    assert!(first.parse::<f64>().unwrap() > 0.0);
    assert!(
        sums[0].iter().all(|s| s == first),
        "net sales differ between facts and marts: {sums:?}"
    );
    let customers = sql(
        data,
        "SELECT (SELECT COUNT(*) FROM core.customer) AS customers, (SELECT COUNT(*) FROM marts.customer_7p) AS profiles",
    );
    assert_eq!(customers[0][0], customers[0][1], "one 7P row per customer");

    // A profile by CRM id, as a person reads it and as JSON.
    let buyer = sql(
        data,
        "SELECT crm_account_id, customer_key FROM marts.customer_7p \
         WHERE orders > 3 AND crm_account_id IS NOT NULL ORDER BY customer_key LIMIT 1",
    );
    let (crm_id, key) = (&buyer[0][0], &buyer[0][1]);
    let printed = stdout(&run(tributary().args(["--data-dir", &d, "profile", crm_id]), true));
    for section in [
        "PROFILING",
        "PERSISTENCY",
        "PROFITABILITY",
        "PERFORMANCE",
        "PROSPECTING",
        "PRODUCT",
        "PROMOTION",
        "CATEGORY MIX",
    ] {
        assert!(printed.contains(section), "{section} missing:\n{printed}");
    }
    let json = stdout(&run(
        tributary().args(["--data-dir", &d, "profile", key, "--format", "json"]),
        true,
    ));
    let profile: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(profile["customer"]["crm_account_id"], crm_id.as_str());
    assert!(profile["performance"]["orders"].as_i64().unwrap() > 3);
    assert!(!profile["category_mix"].as_array().unwrap().is_empty());

    // Time travel: the first version of the 7P mart is still readable; a bad layer is named.
    let first = stdout(&run(
        tributary().args([
            "--data-dir",
            &d,
            "sql",
            "SELECT COUNT(*) FROM as_of('marts.customer_7p', 0)",
            "--format",
            "csv",
        ]),
        true,
    ));
    assert_eq!(first.lines().nth(1), Some(customers[0][1].as_str()), "{first}");
    let wrong = run(
        tributary().args(["--data-dir", &d, "sql", "SELECT * FROM as_of('lake.customer', 0)"]),
        false,
    );
    assert!(stderr(&wrong).contains("no layer \"lake\""), "{}", stderr(&wrong));

    // The semantic layer answers a dashboard's question from rollups, with the facts' numbers.
    let explained = rollup_equals_sql(
        &d,
        &[
            "revenue,orders,active_customers",
            "--by",
            "date,region",
            "--grain",
            "month",
        ],
        "-- reads marts.sales_daily, marts.orders_daily, marts.active_customers",
        "SELECT CAST(date_trunc('month', order_date) AS DATE), COALESCE(region, 'unknown'), SUM(net_amount), \
         COUNT(DISTINCT order_id), COUNT(DISTINCT customer_key) FROM core.order_line \
         WHERE status <> 'cancelled' GROUP BY 1, 2 ORDER BY 1, 2",
        12,
    );
    assert!(!explained.contains("core.order_line"), "{explained}");

    // Campaigns the same way: the rollup's touches, conversions and control groups equal the
    // touches themselves.
    rollup_equals_sql(
        &d,
        &[
            "touches,conversions,attributed_revenue,control_touches,control_conversions",
            "--by",
            "campaign,region",
        ],
        "-- reads marts.campaign_daily",
        "SELECT k.name, COALESCE(c.region, 'unknown'), \
         SUM(CASE WHEN NOT t.is_control THEN 1 ELSE 0 END), \
         SUM(CASE WHEN NOT t.is_control AND t.converted THEN 1 ELSE 0 END), \
         CAST(SUM(CASE WHEN NOT t.is_control AND t.converted THEN t.converted_revenue ELSE 0 END) AS DECIMAL(18, 2)), \
         SUM(CASE WHEN t.is_control THEN 1 ELSE 0 END), \
         SUM(CASE WHEN t.is_control AND t.converted THEN 1 ELSE 0 END) \
         FROM core.campaign_touch t JOIN core.campaign k ON k.campaign_id = t.campaign_id \
         LEFT JOIN core.customer c ON c.customer_key = t.customer_key GROUP BY 1, 2 ORDER BY 1, 2",
        5,
    );

    let missing = run(
        tributary().args(["--data-dir", &d, "profile", "nobody@nowhere.example"]),
        false,
    );
    assert!(stderr(&missing).contains("no customer matches"), "{}", stderr(&missing));
}

/// `tributary metrics ARGS --explain` reads the tables `reads` names and gives, row for row, what
/// `sql` over the facts gives (more than `min_rows` rows); returns the explanation.
fn rollup_equals_sql(d: &str, args: &[&str], reads: &str, sql: &str, min_rows: usize) -> String {
    let answered = run(
        tributary()
            .args(["--data-dir", d, "metrics"])
            .args(args)
            .args(["--explain", "--format", "csv"]),
        true,
    );
    let explained = stderr(&answered);
    assert!(explained.contains(reads), "{explained}");
    let from_facts = stdout(&run(
        tributary().args(["--data-dir", d, "sql", sql, "--format", "csv"]),
        true,
    ));
    let rollup_text = stdout(&answered);
    let rollup_rows: Vec<&str> = rollup_text.lines().skip(1).collect();
    let fact_rows: Vec<&str> = from_facts.lines().skip(1).collect();
    assert!(fact_rows.len() > min_rows, "{from_facts}");
    assert_eq!(rollup_rows, fact_rows, "the rollups and the facts disagree ({reads})");
    explained
}

/// DuckDB runs every mart's SQL (as `tributary refresh` rendered it) over the Parquet files of our
/// `core` tables; per mart, its row count and the sum of every numeric column must equal ours, to
/// within 5 cents plus a relative 1e-9 (float sums depend on order, and an average of decimals
/// that ends in exactly half a cent rounds up in our decimal arithmetic but may round down in
/// DuckDB's, which averages in floating point).
#[test]
fn duckdb_running_the_mart_sql_on_our_core_files_agrees_with_every_mart() {
    let (dir, _d) = company("300");
    let data = dir.path();
    let as_of = sql(data, "SELECT CAST(MAX(order_date) AS VARCHAR) FROM staging.sales_order")[0][0].clone();
    let marts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warehouse/sql/marts");
    let script = r#"
import glob, json, os, sys, duckdb
from deltalake import DeltaTable
data, marts, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("CREATE SCHEMA core; CREATE SCHEMA marts; CREATE SCHEMA ours")
con.execute("CREATE MACRO day_number(d) AS (CAST(d AS DATE) - DATE '1970-01-01')")
def view(name, path):
    files = DeltaTable(path).file_uris()
    listed = ", ".join("'" + f.replace("file://", "") + "'" for f in files)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")
for path in glob.glob(os.path.join(data, "tables/core/*")):
    view("core." + os.path.basename(path), path)
order = ["customer_rfm", "customer_persistency", "cohort_retention", "customer_profitability",
         "sales_performance", "customer_performance", "customer_prospecting", "pipeline", "lead_funnel",
         "customer_category_mix", "product_association", "campaign_response", "customer_promotion",
         "customer_7p"]
bad = []
for mart in order:
    sql = open(os.path.join(marts, mart + ".sql")).read()
    sql = (sql.replace("{as_of}", f"DATE '{as_of}'").replace("{ticket_cost}", "25.00")
              .replace("{interaction_cost}", "5.00").replace("{min_pair_orders}", "20"))
    con.execute(f"CREATE TABLE marts.{mart} AS {sql}")
    view("ours." + mart, os.path.join(data, "tables/marts", mart))
    numeric = [r[0] for r in con.execute(f"DESCRIBE marts.{mart}").fetchall()
               if any(k in r[1] for k in ("INT", "DECIMAL", "DOUBLE", "FLOAT"))]
    measures = ["COUNT(*)"] + [f"SUM(CAST(\"{c}\" AS DOUBLE))" for c in numeric]
    theirs = con.execute(f"SELECT {', '.join(measures)} FROM marts.{mart}").fetchone()
    ours = con.execute(f"SELECT {', '.join(measures)} FROM ours.{mart}").fetchone()
    for label, a, b in zip(["rows"] + numeric, theirs, ours):
        if a is None and b is None:
            continue
        if a is None or b is None or abs(a - b) > 0.05 + 1e-9 * max(abs(a), abs(b)):
            bad.append(f"{mart}.{label}: duckdb {a}, tributary {b}")
    print(f"{mart}: {theirs[0]} rows, {len(numeric)} numeric columns compared")
print(json.dumps(bad))
"#;
    let output = python()
        .arg("-c")
        .arg(script)
        .arg(data)
        .arg(&marts)
        .arg(&as_of)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{text}");
    let bad: Vec<String> = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(bad.is_empty(), "DuckDB and Tributary disagree:\n{}", bad.join("\n"));
}
