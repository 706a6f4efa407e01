//! The SQL functions chiso adds to DataFusion, for its own queries and for
//! analysts:
//!
//! * `percent(numerator, denominator)`: a rate of docs/kpis.md, a percentage
//!   rounded to 2 decimals half away from zero, null when the denominator is 0;
//! * `local_date(ts)`: the local date (Asia/Ho_Chi_Minh) of an instant;
//! * `working_days_between(a, b)`: working days after `a`'s date up to and
//!   including `b`'s date, by the holiday calendar;
//! * `add_working_days(ts, n)`: the calendar's due-date rule (17:00 of the
//!   n-th working day after processing starts, 15:00 cut-off);
//! * `working_day_close(ts, n)`: office close (17:00) of the n-th working day
//!   after `ts`'s local date, the horizon of `due_soon`;
//! * `working_hours_between(a, b)`: office hours (07:00–11:00, 13:00–17:00 on
//!   working days) from `a` to `b`, 0 when `b` is not after `a`;
//! * `percentile_nearest_rank(x, p)`: an aggregate, the `ceil(p × n)`-th
//!   smallest value (docs/kpis.md's 90th percentile is `p = 0.9`);
//! * `format_number(x, decimals, lang)` and `format_change(x, decimals,
//!   lang)`: a number as a reader of `lang` (`'vi'`, `'en'`) writes it
//!   (`1.234,50` / `1,234.50`), the change with its sign (`+1,25`), for the
//!   sentences the dashboards write from figures;
//! * `dossier_chunk(dossier_id, n)`: which of `n` chunks a dossier falls in,
//!   by a hash of its id that never changes between runs or machines; chiso
//!   derives a big city's dossier tables one chunk at a time (derived.rs).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use chiso_core::calendar::WorkCalendar;
use chiso_core::format::decimal_in;
use chiso_core::time::local_date;
use chiso_exec::datafusion::common::cast::{
    as_float64_array, as_int64_array, as_list_array, as_string_array,
};
use chiso_exec::datafusion::common::{DataFusionError, Result, ScalarValue};
use chiso_exec::datafusion::logical_expr::{
    Accumulator, AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udaf, create_udf,
};
use chrono::{DateTime, NaiveDate, Utc};

/// Every function chiso registers.
pub fn all(calendar: Arc<WorkCalendar>) -> Vec<ScalarUDF> {
    let between_calendar = Arc::clone(&calendar);
    let close_calendar = Arc::clone(&calendar);
    let hours_calendar = Arc::clone(&calendar);
    vec![
        create_udf(
            "working_day_close",
            vec![timestamp_type(), DataType::Int64],
            timestamp_type(),
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| working_day_close(&close_calendar, args)),
        ),
        create_udf(
            "working_hours_between",
            vec![timestamp_type(), timestamp_type()],
            DataType::Float64,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| working_hours_between(&hours_calendar, args)),
        ),
        create_udf(
            "percent",
            vec![DataType::Int64, DataType::Int64],
            DataType::Float64,
            Volatility::Immutable,
            Arc::new(percent),
        ),
        create_udf(
            "local_date",
            vec![timestamp_type()],
            DataType::Date32,
            Volatility::Immutable,
            Arc::new(local_date_of),
        ),
        create_udf(
            "working_days_between",
            vec![timestamp_type(), timestamp_type()],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| working_days_between(&between_calendar, args)),
        ),
        create_udf(
            "add_working_days",
            vec![timestamp_type(), DataType::Int64],
            timestamp_type(),
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| add_working_days(&calendar, args)),
        ),
        create_udf(
            "format_number",
            vec![DataType::Float64, DataType::Int64, DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| format_number(args, false)),
        ),
        create_udf(
            "format_change",
            vec![DataType::Float64, DataType::Int64, DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| format_number(args, true)),
        ),
        create_udf(
            "dossier_chunk",
            // The events' strings are views: no copy of a hundred million ids.
            vec![DataType::Utf8View, DataType::Int64],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(dossier_chunk),
        ),
    ]
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The aggregate functions chiso registers.
pub fn aggregates() -> Vec<AggregateUDF> {
    vec![create_udaf(
        "percentile_nearest_rank",
        vec![DataType::Float64, DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(NearestRank::default()))),
        Arc::new(vec![
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            DataType::Float64,
        ]),
    )]
}

/// The values seen, and the fraction asked for (a constant of the call).
#[derive(Debug, Default)]
struct NearestRank {
    values: Vec<f64>,
    fraction: Option<f64>,
}

impl NearestRank {
    fn note_fraction(&mut self, fractions: &Float64Array, row: usize) {
        if self.fraction.is_none() && fractions.is_valid(row) {
            self.fraction = Some(fractions.value(row));
        }
    }
}

impl Accumulator for NearestRank {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let xs = as_float64_array(&values[0])?;
        let fractions = as_float64_array(&values[1])?;
        for row in 0..xs.len() {
            if xs.is_valid(row) {
                self.values.push(xs.value(row));
                self.note_fraction(fractions, row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (Some(fraction), false) = (self.fraction, self.values.is_empty()) else {
            return Ok(ScalarValue::Float64(None));
        };
        self.values.sort_by(f64::total_cmp);
        let n = self.values.len();
        // A hair below the product, so that 0.9 × 10 (9.000000000000002 in
        // binary) is rank 9, not 10.
        let rank = ((fraction * n as f64) - 1e-9).ceil().clamp(1.0, n as f64) as usize;
        Ok(ScalarValue::Float64(Some(self.values[rank - 1])))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<f64>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Float64(Some(*v)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64)),
            ScalarValue::Float64(self.fraction),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = as_list_array(&states[0])?;
        let fractions = as_float64_array(&states[1])?;
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                let values = lists.value(row);
                self.values
                    .extend(as_float64_array(&values)?.iter().flatten());
            }
            self.note_fraction(fractions, row);
        }
        Ok(())
    }
}

/// The arguments as arrays of one length (scalars broadcast).
fn arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    let rows = args
        .iter()
        .find_map(|a| match a {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1);
    args.iter().map(|a| a.to_array(rows)).collect()
}

fn downcast<'a, A: 'static>(array: &'a ArrayRef, function: &str) -> Result<&'a A> {
    array.as_any().downcast_ref::<A>().ok_or_else(|| {
        DataFusionError::Execution(format!(
            "{function}: unexpected argument type {}",
            array.data_type()
        ))
    })
}

/// `round(n × 100 / d, 2)`, computed as `round(n × 10000 / d) / 100` so that an
/// exact half (98.245 %) rounds away from zero as a person would.
pub fn rate(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator != 0).then(|| (numerator as f64 * 10_000.0 / denominator as f64).round() / 100.0)
}

fn percent(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let numerators = as_int64_array(&arrays[0])?;
    let denominators = as_int64_array(&arrays[1])?;
    let rates: Float64Array = numerators
        .iter()
        .zip(denominators.iter())
        .map(|(n, d)| rate(n?, d?))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(rates)))
}

/// Places a formatted number may have; more is never meant.
const MAX_DECIMALS: i64 = 6;

/// `x` with `decimals` places the way a reader of `lang` writes it;
/// `signed` puts `+` before a positive change (a negative one has `-`).
fn format_number(args: &[ColumnarValue], signed: bool) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let values = as_float64_array(&arrays[0])?;
    let decimals = as_int64_array(&arrays[1])?;
    let langs = as_string_array(&arrays[2])?;
    let texts: StringArray = (0..values.len())
        .map(|row| {
            if values.is_null(row) || !values.value(row).is_finite() {
                return None;
            }
            let x = values.value(row);
            let places = match decimals.is_valid(row) {
                true => decimals.value(row).clamp(0, MAX_DECIMALS) as usize,
                false => 2,
            };
            let english = langs.is_valid(row) && langs.value(row).eq_ignore_ascii_case("en");
            let text = decimal_in(x, places, english);
            let shows_digit = text.chars().any(|c| c.is_ascii_digit() && c != '0');
            Some(match signed && x > 0.0 && shows_digit {
                true => format!("+{text}"),
                false => text,
            })
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(texts)))
}

fn instant(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// An instant the working-day calendar can walk from: within the years
/// chiso reports on. Walking working days from the year 262 142 would run
/// off chrono's dates; such an instant gives null.
fn calendar_instant(micros: i64) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    let at = instant(micros)?;
    (crate::period::FIRST_YEAR..=crate::period::LAST_YEAR)
        .contains(&at.year())
        .then_some(at)
}

/// The most working days the calendar's functions walk: a year and more
/// of them is no due date; past it they give null rather than walk for
/// minutes.
const MOST_WORKING_DAYS: u32 = 366;

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

fn local_date_of(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let instants = downcast::<TimestampMicrosecondArray>(&arrays[0], "local_date")?;
    let dates: Date32Array = instants
        .iter()
        .map(|t| t.and_then(instant).map(|t| days_since_epoch(local_date(t))))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(dates)))
}

fn working_days_between(calendar: &WorkCalendar, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let from = downcast::<TimestampMicrosecondArray>(&arrays[0], "working_days_between")?;
    let to = downcast::<TimestampMicrosecondArray>(&arrays[1], "working_days_between")?;
    let days: Int64Array = from
        .iter()
        .zip(to.iter())
        .map(|(a, b)| {
            let (a, b) = (instant(a?)?, instant(b?)?);
            Some(calendar.working_days_between(local_date(a), local_date(b)))
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(days)))
}

fn working_day_close(calendar: &WorkCalendar, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let instants = downcast::<TimestampMicrosecondArray>(&arrays[0], "working_day_close")?;
    let counts = as_int64_array(&arrays[1])?;
    let closes: TimestampMicrosecondArray = instants
        .iter()
        .zip(counts.iter())
        .map(|(at, n)| {
            let n = u32::try_from(n?).ok().filter(|n| *n <= MOST_WORKING_DAYS)?;
            Some(
                calendar
                    .working_day_close(calendar_instant(at?)?, n)
                    .timestamp_micros(),
            )
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(closes.with_timezone("UTC"))))
}

fn working_hours_between(calendar: &WorkCalendar, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let from = downcast::<TimestampMicrosecondArray>(&arrays[0], "working_hours_between")?;
    let to = downcast::<TimestampMicrosecondArray>(&arrays[1], "working_hours_between")?;
    let hours: Float64Array = from
        .iter()
        .zip(to.iter())
        .map(|(a, b)| {
            let seconds = calendar.working_seconds_between(instant(a?)?, instant(b?)?)?;
            // Hours to 2 decimals, as every figure of docs/kpis.md.
            Some((seconds as f64 / 36.0).round() / 100.0)
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(hours)))
}

fn add_working_days(calendar: &WorkCalendar, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let starts = downcast::<TimestampMicrosecondArray>(&arrays[0], "add_working_days")?;
    let counts = as_int64_array(&arrays[1])?;
    let due: TimestampMicrosecondArray = starts
        .iter()
        .zip(counts.iter())
        .map(|(start, n)| {
            let n = u32::try_from(n?).ok().filter(|n| *n <= MOST_WORKING_DAYS)?;
            Some(
                calendar
                    .due_at(calendar_instant(start?)?, n)
                    .timestamp_micros(),
            )
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(due.with_timezone("UTC"))))
}

/// FNV-1a: a fixed function of the bytes (std's hasher may change between
/// Rust releases, and a chunk must be the same in every process).
pub fn chunk_of(dossier_id: &str, chunks: u64) -> u64 {
    let hash = dossier_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    hash % chunks.max(1)
}

fn dossier_chunk(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let ids = downcast::<StringViewArray>(&arrays[0], "dossier_chunk")?;
    let counts = as_int64_array(&arrays[1])?;
    let chunks: Int64Array = ids
        .iter()
        .zip(counts.iter())
        .map(|(id, n)| {
            let n = u64::try_from(n?).ok().filter(|n| *n > 0)?;
            i64::try_from(chunk_of(id?, n)).ok()
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(chunks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearest_rank(values: &[f64], fraction: f64) -> Option<f64> {
        let mut accumulator = NearestRank::default();
        let xs: ArrayRef = Arc::new(Float64Array::from(values.to_vec()));
        let fractions: ArrayRef = Arc::new(Float64Array::from(vec![fraction; values.len()]));
        accumulator.update_batch(&[xs, fractions]).unwrap();
        match accumulator.evaluate().unwrap() {
            ScalarValue::Float64(value) => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nearest_rank_is_the_ceil_of_p_n_th_smallest() {
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&ten, 0.9), Some(9.0));
        assert_eq!(nearest_rank(&ten[..6], 0.9), Some(10.0));
        assert_eq!(nearest_rank(&[4.0], 0.9), Some(4.0));
        assert_eq!(nearest_rank(&ten, 0.5), Some(5.0));
        assert_eq!(nearest_rank(&[], 0.9), None);
    }

    #[test]
    fn chunks_are_stable_and_spread_dossiers_evenly() {
        // Fixed values: a chunk must not move between releases.
        assert_eq!(chunk_of("000.00.31.H13-250714-0042", 7), 4);
        assert_eq!(chunk_of("000.00.31.H13-250714-0042", 1000), 610);
        assert_eq!(chunk_of("", 5), 0xcbf2_9ce4_8422_2325 % 5);
        assert_eq!(chunk_of("anything", 1), 0);
        assert_eq!(chunk_of("anything", 0), 0);
        let mut sizes = [0_u32; 8];
        for n in 0..80_000 {
            sizes[chunk_of(&format!("000.00.31.H13-2507{:02}-{n:04}", n % 28), 8) as usize] += 1;
        }
        assert!(
            sizes.iter().all(|s| (9_000..11_000).contains(s)),
            "{sizes:?}"
        );
    }

    #[test]
    fn rates_round_half_away_from_zero_and_never_divide_by_zero() {
        assert_eq!(rate(19_649, 20_000), Some(98.25));
        assert_eq!(rate(1, 3), Some(33.33));
        assert_eq!(rate(2, 3), Some(66.67));
        assert_eq!(rate(0, 5), Some(0.0));
        assert_eq!(rate(5, 5), Some(100.0));
        assert_eq!(rate(0, 0), None);
    }
}
