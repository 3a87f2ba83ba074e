//! `system.query_log`: every query a server ran, who ran it, and how it ended.
//!
//! One Delta commit per query would cost more than most dashboard queries, so entries are queued
//! and written in batches by a background task (every second, or sooner when many wait); the
//! servers flush it when they stop. Entries a crash loses are at most the last second's.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use crate::layout::Layer;
use crate::store::{Append, Store};

/// One query, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryLogEntry {
    /// Who ran it.
    pub user: String,
    /// Their role.
    pub role: String,
    /// Which front end: `http`, `pg`, `dashboard`, ...
    pub protocol: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The SQL text.
    pub sql: String,
    /// Rows returned (so far, if it failed midway).
    pub rows: u64,
    /// Bytes of the result as Arrow arrays in memory.
    pub bytes: u64,
    /// Wall-clock time from arrival to the last row.
    pub duration_ms: f64,
    /// `ok`, or the error's stable code (`timeout`, `too_many_rows`, `forbidden`, ...).
    pub outcome: String,
    /// The error message, if any.
    pub message: Option<String>,
}

enum Message {
    Entry(QueryLogEntry),
    Flush(oneshot::Sender<()>),
}

/// The queue in front of `system.query_log`. Cheap to clone; all clones feed one writer.
#[derive(Debug, Clone)]
pub struct QueryLog {
    sender: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("query log message")
    }
}

/// Entries written in one commit at most.
const BATCH: usize = 10_000;

impl QueryLog {
    /// Start the writer on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let mut pending: Vec<QueryLogEntry> = Vec::new();
            let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    message = receiver.recv() => match message {
                        Some(Message::Entry(entry)) => {
                            pending.push(entry);
                            if pending.len() < BATCH {
                                continue;
                            }
                        }
                        Some(Message::Flush(done)) => waiting.push(done),
                        None => {
                            write(&store, std::mem::take(&mut pending)).await;
                            return;
                        }
                    },
                    _ = tick.tick() => {}
                }
                write(&store, std::mem::take(&mut pending)).await;
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { sender }
    }

    /// Queue one entry.
    pub fn record(&self, entry: QueryLogEntry) {
        // The writer only stops when every sender is gone, so this cannot fail while `self` lives.
        let _ = self.sender.send(Message::Entry(entry));
    }

    /// Write everything queued so far, and wait until it is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(store: &Store, entries: Vec<QueryLogEntry>) {
    if entries.is_empty() {
        return;
    }
    let count = entries.len();
    let first = entries[0].started_at;
    let batch = match to_batch(entries) {
        Ok(batch) => batch,
        Err(e) => {
            tracing::error!("cannot build the query log batch: {e}");
            return;
        }
    };
    let marker = format!(
        "query_log-{}-{count}-{}",
        first.timestamp_nanos_opt().unwrap_or_default(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let append = Append {
        batches: vec![batch],
        partition_by: &[],
        marker: &marker,
        metadata: serde_json::Map::new(),
    };
    if let Err(e) = store.append(Layer::System, "query_log", append).await {
        tracing::error!("cannot write {count} entries to system.query_log: {e}");
    }
}

/// The table's columns.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("user_name", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("protocol", DataType::Utf8, false),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("sql", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("duration_ms", DataType::Float64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
    ]))
}

fn to_batch(entries: Vec<QueryLogEntry>) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let text = |f: fn(&QueryLogEntry) -> &str| -> ArrayRef {
        Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<&str>>()))
    };
    let columns: Vec<ArrayRef> = vec![
        text(|e| &e.user),
        text(|e| &e.role),
        text(|e| &e.protocol),
        Arc::new(
            TimestampMicrosecondArray::from(
                entries
                    .iter()
                    .map(|e| e.started_at.timestamp_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        text(|e| &e.sql),
        Arc::new(Int64Array::from(
            entries.iter().map(|e| e.rows as i64).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            entries.iter().map(|e| e.bytes as i64).collect::<Vec<_>>(),
        )),
        Arc::new(datafusion::arrow::array::Float64Array::from(
            entries.iter().map(|e| e.duration_ms).collect::<Vec<_>>(),
        )),
        text(|e| &e.outcome),
        Arc::new(entries.iter().map(|e| e.message.as_deref()).collect::<StringArray>()),
    ];
    RecordBatch::try_new(schema(), columns)
}
