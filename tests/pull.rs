//! Incremental pulls from the real PostgreSQL and MariaDB servers on 127.0.0.1 (standard ports;
//! the README says how to point the tests elsewhere): the first pull takes everything, later pulls
//! only new and changed rows, and the watermark survives between runs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::ingest::sql;
use crate::{run, stdout, tributary};

/// PostgreSQL for the tests: $TRIBUTARY_TEST_POSTGRES or the local server's `test` database.
fn postgres_url() -> String {
    std::env::var("TRIBUTARY_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// MariaDB for the tests: $TRIBUTARY_TEST_MYSQL or the local server's `test` database.
fn mysql_url() -> String {
    std::env::var("TRIBUTARY_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args([postgres_url().as_str(), "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn mariadb(sql: &str) -> String {
    // mysql://user@host:port/db
    let url = mysql_url();
    let rest = url.strip_prefix("mysql://").unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let output = Command::new("mariadb")
        .args(["-u", user, "-h", host, "-P", port, "-N", "-B", db, "-e", sql])
        .output()
        .expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn ingest(data: &Path, config: &Path) -> Value {
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
        true,
    );
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn batch<'a>(report: &'a Value, pipeline: &str) -> &'a Value {
    report["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["pipeline"] == pipeline)
        .unwrap_or_else(|| panic!("no batch for {pipeline}: {report}"))
}

#[test]
fn the_sample_erp_is_pulled_from_postgres_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let exports = data.join("exports");
    run(
        tributary().args([
            "--data-dir",
            data.to_str().unwrap(),
            "generate",
            "--customers",
            "80",
            "--years",
            "1",
            "--out",
            exports.to_str().unwrap(),
            "--erp-db",
            &postgres_url(),
        ]),
        true,
    );
    let orders_in_db: u64 = psql("SELECT count(*) FROM erp.sales_orders").parse().unwrap();
    assert_eq!(
        orders_in_db as usize,
        crate::data_rows(&exports.join("erp/sales_orders.csv"))
    );
    let config = data.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"sample_erp_db\"\nkind = \"postgres\"\nurl = \"{}\"\n",
            postgres_url()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(data.join("landing")).unwrap();

    let first = ingest(data, &config);
    for pipeline in [
        "erp_db_customers",
        "erp_db_products",
        "erp_db_sales_orders",
        "erp_db_sales_order_lines",
        "erp_db_invoices",
        "erp_db_payments",
        "erp_db_returns",
    ] {
        let b = batch(&first, pipeline);
        assert_eq!(b["status"], "committed", "{b}");
        assert_eq!(b["rows_quarantined"], 0, "{b}");
        assert_eq!(b["rows_read"], b["rows_stored"], "{b}");
    }
    assert_eq!(batch(&first, "erp_db_sales_orders")["rows_read"], orders_in_db);
    let staged = sql(data, "SELECT count(*) FROM staging.sales_order")[0][0]
        .parse::<u64>()
        .unwrap();
    assert_eq!(staged, orders_in_db);
    let lines_in_db: u64 = psql("SELECT count(*) FROM erp.sales_order_lines").parse().unwrap();
    assert_eq!(
        sql(data, "SELECT count(*) FROM staging.order_line")[0][0],
        lines_in_db.to_string()
    );

    // Nothing new: the pull re-reads only the rows at the last watermark, which are duplicates.
    let idle = ingest(data, &config);
    let b = batch(&idle, "erp_db_sales_orders");
    assert_eq!(b["rows_stored"], 0, "{b}");
    assert!(
        b["rows_read"].as_u64().unwrap() <= 2,
        "only the watermark's own rows are re-read: {b}"
    );

    // One new order and one changed order in the ERP: the pull takes exactly those.
    let changed = psql("SELECT order_no FROM erp.sales_orders ORDER BY order_no LIMIT 1");
    psql(&format!(
        "UPDATE erp.sales_orders SET status = 'cancelled', updated_at = clock_timestamp() WHERE order_no = '{changed}'; \
         INSERT INTO erp.sales_orders (order_no, customer_no, order_date, channel, sales_rep, status, currency, net_total) \
         SELECT 'SO-900000001', customer_no, order_date, channel, sales_rep, 'open', currency, '10.00' \
         FROM erp.sales_orders WHERE order_no = '{changed}'"
    ));
    let next = ingest(data, &config);
    let b = batch(&next, "erp_db_sales_orders");
    assert_eq!(b["rows_stored"], 2, "{b}");
    assert_eq!(b["targets"][0]["inserted"], 1, "{b}");
    assert_eq!(b["targets"][0]["updated"], 1, "{b}");
    assert_eq!(
        sql(data, "SELECT count(*) FROM staging.sales_order")[0][0],
        (orders_in_db + 1).to_string()
    );
    assert_eq!(
        sql(
            data,
            &format!("SELECT status FROM staging.sales_order WHERE order_id = '{changed}'")
        ),
        [["cancelled"]]
    );
    // The watermark is kept in the warehouse, one entry per pull that read rows.
    let marks = sql(
        data,
        "SELECT count(*) FROM system.watermark WHERE pipeline = 'erp_db_sales_orders'",
    );
    assert_eq!(marks[0][0], "3");
}

#[test]
fn a_mariadb_table_is_pulled_by_an_increasing_timestamp() {
    let table = format!("tributary_orders_{}", std::process::id());
    mariadb(&format!(
        "DROP TABLE IF EXISTS {table}; \
         CREATE TABLE {table} (id INT PRIMARY KEY, customer VARCHAR(20), ordered DATE, total DECIMAL(10,2), \
           status VARCHAR(20), updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)); \
         INSERT INTO {table} (id, customer, ordered, total, status) VALUES \
           (1, 'C1', '2024-01-02', 10.50, 'open'), (2, 'C2', '2024-01-03', 20.00, 'open'), (3, 'C1', '2024-01-04', 5.25, 'open');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::create_dir_all(data.join("landing")).unwrap();
    let config = data.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[ingest]
sample_pipelines = false

[[sources]]
name = "shop"
kind = "mysql"
url = "{}"

[[pipelines]]
name = "shop_orders"
source = "shop"
table = "{table}"
watermark = "updated_at"
[[pipelines.targets]]
entity = "sales_order"
columns.order_id = "id"
columns.customer_id = "customer"
columns.order_date = "ordered"
columns.net_total = "total"
columns.status = "status"
"#,
            mysql_url()
        ),
    )
    .unwrap();

    let first = ingest(data, &config);
    assert_eq!(batch(&first, "shop_orders")["rows_stored"], 3);
    // Later writes in the shop: one change, one new order.
    std::thread::sleep(std::time::Duration::from_millis(5));
    mariadb(&format!(
        "UPDATE {table} SET status = 'shipped' WHERE id = 2; \
         INSERT INTO {table} (id, customer, ordered, total, status) VALUES (4, 'C3', '2024-01-05', 99.99, 'open');"
    ));
    let second = ingest(data, &config);
    let b = batch(&second, "shop_orders");
    assert_eq!(b["rows_stored"], 2, "{b}");
    assert_eq!(b["targets"][0]["inserted"], 1, "{b}");
    assert_eq!(b["targets"][0]["updated"], 1, "{b}");
    let rows = sql(
        data,
        "SELECT order_id, status, CAST(net_total AS VARCHAR), CAST(order_date AS VARCHAR) FROM staging.sales_order ORDER BY order_id",
    );
    assert_eq!(
        rows,
        [
            ["1", "open", "10.50", "2024-01-02"],
            ["2", "shipped", "20.00", "2024-01-03"],
            ["3", "open", "5.25", "2024-01-04"],
            ["4", "open", "99.99", "2024-01-05"]
        ]
    );
    mariadb(&format!("DROP TABLE {table}"));
}
