//! `POST /api/events`: live ingestion through the CLI's ingestion path.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chiso_ingest::{IngestError, IngestOptions, SourceFormat};

use crate::AppState;
use crate::error::AppError;
use crate::sign_in::Reader;

/// Tokens compared without an early exit, so timing tells nothing.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

/// The format the content type names; `None` (recognise it from the
/// bytes, as `chiso ingest` does) for a file sent as it is.
fn format_of(headers: &HeaderMap) -> Result<Option<SourceFormat>, AppError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/json" => Ok(Some(SourceFormat::Ndjson)),
        "text/csv" => Ok(Some(SourceFormat::Csv)),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            Ok(Some(SourceFormat::Xlsx))
        }
        "application/vnd.apache.parquet" => Ok(Some(SourceFormat::Parquet)),
        "application/octet-stream" | "application/gzip" => Ok(None),
        other => Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "send events as application/x-ndjson, text/csv, an XLSX or Parquet file, or \
                 application/octet-stream to have the format recognised (Content-Type was \
                 `{other}`)"
            ),
        )),
    }
}

/// Ingests the body, then serves the new figures; answers the ingest report.
///
/// The token and the content type are checked before a byte of the body
/// is read: a caller without the token cannot make the server buffer
/// `--max-body-mb` of anything.
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let Some(ingester) = &state.ingester else {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "ingestion over HTTP is off; start the server with --users (the token or session \
             of an administrator or a ward user) or --ingest-token",
        ));
    };
    let wards = reader.ingest_wards()?;
    if state.users.is_none() {
        let token = state.ingest_token.as_deref().unwrap_or_default();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if token.is_empty() || !same_token(given.trim(), token) {
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer TOKEN` header is needed to ingest",
            ));
        }
    }
    let format = format_of(&headers)?;
    let limit = state.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than the {} MB accepted (--max-body-mb), or was cut off",
                limit / (1024 * 1024)
            ),
        )
    })?;
    if body.is_empty() {
        return Err(AppError::bad_request("the request body is empty"));
    }
    let name = PathBuf::from(format!(
        "http-post-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        format.map_or("upload", SourceFormat::name)
    ));
    let options = IngestOptions {
        format,
        now: None,
        max_decompressed_bytes: Some(limit as u64),
        wards,
    };
    let started = std::time::Instant::now();
    let report = {
        let mut ingester = ingester.lock().await;
        tracing::debug!(
            waited = started.elapsed().as_secs_f64(),
            "ingest: the ingester is free"
        );
        ingester
            .ingest_bytes(&name, body, &options)
            .await
            .map_err(|error| match error {
                IngestError::Unreadable { .. } | IngestError::ReadFailed { .. } => {
                    AppError::bad_request(error.to_string())
                }
                other => AppError::internal(other.to_string()),
            })?
    };
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        ingest_seconds = report.seconds,
        "ingest: committed"
    );
    // The answer comes once the figures include this ingest.
    state.refresh().await?;
    let mut response = (StatusCode::OK, Json(&report)).into_response();
    let note = crate::audit::note(&mut response);
    note.target = Some(report.ingest_id.clone());
    note.detail = Some(format!(
        "{} bytes: {} accepted, {} duplicate, {} conflict, {} rejected",
        report.bytes, report.accepted, report.duplicate, report.conflict, report.rejected
    ));
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_must_match_exactly() {
        assert!(super::same_token("s3cret", "s3cret"));
        assert!(!super::same_token("s3cre", "s3cret"));
        assert!(!super::same_token("s3cretX", "s3cret"));
        assert!(!super::same_token("", "s3cret"));
    }
}
