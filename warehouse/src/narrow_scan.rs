//! A scan of our Parquet files that hands some columns over narrower than the table's types, for
//! a plan above it that takes them so.
//!
//! The decimals of up to 18 digits in our tables (`quantity`, the amounts) are stored in Parquet
//! as 64-bit integers, and the table's type for them is `Decimal128`: Arrow's Parquet reader
//! widens every value to 128 bits as it decodes a page. In "return rate by category" (three sums
//! over ten million order lines) that widening was 11% of the query's CPU (perf), and the sums
//! then read twice the bytes. Asked for a `Decimal64` instead, the reader hands the integers
//! over as they are. The partial aggregation adds them into 128-bit sums itself (see
//! `partial_aggregate::fold_sums`), so it asks for that for the columns it only sums.
//!
//! The reader takes the narrower type through each file's schema (`PartitionedFile::arrow_schema`),
//! which must describe that file's own columns: it comes from the file's footer, read by an
//! earlier query into the session's metadata cache (see [`FileFooter`]). A file whose footer is
//! not there yet, or does not store the column as 64-bit integers, keeps the scan as it was: the
//! first query over a new table version reads the footers, the following ones narrow.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::ExecutionPlan;

use crate::delta_scan::FileFooter;

/// `scan` reading the output columns `columns` (decimals of up to 18 digits, as the scan gives
/// them now) as `Decimal64` of the same precision and scale, or `None` when it cannot: not a
/// Parquet scan of our tables, a column that is not a plain file column, one its pushed-down
/// predicate reads, or a file whose footer is unknown or stores the column otherwise.
pub(crate) fn decimals_as_int64(scan: &Arc<dyn ExecutionPlan>, columns: &[usize]) -> Option<Arc<dyn ExecutionPlan>> {
    if columns.is_empty() {
        return None;
    }
    let config = scan
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let source = config.file_source.downcast_ref::<ParquetSource>()?;
    let table_schema = source.table_schema();
    let file_schema = table_schema.file_schema();
    let full_schema = table_schema.table_schema();
    // The scan's output columns, as indices into the table's columns (file columns first).
    let projection = source.projection()?;
    let mut projected = Vec::with_capacity(projection.iter().count());
    for expr in projection.iter() {
        projected.push(expr.expr.downcast_ref::<Column>()?.index());
    }
    let output = scan.schema();
    let mut narrowed: Vec<Option<DataType>> = vec![None; file_schema.fields().len()];
    for &column in columns {
        let table_column = *projected.get(column)?;
        let field = file_schema.fields().get(table_column)?;
        let DataType::Decimal128(precision, scale) = *field.data_type() else {
            return None;
        };
        if precision > 18 || output.field(column).name() != field.name() {
            return None;
        }
        narrowed[table_column] = Some(DataType::Decimal64(precision, scale));
    }
    let predicate = source.filter();
    if let Some(predicate) = &predicate
        && collect_columns(predicate)
            .iter()
            .any(|c| narrowed.get(c.index()).is_some_and(Option::is_some))
    {
        return None;
    }
    let names: Vec<&String> = narrowed
        .iter()
        .zip(file_schema.fields())
        .filter(|(narrow, _)| narrow.is_some())
        .map(|(_, field)| field.name())
        .collect();
    let mut file_groups = Vec::with_capacity(config.file_groups.len());
    for group in &config.file_groups {
        let mut files = Vec::with_capacity(group.len());
        for file in group.iter() {
            let footer = file.extensions.get_arc::<FileFooter>()?;
            if !names.iter().all(|name| footer.int64_decimals.contains(name)) {
                return None;
            }
            let fields: Vec<FieldRef> = footer
                .arrow_schema
                .fields()
                .iter()
                .map(|field| match names.contains(&field.name()) {
                    true => narrow_field(field, full_schema.field_with_name(field.name()).ok()),
                    false => Some(field.clone()),
                })
                .collect::<Option<_>>()?;
            let schema = Schema::new_with_metadata(fields, footer.arrow_schema.metadata().clone());
            files.push(file.clone().with_arrow_schema(Arc::new(schema)));
        }
        let mut narrowed_group = FileGroup::new(files);
        if let Some(statistics) = group.file_statistics(None) {
            narrowed_group = narrowed_group.with_statistics(Arc::new(statistics.clone()));
        }
        file_groups.push(narrowed_group);
    }
    let fields: Vec<FieldRef> = file_schema
        .fields()
        .iter()
        .zip(&narrowed)
        .map(|(field, narrow)| match narrow {
            Some(data_type) => Arc::new(field.as_ref().clone().with_data_type(data_type.clone())),
            None => field.clone(),
        })
        .collect();
    let narrowed_table = TableSchema::builder(Arc::new(Schema::new_with_metadata(
        fields,
        file_schema.metadata().clone(),
    )))
    .with_table_partition_cols(table_schema.table_partition_cols().clone())
    .build();
    let mut narrowed_source =
        ParquetSource::new(narrowed_table).with_table_parquet_options(source.table_parquet_options().clone());
    if let Some(factory) = source.parquet_file_reader_factory() {
        narrowed_source = narrowed_source.with_parquet_file_reader_factory(factory.clone());
    }
    if let Some(predicate) = predicate {
        narrowed_source = narrowed_source.with_predicate(predicate);
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(narrowed_source))
        .with_file_groups(file_groups)
        .with_projection_indices(Some(projected))
        .ok()?
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// `field` of a file, a `Decimal128` of the same precision and scale as the table's `table_field`,
/// as a `Decimal64` of them. (The reader hands the stored integers over as they are, so a file
/// whose scale differed would be read wrong: it keeps the scan as it was.)
fn narrow_field(field: &FieldRef, table_field: Option<&Field>) -> Option<FieldRef> {
    let table_type = table_field?.data_type();
    let DataType::Decimal128(precision, scale) = *table_type else {
        return None;
    };
    if field.data_type() != table_type {
        return None;
    }
    Some(Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(DataType::Decimal64(precision, scale)),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use crate::layout::{DataDir, Layer};
    use crate::partial_aggregate::PartialAggregation;
    use crate::planner_options::PlannerOptions;
    use crate::store::{Append, AsOf, Store};

    /// Order lines `rows`: a unique order id, five categories, every seventh line cancelled, and
    /// decimals of 18 digits stored as 64-bit integers; with a note (a column the second commit
    /// adds) and a missing quantity in every hundredth line when `noted`.
    fn lines(rows: std::ops::Range<i64>, noted: bool) -> RecordBatch {
        let text =
            |f: &dyn Fn(i64) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.clone().map(f))) };
        let decimal = |f: &dyn Fn(i64) -> Option<i128>, scale: i8| -> ArrayRef {
            let values: Decimal128Array = rows.clone().map(f).collect();
            Arc::new(values.with_precision_and_scale(18, scale).unwrap())
        };
        let mut fields = vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("quantity", DataType::Decimal128(18, 3), true),
            Field::new("amount", DataType::Decimal128(18, 2), false),
        ];
        let mut columns = vec![
            text(&|i| format!("order {i:06}")),
            text(&|i| format!("category {}", i % 5)),
            text(&|i| if i % 7 == 3 { "cancelled" } else { "open" }.to_string()),
            decimal(
                &|i| (!noted || i % 100 != 42).then_some(i128::from((i * 37) % 10_000 - 2_000)),
                3,
            ),
            // Past 2^63 in the sum of a category, not in any one value.
            decimal(&|i| Some(i128::from(99_999_999_999_999_999 - i)), 2),
        ];
        if noted {
            fields.push(Field::new("note", DataType::Utf8, true));
            columns.push(text(&|i| format!("note {i}")));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn session(narrow_decimals: bool) -> SessionContext {
        let options = PlannerOptions {
            narrow_decimals,
            ..PlannerOptions::default()
        };
        let config = options.install(SessionConfig::new().with_target_partitions(2).with_batch_size(1_000));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(PartialAggregation))
            .build();
        SessionContext::new_with_state(state)
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// Sums over a table of two commits, the second adding a column (so its files have other
    /// columns than the first's): once a query has read the footers, the decimals only summed are
    /// read as `Decimal64`, and every answer is the one the table's types give, whether the rows
    /// are folded per group, summed row by row (nulls), or handed over to DataFusion (a group per
    /// order).
    #[tokio::test]
    async fn decimals_only_summed_are_read_narrow_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(dir.path()));
        for (marker, batch) in [
            ("first", lines(0..12_000, false)),
            ("second", lines(12_000..15_000, true)),
        ] {
            let append = Append {
                batches: vec![batch],
                partition_by: &[],
                marker,
                metadata: serde_json::Map::new(),
            };
            store.append(Layer::Core, "order_line", append).await.unwrap();
        }
        let table = store.open(Layer::Core, "order_line", AsOf::Latest).await.unwrap();
        let provider = Store::provider(&table).await.unwrap();
        let (narrow, wide) = (session(true), session(false));
        for ctx in [&narrow, &wide] {
            ctx.register_table("order_line", provider.clone()).unwrap();
        }

        let by_category = "SELECT category, SUM(quantity) AS quantity, SUM(amount) AS amount FROM order_line \
                           WHERE status <> 'cancelled' GROUP BY category ORDER BY category";
        let explain = |sql: &str| format!("EXPLAIN {sql}");
        // The first query reads the footers: nothing is known to be narrow yet.
        let first = answer(&narrow, &explain(by_category)).await;
        assert!(!first.contains("narrow="), "{first}");
        let before = answer(&narrow, by_category).await;
        let plan = answer(&narrow, &explain(by_category)).await;
        assert!(
            plan.contains("narrow=[quantity as Decimal64(18, 3), amount as Decimal64(18, 2)]"),
            "{plan}"
        );
        let off = answer(&wide, &explain(by_category)).await;
        assert!(!off.contains("narrow="), "{off}");

        // The total quantity of the passing lines, worked out here.
        let expected: i128 = (0..15_000i64)
            .filter(|i| i % 7 != 3 && !(*i >= 12_000 && i % 100 == 42))
            .map(|i| i128::from((i * 37) % 10_000 - 2_000))
            .sum();
        let total = answer(
            &narrow,
            "SELECT SUM(quantity) AS quantity FROM order_line WHERE status <> 'cancelled'",
        )
        .await;
        let expected = format!("{}.{:03}", expected / 1_000, (expected % 1_000).abs());
        assert!(total.contains(&expected), "{total} lacks {expected}");

        for sql in [
            by_category,
            // Many groups: the partial aggregation hands its input over to DataFusion's.
            "SELECT COUNT(*) AS orders, SUM(quantity) AS quantity, MIN(amount) AS amount FROM \
             (SELECT order_id, SUM(quantity) AS quantity, SUM(amount) AS amount FROM order_line GROUP BY order_id)",
            "SELECT order_id, SUM(quantity) AS quantity FROM order_line GROUP BY order_id ORDER BY order_id DESC LIMIT 3",
            // A column read otherwise too (MAX) stays wide; the other is narrowed.
            "SELECT category, SUM(quantity) AS quantity, MAX(quantity) AS most, SUM(amount) AS amount \
             FROM order_line GROUP BY category ORDER BY category",
        ] {
            let ours = answer(&narrow, sql).await;
            assert_eq!(ours, answer(&wide, sql).await, "{sql}");
        }
        assert_eq!(before, answer(&narrow, by_category).await);
        let handed_over = answer(
            &narrow,
            "EXPLAIN ANALYZE SELECT order_id, SUM(quantity) AS quantity FROM order_line GROUP BY order_id",
        )
        .await;
        assert!(
            handed_over.contains("narrow=[quantity as Decimal64(18, 3)]"),
            "{handed_over}"
        );
        assert!(!handed_over.contains("handed_over=0,"), "{handed_over}");
        let mixed = answer(
            &narrow,
            "EXPLAIN SELECT category, SUM(quantity), MAX(quantity), SUM(amount) FROM order_line GROUP BY category",
        )
        .await;
        assert!(mixed.contains("narrow=[amount as Decimal64(18, 2)]"), "{mixed}");
    }
}
