//! The rows of a query sent by the simple protocol (psql's), with dates and
//! timestamps written as text one column at a time.
//!
//! datafusion-postgres encodes every value on its own; for a timestamp that
//! means parsing the client's `DateStyle`, the column's time zone and a
//! strftime pattern again for each value, which made a 100,000-row result
//! with three timestamp columns cost Postgres clients more than the query
//! itself. This hook answers plain queries the way datafusion-postgres
//! would (same plan, same column types, same text, including the offset of
//! the column's own zone), except that it writes those columns once per
//! batch with a parsed pattern and hands the rest to arrow-pg's encoder.
//!
//! The extended protocol (psycopg, JDBC) keeps datafusion-postgres's path:
//! its hook does not learn which columns the client wants as binary.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use chiso_engine::datafusion::arrow::array::timezone::Tz;
use chiso_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder,
};
use chiso_engine::datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, Date32Type, Field, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use chiso_engine::datafusion::arrow::error::ArrowError;
use chiso_engine::datafusion::common::ParamValues;
use chiso_engine::datafusion::logical_expr::LogicalPlan;
use chiso_engine::datafusion::prelude::SessionContext;
use chiso_engine::datafusion::sql::sqlparser::ast::Statement;
use chrono::format::{Item, StrftimeItems};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::pgwire::types::format::date_style::DateStyle;
use futures::{StreamExt, stream};

/// The last hook: every plain query of the simple protocol.
pub(crate) struct TextRows;

#[async_trait]
impl QueryHook for TextRows {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let options = FormatOptions::from_client_metadata(client.metadata());
        Some(answer(statement, session_context, options).await)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

async fn answer(
    statement: &Statement,
    context: &SessionContext,
    options: FormatOptions,
) -> PgWireResult<Response> {
    let failed =
        |e: chiso_engine::datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let frame = context.sql(&statement.to_string()).await.map_err(failed)?;
    let patterns = Arc::new(Patterns::new(&options.date_style)?);
    let fields = Arc::new(arrow_schema_to_pg_fields(
        frame.schema().as_arrow(),
        &Format::UnifiedText,
        Some(Arc::new(options)),
    )?);
    let batches = frame.execute_stream().await.map_err(failed)?;
    let row_fields = Arc::clone(&fields);
    let rows = batches
        .map(move |batch| {
            let written = batch
                .map_err(ArrowError::from)
                .and_then(|batch| dates_as_text(&batch, &patterns));
            let rows: Box<dyn Iterator<Item = _> + Send + Sync> = match written {
                Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch),
                Err(e) => Box::new(std::iter::once(Err(PgWireError::ApiError(Box::new(e))))),
            };
            stream::iter(rows)
        })
        .flatten();
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// The client's `DateStyle` as strftime patterns, parsed once per query.
struct Patterns {
    timestamp: Vec<Item<'static>>,
    timestamp_tz: Vec<Item<'static>>,
    date: Vec<Item<'static>>,
}

impl Patterns {
    fn new(date_style: &str) -> PgWireResult<Self> {
        let style = DateStyle::new(date_style);
        let parsed = |pattern: &str| {
            StrftimeItems::new(pattern)
                .parse_to_owned()
                .map_err(|e| PgWireError::ApiError(Box::new(e)))
        };
        Ok(Self {
            timestamp: parsed(style.full_format_str())?,
            timestamp_tz: parsed(&style.full_tz_format_str())?,
            date: parsed(style.date_format_str())?,
        })
    }
}

/// `batch` with its timestamp and date columns replaced by their Postgres
/// text; the other columns untouched.
fn dates_as_text(batch: &RecordBatch, patterns: &Patterns) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_written(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let written = match field.data_type() {
            DataType::Timestamp(unit, zone) => {
                let items = if zone.is_some() {
                    &patterns.timestamp_tz
                } else {
                    &patterns.timestamp
                };
                let zone = zone.as_deref();
                Some(match unit {
                    TimeUnit::Second => timestamps::<TimestampSecondType>(column, zone, items)?,
                    TimeUnit::Millisecond => {
                        timestamps::<TimestampMillisecondType>(column, zone, items)?
                    }
                    TimeUnit::Microsecond => {
                        timestamps::<TimestampMicrosecondType>(column, zone, items)?
                    }
                    TimeUnit::Nanosecond => {
                        timestamps::<TimestampNanosecondType>(column, zone, items)?
                    }
                })
            }
            DataType::Date32 => Some(dates(column, &patterns.date)?),
            _ => None,
        };
        match written {
            Some(text) => {
                fields.push(Field::new(
                    field.name(),
                    DataType::Utf8,
                    field.is_nullable(),
                ));
                columns.push(text);
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn is_written(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(_, _) | DataType::Date32)
}

fn timestamps<T: ArrowTimestampType>(
    column: &ArrayRef,
    zone: Option<&str>,
    items: &[Item],
) -> Result<ArrayRef, ArrowError> {
    let values = column.as_primitive::<T>();
    let zone: Option<Tz> = zone.map(str::parse).transpose()?;
    text_column(values.len(), 32, |index, text| {
        if values.is_null(index) {
            return None;
        }
        match zone {
            // The offset of the column's own zone, as arrow-pg writes it.
            Some(zone) => values.value_as_datetime_with_tz(index, zone).map(|at| {
                write!(
                    text,
                    "{}",
                    at.fixed_offset().format_with_items(items.iter())
                )
            }),
            None => values
                .value_as_datetime(index)
                .map(|at| write!(text, "{}", at.format_with_items(items.iter()))),
        }
    })
}

fn dates(column: &ArrayRef, items: &[Item]) -> Result<ArrayRef, ArrowError> {
    let values = column.as_primitive::<Date32Type>();
    text_column(values.len(), 10, |index, text| {
        if values.is_null(index) {
            return None;
        }
        values
            .value_as_date(index)
            .map(|day| write!(text, "{}", day.format_with_items(items.iter())))
    })
}

/// A text column of `rows` rows, each written by `write` (about `width`
/// bytes), or null where `write` gives nothing.
fn text_column(
    rows: usize,
    width: usize,
    mut write: impl FnMut(usize, &mut StringBuilder) -> Option<std::fmt::Result>,
) -> Result<ArrayRef, ArrowError> {
    let mut text = StringBuilder::with_capacity(rows, rows * width);
    for index in 0..rows {
        match write(index, &mut text) {
            Some(written) => {
                written.map_err(|e| ArrowError::ComputeError(e.to_string()))?;
                text.append_value("");
            }
            None => text.append_null(),
        }
    }
    Ok(Arc::new(text.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chiso_engine::datafusion::arrow::array::{
        Date32Array, Int64Array, TimestampMicrosecondArray,
    };
    use datafusion_postgres::pgwire::messages::data::DataRow;

    /// Each row as arrow-pg encodes it for the columns of `schema`.
    fn encoded(batch: RecordBatch, schema: &Schema, options: &FormatOptions) -> Vec<DataRow> {
        let fields = Arc::new(
            arrow_schema_to_pg_fields(
                schema,
                &Format::UnifiedText,
                Some(Arc::new(options.clone())),
            )
            .unwrap(),
        );
        encode_recordbatch(fields, batch)
            .map(Result::unwrap)
            .collect()
    }

    /// The same rows as datafusion-postgres's own encoder writes them, in
    /// every date style a client may set.
    #[test]
    fn text_is_what_arrow_pg_writes() {
        let at = TimestampMicrosecondArray::from(vec![
            Some(1_751_331_599_999_999),
            None,
            Some(-86_400_000_001),
            Some(1_751_331_600_000_000),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "utc",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "local",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Asia/Ho_Chi_Minh".into())),
                true,
            ),
            Field::new(
                "offset",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+07:00".into())),
                true,
            ),
            Field::new(
                "naive",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(at.clone().with_timezone("UTC")),
                Arc::new(at.clone().with_timezone("Asia/Ho_Chi_Minh")),
                Arc::new(at.clone().with_timezone("+07:00")),
                Arc::new(at),
                Arc::new(Date32Array::from(vec![
                    Some(20_270),
                    None,
                    Some(-1),
                    Some(0),
                ])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])),
            ],
        )
        .unwrap();
        for style in [
            "ISO, MDY",
            "ISO, DMY",
            "SQL, DMY",
            "Postgres, MDY",
            "German",
        ] {
            let mut options = FormatOptions::default();
            options.date_style = style.to_owned();
            let patterns = Patterns::new(style).unwrap();
            let written = dates_as_text(&batch, &patterns).unwrap();
            assert_eq!(
                encoded(written, &schema, &options),
                encoded(batch.clone(), &schema, &options),
                "{style}"
            );
        }
    }
}
