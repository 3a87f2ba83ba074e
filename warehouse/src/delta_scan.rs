//! Reading a Delta table's Parquet files with DataFusion's own Parquet scan.
//!
//! delta-rs's table provider plans every scan through the Delta kernel: it replays the snapshot's
//! file list with kernel expressions, adds a file-id column to every batch read and splits each
//! batch by it again above the Parquet reader, so that deletion vectors and column mapping can be
//! applied. Our tables use neither, and those steps cost a tenth of the CPU of a query that sums
//! ten million order lines, and a tenth of a millisecond query's planning (perf, twelfth session).
//!
//! So a table whose protocol asks a reader for nothing beyond plain Parquet is read here: the file
//! list, partition values and row counts come from the snapshot delta-rs has already loaded (one
//! walk when the version is opened, not one per query), and the scan is DataFusion's `ParquetSource`
//! over those files, with the same schema delta-rs reports, so a query's answer does not depend on
//! which reader planned it. Anything else (deletion vectors, column mapping, files outside the
//! table's directory) goes to delta-rs as before.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::basic::{Encoding, PageType, Type as PhysicalType};
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::{DeltaTable, ObjectMeta, ObjectStore};

/// Reader features that change nothing about how a Parquet file's rows are read.
const PLAIN_READER_FEATURES: &[&str] = &["timestampNtz", "vacuumProtocolCheck", "v2Checkpoint"];

/// One version of a Delta table, read as its Parquet files.
#[derive(Debug)]
pub(crate) struct DeltaParquetTable {
    /// The table's columns as delta-rs reports them (partition columns where Delta puts them).
    schema: SchemaRef,
    /// What the Parquet scan produces: the files' columns, then the partition columns.
    scan_schema: TableSchema,
    /// For each column of `schema`, its place in the scan's columns.
    scan_index: Vec<usize>,
    /// The live files, with their partition values in the order of the scan's partition columns.
    files: Vec<DataFile>,
    /// Where the scan finds the files: the table's directory, registered under a name of its own.
    store_url: ObjectStoreUrl,
    store: Arc<dyn ObjectStore>,
}

#[derive(Debug, Clone)]
struct DataFile {
    file: PartitionedFile,
    /// From the Add action's statistics, when the writer kept them.
    rows: Option<usize>,
    /// What the file's footer says, once a query has read it (see [`FileFooter`]).
    footer: Arc<OnceLock<Arc<FileFooter>>>,
}

/// What a data file's footer says about reading its columns, attached to the file in a scan (its
/// `extensions`) once the footer is in the session's metadata cache, so that a later plan can
/// read the file with narrower types than the table's (see `narrow_scan`).
#[derive(Debug)]
pub(crate) struct FileFooter {
    /// The file's columns as the Parquet reader makes them by default (the embedded Arrow schema
    /// applied), to hand the reader back with some types changed.
    pub(crate) arrow_schema: SchemaRef,
    /// The top-level decimal columns of up to 18 digits stored as 64-bit integers: the reader
    /// widens each value to 128 bits to make a `Decimal128`, or can hand them over as they are
    /// in a `Decimal64`.
    pub(crate) int64_decimals: Vec<String>,
    /// The top-level text columns whose every data page, in every row group, is dictionary
    /// encoded: the reader can hand them over as dictionary keys instead of gathering each row's
    /// value out of the dictionary (the only kind of text `narrow_scan` reads as a dictionary:
    /// a chunk that fell back to plain pages would make the reader build a dictionary by hashing
    /// every value).
    pub(crate) dictionary_texts: Vec<String>,
}

impl FileFooter {
    fn of(metadata: &ParquetMetaData) -> Option<Self> {
        let file = metadata.file_metadata();
        let arrow_schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()?;
        let int64_decimals = arrow_schema
            .fields()
            .iter()
            .filter(|field| matches!(field.data_type(), DataType::Decimal128(p, _) if *p <= 18))
            .filter(|field| {
                file.schema_descr().columns().iter().any(|leaf| {
                    leaf.path().parts() == [field.name().as_str()] && leaf.physical_type() == PhysicalType::INT64
                })
            })
            .map(|field| field.name().clone())
            .collect();
        let dictionary_texts = arrow_schema
            .fields()
            .iter()
            .filter(|field| {
                matches!(
                    field.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                )
            })
            .filter(|field| {
                let Some(leaf) = file
                    .schema_descr()
                    .columns()
                    .iter()
                    .position(|leaf| leaf.path().parts() == [field.name().as_str()])
                else {
                    return false;
                };
                metadata
                    .row_groups()
                    .iter()
                    .all(|row_group| all_pages_dictionary_encoded(row_group.column(leaf)))
            })
            .map(|field| field.name().clone())
            .collect();
        Some(FileFooter {
            arrow_schema: Arc::new(arrow_schema),
            int64_decimals,
            dictionary_texts,
        })
    }
}

/// Whether every data page of a column chunk is dictionary encoded, as its footer's page
/// encoding statistics tell (kept whole or as a mask of encodings, as the reader was told).
fn all_pages_dictionary_encoded(chunk: &ColumnChunkMetaData) -> bool {
    let dictionary = |encoding: Encoding| matches!(encoding, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY);
    if chunk.dictionary_page_offset().is_none() {
        return false;
    }
    if let Some(mask) = chunk.page_encoding_stats_mask() {
        return mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY);
    }
    chunk.page_encoding_stats().is_some_and(|pages| {
        pages
            .iter()
            .filter(|page| matches!(page.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
            .all(|page| dictionary(page.encoding))
    })
}

/// The footer of `file` in `cache`, when a reader has put it there and it is still the same file.
fn cached_footer(cache: &FileMetadataCache, file: &PartitionedFile) -> Option<FileFooter> {
    let entry = cache.get(&file.object_meta.location)?;
    if entry.meta.size != file.object_meta.size {
        return None;
    }
    let metadata = entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>()?;
    FileFooter::of(metadata.parquet_metadata())
}

impl DeltaParquetTable {
    /// The table at the version `table` has loaded, with the columns `schema` (delta-rs's own
    /// provider's, so both readers give the same types); `None` when the table needs more than
    /// plain Parquet to be read right.
    pub(crate) fn try_new(table: &DeltaTable, schema: SchemaRef) -> Option<Self> {
        let state = table.snapshot().ok()?;
        if !reads_as_plain_parquet(state.protocol()) {
            return None;
        }
        let partition_names = state.metadata().partition_columns();
        let is_partition = |field: &FieldRef| partition_names.iter().any(|p| p == field.name());
        let (partition_fields, file_fields): (Vec<FieldRef>, Vec<FieldRef>) =
            schema.fields().iter().cloned().partition(is_partition);
        if partition_fields.len() != partition_names.len() {
            return None;
        }
        let (mut next_file, mut next_partition) = (0, file_fields.len());
        let scan_index = schema
            .fields()
            .iter()
            .map(|field| {
                let next = if is_partition(field) {
                    &mut next_partition
                } else {
                    &mut next_file
                };
                *next += 1;
                *next - 1
            })
            .collect();

        let mut files = Vec::new();
        for view in state.log_data().iter() {
            if view.deletion_vector_descriptor().is_some() || view.path().contains("://") {
                return None;
            }
            let raw_values = view.partition_values_map();
            let mut partition_values = Vec::with_capacity(partition_fields.len());
            for field in &partition_fields {
                let value = match raw_values.get(field.name()) {
                    Some(Some(text)) => ScalarValue::try_from_string(text.clone(), field.data_type()).ok()?,
                    _ => ScalarValue::try_from(field.data_type()).ok()?,
                };
                partition_values.push(value);
            }
            let meta = ObjectMeta {
                location: view.object_store_path(),
                last_modified: view.modification_datetime().ok()?,
                size: u64::try_from(view.size()).ok()?,
                e_tag: None,
                version: None,
            };
            files.push(DataFile {
                file: PartitionedFile::new_from_meta(meta).with_partition_values(partition_values),
                rows: view.num_records(),
                footer: Arc::default(),
            });
        }

        let log_store = table.log_store();
        Some(Self {
            scan_schema: TableSchema::builder(Arc::new(Schema::new(file_fields)))
                .with_table_partition_cols(partition_fields)
                .build(),
            schema,
            scan_index,
            files,
            store_url: log_store.object_store_url(),
            store: log_store.object_store(None),
        })
    }

    /// Whether `filter` names partition columns only, so that it picks whole files exactly: the
    /// one test behind both the pushdown the planner is promised and the files the scan keeps.
    fn picks_files(&self, filter: &Expr) -> bool {
        let names: Vec<&str> = self
            .scan_schema
            .table_partition_cols()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        !names.is_empty() && expr_applicable_for_cols(&names, filter) && !filter.is_volatile()
    }

    /// The files whose partition values pass every filter that names partition columns only.
    fn files_passing(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<DataFile>> {
        let on_partitions: Vec<Expr> = filters.iter().filter(|f| self.picks_files(f)).cloned().collect();
        let Some(predicate) = conjunction(on_partitions) else {
            return Ok(self.files.clone());
        };
        if self.files.is_empty() {
            return Ok(Vec::new());
        }
        // One row per file, one column per partition column: the filter runs once over all files.
        let partition_schema = Arc::new(Schema::new(self.scan_schema.table_partition_cols().clone()));
        let columns = (0..partition_schema.fields().len())
            .map(|c| ScalarValue::iter_to_array(self.files.iter().map(|f| f.file.partition_values[c].clone())))
            .collect::<Result<Vec<_>>>()?;
        let values = RecordBatch::try_new(partition_schema.clone(), columns)?;
        let df_schema = DFSchema::try_from(partition_schema)?;
        let keep = state
            .create_physical_expr(predicate, &df_schema)?
            .evaluate(&values)?
            .into_array(values.num_rows())?;
        let keep = keep
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("a filter is boolean");
        Ok(self
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| keep.is_valid(*i) && keep.value(*i))
            .map(|(_, f)| f.clone())
            .collect())
    }

    /// Row count and bytes of `files`, with unknown column statistics for `schema`'s columns.
    fn statistics_of(&self, files: &[DataFile], schema: &Schema) -> Statistics {
        let mut statistics = Statistics::new_unknown(schema);
        let rows: Option<usize> = files.iter().map(|f| f.rows).sum();
        if let Some(rows) = rows {
            statistics.num_rows = Precision::Exact(rows);
        }
        // The files' compressed size, as delta-rs reports it: the joins' build sides were tuned
        // against it (`Store::join_small_tables_whole`).
        let bytes: u64 = files.iter().map(|f| f.file.object_meta.size).sum();
        statistics.total_byte_size = Precision::Inexact(bytes as usize);
        statistics
    }
}

/// Whether a reader of `protocol` needs nothing beyond plain Parquet: reader version 1, or reader
/// features that do not change how rows are read. (Version 2 is column mapping, which renames the
/// columns inside the files; version 3 lists its features.) The kernel keeps the protocol's fields
/// to itself, so they are read from its serialised form, as the log stores it.
fn reads_as_plain_parquet(protocol: &impl serde::Serialize) -> bool {
    let Ok(protocol) = serde_json::to_value(protocol) else {
        return false;
    };
    let version = protocol.get("minReaderVersion").and_then(|v| v.as_i64());
    let features = protocol.get("readerFeatures").and_then(|f| f.as_array());
    match (version, features) {
        (Some(1), None) => true,
        (Some(3), Some(features)) => features
            .iter()
            .all(|f| f.as_str().is_some_and(|f| PLAIN_READER_FEATURES.contains(&f))),
        _ => false,
    }
}

/// Deal files to `partitions` groups of about equal bytes, largest first.
fn file_groups(mut files: Vec<DataFile>, partitions: usize) -> Vec<FileGroup> {
    files.sort_by_key(|f| std::cmp::Reverse(f.file.object_meta.size));
    let count = partitions.clamp(1, files.len().max(1));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); count];
    for data in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        smallest.0 += data.file.object_meta.size;
        smallest.1.push(data.file);
    }
    groups
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

#[async_trait]
impl TableProvider for DeltaParquetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics_of(&self.files, &self.schema))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                // Filters on partition columns alone pick whole files, exactly; the rest prune
                // row groups by their statistics and are applied again above the scan.
                if self.picks_files(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url).unwrap_or_else(|_| {
            runtime.register_object_store(self.store_url.as_ref(), self.store.clone());
            self.store.clone()
        });
        let files = self.files_passing(state, filters)?;
        let columns: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(Arc::new(self.schema.project(&columns)?))));
        }
        let projection = columns.iter().map(|&c| self.scan_index[c]).collect();

        // The session's Parquet options, but filters are never evaluated row by row while pages
        // are decoded (see `Store::provider`): they prune files, row groups and pages, and run once
        // above the scan.
        let mut options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..TableParquetOptions::default()
        };
        options.global.pushdown_filters = false;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let files = files
            .into_iter()
            .map(|mut data| {
                if data.footer.get().is_none()
                    && let Some(footer) = cached_footer(cache.as_ref(), &data.file)
                {
                    let _ = data.footer.set(Arc::new(footer));
                }
                if let Some(footer) = data.footer.get() {
                    data.file.extensions.insert_arc(footer.clone());
                }
                data
            })
            .collect::<Vec<_>>();
        let reader = CachedParquetFileReaderFactory::new(store, cache);
        let source = ParquetSource::new(self.scan_schema.clone())
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(Arc::new(reader));
        let statistics = self.statistics_of(&files, self.scan_schema.table_schema());
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(file_groups(files, state.config_options().execution.target_partitions))
            .with_statistics(statistics)
            .with_projection_indices(Some(projection))?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{DataDir, Layer};
    use crate::store::{Append, AsOf, Store};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    fn rows(months: &[&str], ids: &[i64], note: Option<&[&str]>) -> RecordBatch {
        let mut fields = vec![
            Field::new("id", DataType::Int64, false),
            Field::new("_month", DataType::Utf8, true),
        ];
        let mut columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(months.to_vec())),
        ];
        if let Some(note) = note {
            fields.push(Field::new("note", DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(note.to_vec())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    async fn answer(provider: Arc<dyn TableProvider>, sql: &str) -> String {
        let ctx = SessionContext::new();
        ctx.register_table("t", provider).unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// A table partitioned by month, written in two commits, the second adding a column: our scan
    /// and delta-rs's give the same answers, and a filter on the month reads only its files.
    #[tokio::test]
    async fn plain_tables_read_as_parquet_answer_as_delta_rs_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(dir.path()));
        let write = |batch, marker| Append {
            batches: vec![batch],
            partition_by: &["_month"],
            marker,
            metadata: serde_json::Map::new(),
        };
        let first = rows(&["2024-01", "2024-02", "2024-01"], &[1, 2, 3], None);
        store.append(Layer::Staging, "t", write(first, "m1")).await.unwrap();
        let second = rows(&["2024-02", "2024-03"], &[4, 5], Some(&["late", "new"]));
        store.append(Layer::Staging, "t", write(second, "m2")).await.unwrap();

        let table = store.open(Layer::Staging, "t", AsOf::Latest).await.unwrap();
        let ours = Store::provider(&table).await.unwrap();
        assert!(ours.is::<DeltaParquetTable>(), "a plain table is read as Parquet");
        let session = datafusion::execution::SessionStateBuilder::new().build();
        let delta_rs = table.table_provider().with_session(Arc::new(session)).await.unwrap();
        assert_eq!(ours.schema(), delta_rs.schema());

        for sql in [
            "SELECT * FROM t ORDER BY id",
            "SELECT id, note FROM t WHERE _month = '2024-02' ORDER BY id",
            "SELECT _month, count(*) AS n, max(note) AS note FROM t GROUP BY _month ORDER BY _month",
            "SELECT id FROM t WHERE _month > '2024-01' AND note IS NULL",
            "SELECT count(*) FROM t WHERE _month = '2025-01'",
            "SELECT _month FROM t WHERE id >= 4 ORDER BY 1",
        ] {
            assert_eq!(
                answer(ours.clone(), sql).await,
                answer(delta_rs.clone(), sql).await,
                "{sql}"
            );
        }
        let late = answer(
            ours.clone(),
            "SELECT id, note FROM t WHERE _month = '2024-02' ORDER BY id",
        )
        .await;
        assert!(
            late.contains("| 2  |      |") && late.contains("| 4  | late |"),
            "{late}"
        );

        // The month's filter picks its files before the scan: two of the four files are read.
        let plan = answer(ours.clone(), "EXPLAIN SELECT id FROM t WHERE _month = '2024-02'").await;
        assert_eq!(plan.matches(".parquet").count(), 2, "{plan}");
        assert!(plan.contains("_month=2024-02"), "{plan}");
        assert!(!plan.contains("_month=2024-01"), "{plan}");

        // The statistics are the log's: five rows.
        let statistics = ours.statistics().unwrap();
        assert_eq!(statistics.num_rows, Precision::Exact(5));

        // An earlier version is read as it was.
        let first = store.open(Layer::Staging, "t", AsOf::Version(0)).await.unwrap();
        let first = Store::provider(&first).await.unwrap();
        assert_eq!(first.schema().fields().len(), 2);
        let count = answer(first, "SELECT count(*) AS n FROM t").await;
        assert!(count.contains("| 3 |"), "{count}");
    }
}
