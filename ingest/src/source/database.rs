//! Incremental pulls from PostgreSQL and MariaDB/MySQL by a watermark column (an `updated_at`
//! timestamp or an increasing id).
//!
//! A pull reads the rows whose watermark is at or after the last one stored in
//! `system.watermark`, in watermark order, as text (both servers' text protocols), and hands them to
//! the same batch as a file. Re-reading the rows that share the last watermark value is deliberate:
//! rows written in the same instant after the previous pull are not lost, and the ones seen before
//! are recognised as duplicates by key. The new watermark is stored after the batch commits, so a
//! crash before that only repeats a pull that adds nothing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use sha2::{Digest, Sha256};
use tributary_warehouse::layout::Layer;
use tributary_warehouse::store::{Append, Store, StoreError};

/// The watermark table, in `system`.
pub const WATERMARK_TABLE: &str = "watermark";

/// A database to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Source name (lineage, pipelines' `source`).
    pub name: String,
    /// Which server.
    pub kind: DatabaseKind,
    /// Connection URL (`postgres://user@host:5432/db`, `mysql://user@host:3306/db`).
    pub url: String,
}

/// Supported servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    Mysql,
}

/// A pull that failed at the database.
#[derive(Debug, thiserror::Error)]
#[error("source `{source_name}` ({table}): {message}")]
pub struct DatabaseError {
    /// Source name.
    pub source_name: String,
    /// Table pulled.
    pub table: String,
    /// What the server or driver said.
    pub message: String,
}

/// Rows pulled, as text.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    /// Column names.
    pub columns: Vec<String>,
    /// Values; `None` for SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// The query that was run (lineage).
    pub query: String,
    /// The largest watermark among the rows, as the server printed it.
    pub high_watermark: Option<String>,
}

impl Pulled {
    /// SHA-256 over columns and values: the same rows give the same batch.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for c in &self.columns {
            h.update(c.as_bytes());
            h.update([0x1f]);
        }
        for row in &self.rows {
            h.update([0x1e]);
            for v in row {
                match v {
                    Some(v) => {
                        h.update([1]);
                        h.update(v.as_bytes());
                    }
                    None => h.update([0]),
                }
                h.update([0x1f]);
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn quote_ident(kind: DatabaseKind, name: &str) -> String {
    name.split('.')
        .map(|part| match kind {
            DatabaseKind::Postgres => format!("\"{}\"", part.replace('"', "\"\"")),
            DatabaseKind::Mysql => format!("`{}`", part.replace('`', "``")),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The pull query: everything at or after the watermark, in watermark order.
pub fn pull_query(kind: DatabaseKind, table: &str, watermark: &str, after: Option<&str>) -> String {
    let t = quote_ident(kind, table);
    let w = quote_ident(kind, watermark);
    match after {
        Some(value) => format!("SELECT * FROM {t} WHERE {w} >= {} ORDER BY {w}", quote_literal(value)),
        None => format!("SELECT * FROM {t} ORDER BY {w}"),
    }
}

/// Pull rows of `table` at or after `after` by `watermark`.
pub async fn pull(db: &Database, table: &str, watermark: &str, after: Option<&str>) -> Result<Pulled, DatabaseError> {
    let query = pull_query(db.kind, table, watermark, after);
    let fail = |message: String| DatabaseError {
        source_name: db.name.clone(),
        table: table.to_string(),
        message,
    };
    let (columns, rows) = match db.kind {
        DatabaseKind::Postgres => pull_postgres(&db.url, &query).await.map_err(fail)?,
        DatabaseKind::Mysql => pull_mysql(&db.url, &query).await.map_err(fail)?,
    };
    let w = columns
        .iter()
        .position(|c| c == watermark)
        .ok_or_else(|| fail(format!("no watermark column `{watermark}` in the result")))?;
    let high_watermark = rows.last().and_then(|r: &Vec<Option<String>>| r[w].clone());
    Ok(Pulled {
        columns,
        rows,
        query,
        high_watermark,
    })
}

type TextRows = (Vec<String>, Vec<Vec<Option<String>>>);

async fn pull_postgres(url: &str, query: &str) -> Result<TextRows, String> {
    use tokio_postgres::SimpleQueryMessage;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let driver = tokio::spawn(connection);
    let messages = client.simple_query(query).await.map_err(|e| e.to_string())?;
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if columns.is_empty() {
                    columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    drop(client);
    driver.abort();
    Ok((columns, rows))
}

async fn pull_mysql(url: &str, query: &str) -> Result<TextRows, String> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::Opts::from_url(url).map_err(|e| format!("bad URL: {e}"))?;
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let result: Vec<mysql_async::Row> = conn.query(query).await.map_err(|e| e.to_string())?;
    let columns: Vec<String> = result
        .first()
        .map(|r| r.columns_ref().iter().map(|c| c.name_str().into_owned()).collect())
        .unwrap_or_default();
    let rows = result
        .iter()
        .map(|row| (0..row.len()).map(|i| row.as_ref(i).and_then(mysql_text)).collect())
        .collect();
    conn.disconnect().await.ok();
    Ok((columns, rows))
}

fn mysql_text(value: &mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => Some(if *us > 0 {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        } else {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }),
        Value::Time(neg, d, h, mi, s, _) => Some(format!(
            "{}{:02}:{mi:02}:{s:02}",
            if *neg { "-" } else { "" },
            u32::from(*h) + d * 24
        )),
    }
}

/// The last watermark stored for a pipeline.
pub async fn last_watermark(store: &Store, pipeline: &str) -> Result<Option<String>, StoreError> {
    if !store.exists(Layer::System, WATERMARK_TABLE) {
        return Ok(None);
    }
    let batches = store
        .query(
            &[(Layer::System, WATERMARK_TABLE)],
            &format!(
                "SELECT value FROM system.{WATERMARK_TABLE} WHERE pipeline = {} ORDER BY pulled_at DESC LIMIT 1",
                quote_literal(pipeline)
            ),
        )
        .await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let text = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8).expect("text casts to text");
    let text = text.as_any().downcast_ref::<StringArray>().expect("cast gives text");
    Ok(Some(text.value(0).to_string()))
}

/// Store a pipeline's new watermark, once per batch.
pub async fn store_watermark(
    store: &Store,
    pipeline: &str,
    db: &Database,
    table: &str,
    column: &str,
    value: &str,
    batch_id: &str,
) -> Result<(), StoreError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new(
            "pulled_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let text = |s: &str| Arc::new(StringArray::from(vec![s])) as ArrayRef;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(pipeline),
            text(&db.name),
            text(table),
            text(column),
            text(value),
            text(batch_id),
            Arc::new(TimestampMicrosecondArray::from(vec![chrono::Utc::now().timestamp_micros()]).with_timezone("UTC")),
        ],
    )
    .expect("watermark columns match their schema");
    store
        .append(
            Layer::System,
            WATERMARK_TABLE,
            Append {
                batches: vec![batch],
                partition_by: &[],
                marker: &format!("tributary.watermark.{batch_id}"),
                metadata: serde_json::Map::new(),
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_names_and_values() {
        assert_eq!(
            pull_query(
                DatabaseKind::Postgres,
                "erp.sales_orders",
                "updated_at",
                Some("2024-01-01 10:00:00+00")
            ),
            "SELECT * FROM \"erp\".\"sales_orders\" WHERE \"updated_at\" >= '2024-01-01 10:00:00+00' ORDER BY \"updated_at\""
        );
        assert_eq!(
            pull_query(DatabaseKind::Mysql, "orders", "id", Some("it's")),
            "SELECT * FROM `orders` WHERE `id` >= 'it''s' ORDER BY `id`"
        );
        assert_eq!(
            pull_query(DatabaseKind::Mysql, "orders", "id", None),
            "SELECT * FROM `orders` ORDER BY `id`"
        );
    }
}
