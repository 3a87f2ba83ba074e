//! Delta Lake tables under the data directory: open, append exactly once, read (also as of an earlier
//! version or time), compact and vacuum.
//!
//! Exactly-once writes use Delta's own application transactions (`txn` actions): every write names a
//! marker (an ingest batch id, a job run), the marker is committed in the same atomic log entry as the
//! data, and a writer that finds its marker already in the table knows the write happened and skips
//! it. A crash or kill therefore leaves each table at its last committed version, and a re-run
//! finishes what is missing without writing anything twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{Row, RowConverter, SortField};
use datafusion::error::DataFusionError;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

use crate::layout::{DataDir, Layer};

/// Why a table operation failed, naming the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Delta log or a data file could not be read or written.
    #[error("Delta table {table}: {source}")]
    Delta {
        /// `layer.name`.
        table: String,
        /// What Delta reported.
        #[source]
        source: Box<DeltaTableError>,
    },
    /// A query over a table failed.
    #[error("query on {table}: {source}")]
    Query {
        /// `layer.name`.
        table: String,
        /// What DataFusion reported.
        #[source]
        source: DataFusionError,
    },
    /// The table has never been written.
    #[error("table {table} does not exist (nothing has been ingested into it)")]
    Missing {
        /// `layer.name`.
        table: String,
    },
}

/// Which state of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The latest committed version.
    Latest,
    /// A version number from the table's history.
    Version(u64),
    /// The version that was current at this time.
    Time(DateTime<Utc>),
}

/// Rows handed to the Parquet encoder at a time. delta-rs slices every batch into 1,024-row pieces
/// by default, and each piece pays the encoder's per-call work again; row groups stay as large.
const WRITE_BATCH_ROWS: usize = 65_536;

/// Rows at the start of a write looked at to choose each column's encoding.
const ENCODING_SAMPLE_ROWS: usize = 8_192;

/// How the pages of the Parquet files that writes add are compressed (`[storage]
/// parquet_compression`). Files already written keep their codec until they are rewritten
/// (`tributary optimize`, a refresh); DuckDB, polars, pyarrow, Spark 3.4+ and delta-rs read all four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    /// Snappy: what delta-rs and DuckDB write by default, and what readers older than Parquet's
    /// `LZ4_RAW` (Spark before 3.4, say) need.
    Snappy,
    /// LZ4 in the raw block format (Parquet's `LZ4_RAW`, not the older framed `LZ4`): ours by
    /// default, since five of the ten analyst queries read it 5-12% faster than Snappy (the
    /// others as fast) from files of the same size (README, Measured).
    #[default]
    Lz4Raw,
    /// Zstandard (level 1): the smallest files, the slowest to read back.
    Zstd,
    /// None: the largest files, nothing to decode.
    Uncompressed,
}

impl ParquetCompression {
    fn codec(self) -> Compression {
        match self {
            Self::Snappy => Compression::SNAPPY,
            Self::Lz4Raw => Compression::LZ4_RAW,
            Self::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Self::Uncompressed => Compression::UNCOMPRESSED,
        }
    }

    /// The name `[storage] parquet_compression` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Snappy => "snappy",
            Self::Lz4Raw => "lz4_raw",
            Self::Zstd => "zstd",
            Self::Uncompressed => "uncompressed",
        }
    }
}

impl std::fmt::Display for ParquetCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ParquetCompression {
    type Err = serde::de::value::Error;

    /// By its name in the configuration (the same parser, so the same names and message).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        Self::deserialize(name.into_deserializer())
    }
}

/// `[storage]`: how tables are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageOptions {
    /// Codec of new Parquet files.
    pub parquet_compression: ParquetCompression,
}

/// Parquet settings for every file a write adds: the configured codec, under delta-rs's name in
/// the files' metadata (delta-rs would otherwise write Snappy, its optimize Zstandard, and a merge
/// whatever DataFusion's Parquet options say).
fn base_writer_properties(options: StorageOptions) -> datafusion::parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_created_by(format!("delta-rs version {}", deltalake::crate_version()))
        .set_compression(options.parquet_compression.codec())
}

/// Parquet settings for appending `batches`: [`base_writer_properties`] with dictionary encoding,
/// except that a column whose values barely repeat in the first rows (row numbers, row hashes,
/// amounts) is written without a dictionary. The encoder interns every value of a dictionary
/// column, a hash-table probe that buys nothing when nearly every value is new; an unpartitioned
/// file falls back to plain encoding after a megabyte of dictionary anyway, but a month's file of a
/// partitioned table never gets there and keeps the whole useless dictionary.
fn writer_properties(options: StorageOptions, batches: &[RecordBatch]) -> WriterProperties {
    let mut properties = base_writer_properties(options);
    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else {
        return properties.build();
    };
    let sample = first.slice(0, first.num_rows().min(ENCODING_SAMPLE_ROWS));
    // Too few rows to tell a key from a code list; the dictionary costs little on a small write.
    if sample.num_rows() < 1_024 {
        return properties.build();
    }
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        if field.data_type().is_nested() {
            continue;
        }
        if distinct_values(column).is_some_and(|distinct| distinct * 2 > sample.num_rows()) {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    properties.build()
}

/// How many distinct values (null counted as one) `column` holds, by Arrow's row format, which
/// compares any flat type byte for byte; `None` for a type it cannot encode.
fn distinct_values(column: &ArrayRef) -> Option<usize> {
    let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())]).ok()?;
    let rows = converter.convert_columns(std::slice::from_ref(column)).ok()?;
    let distinct: datafusion::common::HashSet<Row<'_>> = rows.iter().collect();
    Some(distinct.len())
}

/// One write: the rows, how the table is partitioned, and the exactly-once marker.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// Rows to add; all batches share one schema.
    pub batches: Vec<RecordBatch>,
    /// Partition columns, used when the write creates the table.
    pub partition_by: &'a [&'a str],
    /// Application transaction id committed with the data; a table that holds it already is skipped.
    pub marker: &'a str,
    /// Extra commit metadata (shown by `DESCRIBE HISTORY`-like tools).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// What a compaction did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    /// Files before.
    pub files_removed: u64,
    /// Files written in their place.
    pub files_added: u64,
}

/// The tables of one data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: DataDir,
    options: StorageOptions,
}

impl Store {
    /// The tables under `dir`, written with the default [`StorageOptions`] (LZ4).
    pub fn new(dir: DataDir) -> Self {
        Self {
            dir,
            options: StorageOptions::default(),
        }
    }

    /// The same tables, written from now on as `options` say.
    pub fn with_options(self, options: StorageOptions) -> Self {
        Self { options, ..self }
    }

    /// How writes are made.
    pub fn options(&self) -> StorageOptions {
        self.options
    }

    /// The data directory.
    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Whether the table has at least one committed version.
    pub fn exists(&self, layer: Layer, name: &str) -> bool {
        self.dir.table(layer, name).join("_delta_log").is_dir()
    }

    /// The newest committed version, from the commit files' names alone: far cheaper than opening
    /// the table, so that readers can tell whether what they opened before is still the latest.
    pub fn latest_version(&self, layer: Layer, name: &str) -> Option<u64> {
        std::fs::read_dir(self.dir.table(layer, name).join("_delta_log"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name();
                let stem = file.to_str()?.strip_suffix(".json")?;
                (stem.len() == 20).then(|| stem.parse::<u64>().ok()).flatten()
            })
            .max()
    }

    /// When the newest version was committed (its commit file's modification time): how fresh
    /// the table is, for the operations dashboard.
    pub fn updated_at(&self, layer: Layer, name: &str) -> Option<std::time::SystemTime> {
        let version = self.latest_version(layer, name)?;
        let commit = self
            .dir
            .table(layer, name)
            .join("_delta_log")
            .join(format!("{version:020}.json"));
        std::fs::metadata(commit).ok()?.modified().ok()
    }

    /// Every table that exists, by layer then name.
    pub fn tables(&self) -> Vec<(Layer, String)> {
        let mut found = Vec::new();
        for layer in Layer::ALL {
            let Ok(entries) = std::fs::read_dir(self.dir.layer(layer)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("_delta_log").is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            found.extend(names.into_iter().map(|n| (layer, n)));
        }
        found
    }

    /// The query engine's view of an opened table. Filters of a query are not evaluated row by
    /// row while Parquet pages are decoded (delta-rs does that unless told otherwise): most of our
    /// filters keep most rows (`status <> 'cancelled'`), so decoding the filter columns first and
    /// filtering twice costs more than it saves, and a hash join's dynamic filter evaluated per
    /// row is slower still. The filters still skip files, row groups and pages by their
    /// statistics, and are applied once above the scan, as DataFusion does for Parquet by default.
    /// Text stays as string views, as delta-rs reads it by default.
    pub async fn provider(table: &DeltaTable) -> Result<Arc<dyn datafusion::catalog::TableProvider>, DataFusionError> {
        static SCAN: std::sync::OnceLock<Arc<datafusion::execution::SessionState>> = std::sync::OnceLock::new();
        let session = SCAN.get_or_init(|| {
            let mut config = datafusion::prelude::SessionConfig::new();
            config.options_mut().execution.parquet.pushdown_filters = false;
            config.options_mut().execution.parquet.schema_force_view_types = true;
            Arc::new(
                datafusion::execution::SessionStateBuilder::new()
                    .with_config(config)
                    .build(),
            )
        });
        let delta_rs = table.table_provider().with_session(session.clone()).await?;
        // Plain tables (all of ours) are read by DataFusion's Parquet scan over the snapshot's
        // files, which costs less per query; see `delta_scan`.
        Ok(
            match crate::delta_scan::DeltaParquetTable::try_new(table, delta_rs.schema()) {
                Some(plain) => Arc::new(plain),
                None => delta_rs,
            },
        )
    }

    /// Join small tables by one shared hash table (CollectLeft) instead of repartitioning both
    /// sides by key: DataFusion judges "small" by the bytes a scan reports, and a Delta table
    /// reports its files' compressed size, so 80,000 customers (a few MB) counted as large and ten
    /// million order lines were shuffled to join them. Every session over the tables uses this.
    pub fn join_small_tables_whole(config: &mut datafusion::prelude::SessionConfig) {
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = 32 << 20;
        optimizer.hash_join_single_partition_threshold_rows = 1 << 20;
    }

    /// Open a table as of `as_of`; `Missing` when it was never written.
    pub async fn open(&self, layer: Layer, name: &str, as_of: AsOf) -> Result<DeltaTable, StoreError> {
        let label = format!("{layer}.{name}");
        if !self.exists(layer, name) {
            return Err(StoreError::Missing { table: label });
        }
        let delta = |source| StoreError::Delta {
            table: label.clone(),
            source: Box::new(source),
        };
        let url = self.url(layer, name).map_err(delta)?;
        let mut table = DeltaTable::try_from_url(url).await.map_err(delta)?;
        match as_of {
            AsOf::Latest => {}
            AsOf::Version(v) => table.load_version(v).await.map_err(delta)?,
            AsOf::Time(t) => table.load_with_datetime(t).await.map_err(delta)?,
        }
        Ok(table)
    }

    /// Whether a write carrying `marker` was committed to the table.
    pub async fn has_marker(&self, layer: Layer, name: &str, marker: &str) -> Result<bool, StoreError> {
        let table = match self.open(layer, name, AsOf::Latest).await {
            Ok(t) => t,
            Err(StoreError::Missing { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let snapshot = table.snapshot().map_err(|source| StoreError::Delta {
            table: format!("{layer}.{name}"),
            source: Box::new(source),
        })?;
        let version = snapshot
            .transaction_version(table.log_store().as_ref(), marker)
            .await
            .map_err(|source| StoreError::Delta {
                table: format!("{layer}.{name}"),
                source: Box::new(source),
            })?;
        Ok(version.is_some())
    }

    /// Append rows in one atomic commit, creating the table on first write and merging new columns
    /// into its schema. Returns the new version, or `None` when the marker was already committed
    /// (the write happened before) or there was nothing to write.
    pub async fn append(&self, layer: Layer, name: &str, append: Append<'_>) -> Result<Option<u64>, StoreError> {
        if self.has_marker(layer, name, append.marker).await? {
            return Ok(None);
        }
        if append.batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(None);
        }
        let label = format!("{layer}.{name}");
        let delta = |source| StoreError::Delta {
            table: label.clone(),
            source: Box::new(source),
        };
        let url = self.url(layer, name).map_err(delta)?;
        // A table that does not exist yet is created by the write; loading it first would only
        // make the Delta kernel log an error about an empty log.
        let table = if self.exists(layer, name) {
            DeltaTable::try_from_url(url).await.map_err(delta)?
        } else {
            deltalake::DeltaTableBuilder::from_url(url)
                .and_then(|b| b.build())
                .map_err(delta)?
        };
        let properties = CommitProperties::default()
            .with_metadata(append.metadata)
            .with_application_transaction(Transaction::new(append.marker, 0));
        let parquet_properties = writer_properties(self.options, &append.batches);
        let written = table
            .write(append.batches)
            .with_write_batch_size(WRITE_BATCH_ROWS)
            .with_writer_properties(parquet_properties)
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_partition_columns(append.partition_by.iter().map(|c| c.to_string()))
            .with_table_name(name)
            .with_commit_properties(properties)
            .await
            .map_err(delta)?;
        Ok(written.version())
    }

    /// Replace a table's rows with `batches` in one commit (schema too): for derived tables that are
    /// rebuilt whole, such as `core.customer`. Readers see the old or the new version, never half.
    pub async fn replace(
        &self,
        layer: Layer,
        name: &str,
        batches: Vec<RecordBatch>,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, StoreError> {
        let table = self.writable(layer, name).await?;
        let write = table.write(batches);
        self.overwrite(layer, name, write, metadata).await
    }

    /// Replace a table's rows with the result of a query, streamed from the plan into Parquet files
    /// rather than collected first (derived tables can be as large as the facts they come from).
    pub async fn replace_query(
        &self,
        layer: Layer,
        name: &str,
        query: datafusion::dataframe::DataFrame,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, StoreError> {
        let table = self.writable(layer, name).await?;
        let (state, plan) = query.into_parts();
        // Delta's writer wraps the plan in its own nodes, which only its planner can execute.
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        let write = deltalake::operations::write::WriteBuilder::new(
            table.log_store(),
            table.state.as_ref().map(|s| s.snapshot().clone()),
        )
        .with_input_plan(plan)
        .with_session_state(Arc::new(state));
        self.overwrite(layer, name, write, metadata).await
    }

    /// Run a write as one overwrite commit of rows and schema, with `metadata` in the commit.
    async fn overwrite(
        &self,
        layer: Layer,
        name: &str,
        write: deltalake::operations::write::WriteBuilder,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, StoreError> {
        let written = write
            .with_write_batch_size(WRITE_BATCH_ROWS)
            .with_writer_properties(base_writer_properties(self.options).build())
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_table_name(name)
            .with_commit_properties(CommitProperties::default().with_metadata(metadata))
            .await
            .map_err(|source| StoreError::Delta {
                table: format!("{layer}.{name}"),
                source: Box::new(source),
            })?;
        Ok(written.version())
    }

    /// The table at its latest version, or a new one to be created by the first write.
    async fn writable(&self, layer: Layer, name: &str) -> Result<DeltaTable, StoreError> {
        let label = format!("{layer}.{name}");
        let delta = |source| StoreError::Delta {
            table: label.clone(),
            source: Box::new(source),
        };
        let url = self.url(layer, name).map_err(delta)?;
        if self.exists(layer, name) {
            DeltaTable::try_from_url(url).await.map_err(delta)
        } else {
            deltalake::DeltaTableBuilder::from_url(url)
                .and_then(|b| b.build())
                .map_err(delta)
        }
    }

    /// The Parquet files of a table's latest version (what another engine such as DuckDB or polars
    /// must read to see exactly that version).
    pub async fn files(&self, layer: Layer, name: &str) -> Result<Vec<String>, StoreError> {
        let table = self.open(layer, name, AsOf::Latest).await?;
        let uris = table.get_file_uris().map_err(|source| StoreError::Delta {
            table: format!("{layer}.{name}"),
            source: Box::new(source),
        })?;
        Ok(uris.collect())
    }

    /// The latest version of a table, `None` when it was never written.
    pub async fn version(&self, layer: Layer, name: &str) -> Result<Option<u64>, StoreError> {
        match self.open(layer, name, AsOf::Latest).await {
            Ok(table) => Ok(table.version()),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Insert new keys and replace rows whose key exists, in one atomic commit (a Delta MERGE).
    /// Skipped, like [`Store::append`], when the marker was committed before.
    pub async fn upsert(
        &self,
        layer: Layer,
        name: &str,
        append: Append<'_>,
        key: &[&str],
    ) -> Result<Option<u64>, StoreError> {
        if !self.exists(layer, name) {
            return self.append(layer, name, append).await;
        }
        if self.has_marker(layer, name, append.marker).await? {
            return Ok(None);
        }
        let label = format!("{layer}.{name}");
        let Some(first) = append.batches.first() else {
            return Ok(None);
        };
        let columns: Vec<String> = first.schema().fields().iter().map(|f| f.name().clone()).collect();
        let writer_properties = writer_properties(self.options, &append.batches);
        let ctx = SessionContext::new();
        let source = ctx.read_batches(append.batches).map_err(|source| StoreError::Query {
            table: label.clone(),
            source,
        })?;
        let predicate = key
            .iter()
            .map(|k| format!("target.\"{k}\" = source.\"{k}\""))
            .collect::<Vec<_>>()
            .join(" AND ");
        let table = self.open(layer, name, AsOf::Latest).await?;
        let delta = |source| StoreError::Delta {
            table: label.clone(),
            source: Box::new(source),
        };
        let properties = CommitProperties::default()
            .with_metadata(append.metadata)
            .with_application_transaction(Transaction::new(append.marker, 0));
        let (merged, _) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(properties)
            .with_writer_properties(writer_properties)
            .when_matched_update(|update| {
                columns
                    .iter()
                    .fold(update, |u, c| u.update(c.as_str(), format!("source.\"{c}\"")))
            })
            .map_err(delta)?
            .when_not_matched_insert(|insert| {
                columns
                    .iter()
                    .fold(insert, |i, c| i.set(c.as_str(), format!("source.\"{c}\"")))
            })
            .map_err(delta)?
            .await
            .map_err(delta)?;
        Ok(merged.version())
    }

    /// A DataFusion session with the given tables registered as `layer.name` (only those that exist).
    pub async fn session(&self, tables: &[(Layer, &str)]) -> Result<SessionContext, StoreError> {
        let mut config = datafusion::prelude::SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(true);
        Self::join_small_tables_whole(&mut config);
        let ctx = SessionContext::new_with_config(config);
        for &(layer, name) in tables {
            if !self.exists(layer, name) {
                continue;
            }
            self.register(&ctx, layer, name, AsOf::Latest).await?;
        }
        Ok(ctx)
    }

    /// A DataFusion session with every existing table registered as `layer.name`.
    pub async fn session_all(&self) -> Result<SessionContext, StoreError> {
        let tables = self.tables();
        let refs: Vec<(Layer, &str)> = tables.iter().map(|(l, n)| (*l, n.as_str())).collect();
        self.session(&refs).await
    }

    /// Register one table in `ctx` under `layer.name`, as of `as_of`.
    pub async fn register(
        &self,
        ctx: &SessionContext,
        layer: Layer,
        name: &str,
        as_of: AsOf,
    ) -> Result<(), StoreError> {
        let label = format!("{layer}.{name}");
        let table = self.open(layer, name, as_of).await?;
        let provider = Self::provider(&table).await.map_err(|source| StoreError::Query {
            table: label.clone(),
            source,
        })?;
        let query = |source| StoreError::Query {
            table: label.clone(),
            source,
        };
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog is always created");
        if catalog.schema(layer.name()).is_none() {
            catalog
                .register_schema(layer.name(), Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
                .map_err(query)?;
        }
        // Registering again (a newer version) replaces the earlier registration.
        ctx.deregister_table(format!("{layer}.{name}").as_str())
            .map_err(query)?;
        ctx.register_table(format!("{layer}.{name}").as_str(), provider)
            .map_err(query)?;
        Ok(())
    }

    /// Run a query over the given tables and collect its result.
    pub async fn query(&self, tables: &[(Layer, &str)], sql: &str) -> Result<Vec<RecordBatch>, StoreError> {
        let ctx = self.session(tables).await?;
        let label = tables
            .iter()
            .map(|(l, n)| format!("{l}.{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let query = |source| StoreError::Query {
            table: label.clone(),
            source,
        };
        ctx.sql(sql).await.map_err(query)?.collect().await.map_err(query)
    }

    /// Rewrite a table's small files into larger ones (one commit; readers see the same rows).
    pub async fn optimize(&self, layer: Layer, name: &str) -> Result<Compaction, StoreError> {
        let label = format!("{layer}.{name}");
        let table = self.open(layer, name, AsOf::Latest).await?;
        let (_, metrics) = table
            .optimize()
            .with_writer_properties(base_writer_properties(self.options).build())
            .await
            .map_err(|source| StoreError::Delta {
                table: label.clone(),
                source: Box::new(source),
            })?;
        Ok(Compaction {
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
        })
    }

    /// Delete data files that no version newer than `retain_hours` ago needs. Returns files deleted.
    pub async fn vacuum(&self, layer: Layer, name: &str, retain_hours: u32) -> Result<usize, StoreError> {
        let label = format!("{layer}.{name}");
        let table = self.open(layer, name, AsOf::Latest).await?;
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(chrono::Duration::hours(i64::from(retain_hours)))
            .with_enforce_retention_duration(false)
            .await
            .map_err(|source| StoreError::Delta {
                table: label,
                source: Box::new(source),
            })?;
        Ok(metrics.files_deleted.len())
    }

    /// The metadata of a table's latest commit (ours and Delta's), `None` when it was never written.
    pub async fn latest_commit(
        &self,
        layer: Layer,
        name: &str,
    ) -> Result<Option<HashMap<String, serde_json::Value>>, StoreError> {
        use futures::StreamExt;
        let table = match self.open(layer, name, AsOf::Latest).await {
            Ok(t) => t,
            Err(StoreError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut commits = table.history(Some(1));
        match commits.next().await {
            Some(commit) => Ok(Some(
                commit
                    .map_err(|source| StoreError::Delta {
                        table: format!("{layer}.{name}"),
                        source: Box::new(source),
                    })?
                    .info,
            )),
            None => Ok(None),
        }
    }

    /// The commit history of a table, newest first: version, time and our commit metadata.
    pub async fn history(
        &self,
        layer: Layer,
        name: &str,
    ) -> Result<Vec<HashMap<String, serde_json::Value>>, StoreError> {
        use futures::StreamExt;
        let label = format!("{layer}.{name}");
        let table = self.open(layer, name, AsOf::Latest).await?;
        let commits: Vec<_> = table.history(None).collect().await;
        let mut out = Vec::with_capacity(commits.len());
        for commit in commits {
            let commit = commit.map_err(|source| StoreError::Delta {
                table: label.clone(),
                source: Box::new(source),
            })?;
            let mut entry = commit.info.clone();
            if let Some(ts) = commit.timestamp {
                entry.insert("timestamp".into(), ts.into());
            }
            if let Some(op) = &commit.operation {
                entry.insert("operation".into(), op.clone().into());
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn url(&self, layer: Layer, name: &str) -> Result<url::Url, DeltaTableError> {
        let path: PathBuf = self.dir.table(layer, name);
        std::fs::create_dir_all(&path).map_err(|e| DeltaTableError::Generic(format!("{}: {e}", path.display())))?;
        let absolute =
            std::fs::canonicalize(&path).map_err(|e| DeltaTableError::Generic(format!("{}: {e}", path.display())))?;
        deltalake::ensure_table_uri(absolute.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn append<'a>(batch: RecordBatch, marker: &'a str) -> Append<'a> {
        Append {
            batches: vec![batch],
            partition_by: &[],
            marker,
            metadata: serde_json::Map::new(),
        }
    }

    async fn ids(store: &Store, as_of: AsOf) -> Vec<i64> {
        let ctx = SessionContext::new();
        store.register(&ctx, Layer::Staging, "t", as_of).await.unwrap();
        let batches = ctx
            .sql("SELECT id FROM staging.t ORDER BY id")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn markers_make_writes_happen_once_and_old_versions_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(dir.path()));
        assert!(matches!(
            store.open(Layer::Staging, "t", AsOf::Latest).await,
            Err(StoreError::Missing { .. })
        ));
        assert_eq!(
            store
                .append(Layer::Staging, "t", append(batch(&[1, 2], &["a", "b"]), "m1"))
                .await
                .unwrap(),
            Some(0)
        );
        // The same marker again: nothing written.
        assert_eq!(
            store
                .append(Layer::Staging, "t", append(batch(&[1, 2], &["a", "b"]), "m1"))
                .await
                .unwrap(),
            None
        );
        let before_second = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            store
                .append(Layer::Staging, "t", append(batch(&[3], &["c"]), "m2"))
                .await
                .unwrap(),
            Some(1)
        );
        // Upsert: id 2 changes, id 4 is new, in one commit.
        assert_eq!(
            store
                .upsert(Layer::Staging, "t", append(batch(&[2, 4], &["B", "d"]), "m3"), &["id"])
                .await
                .unwrap(),
            Some(2)
        );
        assert_eq!(ids(&store, AsOf::Latest).await, [1, 2, 3, 4]);
        assert_eq!(ids(&store, AsOf::Version(0)).await, [1, 2]);
        assert_eq!(ids(&store, AsOf::Time(before_second)).await, [1, 2]);
        let names = store
            .query(&[(Layer::Staging, "t")], "SELECT name FROM staging.t WHERE id = 2")
            .await
            .unwrap();
        let name = datafusion::arrow::compute::cast(names[0].column(0), &DataType::Utf8).unwrap();
        assert_eq!(name.as_any().downcast_ref::<StringArray>().unwrap().value(0), "B");
        assert!(store.has_marker(Layer::Staging, "t", "m3").await.unwrap());
        assert_eq!(store.tables(), [(Layer::Staging, "t".to_string())]);
        assert_eq!(store.history(Layer::Staging, "t").await.unwrap().len(), 3);

        // Compaction keeps the rows; vacuum then removes the files no version needs.
        let compacted = store.optimize(Layer::Staging, "t").await.unwrap();
        assert!(compacted.files_removed >= 2, "{compacted:?}");
        assert_eq!(compacted.files_added, 1);
        assert_eq!(ids(&store, AsOf::Latest).await, [1, 2, 3, 4]);
        assert!(store.vacuum(Layer::Staging, "t", 0).await.unwrap() >= 2);
        assert_eq!(ids(&store, AsOf::Latest).await, [1, 2, 3, 4]);
    }

    /// A data file named as [`Store::files`] names it, opened for its Parquet metadata.
    fn parquet_reader(file: &str) -> datafusion::parquet::file::reader::SerializedFileReader<std::fs::File> {
        let path = url::Url::parse(file)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_else(|| PathBuf::from(file));
        datafusion::parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap()
    }

    /// Every codec of every column chunk of the table's current files.
    async fn codecs(store: &Store) -> std::collections::BTreeSet<String> {
        use datafusion::parquet::file::reader::FileReader;
        let mut codecs = std::collections::BTreeSet::new();
        for file in store.files(Layer::Staging, "t").await.unwrap() {
            let reader = parquet_reader(&file);
            for group in reader.metadata().row_groups() {
                codecs.extend(group.columns().iter().map(|c| c.compression().to_string()));
            }
        }
        codecs
    }

    #[tokio::test]
    async fn every_write_compresses_as_the_storage_options_say() {
        let only = |codecs: &[ParquetCompression]| -> std::collections::BTreeSet<String> {
            codecs.iter().map(|c| c.codec().to_string()).collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(dir.path()));
        store
            .append(Layer::Staging, "t", append(batch(&[1, 2], &["a", "b"]), "m1"))
            .await
            .unwrap();
        assert_eq!(codecs(&store).await, only(&[ParquetCompression::Lz4Raw]), "the default");

        // Each kind of write (append, compaction, merge, overwrite) adds files in the codec of the
        // moment, each time one that delta-rs would not have chosen by itself for that write.
        let with = |codec| {
            store.clone().with_options(StorageOptions {
                parquet_compression: codec,
            })
        };
        let snappy = with(ParquetCompression::Snappy);
        snappy
            .append(Layer::Staging, "t", append(batch(&[3], &["c"]), "m2"))
            .await
            .unwrap();
        assert_eq!(
            codecs(&store).await,
            only(&[ParquetCompression::Lz4Raw, ParquetCompression::Snappy]),
            "old files keep their codec"
        );
        snappy.optimize(Layer::Staging, "t").await.unwrap();
        assert_eq!(codecs(&store).await, only(&[ParquetCompression::Snappy]), "compaction");
        // The compacted file holds id 2, so the merge rewrites all of it.
        with(ParquetCompression::Uncompressed)
            .upsert(Layer::Staging, "t", append(batch(&[2, 4], &["B", "d"]), "m3"), &["id"])
            .await
            .unwrap();
        assert_eq!(
            codecs(&store).await,
            only(&[ParquetCompression::Uncompressed]),
            "a merge"
        );
        assert_eq!(ids(&store, AsOf::Latest).await, [1, 2, 3, 4]);
        with(ParquetCompression::Zstd)
            .replace(
                Layer::Staging,
                "t",
                vec![batch(&[5, 6], &["e", "f"])],
                serde_json::Map::new(),
            )
            .await
            .unwrap();
        assert_eq!(codecs(&store).await, only(&[ParquetCompression::Zstd]), "an overwrite");
        assert_eq!(ids(&store, AsOf::Latest).await, [5, 6]);
        // An old version still reads from its own files.
        assert_eq!(ids(&store, AsOf::Version(0)).await, [1, 2]);

        // The setting is read from configuration by name.
        let options: StorageOptions =
            serde_json::from_value(serde_json::json!({ "parquet_compression": "snappy" })).unwrap();
        assert_eq!(options.parquet_compression, ParquetCompression::Snappy);
        assert!(serde_json::from_value::<StorageOptions>(serde_json::json!({ "parquet_compression": "lzo" })).is_err());
        // The benches' arguments take the same names.
        for codec in [
            ParquetCompression::Snappy,
            ParquetCompression::Lz4Raw,
            ParquetCompression::Zstd,
            ParquetCompression::Uncompressed,
        ] {
            assert_eq!(codec.name().parse::<ParquetCompression>().unwrap(), codec);
            assert_eq!(serde_json::json!(codec), codec.name());
        }
        assert!("lzo".parse::<ParquetCompression>().is_err());
    }

    #[tokio::test]
    async fn columns_whose_values_barely_repeat_are_written_without_a_dictionary() {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(dir.path()));
        // Ten thousand rows: `id` unique, `name` one of three values.
        let written: Vec<i64> = (0..10_000).collect();
        let names: Vec<&str> = written
            .iter()
            .map(|i| ["north", "south", "west"][*i as usize % 3])
            .collect();
        store
            .append(Layer::Staging, "t", append(batch(&written, &names), "m1"))
            .await
            .unwrap();
        let files = store.files(Layer::Staging, "t").await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let open = parquet_reader;
        let has_dictionary = |reader: &SerializedFileReader<std::fs::File>, name: &str| {
            reader
                .metadata()
                .row_group(0)
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("column {name}"))
                .dictionary_page_offset()
                .is_some()
        };
        let reader = open(&files[0]);
        assert!(!has_dictionary(&reader, "id"), "a unique id is written plain");
        assert!(
            has_dictionary(&reader, "name"),
            "three names are written with a dictionary"
        );
        // The files still name delta-rs as their writer, as with its own default properties.
        let created_by = reader.metadata().file_metadata().created_by().unwrap_or_default();
        assert!(created_by.starts_with("delta-rs version"), "{created_by}");
        assert_eq!(ids(&store, AsOf::Latest).await, written);

        // Rows written through a merge (an update of every second row) are encoded the same way.
        let changed: Vec<i64> = (0..10_000).step_by(2).collect();
        let renamed = vec!["east"; changed.len()];
        store
            .upsert(Layer::Staging, "t", append(batch(&changed, &renamed), "m2"), &["id"])
            .await
            .unwrap();
        let first_file = files[0].clone();
        let files = store.files(Layer::Staging, "t").await.unwrap();
        assert!(!files.contains(&first_file), "the merge rewrote the file: {files:?}");
        for file in files {
            let reader = open(&file);
            assert!(!has_dictionary(&reader, "id"), "{file}: a unique id is written plain");
        }
        assert_eq!(ids(&store, AsOf::Latest).await, written);
    }
}
