//! A file of several chunks (65,536 records each), converted by several threads at once: the
//! outcome is that of reading it in order. The first row of a repeated key is the one kept, wherever
//! the chunks' conversions finish, and a failure in a late chunk stops the batch with nothing
//! written.

use std::fmt::Write as _;
use std::path::Path;

use tributary_ingest::batch::{BatchStatus, IngestError};
use tributary_ingest::pipeline::parse_pipelines;
use tributary_ingest::run::{Pipelines, ingest_file};
use tributary_warehouse::layout::{DataDir, Layer};
use tributary_warehouse::store::Store;

use crate::texts;

const ORDERS: &str = r#"
[[pipelines]]
name = "orders"
files = "orders*"
[[pipelines.targets]]
entity = "sales_order"
columns.order_id = "order_no"
columns.customer_id = "customer_no"
columns.order_date = { from = "order_date", format = "%d.%m.%Y" }
columns.net_total = { from = "net_total", min = 0 }
columns.channel = "channel"

[[pipelines]]
name = "orders_by_share"
files = "shares*"
[[pipelines.targets]]
entity = "sales_order"
columns.order_id = "order_no"
columns.customer_id = "customer_no"
columns.order_date = { from = "order_date", format = "%d.%m.%Y" }
columns.net_total = { expr = "CAST(total AS BIGINT) / CAST(shares AS BIGINT)" }

[[pipelines]]
name = "orders_by_rate"
files = "rates*"
[[pipelines.targets]]
entity = "sales_order"
columns.order_id = "order_no"
columns.customer_id = "customer_no"
columns.order_date = { from = "order_date", format = "%d.%m.%Y" }
columns.net_total = { expr = "CAST(amount AS DECIMAL(12,4)) * (1 - CAST(rate AS DECIMAL(9,4)) / 100)" }
"#;

async fn ingest(
    store: &Store,
    pipelines: &Pipelines,
    name: &str,
    path: &Path,
) -> Result<tributary_ingest::batch::BatchReport, IngestError> {
    let (pipeline, targets) = pipelines.get(name).unwrap();
    let label = path.file_name().unwrap().to_str().unwrap();
    ingest_file(store, pipeline, targets, path, label, "landing", &|_, _| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_converted_side_by_side_keep_the_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(DataDir::new(dir.path().join("data")));
    let pipelines = Pipelines::new(parse_pipelines(ORDERS, "test").unwrap()).unwrap();

    // 200,000 orders (four chunks), with three more lines put in among them.
    let line = |i: usize| format!("O{i},C{},01.02.2024,{}.50,web\n", i % 100, i % 1000);
    let mut csv = String::from("order_no,customer_no,order_date,net_total,channel\n");
    let mut row = 1; // the header
    let (mut repeat_row, mut conflict_row, mut bad_row) = (0, 0, 0);
    for i in 0..200_000 {
        csv.push_str(&line(i));
        row += 1;
        match i {
            // In the second chunk: an exact repeat of a line of the first.
            100_000 => {
                csv.push_str(&line(5));
                row += 1;
                repeat_row = row;
            }
            // In the third chunk: the first order's key with other values.
            150_000 => {
                csv.push_str("O0,C0,01.02.2024,999.99,web\n");
                row += 1;
                conflict_row = row;
            }
            // In the last chunk: an amount that is not one.
            199_000 => {
                csv.push_str("BAD1,C1,01.02.2024,ten,web\n");
                row += 1;
                bad_row = row;
            }
            _ => {}
        }
    }
    assert!(row > 3 * 65_536 + 1, "the file spans four chunks");
    let path = dir.path().join("orders_many.csv");
    std::fs::write(&path, &csv).unwrap();

    let report = ingest(&store, &pipelines, "orders", &path).await.unwrap();
    assert_eq!(report.status, BatchStatus::Committed);
    assert_eq!(report.rows_read, 200_003, "{report:?}");
    assert_eq!(
        (report.rows_stored, report.rows_duplicate, report.rows_quarantined),
        (200_000, 1, 2),
        "{report:?}"
    );
    let orders = [(Layer::Staging, "sales_order")];
    assert_eq!(
        texts(&store, &orders, "SELECT count(*) FROM staging.sales_order").await,
        ["200000"]
    );
    // The first row of O0 (row 2) is the one kept; the later one, three chunks on, is quarantined.
    assert_eq!(
        texts(
            &store,
            &orders,
            "SELECT net_total FROM staging.sales_order WHERE order_id = 'O0'"
        )
        .await,
        ["0.50"]
    );
    let quarantine = [(Layer::System, "quarantine")];
    let reasons = texts(
        &store,
        &quarantine,
        "SELECT concat(row_number, ': ', reason) FROM system.quarantine ORDER BY row_number",
    )
    .await;
    assert_eq!(
        reasons,
        [
            format!("{conflict_row}: duplicate key order_id = `O0` with other values than row 2"),
            format!("{bad_row}: net_total: `ten` is not a decimal number"),
        ]
    );
    assert!(repeat_row > 65_537 && repeat_row < conflict_row, "{repeat_row}");
    // Raw holds every record as received, each with its own row number.
    let raw = [(Layer::Raw, "orders")];
    assert_eq!(
        texts(
            &store,
            &raw,
            "SELECT concat(count(*), ' ', count(DISTINCT _row), ' ', max(_row)) FROM raw.orders"
        )
        .await,
        [format!("200003 200003 {row}")]
    );

    // The same file again adds nothing.
    let again = ingest(&store, &pipelines, "orders", &path).await.unwrap();
    assert_eq!(again.status, BatchStatus::AlreadyIngested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_late_chunk_stops_the_batch_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(DataDir::new(dir.path().join("data")));
    let pipelines = Pipelines::new(parse_pipelines(ORDERS, "test").unwrap()).unwrap();

    // Totals divided by shares; one line of the fourth chunk has none, and integer division by
    // zero is an error of the mapping expression, not of one row.
    let mut csv = String::from("order_no,customer_no,order_date,total,shares\n");
    for i in 0..250_000 {
        let shares = if i == 240_000 { 0 } else { 1 + i % 3 };
        writeln!(csv, "S{i},C{},01.02.2024,{},{shares}", i % 100, 100 + i % 1000).unwrap();
    }
    let path = dir.path().join("shares.csv");
    std::fs::write(&path, &csv).unwrap();

    let err = ingest(&store, &pipelines, "orders_by_share", &path).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, IngestError::Expression { .. }), "{message}");
    assert!(
        message.contains("orders_by_share") && message.contains("net_total") && message.contains("shares.csv"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("divide by zero"), "{message}");
    for (layer, table) in [
        (Layer::Raw, "orders_by_share"),
        (Layer::Staging, "sales_order"),
        (Layer::System, "quarantine"),
        (Layer::System, "ingest_log"),
    ] {
        assert!(!store.exists(layer, table), "{layer}.{table} was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_casts_in_expressions_give_what_sql_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(DataDir::new(dir.path().join("data")));
    let pipelines = Pipelines::new(parse_pipelines(ORDERS, "test").unwrap()).unwrap();

    // Two chunks of plain numbers (the ingest parses them itself: digits past the scale, signs,
    // no whole part), and a third with one text Arrow's cast trims of its spaces (the chunk is
    // left to the cast).
    let amounts = ["12.34567", "-0.00005", "+3", ".5", "1.", "99999.99995", "7"];
    let rates = ["0", "12.5", "-3.33335", "100", "0.00004"];
    let mut csv = String::from("order_no,customer_no,order_date,amount,rate\n");
    for i in 0..140_000 {
        let amount = if i == 135_000 {
            " 7.25"
        } else {
            amounts[i % amounts.len()]
        };
        writeln!(csv, "R{i},C{},01.02.2024,{amount},{}", i % 100, rates[i % rates.len()]).unwrap();
    }
    let path = dir.path().join("rates.csv");
    std::fs::write(&path, &csv).unwrap();

    let report = ingest(&store, &pipelines, "orders_by_rate", &path).await.unwrap();
    assert_eq!(
        (report.rows_stored, report.rows_quarantined),
        (140_000, 0),
        "{report:?}"
    );
    // The stored totals against DataFusion's SQL over the raw texts of the same rows.
    let tables = [(Layer::Staging, "sales_order"), (Layer::Raw, "orders_by_rate")];
    let differing = "SELECT concat(count(*), ' ', count(*) FILTER (WHERE s.net_total IS DISTINCT FROM \
            CAST(CAST(r.amount AS DECIMAL(12,4)) * (1 - CAST(r.rate AS DECIMAL(9,4)) / 100) AS DECIMAL(18,2)))) \
        FROM staging.sales_order s JOIN raw.orders_by_rate r ON s.order_id = r.order_no";
    assert_eq!(texts(&store, &tables, differing).await, ["140000 0"]);
    let examples = "SELECT concat(order_id, ' ', net_total) FROM staging.sales_order \
        WHERE order_id IN ('R0', 'R1', 'R2', 'R3', 'R4', 'R5', 'R135000') ORDER BY order_id";
    assert_eq!(
        texts(&store, &tables, examples).await,
        // 12.3457 * 1; -0.0001 * 0.875; 7.25 (trimmed) * 1; 3 * 1.033334; .5 * 0; 1 * 1; 100000 * 1.
        [
            "R0 12.35",
            "R1 0.00",
            "R135000 7.25",
            "R2 3.10",
            "R3 0.00",
            "R4 1.00",
            "R5 100000.00"
        ]
    );
}
