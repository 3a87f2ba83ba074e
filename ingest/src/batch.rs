//! One batch: the rows of one file (or push, or pull) through one pipeline, into `raw`, `staging`,
//! `system.quarantine` and `system.ingest_log`, exactly once.
//!
//! The batch id is derived from the pipeline and the content hash, so the same bytes always make
//! the same batch. Every table write carries the batch id as a Delta application transaction, and a
//! write whose batch id is already in the table is skipped: a re-run after a crash completes the
//! tables that were not yet written and adds nothing twice. The ingest log entry is written last; a
//! batch found there is skipped without reading the file.
//!
//! Accounting: rows read = rows stored + rows quarantined + duplicates skipped. A row is checked
//! against every target of its pipeline and stored in all of them or in none.

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, Weak, mpsc};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, Int64Builder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, HashSet};
use datafusion::logical_expr::{Cast, Expr, TryCast};
use datafusion::prelude::SessionContext;
use hashbrown::{HashTable, hash_table};
use serde::Serialize;
use tributary_warehouse::layout::Layer;
use tributary_warehouse::store::{Append, Store, StoreError};

use crate::convert::{self, ColumnBuilder, ParseOptions, Value};
use crate::entity::ColumnType;
use crate::fingerprint::{ColumnText, KeyTexts, row_hashes};
use crate::pipeline::{Pipeline, ResolvedColumn, ResolvedTarget};
use crate::source::file::{RecordBuf, RecordChunk, RecordReader, SourceError};

/// Records per chunk: read and split into text columns on one thread, converted on another (one
/// of several, a chunk each at a time).
const CHUNK_ROWS: usize = 65_536;
/// At most this many threads convert chunks; more would wait on the one reading thread.
const MAX_CONVERTERS: usize = 4;

/// The quarantine table, in `system`.
pub const QUARANTINE_TABLE: &str = "quarantine";
/// The ingest log table, in `system`.
pub const INGEST_LOG_TABLE: &str = "ingest_log";

/// Why a batch stopped. Nothing of it is committed unless a table write finished.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input cannot be read at all.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A table could not be read or written.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A mapping expression failed on this data.
    #[error("pipeline `{pipeline}`: column `{column}`: expression failed on {file}: {message}")]
    Expression {
        /// Pipeline.
        pipeline: String,
        /// Target column.
        column: String,
        /// Input name.
        file: String,
        /// DataFusion's message.
        message: String,
    },
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Store(Box::new(e))
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Rows were committed (or there were none to commit).
    Committed,
    /// The same content was ingested by this pipeline before; nothing was read.
    AlreadyIngested,
    /// The input could not be read and was set aside.
    Rejected,
}

/// What one target (staging table) received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    /// Entity (staging table).
    pub entity: String,
    /// New keys.
    pub inserted: u64,
    /// Keys that existed with other values, now replaced.
    pub updated: u64,
    /// Rows identical to what was stored (or repeated in the input).
    pub unchanged: u64,
}

/// The report of one batch: printed, stored in `system.ingest_log`, returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// `<pipeline>-<first 16 hex digits of the content hash>`.
    pub batch_id: String,
    /// Pipeline.
    pub pipeline: String,
    /// Source name.
    pub source: String,
    /// File, push or query.
    pub file: String,
    /// SHA-256 of the input bytes.
    pub content_hash: String,
    /// Outcome.
    pub status: BatchStatus,
    /// Records read (header excluded).
    pub rows_read: u64,
    /// Records stored in every target.
    pub rows_stored: u64,
    /// Records sent to quarantine.
    pub rows_quarantined: u64,
    /// Records identical to ones stored before or earlier in the input.
    pub rows_duplicate: u64,
    /// Per staging table.
    pub targets: Vec<TargetReport>,
    /// Why a batch was rejected or skipped.
    pub message: Option<String>,
}

/// A quarantined row.
#[derive(Debug, Clone)]
struct Quarantined {
    row: u64,
    raw: String,
    field: Option<String>,
    reason: String,
}

/// Identifies an input for lineage and idempotence.
#[derive(Debug, Clone)]
pub struct InputId {
    /// Source name.
    pub source: String,
    /// File path, push name or query.
    pub file: String,
    /// SHA-256 of the bytes, hex.
    pub content_hash: String,
}

impl InputId {
    /// The batch id for this input through `pipeline`.
    pub fn batch_id(&self, pipeline: &str) -> String {
        format!("{pipeline}-{}", &self.content_hash[..16.min(self.content_hash.len())])
    }
}

fn marker(batch_id: &str) -> String {
    format!("tributary.ingest.{batch_id}")
}

/// The batches this process is ingesting, by data directory and batch id.
type InFlight = std::collections::HashMap<(std::path::PathBuf, String), Weak<tokio::sync::Mutex<()>>>;
static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(Mutex::default);

/// Exclusive use of a batch id in this process, until the guard is dropped. Two deliveries of the
/// same content at once (a webhook retried before its first attempt answered, a file landed twice)
/// would otherwise both find the batch missing from the ingest log and both write it: Delta appends
/// do not conflict with each other, and a table's marker is checked before its commit, not in it.
/// Another process writing the same data directory is not covered.
async fn only_run_of(store: &Store, batch_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut in_flight = IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        in_flight.retain(|_, lock| lock.strong_count() > 0);
        let key = (store.dir().root().to_path_buf(), batch_id.to_string());
        match in_flight.get(&key).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                in_flight.insert(key, Arc::downgrade(&lock));
                lock
            }
        }
    };
    lock.lock_owned().await
}

/// Whether this batch is recorded in the ingest log as committed.
pub async fn already_ingested(store: &Store, batch_id: &str) -> Result<bool, StoreError> {
    store
        .has_marker(Layer::System, INGEST_LOG_TABLE, &marker(batch_id))
        .await
}

/// Run one input through one pipeline. `progress` is called with the rows read so far.
pub async fn ingest(
    store: &Store,
    pipeline: &Pipeline,
    targets: &[ResolvedTarget],
    input: &InputId,
    mut reader: RecordReader,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BatchReport, IngestError> {
    let started = Utc::now();
    let batch_id = input.batch_id(&pipeline.name);
    let mut report = BatchReport {
        batch_id: batch_id.clone(),
        pipeline: pipeline.name.clone(),
        source: input.source.clone(),
        file: input.file.clone(),
        content_hash: input.content_hash.clone(),
        status: BatchStatus::Committed,
        rows_read: 0,
        rows_stored: 0,
        rows_quarantined: 0,
        rows_duplicate: 0,
        targets: targets
            .iter()
            .map(|t| TargetReport {
                entity: t.entity.name.to_string(),
                ..TargetReport::default()
            })
            .collect(),
        message: None,
    };
    // Held until the batch is logged: a second delivery of the same content waits here, then
    // finds it logged.
    let _only_run = only_run_of(store, &batch_id).await;
    if already_ingested(store, &batch_id).await? {
        report.status = BatchStatus::AlreadyIngested;
        report.message = Some(format!("batch {batch_id} holds this content already"));
        return Ok(report);
    }

    let columns = reader.columns().to_vec();
    for target in targets {
        for col in &target.columns {
            if let Some(from) = &col.rule.from
                && !columns.iter().any(|c| c == from)
            {
                return Err(SourceError::MissingColumn {
                    path: reader.name().to_path_buf(),
                    field: from.clone(),
                    found: describe_header(&columns),
                }
                .into());
            }
        }
    }
    let lineage = Lineage {
        source: input.source.clone(),
        file: input.file.clone(),
        batch_id: batch_id.clone(),
        ingested_at: started,
    };
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut raw_batches = Vec::new();
    let mut target_batches: Vec<Vec<RecordBatch>> = vec![Vec::new(); targets.len()];
    // One thread splits the input into records; converters (one per core) type and check them,
    // a chunk at a time; this thread puts their chunks back in the input's order, which the key
    // checks below rely on (the first row of a key is the one kept).
    let converters = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_CONVERTERS);
    // The chunks' receiving end, shared by the converters; taken away when they stop early.
    let chunks: ChunkReceiver = Mutex::new(None);
    std::thread::scope(|scope| {
        let (send_chunk, receive_chunk) = mpsc::sync_channel::<NumberedChunk>(converters);
        *lock(&chunks) = Some(receive_chunk);
        scope.spawn(move || {
            let mut buf = RecordBuf::default();
            for index in 0.. {
                let chunk = reader.next_chunk(&mut buf, CHUNK_ROWS);
                let last = !matches!(&chunk, Ok(c) if !c.is_empty());
                // A closed channel means the converters stopped.
                if send_chunk.send((index, chunk)).is_err() || last {
                    break;
                }
            }
        });
        let (send_converted, receive_converted) = mpsc::channel::<(usize, Result<ConvertedChunk, IngestError>)>();
        for _ in 0..converters {
            let send_converted = send_converted.clone();
            let (chunks, lineage, columns) = (&chunks, &lineage, &columns);
            scope.spawn(move || {
                // However this converter stops (the input's end, nobody taking its results, a
                // panic), the chunks' receiving end goes with it: the reader, which may be waiting
                // to send, then stops too, and so do the other converters, instead of the scope
                // waiting on them for ever.
                let _stop = StopReading(chunks);
                let mut conformer = Conformer::new(pipeline, targets, columns);
                loop {
                    let next = match lock(chunks).as_ref() {
                        Some(receive) => receive.recv(),
                        None => break,
                    };
                    let Ok((index, chunk)) = next else { break };
                    let converted = chunk
                        .map_err(IngestError::from)
                        .and_then(|chunk| conformer.convert(lineage, chunk));
                    if send_converted.send((index, converted)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send_converted);
        let mut early = std::collections::BTreeMap::new();
        let mut next = 0;
        for (index, converted) in receive_converted {
            early.insert(index, converted);
            while let Some(converted) = early.remove(&next) {
                next += 1;
                let converted = converted?;
                report.rows_read += converted.rows_read;
                quarantined.extend(converted.quarantined);
                raw_batches.extend(converted.raw);
                for (all, more) in target_batches.iter_mut().zip(converted.targets) {
                    all.extend(more);
                }
                progress(report.rows_read);
            }
        }
        Ok::<(), IngestError>(())
    })?;

    // A plain table (no canonical entity) gets column types from its values or the pipeline.
    if targets.is_empty() && !raw_batches.is_empty() {
        raw_batches = type_plain_table(raw_batches, &columns, &pipeline.raw_types)
            .map_err(|e| expression_error(pipeline, "raw_types", input, e))?;
    }

    let metadata = |table: &str| {
        let mut m = serde_json::Map::new();
        m.insert("tributary.batch_id".into(), batch_id.clone().into());
        m.insert("tributary.pipeline".into(), pipeline.name.clone().into());
        m.insert("tributary.file".into(), input.file.clone().into());
        m.insert("tributary.content_hash".into(), input.content_hash.clone().into());
        m.insert("tributary.table".into(), table.into());
        m
    };
    let batch_marker = marker(&batch_id);
    // Commit: raw, each staging table, quarantine, then the log entry that closes the batch. Raw
    // holds every record as received, whatever the checks decide, and each table's commit is
    // skipped on a re-run once it holds the batch's marker: so raw is encoded and written on a
    // thread of its own (a blocking one: a task spawned here could wait in this worker's queue
    // while the checks keep the worker busy) as the checks and the staging writes run here.
    let raw_write = {
        let (store, table, marker, metadata) = (
            store.clone(),
            pipeline.raw_table().to_string(),
            batch_marker.clone(),
            metadata(pipeline.raw_table()),
        );
        let batches = raw_batches.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let append = Append {
                batches,
                partition_by: &[],
                marker: &marker,
                metadata,
            };
            runtime.block_on(store.append(Layer::Raw, &table, append))
        })
    };
    // Checks and staging writes, as one step whose failure still waits for the raw write.
    let staged = async {
        // Checks that need the whole input (references, keys) drop rows from every target at once.
        // The chunks stay as they were converted: one table of the whole input would be a copy of
        // every value, the lineage texts included.
        let finals = target_batches;
        let keys = targets
            .iter()
            .zip(&finals)
            .map(|(target, batches)| KeyTexts::of_batches(batches, &target.key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| expression_error(pipeline, "*", input, e))?;
        let raw = raw_lookup(&raw_batches, &columns);
        let mut rejected = check_references(store, targets, &finals, &raw, &mut quarantined).await?;

        // Per target: drop the rejected rows and the rows already stored with the same values, and
        // split the rest into inserts and updates. The first target's pass also rejects a key repeated
        // with other values, before the other targets drop the rejected rows.
        let mut writes = Vec::with_capacity(targets.len());
        for (t, target) in targets.iter().enumerate() {
            let stored = stored_keys(store, target).await?;
            let conflicts = (t == 0).then_some(KeyConflicts {
                key: target.key.join(","),
                raw: &raw,
                quarantined: &mut quarantined,
            });
            let (batches, counts) = dedup(&finals[t], &keys[t], &mut rejected, stored.as_ref(), conflicts);
            report.targets[t].inserted = counts.inserted;
            report.targets[t].updated = counts.updated;
            report.targets[t].unchanged = counts.unchanged;
            if t == 0 {
                report.rows_duplicate = counts.unchanged;
            }
            writes.push((batches, counts.updated > 0));
        }
        report.rows_quarantined = quarantined.len() as u64;
        report.rows_stored = report.rows_read - report.rows_quarantined - report.rows_duplicate;

        for ((batches, has_updates), target) in writes.into_iter().zip(targets) {
            let partition: Vec<&str> = if target.entity.month_of.is_some() {
                vec!["_month"]
            } else {
                vec![]
            };
            let append = Append {
                batches,
                partition_by: &partition,
                marker: &batch_marker,
                metadata: metadata(target.entity.name),
            };
            if has_updates {
                let key: Vec<&str> = target.key.iter().map(String::as_str).collect();
                store.upsert(Layer::Staging, target.entity.name, append, &key).await?;
            } else {
                store.append(Layer::Staging, target.entity.name, append).await?;
            }
        }
        Ok::<(), IngestError>(())
    }
    .await;
    // The raw write is waited for even when the checks or the staging failed, so that an error
    // returned from here comes after raw's commit, not before it. (When this future is dropped
    // instead, the write still finishes on its thread.)
    let raw_written = match raw_write.await {
        Ok(written) => written,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down.
            Err(e) => Err(StoreError::Delta {
                table: format!("raw.{}", pipeline.raw_table()),
                source: Box::new(deltalake::DeltaTableError::Generic(format!(
                    "the write was cancelled: {e}"
                ))),
            }),
        },
    };
    staged?;
    raw_written?;
    if !quarantined.is_empty() {
        quarantined.sort_by_key(|q| q.row);
        store
            .append(
                Layer::System,
                QUARANTINE_TABLE,
                Append {
                    batches: vec![quarantine_batch(&pipeline.name, &lineage, &quarantined)],
                    partition_by: &[],
                    marker: &batch_marker,
                    metadata: metadata(QUARANTINE_TABLE),
                },
            )
            .await?;
    }
    log_batch(store, &report, started, &batch_marker).await?;
    Ok(report)
}

/// Record a batch report in `system.ingest_log` under `marker` (exactly once per marker).
pub async fn log_batch(
    store: &Store,
    report: &BatchReport,
    started: DateTime<Utc>,
    marker: &str,
) -> Result<(), StoreError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("content_hash", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_stored", DataType::Int64, false),
        Field::new("rows_quarantined", DataType::Int64, false),
        Field::new("rows_duplicate", DataType::Int64, false),
        Field::new("targets", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
        Field::new("started_at", timestamp_type(), false),
        Field::new("finished_at", timestamp_type(), false),
    ]));
    let text = |s: &str| Arc::new(StringArray::from(vec![s])) as ArrayRef;
    let int = |v: u64| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
    let status = serde_json::to_value(report.status).expect("status serialises");
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(&report.batch_id),
            text(&report.pipeline),
            text(&report.source),
            text(&report.file),
            text(&report.content_hash),
            text(status.as_str().unwrap_or_default()),
            int(report.rows_read),
            int(report.rows_stored),
            int(report.rows_quarantined),
            int(report.rows_duplicate),
            text(&serde_json::to_string(&report.targets).expect("targets serialise")),
            Arc::new(StringArray::from(vec![report.message.clone()])),
            timestamp_array(vec![started.timestamp_micros()]),
            timestamp_array(vec![Utc::now().timestamp_micros()]),
        ],
    )
    .expect("ingest log columns match their schema");
    let mut metadata = serde_json::Map::new();
    metadata.insert("tributary.batch_id".into(), report.batch_id.clone().into());
    store
        .append(
            Layer::System,
            INGEST_LOG_TABLE,
            Append {
                batches: vec![batch],
                partition_by: &[],
                marker,
                metadata,
            },
        )
        .await?;
    Ok(())
}

fn describe_header(columns: &[String]) -> String {
    match columns {
        [only] => format!("one column `{only}` (is the delimiter right?)"),
        many => format!("{} columns: {}", many.len(), many.join(", ")),
    }
}

fn expression_error(pipeline: &Pipeline, column: &str, input: &InputId, e: impl std::fmt::Display) -> IngestError {
    IngestError::Expression {
        pipeline: pipeline.name.clone(),
        column: column.to_string(),
        file: input.file.clone(),
        message: e.to_string(),
    }
}

/// Lineage shared by every row of a batch.
#[derive(Debug, Clone)]
struct Lineage {
    source: String,
    file: String,
    batch_id: String,
    ingested_at: DateTime<Utc>,
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn timestamp_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn lineage_fields() -> Vec<Field> {
    vec![
        Field::new("_source", DataType::Utf8, false),
        Field::new("_file", DataType::Utf8, false),
        Field::new("_row", DataType::Int64, false),
        Field::new("_ingested_at", timestamp_type(), false),
        Field::new("_batch_id", DataType::Utf8, false),
    ]
}

/// The lineage columns of rows numbered `rows`. The columns that are the same on every row are
/// made once per batch and sliced for each chunk (a slice shares the values): copied per chunk,
/// they were most of the memory an ingest wrote.
fn lineage_columns(constants: &mut Vec<ArrayRef>, lineage: &Lineage, rows: &[u64]) -> Vec<ArrayRef> {
    let n = rows.len();
    if constants.first().is_none_or(|c| c.len() < n) {
        let text = |s: &str| Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n))) as ArrayRef;
        *constants = vec![
            text(&lineage.source),
            text(&lineage.file),
            timestamp_array(vec![lineage.ingested_at.timestamp_micros(); n]),
            text(&lineage.batch_id),
        ];
    }
    let constant = |i: usize| constants[i].slice(0, n);
    vec![
        constant(0),
        constant(1),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| *r as i64))),
        constant(2),
        constant(3),
    ]
}

/// How one target column is filled.
enum Fill {
    Source(usize),
    Constant(Value),
    Expr(String),
    Null,
}

struct TargetPlan {
    fills: Vec<Fill>,
    options: Vec<ParseOptions>,
    builders: Vec<ColumnBuilder>,
    /// The current row's cells, held until every column of every target has passed.
    values: Vec<Cell>,
}

/// One checked cell of the row being converted.
enum Cell {
    Parsed(Value),
    /// Text from this source field, copied when the row is stored.
    SourceText(usize),
    /// The column's constant.
    Constant,
}

/// A chunk of records as the reading thread sends it, with its place in the input.
type NumberedChunk = (usize, Result<RecordChunk, SourceError>);

/// The chunks on their way from the reading thread to the converters.
type ChunkReceiver = Mutex<Option<mpsc::Receiver<NumberedChunk>>>;

/// The lock is held only to take the next chunk, which cannot panic: a poisoned one is as good.
fn lock(chunks: &ChunkReceiver) -> std::sync::MutexGuard<'_, Option<mpsc::Receiver<NumberedChunk>>> {
    chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Drops the chunks' receiving end when a converter stops, for whatever reason.
struct StopReading<'a>(&'a ChunkReceiver);

impl Drop for StopReading<'_> {
    fn drop(&mut self) {
        lock(self.0).take();
    }
}

/// One chunk of records, converted.
struct ConvertedChunk {
    /// Records read (malformed ones included).
    rows_read: u64,
    quarantined: Vec<Quarantined>,
    /// The chunk's raw batch (none when no record of the chunk could be split into fields).
    raw: Vec<RecordBatch>,
    /// Per target, its batch of the records accepted.
    targets: Vec<Vec<RecordBatch>>,
}

/// Converts records to typed target rows, chunk by chunk.
struct Conformer<'a> {
    pipeline: &'a Pipeline,
    targets: &'a [ResolvedTarget],
    plans: Vec<TargetPlan>,
    columns: Vec<String>,
    /// Per chunk: row number of each accepted record, and its index among the chunk's raw rows.
    accepted_rows: Vec<u64>,
    accepted_at: Vec<u32>,
    /// Lineage columns that are the same on every row, as long as the longest chunk so far.
    lineage_constants: Vec<ArrayRef>,
    ctx: SessionContext,
}

impl<'a> Conformer<'a> {
    fn new(pipeline: &'a Pipeline, targets: &'a [ResolvedTarget], columns: &[String]) -> Self {
        let plans = targets
            .iter()
            .map(|t| {
                let fills = t
                    .columns
                    .iter()
                    .map(|c| {
                        if let Some(from) = &c.rule.from {
                            Fill::Source(columns.iter().position(|n| n == from).expect("checked before"))
                        } else if let Some(v) = &c.rule.value {
                            match convert::parse(v, c.kind, &parse_options(c)) {
                                Ok(value) => Fill::Constant(value),
                                Err(_) => Fill::Constant(Value::Null),
                            }
                        } else if let Some(e) = &c.rule.expr {
                            Fill::Expr(e.clone())
                        } else {
                            Fill::Null
                        }
                    })
                    .collect();
                TargetPlan {
                    fills,
                    options: t.columns.iter().map(parse_options).collect(),
                    builders: t.columns.iter().map(|c| ColumnBuilder::new(c.kind)).collect(),
                    values: Vec::with_capacity(t.columns.len()),
                }
            })
            .collect();
        Self {
            pipeline,
            targets,
            plans,
            columns: columns.to_vec(),
            accepted_rows: Vec::new(),
            accepted_at: Vec::new(),
            lineage_constants: Vec::new(),
            ctx: SessionContext::new(),
        }
    }

    /// Convert one chunk of records: its raw batch, each target's batch of the records accepted,
    /// and the records quarantined.
    fn convert(&mut self, lineage: &Lineage, chunk: RecordChunk) -> Result<ConvertedChunk, IngestError> {
        let mut converted = ConvertedChunk {
            rows_read: (chunk.rows.len() + chunk.malformed.len()) as u64,
            quarantined: chunk
                .malformed
                .into_iter()
                .map(|m| Quarantined {
                    row: m.row,
                    raw: m.raw,
                    field: m.field,
                    reason: m.reason,
                })
                .collect(),
            raw: Vec::new(),
            targets: vec![Vec::new(); self.targets.len()],
        };
        let texts: Vec<&StringArray> = chunk.fields.iter().map(|f| f.as_string::<i32>()).collect();
        let mut fields = Vec::with_capacity(texts.len());
        for (i, row) in chunk.rows.iter().enumerate() {
            fields.clear();
            fields.extend(texts.iter().map(|t| t.value(i)));
            if let Err(q) = self.push(i as u32, *row, &fields) {
                converted.quarantined.push(q);
            }
        }
        self.finish_chunk(lineage, chunk.fields, &chunk.rows, &mut converted)?;
        Ok(converted)
    }

    /// Take record `at` of the chunk: into every target, or into quarantine.
    fn push(&mut self, at: u32, row: u64, fields: &[&str]) -> Result<(), Quarantined> {
        for (plan, target) in self.plans.iter_mut().zip(self.targets) {
            plan.values.clear();
            for ((fill, column), options) in plan.fills.iter().zip(&target.columns).zip(&plan.options) {
                let cell = match fill {
                    // Text is checked here and copied into its column only once the whole row
                    // passed: no string is made for it in between.
                    Fill::Source(i) if column.kind == ColumnType::Text => {
                        let text = resolved_text(fields[*i], column);
                        check_text(text, column).map(|()| Cell::SourceText(*i))
                    }
                    Fill::Source(i) => convert_field(fields[*i], column, options)
                        .and_then(|v| check(&v, column, false).map(|()| Cell::Parsed(v))),
                    Fill::Constant(v) => check(v, column, false).map(|()| Cell::Constant),
                    Fill::Expr(_) => check(&Value::Null, column, true).map(|()| Cell::Parsed(Value::Null)),
                    Fill::Null => check(&Value::Null, column, false).map(|()| Cell::Parsed(Value::Null)),
                };
                match cell {
                    Ok(cell) => plan.values.push(cell),
                    Err(reason) => {
                        return Err(Quarantined {
                            row,
                            raw: raw_text(&self.columns, fields),
                            field: Some(match fill {
                                Fill::Source(i) => self.columns[*i].clone(),
                                _ => column.name.clone(),
                            }),
                            reason: format!("{}: {reason}", column.name),
                        });
                    }
                }
            }
        }
        for (plan, target) in self.plans.iter_mut().zip(self.targets) {
            for (((builder, cell), fill), column) in plan
                .builders
                .iter_mut()
                .zip(&plan.values)
                .zip(&plan.fills)
                .zip(&target.columns)
            {
                match (cell, fill) {
                    (Cell::SourceText(i), _) => builder.push_text(resolved_text(fields[*i], column)),
                    (Cell::Constant, Fill::Constant(v)) => builder.push(v),
                    (Cell::Parsed(v), _) => builder.push(v),
                    (Cell::Constant, _) => builder.push(&Value::Null),
                }
            }
        }
        self.accepted_rows.push(row);
        self.accepted_at.push(at);
        Ok(())
    }

    fn raw_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(raw_column_name(c), DataType::Utf8, true))
            .collect();
        fields.extend(lineage_fields());
        Arc::new(Schema::new(fields))
    }

    fn target_schema(&self, t: usize) -> SchemaRef {
        let target = &self.targets[t];
        let mut fields: Vec<Field> = target
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.kind.arrow(), true))
            .collect();
        fields.extend(lineage_fields());
        fields.push(Field::new("_row_hash", DataType::Int64, false));
        if target.entity.month_of.is_some() {
            fields.push(Field::new("_month", DataType::Utf8, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// The chunk's records are all pushed: its raw batch (`source_columns`, rows numbered
    /// `raw_rows`) and each target's batch of the records accepted go into `out`, with the records
    /// an expression left without a required value.
    fn finish_chunk(
        &mut self,
        lineage: &Lineage,
        source_columns: Vec<ArrayRef>,
        raw_rows: &[u64],
        out: &mut ConvertedChunk,
    ) -> Result<(), IngestError> {
        if raw_rows.is_empty() {
            return Ok(());
        }
        let mut raw_columns = source_columns.clone();
        raw_columns.extend(lineage_columns(&mut self.lineage_constants, lineage, raw_rows));
        let raw_batch = RecordBatch::try_new(self.raw_schema(), raw_columns).expect("raw columns match their schema");
        out.raw.push(raw_batch);

        let accepted_rows = std::mem::take(&mut self.accepted_rows);
        let accepted_at = std::mem::take(&mut self.accepted_at);
        // Usually every record of the chunk was accepted, and the source columns serve as they are.
        let accepted_source: Vec<ArrayRef> = if accepted_at.len() == source_columns.first().map_or(0, |c| c.len()) {
            source_columns
        } else {
            let indices = datafusion::arrow::array::UInt32Array::from(accepted_at);
            source_columns
                .iter()
                .map(|c| datafusion::arrow::compute::take(c, &indices, None).expect("indices are in range"))
                .collect()
        };

        let mut keep = vec![true; accepted_rows.len()];
        let mut per_target: Vec<Vec<ArrayRef>> = Vec::with_capacity(self.targets.len());
        for (t, target) in self.targets.iter().enumerate() {
            let mut arrays: Vec<ArrayRef> = self.plans[t].builders.iter_mut().map(ColumnBuilder::finish).collect();
            // Expressions see the source columns (text) and the target columns mapped so far.
            for (c, column) in target.columns.iter().enumerate() {
                let Fill::Expr(sql) = &self.plans[t].fills[c] else {
                    continue;
                };
                let evaluated = self.evaluate(sql, target, &arrays, &accepted_source, accepted_rows.len());
                let array = evaluated
                    .and_then(|a| cast(&a, &column.kind.arrow()).map_err(|e| e.to_string()))
                    .map_err(|message| IngestError::Expression {
                        pipeline: self.pipeline.name.clone(),
                        column: column.name.clone(),
                        file: lineage.file.clone(),
                        message,
                    })?;
                if column.required {
                    for (i, k) in keep.iter_mut().enumerate() {
                        if *k && array.is_null(i) {
                            *k = false;
                            out.quarantined.push(Quarantined {
                                row: accepted_rows[i],
                                raw: raw_text_at(&self.columns, &accepted_source, i),
                                field: Some(column.name.clone()),
                                reason: format!("{}: the expression gave no value", column.name),
                            });
                        }
                    }
                }
                arrays[c] = array;
            }
            per_target.push(arrays);
        }
        let mask = BooleanArray::from(keep.clone());
        for (t, mut arrays) in per_target.into_iter().enumerate() {
            let target = &self.targets[t];
            let hashes = row_hashes(&arrays, accepted_rows.len()).map_err(|e| IngestError::Expression {
                pipeline: self.pipeline.name.clone(),
                column: "*".into(),
                file: lineage.file.clone(),
                message: e.to_string(),
            })?;
            arrays.extend(lineage_columns(&mut self.lineage_constants, lineage, &accepted_rows));
            arrays.push(Arc::new(Int64Array::from(hashes)));
            if let Some(month_of) = target.entity.month_of {
                let i = target
                    .columns
                    .iter()
                    .position(|c| c.name == month_of)
                    .expect("month column exists");
                arrays.push(month_column(&arrays[i]).map_err(|e| IngestError::Expression {
                    pipeline: self.pipeline.name.clone(),
                    column: month_of.into(),
                    file: lineage.file.clone(),
                    message: e.to_string(),
                })?);
            }
            let batch = RecordBatch::try_new(self.target_schema(t), arrays).map_err(|e| IngestError::Expression {
                pipeline: self.pipeline.name.clone(),
                column: "*".into(),
                file: lineage.file.clone(),
                message: e.to_string(),
            })?;
            let batch = if keep.iter().all(|k| *k) {
                batch
            } else {
                filter_record_batch(&batch, &mask).expect("mask has the batch's length")
            };
            out.targets[t].push(batch);
        }
        Ok(())
    }

    fn evaluate(
        &self,
        sql: &str,
        target: &ResolvedTarget,
        mapped: &[ArrayRef],
        source: &[ArrayRef],
        rows: usize,
    ) -> Result<ArrayRef, String> {
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for (c, column) in target.columns.iter().enumerate() {
            if column.rule.from.is_some() || column.rule.value.is_some() {
                fields.push(Field::new(&column.name, column.kind.arrow(), true));
                arrays.push(mapped[c].clone());
            }
        }
        for (name, array) in self.columns.iter().zip(source) {
            if !fields.iter().any(|f| f.name() == name) {
                fields.push(Field::new(name, DataType::Utf8, true));
                arrays.push(array.clone());
            }
        }
        let df_schema = DFSchema::try_from(Schema::new(fields.clone())).map_err(|e| e.to_string())?;
        let expr = self.ctx.parse_sql_expr(sql, &df_schema).map_err(|e| e.to_string())?;
        // Type coercion and simplification, as the planner does for a query (coalesce, for one,
        // has no physical form of its own).
        let df_schema = Arc::new(df_schema);
        let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
            datafusion::logical_expr::simplify::SimplifyContext::builder()
                .with_schema(df_schema.clone())
                .build(),
        );
        let expr = simplifier
            .coerce(expr, &df_schema)
            .and_then(|e| simplifier.simplify(e))
            .map_err(|e| e.to_string())?;
        // A source text cast to a decimal is parsed here, into a column of its own, when every
        // text of the chunk is a plain decimal: Arrow's cast goes through 256-bit integers and
        // strings for each value. Anything else is left to the cast, its answers and its errors.
        let expr = expr
            .transform_up(|e| {
                let (Expr::Cast(Cast { expr: inner, field }) | Expr::TryCast(TryCast { expr: inner, field })) = &e
                else {
                    return Ok(Transformed::no(e));
                };
                let DataType::Decimal128(precision, scale) = field.data_type() else {
                    return Ok(Transformed::no(e));
                };
                let Expr::Column(column) = inner.as_ref() else {
                    return Ok(Transformed::no(e));
                };
                let parsed = fields
                    .iter()
                    .position(|f| f.name() == column.name() && f.data_type() == &DataType::Utf8)
                    .and_then(|i| convert::plain_texts_to_decimal(arrays[i].as_string::<i32>(), *precision, *scale));
                let Some(parsed) = parsed else {
                    return Ok(Transformed::no(e));
                };
                let name = format!("__tributary_decimal_{}", fields.len());
                fields.push(Field::new(&name, parsed.data_type().clone(), true));
                arrays.push(Arc::new(parsed));
                Ok(Transformed::yes(Expr::Column(datafusion::common::Column::from_name(
                    name,
                ))))
            })
            .map_err(|e| e.to_string())?
            .data;
        let schema = Arc::new(Schema::new(fields));
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        let batch = RecordBatch::try_new_with_options(
            schema,
            arrays,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())?;
        let physical = self
            .ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| e.to_string())?;
        physical
            .evaluate(&batch)
            .and_then(|v| v.into_array(rows))
            .map_err(|e| e.to_string())
    }
}

/// Types for a plain table: declared ones (`raw_types`), else the narrowest type every non-empty
/// value parses as (integer, float, date, timestamp, boolean), else text.
fn type_plain_table(
    batches: Vec<RecordBatch>,
    columns: &[String],
    declared: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<RecordBatch>, String> {
    let schema = batches[0].schema();
    let mut types = Vec::with_capacity(columns.len());
    for (i, source) in columns.iter().enumerate() {
        let kind = match declared.get(source).or_else(|| declared.get(&raw_column_name(source))) {
            Some(t) => t.parse::<ColumnType>()?,
            None => infer_type(batches.iter().map(|b| b.column(i))),
        };
        types.push(kind);
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (field, kind) in fields.iter_mut().zip(&types) {
        *field = Field::new(field.name(), kind.arrow(), true);
    }
    let typed_schema = Arc::new(Schema::new(fields));
    batches
        .into_iter()
        .map(|batch| {
            let mut arrays = batch.columns().to_vec();
            for (i, kind) in types.iter().enumerate() {
                let text = arrays[i]
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("raw columns are text");
                let mut builder = ColumnBuilder::new(*kind);
                for row in 0..text.len() {
                    let value = if text.is_null(row) || text.value(row).trim().is_empty() {
                        Value::Null
                    } else {
                        convert::parse(text.value(row).trim(), *kind, &ParseOptions::default())
                            .map_err(|e| format!("column `{}`, row {}: {e}", columns[i], row + 1))?
                    };
                    builder.push(&value);
                }
                arrays[i] = builder.finish();
            }
            RecordBatch::try_new(typed_schema.clone(), arrays).map_err(|e| e.to_string())
        })
        .collect()
}

fn infer_type<'a>(arrays: impl Iterator<Item = &'a ArrayRef> + Clone) -> ColumnType {
    let options = ParseOptions::default();
    let candidates = [
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Date,
        ColumnType::Timestamp,
        ColumnType::Boolean,
    ];
    let mut any = false;
    'candidate: for kind in candidates {
        for array in arrays.clone() {
            let text = array
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("raw columns are text");
            for value in text.iter().flatten().map(str::trim).filter(|v| !v.is_empty()) {
                any = true;
                // Integers written with leading zeros are codes (postal codes, SKUs), not numbers.
                let code = value.len() > 1 && value.starts_with('0') && !value.starts_with("0.");
                if code || convert::parse(value, kind, &options).is_err() {
                    continue 'candidate;
                }
            }
        }
        if any {
            return kind;
        }
    }
    ColumnType::Text
}

/// Raw tables keep source column names, made safe for SQL and Delta (lower case, underscores).
pub fn raw_column_name(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for c in source.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    if trimmed.is_empty() || trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("c_{trimmed}")
    } else {
        trimmed
    }
}

fn parse_options(column: &ResolvedColumn) -> ParseOptions {
    ParseOptions {
        format: column.rule.format.clone(),
        decimal_comma: column.rule.decimal_separator.as_deref() == Some(","),
    }
}

/// A source field's text after the column's trim, value map and default.
fn resolved_text<'f>(field: &'f str, column: &'f ResolvedColumn) -> &'f str {
    let text = if column.rule.trim.unwrap_or(true) {
        trim(field)
    } else {
        field
    };
    let text = column.rule.map.get(text).map_or(text, String::as_str);
    if text.is_empty() {
        column.rule.default.as_deref().unwrap_or("")
    } else {
        text
    }
}

/// `field` without whitespace at either end. Most fields begin and end with a printable ASCII
/// byte, and then have none to trim: that is two byte tests instead of decoding chars from each end.
fn trim(field: &str) -> &str {
    match (field.as_bytes().first(), field.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => field,
        _ => field.trim(),
    }
}

fn convert_field(field: &str, column: &ResolvedColumn, options: &ParseOptions) -> Result<Value, String> {
    let text = resolved_text(field, column);
    if text.is_empty() {
        return Ok(Value::Null);
    }
    convert::parse(text, column.kind, options)
}

/// [`check`] for a text column's value, without making a [`Value`] of it.
fn check_text(text: &str, column: &ResolvedColumn) -> Result<(), String> {
    if text.is_empty() {
        return check(&Value::Null, column, false);
    }
    check_allowed(text, column)
}

/// The allowed-values rule (none: every value is allowed).
fn check_allowed(text: &str, column: &ResolvedColumn) -> Result<(), String> {
    let allowed = &column.rule.allowed;
    if allowed.is_empty() || allowed.iter().any(|a| a == text) {
        Ok(())
    } else {
        Err(format!("`{text}` is not one of {}", allowed.join(", ")))
    }
}

/// Required, range and allowed-value rules.
fn check(value: &Value, column: &ResolvedColumn, computed_later: bool) -> Result<(), String> {
    let rule = &column.rule;
    if *value == Value::Null {
        if column.required && !computed_later {
            return Err("required and empty".to_string());
        }
        return Ok(());
    }
    if let Some(n) = value.as_f64(column.kind) {
        if rule.min.is_some_and(|min| n < min) {
            return Err(format!("{n} is below the minimum {}", rule.min.unwrap_or_default()));
        }
        if rule.max.is_some_and(|max| n > max) {
            return Err(format!("{n} is above the maximum {}", rule.max.unwrap_or_default()));
        }
    }
    match value {
        Value::Text(t) => check_allowed(t, column),
        _ => Ok(()),
    }
}

fn raw_text(columns: &[String], fields: &[impl AsRef<str>]) -> String {
    let mut map = serde_json::Map::new();
    for (c, f) in columns.iter().zip(fields) {
        let f = f.as_ref();
        let value = if f.len() > 256 {
            format!("{}…", &f[..f.floor_char_boundary(256)])
        } else {
            f.to_string()
        };
        map.insert(c.clone(), value.into());
    }
    serde_json::Value::Object(map).to_string()
}

fn raw_text_at(columns: &[String], source: &[ArrayRef], i: usize) -> String {
    let fields: Vec<String> = source
        .iter()
        .map(|a| {
            let s = a.as_any().downcast_ref::<StringArray>().expect("raw columns are text");
            if s.is_null(i) {
                String::new()
            } else {
                s.value(i).to_string()
            }
        })
        .collect();
    raw_text(columns, &fields)
}

/// Row number -> raw row text, for quarantine entries made after the records were converted.
struct RawLookup<'a> {
    columns: &'a [String],
    batches: &'a [RecordBatch],
}

fn raw_lookup<'a>(batches: &'a [RecordBatch], columns: &'a [String]) -> RawLookup<'a> {
    RawLookup { columns, batches }
}

impl RawLookup<'_> {
    fn text(&self, row: u64) -> String {
        let n = self.columns.len();
        for batch in self.batches {
            let rows = batch
                .column(n + 2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("_row is Int64");
            // Rows are in file order within a batch.
            if rows.is_empty() || (rows.value(rows.len() - 1) as u64) < row {
                continue;
            }
            if let Ok(i) = rows.values().binary_search(&(row as i64)) {
                return raw_text_at(self.columns, &batch.columns()[..n], i);
            }
        }
        String::new()
    }
}

fn month_column(dates: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let text = ColumnText::new(dates.as_ref())?;
    let mut scratch = Vec::new();
    let mut months = StringBuilder::with_capacity(dates.len(), dates.len() * 7);
    for i in 0..dates.len() {
        match text.text(i, &mut scratch)? {
            Some(t) => months.append_value(String::from_utf8_lossy(&t[..7.min(t.len())])),
            None => months.append_value("unknown"),
        }
    }
    Ok(Arc::new(months.finish()))
}

fn row_numbers(batch: &RecordBatch) -> &Int64Array {
    batch
        .column_by_name("_row")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .expect("_row is Int64")
}

fn hashes_of(batch: &RecordBatch) -> &Int64Array {
    batch
        .column_by_name("_row_hash")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .expect("_row_hash is Int64")
}

/// Values a `references` rule must find: the referenced staging column plus this input's own rows.
async fn check_references(
    store: &Store,
    targets: &[ResolvedTarget],
    finals: &[Vec<RecordBatch>],
    raw: &RawLookup<'_>,
    quarantined: &mut Vec<Quarantined>,
) -> Result<HashSet<u64>, StoreError> {
    let mut rejected = HashSet::default();
    for (t, target) in targets.iter().enumerate() {
        for column in &target.columns {
            let Some(reference) = &column.rule.references else {
                continue;
            };
            let (entity, ref_column) = reference.split_once('.').expect("validated as entity.column");
            // The referenced values as text arrays, kept whole so the set below borrows from them
            // (no string per value). No DISTINCT: the set removes repeats as it is built, which
            // costs less than a grouping before it.
            let mut known_arrays: Vec<ArrayRef> = Vec::new();
            if store.exists(Layer::Staging, entity) {
                let batches = store
                    .query(
                        &[(Layer::Staging, entity)],
                        &format!("SELECT CAST(\"{ref_column}\" AS VARCHAR) AS v FROM staging.{entity}"),
                    )
                    .await?;
                for b in &batches {
                    // DataFusion may answer with Utf8View; cast to one shape.
                    known_arrays.push(cast(b.column(0), &DataType::Utf8).expect("text casts to text"));
                }
            }
            for (_, batches) in targets
                .iter()
                .zip(finals)
                .filter(|(other, _)| other.entity.name == entity)
            {
                for c in batches.iter().filter_map(|batch| batch.column_by_name(ref_column)) {
                    known_arrays.push(cast(c, &DataType::Utf8).expect("casts to text"));
                }
            }
            let mut known: HashSet<&str> =
                HashSet::with_capacity_and_hasher(known_arrays.iter().map(|a| a.len()).sum(), Default::default());
            for array in &known_arrays {
                known.extend(array.as_string::<i32>().iter().flatten());
            }
            for batch in &finals[t] {
                let values =
                    cast(batch.column_by_name(&column.name).expect("mapped"), &DataType::Utf8).expect("casts to text");
                let values = values.as_string::<i32>();
                let rows = row_numbers(batch);
                for i in 0..values.len() {
                    if values.is_null(i) || known.contains(values.value(i)) {
                        continue;
                    }
                    let row = rows.value(i) as u64;
                    if rejected.insert(row) {
                        quarantined.push(Quarantined {
                            row,
                            raw: raw.text(row),
                            field: column.rule.from.clone().or(Some(column.name.clone())),
                            reason: format!(
                                "{}: `{}` is not in staging.{entity}.{ref_column}",
                                column.name,
                                values.value(i)
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(rejected)
}

/// Each row's number and row hash, across `batches` in order.
fn rows_and_hashes(batches: &[RecordBatch]) -> impl Iterator<Item = (u64, i64)> + '_ {
    batches.iter().flat_map(|batch| {
        row_numbers(batch)
            .values()
            .iter()
            .zip(hashes_of(batch).values())
            .map(|(row, hash)| (*row as u64, *hash))
    })
}

/// Row number and row hash of a row of several batches, by its index among all their rows.
struct RowsAndHashes<'b> {
    batches: &'b [RecordBatch],
    /// The index of each batch's first row.
    starts: Vec<usize>,
}

impl<'b> RowsAndHashes<'b> {
    fn of(batches: &'b [RecordBatch]) -> Self {
        let starts = batches
            .iter()
            .scan(0, |start, batch| {
                let this = *start;
                *start += batch.num_rows();
                Some(this)
            })
            .collect();
        Self { batches, starts }
    }

    fn at(&self, i: usize) -> (u64, i64) {
        let b = self.starts.partition_point(|start| *start <= i) - 1;
        let (batch, offset) = (&self.batches[b], i - self.starts[b]);
        (row_numbers(batch).value(offset) as u64, hashes_of(batch).value(offset))
    }
}

/// A row's index as the key tables hold it; [`KeyTexts`] refuses more keys than fit.
fn key_index(i: usize) -> u32 {
    u32::try_from(i).expect("KeyTexts holds at most u32::MAX keys")
}

/// What a staging table holds: each row's key and its row hash.
struct StoredKeys {
    keys: KeyTexts,
    hashes: Vec<i64>,
}

async fn stored_keys(store: &Store, target: &ResolvedTarget) -> Result<Option<StoredKeys>, IngestError> {
    let name = target.entity.name;
    if !store.exists(Layer::Staging, name) {
        return Ok(None);
    }
    let key_list = target
        .key
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let batches = store
        .query(
            &[(Layer::Staging, name)],
            &format!("SELECT {key_list}, _row_hash FROM staging.{name}"),
        )
        .await?;
    let keys = KeyTexts::of_batches(&batches, &target.key).map_err(|e| StoreError::Query {
        table: format!("staging.{name}"),
        source: e.into(),
    })?;
    let hashes = batches
        .iter()
        .flat_map(|b| hashes_of(b).values().iter().copied())
        .collect();
    let stored = StoredKeys { keys, hashes };
    Ok(Some(stored))
}

/// What [`dedup`] found for one target.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    inserted: u64,
    updated: u64,
    unchanged: u64,
}

/// Where [`dedup`] sends a key repeated with other values: two rows of one input with the same
/// key of the first target but different values keep the first, and quarantine the later ones
/// (which one is right cannot be told from the data).
struct KeyConflicts<'q> {
    /// The key's columns, as the quarantine names the field.
    key: String,
    raw: &'q RawLookup<'q>,
    quarantined: &'q mut Vec<Quarantined>,
}

/// Drop the rejected rows, and the rows whose key is stored with the same values or repeats
/// earlier in the input. Returns the rows to write and the counts of inserts, updates and
/// unchanged rows (rejected rows are in none of them). With `conflicts`, a key repeated with other
/// values than its first row is rejected too (added to `rejected`, for the other targets); without,
/// the repeat counts as unchanged. One pass with one table of keys does both: the input's keys are
/// its largest index, and building it twice was a fifth of a large file's checks.
fn dedup(
    batches: &[RecordBatch],
    keys: &KeyTexts,
    rejected: &mut HashSet<u64>,
    stored: Option<&StoredKeys>,
    mut conflicts: Option<KeyConflicts<'_>>,
) -> (Vec<RecordBatch>, Counts) {
    // Both tables hold row indices (4 bytes) rather than keys: a table of millions of keys is
    // larger than the caches, and each insert touches it at random. A key's hash is worked out
    // once and serves both.
    let hasher = hashbrown::DefaultHashBuilder::default();
    let hash_key = |key: &[u8]| hasher.hash_one(key);
    let mut existing: HashTable<u32> = HashTable::new();
    if let Some(stored) = stored {
        let rehash = |j: &u32| hash_key(stored.keys.get(*j as usize));
        existing.reserve(stored.keys.len(), rehash);
        for (j, key) in stored.keys.iter().enumerate() {
            let at = key_index(j);
            // A key stored twice keeps its last row, as a later write would have replaced it.
            match existing.entry(hash_key(key), |k| stored.keys.get(*k as usize) == key, rehash) {
                hash_table::Entry::Occupied(mut entry) => *entry.get_mut() = at,
                hash_table::Entry::Vacant(entry) => {
                    entry.insert(at);
                }
            }
        }
    }
    // Each key's first row in the input, as the index of its key.
    let mut first: HashTable<u32> = HashTable::with_capacity(keys.len());
    let rehash = |i: &u32| hash_key(keys.get(*i as usize));
    let rows = RowsAndHashes::of(batches);
    let mut counts = Counts::default();
    let mut keep = Vec::with_capacity(keys.len());
    for (i, (row, hash)) in rows_and_hashes(batches).enumerate() {
        if !rejected.is_empty() && rejected.contains(&row) {
            keep.push(false);
            continue;
        }
        let key = keys.get(i);
        let key_hash = hash_key(key);
        let decision = match first.entry(key_hash, |k| keys.get(*k as usize) == key, rehash) {
            hash_table::Entry::Vacant(entry) => {
                entry.insert(key_index(i));
                let stored_hash = stored.and_then(|stored| {
                    existing
                        .find(key_hash, |j| stored.keys.get(*j as usize) == key)
                        .map(|j| stored.hashes[*j as usize])
                });
                match stored_hash {
                    Some(h) if h == hash => Decision::Unchanged,
                    Some(_) => Decision::Update,
                    None => Decision::Insert,
                }
            }
            hash_table::Entry::Occupied(entry) => match &mut conflicts {
                Some(conflicts) => {
                    let (first_row, first_hash) = rows.at(*entry.get() as usize);
                    if first_hash == hash {
                        Decision::Unchanged
                    } else {
                        rejected.insert(row);
                        conflicts.quarantined.push(Quarantined {
                            row,
                            raw: conflicts.raw.text(row),
                            field: Some(conflicts.key.clone()),
                            reason: format!(
                                "duplicate key {} = `{}` with other values than row {first_row}",
                                conflicts.key,
                                keys.display(i)
                            ),
                        });
                        Decision::Rejected
                    }
                }
                None => Decision::Unchanged,
            },
        };
        match decision {
            Decision::Unchanged => counts.unchanged += 1,
            Decision::Update => counts.updated += 1,
            Decision::Insert => counts.inserted += 1,
            Decision::Rejected => {}
        }
        keep.push(matches!(decision, Decision::Update | Decision::Insert));
    }
    let mut kept = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        let mask = &keep[offset..offset + batch.num_rows()];
        offset += batch.num_rows();
        if mask.iter().all(|k| *k) {
            kept.push(batch.clone());
        } else if mask.iter().any(|k| *k) {
            let mask = BooleanArray::from(mask.to_vec());
            kept.push(filter_record_batch(batch, &mask).expect("mask has the batch's length"));
        }
    }
    (kept, counts)
}

/// What [`dedup`] does with one row.
enum Decision {
    Insert,
    Update,
    Unchanged,
    Rejected,
}

fn quarantine_batch(pipeline: &str, lineage: &Lineage, rows: &[Quarantined]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("row_number", DataType::Int64, false),
        Field::new("raw_row", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("ingested_at", timestamp_type(), false),
    ]));
    let n = rows.len();
    let repeat = |s: &str| Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n))) as ArrayRef;
    let mut row_numbers = Int64Builder::with_capacity(n);
    for q in rows {
        row_numbers.append_value(q.row as i64);
    }
    RecordBatch::try_new(
        schema,
        vec![
            repeat(pipeline),
            repeat(&lineage.source),
            repeat(&lineage.file),
            Arc::new(row_numbers.finish()),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|q| q.raw.as_str()))),
            Arc::new(StringArray::from_iter(rows.iter().map(|q| q.field.as_deref()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|q| q.reason.as_str()))),
            repeat(&lineage.batch_id),
            timestamp_array(vec![lineage.ingested_at.timestamp_micros(); n]),
        ],
    )
    .expect("quarantine columns match their schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_names_are_sql_safe() {
        assert_eq!(raw_column_name("VAT_Number__c"), "vat_number_c");
        assert_eq!(raw_column_name("Billing City"), "billing_city");
        assert_eq!(raw_column_name("1st"), "c_1st");
    }
}
