//! A table joined with itself on one key, with at most one comparison between a column of each
//! side: the pairs of products (and of categories) bought in the same order behind
//! `marts.product_association` (`basket a JOIN basket c ON c.order_key = a.order_key AND a.item <
//! c.item`).
//!
//! DataFusion plans it as a hash join: a table of the ten million basket rows by order key, probed
//! by the same ten million rows, each finding every row of its order (its own included), and the
//! filter evaluated on each candidate pair after both sides' columns are copied out into a batch
//! of their own: 51.7 million candidates for 20.9 million pairs (DuckDB's count on the same
//! baskets). That join took 8.7 s of the 20 s of CPU of the product pairs (twenty-third session,
//! `EXPLAIN ANALYZE`); this operator makes them in 1.73 s against the join's 3.03 s on the
//! twenty-sixth session's machine.
//!
//! When both sides of an inner hash join on one column scan the same in-memory batches (a CTE
//! computed once, `AS MATERIALIZED`, see `refresh`), [`SelfJoinPairs`] replaces the join by a
//! [`SelfJoinExec`]: the table is read once, its rows are dealt to the partitions by a hash of the
//! key, each partition sorts its row numbers by the key, and each run of rows with equal keys
//! makes its pairs in a loop over the run, the comparison made on the values where they lie; only
//! the pairs that pass are copied out. Rows whose key is null join
//! nothing, as in the hash join, and a comparison with a null is not true, as in SQL.
//!
//! The rule runs before DataFusion distributes the plan over partitions, so that whatever reads
//! the pairs is given the partitioning it needs as it would be for any other input.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::kernels::partition;
use datafusion::arrow::compute::{SortOptions, cast, concat_batches, sort_to_indices, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt32Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinSide, JoinType, NullEquality, Result, internal_err, resources_datafusion_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::planner_options::PlannerOptions;

/// Replaces each inner hash join of an in-memory table with itself on one column by a
/// [`SelfJoinExec`] (see the module's comment). Runs before DataFusion's `EnsureRequirements`.
#[derive(Debug, Default)]
pub struct SelfJoinPairs;

impl PhysicalOptimizerRule for SelfJoinPairs {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !PlannerOptions::of(config).self_join {
            return Ok(plan);
        }
        let partitions = config.execution.target_partitions.max(1);
        plan.transform_up(|node| {
            let replaced = node
                .downcast_ref::<HashJoinExec>()
                .and_then(|join| SelfJoinExec::try_replace(join, partitions));
            Ok(match replaced {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "self_join_pairs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The join's condition beside the key: `left.column op right.column`, both columns of the same
/// table and type.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Comparison {
    left: usize,
    op: Operator,
    right: usize,
}

impl Comparison {
    /// The comparison a join filter makes, if it is one this operator makes itself, with its
    /// columns as the shared scan reads them.
    fn of(filter: &JoinFilter, scan: &SharedScan) -> Option<Self> {
        let expr = filter.expression().downcast_ref::<BinaryExpr>()?;
        let side = |operand: &Arc<dyn PhysicalExpr>| {
            let column = operand.downcast_ref::<Column>()?;
            filter.column_indices().get(column.index())
        };
        let (a, b) = (side(expr.left())?, side(expr.right())?);
        let comparison = match (a.side, b.side) {
            (JoinSide::Left, JoinSide::Right) => Self {
                left: *scan.left.get(a.index)?,
                op: *expr.op(),
                right: *scan.right.get(b.index)?,
            },
            (JoinSide::Right, JoinSide::Left) => Self {
                left: *scan.left.get(b.index)?,
                op: expr.op().swap()?,
                right: *scan.right.get(a.index)?,
            },
            _ => return None,
        };
        let schema = scan.input.schema();
        let (left, right) = (schema.field(comparison.left), schema.field(comparison.right));
        let ordered = matches!(
            comparison.op,
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        );
        (ordered && left.data_type() == right.data_type() && compared_as_sql_does(left.data_type()))
            .then_some(comparison)
    }

    fn holds(&self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self.op {
            Operator::Eq => order == Equal,
            Operator::NotEq => order != Equal,
            Operator::Lt => order == Less,
            Operator::LtEq => order != Greater,
            Operator::Gt => order == Greater,
            Operator::GtEq => order != Less,
            _ => false,
        }
    }
}

/// Types whose order in arrow's sort comparator is the order SQL compares them by (floats are
/// left out: the comparator orders NaN and -0.0 where SQL's comparison does not).
fn compared_as_sql_does(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Boolean
                | DataType::Date32
                | DataType::Date64
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Decimal128(_, _)
        )
}

/// The in-memory table a plan scans, when it is only that.
fn memory_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&MemorySourceConfig> {
    let source = plan.downcast_ref::<DataSourceExec>()?.data_source();
    source.downcast_ref::<MemorySourceConfig>()
}

/// What the two sides of a self-join read: one scan of the in-memory batches with the columns
/// either side reads, and where each side's columns are among them.
struct SharedScan {
    input: Arc<dyn ExecutionPlan>,
    left: Vec<usize>,
    right: Vec<usize>,
}

/// The scan both plans make, when both read all of the same in-memory batches (each side may
/// read other columns of them).
fn shared_memory_scan(a: &Arc<dyn ExecutionPlan>, b: &Arc<dyn ExecutionPlan>) -> Option<SharedScan> {
    let (a, b) = (memory_scan(a)?, memory_scan(b)?);
    let same_batch = |x: &RecordBatch, y: &RecordBatch| {
        x.num_columns() == y.num_columns() && x.columns().iter().zip(y.columns()).all(|(c, d)| Arc::ptr_eq(c, d))
    };
    let same = a.fetch().is_none()
        && b.fetch().is_none()
        && a.partitions().len() == b.partitions().len()
        && a.partitions()
            .iter()
            .zip(b.partitions())
            .all(|(p, q)| p.len() == q.len() && p.iter().zip(q).all(|(x, y)| same_batch(x, y)));
    if !same {
        return None;
    }
    let width = a.original_schema().fields().len();
    let read = |scan: &MemorySourceConfig| scan.projection().clone().unwrap_or_else(|| (0..width).collect());
    let (left, right) = (read(a), read(b));
    let mut both: Vec<usize> = left.iter().chain(&right).copied().collect();
    both.sort_unstable();
    both.dedup();
    let place = |columns: Vec<usize>| {
        columns
            .iter()
            .map(|c| both.binary_search(c).ok())
            .collect::<Option<Vec<_>>>()
    };
    let (left, right) = (place(left)?, place(right)?);
    let input = MemorySourceConfig::try_new_exec(a.partitions(), a.original_schema(), Some(both)).ok()?;
    Some(SharedScan { input, left, right })
}

/// An inner join of its input with itself on one column, with at most one comparison between a
/// column of each side (see the module's comment). Its output is the replaced join's: its
/// columns, in its order, after its projection.
#[derive(Debug)]
pub struct SelfJoinExec {
    input: Arc<dyn ExecutionPlan>,
    /// The key column, in the input.
    key: usize,
    comparison: Option<Comparison>,
    /// For each output column, the side and the input column it is taken from.
    columns: Vec<(JoinSide, usize)>,
    properties: Arc<PlanProperties>,
    /// The input in one batch with its rows dealt to the partitions, made by the first partition
    /// to need it and shared by all.
    keyed: Arc<OnceCell<Arc<KeyedRows>>>,
    metrics: ExecutionPlanMetricsSet,
}

impl SelfJoinExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        key: usize,
        comparison: Option<Comparison>,
        columns: Vec<(JoinSide, usize)>,
        schema: SchemaRef,
        partitions: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            key,
            comparison,
            columns,
            properties: Arc::new(properties),
            keyed: Arc::new(OnceCell::new()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// This operator in place of `join`, when `join` is one it makes (see the module's comment).
    fn try_replace(join: &HashJoinExec, partitions: usize) -> Option<Self> {
        if join.join_type != JoinType::Inner
            || join.null_equality != NullEquality::NullEqualsNothing
            || join.fetch().is_some()
            || join.on.len() != 1
        {
            return None;
        }
        let scan = shared_memory_scan(&join.left, &join.right)?;
        let (left_key, right_key) = &join.on[0];
        let key = *scan.left.get(left_key.downcast_ref::<Column>()?.index())?;
        let schema = scan.input.schema();
        if *scan.right.get(right_key.downcast_ref::<Column>()?.index())? != key
            || !sorts_by(schema.field(key).data_type())
        {
            return None;
        }
        let comparison = match join.filter() {
            Some(filter) => Some(Comparison::of(filter, &scan)?),
            None => None,
        };
        let joined =
            (scan.left.iter().map(|&i| (JoinSide::Left, i))).chain(scan.right.iter().map(|&i| (JoinSide::Right, i)));
        let columns: Vec<(JoinSide, usize)> = match &join.projection {
            Some(projection) => {
                let joined: Vec<_> = joined.collect();
                projection.iter().map(|&i| joined[i]).collect()
            }
            None => joined.collect(),
        };
        Some(Self::new(
            scan.input,
            key,
            comparison,
            columns,
            join.schema(),
            partitions,
        ))
    }

    /// The same join over `input`, putting out `columns` as `schema`, with nothing read yet.
    fn over(&self, input: Arc<dyn ExecutionPlan>, columns: Vec<(JoinSide, usize)>, schema: SchemaRef) -> Self {
        Self::new(input, self.key, self.comparison, columns, schema, self.partitions())
    }

    fn partitions(&self) -> usize {
        self.properties.output_partitioning().partition_count()
    }
}

/// Key types the input is sorted and split into runs by.
fn sorts_by(data_type: &DataType) -> bool {
    compared_as_sql_does(data_type) && *data_type != DataType::Boolean
}

impl DisplayAs for SelfJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        write!(f, "SelfJoinExec: on={}", schema.field(self.key).name())?;
        if let Some(c) = &self.comparison {
            write!(
                f,
                ", filter=left.{} {} right.{}",
                schema.field(c.left).name(),
                c.op,
                schema.field(c.right).name()
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for SelfJoinExec {
    fn name(&self) -> &str {
        "SelfJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    /// It reads every partition of its input itself.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(self.over(input, self.columns.clone(), self.schema()))),
            _ => internal_err!("SelfJoinExec has one input"),
        }
    }

    /// A fresh copy, without the sorted input of an earlier execution.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.over(
            self.input.clone(),
            self.columns.clone(),
            self.schema(),
        )))
    }

    /// A projection of plain columns is made by choosing fewer columns to copy out.
    fn try_swapping_with_projection(&self, projection: &ProjectionExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let mut columns = Vec::with_capacity(projection.expr().len());
        for expr in projection.expr() {
            let Some(column) = expr.expr.downcast_ref::<Column>() else {
                return Ok(None);
            };
            columns.push(self.columns[column.index()]);
        }
        Ok(Some(Arc::new(self.over(
            self.input.clone(),
            columns,
            projection.schema(),
        ))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (keyed, input, key, partitions) = (self.keyed.clone(), self.input.clone(), self.key, self.partitions());
        let comparison = self.comparison;
        let pairs = Pairs {
            schema: schema.clone(),
            comparison: self.comparison,
            columns: self.columns.clone(),
            partition,
            batch_size: context.session_config().batch_size(),
        };
        let made = async move {
            let keyed = keyed
                .get_or_try_init(|| KeyedRows::read(input, key, comparison, partitions, context, baseline.clone()))
                .await?
                .clone();
            pairs.batches(keyed, baseline)
        };
        let batches = futures::stream::once(made)
            .map(|made| match made {
                Ok(batches) => futures::stream::iter(batches).left_stream(),
                Err(e) => futures::stream::iter(Some(Err(e))).right_stream(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// The input in one batch, its rows dealt to the output partitions by a hash of their key (rows
/// whose key is null are left out: they join nothing), so that each partition sorts its own.
#[derive(Debug)]
struct KeyedRows {
    rows: RecordBatch,
    key: usize,
    dealt: Vec<Vec<u32>>,
    /// Each row's value of the compared column as a number in the values' order (see
    /// [`order_codes`]), when both sides compare the same column.
    codes: Option<Vec<u32>>,
    _reservation: MemoryReservation,
}

/// The code of a null value in [`order_codes`].
const NULL_CODE: u32 = u32::MAX;

/// Each value of `column` as a number in the values' order: equal values get equal numbers, a
/// smaller value a smaller number, a null [`NULL_CODE`]. `None` where arrow cannot make a
/// dictionary of the column (booleans, or more distinct values than a `u32` numbers).
fn order_codes(column: &ArrayRef) -> Option<Vec<u32>> {
    let value_type = match column.data_type() {
        DataType::Utf8View | DataType::Utf8 => DataType::Utf8,
        DataType::Boolean => return None,
        other => other.clone(),
    };
    let dictionary = cast(
        column,
        &DataType::Dictionary(Box::new(DataType::UInt32), Box::new(value_type)),
    )
    .ok()?;
    let dictionary = dictionary.as_dictionary::<UInt32Type>();
    let values = dictionary.values();
    // Arrow's dictionary builders keep one entry per distinct value: an entry's place among
    // the sorted entries is its value's number.
    let sorted = sort_to_indices(values, None, None).ok()?;
    let mut rank = vec![NULL_CODE; values.len()];
    for (code, &value) in sorted.values().iter().enumerate() {
        if values.is_valid(value as usize) {
            rank[value as usize] = code as u32;
        }
    }
    Some(
        dictionary
            .keys()
            .iter()
            .map(|k| k.map_or(NULL_CODE, |k| rank[k as usize]))
            .collect(),
    )
}

impl KeyedRows {
    async fn read(
        input: Arc<dyn ExecutionPlan>,
        key: usize,
        comparison: Option<Comparison>,
        partitions: usize,
        context: Arc<TaskContext>,
        baseline: BaselineMetrics,
    ) -> Result<Arc<Self>> {
        let mut batches = Vec::new();
        for partition in 0..input.properties().output_partitioning().partition_count() {
            let mut stream = input.execute(partition, context.clone())?;
            while let Some(batch) = stream.next().await {
                batches.push(batch?);
            }
        }
        let _timer = baseline.elapsed_compute().timer();
        // Text views keep the buffers of every batch they came from, which the memory count
        // would charge in full (15 GB for the order categories): one buffer per column instead.
        let rows = crate::compact_views::compact(&concat_batches(&input.schema(), &batches)?)?;
        drop(batches);
        if u32::try_from(rows.num_rows()).is_err() {
            return Err(resources_datafusion_err!(
                "SelfJoinExec: {} rows are more than it numbers",
                rows.num_rows()
            ));
        }
        let reservation = MemoryConsumer::new("SelfJoinExec").register(context.memory_pool());
        reservation.try_grow(rows.get_array_memory_size() + rows.num_rows() * 2 * size_of::<u32>())?;
        let keys = rows.column(key);
        let mut hashes = vec![0; rows.num_rows()];
        create_hashes([keys], &RandomState::with_seed(0), &mut hashes)?;
        let mut dealt = vec![Vec::with_capacity(rows.num_rows() / partitions + 1); partitions];
        for (row, hash) in hashes.iter().enumerate() {
            if keys.is_valid(row) {
                dealt[(hash % partitions as u64) as usize].push(row as u32);
            }
        }
        // Where both sides compare the same column (`a.item < c.item`), the pairs compare
        // numbers in the values' order instead of the values: a text comparison was a sixth
        // of the product association mart's CPU.
        let codes = match comparison {
            Some(c) if c.left == c.right => order_codes(rows.column(c.left)),
            _ => None,
        };
        reservation.try_grow(codes.as_ref().map_or(0, |c| c.len() * size_of::<u32>()))?;
        Ok(Arc::new(Self {
            rows,
            key,
            dealt,
            codes,
            _reservation: reservation,
        }))
    }

    /// One partition's rows sorted by key, and where each run of equal keys starts in them (and
    /// where the last one ends).
    fn runs(&self, partition: usize) -> Result<(Vec<u32>, Vec<usize>)> {
        let rows = UInt32Array::from_iter_values(self.dealt[partition].iter().copied());
        let keys = take(self.rows.column(self.key), &rows, None)?;
        let sorted = sort_to_indices(&keys, None, None)?;
        let order: Vec<u32> = sorted.values().iter().map(|&i| rows.value(i as usize)).collect();
        let mut starts: Vec<usize> = if order.is_empty() {
            Vec::new()
        } else {
            let sorted_keys = take(&keys, &sorted, None)?;
            partition::partition(&[sorted_keys])?
                .ranges()
                .iter()
                .map(|r| r.start)
                .collect()
        };
        starts.push(order.len());
        Ok((order, starts))
    }
}

/// What one partition of a [`SelfJoinExec`] puts out.
struct Pairs {
    schema: SchemaRef,
    comparison: Option<Comparison>,
    columns: Vec<(JoinSide, usize)>,
    partition: usize,
    batch_size: usize,
}

impl Pairs {
    /// This partition's runs, in batches made as they are asked for.
    fn batches(
        self,
        keyed: Arc<KeyedRows>,
        baseline: BaselineMetrics,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send> {
        let timer = baseline.elapsed_compute().timer();
        let (order, starts) = keyed.runs(self.partition)?;
        let compare = match &self.comparison {
            Some(c) => {
                let (left, right) = (keyed.rows.column(c.left).clone(), keyed.rows.column(c.right).clone());
                let order =
                    datafusion::arrow::array::make_comparator(left.as_ref(), right.as_ref(), SortOptions::default())?;
                Some((*c, left, right, order))
            }
            None => None,
        };
        timer.done();
        let (mut next, end) = (0, starts.len() - 1);
        Ok(std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let _timer = baseline.elapsed_compute().timer();
            let mut left: Vec<u32> = Vec::with_capacity(self.batch_size);
            let mut right: Vec<u32> = Vec::with_capacity(self.batch_size);
            while next < end && left.len() < self.batch_size {
                let run = &order[starts[next]..starts[next + 1]];
                next += 1;
                for &a in run {
                    for &c in run {
                        let passes = match (&compare, &keyed.codes) {
                            (None, _) => true,
                            (Some((comparison, ..)), Some(codes)) => {
                                let (x, y) = (codes[a as usize], codes[c as usize]);
                                x != NULL_CODE && y != NULL_CODE && comparison.holds(x.cmp(&y))
                            }
                            (Some((comparison, l, r, order)), None) => {
                                l.is_valid(a as usize)
                                    && r.is_valid(c as usize)
                                    && comparison.holds(order(a as usize, c as usize))
                            }
                        };
                        if passes {
                            left.push(a);
                            right.push(c);
                        }
                    }
                }
            }
            let made = self.batch(&keyed.rows, left, right);
            if let Ok(batch) = &made {
                baseline.record_output(batch.num_rows());
            }
            Some(made.map_err(Into::into))
        }))
    }

    fn batch(&self, rows: &RecordBatch, left: Vec<u32>, right: Vec<u32>) -> Result<RecordBatch, ArrowError> {
        let count = left.len();
        let (left, right) = (UInt32Array::from(left), UInt32Array::from(right));
        let columns = self
            .columns
            .iter()
            .map(|&(side, column)| {
                let rows_of = if side == JoinSide::Left { &left } else { &right };
                take(rows.column(column), rows_of, None)
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(count)),
        )
    }
}

/// DataFusion's physical optimizer rules with [`SelfJoinPairs`] before `EnsureRequirements`,
/// where the joins' inputs are still the scans themselves.
pub fn with_default_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    let before = rules
        .iter()
        .position(|rule| rule.name() == "EnsureRequirements")
        .unwrap_or(rules.len());
    rules.insert(before, Arc::new(SelfJoinPairs));
    rules
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Order lines of 400 orders of 0 to 6 lines: products repeated within an order, null
    /// products and categories, and lines without an order.
    fn basket_lines(orders: std::ops::Range<i64>) -> RecordBatch {
        let (mut order_key, mut item, mut category, mut quantity) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for order in orders {
            for line in 0..order % 7 {
                let product = (order * 31 + line * 17) % 23;
                let repeated = order % 5 == 0 && line == 1;
                let product = if repeated { (order * 31) % 23 } else { product };
                order_key.push((order % 11 != 3).then_some(order));
                quantity.push(1 + (order + line) % 19);
                item.push(((order + line) % 13 != 0).then_some(product));
                category.push(((order + line) % 9 != 0).then(|| match product % 4 {
                    0 => "tools".to_string(),
                    n => format!("a category named longer than twelve bytes {n}"),
                }));
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_key", DataType::Int64, true),
            Field::new("item", DataType::Int64, true),
            Field::new("category", DataType::Utf8, true),
            Field::new("quantity", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(order_key)),
                Arc::new(Int64Array::from(item)),
                Arc::new(StringArray::from(category)),
                Arc::new(Int64Array::from(quantity)),
            ],
        )
        .unwrap()
    }

    /// A session with the rule where DataFusion's own rules put it, or without it; `basket` and
    /// `other_basket` hold the same lines in different tables.
    fn session(self_join: bool) -> SessionContext {
        let options = PlannerOptions {
            self_join,
            ..PlannerOptions::default()
        };
        let config = options.install(SessionConfig::new().with_target_partitions(3).with_batch_size(64));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(with_default_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let partitions = vec![
            vec![basket_lines(0..150), basket_lines(150..151)],
            vec![basket_lines(151..400)],
        ];
        let schema = partitions[0][0].schema();
        ctx.register_table(
            "basket",
            Arc::new(MemTable::try_new(schema.clone(), partitions).unwrap()),
        )
        .unwrap();
        let copy = vec![vec![basket_lines(0..400)]];
        ctx.register_table("other_basket", Arc::new(MemTable::try_new(schema, copy).unwrap()))
            .unwrap();
        ctx
    }

    async fn plan_and_rows(ctx: &SessionContext, sql: &str) -> (String, String) {
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let plan = displayable(plan.as_ref()).indent(true).to_string();
        let rows = pretty_format_batches(&frame.collect().await.unwrap())
            .unwrap()
            .to_string();
        (plan, rows)
    }

    #[tokio::test]
    async fn pairs_within_each_key_are_the_hash_joins_pairs() {
        let queries = [
            // The product pairs of the association rules, either way round.
            "SELECT a.item AS first, c.item AS second, COUNT(*) AS orders FROM basket a \
             JOIN basket c ON c.order_key = a.order_key AND a.item < c.item GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT a.item, c.item, c.order_key FROM basket a \
             JOIN basket c ON a.order_key = c.order_key AND c.item >= a.item ORDER BY 1, 2, 3",
            // Two columns compared: by their values, not by numbers in one column's order.
            "SELECT a.item, c.quantity, COUNT(*) FROM basket a JOIN basket c \
             ON a.order_key = c.order_key AND a.item < c.quantity GROUP BY 1, 2 ORDER BY 1, 2",
            // No comparison: every row with every row of its key, itself included.
            "SELECT a.order_key, a.item, c.category FROM basket a JOIN basket c USING (order_key) \
             ORDER BY 1, 2, 3",
            // Text.
            "SELECT a.order_key % 7 AS bucket, COUNT(*) FROM basket a JOIN basket c \
             ON a.order_key = c.order_key AND a.category <> c.category GROUP BY 1 ORDER BY 1",
            "SELECT a.category, c.category, COUNT(*) FROM basket a JOIN basket c \
             ON a.order_key = c.order_key AND a.category > c.category GROUP BY 1, 2 ORDER BY 1, 2",
        ];
        let (with_rule, without_rule) = (session(true), session(false));
        for sql in queries {
            let (plan, rows) = plan_and_rows(&with_rule, sql).await;
            let (hash_plan, expected) = plan_and_rows(&without_rule, sql).await;
            assert!(
                plan.contains("SelfJoinExec") && !plan.contains("HashJoinExec"),
                "{sql}\n{plan}"
            );
            assert!(hash_plan.contains("HashJoinExec"), "{sql}\n{hash_plan}");
            assert_eq!(rows, expected, "{sql}\n{plan}");
            assert!(rows.lines().count() > 8, "{sql} has answers to compare\n{rows}");
        }
        // Counted apart, by a loop over each order's lines (and the join copies no column out).
        let lines = basket_lines(0..400);
        let keys = lines.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let items = lines.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let mut by_order: std::collections::HashMap<i64, Vec<Option<i64>>> = Default::default();
        for row in 0..lines.num_rows() {
            if keys.is_valid(row) {
                by_order
                    .entry(keys.value(row))
                    .or_default()
                    .push(items.is_valid(row).then(|| items.value(row)));
            }
        }
        let mut pairs = 0;
        for order in by_order.values() {
            for a in order.iter().flatten() {
                pairs += order.iter().flatten().filter(|c| a < *c).count();
            }
        }
        let (_, rows) = plan_and_rows(
            &with_rule,
            "SELECT COUNT(*) AS pairs FROM basket a JOIN basket c ON c.order_key = a.order_key AND a.item < c.item",
        )
        .await;
        assert!(pairs > 500, "{pairs}");
        assert!(rows.contains(&format!("| {pairs} ")), "{pairs} pairs\n{rows}");
    }

    #[tokio::test]
    async fn other_joins_stay_hash_joins() {
        let ctx = session(true);
        for sql in [
            // Two tables, even of the same lines.
            "SELECT a.item, c.item FROM basket a JOIN other_basket c \
             ON c.order_key = a.order_key AND a.item < c.item",
            // A comparison of a computed value, keys of two columns, an outer join.
            "SELECT a.item, c.item FROM basket a JOIN basket c \
             ON c.order_key = a.order_key AND a.item + 1 < c.item",
            "SELECT a.item, c.item FROM basket a JOIN basket c \
             ON c.order_key = a.order_key AND c.item = a.item",
            "SELECT a.item, c.item FROM basket a LEFT JOIN basket c \
             ON c.order_key = a.order_key AND a.item < c.item",
            // Another key on each side.
            "SELECT a.item, c.item FROM basket a JOIN basket c ON c.item = a.order_key",
        ] {
            let (plan, _) = plan_and_rows(&ctx, sql).await;
            assert!(!plan.contains("SelfJoinExec") && plan.contains("Join"), "{sql}\n{plan}");
        }
    }
}
