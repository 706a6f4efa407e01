//! The JSON API: what the pages show, for programs. Every answer is a JSON
//! object; errors are `{"error": …, "status": …}` with a 4xx for the
//! caller's mistakes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chiso_dashboard::{Table, Value};
use chiso_engine::datafusion::prelude::{col, lit};
use chiso_engine::{Call, EngineError, Grain, Grouping, Layout, Period, RequestError, WardCode};
use serde_json::{Map, json};

use crate::error::AppError;
use crate::live::Snapshot;
use crate::pages::{panel_table, respond};
use crate::request::{Query, query_string};
use crate::sign_in::Reader;
use crate::{AppState, Rendered};

fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(t) => json!(t),
        Value::Date(d) => json!(d.to_string()),
        Value::Instant(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        Value::List(values) => json!(values),
    }
}

/// Rows as objects keyed by column name, in column order.
pub(crate) fn rows_json(table: &Table) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|row| {
            let object: Map<String, serde_json::Value> = table
                .columns
                .iter()
                .zip(row)
                .map(|(name, value)| (name.clone(), value_json(value)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(rows)
}

fn period_json(period: &Period) -> serde_json::Value {
    json!({
        "period": period.to_string(),
        "grain": period.grain.as_str(),
        "period_start": period.start.to_string(),
        "period_end": period.end.to_string(),
    })
}

/// Computes `call`'s rows once per store version (only `ward`'s rows of a
/// ward grouping when `only` names one) and answers `make(table)` as JSON.
async fn figures_json(
    state: &AppState,
    snapshot: &Snapshot,
    call: Call,
    only: Option<WardCode>,
    make: impl FnOnce(&Table) -> serde_json::Value,
) -> Result<Response, AppError> {
    let key = format!("{}api:{call:?}|{only:?}", snapshot.key());
    let rendered = state
        .rendered
        .get_or_try(key, || {
            state.page_query(async {
                let mut frame = snapshot.engine.figures(&call).await?;
                if let Some(code) = &only {
                    frame = frame
                        .filter(col("ward_code").eq(lit(code.as_str())))
                        .map_err(EngineError::from)?;
                }
                let batches = frame.collect().await.map_err(EngineError::from)?;
                let table = Table::from_batches(&batches, usize::MAX)?;
                let body = serde_json::to_vec(&make(&table))
                    .map_err(|e| AppError::internal(e.to_string()))?;
                Ok::<_, AppError>(Rendered {
                    content_type: "application/json",
                    body: Bytes::from(body),
                })
            })
        })
        .await?;
    Ok(respond(rendered))
}

/// `GET /api/kpi?period=2025-W28&by=ward[&ward=31135]`: every KPI of
/// docs/kpis.md.
pub async fn kpi(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.snapshot(&reader).await?;
    let period = query.period(&snapshot)?;
    let by = Grouping::parse(query.by.as_deref().unwrap_or("city"))?;
    let ward = query.ward_code(&snapshot)?;
    let answer_ward = ward.as_ref().map(WardCode::to_string);
    let call = Call::Kpi { period, by, ward };
    figures_json(&state, &snapshot, call, None, |table| {
        json!({
            "period": period_json(&period),
            "by": by.as_str(),
            "ward": answer_ward,
            "rows": rows_json(table),
        })
    })
    .await
}

/// `GET /api/due-soon?ward=31135[&at=2025-07-14T08:00:00+07:00][&days=2]`:
/// the ward's dossiers in progress that fall due within the next `days`
/// working days (docs/kpis.md, "Due soon"), at `at` or now; without a
/// ward, those of every ward the reader sees.
pub async fn due_soon(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.snapshot(&reader).await?;
    let ward = query.ward_code(&snapshot)?;
    let at = match query.at.as_deref() {
        Some(text) => chiso_core::time::parse_timestamp(text)
            .map_err(|error| AppError::bad_request(error.to_string()))
            .and_then(|at| {
                chiso_engine::period::instant_in_years(text, at)
                    .map_err(|error| AppError::bad_request(error.to_string()))
            })?,
        // To the minute, so that a page and its readers share one list.
        None => {
            let now = snapshot.engine.now();
            let minute = now.timestamp() - now.timestamp().rem_euclid(60);
            chrono::DateTime::from_timestamp(minute, 0).unwrap_or(now)
        }
    };
    let days = query.days.unwrap_or(2);
    if days > chiso_engine::MOST_DUE_SOON_DAYS {
        return Err(AppError::bad_request(format!(
            "days is a number of working days from 0 to {}",
            chiso_engine::MOST_DUE_SOON_DAYS
        )));
    }
    let answer_ward = ward.as_ref().map(WardCode::to_string);
    let call = Call::DueSoon { at, days, ward };
    figures_json(&state, &snapshot, call, None, |table| {
        json!({
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "days": days,
            "ward": answer_ward,
            "rows": rows_json(table),
        })
    })
    .await
}

/// `GET /api/index?period=2025-07&layout=portal`: the composite index per ward.
pub async fn index(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.snapshot(&reader).await?;
    let period = query.period(&snapshot)?;
    let layout = Layout::parse(query.layout.as_deref().unwrap_or("portal"))?;
    let call = Call::Index { period, layout };
    figures_json(&state, &snapshot, call, None, |table| {
        json!({ "period": period_json(&period), "layout": layout.as_str(), "rows": rows_json(table) })
    })
    .await
}

/// `GET /api/trend?grain=week&by=city&from=2025-01-01&to=2025-06-30[&ward=]`,
/// or with `period=` the trend the pages draw for that period.
pub async fn trend(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, None)?;
    let (default_grain, default_from, default_to) = params.series();
    let grain = match &query.grain {
        Some(text) => Grain::parse(text).map_err(RequestError::from)?,
        None => default_grain,
    };
    let date = |text: &Option<String>, default: chrono::NaiveDate, name: &str| match text {
        Some(text) => chiso_engine::parse_date(text)
            .map_err(|e| AppError::bad_request(format!("{name}: {e}"))),
        None => Ok(default),
    };
    let (from, to) = (
        date(&query.from, default_from, "from")?,
        date(&query.to, default_to, "to")?,
    );
    let by = Grouping::parse(query.by.as_deref().unwrap_or("city"))?;
    let ward = params.ward.clone();
    let call = Call::Series {
        grain,
        from,
        to,
        by,
        ward: ward.clone(),
    };
    // Refused here, with the reason, before the engine plans anything.
    call.periods()?;
    let only = ward.clone().filter(|_| by == Grouping::Ward);
    figures_json(&state, &snapshot, call, only, |table| {
        json!({
            "grain": grain.as_str(),
            "by": by.as_str(),
            "from": from.to_string(),
            "to": to.to_string(),
            "ward": ward.as_ref().map(WardCode::to_string),
            "rows": rows_json(table),
        })
    })
    .await
}

/// `GET /api/wards/31135?period=2025-W28`: one ward's figures, change, index
/// and trend, as its page shows them.
pub async fn ward(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path(code): Path<String>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, Some(&code))?;
    let ward = params
        .ward
        .as_ref()
        .and_then(|code| state.wards.get(code.as_str()))
        .ok_or_else(|| AppError::not_found(format!("no ward `{code}`")))?;
    let page = state
        .dashboards
        .pages
        .iter()
        .find(|p| p.per_ward())
        .ok_or_else(|| AppError::not_found("no ward page is configured in dashboards/"))?;
    let mut panels = Map::new();
    for panel in &page.panels {
        let table = panel_table(&state, &snapshot, panel, &params).await?;
        panels.insert(panel.id.clone(), rows_json(&table));
    }
    Ok(Json(json!({
        "ward": {
            "ward_code": ward.code,
            "ward_name": ward.full_name(),
            "kind": ward.kind.as_str(),
            "former_province": ward.former_province,
        },
        "period": period_json(&params.period),
        "panels": panels,
    }))
    .into_response())
}

/// `GET /api/pages`: the dashboard pages and their panels.
pub async fn pages(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let pages: Vec<serde_json::Value> = state
        .dashboards
        .pages
        .iter()
        .map(|page| {
            json!({
                "id": page.id,
                "path": page.path,
                "title": { "vi": page.title.vi, "en": page.title.en },
                "panels": page.panels.iter().map(|panel| json!({
                    "id": panel.id,
                    "title": { "vi": panel.title.vi, "en": panel.title.en },
                    "chart": panel.kind.is_chart(),
                    "data": format!("/api/panels/{}/{}", page.id, panel.id),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "pages": pages }))
}

/// `GET /api/panels/overview/headline?period=…`: one panel's rows; with
/// `format=csv|parquet|arrow|json`, its whole result as a download.
pub async fn panel(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path((page_id, panel_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let page = state
        .dashboards
        .page(&page_id)
        .ok_or_else(|| AppError::not_found(format!("there is no page `{page_id}`")))?;
    let panel = page.panel(&panel_id).ok_or_else(|| {
        AppError::not_found(format!("page `{page_id}` has no panel `{panel_id}`"))
    })?;
    if page.per_ward() && query.ward.is_none() {
        return Err(AppError::bad_request(format!(
            "a panel of the page `{page_id}` needs ward=CODE"
        )));
    }
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, None)?;
    if query.format.is_some() {
        let format = crate::sql::choose_format(&query, &headers)?;
        let sql = params.render(&panel.sql)?;
        let name = format!("{}-{}-{}", page.id, panel.id, params.period);
        return crate::sql::panel_download(&state, &reader, sql, format, name).await;
    }
    let table = panel_table(&state, &snapshot, panel, &params).await?;
    Ok(Json(json!({
        "page": page.id,
        "panel": panel.id,
        "period": period_json(&params.period),
        "query": query_string(&params, &[]),
        "total_rows": table.total_rows,
        "rows": rows_json(&table),
    }))
    .into_response())
}

/// `GET /health`: alive, and which data is served.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let snapshot = state.live.current();
    let [events, quarantine, ingests] = snapshot.versions;
    Json(json!({
        "status": "ok",
        "events_version": events,
        "quarantine_version": quarantine,
        "ingests_version": ingests,
        "data_from": snapshot.data_range.map(|(first, _)| first.to_string()),
        "data_to": snapshot.data_range.map(|(_, last)| last.to_string()),
        "ingestion": state.ingester.is_some(),
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
}

/// Any other `/api/…` path.
pub async fn unknown(uri: Uri) -> AppError {
    AppError::not_found(format!(
        "no API at {}; see /api/pages, /api/kpi, /api/index, /api/trend, /api/wards/CODE, \
         /api/due-soon",
        uri.path()
    ))
}
