//! The sample company's ERP as a real PostgreSQL database, so that the demo and the tests pull
//! from a running ERP rather than from its exports (`tributary generate --erp-db URL`).
//!
//! Tables land in schema `erp`, one per ERP export, with the export's columns as text (as a
//! legacy ERP's staging views often are) plus `updated_at`, which the database sets per row with
//! `clock_timestamp()` on load and which writers bump on change: the watermark of incremental pulls.

use std::io::{BufRead, BufReader};
use std::path::Path;

use futures::SinkExt;

/// The schema the ERP tables are loaded into.
pub const ERP_SCHEMA: &str = "erp";

/// ERP exports loaded as tables: (file, table, delimiter).
const TABLES: &[(&str, &str, u8)] = &[
    ("erp/customers.csv", "customers", b';'),
    ("erp/products.txt", "products", b','),
    ("erp/price_lists.csv", "price_lists", b','),
    ("erp/sales_orders.csv", "sales_orders", b','),
    ("erp/sales_order_lines.csv", "sales_order_lines", b','),
    ("erp/invoices.csv", "invoices", b','),
    ("erp/payments.csv", "payments", b','),
    ("erp/returns.csv", "returns", b','),
];

/// Loading failed; names the table.
#[derive(Debug, thiserror::Error)]
#[error("loading the sample ERP into {url} ({table}): {message}")]
pub struct ErpDbError {
    /// Connection URL without password.
    pub url: String,
    /// Table being loaded.
    pub table: String,
    /// Why.
    pub message: String,
}

/// Load the ERP exports under `exports` into PostgreSQL at `url`, replacing earlier loads.
/// Returns (table, rows) per table.
pub async fn load_postgres(exports: &Path, url: &str) -> Result<Vec<(String, u64)>, ErpDbError> {
    let shown = url.split('@').next_back().unwrap_or(url).to_string();
    let fail = |table: &str, message: String| ErpDbError {
        url: shown.clone(),
        table: table.to_string(),
        message,
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| fail("-", format!("cannot connect: {e}")))?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {ERP_SCHEMA}"))
        .await
        .map_err(|e| fail("-", e.to_string()))?;
    let mut loaded = Vec::new();
    for (file, table, delimiter) in TABLES {
        let path = exports.join(file);
        let (header, rows) =
            read_export(&path, *delimiter).map_err(|e| fail(table, format!("{}: {e}", path.display())))?;
        let columns = header
            .iter()
            .map(|c| format!("\"{c}\" text"))
            .collect::<Vec<_>>()
            .join(", ");
        let qualified = format!("{ERP_SCHEMA}.{table}");
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {qualified}; \
                 CREATE TABLE {qualified} ({columns}, updated_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
                 CREATE INDEX ON {qualified} (updated_at);"
            ))
            .await
            .map_err(|e| fail(table, e.to_string()))?;
        let column_list = header.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let sink = client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {qualified} ({column_list}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .map_err(|e| fail(table, e.to_string()))?;
        futures::pin_mut!(sink);
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut count = 0u64;
        for row in rows {
            let row = row.map_err(|e| fail(table, format!("{}: {e}", path.display())))?;
            let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(&mut chunk);
            writer.write_record(&row).map_err(|e| fail(table, e.to_string()))?;
            writer.flush().map_err(|e| fail(table, e.to_string()))?;
            drop(writer);
            count += 1;
            if chunk.len() >= 1 << 20 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                    .await
                    .map_err(|e| fail(table, e.to_string()))?;
            }
        }
        if !chunk.is_empty() {
            sink.send(bytes::Bytes::from(chunk))
                .await
                .map_err(|e| fail(table, e.to_string()))?;
        }
        sink.finish().await.map_err(|e| fail(table, e.to_string()))?;
        loaded.push((qualified, count));
    }
    drop(client);
    driver.abort();
    Ok(loaded)
}

type Rows = Box<dyn Iterator<Item = std::io::Result<Vec<String>>>>;

/// Header and rows (streamed) of one export: CSV with its delimiter, or the fixed-width products.
fn read_export(path: &Path, delimiter: u8) -> std::io::Result<(Vec<String>, Rows)> {
    if path.extension().is_some_and(|e| e == "txt") {
        let mut lines = BufReader::new(std::fs::File::open(path)?).lines();
        let header: Vec<String> = lines
            .next()
            .transpose()?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let widths: Vec<usize> = super::PRODUCT_COLUMNS.iter().map(|(_, w)| *w).collect();
        let rows = lines.map(move |line| {
            let line = line?;
            let mut chars = line.chars();
            Ok(widths
                .iter()
                .map(|w| chars.by_ref().take(*w).collect::<String>().trim().to_string())
                .collect())
        });
        return Ok((header, Box::new(rows)));
    }
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_path(path)?;
    let header = reader.headers()?.iter().map(str::to_string).collect();
    let rows = reader.into_records().map(|r| {
        r.map(|r| r.iter().map(str::to_string).collect())
            .map_err(std::io::Error::other)
    });
    Ok((header, Box::new(rows)))
}
