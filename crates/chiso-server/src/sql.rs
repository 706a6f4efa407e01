//! `POST /api/sql`: an analyst's query, answered as a stream of JSON, CSV,
//! Arrow IPC or Parquet. Read-only by the engine's guard; bounded in time
//! and in the number of queries running at once. The result streams batch by
//! batch, so a download of millions of rows never sits in memory whole, and
//! a client that goes away drops the stream, which stops the query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chiso_engine::{BoundedStream, EngineError};
use chiso_report::xlsx::{SheetColumn, SheetId, Workbook};
use chiso_store::csv_out::CsvOut;
use futures::StreamExt;
use serde_json::json;

use crate::AppState;
use crate::error::AppError;
use crate::request::Query;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
    Xlsx,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrows",
            Format::Parquet => "parquet",
            Format::Xlsx => "xlsx",
        }
    }

    /// `?format=` first, then the Accept header; JSON by default.
    pub(crate) fn choose(query: &Query, headers: &HeaderMap) -> Result<Self, AppError> {
        if let Some(name) = &query.format {
            return match name.as_str() {
                "json" => Ok(Format::Json),
                "csv" => Ok(Format::Csv),
                "arrow" => Ok(Format::Arrow),
                "parquet" => Ok(Format::Parquet),
                "xlsx" => Ok(Format::Xlsx),
                other => Err(AppError::bad_request(format!(
                    "unknown format `{other}`; use json, csv, arrow, parquet or xlsx"
                ))),
            };
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("arrow") {
            Format::Arrow
        } else if accept.contains("parquet") {
            Format::Parquet
        } else if accept.contains("spreadsheetml") {
            Format::Xlsx
        } else {
            Format::Json
        })
    }
}

/// The query of a request: the body as text, or `{"query": "…"}` as JSON.
fn query_text(headers: &HeaderMap, body: &str) -> Result<String, AppError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if is_json {
        let value: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| AppError::bad_request(format!("the body is not JSON: {e}")))?;
        value["query"]
            .as_str()
            .ok_or_else(|| AppError::bad_request("the JSON body needs a \"query\" string"))?
            .to_owned()
    } else {
        body.to_owned()
    };
    if text.trim().is_empty() {
        return Err(AppError::bad_request("the query is empty"));
    }
    Ok(text)
}

/// `Line: 1, Column: 8` in a parser message, as numbers.
fn position(message: &str) -> Option<(u64, u64)> {
    let number_after = |label: &str| -> Option<u64> {
        let start = message.find(label)? + label.len();
        let digits: String = message[start..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((number_after("Line:")?, number_after("Column:")?))
}

/// A query that could not run: 400 with the message and, for a parse error,
/// where.
fn refused(message: String) -> Response {
    let mut body = json!({ "error": message, "status": 400 });
    if let Some((line, column)) = position(&message) {
        body["line"] = json!(line);
        body["column"] = json!(column);
    }
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `GET /api/sql?q=…`: the same, for links (the console's downloads).
pub async fn get_sql(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let format = Format::choose(&query, &headers)?;
    let sql = query
        .q
        .clone()
        .ok_or_else(|| AppError::bad_request("give the query as q=…, or POST it as the body"))?;
    let filename = (format != Format::Json).then(|| "chiso-query".to_owned());
    stream_query(&state, sql, format, filename, query.limit).await
}

pub async fn post_sql(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: String,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let format = Format::choose(&query, &headers)?;
    let sql = query_text(&headers, &body)?;
    stream_query(&state, sql, format, None, query.limit).await
}

/// Runs `sql` on the snapshot being served, within the gate's bounds, and
/// streams its rows in `format`; `filename` makes the answer a download,
/// `limit` keeps the first rows only (what a screen shows).
pub(crate) async fn stream_query(
    state: &AppState,
    sql: String,
    format: Format,
    filename: Option<String>,
    limit: Option<u64>,
) -> Result<Response, AppError> {
    let admission = state.gate.admit()?;
    let started = Instant::now();
    let snapshot = state.live.current();
    let mut stream = match snapshot.engine.bounded_sql(&sql, admission).await {
        Ok(stream) => stream,
        Err(error) => return failure(error),
    };
    // The first batch decides the status: an error before any row is still
    // a 4xx, not a broken 200.
    let first = match stream.next().await {
        Some(Err(error)) => return failure(error),
        Some(Ok(batch)) => Some(batch),
        None => None,
    };
    let schema = stream.schema();
    let mut encoder = Encoder::new(format, &schema).map_err(AppError::internal)?;
    let mut rows = Rows {
        stream,
        left: limit.unwrap_or(u64::MAX),
        truncated: false,
    };
    // No rows still gives the columns (the CSV header, the JSON envelope).
    let first = first.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
    let first = rows.keep(first);
    let first_bytes = encoder.batch(&first).map_err(AppError::internal)?;
    let body_stream =
        futures::stream::once(async { Ok(first_bytes) }).chain(rest(rows, encoder, started));
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(name) = filename {
        response = response.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.{}\"", format.extension()),
        );
    }
    response
        .body(Body::from_stream(body_stream))
        .map_err(|e| AppError::internal(e.to_string()))
}

/// A query that did not start: a refusal or a mistake answers 400 with the
/// message (and where, for a parse error); the gate's answers keep theirs.
fn failure(error: EngineError) -> Result<Response, AppError> {
    match error {
        EngineError::Busy(_) | EngineError::Stopped(_) => Err(error.into()),
        other => Ok(refused(other.to_string())),
    }
}

/// A panel's whole result (not capped as on the page) in `format`.
pub(crate) async fn panel_download(
    state: &AppState,
    sql: String,
    format: Format,
    name: String,
) -> Result<Response, AppError> {
    stream_query(state, sql, format, Some(name), None).await
}

/// The rows of a query, up to a display limit.
struct Rows {
    stream: BoundedStream,
    left: u64,
    truncated: bool,
}

impl Rows {
    /// What of `batch` fits under the limit.
    fn keep(&mut self, batch: RecordBatch) -> RecordBatch {
        let rows = batch.num_rows() as u64;
        if rows <= self.left {
            self.left -= rows;
            return batch;
        }
        let kept = self.left as usize;
        self.left = 0;
        self.truncated = true;
        batch.slice(0, kept)
    }
}

/// The batches after the first, then the trailer. Past the display limit
/// the query is dropped (and so stopped), not read to its end.
fn rest(
    rows: Rows,
    encoder: Encoder,
    started: Instant,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(Some((rows, encoder)), move |state| async move {
        let (mut rows, mut encoder) = state?;
        let failed = |message: String| std::io::Error::other(message);
        let next = if rows.truncated {
            None
        } else {
            rows.stream.next().await
        };
        // At the limit, one more batch only says whether rows were left out.
        let next = match next {
            Some(Ok(batch)) if rows.left == 0 => {
                rows.truncated |= batch.num_rows() > 0;
                None
            }
            other => other,
        };
        match next {
            Some(Err(error)) => Some((Err(failed(error.to_string())), None)),
            Some(Ok(batch)) => {
                let batch = rows.keep(batch);
                match encoder.batch(&batch) {
                    Ok(bytes) => Some((Ok(bytes), Some((rows, encoder)))),
                    Err(error) => Some((Err(failed(error)), None)),
                }
            }
            None => {
                let truncated = rows.truncated;
                drop(rows);
                Some((
                    encoder.tail(started.elapsed(), truncated).map_err(failed),
                    None,
                ))
            }
        }
    })
}

/// Turns batches into the bytes of one format, piece by piece.
enum Encoder {
    Json {
        rows: u64,
        first: bool,
    },
    Csv {
        header: bool,
    },
    Arrow(Box<arrow_ipc::writer::StreamWriter<Vec<u8>>>),
    Parquet(Box<parquet::arrow::ArrowWriter<Vec<u8>>>),
    /// A workbook is a zip written at its end: rows go to temporary files
    /// meanwhile, and the file goes out whole.
    Xlsx(Option<(Box<Workbook>, SheetId)>),
}

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> Result<Self, String> {
        Ok(match format {
            Format::Json => Encoder::Json {
                rows: 0,
                first: true,
            },
            Format::Csv => Encoder::Csv { header: true },
            Format::Arrow => Encoder::Arrow(Box::new(
                arrow_ipc::writer::StreamWriter::try_new(Vec::new(), schema)
                    .map_err(|e| e.to_string())?,
            )),
            Format::Parquet => Encoder::Parquet(Box::new(
                parquet::arrow::ArrowWriter::try_new(Vec::new(), Arc::clone(schema), None)
                    .map_err(|e| e.to_string())?,
            )),
            Format::Xlsx => {
                let mut workbook = Workbook::new();
                let sheet = workbook
                    .sheet("chiso", &[], SheetColumn::for_schema(schema))
                    .map_err(|e| e.to_string())?;
                Encoder::Xlsx(Some((Box::new(workbook), sheet)))
            }
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes, String> {
        match self {
            Encoder::Json { rows, first } => {
                let mut out = Vec::new();
                if *first {
                    let columns: Vec<serde_json::Value> = batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
                        .collect();
                    out.extend_from_slice(b"{\"columns\":");
                    out.extend_from_slice(
                        serde_json::to_string(&columns)
                            .map_err(|e| e.to_string())?
                            .as_bytes(),
                    );
                    out.extend_from_slice(b",\"rows\":[");
                }
                if batch.num_rows() > 0 {
                    let mut array = Vec::new();
                    {
                        let mut writer = arrow::json::WriterBuilder::new()
                            .with_explicit_nulls(true)
                            .build::<_, arrow::json::writer::JsonArray>(&mut array);
                        writer.write(batch).map_err(|e| e.to_string())?;
                        writer.finish().map_err(|e| e.to_string())?;
                    }
                    // `[{…},{…}]` without its brackets, joined to what came before.
                    let inner = &array[1..array.len().saturating_sub(1)];
                    if *rows > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(inner);
                }
                *first = false;
                *rows += batch.num_rows() as u64;
                Ok(Bytes::from(out))
            }
            Encoder::Csv { header } => {
                let mut out = CsvOut::new(Vec::new(), *header);
                out.write(batch).map_err(|e| e.to_string())?;
                *header = false;
                Ok(Bytes::from(out.into_inner()))
            }
            Encoder::Arrow(writer) => {
                writer.write(batch).map_err(|e| e.to_string())?;
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
            Encoder::Parquet(writer) => {
                writer.write(batch).map_err(|e| e.to_string())?;
                Ok(Bytes::from(std::mem::take(writer.inner_mut())))
            }
            Encoder::Xlsx(open) => {
                if let Some((workbook, sheet)) = open.as_mut() {
                    workbook.batch(*sheet, batch).map_err(|e| e.to_string())?;
                }
                Ok(Bytes::new())
            }
        }
    }

    /// What closes the result.
    fn tail(&mut self, elapsed: Duration, truncated: bool) -> Result<Bytes, String> {
        match self {
            Encoder::Json { rows, .. } => {
                let mut out = String::new();
                out.push_str(&format!(
                    "],\"row_count\":{rows},\"truncated\":{truncated},\"elapsed_ms\":{:.1}}}",
                    elapsed.as_secs_f64() * 1000.0
                ));
                Ok(Bytes::from(out))
            }
            Encoder::Csv { .. } => Ok(Bytes::new()),
            Encoder::Arrow(writer) => {
                writer.finish().map_err(|e| e.to_string())?;
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
            Encoder::Parquet(writer) => {
                writer.finish().map_err(|e| e.to_string())?;
                Ok(Bytes::from(std::mem::take(writer.inner_mut())))
            }
            Encoder::Xlsx(open) => match open.take() {
                Some((workbook, _)) => workbook
                    .finish()
                    .map(Bytes::from)
                    .map_err(|e| e.to_string()),
                None => Ok(Bytes::new()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_errors_give_their_position() {
        let message = "SQL error: ParserError(\"Expected: an expression, found: FROM at Line: 1, Column: 8\")";
        assert_eq!(super::position(message), Some((1, 8)));
        assert_eq!(super::position("no position"), None);
    }
}
