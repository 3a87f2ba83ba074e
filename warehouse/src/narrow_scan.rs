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
//! Text of few values (`status`, `category`) is stored dictionary encoded, and the table's type
//! for it is a string view: the reader gathers each row's view out of the page's dictionary.
//! Asked for a `Dictionary(Int32, Utf8)`, it hands the keys over as the pages hold them, and the
//! partial aggregation groups by key (`Keys::group_dictionary`) and answers `status <>
//! 'cancelled'` once per value of the dictionary (`short_text_filter`).
//!
//! The reader takes the narrower type through each file's schema (`PartitionedFile::arrow_schema`),
//! which must describe that file's own columns: it comes from the file's footer, read by an
//! earlier query into the session's metadata cache (see [`FileFooter`]). A column that some
//! file's footer does not show stored so (or whose footer is not there yet) is read as it was:
//! the first query over a new table version reads the footers, the following ones narrow.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, conjunction, split_conjunction};
use datafusion::physical_plan::ExecutionPlan;

use crate::delta_scan::FileFooter;

/// The type a text column is read as by [`narrowed`]: the keys into each page's dictionary, and
/// the dictionary's values.
pub(crate) fn dictionary_text() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `scan` reading some of its output columns narrower than the table's types, for a plan above
/// that takes them so, or `None` when it reads none so: not a Parquet scan of our tables, or no
/// column that can be.
///
/// - Of `decimals` (decimals of up to 18 digits, as the scan gives them now), those every file
///   stores as 64-bit integers, read as `Decimal64` of the same precision and scale; not one the
///   scan's pushed-down predicate reads.
/// - Of `texts`, those every file stores with every page dictionary encoded, read as
///   [`dictionary_text`]: the keys as the pages hold them, where the reader would otherwise gather
///   each row's value out of the dictionary into a string view (10-16% of the CPU of "top 20
///   customers" and "return rate by category", perf, for `status` and `category`). The parts of
///   the scan's predicate that read them are dropped: they only pruned row groups and pages by
///   their statistics (filters are never evaluated in the scan, see `Store::provider`), and a
///   comparison of keys with a text would not be one anyway. The plan above applies the filter.
///
/// A column that is not a plain file column of the scan, or whose footer is not known for every
/// file, is read as it was.
pub(crate) fn narrowed(
    scan: &Arc<dyn ExecutionPlan>,
    decimals: &[usize],
    texts: &[usize],
) -> Option<Arc<dyn ExecutionPlan>> {
    if decimals.is_empty() && texts.is_empty() {
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
    let predicate = source.filter();
    let in_predicate: Vec<usize> = predicate.iter().flat_map(collect_columns).map(|c| c.index()).collect();
    // Every file's footer, or none narrowed.
    let mut footers = Vec::new();
    for group in &config.file_groups {
        for file in group.iter() {
            footers.push(file.extensions.get_arc::<FileFooter>()?);
        }
    }
    let mut narrowed: Vec<Option<DataType>> = vec![None; file_schema.fields().len()];
    let wanted = decimals
        .iter()
        .map(|&c| (c, true))
        .chain(texts.iter().map(|&c| (c, false)));
    for (column, decimal) in wanted {
        let Some(&table_column) = projected.get(column) else {
            continue;
        };
        let Some(field) = file_schema.fields().get(table_column) else {
            continue;
        };
        if output.field(column).name() != field.name() {
            continue;
        }
        let name = field.name();
        narrowed[table_column] = match (decimal, field.data_type()) {
            (true, &DataType::Decimal128(precision, scale))
                if precision <= 18
                    && !in_predicate.contains(&table_column)
                    && footers.iter().all(|f| f.int64_decimals.contains(name)) =>
            {
                Some(DataType::Decimal64(precision, scale))
            }
            (false, DataType::Utf8View | DataType::Utf8)
                if footers.iter().all(|f| f.dictionary_texts.contains(name)) =>
            {
                Some(dictionary_text())
            }
            _ => continue,
        };
    }
    if narrowed.iter().all(Option::is_none) {
        return None;
    }
    let mut file_groups = Vec::with_capacity(config.file_groups.len());
    for group in &config.file_groups {
        let mut files = Vec::with_capacity(group.len());
        for file in group.iter() {
            let footer = file.extensions.get_arc::<FileFooter>()?;
            let fields: Vec<FieldRef> = footer
                .arrow_schema
                .fields()
                .iter()
                .map(|field| {
                    let table_column = file_schema.index_of(field.name()).ok();
                    match table_column.and_then(|c| narrowed[c].as_ref()) {
                        Some(DataType::Decimal64(..)) => {
                            narrow_field(field, full_schema.field_with_name(field.name()).ok())
                        }
                        Some(text) => Some(Arc::new(field.as_ref().clone().with_data_type(text.clone()))),
                        None => Some(field.clone()),
                    }
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
    let reads_text = |part: &Arc<dyn PhysicalExpr>| {
        collect_columns(part)
            .iter()
            .any(|c| matches!(narrowed.get(c.index()), Some(Some(DataType::Dictionary(..)))))
    };
    let kept: Vec<Arc<dyn PhysicalExpr>> = predicate
        .iter()
        .flat_map(split_conjunction)
        .filter(|part| !reads_text(part))
        .cloned()
        .collect();
    if !kept.is_empty() {
        narrowed_source = narrowed_source.with_predicate(conjunction(kept));
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
            Field::new("category", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("customer", DataType::Utf8, false),
            Field::new("quantity", DataType::Decimal128(18, 3), true),
            Field::new("amount", DataType::Decimal128(18, 2), false),
        ];
        let mut columns = vec![
            text(&|i| format!("order {i:06}")),
            {
                // Short and long text (views of more than 12 bytes hold a prefix only), and nulls
                // in the second commit.
                let category = |i: i64| match i % 5 {
                    _ if noted && i % 97 == 5 => None,
                    4 => Some("category four, the long one".to_string()),
                    n => Some(format!("category {n}")),
                };
                Arc::new(StringArray::from_iter(rows.clone().map(category)))
            },
            text(&|i| if i % 7 == 3 { "cancelled" } else { "open" }.to_string()),
            // Values repeat often enough to be written with a dictionary, but are too many for a
            // partial aggregation by words: it hands over.
            text(&|i| format!("customer {}", i % 1_000)),
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

    fn session(narrow_decimals: bool, dictionary_text: bool) -> SessionContext {
        let options = PlannerOptions {
            narrow_decimals,
            dictionary_text,
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
        let (narrow, wide) = (session(true, false), session(false, false));
        let keys = session(true, true);
        for ctx in [&narrow, &wide, &keys] {
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
            // Groups whose only quantity is null sum to null; the others do not.
            "SELECT order_id, SUM(quantity) AS quantity, SUM(amount) AS amount FROM order_line \
             WHERE order_id IN ('order 012042', 'order 012142', 'order 000001') GROUP BY order_id ORDER BY order_id",
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

        // Text as dictionary keys: the lone group column and the filter's status, beside the
        // decimals; the footers are known by now.
        let plan = answer(&keys, &explain(by_category)).await;
        for narrowed in [
            "category as Dictionary(Int32, Utf8)",
            "status as Dictionary(Int32, Utf8)",
            "quantity as Decimal64(18, 3)",
        ] {
            assert!(plan.contains(narrowed), "{plan} lacks {narrowed}");
        }
        let unique = "SELECT order_id, SUM(quantity) AS quantity FROM order_line GROUP BY order_id";
        let plan = answer(&keys, &explain(unique)).await;
        assert!(
            !plan.contains("order_id as Dictionary"),
            "written without a dictionary: {plan}"
        );
        let like = "SELECT category, SUM(amount) AS amount FROM order_line WHERE status LIKE 'c%' \
                    GROUP BY category ORDER BY category";
        let plan = answer(&keys, &explain(like)).await;
        assert!(plan.contains("category as Dictionary(Int32, Utf8)"), "{plan}");
        assert!(!plan.contains("status as Dictionary"), "LIKE reads the text: {plan}");
        let by_customer = "SELECT customer, SUM(amount) AS amount, COUNT(*) AS lines FROM order_line                            WHERE status <> 'cancelled' GROUP BY customer ORDER BY customer";
        let handed_over = answer(&keys, &format!("EXPLAIN ANALYZE {by_customer}")).await;
        assert!(
            handed_over.contains("customer as Dictionary(Int32, Utf8)"),
            "{handed_over}"
        );
        assert!(!handed_over.contains("handed_over=0,"), "{handed_over}");
        for sql in [
            by_category,
            like,
            by_customer,
            "SELECT status, COUNT(*) AS lines, SUM(amount) AS amount FROM order_line GROUP BY status ORDER BY status",
            "SELECT category, COUNT(*) AS lines, SUM(quantity) AS quantity FROM order_line              WHERE status = 'open' AND quantity > 0 GROUP BY category ORDER BY category",
            "SELECT category, COUNT(category) AS named, SUM(quantity) AS quantity FROM order_line              WHERE category <> 'category 1' GROUP BY category ORDER BY category",
        ] {
            assert_eq!(answer(&keys, sql).await, answer(&wide, sql).await, "{sql}");
        }
    }
}
