//! The dashboard pages, their charts, and the static files.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chiso_chart::Chart;
use chiso_dashboard::{Lang, Page, Panel, PanelKind, Params, Table, present};

use crate::error::{AppError, PageError};
use crate::html::{self, escape};
use crate::live::Snapshot;
use crate::request::{Query, page_query, provinces, query_string};
use crate::sign_in::Reader;
use crate::{AppState, Rendered};

/// A page of `dashboards/`, found by its path.
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, PageError> {
    let (query, lang) = page_query(&uri)?;
    let as_page = |error: AppError| PageError { error, lang };
    let path = uri.path();
    let (page, ward) = state.dashboards.route(path).ok_or_else(|| {
        as_page(AppError::not_found(format!(
            "{} `{path}`",
            lang.pick("Không có trang", "There is no page")
        )))
    })?;
    let snapshot = state.snapshot(&reader).await.map_err(as_page)?;
    let params = query.params(&state, &snapshot, ward).map_err(as_page)?;
    let rendered = cached_page(&state, &snapshot, page, path, &params)
        .await
        .map_err(as_page)?;
    Ok(respond(rendered))
}

/// A page as HTML, computed once per store version and choice of parameters.
async fn cached_page(
    state: &AppState,
    snapshot: &Snapshot,
    page: &Page,
    path: &str,
    params: &Params,
) -> Result<Rendered, AppError> {
    let key = format!(
        "{}page:{path}?{}",
        snapshot.key(),
        query_string(params, &[])
    );
    state
        .rendered
        .get_or_try(key, || async {
            let html = render_page(state, snapshot, page, params).await?;
            Ok::<_, AppError>(Rendered {
                content_type: "text/html; charset=utf-8",
                body: Bytes::from(html),
            })
        })
        .await
}

/// Computes the pages of the navigation for the default period, as a first
/// visitor asks for them (`/`, `/ranking`, …).
/// Which pages [`warm`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warm {
    /// Pages of figures: table functions and the derived tables.
    Figures,
    /// Pages that read the event log, the quarantine or the ingest log.
    EventLog,
}

pub(crate) async fn warm(state: &AppState, snapshot: &Snapshot, which: Warm) {
    let started = std::time::Instant::now();
    let Ok(params) = Query::default().params(state, snapshot, None) else {
        return;
    };
    for page in state
        .dashboards
        .pages
        .iter()
        .filter(|p| p.nav && !p.per_ward())
        .filter(|p| (which == Warm::EventLog) == p.reads_stored_logs())
    {
        if let Err(error) = cached_page(state, snapshot, page, &page.path, &params).await {
            tracing::warn!(page = %page.id, %error, "could not prepare the page");
        }
    }
    tracing::info!(
        events_version = snapshot.events_version(),
        seconds = started.elapsed().as_secs_f64(),
        pages = ?which,
        "prepared the pages of the default period"
    );
}

pub(crate) fn respond(rendered: Rendered) -> Response {
    (
        [
            (header::CONTENT_TYPE, rendered.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        rendered.body,
    )
        .into_response()
}

/// A panel's result for `params`, computed once per store version; panels
/// with the same query (after filling in its parameters) share it.
pub(crate) async fn panel_table(
    state: &AppState,
    snapshot: &Snapshot,
    panel: &Panel,
    params: &Params,
) -> Result<Arc<Table>, AppError> {
    let sql = params.render(&panel.sql).map_err(|e| {
        AppError::from(chiso_dashboard::DashboardError::Query {
            panel: panel.id.clone(),
            source: Box::new(e),
        })
    })?;
    let key = format!("{}table:{}|{sql}", snapshot.key(), panel.limit.unwrap_or(0));
    state
        .tables
        .get_or_try(key, || {
            state.page_query(async {
                let table = chiso_dashboard::evaluate(&snapshot.engine, panel, params).await?;
                Ok::<_, AppError>(Arc::new(table))
            })
        })
        .await
}

/// The query that reproduces a page's choices for one of its panels.
fn panel_query(params: &Params, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(ward) = &params.ward {
        pairs.push(("ward", ward.to_string()));
    }
    pairs.extend(extra.iter().cloned());
    query_string(params, &pairs)
}

/// A panel's download links: its chart as PNG and SVG, its rows as CSV.
fn panel_downloads(page: &Page, panel: &Panel, params: &Params) -> String {
    let mut links = Vec::new();
    if panel.kind.is_chart() {
        for extension in ["png", "svg"] {
            links.push((
                if extension == "png" { "PNG" } else { "SVG" },
                format!(
                    "/chart/{}/{}.{extension}?{}",
                    page.id,
                    panel.id,
                    panel_query(params, &[])
                ),
            ));
        }
    }
    links.push((
        "CSV",
        format!(
            "/api/panels/{}/{}?{}",
            page.id,
            panel.id,
            panel_query(params, &[("format", "csv".to_owned())])
        ),
    ));
    html::downloads(&links)
}

fn panel_chart(panel: &Panel, table: &Table, params: &Params) -> Result<Chart, AppError> {
    present::chart(panel, table, params)?
        .ok_or_else(|| AppError::not_found(format!("panel `{}` is not a chart", panel.id)))
}

async fn render_page(
    state: &AppState,
    snapshot: &Snapshot,
    page: &Page,
    params: &Params,
) -> Result<String, AppError> {
    let lang = params.lang;
    let tables = panel_tables(state, snapshot, page, params).await;
    let nav_query = |extra_lang: Lang| {
        let mut base = Params::new(params.period, extra_lang, params.now);
        base.ward = None;
        query_string(&base, &[])
    };
    let mut body = String::new();
    if !snapshot.engine.store().has_procedure_catalogue() {
        body.push_str(&html::warning(
            chiso_report::document::no_catalogue_warning(lang),
        ));
    }
    body.push_str("<div class=\"panels\">");
    for (panel, table) in page.panels.iter().zip(tables) {
        let table = match table {
            Ok(table) => table,
            Err(error) => {
                body.push_str(&html::failed_panel(panel, lang, &error.message));
                continue;
            }
        };
        let actions = panel_downloads(page, panel, params);
        let rendered = match &panel.kind {
            PanelKind::Text { text } => html::text(panel, text, &table, params, &actions),
            PanelKind::Tiles { tiles } => html::tiles(panel, tiles, &table, params, &actions),
            PanelKind::Table { columns } => html::table(
                panel,
                columns,
                &table,
                params,
                &nav_query(lang),
                &|values| sparkline(values),
                &actions,
            ),
            _ => match panel_chart(panel, &table, params) {
                Ok(chart) => {
                    let (width, height) = chart.natural_size();
                    match chart.svg(width, height) {
                        Ok(svg) => html::chart(panel, &svg, &actions, lang, table.rows.is_empty()),
                        Err(error) => html::failed_panel(panel, lang, &error.to_string()),
                    }
                }
                Err(error) => html::failed_panel(panel, lang, &error.message),
            },
        };
        body.push_str(&rendered);
    }
    body.push_str("</div>");

    let ward = params
        .ward
        .as_ref()
        .and_then(|code| state.wards.get(code.as_str()));
    let title = match ward {
        Some(ward) => ward.full_name(),
        None => page.title.get(lang).to_owned(),
    };
    let subtitle = match ward {
        Some(ward) => Some(format!(
            "{} {} · {} {}",
            lang.pick("Mã", "Code"),
            ward.code,
            lang.pick("trước 01/7/2025 thuộc", "before 1 July 2025 in"),
            ward.former_province
        )),
        None => page.description.as_ref().map(|d| d.get(lang).to_owned()),
    };
    let nav = navigation_with(state, lang, &page.id, &nav_query(lang));
    let path_of = |params: &Params| match &params.ward {
        Some(code) => format!("{}{code}", page.path_prefix()),
        None => page.path.clone(),
    };
    let other = if lang == Lang::Vi { Lang::En } else { Lang::Vi };
    let mut in_other = params.clone();
    in_other.lang = other;
    let href = |period: &chiso_engine::Period| {
        let mut moved = params.clone();
        moved.period = *period;
        format!("{}?{}", path_of(&moved), query_string(&moved, &[]))
    };
    let frame = html::Frame {
        title: &title,
        subtitle,
        lang,
        nav,
        other_lang: (
            format!("{}?{}", path_of(&in_other), query_string(&in_other, &[])),
            lang.pick("English", "Tiếng Việt"),
        ),
        picker: html::picker(&params.period, lang, &href),
        exports: crate::export::page_links(state, page, params),
        filters: html::filters(
            params,
            &provinces(state),
            page.filters.contains(&chiso_dashboard::Filter::Kind),
            page.filters.contains(&chiso_dashboard::Filter::Province),
        ),
        freshness: freshness(state, snapshot, lang),
    };
    Ok(html::page(&frame, &body))
}

/// The navigation: the dashboard pages, then the SQL console; `current` is
/// the id of the page shown (`sql` for the console).
pub(crate) fn navigation(
    state: &AppState,
    lang: Lang,
    current: &str,
) -> Vec<(String, String, bool)> {
    let query = if lang == Lang::En { "lang=en" } else { "" };
    navigation_with(state, lang, current, query)
}

/// The same, the pages' links carrying `query` (the period being shown).
fn navigation_with(
    state: &AppState,
    lang: Lang,
    current: &str,
    query: &str,
) -> Vec<(String, String, bool)> {
    let with_query = |path: &str| {
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    };
    let mut nav: Vec<(String, String, bool)> = state
        .dashboards
        .pages
        .iter()
        .filter(|p| p.nav)
        .map(|p| {
            (
                with_query(&p.path),
                p.title.get(lang).to_owned(),
                p.id == current,
            )
        })
        .collect();
    nav.push((
        if lang == Lang::En {
            "/reports?lang=en"
        } else {
            "/reports"
        }
        .to_owned(),
        lang.pick("Báo cáo", "Reports").to_owned(),
        current == "reports",
    ));
    nav.push((
        crate::console::console_href(None, lang),
        "SQL".to_owned(),
        current == "sql",
    ));
    nav
}

/// Every panel of a page, computed concurrently: small queries leave cores
/// idle, and a panel that waits on another's identical query shares it.
async fn panel_tables(
    state: &AppState,
    snapshot: &Snapshot,
    page: &Page,
    params: &Params,
) -> Vec<Result<Arc<Table>, AppError>> {
    futures::future::join_all(
        page.panels
            .iter()
            .map(|panel| panel_table(state, snapshot, panel, params)),
    )
    .await
}

fn sparkline(values: &[Option<f64>]) -> String {
    let chart = Chart::Sparkline {
        values: values.to_vec(),
    };
    let (width, height) = chart.natural_size();
    chart.svg(width, height).unwrap_or_default()
}

/// Which data the page shows, so a screenshot can be traced to it.
fn freshness(state: &AppState, snapshot: &Snapshot, lang: Lang) -> String {
    let range = match snapshot.data_range {
        Some((first, last)) => format!(
            "{} {} – {}",
            lang.pick("Dữ liệu từ", "Data from"),
            first.format("%d/%m/%Y"),
            last.format("%d/%m/%Y")
        ),
        None => lang.pick("Chưa có dữ liệu", "No data yet").to_owned(),
    };
    let opened = snapshot
        .opened_at
        .with_timezone(&chiso_core::time::business_offset())
        .format("%d/%m/%Y %H:%M");
    let label = state
        .data_label
        .as_deref()
        .map(|l| format!(" · {}", escape(l)))
        .unwrap_or_default();
    format!(
        "{range} · {} {} · {} {opened}{label}",
        lang.pick("phiên bản sự kiện", "events version"),
        snapshot.events_version(),
        lang.pick("cập nhật lúc", "loaded at"),
    )
}

/// A chart of a panel as SVG or PNG: `/chart/overview/trend.png?period=2025-W28`.
pub async fn chart(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path((page_id, file)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = Query::parse(uri.query())?;
    let (panel_id, extension) = file
        .rsplit_once('.')
        .ok_or_else(|| AppError::bad_request(format!("`{file}` should end in .svg or .png")))?;
    let (content_type, png) = match extension {
        "svg" => ("image/svg+xml", false),
        "png" => ("image/png", true),
        other => {
            return Err(AppError::bad_request(format!(
                "charts come as .svg or .png, not .{other}"
            )));
        }
    };
    let page = state
        .dashboards
        .page(&page_id)
        .ok_or_else(|| AppError::not_found(format!("there is no page `{page_id}`")))?;
    let panel = page
        .panel(panel_id)
        .filter(|p| p.kind.is_chart())
        .ok_or_else(|| {
            AppError::not_found(format!("page `{page_id}` has no chart `{panel_id}`"))
        })?;
    if page.per_ward() && query.ward.is_none() {
        return Err(AppError::bad_request(format!(
            "a chart of the page `{page_id}` needs ward=CODE"
        )));
    }
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, None)?;
    let table = panel_table(&state, &snapshot, panel, &params).await?;
    let chart = panel_chart(panel, &table, &params)?;
    let (natural_width, natural_height) = chart.natural_size();
    let (width, height) = (
        query.w.unwrap_or(natural_width),
        query.h.unwrap_or(natural_height),
    );
    let key = format!(
        "{}chart:{page_id}/{file}?{}|{}|{width}x{height}",
        snapshot.key(),
        query_string(&params, &[]),
        params.ward.as_deref().unwrap_or("")
    );
    let drawer: &AppState = &state;
    let rendered = state
        .rendered
        .get_or_try(key, || async move {
            let drawn = drawer
                .render(move || {
                    if png {
                        chart.png(width, height).map(Bytes::from)
                    } else {
                        chart.svg(width, height).map(Bytes::from)
                    }
                })
                .await?;
            let body = drawn.map_err(chart_error)?;
            Ok::<_, AppError>(Rendered { content_type, body })
        })
        .await?;
    Ok(respond(rendered))
}

fn chart_error(error: chiso_chart::ChartError) -> AppError {
    match error {
        chiso_chart::ChartError::Size { .. } => AppError::bad_request(error.to_string()),
        other => AppError::internal(other.to_string()),
    }
}

const CSS: &str = include_str!("../assets/chiso.css");
const JS: &str = include_str!("../assets/chiso.js");

/// The stylesheet, the script and the font: everything a page loads.
pub async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (content_type, body): (&str, Bytes) = match file.as_str() {
        "chiso.css" => (
            "text/css; charset=utf-8",
            Bytes::from_static(CSS.as_bytes()),
        ),
        "chiso.js" => (
            "text/javascript; charset=utf-8",
            Bytes::from_static(JS.as_bytes()),
        ),
        "font.ttf" => ("font/ttf", Bytes::from_static(chiso_chart::FONT)),
        _ => return Err(AppError::not_found(format!("no static file `{file}`"))),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response())
}
