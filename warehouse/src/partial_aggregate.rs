//! The first (partial) phase of a grouped aggregation, keyed by one 128-bit word per group column.
//!
//! DataFusion 55 finds each row's group by hashing and comparing the group values themselves:
//! for text read from Parquet (string views) that means hashing every string's bytes and comparing
//! them again on every hit. Grouping ten million order lines by `category` spent about 40% of the
//! query's CPU there. But a column chunk's dictionary page is decoded once, so the views of equal
//! strings in one batch are the same 16 bytes (length, prefix, buffer, offset): a batch needs the
//! bytes of each distinct view once, and every other row is found by its view alone.
//!
//! [`PartialAggregation`] replaces a partial `AggregateExec` by [`PartialAggregateExec`] when its
//! group columns are text views or fixed-width values (at most [`MAX_GROUP_COLUMNS`] for words, one
//! of them text, or else integers and dates alone, see below: by numbers alone words measured slower than
//! DataFusion's hash table of the values themselves, 250 ms against 206 ms of CPU for 80,000
//! customers in ten million order lines) and every
//! aggregate has a groups accumulator (SUM, COUNT, MIN, MAX, AVG, ...) with no ordering. A row is
//! first looked up by its words as the batch holds them (the view itself for text) in a small
//! cache that lives for one batch; only on a miss are the words made ones that hold in every
//! batch (the value's bits for numbers, dates and booleans; an inline view, for text of up to 12
//! bytes; for longer text, its length and an id from a per-column interner) and looked up in the
//! partition's map of groups. The accumulators are DataFusion's own, fed with the group indices,
//! so the partial state it emits is exactly the one the final phase expects; where a batch holds
//! few groups, a plain integer or decimal `SUM` is fed one sum per group instead (see
//! [`fold_sums`]).
//!
//! A `FilterExec` right below is applied by this plan too, when the aggregation's expressions
//! cannot fail on the rows it rejects (see [`FusedFilter`]): where most rows pass, the rejected
//! ones go to a group of their own that is never emitted, so no column is copied ("return rate by
//! category": 70.4 -> 63.7 ms, medians of four runs); where most are rejected, the passing rows
//! are copied out as the filter would. (Handing the accumulators the predicate as their filter
//! instead measured no faster than the copy: 2.46 s against 2.38 s of CPU for five runs.)
//!
//! Like DataFusion's, the partial phase gives back memory by emitting what it holds (the final
//! phase merges partial states, however many there are) when the memory pool refuses more. The
//! words pay while a batch holds few groups. When the first [`PROBE_ROWS`] rows of a partition
//! made more than one group in [`HANDOVER_RATIO`] rows (the orders within a region and channel,
//! behind `COUNT(DISTINCT order_id)`), it emits what it holds and hands the rest of the input to
//! the `AggregateExec` it replaced, which then judges for itself whether to aggregate at all.
//!
//! Unless rows of one key come together: when the probe's rows also made at most one run of
//! adjacent equal keys in [`RUN_RATIO`] rows (an order's lines, one after another in the file),
//! each run becomes a group of its own and every batch is emitted as soon as it is aggregated: no
//! table of keys at all, one comparison with the previous row, and as many partial rows as a table
//! would have left (a key whose rows lie apart gives several, which the final phase merges). On
//! "revenue by region and channel" DataFusion's partial grouping of (region, channel, order_id)
//! took a quarter of the query's CPU.
//!
//! A lone integer or date column (a day, a year, a small surrogate key) is grouped by
//! [`DenseKeys`] instead, a slot per value, for as long as the values lie close enough together; once they do not, the rest
//! goes to DataFusion in the same way. Several such columns are grouped by [`GridKeys`], a slot per
//! combination of the values' numbers in their columns, for as long as those are few enough. A
//! grid also takes over from the words, text and all, when the probe finds many groups but no runs
//! and there are several group columns (the reporting rollups by day, category, region and
//! segment), and it groups from the start a grouping by more columns than a key of words holds.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, AsArray, BooleanArray, Decimal128Array, DictionaryArray, Int64Array,
    PrimitiveArray, RecordBatch, StringArray, StringViewArray, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::{cast, concat, filter_record_batch, max, min, take};
use datafusion::arrow::datatypes::{
    DataType, Decimal64Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    SchemaRef, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::row::{Row, RowConverter, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, HashMap, HashSet, Result, internal_datafusion_err, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, EmptyRecordBatchStream, ExecutionPlan, InputOrderMode,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use crate::planner_options::PlannerOptions;
use crate::short_text_filter::{ConjunctFilter, inline_view, passing_rows};

/// Group columns a key of words holds: the analyst queries group by one to three. A grouping by
/// more (up to [`MAX_GRID_COLUMNS`]) is grouped by a grid (the rollups' day, category, channel,
/// region and segment); more than that go to DataFusion.
pub const MAX_GROUP_COLUMNS: usize = 4;

/// Group columns a [`GridKeys`] takes.
const MAX_GRID_COLUMNS: usize = 8;

/// Rows seen before judging whether the words pay: a batch at DataFusion's default size (a wrong
/// call costs little, DataFusion's grouping then doing the rest). Not DataFusion's probe of
/// 100,000 rows: the final grouping of a join's output (by customer name) often has fewer rows in
/// a partition, all of them groups.
const PROBE_ROWS: usize = 8_192;

/// Groups per row above which the rest of a partition goes to DataFusion's partial aggregation.
/// Measured on ten million order lines: one group in 100,000 rows (categories) costs a third of
/// DataFusion's grouping, one in four ((region, channel, order_id)) a third more.
const HANDOVER_RATIO: f64 = 1.0 / 16.0;

/// Runs of equal keys per row at or below which a partition with many groups aggregates each run
/// of adjacent rows with equal keys instead of handing over (see [`group_runs`]).
const RUN_RATIO: f64 = 1.0 / 2.0;

/// The group of the rows a fused filter rejects (see [`FusedFilter`]), never emitted.
const REJECTED_GROUP: usize = 0;

/// The word of a null text value: no view has length 2^32 - 1 with bits 32-63 set.
const NULL_TEXT: u128 = u128::MAX;

/// The word of any other null value: every value's word has bit 64 set.
const NULL_VALUE: u128 = 0;

/// Replaces partial aggregations it can key by words with [`PartialAggregateExec`].
#[derive(Debug, Default)]
pub struct PartialAggregation;

impl PhysicalOptimizerRule for PartialAggregation {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let options = PlannerOptions::of(config);
        if !options.partial_aggregation && !options.distinct_aggregation {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let mut exec = None;
            if options.distinct_aggregation {
                exec = PartialAggregateExec::try_fuse(aggregate, node.clone())?;
            }
            if exec.is_none() && options.partial_aggregation {
                let narrowing = Narrowing {
                    decimals: options.narrow_decimals,
                    texts: options.dictionary_text,
                };
                exec = PartialAggregateExec::try_new(aggregate, node.clone(), options.filtered_aggregation, narrowing)?;
            }
            match exec {
                Some(exec) => Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "partial_aggregation_by_words"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Which columns the scan below a partial aggregation may read narrower than the table's types
/// (see [`crate::narrow_scan`]).
#[derive(Debug, Clone, Copy, Default)]
struct Narrowing {
    /// Decimals the aggregation only sums, as `Decimal64`.
    decimals: bool,
    /// A lone text group column and text columns the fused filter only compares with short
    /// texts, as dictionary keys.
    texts: bool,
}

/// How a group column's values find their group: by words, or (a lone integer column) by slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Text,
    Value,
    /// The only group column, a small integer or a date: see [`DenseKeys`].
    Dense,
    /// One of several group columns, all integers or dates: see [`GridKeys`].
    Grid,
}

fn key_kind(data_type: &DataType) -> Option<KeyKind> {
    match data_type {
        DataType::Utf8View => Some(KeyKind::Text),
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _) => Some(KeyKind::Value),
        _ => None,
    }
}

/// One group column: its expression over the input, output name, and how its values become words.
#[derive(Debug)]
struct GroupColumn {
    expr: Arc<dyn PhysicalExpr>,
    name: String,
    kind: KeyKind,
}

/// A partial aggregation keyed by words; otherwise the `AggregateExec` it replaces (same
/// expressions, output schema, partitioning and state columns).
#[derive(Debug)]
pub struct PartialAggregateExec {
    /// The replaced plan: its schema and properties are this plan's.
    aggregate: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
    groups: Arc<[GroupColumn]>,
    aggregates: Arc<[Arc<AggregateFunctionExpr>]>,
    filters: Arc<[Option<Arc<dyn PhysicalExpr>>]>,
    /// Set when this plan also stands for the final phase of the aggregation below it: see
    /// [`PartialAggregateExec::try_fuse`].
    distinct: Option<Arc<DistinctKey>>,
    /// Set when this plan also applies the filter below the replaced aggregation (`input` is then
    /// the filter's input): see [`PartialAggregateExec::try_new`].
    filter: Option<Arc<FusedFilter>>,
    /// Set when `input` is the scan below read with the decimals this plan only sums narrowed
    /// (see [`crate::narrow_scan`]): the scan as the replaced plan reads it.
    narrowed_from: Option<Arc<dyn ExecutionPlan>>,
    /// What the scan below may read narrow, to replace the plan again over a new input.
    narrowing: Narrowing,
    metrics: ExecutionPlanMetricsSet,
}

/// A `FilterExec` whose predicate the partial phase applies itself: rejected rows go to a group
/// of their own (group 0) that is never emitted, instead of the passing rows being copied out.
#[derive(Debug)]
struct FusedFilter {
    /// The filter, to rebuild the replaced plan over a new input or to hand the rest over to.
    exec: Arc<dyn ExecutionPlan>,
    predicate: Arc<dyn PhysicalExpr>,
    /// The predicate conjunct by conjunct, when a part of it compares text with a short literal.
    conjuncts: Option<ConjunctFilter>,
    /// The filter's output columns, as indices into its input (all of them when `None`).
    projection: Option<Arc<[usize]>>,
}

impl FusedFilter {
    /// The filter below `aggregate`, when every expression the aggregation evaluates is one that
    /// cannot fail on a row the filter would have rejected (see [`cannot_fail`]).
    fn below(aggregate: &AggregateExec) -> Option<Self> {
        let filter = aggregate.input().downcast_ref::<FilterExec>()?;
        let groups = aggregate.group_expr().expr().iter().map(|(e, _)| e.clone());
        let arguments = aggregate.aggr_expr().iter().flat_map(|a| a.expressions());
        let filters = aggregate.filter_expr().iter().flatten().cloned();
        let schema = aggregate.input_schema();
        if filter.fetch().is_some() || !groups.chain(arguments).chain(filters).all(|e| cannot_fail(&e, &schema)) {
            return None;
        }
        let filter_input = filter.input().schema();
        Some(FusedFilter {
            exec: aggregate.input().clone(),
            predicate: filter.predicate().clone(),
            // Split only a predicate no part of which can fail: DataFusion may evaluate the right
            // side of an `AND` on the rows its left side passes only, where the split evaluates
            // every part on every row.
            conjuncts: cannot_fail(filter.predicate(), &filter_input)
                .then(|| ConjunctFilter::of(filter.predicate(), &filter_input))
                .flatten(),
            projection: filter.projection().clone(),
        })
    }

    /// Which rows of `batch` pass (a null predicate rejects, as in `FilterExec`), and the batch as
    /// the filter would have projected it.
    fn apply(&self, batch: &RecordBatch) -> Result<(BooleanBuffer, RecordBatch)> {
        let passing = match &self.conjuncts {
            Some(conjuncts) => conjuncts.passing(batch)?,
            None => passing_rows(&self.predicate, batch)?,
        };
        let projected = match &self.projection {
            Some(columns) => batch.project(columns)?,
            None => batch.clone(),
        };
        Ok((passing, projected))
    }
}

/// Whether evaluating `expr` on any row of its input gives a value rather than an error: column
/// references, literals, `+ - *` and comparisons of such, casts of numbers to floating point,
/// `date_trunc` and `date_part`. A fused filter evaluates the aggregation's expressions on rejected rows too,
/// which must not fail where the filter guarded them (`SUM(a / b) ... WHERE b <> 0`).
fn cannot_fail(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> bool {
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::ScalarFunctionExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Literal};
    if expr.downcast_ref::<Column>().is_some() || expr.downcast_ref::<Literal>().is_some() {
        return true;
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let safe = matches!(
            binary.op(),
            Operator::Plus
                | Operator::Minus
                | Operator::Multiply
                | Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::And
                | Operator::Or
        );
        return safe && cannot_fail(binary.left(), schema) && cannot_fail(binary.right(), schema);
    }
    if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        // Of a number only: text cast to a number fails on the rows that are not one.
        let of_number = cast.expr().data_type(schema).is_ok_and(|t| t.is_numeric());
        return matches!(cast.cast_type(), DataType::Float64 | DataType::Float32)
            && of_number
            && cannot_fail(cast.expr(), schema);
    }
    if let Some(function) = expr.downcast_ref::<ScalarFunctionExpr>() {
        return matches!(function.name(), "date_trunc" | "date_part")
            && function.args().iter().all(|a| cannot_fail(a, schema));
    }
    false
}

/// The fused final phase of an inner aggregation by (the outer group columns and one more, the
/// distinct key): which input column is the key, and which outer aggregates read one row per key.
#[derive(Debug)]
struct DistinctKey {
    /// The inner aggregation this plan stands for, to rebuild it over a new input.
    inner: Arc<dyn ExecutionPlan>,
    column: usize,
    name: String,
    kind: KeyKind,
    /// Per outer aggregate: whether it reads the inner group columns (so only the first row of
    /// each key) rather than the inner aggregates' values (every row).
    first_rows_only: Arc<[bool]>,
}

impl PartialAggregateExec {
    /// The replacement of `aggregate` (the same plan as `plan`), or `None` when it is not a plain
    /// partial aggregation this plan can key.
    ///
    /// With `fuse_filter`, a `FilterExec` right below is applied by this plan too: a filter
    /// passing most rows (`status <> 'cancelled'`) copied nearly every value of every column it
    /// passed on, a fifth of "return rate by category"'s CPU, where grouping the rejected rows
    /// into a group of their own costs a branch per row.
    ///
    /// With `narrowing`, the scan right below (or below the fused filter) reads the decimal
    /// columns the aggregation only sums as the 64-bit integers Parquet stores them as, and text
    /// it groups by alone or filters on by short texts as dictionary keys, where it can (see
    /// [`crate::narrow_scan`]).
    fn try_new(
        aggregate: &AggregateExec,
        plan: Arc<dyn ExecutionPlan>,
        fuse_filter: bool,
        narrowing: Narrowing,
    ) -> Result<Option<Self>> {
        let group_by = aggregate.group_expr();
        if !plain(aggregate, AggregateMode::Partial, MAX_GRID_COLUMNS) {
            return Ok(None);
        }
        let input_schema = aggregate.input_schema();
        let mut groups = Vec::with_capacity(group_by.expr().len());
        for (expr, name) in group_by.expr() {
            let Some(kind) = key_kind(&expr.data_type(&input_schema)?) else {
                return Ok(None);
            };
            groups.push(GroupColumn {
                expr: expr.clone(),
                name: name.clone(),
                kind,
            });
        }
        if !groups.iter().any(|g| g.kind == KeyKind::Text) {
            // Numbers alone: a lone integer column by slot, several integer columns by a grid of
            // slots, others by DataFusion's hash table of the values (faster than words: 206 ms
            // against 250 ms of CPU by `customer_key`).
            let mut integers = true;
            for group in &groups {
                integers &= dense_values(&group.expr.data_type(&input_schema)?);
            }
            match &mut groups[..] {
                [only] if integers => only.kind = KeyKind::Dense,
                several if integers => several.iter_mut().for_each(|g| g.kind = KeyKind::Grid),
                _ => return Ok(None),
            }
        }
        let filter = fuse_filter.then(|| FusedFilter::below(aggregate)).flatten();
        let mut input = match &filter {
            Some(filter) => filter.exec.children()[0].clone(),
            None => aggregate.input().clone(),
        };
        let mut narrowed_from = None;
        let decimals = match narrowing.decimals {
            true => summed_decimals(aggregate, filter.as_ref()),
            false => Vec::new(),
        };
        let texts = match narrowing.texts {
            true => dictionary_texts(aggregate, filter.as_ref()),
            false => Vec::new(),
        };
        if let Some(scan) = crate::narrow_scan::narrowed(&input, &decimals, &texts) {
            narrowed_from = Some(std::mem::replace(&mut input, scan));
        }
        Ok(Some(Self {
            input,
            groups: groups.into(),
            aggregates: aggregate.aggr_expr().to_vec().into(),
            filters: aggregate.filter_expr().to_vec().into(),
            aggregate: plan,
            distinct: None,
            filter: filter.map(Arc::new),
            narrowed_from,
            narrowing,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// The replacement of a partial aggregation (`outer`, the same plan as `plan`) over the final
    /// phase of another, when the inner one groups by the outer group columns and one more (the
    /// distinct key): what DataFusion makes of `COUNT(DISTINCT order_id) ... GROUP BY region,
    /// channel`. The inner final phase merges partial states into one row per key, only for the
    /// outer partial phase to fold those rows into a few groups at once; on ten million order
    /// lines it took a third of the query's CPU and merged nothing (an order's lines were already
    /// together). This plan reads the inner partial states itself: an outer aggregate of an
    /// inner group column (the `COUNT(order_id)`) reads the first row of each key, remembered in
    /// a set of (outer group, key), and an outer `SUM`, `MIN` or `MAX` of an inner aggregate of
    /// the same kind (the only others DataFusion's rewrite makes) reads every partial state: the
    /// sum of partial sums is the sum of the merged ones. `None` for any other shape, and when a
    /// projection stands between the two (as in the same query written with a subquery).
    ///
    /// The set cannot be emitted early to give memory back, so when the pool refuses it the query
    /// fails with DataFusion's resources-exhausted error, where the inner final phase would have
    /// spilled; it holds about 17 bytes per key (33 for a text key, see [`SeenPairs`]), less than
    /// that phase's table.
    fn try_fuse(outer: &AggregateExec, plan: Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(inner) = outer.input().downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let plain = |aggregate, mode| plain(aggregate, mode, MAX_GROUP_COLUMNS);
        if !plain(outer, AggregateMode::Partial)
            || outer.filter_expr().iter().any(Option::is_some)
            || !(plain(inner, AggregateMode::FinalPartitioned) || plain(inner, AggregateMode::Final))
            || inner.filter_expr().iter().any(Option::is_some)
        {
            return Ok(None);
        }
        // The inner final phase reads partial states: its group columns first, as it names them,
        // then one state column per aggregate that is its value too (SUM, MIN, MAX).
        let inner_groups = inner.group_expr().expr().len();
        let states = inner.input().schema();
        let values = inner.schema();
        if states.fields().len() != inner_groups + inner.aggr_expr().len()
            || values.fields().len() != states.fields().len()
        {
            return Ok(None);
        }
        for (i, (expr, _)) in inner.group_expr().expr().iter().enumerate() {
            if column_index(expr) != Some(i) {
                return Ok(None);
            }
        }
        for (j, aggregate) in inner.aggr_expr().iter().enumerate() {
            let column = inner_groups + j;
            if !matches!(aggregate.fun().name(), "sum" | "min" | "max")
                || aggregate.state_fields()?.len() != 1
                || states.field(column).data_type() != values.field(column).data_type()
            {
                return Ok(None);
            }
        }
        // The outer groups: inner group columns, all but one (the key).
        let mut groups = Vec::with_capacity(outer.group_expr().expr().len());
        let mut used = vec![false; inner_groups];
        for (expr, name) in outer.group_expr().expr() {
            let Some(i) = column_index(expr).filter(|&i| i < inner_groups) else {
                return Ok(None);
            };
            let Some(kind) = key_kind(states.field(i).data_type()) else {
                return Ok(None);
            };
            used[i] = true;
            // Slots would hand a wide range over to DataFusion, which this plan cannot do.
            let kind = if kind == KeyKind::Dense { KeyKind::Value } else { kind };
            groups.push(GroupColumn {
                expr: expr.clone(),
                name: name.clone(),
                kind,
            });
        }
        let key: Vec<usize> = (0..inner_groups).filter(|&i| !used[i]).collect();
        let [column] = key[..] else {
            return Ok(None);
        };
        let Some(kind) = key_kind(states.field(column).data_type()) else {
            return Ok(None);
        };
        let mut first_rows_only = Vec::with_capacity(outer.aggr_expr().len());
        for aggregate in outer.aggr_expr() {
            let arguments = aggregate.expressions();
            // Of inner group columns only (`AVG` casts its argument; `COUNT(*)` reads none): the
            // same on the inner input's rows as on its output's, one row per key.
            if arguments
                .iter()
                .flat_map(collect_columns)
                .all(|c| c.index() < inner_groups)
            {
                first_rows_only.push(true);
                continue;
            }
            let [argument] = &arguments[..] else {
                return Ok(None);
            };
            let Some(i) = column_index(argument) else {
                return Ok(None);
            };
            let merges = matches!(
                (aggregate.fun().name(), inner.aggr_expr()[i - inner_groups].fun().name()),
                ("sum", "sum") | ("min", "min") | ("max", "max")
            );
            if !merges {
                return Ok(None);
            }
            first_rows_only.push(false);
        }
        Ok(Some(Self {
            input: inner.input().clone(),
            groups: groups.into(),
            aggregates: outer.aggr_expr().to_vec().into(),
            filters: outer.filter_expr().to_vec().into(),
            distinct: Some(Arc::new(DistinctKey {
                inner: outer.input().clone(),
                column,
                name: key_name(inner.input(), column).unwrap_or_else(|| states.field(column).name().clone()),
                kind,
                first_rows_only: first_rows_only.into(),
            })),
            aggregate: plan,
            filter: None,
            narrowed_from: None,
            narrowing: Narrowing::default(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

/// The columns of the input below `aggregate` (below `filter`, when it is fused) that it reads
/// only as the argument of a plain `SUM` of a decimal of up to 18 digits: those the scan may read
/// narrow. A column the filter's predicate, a group or any other aggregate reads is read whole.
fn summed_decimals(aggregate: &AggregateExec, filter: Option<&FusedFilter>) -> Vec<usize> {
    let schema = aggregate.input_schema();
    let mut summed = Vec::new();
    let mut read_otherwise = HashSet::new();
    for (a, function) in aggregate.aggr_expr().iter().enumerate() {
        let arguments = function.expressions();
        let column = match &arguments[..] {
            [argument] if function.fun().name() == "sum" && aggregate.filter_expr()[a].is_none() => {
                column_index(argument)
            }
            _ => None,
        };
        match column {
            Some(c) if matches!(schema.field(c).data_type(), DataType::Decimal128(p, _) if *p <= 18) => summed.push(c),
            _ => read_otherwise.extend(arguments.iter().flat_map(collect_columns).map(|c| c.index())),
        }
    }
    let filters = aggregate.filter_expr().iter().flatten();
    let groups = aggregate.group_expr().expr().iter().map(|(e, _)| e);
    read_otherwise.extend(filters.chain(groups).flat_map(collect_columns).map(|c| c.index()));
    summed.retain(|c| !read_otherwise.contains(c));
    summed.sort_unstable();
    summed.dedup();
    let Some(filter) = filter else {
        return summed;
    };
    let in_predicate: HashSet<usize> = collect_columns(&filter.predicate).iter().map(|c| c.index()).collect();
    summed
        .into_iter()
        .map(|c| filter.projection.as_ref().map_or(c, |columns| columns[c]))
        .filter(|c| !in_predicate.contains(c))
        .collect()
}

/// The columns of the input below `aggregate` (below `filter`, when it is fused) that the scan
/// may read as dictionary keys: its only group column, when that is text, and text columns the
/// filter reads only in comparisons with short texts (which it answers from the keys, see
/// [`crate::short_text_filter`]); none that an aggregate, an aggregate's filter or another part of
/// the predicate reads.
fn dictionary_texts(aggregate: &AggregateExec, filter: Option<&FusedFilter>) -> Vec<usize> {
    let schema = aggregate.input_schema();
    let below = |c: usize| match filter.and_then(|f| f.projection.as_ref()) {
        Some(columns) => columns[c],
        None => c,
    };
    let mut texts = Vec::new();
    if let [(expr, _)] = aggregate.group_expr().expr()
        && let Some(c) = column_index(expr)
        && schema.field(c).data_type() == &DataType::Utf8View
    {
        texts.push(below(c));
    }
    // The filter's columns it answers from keys: only its short text comparisons read them.
    let short_text_only = filter
        .and_then(|f| f.conjuncts.as_ref())
        .map(ConjunctFilter::short_text_only_columns)
        .unwrap_or_default();
    texts.extend(&short_text_only);
    let arguments = aggregate.aggr_expr().iter().flat_map(|a| a.expressions());
    let filters = aggregate.filter_expr().iter().flatten().cloned();
    let mut read_otherwise: HashSet<usize> = arguments
        .chain(filters)
        .flat_map(|e| collect_columns(&e))
        .map(|c| below(c.index()))
        .collect();
    if let Some(filter) = filter {
        let in_predicate = collect_columns(&filter.predicate).into_iter().map(|c| c.index());
        read_otherwise.extend(in_predicate.filter(|c| !short_text_only.contains(c)));
    }
    texts.retain(|c| !read_otherwise.contains(c));
    texts.sort_unstable();
    texts.dedup();
    texts
}

/// `plan` with the columns it reads narrower than `schema` has them (see [`crate::narrow_scan`])
/// cast back to `schema`'s types.
fn widened_plan(plan: Arc<dyn ExecutionPlan>, schema: &SchemaRef) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_expr::expressions::CastExpr;
    use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
    let narrow = plan.schema();
    let mut exprs = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let mut expr: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), i));
        if narrow.field(i).data_type() != field.data_type() {
            expr = Arc::new(CastExpr::new(expr, field.data_type().clone(), None));
        }
        exprs.push(ProjectionExpr::new(expr, field.name().clone()));
    }
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// `batch` with the columns read narrower than `schema` has them widened back to `schema`'s
/// types: decimals as [`widened`] widens them for the accumulators, text read as dictionary keys
/// by Arrow's cast.
fn widened_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = widened(batch.columns().to_vec())?;
    for (column, field) in columns.iter_mut().zip(schema.fields()) {
        if matches!(column.data_type(), DataType::Dictionary(..)) && column.data_type() != field.data_type() {
            *column = cast(column, field.data_type())?;
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Whether `aggregate` runs in `mode` with plain groups (at most `max_columns`, no
/// grouping sets) and plain aggregates (groups accumulators, no ordering, no DISTINCT).
fn plain(aggregate: &AggregateExec, mode: AggregateMode, max_columns: usize) -> bool {
    let group_by = aggregate.group_expr();
    *aggregate.mode() == mode
        && group_by.is_single()
        && group_by.null_expr().is_empty()
        && !group_by.expr().is_empty()
        && group_by.expr().len() <= max_columns
        && aggregate.limit_options().is_none()
        && aggregate.dynamic_expressions_produced().is_empty()
        && *aggregate.input_order_mode() == InputOrderMode::Linear
        && aggregate
            .aggr_expr()
            .iter()
            .all(|a| a.groups_accumulator_supported() && a.order_bys().is_empty() && !a.is_distinct())
}

/// What the partial phase below `plan` groups by in its `column`-th group column (`order_id`
/// where the final phase knows it as `alias1`), for messages.
fn key_name(plan: &Arc<dyn ExecutionPlan>, column: usize) -> Option<String> {
    let mut node = plan.clone();
    loop {
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            let (expr, _) = aggregate.group_expr().expr().get(column)?;
            return Some(match expr.downcast_ref::<Column>() {
                Some(c) => c.name().to_string(),
                None => expr.to_string(),
            });
        }
        if let Some(ours) = node.downcast_ref::<PartialAggregateExec>() {
            node = ours.aggregate.clone();
            continue;
        }
        node = match node.children()[..] {
            [only] => only.clone(),
            _ => return None,
        };
    }
}

/// The input column an expression only reads, if it is one.
fn column_index(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

impl PartialAggregateExec {
    /// Per aggregate, a [`NarrowSum`] when it is a plain `SUM` (no filter) of a column the scan
    /// below reads as `Decimal64` and its partial state is one 128-bit decimal.
    fn narrow_sums(&self) -> Result<Vec<Option<NarrowSum>>> {
        let schema = self.input.schema();
        // The aggregates read the fused filter's output.
        let schema = match self.filter.as_ref().and_then(|f| f.projection.as_ref()) {
            Some(columns) => Arc::new(schema.project(columns)?),
            None => schema,
        };
        let mut sums = Vec::with_capacity(self.aggregates.len());
        for (aggregate, filter) in self.aggregates.iter().zip(self.filters.iter()) {
            let narrow = self.distinct.is_none()
                && filter.is_none()
                && aggregate.fun().name() == "sum"
                && matches!(&aggregate.expressions()[..], [argument]
                    if matches!(argument.data_type(&schema)?, DataType::Decimal64(..)))
                && matches!(&aggregate.state_fields()?[..], [state] if matches!(state.data_type(), DataType::Decimal128(..)));
            sums.push(narrow.then(NarrowSum::default));
        }
        Ok(sums)
    }
}

impl DisplayAs for PartialAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} as {}", g.expr, g.name))
            .collect();
        let aggregates: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "PartialAggregateExec: gby=[{}], aggr=[{}]",
            groups.join(", "),
            aggregates.join(", ")
        )?;
        if let Some(distinct) = &self.distinct {
            write!(f, ", distinct={} (and the final phase of its grouping)", distinct.name)?;
        }
        if let Some(filter) = &self.filter {
            write!(f, ", filter={}", filter.predicate)?;
        }
        if let Some(scan) = &self.narrowed_from {
            let (table, narrow) = (scan.schema(), self.input.schema());
            let columns: Vec<String> = narrow
                .fields()
                .iter()
                .zip(table.fields())
                .filter(|(narrow, table)| narrow.data_type() != table.data_type())
                .map(|(narrow, _)| format!("{} as {}", narrow.name(), narrow.data_type()))
                .collect();
            write!(f, ", narrow=[{}]", columns.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for PartialAggregateExec {
    fn name(&self) -> &str {
        "PartialAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // The replaced aggregation's expressions, and the predicate of the filter it applies.
        let recursion = self.aggregate.apply_expressions(f)?;
        match &self.filter {
            Some(filter) if recursion == TreeNodeRecursion::Continue => f(&filter.predicate),
            _ => Ok(recursion),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        // The narrowed scan itself: rebuilding would read it wide again (see below).
        if let [child] = &children[..]
            && self.narrowed_from.is_some()
            && Arc::ptr_eq(child, &self.input)
        {
            return Ok(self);
        }
        // Rebuild the replaced plans over the new input and replace them again. A new input in
        // place of a narrowed scan reads the narrow types; the replaced plans read the table's.
        let children = match &self.narrowed_from {
            Some(scan) => children
                .into_iter()
                .map(|child| widened_plan(child, &scan.schema()))
                .collect::<Result<_>>()?,
            None => children,
        };
        let fuse_filter = self.filter.is_some();
        let replace = |aggregate: &AggregateExec, plan| match self.distinct {
            Some(_) => PartialAggregateExec::try_fuse(aggregate, plan),
            None => PartialAggregateExec::try_new(aggregate, plan, fuse_filter, self.narrowing),
        };
        let input = match (&self.distinct, &self.filter) {
            (Some(distinct), _) => vec![distinct.inner.clone().with_new_children(children)?],
            (None, Some(filter)) => vec![filter.exec.clone().with_new_children(children)?],
            (None, None) => children,
        };
        let aggregate = self.aggregate.clone().with_new_children(input)?;
        let rebuilt = aggregate
            .downcast_ref::<AggregateExec>()
            .map(|a| replace(a, aggregate.clone()))
            .transpose()?
            .flatten();
        Ok(match rebuilt {
            Some(exec) => Arc::new(exec),
            None => aggregate,
        })
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.aggregate.schema();
        let reservation =
            MemoryConsumer::new(format!("PartialAggregateExec[{partition}]")).register(context.memory_pool());
        let mut state = Aggregation {
            schema: schema.clone(),
            groups: self.groups.clone(),
            aggregates: self.aggregates.clone(),
            filters: self.filters.clone(),
            accumulators: Vec::new(),
            narrow_sums: self.narrow_sums()?,
            keys: KeyMap::new(&self.groups),
            interners: self.groups.iter().map(|_| Interner::default()).collect(),
            group_values: self.groups.iter().map(|_| Vec::new()).collect(),
            group_count: 0,
            rows_seen: 0,
            groups_made: 0,
            batch_size: context.session_config().batch_size(),
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            handed_over_partitions: MetricBuilder::new(&self.metrics).counter("handed_over", partition),
            // A fused plan has no aggregation of its own input to hand over to.
            probed: self.distinct.is_some(),
            runs_seen: 0,
            in_runs: false,
            in_runs_partitions: MetricBuilder::new(&self.metrics).counter("in_runs", partition),
            in_grid_partitions: MetricBuilder::new(&self.metrics).counter("in_grid", partition),
            handover: self.distinct.is_none().then(|| Handover {
                aggregate: self.aggregate.clone(),
                filter: self.filter.as_ref().map(|f| f.exec.clone()),
                input_properties: self.narrowed_from.as_ref().unwrap_or(&self.input).properties().clone(),
                partition,
                context,
            }),
            filter: self.filter.clone(),
            reserved_groups: usize::from(self.filter.is_some()),
            distinct: self.distinct.as_ref().map(|key| SeenKeys {
                key: key.clone(),
                interner: Interner::default(),
                seen: SeenPairs::for_kind(key.kind),
                partition,
            }),
            handed_over: None,
            input,
            done: false,
        };
        state.reset()?;
        let batches = futures::stream::unfold(state, |mut state| async move {
            let output = state.next_output().await?;
            Some((output, state))
        })
        .flat_map(|output| {
            futures::stream::iter(match output {
                Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Long text values of one group column, each with an id.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<[u8]>, u32>,
    bytes: usize,
}

impl Interner {
    fn id(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.bytes += bytes.len();
        self.ids.insert(bytes.into(), id);
        id
    }

    fn size(&self) -> usize {
        self.bytes + self.ids.capacity() * 24
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.bytes = 0;
    }
}

/// A text column of a batch, to read long values from: string views, or keys into a dictionary
/// (read so from Parquet, see [`crate::narrow_scan`]).
#[derive(Clone, Copy)]
enum TextColumn<'a> {
    Views(&'a StringViewArray),
    Dictionary { keys: &'a [i32], values: &'a StringArray },
}

impl<'a> TextColumn<'a> {
    fn of(array: &'a ArrayRef) -> Self {
        match array.as_dictionary_opt::<Int32Type>() {
            Some(dictionary) => TextColumn::Dictionary {
                keys: dictionary.keys().values(),
                values: dictionary.values().as_string::<i32>(),
            },
            None => TextColumn::Views(array.as_string_view()),
        }
    }

    /// The text of a row that is not null.
    fn value(&self, row: usize) -> &'a str {
        match self {
            TextColumn::Views(text) => text.value(row),
            TextColumn::Dictionary { keys, values } => values.value(keys[row] as usize),
        }
    }
}

/// Marks the word of a long text of a dictionary, in place of a view's prefix: its key (below
/// 2^31) above, so never [`NULL_TEXT`]. Only words of the same column are ever compared, so it
/// only needs to differ from the other words of a dictionary: inline views, lengths up to 12.
const DICTIONARY_LONG_TEXT: u128 = 0xFFFF_FFFF << 32;

/// The words of a text column as the batch holds them: each value's view (equal views are equal
/// text), or [`NULL_TEXT`]. For keys into a dictionary, each value's word as a view would be
/// for text of up to 12 bytes, and its length and key for longer text (a dictionary holds each
/// text once, so equal keys are equal text), worked out once per value of the dictionary.
fn text_words(array: &ArrayRef, words: &mut Vec<u128>) {
    if let Some(dictionary) = array.as_dictionary_opt::<Int32Type>() {
        let values = dictionary.values().as_string::<i32>();
        let value_words: Vec<u128> = (0..values.len()).map(|v| dictionary_word(values, v)).collect();
        words.clear();
        // A null key's slot may hold any number.
        let word = |key: i32| value_words.get(key as usize).copied().unwrap_or(NULL_TEXT);
        words.extend(dictionary.keys().values().iter().map(|&key| word(key)));
        if let Some(nulls) = dictionary.keys().nulls() {
            for row in nulls.iter().enumerate().filter(|(_, valid)| !valid).map(|(row, _)| row) {
                words[row] = NULL_TEXT;
            }
        }
        return;
    }
    let text = array.as_string_view();
    words.clear();
    words.extend_from_slice(text.views());
    if text.null_count() > 0 {
        for (row, word) in words.iter_mut().enumerate() {
            if text.is_null(row) {
                *word = NULL_TEXT;
            }
        }
    }
}

/// The word of value `v` of a dictionary as the batch holds it (see [`text_words`]).
fn dictionary_word(values: &StringArray, v: usize) -> u128 {
    if values.is_null(v) {
        return NULL_TEXT;
    }
    match inline_view(values.value(v).as_bytes()) {
        Some((short, _)) => short,
        None => values.value_length(v) as u128 | DICTIONARY_LONG_TEXT | ((v as u128) << 64),
    }
}

/// The word that stands for a text value in every batch: an inline view as it is (the bytes past
/// the length cleared), a longer text as its length and interned id.
fn text_key(view: u128, text: TextColumn, row: usize, interner: &mut Interner) -> u128 {
    if view == NULL_TEXT {
        return NULL_TEXT;
    }
    let len = view as u32;
    if len <= 12 {
        return view & (u128::MAX >> (96 - 8 * len));
    }
    let id = interner.id(text.value(row).as_bytes());
    u128::from(len) | (u128::from(id) << 64)
}

/// The words of a fixed-width column: the value's bits with bit 64 set, or [`NULL_VALUE`].
fn value_words(array: &ArrayRef, words: &mut Vec<u128>) {
    fn fill<T: Copy>(array: &dyn Array, values: &[T], bits: impl Fn(T) -> u64, words: &mut Vec<u128>) {
        words.clear();
        words.extend(values.iter().map(|&v| (1u128 << 64) | u128::from(bits(v))));
        if array.null_count() > 0 {
            for (row, word) in words.iter_mut().enumerate() {
                if array.is_null(row) {
                    *word = NULL_VALUE;
                }
            }
        }
    }
    let a = array.as_ref();
    match array.data_type() {
        DataType::Boolean => {
            let values: Vec<bool> = array.as_boolean().values().iter().collect();
            fill(a, &values, u64::from, words)
        }
        DataType::Int8 => fill(a, array.as_primitive::<Int8Type>().values(), |v| v as u64, words),
        DataType::Int16 => fill(a, array.as_primitive::<Int16Type>().values(), |v| v as u64, words),
        DataType::UInt8 => fill(a, array.as_primitive::<UInt8Type>().values(), u64::from, words),
        DataType::UInt16 => fill(a, array.as_primitive::<UInt16Type>().values(), u64::from, words),
        DataType::UInt32 => fill(a, array.as_primitive::<UInt32Type>().values(), u64::from, words),
        DataType::UInt64 => fill(a, array.as_primitive::<UInt64Type>().values(), |v| v, words),
        DataType::Float32 => fill(
            a,
            array.as_primitive::<Float32Type>().values(),
            |v| v.to_bits().into(),
            words,
        ),
        DataType::Float64 => fill(a, array.as_primitive::<Float64Type>().values(), f64::to_bits, words),
        // Days, and instants in any unit, are plain integers underneath: their bits are the word.
        DataType::Int32 | DataType::Date32 => {
            let data = array.to_data();
            fill(a, &data.buffer::<i32>(0)[..array.len()], |v| v as u64, words)
        }
        DataType::Int64 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let data = array.to_data();
            fill(a, &data.buffer::<i64>(0)[..array.len()], |v| v as u64, words)
        }
        other => unreachable!("the rule admits no {other} group column"),
    }
}

/// Slots of the per-batch cache from the batch's words to groups, and how many are probed.
const CACHE_SLOTS: usize = 1024;
const CACHE_PROBES: usize = 4;

/// Groups by key: `groups` from the words that stand for the values in every batch, and in front
/// of it a small cache from the words as the current batch holds them (text views) to groups, so
/// that most rows cost one probe of a table that fits in the CPU's cache.
struct Keys<const N: usize> {
    groups: HashMap<[u128; N], usize>,
    /// Batch words, group, and the batch the slot was filled in (other batches' slots are empty).
    cache: Vec<([u128; N], usize, u32)>,
    batch: u32,
}

impl<const N: usize> Keys<N> {
    fn new() -> Self {
        Keys {
            groups: HashMap::default(),
            cache: vec![([0; N], 0, 0); CACHE_SLOTS],
            batch: 0,
        }
    }

    /// Empties the cache: its slots belong to an earlier batch from now on.
    fn next_batch(&mut self) {
        self.batch = self.batch.wrapping_add(1);
        if self.batch == 0 {
            self.cache.iter_mut().for_each(|slot| slot.2 = 0);
            self.batch = 1;
        }
    }

    fn slot(key: &[u128; N]) -> usize {
        let mut hash = 0u64;
        for word in key {
            hash = (hash ^ (*word as u64) ^ ((*word >> 64) as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (hash >> (64 - CACHE_SLOTS.trailing_zeros())) as usize
    }

    fn group(&mut self, batch: &BatchKeys, interners: &mut [Interner], out: &mut Grouped) {
        self.next_batch();
        let rows = batch.words.first().map_or(0, Vec::len);
        let Grouped {
            indices,
            first_rows,
            groups,
        } = out;
        group_each_row(indices, rows, batch.passing, |row| {
            let key: [u128; N] = std::array::from_fn(|c| batch.words[c][row]);
            let first = Self::slot(&key);
            let mut cached = None;
            let mut free = None;
            for probe in 0..CACHE_PROBES {
                let slot = (first + probe) & (CACHE_SLOTS - 1);
                let (words, group, filled) = &self.cache[slot];
                if *filled != self.batch {
                    free = Some(slot);
                    break;
                }
                // Word by word: comparing the arrays whole loaded the key as one vector from the
                // stack, where its words had just been stored one by one, which the CPU cannot
                // forward: half of the grouping's time in "average order value by channel and
                // year" stood on that load.
                if words.iter().zip(&key).all(|(cached, word)| cached == word) {
                    cached = Some(*group);
                    break;
                }
            }
            match cached {
                Some(group) => group,
                None => {
                    let canonical: [u128; N] = std::array::from_fn(|c| match batch.texts[c] {
                        Some(text) => text_key(key[c], text, row, &mut interners[c]),
                        None => key[c],
                    });
                    let group = *self
                        .groups
                        .entry(canonical)
                        .or_insert_with(|| new_group(first_rows, groups, row));
                    if let Some(slot) = free {
                        self.cache[slot] = (key, group, self.batch);
                    }
                    group
                }
            }
        });
    }

    fn size(&self) -> usize {
        self.groups.capacity() * (16 * N + 8) + self.cache.len() * (16 * N + 16)
    }

    fn clear(&mut self) {
        self.groups.clear();
        self.next_batch();
    }
}

impl Keys<1> {
    /// Groups a batch by its only group column, text read as keys into a dictionary: each value's
    /// group is looked up once, when a row first needs it, and every row then finds its group by
    /// its key in a table as long as the dictionary. Grouping by the words of each row instead
    /// (one probe of the batch's cache per row) was a quarter of "return rate by category"'s CPU.
    fn group_dictionary(
        &mut self,
        dictionary: &DictionaryArray<Int32Type>,
        passing: Option<&BooleanBuffer>,
        interner: &mut Interner,
        out: &mut Grouped,
    ) {
        let values = dictionary.values().as_string::<i32>();
        let mut slots = vec![EMPTY_SLOT; values.len()];
        let mut null_slot = EMPTY_SLOT;
        let Grouped {
            indices,
            first_rows,
            groups,
        } = out;
        let keys = dictionary.keys().values();
        let map = &mut self.groups;
        // The slot's group when it has one (nearly every row), else the value's group made: out
        // of line, so that a row costs a load and a comparison.
        let mut group_of = |slot: &mut u32, value: Option<usize>, row: usize| match *slot {
            EMPTY_SLOT => {
                let group = dictionary_group(map, dictionary, value, row, interner, first_rows, groups);
                *slot = group as u32;
                group
            }
            group => group as usize,
        };
        match dictionary.keys().nulls() {
            None => group_each_row(indices, keys.len(), passing, |row| {
                let value = keys[row] as usize;
                group_of(&mut slots[value], Some(value), row)
            }),
            Some(nulls) => group_each_row(indices, keys.len(), passing, |row| match nulls.is_valid(row) {
                true => {
                    let value = keys[row] as usize;
                    group_of(&mut slots[value], Some(value), row)
                }
                false => group_of(&mut null_slot, None, row),
            }),
        }
    }
}

/// The group of the value `value` of a dictionary (`None`: a null key), first needed at `row`:
/// found by the word [`text_key`] makes of the row's text, as for text read as views, or made.
#[cold]
#[inline(never)]
fn dictionary_group(
    map: &mut HashMap<[u128; 1], usize>,
    dictionary: &DictionaryArray<Int32Type>,
    value: Option<usize>,
    row: usize,
    interner: &mut Interner,
    first_rows: &mut Vec<u32>,
    groups: &mut usize,
) -> usize {
    let values = dictionary.values().as_string::<i32>();
    let word = value.map_or(NULL_TEXT, |v| dictionary_word(values, v));
    let key = text_key(
        word,
        TextColumn::Dictionary {
            keys: dictionary.keys().values(),
            values,
        },
        row,
        interner,
    );
    *map.entry([key]).or_insert_with(|| new_group(first_rows, groups, row))
}

/// Whether a run of equal keys starts at each row of a batch: the first, and each whose words (as
/// the batch holds them) differ from the previous row's. Equal words are equal values; equal long
/// texts at different places in a buffer have different views, compared by their bytes. Column by
/// column over whole slices, which the compiler vectorises, rather than row by row.
fn run_starts(keys: &BatchKeys) -> Vec<bool> {
    let rows = keys.rows();
    let mut starts = vec![false; rows];
    if rows == 0 {
        return starts;
    }
    starts[0] = true;
    for column in &keys.words {
        for ((start, before), now) in starts[1..].iter_mut().zip(column).zip(&column[1..]) {
            *start |= before != now;
        }
    }
    if keys.texts.iter().any(Option::is_some) {
        // Different views of equal long texts are not a new run, unless another column differs:
        // checked row by row, rarely (a run's long text is usually one view).
        let differs = |row: usize, (column, text): (&Vec<u128>, &Option<TextColumn>)| {
            column[row - 1] != column[row]
                && !text.is_some_and(|t| same_long_text(column[row - 1], column[row], t, row))
        };
        for row in 1..rows {
            let long = || {
                keys.words
                    .iter()
                    .zip(&keys.texts)
                    .any(|(column, text)| text.is_some_and(|t| same_long_text(column[row - 1], column[row], t, row)))
            };
            if starts[row] && long() {
                starts[row] = keys.words.iter().zip(&keys.texts).any(|c| differs(row, c));
            }
        }
    }
    starts
}

/// Whether two different views of adjacent rows (`row - 1` and `row`) hold the same long text:
/// equal length and prefix, then equal bytes.
fn same_long_text(before: u128, now: u128, text: TextColumn, row: usize) -> bool {
    before != now
        && before as u64 == now as u64
        && before as u32 > 12
        && before != NULL_TEXT
        && now != NULL_TEXT
        && text.value(row - 1) == text.value(row)
}

/// Groups a batch by runs of adjacent rows with equal keys, a group per run (numbered on from
/// `out.groups`). A key whose rows are apart gets several groups, each a partial state the final
/// phase merges like any other.
fn group_runs(keys: &BatchKeys, out: &mut Grouped) {
    let starts = run_starts(keys);
    let passing = keys.passing;
    let Grouped {
        indices,
        first_rows,
        groups,
    } = out;
    // A rejected row ends a run: the passing row after it starts another (one more partial row
    // when the rejected row was in the middle of a key's rows). The first row starts one anyway.
    group_each_row(indices, starts.len(), passing, |row| {
        if starts[row] || passing.is_some_and(|passing| !passing.value(row - 1)) {
            new_group(first_rows, groups, row);
        }
        *groups - 1
    });
}

/// Fills `indices` with each row's group: [`REJECTED_GROUP`] for a row `passing` rejects,
/// `group(row)` for the others, in row order.
fn group_each_row(
    indices: &mut Vec<usize>,
    rows: usize,
    passing: Option<&BooleanBuffer>,
    mut group: impl FnMut(usize) -> usize,
) {
    indices.clear();
    indices.reserve(rows);
    for row in 0..rows {
        indices.push(match passing {
            Some(passing) if !passing.value(row) => REJECTED_GROUP,
            _ => group(row),
        });
    }
}

/// One batch's group columns: each column's words as the batch holds them, and the text arrays
/// (for the text columns) to read long values from.
struct BatchKeys<'a> {
    words: Vec<Vec<u128>>,
    texts: Vec<Option<TextColumn<'a>>>,
    /// The rows a fused filter passes, when it rejects some: the others go to [`REJECTED_GROUP`].
    passing: Option<&'a BooleanBuffer>,
}

impl<'a> BatchKeys<'a> {
    /// The words of `arrays`, one column of each kind in `kinds`.
    fn of(
        kinds: impl IntoIterator<Item = KeyKind>,
        arrays: &'a [ArrayRef],
        passing: Option<&'a BooleanBuffer>,
    ) -> Self {
        let mut keys = BatchKeys {
            words: Vec::with_capacity(arrays.len()),
            texts: Vec::with_capacity(arrays.len()),
            passing,
        };
        for (kind, array) in kinds.into_iter().zip(arrays) {
            let mut words = Vec::with_capacity(array.len());
            match kind {
                KeyKind::Text => {
                    text_words(array, &mut words);
                    keys.texts.push(Some(TextColumn::of(array)));
                }
                KeyKind::Value | KeyKind::Dense | KeyKind::Grid => {
                    value_words(array, &mut words);
                    keys.texts.push(None);
                }
            }
            keys.words.push(words);
        }
        keys
    }

    fn rows(&self) -> usize {
        self.words.first().map_or(0, Vec::len)
    }
}

/// What grouping a batch gives: each row's group, the rows where a group first appeared, and
/// the number of groups so far.
#[derive(Default)]
struct Grouped {
    indices: Vec<usize>,
    first_rows: Vec<u32>,
    groups: usize,
}

/// A new group, first seen at `row` (`first_rows` and `groups` of a [`Grouped`], apart so that its
/// `indices` can be filled meanwhile): its number.
fn new_group(first_rows: &mut Vec<u32>, groups: &mut usize, row: usize) -> usize {
    first_rows.push(row as u32);
    *groups += 1;
    *groups - 1
}

/// The group a slot of [`DenseKeys`] or [`GridKeys`] holds: a new one, first seen at `row`, when
/// it is [`EMPTY_SLOT`].
fn slot_group(slot: &mut u32, first_rows: &mut Vec<u32>, groups: &mut usize, row: usize) -> usize {
    if *slot == EMPTY_SLOT {
        *slot = new_group(first_rows, groups, row) as u32;
    }
    *slot as usize
}

/// [`Keys`] for the number of group columns the plan has, or [`DenseKeys`].
enum KeyMap {
    One(Keys<1>),
    Two(Keys<2>),
    Three(Keys<3>),
    Four(Keys<4>),
    Dense(DenseKeys),
    Grid(GridKeys),
}

impl KeyMap {
    fn new(groups: &[GroupColumn]) -> Self {
        match groups {
            [only] if only.kind == KeyKind::Dense => KeyMap::Dense(DenseKeys::default()),
            [first, ..] if first.kind == KeyKind::Grid => KeyMap::Grid(GridKeys::new(groups.len(), false)),
            // More columns than words hold, one of them text: a grid whose places may be a table.
            many if many.len() > MAX_GROUP_COLUMNS => KeyMap::Grid(GridKeys::new(many.len(), true)),
            [_] => KeyMap::One(Keys::new()),
            [_, _] => KeyMap::Two(Keys::new()),
            [_, _, _] => KeyMap::Three(Keys::new()),
            _ => KeyMap::Four(Keys::new()),
        }
    }

    fn group(&mut self, batch: &BatchKeys, interners: &mut [Interner], out: &mut Grouped) {
        match self {
            KeyMap::One(k) => k.group(batch, interners, out),
            KeyMap::Two(k) => k.group(batch, interners, out),
            KeyMap::Three(k) => k.group(batch, interners, out),
            KeyMap::Four(k) => k.group(batch, interners, out),
            KeyMap::Dense(_) | KeyMap::Grid(_) => unreachable!("slots group the columns' values, not words"),
        }
    }

    fn size(&self) -> usize {
        match self {
            KeyMap::One(k) => k.size(),
            KeyMap::Two(k) => k.size(),
            KeyMap::Three(k) => k.size(),
            KeyMap::Four(k) => k.size(),
            KeyMap::Dense(k) => k.size(),
            KeyMap::Grid(k) => k.size(),
        }
    }

    fn clear(&mut self) {
        match self {
            KeyMap::One(k) => k.clear(),
            KeyMap::Two(k) => k.clear(),
            KeyMap::Three(k) => k.clear(),
            KeyMap::Four(k) => k.clear(),
            KeyMap::Dense(k) => k.clear(),
            KeyMap::Grid(k) => k.clear(),
        }
    }
}

/// Whether a lone group column of this type is grouped by [`DenseKeys`].
fn dense_values(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Date32
    )
}

/// Slots a dense key may always use (four megabytes: the customers of a large company), and per
/// group or row beyond that (slots of four bytes, where DataFusion's table holds some 24 per group).
const DENSE_MIN_SLOTS: i128 = 1 << 20;
const DENSE_SLOTS_PER_GROUP: i128 = 16;

/// The slot of a value no group holds yet.
const EMPTY_SLOT: u32 = u32::MAX;

/// Groups by a lone integer column whose values lie close together (surrogate keys such as
/// `customer_key`, day numbers): each value's group sits in an array at the value's offset from
/// the smallest, so a row costs a subtraction and a load where DataFusion hashes the value and
/// probes a table (ten million order lines by `order_date`: 137 ms against 187 ms), and
/// `customer_key`, numbered from 1.
/// Values spread wider than the groups warrant go to DataFusion (see [`Aggregation::aggregate`]).
#[derive(Default)]
struct DenseKeys {
    /// The value of the first slot.
    base: i64,
    /// Each value's group from `base` on, or [`EMPTY_SLOT`].
    slots: Vec<u32>,
    null_group: Option<usize>,
}

impl DenseKeys {
    /// Groups a batch's values (the rows `passing` rejects, if given, to [`REJECTED_GROUP`]);
    /// false, grouping nothing, when their range needs more slots than the groups warrant.
    fn group(&mut self, array: &ArrayRef, passing: Option<&BooleanBuffer>, out: &mut Grouped) -> Result<bool> {
        // Every [`dense_values`] type widens to 64 bits (an Int64 column as it is).
        let integers = cast(array, &DataType::Int64)?;
        let integers = integers.as_primitive::<Int64Type>();
        // Most batches fall within the slots made for earlier ones: one pass, without first
        // taking the batch's smallest and largest value (a third of this function's time).
        if self.group_in_slots(integers, passing, out) {
            return Ok(true);
        }
        if !self.widen(integers, out.groups)? {
            return Ok(false);
        }
        let grouped = self.group_in_slots(integers, passing, out);
        debug_assert!(grouped, "the slots cover the batch once widened");
        Ok(true)
    }

    /// Groups the batch when every value has a slot; false, having changed nothing, when one
    /// has not.
    fn group_in_slots(&mut self, integers: &Int64Array, passing: Option<&BooleanBuffer>, out: &mut Grouped) -> bool {
        let values = integers.values();
        let Some(nulls) = integers.nulls().filter(|n| n.null_count() > 0) else {
            return self.group_values_in_slots(values, passing, out);
        };
        let (groups_before, first_rows_before) = (out.groups, out.first_rows.len());
        out.indices.clear();
        out.indices.reserve(values.len());
        for (row, &value) in values.iter().enumerate() {
            if passing.is_some_and(|passing| !passing.value(row)) {
                out.indices.push(REJECTED_GROUP);
                continue;
            }
            if nulls.is_null(row) {
                let group = *self
                    .null_group
                    .get_or_insert_with(|| new_group(&mut out.first_rows, &mut out.groups, row));
                out.indices.push(group);
                continue;
            }
            // Below `base` wraps to beyond the slots.
            let Some(slot) = self.slots.get_mut(value.wrapping_sub(self.base) as u64 as usize) else {
                // Undo the groups this batch made so far.
                for &row in &out.first_rows[first_rows_before..] {
                    if nulls.is_null(row as usize) {
                        self.null_group = None;
                    } else {
                        self.slots[(values[row as usize] - self.base) as usize] = EMPTY_SLOT;
                    }
                }
                out.first_rows.truncate(first_rows_before);
                out.groups = groups_before;
                out.indices.clear();
                return false;
            };
            out.indices
                .push(slot_group(slot, &mut out.first_rows, &mut out.groups, row));
        }
        true
    }

    /// [`Self::group_in_slots`] for a batch without nulls, the usual one: whether every value has
    /// a slot is checked first, in a pass without branches, so the grouping loop needs no way out
    /// and no undoing (a rejected row's value takes part in the check, widening the slots at
    /// worst). The rows a fused filter rejects look up one more slot, past the values', that
    /// holds [`REJECTED_GROUP`], with the filter's bits read a word of 64 rows at a time: no
    /// branch on them. Top 20 customers by revenue spent 13% of its time in the loop with both.
    fn group_values_in_slots(&mut self, values: &[i64], passing: Option<&BooleanBuffer>, out: &mut Grouped) -> bool {
        let (base, span) = (self.base, self.slots.len());
        // Below `base` wraps to beyond the slots.
        let offset = |value: i64| value.wrapping_sub(base) as u64 as usize;
        if !values.iter().fold(true, |fits, &value| fits & (offset(value) < span)) {
            return false;
        }
        if passing.is_some() {
            self.slots.push(REJECTED_GROUP as u32);
        }
        let slots = &mut self.slots;
        let Grouped {
            indices,
            first_rows,
            groups,
        } = out;
        let mut group_of = |row: usize, slot: usize| slot_group(&mut slots[slot], first_rows, groups, row);
        indices.clear();
        indices.reserve(values.len());
        match passing {
            None => indices.extend(
                values
                    .iter()
                    .enumerate()
                    .map(|(row, &value)| group_of(row, offset(value))),
            ),
            Some(passing) => {
                let rejected_slot = span;
                let chunks = passing.bit_chunks();
                let words = chunks.iter().chain(std::iter::once(chunks.remainder_bits()));
                for (chunk, (rows, bits)) in values.chunks(64).zip(words.enumerate()) {
                    indices.extend(chunk.iter().enumerate().map(|(i, &value)| {
                        let slot = if bits >> i & 1 == 1 {
                            offset(value)
                        } else {
                            rejected_slot
                        };
                        group_of(rows * 64 + i, slot)
                    }));
                }
            }
        }
        if passing.is_some() {
            self.slots.pop();
        }
        true
    }

    /// Makes slots for every value of the batch (`groups` made so far), unless their range needs
    /// more than the groups warrant: false then, changing nothing.
    fn widen(&mut self, integers: &Int64Array, groups: usize) -> Result<bool> {
        let (Some(low), Some(high)) = (min(integers), max(integers)) else {
            return Ok(true);
        };
        let (low, high) = if self.slots.is_empty() {
            (low, high)
        } else {
            (low.min(self.base), high.max(self.base + self.slots.len() as i64 - 1))
        };
        let span = i128::from(high) - i128::from(low) + 1;
        let warranted = DENSE_MIN_SLOTS.max(DENSE_SLOTS_PER_GROUP * (groups + integers.len()) as i128);
        if span > warranted {
            return Ok(false);
        }
        if self.slots.is_empty() {
            self.base = low;
        } else if low < self.base {
            let mut slots = vec![EMPTY_SLOT; (self.base - low) as usize];
            slots.extend_from_slice(&self.slots);
            self.slots = slots;
            self.base = low;
        }
        self.slots.resize(span as usize, EMPTY_SLOT);
        // Room for the rejected rows' slot (see `group_values_in_slots`), so that pushing it
        // never doubles the slots.
        self.slots.reserve_exact(1);
        Ok(true)
    }

    fn size(&self) -> usize {
        self.slots.capacity() * 4
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.null_group = None;
    }
}

/// Groups by several columns whose values are few in each column, however many their combinations
/// are: each column's values are numbered in the order they come (a small hash table per column,
/// a few hundred or thousand values), and a row's group sits at the place its numbers give, each
/// column's number in bits of its own, the last column's lowest. The places are an array while
/// the groups fill enough of it, or else (a grid with a text column) a table of the places that
/// hold a group.
///
/// An array for integers and dates (pairs of `product_key` in the products bought together, a
/// customer and a year): DataFusion finds such a row by hashing all its values and probing one
/// table of every group, whose values it then compares column by column: the partial counts of
/// the twenty million product pairs of ten million order lines took 4.39 s of CPU there, 2.69 s
/// here (`EXPLAIN ANALYZE`, the pairs query of `marts.product_association` with its baskets).
/// When the numbers need more places than the groups warrant (the lines of millions of orders),
/// the rest goes to DataFusion, as for [`DenseKeys`], which then may skip the partial phase.
///
/// A table for the reporting rollups (day, category, channel, region and segment; week, SKU,
/// category and region): order lines come by customer, so even the first batch makes thousands
/// of groups and the word keys hand over, but each column has few values. DataFusion hashes and
/// compares every row's text there (category and region names are longer than the 12 bytes a
/// view holds: memcmp, about a third of those marts' CPU); here a text column's row costs a
/// comparison with the row before, or a lookup of its view in the batch's few views, and the
/// group one lookup of a 32-bit place. When the places need more than [`TABLED_GRID_BITS`]
/// bits, the rest goes to DataFusion.
struct GridKeys {
    columns: Vec<GridColumn>,
    places: GridPlaces,
    /// Whether the places may be a table (see [`GridPlaces::Table`]).
    tabled: bool,
    /// Rows grouped so far, until a tabled grid is judged (see [`GRID_PROBE_ROWS`]).
    rows_grouped: usize,
}

/// Where a [`GridKeys`] keeps each place's group.
enum GridPlaces {
    /// Each place's group, or [`EMPTY_SLOT`]; as many places as the columns' bits give.
    Array(Vec<u32>),
    /// The places that hold a group, and its number.
    Table(HashMap<u32, u32>),
}

/// Bits a tabled grid's places may take: the table's keys are 32-bit.
const TABLED_GRID_BITS: u32 = 32;

/// Rows a tabled grid groups before it judges whether its columns' values are few: when one
/// column has more than one value in [`HANDOVER_RATIO`] rows by then (the orders of each order's
/// distinct categories, a new order every few lines), the table would hold nearly a group per
/// row, and the rest goes to DataFusion, which then skips the partial phase (`SELECT DISTINCT
/// order_key, category` over ten million lines: 2.3 s of CPU in a table). The rollups' columns
/// have no more than a few thousand values (days, SKUs) however many rows come; the first
/// [`PROBE_ROWS`] cannot tell the two apart, these many rows can.
const GRID_PROBE_ROWS: usize = 16 * PROBE_ROWS;

/// One column of a [`GridKeys`]: its values' numbers, and how many bits the numbers are given.
#[derive(Default)]
struct GridColumn {
    /// By the word that stands for the value in every batch (see [`text_key`] for text).
    numbers: HashMap<u128, u32>,
    /// A text column's numbers by the views of the batch at hand: equal views are equal text, and
    /// a batch holds few distinct views, but another batch's views of the same text differ.
    views: HashMap<u128, u32>,
    bits: u32,
}

impl GridColumn {
    fn number(&mut self, word: u128) -> u32 {
        let next = self.numbers.len() as u32;
        *self.numbers.entry(word).or_insert(next)
    }

    /// Each row's number, from the column's words as the batch holds them (`text`, the array,
    /// for a text column, whose long values `interner` keeps, as for the word keys).
    fn numbers_of(&mut self, words: &[u128], text: Option<TextColumn>, interner: &mut Interner) -> Vec<u32> {
        let mut numbers = Vec::with_capacity(words.len());
        self.views.clear();
        // Rows of a join's output, or an order's lines, repeat the value before them often: no
        // lookup then.
        let mut last: Option<(u128, u32)> = None;
        for (row, &word) in words.iter().enumerate() {
            let number = match last {
                Some((last_word, number)) if last_word == word => number,
                _ => {
                    let number = match text {
                        None => self.number(word),
                        Some(text) => match self.views.get(&word) {
                            Some(&number) => number,
                            None => {
                                let key = text_key(word, text, row, interner);
                                let number = self.number(key);
                                self.views.insert(word, number);
                                number
                            }
                        },
                    };
                    last = Some((word, number));
                    number
                }
            };
            numbers.push(number);
        }
        numbers
    }

    fn size(&self) -> usize {
        (self.numbers.capacity() + self.views.capacity()) * 32
    }
}

impl GridKeys {
    /// A grid of `columns` columns; `tabled`, one whose places may be a table.
    fn new(columns: usize, tabled: bool) -> Self {
        GridKeys {
            columns: (0..columns).map(|_| GridColumn::default()).collect(),
            places: GridPlaces::Array(vec![EMPTY_SLOT]),
            tabled,
            rows_grouped: 0,
        }
    }

    /// Groups a batch by its columns' words (the rows `passing` rejects, if given, to
    /// [`REJECTED_GROUP`]); false, grouping nothing, when their numbers need more places than the
    /// groups warrant (or, tabled, more than [`TABLED_GRID_BITS`] bits, or a column has many
    /// values: see [`GRID_PROBE_ROWS`]).
    fn group(&mut self, batch: &BatchKeys, interners: &mut [Interner], out: &mut Grouped) -> bool {
        let rows = batch.rows();
        // Every row's number in each column, the rejected rows' too (widening the grid at worst).
        let numbers: Vec<Vec<u32>> = self
            .columns
            .iter_mut()
            .zip(&batch.words)
            .zip(&batch.texts)
            .zip(interners)
            .map(|(((column, words), text), interner)| column.numbers_of(words, *text, interner))
            .collect();
        let bits: Vec<u32> = self
            .columns
            .iter()
            .map(|c| usize::BITS - c.numbers.len().saturating_sub(1).leading_zeros())
            .collect();
        let total: u32 = bits.iter().sum();
        if self.tabled && self.rows_grouped < GRID_PROBE_ROWS {
            self.rows_grouped += rows;
            let most = self.columns.iter().map(|c| c.numbers.len()).max().unwrap_or(0);
            if self.rows_grouped >= GRID_PROBE_ROWS && most as f64 > HANDOVER_RATIO * self.rows_grouped as f64 {
                return false;
            }
        }
        let warranted = DENSE_MIN_SLOTS.max(DENSE_SLOTS_PER_GROUP * (out.groups + rows) as i128);
        let array = total < 64 && (1i128 << total) <= warranted;
        if !(array || self.tabled && total <= TABLED_GRID_BITS) {
            return false;
        }
        let laid_out = self.columns.iter().zip(&bits).all(|(c, &b)| c.bits == b);
        if !laid_out || array != matches!(self.places, GridPlaces::Array(_)) {
            self.lay_out(&bits, array);
        }
        let shifts = self.shifts();
        let place = |row: usize| {
            numbers.iter().zip(&shifts).fold(0usize, |place, (column, &shift)| {
                place | (column[row] as usize) << shift
            })
        };
        let Grouped {
            indices,
            first_rows,
            groups,
        } = out;
        match &mut self.places {
            GridPlaces::Array(slots) => group_each_row(indices, rows, batch.passing, |row| {
                slot_group(&mut slots[place(row)], first_rows, groups, row)
            }),
            GridPlaces::Table(table) => group_each_row(indices, rows, batch.passing, |row| {
                *table
                    .entry(place(row) as u32)
                    .or_insert_with(|| new_group(first_rows, groups, row) as u32) as usize
            }),
        }
        true
    }

    /// Where each column's number starts in a place: the last column lowest.
    fn shifts(&self) -> Vec<u32> {
        let mut shift = 0;
        let mut shifts = vec![0; self.columns.len()];
        for (c, column) in self.columns.iter().enumerate().rev() {
            shifts[c] = shift;
            shift += column.bits;
        }
        shifts
    }

    /// Lays the groups out again with `bits` per column (at least as many as before), in an
    /// array or a table.
    fn lay_out(&mut self, bits: &[u32], array: bool) {
        let (old_shifts, old_bits): (Vec<u32>, Vec<u32>) =
            (self.shifts(), self.columns.iter().map(|c| c.bits).collect());
        for (column, &b) in self.columns.iter_mut().zip(bits) {
            column.bits = b;
        }
        let shifts = self.shifts();
        let moved = |place: usize| {
            let mut moved = 0;
            for ((&old_shift, &old_bits), &shift) in old_shifts.iter().zip(&old_bits).zip(&shifts) {
                moved |= (place >> old_shift & ((1 << old_bits) - 1)) << shift;
            }
            moved
        };
        let held: Vec<(usize, u32)> = match &self.places {
            GridPlaces::Array(slots) => slots
                .iter()
                .enumerate()
                .filter(|(_, group)| **group != EMPTY_SLOT)
                .map(|(place, &group)| (place, group))
                .collect(),
            GridPlaces::Table(table) => table.iter().map(|(&place, &group)| (place as usize, group)).collect(),
        };
        self.places = if array {
            let mut slots = vec![EMPTY_SLOT; 1 << bits.iter().sum::<u32>()];
            for (place, group) in held {
                slots[moved(place)] = group;
            }
            GridPlaces::Array(slots)
        } else {
            let mut table = HashMap::with_capacity(held.len());
            for (place, group) in held {
                table.insert(moved(place) as u32, group);
            }
            GridPlaces::Table(table)
        };
    }

    fn size(&self) -> usize {
        let columns: usize = self.columns.iter().map(GridColumn::size).sum();
        let places = match &self.places {
            GridPlaces::Array(slots) => slots.capacity() * 4,
            GridPlaces::Table(table) => table.capacity() * 9,
        };
        places + columns
    }

    fn clear(&mut self) {
        *self = GridKeys::new(self.columns.len(), self.tabled);
    }
}

/// Groups at most, and rows per group at least, for a batch's sums to be folded per group before
/// they reach the accumulator (see [`fold_sums`]).
const FOLDED_SUM_GROUPS: usize = 256;
const FOLDED_SUM_ROWS_PER_GROUP: usize = 4;

/// Rows summed side by side, each into a sum of its own, when a batch's sums are folded.
const SUM_LANES: usize = 4;

/// A batch's sums of `values` per group (`indices` give each row's group, of `groups`), for the
/// groups `touched` (those with rows in the batch, see [`groups_with_rows`]); `None` for a type
/// other than a 64-bit integer or a decimal held in 128 bits, or values with nulls, which go to the
/// accumulator row by row.
///
/// Why: DataFusion's SUM adds each row into its group's sum in memory, so where a batch holds few
/// groups, one row's addition waits for the previous one to the same group to be stored ("return
/// rate by category": three sums over ten million rows in nine categories were a fifth of the
/// query's CPU). Here consecutive rows add into different lanes of their group, independent of
/// each other, and the accumulator adds one sum per group. Integer and decimal sums wrap as
/// DataFusion's do, in any order to the same total; floating-point sums would round differently,
/// so they are left to the accumulator.
fn fold_sums(values: &ArrayRef, indices: &[usize], groups: usize, touched: &[usize]) -> Option<ArrayRef> {
    if values.null_count() > 0 {
        return None;
    }
    match values.data_type() {
        DataType::Int64 => {
            let sums = lane_sums(
                values.as_primitive::<Int64Type>().values(),
                |v| v,
                indices,
                groups,
                touched,
            );
            Some(Arc::new(Int64Array::from(sums)))
        }
        DataType::Decimal128(_, _) => {
            let sums = lane_sums(
                values.as_primitive::<Decimal128Type>().values(),
                |v| v,
                indices,
                groups,
                touched,
            );
            let sums = Decimal128Array::new(sums.into(), None).with_data_type(values.data_type().clone());
            Some(Arc::new(sums))
        }
        // Read narrow from Parquet (see `narrow_scan`): each 64-bit value added into a 128-bit
        // sum, as DataFusion adds the widened values, to the same wrapped total.
        &DataType::Decimal64(precision, scale) => {
            let values = values.as_primitive::<Decimal64Type>().values();
            let sums = lane_sums(values, i128::from, indices, groups, touched);
            let sums = Decimal128Array::new(sums.into(), None).with_data_type(DataType::Decimal128(precision, scale));
            Some(Arc::new(sums))
        }
        _ => None,
    }
}

/// The wrapping sums of `values` (each made an `A` by `widen`) for the groups `touched`, added up
/// in [`SUM_LANES`] lanes per group.
fn lane_sums<T: Copy, A: ArrowNativeTypeOp>(
    values: &[T],
    widen: impl Fn(T) -> A,
    indices: &[usize],
    groups: usize,
    touched: &[usize],
) -> Vec<A> {
    debug_assert_eq!(values.len(), indices.len());
    // A group's lanes side by side: one cache line for four 16-byte sums.
    let mut lanes = vec![[A::ZERO; SUM_LANES]; groups];
    let rows = values.chunks_exact(SUM_LANES).zip(indices.chunks_exact(SUM_LANES));
    for (chunk, groups_of) in rows {
        for lane in 0..SUM_LANES {
            let sum = &mut lanes[groups_of[lane]][lane];
            *sum = sum.add_wrapping(widen(chunk[lane]));
        }
    }
    let whole = values.len() / SUM_LANES * SUM_LANES;
    for (&value, &group) in values[whole..].iter().zip(&indices[whole..]) {
        let sum = &mut lanes[group][0];
        *sum = sum.add_wrapping(widen(value));
    }
    touched
        .iter()
        .map(|&g| lanes[g].iter().fold(A::ZERO, |total, &lane| total.add_wrapping(lane)))
        .collect()
}

/// Arrays of decimals read narrow from Parquet (see `narrow_scan`) as the `Decimal128` of the same
/// precision and scale that the accumulators were made for; other arrays as they are.
fn widened(arrays: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
    arrays
        .into_iter()
        .map(|array| match *array.data_type() {
            // Value by value, as the Parquet reader widens: Arrow's cast checks each value against
            // the precision too, which cost "top 20 customers" 5% (108.5 -> 114 ms a run).
            DataType::Decimal64(precision, scale) => {
                let wide = array
                    .as_primitive::<Decimal64Type>()
                    .unary::<_, Decimal128Type>(i128::from)
                    .with_data_type(DataType::Decimal128(precision, scale));
                Ok(Arc::new(wide) as ArrayRef)
            }
            _ => Ok(array),
        })
        .collect()
}

/// The partial state of a plain `SUM` of a decimal read narrow from Parquet (see `narrow_scan`),
/// kept by this plan: each 64-bit value added into its group's 128-bit sum as it comes. Where the
/// sums are not folded (80,000 customers in "top 20 customers"), DataFusion's accumulator needed
/// every value widened to 128 bits first, then added it row by row with its own bookkeeping: 5.5%
/// and 9.9% of that query's CPU (perf). The sums wrap as DataFusion's do.
#[derive(Debug, Default)]
struct NarrowSum {
    sums: Vec<i128>,
    /// Whether a group has had a value that is not null: one that has not sums to null.
    seen: Vec<bool>,
}

impl NarrowSum {
    fn grow(&mut self, groups: usize) {
        if self.sums.len() < groups {
            self.sums.resize(groups, 0);
            self.seen.resize(groups, false);
        }
    }

    /// Adds each row's value to the sum of its group (`indices`, of `groups`).
    fn add_rows(&mut self, values: &PrimitiveArray<Decimal64Type>, indices: &[usize], groups: usize) {
        self.grow(groups);
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        match values.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => {
                for (&value, &group) in values.values().iter().zip(indices) {
                    sums[group] = sums[group].wrapping_add(i128::from(value));
                    seen[group] = true;
                }
            }
            Some(nulls) => {
                for (row, (&value, &group)) in values.values().iter().zip(indices).enumerate() {
                    if nulls.is_valid(row) {
                        sums[group] = sums[group].wrapping_add(i128::from(value));
                        seen[group] = true;
                    }
                }
            }
        }
    }

    /// Adds a batch's folded sums (see [`fold_sums`]) of the groups `touched`.
    fn add_folded(&mut self, folded: &[i128], touched: &[usize], groups: usize) {
        self.grow(groups);
        for (&sum, &group) in folded.iter().zip(touched) {
            self.sums[group] = self.sums[group].wrapping_add(sum);
            self.seen[group] = true;
        }
    }

    /// The partial state of the groups `from..groups`, as the accumulator would give it: the sums
    /// as `data_type` (the state's decimal), null for a group without a value.
    fn state(&mut self, from: usize, groups: usize, data_type: DataType) -> ArrayRef {
        self.grow(groups);
        let nulls = NullBuffer::from(&self.seen[from..groups]);
        let sums = Decimal128Array::new(self.sums[from..groups].to_vec().into(), Some(nulls)).with_data_type(data_type);
        Arc::new(sums)
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.seen.capacity()
    }

    fn clear(&mut self) {
        self.sums.clear();
        self.seen.clear();
    }
}

/// The groups, of `groups`, that have rows in a batch (`indices` give each row's group).
fn groups_with_rows(indices: &[usize], groups: usize) -> Vec<usize> {
    let mut seen = vec![false; groups];
    for &group in indices {
        seen[group] = true;
    }
    (0..groups).filter(|&g| seen[g]).collect()
}

/// One partition's partial aggregation.
struct Aggregation {
    schema: SchemaRef,
    groups: Arc<[GroupColumn]>,
    aggregates: Arc<[Arc<AggregateFunctionExpr>]>,
    filters: Arc<[Option<Arc<dyn PhysicalExpr>>]>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Per aggregate, when it is a plain `SUM` of a decimal read narrow: its sums, kept here
    /// instead of by its accumulator (which then holds nothing).
    narrow_sums: Vec<Option<NarrowSum>>,
    keys: KeyMap,
    interners: Vec<Interner>,
    /// Each group column's values, in group order, a piece per batch that added groups.
    group_values: Vec<Vec<ArrayRef>>,
    group_count: usize,
    rows_seen: usize,
    /// Groups made since the start, counting again those emitted and made anew.
    groups_made: usize,
    batch_size: usize,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    handed_over_partitions: Count,
    /// Whether the first [`PROBE_ROWS`] rows were judged.
    probed: bool,
    /// Runs of adjacent rows with equal keys among the rows judged.
    runs_seen: usize,
    /// Whether each run of adjacent rows with equal keys is a group of its own, emitted with its
    /// batch, instead of looking keys up at all.
    in_runs: bool,
    in_runs_partitions: Count,
    /// Partitions whose word keys gave way to a grid after the probe.
    in_grid_partitions: Count,
    /// What handing the input over needs, until it is.
    handover: Option<Handover>,
    /// DataFusion's partial aggregation of the rest of the input, once handed over.
    handed_over: Option<SendableRecordBatchStream>,
    /// The keys seen so far, when this plan stands for an inner final phase too.
    distinct: Option<SeenKeys>,
    /// The filter this plan applies, if it fused one.
    filter: Option<Arc<FusedFilter>>,
    /// Groups numbered below this hold no key and are never emitted: group 0 takes the rows a
    /// fused filter rejects.
    reserved_groups: usize,
    input: SendableRecordBatchStream,
    done: bool,
}

/// The (outer group, key) pairs one partition of a fused plan has seen. A key's rows all come to
/// one partition: the inner final phase's input is partitioned by its group columns.
struct SeenKeys {
    key: Arc<DistinctKey>,
    interner: Interner,
    seen: SeenPairs,
    partition: usize,
}

/// A set of (outer group, key) pairs. A number's word takes 65 bits (see [`value_words`]), so with
/// a 32-bit group it packs into one 128-bit word: 16 bytes a pair instead of 32, and half the
/// cache misses once the set outgrows the CPU's caches (1.5 million pairs a partition in
/// `marts.customer_category_mix`). A text's word takes all 128 bits, so text keys stay pairs.
enum SeenPairs {
    Packed(HashSet<u128>),
    Pairs(HashSet<(u32, u128)>),
}

impl SeenPairs {
    fn for_kind(kind: KeyKind) -> Self {
        match kind {
            KeyKind::Text => SeenPairs::Pairs(HashSet::default()),
            KeyKind::Value | KeyKind::Dense | KeyKind::Grid => SeenPairs::Packed(HashSet::default()),
        }
    }

    fn reserve(&mut self, more: usize) {
        match self {
            SeenPairs::Packed(set) => set.reserve(more),
            SeenPairs::Pairs(set) => set.reserve(more),
        }
    }

    /// Whether the pair is new.
    fn insert(&mut self, group: u32, word: u128) -> bool {
        match self {
            SeenPairs::Packed(set) => set.insert((u128::from(group) << 65) | word),
            SeenPairs::Pairs(set) => set.insert((group, word)),
        }
    }

    fn len(&self) -> usize {
        match self {
            SeenPairs::Packed(set) => set.len(),
            SeenPairs::Pairs(set) => set.len(),
        }
    }

    fn size(&self) -> usize {
        // A slot and its control byte.
        match self {
            SeenPairs::Packed(set) => set.capacity() * 17,
            SeenPairs::Pairs(set) => set.capacity() * 33,
        }
    }
}

impl SeenKeys {
    /// Whether each row is the first of its (outer group, key).
    fn first_rows(&mut self, batch: &RecordBatch, groups: &[usize]) -> BooleanArray {
        let column = [batch.column(self.key.column).clone()];
        let mut keys = BatchKeys::of([self.key.kind], &column, None);
        let (words, text) = (&mut keys.words[0], keys.texts[0]);
        if let Some(text) = text {
            for (row, word) in words.iter_mut().enumerate() {
                *word = text_key(*word, text, row, &mut self.interner);
            }
        }
        let seen = &mut self.seen;
        seen.reserve(words.len());
        words
            .iter()
            .zip(groups)
            .map(|(&word, &group)| Some(seen.insert(group as u32, word)))
            .collect()
    }

    fn size(&self) -> usize {
        self.seen.size() + self.interner.size()
    }
}

/// The replaced `AggregateExec` (and the filter below it, when this plan applies it) and where it
/// would run.
struct Handover {
    aggregate: Arc<dyn ExecutionPlan>,
    filter: Option<Arc<dyn ExecutionPlan>>,
    input_properties: Arc<PlanProperties>,
    partition: usize,
    context: Arc<TaskContext>,
}

impl Aggregation {
    /// The next batches to emit: when the input ends, or earlier to give memory back; `None`
    /// once everything was emitted.
    async fn next_output(&mut self) -> Option<Result<Vec<RecordBatch>>> {
        if self.done {
            return None;
        }
        if let Some(rest) = &mut self.handed_over {
            // DataFusion's partial state, passed on as it comes (its time is its own).
            return match rest.next().await {
                Some(Ok(batch)) => {
                    self.baseline.record_output(batch.num_rows());
                    self.baseline.output_batches().add(1);
                    Some(Ok(vec![batch]))
                }
                Some(Err(e)) => {
                    self.done = true;
                    Some(Err(e))
                }
                None => {
                    self.done = true;
                    self.baseline.done();
                    None
                }
            };
        }
        let elapsed = self.baseline.elapsed_compute().clone();
        while let Some(batch) = self.input.next().await {
            let timer = elapsed.timer();
            let aggregated = batch.and_then(|batch| Ok((self.aggregate(&batch)?, batch)));
            let unaggregated = match aggregated {
                Ok((true, _)) => None,
                Ok((false, batch)) => Some(batch),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            // Slots cost the same however many groups there are: only words are judged.
            let mut many_groups = false;
            if !self.probed && self.rows_seen >= PROBE_ROWS && !matches!(self.keys, KeyMap::Dense(_) | KeyMap::Grid(_))
            {
                self.probed = true;
                many_groups = self.groups_made as f64 > HANDOVER_RATIO * self.rows_seen as f64;
            }
            if many_groups && self.runs_seen as f64 <= RUN_RATIO * self.rows_seen as f64 {
                // Rows of one key come together (the lines of an order): a group per run merges
                // as much as a table of keys would, for a comparison with the previous row.
                self.in_runs = true;
                self.in_runs_partitions.add(1);
                let output = self.emit();
                self.done = output.is_err();
                timer.done();
                return Some(output);
            }
            if many_groups && self.groups.len() > 1 && !self.has_nearly_unique_column() {
                // Many combinations, but perhaps of few values in each column (a rollup by day,
                // category and region over lines that come by customer): a grid, which hands
                // over itself when the values are many too.
                let output = self.emit();
                self.keys = KeyMap::Grid(GridKeys::new(self.groups.len(), true));
                self.in_grid_partitions.add(1);
                self.done = output.is_err();
                timer.done();
                return Some(output);
            }
            if self.in_runs && self.group_count > self.reserved_groups {
                let output = self.emit();
                self.done = output.is_err();
                timer.done();
                return Some(output);
            }
            if many_groups || unaggregated.is_some() {
                let output = self.emit().and_then(|output| {
                    self.handed_over = Some(self.hand_over(unaggregated)?);
                    Ok(output)
                });
                self.done = output.is_err();
                timer.done();
                return Some(output);
            }
            if self.group_count > self.reserved_groups && self.reservation.try_resize(self.size()).is_err() {
                if let Some(distinct) = &self.distinct {
                    // The keys seen cannot be let go of (see `try_fuse`).
                    self.done = true;
                    timer.done();
                    return Some(Err(DataFusionError::ResourcesExhausted(format!(
                        "PartialAggregateExec[{}]: the {} distinct values of {} seen so far need {} bytes \
                         more than the memory pool grants",
                        distinct.partition,
                        distinct.seen.len(),
                        distinct.key.name,
                        self.size().saturating_sub(self.reservation.size()),
                    ))));
                }
                let output = self.emit();
                timer.done();
                return Some(output);
            }
            timer.done();
        }
        self.done = true;
        let timer = elapsed.timer();
        let output = self.emit();
        timer.done();
        self.baseline.done();
        Some(output)
    }

    /// Whether one group column took nearly a value per row seen (a customer's name, grouped by
    /// name and country above a join): a grid would number nearly every row in that column, and
    /// DataFusion's grouping does better. ("Top 20 customers": 36 ms of CPU in a grid for 69,000
    /// rows of one per customer, where DataFusion's final phase took 5 ms for as many.) A grid
    /// pays where each column has few values however many combinations (days, categories,
    /// regions), at most a few thousand in the probe's rows.
    fn has_nearly_unique_column(&self) -> bool {
        self.group_values.iter().any(|pieces| {
            let pieces: Vec<&dyn Array> = pieces.iter().map(|a| a.as_ref()).collect();
            let Ok(values) = concat(&pieces) else {
                return false;
            };
            let Ok(converter) = RowConverter::new(vec![SortField::new(values.data_type().clone())]) else {
                return false;
            };
            let Ok(rows) = converter.convert_columns(&[values]) else {
                return false;
            };
            let distinct: HashSet<Row> = rows.iter().collect();
            2 * distinct.len() > self.rows_seen
        })
    }

    /// Aggregates one batch; false, having changed no group, when its values are for DataFusion
    /// (a dense key's too far apart, a grid's too many combinations).
    fn aggregate(&mut self, input: &RecordBatch) -> Result<bool> {
        let input_rows = input.num_rows();
        if input_rows == 0 {
            return Ok(true);
        }
        let (passing, batch) = match &self.filter {
            Some(filter) => {
                let (passing, batch) = filter.apply(input)?;
                match passing.count_set_bits() {
                    0 => {
                        self.rows_seen += input_rows;
                        return Ok(true);
                    }
                    all if all == input_rows => (None, batch),
                    // Most rows rejected (the last 12 months of three years): copying the few
                    // passing rows out costs less than grouping and summing every row.
                    few if few * 2 <= input_rows => {
                        (None, filter_record_batch(&batch, &BooleanArray::new(passing, None))?)
                    }
                    _ => (Some(passing), batch),
                }
            }
            None => (None, input.clone()),
        };
        let (batch, passing) = (&batch, passing.as_ref());
        // The rows grouped: the passing ones only, when they were copied out. (A literal argument,
        // `SUM(1)`, becomes an array of this length.)
        let rows = batch.num_rows();
        let mut arrays = Vec::with_capacity(self.groups.len());
        for group in self.groups.iter() {
            arrays.push(group.expr.evaluate(batch)?.into_array(rows)?);
        }
        let mut grouped = Grouped {
            groups: self.group_count,
            ..Grouped::default()
        };
        if self.in_runs {
            let keys = BatchKeys::of(self.groups.iter().map(|g| g.kind), &arrays, passing);
            group_runs(&keys, &mut grouped);
        } else if let KeyMap::Dense(dense) = &mut self.keys {
            if !dense.group(&arrays[0], passing, &mut grouped)? {
                return Ok(false);
            }
        } else if let KeyMap::Grid(grid) = &mut self.keys {
            let keys = BatchKeys::of(self.groups.iter().map(|g| g.kind), &arrays, passing);
            if !grid.group(&keys, &mut self.interners, &mut grouped) {
                return Ok(false);
            }
        } else {
            self.group_words(&arrays, passing, &mut grouped);
        }
        self.group_count = grouped.groups;
        let Grouped {
            indices, first_rows, ..
        } = grouped;
        self.groups_made += first_rows.len();
        if !first_rows.is_empty() {
            let first_rows = UInt32Array::from(first_rows);
            for ((array, values), field) in arrays.iter().zip(&mut self.group_values).zip(self.schema.fields()) {
                let mut taken = take(array, &first_rows, None)?;
                if matches!(taken.data_type(), DataType::Dictionary(..)) {
                    // Text read as keys into a dictionary: the output holds the text.
                    taken = cast(&taken, field.data_type())?;
                }
                if let Some(text) = taken.as_string_view_opt() {
                    // Own the few values instead of holding the batch's buffers.
                    taken = Arc::new(text.gc());
                }
                values.push(taken);
            }
        }
        let first_rows = self.distinct.as_mut().map(|d| d.first_rows(batch, &indices));
        let fold = self.group_count <= FOLDED_SUM_GROUPS && rows >= FOLDED_SUM_ROWS_PER_GROUP * self.group_count;
        let mut touched = None;
        for (a, (((aggregate, filter), accumulator), narrow_sum)) in self
            .aggregates
            .iter()
            .zip(self.filters.iter())
            .zip(&mut self.accumulators)
            .zip(&mut self.narrow_sums)
            .enumerate()
        {
            let values = aggregate
                .expressions()
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            let filter = match filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let mut filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
            if let (Some(first_rows), Some(distinct)) = (&first_rows, &self.distinct)
                && distinct.key.first_rows_only[a]
            {
                // A fused plan's aggregates have no filters of their own (see `try_fuse`).
                filter = Some(first_rows);
            }
            if let Some(narrow_sum) = narrow_sum {
                let [argument] = &values[..] else {
                    return internal_err!("a narrow sum has one argument");
                };
                if fold && argument.null_count() == 0 {
                    let touched = touched.get_or_insert_with(|| groups_with_rows(&indices, self.group_count));
                    if let Some(sums) = fold_sums(argument, &indices, self.group_count, touched) {
                        narrow_sum.add_folded(
                            sums.as_primitive::<Decimal128Type>().values(),
                            touched,
                            self.group_count,
                        );
                        continue;
                    }
                }
                let Some(argument) = argument.as_primitive_opt::<Decimal64Type>() else {
                    return internal_err!("a narrow sum's argument is read as Decimal64");
                };
                narrow_sum.add_rows(argument, &indices, self.group_count);
                continue;
            }
            // A plain SUM over a batch of many rows and few groups: the batch's sums per group
            // first, then the accumulator adds one value per group (see `fold_sums`).
            if filter.is_none()
                && fold
                && aggregate.fun().name() == "sum"
                && let [argument] = &values[..]
            {
                let touched = touched.get_or_insert_with(|| groups_with_rows(&indices, self.group_count));
                if let Some(sums) = fold_sums(argument, &indices, self.group_count, touched) {
                    accumulator.update_batch(&[sums], touched, None, self.group_count)?;
                    continue;
                }
            }
            accumulator.update_batch(&widened(values)?, &indices, filter, self.group_count)?;
        }
        self.rows_seen += input_rows;
        Ok(true)
    }

    /// Groups a batch by the words of its group columns (the rows `passing` rejects, if given, to
    /// [`REJECTED_GROUP`]).
    fn group_words(&mut self, arrays: &[ArrayRef], passing: Option<&BooleanBuffer>, grouped: &mut Grouped) {
        if let (KeyMap::One(keys), [array]) = (&mut self.keys, arrays)
            && let Some(dictionary) = array.as_dictionary_opt::<Int32Type>()
        {
            if !self.probed {
                let codes = dictionary.keys().values();
                self.runs_seen += 1 + codes.windows(2).filter(|pair| pair[0] != pair[1]).count();
            }
            keys.group_dictionary(dictionary, passing, &mut self.interners[0], grouped);
            return;
        }
        let keys = BatchKeys::of(self.groups.iter().map(|g| g.kind), arrays, passing);
        if !self.probed {
            self.runs_seen += run_starts(&keys).into_iter().filter(|&start| start).count();
        }
        self.keys.group(&keys, &mut self.interners, grouped);
    }

    /// The rest of the input (from `first`, a batch read but not aggregated, if any), aggregated
    /// by the `AggregateExec` this plan replaced.
    fn hand_over(&mut self, first: Option<RecordBatch>) -> Result<SendableRecordBatchStream> {
        let Some(handover) = self.handover.take() else {
            return internal_err!("a partition's input is handed over once");
        };
        let schema = self.input.schema();
        let mut rest = std::mem::replace(&mut self.input, Box::pin(EmptyRecordBatchStream::new(schema.clone())));
        if let Some(first) = first {
            let batches = futures::stream::once(async move { Ok(first) }).chain(rest);
            rest = Box::pin(RecordBatchStreamAdapter::new(schema.clone(), batches));
        }
        // The replaced plans read the table's types where this plan reads some narrower.
        let wanted = handover.input_properties.eq_properties.schema().clone();
        if wanted.fields() != schema.fields() {
            let batches = rest.map(move |batch| batch.and_then(|batch| widened_batch(batch, &wanted)));
            rest = Box::pin(RecordBatchStreamAdapter::new(
                handover.input_properties.eq_properties.schema().clone(),
                batches,
            ));
        }
        let mut input: Arc<dyn ExecutionPlan> = Arc::new(HandedOverInput {
            properties: handover.input_properties,
            rest: std::sync::Mutex::new(Some(rest)),
        });
        let keep = || ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
        if let Some(filter) = handover.filter {
            input = filter.replace_children(vec![input], keep())?;
        }
        let aggregate = handover.aggregate.replace_children(vec![input], keep())?;
        self.handed_over_partitions.add(1);
        aggregate.execute(handover.partition, handover.context)
    }

    fn size(&self) -> usize {
        let accumulators: usize = self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.narrow_sums.iter().flatten().map(NarrowSum::size).sum::<usize>();
        let interners: usize = self.interners.iter().map(Interner::size).sum();
        let values: usize = self
            .group_values
            .iter()
            .flatten()
            .map(|a| a.get_array_memory_size())
            .sum();
        let seen = self.distinct.as_ref().map_or(0, SeenKeys::size);
        accumulators + interners + values + self.keys.size() + seen
    }

    /// Everything held, as partial state in the output schema, and a fresh start.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        if self.group_count == self.reserved_groups {
            self.reservation.free();
            return Ok(Vec::new());
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for values in &self.group_values {
            let pieces: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
            columns.push(concat(&pieces)?);
        }
        let (from, groups) = (self.reserved_groups, self.group_count - self.reserved_groups);
        for (accumulator, narrow_sum) in self.accumulators.iter_mut().zip(&mut self.narrow_sums) {
            match narrow_sum {
                Some(narrow_sum) => {
                    let data_type = self.schema.field(columns.len()).data_type().clone();
                    columns.push(narrow_sum.state(from, self.group_count, data_type));
                }
                None => columns.extend(
                    accumulator
                        .state(EmitTo::All)?
                        .into_iter()
                        .map(|s| s.slice(from, groups)),
                ),
            }
        }
        let all = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.baseline.record_output(all.num_rows());
        self.reset()?;
        let mut batches = Vec::with_capacity(all.num_rows().div_ceil(self.batch_size.max(1)));
        let mut offset = 0;
        while offset < all.num_rows() {
            let length = self.batch_size.max(1).min(all.num_rows() - offset);
            batches.push(all.slice(offset, length));
            offset += length;
        }
        self.baseline.output_batches().add(batches.len());
        Ok(batches)
    }

    fn reset(&mut self) -> Result<()> {
        self.accumulators = self
            .aggregates
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<_>>()?;
        self.narrow_sums.iter_mut().flatten().for_each(NarrowSum::clear);
        self.keys.clear();
        for interner in &mut self.interners {
            interner.clear();
        }
        for values in &mut self.group_values {
            values.clear();
        }
        self.group_count = self.reserved_groups;
        self.reservation.free();
        Ok(())
    }
}

/// The rest of one partition's input, as a plan the replaced `AggregateExec` executes once.
struct HandedOverInput {
    /// The original input's: the stream is the rest of it.
    properties: Arc<PlanProperties>,
    rest: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for HandedOverInput {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("HandedOverInput")
    }
}

impl DisplayAs for HandedOverInput {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("HandedOverInput")
    }
}

impl ExecutionPlan for HandedOverInput {
    fn name(&self) -> &str {
        "HandedOverInput"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("HandedOverInput has no children");
        }
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut rest = self.rest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rest.take()
            .ok_or_else(|| internal_datafusion_err!("the rest of a partition's input is read once"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal64Array, Decimal128Array, DictionaryArray,
        Float64Array, Int32Array, Int64Array, RecordBatch, StringViewArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int32Type};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::{
        BatchKeys, GridKeys, GridPlaces, Grouped, Interner, KeyKind, PartialAggregateExec, PartialAggregation,
        fold_sums, groups_with_rows, lane_sums,
    };
    use crate::planner_options::PlannerOptions;

    const LONG_A: &str = "Garden and outdoor furniture";
    const LONG_B: &str = "Garden and outdoor lighting";

    /// Order lines in three partitions of several batches: text of 12 bytes or fewer and longer
    /// (two long values sharing their first 12 bytes), the empty text, nulls in every column,
    /// both zeros and a NaN. One batch takes its text from a dictionary, as a Parquet reader
    /// does, so equal long values share one view there.
    fn lines(row: usize) -> (Option<&'static str>, Option<&'static str>, Option<i64>, Option<f64>) {
        let category = [
            Some(LONG_A),
            Some("Toys"),
            Some(LONG_B),
            None,
            Some(""),
            Some("Kitchen"),
        ][row % 6];
        let region = [Some("North"), Some("South-west of the river"), None][row % 7 % 3];
        let quantity = (row % 11 != 3).then_some((row % 5) as i64);
        let weight = [Some(0.0), Some(-0.0), Some(f64::NAN), None, Some(2.5)][row % 5];
        (category, region, quantity, weight)
    }

    fn batch(rows: std::ops::Range<usize>, from_dictionary: bool) -> RecordBatch {
        let all: Vec<_> = rows.clone().map(lines).collect();
        let category: ArrayRef = if from_dictionary {
            let dictionary: DictionaryArray<Int32Type> = all.iter().map(|l| l.0).collect();
            cast(&dictionary, &DataType::Utf8View).unwrap()
        } else {
            Arc::new(all.iter().map(|l| l.0).collect::<StringViewArray>())
        };
        RecordBatch::try_from_iter([
            ("category", category),
            (
                "region",
                Arc::new(all.iter().map(|l| l.1).collect::<StringViewArray>()) as ArrayRef,
            ),
            ("quantity", Arc::new(all.iter().map(|l| l.2).collect::<Int64Array>())),
            ("weight", Arc::new(all.iter().map(|l| l.3).collect::<Float64Array>())),
            (
                "net_amount",
                Arc::new(
                    rows.clone()
                        .map(|r| (r % 13 != 0).then_some(r as i128 * 37 - 900))
                        .collect::<Decimal128Array>()
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
            ),
            (
                "order_date",
                Arc::new(
                    rows.clone()
                        .map(|r| (r % 17 != 0).then_some(19_000 + (r % 400) as i32))
                        .collect::<Date32Array>(),
                ),
            ),
            (
                "shipped_at",
                Arc::new(TimestampNanosecondArray::from_iter(
                    rows.clone()
                        .map(|r| (r % 19 != 0).then_some(r as i64 * 3_600_000_000_000)),
                )),
            ),
            (
                "returned",
                Arc::new(
                    rows.clone()
                        .map(|r| (r % 23 != 0).then_some(r % 4 == 0))
                        .collect::<BooleanArray>(),
                ),
            ),
            ("line", Arc::new(rows.map(|r| r as i32).collect::<Int32Array>())),
        ])
        .unwrap()
    }

    fn session(rule: bool) -> SessionContext {
        let config =
            PlannerOptions::default().install(SessionConfig::new().with_target_partitions(3).with_batch_size(100));
        let mut builder = SessionStateBuilder::new().with_config(config).with_default_features();
        if rule {
            builder = builder.with_physical_optimizer_rule(Arc::new(PartialAggregation));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let partitions = vec![
            vec![batch(0..700, false), batch(700..1000, true)],
            vec![batch(1000..1001, false), batch(1001..1900, true)],
            vec![batch(1900..2500, false)],
        ];
        let schema = partitions[0][0].schema();
        ctx.register_table("order_line", Arc::new(MemTable::try_new(schema, partitions).unwrap()))
            .unwrap();
        // A group for every other row (ids), past the probe in each of the three partitions the
        // 75 batches are dealt to; and a column of three values (shelves).
        let ids: Vec<RecordBatch> = (0..75)
            .map(|b| {
                let keys: StringViewArray = (b * 5_000..(b + 1) * 5_000)
                    .map(|k| Some(format!("order-line-{:010}", k / 2)))
                    .collect();
                let shelves: StringViewArray = (b * 5_000..(b + 1) * 5_000)
                    .map(|k| Some(format!("shelf {}", k % 3)))
                    .collect();
                RecordBatch::try_from_iter([
                    ("id", Arc::new(keys) as ArrayRef),
                    ("shelf", Arc::new(shelves) as ArrayRef),
                ])
                .unwrap()
            })
            .collect();
        let schema = ids[0].schema();
        ctx.register_table("line_ids", Arc::new(MemTable::try_new(schema, vec![ids]).unwrap()))
            .unwrap();
        ctx
    }

    /// How many partitions of the (last) `PartialAggregateExec` in the plan of `sql` counted
    /// `metric` (`handed_over`, `in_runs`), having run it.
    async fn partitions(ctx: &SessionContext, sql: &str, metric: &str) -> usize {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let mut counted = None;
        plan.apply(|node| {
            if node.name() == "PartialAggregateExec" {
                counted = node.metrics().and_then(|m| m.sum_by_name(metric));
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        counted.expect("the rule applies").as_usize()
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// Registers `name`, two partitions of `batches` batches of `rows` rows each, made by `batch`
    /// from the rows' numbers (counted on from 0 across the batches, the first partition's first).
    fn register_in_partitions(
        ctx: &SessionContext,
        name: &str,
        batches: i64,
        rows: i64,
        batch: impl Fn(std::ops::Range<i64>) -> RecordBatch,
    ) {
        let partitions: Vec<Vec<RecordBatch>> = (0..2)
            .map(|p| {
                (0..batches)
                    .map(|b| batch((p * batches + b) * rows..(p * batches + b + 1) * rows))
                    .collect()
            })
            .collect();
        let schema = partitions[0][0].schema();
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, partitions).unwrap()))
            .unwrap();
    }

    /// The interners of a grid's columns: its long text values, kept from batch to batch.
    fn interners(columns: usize) -> Vec<Interner> {
        (0..columns).map(|_| Interner::default()).collect()
    }

    async fn physical_plan(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        displayable(plan.as_ref()).indent(false).to_string()
    }

    /// Every grouping the rule takes gives the answers DataFusion's own partial aggregation gives.
    #[tokio::test]
    async fn answers_as_datafusion_does() {
        let ours = session(true);
        let theirs = session(false);
        let queries = [
            "SELECT category, SUM(net_amount) AS revenue, COUNT(*) AS lines, COUNT(quantity) AS counted, \
             AVG(quantity) AS average, MIN(order_date) AS first, MAX(shipped_at) AS last \
             FROM order_line GROUP BY category ORDER BY category",
            "SELECT region, category, returned, SUM(quantity) AS units, MAX(net_amount) AS largest \
             FROM order_line GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT weight, order_date, region, COUNT(*) AS lines FROM order_line GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT date_trunc('month', shipped_at) AS month, category, SUM(net_amount) AS revenue \
             FROM order_line GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT category, COUNT(*) FILTER (WHERE returned) AS returned_lines, \
             SUM(quantity) FILTER (WHERE quantity > 2) AS big FROM order_line GROUP BY 1 ORDER BY 1",
            "SELECT category, region, line % 7 AS bucket, order_date, SUM(weight) AS w FROM order_line \
             WHERE quantity > 0 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            // Sums without nulls over few groups, folded per batch (`fold_sums`): integers and
            // decimals, beside a sum with nulls and one of floating-point values, row by row.
            "SELECT category, SUM(CAST(line AS BIGINT)) AS lines_total, SUM(COALESCE(net_amount, 0)) AS revenue, \
             SUM(CAST(line AS DECIMAL(12, 2)) * 3) AS tripled, SUM(net_amount) AS with_nulls, \
             SUM(line * 0.5) AS floating FROM order_line WHERE line % 5 <> 1 GROUP BY 1 ORDER BY 1",
            "SELECT id, COUNT(*) AS n FROM line_ids GROUP BY id ORDER BY n DESC, id LIMIT 5",
            "SELECT COUNT(*) AS groups, SUM(n) AS rows FROM (SELECT id, COUNT(*) AS n FROM line_ids GROUP BY id)",
            // A lone integer or date column, by slot: nulls, negative values, and values too far
            // apart (line 900, in the second batch of the first partition: its batch and the rest
            // go to DataFusion).
            "SELECT quantity, COUNT(*) AS lines, SUM(net_amount) AS revenue FROM order_line GROUP BY 1 ORDER BY 1",
            "SELECT order_date, COUNT(*) AS lines, AVG(weight) AS w FROM order_line GROUP BY 1 ORDER BY 1",
            "SELECT CAST(line % 7 AS BIGINT) - 3 AS bucket, SUM(quantity) AS units FROM order_line \
             GROUP BY 1 ORDER BY 1",
            "SELECT CASE WHEN line = 900 THEN 1000000000000 WHEN line = 5 THEN -1000000000000 ELSE line END AS k, \
             COUNT(*) AS n, SUM(quantity) AS units FROM order_line GROUP BY 1 ORDER BY 1",
            // Several integer or date columns, by a grid of slots: nulls in both, values far apart
            // (hashes, as `product_key` is), a filter below, and numbers that outgrow the grid
            // (a value per row, a day and a quantity: the rest goes to DataFusion).
            "SELECT quantity, order_date, COUNT(*) AS lines, SUM(net_amount) AS revenue FROM order_line \
             GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT CAST(line % 7 AS BIGINT) * 1000000000039 - 3000000000000 AS a, line % 3 AS b, quantity, \
             SUM(weight) AS w, MIN(category) AS c FROM order_line WHERE quantity > 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT line, order_date, quantity, COUNT(*) AS n FROM order_line GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        ];
        for sql in queries {
            assert!(
                physical_plan(&ours, sql).await.contains("PartialAggregateExec"),
                "the rule applies to {sql}"
            );
            assert_eq!(answer(&ours, sql).await, answer(&theirs, sql).await, "{sql}");
        }
        // One answer checked by hand: 2,500 lines, every sixth of each category.
        let counts = answer(
            &ours,
            "SELECT category, COUNT(*) AS lines FROM order_line GROUP BY 1 ORDER BY 1 NULLS FIRST",
        )
        .await;
        let expected = [
            "+------------------------------+-------+",
            "| category                     | lines |",
            "+------------------------------+-------+",
            "|                              | 417   |",
            "|                              | 416   |",
            "| Garden and outdoor furniture | 417   |",
            "| Garden and outdoor lighting  | 417   |",
            "| Kitchen                      | 416   |",
            "| Toys                         | 417   |",
            "+------------------------------+-------+",
        ];
        assert_eq!(counts, expected.join("\n"));
    }

    /// A batch's sums folded per group: equal to adding row by row, for the groups with rows only,
    /// wrapping as DataFusion's sums do, whatever the number of rows past the last whole set of lanes.
    #[test]
    fn folds_sums_per_group() {
        let indices: Vec<usize> = (0..103).map(|row| [0, 2, 2, 3, 0, 2][row % 6]).collect();
        let values: Vec<i64> = (0..103).map(|row| row as i64 * 7 - 300).collect();
        let groups = groups_with_rows(&indices, 5);
        assert_eq!(groups, [0, 2, 3], "groups 1 and 4 have no rows");
        let sums = lane_sums(&values, |v| v, &indices, 5, &groups);
        let by_row: Vec<i64> = groups
            .iter()
            .map(|&g| {
                values
                    .iter()
                    .zip(&indices)
                    .filter(|(_, i)| **i == g)
                    .map(|(v, _)| v)
                    .sum()
            })
            .collect();
        assert_eq!(sums, by_row);
        assert_eq!(lane_sums(&[i64::MAX, 1, 5], |v| v, &[0, 0, 0], 1, &[0]), [i64::MIN + 5]);

        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![150, -25, 1_000, 7, 3])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        );
        let sums = fold_sums(&decimals, &[1, 0, 1, 1, 0], 2, &[0, 1]).unwrap();
        assert_eq!(sums.data_type(), &DataType::Decimal128(12, 2));
        assert_eq!(sums.as_primitive::<Decimal128Type>().values(), &[-22, 1_157]);
        // Read narrow from Parquet: 64-bit values, 128-bit sums past the 64-bit range.
        let narrow: ArrayRef = Arc::new(
            Decimal64Array::from(vec![i64::MAX, 5, i64::MAX, -7])
                .with_precision_and_scale(18, 3)
                .unwrap(),
        );
        let sums = fold_sums(&narrow, &[0, 1, 0, 1], 2, &[0, 1]).unwrap();
        assert_eq!(sums.data_type(), &DataType::Decimal128(18, 3));
        assert_eq!(
            sums.as_primitive::<Decimal128Type>().values(),
            &[2 * i128::from(i64::MAX), -2]
        );
        let with_null: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert!(fold_sums(&with_null, &[0, 0], 1, &[0]).is_none(), "nulls go row by row");
        let floating: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
        assert!(
            fold_sums(&floating, &[0, 0], 1, &[0]).is_none(),
            "floating point goes row by row"
        );
    }

    /// A grid gives equal keys one group and different keys different groups, in every batch,
    /// while its first column's numbers outgrow their bits batch by batch (0 to 11 bits).
    #[test]
    fn a_grid_keeps_each_key_in_its_group_as_it_widens() {
        let (mut grid, mut held) = (GridKeys::new(2, false), interners(2));
        let mut grouped = Grouped::default();
        let mut group_of_key = std::collections::HashMap::new();
        for batch in 0..12 {
            let rows: Vec<i64> = (0..1 << batch).map(|r| r * 7 % (1 << batch)).collect();
            let first: ArrayRef = Arc::new(Int64Array::from_iter(
                rows.iter().map(|&r| (r % 5 != 4).then_some(r * 1_000_000_007)),
            ));
            let second: ArrayRef = Arc::new(Date32Array::from_iter_values(rows.iter().map(|&r| (r % 3) as i32)));
            let arrays = [first, second];
            let keys = BatchKeys::of([KeyKind::Grid, KeyKind::Grid], &arrays, None);
            assert!(grid.group(&keys, &mut held, &mut grouped), "batch {batch} fits");
            assert_eq!(grouped.indices.len(), rows.len());
            for (row, &group) in grouped.indices.iter().enumerate() {
                let key = (keys.words[0][row], keys.words[1][row]);
                assert_eq!(
                    *group_of_key.entry(key).or_insert(group),
                    group,
                    "batch {batch}, row {row}"
                );
            }
        }
        let groups: std::collections::HashSet<usize> = group_of_key.values().copied().collect();
        assert_eq!(groups.len(), group_of_key.len(), "different keys, different groups");
        assert_eq!(grouped.groups, group_of_key.len());
        // 2,048 values in each of three columns need 2^33 places: too many.
        let wide: ArrayRef = Arc::new(Int64Array::from_iter_values(0..2_048));
        let arrays = [wide.clone(), wide.clone(), wide];
        let keys = BatchKeys::of([KeyKind::Grid; 3], &arrays, None);
        assert!(!GridKeys::new(3, false).group(&keys, &mut interners(3), &mut Grouped::default()));
    }

    /// Partitions whose first rows hold a group for every other row hand the rest to DataFusion's
    /// partial aggregation (the answers above are the same); few groups keep the words.
    #[tokio::test]
    async fn hands_many_groups_over_to_datafusion() {
        async fn handed_over(ctx: &SessionContext, sql: &str) -> usize {
            partitions(ctx, sql, "handed_over").await
        }
        let ctx = session(true);
        // Each of the (up to three) partitions that read past the probe hands over: a key per row.
        let unique = "SELECT concat(id, shelf) AS k, COUNT(*) FROM line_ids GROUP BY 1";
        assert!(handed_over(&ctx, unique).await > 0);
        assert_eq!(partitions(&ctx, unique, "in_runs").await, 0);
        // Two columns, one of them a value per row: not a grid, which would number every row.
        let unique_and_shelf = "SELECT concat(id, shelf) AS k, shelf, COUNT(*) FROM line_ids GROUP BY 1, 2";
        assert!(handed_over(&ctx, unique_and_shelf).await > 0);
        assert_eq!(partitions(&ctx, unique_and_shelf, "in_grid").await, 0);
        // A key per two adjacent rows: a group per run instead, and the same answers as
        // DataFusion's (checked by hand: 187,500 ids of two rows each).
        let pairs = "SELECT id, COUNT(*) FROM line_ids GROUP BY id";
        assert_eq!(handed_over(&ctx, pairs).await, 0);
        assert!(partitions(&ctx, pairs, "in_runs").await > 0);
        let counts = "SELECT COUNT(*) AS ids, MIN(n) AS least, MAX(n) AS most FROM \
                      (SELECT id, COUNT(*) AS n FROM line_ids GROUP BY id)";
        let expected = [
            "+--------+-------+------+",
            "| ids    | least | most |",
            "+--------+-------+------+",
            "| 187500 | 2     | 2    |",
            "+--------+-------+------+",
        ];
        assert_eq!(answer(&ctx, counts).await, expected.join("\n"));
        assert_eq!(answer(&session(false), counts).await, expected.join("\n"));
        // Slots: however many groups, until a value lies too far from the others.
        assert_eq!(
            handed_over(
                &ctx,
                "SELECT CAST(line AS BIGINT) AS k, COUNT(*) FROM order_line GROUP BY 1"
            )
            .await,
            0
        );
        let far =
            "SELECT CASE WHEN line = 900 THEN 1000000000000 ELSE line END AS k, COUNT(*) FROM order_line GROUP BY 1";
        assert_eq!(handed_over(&ctx, far).await, 1);
        assert_eq!(
            handed_over(&ctx, "SELECT shelf, COUNT(*) FROM line_ids GROUP BY shelf").await,
            0
        );
        // A grid: however many groups, until the columns' numbers need more places than the
        // groups warrant (a line per row, 400 days and 6 quantities need 2^22 in a partition's
        // first batch, of 600 or 700 rows; DataFusion groups expressions of `line` by `line`).
        assert_eq!(
            handed_over(
                &ctx,
                "SELECT quantity, order_date, COUNT(*) FROM order_line GROUP BY 1, 2"
            )
            .await,
            0
        );
        assert_eq!(
            handed_over(
                &ctx,
                "SELECT line, order_date, quantity, COUNT(*) FROM order_line GROUP BY 1, 2, 3"
            )
            .await,
            3
        );
        let sql = "SELECT shelf, COUNT(*) AS n FROM line_ids GROUP BY shelf ORDER BY shelf";
        let expected = [
            "+---------+--------+",
            "| shelf   | n      |",
            "+---------+--------+",
            "| shelf 0 | 125000 |",
            "| shelf 1 | 125000 |",
            "| shelf 2 | 125000 |",
            "+---------+--------+",
        ];
        assert_eq!(answer(&ctx, sql).await, expected.join("\n"));
    }

    /// Keys in two partitions of four batches: `k` close together but for one row far away
    /// (24,000 rows; row 7,001, in the first partition's third batch, is 10^12), `code` a text per
    /// row, `flag` true on rows not divisible by 3, null on every tenth.
    fn far_keys(ctx: &SessionContext) {
        let batch = |rows: std::ops::Range<i64>| {
            RecordBatch::try_from_iter([
                (
                    "k",
                    Arc::new(Int64Array::from_iter_values(
                        rows.clone().map(|r| if r == 7_001 { 1_000_000_000_000 } else { r }),
                    )) as ArrayRef,
                ),
                (
                    "code",
                    Arc::new(
                        rows.clone()
                            .map(|r| Some(format!("code-{r:08}")))
                            .collect::<StringViewArray>(),
                    ),
                ),
                (
                    "flag",
                    Arc::new(
                        rows.map(|r| (r % 10 != 0).then_some(r % 3 != 0))
                            .collect::<BooleanArray>(),
                    ),
                ),
            ])
            .unwrap()
        };
        register_in_partitions(ctx, "far_keys", 4, 3_000, batch);
    }

    /// A filter right below a partial aggregation is applied by it: the rows it rejects (false
    /// or null) go to a group of their own, never emitted. The answers are DataFusion's, by words,
    /// by slots and by runs, handing over from either; one filter is left alone, because the
    /// aggregation's expression could fail on the rows it rejects.
    #[tokio::test]
    async fn applies_the_filter_below() {
        let ours = session(true);
        let theirs = session(false);
        let unfused = session(true);
        unfused.sql("SET tributary.filtered_aggregation = false").await.unwrap();
        for ctx in [&ours, &theirs, &unfused] {
            far_keys(ctx);
        }
        let runs = "SELECT COUNT(*) AS ids, SUM(n) AS rows, MIN(n) AS least, MAX(n) AS most FROM \
                    (SELECT id, COUNT(*) AS n FROM line_ids WHERE shelf <> 'shelf 1' GROUP BY id)";
        let codes = "SELECT COUNT(*) AS codes, SUM(n) AS rows FROM \
                     (SELECT code, COUNT(*) AS n FROM far_keys WHERE flag GROUP BY code)";
        let keys = "SELECT COUNT(*) AS keys, SUM(n) AS rows, MAX(k) AS largest FROM \
                    (SELECT k, COUNT(*) AS n FROM far_keys WHERE flag GROUP BY k)";
        let queries = [
            // By words, most rows passing (rejected rows to their own group): "Toys" is only on
            // rejected rows; a null quantity rejects.
            "SELECT category, SUM(net_amount) AS revenue, COUNT(*) AS lines, AVG(quantity) AS average \
             FROM order_line WHERE category <> 'Toys' AND quantity >= 1 GROUP BY 1 ORDER BY 1",
            "SELECT region, category, returned, SUM(quantity) AS units, MAX(net_amount) AS largest \
             FROM order_line WHERE region IS NULL OR region <> 'North' OR returned GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            // Most rows rejected (the passing ones copied out); a literal argument as long as them.
            "SELECT category, SUM(net_amount) AS revenue, COUNT(*) AS lines, SUM(1) AS ones FROM order_line \
             WHERE category <> 'Toys' AND quantity > 2 GROUP BY 1 ORDER BY 1",
            // Whole batches rejected (lines 1,000 to 2,399); arithmetic in the argument.
            "SELECT date_trunc('month', shipped_at) AS month, category, SUM(net_amount - net_amount * 2) AS r \
             FROM order_line WHERE line < 1000 OR line >= 2400 GROUP BY 1, 2 ORDER BY 1, 2",
            // By slots.
            "SELECT quantity, COUNT(*) AS lines, SUM(net_amount) AS revenue FROM order_line \
             WHERE region = 'North' GROUP BY 1 ORDER BY 1",
            "SELECT quantity, COUNT(*) AS lines, SUM(net_amount) AS revenue FROM order_line \
             WHERE region IS DISTINCT FROM 'North' GROUP BY 1 ORDER BY 1",
            // By slots, without nulls: the filter's bits read 64 rows at a time, in batches of
            // 700, 300, 1, 899 and 600 rows.
            "SELECT line, COUNT(*) AS lines, SUM(quantity) AS units \
             FROM order_line WHERE region IS DISTINCT FROM 'North' GROUP BY 1 ORDER BY 1",
            runs,
            codes,
            keys,
        ];
        for sql in queries {
            let plan = physical_plan(&ours, sql).await;
            assert!(
                plan.contains(", filter=") && !plan.contains("FilterExec"),
                "{sql}\n{plan}"
            );
            assert!(physical_plan(&unfused, sql).await.contains("FilterExec"), "{sql}");
            let expected = answer(&theirs, sql).await;
            assert_eq!(answer(&ours, sql).await, expected, "{sql}");
            assert_eq!(answer(&unfused, sql).await, expected, "{sql}");
        }
        // By hand. Runs: no id has both rows on shelf 1 (ids are pairs of consecutive lines).
        assert!(partitions(&ours, runs, "in_runs").await > 0);
        let expected = [
            "+--------+--------+-------+------+",
            "| ids    | rows   | least | most |",
            "+--------+--------+-------+------+",
            "| 187500 | 250000 | 1     | 2    |",
            "+--------+--------+-------+------+",
        ];
        assert_eq!(answer(&ours, runs).await, expected.join("\n"));
        // Handed over: 24,000 rows less 8,000 divisible by 3 and 2,400 by 10, of which 800 by both.
        assert!(partitions(&ours, codes, "handed_over").await > 0);
        assert!(partitions(&ours, keys, "handed_over").await > 0);
        let expected = [
            "+-------+-------+---------------+",
            "| keys  | rows  | largest       |",
            "+-------+-------+---------------+",
            "| 14400 | 14400 | 1000000000000 |",
            "+-------+-------+---------------+",
        ];
        assert_eq!(answer(&ours, keys).await, expected.join("\n"));
        // Left alone: a division by zero on the rows the filter rejects.
        let guarded = "SELECT category, SUM(net_amount / quantity) AS per_unit FROM order_line \
                       WHERE quantity <> 0 GROUP BY 1 ORDER BY 1";
        assert!(physical_plan(&ours, guarded).await.contains("FilterExec"));
        assert_eq!(answer(&ours, guarded).await, answer(&theirs, guarded).await);
        // Left alone: text cast to a number, which fails on "North".
        let cast = "SELECT category, SUM(CAST(region AS DOUBLE)) AS r FROM order_line \
                    WHERE region IS NULL GROUP BY 1 ORDER BY 1";
        assert!(physical_plan(&ours, cast).await.contains("FilterExec"));
        assert_eq!(answer(&ours, cast).await, answer(&theirs, cast).await);
    }

    /// A single DISTINCT: the final phase of the inner grouping (by the outer groups and the
    /// distinct value) is folded into the outer partial phase, with the answers DataFusion gives
    /// and one checked by hand.
    #[tokio::test]
    async fn folds_the_final_phase_of_a_distinct_grouping() {
        let ours = session(true);
        let theirs = session(false);
        let queries = [
            // Text groups with nulls; a distinct integer with nulls; SUM, MIN and MAX beside it
            // (not of `weight`: with NaN and both zeros its MAX depends on the order rows meet
            // in, in DataFusion's plan as in ours).
            "SELECT region, category, COUNT(DISTINCT quantity) AS quantities, SUM(net_amount) AS revenue, \
             MIN(order_date) AS first, MAX(shipped_at) AS last FROM order_line GROUP BY 1, 2 ORDER BY 1, 2",
            // A distinct text (long values and short) by a computed timestamp group.
            "SELECT date_trunc('month', shipped_at) AS month, COUNT(DISTINCT category) AS categories \
             FROM order_line GROUP BY 1 ORDER BY 1",
            "SELECT category, COUNT(DISTINCT region) AS regions, MAX(line) AS last FROM order_line \
             WHERE quantity > 0 GROUP BY 1 ORDER BY 1",
            // The average of the distinct values, written by hand (AVG casts its argument).
            "SELECT category, AVG(quantity) AS a, SUM(quantity) AS s FROM \
             (SELECT category, quantity FROM order_line GROUP BY 1, 2) GROUP BY 1 ORDER BY 1",
            "SELECT shelf, COUNT(DISTINCT right(id, 4)) AS short_keys, COUNT(DISTINCT right(id, 15)) AS long_keys \
             FROM line_ids GROUP BY shelf ORDER BY shelf",
        ];
        for sql in &queries[..4] {
            let plan = physical_plan(&ours, sql).await;
            assert!(plan.contains("distinct="), "the rule folds {sql}:\n{plan}");
            assert_eq!(answer(&ours, sql).await, answer(&theirs, sql).await, "{sql}");
        }
        // Two DISTINCT arguments are not one grouping: DataFusion's plan, the same answers.
        let two = queries[4];
        assert!(!physical_plan(&ours, two).await.contains("distinct="), "{two}");
        let sql =
            "SELECT shelf, COUNT(DISTINCT right(id, 4)) AS short_keys FROM line_ids GROUP BY shelf ORDER BY shelf";
        let long =
            "SELECT shelf, COUNT(DISTINCT right(id, 15)) AS long_keys FROM line_ids GROUP BY shelf ORDER BY shelf";
        // 375,000 rows, ids k / 2 for k below that: every shelf (k % 3) has each of the 10,000
        // endings of 4 digits, spread over all 75 batches and so over every partition; and 125,000
        // ids, their last 15 characters interned as long text (the two rows of an id lie on two
        // shelves).
        for (sql, name, count) in [(sql, "short_keys", 10_000), (long, "long_keys", 125_000)] {
            assert!(physical_plan(&ours, sql).await.contains("distinct="), "{sql}");
            let expected = [
                format!("+---------+{}+", "-".repeat(name.len() + 2)),
                format!("| shelf   | {name} |"),
                format!("+---------+{}+", "-".repeat(name.len() + 2)),
                format!("| shelf 0 | {count:<w$} |", w = name.len()),
                format!("| shelf 1 | {count:<w$} |", w = name.len()),
                format!("| shelf 2 | {count:<w$} |", w = name.len()),
                format!("+---------+{}+", "-".repeat(name.len() + 2)),
            ];
            assert_eq!(answer(&ours, sql).await, expected.join("\n"), "{sql}");
            assert_eq!(answer(&theirs, sql).await, expected.join("\n"), "{sql}");
        }
        // Not folded: a non-distinct AVG beside the DISTINCT, or SUM and AVG of distinct values
        // (DataFusion's own distinct accumulators, no inner grouping at all), an outer SUM of an
        // inner MAX, a projection between the two groupings (a query written with a subquery
        // renames its columns; COUNT(*) of the inner rows drops the key), and every one when the
        // option is off.
        for sql in [
            "SELECT region, COUNT(category) AS categories, SUM(n) AS lines, MIN(first) AS first FROM \
             (SELECT region, category, SUM(quantity) AS n, MIN(order_date) AS first FROM order_line GROUP BY 1, 2) \
             GROUP BY 1 ORDER BY 1",
            "SELECT region, COUNT(*) AS categories FROM (SELECT region, category FROM order_line GROUP BY 1, 2) \
             GROUP BY 1 ORDER BY 1",
            "SELECT category, COUNT(DISTINCT region), AVG(weight) FROM order_line GROUP BY 1 ORDER BY 1",
            "SELECT category, SUM(DISTINCT quantity) AS s, AVG(DISTINCT quantity) AS a FROM order_line \
             GROUP BY 1 ORDER BY 1",
            "SELECT region, SUM(m) FROM (SELECT region, category, MAX(quantity) AS m FROM order_line GROUP BY 1, 2) \
             GROUP BY 1 ORDER BY 1",
        ] {
            assert!(!physical_plan(&ours, sql).await.contains("distinct="), "{sql}");
            assert_eq!(answer(&ours, sql).await, answer(&theirs, sql).await, "{sql}");
        }
        ours.sql("SET tributary.distinct_aggregation = false").await.unwrap();
        assert!(!physical_plan(&ours, queries[0]).await.contains("distinct="));
        assert_eq!(answer(&ours, queries[0]).await, answer(&theirs, queries[0]).await);
    }

    /// The keys seen cannot be emitted early: when the pool refuses them, the query fails with
    /// DataFusion's resources-exhausted error naming the column.
    #[tokio::test]
    async fn a_distinct_grouping_past_the_memory_pool_is_an_error() {
        let ctx = session(true);
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(2 << 20, 1.0)
            .build_arc()
            .unwrap();
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_runtime_env(runtime)
            .build();
        let small = SessionContext::new_with_state(state);
        let sql = "SELECT shelf, COUNT(DISTINCT id) AS ids FROM line_ids GROUP BY shelf";
        assert!(physical_plan(&small, sql).await.contains("distinct="));
        let error = small.sql(sql).await.unwrap().collect().await.unwrap_err();
        assert!(
            matches!(
                error.find_root(),
                datafusion::common::DataFusionError::ResourcesExhausted(_)
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains("distinct values of id seen so far"),
            "{error}"
        );
    }

    /// A fused filter's predicate is split at its `AND`s (a short text comparison answered from
    /// string views) only when no part of it can fail: DataFusion may evaluate the right side of
    /// an `AND` on the rows its left side passes only, so a text cast beside the comparison is
    /// left inside the predicate, evaluated whole.
    #[tokio::test]
    async fn splits_only_a_predicate_that_cannot_fail() {
        async fn split(ctx: &SessionContext, sql: &str) -> bool {
            let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
            let mut split = None;
            plan.apply(|node| {
                if let Some(ours) = node.downcast_ref::<PartialAggregateExec>() {
                    split = Some(ours.filter.as_ref().expect("a fused filter").conjuncts.is_some());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
            split.unwrap_or_else(|| panic!("no partial aggregation of ours in {sql}"))
        }
        let ctx = session(true);
        let safe = "SELECT category, COUNT(*) AS n FROM order_line WHERE region = 'North' AND quantity > 1 \
                    GROUP BY 1 ORDER BY 1";
        let cast = "SELECT category, COUNT(*) AS n FROM order_line \
                    WHERE region = 'North' AND CAST(category AS BIGINT) > 1 GROUP BY 1 ORDER BY 1";
        assert!(split(&ctx, safe).await);
        assert!(!split(&ctx, cast).await);
    }

    /// What the rule leaves to DataFusion: DISTINCT, ordered aggregates, decimals as keys, keys
    /// with no text, and every grouping when the rule is turned off.
    #[tokio::test]
    async fn leaves_other_aggregations_alone() {
        let ctx = session(true);
        for sql in [
            "SELECT category, COUNT(DISTINCT region), COUNT(DISTINCT quantity) FROM order_line GROUP BY 1",
            "SELECT category, array_agg(line ORDER BY line) FROM order_line GROUP BY 1",
            "SELECT net_amount, COUNT(*) FROM order_line GROUP BY 1",
            // Numbers alone, not all integers or dates: DataFusion's grouping is faster there.
            "SELECT quantity, weight, COUNT(*) FROM order_line GROUP BY 1, 2",
        ] {
            assert!(
                !physical_plan(&ctx, sql).await.contains("PartialAggregateExec"),
                "{sql}"
            );
        }
        let sql = "SELECT category, SUM(net_amount) AS revenue FROM order_line GROUP BY 1 ORDER BY 1";
        let expected = answer(&ctx, sql).await;
        assert!(physical_plan(&ctx, sql).await.contains("PartialAggregateExec"));
        ctx.sql("SET tributary.partial_aggregation = false").await.unwrap();
        assert!(!physical_plan(&ctx, sql).await.contains("PartialAggregateExec"));
        assert_eq!(answer(&ctx, sql).await, expected);
    }

    /// Order lines of a rollup, 60,000 in two partitions of 30 batches: a day (400 values), a
    /// long category name (20, from a dictionary in every other batch, as Parquet gives them), a
    /// region (6), a channel (3) and a segment (4 and null), each from bits of its own of a hash
    /// of the row, so that the rows' combinations of them are nearly all different and come in
    /// no runs.
    fn rollup_lines(ctx: &SessionContext) {
        let batch = |rows: std::ops::Range<i64>| {
            let hashes: Vec<u64> = rows
                .clone()
                .map(|r| (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20)
                .collect();
            let names: Vec<String> = (0..20).map(|c| format!("Category number {c:02} of twenty")).collect();
            let category: Vec<&str> = hashes.iter().map(|h| names[(h % 20) as usize].as_str()).collect();
            let category: ArrayRef = if rows.start / 1_000 % 2 == 0 {
                let dictionary: DictionaryArray<Int32Type> = category.into_iter().map(Some).collect();
                cast(&dictionary, &DataType::Utf8View).unwrap()
            } else {
                Arc::new(StringViewArray::from_iter_values(category))
            };
            let regions = ["North", "South", "East", "West", "Centre", "Islands of the far north"];
            let channels = ["web", "store", "phone"];
            let segments = [
                Some("consumer"),
                Some("small business"),
                Some("enterprise"),
                None,
                Some("public"),
            ];
            RecordBatch::try_from_iter([
                (
                    "day",
                    Arc::new(Date32Array::from_iter_values(
                        hashes.iter().map(|h| 19_000 + (h >> 8) as i32 % 400),
                    )) as ArrayRef,
                ),
                ("category", category),
                (
                    "region",
                    Arc::new(StringViewArray::from_iter_values(
                        hashes.iter().map(|h| regions[(h >> 17) as usize % 6]),
                    )),
                ),
                (
                    "channel",
                    Arc::new(StringViewArray::from_iter_values(
                        hashes.iter().map(|h| channels[(h >> 21) as usize % 3]),
                    )),
                ),
                (
                    "segment",
                    Arc::new(StringViewArray::from_iter(
                        hashes.iter().map(|h| segments[(h >> 25) as usize % 5]),
                    )),
                ),
                (
                    "net_amount",
                    Arc::new(Int64Array::from_iter_values(rows.map(|r| r % 1_000))),
                ),
            ])
            .unwrap()
        };
        register_in_partitions(ctx, "rollup_line", 30, 1_000, batch);
    }

    /// A grouping of several columns with few values each but many combinations in a partition's
    /// first rows: the words give way to a grid (an array of places for four columns here, a
    /// table for five), nothing goes to DataFusion, and the answers are DataFusion's.
    #[tokio::test]
    async fn rollups_of_few_values_in_many_combinations_go_to_a_grid() {
        let (ours, theirs) = (session(true), session(false));
        rollup_lines(&ours);
        rollup_lines(&theirs);
        let four = "SELECT day, category, region, channel, COUNT(*) AS lines, SUM(net_amount) AS revenue \
                    FROM rollup_line GROUP BY 1, 2, 3, 4";
        assert!(partitions(&ours, four, "in_grid").await > 0);
        assert_eq!(partitions(&ours, four, "handed_over").await, 0);
        let five = "SELECT day, category, region, channel, COALESCE(segment, 'unknown') AS segment, \
                    COUNT(*) AS lines, SUM(net_amount) AS revenue FROM rollup_line \
                    WHERE net_amount <> 7 GROUP BY 1, 2, 3, 4, 5";
        assert_eq!(partitions(&ours, five, "handed_over").await, 0);
        for sql in [four, five] {
            let sql = format!("{sql} ORDER BY 1, 2, 3, 4, 5");
            assert!(
                physical_plan(&ours, &sql).await.contains("PartialAggregateExec"),
                "{sql}"
            );
            assert!(
                !physical_plan(&theirs, &sql).await.contains("PartialAggregateExec"),
                "{sql}"
            );
            assert_eq!(answer(&ours, &sql).await, answer(&theirs, &sql).await, "{sql}");
        }
        // One total checked by hand: 60,000 lines, of which those with a net amount of 7 (row
        // numbers ending in 007: 60) are left out.
        let total = format!("SELECT SUM(lines) AS lines FROM ({five})");
        assert_eq!(
            answer(&ours, &total).await,
            ["+-------+", "| lines |", "+-------+", "| 59940 |", "+-------+"].join("\n")
        );
    }

    /// A tabled grid keeps each key in its group whatever its text's views, and takes at most 32
    /// bits of places.
    #[test]
    fn a_tabled_grid_numbers_text_by_value() {
        let text = |values: Vec<String>| -> ArrayRef { Arc::new(StringViewArray::from_iter_values(values)) };
        let long = |n: usize| format!("a value longer than a view holds, number {n}");
        let (mut grid, mut held) = (GridKeys::new(3, true), interners(3));
        let mut grouped = Grouped::default();
        let mut group_of_key = std::collections::HashMap::new();
        for batch in 0..4usize {
            // 2,048 long values (in another order, and so other views, in each batch), 3 short
            // and 256 short: 21 bits of places, more than 2,048 groups warrant in an array.
            let rows: Vec<usize> = (0..2_048).map(|r| (r * 7 + batch * 11) % 2_048).collect();
            let arrays = [
                text(rows.iter().map(|&r| long(r)).collect()),
                text(rows.iter().map(|&r| ["x", "y", "z"][r % 3].to_string()).collect()),
                text(rows.iter().map(|&r| format!("w{}", r * 5 % 256)).collect()),
            ];
            let keys = BatchKeys::of([KeyKind::Text; 3], &arrays, None);
            assert!(grid.group(&keys, &mut held, &mut grouped), "batch {batch} fits");
            assert!(matches!(grid.places, GridPlaces::Table(_)));
            for (row, &group) in grouped.indices.iter().enumerate() {
                let key = rows[row];
                assert_eq!(
                    *group_of_key.entry(key).or_insert(group),
                    group,
                    "batch {batch}, row {row}"
                );
            }
        }
        assert_eq!(grouped.groups, 2_048, "the same 2,048 keys in every batch");
        // 2,048 values in each of three columns need 33 bits.
        let wide = text((0..2_048).map(long).collect());
        let arrays = [wide.clone(), wide.clone(), wide];
        let keys = BatchKeys::of([KeyKind::Text; 3], &arrays, None);
        assert!(!GridKeys::new(3, true).group(&keys, &mut interners(3), &mut Grouped::default()));
    }

    /// A tabled grid judges its columns after [`super::GRID_PROBE_ROWS`] rows: a column with a
    /// new value every few rows (an order key) hands the rest over; columns of a few thousand
    /// values each, in as many combinations as rows, stay.
    #[test]
    fn a_tabled_grid_hands_over_a_column_of_many_values() {
        let group_all = |key: &dyn Fn(usize) -> (String, i64)| -> Option<usize> {
            let (mut grid, mut held) = (GridKeys::new(2, true), interners(2));
            let mut grouped = Grouped::default();
            for batch in 0..20 {
                let rows = batch * 8_192..(batch + 1) * 8_192;
                let (text, number): (Vec<String>, Vec<i64>) = rows.map(key).unzip();
                let arrays: [ArrayRef; 2] = [
                    Arc::new(StringViewArray::from_iter_values(text)),
                    Arc::new(Int64Array::from_iter_values(number)),
                ];
                let keys = BatchKeys::of([KeyKind::Text, KeyKind::Value], &arrays, None);
                if !grid.group(&keys, &mut held, &mut grouped) {
                    return Some(batch);
                }
            }
            None
        };
        // An order every four lines, and its lines' categories: judged at the 16th batch.
        let orders = |row: usize| (format!("order {}", row / 4), (row % 9) as i64);
        assert_eq!(group_all(&orders), Some(15));
        // 2,000 SKUs and 1,000 days, hashed together: a group for most rows, but few values.
        let rollup = |row: usize| {
            let hash = row.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24;
            (format!("SKU-{:05}", hash % 2_000), (hash / 2_000 % 1_000) as i64)
        };
        assert_eq!(group_all(&rollup), None);
    }
}
