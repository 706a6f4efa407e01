//! The JSON API: what the pages show, for programs. Every answer is a JSON
//! object; errors are `{"error": …, "status": …}` with a 4xx for the
//! caller's mistakes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chiso_dashboard::{Table, Value};
use chiso_engine::queries::string_literal;
use chiso_engine::{Grain, Grouping, Layout, Period};
use serde_json::{Map, json};

use crate::error::AppError;
use crate::live::Snapshot;
use crate::pages::{panel_table, respond};
use crate::request::{Query, check_ward, query_string};
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

/// Runs `sql` once per store version and answers `make(table)` as JSON.
async fn cached_json(
    state: &AppState,
    snapshot: &Snapshot,
    key: String,
    sql: String,
    make: impl FnOnce(&Table) -> serde_json::Value,
) -> Result<Response, AppError> {
    let rendered = state
        .rendered
        .get_or_try(format!("{}api:{key}", snapshot.key()), || {
            state.page_query(async {
                let batches = snapshot
                    .engine
                    .sql(&sql)
                    .await?
                    .collect()
                    .await
                    .map_err(|e| AppError::from(chiso_engine::EngineError::Query(e.to_string())))?;
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

/// `GET /api/kpi?period=2025-W28&by=ward[&ward=31135]`: every KPI of kpis.md.
pub async fn kpi(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.live.current();
    let period = query.period(&snapshot)?;
    let grouping = Grouping::parse(query.by.as_deref().unwrap_or("city"))?;
    let ward = query
        .ward
        .as_deref()
        .map(|code| check_ward(&state, code))
        .transpose()?;
    let scope = ward
        .map(|code| format!(", {}", string_literal(code)))
        .unwrap_or_default();
    let sql = format!(
        "SELECT * FROM kpi({}, '{}'{scope})",
        string_literal(&period.to_string()),
        grouping.as_str()
    );
    let key = format!("kpi:{period}|{}|{}", grouping.as_str(), ward.unwrap_or(""));
    cached_json(&state, &snapshot, key, sql, |table| {
        json!({
            "period": period_json(&period),
            "by": grouping.as_str(),
            "ward": ward,
            "rows": rows_json(table),
        })
    })
    .await
}

/// `GET /api/index?period=2025-07&layout=portal`: the composite index per ward.
pub async fn index(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.live.current();
    let period = query.period(&snapshot)?;
    let layout = Layout::parse(query.layout.as_deref().unwrap_or("portal"))?;
    let layout_name = match layout {
        Layout::Portal => "portal",
        Layout::Decision2022 => "2022",
    };
    let sql = format!(
        "SELECT * FROM kpi_index({}, '{layout_name}')",
        string_literal(&period.to_string())
    );
    let key = format!("index:{period}|{layout_name}");
    cached_json(&state, &snapshot, key, sql, |table| {
        json!({ "period": period_json(&period), "layout": layout_name, "rows": rows_json(table) })
    })
    .await
}

/// `GET /api/trend?grain=week&by=city&from=2025-01-01&to=2025-06-30[&ward=]`,
/// or with `period=` the trend the pages draw for that period.
pub async fn trend(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let snapshot = state.live.current();
    let params = query.params(&state, &snapshot, None)?;
    let (default_grain, default_from, default_to) = params.series();
    let grain = match &query.grain {
        Some(text) => Grain::parse(text).ok_or_else(|| {
            AppError::bad_request(format!(
                "unknown grain `{text}`; use day, week, month, quarter or year"
            ))
        })?,
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
    if from > to {
        return Err(AppError::bad_request(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    // Refused here, with the reason, before the engine plans anything.
    Period::series(grain, from, to).map_err(|e| AppError::bad_request(e.to_string()))?;
    let grouping = Grouping::parse(query.by.as_deref().unwrap_or("city"))?;
    let scope = params
        .ward
        .as_deref()
        .map(|code| format!(", {}", string_literal(code)))
        .unwrap_or_default();
    let filter = match (&params.ward, grouping) {
        (Some(code), Grouping::Ward) => format!(" WHERE ward_code = {}", string_literal(code)),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT * FROM kpi_series('{}', '{}', '{from}', '{to}'{scope}){filter}",
        grain.as_str(),
        grouping.as_str()
    );
    let key = format!(
        "trend:{}|{}|{from}|{to}|{}",
        grain.as_str(),
        grouping.as_str(),
        params.ward.as_deref().unwrap_or("")
    );
    let ward = params.ward.clone();
    cached_json(&state, &snapshot, key, sql, |table| {
        json!({
            "grain": grain.as_str(),
            "by": grouping.as_str(),
            "from": from.to_string(),
            "to": to.to_string(),
            "ward": ward,
            "rows": rows_json(table),
        })
    })
    .await
}

/// `GET /api/wards/31135?period=2025-W28`: one ward's figures, change, index
/// and trend, as its page shows them.
pub async fn ward(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let ward = state
        .wards
        .get(check_ward(&state, &code)?)
        .cloned()
        .ok_or_else(|| AppError::not_found(format!("no ward `{code}`")))?;
    let snapshot = state.live.current();
    let params = query.params(&state, &snapshot, Some(&ward.code))?;
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
    let snapshot = state.live.current();
    let params = query.params(&state, &snapshot, None)?;
    if query.format.is_some() {
        let format = crate::sql::Format::choose(&query, &headers)?;
        let sql = params.render(&panel.sql)?;
        let name = format!("{}-{}-{}", page.id, panel.id, params.period);
        return crate::sql::panel_download(&state, sql, format, name).await;
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
        "no API at {}; see /api/pages, /api/kpi, /api/index, /api/trend, /api/wards/CODE",
        uri.path()
    ))
}
