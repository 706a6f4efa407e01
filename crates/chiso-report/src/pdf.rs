//! PDF, rendered here and offline with Typst used as a library: A4
//! landscape, the pack's front sections on page 1 (its message), a cover
//! that says which data the pages show, a contents list,
//! tables that break across pages with their header repeated, charts as
//! vector graphics, page numbers, and Vietnamese shaped with the bundled
//! DejaVu Sans (no system fonts, no network, no browser).
//!
//! The document is written as Typst markup ([`markup`]); every text from
//! data goes in as a Typst string literal, so no value can be read as markup.
//! Charts are the SVG of `chiso-chart`, handed to Typst as files.

use std::fmt::Write;

use chiso_chart::{Chart, Tone};
use chiso_dashboard::present::{self, change_tone, display, tone};
use chiso_dashboard::{Column, Format, PanelKind, Value};
use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

use crate::ReportError;
use crate::document::{Document, Section};

/// Cell texts up to this long are kept on one line.
const NO_WRAP_CHARS: usize = 28;

/// Content width and height of an A4 landscape page with the margins below,
/// in millimetres: what a chart may fill.
const CONTENT_WIDTH_MM: f64 = 297.0 - 2.0 * 14.0;
const CONTENT_HEIGHT_MM: f64 = 210.0 - 14.0 - 18.0 - 14.0;

/// The PDF of `document`.
pub fn pdf(document: &Document) -> Result<Vec<u8>, ReportError> {
    let mut images = Vec::new();
    let source = markup(document, &mut images)?;
    let world = ReportWorld::new(source, images);
    let compiled = typst::compile::<PagedDocument>(&world).output;
    let paged = compiled.map_err(|errors| ReportError::Pdf(describe(&world, &errors)))?;
    let bytes = typst_pdf::pdf(&paged, &typst_pdf::PdfOptions::default())
        .map_err(|errors| ReportError::Pdf(describe(&world, &errors)))?;
    // Typst memoises across compilations; a long-running server keeps none.
    typst::comemo::evict(0);
    Ok(bytes)
}

fn describe(world: &ReportWorld, errors: &[SourceDiagnostic]) -> String {
    errors
        .iter()
        .map(|e| {
            let at = typst::WorldExt::range(world, e.span)
                .map(|r| {
                    let text = world.main.text();
                    let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (generated markup, line {line})")
                })
                .unwrap_or_default();
            format!("{}{at}", e.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Text as a Typst string literal.
fn lit(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tone_colour(tone: Tone) -> Option<String> {
    tone.text().map(typst_colour)
}

fn typst_colour(colour: chiso_chart::palette::Colour) -> String {
    format!("rgb(\"{}\")", colour.hex())
}

fn local(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant
        .with_timezone(&chiso_core::time::business_offset())
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

/// The Typst source of `document`; chart images are pushed to `images`
/// and named `/img/N.svg` in it.
pub fn markup(document: &Document, images: &mut Vec<Vec<u8>>) -> Result<String, ReportError> {
    let lang = document.lang();
    let period = document.period_name();
    let mut out = String::new();
    let footer = format!(
        "chiso · {} · {} · {} {} · {} {}",
        document.scope,
        period,
        lang.pick("phiên bản sự kiện", "events version"),
        document.freshness.events_version,
        lang.pick("lập lúc", "made"),
        local(document.freshness.generated_at)
    );
    let _ = write!(
        out,
        r##"#set document(title: {title}, author: "chiso")
#set page(paper: "a4", flipped: true, margin: (x: 14mm, top: 14mm, bottom: 18mm),
  footer: context [#set text(7pt, fill: luma(110)); #{footer} #h(1fr) #{page} #counter(page).display("1 / 1", both: true)])
#set text(font: "DejaVu Sans", size: 8.5pt, lang: "{code}")
#set par(justify: false, leading: 0.5em)
#set table(inset: (x: 4pt, y: 3pt), stroke: (x, y) => if y == 0 {{ (bottom: 0.8pt + luma(120)) }} else {{ (bottom: 0.3pt + luma(215)) }})
#show table.cell.where(y: 0): set text(weight: "bold", size: 7.5pt)
#show heading.where(level: 1): it => block(above: 1.4em, below: 0.6em, sticky: true, text(12.5pt, it))
"##,
        title = lit(&format!(
            "{} — {} — {period}",
            document.title, document.scope
        )),
        footer = lit(&footer),
        page = lit(lang.pick("Trang", "Page")),
        code = lang.code(),
    );
    let (front, rest) = document
        .sections
        .split_at(document.front.min(document.sections.len()));
    if !front.is_empty() {
        // Page 1 is the message: what the pack is, then its front sections.
        let _ = writeln!(
            out,
            "#text(16pt, weight: \"bold\", {})\n#v(1mm)\n#text(11pt, fill: luma(70), {})",
            lit(&document.title),
            lit(&format!("{} · {}", document.scope, document.period_name()))
        );
        no_catalogue(&mut out, document);
        for section in front {
            write_section(&mut out, document, section, images)?;
        }
        out.push_str("#pagebreak()\n");
    }
    cover(&mut out, document);
    for section in rest {
        write_section(&mut out, document, section, images)?;
    }
    if !document.methods.is_empty() {
        methods(&mut out, document);
    }
    Ok(out)
}

/// The warning of a store without procedure names, where a reader sees it.
fn no_catalogue(out: &mut String, document: &Document) {
    if !document.freshness.has_catalogue {
        let _ = writeln!(
            out,
            "#block(width: 100%, inset: 6pt, radius: 2pt, fill: rgb(\"#fff8e1\"), stroke: (left: 3pt + rgb(\"#d9a400\")), text(9pt, {}))",
            lit(crate::document::no_catalogue_warning(document.lang()))
        );
    }
}

fn cover(out: &mut String, document: &Document) {
    let lang = document.lang();
    let freshness = &document.freshness;
    let t = document
        .params
        .period
        .evaluation_instant(document.params.now);
    let mut facts: Vec<(&str, String)> = vec![
        (lang.pick("Kỳ báo cáo", "Period"), document.period_name()),
        (lang.pick("Số liệu tính đến", "Figures as of"), local(t)),
    ];
    facts.push((
        lang.pick("Dữ liệu có từ", "Data held"),
        match freshness.data_range {
            Some((first, last)) => {
                format!("{} – {}", first.format("%d/%m/%Y"), last.format("%d/%m/%Y"))
            }
            None => lang.pick("chưa có dữ liệu", "no data yet").to_owned(),
        },
    ));
    facts.push((
        lang.pick("Lần nạp dữ liệu gần nhất", "Last ingest"),
        freshness
            .last_ingest
            .map(local)
            .unwrap_or_else(|| lang.pick("chưa có", "none").to_owned()),
    ));
    facts.push((
        lang.pick("Phiên bản dữ liệu (sự kiện)", "Data version (events)"),
        freshness.events_version.to_string(),
    ));
    facts.push((lang.pick("Lập lúc", "Made"), local(freshness.generated_at)));
    let _ = write!(
        out,
        "#v(18mm)\n#text(10pt, fill: luma(90), {city})\n#v(2mm)\n#text(22pt, weight: \"bold\", {title})\n#v(2mm)\n#text(15pt, {scope})\n#v(8mm)\n#table(columns: (62mm, auto), stroke: none, inset: (x: 0pt, y: 3pt),",
        city = lit(lang.pick(
            "Chỉ số phục vụ người dân, doanh nghiệp · Quyết định 766/QĐ-TTg",
            "Indices of service to people and businesses · Decision 766/QĐ-TTg"
        )),
        title = lit(&document.title),
        scope = lit(&document.scope),
    );
    for (label, value) in facts {
        let _ = write!(
            out,
            " text(fill: luma(90), {}), text(weight: \"bold\", {}),",
            lit(label),
            lit(&value)
        );
    }
    out.push_str(")\n");
    if document.front == 0 {
        no_catalogue(out, document);
    }
    let _ = writeln!(
        out,
        "#v(8mm)\n#text(7.5pt, fill: luma(100), {})\n#pagebreak()\n#outline(title: {}, depth: 1)\n#pagebreak()",
        lit(lang.pick(
            "Lập bằng chiso từ nhật ký sự kiện hồ sơ của bộ phận một cửa; định nghĩa các chỉ số ở trang cuối. Phiên bản dữ liệu cho phép truy lại đúng số liệu của báo cáo này.",
            "Made by chiso from the dossier events of the one-stop desks; the definitions are on the last page. The data version traces every figure back to its data."
        )),
        lit(lang.pick("Nội dung", "Contents")),
    );
}

fn write_section(
    out: &mut String,
    document: &Document,
    section: &Section,
    images: &mut Vec<Vec<u8>>,
) -> Result<(), ReportError> {
    let lang = document.lang();
    let panel = &section.panel;
    let _ = writeln!(out, "#heading(level: 1, {})", lit(panel.title.get(lang)));
    if let Some(note) = &panel.note {
        let _ = writeln!(
            out,
            "#block(sticky: true, text(7.5pt, fill: luma(100), {}))",
            lit(note.get(lang))
        );
    }
    let table = &section.table;
    if table.rows.is_empty() && !matches!(panel.kind, PanelKind::Line { .. }) {
        let empty = panel
            .empty
            .as_ref()
            .map(|t| t.get(lang))
            .unwrap_or_else(|| lang.pick("Không có dữ liệu", "No data"));
        let _ = writeln!(
            out,
            "#text(style: \"italic\", fill: luma(100), {})",
            lit(empty)
        );
        return Ok(());
    }
    match &panel.kind {
        PanelKind::Text { text } => {
            for row in 0..table.rows.len() {
                let value = table.get(row, &text.column).unwrap_or(&Value::Null);
                let _ = writeln!(
                    out,
                    "#block(above: 0.5em, below: 0.6em, text(10.5pt, {}))",
                    lit(&display(value, text.format, lang))
                );
            }
        }
        PanelKind::Tiles { tiles } => write_tiles(out, document, section, tiles),
        PanelKind::Table { columns } => write_table(out, document, section, columns, images)?,
        PanelKind::Bar { .. } if table.rows.len() > BARS_PER_COLUMN => {
            write_bars_in_columns(out, document, section, images)?;
        }
        _ => {
            let chart = present::chart(panel, table, &document.params)
                .map_err(|e| ReportError::Data(e.to_string()))?;
            if let Some(chart) = chart {
                write_chart(out, &chart, images)?;
            }
        }
    }
    if table.total_rows > table.rows.len() {
        let _ = writeln!(
            out,
            "#text(7pt, fill: luma(100), {})",
            lit(&format!(
                "{} {} / {}",
                lang.pick("Hiển thị", "Showing"),
                table.rows.len(),
                table.total_rows
            ))
        );
    }
    Ok(())
}

/// A value with its tone's colour, and its change below when it has one.
fn cell(document: &Document, section: &Section, column: &Column, row: usize, size: &str) -> String {
    let lang = document.lang();
    let table = &section.table;
    let value = table.get(row, &column.column).unwrap_or(&Value::Null);
    let format = present::resolve(column.format, &document.params);
    let text = display(value, format, lang);
    let mut content = match tone_colour(tone(column, value)) {
        Some(colour) => format!("#text({size}fill: {colour}, {})", lit(&text)),
        None if size.is_empty() => format!("#{}", lit(&text)),
        None => format!("#text({size}{})", lit(&text)),
    };
    // A name that fits on a line stays on one.
    if text.chars().count() <= NO_WRAP_CHARS {
        content = format!("#box({})", content.trim_start_matches('#'));
    }
    if let Some(change) = column.change.as_deref().and_then(|c| table.get(row, c))
        && let Some(change_text) = present::change_text(column, change, lang)
    {
        let colour =
            tone_colour(change_tone(column, change)).unwrap_or_else(|| "luma(100)".to_owned());
        let _ = write!(
            content,
            " #text(6.5pt, fill: {colour}, {})",
            lit(&change_text)
        );
    }
    content
}

fn write_tiles(out: &mut String, document: &Document, section: &Section, tiles: &[Column]) {
    let lang = document.lang();
    out.push_str("#grid(columns: (1fr, 1fr, 1fr, 1fr), gutter: 5pt,\n");
    for column in tiles {
        let value = section.table.get(0, &column.column).unwrap_or(&Value::Null);
        let stripe = tone_colour(tone(column, value))
            .unwrap_or_else(|| typst_colour(chiso_chart::palette::ACCENT));
        let _ = writeln!(
            out,
            "  block(width: 100%, inset: 6pt, radius: 2pt, stroke: (left: 3pt + {stripe}, rest: 0.5pt + luma(215)))[#text(7pt, fill: luma(90), {label}) \\ {value}],",
            label = lit(column.label.get(lang)),
            value = cell(document, section, column, 0, "14pt, weight: \"bold\", "),
        );
    }
    out.push_str(")\n");
}

/// Typst column widths. A short text (a ward's name, a code, a band) is
/// given the width of its longest value, in ems of the table's type, so
/// that it never wraps: Typst shrinks the widest `auto` columns of a table
/// wider than the page, and a name is among the widest. Numbers and long
/// texts share the rest.
fn column_widths(document: &Document, section: &Section, columns: &[Column]) -> Vec<String> {
    columns
        .iter()
        .map(|column| {
            if column.format.is_numeric() || matches!(column.format, Format::Sparkline) {
                return "auto".to_owned();
            }
            let format = present::resolve(column.format, &document.params);
            let longest = (0..section.table.rows.len())
                .filter_map(|row| section.table.get(row, &column.column))
                .map(|value| display(value, format, document.lang()).chars().count())
                .max()
                .unwrap_or(0);
            if longest == 0 || longest > NO_WRAP_CHARS {
                return "auto".to_owned();
            }
            // About 0.62 em a character of DejaVu Sans, plus the cell's padding.
            format!("{:.1}em", longest as f64 * 0.62 + 1.0)
        })
        .collect()
}

fn write_table(
    out: &mut String,
    document: &Document,
    section: &Section,
    columns: &[Column],
    images: &mut Vec<Vec<u8>>,
) -> Result<(), ReportError> {
    let lang = document.lang();
    let widths = column_widths(document, section, columns).join(", ");
    let aligns: Vec<&str> = columns
        .iter()
        .map(|c| {
            if c.format.is_numeric() {
                "right"
            } else {
                "left"
            }
        })
        .collect();
    // A wide table (the ranking's sixteen columns) in smaller type with
    // narrower padding: at the body's size its names wrapped.
    let wide = columns.len() > WIDE_TABLE_COLUMNS;
    if wide {
        out.push_str("#[#set text(7.5pt)\n#set table(inset: (x: 2.5pt, y: 2.5pt))\n");
    }
    let _ = write!(
        out,
        "#table(columns: ({widths},), align: ({},),\n  table.header(",
        aligns.join(", ")
    );
    for column in columns {
        let _ = write!(out, "{}, ", lit(column.label.get(lang)));
    }
    out.push_str("),\n");
    for row in 0..section.table.rows.len() {
        out.push_str("  ");
        for column in columns {
            let value = section
                .table
                .get(row, &column.column)
                .unwrap_or(&Value::Null);
            match (column.format, value) {
                (Format::Sparkline, Value::List(values)) => {
                    let chart = Chart::Sparkline {
                        values: values.clone(),
                    };
                    let (w, h) = chart.natural_size();
                    let svg = chart
                        .svg(w, h)
                        .map_err(|e| ReportError::Data(e.to_string()))?;
                    images.push(svg.into_bytes());
                    let _ = write!(
                        out,
                        "box(image(\"/img/{}.svg\", height: 9pt)), ",
                        images.len()
                    );
                }
                _ => {
                    let _ = write!(out, "[{}], ", cell(document, section, column, row, ""));
                }
            }
        }
        out.push('\n');
    }
    out.push_str(")\n");
    if wide {
        out.push_str("]\n");
    }
    Ok(())
}

/// Columns past which a table is set in smaller type.
const WIDE_TABLE_COLUMNS: usize = 12;

/// Bars a chart column of a page holds with readable labels.
const BARS_PER_COLUMN: usize = 35;

/// A long bar chart (every ward) in side-by-side columns of a page, each
/// with the same scale, instead of one chart too tall to read.
fn write_bars_in_columns(
    out: &mut String,
    document: &Document,
    section: &Section,
    images: &mut Vec<Vec<u8>>,
) -> Result<(), ReportError> {
    let Some(chart) = present::chart(&section.panel, &section.table, &document.params)
        .map_err(|e| ReportError::Data(e.to_string()))?
    else {
        return Ok(());
    };
    let bars = section.table.rows.len();
    let columns = bars.div_ceil(BARS_PER_COLUMN);
    let parts = chart.split_bars(bars.div_ceil(columns));
    // Every column as tall as the first (the bars line up) and as narrow as
    // its place on the page (the labels stay readable).
    let (_, height) = parts.first().map_or((0, 700), Chart::natural_size);
    let column_mm = (CONTENT_WIDTH_MM - 4.0 * (columns as f64 - 1.0)) / columns as f64;
    let width = ((f64::from(height) * column_mm / CONTENT_HEIGHT_MM).round() as u32).max(200);
    let _ = write!(
        out,
        "#block(breakable: false, grid(columns: ({}), gutter: 4mm,",
        vec!["1fr"; columns].join(", ")
    );
    for part in parts {
        let svg = part
            .svg(width, height)
            .map_err(|e| ReportError::Data(e.to_string()))?;
        images.push(svg.into_bytes());
        let _ = write!(
            out,
            " image(\"/img/{}.svg\", height: {CONTENT_HEIGHT_MM:.0}mm, width: 100%, fit: \"contain\"),",
            images.len()
        );
    }
    out.push_str("))\n");
    Ok(())
}

fn write_chart(
    out: &mut String,
    chart: &Chart,
    images: &mut Vec<Vec<u8>>,
) -> Result<(), ReportError> {
    let (width, height) = chart.natural_size();
    let svg = chart
        .svg(width, height)
        .map_err(|e| ReportError::Data(e.to_string()))?;
    images.push(svg.into_bytes());
    // As wide as the page, unless that would be taller than a page.
    let height_at_full_width = CONTENT_WIDTH_MM * f64::from(height) / f64::from(width.max(1));
    let size = if height_at_full_width <= CONTENT_HEIGHT_MM {
        "width: 100%".to_owned()
    } else {
        format!("height: {CONTENT_HEIGHT_MM:.0}mm")
    };
    let _ = writeln!(
        out,
        "#block(breakable: false, align(center, image(\"/img/{}.svg\", {size})))",
        images.len()
    );
    Ok(())
}

fn methods(out: &mut String, document: &Document) {
    let lang = document.lang();
    let _ = writeln!(
        out,
        "#pagebreak(weak: true)\n#heading(level: 1, {})\n#text(7.5pt, fill: luma(100), {})",
        lit(lang.pick("Phương pháp tính", "Methods")),
        lit(lang.pick(
            "Định nghĩa theo docs/kpis.md, đúng như các câu SQL trong queries/ thực hiện; các tên là tên cột trong bảng xuất và trong SQL.",
            "The definitions of docs/kpis.md, exactly as the SQL of queries/ implements them; the names are the column names of the exports and of SQL."
        ))
    );
    out.push_str("#table(columns: (62mm, 1fr),\n  table.header(");
    let _ = writeln!(
        out,
        "{}, {}),",
        lit(lang.pick("Chỉ số", "Figure")),
        lit(lang.pick("Định nghĩa", "Definition"))
    );
    for measure in &document.methods {
        let _ = writeln!(
            out,
            "  text(weight: \"bold\", {}), {},",
            lit(&measure.name),
            lit(lang.pick(&measure.vi, &measure.en))
        );
    }
    out.push_str(")\n");
}

/// What Typst sees: the markup, the images, the bundled fonts.
struct ReportWorld {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    main: Source,
    images: Vec<(FileId, Bytes)>,
}

fn file_id(path: &str) -> FileId {
    // Paths are made here and always valid; interned once each.
    let vpath = VirtualPath::new(path).unwrap_or_else(|_| {
        VirtualPath::new("/main.typ").unwrap_or_else(|_| unreachable!("a valid path"))
    });
    FileId::new(RootedPath::new(VirtualRoot::Project, vpath))
}

impl ReportWorld {
    fn new(source: String, images: Vec<Vec<u8>>) -> Self {
        let fonts: Vec<Font> = [chiso_chart::FONT, chiso_chart::FONT_BOLD]
            .into_iter()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        Self {
            library: LazyHash::new(Library::default()),
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
            main: Source::new(file_id("/main.typ"), source),
            images: images
                .into_iter()
                .enumerate()
                .map(|(i, svg)| (file_id(&format!("/img/{}.svg", i + 1)), Bytes::new(svg)))
                .collect(),
        }
    }
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        self.images
            .iter()
            .find(|(image, _)| *image == id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| FileError::NotFound(id.vpath().get_with_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::lit;

    #[test]
    fn text_from_data_stays_text() {
        assert_eq!(lit("a \"b\" \\ #c"), "\"a \\\"b\\\" \\\\ #c\"");
    }
}
