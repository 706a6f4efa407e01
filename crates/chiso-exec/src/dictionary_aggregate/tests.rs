//! Every query runs twice: in a session with the rule and in DataFusion's
//! own, over the same tables; the results must be the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Array, Int8Array, Int32Array,
    Int64Array, RecordBatch, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int8Type, Int32Type, Int64Type, Schema, SchemaRef};
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionConfig;

use super::{DictionaryAggregateExec, DictionaryAggregation};

/// A xorshift generator: the tables are random but the same on every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const WORDS: [&str; 6] = [
    "online",
    "direct",
    "postal",
    "",
    "a value longer than twelve bytes",
    "another value longer than twelve",
];

fn schema() -> SchemaRef {
    let dictionary = |name: &str, key: DataType, value: DataType| {
        Field::new(
            name,
            DataType::Dictionary(Box::new(key), Box::new(value)),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        dictionary("channel", DataType::Int32, DataType::Utf8),
        dictionary("kind", DataType::Int8, DataType::Utf8View),
        Field::new("month", DataType::Utf8View, true),
        Field::new("ward", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("x", DataType::Float64, true),
    ]))
}

/// `batches` batches of `rows` rows. A batch's `month` is one value (as a
/// partition column's) or, in every third batch, many; dictionaries change
/// every other batch, with their values in a new order, repeated, or null,
/// and one that no row refers to.
fn batches(random: &mut Random, batches: usize, rows: usize, wards: u64) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut values: ArrayRef = Arc::new(StringArray::from(WORDS.to_vec()));
    let mut kinds: ArrayRef = Arc::new(StringViewArray::from(vec![
        "x",
        "y",
        "x",
        "a kind longer than twelve",
    ]));
    for b in 0..batches {
        if b % 2 == 0 {
            let mut words: Vec<Option<&str>> = WORDS.iter().map(|w| Some(*w)).collect();
            words.rotate_left(b % WORDS.len());
            words.push(Some(WORDS[b % WORDS.len()]));
            if b % 4 == 0 {
                words.push(None);
            }
            // A value no row refers to is no group.
            words.push(Some("in no row"));
            values = Arc::new(StringArray::from(words));
            let mut kind_words = vec![Some("x"), Some("y"), Some("a kind longer than twelve")];
            kind_words.rotate_left(b % 3);
            kinds = Arc::new(StringViewArray::from(kind_words));
        }
        let month = format!("2025-{:02}", 1 + random.below(12));
        let null_every = |random: &mut Random, n: u64| random.below(n) == 0;
        let channel_keys: Int32Array = (0..rows)
            .map(|_| (!null_every(random, 9)).then(|| random.below(values.len() as u64 - 1) as i32))
            .collect();
        // Some batches have one channel for every row.
        let channel_keys = if b % 5 == 3 {
            Int32Array::from(vec![1; rows])
        } else {
            channel_keys
        };
        let kind_keys: Int8Array = (0..rows)
            .map(|_| (!null_every(random, 7)).then(|| random.below(kinds.len() as u64) as i8))
            .collect();
        let months: StringViewArray = (0..rows)
            .map(|_| {
                if b % 3 == 2 {
                    (!null_every(random, 10)).then(|| format!("2025-{:02}", 1 + random.below(12)))
                } else {
                    Some(month.clone())
                }
            })
            .collect();
        let wards: StringArray = (0..rows)
            .map(|_| {
                (!null_every(random, 11)).then(|| match random.below(wards) {
                    w if w % 2 == 0 => format!("ward {w}"),
                    w => format!("a ward with a long name {w}"),
                })
            })
            .collect();
        let n: Int64Array = (0..rows)
            .map(|_| (!null_every(random, 8)).then(|| random.below(40) as i64 - 20))
            .collect();
        let flag: BooleanArray = (0..rows)
            .map(|_| (!null_every(random, 6)).then(|| random.below(2) == 0))
            .collect();
        let x: Float64Array = (0..rows)
            .map(|_| (!null_every(random, 5)).then(|| random.below(1000) as f64 / 8.0))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(channel_keys, Arc::clone(&values)).unwrap(),
            ),
            Arc::new(DictionaryArray::<Int8Type>::try_new(kind_keys, Arc::clone(&kinds)).unwrap()),
            Arc::new(months),
            Arc::new(wards),
            Arc::new(n),
            Arc::new(flag),
            Arc::new(x),
        ];
        out.push(RecordBatch::try_new(schema(), columns).unwrap());
    }
    out
}

/// Two partitions of `count` batches of `rows` rows each.
fn two_partitions(seed: u64, count: usize, rows: usize, wards: u64) -> Vec<Vec<RecordBatch>> {
    let mut random = Random(seed);
    vec![
        batches(&mut random, count, rows, wards),
        batches(&mut random, count, rows, wards),
    ]
}

fn config() -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(64)
}

fn sessions(
    config: SessionConfig,
    partitions: Vec<Vec<RecordBatch>>,
) -> (SessionContext, SessionContext) {
    let with_rule = SessionContext::new_with_state(
        SessionStateBuilder::new()
            .with_config(config.clone())
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(DictionaryAggregation))
            .build(),
    );
    let without = SessionContext::new_with_config(config);
    for context in [&with_rule, &without] {
        let table = MemTable::try_new(schema(), partitions.clone()).unwrap();
        context.register_table("t", Arc::new(table)).unwrap();
    }
    (with_rule, without)
}

/// The rows of `sql`'s result, sorted, and the plan it ran with.
async fn run(context: &SessionContext, sql: &str) -> (Vec<String>, String) {
    let frame = context.sql(sql).await.unwrap();
    let plan = frame.clone().create_physical_plan().await.unwrap();
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    let batches = frame.collect().await.unwrap();
    let text = pretty_format_batches(&batches).unwrap().to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(1)
        .map(str::to_owned)
        .collect();
    rows.sort();
    (rows, shown)
}

async fn same_as_datafusion(
    with_rule: &SessionContext,
    without: &SessionContext,
    sql: &str,
    replaced: Option<bool>,
) {
    let (rows, plan) = run(with_rule, sql).await;
    let (expected, expected_plan) = run(without, sql).await;
    assert!(!expected_plan.contains("DictionaryAggregateExec"));
    if let Some(replaced) = replaced {
        assert_eq!(
            plan.contains("DictionaryAggregateExec"),
            replaced,
            "{sql}\n{plan}"
        );
    }
    assert!(!rows.is_empty(), "{sql}");
    assert_eq!(rows, expected, "{sql}\n{plan}");
}

const AGGREGATES: &str = "count(*) AS rows, count(x) AS xs, sum(x) AS sum, min(x) AS low, \
     max(x) AS high, avg(x) AS mean, sum(n) FILTER (WHERE flag) AS flagged, \
     min(ward) AS first_ward, max(month) AS last_month";

#[tokio::test]
async fn groups_by_dictionaries_as_datafusion_does() {
    let mut random = Random(0x5eed);
    let partitions = vec![
        batches(&mut random, 40, 200, 9),
        batches(&mut random, 30, 150, 9),
    ];
    let (with_rule, without) = sessions(config(), partitions);
    for keys in [
        "channel",
        "kind",
        "month, channel",
        "channel, month",
        "channel, kind",
        "month, kind, channel",
        "channel, ward",
        "channel, n, flag",
        "kind, ward, month, flag",
    ] {
        let sql = format!("SELECT {keys}, {AGGREGATES} FROM t GROUP BY {keys}");
        same_as_datafusion(&with_rule, &without, &sql, Some(true)).await;
    }
    // Filtered and computed keys, and a key with no dictionary: the last
    // stays DataFusion's.
    for (sql, replaced) in [
        (
            "SELECT channel, month, count(*) FROM t WHERE n > 0 GROUP BY 1, 2",
            Some(true),
        ),
        (
            "SELECT upper(month) AS m, channel, sum(x) FROM t GROUP BY 1, 2",
            Some(true),
        ),
        (
            "SELECT month, ward, count(*) FROM t GROUP BY 1, 2",
            Some(false),
        ),
        (
            "SELECT channel, count(DISTINCT ward) FROM t GROUP BY 1",
            None,
        ),
    ] {
        same_as_datafusion(&with_rule, &without, sql, replaced).await;
    }
}

#[tokio::test]
async fn many_groups_are_looked_up_by_hash() {
    // Wards times channels span more codes than a batch's group cache.
    let partitions = two_partitions(42, 20, 500, 3000);
    let (with_rule, without) = sessions(config(), partitions);
    let sql = format!("SELECT channel, ward, month, {AGGREGATES} FROM t GROUP BY 1, 2, 3");
    same_as_datafusion(&with_rule, &without, &sql, Some(true)).await;
}

#[tokio::test]
async fn mostly_distinct_groups_pass_each_row_on() {
    // The probe gives up after 100 rows of mostly distinct groups: the rest
    // go to the final stage as one state per row.
    let config = config()
        .set_usize(
            "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
            100,
        )
        .set_str(
            "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
            "0.1",
        );
    let partitions = two_partitions(7, 10, 300, 5000);
    let (with_rule, without) = sessions(config, partitions);
    let sql = format!("SELECT channel, ward, {AGGREGATES} FROM t GROUP BY 1, 2");
    same_as_datafusion(&with_rule, &without, &sql, Some(true)).await;
}

#[tokio::test]
async fn empty_inputs_make_no_groups() {
    let (with_rule, _) = sessions(config(), vec![vec![], vec![]]);
    let (rows, plan) = run(&with_rule, "SELECT channel, count(*) FROM t GROUP BY 1").await;
    assert!(plan.contains("DictionaryAggregateExec"), "{plan}");
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn a_refused_reservation_sends_the_groups_on_early() {
    let partitions = two_partitions(99, 20, 500, 3000);
    let (with_rule, without) = sessions(config(), partitions);
    let sql = "SELECT channel, ward, count(*) AS rows FROM t GROUP BY 1, 2";
    let plan = with_rule
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let partial = find_partial(&plan).expect("a DictionaryAggregateExec");
    // A pool of 64 KB holds a few hundred groups of this table, of 6,000.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(64 * 1024, 1.0)
        .build_arc()
        .unwrap();
    let context = Arc::new(
        TaskContext::default()
            .with_session_config(config())
            .with_runtime(runtime),
    );
    let states = collect(Arc::clone(&partial), context).await.unwrap();
    let counted = counts_by_key(&states);
    let expected = counts_by_key(&without.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(counted, expected);
    // A group sent on early and met again is sent again (the final stage
    // adds its states up): more states than with memory enough.
    let state_rows =
        |batches: &[RecordBatch]| batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    let unlimited = Arc::new(TaskContext::default().with_session_config(config()));
    let whole = collect(partial, unlimited).await.unwrap();
    assert_eq!(counts_by_key(&whole), expected);
    assert!(
        state_rows(&states) > state_rows(&whole),
        "{} states under the limit, {} without",
        state_rows(&states),
        state_rows(&whole)
    );
}

fn find_partial(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<DictionaryAggregateExec>() {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(find_partial)
}

/// The sum of the third column by the first two, as text.
fn counts_by_key(batches: &[RecordBatch]) -> HashMap<(Option<String>, Option<String>), i64> {
    let mut counts = HashMap::new();
    for batch in batches {
        let text = |i: usize| cast(batch.column(i), &DataType::Utf8).unwrap();
        let (channels, wards) = (text(0), text(1));
        let (channels, wards) = (channels.as_string::<i32>(), wards.as_string::<i32>());
        let rows = batch.column(2).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let key = (
                channels
                    .is_valid(row)
                    .then(|| channels.value(row).to_owned()),
                wards.is_valid(row).then(|| wards.value(row).to_owned()),
            );
            *counts.entry(key).or_default() += rows.value(row);
        }
    }
    counts
}
