//! `POST /api/sql`: an analyst's query, answered as a stream of JSON, CSV,
//! Arrow IPC or Parquet. Read-only by the engine's guard; bounded in time
//! and in the number of queries running at once. The result streams batch by
//! batch, so a download of millions of rows never sits in memory whole, and
//! a client that goes away drops the stream, which stops the query.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chiso_engine::{BoundedStream, EngineError};
use chiso_report::encode::{EncodeError, Encoder, JsonLayout};
use futures::StreamExt;
use serde_json::json;

use crate::AppState;
use crate::error::AppError;
use crate::request::Query;
use crate::sign_in::Reader;

pub(crate) use chiso_report::encode::ResultFormat as Format;

/// `?format=` first, then the Accept header; JSON by default.
pub(crate) fn choose_format(query: &Query, headers: &HeaderMap) -> Result<Format, AppError> {
    if let Some(name) = &query.format {
        return Format::parse(name).ok_or_else(|| {
            AppError::bad_request(format!("unknown format `{name}`; use {}", Format::NAMES))
        });
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
    Extension(reader): Extension<Reader>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let format = choose_format(&query, &headers)?;
    let sql = query
        .q
        .clone()
        .ok_or_else(|| AppError::bad_request("give the query as q=…, or POST it as the body"))?;
    let filename = (format != Format::Json).then(|| "chiso-query".to_owned());
    reader.must_write_sql()?;
    stream_query(&state, &reader, sql, format, filename, query.limit).await
}

pub async fn post_sql(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    headers: HeaderMap,
    uri: Uri,
    body: String,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let format = choose_format(&query, &headers)?;
    let sql = query_text(&headers, &body)?;
    let audited = sql.clone();
    let answer = match reader.must_write_sql() {
        Ok(()) => stream_query(&state, &reader, sql, format, None, query.limit).await,
        Err(refused) => Err(refused),
    };
    // The text is the body, which the path does not show.
    let mut response = answer.into_response();
    crate::audit::note(&mut response).target = Some(audited);
    Ok(response)
}

/// Runs `sql` on the snapshot being served, within the gate's bounds, and
/// streams its rows in `format`; `filename` makes the answer a download,
/// `limit` keeps the first rows only (what a screen shows).
pub(crate) async fn stream_query(
    state: &AppState,
    reader: &Reader,
    sql: String,
    format: Format,
    filename: Option<String>,
    limit: Option<u64>,
) -> Result<Response, AppError> {
    let admission = state.gate.admit()?;
    let started = Instant::now();
    let snapshot = state.snapshot(reader).await?;
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
    let mut encoder = Encoder::new(format, &schema, JsonLayout::Answer)
        .map_err(|e| AppError::internal(e.to_string()))?;
    let mut rows = Rows {
        stream,
        left: limit.unwrap_or(u64::MAX),
        truncated: false,
    };
    // No rows still gives the columns (the CSV header, the JSON envelope).
    let first = first.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
    let first = rows.keep(first);
    let first_bytes = Bytes::from(
        encoder
            .batch(&first)
            .map_err(|e| AppError::internal(e.to_string()))?,
    );
    let body_stream = futures::stream::once(async { Ok(first_bytes) })
        .chain(rest(rows, encoder, schema, started));
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
    reader: &Reader,
    sql: String,
    format: Format,
    name: String,
) -> Result<Response, AppError> {
    stream_query(state, reader, sql, format, Some(name), None).await
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
    schema: SchemaRef,
    started: Instant,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(Some((rows, encoder)), move |state| {
        let schema = Arc::clone(&schema);
        async move {
            let (mut rows, mut encoder) = state?;
            let failed = |error: EncodeError| std::io::Error::other(error.to_string());
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
                Some(Err(error)) => Some((Err(std::io::Error::other(error.to_string())), None)),
                Some(Ok(batch)) => {
                    let batch = rows.keep(batch);
                    match encoder.batch(&batch) {
                        Ok(bytes) => Some((Ok(Bytes::from(bytes)), Some((rows, encoder)))),
                        Err(error) => Some((Err(failed(error)), None)),
                    }
                }
                None => {
                    let truncated = rows.truncated;
                    drop(rows);
                    Some((
                        encoder
                            .finish(&schema, started.elapsed(), truncated)
                            .map(Bytes::from)
                            .map_err(failed),
                        None,
                    ))
                }
            }
        }
    })
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
