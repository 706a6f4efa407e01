//! The SQL console (`/sql`): a query box, the tables and views with their
//! columns (from `information_schema`), worked examples, and the result's
//! first rows with its time; the whole result downloads as CSV, XLSX or
//! Parquet from `/api/sql`. The page is a plain GET form, so a query is a
//! link that can be bookmarked and shared; the query runs through the same
//! gate as every other ad-hoc query.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Extension, State};
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use chiso_dashboard::{Lang, Table, Value};
use chiso_engine::catalogue::Catalogue;
use futures::StreamExt;

use crate::error::{AppError, PageError};
use crate::html::{self, escape};
use crate::live::Snapshot;
use crate::request::page_query;
use crate::sign_in::Reader;
use crate::{AppState, Rendered};

/// Rows the console shows; downloads have them all.
pub const SHOWN_ROWS: usize = 1000;

pub async fn console(
    State(state): State<Arc<AppState>>,
    Extension(reader): Extension<Reader>,
    uri: Uri,
) -> Result<Response, PageError> {
    let (query, lang) = page_query(&uri)?;
    let as_page = |error: AppError| PageError { error, lang };
    let catalogue = Catalogue::builtin().map_err(|e| as_page(e.into()))?;
    reader.must_write_sql().map_err(as_page)?;
    let snapshot = state.snapshot(&reader).await.map_err(as_page)?;
    let schema = schema_panel(&state, &snapshot, &catalogue, lang)
        .await
        .map_err(as_page)?;
    let sql = query.q.clone();
    let result = match &sql {
        Some(sql) => run(&state, &snapshot, sql, lang).await,
        None => format!(
            "<p class=\"empty\">{}</p>",
            lang.pick(
                "Viết một câu SELECT, hoặc chọn một ví dụ bên dưới.",
                "Write a SELECT, or pick an example below."
            )
        ),
    };
    let body = page_body(&catalogue, sql.as_deref(), lang, &schema, &result);
    let other = if lang == Lang::Vi { Lang::En } else { Lang::Vi };
    let other_href = console_href(sql.as_deref(), other);
    let frame = html::Frame {
        title: lang.pick("Truy vấn SQL", "SQL console"),
        subtitle: Some(
            lang.pick(
                "Chỉ đọc; mỗi truy vấn có giới hạn thời gian và bộ nhớ. Cũng dùng được từ psql, DBeaver, Python qua cổng Postgres.",
                "Read-only; every query is bounded in time and memory. The same catalogue is open to psql, DBeaver and Python over the Postgres port.",
            )
            .to_owned(),
        ),
        lang,
        nav: crate::pages::navigation(&state, lang, "sql"),
        other_lang: (other_href, lang.pick("English", "Tiếng Việt")),
        picker: String::new(),
        exports: String::new(),
        filters: String::new(),
        freshness: format!(
            "{} {}",
            lang.pick("phiên bản sự kiện", "events version"),
            snapshot.events_version()
        ),
    };
    Ok(Html(html::page(&frame, &body)).into_response())
}

/// `/sql?q=…` in a language.
pub fn console_href(sql: Option<&str>, lang: Lang) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(sql) = sql {
        pairs.push(("q", sql));
    }
    if lang == Lang::En {
        pairs.push(("lang", "en"));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        "/sql".to_owned()
    } else {
        format!("/sql?{query}")
    }
}

fn page_body(
    catalogue: &Catalogue,
    sql: Option<&str>,
    lang: Lang,
    schema: &str,
    result: &str,
) -> String {
    let mut examples = String::new();
    for example in &catalogue.examples {
        let _ = write!(
            examples,
            "<li><a href=\"{}\">{}</a></li>",
            escape(&console_href(Some(example.sql.trim()), lang)),
            escape(lang.pick(&example.vi, &example.en))
        );
    }
    format!(
        "<div class=\"console\"><aside class=\"panel schema\">{schema}</aside>\
<div class=\"console-main\"><section class=\"panel\"><form method=\"get\" action=\"/sql\" class=\"sql-form\">\
<textarea name=\"q\" rows=\"9\" spellcheck=\"false\" autocapitalize=\"off\" aria-label=\"SQL\" \
placeholder=\"SELECT * FROM kpi('last-week', 'ward')\">{query}</textarea>{lang_field}\
<div class=\"sql-actions\"><button type=\"submit\">{run}</button><span class=\"hint\">Ctrl+Enter</span></div></form>\
</section><section class=\"panel result\">{result}</section>\
<section class=\"panel\"><h2>{examples_title}</h2><ul class=\"examples\">{examples}</ul></section></div></div>",
        query = escape(sql.unwrap_or("")),
        lang_field = if lang == Lang::En {
            "<input type=\"hidden\" name=\"lang\" value=\"en\">"
        } else {
            ""
        },
        run = lang.pick("Chạy", "Run"),
        examples_title = lang.pick("Ví dụ", "Examples"),
    )
}

/// Runs the query through the gate and shows its first rows, or why not.
async fn run(state: &AppState, snapshot: &Snapshot, sql: &str, lang: Lang) -> String {
    let started = Instant::now();
    let failed = |message: String| {
        format!(
            "<div class=\"sql-error\"><strong>{}</strong> {}</div>",
            lang.pick("Không chạy được:", "The query did not run:"),
            escape(&message)
        )
    };
    let admission = match state.gate.admit() {
        Ok(admission) => admission,
        Err(error) => return failed(error.to_string()),
    };
    let mut stream = match snapshot.engine.bounded_sql(sql, admission).await {
        Ok(stream) => stream,
        Err(error) => return failed(error.to_string()),
    };
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut more = false;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) if rows >= SHOWN_ROWS => {
                more |= batch.num_rows() > 0;
                if more {
                    break;
                }
            }
            Ok(batch) => {
                rows += batch.num_rows();
                batches.push(batch);
            }
            Err(error) => return failed(error.to_string()),
        }
    }
    // Dropping the stream stops whatever the screen will not show.
    drop(stream);
    more |= rows > SHOWN_ROWS;
    let elapsed = started.elapsed();
    let table = match Table::from_batches(&batches, SHOWN_ROWS) {
        Ok(table) => table,
        Err(error) => return failed(error.to_string()),
    };
    let shown = table.rows.len();
    let count = if more {
        format!(
            "{} {shown} {}",
            lang.pick("Hiển thị", "Showing the first"),
            lang.pick("dòng đầu (tải về để có tất cả)", "rows (download for all)")
        )
    } else {
        format!(
            "{shown} {}",
            lang.pick("dòng", if shown == 1 { "row" } else { "rows" })
        )
    };
    let mut out = format!(
        "<div class=\"sql-meta\"><span>{count} · {:.0} ms</span><span class=\"actions\">",
        elapsed.as_secs_f64() * 1000.0
    );
    for (label, format) in [("CSV", "csv"), ("XLSX", "xlsx"), ("Parquet", "parquet")] {
        let query =
            serde_urlencoded::to_string([("format", format), ("q", sql)]).unwrap_or_default();
        let _ = write!(
            out,
            "<a href=\"/api/sql?{}\" download>{label}</a>",
            escape(&query)
        );
    }
    out.push_str("</span></div>");
    out.push_str(&result_table(&table));
    out
}

/// The rows as they are: raw values, numbers right-aligned.
fn result_table(table: &Table) -> String {
    let mut out =
        String::from("<div class=\"scroll\"><table class=\"sql-result sortable\"><thead><tr>");
    let numeric: Vec<bool> = (0..table.columns.len())
        .map(|c| {
            table
                .rows
                .iter()
                .map(|r| &r[c])
                .find(|v| !matches!(v, Value::Null))
                .is_some_and(|v| matches!(v, Value::Int(_) | Value::Float(_)))
        })
        .collect();
    for (name, numeric) in table.columns.iter().zip(&numeric) {
        let class = if *numeric { " class=\"num\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for (value, numeric) in row.iter().zip(&numeric) {
            let text = match value {
                Value::Null => String::new(),
                Value::Instant(t) => t
                    .with_timezone(&chiso_core::time::business_offset())
                    .format("%Y-%m-%d %H:%M:%S%:z")
                    .to_string(),
                other => other.raw_text(),
            };
            let class = if *numeric { " class=\"num\"" } else { "" };
            let null = if matches!(value, Value::Null) {
                " data-null"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<td{class}{null} data-sort=\"{sort}\">{text}</td>",
                sort = escape(&value.raw_text()),
                text = escape(&text)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The tables and views with their columns, and the functions: computed
/// once per store version and language.
async fn schema_panel(
    state: &AppState,
    snapshot: &Snapshot,
    catalogue: &Catalogue,
    lang: Lang,
) -> Result<String, AppError> {
    let key = format!("{}console-schema:{}", snapshot.key(), lang.code());
    let rendered = state
        .rendered
        .get_or_try(key, || async {
            let sql = "SELECT c.table_name, t.table_type, c.column_name, c.data_type \
                       FROM information_schema.columns c \
                       JOIN information_schema.tables t \
                         ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                       WHERE c.table_schema = 'public' \
                       ORDER BY c.table_name, c.ordinal_position";
            let batches = snapshot
                .engine
                .sql(sql)
                .await?
                .collect()
                .await
                .map_err(|e| AppError::internal(e.to_string()))?;
            let columns = Table::from_batches(&batches, usize::MAX)?;
            Ok::<_, AppError>(Rendered {
                content_type: "text/html; charset=utf-8",
                body: Bytes::from(schema_html(catalogue, &columns, lang)),
            })
        })
        .await?;
    Ok(String::from_utf8_lossy(&rendered.body).into_owned())
}

fn schema_html(catalogue: &Catalogue, columns: &Table, lang: Lang) -> String {
    let mut out = format!(
        "<h2>{}</h2>",
        lang.pick("Bảng và khung nhìn", "Tables and views")
    );
    // Tables the catalogue describes first, in its order; then the rest.
    let mut names: Vec<String> = Vec::new();
    for row in &columns.rows {
        let name = row[0].raw_text();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let position = |name: &str| {
        catalogue
            .tables
            .iter()
            .position(|t| t.name == name)
            .unwrap_or(usize::MAX)
    };
    names.sort_by_key(|name| position(name));
    for name in &names {
        let description = catalogue
            .table(name)
            .map(|t| lang.pick(&t.vi, &t.en).to_owned())
            .unwrap_or_default();
        let kind = columns
            .rows
            .iter()
            .find(|r| r[0].raw_text() == *name)
            .map(|r| r[1].raw_text())
            .unwrap_or_default();
        let _ = write!(
            out,
            "<details><summary><code>{}</code>{}</summary><p>{}</p><ul class=\"columns\">",
            escape(name),
            if kind == "VIEW" {
                format!(" <small>{}</small>", lang.pick("khung nhìn", "view"))
            } else {
                String::new()
            },
            escape(&description)
        );
        for row in columns.rows.iter().filter(|r| r[0].raw_text() == *name) {
            let _ = write!(
                out,
                "<li><code>{}</code> <small>{}</small></li>",
                escape(&row[2].raw_text()),
                escape(&row[3].raw_text())
            );
        }
        out.push_str("</ul></details>");
    }
    let _ = write!(
        out,
        "<h2>{}</h2><dl class=\"functions\">",
        lang.pick("Hàm", "Functions")
    );
    for function in &catalogue.functions {
        let _ = write!(
            out,
            "<dt><code>{}</code></dt><dd>{}</dd>",
            escape(&function.signature),
            escape(lang.pick(&function.vi, &function.en))
        );
    }
    out.push_str("</dl>");
    out
}
