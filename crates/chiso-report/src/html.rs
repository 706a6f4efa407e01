//! One self-contained HTML file (styles and charts inline, no external
//! resources): a document to mail or open on any machine, printable.

use std::fmt::Write;

use chiso_chart::{Chart, Tone};
use chiso_dashboard::present::{self, change_tone, display, tone};
use chiso_dashboard::{Column, Format, PanelKind, Value};

use crate::ReportError;
use crate::document::{Document, Section};

/// The document's stylesheet, in the product's palette.
fn style() -> String {
    use chiso_chart::palette::{ACCENT, BAD, GOOD, INK, LINE, MUTED, WARN, WARN_TEXT};
    let [ink, muted, line, accent, good, warn, warn_text, bad] =
        [INK, MUTED, LINE, ACCENT, GOOD, WARN, WARN_TEXT, BAD].map(|c| c.hex());
    format!(
        "body{{font-family:'DejaVu Sans',sans-serif;color:{ink};margin:2rem auto;max-width:1200px;padding:0 1rem;font-size:14px}}\
h1{{font-size:1.7rem;margin:.2rem 0}}h2{{font-size:1.2rem;margin:2rem 0 .4rem;border-bottom:1px solid {line}}}\
.muted{{color:{muted}}}.warning{{padding:.5rem .8rem;border-left:5px solid #d9a400;background:#fff8e1}}table{{border-collapse:collapse;width:100%;font-size:.85rem}}\
th,td{{padding:.25rem .45rem;border-bottom:1px solid {line};text-align:left}}th{{background:#eef2f6}}\
td.num,th.num{{text-align:right;white-space:nowrap}}.good{{color:{good}}}.warn{{color:{warn_text}}}.bad{{color:{bad};font-weight:bold}}\
.change{{display:block;font-size:.75rem}}.tiles{{display:grid;grid-template-columns:repeat(4,1fr);gap:.5rem}}\
.tile{{border:1px solid {line};border-left:5px solid {accent};padding:.4rem .6rem}}.tile.good{{border-left-color:{good}}}\
.tile.warn{{border-left-color:{warn}}}.tile.bad{{border-left-color:{bad}}}.tile .v{{font-size:1.5rem;font-weight:bold}}\
svg{{max-width:100%;height:auto}}dl.facts{{display:grid;grid-template-columns:16rem 1fr;gap:.2rem}}dl.facts dd{{margin:0;font-weight:bold}}\
@media print{{h2{{break-after:avoid}}.tile,svg{{break-inside:avoid}}}}"
    )
}

/// Text made safe for HTML content and attribute values: the one escape of
/// the product (the server's pages use it too).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn local(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant
        .with_timezone(&chiso_core::time::business_offset())
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

fn class(tone: Tone) -> &'static str {
    match tone {
        Tone::Neutral => "",
        other => other.css_class(),
    }
}

/// The HTML of `document`.
pub fn html(document: &Document) -> Result<String, ReportError> {
    let lang = document.lang();
    let freshness = &document.freshness;
    let mut out = format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{} — {}</title><style>{}</style></head><body>",
        lang.code(),
        escape(&document.title),
        escape(&document.scope),
        style()
    );
    let _ = write!(
        out,
        "<p class=\"muted\">{}</p><h1>{}</h1><p>{}</p><dl class=\"facts\">",
        escape(lang.pick(
            "Chỉ số phục vụ người dân, doanh nghiệp · Quyết định 766/QĐ-TTg",
            "Indices of service to people and businesses · Decision 766/QĐ-TTg"
        )),
        escape(&document.title),
        escape(&document.scope)
    );
    let t = document
        .params
        .period
        .evaluation_instant(document.params.now);
    let mut facts = vec![
        (lang.pick("Kỳ báo cáo", "Period"), document.period_name()),
        (lang.pick("Số liệu tính đến", "Figures as of"), local(t)),
        (
            lang.pick("Phiên bản dữ liệu (sự kiện)", "Data version (events)"),
            freshness.events_version.to_string(),
        ),
        (lang.pick("Lập lúc", "Made"), local(freshness.generated_at)),
    ];
    if let Some(last) = freshness.last_ingest {
        facts.insert(
            2,
            (
                lang.pick("Lần nạp dữ liệu gần nhất", "Last ingest"),
                local(last),
            ),
        );
    }
    for (label, value) in facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(label), escape(&value));
    }
    out.push_str("</dl>");
    if !freshness.has_catalogue {
        let _ = write!(
            out,
            "<p class=\"warning\">{}</p>",
            escape(crate::document::no_catalogue_warning(lang))
        );
    }
    for section in &document.sections {
        write_section(&mut out, document, section)?;
    }
    if !document.methods.is_empty() {
        let _ = write!(
            out,
            "<h2>{}</h2><table><tr><th>{}</th><th>{}</th></tr>",
            escape(lang.pick("Phương pháp tính", "Methods")),
            escape(lang.pick("Chỉ số", "Figure")),
            escape(lang.pick("Định nghĩa", "Definition"))
        );
        for measure in &document.methods {
            let _ = write!(
                out,
                "<tr><td><strong>{}</strong></td><td>{}</td></tr>",
                escape(&measure.name),
                escape(lang.pick(&measure.vi, &measure.en))
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

fn value_html(
    document: &Document,
    section: &Section,
    column: &Column,
    row: usize,
) -> (String, Tone) {
    let lang = document.lang();
    let value = section
        .table
        .get(row, &column.column)
        .unwrap_or(&Value::Null);
    let format = present::resolve(column.format, &document.params);
    let mut text = escape(&display(value, format, lang));
    if let Some(change) = column
        .change
        .as_deref()
        .and_then(|c| section.table.get(row, c))
        && let Some(change_text) = present::change_text(column, change, lang)
    {
        let _ = write!(
            text,
            "<span class=\"change {}\">{}</span>",
            class(change_tone(column, change)),
            escape(&change_text)
        );
    }
    (text, tone(column, value))
}

fn write_section(
    out: &mut String,
    document: &Document,
    section: &Section,
) -> Result<(), ReportError> {
    let lang = document.lang();
    let panel = &section.panel;
    let _ = write!(out, "<h2>{}</h2>", escape(panel.title.get(lang)));
    if let Some(note) = &panel.note {
        let _ = write!(out, "<p class=\"muted\">{}</p>", escape(note.get(lang)));
    }
    let table = &section.table;
    if table.rows.is_empty() && !matches!(panel.kind, PanelKind::Line { .. }) {
        let empty = panel
            .empty
            .as_ref()
            .map(|t| t.get(lang))
            .unwrap_or_else(|| lang.pick("Không có dữ liệu", "No data"));
        let _ = write!(out, "<p class=\"muted\"><em>{}</em></p>", escape(empty));
        return Ok(());
    }
    match &panel.kind {
        PanelKind::Text { text } => {
            for row in 0..table.rows.len() {
                let (text, _) = value_html(document, section, text, row);
                let _ = write!(out, "<p class=\"summary\">{text}</p>");
            }
        }
        PanelKind::Tiles { tiles } => {
            out.push_str("<div class=\"tiles\">");
            for column in tiles {
                let (text, tone) = value_html(document, section, column, 0);
                let _ = write!(
                    out,
                    "<div class=\"tile {}\"><div class=\"muted\">{}</div><div class=\"v\">{text}</div></div>",
                    class(tone),
                    escape(column.label.get(lang))
                );
            }
            out.push_str("</div>");
        }
        PanelKind::Table { columns } => {
            out.push_str("<table><tr>");
            let numeric = |c: &Column| c.format.is_numeric();
            for column in columns {
                let _ = write!(
                    out,
                    "<th{}>{}</th>",
                    if numeric(column) {
                        " class=\"num\""
                    } else {
                        ""
                    },
                    escape(column.label.get(lang))
                );
            }
            out.push_str("</tr>");
            for row in 0..table.rows.len() {
                out.push_str("<tr>");
                for column in columns {
                    let value = table.get(row, &column.column).unwrap_or(&Value::Null);
                    let (text, tone) = match (column.format, value) {
                        (Format::Sparkline, Value::List(values)) => {
                            let chart = Chart::Sparkline {
                                values: values.clone(),
                            };
                            let (w, h) = chart.natural_size();
                            (
                                chart
                                    .svg(w, h)
                                    .map_err(|e| ReportError::Data(e.to_string()))?,
                                Tone::Neutral,
                            )
                        }
                        _ => value_html(document, section, column, row),
                    };
                    let classes = [if numeric(column) { "num" } else { "" }, class(tone)].join(" ");
                    let _ = write!(out, "<td class=\"{}\">{text}</td>", classes.trim());
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        }
        _ => {
            if let Some(chart) = present::chart(panel, table, &document.params)
                .map_err(|e| ReportError::Data(e.to_string()))?
            {
                let (w, h) = chart.natural_size();
                out.push_str(
                    &chart
                        .svg(w, h)
                        .map_err(|e| ReportError::Data(e.to_string()))?,
                );
            }
        }
    }
    Ok(())
}
