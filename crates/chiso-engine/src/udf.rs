//! The SQL functions chiso adds to DataFusion, for its own queries and for
//! analysts:
//!
//! * `percent(numerator, denominator)`: a rate of kpis.md, a percentage
//!   rounded to 2 decimals half away from zero, null when the denominator is 0;
//! * `local_date(ts)`: the local date (Asia/Ho_Chi_Minh) of an instant;
//! * `working_days_between(a, b)`: working days after `a`'s date up to and
//!   including `b`'s date, by the holiday calendar;
//! * `add_working_days(ts, n)`: the calendar's due-date rule (17:00 of the
//!   n-th working day after processing starts, 15:00 cut-off).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use chiso_core::calendar::WorkCalendar;
use chiso_core::time::local_date;
use chiso_store::datafusion::common::{DataFusionError, Result, cast::as_int64_array};
use chiso_store::datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use chrono::{DateTime, NaiveDate, Utc};

/// Every function chiso registers.
pub fn all(calendar: Arc<WorkCalendar>) -> Vec<ScalarUDF> {
    let between_calendar = Arc::clone(&calendar);
    vec![
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
            Arc::new(move |args: &[ColumnarValue]| {
                working_days_between(&between_calendar, args)
            }),
        ),
        create_udf(
            "add_working_days",
            vec![timestamp_type(), DataType::Int64],
            timestamp_type(),
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| add_working_days(&calendar, args)),
        ),
    ]
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
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
    (denominator != 0)
        .then(|| (numerator as f64 * 10_000.0 / denominator as f64).round() / 100.0)
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

fn instant(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

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

fn add_working_days(calendar: &WorkCalendar, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let starts = downcast::<TimestampMicrosecondArray>(&arrays[0], "add_working_days")?;
    let counts = as_int64_array(&arrays[1])?;
    let due: TimestampMicrosecondArray = starts
        .iter()
        .zip(counts.iter())
        .map(|(start, n)| {
            let n = u32::try_from(n?).ok()?;
            Some(calendar.due_at(instant(start?)?, n).timestamp_micros())
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(due.with_timezone("UTC"))))
}

#[cfg(test)]
mod tests {
    use super::rate;

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
