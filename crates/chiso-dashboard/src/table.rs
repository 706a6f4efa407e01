//! A panel's result as plain values, free of Arrow, for pages and reports.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, Utc};

use crate::DashboardError;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Date(NaiveDate),
    Instant(DateTime<Utc>),
    /// A list of numbers, such as a ward's weekly series for a sparkline.
    List(Vec<Option<f64>>),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            _ => None,
        }
    }

    /// The value as text with no formatting: keys, links, labels.
    pub fn raw_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(t) => t.clone(),
            Value::Date(d) => d.to_string(),
            Value::Instant(t) => t.to_rfc3339(),
            Value::List(values) => values
                .iter()
                .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(";"),
        }
    }
}

/// Named columns of values; `rows` holds at most the panel's limit and
/// `total_rows` says how many the query returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub total_rows: usize,
}

impl chiso_engine::memo::Weight for Table {
    /// About the bytes its values hold, for the memos that keep tables.
    fn weight(&self) -> usize {
        self.rows
            .iter()
            .flatten()
            .map(|value| match value {
                Value::Text(text) => 32 + text.len(),
                Value::List(values) => 32 + 8 * values.len(),
                _ => 32,
            })
            .sum()
    }
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The values of one column, or an error naming the columns there are.
    pub fn column(&self, name: &str) -> Result<Vec<&Value>, DashboardError> {
        let index = self.column_index(name).ok_or_else(|| {
            DashboardError::Data(format!(
                "the query has no column `{name}`; it has {}",
                self.columns.join(", ")
            ))
        })?;
        Ok(self.rows.iter().map(|row| &row[index]).collect())
    }

    pub fn get(&self, row: usize, name: &str) -> Option<&Value> {
        let index = self.column_index(name)?;
        self.rows.get(row).map(|r| &r[index])
    }

    pub fn from_batches(batches: &[RecordBatch], limit: usize) -> Result<Self, DashboardError> {
        let mut table = Table::default();
        if let Some(first) = batches.first() {
            table.columns = first
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        for batch in batches {
            table.total_rows += batch.num_rows();
            let room = limit.saturating_sub(table.rows.len()).min(batch.num_rows());
            if room == 0 {
                continue;
            }
            let columns = batch
                .columns()
                .iter()
                .map(|c| values(c, room))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..room {
                table
                    .rows
                    .push(columns.iter().map(|c| c[row].clone()).collect());
            }
        }
        Ok(table)
    }
}

fn data_error(error: arrow::error::ArrowError) -> DashboardError {
    DashboardError::Data(error.to_string())
}

/// The first `rows` values of `array`.
fn values(array: &ArrayRef, rows: usize) -> Result<Vec<Value>, DashboardError> {
    let array = array.slice(0, rows);
    let valid = |i: usize| array.is_valid(i);
    let out: Vec<Value> = match array.data_type() {
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..rows)
                .map(|i| {
                    if valid(i) {
                        Value::Bool(a.value(i))
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let cast = cast(&array, &DataType::Int64).map_err(data_error)?;
            let a = cast.as_primitive::<Int64Type>();
            (0..rows)
                .map(|i| {
                    if valid(i) {
                        Value::Int(a.value(i))
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let cast = cast(&array, &DataType::Float64).map_err(data_error)?;
            let a = cast.as_primitive::<Float64Type>();
            (0..rows)
                .map(|i| {
                    if valid(i) {
                        Value::Float(a.value(i))
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let cast = cast(&array, &DataType::Utf8).map_err(data_error)?;
            let a = cast.as_string::<i32>();
            (0..rows)
                .map(|i| {
                    if valid(i) {
                        Value::Text(a.value(i).to_owned())
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
        DataType::Date32 | DataType::Date64 => {
            let cast = cast(&array, &DataType::Date32).map_err(data_error)?;
            let a = cast.as_primitive::<Date32Type>();
            (0..rows)
                .map(|i| {
                    a.value_as_date(i)
                        .filter(|_| valid(i))
                        .map_or(Value::Null, Value::Date)
                })
                .collect()
        }
        DataType::Timestamp(_, _) => {
            let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let cast = cast(&array, &utc).map_err(data_error)?;
            let a = cast.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            (0..rows)
                .map(|i| {
                    DateTime::from_timestamp_micros(a.value(i))
                        .filter(|_| valid(i))
                        .map_or(Value::Null, Value::Instant)
                })
                .collect()
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let list_type = DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
                "item",
                DataType::Float64,
                true,
            )));
            let cast = cast(&array, &list_type).map_err(data_error)?;
            let lists = cast.as_list::<i32>();
            (0..rows)
                .map(|i| {
                    if !valid(i) {
                        return Value::Null;
                    }
                    let inner = lists.value(i);
                    let numbers = inner.as_primitive::<Float64Type>();
                    Value::List(
                        (0..numbers.len())
                            .map(|j| numbers.is_valid(j).then(|| numbers.value(j)))
                            .collect(),
                    )
                })
                .collect()
        }
        _ => {
            let formatter =
                ArrayFormatter::try_new(&array, &FormatOptions::default()).map_err(data_error)?;
            (0..rows)
                .map(|i| {
                    if valid(i) {
                        Value::Text(formatter.value(i).to_string())
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, ListArray, StringArray};
    use arrow::datatypes::Float64Type;
    use std::sync::Arc;

    #[test]
    fn arrow_becomes_plain_values_up_to_the_limit() {
        let batch = RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec!["Cái Khế", "b", "c"])) as ArrayRef,
            ),
            (
                "l",
                Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
                    Some(vec![Some(1.0), None]),
                    None,
                    Some(vec![]),
                ])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let table = Table::from_batches(&[batch.clone(), batch], 4).expect("table");
        assert_eq!(table.total_rows, 6);
        assert_eq!(table.rows.len(), 4);
        assert_eq!(table.rows[0][0], Value::Int(1));
        assert_eq!(table.rows[1][0], Value::Null);
        assert_eq!(table.rows[0][2], Value::Text("Cái Khế".into()));
        assert_eq!(table.rows[0][3], Value::List(vec![Some(1.0), None]));
        assert_eq!(table.rows[3][1], Value::Float(0.5));
        assert!(table.column("nope").is_err());
    }
}
