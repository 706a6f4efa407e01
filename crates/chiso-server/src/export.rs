//! Documents from the browser: every page as PDF, XLSX or CSV with the
//! page's period and filters (`/export/ranking.pdf?period=2025-W40`), the
//! report packs (`/pack/city.pdf?period=…`, `/pack/ward.xlsx?ward=31135`),
//! and the archive of scheduled packs (`/reports`).
//!
//! A document is made from the very tables the pages show (the cache of
//! this store version), typeset on a blocking thread, and kept per version
//! and choice of parameters like a page.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bytes::Bytes;
use chiso_dashboard::{Lang, Page, PanelKind, Params};
use chiso_report::{DocumentFormat, Freshness, Outline, ReportError};

use crate::error::{AppError, PageError};
use crate::html::{self, escape};
use crate::live::Snapshot;
use crate::pages::panel_table;
use crate::request::{Query, page_query, query_string};
use crate::sign_in::Reader;
use crate::{AppState, Rendered};

impl From<ReportError> for AppError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::Request(message) => AppError::bad_request(message),
            other => AppError::internal(other.to_string()),
        }
    }
}

/// `name.ext` split, the extension one of `allowed`.
fn split_file<'a>(file: &'a str, allowed: &[&str]) -> Result<(&'a str, &'a str), AppError> {
    let (name, extension) = file.rsplit_once('.').ok_or_else(|| {
        AppError::bad_request(format!("`{file}` should end in .{}", allowed.join(", .")))
    })?;
    if !allowed.contains(&extension) {
        return Err(AppError::bad_request(format!(
            "documents come as .{}, not .{extension}",
            allowed.join(", .")
        )));
    }
    Ok((name, extension))
}

/// `GET /export/{page}.{pdf|xlsx|csv}`.
pub async fn page_export(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path(file): Path<String>,
    uri: Uri,
) -> Result<Response, AppError> {
    let (page_id, extension) = split_file(&file, &["pdf", "xlsx", "csv"])?;
    let query = Query::parse(uri.query())?;
    let page = state
        .dashboards
        .page(page_id)
        .ok_or_else(|| AppError::not_found(format!("there is no page `{page_id}`")))?;
    if page.per_ward() && query.ward.is_none() {
        return Err(AppError::bad_request(format!(
            "the page `{page_id}` is about one ward: add ward=CODE"
        )));
    }
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, None)?;
    if extension == "csv" {
        // A page's CSV is its main table, whole: the panel download.
        let panel = page
            .panels
            .iter()
            .find(|p| matches!(p.kind, PanelKind::Table { .. }))
            .or_else(|| page.panels.first())
            .ok_or_else(|| AppError::not_found(format!("the page `{page_id}` has no panels")))?;
        let mut extra = vec![("format", "csv".to_owned())];
        if let Some(ward) = &params.ward {
            extra.insert(0, ("ward", ward.to_string()));
        }
        return Ok(Redirect::to(&format!(
            "/api/panels/{}/{}?{}",
            page.id,
            panel.id,
            query_string(&params, &extra)
        ))
        .into_response());
    }
    let format = DocumentFormat::parse(extension).unwrap_or(DocumentFormat::Pdf);
    let title = match &params.ward {
        Some(_) => chiso_report::document::scope_name(&params),
        None => page.title.get(params.lang).to_owned(),
    };
    let outline = Outline {
        title,
        panels: page.panels.iter().map(|panel| (page, panel)).collect(),
        front: 0,
        methods: false,
        file_stem: chiso_report::document::file_stem(&page.id, &params),
    };
    respond(&state, &snapshot, &uri, outline, &params, format).await
}

/// `GET /pack/{pack}.{pdf|xlsx|html}`.
pub async fn pack_export(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path(file): Path<String>,
    uri: Uri,
) -> Result<Response, AppError> {
    let (pack_id, extension) = split_file(&file, &["pdf", "xlsx", "html"])?;
    let query = Query::parse(uri.query())?;
    let pack = state.dashboards.pack(pack_id).ok_or_else(|| {
        AppError::not_found(format!(
            "there is no pack `{pack_id}`; the packs are {}",
            state
                .dashboards
                .packs
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let snapshot = state.snapshot(&reader).await?;
    let params = query.params(&state, &snapshot, None)?;
    if pack.per_ward && params.ward.is_none() {
        return Err(AppError::bad_request(format!(
            "the pack `{pack_id}` is about one ward: add ward=CODE"
        )));
    }
    let format = DocumentFormat::parse(extension).unwrap_or(DocumentFormat::Pdf);
    let outline = Outline::of_pack(&state.dashboards, pack, &params)?;
    respond(&state, &snapshot, &uri, outline, &params, format).await
}

/// The document, made once per store version and request.
async fn respond(
    state: &AppState,
    snapshot: &Snapshot,
    uri: &Uri,
    outline: Outline<'_>,
    params: &Params,
    format: DocumentFormat,
) -> Result<Response, AppError> {
    // Keyed by what was understood, not the raw query string: reordered
    // or repeated parameters must not make the same document again.
    let key = format!(
        "{}export:{}?{}|{}",
        snapshot.key(),
        uri.path(),
        query_string(params, &[]),
        params.ward.as_deref().unwrap_or("")
    );
    let filename = format!("{}.{}", outline.file_stem, format.extension());
    let rendered = state
        .rendered
        .get_or_try(key, || async {
            let freshness = Freshness::of(&snapshot.engine).await?;
            let document = outline
                .document(params, freshness, |panel| {
                    panel_table(state, snapshot, panel, params)
                })
                .await?;
            let bytes = state.render(move || format.write(&document)).await??;
            Ok::<_, AppError>(Rendered {
                content_type: format.content_type(),
                body: Bytes::from(bytes),
            })
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, rendered.content_type.to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        rendered.body,
    )
        .into_response())
}

/// The download links of a page: the page as PDF, XLSX and CSV, and the
/// pack it belongs to.
pub(crate) fn page_links(state: &AppState, page: &Page, params: &Params) -> String {
    let lang = params.lang;
    let mut extra = Vec::new();
    if let Some(ward) = &params.ward {
        extra.push(("ward", ward.to_string()));
    }
    let query = query_string(params, &extra);
    let mut links = String::from("<div class=\"exports\">");
    for (label, extension) in [("PDF", "pdf"), ("XLSX", "xlsx"), ("CSV", "csv")] {
        let _ = write!(
            links,
            "<a href=\"/export/{}.{extension}?{}\" download>{label}</a>",
            escape(&page.id),
            escape(&query)
        );
    }
    let pack = if page.per_ward() { "ward" } else { "city" };
    if state.dashboards.pack(pack).is_some() {
        let _ = write!(
            links,
            "<a href=\"/pack/{pack}.pdf?{}\" download>{}</a>",
            escape(&query),
            lang.pick("Báo cáo đầy đủ (PDF)", "Full report (PDF)")
        );
    }
    links.push_str("</div>");
    links
}

/// `GET /reports`: the scheduled packs, newest week first.
pub async fn archive_page(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, PageError> {
    let (_, lang) = page_query(&uri)?;
    let as_page = |error: AppError| PageError { error, lang };
    let mut body = String::from("<div class=\"panels\"><section class=\"panel wide\">");
    match &state.archive {
        None => {
            let _ = write!(
                body,
                "<p class=\"empty\">{}</p>",
                escape(lang.pick(
                    "Chưa bật lịch báo cáo. Chạy chiso serve --schedule weekly --archive THƯ_MỤC để mỗi thứ Hai lúc 07:00 lập báo cáo của tuần vừa qua.",
                    "No schedule is set. Run chiso serve --schedule weekly --archive DIR to make the packs of the week just ended every Monday at 07:00."
                ))
            );
        }
        Some(archive) => {
            let periods = archive.list().map_err(|e| as_page(e.into()))?;
            let _ = write!(
                body,
                "<p class=\"note\">{} {}</p>",
                escape(lang.pick("Thư mục:", "Folder:")),
                // The folder's name, not where it is on the server's disk.
                escape(
                    &archive
                        .root()
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            );
            if periods.is_empty() {
                let _ = write!(
                    body,
                    "<p class=\"empty\">{}</p>",
                    escape(lang.pick("Chưa có báo cáo nào", "No packs yet"))
                );
            }
            for period in periods {
                let _ = write!(
                    body,
                    "<details{}><summary><strong>{}</strong> · {} {}</summary><ul class=\"archive\">",
                    if body.contains("<details") {
                        ""
                    } else {
                        " open"
                    },
                    escape(&period.period),
                    period
                        .files
                        .iter()
                        .filter(|(name, _)| reader.may_open_pack(name))
                        .count(),
                    lang.pick("tệp", "files")
                );
                for (name, bytes) in period
                    .files
                    .iter()
                    .filter(|(name, _)| reader.may_open_pack(name))
                {
                    let _ = write!(
                        body,
                        "<li><a href=\"/reports/{}/{}\" download>{}</a> <small>{} kB</small></li>",
                        escape(&period.period),
                        escape(name),
                        escape(name),
                        bytes / 1024
                    );
                }
                body.push_str("</ul></details>");
            }
        }
    }
    body.push_str("</section></div>");
    let other = if lang == Lang::Vi {
        "/reports?lang=en"
    } else {
        "/reports"
    };
    let frame = html::Frame {
        title: lang.pick("Báo cáo định kỳ", "Scheduled reports"),
        subtitle: Some(
            lang.pick(
                "Báo cáo thành phố và từng xã, phường của tuần vừa qua, lập mỗi thứ Hai lúc 07:00",
                "The city's and every ward's packs of the week just ended, made every Monday at 07:00",
            )
            .to_owned(),
        ),
        lang,
        nav: crate::pages::navigation(&state, lang, "reports"),
        other_lang: (other.to_owned(), lang.pick("English", "Tiếng Việt")),
        picker: String::new(),
        exports: String::new(),
        filters: String::new(),
        freshness: String::new(),
    };
    Ok(Html(html::page(&frame, &body)).into_response())
}

/// `GET /reports/{period}/{file}`: one archived file.
pub async fn archived_file(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    Path((period, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if !reader.may_open_pack(&name) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!("{name} is another ward's pack"),
        ));
    }
    let archive = state
        .archive
        .as_ref()
        .ok_or_else(|| AppError::not_found("no archive: the server runs without --archive"))?;
    let path = archive
        .file(&period, &name)
        .ok_or_else(|| AppError::not_found(format!("the archive has no {period}/{name}")))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| AppError::internal(format!("{}: {e}", path.display())))?;
    let content_type = match name.rsplit_once('.').map(|(_, e)| e) {
        Some("pdf") => DocumentFormat::Pdf.content_type(),
        Some("xlsx") => DocumentFormat::Xlsx.content_type(),
        Some("html") => DocumentFormat::Html.content_type(),
        _ => "application/octet-stream",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
