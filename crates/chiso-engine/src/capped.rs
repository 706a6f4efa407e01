//! Functions whose output an argument sizes, bounded by the query's memory.
//!
//! DataFusion's memory pool counts what operators reserve (sorts, joins,
//! aggregations), not what a scalar function allocates for its result:
//! `cardinality(range(1, 500000000))` would build four gigabytes of list
//! under a 64 MB limit. Every function whose output size one argument
//! decides, rather than the size of its inputs, is wrapped here in an
//! analyst's session ([`crate::bounded_session`]): before the function
//! runs, its output for the batch is estimated from the arguments (an upper
//! bound) and refused when it is larger than the query's pool. Functions
//! whose output is linear in their inputs (`concat`, `upper`, `array_append`,
//! …) need no wrapper: their inputs are already bounded.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::kernels::length::length;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use chiso_exec::datafusion::common::{DataFusionError, Result};
use chiso_exec::datafusion::execution::session_state::SessionState;
use chiso_exec::datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Estimate {
    /// `range(start, stop, step)` (stop excluded) and `generate_series`
    /// (stop included): values of 8 bytes.
    Series { inclusive: bool },
    /// `repeat(text, n)`: bytes.
    Repeat,
    /// `lpad(text, n [, fill])`, `rpad`: up to 4 bytes per character.
    Pad,
    /// `array_repeat(element, n)`: n elements, each as long as the element.
    ArrayRepeat,
    /// `array_resize(array, n [, value])`: n values.
    ArrayResize,
    /// `replace(text, from, to)`: every occurrence of `from` becomes `to`
    /// (an empty `from` occurs between every two characters).
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: up to a match
    /// per position, each replaced by the replacement with its group
    /// references expanded (each at most the whole text).
    RegexpReplace,
}

const CAPPED: [(&str, Estimate); 9] = [
    ("range", Estimate::Series { inclusive: false }),
    ("generate_series", Estimate::Series { inclusive: true }),
    ("repeat", Estimate::Repeat),
    ("lpad", Estimate::Pad),
    ("rpad", Estimate::Pad),
    ("array_repeat", Estimate::ArrayRepeat),
    ("array_resize", Estimate::ArrayResize),
    ("replace", Estimate::Replace),
    ("regexp_replace", Estimate::RegexpReplace),
];

/// The state's functions that an argument sizes, each refusing to make
/// more than `memory` bytes in one call.
pub(crate) fn capped_functions(state: &SessionState, memory: usize) -> Vec<ScalarUDF> {
    CAPPED
        .iter()
        .filter_map(|(name, estimate)| {
            let inner = state.scalar_functions().get(*name)?;
            Some(ScalarUDF::new_from_impl(Capped {
                inner: Arc::clone(inner),
                estimate: *estimate,
                memory: memory as u128,
            }))
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    memory: u128,
}

impl Capped {
    fn check(&self, args: &[ColumnarValue], number_rows: usize) -> Result<()> {
        let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            1
        } else {
            number_rows
        };
        let Some(bytes) = self.bytes(args, rows)? else {
            return Ok(());
        };
        if bytes > self.memory {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}(…) would make about {} of results in one batch, more than the {} a query \
                 may use; use smaller arguments",
                self.inner.name(),
                megabytes(bytes),
                megabytes(self.memory),
            )));
        }
        Ok(())
    }

    /// An upper bound of the bytes the call makes, when the arguments tell.
    fn bytes(&self, args: &[ColumnarValue], rows: usize) -> Result<Option<u128>> {
        let column = |index: usize| -> Result<Option<ArrayRef>> {
            args.get(index).map(|arg| arg.to_array(rows)).transpose()
        };
        let total = |sizes: Vec<Option<u128>>| -> u128 {
            sizes
                .into_iter()
                .flatten()
                .fold(0u128, u128::saturating_add)
        };
        Ok(match self.estimate {
            Estimate::Series { inclusive } => {
                let (start, stop, step) = match args.len() {
                    1 => (None, column(0)?, None),
                    2 => (column(0)?, column(1)?, None),
                    _ => (column(0)?, column(1)?, column(2)?),
                };
                let Some(stop) = stop else { return Ok(None) };
                let Some(stops) = instants(&stop)? else {
                    return Ok(None);
                };
                let starts = match start {
                    Some(start) => instants(&start)?,
                    None => Some(vec![Some(0); stops.len()]),
                };
                let steps = match step {
                    Some(step) => steps(&step)?,
                    None => Some(vec![Some(1); stops.len()]),
                };
                let (Some(starts), Some(steps)) = (starts, steps) else {
                    return Ok(None);
                };
                let counts = starts
                    .iter()
                    .zip(&stops)
                    .zip(&steps)
                    .map(|((start, stop), step)| {
                        let (start, stop, step) = ((*start)?, (*stop)?, (*step)?);
                        let span = stop.abs_diff(start);
                        let step = step.unsigned_abs().max(1);
                        Some((span / step + u128::from(inclusive)).saturating_mul(8))
                    })
                    .collect();
                Some(total(counts))
            }
            Estimate::Repeat | Estimate::ArrayResize | Estimate::Pad => {
                let (Some(counts), width) = (
                    column(1)?.map(|c| integers(&c)).transpose()?,
                    match self.estimate {
                        Estimate::Pad => 4,
                        Estimate::ArrayResize => 8,
                        _ => 1,
                    },
                ) else {
                    return Ok(None);
                };
                let lengths = match self.estimate {
                    Estimate::Repeat => lengths(column(0)?)?,
                    _ => vec![Some(1); counts.len()],
                };
                let sizes = lengths
                    .iter()
                    .zip(&counts)
                    .map(|(length, count)| {
                        let count = u128::try_from((*count)?).unwrap_or(0);
                        Some(length.unwrap_or(0).max(1).saturating_mul(count) * width)
                    })
                    .collect();
                Some(total(sizes))
            }
            Estimate::ArrayRepeat => {
                let Some(counts) = column(1)?.map(|c| integers(&c)).transpose()? else {
                    return Ok(None);
                };
                let element = column(0)?;
                let element_lengths = match &element {
                    Some(array) if array.data_type().is_nested() => lengths(element)?,
                    _ => vec![Some(1); counts.len()],
                };
                let sizes = element_lengths
                    .iter()
                    .zip(&counts)
                    .map(|(length, count)| {
                        let count = u128::try_from((*count)?).unwrap_or(0);
                        Some(length.unwrap_or(0).max(1).saturating_mul(count) * 8)
                    })
                    .collect();
                Some(total(sizes))
            }
            Estimate::Replace | Estimate::RegexpReplace => {
                let texts = lengths(column(0)?)?;
                let found = lengths(column(1)?)?;
                let replacement = column(2)?;
                let replacements = lengths(replacement.clone())?;
                let references = match (&self.estimate, replacement) {
                    (Estimate::RegexpReplace, Some(array)) => group_references(&array)?,
                    _ => vec![0; texts.len()],
                };
                let sizes = texts
                    .iter()
                    .zip(&found)
                    .zip(&replacements)
                    .zip(&references)
                    .map(|(((text, found), replacement), references)| {
                        let text = text.unwrap_or(0);
                        let matches = match self.estimate {
                            Estimate::Replace => (text + 1) / found.unwrap_or(0).max(1),
                            _ => text + 1,
                        };
                        let each = replacement
                            .unwrap_or(0)
                            .saturating_add(references.saturating_mul(text));
                        Some(text.saturating_add(matches.saturating_mul(each)))
                    })
                    .collect();
                Some(total(sizes))
            }
        })
    }
}

fn megabytes(bytes: u128) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1024.0 {
        format!("{:.1} GB", mb / 1024.0)
    } else {
        format!("{mb:.0} MB")
    }
}

/// Whole numbers, or `None` for a type that is not one.
fn integers(array: &ArrayRef) -> Result<Vec<Option<i128>>> {
    if !array.data_type().is_integer() && !array.data_type().is_null() {
        return Ok(vec![None; array.len()]);
    }
    let cast = cast_with_options(array, &DataType::Int64, &CastOptions::default())?;
    Ok(cast
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(i128::from))
        .collect())
}

/// Integers as they are, dates and timestamps as nanoseconds; `None` for
/// other types.
fn instants(array: &ArrayRef) -> Result<Option<Vec<Option<i128>>>> {
    let nanos_per: i128 = match array.data_type() {
        t if t.is_integer() || t.is_null() => 1,
        DataType::Date32 => 86_400 * 1_000_000_000,
        DataType::Date64 => 1_000_000,
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => 1_000_000_000,
            TimeUnit::Millisecond => 1_000_000,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1,
        },
        _ => return Ok(None),
    };
    let cast = cast_with_options(array, &DataType::Int64, &CastOptions::default())?;
    Ok(Some(
        cast.as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| i128::from(v) * nanos_per))
            .collect(),
    ))
}

/// A step: an integer, or an interval as its shortest length in
/// nanoseconds (a month counted as 28 days), so that counts are upper bounds.
fn steps(array: &ArrayRef) -> Result<Option<Vec<Option<i128>>>> {
    match array.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => Ok(Some(
            array
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        const DAY: i128 = 86_400 * 1_000_000_000;
                        i128::from(v.months) * 28 * DAY
                            + i128::from(v.days) * DAY
                            + i128::from(v.nanoseconds)
                    })
                })
                .collect(),
        )),
        DataType::Interval(_) => {
            let cast = cast_with_options(
                array,
                &DataType::Interval(IntervalUnit::MonthDayNano),
                &CastOptions::default(),
            )?;
            steps(&cast)
        }
        t if t.is_integer() || t.is_null() => Ok(Some(integers(array)?)),
        _ => Ok(None),
    }
}

/// The length of each text (bytes) or list (values) of `array`.
fn lengths(array: Option<ArrayRef>) -> Result<Vec<Option<u128>>> {
    let Some(array) = array else {
        return Ok(Vec::new());
    };
    let measured = match length(&array) {
        Ok(lengths) => lengths,
        Err(_) => {
            let text = cast_with_options(&array, &DataType::LargeUtf8, &CastOptions::default())?;
            length(&text)?
        }
    };
    let measured = cast_with_options(&measured, &DataType::Int64, &CastOptions::default())?;
    Ok(measured
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| u128::try_from(v).unwrap_or(0)))
        .collect())
}

/// How many group references (`\1`, `$1`, `${name}`) each replacement holds.
fn group_references(array: &ArrayRef) -> Result<Vec<u128>> {
    let text = cast_with_options(array, &DataType::LargeUtf8, &CastOptions::default())?;
    Ok(text
        .as_string::<i64>()
        .iter()
        .map(|v| {
            v.map(|v| v.bytes().filter(|b| matches!(b, b'\\' | b'$')).count() as u128)
                .unwrap_or(0)
        })
        .collect())
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
}
