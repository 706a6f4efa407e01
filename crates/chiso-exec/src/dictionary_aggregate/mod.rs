//! Partial aggregation grouped by dictionary columns.
//!
//! chiso reads the few-valued text columns of `events` as dictionaries
//! (`Table::dictionary_columns`): the Parquet reader then hands over each
//! column chunk's dictionary and a key per row, instead of a string per row.
//! DataFusion 55 groups by a dictionary column through its row format,
//! which decodes every row's value and encodes it again before hashing it:
//! grouping became the dearest step of an ad-hoc count by month and
//! channel.
//!
//! [`DictionaryAggregation`] is a physical optimizer rule that gives the
//! partial stage of such an aggregation to [`DictionaryAggregateExec`]. It
//! codes each key column's distinct values densely in the order they appear
//! ([`keys::GroupKeys`]): a dictionary's values once per dictionary and each
//! row through its key; a string-view column with one value in a batch (a
//! partition column) once; other columns row by row (text of up to 12
//! bytes and fixed-width values as one 128-bit word). A combination of codes is a
//! group; within a batch whose codes span few combinations (one file's
//! partition value, a handful of channels) a row finds its group by index.
//! The aggregates are DataFusion's own `GroupsAccumulator`s, fed as
//! DataFusion's partial stage feeds them, so the final stage, which stays
//! DataFusion's, merges the same state.
//!
//! The rule leaves every other aggregation to DataFusion: grouping sets,
//! ordered or limited aggregations, distinct or ordered aggregates, more
//! than four keys, a key of another type, or no dictionary key at all.
//! Like DataFusion's partial stage, it gives up aggregating (and passes
//! each row's state on) when the first rows are mostly distinct groups,
//! and it hands its groups on early when the memory pool refuses it more.

mod keys;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, aggregate_expressions};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan,
    InputDistributionRequirements, InputOrderMode, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

use keys::{GroupKeys, KeyKind, MAX_KEY_COLUMNS};

/// Gives the partial stage of an aggregation grouped by dictionary columns
/// to [`DictionaryAggregateExec`] (see the module's documentation).
#[derive(Debug, Default)]
pub struct DictionaryAggregation;

impl PhysicalOptimizerRule for DictionaryAggregation {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if !groups_by_dictionary(aggregate)? {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(DictionaryAggregateExec::new(
                Arc::new(aggregate.clone()),
            ))))
        })
        .data()
    }

    fn name(&self) -> &str {
        "dictionary_aggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `aggregate` is a partial stage that [`DictionaryAggregateExec`]
/// runs.
fn groups_by_dictionary(aggregate: &AggregateExec) -> Result<bool> {
    let group_by = aggregate.group_expr();
    let plain = *aggregate.mode() == AggregateMode::Partial
        && group_by.is_single()
        && (1..=MAX_KEY_COLUMNS).contains(&group_by.expr().len())
        && aggregate.limit_options().is_none()
        && aggregate.dynamic_expressions_produced().is_empty()
        && *aggregate.input_order_mode() == InputOrderMode::Linear
        && aggregate.aggr_expr().iter().all(|function| {
            function.groups_accumulator_supported()
                && !function.is_distinct()
                && function.order_bys().is_empty()
        });
    if !plain {
        return Ok(false);
    }
    let input_schema = aggregate.input_schema();
    let mut kinds = Vec::with_capacity(group_by.expr().len());
    for (expr, _) in group_by.expr() {
        match KeyKind::of(&expr.data_type(&input_schema)?) {
            Some(kind) => kinds.push(kind),
            None => return Ok(false),
        }
    }
    Ok(kinds.contains(&KeyKind::Dictionary))
}

/// The partial stage of an aggregation grouped by dictionary columns: the
/// [`AggregateExec`] it replaces gives its schema, expressions and
/// properties; only the grouping differs.
#[derive(Debug, Clone)]
pub struct DictionaryAggregateExec {
    aggregate: Arc<AggregateExec>,
    metrics: ExecutionPlanMetricsSet,
}

impl DictionaryAggregateExec {
    fn new(aggregate: Arc<AggregateExec>) -> Self {
        Self {
            aggregate,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for DictionaryAggregateExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        struct Shown<'a>(&'a AggregateExec, DisplayFormatType);
        impl fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                self.0.fmt_as(self.1, f)
            }
        }
        let shown = Shown(&self.aggregate, format).to_string();
        let details = shown.strip_prefix("AggregateExec: ").unwrap_or(&shown);
        write!(f, "DictionaryAggregateExec: {details}")
    }
}

impl ExecutionPlan for DictionaryAggregateExec {
    fn name(&self) -> &str {
        "DictionaryAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.aggregate.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.aggregate.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.aggregate.benefits_from_input_partitioning()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.aggregate.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let replaced = Arc::clone(&self.aggregate).replace_children(children, options)?;
        let aggregate = replaced.downcast_ref::<AggregateExec>().ok_or_else(|| {
            DataFusionError::Internal("an AggregateExec became another plan".into())
        })?;
        Ok(Arc::new(Self::new(Arc::new(aggregate.clone()))))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let aggregate = &self.aggregate;
        let input = aggregate.input().execute(partition, Arc::clone(&context))?;
        let input_schema = aggregate.input_schema();
        let group_by = aggregate.group_expr().expr();
        let key_types = group_by
            .iter()
            .map(|(expr, _)| expr.data_type(&input_schema))
            .collect::<Result<Vec<DataType>>>()?;
        let options = &context.session_config().options().execution;
        let aggregation = PartialAggregation {
            input,
            schema: aggregate.schema(),
            group_by: group_by.iter().map(|(expr, _)| Arc::clone(expr)).collect(),
            arguments: aggregate_expressions(aggregate.aggr_expr(), &AggregateMode::Partial, 0)?,
            filters: aggregate.filter_expr().to_vec(),
            accumulators: aggregate
                .aggr_expr()
                .iter()
                .map(|function| function.create_groups_accumulator())
                .collect::<Result<_>>()?,
            keys: GroupKeys::new(&key_types)?,
            groups: Vec::new(),
            reservation: MemoryConsumer::new(format!("DictionaryAggregateExec[{partition}]"))
                .register(context.memory_pool()),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            batch_size: context.session_config().batch_size(),
            probe: Probe {
                rows: 0,
                rows_threshold: options.skip_partial_aggregation_probe_rows_threshold,
                ratio_threshold: options.skip_partial_aggregation_probe_ratio_threshold,
            },
            passing_through: false,
            ready: VecDeque::new(),
            input_done: false,
        };
        let stream = futures::stream::unfold(aggregation, |mut aggregation| async move {
            let next = aggregation.next().await?;
            Some((next, aggregation))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            aggregate.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// DataFusion's test for giving up a partial aggregation: once at least
/// `rows_threshold` rows are in, if they made more than `ratio_threshold`
/// groups per row, aggregating them saves the final stage little. A ratio
/// of 1 or more never gives up.
struct Probe {
    rows: usize,
    rows_threshold: usize,
    ratio_threshold: f64,
}

impl Probe {
    /// Whether to give up, after `rows` more rows made `groups` in all.
    fn gives_up(&mut self, rows: usize, groups: usize) -> bool {
        self.rows += rows;
        self.ratio_threshold < 1.0
            && self.rows >= self.rows_threshold
            && groups as f64 / self.rows as f64 > self.ratio_threshold
    }
}

/// One partition's partial aggregation.
struct PartialAggregation {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    group_by: Vec<Arc<dyn PhysicalExpr>>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    keys: GroupKeys,
    /// The group of each row of the batch.
    groups: Vec<usize>,
    reservation: MemoryReservation,
    metrics: BaselineMetrics,
    batch_size: usize,
    probe: Probe,
    /// Whether each row's state goes on as it is (the probe gave up).
    passing_through: bool,
    ready: VecDeque<RecordBatch>,
    input_done: bool,
}

impl PartialAggregation {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Some(Ok(batch.record_output(&self.metrics)));
            }
            if self.input_done {
                self.metrics.try_done();
                return None;
            }
            let consumed = match self.input.next().await {
                Some(Ok(batch)) => {
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let _timer = elapsed.timer();
                    self.consume(&batch)
                }
                Some(Err(error)) => Err(error),
                None => {
                    self.input_done = true;
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let _timer = elapsed.timer();
                    self.emit()
                }
            };
            if let Err(error) = consumed {
                self.input_done = true;
                self.ready.clear();
                return Some(Err(error));
            }
        }
    }

    fn consume(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.passing_through {
            let states = self.states_of(batch)?;
            if states.num_rows() > 0 {
                self.ready.push_back(states);
            }
            return Ok(());
        }
        self.aggregate(batch)?;
        if self.probe.gives_up(batch.num_rows(), self.keys.len()) {
            self.emit()?;
            self.passing_through = true;
        }
        self.reserve()
    }

    fn aggregate(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = evaluate(&self.group_by, batch)?;
        self.keys.intern(&keys, &mut self.groups)?;
        let groups = self.keys.len();
        let inputs = self.inputs(batch)?;
        for (accumulator, (values, filter)) in self.accumulators.iter_mut().zip(&inputs) {
            let filter = filter.as_ref().map(|array| array.as_boolean());
            accumulator.update_batch(values, &self.groups, filter, groups)?;
        }
        Ok(())
    }

    /// Each row of `batch` as a group of its own, in the partial state.
    fn states_of(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns = evaluate(&self.group_by, batch)?;
        for (accumulator, (values, filter)) in self.accumulators.iter().zip(self.inputs(batch)?) {
            let filter = filter.as_ref().map(|array| array.as_boolean());
            columns.extend(accumulator.convert_to_state(&values, filter)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Each aggregate's arguments and `FILTER (WHERE …)`, on `batch`.
    fn inputs(&self, batch: &RecordBatch) -> Result<Vec<(Vec<ArrayRef>, Option<ArrayRef>)>> {
        self.arguments
            .iter()
            .zip(&self.filters)
            .map(|(arguments, filter)| {
                Ok((
                    evaluate(arguments, batch)?,
                    filter_of(filter.as_ref(), batch)?,
                ))
            })
            .collect()
    }

    /// Makes the groups so far ready to go, in batches, and starts anew.
    fn emit(&mut self) -> Result<()> {
        if self.keys.len() == 0 {
            return Ok(());
        }
        let mut columns = self.keys.emit()?;
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let size = self.batch_size.max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = size.min(batch.num_rows() - offset);
            self.ready.push_back(batch.slice(offset, len));
            offset += len;
        }
        Ok(())
    }

    /// Holds the memory the groups take; when the pool refuses it, the
    /// groups go on early (the final stage merges them with the rest).
    fn reserve(&mut self) -> Result<()> {
        if self.reservation.try_resize(self.size()).is_ok() {
            return Ok(());
        }
        self.emit()?;
        self.reservation.try_resize(self.size())
    }

    fn size(&self) -> usize {
        self.keys.size()
            + self.groups.capacity() * size_of::<usize>()
            + self
                .accumulators
                .iter()
                .map(|accumulator| accumulator.size())
                .sum::<usize>()
    }
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|expr| expr.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// An aggregate's `FILTER (WHERE …)`, evaluated on `batch`.
fn filter_of(
    filter: Option<&Arc<dyn PhysicalExpr>>,
    batch: &RecordBatch,
) -> Result<Option<ArrayRef>> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let array = filter.evaluate(batch)?.into_array(batch.num_rows())?;
    if array.data_type() != &DataType::Boolean {
        return Err(DataFusionError::Internal(format!(
            "an aggregate filter of type {}",
            array.data_type()
        )));
    }
    Ok(Some(array))
}
