//! Pages as HTML text: the frame (navigation, period picker, language), and
//! each kind of panel. Everything from data is escaped here.

use std::fmt::Write;

use axum::http::StatusCode;
use chiso_chart::Tone;
pub use chiso_dashboard::present::period_name;
use chiso_dashboard::present::{self, change_tone, display, grain_label, tone};
use chiso_dashboard::{Column, Format, Lang, Panel, PanelKind, Params, Table, Value};
use chiso_engine::{Grain, Period};

pub use chiso_report::html::escape;

/// The frame around a page's panels.
#[derive(Debug)]
pub struct Frame<'a> {
    pub title: &'a str,
    pub subtitle: Option<String>,
    pub lang: Lang,
    /// (href, label, current)
    pub nav: Vec<(String, String, bool)>,
    /// The same page in the other language.
    pub other_lang: (String, &'static str),
    pub picker: String,
    /// The page's download links (PDF, XLSX, CSV).
    pub exports: String,
    pub filters: String,
    pub freshness: String,
}

pub fn page(frame: &Frame, body: &str) -> String {
    let lang = frame.lang;
    let mut nav = String::new();
    for (href, label, current) in &frame.nav {
        let class = if *current { " class=\"current\"" } else { "" };
        let _ = write!(
            nav,
            "<a href=\"{}\"{class}>{}</a>",
            escape(href),
            escape(label)
        );
    }
    let subtitle = frame
        .subtitle
        .as_deref()
        .map(|s| format!("<p class=\"subtitle\">{}</p>", escape(s)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · chỉ số</title><link rel=\"stylesheet\" href=\"/static/chiso.css\">\
<link rel=\"icon\" href=\"data:,\"></head>\
<body><header><div class=\"brand\"><a href=\"/{lang_query}\">chỉ số</a>\
<span>{city}</span></div><nav>{nav}</nav>\
<a class=\"lang\" href=\"{other_href}\">{other_label}</a></header>\
<main><div class=\"heading\"><div><h1>{title}</h1>{subtitle}{exports}</div>{picker}</div>{filters}{body}</main>\
<footer>{freshness}</footer><script src=\"/static/chiso.js\" defer></script></body></html>\n",
        code = lang.code(),
        title = escape(frame.title),
        lang_query = if lang == Lang::En { "?lang=en" } else { "" },
        city = lang.pick("Thành phố Cần Thơ", "Cần Thơ City"),
        other_href = escape(&frame.other_lang.0),
        other_label = frame.other_lang.1,
        picker = frame.picker,
        exports = frame.exports,
        filters = frame.filters,
        freshness = frame.freshness,
    )
}

pub fn error_page(status: StatusCode, message: &str, lang: Lang) -> String {
    let heading = match status {
        StatusCode::NOT_FOUND => lang.pick("Không tìm thấy", "Not found"),
        StatusCode::FORBIDDEN => lang.pick("Không có quyền xem", "Not yours to see"),
        s if s.is_client_error() => lang.pick("Yêu cầu chưa đúng", "That request is not valid"),
        _ => lang.pick("Đã có lỗi", "Something went wrong"),
    };
    let frame = Frame {
        title: heading,
        subtitle: None,
        lang,
        nav: Vec::new(),
        other_lang: (
            if lang == Lang::Vi { "/?lang=en" } else { "/" }.to_owned(),
            lang.pick("English", "Tiếng Việt"),
        ),
        picker: String::new(),
        exports: String::new(),
        filters: String::new(),
        freshness: String::new(),
    };
    let body = format!(
        "<section class=\"panel error\"><p>{}</p><p><a href=\"/\">{}</a></p></section>",
        escape(message),
        lang.pick("Về trang tổng quan", "Back to the overview")
    );
    page(&frame, &body)
}

/// The period picker: previous/next, the grains around the same day, and a
/// box for any period.
pub fn picker(period: &Period, lang: Lang, href: &dyn Fn(&Period) -> String) -> String {
    let previous = period.previous();
    let next = Period::of(
        if period.grain == Grain::Range {
            Grain::Week
        } else {
            period.grain
        },
        period.end,
    );
    let mut grains = String::new();
    for grain in [Grain::Week, Grain::Month, Grain::Quarter, Grain::Year] {
        let target = Period::of(grain, period.last_day());
        let class = if grain == period.grain {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(
            grains,
            "<a href=\"{}\"{class}>{}</a>",
            escape(&href(&target)),
            grain_label(grain, lang)
        );
    }
    format!(
        "<div class=\"picker\"><div class=\"step\"><a href=\"{prev}\" title=\"{prev_title}\" aria-label=\"{prev_title}\">◀</a>\
<strong>{name}</strong><a href=\"{next}\" title=\"{next_title}\" aria-label=\"{next_title}\">▶</a></div>\
<div class=\"grains\">{grains}</div>\
<form method=\"get\" class=\"period-form\"><input name=\"period\" value=\"{value}\" size=\"12\" aria-label=\"{label}\" \
title=\"2025-W28, 2025-07, 2025-Q3, 2025, 2025-07-01..2025-07-15\">{lang_field}<button>{go}</button></form></div>",
        prev = escape(&href(&previous)),
        next = escape(&href(&next)),
        prev_title = lang.pick("Kỳ trước", "Previous period"),
        next_title = lang.pick("Kỳ sau", "Next period"),
        name = escape(&period_name(period, lang)),
        value = escape(&period.to_string()),
        label = lang.pick("Kỳ báo cáo", "Period"),
        lang_field = if lang == Lang::En {
            "<input type=\"hidden\" name=\"lang\" value=\"en\">"
        } else {
            ""
        },
        go = lang.pick("Xem", "Show"),
    )
}

/// The filter form of a ranking page.
pub fn filters(
    params: &Params,
    provinces: &[String],
    with_kind: bool,
    with_province: bool,
) -> String {
    if !with_kind && !with_province {
        return String::new();
    }
    let lang = params.lang;
    let mut out = String::from("<form method=\"get\" class=\"filters\">");
    let _ = write!(
        out,
        "<input type=\"hidden\" name=\"period\" value=\"{}\">",
        escape(&params.period.to_string())
    );
    if lang == Lang::En {
        out.push_str("<input type=\"hidden\" name=\"lang\" value=\"en\">");
    }
    let select = |out: &mut String,
                  name: &str,
                  label: &str,
                  all: &str,
                  options: &[(String, String)],
                  chosen: Option<&str>| {
        let _ = write!(
            out,
            "<label>{} <select name=\"{name}\" data-autosubmit><option value=\"\">{}</option>",
            escape(label),
            escape(all)
        );
        for (value, text) in options {
            let selected = if chosen == Some(value.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<option value=\"{}\"{selected}>{}</option>",
                escape(value),
                escape(text)
            );
        }
        out.push_str("</select></label>");
    };
    if with_kind {
        let kinds = [
            (
                "phuong".to_owned(),
                lang.pick("Phường", "Urban wards").to_owned(),
            ),
            (
                "xa".to_owned(),
                lang.pick("Xã", "Rural communes").to_owned(),
            ),
        ];
        select(
            &mut out,
            "kind",
            lang.pick("Loại", "Kind"),
            lang.pick("Tất cả", "All"),
            &kinds,
            params.kind.as_deref(),
        );
    }
    if with_province {
        let options: Vec<(String, String)> =
            provinces.iter().map(|p| (p.clone(), p.clone())).collect();
        select(
            &mut out,
            "province",
            lang.pick("Tỉnh cũ", "Former province"),
            lang.pick("Tất cả", "All"),
            &options,
            params.province.as_deref(),
        );
    }
    let _ = write!(
        out,
        "<button>{}</button></form>",
        lang.pick("Lọc", "Filter")
    );
    out
}

fn panel_head(panel: &Panel, lang: Lang, actions: &str) -> String {
    let note = panel
        .note
        .as_ref()
        .map(|n| format!("<p class=\"note\">{}</p>", escape(n.get(lang))))
        .unwrap_or_default();
    format!(
        "<div class=\"panel-head\"><div><h2>{}</h2>{note}</div><div class=\"actions\">{actions}</div></div>",
        escape(panel.title.get(lang))
    )
}

fn section(panel: &Panel, inner: &str) -> String {
    let class = if panel.wide { "panel wide" } else { "panel" };
    format!(
        "<section class=\"{class} kind-{}\" id=\"{}\">{inner}</section>",
        kind_name(&panel.kind),
        escape(&panel.id)
    )
}

fn kind_name(kind: &PanelKind) -> &'static str {
    match kind {
        PanelKind::Text { .. } => "text",
        PanelKind::Tiles { .. } => "tiles",
        PanelKind::Table { .. } => "table",
        PanelKind::Line { .. } => "line",
        PanelKind::Bar { .. } => "bar",
        PanelKind::Stacked { .. } => "stacked",
        PanelKind::Heatmap { .. } => "heatmap",
    }
}

/// A panel whose query failed: the page still shows the others.
pub fn failed_panel(panel: &Panel, lang: Lang, message: &str) -> String {
    section(
        panel,
        &format!(
            "{}<p class=\"failed\">{} {}</p>",
            panel_head(panel, lang, ""),
            lang.pick("Không tính được:", "Could not compute:"),
            escape(message)
        ),
    )
}

/// What a panel without rows says instead.
fn empty_paragraph(panel: &Panel, lang: Lang) -> String {
    let text = panel
        .empty
        .as_ref()
        .map(|t| t.get(lang))
        .unwrap_or_else(|| lang.pick("Không có dữ liệu", "No data"));
    format!("<p class=\"empty\">{}</p>", escape(text))
}

fn change_html(column: &Column, table: &Table, row: usize, params: &Params) -> String {
    let Some(change_column) = &column.change else {
        return String::new();
    };
    let Some(change) = table.get(row, change_column) else {
        return String::new();
    };
    let Some(text) = present::change_text(column, change, params.lang) else {
        return String::new();
    };
    format!(
        "<span class=\"change {}\">{}</span>",
        change_tone(column, change).css_class(),
        escape(&text)
    )
}

/// Download links (label, href) for a panel's corner.
pub fn downloads(links: &[(&str, String)]) -> String {
    links
        .iter()
        .map(|(label, href)| format!("<a href=\"{}\" download>{label}</a>", escape(href)))
        .collect()
}

/// A warning above a page's panels: something about the data the reader
/// must know to read them.
pub fn warning(text: &str) -> String {
    format!("<p class=\"warning\" role=\"alert\">{}</p>", escape(text))
}

/// A text panel: each row's text as a paragraph.
pub fn text(panel: &Panel, text: &Column, table: &Table, params: &Params, actions: &str) -> String {
    let lang = params.lang;
    let mut inner = panel_head(panel, lang, actions);
    if table.rows.is_empty() {
        inner.push_str(&empty_paragraph(panel, lang));
        return section(panel, &inner);
    }
    inner.push_str("<div class=\"summary\">");
    for row in 0..table.rows.len() {
        let value = table.get(row, &text.column).unwrap_or(&Value::Null);
        let _ = write!(
            inner,
            "<p>{}</p>",
            escape(&display(value, text.format, lang))
        );
    }
    inner.push_str("</div>");
    section(panel, &inner)
}

pub fn tiles(
    panel: &Panel,
    tiles: &[Column],
    table: &Table,
    params: &Params,
    actions: &str,
) -> String {
    let lang = params.lang;
    let mut inner = panel_head(panel, lang, actions);
    if table.rows.is_empty() {
        inner.push_str(&empty_paragraph(panel, lang));
        return section(panel, &inner);
    }
    inner.push_str("<div class=\"tiles\">");
    for column in tiles {
        let value = table.get(0, &column.column).unwrap_or(&Value::Null);
        let format = present::resolve(column.format, params);
        let _ = write!(
            inner,
            "<div class=\"tile {tone}\"><div class=\"label\">{label}</div><div class=\"value\">{value}</div>{change}</div>",
            tone = tone(column, value).css_class(),
            label = escape(column.label.get(lang)),
            value = escape(&display(value, format, lang)),
            change = change_html(column, table, 0, params),
        );
    }
    inner.push_str("</div>");
    section(panel, &inner)
}

/// A cell's link, from a template such as `/ward/{ward_code}`.
fn link(template: &str, table: &Table, row: usize, query: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let value = table
            .get(row, &after[..close])
            .map(Value::raw_text)
            .unwrap_or_default();
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if query.is_empty() {
        out
    } else {
        format!("{out}?{query}")
    }
}

pub fn table(
    panel: &Panel,
    columns: &[Column],
    table: &Table,
    params: &Params,
    link_query: &str,
    sparkline: &dyn Fn(&[Option<f64>]) -> String,
    actions: &str,
) -> String {
    let lang = params.lang;
    let mut inner = panel_head(panel, lang, actions);
    if table.rows.is_empty() {
        inner.push_str(&empty_paragraph(panel, lang));
        return section(panel, &inner);
    }
    inner.push_str("<div class=\"scroll\"><table class=\"sortable\"><thead><tr>");
    for column in columns {
        let numeric = column.format.is_numeric();
        let _ = write!(
            inner,
            "<th{}>{}</th>",
            if numeric { " class=\"num\"" } else { "" },
            escape(column.label.get(lang))
        );
    }
    inner.push_str("</tr></thead><tbody>");
    for row in 0..table.rows.len() {
        inner.push_str("<tr>");
        for column in columns {
            let value = table.get(row, &column.column).unwrap_or(&Value::Null);
            let format = present::resolve(column.format, params);
            let sort_key = match value {
                Value::Int(_) | Value::Float(_) => value.raw_text(),
                Value::Null => String::new(),
                other => other.raw_text(),
            };
            let text = match (format, value) {
                (Format::Sparkline, Value::List(values)) => sparkline(values),
                _ => escape(&display(value, format, lang)),
            };
            let text = match &column.link {
                Some(template) => format!(
                    "<a href=\"{}\">{text}</a>",
                    escape(&link(template, table, row, link_query))
                ),
                None => text,
            };
            let tone = tone(column, value);
            let mut classes = Vec::new();
            if column.format.is_numeric() {
                classes.push("num");
            }
            if tone != Tone::Neutral {
                classes.push(tone.css_class());
            }
            if matches!(column.format, Format::Band | Format::Severity) {
                classes.push("band");
            }
            let _ = write!(
                inner,
                "<td class=\"{}\" data-sort=\"{}\">{text}{}</td>",
                classes.join(" "),
                escape(&sort_key),
                change_html(column, table, row, params)
            );
        }
        inner.push_str("</tr>");
    }
    inner.push_str("</tbody></table></div>");
    if table.total_rows > table.rows.len() {
        let _ = write!(
            inner,
            "<p class=\"note\">{} {} / {}</p>",
            lang.pick("Hiển thị", "Showing"),
            table.rows.len(),
            table.total_rows
        );
    }
    section(panel, &inner)
}

pub fn chart(panel: &Panel, svg: &str, actions: &str, lang: Lang, empty: bool) -> String {
    let mut inner = panel_head(panel, lang, actions);
    if empty {
        inner.push_str(&empty_paragraph(panel, lang));
    } else {
        let _ = write!(inner, "<figure class=\"chart\">{svg}</figure>");
    }
    section(panel, &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stylesheet states the palette the charts and documents use.
    #[test]
    fn the_stylesheet_has_the_product_palette() {
        use chiso_chart::palette::{ACCENT, BAD, GOOD, INK, LINE, MUTED, WARN_TEXT};
        let css = include_str!("../assets/chiso.css");
        for (name, colour) in [
            ("ink", INK),
            ("muted", MUTED),
            ("line", LINE),
            ("good", GOOD),
            ("warn", WARN_TEXT),
            ("bad", BAD),
            ("accent", ACCENT),
        ] {
            let declaration = format!("--{name}: {};", colour.hex());
            assert!(
                css.contains(&declaration),
                "chiso.css lacks `{declaration}`"
            );
        }
    }

    #[test]
    fn data_is_escaped() {
        assert_eq!(
            escape("<b a=\"x\">'&"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn periods_read_as_people_say_them() {
        let now = chrono::Utc::now();
        let week = Period::parse("2025-W28", now).expect("week");
        assert_eq!(
            period_name(&week, Lang::Vi),
            "Tuần 28/2025 (07/07–13/07/2025)"
        );
        assert_eq!(
            period_name(&week, Lang::En),
            "Week 28/2025 (07/07–13/07/2025)"
        );
        let quarter = Period::parse("2025-Q3", now).expect("quarter");
        assert_eq!(period_name(&quarter, Lang::Vi), "Quý 3/2025");
    }
}
