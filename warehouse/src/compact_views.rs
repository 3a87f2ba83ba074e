//! Text copied into one buffer per batch where an operator keeps batches: the build side of a
//! hash join, and the inputs of a merge of sorted streams.
//!
//! Text is read as string views: each value is a 16-byte view into data buffers the array shares
//! with the batch it was taken from. A hash join concatenates its build side's batches into one,
//! and arrow's concatenation keeps every input array's buffers (it does not look for the same
//! buffer twice); each output batch the join then builds by `take` from that side carries all of
//! them. When that output becomes the build side of the next join, its batches' buffer lists are
//! concatenated again, and so on up a chain of joins: in `marts.customer_7p`, ten left joins of
//! 75,000 customers, a column's buffer list grew by a factor of the batch count at each join,
//! and converting, measuring and dropping those lists took most of the query's time (1.42 s; with
//! plain `Utf8` text 0.71 s, same rows). Copying each batch's text values into one buffer when it
//! enters a build side keeps every list as long as the build side has batches.
//!
//! A sort that spilled merges its files into batches that share the buffers of each file's
//! current batch; the merge of the partitions' sorted streams above it holds one such batch per
//! stream and is charged for all those buffers. Under a 12 MiB pool it asked for 5 MiB and the
//! query failed; with its inputs compacted it runs.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch};
use datafusion::arrow::datatypes::{ByteViewType, DataType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use crate::planner_options::PlannerOptions;

/// Puts a [`CompactViewsExec`] under each hash join's build side, and each input of a merge of
/// sorted streams, that holds text as views.
#[derive(Debug, Default)]
pub struct CompactViews;

impl PhysicalOptimizerRule for CompactViews {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !PlannerOptions::of(config).compact_views {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            // Which children keep their batches: a hash join's build side, every input of a merge
            // of sorted streams (it holds a batch of each, and a sort's merge of its spill files
            // puts out batches that share the buffers of every file's batch).
            let kept: Vec<bool> = if node.downcast_ref::<HashJoinExec>().is_some() {
                vec![true, false]
            } else if node.downcast_ref::<SortPreservingMergeExec>().is_some() {
                vec![true; node.children().len()]
            } else {
                return Ok(Transformed::no(node));
            };
            let mut changed = false;
            let children: Vec<Arc<dyn ExecutionPlan>> = node
                .children()
                .into_iter()
                .zip(kept)
                .map(|(child, kept)| {
                    if !kept || child.downcast_ref::<CompactViewsExec>().is_some() || !has_views(child) {
                        return child.clone();
                    }
                    changed = true;
                    Arc::new(CompactViewsExec::new(child.clone())) as Arc<dyn ExecutionPlan>
                })
                .collect();
            if !changed {
                return Ok(Transformed::no(node));
            }
            // A compacted input's properties are its input's: the node's stay as they were.
            let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
            Ok(Transformed::yes(node.clone().replace_children(children, keep)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "compact_views"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn has_views(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
}

/// Passes its input's batches on with each text (or binary) view column's values copied into one
/// buffer, where the column's buffers were several or held more than twice the bytes its values
/// use. Rows, order and partitioning are the input's.
#[derive(Debug)]
pub struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &str {
        "CompactViewsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    /// Rows pass in the order they came, batch by batch: a plan checked or optimized again
    /// after the rule sees the input's order kept.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input))),
            _ => internal_err!("CompactViewsExec has one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let batches = input.map(|batch| batch.and_then(|b| Ok(compact(&b)?)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// `batch` with its view columns compacted where they need it (see [`CompactViewsExec`]).
pub(crate) fn compact(batch: &RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            let compacted = match column.data_type() {
                DataType::Utf8View => compact_views(column.as_string_view()),
                DataType::BinaryView => compact_views(column.as_binary_view()),
                _ => None,
            };
            changed |= compacted.is_some();
            compacted.unwrap_or_else(|| column.clone())
        })
        .collect();
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(batch.schema(), columns)
}

fn compact_views<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>) -> Option<ArrayRef> {
    let buffers = array.data_buffers();
    let held: usize = buffers.iter().map(|b| b.len()).sum();
    if buffers.len() <= 1 && held <= 2 * array.total_buffer_bytes_used() {
        return None;
    }
    Some(Arc::new(array.gc()))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::compute::concat;
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn long(i: usize) -> String {
        format!("a customer name longer than twelve bytes, number {i}")
    }

    #[test]
    fn a_column_of_many_buffers_becomes_one_with_the_same_values() {
        // Three batches' worth concatenated: three buffers, as a hash join's build side holds them.
        let pieces: Vec<StringViewArray> = (0..3)
            .map(|p| StringViewArray::from_iter((0..4).map(|i| (i != 2).then(|| long(p * 4 + i)))))
            .collect();
        let refs: Vec<&dyn Array> = pieces.iter().map(|p| p as &dyn Array).collect();
        let joined = concat(&refs).unwrap();
        assert_eq!(joined.as_string_view().data_buffers().len(), 3);
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(schema, vec![joined.clone()]).unwrap();
        let compacted = compact(&batch).unwrap();
        let text = compacted.column(0).as_string_view();
        assert_eq!(text.data_buffers().len(), 1);
        assert_eq!(text, joined.as_string_view());
        assert_eq!(text.null_count(), 3);
    }

    #[test]
    fn a_compact_column_or_one_of_short_texts_is_left_as_it_is() {
        let compact_long = StringViewArray::from_iter_values((0..5).map(long));
        let short = StringViewArray::from_iter_values(["web", "store", "phone"]);
        assert!(compact_views(&compact_long).is_none());
        assert!(compact_views(&short).is_none());
        // A slice of one row keeps the whole buffer: more than twice what it uses.
        assert!(compact_views(&compact_long.slice(1, 1)).is_some());
    }
}
